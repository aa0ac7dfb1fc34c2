"""Importer edge cases: a byte-order mark in brat files (an encoding artefact, no repair), the
line a multi-line CSV or mtsamples row is cited by, blank lines between CSV rows, what a Prodigy
choice answer's label is and the option texts its annotators saw. Made-up text only."""

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


# --- brat: a byte-order mark is an encoding artefact, not a repair -----------------------------

@pytest.mark.parametrize("txt_bom, ann_bom", [(False, False), (False, True), (True, False), (True, True)])
def test_brat_offsets_of_the_text_without_its_mark_import_cleanly(tmp_path, txt_bom, ann_bom):
    # the offsets fit the text without any mark (one an editor added to either file after
    # annotating): nothing about a span was changed, so nothing is marked or counted as repaired
    folder = _brat(tmp_path, (BOM if txt_bom else "") + "Seen Zorblax today.",
                   (BOM if ann_bom else "") + "T1\tPER 5 12\tZorblax\nT2\tDATE 13 18\ttoday\n")
    docs, rejects, result = import_into("brat", folder, tmp_path)
    assert rejects == [] and docs[0].text == "Seen Zorblax today."
    assert [(s.start, s.end, docs[0].span_text(s), s.attrs) for s in docs[0].spans] == [
        (5, 12, "Zorblax", {"brat_id": "T1"}), (13, 18, "today", {"brat_id": "T2"})]
    assert (result.repaired, result.repaired_spans) == (0, 0)


def test_brat_mark_added_after_annotation_leaves_a_genuine_repair_counted_alone(tmp_path):
    # a mark and \r\n line ends an editor added after annotating: the offsets count neither.
    # Moving 'today' past the \r is a repair; 'Zorblax' (before any line end) keeps its offsets.
    today = len("Name: Zorblax\n") + 6
    folder = _brat(tmp_path, f"{BOM}Name: Zorblax\r\nSeen: today\r\n",
                   f"T1\tPER 6 13\tZorblax\nT2\tDATE {today} {today + 5}\ttoday\n")
    docs, rejects, result = import_into("brat", folder, tmp_path)
    assert rejects == []
    zorblax, seen_today = docs[0].spans
    assert (docs[0].span_text(zorblax), zorblax.attrs) == ("Zorblax", {"brat_id": "T1"})
    assert docs[0].span_text(seen_today) == "today"
    assert seen_today.attrs["repaired"] == "offsets counted \\r\\n line ends as one character"
    assert (result.repaired, result.repaired_spans) == (1, 1)


# --- mtsamples: a reject cites the line its row starts on ------------------------------------

SPECIALTIES = {"specialties": ["Neurology", "Urology"]}


def test_mtsamples_reject_cites_the_line_a_multi_line_row_starts_on(tmp_path):
    src = tmp_path / "m.csv"
    src.write_text(
        "note_id,medical_specialty,transcription\n"
        '1,Neurology,"HISTORY:,\nHeadache.\n"\n'       # lines 2-4
        '2,Surgery,"PROCEDURE:,\nAppendectomy.\n"\n'   # lines 5-7: not in the subset
        '3,Urology,"HISTORY:,\nHeadache.\n"\n'         # lines 8-10: row 1's note, listed twice
        '4,Urology,"IMPRESSION:,\nStone."\n',          # lines 11-12
        encoding="utf-8")
    docs, rejects, _ = import_into("mtsamples", src, tmp_path, **SPECIALTIES)
    assert [(d.id, d.label) for d in docs] == [("mtsamples-4", "Urology")]
    assert [(r["location"], r["id"], r["reason"].split(":")[0]) for r in rejects] == [
        ("m.csv:2", "mtsamples-1", "ambiguous"),
        ("m.csv:5", "mtsamples-2", "specialties ['Surgery'] are not in the task's subset")]


def test_mtsamples_row_that_cannot_be_read_is_a_reject_at_its_first_line(tmp_path):
    # a byte that is not UTF-8 stopped the whole import with a UnicodeDecodeError traceback;
    # like the generic CSV importer, it now costs that row alone
    src = tmp_path / "m.csv"
    src.write_bytes(
        b"note_id,medical_specialty,transcription\n"
        b'1,Neurology,"caf\xe9 visit,\nHeadache."\n'   # lines 2-3: not UTF-8
        b'2,Urology,"Stone."\n'                        # line 4
        b'3,Urology,"one",extra\n')                    # line 5: a field too many
    docs, rejects, result = import_into("mtsamples", src, tmp_path, **SPECIALTIES)
    assert [d.id for d in docs] == ["mtsamples-2"]
    assert [(r["location"], r.get("id"), r["reason"]) for r in rejects] == [
        ("m.csv:2", "mtsamples-1", "row is not valid UTF-8"), ("m.csv:5", None, "row has 4 fields, the header has 3")]
    assert "\\xe9" in rejects[0]["raw"]
    assert (result.counts.read, result.counts.written, result.counts.rejected) == (3, 1, 2)


# --- prodigy: the option texts the annotator saw -----------------------------------------------

OPTIONS = [{"id": "CARDIO", "text": "Cardiology 🫀"}, {"id": 2, "text": "Neurology"}]


def _prodigy(tmp_path, lines):
    src = tmp_path / "p.jsonl"
    src.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return src


def test_prodigy_choice_keeps_option_texts_beside_the_option_id_label(tmp_path):
    src = _prodigy(tmp_path, [
        {"text": "Chest pain.", "options": OPTIONS, "accept": ["CARDIO"], "answer": "accept", "meta": {"id": "n1"}},
        {"text": "Headache.", "options": OPTIONS, "accept": [2], "answer": "accept", "meta": {"id": "n2"},
         "_annotator_id": "a"},
        {"text": "Headache.", "options": OPTIONS, "accept": [2], "answer": "accept", "meta": {"id": "n2"},
         "_annotator_id": "b"},
    ])
    docs, rejects, _ = import_into("prodigy", src, tmp_path)
    assert rejects == []
    assert [(d.id, d.label) for d in docs] == [("n1", "CARDIO"), ("n2", "2")]  # ids, as round trips compare
    texts = {"CARDIO": "Cardiology 🫀", "2": "Neurology"}  # keyed like the label
    assert [d.meta["prodigy"]["option_texts"] for d in docs] == [texts, texts]
    assert docs[1].meta["prodigy"]["option_texts"][docs[1].label] == "Neurology"


def test_prodigy_option_reworded_between_sessions_keeps_each_lines_texts(tmp_path):
    reworded = [{"id": "CARDIO", "text": "Heart"}, {"id": 2, "text": "Neurology"}]
    src = _prodigy(tmp_path, [
        {"text": "Chest pain.", "options": OPTIONS, "accept": ["CARDIO"], "meta": {"id": "n1"}, "_annotator_id": "a"},
        {"text": "Chest pain.", "options": reworded, "accept": ["CARDIO"], "meta": {"id": "n1"}, "_annotator_id": "b"},
    ])
    docs, rejects, _ = import_into("prodigy", src, tmp_path)
    assert rejects == [] and docs[0].label == "CARDIO"
    record = docs[0].meta["prodigy"]
    assert "option_texts" not in record
    assert record["option_texts_by_line"] == [
        {"line": "p.jsonl:1", "option_texts": {"CARDIO": "Cardiology 🫀", "2": "Neurology"}},
        {"line": "p.jsonl:2", "option_texts": {"CARDIO": "Heart", "2": "Neurology"}}]


def test_prodigy_task_without_options_has_no_option_texts(tmp_path):
    src = _prodigy(tmp_path, [{"text": "Chest pain.", "label": "CARDIO", "answer": "accept", "meta": {"id": "n1"}}])
    docs, _, _ = import_into("prodigy", src, tmp_path)
    assert docs[0].label == "CARDIO" and "option_texts" not in docs[0].meta["prodigy"]
