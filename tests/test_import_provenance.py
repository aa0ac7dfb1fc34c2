"""Where imported records come from and what they keep: a byte-order mark in brat files is no
repair, mtsamples rejects cite the line their row starts on, Prodigy keeps the option texts its
annotators saw. Made-up text only."""

from __future__ import annotations

import json

import pytest

from conftest import import_into

BOM = "\ufeff"


# --- brat: a byte-order mark is an encoding artefact, not a repair -----------------------------

def _brat(tmp_path, text: str, ann: str):
    folder = tmp_path / "brat"
    folder.mkdir(exist_ok=True)
    (folder / "a.txt").write_bytes(text.encode("utf-8"))
    (folder / "a.ann").write_bytes(ann.encode("utf-8"))
    return folder


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
