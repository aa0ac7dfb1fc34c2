"""The audit's numbers against independent computations (fairlearn, seqeval's definition, numpy by
hand) on made-up predictions, for the cases where they once disagreed."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from domainfm.audit.config import AuditConfig
from domainfm.audit.metrics import fairness_gaps, group_metrics
from domainfm.corpus.document import Document, Span
from domainfm.metrics import entity_metrics, reliability


# ---------------------------------------------------------------------------------------------
# Calibration


@pytest.mark.parametrize("n_bins", [6, 7, 12, 14, 17])
def test_reliability_bins_are_right_closed_at_every_edge(n_bins):
    # a confidence of exactly m/M (5 of 6 votes, say) belongs to the bin ((m-1)/M, m/M]; edges
    # from np.linspace fall one ulp short of m/M for these M and sent it one bin up
    conf = np.arange(1, n_bins + 1) / n_bins
    r = reliability(conf, np.ones(n_bins), n_bins)
    assert [b["n"] for b in r["bins"]] == [1] * n_bins
    for m, b in enumerate(r["bins"], start=1):
        assert b["lo"] < b["confidence"] <= b["hi"], (m, b)
    # every bin holds its own edge: ECE is the mean gap 1 - m/M, MCE the first bin's
    assert r["ece"] == pytest.approx(np.mean(1 - conf))
    assert r["mce"] == pytest.approx(1 - 1 / n_bins)


def test_summary_compares_temperature_scaling_on_the_same_documents():
    from domainfm.audit.summary import findings

    def rel(ece):
        return {"n": 10, "ece": ece, "mce": ece, "bins": []}

    # ECE over all documents 0.300; on the held-out part 0.150 before and 0.120 after: scaling
    # moved it by 0.030, and "changes it to 0.120" after the 0.300 would claim 0.180
    report = {"model": {"task": "classification"},
              "performance": {"overall": {"accuracy": 0.5, "macro_f1": 0.5, "n": 40, "ci": {"accuracy": None}},
                              "by_attribute": {}},
              "calibration": {"overall": rel(0.3), "temperature": {
                  "fitted": True, "temperature": 1.5, "at_search_bound": None, "before": rel(0.15),
                  "after": rel(0.12)}}}
    text = next(f["text"] for f in findings(report) if f["key"] == "calibration.overall.ece")
    assert text.startswith("Expected calibration error is 0.300")
    assert "from 0.150 to 0.120" in text and "held-out" in text


# ---------------------------------------------------------------------------------------------
# Fairness


def _groups(y_true, y_pred, sens, labels):
    y_true, y_pred, sens = np.asarray(y_true), np.asarray(y_pred), np.asarray(sens)
    return {g: group_metrics(y_true[sens == g], y_pred[sens == g], labels) for g in sorted(set(sens.tolist()))}


def test_demographic_parity_ratio_without_any_selection_is_undefined_as_in_fairlearn():
    from fairlearn.metrics import demographic_parity_ratio

    labels = ["a", "b", "c"]
    # no group has a document predicted "c": the ratio of selection rates is 0/0
    y_true = [0, 1, 2, 0, 1, 2, 0, 1]
    y_pred = [0, 1, 0, 0, 0, 1, 1, 1]
    sens = ["F", "F", "F", "F", "M", "M", "M", "M"]
    gaps = fairness_gaps(_groups(y_true, y_pred, sens, labels), labels, "a", min_group_size=1)["all_groups"]
    ratios = {}
    for k, c in enumerate(labels):
        ratios[c] = demographic_parity_ratio((np.array(y_true) == k).astype(int), (np.array(y_pred) == k).astype(int),
                                             sensitive_features=sens)
    assert np.isnan(ratios["c"])
    # 0.0 would read as the worst disparity; JSON has no NaN, so the report says null ("n/a")
    assert gaps["per_class"]["c"]["demographic_parity_ratio"] is None
    for c in ("a", "b"):
        assert gaps["per_class"][c]["demographic_parity_ratio"] == pytest.approx(ratios[c])
    # the macro over classes is over the classes where the ratio is defined (nanmean)
    assert gaps["macro_over_classes"]["demographic_parity_ratio"] == pytest.approx(np.nanmean(list(ratios.values())))
    # the difference stays defined (0: nobody selected anywhere), as fairlearn's
    assert gaps["per_class"]["c"]["demographic_parity_difference"] == 0.0


# ---------------------------------------------------------------------------------------------
# NER


def test_entity_macro_f1_is_the_mean_of_unrounded_f1s():
    # A: 1 of 1 found (F1 1); B: 1 of 1 found with one false positive (F1 2/3); seqeval's macro
    # F1 is 0.8333, the mean of the per-type values rounded first would be 0.8334
    gold = [[Span(0, 3, "A"), Span(5, 8, "B")]]
    pred = [[Span(0, 3, "A"), Span(5, 8, "B"), Span(10, 12, "B")]]
    m = entity_metrics(gold, pred)
    assert m["per_type"]["B"]["f1"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["macro_f1"] == round((1 + 2 / 3) / 2, 4) == 0.8333


def test_ner_summary_names_a_weakest_type_that_was_evaluated():
    from domainfm.audit.ner import run_ner_audit
    from domainfm.audit.summary import findings

    # the model's tag set has FAX, which neither the data nor the predictions hold: its F1 of 0
    # is a placeholder, not a measurement, and must not be reported as the weakest type
    docs = [Document(id=f"n{i}", text="Seen by Dr Lee with Ann.", meta={"sex": "F" if i % 2 else "M"},
                     spans=[Span(11, 14, "DOCTOR"), Span(20, 23, "PATIENT")]) for i in range(12)]

    def predict(ds):  # the doctor always, the patient in every third document
        return [[Span(11, 14, "DOCTOR")] + ([Span(20, 23, "PATIENT")] if int(d.id[1:]) % 3 == 0 else []) for d in ds]

    cfg = AuditConfig(group_by=["meta.sex"], n_bootstrap=20, min_group_size=2, counterfactuals=[])
    report = run_ner_audit(predict, ["DOCTOR", "FAX", "PATIENT"], docs, cfg, "fake")
    per_type = report["performance"]["overall"]["per_type"]
    assert per_type["FAX"]["support"] == per_type["FAX"]["predicted"] == 0
    weakest = [f for f in findings(report) if ".per_type." in f["key"]]
    assert len(weakest) == 1
    assert weakest[0]["key"] == "performance.overall.per_type.PATIENT.f1"
    assert weakest[0]["value"] == per_type["PATIENT"]["f1"] == pytest.approx(0.5)


# ---------------------------------------------------------------------------------------------
# Explanations


def test_document_tokens_from_overlapping_chunks_do_not_overlap():
    from domainfm.audit.explain import _document_explanation, top_tokens
    from domainfm.chunk.splitter import Chunk

    words = [f"w{i:02d}" for i in range(30)]
    text = " ".join(words)

    def chunk(start, end, i):
        return Chunk(id=f"d#{i}", doc_id="d", start=start, end=end, text=text[start:end], n_tokens=0, section="")

    def segments(chunk_text):  # as shap's Text masker gives them: each with its trailing space
        parts = chunk_text.split(" ")
        return [p + " " for p in parts[:-1]] + [parts[-1]]

    first, second = chunk(0, 59, 0), chunk(40, len(text), 1)  # overlapping on w10 .. w14
    seg_a, seg_b = segments(first.text), segments(second.text)
    # the second chunk's masker cuts w12 in two (a chunk that starts inside a word does this): the
    # document then has the tokens w12, w1 and 2 over the same characters
    k = seg_b.index("w12 ")
    seg_b[k:k + 1] = ["w1", "2 "]

    def explained(c, segs):
        assert "".join(segs) == c.text
        return c, SimpleNamespace(values=[np.ones((len(segs), 2))], data=[segs])

    ex = _document_explanation("d", text, [explained(first, seg_a), explained(second, seg_b)], 2)
    spans = [(s, e) for s, e, _ in ex.tokens]
    assert all(e1 <= s2 for (_, e1), (s2, _) in zip(spans, spans[1:])), [text[s:e] for s, e in spans]
    # every character of w12 is counted once in the top tokens, not as w12 plus its pieces
    tops = top_tokens([ex], {"d": text}, ["x", "y"], k=100)["x"]
    shown = {t["token"] for t in tops}
    assert len(shown & {"w12", "w1", "2"}) <= 2 and not ({"w12"} & shown and {"w1", "2"} & shown)
    assert sum(t["count"] for t in tops) == len(spans) == len(words) + 1  # w12 as two pieces
