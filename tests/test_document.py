"""The document model: validation table, round trips, overlap rules, property tests."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domainfm.corpus import Document, Span, read_documents, write_documents
from domainfm.corpus.document import merge_crossing_spans
from domainfm.errors import RecordError

GOOD = {"id": "d1", "text": "Seen by Dr. Lee on 7/22.", "meta": {"patient_id": "p1"}, "label": "x",
        "labels": ["a", "b"], "spans": [{"start": 12, "end": 15, "label": "DOCTOR", "attrs": {}}]}


def with_(**changes):
    record = {**GOOD, **changes}
    return {k: v for k, v in record.items() if v is not ...}


@pytest.mark.parametrize(
    "record, message",
    [
        ([1, 2], "expected a JSON object"),
        (with_(id=...), "field 'id' must be a non-empty string"),
        (with_(id=""), "field 'id' must be a non-empty string"),
        (with_(id=7.0), "field 'id' must be a non-empty string, got a number"),
        (with_(id=True), "field 'id' must be a non-empty string, got a boolean"),
        (with_(text=None), "field 'text' must be a string, got null"),
        (with_(text=["a"]), "field 'text' must be a string, got a list"),
        (with_(meta=[1]), "field 'meta' must be an object"),
        (with_(label=3), "field 'label' must be a string or null"),
        (with_(labels="a"), "field 'labels' must be a list of strings"),
        (with_(spans={}), "field 'spans' must be a list"),
        (with_(spans=[{"start": 0, "end": 99, "label": "X"}]), "span 0 [0:99] must satisfy"),
        (with_(spans=[{"start": 5, "end": 5, "label": "X"}]), "span 0 [5:5] must satisfy"),
        (with_(spans=[{"start": -1, "end": 2, "label": "X"}]), "span 0 [-1:2] must satisfy"),
        (with_(spans=[{"start": "0", "end": 2, "label": "X"}]), "span 0 field 'start' must be an integer, got a string"),
        (with_(spans=[{"start": True, "end": 2, "label": "X"}]), "must be an integer, got a boolean"),
        (with_(spans=[{"start": 0, "end": 2, "label": ""}]), "span 0 field 'label' must be a non-empty string"),
        (with_(spans=[{"start": 0, "end": 2, "label": "  "}]), "span 0 field 'label' must be a non-empty string"),
        (with_(spans=[{"start": 0, "end": 2, "label": "X", "kind": 1}]), "span 0 has 1 unknown field(s), not quoted"),
        (with_(spans=[{"start": 0, "end": 2, "label": "X", "lable": 1}]), "unknown field(s) ['lable'] (did you mean 'label'?)"),
        (with_(spans=[{"start": 0, "end": 4, "label": "X"}, {"start": 2, "end": 6, "label": "X"}]), "cross each other"),
        (with_(spans=[{"start": 0, "end": 4, "label": "X"}, {"start": 0, "end": 4, "label": "X"}]), "listed twice"),
        (with_(text="bad \ud800 surrogate", spans=[]), "unpaired UTF-16 surrogate"),
        (with_(id="n\ud800"), "field 'id' contains an unpaired UTF-16 surrogate"),
        (with_(meta={"ward": ["A", "\udfff"]}), "field 'meta' contains an unpaired UTF-16 surrogate"),
        (with_(labels=["a\ud800"]), "field 'labels' contains an unpaired UTF-16 surrogate"),
        (with_(spans=[{"start": 0, "end": 2, "label": "X\ud800"}]), "field 'spans' contains an unpaired"),
        (with_(extra=1), "1 unknown field(s), not quoted (a key may hold data)"),
        (with_(txet="x"), "unknown field(s) ['txet'] (did you mean 'text'?)"),
        (with_(phi_spans={}), "field 'phi_spans' must be a list or null"),
        (with_(phi_spans=[{"start": "1", "end": 2, "label": "NAME"}]), "phi_spans 0 must be an object"),
    ],
)
def test_invalid_records_are_named_and_explained(record, message):
    with pytest.raises(RecordError) as info:
        Document.from_dict(record, location="f.jsonl:3")
    assert message in str(info.value)
    assert str(info.value).startswith("f.jsonl:3")


def test_an_integer_id_is_its_decimal_string_in_every_stage():
    assert Document.from_dict(with_(id=7)).id == "7"


def test_keys_that_may_be_data_are_never_quoted():
    """A careless export can write data as keys: {"Zorblax Quintavius 617-555-0199": 1}. Only a
    key a typo away from a field of the document model is named."""
    canary = "Zorblax Quintavius 617-555-0199"
    for record in (with_(**{canary: 1}), with_(spans=[{"start": 0, "end": 2, "label": "X", canary: 1}])):
        with pytest.raises(RecordError) as info:
            Document.from_dict(record)
        assert "Zorblax" not in str(info.value) and "unknown field(s), not quoted" in str(info.value)


def test_error_messages_never_quote_the_text():
    secret = "John Smith 555-12-3456"
    with pytest.raises(RecordError) as info:
        Document.from_dict(with_(text=secret, spans=[{"start": 0, "end": 500, "label": "X"}]))
    assert "John" not in str(info.value) and "555" not in str(info.value)


@pytest.mark.parametrize(
    "spans",
    [
        [Span(0, 10, "X"), Span(2, 5, "X")],  # nested, same label
        [Span(0, 4, "X"), Span(2, 6, "Y")],  # crossing, different layers
        [Span(0, 4, "X"), Span(0, 4, "Y")],  # same range, two labels
        [Span(0, 4, "X"), Span(4, 8, "X")],  # adjacent
        [Span(0, 10, "X"), Span(0, 10, "Y"), Span(0, 3, "X"), Span(3, 10, "X")],
    ],
)
def test_allowed_overlaps(spans):
    Document("d", "0123456789", spans=spans).validate()


def test_round_trip_preserves_everything(tmp_path):
    doc = Document.from_dict(GOOD)
    path = tmp_path / "c.jsonl"
    write_documents(path, [doc])
    (back,) = list(read_documents(path))
    assert back == doc and back.to_dict() == doc.to_dict()
    assert back.span_text(back.spans[0]) == "Lee"


def test_deid_output_with_phi_spans_is_a_valid_document(tmp_path):
    record = with_(phi_spans=[{"start": 12, "end": 15, "label": "DOCTOR", "score": 0.9}])
    doc = Document.from_dict(record)
    assert doc.phi_spans == record["phi_spans"] and doc.to_dict()["phi_spans"] == record["phi_spans"]
    assert "phi_spans" not in Document.from_dict(GOOD).to_dict()  # only de-identified documents carry it


@st.composite
def documents(draw):
    text = draw(st.text(st.characters(blacklist_categories=("Cs",)), max_size=60))
    spans = []
    if text:
        for _ in range(draw(st.integers(0, 4))):
            start = draw(st.integers(0, len(text) - 1))
            end = draw(st.integers(start + 1, len(text)))
            spans.append(Span(start, end, draw(st.sampled_from(["A", "B", "C"]))))
    doc = Document(draw(st.text(min_size=1, max_size=8).filter(str.strip)), text,
                   {"k": draw(st.integers())}, spans=spans)
    try:
        doc.validate()
    except RecordError:
        doc.spans = []  # random same-label spans may cross; the rule itself is tested above
    return doc


@settings(max_examples=60, deadline=None)
@given(doc=documents())
def test_any_valid_document_round_trips_through_jsonl(tmp_path_factory, doc):
    path = tmp_path_factory.mktemp("rt") / "c.jsonl"
    write_documents(path, [doc])
    (back,) = list(read_documents(path))
    assert back.to_dict() == doc.to_dict()
    for span in back.spans:
        assert back.span_text(span) == doc.text[span.start:span.end]


def _undo(spans):
    """The spans merge_crossing_spans was given, rebuilt from what it kept (merged_from, merged_attrs)."""
    out = []
    for span in spans:
        pairs = span.attrs.get("merged_from")
        if pairs is None:
            out.append(span)
            continue
        for (start, end), attrs in zip(pairs, span.attrs.get("merged_attrs") or [{} for _ in pairs]):
            out.append(Span(start, end, span.label, attrs))
    return sorted(out, key=lambda s: (s.start, s.end, s.label, sorted(s.attrs.items())))


def test_merge_marks_a_span_listed_twice_so_the_repair_is_counted_and_undone():
    given = [Span(2, 6, "DATE"), Span(2, 6, "DATE"), Span(0, 4, "NAME", {"id": "T1"}),
             Span(3, 9, "NAME", {"id": "T2", "Negated": True})]
    kept = merge_crossing_spans(given)
    assert [(s.start, s.end, s.label, s.attrs) for s in kept] == [
        (0, 9, "NAME", {"id": "T1", "merged_from": [[0, 4], [3, 9]],
                        "merged_attrs": [{"id": "T1"}, {"id": "T2", "Negated": True}]}),
        (2, 6, "DATE", {"merged_from": [[2, 6], [2, 6]]})]
    assert _undo(kept) == _undo(given)
    # a third copy and a span crossing an earlier merge unfold into one list of originals
    kept = merge_crossing_spans(given + [Span(2, 6, "DATE"), Span(8, 12, "NAME")])
    assert kept[0].attrs["merged_from"] == [[0, 4], [3, 9], [8, 12]] and kept[0].attrs["merged_attrs"][2] == {}
    assert kept[1].attrs == {"merged_from": [[2, 6], [2, 6], [2, 6]]}


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(1, 6), st.sampled_from("AB"), st.booleans()), max_size=8))
def test_merge_leaves_valid_spans_and_loses_none(raw):
    given = [Span(s, s + n, label, {"i": i} if tagged else {}) for i, (s, n, label, tagged) in enumerate(raw)]
    kept = merge_crossing_spans(given)
    Document("d", "x" * 20, spans=kept).validate()
    assert _undo(kept) == _undo(given)
