"""``import tab`` on malformed records: a field of the wrong type rejects that record (or that
annotator's version) with the field named; nothing is coerced, the rest is imported."""

from __future__ import annotations

import json

import pytest

from domainfm.corpus import read_documents
from domainfm.corpus.importing import import_corpus

TEXT = "The applicant Ann Lee was born in 1961."
PERSON = {"entity_type": "PERSON", "start_offset": 14, "end_offset": 21, "span_text": "Ann Lee"}


def _run(src, tmp_path, **options):
    result = import_corpus("tab", src, tmp_path / "out.jsonl", options)
    assert result.counts.reconciles
    rejects = [json.loads(x) for x in result.rejects.read_text().splitlines()] if result.rejects else []
    return list(read_documents(result.out)), rejects


def _line(doc_id, **fields):
    return {"doc_id": doc_id, "text": TEXT, "entities": [PERSON], **fields}


@pytest.mark.parametrize("bad, reason", [
    (_line("b", metadata="Ann Lee"), "'metadata' must be an object, got a string"),
    (_line("b", metadata={"provenance": ["x"]}), "'metadata.provenance' must be an object, got a list"),
    (_line("b", entities=[{**PERSON, "start_offset": True}]), "entity 0 needs integer 'start_offset'/'end_offset'"),
    (_line("b", entities=[{**PERSON, "end_offset": "21"}]), "entity 0 needs integer 'start_offset'/'end_offset'"),
    (_line("b", entities=[{**PERSON, "start_offset": 14.9}]), "entity 0 needs integer 'start_offset'/'end_offset'"),
    (_line("b", entities=[{**PERSON, "entity_type": None}]), "and a string 'entity_type'"),
    (_line("b", entities=["Ann Lee"]), "entity 0 needs integer"),
], ids=["metadata-str", "provenance-list", "offset-bool", "offset-str", "offset-float", "type-null",
        "entity-str"])
def test_jsonl_record_with_a_wrong_type_is_rejected_alone(bad, reason, tmp_path):
    src = tmp_path / "tab.jsonl"
    src.write_text(json.dumps(_line("good")) + "\n" + json.dumps(bad) + "\n")
    docs, rejects = _run(src, tmp_path)
    assert [d.id for d in docs] == ["good"] and [(s.start, s.end) for s in docs[0].spans] == [(14, 21)]
    assert len(rejects) == 1 and reason in rejects[0]["reason"] and rejects[0]["location"] == "tab.jsonl:2"
    assert "Ann" not in rejects[0]["reason"]


def _original(doc_id, annotations, **fields):
    return {"doc_id": doc_id, "text": TEXT, "annotations": annotations, **fields}


@pytest.mark.parametrize("bad, reason", [
    (_original("b", {"ann1": ["x"]}), "annotations.ann1 must be an object with an 'entity_mentions' list, got a list"),
    (_original("b", {"ann1": {"entity_mentions": None}}), "annotations.ann1.entity_mentions must be a list, got null"),
    (_original("b", {"ann1": {}}), "annotations.ann1.entity_mentions must be a list, got null"),
    (_original("b", {"ann1": {"entity_mentions": [{**PERSON, "start_offset": 14.0}]}}),
     "entity 0 needs integer 'start_offset'/'end_offset'"),
    (_original("b", {"ann1": {"entity_mentions": []}}, score=float("nan")), "score is NaN or infinite"),
], ids=["entry-list", "mentions-null", "mentions-missing", "offset-float", "nan"])
def test_original_record_with_a_wrong_type_is_rejected_alone(bad, reason, tmp_path):
    src = tmp_path / "echr.json"
    src.write_text(json.dumps([_original("good", {"ann1": {"entity_mentions": [PERSON]}}), bad]))
    docs, rejects = _run(src, tmp_path)
    assert [d.id for d in docs] == ["good"] and len(docs[0].spans) == 1
    assert len(rejects) == 1 and reason in rejects[0]["reason"] and rejects[0]["location"] == "echr.json[1]"
    assert "Ann" not in rejects[0]["reason"]


def test_annotator_all_rejects_only_the_bad_annotators_version(tmp_path):
    src = tmp_path / "echr.json"
    src.write_text(json.dumps([_original("d", {"ann1": {"entity_mentions": [PERSON]}, "ann2": {"entity_mentions": None},
                                               "ann3": {"entity_mentions": []}})]))
    docs, rejects = _run(src, tmp_path, annotator="all")
    assert [(d.id, len(d.spans)) for d in docs] == [("d#ann1", 1), ("d#ann3", 0)]
    assert [(r["id"], r["reason"]) for r in rejects] == [
        ("d#ann2", "annotations.ann2.entity_mentions must be a list, got null")]


def test_a_pretty_printed_object_and_truncated_json_are_one_clear_error(tmp_path):
    from domainfm.errors import CorpusError

    pretty = tmp_path / "one.json"
    pretty.write_text(json.dumps(_line("d1"), indent=2))
    with pytest.raises(CorpusError, match=r"one\.json: a JSON object written over several lines.*JSON list"):
        _run(pretty, tmp_path)
    cut = tmp_path / "cut.json"
    cut.write_text('[{"doc_id": "d1", "text": "Applicant')
    with pytest.raises(CorpusError, match=r"cut\.json:1: not a valid TAB JSON file \(Unterminated string.* column"):
        _run(cut, tmp_path)
    jsonl = tmp_path / "lines.jsonl"
    jsonl.write_text("{\"broken\n" + json.dumps(_line("d2")) + "\n")  # a broken first line is rejected alone
    docs, rejects = _run(jsonl, tmp_path)
    assert [d.id for d in docs] == ["d2"] and len(rejects) == 1


@pytest.mark.parametrize("name, body", [
    ("echr.json", json.dumps([_original("d", {"ann1": {"entity_mentions": [PERSON]}})])),
    ("pretty.json", json.dumps([_original("d", {"ann1": {"entity_mentions": [PERSON]}})], indent=2)),
    ("tab.jsonl", json.dumps(_line("d")) + "\n"),
], ids=["original", "original-indented", "jsonl"])
def test_a_byte_order_mark_is_read_past_in_every_layout(name, body, tmp_path):
    src = tmp_path / name
    src.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))  # saved by a Windows editor
    docs, rejects = _run(src, tmp_path)
    assert [(d.id, [(s.start, s.end) for s in d.spans]) for d in docs] == [("d", [(14, 21)])] and not rejects
    assert docs[0].text == TEXT


def test_an_integer_id_is_its_decimal_string_and_a_boolean_is_refused(tmp_path):
    # the rule of every stage; a boolean is not an integer
    src = tmp_path / "tab.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in [
        {"metadata": {"data_id": 17}, "text": TEXT, "entities": [PERSON]},
        {"metadata": {"provenance": {"doc_id": 0}}, "text": TEXT, "entities": []},
        _line(18),
        _line(True),
    ]) + "\n")
    docs, rejects = _run(src, tmp_path)
    assert [d.id for d in docs] == ["17", "0", "18"]
    assert [(r["location"], r["reason"]) for r in rejects] == [
        ("tab.jsonl:4", "no string or integer 'metadata.data_id', 'metadata.provenance.doc_id' or 'doc_id' to use as id")]
    original = tmp_path / "echr.json"
    original.write_text(json.dumps([_original(19, {"ann1": {"entity_mentions": [PERSON]}}),
                                    _original(False, {"ann1": {"entity_mentions": []}})]))
    docs, rejects = _run(original, tmp_path, annotator="all")
    assert [(d.id, d.meta["doc_id"]) for d in docs] == [("19#ann1", "19")]
    assert [(r["location"], r["reason"]) for r in rejects] == [
        ("echr.json[1]", "expected an object with a string or integer 'doc_id'")]


def test_a_mention_listed_twice_or_crossing_is_merged_and_counted(tmp_path):
    twice = {**PERSON, "span_id": "m2", "identifier_type": "QUASI"}
    crossing = {"entity_type": "PERSON", "start_offset": 18, "end_offset": 25, "span_text": "Lee was"}
    src = tmp_path / "tab.jsonl"
    src.write_text(json.dumps(_line("d", entities=[{**PERSON, "span_id": "m1", "identifier_type": "DIRECT"},
                                                   twice, crossing])) + "\n")
    result = import_corpus("tab", src, tmp_path / "out.jsonl")
    assert result.counts.rejected == 0 and (result.repaired, result.repaired_spans) == (1, 1)
    (doc,) = read_documents(result.out)
    assert [(s.start, s.end, s.label, s.attrs) for s in doc.spans] == [
        (14, 25, "PERSON", {"identifier_type": "DIRECT", "mention_id": "m1",
                            "merged_from": [[14, 21], [14, 21], [18, 25]],
                            "merged_attrs": [{"identifier_type": "DIRECT", "mention_id": "m1"},
                                             {"identifier_type": "QUASI", "mention_id": "m2"}, {}]})]
