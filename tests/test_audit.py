"""The audit stage: fairlearn-equal metrics, report rendering and escaping, awkward groups and
data, privacy, and one end-to-end run on a tiny real model with shap explanations."""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest

from domainfm.audit import AuditConfig, LabelOnlyScorer, audit, run_audit
from domainfm.audit.counterfactual import swap_gender, swap_names, swap_race
from domainfm.audit.metrics import age_band
from domainfm.metrics import apply_temperature, fit_temperature_to_probs, top_class_reliability
from domainfm.audit.report import fmt_number
from domainfm.corpus.document import Document
from domainfm.errors import ConfigError, DomainFMError

LABELS = ["cardio", "neuro", "pulm"]
FAST = dict(n_bootstrap=50, counterfactuals=["gender", "race"], min_group_size=5)


class FakeScorer:
    """Deterministic scores from the text: a keyword nudges one class; otherwise a hash."""

    labels = LABELS

    def predict_proba(self, texts):
        out = []
        for t in texts:
            h = np.random.default_rng(sum(map(ord, t[:200])) % 2**32).random(len(LABELS)) + 0.1
            for k, word in enumerate(("heart", "seizure", "cough")):
                if word in t.lower():
                    h[k] += 1.0
            if " she " in f" {t.lower()} ":
                h[1] += 0.6
            out.append(h / h.sum())
        return np.array(out)


class LabelsOnly:
    labels = LABELS

    def predict(self, texts):
        return [LABELS[len(t) % 3] for t in texts]


def make_docs(n=90, seed=0, single_class=False):
    rng = random.Random(seed)
    words = ["heart", "seizure", "cough", "pain", "fever"]
    docs = []
    for i in range(n):
        sex = rng.choice(["F", "M"])
        pron = "She" if sex == "F" else "He"
        text = f"{pron} reports {rng.choice(words)} and {rng.choice(words)}. Black male seen by Mary."
        meta = {"sex": sex, "age": rng.choice([25, 50, 70, 85, None]), "race_ethnicity": rng.choice(["White", "Asian", "Black"])}
        if i % 11 == 0:
            del meta["sex"]  # missing attribute -> "unknown"
        label = "cardio" if single_class else rng.choice(LABELS)
        docs.append(Document(id=f"d{i}", text=text, meta=meta, label=label))
    return docs


@pytest.fixture(scope="module")
def fake_report():
    docs = make_docs()
    return docs, run_audit(FakeScorer(), docs, AuditConfig(group_by=["meta.sex", "meta.age_band"], **FAST))


def test_metrics_equal_fairlearn(fake_report):
    from functools import partial

    from fairlearn.metrics import (
        MetricFrame, demographic_parity_difference, demographic_parity_ratio, equalized_odds_difference,
        false_positive_rate, selection_rate, true_positive_rate,
    )
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    docs, report = fake_report
    probs = FakeScorer().predict_proba([d.text for d in docs])
    y_true = np.array([d.label for d in docs])
    y_pred = np.array(LABELS)[probs.argmax(1)]
    perf = report["performance"]
    assert perf["overall"]["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert perf["overall"]["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    pos = perf["positive_class"]
    for attr in ("meta.sex", "meta.age_band", "meta.sex x meta.age_band"):
        if " x " in attr:
            sens = [f"{a} | {b}" for a, b in zip(
                [d.meta.get("sex", "unknown") for d in docs], [age_band(d.meta.get("age")) for d in docs])]
        elif attr == "meta.sex":
            sens = [d.meta.get("sex", "unknown") for d in docs]
        else:
            sens = [age_band(d.meta.get("age")) for d in docs]
        groups = perf["by_attribute"][attr]["groups"]
        mf = MetricFrame(metrics={"accuracy": accuracy_score, "macro_f1": partial(f1_score, average="macro")},
                         y_true=y_true, y_pred=y_pred, sensitive_features=sens)
        for g, row in mf.by_group.iterrows():
            assert groups[g]["accuracy"] == pytest.approx(row["accuracy"])
            assert groups[g]["macro_f1"] == pytest.approx(row["macro_f1"])
        for c in LABELS:
            yt, yp = (y_true == c).astype(int), (y_pred == c).astype(int)
            rates = MetricFrame(metrics={"selection_rate": selection_rate, "tpr": true_positive_rate,
                                         "fpr": false_positive_rate, "recall": partial(recall_score, zero_division=0),
                                         "precision": partial(precision_score, zero_division=0)},
                                y_true=yt, y_pred=yp, sensitive_features=sens)
            for g, row in rates.by_group.iterrows():
                for key in ("selection_rate", "tpr", "fpr", "recall", "precision"):
                    assert groups[g]["per_class"][c][key] == pytest.approx(row[key]), (attr, g, c, key)
            gaps = perf["by_attribute"][attr]["gaps"]["all_groups"]["per_class"][c]
            assert gaps["demographic_parity_difference"] == pytest.approx(
                demographic_parity_difference(yt, yp, sensitive_features=sens))
            assert gaps["demographic_parity_ratio"] == pytest.approx(
                demographic_parity_ratio(yt, yp, sensitive_features=sens))
            assert gaps["equalized_odds_difference"] == pytest.approx(
                equalized_odds_difference(yt, yp, sensitive_features=sens))
        all_groups = perf["by_attribute"][attr]["gaps"]["all_groups"]
        assert all_groups["positive_class"] == all_groups["per_class"][pos]
        assert all_groups["worst_group_accuracy"] == pytest.approx(mf.group_min()["accuracy"])
        assert all_groups["accuracy_difference"] == pytest.approx(mf.difference()["accuracy"])


def test_unknown_group_small_groups_and_cis(fake_report):
    docs, report = fake_report
    sex = report["performance"]["by_attribute"]["meta.sex"]["groups"]
    assert sex["unknown"]["n"] == sum(1 for d in docs if "sex" not in d.meta)
    assert report["data"]["attributes"]["meta.sex"]["missing"] == sex["unknown"]["n"]
    assert "unknown" in report["performance"]["by_attribute"]["meta.age_band"]["groups"]  # age None
    lo, hi = report["performance"]["overall"]["ci"]["accuracy"]
    assert lo <= report["performance"]["overall"]["accuracy"] <= hi


def test_group_of_size_one_and_single_class():
    docs = make_docs(40, seed=3, single_class=True)
    docs[0].meta["race_ethnicity"] = "Solo"
    report = run_audit(FakeScorer(), docs, AuditConfig(group_by=["meta.race_ethnicity"], **FAST))
    solo = report["performance"]["by_attribute"]["meta.race_ethnicity"]["groups"]["Solo"]
    assert solo["n"] == 1 and solo["small"] and solo["ci"]["accuracy"] is None
    assert "Solo" in report["data"]["attributes"]["meta.race_ethnicity"]["small_groups"]
    assert report["data"]["n_classes_in_data"] == 1
    gaps = report["performance"]["by_attribute"]["meta.race_ethnicity"]["gaps"]
    assert "Solo" in gaps["all_groups"]["groups"] and "Solo" not in gaps["reliable_groups"]["groups"]
    assert report["calibration"]["overall"]["ece"] is not None


def test_model_without_scores(tmp_path):
    result = audit(LabelsOnly(), make_docs(30), tmp_path / "r", AuditConfig(group_by=["meta.sex"], **FAST))
    assert result.report["calibration"]["available"] is False
    html = result.html.read_text(encoding="utf-8")
    assert "Not available: the model gives labels only" in html
    assert isinstance(LabelOnlyScorer(LabelsOnly()).predict_proba(["ab"]), np.ndarray)


def test_html_sections_escaping_and_numbers(tmp_path):
    docs = make_docs(14, seed=5)
    docs[0] = Document(id="evil", text="He had <script>alert('x')</script> heart pain — café naïve 心臓. SSN 123-45-6789",
                       meta={"sex": "<b>M</b>", "age": 40}, label="cardio")
    docs[1] = Document(id="evil2", text="She had <script>alert(2)</script> cough.", meta={"sex": "F"}, label="neuro")
    cfg = AuditConfig(group_by=["meta.sex"], explain=len(docs), explain_sample=1, max_evals=20, **FAST)
    result = audit(FakeScorer(), docs, tmp_path / "r", cfg)
    html = result.html.read_text(encoding="utf-8")
    for section in ("summary", "data", "performance", "fairness", "calibration", "explanations", "robustness", "privacy"):
        assert f'<section id="{section}">' in html
    assert "<script" not in html and "<b>M</b>" not in html
    assert html.isascii() and "caf&#233;" in html  # non-ASCII text as character references
    assert "&lt;b&gt;M&lt;/b&gt;" in html
    assert "123-45-6789" not in html and "123-45-6789" not in (tmp_path / "r" / "report.json").read_text()
    assert "img alt" in html and "data:image/png;base64," in html
    examples = result.report["explanations"]["examples"]
    assert len(examples) == len(docs) and result.report["explanations"]["max_evals"] == 20
    evil = next(e for e in examples if e["doc_id"] == "evil")
    assert "<script>" in "".join(s["text"] for s in evil["segments"])  # shown, but only escaped:
    assert "&lt;" in html and "alert(" in html
    # every number in the HTML is a number of report.json
    report = json.loads((tmp_path / "r" / "report.json").read_text(encoding="utf-8"))
    numbers: set[str] = set()

    def walk(x):
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        elif fmt_number(x) is not None:
            numbers.add(fmt_number(x))

    walk(report)
    shown = re.findall(r'<span class="num">([^<]*)</span>', html)
    assert len(shown) > 30
    assert set(shown) <= numbers
    card = (tmp_path / "r" / "model_card.md").read_text(encoding="utf-8")
    for heading in ("Model details", "Intended use", "Factors", "Metrics", "Evaluation data", "Training data",
                    "Quantitative analyses", "Ethical considerations", "Caveats and recommendations"):
        assert f"## {heading}" in card


def test_calibration_and_temperature():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7]])
    c = top_class_reliability(probs, np.array([0, 1, 0, 1]), n_bins=5)
    # bins (0.4, 0.6]: 0.6 correct; (0.6, 0.8]: 0.7 correct, 0.8 wrong; (0.8, 1]: 0.9 correct
    assert c["ece"] == pytest.approx(0.4 / 4 + 0.25 * 2 / 4 + 0.1 / 4)
    assert c["mce"] == pytest.approx(0.4)
    # an overconfident model (right 60% of the time at 0.99) gets a temperature > 1
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    pred = np.where(rng.random(500) < 0.6, y, 1 - y)
    over = np.where(pred[:, None] == np.arange(2), 0.99, 0.01)
    t = fit_temperature_to_probs(over, y)
    assert t > 1 and top_class_reliability(apply_temperature(over, t), y)["ece"] < top_class_reliability(over, y)["ece"]


def test_counterfactual_swaps_and_bad_config():
    assert swap_gender("He said his wife saw Mr. X") == "She said her husband saw Ms. X"
    assert swap_race("Black male, African American") == "White male, Caucasian"
    assert swap_names("Mary and mary", random.Random(0)).split(" and ")[0].lower() == \
        swap_names("Mary and mary", random.Random(0)).split(" and ")[1].lower()
    with pytest.raises(ConfigError, match="max_evals"):
        AuditConfig(max_evals=1)
    with pytest.raises(ConfigError, match="available"):
        AuditConfig(counterfactuals=["accent"])
    with pytest.raises(DomainFMError, match="not among the model's labels"):
        run_audit(FakeScorer(), [Document(id="x", text="t", label="other")], AuditConfig(**FAST))


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory, tiny_tokenizer, tiny_bert_config):
    """A 2-layer BERT classifier saved as a 'domainfm finetune' full-model folder."""
    import torch
    from transformers import BertForSequenceClassification

    labels = ["cardiology", "endocrinology", "gastroenterology", "infectious_disease", "neurology", "pulmonology"]
    cfg = tiny_bert_config.__class__(**{**tiny_bert_config.to_dict(), "num_labels": len(labels),
                                        "id2label": dict(enumerate(labels)),
                                        "label2id": {l: i for i, l in enumerate(labels)}})
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny_clf")
    BertForSequenceClassification(cfg).save_pretrained(out)
    tiny_tokenizer.save_pretrained(out)
    (out / "domainfm_task.json").write_text(json.dumps({
        "task": "classification", "labels": labels, "method": "full", "merged": False,
        "base_model": {"name": "tiny", "resolved": str(out)}, "max_length": 64,
        "long_documents": {"strategy": "chunk", "overlap": 8, "aggregate": "mean", "profile": "clinical"},
        "text_field": "text", "label_field": "label"}))
    return out


def test_end_to_end_cli_on_tiny_model(tiny_classifier, clinical_corpus, tmp_path, cli):
    from domainfm.corpus.io import read_documents, write_documents

    docs = list(read_documents(clinical_corpus))[:12]
    for d in docs:
        d.text = d.text[:500]
        d.spans = [s for s in d.spans if s.end <= 500]
    data = tmp_path / "data.jsonl"
    write_documents(data, docs)
    out = tmp_path / "report"
    result = cli("audit", tiny_classifier, data, "-o", out, "--group-by", "meta.sex,meta.age_band",
                 "--explain", 2, "--max-evals", 20, "--bootstrap", 50, "--seed", 1, "--counterfactuals", "gender")
    assert result.exit_code == 0, result.output
    for name in ("index.html", "report.json", "model_card.md", "manifest.json"):
        assert (out / name).is_file()
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    examples = report["explanations"]["examples"]
    assert len(examples) == 2
    by_id = {d.id: d for d in docs}
    from domainfm.audit.privacy import mask_phi

    # data.jsonl has no deid manifest: the deid rules mask the quoted text, character for character
    assert report["explanations"]["masking"]["deidentified_input"] is False
    for ex in examples:
        shown, text = "".join(s["text"] for s in ex["segments"]), mask_phi(by_id[ex["doc_id"]].text)
        assert len(shown) == len(text) and all(a == b or a == "*" for a, b in zip(shown, text))
        assert shown.count("*") > text.count("*")  # names, addresses... beyond the PHI patterns
    assert report["robustness"]["gender"]["n_changed"] > 0
    assert report["privacy"]["statement"].startswith("unknown")  # hand-made folder: no manifest


def test_ner_performance_and_subgroups(tmp_path):
    from domainfm.audit.ner import run_ner_audit
    from domainfm.audit.report import write_report
    from domainfm.audit.summary import findings
    from domainfm.corpus.document import Span
    from domainfm.metrics import entity_metrics

    docs = []
    for i in range(30):
        text = "Seen by Dr Lee on Monday with Ann."
        meta = {"sex": "F" if i % 2 else "M"} if i % 7 else {}
        docs.append(Document(id=f"n{i}", text=text, meta=meta, spans=[Span(11, 14, "DOCTOR"), Span(30, 33, "PATIENT")]))

    def predict(ds):  # finds the doctor always, the patient only in even documents
        return [[Span(11, 14, "DOCTOR")] + ([Span(30, 33, "PATIENT")] if int(d.id[1:]) % 2 == 0 else []) for d in ds]

    cfg = AuditConfig(group_by=["meta.sex"], n_bootstrap=50, min_group_size=5)
    report = run_ner_audit(predict, ["DOCTOR", "PATIENT"], docs, cfg, "fake")
    report["privacy"] = {"statement": "unknown", "audit_data_deidentified": False}
    report["summary"] = findings(report)
    groups = report["performance"]["by_attribute"]["meta.sex"]["groups"]
    male = [d for d in docs if d.meta.get("sex") == "M"]
    assert groups["M"]["f1"] == entity_metrics([d.spans for d in male], predict(male))["f1"]
    assert "unknown" in groups and report["performance"]["by_attribute"]["meta.sex"]["gaps"]["all_groups"]["f1_difference"] > 0
    write_report(report, tmp_path / "ner")
    html = (tmp_path / "ner" / "index.html").read_text(encoding="utf-8")
    assert "Entity-level" in html and '<section id="fairness">' in html


def test_score_sequences_equals_predict_proba_and_explainer_batches(tiny_classifier):
    """The explainer's fast path scores masked chunk texts exactly as the document path does, and
    the shap values do not depend on how many masked samples go into one model call."""
    from domainfm.audit.explain import explain_texts
    from domainfm.audit.scorer import as_scorer

    scorer = as_scorer(tiny_classifier, batch_size=3)
    texts = ["chest pain and dyspnea", "seizure [MASK] [MASK] headache", "", "café naïve 心臓 cough " * 3,
             "the patient denies fever, cough or shortness of breath."]
    np.testing.assert_allclose(scorer.score_sequences(texts), scorer.predict_proba(texts), atol=1e-5)
    text = "The patient denies fever, cough or shortness of breath. ASSESSMENT: NSTEMI, aspirin."
    items = [("a", text), ("b", "Seizure with headache; MRI brain ordered. " * 12), ("c", "cough")]
    alone = explain_texts(scorer, items, max_evals=40, batch_size=1, parallel=1)
    joined = explain_texts(scorer, items, max_evals=40, batch_size=64, parallel=4)
    assert len(alone[1].tokens) > 40  # the long one is explained in several chunks
    for x, y in zip(alone, joined):
        assert [t[:2] for t in x.tokens] == [t[:2] for t in y.tokens]
        np.testing.assert_allclose([t[2] for t in x.tokens], [t[2] for t in y.tokens], atol=1e-6)
    many = joined[0]
    # local accuracy per class: the values of the document's tokens sum to f(x) - f(all masked)
    import shap

    masker = shap.maskers.Text(scorer.tokenizer)
    n_segments = len(masker.data_transform(text)[0])
    masked = str(masker(np.zeros(n_segments, dtype=bool), text)[0][0])
    expected = scorer.predict_proba([text])[0] - scorer.score_sequences([masked])[0]
    np.testing.assert_allclose(np.sum([v for _, _, v in many.tokens], axis=0), expected, atol=1e-4)
    with pytest.raises(ConfigError, match="batch_size"):
        explain_texts(scorer, [("a", text)], max_evals=40, batch_size=0)
    with pytest.raises(ConfigError, match="parallel"):
        explain_texts(scorer, [("a", text)], max_evals=40, parallel=0)


def test_attribute_missing_everywhere_bad_scores_and_data_note(tmp_path):
    docs = make_docs(20, seed=7)
    cfg = AuditConfig(group_by=["meta.sex", "meta.ward"], data_note="ward <unknown> for all (régime test)", **FAST)
    result = audit(FakeScorer(), docs, tmp_path / "r", cfg)
    groups = result.report["performance"]["by_attribute"]["meta.ward"]["groups"]
    assert list(groups) == ["unknown"] and groups["unknown"]["n"] == 20
    assert result.report["warnings"] == ["group_by field 'meta.ward' is absent from every document (one 'unknown' group)"]
    with pytest.raises(ConfigError, match=r"no document has any of the group_by fields \['meta.ward'\]"):
        run_audit(FakeScorer(), docs, AuditConfig(group_by=["meta.ward"], **FAST))
    assert result.report["data"]["attributes"]["meta.ward"]["missing"] == 20
    html = result.html.read_text(encoding="utf-8")
    assert "ward &lt;unknown&gt; for all (r&#233;gime test)" in html
    assert "ward <unknown> for all (régime test)" in (tmp_path / "r" / "model_card.md").read_text(encoding="utf-8")

    class WrongShape(FakeScorer):
        def predict_proba(self, texts):
            return super().predict_proba(texts)[:, :2]

    with pytest.raises(ConfigError, match="shape"):
        run_audit(WrongShape(), docs, AuditConfig(group_by=["meta.sex"], **FAST))
    with pytest.raises(ConfigError, match="no documents to audit"):
        run_audit(FakeScorer(), [], AuditConfig(group_by=["meta.sex"], **FAST))
    with pytest.raises(ConfigError, match="batch_size"):
        AuditConfig(batch_size=0)
    with pytest.raises(ConfigError, match="data_note"):
        AuditConfig(data_note=3)


def test_truncating_model_explains_only_what_it_sees(tiny_classifier):
    """A model with ``strategy: truncate`` sees its first max_length tokens: only they are
    explained, and the rest of the document keeps the value 0 (it cannot change the output)."""
    from dataclasses import replace

    from domainfm.audit.explain import explain_texts, highlight_segments
    from domainfm.audit.scorer import as_scorer

    scorer = as_scorer(tiny_classifier)
    scorer.tm = replace(scorer.tm, long_documents=replace(scorer.tm.long_documents, strategy="truncate"))
    text = "The patient denies fever, cough or shortness of breath. " * 20
    ex = explain_texts(scorer, [("t", text)], max_evals=30)[0]
    seen = len(scorer.tokenizer(text, truncation=True, max_length=scorer.max_length)["input_ids"]) - 2
    assert len(ex.tokens) == seen < len(scorer.tokenizer(text)["input_ids"]) - 2
    last = ex.tokens[-1][1]
    assert last < len(text) and not ex.char_values[last:].any()
    assert "".join(s["text"] for s in highlight_segments(ex, text, 0)) == text


def test_age_bands_leave_impossible_ages_unknown():
    assert [age_band(a) for a in (0, 17.9, "42", 80, 124)] == ["0-17", "0-17", "40-64", "80+", "80+"]
    assert {age_band(a) for a in (-3, 125, 200, True, None, "n/a", float("nan"))} == {"unknown"}


# ------------------------------------------------------------------ tester's findings (audit)


def test_unknown_gold_labels_are_counted_never_quoted():
    """The gold field may hold a name or a whole text, and an id a record number: the error gives
    counts and the documents' positions, never a value or an id."""
    docs = make_docs(6)
    for i, d in enumerate(docs):
        d.meta["patient_name"] = "Zorblax Quintavius"
        d.id = f"MRN88123456-{i}"
    with pytest.raises(DomainFMError) as err:
        run_audit(FakeScorer(), docs, AuditConfig(label_field="meta.patient_name", **FAST))
    message = str(err.value)
    assert "Zorblax" not in message and "6 of 6 labelled documents" in message
    assert "88123456" not in message and "document(s) 1, 2, 3 of the data" in message
    with pytest.raises(DomainFMError) as err:
        run_audit(FakeScorer(), docs, AuditConfig(label_field="text", **FAST))
    assert "reports" not in str(err.value) and "1 distinct value" not in str(err.value)


def _named_docs(n=12):
    docs = make_docs(n, seed=2)
    for i, d in enumerate(docs):
        d.text = f"Patient Zorblax Quintavius, seen for {('heart', 'seizure', 'cough')[i % 3]} pain. " + d.text
    return docs


def test_explanation_examples_are_masked_by_the_deid_rules_unless_the_data_was_deidentified(tmp_path):
    from domainfm.corpus.io import write_documents
    from domainfm.manifest import write_manifest

    docs = _named_docs()
    cfg = AuditConfig(group_by=["meta.sex"], explain=3, explain_sample=2, max_evals=20, **FAST)
    result = audit(FakeScorer(), docs, tmp_path / "raw", cfg)  # documents without their file: not traced
    masking = result.report["explanations"]["masking"]
    assert masking["deidentified_input"] is False and "does not trace back to domainfm deid" in masking["reason"]
    for name in ("index.html", "report.json"):
        text = (tmp_path / "raw" / name).read_text(encoding="utf-8")
        for part in ("Zorblax", "Quintavius", "Zorb", "tavius"):
            assert part not in text, (name, part)
    for ex in result.report["explanations"]["examples"]:  # no token of the name shown, not even in part
        shown = [s["text"] for s in ex["segments"] if s["value"] is not None]
        assert not [t for t in shown if "*" in t and t.strip("*")], shown
    assert "because the audited data does not trace back" in result.html.read_text(encoding="utf-8")
    # the same documents written by 'domainfm deid' (its manifest hashes the file): quoted as they are
    data = tmp_path / "deid.jsonl"
    write_documents(data, docs)
    write_manifest(data, stage="deid", config={}, outputs=[data])
    traced = audit(FakeScorer(), docs, tmp_path / "traced", cfg, data_files=[data])
    assert traced.report["explanations"]["masking"]["deidentified_input"] is True
    assert traced.report["privacy"]["audit_data_deidentified"] is True
    assert "Quintavius" in (tmp_path / "traced" / "report.json").read_text(encoding="utf-8")
    data.write_text(data.read_text() + "\n")  # edited since deid wrote it: the hash no longer vouches
    again = audit(FakeScorer(), docs, tmp_path / "edited", cfg, data_files=[data])
    assert again.report["explanations"]["masking"]["deidentified_input"] is False


def test_a_lower_case_name_the_rules_miss_is_masked_as_an_unexplained_word(tmp_path):
    """Without a title or capitals the rules find nothing in "zorblax quintavius reports ...";
    the words no dictionary explains are masked anyway, whole tokens, in data not de-identified."""
    docs = make_docs(12, seed=2)
    for i, d in enumerate(docs):
        d.text = f"zorblax quintavius reports {('heart', 'seizure', 'cough')[i % 3]} pain since monday. " + d.text
    cfg = AuditConfig(group_by=["meta.sex"], explain=3, explain_sample=2, max_evals=20, **FAST)
    result = audit(FakeScorer(), docs, tmp_path / "raw", cfg)
    assert "words no dictionary explains" in result.report["explanations"]["masking"]["masked"]
    for name in ("index.html", "report.json"):
        text = (tmp_path / "raw" / name).read_text(encoding="utf-8")
        for part in ("zorb", "quint", "tavius", "blax"):
            assert part not in text.lower(), (name, part)
    shown = " ".join(s["text"] for ex in result.report["explanations"]["examples"] for s in ex["segments"])
    assert "reports" in shown and "pain" in shown  # English is still quoted


def test_report_records_the_model_folder_absolutely_with_a_fingerprint(tmp_path, monkeypatch):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "manifest.json").write_text('{"stage": "finetune"}')
    monkeypatch.chdir(tmp_path)
    report = run_audit(FakeScorer(), make_docs(20), AuditConfig(group_by=["meta.sex"], **FAST), model_dir="model")
    model = report["model"]
    assert model["path"] == str(folder.resolve())
    from domainfm.manifest import sha256_file

    assert model["fingerprint"] == {"file": "manifest.json", "sha256": sha256_file(folder / "manifest.json")}


def test_rerunning_an_audit_removes_the_old_cards(tmp_path):
    from domainfm.audit.cards import write_cards

    out = tmp_path / "r"
    audit(FakeScorer(), make_docs(30), out, AuditConfig(group_by=["meta.sex", "meta.age_band"], **FAST))
    write_cards(out, "all")
    assert (out / "chai_model_card.xml").is_file() and (out / "cards.manifest.json").is_file()
    audit(FakeScorer(), make_docs(30), out, AuditConfig(group_by=["meta.race_ethnicity"], **FAST))
    left = sorted(p.name for p in out.iterdir())
    assert left == ["index.html", "manifest.json", "model_card.md", "report.json"], left


def test_an_attribute_with_one_group_has_no_gap():
    docs = make_docs(30)
    for d in docs:
        d.meta["site"] = "north"
    report = run_audit(FakeScorer(), docs, AuditConfig(group_by=["meta.site", "meta.sex"], **FAST))
    gaps = report["performance"]["by_attribute"]["meta.site"]["gaps"]
    for scope in ("all_groups", "reliable_groups"):
        assert gaps[scope]["comparable"] is False and gaps[scope]["accuracy_difference"] is None
        assert gaps[scope]["positive_class"]["demographic_parity_difference"] is None
        assert gaps[scope]["positive_class"]["demographic_parity_ratio"] is None
        assert gaps[scope]["macro_over_classes"]["equalized_odds_difference"] is None
    sex = report["performance"]["by_attribute"]["meta.sex"]["gaps"]["all_groups"]
    assert sex["comparable"] is True and sex["accuracy_difference"] is not None


def test_privacy_audit_is_checked_before_the_audit_runs(tmp_path, cli):
    class MustNotRun(FakeScorer):
        def predict_proba(self, texts):
            raise AssertionError("the audit ran before its inputs were checked")

    for bad in ([1, 2], {"gate": "passed"}, {"performance": {}, "model": {}}):
        with pytest.raises(ConfigError, match="not a 'domainfm audit-privacy' report.json"):
            audit(MustNotRun(), make_docs(10), tmp_path / "r", AuditConfig(**FAST), privacy_audit=bad)
    pa = tmp_path / "pa.json"
    pa.write_text('{"gate": "passed"}')
    missing_model = tmp_path / "no-model"
    result = cli("audit", missing_model, tmp_path / "none.jsonl", "-o", tmp_path / "out", "--privacy-audit", pa)
    assert result.exit_code == 2 and "no 'gate'" in result.output and "Traceback" not in result.output
    deid = tmp_path / "deid.json"
    deid.write_text("{}")
    result = cli("audit", missing_model, tmp_path / "none.jsonl", "-o", tmp_path / "out", "--deid-eval", deid)
    assert result.exit_code == 2 and "--deid-eval feeds only the reviewer's cards: add --card" in result.output
    deid.write_text("[1]")
    result = cli("audit", missing_model, tmp_path / "none.jsonl", "-o", tmp_path / "out", "--deid-eval", deid,
                 "--card", "fda")
    assert result.exit_code == 2 and "--deid-eval" in result.output and "not a readable JSON object" in result.output


@pytest.mark.parametrize("kwargs, message", [
    (dict(seed=-1), r"'seed' parameter must be an int >= 0. Got -1"),
    (dict(n_bootstrap=10**12), r"'n_bootstrap' parameter must be an int in \[0, 10000\]"),
    (dict(n_bootstrap=True), r"'n_bootstrap'"),
    (dict(group_by=["meta.sex", "meta.age_band", "meta.sex"]), r"group_by names 'meta.sex' more than once"),
])
def test_bad_audit_settings_name_the_field(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        AuditConfig(**kwargs)


def test_unlabelled_documents_are_warned_about(tmp_path):
    docs = make_docs(12)
    for d, missing in zip(docs, (None, "", None)):
        d.label = missing
    result = audit(FakeScorer(), docs, tmp_path / "r", AuditConfig(group_by=["meta.sex"], **FAST))
    assert result.report["data"]["n_unlabelled"] == 3
    assert "3 of 12 documents have no gold 'label'" in " ".join(result.report["warnings"])


def test_empty_data_and_swapped_arguments_say_what_is_wrong(tmp_path, cli):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = cli("audit", empty, empty, "-o", tmp_path / "out")
    assert result.exit_code == 2 and "is a file, not a model folder" in result.output
    with pytest.raises(ConfigError, match="empty.jsonl holds no documents"):
        run_audit(FakeScorer(), [], AuditConfig(**FAST), data_files=[empty])


def _with_meta(docs, key, values):
    for d, v in zip(docs, values):
        d.meta[key] = v
    return docs


def test_group_values_that_identify_people_stop_the_audit_before_scoring(tmp_path):
    class MustNotRun(FakeScorer):
        def predict_proba(self, texts):
            raise AssertionError("the model ran before the groups were checked")

    made_up = ["Zorblax Quintavius", "Sarah Fennimore", "Dr. Velorin", "John Okafor"]
    docs = _with_meta(make_docs(40), "attending", [made_up[i % 4] for i in range(40)])
    with pytest.raises(ConfigError) as refused:
        audit(MustNotRun(), docs, tmp_path / "r", AuditConfig(group_by=["meta.sex", "meta.attending"], **FAST))
    message = str(refused.value)
    assert "'meta.attending'" in message and "of its 4 values" in message
    assert "--allow-identifying-groups" in message
    assert not any(part in message for name in made_up for part in name.split())
    assert not (tmp_path / "r" / "report.json").exists()

    # one record number per patient: no value looks like a name, but the groups single people out
    docs = _with_meta(make_docs(60), "patient_key", [f"k{i // 2}" for i in range(60)])
    with pytest.raises(ConfigError, match=r"30 values and 60 of the 60 documents are in groups of fewer than 5"):
        run_audit(MustNotRun(), docs, AuditConfig(group_by=["meta.patient_key"], **FAST))

    # the same columns, allowed by name: shown, with the reason in the warnings and the report
    docs = _with_meta(make_docs(40), "attending", [made_up[i % 4] for i in range(40)])
    cfg = AuditConfig(group_by=["meta.sex", "meta.attending"], allow_identifying_groups=["meta.attending"], **FAST)
    report = audit(FakeScorer(), docs, tmp_path / "r", cfg).report
    assert list(report["privacy"]["identifying_groups"]) == ["meta.attending"]
    assert any("'meta.attending' is shown although" in w for w in report["warnings"])
    assert json.loads((tmp_path / "r" / "report.json").read_text())["config"]["allow_identifying_groups"] == \
        ["meta.attending"]


def test_ordinary_group_values_are_not_taken_for_identifiers():
    from domainfm.audit.privacy import identifying_groups

    columns = {
        "race": ["White", "Black or African American", "Asian", "Guamanian or Chamorro", "Hispanic or Latino",
                 "American Indian or Alaska Native", "Two or more races", "unknown"],
        "state": ["Texas", "Washington", "Georgia", "Massachusetts"],
        "payer": ["Medicare", "Medicaid", "Self-pay", "Commercial", "Kaiser Permanente", "Aetna"],
        "band": ["18-39", "40-64", "65+", "2019", "2020"],
        "unit": ["ICU", "Med-Surg", "Cardiology Clinic", "Emergency", "NICU"],
    }
    # each value on 6 documents: groups, not people
    groups = {attr: np.array([v for v in values for _ in range(6)], dtype=object) for attr, values in columns.items()}
    assert identifying_groups(groups) == {}
    flagged = identifying_groups({"dob": np.array(["03/04/1950", "1961-07-02", "12/30/1948"] * 6, dtype=object),
                                  "contact": np.array(["617-555-0134", "mary@example.org"] * 6, dtype=object)})
    assert set(flagged) == {"dob", "contact"}


def test_allow_identifying_groups_names_group_by_fields():
    with pytest.raises(ConfigError, match="allow_identifying_groups names 'meta.name', which is not one of group_by"):
        AuditConfig(group_by=["meta.sex"], allow_identifying_groups=["meta.name"])


def test_the_command_refuses_a_name_column_without_quoting_it(tiny_classifier, tmp_path, cli):
    from domainfm.corpus.io import write_documents

    docs = _with_meta(make_docs(24), "patient_name", ["Zorblax Quintavius", "Sarah Fennimore", "Quill Anders"] * 8)
    for d in docs:
        d.label = "cardiology"
    data = tmp_path / "d.jsonl"
    write_documents(data, docs)
    result = cli("audit", tiny_classifier, data, "-o", tmp_path / "out", "--group-by", "meta.sex,meta.patient_name",
                 "--counterfactuals", "", "--bootstrap", "20")
    assert result.exit_code == 2 and "'meta.patient_name' would put identifiers into the report" in result.output
    assert "Traceback" not in result.output
    assert not any(w in result.output for w in ("Zorblax", "Quintavius", "Sarah", "Fennimore", "Quill", "Anders"))
    result = cli("audit", tiny_classifier, data, "-o", tmp_path / "out", "--group-by", "meta.sex,meta.patient_name",
                 "--counterfactuals", "", "--bootstrap", "20", "--allow-identifying-groups", "meta.patient_name")
    assert result.exit_code == 0, result.output
    assert "'meta.patient_name' is shown although its values look identifying" in " ".join(result.output.split())


def test_training_deid_status_checks_the_training_file_is_the_one_recorded(tmp_path):
    from domainfm.audit.privacy import training_deid_status
    from domainfm.manifest import sha256_file, write_manifest

    train = tmp_path / "train.jsonl"
    train.write_text('{"id": "t1", "text": "Seen by [NAME] today."}\n')
    write_manifest(train, stage="deid", config={"profile": "clinical"}, outputs=[train])
    model = tmp_path / "model"
    model.mkdir()

    def status(recorded_hash):
        (model / "manifest.json").write_text(json.dumps({"stage": "finetune", "inputs": [
            {"path": str(train), "sha256": recorded_hash}]}))
        return training_deid_status(model, make_docs(3))

    assert status(sha256_file(train))["training_deidentified"] is True
    # trained on the de-identified file; raw notes later written to the same path, manifest kept
    recorded = sha256_file(train)
    train.write_text('{"id": "t1", "text": "Seen by Zorblax Quintavius today."}\n')
    changed = status(recorded)
    assert changed["training_deidentified"] is None and changed["statement"].startswith("unknown: 1 of the 1")
    assert "not the one the model was trained on" in changed["training_data"][0]["evidence"]
    # trained on a file edited after deid wrote it: its deid manifest no longer vouches for it
    edited = status(sha256_file(train))
    assert edited["training_deidentified"] is False and "changed since deid" in edited["training_data"][0]["evidence"]
    train.unlink()
    assert "not found" in status(recorded)["training_data"][0]["evidence"]


def test_model_card_tables_hold_intersections_and_markup_in_group_names(tmp_path):
    docs = make_docs(40)
    for i, d in enumerate(docs):
        d.meta["ward"] = ["east <b>wing</b>", "west | annex"][i % 2]
    cfg = AuditConfig(group_by=["meta.sex", "meta.ward"], data_note="*as recorded*", **FAST)
    audit(FakeScorer(), docs, tmp_path / "r", cfg)
    card = (tmp_path / "r" / "model_card.md").read_text(encoding="utf-8")
    rows = [line for line in card.splitlines() if line.startswith("| meta.")]
    assert len(rows) == 3  # sex, ward and their intersection ("F | east ..." worst groups)
    # every row has the header's five cells: a '|' inside a group name is escaped
    assert all(len(re.split(r"(?<!\\)\|", row)) == 7 for row in rows), rows
    assert "<b>" not in card and "&lt;b&gt;" in card
    assert "*as recorded*" in card  # the user's own note stays Markdown


def test_group_values_that_look_like_console_markup_are_printed_as_written(tiny_classifier, tmp_path, cli):
    """A ward called "[/red]" made the console's markup parser raise after the report was written
    (a traceback and exit 1); "[bold]east" would print as "east"."""
    from domainfm.corpus.io import write_documents

    docs = _with_meta(make_docs(30), "ward", ["[/red]", "[bold]east"] * 15)
    for d in docs:
        d.label = "cardiology"
    data = tmp_path / "d.jsonl"
    write_documents(data, docs)
    result = cli("audit", tiny_classifier, data, "-o", tmp_path / "out", "--group-by", "meta.ward",
                 "--counterfactuals", "", "--bootstrap", "20", "--min-group-size", "20")
    assert result.exit_code == 0, result.output
    assert "the worst group is '[/red]'" in " ".join(result.output.split())


def test_a_temperature_at_the_top_of_its_range_is_called_so():
    """An untrained model's temperature came out as T=50.00, the end of the search interval,
    reported like a fit."""
    from domainfm.metrics import at_temperature_bound

    class AlwaysWrong(FakeScorer):  # sure of a class no document has
        def predict_proba(self, texts):
            return np.tile([0.01, 0.01, 0.98], (len(texts), 1))

    docs = make_docs(60)
    for i, d in enumerate(docs):
        d.label = LABELS[i % 2]
    report = run_audit(AlwaysWrong(), docs, AuditConfig(group_by=["meta.sex"], **FAST))
    temperature = report["calibration"]["temperature"]
    assert temperature["at_search_bound"] == "upper" and at_temperature_bound(1.3) is None
    assert "says nothing about whether it is right" in " ".join(f["text"] for f in report["summary"])
