"""The audit used the way a careless user or an abuser would: duplicate ids, scores that are not
probabilities, odd group values, numeric labels, markup in group names, a rare class in the
calibration split. Each case once gave a silent wrong number or a traceback."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_audit import FAST, LABELS, FakeScorer, make_docs

from domainfm.audit import AuditConfig, audit, run_audit
from domainfm.errors import ConfigError


def test_documents_sharing_an_id_keep_their_own_gold_label_and_text(tmp_path):
    docs = make_docs(30)
    unique = run_audit(FakeScorer(), docs, AuditConfig(group_by=["meta.sex"], **FAST))
    for d in docs[1:4]:
        d.id = docs[0].id  # four documents under one id, with different labels and texts
    shared = run_audit(FakeScorer(), docs, AuditConfig(group_by=["meta.sex"], **FAST))
    assert shared["data"]["label_distribution"] == unique["data"]["label_distribution"]
    assert shared["performance"]["overall"]["accuracy"] == unique["performance"]["overall"]["accuracy"]
    assert any("3 of 30 documents share their id" in w for w in shared["warnings"])

    # an unlabelled document under a labelled one's id is still unlabelled
    docs = make_docs(30)
    docs[1].id, docs[1].label = docs[0].id, None
    report = run_audit(FakeScorer(), docs, AuditConfig(group_by=["meta.sex"], **FAST))
    assert (report["data"]["n_labelled"], report["data"]["n_unlabelled"]) == (29, 1)

    # explained documents under one id: each example quotes its own text
    docs = make_docs(12)
    for i, d in enumerate(docs):
        d.id = "same"
        d.text = f"{'She' if i % 2 else 'He'} reports heart pain {'and cough ' * i}today."
    cfg = AuditConfig(group_by=["meta.sex"], explain=6, max_evals=20, **FAST)
    result = audit(FakeScorer(), docs, tmp_path / "r", cfg)
    shown = sorted("".join(s["text"] for s in ex["segments"]) for ex in result.report["explanations"]["examples"])
    assert len(set(shown)) == 6 and all(text in {d.text for d in docs} for text in shown)


class _Scores(FakeScorer):
    def __init__(self, change):
        self.change = change

    def predict_proba(self, texts):
        return self.change(super().predict_proba(texts))


def _nan(p):
    p[::3] = np.nan
    return p


def _inf(p):
    p[::4, 1] = np.inf
    return p


@pytest.mark.parametrize("change, message", [
    (_nan, r"NaN or infinite scores for 10 of 30 texts"),
    (_inf, r"NaN or infinite scores for 8 of 30 texts"),
    (lambda p: p * 5 - 2, r"not probabilities for 30 of 30 texts .*apply a softmax"),  # logits
    (lambda p: p * 0.5, r"not probabilities for 30 of 30 texts"),  # rows that do not sum to 1
])
def test_scores_that_are_not_probabilities_stop_the_audit(change, message):
    with pytest.raises(ConfigError, match=message):
        run_audit(_Scores(change), make_docs(30), AuditConfig(group_by=["meta.sex"], **FAST))


def test_a_nan_group_value_is_unknown_and_a_nested_one_is_refused():
    docs = make_docs(30)
    for d in docs[:5]:
        d.meta["sex"] = float("nan")  # pandas' missing value
    report = run_audit(FakeScorer(), docs, AuditConfig(group_by=["meta.sex"], **FAST))
    groups = report["performance"]["by_attribute"]["meta.sex"]["groups"]
    assert "nan" not in groups and groups["unknown"]["n"] == 5 + sum(1 for d in docs[5:] if "sex" not in d.meta)
    for value, kind in (({"code": "F"}, "nested object"), (["F", "M"], "list")):
        docs = make_docs(30)
        docs[3].meta["sex"] = value
        with pytest.raises(ConfigError, match=rf"group_by field 'meta.sex' holds a {kind} on some documents"):
            run_audit(FakeScorer(), docs, AuditConfig(group_by=["meta.sex"], **FAST))


def test_a_nan_gold_label_is_a_missing_one():
    docs = make_docs(30)
    docs[0].label = float("nan")
    report = run_audit(FakeScorer(), docs, AuditConfig(group_by=["meta.sex"], **FAST))
    assert report["data"]["n_unlabelled"] == 1 and report["data"]["n_labelled"] == 29


def test_a_scorer_with_numeric_labels_is_audited():
    class Numbered(FakeScorer):
        labels = [0, 1, 2]

    docs = make_docs(30)
    for d in docs:
        d.label = LABELS.index(d.label)  # JSONL "label": 2 reads as an int
    report = run_audit(Numbered(), docs, AuditConfig(group_by=["meta.sex"], **FAST))
    assert report["model"]["labels"] == ["0", "1", "2"] and report["data"]["n_labelled"] == 30


@pytest.mark.parametrize("value", ["$\\foo$", "$5-$10 copay", "a_b^c"])
def test_group_names_that_look_like_mathtext_are_plotted_as_written(tmp_path, value):
    docs = make_docs(30)
    for i, d in enumerate(docs):
        d.meta["payer"] = value if i % 2 else "self"
    result = audit(FakeScorer(), docs, tmp_path / "r", AuditConfig(group_by=["meta.payer"], **FAST))
    assert value in json.loads((tmp_path / "r" / "report.json").read_text())["data"]["attributes"]["meta.payer"]["groups"]
    assert result.html.is_file()


def test_the_temperature_is_fitted_on_a_split_stratified_by_label(monkeypatch):
    import domainfm.audit.runner as runner

    fitted = []

    def spy(probs, y):
        fitted.append(np.asarray(y).copy())
        return 1.0

    monkeypatch.setattr(runner, "fit_temperature_to_probs", spy)
    docs = make_docs(40)
    for i, d in enumerate(docs):
        d.label = "pulm" if i < 2 else ("cardio" if i % 2 else "neuro")  # a rare class of 2
    for seed in range(10):
        fitted.clear()
        report = run_audit(FakeScorer(), docs, AuditConfig(group_by=["meta.sex"], seed=seed, **FAST))
        validation = fitted[0]
        # every class on both sides (one of the rare class each), in about the calibration share
        assert set(validation.tolist()) == {0, 1, 2} and (validation == 2).sum() == 1, seed
        temperature = report["calibration"]["temperature"]
        assert temperature["n_validation"] == len(validation) == 13 and temperature["n_test"] == 27
