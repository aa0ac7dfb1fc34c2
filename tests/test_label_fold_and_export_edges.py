"""Labeling edges: a multi-label column constant in a calibration fold (its out-of-fold logits
and the temperature), and ``label serve``'s ``/train`` export withdrawing what Label Studio deleted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from domainfm.label import LabelConfig
from domainfm.label.methods import CVResult, cross_validate, cv_splits, fit_head
from domainfm.label.serve import Backend

from test_label_serve_correctness import CONFIG, NOTES, _marked, _post, _project, _stored
from test_label_serve import _served


# ------------------------------------------------------------------ a constant column in a fold

def _multilabel_seeds():
    """12 seeds, labels 0 and 1 on half of them each (separable), label 2 on seed 4 only."""
    rng = np.random.default_rng(0)
    Y = np.zeros((12, 3), dtype=int)
    Y[:6, 0] = 1
    Y[3:9, 1] = 1
    Y[4, 2] = 1
    X = rng.normal(size=(12, 8)) + 1.5 * Y[:, :2] @ rng.normal(size=(2, 8))
    return X, Y


def test_a_label_no_training_seed_of_the_fold_had_gets_its_base_rate_not_a_30_logit():
    # the fold holding out seed 4 trains on seeds none of which has label 2: its logit was -30,
    # so seed 4 got p ~0.01 for a label it has, and the temperature went from 0.9 to 6.4 to soften
    # that one cell, flattening every label
    X, Y = _multilabel_seeds()
    cfg = LabelConfig(self_training=0, lsa_dims=0)
    cv = cross_validate(X, Y, None, multilabel=True, n_classes=3, cfg=cfg)
    without = cross_validate(X, Y[:, :2], None, multilabel=True, n_classes=2, cfg=cfg)
    assert cv.temperature == pytest.approx(without.temperature, rel=0.25)
    (train,) = [tr for tr, te in cv_splits(Y, True, cfg.cv_folds, cfg.seed) if 4 in te]
    # no training seed has it: the rule of succession, 1 / (n + 2), and the temperature leaves it be
    assert cv.probs[4, 2] == pytest.approx(1 / (len(train) + 2))
    assert cv.prior is not None and cv.prior[4, 2] and cv.prior[:, 2].sum() == len(Y) - len(train)
    assert not cv.prior[:, :2].any()


def test_the_final_head_gives_a_label_every_seed_has_or_none_has_the_base_rate_its_folds_did():
    # sklearn refused the constant column (ValueError: one class), so the head could not be fitted
    X, Y = _multilabel_seeds()
    Y = np.column_stack([Y[:, :2], np.zeros(len(Y), dtype=int), np.ones(len(Y), dtype=int)])
    cv = CVResult(np.zeros(Y.shape), np.zeros(Y.shape), temperature=3.0, C=1.0, folds=2)
    head = fit_head(X, Y, None, ["a", "b", "none", "all"], multilabel=True, cv=cv,
                    cfg=LabelConfig(self_training=0, lsa_dims=0))
    probs = head.predict_proba(X[:3])
    assert probs[:, 2] == pytest.approx([1 / 14] * 3)  # not rescaled by the temperature either
    assert probs[:, 3] == pytest.approx([13 / 14] * 3)
    assert 0 < probs[:, :2].min() and probs[:, :2].max() < 1


# ------------------------------------------------------------------ /train: the export is the truth

@pytest.fixture()
def no_training(monkeypatch):
    monkeypatch.setattr(Backend, "request_training", lambda self: None)


def _task(task_id: int, note: int, annotation_id: int, project: int = 2) -> dict:
    """A task as Label Studio's export serializer sends it to /train."""
    return {"id": task_id, "project": project, "data": {"text": NOTES[note]}, "predictions": [], "drafts": [],
            "annotations": [{"id": annotation_id, "completed_by": 1, "was_cancelled": False, "task": task_id,
                             "result": _marked(NOTES[note], "asthma" if note < 3 else "migraine")}]}


def test_train_export_withdraws_the_annotations_of_tasks_deleted_in_label_studio(tmp_path: Path, no_training):
    project = _project(tmp_path)
    backend = Backend(project)
    with _served(backend) as base:
        train = base + "/train"
        status, body = _post(train, {"annotations": [_task(7, 0, 31), _task(8, 1, 32)], "project": "2.1700000000",
                                     "label_config": CONFIG})
        assert status == 201 and body["stored"] == 2, body
        # another project's annotation on the same backend: no export of project 2 speaks for it
        backend.add_annotation({"project": {"id": 3, "label_config": CONFIG}, "task": _task(5, 3, 51, project=3)})
        assert set(_stored(project)) == {"ls-2-7", "ls-2-8", "ls-3-5"}
        # task 8 deleted in Label Studio: the next export no longer holds it (it was learnt from still)
        status, body = _post(train, {"annotations": [_task(7, 0, 31)], "project": "2.1700000000",
                                     "label_config": CONFIG})
        assert status == 201 and body["withdrawn"] == 1, body
        assert set(_stored(project)) == {"ls-2-7", "ls-3-5"}
        assert json.loads((project / "backend.json").read_text())["annotated_documents"] == 2
        # a partial list (annotation objects each with their task) is no export: it withdraws nothing
        status, body = _post(train, {"annotations": [{**_task(9, 2, 33)["annotations"][0],
                                                      "task": _task(9, 2, 33)}], "project": "2.1700000000"})
        assert status == 201 and body["withdrawn"] == 0 and set(_stored(project)) == {"ls-2-7", "ls-2-9", "ls-3-5"}
        # nor does a body without the export's list, or without a project id
        for partial in ({"project": "2.1700000000"}, {"annotations": [_task(7, 0, 31)]},
                        {"annotations": [_task(7, 0, 31)], "project": "not-an-id"}):
            status, body = _post(train, partial)
            assert status == 201 and body["withdrawn"] == 0, (partial, body)
        # every annotated task of project 2 deleted: Label Studio sends an empty export
        status, body = _post(train, {"annotations": [], "project": "2.1700000000"})
        assert status == 201 and body["withdrawn"] == 2, body
    assert set(_stored(project)) == {"ls-3-5"}
