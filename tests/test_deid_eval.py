"""Evaluation math on tiny hand-made examples: any-overlap vs exact, character level, typed vs
type-agnostic, gold filters, misses files and the deid output file reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domainfm.corpus import Document, Span, write_documents
from domainfm.deid.evaluate import evaluate, evaluate_files, identifier_filter
from domainfm.errors import ConfigError, CorpusError

TEXT = "Dr Lee saw Mary Smith on 7/22 in Boston."
#       0123456789012345678901234567890123456789


def gold_doc():
    return Document("d1", TEXT, spans=[Span(3, 6, "HCPName"), Span(11, 15, "PTName"), Span(16, 21, "PTName"),
                                       Span(25, 29, "Date"), Span(33, 39, "Location")])


def test_overlap_exact_and_char_level():
    pred = {"d1": [(3, 6, "DOCTOR"), (11, 21, "PATIENT"), (26, 29, "DATE"), (0, 2, "NAME")]}
    s = evaluate([gold_doc()], pred, dataset="physionet").summary()
    assert s["gold"] == 5 and s["pred"] == 4
    # overlap: Lee, Mary, Smith, 7/22 found (4/5); predictions correct: 3 of 4 ("Dr" is not PHI)
    assert s["any_overlap"]["recall"] == 0.8
    assert s["any_overlap"]["precision"] == 0.75
    # exact: only "Lee" matches both offsets
    assert s["exact"]["recall"] == 0.2
    assert s["exact"]["precision"] == 0.25
    # characters: gold 3+4+5+4+6 = 22; predicted 3+10+3+2 = 18; shared 3+4+5+3 = 15
    assert s["char"]["recall"] == round(15 / 22, 4)
    assert s["char"]["precision"] == round(15 / 18, 4)
    p, r = 0.75, 0.8
    assert s["any_overlap"]["f2"] == round(5 * p * r / (4 * p + r), 4)
    assert s["any_overlap"]["f1"] == round(2 * p * r / (p + r), 4)


def test_wrong_type_counts_for_headline_not_for_typed():
    pred = {"d1": [(33, 39, "PATIENT")]}
    s = evaluate([gold_doc()], pred, dataset="physionet").summary()
    assert "type-agnostic" in s["matching"]
    loc = s["per_type"]["LOCATION"]
    assert loc["recall_any_label"] == 1.0 and loc["recall"] == 0.0
    assert s["per_type"]["NAME"]["precision"] == 0.0
    assert s["any_overlap"]["precision"] == 1.0


def test_no_predictions_and_empty_gold():
    s = evaluate([gold_doc()], {}, dataset="physionet").summary()
    assert s["any_overlap"]["recall"] == 0.0 and s["any_overlap"]["precision"] is None
    s = evaluate([Document("e", "nothing here")], {"e": [(0, 7, "NAME")]}).summary()
    assert s["any_overlap"]["precision"] == 0.0 and s["any_overlap"]["recall"] is None


def test_gold_filter_direct_vs_quasi():
    doc = Document("t", "Mr Yilmaz, a Turkish national, applied on 3 March 1997 to the Court.", spans=[
        Span(3, 9, "PERSON", {"identifier_type": "DIRECT"}),
        Span(13, 20, "DEM", {"identifier_type": "QUASI"}),
        Span(42, 54, "DATETIME", {"identifier_type": "QUASI"}),
        Span(62, 67, "ORG", {"identifier_type": "NO_MASK"}),
    ])
    pred = {"t": [(3, 9, "NAME"), (62, 67, "ORG")]}
    direct = evaluate([doc], pred, dataset="tab", gold_filter=identifier_filter(["DIRECT"])).summary()
    assert direct["gold"] == 1 and direct["any_overlap"]["recall"] == 1.0
    both = evaluate([doc], pred, dataset="tab", gold_filter=identifier_filter(["DIRECT", "QUASI"])).summary()
    assert both["gold"] == 3 and both["any_overlap"]["recall"] == round(1 / 3, 4)
    # the prediction on a NO_MASK span is a false positive
    assert both["any_overlap"]["precision"] == 0.5


def test_synthetic_titles_are_not_phi():
    doc = Document("s", "Dr. Jane Roe", spans=[Span(0, 3, "TITLE"), Span(4, 12, "PERSON")])
    s = evaluate([doc], {"s": [(4, 12, "NAME")]}, dataset="presidio-synth").summary()
    assert s["gold"] == 1 and s["any_overlap"]["recall"] == 1.0


def test_misses_file_has_text_only_when_asked(tmp_path):
    pred = {"d1": [(3, 6, "DOCTOR"), (0, 2, "NAME")]}
    report = evaluate([gold_doc()], pred, dataset="physionet", misses_path=tmp_path / "m.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert {r["kind"] for r in rows} == {"miss", "false_positive"}
    assert all("text" not in r for r in rows)
    assert len(report.misses) == 4 and report.misses[0] == {"id": "d1", "start": 11, "end": 15, "type": "NAME"}
    assert "Mary" not in json.dumps(report.summary())
    evaluate([gold_doc()], pred, dataset="physionet", misses_path=tmp_path / "t.jsonl", include_text=True)
    rows = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert rows[0]["text"] == "Mary"
    with pytest.raises(ConfigError, match="needs --misses FILE"):
        evaluate([gold_doc()], pred, dataset="physionet", include_text=True)


def test_evaluate_files(tmp_path):
    gold = tmp_path / "gold.jsonl"
    write_documents(gold, [gold_doc()])
    pred = tmp_path / "deid.jsonl"
    pred.write_text(json.dumps({"id": "d1", "text": "Dr [DOCTOR] saw Mary Smith on [DATE] in Boston.", "phi_spans": [
        {"start": 3, "end": 6, "label": "DOCTOR", "score": 0.9},
        {"start": 25, "end": 29, "label": "DATE", "score": 0.8}]}) + "\n")
    s = evaluate_files(gold, pred, dataset="physionet")
    assert s["any_overlap"]["recall"] == 0.4 and s["any_overlap"]["precision"] == 1.0
    assert s["leakage"]["leaked"] == 3 and s["leakage"]["documents_without_output"] == 0
    # another text under the gold id (another document, or one edited since): leakage would read the wrong text
    other = _pred_file(tmp_path / "other.jsonl", {"id": "d1", "text": "totally different text of other length",
                                                 "phi_spans": []})
    with pytest.raises(CorpusError, match=r"other\.jsonl:1: id='d1': the record's text is not the gold document's "
                                          r"text with its phi_spans replaced") as info:
        evaluate_files(gold, other, dataset="physionet")
    assert "Mary" not in str(info.value)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "d1", "text": "x"}) + "\n")
    with pytest.raises(CorpusError, match="no 'phi_spans'"):
        evaluate_files(gold, bad, dataset="physionet")


def _pred_file(path, *records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.mark.parametrize("records, message", [
    ([{"id": "d1", "phi_spans": [{"start": 999, "end": -5, "label": "NAME"}]}],
     r"deid\.jsonl:1: id='d1': phi_spans\[0\] \[999:-5\] is not a span"),
    ([{"id": "d1", "phi_spans": [{"start": 3, "end": 3, "label": "NAME"}]}], r"phi_spans\[0\] \[3:3\] is not a span"),
    ([{"id": "d1", "phi_spans": [{"start": True, "end": 3, "label": "NAME"}]}], r"phi_spans\[0\] needs integer"),
    ([{"id": "d1", "phi_spans": [{"start": 3, "end": 6, "label": None}]}],
     r"deid\.jsonl:1: id='d1': phi_spans\[0\] 'label' must be a label name such as 'PATIENT', got null"),
    ([{"id": "d1", "phi_spans": []}, {"id": "d1", "phi_spans": []}], r"deid\.jsonl:2: id='d1': duplicate id"),
    ([{"id": "d1", "phi_spans": [{"start": 3, "end": 6, "label": "NAME"}, {"start": 30, "end": 99, "label": "NAME"}]}],
     r"deid\.jsonl:1: id='d1': phi_spans\[1\] \[30:99\] ends past the gold document's text \(40 characters\)"),
    ([{"id": "other", "phi_spans": []}], r"none of the 1 records of deid\.jsonl has the id of one of the 1 documents"),
    ([], r"none of the 0 records"),
])
def test_predictions_that_do_not_fit_the_gold_are_errors(tmp_path, records, message):
    gold = tmp_path / "gold.jsonl"
    write_documents(gold, [gold_doc()])
    with pytest.raises(CorpusError, match=message) as info:
        evaluate_files(gold, _pred_file(tmp_path / "deid.jsonl", *records), dataset="physionet")
    assert "Mary" not in str(info.value) and "Boston" not in str(info.value)


def test_identifier_types_are_checked(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown identifier type 'QUASY' \(did you mean 'QUASI'\?\).*DIRECT, QUASI, "
                                          r"NO_MASK"):
        identifier_filter(["direct", "quasy"])
    assert identifier_filter([" direct "])(Span(0, 1, "PERSON", {"identifier_type": "DIRECT"}))
    gold = tmp_path / "gold.jsonl"
    write_documents(gold, [gold_doc()])  # PhysioNet-style gold: no identifier types at all
    pred = _pred_file(tmp_path / "deid.jsonl", {"id": "d1", "phi_spans": []})
    with pytest.raises(ConfigError, match="no gold span of gold.jsonl has one"):
        evaluate_files(gold, pred, dataset="physionet", identifier_types=["DIRECT"])


def test_cli_deid_eval_usage_and_data_errors_are_one_line(tmp_path, cli):
    gold = tmp_path / "gold.jsonl"
    write_documents(gold, [gold_doc()])
    ok = _pred_file(tmp_path / "ok.jsonl", {"id": "d1", "phi_spans": [{"start": 3, "end": 6, "label": "DOCTOR"}]})
    other = _pred_file(tmp_path / "other.jsonl", {"id": "x", "phi_spans": []})
    for args, needle in (((gold, ok, "--misses-text"), "--misses-text (include_text) needs --misses FILE"),
                         ((gold, ok, "--identifier-types", "FOO"), "unknown identifier type 'FOO'"),
                         ((gold, other), "the predictions are not of these documents")):
        res = cli("deid-eval", *args, "--dataset", "physionet")
        assert res.exit_code == 2 and needle in res.output and "Traceback" not in res.output, res.output


def test_leakage_counts_gold_strings_left_in_the_output():
    from domainfm.deid.evaluate import leakage

    gold = Document("n", "Dr. Okafor saw Ann on 7/22 at Ridgeview Hospital.",
                    spans=[Span(4, 10, "HCPName"), Span(15, 18, "PTName"), Span(22, 26, "Date"), Span(30, 48, "Location")])
    # the doctor replaced, "Ann" left, the date replaced, the hospital half replaced
    out = "Dr. Vance saw Ann on 9/01 at Ridgeview Medical."
    report = leakage([gold], {"n": out}, dataset="physionet")
    assert (report["gold_strings"], report["leaked"], report["rate"]) == (4, 1, 0.25)
    assert report["per_type"]["NAME"] == {"gold_strings": 2, "leaked": 1, "rate": 0.5}
    assert "Ann" not in json.dumps(report)  # counts only
    # strings under three characters are not counted; a missing output is counted, not scored
    short = Document("m", "Al ok", spans=[Span(0, 2, "PTName")])
    report = leakage([gold, short], {"m": "Al ok"}, dataset="physionet")
    assert report["gold_strings"] == 0 and report["documents_without_output"] == 1


def test_cli_deid_eval_warns_when_ids_only_partly_match(tmp_path, cli):
    gold = tmp_path / "gold.jsonl"
    write_documents(gold, [gold_doc(), Document("d2", "Seen by Dr. Vale today.")])
    pred = _pred_file(tmp_path / "deid.jsonl", {"id": "d1", "text": TEXT, "phi_spans": []},
                      {"id": "stray", "text": "y", "phi_spans": []})
    res = cli("deid-eval", gold, pred, "--dataset", "physionet", "-o", tmp_path / "m.json")
    assert res.exit_code == 0, res.output
    assert ("warning: 1 gold document(s) have no record in deid.jsonl (scored as finding nothing) and 1 record(s) "
            "of it match no gold id") in res.stderr
    clean = cli("deid-eval", gold, _pred_file(tmp_path / "all.jsonl", {"id": "d1", "text": TEXT, "phi_spans": []},
                                             {"id": "d2", "text": "Seen by Dr. [x] today.",
                                              "phi_spans": [{"start": 12, "end": 16, "label": "NAME"}]}),
                "--dataset", "physionet", "-o", tmp_path / "m2.json")
    assert clean.exit_code == 0 and "warning" not in clean.stderr


def test_bootstrap_intervals_resample_units():
    from domainfm.deid.evaluate import bootstrap_intervals

    # one unit: nothing to resample, however many notes it has
    one = bootstrap_intervals({"p1": [3, 4, 3, 3, 1, 4]})
    assert one["units"] == 1 and one["recall"] == [0.75, 0.75] and one["leakage"] == [0.25, 0.25]
    # a patient with everything found and one with nothing: anything between the two
    two = bootstrap_intervals({"p1": [2, 2, 2, 2, 0, 2], "p2": [0, 2, 0, 1, 2, 2]})
    assert two["recall"] == [0.0, 1.0] and two["leakage"] == [0.0, 1.0] and two["precision"] == [0.0, 1.0]
    narrow = bootstrap_intervals({f"p{i}": ([1, 1, 1, 1, 0, 1] if i % 2 else [0, 1, 0, 0, 1, 1]) for i in range(200)})
    assert 0.42 < narrow["recall"][0] < 0.47 and 0.53 < narrow["recall"][1] < 0.58  # 0.5 ± 1.645 * 0.035
    # nothing to count: no interval rather than a made-up one
    assert bootstrap_intervals({"p1": [0, 0, 0, 0, 0, 0]})["recall"] is None
    assert bootstrap_intervals({})["units"] == 0
    with pytest.raises(ConfigError, match="level must be in"):
        bootstrap_intervals({"p1": [1, 1, 1, 1, 0, 1]}, level=90)


def test_evaluate_files_intervals_resample_patients_when_every_document_has_one(tmp_path, cli):
    from domainfm.deid.evaluate import resampling_unit

    docs = [Document(f"n{i}", TEXT, {"patient_id": f"p{i // 2}"}, spans=gold_doc().spans) for i in range(4)]
    gold = tmp_path / "gold.jsonl"
    write_documents(gold, docs)
    # patient p0's two notes fully found and replaced, p1's found in part with the names left
    found = [{"start": s.start, "end": s.end, "label": "NAME"} for s in gold_doc().spans]
    pred = _pred_file(tmp_path / "deid.jsonl",
                      *({"id": f"n{i}", "text": "Dr [x] saw [x] [x] on [x] in [x].", "phi_spans": found} for i in (0, 1)),
                      *({"id": f"n{i}", "text": TEXT, "phi_spans": found[:1]} for i in (2, 3)))
    s = evaluate_files(gold, pred, dataset="physionet", intervals=True)
    spread = s["intervals"]
    assert spread["unit"] == "patient" and spread["units"] == 2 and spread["level"] == 0.9
    assert spread["recall"] == [0.2, 1.0] and spread["leakage"][0] == 0.0
    assert "intervals" not in evaluate_files(gold, pred, dataset="physionet")
    assert resampling_unit([gold_doc()]) == "document"
    # asked for patients, a document without one is its own unit, not pooled with others
    from domainfm.deid.evaluate import unit_counts

    loose = [Document("a", TEXT, spans=gold_doc().spans), Document("b", TEXT, spans=gold_doc().spans), docs[0]]
    assert len(unit_counts(loose, {}, dataset="physionet", unit="patient")) == 3
    res = cli("deid-eval", gold, pred, "--dataset", "physionet", "--intervals", "-o", tmp_path / "m.json")
    assert res.exit_code == 0, res.output
    assert "90% intervals over 2 patients: recall 0.200-1.000" in res.output
    assert json.loads((tmp_path / "m.json").read_text())["intervals"]["units"] == 2


def test_metrics_and_misses_need_their_own_paths_and_a_folder_is_no_output(cli, tmp_path):
    gold = tmp_path / "g.jsonl"
    gold.write_text(json.dumps({"id": "a", "text": "Seen by Zorblax.", "spans": [
        {"start": 8, "end": 15, "label": "NAME"}]}) + "\n")
    pred = tmp_path / "p.jsonl"
    pred.write_text(json.dumps({"id": "a", "text": "Seen by Zorblax.", "phi_spans": []}) + "\n")
    result = cli("deid-eval", gold, pred, "-o", tmp_path / "m.json", "--misses", tmp_path / "." / "m.json")
    assert result.exit_code == 2 and "-o and --misses name the same file" in result.output
    result = cli("deid-eval", gold, pred, "-o", tmp_path / "m.json", "--misses", ".")
    assert result.exit_code == 2 and "is a folder" in result.output and "Traceback" not in result.output


def test_metrics_and_misses_are_written_with_a_manifest(cli, tmp_path):
    """deid-eval and evaluate wrote no manifest: one left beside an earlier file of the same name
    went on describing that file."""
    gold = tmp_path / "g.jsonl"
    gold.write_text(json.dumps({"id": "a", "text": "Seen by Zorblax.", "spans": [
        {"start": 8, "end": 15, "label": "NAME"}]}) + "\n")
    pred = tmp_path / "p.jsonl"
    pred.write_text(json.dumps({"id": "a", "text": "Seen by Zorblax.", "phi_spans": []}) + "\n")
    (tmp_path / "m.manifest.json").write_text('{"stage": "predict", "outputs": []}')
    result = cli("deid-eval", gold, pred, "-o", tmp_path / "m.json", "--misses", tmp_path / "miss.jsonl")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "m.manifest.json").read_text())
    assert manifest["stage"] == "deid-eval"
    assert [Path(o["path"]).name for o in manifest["outputs"]] == ["m.json", "miss.jsonl"]
    assert [Path(i["path"]).name for i in manifest["inputs"]] == ["g.jsonl", "p.jsonl"]


def test_an_output_another_run_is_writing_is_refused_and_left_alone(cli, tmp_path):
    """deid-eval took no lock: two runs given one -o or --misses file interleaved their writes.
    Each output is now locked while it is written, as every other command's is."""
    import subprocess
    import sys

    from domainfm.deid.evaluate import evaluate_to_files
    from domainfm.errors import OutputError

    gold = tmp_path / "g.jsonl"
    gold.write_text(json.dumps({"id": "a", "text": "Seen by Zorblax.", "spans": [
        {"start": 8, "end": 15, "label": "NAME"}]}) + "\n")
    pred = _pred_file(tmp_path / "p.jsonl", {"id": "a", "text": "Seen by Zorblax.", "phi_spans": []})
    for locked in (tmp_path / "m.json", tmp_path / "miss.jsonl"):
        holder = subprocess.Popen(
            [sys.executable, "-c", "import sys, time\nfrom domainfm.corpus.io import OutputLock\n"
             "with OutputLock(sys.argv[1]):\n    print('LOCKED', flush=True)\n    time.sleep(60)\n", str(locked)],
            stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "LOCKED"
            result = cli("deid-eval", gold, pred, "-o", tmp_path / "m.json", "--misses", tmp_path / "miss.jsonl")
            assert result.exit_code == 2 and f"{locked.name} is being written by another" in result.output, result.output
            with pytest.raises(OutputError, match="is being written by another domainfm run"):
                evaluate_to_files(gold, pred, out=tmp_path / "m.json", misses_path=tmp_path / "miss.jsonl")
        finally:
            holder.kill()
            holder.wait()
        assert not (tmp_path / "m.json").exists() and not (tmp_path / "miss.jsonl").exists()
    summary = evaluate_to_files(gold, pred, out=tmp_path / "m.json", misses_path=tmp_path / "miss.jsonl")
    assert json.loads((tmp_path / "m.json").read_text()) == summary and summary["any_overlap"]["recall"] == 0.0
    assert [json.loads(x)["kind"] for x in (tmp_path / "miss.jsonl").read_text().splitlines()] == ["miss"]
    manifest = json.loads((tmp_path / "m.manifest.json").read_text())
    assert [Path(o["path"]).name for o in manifest["outputs"]] == ["m.json", "miss.jsonl"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.jsonl", "m.json", "m.manifest.json", "miss.jsonl", "p.jsonl"]
