"""The privacy audit of a ``domainfm pretrain`` model scores what the model trained on: the
field it read (``data.text_field``, here a ``meta.<key>``) and, by the ``split.json`` pretrain
records, only the documents it trained on as members (not those of the patients it held out).
Tiny BERT built from config, made-up notes, a few training steps."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_TEXTS

from domainfm.config import from_dict
from domainfm.corpus import Document, write_documents
from domainfm.errors import ConfigError
from domainfm.manifest import write_manifest
from domainfm.pretrain import PretrainConfig
from domainfm.privacy_audit import PrivacyAuditConfig, PrivacyGateConfig

# tiny models run fastest on one thread (conftest.one_torch_thread)
pytestmark = pytest.mark.usefixtures("one_torch_thread")

FIELD = "meta.summary"


def _notes(prefix: str, n: int, seed: int) -> list[Document]:
    """Three notes per made-up patient; the model trains on ``meta.summary``, and ``text`` is a
    different sentence that the audit must not score."""
    rng = random.Random(seed)
    return [Document(f"{prefix}{i}", f"unused text {prefix} {i}.",
                     meta={"patient_id": f"{prefix}p{i // 3}",
                           "summary": " ".join(rng.choice(TINY_TEXTS) for _ in range(rng.randint(2, 4)))})
            for i in range(n)]


@pytest.fixture(scope="module")
def dapt(tmp_path_factory, tiny_tokenizer, tiny_bert_config):
    """A pretrain run on ``meta.summary`` of 60 notes of 20 patients, 0.3 of them held out."""
    import torch
    from transformers import BertForMaskedLM

    from domainfm.pretrain import pretrain

    root = tmp_path_factory.mktemp("dapt-inputs")
    torch.manual_seed(0)
    BertForMaskedLM(tiny_bert_config).save_pretrained(root / "base")
    tiny_tokenizer.save_pretrained(root / "base")
    data, others = root / "notes.jsonl", root / "others.jsonl"
    write_documents(data, _notes("n", 60, 0))
    write_manifest(data, stage="deid", config={}, inputs=[], outputs=[data])
    write_documents(others, _notes("o", 24, 1))
    cfg = from_dict(PretrainConfig, {
        "model": {"name": str(root / "base")},
        "data": {"paths": [str(data)], "text_field": FIELD, "eval_fraction": 0.3},
        "masking": {"seq_len": 32},
        "train": {"max_steps": 2, "batch_size": 4, "lr": 1e-3, "warmup_ratio": 0.0, "log_every": 1},
    })
    result = pretrain(cfg, root / "model")
    return {"cfg": cfg, "model": root / "model", "data": data, "others": others, "stats": result.metrics["data"]}


def _audit_config() -> PrivacyAuditConfig:
    return PrivacyAuditConfig(n_bootstrap=0, gate=PrivacyGateConfig(max_exposure=None, max_mia_auc=None,
                                                                    max_regurgitated=None))


def test_pretrain_records_the_documents_it_trained_on_and_held_out(dapt):
    """``split.json`` in fine-tuning's form: every document on the side the run put it, every
    patient on one side, and the counts of the run's own metrics."""
    from domainfm.corpus.io import read_documents
    from domainfm.finetune.split import read_split
    from domainfm.pretrain.data import split_documents

    split = read_split(dapt["model"])
    assert split is not None, "pretrain wrote no split.json"
    assert split.split_key == "meta.patient_id" and split.eval_source.startswith("0.3 of ")
    assert "split.json" in (dapt["model"] / "manifest.json").read_text()  # hashed with the model
    trained, held = split_documents(dapt["cfg"].data)
    assert {split.side(d) for d in trained} == {"train"} and {split.side(d) for d in held} == {"eval"}
    stats = dapt["stats"]
    assert (len(split.train), len(split.eval)) == (stats["train_documents"], stats["eval_documents"]) == (
        len(trained), len(held))
    assert len(held) > 0
    sides: dict[str, set] = {}
    for doc in read_documents(dapt["data"]):
        sides.setdefault(doc.meta["patient_id"], set()).add(split.side(doc))
    assert all(len(s) == 1 for s in sides.values())
    # digests of id and text only: no text is in the file
    assert "unused text" not in (dapt["model"] / "split.json").read_text()


def test_the_audit_of_a_pretrained_model_takes_members_from_its_split(dapt, tmp_path):
    """Given the whole data file as --train, the documents of the patients pretraining held out
    are no members: counted as members they pull the AUC towards 0.5."""
    from domainfm.privacy_audit import audit_privacy

    report = audit_privacy(dapt["model"], dapt["data"], dapt["others"], tmp_path / "report", _audit_config()).report
    data, stats = report["data"], dapt["stats"]
    assert report["membership"]["members"] == stats["train_documents"]
    assert data["train_documents_left_out_not_trained_on"] == stats["eval_documents"] > 0
    assert data["group_check"]["split_key"] == "meta.patient_id"
    assert any("split.json" in w for w in report["warnings"])


class _RecordsTexts:
    """A language model that records the texts it is asked to score (loss: their length)."""

    objective = "mlm"
    scored: list[str] = []

    @classmethod
    def load(cls, *args, **kwargs):
        return cls()

    def document_losses(self, texts, **_):
        type(self).scored.extend(texts)
        return np.array([float(len(t)) for t in texts])


def test_the_audit_scores_the_field_the_model_was_trained_on_and_says_which(dapt, tmp_path, monkeypatch):
    from domainfm.privacy_audit import audit_privacy
    from domainfm.privacy_audit.lm import ScoringModel

    monkeypatch.setattr(ScoringModel, "load", _RecordsTexts.load)
    monkeypatch.setattr(_RecordsTexts, "scored", [])
    out = tmp_path / "report"
    report = audit_privacy(dapt["model"], dapt["data"], dapt["others"], out, _audit_config()).report
    summaries = {d.meta["summary"] for path in (dapt["data"], dapt["others"]) for d in _read(path)}
    assert _RecordsTexts.scored and set(_RecordsTexts.scored) <= summaries
    assert report["data"]["text_field"] == FIELD
    assert f"Scored field: {FIELD}" in (out / "summary.md").read_text()


def test_a_vault_cannot_be_probed_for_a_model_trained_on_a_meta_field(dapt, tmp_path):
    """The vault's originals sit in each document's text, which this model never read."""
    from domainfm.privacy_audit import audit_privacy

    with pytest.raises(ConfigError, match=r"trained on 'meta\.summary'.*--planted"):
        audit_privacy(dapt["model"], dapt["data"], dapt["others"], None, _audit_config(), vault=tmp_path / "vault")


def test_a_malformed_text_field_in_the_manifest_is_named(tmp_path):
    from domainfm.privacy_audit import audit_privacy

    model = tmp_path / "model"
    model.mkdir()
    (model / "manifest.json").write_text(json.dumps({"stage": "pretrain", "config": {"data": {"text_field": 3}}}))
    with pytest.raises(ConfigError, match=r"field 'config\.data\.text_field' must be 'text' or 'meta\.<key>'"):
        audit_privacy(model, [Document("a", "x")], [Document("b", "y")], None, _audit_config())


def _read(path: Path) -> list[Document]:
    from domainfm.corpus.io import read_documents

    return list(read_documents(path))
