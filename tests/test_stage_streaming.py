"""Stages read their input as a stream: a record is processed before the rest of the file is
parsed, so memory stays bounded by a record, not by the corpus (see
``tests/benchmarks/bench_stage_memory.py`` for the peak RSS of each command by corpus size)."""

from __future__ import annotations

import json
import tracemalloc

import pytest

from domainfm.corpus.importers.labelstudio import LabelStudioOptions, read_labelstudio
from domainfm.corpus.importing import import_corpus
from domainfm.errors import CorpusError


def _task(i: int, text: str = "Seen by Dr Alvarado on 3/4/2021.", *, span: bool = True) -> dict:
    result = [{"id": "c", "from_name": "ward", "to_name": "text", "type": "choices", "value": {"choices": ["renal"]}}]
    if span:
        result.append({"id": "r0", "from_name": "phi", "to_name": "text", "type": "labels",
                       "value": {"start": 11, "end": 19, "text": "Alvarado", "labels": ["DOCTOR"]}})
    return {"id": i, "data": {"text": text, "doc_id": f"n{i}"},
            "annotations": [{"id": i, "completed_by": 1, "was_cancelled": False, "result": result}]}


def test_labelstudio_tasks_are_read_before_the_rest_of_the_export_is_parsed(tmp_path):
    export = tmp_path / "export.json"
    # two good tasks, then a file that stops mid-task: parsed whole, nothing could be read
    export.write_text("[\n" + json.dumps(_task(1)) + ",\n" + json.dumps(_task(2)) + ',\n{"id": 3, "data": {',
                      encoding="utf-8")
    items = read_labelstudio(export, LabelStudioOptions())
    assert next(items).doc.id == "n1"
    assert next(items).doc.id == "n2"
    with pytest.raises(CorpusError, match="not a Label Studio JSON export .JSONDecodeError"):
        next(items)
    # the import stops and writes nothing, as when the broken file was refused up front
    with pytest.raises(CorpusError, match="not a Label Studio JSON export"):
        import_corpus("labelstudio", export, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_labelstudio_import_memory_stays_below_the_export_size(tmp_path, monkeypatch):
    from domainfm.corpus.importers import labelstudio

    export = tmp_path / "export.json"
    with export.open("w", encoding="utf-8") as fh:  # ~2 MB of tasks, written as Label Studio does (indented)
        json.dump([_task(i, "Seen on 3/4/2021. " + "Stable, no change. " * 300, span=False)
                   for i in range(300)], fh, indent=1)
    size = export.stat().st_size
    monkeypatch.setattr(labelstudio._TaskReader, "_READ", 1 << 14)  # 1 MiB reads would be half the file
    tracemalloc.start()
    try:
        n = sum(1 for _ in read_labelstudio(export, LabelStudioOptions()))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert n == 300
    # parsed whole, the tasks took several times the file's size; read a piece at a time, a few
    # reads' worth of buffer and one task
    assert peak < size / 4, (peak, size)


@pytest.mark.parametrize("text", [
    "[]", " [ 1 , 2.5e10 ,\n3 ] \n", '{"data": {"text": "x"}}', "\ufeff[1, 2]", "[1,]", "[1] x", "[", "",
    '"no"', '["\\u00e9", {"a": [1, {"b": null}]}]',
])
def test_labelstudio_reader_reads_what_json_loads_reads(tmp_path, monkeypatch, text):
    """The piecewise reader against ``json.loads`` of the whole file, with reads of 1 to 7 bytes
    that cut every token (a number, a string, the byte-order mark) between two reads."""
    from domainfm.corpus.importers import labelstudio

    path = tmp_path / "export.json"
    path.write_bytes(text.encode("utf-8"))
    try:
        whole = json.loads(text.removeprefix("\ufeff"))
        expected = [whole] if isinstance(whole, dict) else whole if isinstance(whole, list) else TypeError
    except json.JSONDecodeError as exc:
        expected = exc.msg
    for size in range(1, 8):
        monkeypatch.setattr(labelstudio._TaskReader, "_READ", size)
        try:
            got = list(labelstudio._tasks(path))
        except CorpusError as exc:
            got = str(exc)
        if isinstance(expected, list):
            assert got == expected, size
        elif expected is TypeError:
            assert "expected a JSON list of tasks, got str" in got
        else:
            assert f"(JSONDecodeError: {expected})" in got, (size, got)


def test_labelstudio_decoding_errors_count_from_the_start_of_the_file(tmp_path, monkeypatch):
    from domainfm.corpus.importers import labelstudio

    path = tmp_path / "export.json"
    path.write_bytes(b'\xef\xbb\xbf["abc", "\xe2\x82"]')  # a character cut short at byte 9 (after the mark)
    monkeypatch.setattr(labelstudio._TaskReader, "_READ", 4)
    with pytest.raises(CorpusError, match=r"can't decode bytes in position 9-10: invalid continuation byte"):
        list(labelstudio._tasks(path))


def _pool_and_suggestions(n: int):
    from domainfm.corpus.document import Document
    from domainfm.label.assist import Suggestion

    docs = [Document(f"p{i}", f"Pool note {i}: follow-up in the renal clinic, stable.\nPlan:\u2028none.") for i in range(n)]
    suggestions = [Suggestion(d.id, "renal", 0.61, [{"label": "renal", "score": 0.61}, {"label": "day", "score": 0.39}],
                              rank=n - i) for i, d in enumerate(docs)]
    return docs, suggestions


@pytest.mark.parametrize("n", [0, 1, 3])
def test_label_studio_export_written_piecewise_is_the_json_dump_of_its_tasks(tmp_path, n):
    from domainfm.label.export import to_labelstudio, write_export

    docs, suggestions = _pool_and_suggestions(n)
    path = write_export("labelstudio", tmp_path / "s.labelstudio.json", docs, suggestions, classes=["day", "renal"],
                        multilabel=False, model_version="v1")
    expected = json.dumps(to_labelstudio(docs, suggestions, model_version="v1"), ensure_ascii=False, indent=1) + "\n"
    assert path.read_text(encoding="utf-8") == expected


def test_label_exports_are_written_one_task_at_a_time(tmp_path):
    from domainfm.label.export import EXPORT_FORMATS, export_path_for, write_export

    docs, suggestions = _pool_and_suggestions(3000)
    for kind in EXPORT_FORMATS:
        tracemalloc.start()
        try:
            write_export(kind, export_path_for(tmp_path / "s.jsonl", kind), docs, suggestions,
                         classes=["day", "renal"], multilabel=False, model_version="v1")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        # all 3,000 tasks (or rows) built first took several MB beside the pool they copy
        assert peak < 600_000, (kind, peak)


@pytest.mark.parametrize("n", [0, 1, 3])
@pytest.mark.parametrize("as_annotations", [False, True])
def test_span_exports_are_the_json_dump_of_their_tasks_written_one_at_a_time(tmp_path, n, as_annotations):
    from domainfm.corpus.document import Document, Span
    from domainfm.label.export import spans_to_labelstudio, spans_to_prodigy, write_span_export

    docs = [Document(f"p{i}", f"Seen for asthma {i}.\nPlan:\u2028none.", spans=[Span(9, 15, "DISEASE")]) for i in range(n)]
    predicted = [[Span(9, 15, "DISEASE", {"confidence": 0.7})] for _ in docs]
    ranks, scores = list(range(n))[::-1], [0.5] * n
    path = write_span_export("labelstudio", tmp_path / "s.labelstudio.json", docs, labels=["DISEASE"],
                             predicted=predicted, ranks=ranks, scores=scores, as_annotations=as_annotations)
    expected = spans_to_labelstudio(docs, predicted=predicted, ranks=ranks, scores=scores,
                                    as_annotations=as_annotations)
    assert path.read_text(encoding="utf-8") == json.dumps(expected, ensure_ascii=False, indent=1) + "\n"
    path = write_span_export("prodigy", tmp_path / "s.prodigy.jsonl", docs, labels=["DISEASE"], predicted=predicted,
                             ranks=ranks, scores=scores)
    tasks = spans_to_prodigy(docs, predicted=predicted, ranks=ranks, scores=scores)
    assert path.read_text(encoding="utf-8") == "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in tasks)


def test_span_exports_hold_one_task_at_a_time(tmp_path):
    from domainfm.corpus.document import Document, Span
    from domainfm.label.export import write_span_export

    docs = [Document(f"p{i}", f"Seen for asthma {i}, stable on follow-up in clinic.", spans=[Span(9, 15, "DISEASE")])
            for i in range(3000)]
    predicted = [d.spans for d in docs]
    for kind in ("labelstudio", "prodigy"):
        tracemalloc.start()
        try:
            write_span_export(kind, tmp_path / f"s.{kind}.json", docs, labels=["DISEASE"], predicted=predicted)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 600_000, (kind, peak)  # the task list built first took several MB
