"""De-id evaluation under misuse and odd gold: labels no table knows, spans that are not of
their document, nested gold, leakage's edge cases, and the deid_eval stage on held-out notes
where nothing is detected or nothing is PHI. Made-up notes only; no PHI in any message."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import pytest

from domainfm.corpus import Document, Span, write_documents
from domainfm.deid.evaluate import evaluate, evaluate_files, leakage
from domainfm.errors import ConfigError, CorpusError

TEXT = "Seen by Dr Zorvack Quill on 7/22."
#       0123456789012345678901234567890123


def _gold(spans, doc_id="n1", text=TEXT):
    return Document(doc_id, text, spans=spans)


def _file(path, *records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_labels_no_table_knows_name_their_record_and_the_fix(tmp_path, cli):
    """A gold or predicted label outside the label table was a bare "label 'Foo' is not in the
    'physionet' label table", naming neither the file, the line nor the span."""
    gold = tmp_path / "gold.jsonl"
    write_documents(gold, [_gold([Span(11, 18, "HCPName")], "n0"), _gold([Span(11, 18, "Surgeon")])])
    pred = _file(tmp_path / "deid.jsonl", {"id": "n0", "phi_spans": []},
                 {"id": "n1", "phi_spans": [{"start": 11, "end": 18, "label": "DOCTOR"}]})
    with pytest.raises(ConfigError, match=r"gold\.jsonl:2: id='n1': spans\[0\]: label 'Surgeon' is not in the "
                                          r"'physionet' label table.*name the gold spans' label table as dataset"):
        evaluate_files(gold, pred, dataset="physionet")
    write_documents(gold, [_gold([Span(11, 18, "HCPName")])])
    foreign = _file(tmp_path / "other.jsonl", {"id": "n1", "phi_spans": [{"start": 11, "end": 18, "label": "PERSON"}]})
    with pytest.raises(ConfigError, match=r"other\.jsonl:1: id='n1': phi_spans\[0\]: label 'PERSON' is not in the "
                                          r"'canonical' label table.*must be a canonical one"):
        evaluate_files(gold, foreign, dataset="physionet")
    result = cli("deid-eval", gold, foreign, "--dataset", "physionet")
    assert result.exit_code == 2 and "other.jsonl:1" in result.output and "Traceback" not in result.output
    assert "Zorvack" not in result.output
    # the Python API names the document by its id
    with pytest.raises(ConfigError, match=r"id='n1': spans\[0\]: label 'Surgeon'"):
        evaluate([_gold([Span(11, 18, "Surgeon")])], {}, dataset="physionet")


@pytest.mark.parametrize("gold_spans, predicted, message", [
    ([Span(11, 99, "NAME")], [], r"id='n1': spans\[0\]: \[11:99\] is not a span of the document's 33 characters"),
    ([Span(11, 18, "NAME")], [(11, 18, "NAME"), (30, 40, "DATE")],
     r"id='n1': predictions\[1\]: \[30:40\] is not a span of the document's 33 characters"),
    ([Span(11, 18, "NAME")], [(18, 11, "NAME")], r"predictions\[0\]: \[18:11\] is not a span"),
    ([Span(11, 18, "NAME")], [{"begin": 11, "end": 18}], r"predictions\[0\]: a span needs integer start and end"),
    ([Span(11, 18, "NAME")], ["Zorvack"], r"predictions\[0\]: a span needs integer start and end .* got a string"),
])
def test_spans_that_are_not_of_their_document_are_errors_in_the_python_api(gold_spans, predicted, message):
    """evaluate() on Documents built in Python scored a gold span past the text's end (as
    characters no text has) and raised KeyError: 'start' for a dict with other keys."""
    with pytest.raises(CorpusError, match=message) as info:
        evaluate([_gold(gold_spans)], {"n1": predicted})
    assert "Zorvack" not in str(info.value)


def test_nested_gold_empty_and_gold_free_documents_are_scored_as_documented():
    # nested gold of two labels: each annotation is a gold span; one prediction finds both
    nested = _gold([Span(11, 24, "HCPName"), Span(11, 18, "PTName")])
    s = evaluate([nested, Document("empty", ""), Document("none", "Seen today.")], {"n1": [(11, 18, "DOCTOR")]},
                 dataset="physionet").summary()
    assert s["docs"] == 3 and s["gold"] == 2 and s["any_overlap"]["recall"] == 1.0
    assert s["exact"]["recall"] == 0.5
    assert s["char"]["recall"] == round(7 / 13, 4)  # characters counted once however often annotated
    assert sum(t["gold"] for t in s["per_type"].values()) == s["gold"]
    assert sum(t["pred"] for t in s["per_type"].values()) == s["pred"]


def test_leakage_counts_each_gold_span_in_its_own_document_only():
    notes = [_gold([Span(11, 24, "HCPName")], f"n{i}") for i in range(3)]
    out = {"n0": "Seen by Dr [NAME] on 7/22.", "n1": TEXT, "n2": "Seen by Dr Zorvack Quillson on 7/22."}
    report = leakage(notes, out, dataset="physionet")
    # n1 kept it, n2's surrogate contains it; n0's output has no copy, though n1's does
    assert (report["gold_strings"], report["leaked"]) == (3, 2)
    # a span only partly replaced is not there whole; strings under three characters are not counted
    partly = _gold([Span(11, 24, "HCPName"), Span(28, 30, "Date")], "p")
    report = leakage([partly], {"p": "Seen by Dr Zorvack [NAME] on 7/22."}, dataset="physionet")
    assert (report["gold_strings"], report["leaked"]) == (1, 0)
    with pytest.raises(CorpusError, match=r"id='q': spans\[0\]: \[11:80\] is not a span"):
        leakage([_gold([Span(11, 80, "HCPName")], "q")], {"q": TEXT}, dataset="physionet")


def _held_out_stage(tmp_path, monkeypatch, docs, **section):
    """The deid_eval stage on ``docs`` as the held-out notes of a stand-in model folder, the
    model's sweep replaced by rows with no learned spans."""
    from rich.console import Console

    from domainfm.deid import eval_stage
    from domainfm.stages import StageContext

    notes = tmp_path / "notes.jsonl"
    write_documents(notes, docs)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"architectures": ["BertForTokenClassification"],
                                                   "id2label": {"0": "O", "1": "B-NAME"}}))
    monkeypatch.setattr("domainfm.finetune.split.recorded_documents",
                        lambda folder, task: ([], docs, {"split_key": "patient_id"}))
    monkeypatch.setattr(eval_stage, "threshold_sweep", lambda config, gold, floors, score, dataset=None: [
        {"ner_threshold": f, "seconds": 0.1, **score((d, []) for d in gold), "model_alone_recall": 0.0}
        for f in floors])
    console = Console(file=io.StringIO(), width=200)
    context = StageContext(console=console, stages={"finetune": SimpleNamespace(
        data=SimpleNamespace(eval=None, train=str(notes)))})
    config = eval_stage.DeidEvalSection(threshold_sweep=[], **section)
    eval_stage.run(config, [model], tmp_path / "report.json", context)
    return console.file.getvalue(), json.loads((tmp_path / "report.json").read_text())


def test_deid_eval_stage_reports_no_precision_where_nothing_was_detected(tmp_path, monkeypatch):
    """Held-out notes where the rules detect nothing have no precision (None), and the stage's
    console line formatted it with :.3f: a TypeError after all the scoring was done."""
    docs = [Document("h1", "the knee is fine today", {"patient_id": "p1"}, spans=[Span(4, 8, "NAME")])]
    printed, report = _held_out_stage(tmp_path, monkeypatch, docs, dataset="canonical")
    assert report["rules"]["precision"] is None and report["rules"]["recall"] == 0.0
    assert "held-out patients, rules: recall 0.000, precision n/a" in printed


def test_deid_eval_stage_refuses_held_out_notes_whose_spans_are_not_phi(tmp_path, monkeypatch):
    """Gold spans of labels that are not PHI (Presidio's TITLE) passed the "no gold spans" check
    and left recall None, which the console line then failed to format."""
    docs = [Document("h1", "Dr. seen today", {"patient_id": "p1"}, spans=[Span(0, 3, "TITLE")])]
    with pytest.raises(ConfigError, match="held-out notes have no gold PHI spans"):
        _held_out_stage(tmp_path, monkeypatch, docs, dataset="presidio-synth")
