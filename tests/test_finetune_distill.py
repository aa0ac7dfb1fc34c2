"""Knowledge distillation (``distill:``): the loss's arithmetic, a student that moves toward its
teacher, the provenance it records, and the errors for a teacher that does not fit."""

from __future__ import annotations

import json
import math

import pytest

from domainfm.config import ConfigError, load_config
from domainfm.corpus import read_documents, write_documents
from domainfm.finetune import TaskConfig, finetune
from domainfm.finetune.distill import DistillConfig, mixed_loss


def _cfg(train, model_dir, **overrides) -> TaskConfig:
    base = {
        "task": "ner", "model.name": str(model_dir), "model.max_length": 64, "data.train": str(train),
        "data.eval_fraction": 0.25, "labels.names": ["DATE", "DOCTOR"], "long_documents.strategy": "truncate",
        "train.full_finetune": True, "train.lr": 5e-3, "train.max_steps": 6, "train.batch_size": 8,
        "train.eval_batch_size": 32, "allow_identified_data": True,
    }
    return load_config(TaskConfig, overrides={**base, **overrides})


@pytest.fixture(scope="module")
def ner_notes(tmp_path_factory, clinical_corpus):
    path = tmp_path_factory.mktemp("distill") / "ner.jsonl"
    write_documents(path, list(read_documents(clinical_corpus))[:24])
    return path


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, ner_notes, tiny_model_dir):
    out = tmp_path_factory.mktemp("teacher") / "model"
    finetune(_cfg(ner_notes, tiny_model_dir), out)
    return out


def test_the_loss_mixes_gold_and_teacher_as_configured():
    import torch
    import torch.nn.functional as F

    cfg = DistillConfig(teacher="t", weight=0.25, temperature=2.0)
    gold = torch.tensor(1.5)
    student = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    labels = torch.tensor([0, 1])
    # the same scores on both sides: only the gold share is left
    assert math.isclose(mixed_loss(gold, student, student.clone(), labels, "classification", cfg).item(), 0.75 * 1.5)
    teacher = torch.tensor([[0.0, 2.0, 0.0], [1.0, -1.0, 0.0]])
    p, q = F.softmax(teacher / 2, -1), F.softmax(student / 2, -1)
    kl = (p * (p.log() - q.log())).sum(-1).mean().item()
    got = mixed_loss(gold, student, teacher, labels, "classification", cfg).item()
    assert math.isclose(got, 0.75 * 1.5 + 0.25 * 4 * kl, rel_tol=1e-5)


def test_ner_compares_only_the_labelled_sub_tokens():
    import torch

    cfg = DistillConfig(teacher="t", weight=1.0, temperature=1.0)
    student = torch.zeros(1, 3, 5)
    teacher = torch.zeros(1, 3, 5)
    teacher[0, 1] = torch.tensor([9.0, 0, 0, 0, 0])  # differs where the label is ignored (-100)
    labels = torch.tensor([[0, -100, 2]])
    assert mixed_loss(torch.tensor(0.3), student, teacher, labels, "ner", cfg).item() == 0.0
    teacher[0, 2] = torch.tensor([9.0, 0, 0, 0, 0])
    p = torch.softmax(teacher[0, 2], -1)
    one = (p * (p.log() - math.log(1 / 5))).sum().item()  # against the student's uniform scores
    # the mean over the two labelled positions, one of which now differs
    assert math.isclose(mixed_loss(torch.tensor(0.3), student, teacher, labels, "ner", cfg).item(), one / 2,
                        rel_tol=1e-5)


def test_a_student_learns_its_teachers_outputs_and_records_the_teacher(tmp_path, ner_notes, tiny_model_dir, teacher):
    import numpy as np
    from scipy.special import log_softmax

    from domainfm.finetune.data import encode_documents
    from domainfm.inference.predict import load_task_model, score_features

    # a teacher that has learned nothing (its scores are not the gold labels'): a student that
    # learns from it must end up nearer to it than a student of the gold labels does
    blank = tmp_path / "blank"
    finetune(_cfg(ner_notes, tiny_model_dir, **{"train.lr": 1e-12, "train.max_steps": 1}), blank)
    student = _cfg(ner_notes, tiny_model_dir, **{"model.num_layers": 1, "distill.teacher": str(blank),
                                                  "distill.weight": 1.0, "distill.temperature": 1.0,
                                                  "train.max_steps": 12})
    gold_only = _cfg(ner_notes, tiny_model_dir, **{"model.num_layers": 1, "train.max_steps": 12})
    result = finetune(student, tmp_path / "student")
    finetune(gold_only, tmp_path / "gold_only")

    record = result.metrics["data"]["distill"]
    assert record["teacher"] == str(blank) and record["weight"] == 1.0
    assert record["sequences_scored"] == result.metrics["data"]["train"]["sequences"] > 0
    assert len(record["teacher_manifest_sha256"]) == 64
    manifest = json.loads((tmp_path / "student" / "manifest.json").read_text())
    assert manifest["distill"]["teacher"] == str(blank)

    def scores(folder):
        tm = load_task_model(folder)
        enc = encode_documents(list(read_documents(ner_notes)), task="ner", tokenizer=tm.tokenizer, max_length=64,
                               long_documents=student.long_documents, label_map=tm.label_map, label_field="spans")
        return score_features(tm.model, enc.features, pad_id=tm.tokenizer.pad_token_id), enc.features

    target, features = scores(blank)

    def divergence(folder):
        got, _ = scores(folder)
        total = 0.0
        for t, s, f in zip(target, got, features):
            keep = np.asarray(f.label) != -100
            p = log_softmax(t[keep], -1)
            total += float((np.exp(p) * (p - log_softmax(s[keep], -1))).sum())
        return total

    near, far = divergence(tmp_path / "student"), divergence(tmp_path / "gold_only")
    assert near < 0.25 * far


def test_a_teacher_that_does_not_fit_stops_before_training(tmp_path, ner_notes, tiny_model_dir, teacher):
    other_labels = _cfg(ner_notes, tiny_model_dir, **{"labels.names": ["DATE"], "distill.teacher": str(teacher)})
    with pytest.raises(ConfigError, match=r"distill.teacher: .* trained on labels \['DATE', 'DOCTOR'\]"):
        finetune(other_labels, tmp_path / "a")
    assert not (tmp_path / "a").exists()  # the output folder is not touched
    with pytest.raises(ConfigError, match="distill.teacher: .* is not a folder"):
        finetune(_cfg(ner_notes, tiny_model_dir, **{"distill.teacher": str(tmp_path / "nowhere")}), tmp_path / "b")


@pytest.mark.parametrize("overrides, message", [
    ({"distill.weight": 0}, r"distill.weight must be in \(0, 1\]"),
    ({"distill.weight": 1.5}, r"distill.weight must be in \(0, 1\]"),
    ({"distill.temperature": 0}, "distill.temperature must be > 0"),
    ({"distill.teacher": ""}, "distill.teacher must be a domainfm finetune output folder"),
])
def test_config_errors_name_the_field(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        _cfg(tmp_path / "x.jsonl", tmp_path, **overrides)
