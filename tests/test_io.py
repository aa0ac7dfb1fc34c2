"""Streaming JSONL: every bad line becomes a reject with its line number; counts reconcile."""

from __future__ import annotations

import json

import pytest

from domainfm.corpus import Document, read_documents
from domainfm.corpus.importing import import_corpus
from domainfm.corpus.io import DocumentWriter, rejects_path_for
from domainfm.errors import CorpusError, RecordError


def write_lines(path, lines: list[bytes]):
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.fixture()
def messy(tmp_path):
    return write_lines(tmp_path / "in.jsonl", [
        json.dumps({"id": "a", "text": "fine"}).encode(),
        b'{"id": "b", "text": "broken',
        b'{"id": "c", "text": "caf\xe9"}',  # latin-1 byte, not UTF-8
        json.dumps({"id": "a", "text": "again"}).encode(),
        b"",
        json.dumps({"id": "d", "text": 5}).encode(),
        json.dumps({"id": "e", "text": "abc", "spans": [{"start": 1, "end": 9, "label": "X"}]}).encode(),
        json.dumps({"id": "f", "text": "ok", "meta": {"x": 1}}).encode(),
    ])


def test_read_documents_streams_valid_and_collects_rejects(messy):
    rejects = []
    docs = list(read_documents(messy, rejects=rejects))
    assert [d.id for d in docs] == ["a", "f"]
    by_line = {r.location: r.reason for r in rejects}
    assert set(by_line) == {"in.jsonl:2", "in.jsonl:3", "in.jsonl:4", "in.jsonl:6", "in.jsonl:7"}
    assert "broken JSON" in by_line["in.jsonl:2"]
    assert "not valid UTF-8" in by_line["in.jsonl:3"]
    assert "duplicate id" in by_line["in.jsonl:4"]
    assert "'text' must be a string" in by_line["in.jsonl:6"]
    assert "must satisfy 0 <= start < end" in by_line["in.jsonl:7"]


def test_read_documents_without_reject_sink_raises_on_first_bad_record(messy):
    with pytest.raises(RecordError, match="in.jsonl:2"):
        list(read_documents(messy))


def test_import_jsonl_reconciles_and_writes_reject_file(messy, tmp_path):
    out = tmp_path / "out.jsonl"
    result = import_corpus("jsonl", messy, out)
    c = result.counts
    assert (c.read, c.written, c.rejected) == (7, 2, 5) and c.reconciles
    rejects = [json.loads(x) for x in rejects_path_for(out).read_text().splitlines()]
    assert len(rejects) == 5
    assert all({"location", "id", "reason", "raw"} <= set(r) for r in rejects)
    # The raw record is kept so nothing is lost, including undecodable bytes.
    assert any("\\xe9" in r["raw"] for r in rejects)
    manifest = json.loads(result.manifest.read_text())
    assert manifest["counts"]["read"] == 7 and manifest["counts"]["reconciles"]


def test_clean_import_leaves_no_reject_file(tmp_path):
    src = write_lines(tmp_path / "in.jsonl", [json.dumps({"id": "a", "text": "x"}).encode()])
    result = import_corpus("jsonl", src, tmp_path / "out.jsonl")
    assert result.rejects is None and not rejects_path_for(tmp_path / "out.jsonl").exists()


def test_utf8_bom_is_accepted(tmp_path):
    src = tmp_path / "bom.jsonl"
    src.write_bytes(b"\xef\xbb\xbf" + json.dumps({"id": "a", "text": "x"}).encode() + b"\n")
    assert [d.id for d in read_documents(src)] == ["a"]


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CorpusError, match="no such file"):
        list(read_documents(tmp_path / "nope.jsonl"))
    with pytest.raises(CorpusError, match="is a folder, not a file"):
        list(read_documents(tmp_path))


def test_interrupted_write_leaves_no_partial_output(tmp_path):
    out = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError):
        with DocumentWriter(out) as writer:
            writer.write(Document("a", "x"))
            raise RuntimeError("killed")
    assert not out.exists() and not list(tmp_path.iterdir())


def test_reading_is_streaming(tmp_path):
    """The reader yields the first document before it has read the rest of the file."""
    src = tmp_path / "big.jsonl"
    with open(src, "w") as fh:
        fh.write(json.dumps({"id": "first", "text": "x"}) + "\n")
        fh.write("this line is broken and is only reached later\n")
    docs = read_documents(src)
    assert next(docs).id == "first"  # no error yet: line 2 has not been read
    with pytest.raises(RecordError):
        next(docs)


def test_counts_group_reject_reasons_and_merge():
    from domainfm.corpus.io import Counts

    a = Counts(read=3, written=1)
    a.add_reject("line is not valid UTF-8 (bad byte at position 3)")
    a.add_reject("line is not valid UTF-8 (bad byte at position 9)")
    assert a.rejected == 2 and a.reasons == {"line is not valid UTF-8": 2} and a.reconciles
    b = Counts(read=2, written=1)
    b.add_reject("broken JSON (Expecting value at column 1)")
    total = a.merge(b)
    assert (total.read, total.written, total.rejected) == (5, 2, 3) and total.reconciles
    assert total.reasons == {"line is not valid UTF-8": 2, "broken JSON": 1}
