"""A careless user's real-world files, second pass: Prodigy binary recipes, Label Studio regions
and results, brat files from two annotators, CoNLL exported with trailing TABs, compressed
inputs. Made-up text only."""

from __future__ import annotations

import bz2
import gzip
import json

import pytest

from conftest import import_into, span_keys
from domainfm.corpus.importing import import_corpus
from domainfm.errors import CorpusError


_import, _keys = import_into, span_keys


def _jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


SESSION = {"_session_id": "ds-default"}


def test_prodigy_binary_answers_to_one_input_are_combined_not_superseded(tmp_path):
    # ner.teach / textcat.teach ask one span or label per task: one input, several tasks
    t, c = "Dr Qwerty saw Ms Asdf today.", "Chest pain again."
    src = _jsonl(tmp_path / "teach.jsonl", [
        {"text": t, "_input_hash": 1, "_task_hash": 11, "spans": [{"start": 3, "end": 9, "label": "PERSON"}],
         "answer": "accept", **SESSION},
        {"text": t, "_input_hash": 1, "_task_hash": 12, "spans": [{"start": 17, "end": 21, "label": "PERSON"}],
         "answer": "accept", **SESSION},
        {"text": t, "_input_hash": 1, "_task_hash": 13, "spans": [{"start": 22, "end": 27, "label": "PERSON"}],
         "answer": "reject", **SESSION},
        {"text": c, "_input_hash": 2, "_task_hash": 21, "label": "CARDIO", "answer": "accept", **SESSION},
        {"text": c, "_input_hash": 2, "_task_hash": 22, "label": "URGENT", "answer": "accept", **SESSION},
        # the same task answered again by the same annotator is a resubmission: the later counts
        {"text": c, "_input_hash": 2, "_task_hash": 22, "label": "URGENT", "answer": "accept", **SESSION},
    ])
    docs, rejects, _ = _import("prodigy", src, tmp_path)
    assert not rejects
    assert _keys(docs[0]) == [(3, 9, "PERSON"), (17, 21, "PERSON")]
    assert "superseded_versions" not in docs[0].meta["prodigy"]
    assert docs[1].label is None and docs[1].labels == ["CARDIO", "URGENT"]
    assert docs[1].meta["prodigy"]["superseded_versions"] == 1


def _ls_task(task_id, text, result):
    return {"id": task_id, "data": {"text": text}, "annotations": [{"completed_by": 1, "result": result}]}


def test_labelstudio_keeps_the_value_of_other_result_types(tmp_path):
    t = "Patient Zorblax has a cough."
    src = tmp_path / "ls.json"
    src.write_text(json.dumps([_ls_task(1, t, [
        {"id": "a", "type": "textarea", "from_name": "comment", "to_name": "text", "value": {"text": ["check dose"]}},
        {"id": "b", "type": "rating", "from_name": "quality", "to_name": "text", "value": {"rating": 4}}])]))
    docs, rejects, _ = _import("labelstudio", src, tmp_path)
    assert not rejects
    other = docs[0].meta["labelstudio"]["other"]
    assert [o["value"] for o in other] == [{"text": ["check dose"]}, {"rating": 4}]


def test_labelstudio_region_text_with_collapsed_blanks_matches_its_words(tmp_path):
    # Label Studio writes value.text with runs of blanks collapsed; its offsets are right
    t = "\U0001F600 Seen:  Qwerty\r\nAsdf  today."
    i, j = t.index("Qwerty"), t.index("Asdf") + 4
    region = {"type": "labels", "value": {"start": i, "end": j, "text": "Qwerty Asdf", "labels": ["NAME"]}}
    utf16 = {"type": "labels", "value": {"start": i + 1, "end": j + 1, "text": "Qwerty Asdf", "labels": ["NAME"]}}
    wrong = {"type": "labels", "value": {"start": i, "end": j, "text": "Qwerty Zzzz", "labels": ["NAME"]}}
    src = tmp_path / "ls.json"
    src.write_text(json.dumps([_ls_task(1, t, [region]), _ls_task(2, t, [utf16]), _ls_task(3, t, [wrong])]))
    docs, rejects, _ = _import("labelstudio", src, tmp_path)
    assert [_keys(d) for d in docs] == [[(i, j, "NAME")]] * 2
    assert [r["location"] for r in rejects] == ["ls.json:task 3"]
    assert "differs from the task text" in rejects[0]["reason"]


def test_brat_second_note_or_attribute_value_is_kept_not_overwritten(tmp_path):
    folder = tmp_path / "brat"
    folder.mkdir()
    (folder / "a.txt").write_text("Mr Qwerty went home.", encoding="utf-8")
    (folder / "a.ann").write_text(
        "T1\tPER 3 9\tQwerty\n#1\tAnnotatorNotes T1\tfirst note\n#2\tAnnotatorNotes T1\tsecond note\n"
        "A1\tConf T1 high\nA2\tConf T1 low\nA3\tConf T1 high\nA4\tbrat_id T1 X9\n", encoding="utf-8")
    docs, rejects, _ = _import("brat", folder, tmp_path)
    assert not rejects
    attrs = docs[0].spans[0].attrs
    assert attrs["note"] == "first note" and attrs["Conf"] == "high" and attrs["brat_id"] == "T1"
    assert docs[0].meta["brat"] == [{"id": "A2", "annotation": "Conf T1 low"},
                                    {"id": "A4", "annotation": "brat_id T1 X9"},
                                    {"id": "#3", "annotation": "AnnotatorNotes T1", "text": "second note"}]


def test_conll_trailing_tab_is_not_read_as_an_empty_tag(tmp_path):
    src = tmp_path / "x.conll"
    src.write_text("Qwerty\tB-PER\t\nwent\tO\t \nhome\tO\n\nAsdf\t\n", encoding="utf-8")
    docs, rejects, _ = _import("conll", src, tmp_path, sentences_per_doc=1)
    assert docs[0].text == "Qwerty went home" and _keys(docs[0]) == [(0, 6, "PER")]
    # a token with a TAB and no tag is still missing its tag
    assert len(rejects) == 1 and "expected 'token<TAB>tag'" in rejects[0]["reason"]


@pytest.mark.parametrize("fmt, name, content", [
    ("jsonl", "n.jsonl.gz", b'{"id": "1", "text": "abc"}\n{"id": "2", "text": "def"}\n'),
    ("csv", "n.csv.gz", b"text\nabc\n"),
    ("prodigy", "n.jsonl.gz", b'{"text": "abc", "answer": "accept"}\n'),
    ("labelstudio", "n.json.gz", b'[{"id": 1, "data": {"text": "abc"}}]'),
    ("conll", "n.conll.gz", b"abc\tO\n"),
    ("tab", "n.jsonl.gz", b'{"doc_id": "1", "text": "abc"}\n'),
])
@pytest.mark.parametrize("compress, kind", [(gzip.compress, "gzip"), (bz2.compress, "bzip2")])
def test_a_compressed_input_is_refused_as_a_whole_naming_it(tmp_path, fmt, name, content, compress, kind):
    src = tmp_path / name
    src.write_bytes(compress(content))
    with pytest.raises(CorpusError, match=rf"a compressed file \({kind}\).*decompress it first"):
        import_corpus(fmt, src, tmp_path / "out.jsonl", {})
    assert not (tmp_path / "out.jsonl").exists()


def test_a_parquet_file_where_jsonl_is_read_is_refused_naming_the_engines(cli, tmp_path):
    """Without an engine, `deid notes.parquet` read the file as lines: every piece of it was a
    "not valid UTF-8" reject, raw Parquet bytes in the reject file, and the run exited 0."""
    src = tmp_path / "notes.parquet"
    src.write_bytes(b"PAR1" + bytes(range(256)) * 4 + b"\n" + bytes(range(256)) + b"PAR1")
    for command in (["deid", src, "-o", tmp_path / "out.jsonl", "--seed", "1"], ["chunk", src, "-o", tmp_path / "out.jsonl"]):
        result = cli(*command)
        assert result.exit_code == 2, result.output
        assert "notes.parquet: a Parquet file" in result.output and "--engine spark" in result.output
        assert "Traceback" not in result.output
        assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.parquet"]
    with pytest.raises(CorpusError, match="a Parquet file, where UTF-8 text is read"):
        import_corpus("jsonl", src, tmp_path / "out.jsonl", {})


def test_a_parquet_output_name_for_a_jsonl_writer_is_refused(cli, tmp_path):
    """Without an engine, `deid -o out.parquet` wrote JSONL under that name, which every Parquet
    reader then failed on."""
    src = tmp_path / "n.jsonl"
    src.write_text('{"id": "a", "text": "Seen on 3/4/2019."}\n', encoding="utf-8")
    for command in (["deid", src, "-o", tmp_path / "out.parquet", "--seed", "1"],
                    ["chunk", src, "-o", tmp_path / "out.parquet"]):
        result = cli(*command)
        assert result.exit_code == 2 and "out.parquet: this writes JSONL, not Parquet" in result.output, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.jsonl"]


def test_a_csv_whose_header_starts_like_a_bzip2_signature_is_still_text(tmp_path):
    src = tmp_path / "h.csv"
    src.write_text("BZh1,text\nx,abc\n", encoding="utf-8")
    docs, rejects, _ = _import("csv", src, tmp_path)
    assert not rejects and docs[0].text == "abc"


def test_csv_blank_label_cell_is_no_label(tmp_path):
    src = tmp_path / "l.csv"
    src.write_text("text,label\none, \ntwo,\nthree,pos\n", encoding="utf-8")
    docs, rejects, _ = _import("csv", src, tmp_path, label_col="label")
    assert not rejects and [d.label for d in docs] == [None, None, "pos"]


def test_labelstudio_json_min_export_is_named_in_the_reason(tmp_path):
    src = tmp_path / "min.json"
    src.write_text(json.dumps([{"id": 1, "text": "Qwerty came.", "annotator": 1,
                                "label": [{"start": 0, "end": 6, "text": "Qwerty", "labels": ["NAME"]}]}]))
    docs, rejects, _ = _import("labelstudio", src, tmp_path)
    assert not docs and "JSON-MIN export: export the project as JSON" in rejects[0]["reason"]
    assert "Qwerty" not in rejects[0]["reason"]


def test_tab_offsets_outside_the_text_say_so(tmp_path):
    src = tmp_path / "tab.json"
    mention = {"entity_type": "LOC", "entity_mention_id": "m1", "start_offset": 19, "end_offset": 40,
               "span_text": "Oslo", "identifier_type": "QUASI"}
    src.write_text(json.dumps([{"doc_id": "t1", "text": "Mr Qwerty lives in Oslo.",
                                "annotations": {"ann1": {"entity_mentions": [mention]}}}]))
    docs, rejects, _ = _import("tab", src, tmp_path)
    assert not docs and "entity 0 (LOC [19:40]) lies outside the text (length 24)" in rejects[0]["reason"]


def test_brat_offsets_counted_before_the_txt_got_windows_line_ends_are_mapped(tmp_path):
    folder = tmp_path / "brat"
    folder.mkdir()
    lf = "Mr Qwerty came.\nSeen by Asdf\nand Zxcv today.\n"
    (folder / "a.txt").write_bytes(lf.replace("\n", "\r\n").encode())  # git autocrlf on checkout
    a, z = lf.index("Asdf"), lf.index("Zxcv")
    (folder / "a.ann").write_text(f"T1\tPER 3 9\tQwerty\nT2\tPER {a} {a + 4}\tAsdf\nT3\tPAIR {a} {a + 4};{z} {z + 4}\t"
                                  f"Asdf Zxcv\nT4\tPER {z} {z + 4}\tnope\n", encoding="utf-8")
    docs, rejects, result = _import("brat", folder, tmp_path)
    assert not docs and "T4: its text differs" in rejects[0]["reason"]  # a wrong text is still wrong
    (folder / "a.ann").write_text(f"T1\tPER 3 9\tQwerty\nT2\tPER {a} {a + 4}\tAsdf\nT3\tPAIR {a} {a + 4};{z} {z + 4}\t"
                                  f"Asdf Zxcv\n", encoding="utf-8")
    docs, rejects, result = _import("brat", folder, tmp_path)
    assert not rejects
    doc = docs[0]
    assert [doc.span_text(s) for s in doc.spans] == ["Qwerty", "Asdf", "Asdf", "Zxcv"]
    assert "repaired" not in doc.spans[0].attrs and all("repaired" in s.attrs for s in doc.spans[1:])
    assert result.repaired_spans == 3


def test_prodigy_binary_answers_without_annotator_ids_are_one_annotators(tmp_path):
    t = "Dr Qwerty saw Ms Asdf today."
    src = _jsonl(tmp_path / "teach.jsonl", [
        {"text": t, "_input_hash": 1, "_task_hash": 11, "spans": [{"start": 3, "end": 9, "label": "PERSON"}],
         "answer": "accept"},
        {"text": t, "_input_hash": 1, "_task_hash": 12, "spans": [{"start": 17, "end": 21, "label": "PERSON"}],
         "answer": "accept"},
        # two unnamed answers to one task are still two annotators, who disagree here
        {"text": "Mild rash.", "_input_hash": 2, "_task_hash": 21, "label": "DERM", "answer": "accept"},
        {"text": "Mild rash.", "_input_hash": 2, "_task_hash": 21, "label": "CARDIO", "answer": "accept"},
    ])
    docs, rejects, result = _import("prodigy", src, tmp_path)
    assert not rejects
    assert _keys(docs[0]) == [(3, 9, "PERSON"), (17, 21, "PERSON")] and "annotations" not in docs[0].meta
    assert docs[1].label is None and len(docs[1].meta["annotations"]) == 2


def test_hidden_files_and_folders_are_skipped_and_counted(tmp_path):
    notes = tmp_path / "notes"
    (notes / ".ipynb_checkpoints").mkdir(parents=True)
    (notes / ".git").mkdir()
    (notes / "a.txt").write_text("Seen today.", encoding="utf-8")
    (notes / ".ipynb_checkpoints" / "a-checkpoint.txt").write_text("Seen today.", encoding="utf-8")
    (notes / ".git" / "x.txt").write_text("ref", encoding="utf-8")
    (notes / ".hidden.txt").write_text("scratch", encoding="utf-8")
    docs, rejects, result = _import("textdir", notes, tmp_path)
    assert [d.id for d in docs] == ["a"] and not rejects
    assert result.skipped == {"hidden": 3} and result.counts.read == 1
    manifest = json.loads(result.manifest.read_text())
    assert manifest["counts"]["skipped_files"] == {"hidden": 3}
    # a pattern that names a hidden folder reads it
    docs, _, result = _import("textdir", notes, tmp_path, pattern=".ipynb_checkpoints/*.txt")
    assert [d.id for d in docs] == [".ipynb_checkpoints/a-checkpoint"] and not result.skipped
    # brat: the checkpoint copy of a .txt and its .ann are left out, not read as a second document
    brat = tmp_path / "brat"
    (brat / ".ipynb_checkpoints").mkdir(parents=True)
    for folder in (brat, brat / ".ipynb_checkpoints"):
        (folder / "n1.txt").write_text("Dr Qwerty saw her.", encoding="utf-8")
        (folder / "n1.ann").write_text("T1\tDOCTOR 3 9\tQwerty\n", encoding="utf-8")
    docs, rejects, result = _import("brat", brat, tmp_path)
    assert [d.id for d in docs] == ["n1"] and not rejects and result.skipped == {"hidden": 1}


def test_the_import_command_says_how_many_hidden_files_it_skipped(tmp_path):
    from typer.testing import CliRunner

    from domainfm.cli import app

    notes = tmp_path / "notes"
    (notes / ".ipynb_checkpoints").mkdir(parents=True)
    (notes / "a.txt").write_text("Seen today.", encoding="utf-8")
    (notes / ".ipynb_checkpoints" / "a-checkpoint.txt").write_text("Seen today.", encoding="utf-8")
    result = CliRunner().invoke(app, ["import", "textdir", str(notes), "-o", str(tmp_path / "out.jsonl")])
    assert result.exit_code == 0, result.output
    assert "skipped 1 hidden file" in " ".join(result.output.split())
