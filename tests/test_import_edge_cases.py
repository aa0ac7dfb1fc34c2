"""Importer edge cases: a byte-order mark in brat files, the line a multi-line CSV row is cited
by, blank lines between CSV rows, and what a Prodigy choice answer's label is. Made-up text only."""

from __future__ import annotations

import json

import pytest

from conftest import import_into

BOM = "\ufeff"


def _brat(tmp_path, text: str, ann: str):
    folder = tmp_path / "brat"
    folder.mkdir(exist_ok=True)
    (folder / "a.txt").write_bytes(text.encode("utf-8"))
    (folder / "a.ann").write_bytes(ann.encode("utf-8"))
    return folder


def _spans(doc):
    return [(s.start, s.end, doc.span_text(s), s.label) for s in doc.spans]


# --- brat: a byte-order mark -----------------------------------------------------------------

def test_brat_ann_starting_with_a_byte_order_mark_is_read(tmp_path):
    # the mark was read as part of the first line's id: 'line does not start with a brat id'
    text = "Seen Zorblax today."
    folder = _brat(tmp_path, text, f"{BOM}T1\tPER 5 12\tZorblax\nT2\tDATE 13 18\ttoday\n")
    docs, rejects, result = import_into("brat", folder, tmp_path)
    assert rejects == [] and result.repaired == 0
    assert _spans(docs[0]) == [(5, 12, "Zorblax", "PER"), (13, 18, "today", "DATE")]


@pytest.mark.parametrize("ann_bom", [False, True])
def test_brat_txt_byte_order_mark_counted_by_brat_offsets_is_dropped_from_the_text(tmp_path, ann_bom):
    # brat reads the .txt as utf-8 (not utf-8-sig), so its offsets count the mark: Zorblax is
    # at 6-13. The document's text has no mark and the span still holds Zorblax.
    folder = _brat(tmp_path, f"{BOM}Seen Zorblax today.", (BOM if ann_bom else "") + "T1\tPER 6 13\tZorblax\n")
    docs, rejects, result = import_into("brat", folder, tmp_path)
    assert rejects == [] and docs[0].text == "Seen Zorblax today."
    assert _spans(docs[0]) == [(5, 12, "Zorblax", "PER")]
    assert "repaired" not in docs[0].spans[0].attrs and result.repaired == 0  # brat's own reading


def test_brat_windows_file_with_mark_and_crlf_as_brat_counts_them(tmp_path):
    # a Windows editor's file as brat sees it: the mark counted, each \r\n one character
    text = f"{BOM}Name: Zorblax\r\nSeen: today\r\n"
    zorblax = 1 + 6
    today = 1 + len("Name: Zorblax\n") + 6
    folder = _brat(tmp_path, text, f"T1\tPER {zorblax} {zorblax + 7}\tZorblax\nT2\tDATE {today} {today + 5}\ttoday\n")
    docs, rejects, _ = import_into("brat", folder, tmp_path)
    assert rejects == [] and docs[0].text == text[1:]
    assert [(t, label) for *_, t, label in _spans(docs[0])] == [("Zorblax", "PER"), ("today", "DATE")]


def test_brat_mark_undecidable_without_text_fields_reads_offsets_as_brat_does(tmp_path):
    # no T line gives its text: brat's reading (the mark counted) holds
    folder = _brat(tmp_path, f"{BOM}Seen Zorblax today.", "T1\tPER 6 13\n")
    docs, rejects, _ = import_into("brat", folder, tmp_path)
    assert rejects == [] and _spans(docs[0]) == [(5, 12, "Zorblax", "PER")]


# --- csv: the line a row starts on -----------------------------------------------------------

def test_csv_row_is_cited_by_the_line_it_starts_on(tmp_path):
    src = tmp_path / "c.csv"
    src.write_bytes(
        b'text,label\n'
        b'"Zorblax seen,\nfollow-up in a week",a\n'  # lines 2-3
        b'"Quintavius\n\nnote",b\n'                   # lines 4-6
        b'one,two,three\n'                            # line 7: too many fields
        b'"caf\xe9\nbad",c\n'                         # lines 8-9: not UTF-8
        b'last,d\n'                                   # line 10
    )
    docs, rejects, result = import_into("csv", src, tmp_path, label_col="label")
    assert [(d.id, d.label) for d in docs] == [("c-2", "a"), ("c-4", "b"), ("c-10", "d")]
    assert [(r["location"], r["reason"].split(" (")[0]) for r in rejects] == [
        ("c.csv:7", "row has 3 fields, the header has 2"), ("c.csv:8", "row is not valid UTF-8")]
    assert (result.counts.read, result.counts.written, result.counts.rejected) == (5, 3, 2)


def test_csv_duplicate_id_reject_cites_the_line_its_row_starts_on(tmp_path):
    src = tmp_path / "d.csv"
    src.write_text('id,text\nd1,"one\ntwo"\nd1,"three\nfour"\n')
    docs, rejects, _ = import_into("csv", src, tmp_path, id_col="id")
    assert [d.id for d in docs] == ["d1"]
    assert [(r["location"], r["id"]) for r in rejects] == [("d.csv:4", "d1")]
    assert "duplicate id" in rejects[0]["reason"]


def test_csv_blank_lines_between_rows_are_skipped_and_do_not_shift_line_numbers(tmp_path):
    # empty lines (\n and \r\n) and a line of spaces an editor left are no record and no reject
    src = tmp_path / "b.csv"
    # rows on lines 3, 6-8 and 10
    src.write_bytes(b'text,label\r\n\r\nfirst,a\r\n\n   \n"multi\r\n\r\nline",b\r\n\t \r\nlast,c\r\n\r\n')
    docs, rejects, result = import_into("csv", src, tmp_path, label_col="label")
    assert rejects == []
    assert [(d.id, d.label) for d in docs] == [("b-3", "a"), ("b-6", "b"), ("b-10", "c")]
    assert docs[1].text == "multi\r\n\r\nline"
    assert (result.counts.read, result.counts.written, result.counts.rejected) == (3, 3, 0)


def test_csv_row_of_empty_cells_or_a_quoted_blank_is_still_a_record(tmp_path):
    # only an unquoted line of whitespace without a delimiter is blank
    src = tmp_path / "e.csv"
    src.write_text('text,label\n,\n"  ",x\n')
    docs, rejects, result = import_into("csv", src, tmp_path, label_col="label")
    assert [(d.id, d.text) for d in docs] == [("e-2", ""), ("e-3", "  ")]
    assert result.counts.read == 2 and rejects == []


# --- prodigy: a choice answer's label --------------------------------------------------------

def test_prodigy_choice_label_is_the_option_id_prodigy_exports(tmp_path):
    # Prodigy stores the selected option ids in 'accept' and its recipes train on them as the
    # category names; an option's 'text' is what the annotator saw, not the label
    src = tmp_path / "p.jsonl"
    options = [{"id": "CARDIO", "text": "Cardiology 🫀"}, {"id": 2, "text": "Neurology"}]
    src.write_text("\n".join(json.dumps(line) for line in [
        {"text": "Chest pain.", "options": options, "accept": ["CARDIO"], "answer": "accept", "meta": {"id": "n1"}},
        {"text": "Headache.", "options": options, "accept": [2], "answer": "accept", "meta": {"id": "n2"}},
        {"text": "Both.", "options": options, "accept": ["CARDIO", 2], "answer": "accept", "meta": {"id": "n3"}},
    ]) + "\n")
    docs, rejects, _ = import_into("prodigy", src, tmp_path)
    assert rejects == []
    assert [(d.id, d.label, d.labels) for d in docs] == [
        ("n1", "CARDIO", None), ("n2", "2", None), ("n3", None, ["CARDIO", "2"])]
