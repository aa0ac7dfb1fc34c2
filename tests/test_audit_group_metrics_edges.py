"""Edges of the audit's per-group numbers: an NER group with nothing to find, the temperature split
against the bootstrap count, and the n of the maximum calibration error. Each once gave a number
that looked measured but was not, or moved when an unrelated setting changed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_audit import FAST, FakeScorer, make_docs

from domainfm.audit import AuditConfig, audit, run_audit
from domainfm.corpus.document import Document, Span

TEXT = "Seen by Dr Lee on Monday with Ann."


def _ner_report(site_b_predicts: bool):
    """Three sites: A and C have gold entities (A found in full, C half), B has none; B's
    documents get a false positive when ``site_b_predicts``."""
    from domainfm.audit.ner import run_ner_audit

    docs = []
    for i in range(18):
        site = "ABC"[i % 3]
        spans = [] if site == "B" else [Span(11, 14, "DOCTOR"), Span(30, 33, "PATIENT")]
        docs.append(Document(id=f"n{i}", text=TEXT, meta={"site": site}, spans=spans))

    def predict(ds):
        out = []
        for d in ds:
            site = d.meta["site"]
            if site == "A":
                out.append([Span(11, 14, "DOCTOR"), Span(30, 33, "PATIENT")])
            elif site == "C":
                out.append([Span(11, 14, "DOCTOR")])
            else:
                out.append([Span(11, 14, "DOCTOR")] if site_b_predicts else [])
        return out

    cfg = AuditConfig(group_by=["meta.site"], n_bootstrap=20, min_group_size=2, counterfactuals=[])
    return run_ner_audit(predict, ["DOCTOR", "PATIENT"], docs, cfg, "fake")


def _rendered(report, out):
    from domainfm.audit.report import write_report
    from domainfm.audit.summary import findings

    report["privacy"].update(statement="unknown", audit_data_deidentified=False)
    report["summary"] = findings(report)
    write_report(report, out)
    return json.loads((out / "report.json").read_text()), (out / "index.html").read_text(encoding="utf-8")


def test_ner_group_with_no_gold_and_no_predictions_is_not_measured(tmp_path):
    report = _ner_report(site_b_predicts=False)
    section = report["performance"]["by_attribute"]["meta.site"]
    b = section["groups"]["B"]
    assert b["f1"] is None and b["precision"] is None and b["recall"] is None and b["ci"]["f1"] is None
    assert b["n"] == 6
    for scope in ("all_groups", "reliable_groups"):
        gaps = section["gaps"][scope]
        # B is not the worst group at 0: it is left out of the comparison, and named as left out
        assert gaps["groups"] == ["A", "C"] and gaps["not_measured"] == ["B"]
        assert gaps["worst_group"] == "C"
        assert gaps["worst_group_f1"] == section["groups"]["C"]["f1"] == pytest.approx(2 / 3, abs=1e-4)
        assert gaps["f1_difference"] == pytest.approx(1 - 2 / 3, abs=1e-4)

    saved, html = _rendered(report, tmp_path / "ner")
    assert saved["performance"]["by_attribute"]["meta.site"]["groups"]["B"]["f1"] is None
    assert "not measured: no gold or predicted entity" in html and "not measured: B (n=6)" in html
    assert "'C' at 0.667" in " ".join(f["text"] for f in saved["summary"])
    card = (tmp_path / "ner" / "model_card.md").read_text()
    assert "F1 not measured: B, n=6" in card

    from domainfm.audit.cards import write_cards
    from domainfm.audit.cards.evidence import Evidence
    from domainfm.audit.cards.facts import bias_examination

    ev = Evidence(tmp_path / "ner")
    assert ev.not_measured() == {"meta.site": {"B": 6}}
    assert "F1 n/a, not measured" in bias_examination(ev).text and "B (n=6)" in bias_examination(ev).text
    assert all("meta.site=B" not in m.label for m in ev.metrics())  # no F1 of 0 for B in the cards
    write_cards(tmp_path / "ner", "all")
    assert "B (n=6)" in (tmp_path / "ner" / "fda_model_card.md").read_text()


def test_ner_group_with_predictions_but_no_gold_has_precision_0_and_no_recall():
    report = _ner_report(site_b_predicts=True)
    section = report["performance"]["by_attribute"]["meta.site"]
    b = section["groups"]["B"]
    # every prediction is a false positive: precision and F1 are 0 (measured), recall has nothing to recall
    assert b["precision"] == 0 and b["recall"] is None and b["f1"] == 0
    gaps = section["gaps"]["all_groups"]
    assert gaps["groups"] == ["A", "B", "C"] and gaps["not_measured"] == []
    assert gaps["worst_group"] == "B" and gaps["f1_difference"] == pytest.approx(1.0)


def test_ner_audit_with_no_entity_anywhere_renders(tmp_path):
    from domainfm.audit.ner import run_ner_audit

    docs = [Document(id=f"n{i}", text=TEXT, meta={"site": "AB"[i % 2]}, spans=[]) for i in range(6)]
    report = run_ner_audit(lambda ds: [[] for _ in ds], ["DOCTOR"], docs,
                           AuditConfig(group_by=["meta.site"], n_bootstrap=10, min_group_size=2,
                                       counterfactuals=[]), "fake")
    assert report["performance"]["overall"]["f1"] is None and report["performance"]["overall"]["ci"]["f1"] is None
    gaps = report["performance"]["by_attribute"]["meta.site"]["gaps"]["all_groups"]
    assert gaps["groups"] == [] and gaps["worst_group"] is None and gaps["f1_difference"] is None
    saved, _ = _rendered(report, tmp_path / "ner")
    assert "not measured" in saved["summary"][0]["text"]


def test_ner_bootstrap_leaves_out_resamples_without_any_entity():
    from domainfm.audit.ner import _ci

    # one document of two has an entity (found): a resample of the other twice has no F1, not F1 0
    counts = np.array([[1, 1, 1], [0, 0, 0]])
    ci, kept = _ci(counts, AuditConfig(n_bootstrap=200, seed=0), np.random.default_rng(0))
    assert ci == [1.0, 1.0]
    # about a quarter of the resamples draw the empty document twice: left out, and counted
    assert 120 < kept < 180, kept


def test_the_temperature_split_does_not_depend_on_the_bootstrap_count(monkeypatch):
    import domainfm.audit.runner as runner

    fitted = []
    real = runner.fit_temperature_to_probs

    def spy(probs, y):
        fitted.append(np.asarray(probs).copy())
        return real(probs, y)

    monkeypatch.setattr(runner, "fit_temperature_to_probs", spy)
    docs = make_docs(40)
    temperatures = []
    for n_bootstrap in (0, 20, 50):
        cfg = AuditConfig(group_by=["meta.sex"], **{**FAST, "n_bootstrap": n_bootstrap, "counterfactuals": []})
        temperatures.append(run_audit(FakeScorer(), docs, cfg)["calibration"]["temperature"])
    assert all(np.array_equal(fitted[0], f) for f in fitted[1:])
    assert temperatures[0] == temperatures[1] == temperatures[2]


def test_mce_comes_with_the_n_of_its_bin():
    from domainfm.metrics import reliability

    # bin (0.4, 0.6]: 3 predictions, 1 right (gap |1/3 - 0.5|); bin (0.8, 1.0]: 2, both right (gap 0.1)
    r = reliability(np.array([0.5, 0.5, 0.5, 0.9, 0.9]), np.array([1, 0, 0, 1, 1]), n_bins=5)
    assert r["mce"] == pytest.approx(0.5 - 1 / 3) and r["mce_n"] == 3 and r["n"] == 5
    assert reliability(np.zeros(0), np.zeros(0))["mce_n"] is None


def test_mce_row_gives_its_n_in_the_report_and_the_cards(tmp_path):
    from domainfm.audit.cards import write_cards
    from domainfm.audit.cards.evidence import Evidence

    audit(FakeScorer(), make_docs(40), tmp_path / "r",
          AuditConfig(group_by=["meta.sex"], **{**FAST, "n_bootstrap": 10, "counterfactuals": []}))
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    overall = report["calibration"]["overall"]
    assert isinstance(overall["mce_n"], int) and 1 <= overall["mce_n"] <= overall["n"]
    html = (tmp_path / "r" / "index.html").read_text(encoding="utf-8")
    assert f'(n = <span class="num">{overall["mce_n"]}</span> of <span class="num">{overall["n"]}</span>' in html
    rows = {m.label: m for m in Evidence(tmp_path / "r").metrics()}
    assert rows["maximum calibration error"].n == overall["mce_n"]
    assert rows["expected calibration error"].n == overall["n"]
    write_cards(tmp_path / "r", "all")
    cards = json.loads((tmp_path / "r" / "annex_iv.json").read_text())
    mce = [m for s in cards["sections"] for m in s["metrics"] if m["label"] == "maximum calibration error"]
    assert mce and all(m["n"] == overall["mce_n"] for m in mce)
