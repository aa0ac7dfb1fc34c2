"""Edges of the training engine: a checkpoint trained under another loss definition is not
continued (nor deleted), and a micro-batch with nothing to predict (no masked token; every NER
label ignored) adds zero loss and zero weight instead of 0/0 (NaN).

Made-up notes only; tiny models built from config train a few steps on one CPU thread.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from domainfm.errors import ConfigError
from domainfm.training.checkpoints import (
    ITEM_MEAN,
    LOSS_VERSION,
    MICRO_BATCH_MEAN,
    OBJECTIVE_KEY,
    STATE_FILE,
    commit_checkpoint,
    latest_resumable,
    list_checkpoints,
    objective_record,
)
import test_pretrain
from conftest import TINY_TEXTS
from test_pretrain import make_config, write_corpus
from test_resume_data_changed import Stop, _stop_at

pytestmark = pytest.mark.usefixtures("one_torch_thread")
tiny_mlm_dir = test_pretrain.tiny_mlm_dir  # the fixture, shared


# ------------------------------------------------------------------ resume: the loss definition


def _checkpoint(out, state: dict, rng_file: str | None = "rng_state.pth"):
    folder = out / "checkpoints" / "checkpoint-2"
    folder.mkdir(parents=True)
    if rng_file:  # what Trainer writes: rng_state.pth on one process, rng_state_<rank>.pth on several
        (folder / rng_file).write_bytes(b"")
    commit_checkpoint(folder, state)
    return folder


NOW = objective_record(ITEM_MEAN, class_weights=None)


@pytest.mark.parametrize("recorded, grad_accum, rng_file, current, refusal", [
    (NOW, 4, "rng_state.pth", NOW, None),
    ({**NOW, "loss_version": 1}, 1, "rng_state.pth", NOW, "was trained under loss definition 1"),
    ({**NOW, "class_weights": [1.0, 3.0]}, 1, "rng_state.pth", NOW, r"another objective \(class_weights differ\)"),
    # written before records were kept: continued only where the old and the current definition agree
    (None, 1, "rng_state.pth", NOW, None),  # one micro-batch a step, one process
    (None, 2, "rng_state.pth", NOW, "records no loss definition, and with grad_accum 2"),
    (None, 1, "rng_state_0.pth", NOW, "records no loss definition, and on several processes"),
    (None, 2, "rng_state.pth", objective_record(MICRO_BATCH_MEAN, class_weights=None), None),  # distillation
])
def test_a_checkpoint_resumes_only_under_the_loss_it_was_trained_under(tmp_path, recorded, grad_accum, rng_file,
                                                                        current, refusal):
    config = {"train": {"grad_accum": grad_accum}}
    state = {"config": config, **({OBJECTIVE_KEY: recorded} if recorded is not None else {})}
    out = tmp_path / "out"
    _checkpoint(out, state, rng_file)
    if refusal is None:
        assert latest_resumable(out, config, set(), objective=current)[0] == 2
    else:
        with pytest.raises(ConfigError, match=refusal) as refused:
            latest_resumable(out, config, set(), objective=current)
        message = str(refused.value)
        assert "checkpoint-2" in message and "--overwrite" in message and "\n" not in message
        assert [step for step, _ in list_checkpoints(out)] == [2]  # nothing deleted
    assert latest_resumable(out, config, set()) is not None  # a caller that gives no objective: not checked


def _run_to_checkpoint(tmp_path, model_dir, **overrides):
    from domainfm.pretrain import pretrain

    corpus = write_corpus(tmp_path / "deid" / "notes.jsonl", n=30)
    cfg = make_config(model_dir, corpus, **{"train.max_steps": 4, "train.checkpoint_every": 2, "train.log_every": 1,
                                            **overrides})
    with pytest.raises(Stop):  # checkpoint-2 written
        pretrain(cfg, tmp_path / "out", on_event=_stop_at(3))
    return cfg, tmp_path / "out" / "checkpoints" / "checkpoint-2" / STATE_FILE


def _rewrite(state_file, change):
    state = json.loads(state_file.read_text())
    change(state)
    state_file.write_text(json.dumps(state))


def test_pretrain_under_another_loss_definition_is_refused_and_its_checkpoint_kept(tmp_path, tiny_mlm_dir):
    from domainfm.pretrain import pretrain

    cfg, state_file = _run_to_checkpoint(tmp_path, tiny_mlm_dir, **{"train.grad_accum": 2})
    assert json.loads(state_file.read_text())[OBJECTIVE_KEY] == {"loss_version": LOSS_VERSION, "reduction": ITEM_MEAN,
                                                                 "objective": "mlm"}
    _rewrite(state_file, lambda s: s[OBJECTIVE_KEY].update(loss_version=1))  # as an older definition recorded it
    with pytest.raises(ConfigError, match="checkpoint-2 was trained under loss definition 1") as refused:
        pretrain(cfg, tmp_path / "out", resume=True)
    assert "--overwrite" in str(refused.value) and "the domainfm version that wrote it" in str(refused.value)
    assert not any(text.lower() in str(refused.value).lower() for text in TINY_TEXTS)
    _rewrite(state_file, lambda s: s.pop(OBJECTIVE_KEY))  # written before records: mean of means or items?
    with pytest.raises(ConfigError, match="checkpoint-2 records no loss definition, and with grad_accum 2"):
        pretrain(cfg, tmp_path / "out", resume=True)
    assert [step for step, _ in list_checkpoints(tmp_path / "out")] == [2]  # nothing deleted
    again = pretrain(cfg, tmp_path / "out", overwrite=True)
    assert again.resumed_from is None and again.steps == 4


def test_a_checkpoint_without_a_record_resumes_where_both_definitions_agree(tmp_path, tiny_mlm_dir):
    from domainfm.pretrain import pretrain

    cfg, state_file = _run_to_checkpoint(tmp_path, tiny_mlm_dir)  # grad_accum 1, one process
    _rewrite(state_file, lambda s: s.pop(OBJECTIVE_KEY))
    assert pretrain(cfg, tmp_path / "out", resume=True).resumed_from == 2


# ------------------------------------------------------------------ no masked token: an unknown MLM head


@pytest.fixture(scope="module")
def tiny_distilbert_dir(tmp_path_factory, tiny_tokenizer):
    """A 2-layer DistilBERT masked LM: its head (vocab_transform/vocab_projector) is none the
    masked-positions hook knows, so its loss goes through the full-vocabulary logits."""
    from transformers import DistilBertConfig, DistilBertForMaskedLM

    torch.manual_seed(0)
    config = DistilBertConfig(vocab_size=len(tiny_tokenizer), dim=32, n_layers=2, n_heads=2, hidden_dim=37,
                              max_position_embeddings=128, dropout=0.0, attention_dropout=0.0)
    folder = tmp_path_factory.mktemp("tiny-distilbert")
    DistilBertForMaskedLM(config).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


def _mlm_batch(tokenizer, masked: list[int]) -> dict:
    from domainfm.pretrain.masking import IGNORE_INDEX

    batch = dict(tokenizer(TINY_TEXTS[:2], padding=True, return_tensors="pt"))
    batch.pop("token_type_ids", None)
    labels = torch.full_like(batch["input_ids"], IGNORE_INDEX)
    for position in masked:
        labels[0, position] = batch["input_ids"][0, position]
        batch["input_ids"][0, position] = tokenizer.mask_token_id
    return {**batch, "labels": labels}


def test_a_batch_without_masked_tokens_adds_zero_loss_through_an_unknown_head(tiny_distilbert_dir):
    from domainfm.pretrain.config import ModelConfig
    from domainfm.pretrain.model import load_model
    from domainfm.pretrain.objective import MaskedPositionsLoss

    loaded = load_model(ModelConfig(name=str(tiny_distilbert_dir)))
    assert loaded.head is None  # the case: transformers' full-vocabulary logits
    objective = MaskedPositionsLoss(loaded.model, loaded.head)
    loss, count = objective(loaded.model, _mlm_batch(loaded.tokenizer, masked=[]))
    assert (loss.item(), int(count)) == (0.0, 0)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in loaded.model.parameters() if p.grad is not None)
    # with masked tokens, the sum is transformers' own mean times their number
    batch = _mlm_batch(loaded.tokenizer, masked=[2, 4, 5])
    loss, count = objective(loaded.model, batch)
    own = loaded.model(**batch).loss
    assert int(count) == 3 and loss.item() == pytest.approx(3 * own.item(), rel=1e-5)


def test_a_micro_batch_without_masked_tokens_weighs_nothing_in_its_step(tmp_path, tiny_distilbert_dir):
    # one step over [no masked token, 3 masked tokens] is the step over the second micro-batch alone
    from domainfm.pretrain.config import ModelConfig
    from domainfm.pretrain.masking import IGNORE_INDEX
    from domainfm.pretrain.model import load_model
    from domainfm.pretrain.objective import MaskedPositionsLoss
    from domainfm.training import StageTrainer
    from domainfm.training.engine import training_arguments

    def one_step(name: str, micro_batches: list[dict]) -> dict[str, torch.Tensor]:
        loaded = load_model(ModelConfig(name=str(tiny_distilbert_dir)))
        args = training_arguments(tmp_path / name, max_steps=1, grad_accum=len(micro_batches), batch_size=2,
                                  lr=0.1, weight_decay=0.0, warmup_steps=0, max_grad_norm=1e9, seed=0, precision={},
                                  log_every=1, optim="sgd", save_strategy="no")
        trainer = StageTrainer(model=loaded.model, args=args, make_batch=lambda k: micro_batches[k],
                               micro_batches=len(micro_batches), loss_fn=MaskedPositionsLoss(loaded.model, None),
                               count_items=lambda b: int((b["labels"] != IGNORE_INDEX).sum()))
        trainer.train()
        assert math.isfinite(trainer.progress.last_loss)
        return {n: p.detach().clone() for n, p in trainer.model.named_parameters()}

    tokenizer = load_model(ModelConfig(name=str(tiny_distilbert_dir))).tokenizer
    masked = _mlm_batch(tokenizer, masked=[2, 4, 5])
    both = one_step("both", [_mlm_batch(tokenizer, masked=[]), masked])
    alone = one_step("alone", [masked])
    assert all(torch.isfinite(p).all() for p in both.values())
    assert all(torch.allclose(both[n], alone[n], atol=1e-6) for n in alone)


# ------------------------------------------------------------------ every NER label ignored: distillation


@pytest.mark.parametrize("class_weights", ["none", "balanced"])
def test_distillation_on_a_ner_batch_without_labelled_tokens_adds_zero_loss(tiny_model_dir, tiny_bert_config,
                                                                            class_weights):
    import copy
    from types import SimpleNamespace

    from transformers import BertForTokenClassification

    from domainfm.config import load_config
    from domainfm.finetune import TaskConfig
    from domainfm.finetune.data import IGNORE_INDEX
    from domainfm.finetune.distill import mixed_loss
    from domainfm.finetune.objective import _loss_fn

    cfg = load_config(TaskConfig, overrides={
        "task": "ner", "model.name": str(tiny_model_dir), "data.train": "notes.jsonl",
        "labels.names": ["DATE", "DOCTOR"], "train.class_weights": class_weights,
        "distill.teacher": "teacher", "distill.weight": 0.5, "allow_identified_data": True})
    n_out = 5  # O, B-/I-DATE, B-/I-DOCTOR
    loss, _ = _loss_fn(cfg, [SimpleNamespace(label=[0, 1, 2, 3, 4, 0, IGNORE_INDEX])], n_out)
    config = copy.deepcopy(tiny_bert_config)
    config.num_labels = n_out
    torch.manual_seed(0)
    model = BertForTokenClassification(config)
    input_ids = torch.tensor([[2, 7, 9, 11, 3], [2, 8, 3, 0, 0]])
    logits = model(input_ids=input_ids, attention_mask=(input_ids != 0).long()).logits
    labels = torch.full(input_ids.shape, IGNORE_INDEX)  # a micro-batch whose every label is ignored
    gold = loss(logits, labels)
    mixed = mixed_loss(gold, logits, torch.randn(*logits.shape), labels, "ner", cfg.distill)
    assert gold.item() == 0.0 and mixed.item() == 0.0
    mixed.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    # a batch with targets keeps torch's (class-weighted) mean
    labels[0, 1:4] = torch.tensor([1, 2, 0])
    assert loss(logits, labels).item() == pytest.approx(loss.total(logits, labels)[0].item() / loss.items(labels))


def test_distillation_from_a_retrained_teacher_is_refused(tmp_path, clinical_corpus, tiny_model_dir):
    # the teacher's outputs are half the loss, and the config names only its folder
    from domainfm.corpus import read_documents, write_documents
    from domainfm.finetune import finetune
    from test_finetune_distill import _cfg

    notes = tmp_path / "ner.jsonl"
    write_documents(notes, list(read_documents(clinical_corpus))[:24])
    teacher = tmp_path / "teacher"
    finetune(_cfg(notes, tiny_model_dir), teacher)
    student = _cfg(notes, tiny_model_dir, **{"distill.teacher": str(teacher), "train.max_steps": 4,
                                             "train.eval_every": 2})
    with pytest.raises(Stop):  # checkpoint-2 written, distilled from the first teacher
        finetune(student, tmp_path / "out", on_event=_stop_at(3))
    finetune(_cfg(notes, tiny_model_dir, **{"train.seed": 7}), teacher, overwrite=True)  # same folder, retrained
    with pytest.raises(ConfigError, match=r"checkpoint-2 was trained under another objective "
                                          r"\(teacher_manifest_sha256 differ\)"):
        finetune(student, tmp_path / "out", resume=True)
    assert [step for step, _ in list_checkpoints(tmp_path / "out")] == [2]
