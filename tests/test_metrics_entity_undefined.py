"""Entity scores with a 0 denominator are not measured (None), never 0: an entity type listed in
``labels`` that neither the gold nor the predictions hold once scored 0/0/0 and pulled macro-F1
down, and the audit re-mapped the micro scores on top. One rule now, in ``entity_metrics``, and
every consumer (audit report, fine-tuning's checkpoint selection, progress lines) takes a None."""

from __future__ import annotations

import json

import pytest

from domainfm.audit import AuditConfig
from domainfm.corpus.document import Document, Span
from domainfm.metrics import entity_metrics

GOLD = [[Span(0, 3, "D"), Span(5, 9, "D")], [Span(0, 2, "P")]]
PRED = [[Span(0, 3, "D")], [Span(0, 2, "P")]]


def test_a_listed_type_absent_from_gold_and_predictions_is_not_measured_nor_averaged():
    without = entity_metrics(GOLD, PRED, labels=["D", "P"])
    with_absent = entity_metrics(GOLD, PRED, labels=["D", "P", "FAX"])
    fax = with_absent["per_type"]["FAX"]
    assert (fax["precision"], fax["recall"], fax["f1"]) == (None, None, None)
    assert (fax["support"], fax["predicted"]) == (0, 0)
    assert with_absent["macro_f1"] == without["macro_f1"] == round((2 / 3 + 1) / 2, 4)
    # the micro scores count entities: a type with none changes nothing
    assert {k: with_absent[k] for k in ("precision", "recall", "f1")} == \
        {k: without[k] for k in ("precision", "recall", "f1")}


@pytest.mark.parametrize("gold, pred, expected", [
    # gold but nothing predicted: every entity missed (precision has no denominator)
    ([[Span(0, 3, "D")]], [[]], (None, 0.0, 0.0)),
    # predictions but no gold: every prediction a false positive (recall has no denominator)
    ([[]], [[Span(0, 3, "D")]], (0.0, None, 0.0)),
])
def test_one_empty_side_leaves_one_score_undefined_and_f1_zero(gold, pred, expected):
    m = entity_metrics(gold, pred, labels=["D"])
    t = m["per_type"]["D"]
    assert (t["precision"], t["recall"], t["f1"]) == expected
    assert (m["precision"], m["recall"], m["f1"]) == expected
    assert m["macro_f1"] == 0.0  # measured: 0, and averaged


def test_no_entity_anywhere_measures_nothing():
    m = entity_metrics([[], []], [[], []], labels=["D"])
    assert (m["precision"], m["recall"], m["f1"], m["macro_f1"]) == (None, None, None, None)
    assert m["per_type"]["D"]["f1"] is None
    assert entity_metrics([], [])["macro_f1"] is None


def test_audit_report_shows_an_unmeasured_type_as_n_a(tmp_path):
    from domainfm.audit.ner import run_ner_audit
    from domainfm.audit.report import write_report
    from domainfm.audit.summary import findings

    text = "Seen by Dr Lee with Ann."
    docs = [Document(id=f"n{i}", text=text, meta={"site": "AB"[i % 2]},
                     spans=[Span(11, 14, "DOCTOR"), Span(20, 23, "PATIENT")]) for i in range(8)]

    def predict(ds):  # every doctor, no patient; FAX is in the tag set and nowhere else
        return [[Span(11, 14, "DOCTOR")] for _ in ds]

    cfg = AuditConfig(group_by=["meta.site"], n_bootstrap=10, min_group_size=2, counterfactuals=[])
    report = run_ner_audit(predict, ["DOCTOR", "FAX", "PATIENT"], docs, cfg, "fake")
    report["privacy"].update(statement="unknown", audit_data_deidentified=False)
    report["summary"] = findings(report)
    write_report(report, tmp_path)

    overall = json.loads((tmp_path / "report.json").read_text())["performance"]["overall"]
    assert overall["per_type"]["FAX"] == {"precision": None, "recall": None, "f1": None, "support": 0,
                                          "predicted": 0}
    assert overall["per_type"]["PATIENT"] == {"precision": None, "recall": 0.0, "f1": 0.0, "support": 8,
                                              "predicted": 0}
    assert overall["macro_f1"] == 0.5  # DOCTOR 1 and PATIENT 0; FAX is not a 0
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    rows = [r.split("</tr>")[0] for r in html.split("<tr><td>FAX</td>")[1:]]
    per_type_row = [r for r in rows if r.count("<td>") == 4]  # precision, recall, F1, support
    assert len(per_type_row) == 1 and per_type_row[0].count("n/a") == 3
    assert "None" not in html
    assert "None" not in (tmp_path / "model_card.md").read_text(encoding="utf-8")


def test_finetune_selects_a_checkpoint_when_its_metric_is_never_measured(tmp_path, tiny_model_dir):
    """Recall with no gold entity in the evaluation documents has nothing to measure: the history
    and the result say so (None) and checkpoint selection still works (it ranks last)."""
    from domainfm.config import load_config
    from domainfm.corpus import write_documents
    from domainfm.finetune import TaskConfig, console_reporter, finetune

    text = "Seen by Dr Lee on Monday with Ann Roe."
    train = [Document(id=f"t{i}", text=text, spans=[Span(11, 14, "DOCTOR"), Span(30, 37, "PATIENT")])
             for i in range(16)]
    held = [Document(id=f"e{i}", text="Nothing to find in this note.") for i in range(4)]
    write_documents(tmp_path / "train.jsonl", train)
    write_documents(tmp_path / "eval.jsonl", held)
    cfg = load_config(TaskConfig, overrides={
        "task": "ner", "model.name": str(tiny_model_dir), "model.max_length": 32,
        "data.train": str(tmp_path / "train.jsonl"), "data.eval": str(tmp_path / "eval.jsonl"),
        "labels.names": ["DOCTOR", "PATIENT"], "lora.r": 4, "lora.lora_alpha": 8,
        "lora.target_modules": ["query", "value"], "long_documents.strategy": "truncate",
        "train.metric": "recall", "train.max_steps": 2, "train.eval_every": 1, "train.batch_size": 8,
        "allow_identified_data": True})

    class Lines:  # the reporter's console: it only prints
        def __init__(self):
            self.lines = []

        def print(self, line):
            self.lines.append(str(line))

    console = Lines()
    result = finetune(cfg, tmp_path / "model", on_event=console_reporter(console))
    assert result.metrics["eval"]["recall"] is None and result.score is None
    assert [h["recall"] for h in result.metrics["history"]] == [None, None]
    assert result.metrics["best_step"] is not None
    evals = [line for line in console.lines if line.startswith("eval at step")]
    assert len(evals) == 2 and all("recall n/a" in line for line in evals)
