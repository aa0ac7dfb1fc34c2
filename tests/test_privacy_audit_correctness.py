"""The privacy audit's numbers, checked against their definitions with made-up data and fake
scorers (no model is trained here): AUC and TPR at low FPR against scikit-learn, the score
direction of both attacks, exposure ranks with ties, which documents count as members, and what
counts as a regurgitated identifier."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from domainfm.corpus import Document, Span, write_documents
from domainfm.privacy_audit import PrivacyAuditConfig, PrivacyGateConfig

# --------------------------------------------------------------------------------------------
# Membership inference: metrics and direction


@pytest.mark.parametrize("seed", range(5))
def test_auc_and_tpr_at_low_fpr_agree_with_sklearn_with_ties(seed):
    from sklearn.metrics import roc_auc_score, roc_curve

    from domainfm.privacy_audit.membership import roc_auc, tpr_at_fpr

    rng = np.random.default_rng(seed)
    n_m, n_n = rng.integers(20, 400, size=2)
    # rounded scores: many ties within and across the two sets
    members, nonmembers = np.round(rng.normal(0.7, 1, n_m), 1), np.round(rng.normal(0, 1, n_n), 1)
    y, s = np.r_[np.ones(n_m), np.zeros(n_n)], np.r_[members, nonmembers]
    assert roc_auc(members, nonmembers) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    assert tpr_at_fpr(members, nonmembers, 0.01) == pytest.approx(tpr[fpr <= 0.01].max(), abs=1e-12)


def test_both_attacks_score_members_as_more_likely_members():
    """Members have lower loss than the reference model gives them: both attacks reach AUC 1;
    reversed, both reach 0 (the direction is in the score, not in a flipped AUC)."""
    from domainfm.privacy_audit.membership import membership_inference

    rng = np.random.default_rng(0)
    difficulty_m, difficulty_n = rng.uniform(1, 5, 40), rng.uniform(1, 5, 40)  # how hard each text is
    # the trained model lowers its members' loss by 0.5 below the reference; the raw loss alone
    # hardly separates them (difficulty varies far more than 0.5)
    target = (difficulty_m - 0.5, difficulty_n)
    reference = (difficulty_m, difficulty_n)
    out = membership_inference(target, reference, n_bootstrap=0, seed=0)
    assert out["attacks"]["reference"]["auc"] == 1.0 and out["strongest"] == "reference" and out["auc"] == 1.0
    assert out["attacks"]["reference"]["tpr_at_1pct_fpr"] == 1.0
    assert out["attacks"]["loss"]["auc"] < 0.75
    flipped = membership_inference((difficulty_m + 0.5, difficulty_n), reference, n_bootstrap=0, seed=0)
    assert flipped["attacks"]["reference"]["auc"] == 0.0


def test_bootstrap_intervals_resample_each_side_at_its_own_size():
    from domainfm.privacy_audit.membership import attack_metrics

    members, nonmembers = np.arange(3.0), np.arange(100.0, 107.0)  # every non-member scores higher
    out = attack_metrics(members, nonmembers, n_bootstrap=200, rng=np.random.default_rng(0))
    # any resample keeps 3 members below 7 non-members: the interval is a point at 0
    assert out["auc"] == 0.0 and out["auc_ci"] == [0.0, 0.0] and out["tpr_at_1pct_fpr_ci"] == [0.0, 0.0]


# --------------------------------------------------------------------------------------------
# Canary exposure


class _FixedScores:
    """A scorer that gives the true secret ``own`` and every candidate ``other(i)``; one token
    per character, so every same-length candidate is kept."""

    def __init__(self, secret, own, other):
        self.secret, self.own, self.other = secret, own, other

    def span_token_counts(self, texts, spans):
        return np.array([b - a for a, b in spans])

    def span_logprobs(self, texts, spans):
        return np.array([self.own if t[a:b] == self.secret else self.other(i)
                         for i, (t, (a, b)) in enumerate(zip(texts, spans))])


def _canary():
    from domainfm.privacy_audit.canaries import Canary

    return Canary("mrn-0", "mrn", 4, "The medical record number on file is ", "4821937", ".")


@pytest.mark.parametrize("own, other, rank", [
    (0.0, lambda i: -1.0, 1),                     # first of 100
    (-1.0, lambda i: 0.0, 100),                   # last
    (0.0, lambda i: 0.0, 50.5),                   # all tied: the mid-rank, not first
    (0.0, lambda i: 1.0 if i <= 9 else -1.0, 10),  # rows 1-9: 9 candidates above it
    (0.0, lambda i: 0.0 if i <= 10 else -1.0, 6),  # tied with 10: 1 + 10/2
])
def test_exposure_is_log2_candidates_minus_log2_mid_rank(own, other, rank):
    from domainfm.privacy_audit.exposure import canary_exposure

    canary = _canary()
    out = canary_exposure(_FixedScores(canary.secret, own, other), canary, n_candidates=99, seed=1)
    assert out["candidates"] == 99 and out["rank"] == rank
    assert out["max_exposure"] == pytest.approx(math.log2(100), abs=1e-4)
    assert out["exposure"] == pytest.approx(math.log2(100) - math.log2(rank), abs=1e-4)


def test_reference_secrets_are_distinct_same_format_and_never_the_canary():
    from domainfm.privacy_audit.canaries import reference_secrets

    canary = _canary()
    out = reference_secrets(canary, 500, random.Random(0), accept=lambda s: True)
    assert len(out) == len(set(out)) == 500 and canary.secret not in out
    assert all(len(s) == 7 and s.isdigit() and s[0] != "0" for s in out)


def test_canaries_are_inserted_repeats_times_in_finetuning():
    from types import SimpleNamespace

    from domainfm.finetune.canaries import canary_documents
    from domainfm.privacy_audit import CanaryConfig

    cfg = SimpleNamespace(canaries=CanaryConfig(enabled=True, repeats=[1, 4, 16], per_repeat=2, formats=["mrn"]),
                          train=SimpleNamespace(seed=3), task="classification",
                          data=SimpleNamespace(text_field="text"), label_field="label")
    docs, records = canary_documents(cfg, ["a", "b", "c"])
    assert len(records) == 6 and len(docs) == 2 * (1 + 4 + 16)
    for rec in records:
        text = rec["prefix"] + rec["secret"] + rec["suffix"]
        copies = [d for d in docs if d.text == text]
        assert len(copies) == rec["repeats"] and {d.label for d in copies} == {rec["label"]}


# --------------------------------------------------------------------------------------------
# Members are the documents the model trained on, by its recorded split


class _MemorisingClassifier:
    """A classifier that knows its training documents exactly: loss 0 on them, 2 on any other."""

    objective = "task:classification"
    label_field = "label"

    def __init__(self, trained_texts):
        self.trained = set(trained_texts)

    def gold_status(self, doc):
        return "known", None

    def document_losses(self, docs, **_):
        return np.array([0.0 if d.text in self.trained else 2.0 for d in docs])


def _note(prefix, i):
    return Document(f"{prefix}{i}", f"note {prefix} {i}: " + " ".join(random.Random(f"{prefix}{i}").choices(
        ["pain", "stable", "fever", "rash", "cough", "follow-up"], k=12)), label="a")


def test_classifier_members_are_the_documents_its_split_records_as_trained_on(tmp_path, monkeypatch):
    """``finetune`` holds out ``eval_fraction`` of its training file and records the split: given
    that whole file as --train, the documents it only evaluated on are no members, and a held-out
    document it trained on is no non-member. Counting them dilutes the AUC towards 0.5."""
    from domainfm.finetune.split import record_split
    from domainfm.inference import TASK_FILE
    from domainfm.privacy_audit import audit_privacy
    from domainfm.privacy_audit.task_scorer import TaskScorer

    trained, evaluated, others = ([_note(p, i) for i in range(n)] for p, n in (("t", 20), ("e", 20), ("o", 20)))
    model = tmp_path / "model"
    model.mkdir()
    (model / TASK_FILE).write_text("{}")
    record_split(model, trained, evaluated, {"split_key": None}, seed=0)
    monkeypatch.setattr(TaskScorer, "load", classmethod(
        lambda cls, *a, **k: _MemorisingClassifier([d.text for d in trained])))
    train, holdout = tmp_path / "train.jsonl", tmp_path / "holdout.jsonl"
    write_documents(train, trained + evaluated)  # the task's whole training file
    write_documents(holdout, others)
    cfg = PrivacyAuditConfig(n_bootstrap=0, split_key="id",
                             gate=PrivacyGateConfig(max_exposure=None, max_mia_auc=0.8, max_regurgitated=None))
    report = audit_privacy(model, train, holdout, None, cfg).report
    # counted as members, the 20 evaluation documents would give AUC 0.75 and pass this gate
    assert report["membership"]["members"] == 20 and report["membership"]["auc"] == 1.0
    assert report["data"]["train_documents_left_out_not_trained_on"] == 20
    assert not report["gate"]["passed"]
    # a held-out file that holds documents the model trained on (ids and texts as recorded)
    write_documents(train, trained[5:] + evaluated)
    write_documents(holdout, others + trained[:5])
    report = audit_privacy(model, train, holdout, None, cfg).report
    data = report["data"]
    assert data["holdout_documents_left_out_trained_on"] == 5 and data["train_documents_left_out_not_trained_on"] == 20
    assert report["membership"]["members"] == 15 and report["membership"]["nonmembers"] == 20
    assert report["membership"]["auc"] == 1.0
    for side in ("train", "holdout"):
        left_out = sum(v for k, v in data.items() if k.startswith(f"{side}_documents_left_out_"))
        assert data[f"{side}_documents_read"] == data[f"{side}_documents"] + left_out
    assert any("split.json" in w for w in report["warnings"])
    # a control model (its split knows none of them) is audited on the documents as given
    write_documents(train, others)
    write_documents(holdout, [_note("n", i) for i in range(20)])
    control = audit_privacy(model, train, holdout, None, cfg).report
    assert control["membership"]["members"] == 20 and control["data"]["train_documents_left_out_not_trained_on"] == 0
    assert any("records none of the 20 training documents" in w for w in control["warnings"])


def test_a_held_out_copy_of_a_training_text_with_other_white_space_is_no_non_member(tmp_path, monkeypatch):
    """A training note exported again with another line ending or spacing is the text the model
    trained on (the same words in the same order), not a held-out one."""
    from domainfm.inference import TASK_FILE
    from domainfm.privacy_audit import audit_privacy
    from domainfm.privacy_audit.task_scorer import TaskScorer

    trained, others = [_note("t", i) for i in range(20)], [_note("o", i) for i in range(20)]
    model = tmp_path / "model"
    model.mkdir()
    (model / TASK_FILE).write_text("{}")

    class ReadsWords(_MemorisingClassifier):
        def document_losses(self, docs, **_):
            return super().document_losses([Document(d.id, " ".join(d.text.split())) for d in docs])

    monkeypatch.setattr(TaskScorer, "load", classmethod(lambda cls, *a, **k: ReadsWords([d.text for d in trained])))
    copies = [Document(f"c{i}", d.text.replace(" ", "  ", 1) + "\r\n", label="a") for i, d in enumerate(trained[:5])]
    train, holdout = tmp_path / "train.jsonl", tmp_path / "holdout.jsonl"
    write_documents(train, trained)
    write_documents(holdout, others + copies)
    cfg = PrivacyAuditConfig(n_bootstrap=0, split_key="id",
                             gate=PrivacyGateConfig(max_exposure=None, max_mia_auc=0.6, max_regurgitated=None))
    report = audit_privacy(model, train, holdout, None, cfg).report
    assert report["data"]["holdout_documents_left_out_as_training_texts"] == 5
    assert report["membership"]["nonmembers"] == 20 and report["membership"]["auc"] == 1.0


# --------------------------------------------------------------------------------------------
# Regurgitation: a copy from the probe's own context is no memorisation


class _CopiesFromContext:
    """A model with no memory at all that fills a gap with whatever the visible text repeats
    (case and spacing ignored, as an uncased tokenizer does); one token per character."""

    def span_token_counts(self, texts, spans):
        return np.array([b - a for a, b in spans])

    def span_logprobs(self, texts, spans):
        def norm(s):
            return " ".join(s.casefold().split())

        return np.array([1.0 if norm(t[a:b]) in norm(t[:a] + " | " + t[b:]) else 0.0 for t, (a, b) in zip(texts, spans)])


@pytest.mark.parametrize("context", [
    "MRN 4821937 admitted; labels printed for MRN 4821937 today",
    "Seen by Ambrose Vance today. AMBROSE  VANCE signed the note",  # other case, other spacing
])
def test_an_identifier_repeated_in_its_own_context_is_not_counted_as_regurgitated(context):
    from domainfm.privacy_audit.regurgitation import Probe, regurgitation_scan

    value = context.split()[1] if context.startswith("MRN") else "Ambrose Vance"
    start = context.index(value)
    probes = [Probe(context, start, start + len(value), "MRN")] * 30

    def alternatives(probe, n):  # same length, never in the context
        return [f"{k:0{len(probe.value)}d}" if probe.value.isdigit() else f"Zed{k:0{len(probe.value) - 3}d}"
                for k in range(1, n + 1)]

    result = regurgitation_scan(_CopiesFromContext(), probes, n_candidates=9, max_probes=100, seed=1,
                                alternatives=alternatives)
    assert result["regurgitated"] == 0 and result["beyond_chance"] == 0
    assert result["skipped"]["identifier_also_in_its_context"] == 30 and result["scored"] == 0
    assert result["probes"] == result["scored"] + sum(result["skipped"].values())
    # the same identifier once in its context is scored as before
    once = Probe(f"MRN {'4821937'} admitted today", 4, 11, "MRN")
    result = regurgitation_scan(_CopiesFromContext(), [once] * 30, n_candidates=9, max_probes=100, seed=1,
                                alternatives=alternatives)
    assert result["scored"] == 30 and result["skipped"]["identifier_also_in_its_context"] == 0


@pytest.mark.parametrize("n_trained, n_held, rate", [(100, 20, 0.25), (78, 80, 0.3)])
def test_the_held_out_baseline_fails_a_model_that_memorised_nothing_in_about_1_percent_of_audits(
        n_trained, n_held, rate):
    """``max_regurgitated`` counts training originals ranked first beyond what chance gives in 99%
    of audits. Against held-out originals, chance includes the held-out rate's own sampling error:
    a binomial at the measured rate failed such a model in 14% (20 held-out) and 4% (80) of audits."""
    from domainfm.privacy_audit.regurgitation import calibrate_with_holdout

    from collections import Counter

    rng = np.random.default_rng(0)
    audits = 2000
    outcomes = Counter(zip(rng.binomial(n_trained, rate, audits).tolist(), rng.binomial(n_held, rate, audits).tolist()))
    failed = sum(n for (r_trained, r_held), n in outcomes.items() if calibrate_with_holdout(
        {"probes": n_trained, "scored": n_trained, "regurgitated": r_trained},
        {"probes": n_held, "scored": n_held, "regurgitated": r_held})["beyond_chance"] > 0)
    assert failed / audits < 0.015
    # ... and a model that ranks its training originals first far more often is still caught
    flagged = calibrate_with_holdout({"probes": 78, "scored": 78, "regurgitated": 40},
                                     {"probes": 80, "scored": 80, "regurgitated": 21})
    assert flagged["beyond_chance"] > 0
