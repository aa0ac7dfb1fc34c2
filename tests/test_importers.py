"""Each importer on small hand-made fixtures (good and malformed) and on the real sets."""

from __future__ import annotations

import json

import pytest

from conftest import import_into
from domainfm.corpus import read_documents
from domainfm.corpus.importing import import_corpus
from domainfm.errors import ConfigError, CorpusError


def run(fmt, src, tmp_path, **options):
    docs, rejects, _ = import_into(fmt, src, tmp_path, **options)
    return docs, rejects


def span_texts(doc):
    return [(doc.span_text(s), s.label) for s in doc.spans]


# --- jsonl --------------------------------------------------------------------------------

def test_jsonl_normalises_keys_and_keeps_extras_in_meta(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in [
        {"doc_id": 1, "body": "A note.", "specialty": "cardio", "meta": {"a": 1}},
        {"body": "No id here."},
    ]) + "\n")
    docs, rejects = run("jsonl", src, tmp_path, text_key="body", id_key="doc_id")
    assert docs[0].id == "1" and docs[0].text == "A note."
    assert docs[0].meta == {"specialty": "cardio", "a": 1}
    assert "no 'doc_id' field" in rejects[0]["reason"] and rejects[0]["location"] == "in.jsonl:2"
    docs, _ = run("jsonl", src, tmp_path, text_key="body", id_key="doc_id", generate_ids=True)
    assert [d.id for d in docs] == ["1", "in-2"]


# --- csv ----------------------------------------------------------------------------------

def test_csv_columns_meta_labels_and_bad_rows(tmp_path):
    src = tmp_path / "notes.csv"
    src.write_bytes(
        b'note_id,transcription,specialty,tags,extra\n'
        b'n1,"Line one,\nline two",Cardiology,htn|dm,x\n'
        b'n2,Short,Neurology,,y\n'
        b'n3,too,many,fields,here,!\n'
        b'n4,caf\xe9,Neurology,,z\n'
        b'n1,dup,Neurology,,w\n'
    )
    docs, rejects = run("csv", src, tmp_path, text_col="transcription", id_col="note_id",
                        label_col="specialty", labels_col="tags")
    assert [d.id for d in docs] == ["n1", "n2"]
    assert docs[0].text == "Line one,\nline two" and docs[0].label == "Cardiology"
    assert docs[0].labels == ["htn", "dm"] and docs[0].meta == {"extra": "x"}
    reasons = {r["location"]: r["reason"] for r in rejects}
    assert "row has 6 fields, the header has 5" in reasons["notes.csv:5"]
    assert "not valid UTF-8" in reasons["notes.csv:6"]
    assert next(r["id"] for r in rejects if r["location"] == "notes.csv:6") == "n4"  # its id cell reads fine
    duplicate = next(r for r in rejects if "duplicate id" in r["reason"])
    assert duplicate["id"] == "n1" and duplicate["location"] == "notes.csv:7" and duplicate["raw"] == "n1,dup,Neurology,,w"


def test_jsonl_duplicate_id_reject_keeps_location_and_the_line_as_read(tmp_path):
    src = tmp_path / "d.jsonl"
    src.write_text('{"id": "a", "text": "one"}\n{"id":"a",  "text": "two"}\n')
    docs, rejects = run("jsonl", src, tmp_path)
    assert [d.id for d in docs] == ["a"]
    assert rejects == [{"location": "d.jsonl:2", "id": "a",
                        "reason": "duplicate id (already used by an earlier record, at d.jsonl:1)",
                        "raw": '{"id":"a",  "text": "two"}'}]


def test_jsonl_text_key_never_falls_back_to_another_field(tmp_path):
    src = tmp_path / "k.jsonl"
    src.write_text('{"id": "c1", "note": "kept", "text": "other"}\n{"id": "c2", "note": "only note"}\n'
                   '{"id": "c3", "text": "only text"}\n{"id": "c4", "note": 5}\n')
    docs, rejects = run("jsonl", src, tmp_path, text_key="note")
    assert [(d.id, d.text) for d in docs] == [("c2", "only note")]
    reasons = {r["location"]: r["reason"] for r in rejects}
    assert reasons["k.jsonl:1"].startswith("has a 'text' field but the text is read from 'note' (--text-key)")
    assert reasons["k.jsonl:3"].startswith("has a 'text' field but the text is read from 'note'")
    assert reasons["k.jsonl:4"] == "field 'note' (the text) must be a string, got an integer"
    _, rejects = run("jsonl", src, tmp_path, text_key="nosuch")
    reasons = {r["location"]: r["reason"] for r in rejects}
    assert reasons["k.jsonl:2"] == "no 'nosuch' field for the text (set --text-key)"


@pytest.mark.parametrize("fmt, content", [
    ("jsonl", '{"id": "a", "text": "Seen today."}\n'),
    ("csv", "id,text\na,Seen today.\n"),
])
@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_a_utf16_file_is_refused_naming_its_encoding(tmp_path, fmt, content, encoding):
    src = tmp_path / f"in.{fmt}"
    data = content.encode(encoding)
    src.write_bytes(data if data[:2] in (b"\xff\xfe", b"\xfe\xff") else b"\xfe\xff" + data)
    with pytest.raises(CorpusError, match="UTF-16 or UTF-32 text .* convert it first"):
        run(fmt, src, tmp_path, **({"id_col": "id"} if fmt == "csv" else {}))


def test_jsonl_meta_collisions_and_non_object_meta_are_rejected(tmp_path):
    src = tmp_path / "m.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in [
        {"id": "g1", "text": "t", "site": "A", "meta": {"site": "B"}},
        {"id": "g2", "text": "t", "site": "A", "meta": "not an object"},
        {"id": "g3", "text": "t", "meta": ["list"]},
        {"id": "g4", "text": "t", "site": "A"},
        {"id": "g5", "text": "t", "site": "A", "meta": None},
    ]) + "\n")
    docs, rejects = run("jsonl", src, tmp_path)
    assert [(d.id, d.meta) for d in docs] == [("g4", {"site": "A"}), ("g5", {"site": "A"})]
    reasons = {r["location"]: r["reason"] for r in rejects}
    assert "field(s) ['site'] are both top-level and in 'meta'" in reasons["m.jsonl:1"]
    assert reasons["m.jsonl:2"] == "field 'meta' must be an object, got a string"
    assert reasons["m.jsonl:3"] == "field 'meta' must be an object, got a list"
    assert [r["id"] for r in rejects] == ["g1", "g2", "g3"]  # the reject file names each record


@pytest.mark.parametrize("options, message", [
    ({"text_key": "id"}, "'text_key' may not be 'id'"),
    ({"text_key": "note", "label_key": "note"}, "must name different fields"),
    ({"id_key": ""}, "'id_key' must be a non-empty field name"),
])
def test_jsonl_bad_key_options_are_config_errors(tmp_path, options, message):
    src = tmp_path / "k.jsonl"
    src.write_text('{"id": "a", "text": "x"}\n')
    with pytest.raises(ConfigError, match=message):
        import_corpus("jsonl", src, tmp_path / "o.jsonl", options)


def test_csv_unknown_column_suggests_the_right_one(tmp_path):
    src = tmp_path / "c.csv"
    src.write_text("id,transcription\n1,x\n")
    with pytest.raises(CorpusError, match="no column 'transcripton'.*did you mean 'transcription'"):
        import_corpus("csv", src, tmp_path / "o.jsonl", {"text_col": "transcripton"})


def test_csv_tsv_and_generated_ids(tmp_path):
    src = tmp_path / "c.tsv"
    src.write_text("text\tlabel\nfirst\ta\nsecond\tb\n")
    docs, _ = run("csv", src, tmp_path, delimiter="tab", label_col="label")
    assert [(d.id, d.text, d.label) for d in docs] == [("c-2", "first", "a"), ("c-3", "second", "b")]


def test_csv_missing_column_error_never_quotes_the_first_row(tmp_path):
    src = tmp_path / "noheader.csv"
    src.write_text("8675309,Zorblax Quintavius,chest pain\n1234567,Other Person,knee\n")
    for options in ({}, {"text_col": "2"}, {"text_col": "8"}, {"text_col": "Zorblax"}):
        with pytest.raises(CorpusError, match="the first row has 3 column") as err:
            import_corpus("csv", src, tmp_path / "o.jsonl", options)
        assert "8675309" not in str(err.value) and "Zorblax Quintavius" not in str(err.value)
        assert "no header row" in str(err.value)


def test_csv_duplicate_header_name_is_refused(tmp_path):
    src = tmp_path / "dup.csv"
    src.write_text("id,text,id\nd1,hello,d2\n")
    with pytest.raises(CorpusError, match="columns 1 and 3 have the same name"):
        import_corpus("csv", src, tmp_path / "o.jsonl")
    # in a file without a header row the repeated "name" is a cell of the first record
    src.write_text("Zorblax Quintavius,chest pain,Zorblax Quintavius\n")
    with pytest.raises(CorpusError, match="columns 1 and 3 have the same name") as err:
        import_corpus("csv", src, tmp_path / "o.jsonl", {"text_col": "chest pain"})
    assert "Zorblax" not in str(err.value)


def test_every_csv_reader_refuses_a_headerless_file_without_quoting_its_first_row(tmp_path):
    """mtsamples and a pipeline's meta_join read CSVs too: their missing-column errors listed
    the 'columns', which in a file without a header row are a patient's name, phone and note."""
    from domainfm.corpus.stage import MetaJoin, _read_meta_table

    src = tmp_path / "noheader.csv"
    src.write_text('0,"Patient Zorblax Quintavius, 617-555-0199",Cardiology\n')
    with pytest.raises(CorpusError, match="the first row has 3 column") as mts:
        import_corpus("mtsamples", src, tmp_path / "o.jsonl", {"specialties": ["Cardiology"]})
    with pytest.raises(CorpusError, match="no column 'note_id' for import.meta_join") as join:
        _read_meta_table(MetaJoin(src=src, key_col="note_id", columns={"sex": "sex"}))
    for err in (mts, join):
        assert "Zorblax" not in str(err.value) and "555-0199" not in str(err.value)
        assert "no header row" in str(err.value)


def test_a_meta_join_table_is_read_as_the_csv_importer_reads_and_a_bad_row_stops_the_run(tmp_path):
    """The join table had its own csv.DictReader: a header byte-order mark hid the key column, a
    byte that is not UTF-8 ended in a traceback, a short row's missing cells read as empty and a
    long row's extra cells were dropped, and a key given twice kept its first row silently."""
    from domainfm.corpus.stage import MetaJoin, _read_meta_table

    src = tmp_path / "groups.csv"
    join = MetaJoin(src=src, key_col="note", columns={"sex": "sex", "age": "age"}, id_format="d{}")
    src.write_bytes("\ufeffnote,sex,age\n1,F,40\n2,M,\n1,F,40\n".encode("utf-8"))
    assert _read_meta_table(join) == {"d1": {"sex": "F", "age": 40}, "d2": {"sex": "M"}}
    bad_rows = [(b"note,sex,age\n1,F,40\n2,Zorblax Quintavius\n", "groups.csv:3: row has 2 fields, the header has 3"),
                (b"note,sex,age\n1,F,40,Zorblax\n", "groups.csv:2: row has 4 fields, the header has 3"),
                (b"note,sex,age\n1,F,40\n2,Zorbl\xe4x,41\n", "groups.csv:3: row is not valid UTF-8"),
                (b"note,sex,age\n1,F,40\n2,\"Zorblax\n,41\n3,M,50\n",
                 "groups.csv:3: a quoted field opened on this line is never closed"),
                (b"note,sex,age\n1,F,40\n2,M,41\n1,M,40\n",
                 "groups.csv:4: note gives the document id 'd1' again \\(first on line 2\\) with other values")]
    for content, message in bad_rows:
        src.write_bytes(content)
        with pytest.raises(CorpusError, match=f"import.meta_join.src: {message}") as err:
            _read_meta_table(join)
        assert "Zorbl" not in str(err.value)


def test_csv_unterminated_quote_is_rejected_not_merged_into_the_next_row(tmp_path):
    src = tmp_path / "q.csv"
    src.write_text('id,text,label\nd1,"fine",pos\nd4,"never closed\nd5,"x",pos\nd6,y,neg\n')
    docs, rejects = run("csv", src, tmp_path, id_col="id")
    assert [d.id for d in docs] == ["d1", "d6"]
    assert len(rejects) == 1 and rejects[0]["location"] == "q.csv:3"
    assert "lines 3-4 read as one row: check its quotes" in rejects[0]["reason"]
    assert rejects[0]["raw"] == 'd4,"never closed\nd5,"x",pos'
    src.write_text('id,text\nd1,fine\nd2,"open to the end\nd3,x\n')
    with pytest.raises(CorpusError, match="q.csv:3: a quoted field opened on this line is never closed"):
        import_corpus("csv", src, tmp_path / "o.jsonl", {"id_col": "id"})


def test_csv_row_of_empty_cells_is_counted_like_any_row(tmp_path):
    # ",," was skipped and counted nowhere: read 5 = written 4 + rejected 1 for 6 rows
    src = tmp_path / "e.csv"
    src.write_text("id,text,label\nz1,Zorblax seen,a\nz2,,a\n,,\nz4,x,y,extra\nz5,Quintavius,b\nz6,ok,b\n\n")
    result = import_corpus("csv", src, tmp_path / "o.jsonl", {"id_col": "id"})
    assert (result.counts.read, result.counts.written, result.counts.rejected) == (6, 4, 2)
    rejects = [json.loads(x) for x in result.rejects.read_text().splitlines()]
    assert [(r["location"], r["reason"], r["raw"]) for r in rejects if r["location"] == "e.csv:4"] == [
        ("e.csv:4", "field 'id' must be a non-empty string", ",,")]
    # without an id column the row is a document with an empty text, as an empty text cell is
    docs, _ = run("csv", src, tmp_path)
    assert [(d.id, d.text, d.meta) for d in docs if d.id == "e-4"] == [("e-4", "", {"id": "", "label": ""})]


@pytest.mark.parametrize("options, message", [
    ({"delimiter": ";;"}, "'delimiter' must be one character"),
    ({"delimiter": ""}, "'delimiter' must be one character"),
    ({"delimiter": '"'}, "'delimiter' must be one character other than a quote"),
    ({"labels_sep": ""}, "'labels_sep' must be a non-empty string"),
])
def test_csv_bad_delimiter_or_labels_sep_is_a_config_error(tmp_path, options, message):
    src = tmp_path / "c.csv"
    src.write_text("text,tags\nx,a|b\n")
    with pytest.raises(ConfigError, match=message):
        import_corpus("csv", src, tmp_path / "o.jsonl", {"labels_col": "tags", **options})


# --- textdir ------------------------------------------------------------------------------

def test_textdir_ids_labels_and_bad_files(tmp_path):
    root = tmp_path / "docs"
    (root / "cardio").mkdir(parents=True)
    (root / "neuro").mkdir()
    (root / "cardio" / "a.txt").write_bytes(b"Line 1\r\nLine 2\n")
    (root / "neuro" / "b.txt").write_text("Headache.")
    (root / "neuro" / "bad.txt").write_bytes(b"\xff\xfe broken")
    docs, rejects = run("textdir", root, tmp_path, label_from_dir=True)
    assert [(d.id, d.label) for d in docs] == [("cardio/a", "cardio"), ("neuro/b", "neuro")]
    assert docs[0].text == "Line 1\r\nLine 2\n"  # bytes kept as written: offsets stay exact
    assert rejects[0]["id"] == "neuro/bad" and "not valid UTF-8" in rejects[0]["reason"]


def test_textdir_and_brat_reject_broken_links_and_orphan_annotations_instead_of_skipping(tmp_path):
    root = tmp_path / "docs"
    root.mkdir()
    (root / "a.txt").write_text("Seen today.")
    (root / "gone.txt").symlink_to(tmp_path / "nowhere.txt")
    (tmp_path / "t").mkdir()
    docs, rejects = run("textdir", root, tmp_path / "t")
    assert [d.id for d in docs] == ["a"]
    assert [(r["id"], r["reason"]) for r in rejects] == [
        ("gone", "file cannot be read (a broken symbolic link: the file it points to does not exist)")]
    brat = tmp_path / "brat"
    brat.mkdir()
    (brat / "a.txt").write_text("Seen today.")
    (brat / "lost.ann").write_text("T1\tX 0 4\tSeen\n")
    (brat / "gone.txt").symlink_to(tmp_path / "nowhere.txt")
    (tmp_path / "b").mkdir()
    docs, rejects = run("brat", brat, tmp_path / "b")
    assert [d.id for d in docs] == ["a"]
    reasons = {r["id"]: r["reason"] for r in rejects}
    assert reasons == {"gone": "gone.txt cannot be read (a broken symbolic link: the file it points to does not exist)",
                       "lost": "no .txt file beside the .ann: its annotations have no text"}


def test_ids_equal_but_for_the_extension_reject_naming_both_files(tmp_path):
    # ids stay the path without its extension (as before): the later file is rejected, and the
    # reject names it and the file that took the id first, so the user can rename one
    root = tmp_path / "docs"
    (root / "cardio").mkdir(parents=True)
    (root / "cardio" / "a.txt").write_text("Zorblax seen.")
    (root / "cardio" / "a.md").write_text("Quintavius seen.")
    result = import_corpus("textdir", root, tmp_path / "t.jsonl", {"pattern": "**/*"})
    (reject,) = [json.loads(x) for x in result.rejects.read_text().splitlines()]
    assert (reject["location"], reject["id"]) == ("cardio/a.txt", "cardio/a")
    assert reject["reason"] == "duplicate id (already used by an earlier record, at cardio/a.md)"
    assert result.first_rejects == [f"cardio/a.txt, id='cardio/a': {reject['reason']}"]
    conll = tmp_path / "conll"
    conll.mkdir()
    (conll / "a.tsv").write_text("Zorblax\tB-PER\n")
    (conll / "a.conll").write_text("Quintavius\tB-PER\n")
    docs, rejects = run("conll", conll, tmp_path)
    assert [d.id for d in docs] == ["a-00000"] and docs[0].text == "Quintavius"
    assert [(r["location"], r["reason"]) for r in rejects] == [
        ("a.tsv:1", "duplicate id (already used by an earlier record, at a.conll:1)")]


@pytest.mark.parametrize("pattern, message", [
    ("/etc/*", "must be relative to the source folder"),
    ("../*", "may not contain '..'"),
    ("sub/../../*.txt", "may not contain '..'"),
    ("", "must be a non-empty glob"),
    ("**a/*.txt", "is not a valid glob"),
])
def test_textdir_pattern_may_not_leave_the_folder(tmp_path, pattern, message):
    root = tmp_path / "docs" / "inner"
    root.mkdir(parents=True)
    (tmp_path / "docs" / "outside.txt").write_text("outside the source folder")
    with pytest.raises(ConfigError, match=message):
        import_corpus("textdir", root, tmp_path / "o.jsonl", {"pattern": pattern})


# --- physionet ----------------------------------------------------------------------------

PHYSIONET_TEXT = (
    "START_OF_RECORD=1||||1||||\nPT SEEN BY DR. SMITH ON 7/22. CALL 301 555-1234.\n||||END_OF_RECORD\n\n"
    "START_OF_RECORD=1||||2||||\nNO PHI HERE.\n||||END_OF_RECORD\n\n"
    "START_OF_RECORD=2||||1||||\nDAUGHTER MARY VISITED.\n||||END_OF_RECORD\n"
)


def write_physionet(tmp_path, phrases: str = "", text: str = PHYSIONET_TEXT):
    folder = tmp_path / "deid"
    folder.mkdir()
    (folder / "id.text").write_text(text)
    (folder / "id-phi.phrase").write_text(phrases)
    return folder


def test_physionet_records_and_spans(tmp_path):
    folder = write_physionet(tmp_path, "1 1 15 20 HCPName SMITH\n1 1 24 28 Date 7/22\n"
                                       "1 1 35 47 Phone 301 555-1234\n2 1 9 13 RelativeProxyName MARY\n")
    docs, rejects = run("physionet", folder, tmp_path)
    assert not rejects
    assert [d.id for d in docs] == ["1-1", "1-2", "2-1"]
    assert span_texts(docs[0]) == [("SMITH", "HCPName"), ("7/22", "Date"), ("301 555-1234", "Phone")]
    assert docs[0].meta["patient_id"] == "1" and docs[2].meta["patient_id"] == "2"


def test_physionet_gold_with_windows_line_ends_is_read_as_it_is_meant(tmp_path):
    folder = write_physionet(tmp_path, "1 1 15 20 HCPName SMITH\r\n1 1 24 28 Date 7/22\r\n")
    docs, rejects = run("physionet", folder, tmp_path)
    assert not rejects and span_texts(docs[0]) == [("SMITH", "HCPName"), ("7/22", "Date")]


def test_physionet_crossing_gold_spans_are_merged_not_rejected(tmp_path):
    # two Location phrases sharing a word ("BY DR. SMITH" / "SMITH ON"): the note is kept with
    # their union, the originals in attrs, and the repair counted in the manifest
    folder = write_physionet(tmp_path, "1 1 8 20 Location BY DR. SMITH\n1 1 15 23 Location SMITH ON\n"
                                       "1 1 24 28 Date 7/22\n1 1 24 28 Date 7/22\n")
    result = import_corpus("physionet", folder, tmp_path / "p.jsonl")
    assert result.counts.rejected == 0 and result.counts.written == 3
    doc = next(read_documents(result.out))
    assert [(s.start, s.end, s.label) for s in doc.spans] == [(8, 23, "Location"), (24, 28, "Date")]
    assert doc.spans[0].attrs["merged_from"] == [[8, 20], [15, 23]]
    # the Date line listed twice is kept once and counted too (it was dropped without a trace)
    assert doc.spans[1].attrs == {"merged_from": [[24, 28], [24, 28]]}
    assert json.loads(result.manifest.read_text())["counts"]["repaired_spans"] == 2


def test_physionet_output_may_not_overwrite_the_gold_file(tmp_path):
    folder = write_physionet(tmp_path, "1 1 15 20 HCPName SMITH\n")
    gold = tmp_path / "gold.phrase"
    gold.write_text("1 1 24 28 Date 7/22\n")
    for src, out, options in ((folder / "id.text", folder / "id-phi.phrase", {}),
                              (folder / "id.text", gold, {"phi": str(gold)}),
                              (folder, gold, {"phi": str(gold)})):
        with pytest.raises(CorpusError, match="would overwrite the input"):
            import_corpus("physionet", src, out, options)
    assert (folder / "id-phi.phrase").read_text() == "1 1 15 20 HCPName SMITH\n"
    assert gold.read_text() == "1 1 24 28 Date 7/22\n"
    # the gold file is hashed with the text (a folder source holds the default one already)
    result = import_corpus("physionet", folder / "id.text", tmp_path / "p.jsonl", {"phi": str(gold)})
    inputs = json.loads(result.manifest.read_text())["inputs"]
    assert [(i["path"], i["kind"]) for i in inputs] == [(str(folder / "id.text"), "file"), (str(gold), "file")]
    assert span_texts(next(read_documents(result.out))) == [("7/22", "Date")]
    result = import_corpus("physionet", folder / "id.text", tmp_path / "q.jsonl")
    assert [i["path"] for i in json.loads(result.manifest.read_text())["inputs"]] == [
        str(folder / "id.text"), str(folder / "id-phi.phrase")]
    result = import_corpus("physionet", folder, tmp_path / "r.jsonl")
    assert [i["path"] for i in json.loads(result.manifest.read_text())["inputs"]] == [str(folder)]


def test_physionet_windows_line_ends_keep_gold_offsets_and_every_character(tmp_path):
    # offsets count the body as written, \r included
    text = ("START_OF_RECORD=1||||1||||\r\nSEEN BY DR. ZORBLAX.\r\nCALL 555-0100.\r\n||||END_OF_RECORD\r\n\r\n"
            "START_OF_RECORD=1||||2||||\r\nNO PHI.\r\n||||END_OF_RECORD\r\n")
    folder = write_physionet(tmp_path, "1 1 12 19 HCPName ZORBLAX\n1 1 27 35 Phone 555-0100\n", text=text)
    docs, rejects = run("physionet", folder, tmp_path)
    assert not rejects and [d.id for d in docs] == ["1-1", "1-2"]
    assert span_texts(docs[0]) == [("ZORBLAX", "HCPName"), ("555-0100", "Phone")]
    assert docs[0].text == "SEEN BY DR. ZORBLAX.\r\nCALL 555-0100.\r\n" and docs[1].text == "NO PHI.\r\n"


def test_physionet_byte_order_mark_is_not_text(tmp_path):
    folder = write_physionet(tmp_path, "\ufeff1 1 15 20 HCPName SMITH\n", text="\ufeff" + PHYSIONET_TEXT)
    docs, rejects = run("physionet", folder, tmp_path)
    assert not rejects and [d.id for d in docs] == ["1-1", "1-2", "2-1"]
    assert span_texts(docs[0]) == [("SMITH", "HCPName")] and docs[0].text.startswith("PT SEEN")


def test_physionet_offset_mismatch_and_orphans_are_rejected(tmp_path):
    folder = write_physionet(tmp_path, "1 1 14 19 HCPName SMITH\n9 9 0 1 Date X\n")
    docs, rejects = run("physionet", folder, tmp_path)
    assert [d.id for d in docs] == ["1-2", "2-1"]
    reasons = {r["id"]: r["reason"] for r in rejects}
    assert "does not match the note text" in reasons["1-1"]
    assert next(r["raw"] for r in rejects if r["id"] == "1-1").startswith("START_OF_RECORD=1||||1||||")
    assert "name a record that id.text does not contain" in reasons["9-9"]


def test_physionet_record_without_end_marker_is_rejected_not_merged(tmp_path):
    folder = write_physionet(tmp_path, text="START_OF_RECORD=1||||1||||\nFIRST NOTE, NO END MARKER\n\n"
                                            "START_OF_RECORD=1||||2||||\nSECOND.\n||||END_OF_RECORD\n")
    docs, rejects = run("physionet", folder, tmp_path)
    assert [d.id for d in docs] == ["1-2"] and docs[0].text == "SECOND.\n"
    assert rejects[0]["id"] == "1-1" and "no ||||END_OF_RECORD" in rejects[0]["reason"]
    assert rejects[0]["location"] == "id.text:1"
    # the record as read, so it can be mended from the reject file
    assert rejects[0]["raw"] == "START_OF_RECORD=1||||1||||\nFIRST NOTE, NO END MARKER\n\n"


def test_physionet_malformed_header_and_stray_text_are_rejected_with_their_line(tmp_path):
    folder = write_physionet(tmp_path, text="START_OF_RECORD=1||||1||||\nFIRST.\n||||END_OF_RECORD\n"
                                            "START_OF_RECORD=2|||1||||\nLOST NOTE\n||||END_OF_RECORD\n"
                                            "stray text\n"
                                            "START_OF_RECORD=3||||1||||\nTHIRD.\n||||END_OF_RECORD\n")
    docs, rejects = run("physionet", folder, tmp_path)
    assert [d.id for d in docs] == ["1-1", "3-1"]
    assert [r["location"] for r in rejects] == ["id.text:4", "id.text:7"]
    assert "record header is not 'START_OF_RECORD=<patient>||||<note>||||'" in rejects[0]["reason"]
    assert rejects[0]["raw"] == "START_OF_RECORD=2|||1||||\nLOST NOTE\n||||END_OF_RECORD"
    assert rejects[1]["reason"] == "text between records is not a START_OF_RECORD block"


def test_physionet_phrase_file_not_utf8_is_a_clear_error(tmp_path):
    folder = write_physionet(tmp_path)
    (folder / "id-phi.phrase").write_bytes(b"1 1 15 20 HCPName SMITH\n2 1 9 13 RelativeProxyName M\xffRY\n")
    with pytest.raises(CorpusError, match="id-phi.phrase:2: not valid UTF-8"):
        import_corpus("physionet", folder, tmp_path / "p.jsonl")


def test_output_may_not_overwrite_input(tmp_path):
    src = tmp_path / "c.jsonl"
    src.write_text(json.dumps({"id": "a", "text": "x"}) + "\n")
    with pytest.raises(CorpusError, match="would overwrite the input"):
        import_corpus("jsonl", src, src)


# --- tab ----------------------------------------------------------------------------------

def test_tab_jsonl_layout(tmp_path):
    text = "The applicant, Mr John Doe, was born in 1950 in Ankara."
    record = {"metadata": {"data_id": "TAB-1", "provenance": {"doc_id": "001-1", "task": "t", "year": 2009}},
              "text": text, "entities": [
                  {"span_text": "John Doe", "entity_type": "PERSON", "start_offset": 18, "end_offset": 26,
                   "identifier_type": "DIRECT", "entity_id": "e1", "span_id": "m1"},
                  {"span_text": "1950", "entity_type": "DATETIME", "start_offset": 40, "end_offset": 44,
                   "identifier_type": "QUASI"}]}
    bad = {**record, "metadata": {"data_id": "TAB-2"},
           "entities": [{**record["entities"][0], "start_offset": 17, "end_offset": 25}]}
    src = tmp_path / "entities.jsonl"
    src.write_text(json.dumps(record) + "\n" + json.dumps(bad) + "\n")
    docs, rejects = run("tab", src, tmp_path)
    assert docs[0].id == "TAB-1" and docs[0].meta["doc_id"] == "001-1" and "task" not in docs[0].meta
    assert span_texts(docs[0]) == [("John Doe", "PERSON"), ("1950", "DATETIME")]
    assert docs[0].spans[0].attrs == {"identifier_type": "DIRECT", "entity_id": "e1", "mention_id": "m1"}
    assert rejects[0]["id"] == "TAB-2" and "span_text' differs" in rejects[0]["reason"]


def test_tab_original_layout_with_annotators(tmp_path):
    text = "Judge Anna Berg sat."
    mention = {"entity_type": "PERSON", "entity_mention_id": "m1", "start_offset": 6, "end_offset": 15,
               "span_text": "Anna Berg", "identifier_type": "DIRECT", "entity_id": "e1"}
    data = [{"doc_id": "001-9", "text": text, "dataset_type": "test", "annotations": {
        "annotator1": {"entity_mentions": [mention]},
        "annotator2": {"entity_mentions": []}}}]
    src = tmp_path / "echr_test.json"
    src.write_text(json.dumps(data))
    docs, _ = run("tab", src, tmp_path)
    assert docs[0].id == "001-9" and len(docs[0].spans) == 1 and docs[0].meta["annotator"] == "annotator1"
    docs, _ = run("tab", src, tmp_path, annotator="all")
    assert [(d.id, len(d.spans)) for d in docs] == [("001-9#annotator1", 1), ("001-9#annotator2", 0)]


# --- brat ---------------------------------------------------------------------------------

def _brat(tmp_path, **files: str):
    """A brat folder holding ``files`` (``d_txt="..."`` is ``d.txt``), written as given (no
    newline translation)."""
    root = tmp_path / "brat"
    root.mkdir()
    for name, content in files.items():
        (root / name.replace("_", ".")).write_text(content, newline="")
    return root

def test_brat_spans_fragments_attributes_and_relations(tmp_path):
    root = tmp_path / "brat"
    root.mkdir()
    (root / "d1.txt").write_bytes(b"Pt has chest\r\npain, no fever.\n")
    (root / "d1.ann").write_text(
        "T1\tSymptom 7 12;14 18\tchest pain\n"
        "T2\tSymptom 23 28\tfever\n"
        "A1\tNegated T2\n"
        "A2\tSeverity T1 High\n"
        "R1\tCooccurs Arg1:T1 Arg2:T2\n"
        "#1\tAnnotatorNotes T1\tsplit over a line break\n"
    )
    (root / "d2.txt").write_text("Nothing annotated.")
    (root / "bad.txt").write_text("short")
    (root / "bad.ann").write_text("T1\tX 0 4\tnope\n")
    docs, rejects = run("brat", root, tmp_path)
    d1 = next(d for d in docs if d.id == "d1")
    assert span_texts(d1) == [("chest", "Symptom"), ("pain", "Symptom"), ("fever", "Symptom")]
    assert d1.spans[0].attrs == {"brat_id": "T1", "fragment": 0, "Severity": "High", "note": "split over a line break"}
    assert d1.spans[2].attrs == {"brat_id": "T2", "Negated": True}
    assert d1.meta["brat"] == [{"id": "R1", "annotation": "Cooccurs Arg1:T1 Arg2:T2"}]
    assert {d.id for d in docs} == {"d1", "d2"}
    assert rejects[0]["id"] == "bad" and "text differs" in rejects[0]["reason"]


@pytest.mark.parametrize("ann, reason", [
    ("T1\tNAME 0 4\tJohn\nT1\tNAME 5 10\tSmith\n", "T1 is given twice"),
    ("T1\t 0 4\tJohn\n", "T1 has no label"),
    ("T1\tNAME 0 4\tJohn\nA2\tNegated\n", "A2: an attribute needs a name and a target"),
    ("T1\tNAME 0 4\tJohn\nR1\tRel Arg1:T1 Arg2:T99\n", "R1 links 'T99', which no T or E line of this file defines"),
], ids=["repeated-id", "no-label", "attribute-without-target", "relation-to-nothing"])
def test_brat_annotation_lines_that_would_lose_or_invent_data_reject_the_document(ann, reason, tmp_path):
    root = tmp_path / "brat"
    root.mkdir()
    (root / "d.txt").write_text("John Smith was seen.")
    (root / "d.ann").write_text(ann)
    docs, rejects = run("brat", root, tmp_path)
    assert docs == [] and len(rejects) == 1
    assert reason in rejects[0]["reason"] and rejects[0]["location"].startswith("d.ann:")
    assert "John" not in rejects[0]["reason"] and "Smith" not in rejects[0]["reason"]


@pytest.mark.parametrize("ann, reason", [
    ("Zorblax Quintavius was here.\n", "line does not start with a brat annotation id"),
    ("Zorblax\tQuintavius was here.\n", "line does not start with a brat annotation id"),
    ("T1\tNAME 0 7\tZorblax\nA1\tNegated Zorblax_Quintavius\n",
     "attribute has a target that is not an annotation id (expected e.g. 'A1<TAB>Negated T1')"),
    ("T1\tNAME 0 7\tZorblax\nR1\tFamily Arg1:T1 Arg2:Zorblax\n", "R1 has an argument that is not a T or E id"),
    ("T1\tNAME 0 7\tZorblax\nR1\tFamily Arg1:T1 Zorblax\n", "R1 has an argument that is not a T or E id"),
    ("TZorblax\tQuintavius 0 99\tQuintavius\n", "this T line has offsets outside the text"),
    ("TZorblax\tNAME 0 7\tZorblax\nTZorblax\tNAME 8 18\tQuintavius\n", "this T line is given twice"),
], ids=["txt-copy", "txt-with-tab", "attribute-target", "relation-argument", "relation-argument-no-role",
        "t-line-id", "t-line-id-twice"])
def test_brat_messages_never_quote_what_is_not_shaped_like_an_id(ann, reason, tmp_path):
    # a .txt saved over its .ann, or text in an id's place: reasons reach the console and the manifest
    root = _brat(tmp_path, d_txt="Zorblax Quintavius was here.", d_ann=ann)
    result = import_corpus("brat", root, tmp_path / "b.jsonl")
    (reject,) = [json.loads(x) for x in result.rejects.read_text().splitlines()]
    assert reason in reject["reason"] and reject["location"].startswith("d.ann:")
    for shown in (reject["reason"], *result.first_rejects, result.manifest.read_text()):
        assert "zorblax" not in shown.lower() and "quintavius" not in shown.lower()


def test_brat_attributes_of_events_and_relations_are_kept_in_meta(tmp_path):
    root = _brat(tmp_path, d_txt="Zorblax fell at home.",
                 d_ann="T1\tPerson 0 7\tZorblax\nT2\tFall 8 12\tfell\nE1\tFall:T2 Agent:T1\n"
                       "A1\tNegated E1\nR1\tAt Arg1:T1 Arg2:T2\nA2\tCertainty R1 Low\nA3\tNegated T1\n",
                 e_txt="Quintavius fell.", e_ann="T1\tPerson 0 10\tQuintavius\nA1\tNegated E9\n")
    docs, rejects = run("brat", root, tmp_path)
    (doc,) = docs
    assert doc.meta["brat"] == [{"id": "E1", "annotation": "Fall:T2 Agent:T1"},
                                {"id": "R1", "annotation": "At Arg1:T1 Arg2:T2"},
                                {"id": "A1", "annotation": "Negated E1"},
                                {"id": "A2", "annotation": "Certainty R1 Low"}]
    assert [s.attrs for s in doc.spans] == [{"brat_id": "T1", "Negated": True}, {"brat_id": "T2"}]
    # a target no line defines is still a reject: the attribute would be lost
    assert [(r["id"], r["location"], r["reason"]) for r in rejects] == [
        ("e", "e.ann:2", "attribute refers to 'E9', which no T, E or R line of this file defines")]


def test_brat_annotated_text_with_a_tab_form_feed_or_line_separator(tmp_path):
    # only \n (and \r\n) end an .ann line; the text field is the rest of the line, TABs included
    root = _brat(tmp_path, d_txt="Zorblax\tQuintavius\x0cseen\u2028today\x85.",
                 d_ann="T1\tNAME 0 18\tZorblax\tQuintavius\r\n"
                       "T2\tWHEN 19 31\tseen\u2028today\x85.\r\n"
                       "T3\tFEED 18 19\t\x0c\r\n"
                       "#1\tAnnotatorNotes T1\tleft\tright\x1cend\r\n")
    docs, rejects = run("brat", root, tmp_path)
    assert not rejects
    assert [(s.start, s.end, s.label) for s in docs[0].spans] == [(0, 18, "NAME"), (18, 19, "FEED"), (19, 31, "WHEN")]
    assert docs[0].spans[0].attrs == {"brat_id": "T1", "note": "left\tright\x1cend"}


def test_brat_annotation_listed_twice_or_crossing_is_merged_keeping_both_ids(tmp_path):
    root = _brat(tmp_path, d_txt="Zorblax Quintavius seen today.",
                 d_ann="T1\tNAME 0 18\tZorblax Quintavius\nT2\tNAME 8 23\tQuintavius seen\n"
                       "A1\tNegated T2\nT3\tDATE 24 29\ttoday\nT4\tDATE 24 29\ttoday\n")
    result = import_corpus("brat", root, tmp_path / "b.jsonl")
    assert result.counts.rejected == 0 and (result.repaired, result.repaired_spans) == (1, 2)
    (doc,) = read_documents(result.out)
    assert [(s.start, s.end, s.label, s.attrs) for s in doc.spans] == [
        (0, 23, "NAME", {"brat_id": "T1", "merged_from": [[0, 18], [8, 23]],
                         "merged_attrs": [{"brat_id": "T1"}, {"brat_id": "T2", "Negated": True}]}),
        (24, 29, "DATE", {"brat_id": "T3", "merged_from": [[24, 29], [24, 29]],
                          "merged_attrs": [{"brat_id": "T3"}, {"brat_id": "T4"}]})]


def test_jsonl_record_with_a_repeated_key_is_rejected_not_overwritten(tmp_path):
    src = tmp_path / "d.jsonl"
    src.write_text('{"id": "a", "text": "kept"}\n{"id": "b", "text": "first", "text": "Jane Roe"}\n')
    docs, rejects = run("jsonl", src, tmp_path)
    assert [d.id for d in docs] == ["a"] and len(rejects) == 1
    assert "key 'text' is given twice" in rejects[0]["reason"] and rejects[0]["location"] == "d.jsonl:2"
    assert "Jane" not in rejects[0]["reason"]
    # a repeated key that is not a field of the document model may itself be data
    src.write_text('{"id": "c", "text": "t", "meta": {"Zorblax Quintavius": 1, "Zorblax Quintavius": 2}}\n')
    docs, rejects = run("jsonl", src, tmp_path)
    assert "a key (not quoted: it may hold data) is given twice" in rejects[0]["reason"]
    assert "Zorblax" not in rejects[0]["reason"]


# --- conll --------------------------------------------------------------------------------

def test_conll_byte_order_mark_is_not_text(tmp_path):
    src = tmp_path / "bom.conll"
    src.write_bytes(b"\xef\xbb\xbf-DOCSTART- -X- O O\n\nJohn\tB-PER\n\n-DOCSTART- -X- O O\n\nMary\tB-PER\n")
    docs, rejects = run("conll", src, tmp_path)
    assert not rejects and [d.text for d in docs] == ["John", "Mary"]
    assert [span_texts(d) for d in docs] == [[("John", "PER")], [("Mary", "PER")]]
    (tmp_path / "plain.conll").write_bytes(b"\xef\xbb\xbfJohn\tB-PER\nsaw\tO\n")
    docs, _ = run("conll", tmp_path / "plain.conll", tmp_path)
    assert docs[0].text == "John saw" and span_texts(docs[0]) == [("John", "PER")]


def test_conll_token_with_a_no_break_space_is_kept_whole(tmp_path):
    # columns split at ASCII blanks only: str.split() also split at the no-break space, so the
    # token lost its second half and the entity with it
    src = tmp_path / "nb.conll"
    src.write_bytes(b"Zorblax\xc2\xa0Quintavius B-PER\npaid O\n10\xc2\xa0000 B-MONEY\nmore\xe2\x80\xa8 I-MONEY\n")
    docs, rejects = run("conll", src, tmp_path)
    assert not rejects and docs[0].text == "Zorblax\xa0Quintavius paid 10\xa0000 more\u2028"
    assert span_texts(docs[0]) == [("Zorblax\xa0Quintavius", "PER"), ("10\xa0000 more\u2028", "MONEY")]


def test_conll_builds_exact_spans_and_groups_sentences(tmp_path):
    src = tmp_path / "ner.tsv"
    src.write_text(
        "Famil\tO\nadenomatous\tB-Disease\npolyposis\tI-Disease\n.\tO\n\n"
        "Aspirin\tB-Chemical\ncauses\tO\nbleeding\tB-Disease\n\n"
        "None\tO\n\n"
    )
    docs, rejects = run("conll", src, tmp_path, sentences_per_doc=2)
    assert not rejects
    assert [d.id for d in docs] == ["ner-00000", "ner-00001"]
    assert docs[0].text == "Famil adenomatous polyposis .\nAspirin causes bleeding"
    assert span_texts(docs[0]) == [("adenomatous polyposis", "Disease"), ("Aspirin", "Chemical"),
                                   ("bleeding", "Disease")]


def test_conll_docstart_and_malformed_tags(tmp_path):
    src = tmp_path / "c.conll"
    src.write_text(
        "-DOCSTART- -X- O O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n"
        "-DOCSTART- -X- O O\n\nPeter NNP B-NP I-PER\n\n"
        "-DOCSTART- -X- O O\n\nBad X-FOO\n\n"
        "-DOCSTART- -X- O O\n\nlonely\n\n"
    )
    docs, rejects = run("conll", src, tmp_path)
    assert [d.id for d in docs] == ["c-00000"] and span_texts(docs[0]) == [("EU", "ORG")]
    reasons = sorted(r["reason"] for r in rejects)
    assert any("I- tag does not continue an entity of its type (column 4" in r for r in reasons)
    assert any("tag is not O or B-/I-TYPE (IOB), S-/E-TYPE (BIOES), U-/L-TYPE (BILOU) (column 2" in r for r in reasons)
    assert any("expected 'token<TAB>tag'" in r for r in reasons)
    bad = next(r for r in rejects if "tag is not O or B-/I-TYPE" in r["reason"])
    assert bad["raw"] == "Bad X-FOO" and bad["location"] == "c.conll:12"  # the lines as read, not rebuilt
    docs, _ = run("conll", src, tmp_path, scheme="iob1")
    assert ("Peter", "PER") in span_texts(next(d for d in docs if d.id == "c-00001"))


def test_conll_reject_reasons_never_quote_an_invalid_tag(tmp_path):
    src = tmp_path / "swapped.conll"
    src.write_text("Patient\tO\nB-NAME\tZorblax\n\nPatient\tO\tO\nZorblax\tB-NAME\tI-Quintavius\n\n"
                   "Aspirin\tB-Chemical\n\nbleeding\tI-Chemical\n")
    result = import_corpus("conll", src, tmp_path / "c.jsonl", {"sentences_per_doc": 1})
    rejects = [json.loads(x) for x in result.rejects.read_text().splitlines()]
    reasons = {r["location"]: r["reason"] for r in rejects}
    assert reasons["swapped.conll:2"].startswith("tag is not O or B-/I-TYPE (IOB), S-/E-TYPE (BIOES), U-/L-TYPE (BILOU) (column 2")
    # an I- of a type no B- tag has may be a token in the tag column: rejected, never a label
    assert reasons["swapped.conll:5"] == ("I- tag does not continue an entity of its type (column 3; no B-, S- or U- tag of "
                                          "the file has its type: a swapped column?)")
    assert "swapped.conll:9" not in reasons  # a stray I- of a known type is repaired (next test)
    manifest = result.manifest.read_text()
    assert "Zorblax" not in manifest and "Quintavius" not in manifest
    assert not any("Zorblax" in r or "Quintavius" in r for r in reasons.values())


def test_conll_repairs_a_stray_i_tag_of_a_known_type_and_counts_it(tmp_path, cli):
    src = tmp_path / "stray.conll"
    src.write_text("Zorbel\tB-Disease\n\nthe\tO\nVentrax\tI-Disease\nsyndrome\tI-Disease\nrecurs\tO\n"
                   "\nKelvane\tB-Chemical\n")
    result = import_corpus("conll", src, tmp_path / "c.jsonl", {"sentences_per_doc": 2})
    docs = list(read_documents(result.out))
    assert result.counts.rejected == 0 and result.repaired_spans == 1 and result.repaired == 1
    assert [(docs[0].text[s.start:s.end], s.label, s.attrs) for s in docs[0].spans] == [
        ("Zorbel", "Disease", {}),
        ("Ventrax syndrome", "Disease", {"repaired": "started by an I- tag at stray.conll:4 (IOB2 expects B-)"})]
    counts = json.loads(result.manifest.read_text())["counts"]
    assert counts["repaired_spans"] == 1 and counts["repaired"] == 1
    out = cli("import", "conll", str(src), "-o", str(tmp_path / "cli.jsonl"), "--sentences-per-doc", "2")
    assert out.exit_code == 0 and "repaired instead of rejected: 1 of the written records" in out.output
    # iob1 reads it the same way as that scheme's rule, not as a repair; iob2-strict rejects the document
    result = import_corpus("conll", src, tmp_path / "c1.jsonl", {"sentences_per_doc": 2, "scheme": "iob1"})
    assert result.repaired_spans == 0 and [s.attrs for s in next(read_documents(result.out)).spans] == [{}, {}]
    result = import_corpus("conll", src, tmp_path / "c2.jsonl", {"sentences_per_doc": 2, "scheme": "iob2-strict"})
    (reject,) = [json.loads(x) for x in result.rejects.read_text().splitlines()]
    assert reject["location"] == "stray.conll:4" and "use --scheme iob2 to repair it or iob1" in reject["reason"]
    assert result.counts.written == 1  # the Chemical document


def test_unknown_format_and_bad_option_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown import format 'brats'.*did you mean 'brat'"):
        import_corpus("brats", tmp_path, tmp_path / "o.jsonl")
    with pytest.raises(ConfigError, match="'scheme' must be one of"):
        import_corpus("conll", tmp_path, tmp_path / "o.jsonl", {"scheme": "bio"})


# --- the real datasets --------------------------------------------------------------------

@pytest.mark.shared_data
def test_physionet_real_reproduces_all_gold_spans(shared_data, tmp_path):
    folder = shared_data / "physionet-deid"
    docs, rejects = run("physionet", folder, tmp_path)
    assert not rejects and len(docs) == 1274
    gold = [line.rstrip("\n").split(" ", 5) for line in open(folder / "id-phi.phrase") if line.strip()]
    by_id = {d.id: d for d in docs}
    assert sum(len(d.spans) for d in docs) == len(gold) == 1021
    for patient, note, start, end, kind, text in gold:
        doc = by_id[f"{patient}-{note}"]
        assert doc.text[int(start):int(end)] == text
        assert any(s.start == int(start) and s.end == int(end) and s.label == kind for s in doc.spans)


@pytest.mark.shared_data
def test_tab_real_reproduces_all_entity_spans(shared_data, tmp_path):
    src = shared_data / "tab-echr" / "entity_tab.jsonl"
    docs, rejects = run("tab", src, tmp_path)
    raw = [json.loads(line) for line in open(src)]
    assert not rejects and len(docs) == len(raw)
    for doc, record in zip(docs, raw):
        assert len(doc.spans) == len(record["entities"])
        for span, entity in zip(doc.spans, record["entities"]):
            assert doc.span_text(span) == entity["span_text"]
            assert span.attrs["identifier_type"] == entity["identifier_type"]


@pytest.mark.shared_data
@pytest.mark.parametrize("dataset", ["ncbi-disease", "bc5cdr"])
def test_iob_real_sets_reproduce_every_entity(shared_data, tmp_path, dataset):
    for split in ("train", "devel"):
        src = shared_data / dataset / f"{split}.tsv"
        docs, rejects = run("conll", src, tmp_path)
        assert not rejects
        # Rebuild the token/tag stream from the documents and compare with the file.
        expected_tokens, expected_entities = [], []
        current = None
        for line in open(src, encoding="utf-8"):
            line = line.rstrip("\n")
            if not line:
                current = None
                continue
            token, tag = line.split("\t")
            expected_tokens.append(token)
            if tag.startswith("B-"):
                current = [token]
                expected_entities.append((current, tag[2:]))
            elif tag.startswith("I-"):
                current.append(token)
            else:
                current = None
        tokens = [t for d in docs for t in d.text.replace("\n", " ").split(" ")]
        assert tokens == expected_tokens
        entities = [(doc.span_text(s), s.label) for doc in docs for s in doc.spans]
        assert entities == [(" ".join(toks), kind) for toks, kind in expected_entities]


@pytest.mark.shared_data
def test_mtsamples_csv_imports_every_row(shared_data, tmp_path):
    src = shared_data / "mtsamples" / "mtsamples.csv"
    docs, rejects = run("csv", src, tmp_path, text_col="transcription", id_col="note_id",
                        label_col="medical_specialty")
    import csv as _csv

    with open(src, encoding="utf-8", newline="") as fh:
        rows = list(_csv.DictReader(fh))
    assert len(docs) + len(rejects) == len(rows) and not rejects
    assert docs[10].text == rows[10]["transcription"]
