"""deid-eval reads its files one document at a time: its memory does not grow with the corpus,
its numbers and misses file are those of the in-memory functions, and its errors come in the
order the checks have always run (each check over both whole files before the next). Made-up
notes only."""

from __future__ import annotations

import json
import tracemalloc

import pytest

from domainfm.corpus import Document, Span, read_documents, write_documents
from domainfm.deid.evaluate import (bootstrap_intervals, evaluate, evaluate_files, leakage, read_deid_output,
                                    unit_counts)
from domainfm.errors import ConfigError, CorpusError, OutputError


def _note(i: int) -> tuple[str, list[tuple[int, int, str]]]:
    name, date = f"Zorvack{i % 97}", f"7/{i % 28 + 1}/2021"
    text = f"Seen by Dr {name} on {date} in ward {i % 9}. Call 555-01{i % 100:02d} if worse."
    day, phone = text.index(date), text.index("555")
    return text, [(11, 11 + len(name), "DOCTOR"), (day, day + len(date), "DATE"), (phone, phone + 7, "PHONE")]


def _pair(tmp_path, n: int, *, patients: bool = True):
    """``n`` made-up notes with gold spans and a deid output that finds some of them, plus a
    false positive per note and a record no gold note has."""
    gold, pred = tmp_path / "gold.jsonl", tmp_path / "deid.jsonl"
    with gold.open("w", encoding="utf-8") as gold_out, pred.open("w", encoding="utf-8") as pred_out:
        for i in range(n):
            text, spans = _note(i)
            record = {"id": f"n{i:05d}", "text": text, "spans": [{"start": a, "end": b, "label": label}
                                                                   for a, b, label in spans]}
            if patients or i % 5:
                record["meta"] = {"patient_id": f"P{i % (n // 4 + 1)}"}
            gold_out.write(json.dumps(record) + "\n")
            if i % 7 == 3:
                continue  # a gold note the detector never saw
            found = spans[:2] if i % 3 else spans[:1]
            out, cursor = "", 0
            for a, b, label in found:
                out, cursor = out + text[cursor:a] + f"[{label}]", b
            pred_out.write(json.dumps({"id": f"n{i:05d}", "text": out + text[cursor:], "phi_spans": [
                {"start": a, "end": b, "label": label, "score": 0.9} for a, b, label in found]
                + [{"start": 0, "end": 4, "label": "NAME"}]}) + "\n")
        pred_out.write(json.dumps({"id": "elsewhere", "phi_spans": []}) + "\n")
    return gold, pred


def test_memory_does_not_hold_the_corpus(tmp_path):
    """The whole gold corpus, every prediction and every miss were held (9 MB traced for these
    3,000 notes); now the ids and running totals are (under 1 MB)."""
    gold, pred = _pair(tmp_path, 3000)
    evaluate_files(gold, pred, misses_path=tmp_path / "warm.jsonl")  # the imports it makes are not the corpus
    tracemalloc.start()
    try:
        summary = evaluate_files(gold, pred, misses_path=tmp_path / "misses.jsonl", include_text=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert summary["docs"] == 3000 and summary["misses"] > 3000
    assert peak < 3 * 2**20, f"{peak / 2**20:.1f} MB traced for 3,000 notes"


@pytest.mark.parametrize("patients", [True, False])
def test_streamed_scores_are_those_of_the_in_memory_functions(tmp_path, patients):
    gold, pred = _pair(tmp_path, 120, patients=patients)
    summary = evaluate_files(gold, pred, misses_path=tmp_path / "misses.jsonl", include_text=True, intervals=True)
    docs = list(read_documents(gold))
    predicted, texts, _ = read_deid_output(pred)
    report = evaluate(docs, predicted, misses_path=tmp_path / "expected.jsonl", include_text=True)
    expected = {**report.summary(), "leakage": leakage(docs, texts), "unmatched_prediction_ids": 1}
    unit = "patient" if patients else "document"
    expected["intervals"] = {"unit": unit, **bootstrap_intervals(unit_counts(docs, predicted, output_texts=texts,
                                                                             unit=unit))}
    assert json.dumps(summary) == json.dumps(expected)
    assert (tmp_path / "misses.jsonl").read_bytes() == (tmp_path / "expected.jsonl").read_bytes()
    kinds = [json.loads(line)["kind"] for line in (tmp_path / "misses.jsonl").read_text().splitlines()]
    assert kinds == sorted(kinds, key=lambda kind: kind != "miss") and "false_positive" in kinds


TEXT = "Seen by Dr Zorvack Quill on 7/22."


def _files(tmp_path, gold_docs, *records):
    gold, pred = tmp_path / "gold.jsonl", tmp_path / "deid.jsonl"
    write_documents(gold, gold_docs)
    pred.write_text("".join(json.dumps(r) + "\n" for r in records))
    return gold, pred


def test_each_check_covers_both_files_before_the_next_ones_error(tmp_path):
    """Read in one pass, an error is still the one that reading each file whole first and then
    checking it found: a broken gold line at the end comes before a prediction's label error at
    the start, and a span past its text (note 3) before an unknown label (note 1)."""
    docs = [Document(f"n{i}", TEXT, spans=[Span(11, 18, "DOCTOR")]) for i in range(4)]
    gold, pred = _files(tmp_path, docs, {"id": "n0", "phi_spans": [{"start": 11, "end": 18, "label": "PERSON"}]},
                        {"id": "n3", "phi_spans": [{"start": 11, "end": 99, "label": "DOCTOR"}]})
    with gold.open("a") as fh:
        fh.write("{broken\n")
    misses = tmp_path / "misses.jsonl"
    with pytest.raises(CorpusError, match=r"gold\.jsonl:5.*broken JSON"):
        evaluate_files(gold, pred, misses_path=misses, include_text=True)
    write_documents(gold, docs)
    with pytest.raises(CorpusError, match=r"deid\.jsonl:2: id='n3': phi_spans\[0\] \[11:99\] ends past"):
        evaluate_files(gold, pred, misses_path=misses, include_text=True)
    pred.write_text(json.dumps({"id": "n0", "phi_spans": [{"start": 11, "end": 18, "label": "PERSON"}]}) + "\n")
    with pytest.raises(ConfigError, match=r"no gold span of gold\.jsonl has one"):
        evaluate_files(gold, pred, identifier_types=["DIRECT"])
    with pytest.raises(ConfigError, match=r"deid\.jsonl:1: id='n0': phi_spans\[0\]: label 'PERSON'"):
        evaluate_files(gold, pred, misses_path=misses, include_text=True)
    # the misses went to temporary files as they were found: none is left, nor a misses file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deid.jsonl", "gold.jsonl"]


def test_a_misses_path_that_cannot_be_written_fails_after_the_data_checks(tmp_path):
    docs = [Document("n0", TEXT, spans=[Span(11, 18, "Surgeon")])]
    gold, pred = _files(tmp_path, docs, {"id": "n0", "phi_spans": []})
    (tmp_path / "taken").write_text("a file, not a folder")
    with pytest.raises(ConfigError, match="label 'Surgeon'"):
        evaluate_files(gold, pred, dataset="physionet", misses_path=tmp_path / "taken" / "misses.jsonl")
    write_documents(gold, [Document("n0", TEXT, spans=[Span(11, 18, "HCPName")])])
    with pytest.raises(OutputError, match=r"taken/misses\.jsonl: cannot write"):
        evaluate_files(gold, pred, dataset="physionet", misses_path=tmp_path / "taken" / "misses.jsonl")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deid.jsonl", "gold.jsonl", "taken"]


def test_bootstrap_intervals_draw_blocks_of_resamples_with_the_draws_of_one_call():
    # all 2,000 resamples at once took 2,000 x units x 6 numbers: 1.9 GB for 20,000 units
    import numpy as np

    rng = np.random.default_rng(1)
    counts = {f"u{i}": [int(x) for x in rng.integers(0, 4, 6)] for i in range(300)}
    table = np.array(list(counts.values()), dtype=float)
    sums = table[np.random.default_rng(0).integers(0, 300, size=(2000, 300))].sum(axis=1)
    got = bootstrap_intervals(counts)
    for name, (hit, total) in {"recall": (0, 1), "precision": (2, 3), "leakage": (4, 5)}.items():
        ratio = sums[sums[:, total] > 0, hit] / sums[sums[:, total] > 0, total]
        assert got[name] == [round(float(np.percentile(ratio, 5)), 4), round(float(np.percentile(ratio, 95)), 4)]
    tracemalloc.start()
    try:
        bootstrap_intervals({f"d{i}": [1, 2, 1, 1, 1, 2] for i in range(20_000)})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 150e6, peak
