"""Pretraining computes what it says: BERT masking rates, whole words, causal windows and labels,
held-out loss over the right positions and independent of batching, a split that leaks no
document (chunks included), token counts, artifacts that plain transformers scores the same, and
a resumed run that repeats an uninterrupted one."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from domainfm.manifest import write_manifest

from conftest import TINY_TEXTS
from test_pretrain import make_config, tiny_gpt2_dir, tiny_mlm_dir, write_corpus  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# words the tiny WordPiece vocabulary lacks: spelled out as one piece plus '##' pieces
MADE_UP = ["zorbex", "quiltam", "vexaprine", "glomid", "trastil"]


@pytest.fixture()
def corpus(tmp_path):
    return write_corpus(tmp_path / "deid" / "notes.jsonl", n=60)


def _write(path, docs, stage="deid"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    write_manifest(path, stage=stage, config={}, inputs=[], outputs=[path])
    return path


def _made_up_corpus(path, n=40, seed=0):
    """Notes mixing known sentences with unknown words (several pieces each); no patient ids."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        words = " ".join(rng.choice(MADE_UP) for _ in range(rng.randint(2, 6)))
        docs.append({"id": f"n{i}", "text": f"{rng.choice(TINY_TEXTS)} {words}. {rng.choice(TINY_TEXTS)}", "meta": {}})
    return _write(path, docs)


def _setup(model_dir, corpus, **overrides):
    from domainfm.pretrain.data import build_corpus
    from domainfm.pretrain.model import load_model
    from domainfm.pretrain.objective import _Batcher

    cfg = make_config(model_dir, corpus, **overrides)
    loaded = load_model(cfg.model, cfg.train.seed)
    packed = build_corpus(cfg, loaded.tokenizer, loaded.objective)
    return cfg, loaded, packed, _Batcher(cfg, packed, loaded, 0, 1)


def _held_out_ids(cfg):
    from domainfm.pretrain.data import split_documents

    return [d.id for d in split_documents(cfg.data)[1]]


def _recording(objective):
    """The objective, and the list of the batches it is given."""
    batches = []

    def record(model, batch):
        batches.append(batch)
        return objective(model, batch)
    return record, batches


class _Rank:
    """The parts of an accelerate Accelerator that evaluation uses, as rank ``index`` of ``n``
    (reduce is left to the test, which sums the ranks itself)."""

    device = torch.device("cpu")

    def __init__(self, index=0, n=1):
        self.process_index, self.num_processes = index, n

    def autocast(self):
        import contextlib

        return contextlib.nullcontext()

    def reduce(self, tensor, reduction="sum"):
        return tensor


# ---------------------------------------------------------------------------------- MLM masking


def test_mlm_batches_select_15_percent_and_split_80_10_10(tmp_path, tiny_mlm_dir, corpus):
    """Over many training micro-batches: the selected share of maskable tokens, the
    mask/random/keep split, special tokens never selected, labels -100 elsewhere."""
    _, loaded, _, batcher = _setup(tiny_mlm_dir, corpus, **{"train.batch_size": 8})
    tok = loaded.tokenizer
    special = torch.tensor(sorted(set(tok.all_special_ids)))
    selected = candidates = masked = kept = 0
    for k in range(40):
        idx = batcher.indices(k)
        original = torch.from_numpy(np.stack([batcher.corpus.train.ids[i] for i in idx]).astype(np.int64))
        batch = batcher.train_batch(k)
        sel = batch["labels"] != -100
        cand = ~torch.isin(original, special)
        assert not (sel & ~cand).any()  # [CLS], [SEP] never predicted
        assert (batch["labels"][sel] == original[sel]).all()  # labels are the original ids
        assert (batch["input_ids"][~sel] == original[~sel]).all()  # nothing else is touched
        selected += int(sel.sum())
        candidates += int(cand.sum())
        masked += int((batch["input_ids"][sel] == tok.mask_token_id).sum())
        kept += int((batch["input_ids"][sel] == original[sel]).sum())
    assert selected / candidates == pytest.approx(0.15, abs=0.015)
    assert masked / selected == pytest.approx(0.8, abs=0.04)
    # kept: the 10% left alone plus the random draws that hit the original token (1/vocab)
    assert kept / selected == pytest.approx(0.1, abs=0.03)
    assert (selected - masked - kept) / selected == pytest.approx(0.1, abs=0.03)


def test_whole_word_masking_through_the_corpus_keeps_words_whole_and_never_masks_padding(tmp_path, tiny_mlm_dir):
    """Word boundaries travel from the tokenizer through packing (and unpacked windows) to the
    masks: within a sequence every piece of a word is selected or none is."""
    corpus = _made_up_corpus(tmp_path / "deid" / "notes.jsonl")
    for packing in (True, False):
        _, loaded, packed, batcher = _setup(tiny_mlm_dir, corpus, **{
            "masking.whole_word_mask": True, "masking.packing": packing, "masking.mlm_probability": 0.3,
            "train.batch_size": 8})
        tok = loaded.tokenizer
        multi_piece = 0
        for k in range(6):
            idx = batcher.indices(k)
            batch = batcher.train_batch(k)
            for row, i in enumerate(idx):
                tokens = tok.convert_ids_to_tokens(packed.train.ids[i].tolist())
                # the corpus' word starts are WordPiece's: a '##' piece continues a word
                starts = packed.train.word_starts[i]
                assert [not t.startswith("##") for t in tokens[1:]] == starts[1:].tolist()
                selected = (batch["labels"][row, :len(tokens)] != -100).tolist()
                word: list[bool] = []
                for j, t in enumerate(tokens + ["[SEP]"]):
                    if j == len(tokens) or starts[j]:
                        assert len(set(word)) <= 1, (tokens, selected)
                        multi_piece += len(word) > 1 and word[0]
                        word = []
                    if j < len(tokens) and t not in tok.all_special_tokens:
                        word.append(selected[j])
            # padding (unpacked mode) is never selected
            assert not (batch["labels"][batch["attention_mask"] == 0] != -100).any()
        assert multi_piece > 5  # words of several pieces were selected, whole


# ---------------------------------------------------------------------------------- evaluation


def test_held_out_loss_does_not_depend_on_batch_size_or_processes(tmp_path, tiny_mlm_dir, corpus):
    """The same model on the same held-out text and seed scores the same, whatever
    train.batch_size (the eval batch) or the number of processes: each block's masks come from
    the block alone. Before, masks were drawn per eval batch (keyed by its first block)."""
    from domainfm.pretrain.objective import MaskedPositionsLoss, evaluate

    _, loaded, packed, batcher = _setup(tiny_mlm_dir, corpus, **{"masking.whole_word_mask": True})
    objective = MaskedPositionsLoss(loaded.model, loaded.head)
    results = [evaluate(loaded.model, objective, batcher, _Rank(), bs) for bs in (1, 3, 8)]
    assert results[0]["predicted_tokens"] == results[1]["predicted_tokens"] == results[2]["predicted_tokens"]
    assert results[0]["loss"] == pytest.approx(results[1]["loss"], rel=1e-6)
    assert results[0]["loss"] == pytest.approx(results[2]["loss"], rel=1e-6)
    # two ranks, each scoring every other block, add up to the one-process numbers
    ranks = [evaluate(loaded.model, objective, batcher, _Rank(r, 2), 4) for r in (0, 1)]
    count = sum(r["predicted_tokens"] for r in ranks)
    assert count == results[0]["predicted_tokens"]
    assert sum(r["loss"] * r["predicted_tokens"] for r in ranks) / count == pytest.approx(results[0]["loss"], rel=1e-6)


def test_held_out_loss_is_the_mean_over_predicted_tokens_not_over_batches(tmp_path, tiny_mlm_dir, corpus):
    """exp(sum of cross-entropy / predicted tokens), computed here by hand with the full
    vocabulary (no masked-position shortcut) from the batches evaluation scores."""
    from domainfm.pretrain.objective import MaskedPositionsLoss, evaluate

    _, loaded, packed, batcher = _setup(tiny_mlm_dir, corpus)
    objective, batches = _recording(MaskedPositionsLoss(loaded.model, loaded.head))
    result = evaluate(loaded.model, objective, batcher, _Rank(), 4)
    assert [len(b["input_ids"]) for b in batches] == [4] * (len(packed.eval) // 4) + [len(packed.eval) % 4]
    total, count, means = 0.0, 0, []
    loaded.model.eval()
    with torch.no_grad():
        for batch in batches:
            logits = loaded.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), reduction="sum")
            n = int((batch["labels"] != -100).sum())
            total, count = total + float(loss), count + n
            means.append(float(loss) / n)
    assert result["predicted_tokens"] == count
    assert result["loss"] == pytest.approx(total / count, rel=1e-5)
    assert result["perplexity"] == pytest.approx(np.exp(total / count), rel=1e-5)
    assert result["sequences"] == len(packed.eval)
    assert max(means) - min(means) > 0.01  # batches differ, so a mean of batch means would not do


# ---------------------------------------------------------------------------------- causal LM


def test_causal_unpacked_windows_end_with_eos_only_where_a_document_ends(tmp_path, tiny_gpt2_dir):
    """A causal LM is trained to predict end-of-text: a long document cut into windows must
    not end every window with it. Before, each window got an EOS, teaching the model that
    text ends at every cut."""
    from transformers import AutoTokenizer

    from domainfm.pretrain.data import _read, build_corpus

    docs = [{"id": f"d{i}", "text": " ".join(TINY_TEXTS[(i + j) % len(TINY_TEXTS)] for j in range(5)), "meta": {}}
            for i in range(12)]
    corpus = _write(tmp_path / "deid" / "long.jsonl", docs)
    tok = AutoTokenizer.from_pretrained(tiny_gpt2_dir)
    cfg = make_config(tiny_gpt2_dir, corpus, **{"masking.packing": False})
    packed = build_corpus(cfg, tok, "causal")
    read, _ = _read(cfg.data, tok, False)
    eos = tok.eos_token_id
    assert all(len(s) <= 32 for s in packed.train.ids + packed.eval.ids)
    for side in ("train", "eval"):
        assert sum(int((s == eos).sum()) for s in getattr(packed, side).ids) == packed.stats[f"{side}_documents"]
    assert len(packed.train) > packed.stats["train_documents"]  # documents were cut into windows
    # every text token and one EOS per document, in order, nothing more
    train_groups = {d.group for d in read} - {f"id:{d}" for d in _held_out_ids(cfg)}
    stream = np.concatenate([np.append(d.ids, eos) for d in read if d.group in train_groups])
    assert np.array_equal(np.concatenate(packed.train.ids), stream)


def test_causal_labels_are_shifted_once(tmp_path, tiny_gpt2_dir, corpus):
    """domainfm's causal loss on a padded batch equals transformers' own loss (which shifts the
    labels itself) given domainfm's labels: the labels are not shifted twice, padding is out."""
    from domainfm.pretrain.objective import causal_loss

    _, loaded, packed, batcher = _setup(tiny_gpt2_dir, corpus, **{"masking.packing": False})
    loaded.model.eval()
    idx = batcher.indices(0)
    batch = batcher.train_batch(0)
    assert (batch["attention_mask"] == 0).any()  # the batch holds padding
    assert (batch["labels"] == torch.where(batch["attention_mask"].bool(), batch["input_ids"], -100)).all()
    with torch.no_grad():
        ours, count = causal_loss(loaded.model, batch)
        theirs = loaded.model(**batch).loss
    assert int(count) == int(batch["attention_mask"].sum()) - len(idx)  # every real token but the first
    assert float(ours) / int(count) == pytest.approx(float(theirs), rel=1e-5)


# ---------------------------------------------------------------------------------- split and counts


def test_split_and_counts_match_the_documents(tmp_path, tiny_mlm_dir, corpus):
    from domainfm.pretrain.data import split_documents

    cfg, loaded, packed, _ = _setup(tiny_mlm_dir, corpus)
    train_docs, eval_docs = split_documents(cfg.data)
    patients = lambda docs: {d.meta["patient_id"] for d in docs}  # noqa: E731
    assert patients(train_docs) and patients(eval_docs) and not patients(train_docs) & patients(eval_docs)
    stats = packed.stats
    assert (stats["train_documents"], stats["eval_documents"]) == (len(train_docs), len(eval_docs))
    assert stats["documents"] == len(train_docs) + len(eval_docs) + stats["empty_documents"]
    tok = loaded.tokenizer
    lengths = {d.id: len(tok(d.text, add_special_tokens=False)["input_ids"]) for d in train_docs + eval_docs}
    assert stats["train_text_tokens"] == sum(lengths[d.id] + 1 for d in train_docs)  # + one [SEP] each
    # held-out blocks: every held-out token once, with one [CLS] per block (no tail dropped)
    held_text = sum(lengths[d.id] + 1 for d in eval_docs)
    assert stats["eval_sequence_tokens"] == held_text + stats["eval_sequences"]
    # training blocks: all training text but a tail shorter than one block
    assert 0 <= stats["train_text_tokens"] - (stats["train_sequence_tokens"] - stats["train_sequences"]) < 31
    # the training stream holds no held-out text: the blocks are exactly the train documents
    body = np.concatenate([b[1:] for b in packed.train.ids])
    sep = tok.sep_token_id
    stream = np.concatenate([np.append(tok(d.text, add_special_tokens=False)["input_ids"], sep) for d in train_docs])
    assert np.array_equal(body, stream[:len(body)])


def test_chunk_files_are_read_and_split_by_the_document_they_come_from(tmp_path, tiny_mlm_dir, tiny_tokenizer):
    """``domainfm chunk`` output (``data.paths`` may name it) is read, and the overlapping
    chunks of one document all land on one side. Before, every chunk record was refused for
    its chunk-only fields."""
    from domainfm.chunk import ChunkConfig, chunk_file
    from domainfm.pretrain import pretrain
    from domainfm.pretrain.data import build_corpus, split_documents

    rng = random.Random(3)
    docs = [{"id": f"case-{i}", "text": "\n".join(rng.choice(TINY_TEXTS) for _ in range(6)), "meta": {}}
            for i in range(30)]
    deid = _write(tmp_path / "deid" / "notes.jsonl", docs)
    result = chunk_file(deid, tmp_path / "chunks.jsonl", ChunkConfig(tokenizer=str(tiny_mlm_dir), max_tokens=24,
                                                                     overlap=8), tokenizer=tiny_tokenizer)
    records = [json.loads(x) for x in result.out.read_text().splitlines()]
    assert len(records) > 2 * len(docs)  # several overlapping chunks per document
    cfg = make_config(tiny_mlm_dir, result.out, **{"data.eval_fraction": 0.2})
    train, held = split_documents(cfg.data)
    source = {r["id"]: r["doc_id"] for r in records}
    train_sources, held_sources = {source[d.id] for d in train}, {source[d.id] for d in held}
    assert train_sources and held_sources and not train_sources & held_sources
    assert len(train) + len(held) == len(records)
    packed = build_corpus(cfg, tiny_tokenizer, "mlm")
    assert packed.stats["split_key"] == "id"
    assert (packed.stats["train_documents"], packed.stats["eval_documents"]) == (len(train), len(held))
    assert packed.stats["eval_groups"] == len(held_sources)
    # and a run trains on them, the privacy gate tracing the chunks back to the deid output
    result = pretrain(make_config(tiny_mlm_dir, result.out, **{"train.max_steps": 1}), tmp_path / "out")
    assert json.loads(result.manifest.read_text())["privacy_gate"]["decision"] == "passed"


# ---------------------------------------------------------------------------------- artifacts, resume


@pytest.mark.parametrize("objective", ["mlm", "causal"])
def test_saved_model_scores_the_held_out_batches_as_domainfm_did(tmp_path, tiny_mlm_dir, tiny_gpt2_dir, corpus,
                                                                 objective):
    """The folder loads with plain transformers, and transformers' own loss (labels passed,
    full vocabulary, its own shift for causal LMs) on the held-out batches gives metrics.json's
    eval_after."""
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    from domainfm.pretrain import pretrain
    from domainfm.pretrain.objective import MaskedPositionsLoss, causal_loss, evaluate

    model_dir = tiny_mlm_dir if objective == "mlm" else tiny_gpt2_dir
    cfg = make_config(model_dir, corpus, **{"train.max_steps": 3})
    result = pretrain(cfg, tmp_path / "out")
    _, loaded, packed, batcher = _setup(result.out_dir, corpus)
    ours = MaskedPositionsLoss(loaded.model, loaded.head) if objective == "mlm" else causal_loss
    recorder, batches = _recording(ours)
    assert evaluate(loaded.model, recorder, batcher, _Rank(), 4) == result.metrics["eval_after"]
    plain = (AutoModelForMaskedLM if objective == "mlm" else AutoModelForCausalLM).from_pretrained(result.out_dir)
    plain.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            labels = batch["labels"][:, 1:] if objective == "causal" else batch["labels"]
            n = int((labels != -100).sum())
            total, count = total + float(plain(**batch).loss) * n, count + n
    after = result.metrics["eval_after"]
    assert count == after["predicted_tokens"]
    assert total / count == pytest.approx(after["loss"], rel=1e-5)


class _Stop(Exception):
    pass


def test_a_resumed_run_takes_the_same_batches_and_steps_as_an_uninterrupted_one(tmp_path, tiny_mlm_dir):
    """Stopped after step 7 (checkpoint at 6), resumed: the same losses step by step, the same
    token count and bit-identical weights. The epoch (7 micro-batches) ends inside a step, so
    the data order of the second epoch is covered too."""
    from domainfm.pretrain import pretrain

    corpus = write_corpus(tmp_path / "deid" / "notes.jsonl", n=30)
    cfg = make_config(tiny_mlm_dir, corpus, **{"train.max_steps": 10, "train.checkpoint_every": 3,
                                               "train.grad_accum": 2, "train.log_every": 1})
    reference = pretrain(cfg, tmp_path / "reference")

    def stop(event):
        if event["kind"] == "step" and event["step"] == 7:
            raise _Stop

    with pytest.raises(_Stop):
        pretrain(cfg, tmp_path / "killed", on_event=stop)
    resumed = pretrain(cfg, tmp_path / "killed", resume=True)
    assert resumed.resumed_from == 6 and resumed.steps == reference.steps == 10
    log = lambda run: [(r["step"], r["loss"], r["tokens_seen"]) for r in  # noqa: E731
                       map(json.loads, (tmp_path / run / "train_log.jsonl").read_text().splitlines())]
    assert log("killed") == log("reference")
    assert resumed.metrics["train"]["tokens_seen"] == reference.metrics["train"]["tokens_seen"]
    assert resumed.metrics["eval_after"] == reference.metrics["eval_after"]
    assert (tmp_path / "killed" / "model.safetensors").read_bytes() == \
        (tmp_path / "reference" / "model.safetensors").read_bytes()
    # tokens_seen is the real tokens of the micro-batches taken (26 blocks of 32, 4 a batch)
    assert reference.metrics["data"]["train_sequences"] == 26
    from domainfm.pretrain.objective import _Batcher
    from domainfm.pretrain.data import build_corpus
    from domainfm.pretrain.model import load_model

    loaded = load_model(cfg.model, cfg.train.seed)
    batcher = _Batcher(cfg, build_corpus(cfg, loaded.tokenizer, "mlm"), loaded, 0, 1)
    assert batcher.batches_per_epoch == 7
    seen = sum(int(batcher.train_batch(k)["attention_mask"].sum()) for k in range(10 * 2))
    assert reference.metrics["train"]["tokens_seen"] == seen


def test_packing_keeps_every_canary_copy_whole_in_one_block():
    """Packing cut the stream every seq_len tokens wherever a canary copy lay: 13-20% of copies
    straddled a cut or fell in the dropped tail, so a canary meant to appear once was sometimes
    never in the training data whole and its exposure measured nothing."""
    from domainfm.pretrain.data import _CANARY_GROUP, _Doc, _pack

    rng = np.random.default_rng(0)
    docs, canaries = [], []
    for i in range(60):
        docs.append(_Doc(rng.integers(10, 99, size=int(rng.integers(5, 40))).astype(np.int32), None, f"id:{i}", 0.5))
        if i % 6 == 0:
            canary = np.arange(1000 + 20 * i, 1000 + 20 * i + 9, dtype=np.int32)
            canaries.append(canary)
            docs.append(_Doc(canary, None, _CANARY_GROUP, 1.0))
    docs.append(_Doc(np.arange(2000, 2009, dtype=np.int32), None, _CANARY_GROUP, 1.0))  # last: the tail
    canaries.append(docs[-1].ids)
    blocks = _pack(docs, seq_len=32, start=1, sep=2, keep_tail=False, with_starts=False)
    assert all(len(b) <= 32 for b in blocks.ids)
    for canary in canaries:
        assert sum(any(np.array_equal(b[k:k + len(canary)], canary) for k in range(len(b))) for b in blocks.ids) == 1
    # nothing else moves: the stream without the start tokens is every document and separator in order
    stream = np.concatenate([np.append(d.ids, 2) for d in docs])
    packed = np.concatenate([b[1:] for b in blocks.ids])
    assert np.array_equal(packed, stream[:len(packed)])
    plain = [d for d in docs if d.group != _CANARY_GROUP]  # without canaries: full blocks, tail dropped
    no_canary = _pack(plain, seq_len=32, start=1, sep=2, keep_tail=False, with_starts=False)
    assert all(len(b) == 32 for b in no_canary.ids)
    assert len(no_canary) == len(np.concatenate([np.append(d.ids, 2) for d in plain])) // 31
