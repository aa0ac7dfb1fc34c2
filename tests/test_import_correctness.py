"""Well-formed files come out exactly right: brat, CoNLL, Label Studio, Prodigy, JSONL and CSV
imports checked span by span and number by number against hand-made expectations, round trips,
and the manifest's counts. Made-up text only."""

from __future__ import annotations

import json
import unicodedata

import pytest

from conftest import import_into, span_keys
from domainfm.corpus.document import Document, Span
from domainfm.label.export import write_span_export

_import, _keys = import_into, span_keys


def _texts(doc):
    return [(doc.span_text(s), s.label) for s in doc.spans]


def _brat(tmp_path, text: bytes | str, ann: str):
    folder = tmp_path / "brat"
    folder.mkdir(exist_ok=True)
    (folder / "a.txt").write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    (folder / "a.ann").write_text(ann, encoding="utf-8")
    return folder


# --- brat ------------------------------------------------------------------------------------

def test_brat_discontinuous_non_ascii_notes_attributes_and_relations_exactly(tmp_path):
    # code points, as brat counts: the accented letters (one code point each, NFC) and the emoji
    # (one code point, two UTF-16 units) before the spans must not shift them
    text = "Pätiënt 😀 Jöhn Smïth\nseen at Ōslo.\tend"
    john, oslo = text.index("Jöhn"), text.index("Ōslo")
    folder = _brat(tmp_path, text, (
        f"T1\tPER {john} {john + 4};{john + 5} {john + 10}\tJöhn Smïth\n"
        f"T2\tLOC {oslo} {oslo + 4}\tŌslo\n"
        "T3\tEMO 8 9\t😀\n"
        "A1\tNegated T1\nA2\tCertainty T2 High\n"
        "#1\tAnnotatorNotes T2\ta city\twith a tab\n"
        "R1\tLivesIn Arg1:T1 Arg2:T2\n"
        "N1\tReference T2 Geo:123\tŌslo\n"))
    docs, rejects, result = _import("brat", folder, tmp_path)
    assert not rejects and result.repaired_spans == 0
    doc = docs[0]
    assert _texts(doc) == [("😀", "EMO"), ("Jöhn", "PER"), ("Smïth", "PER"), ("Ōslo", "LOC")]
    assert [s.attrs for s in doc.spans] == [
        {"brat_id": "T3"},
        {"brat_id": "T1", "fragment": 0, "Negated": True},
        {"brat_id": "T1", "fragment": 1, "Negated": True},
        {"brat_id": "T2", "Certainty": "High", "note": "a city\twith a tab"}]
    assert doc.meta["brat"] == [{"id": "R1", "annotation": "LivesIn Arg1:T1 Arg2:T2"},
                                {"id": "N1", "annotation": "Reference T2 Geo:123", "text": "Ōslo"}]


def test_brat_offsets_past_several_lines_of_a_lf_file_are_taken_as_written(tmp_path):
    text = "Line one.\n\nLine three: Qwerty.\nLast line Asdf"
    q, a = text.index("Qwerty"), text.index("Asdf")
    docs, rejects, result = _import("brat", _brat(tmp_path, text, f"T1\tP {q} {q + 6}\tQwerty\nT2\tP {a} {a + 4}\t"
                                                                  "Asdf\n"), tmp_path)
    assert not rejects and _texts(docs[0]) == [("Qwerty", "P"), ("Asdf", "P")] and result.repaired_spans == 0


def test_brat_crlf_file_annotated_in_brat_maps_every_annotation_even_one_that_also_matches_unmapped(tmp_path):
    # brat reads a .txt with universal newlines and counts each \r\n as one character
    # (nlplab/brat#853). The second "no" at brat's 9-11 also reads "no" at 9-11 of the file as
    # written, three line ends on: it was left there, on the first "no", while the rest of the
    # file was mapped, so two annotations of different words landed on one.
    text = "A\r\nB\r\nC\r\nno no no"
    folder = _brat(tmp_path, text.encode(), "T1\tX 4 5\tC\nT2\tSECOND 9 11\tno\nT3\tFIRST 6 8\tno\nT4\tTHIRD 12 14\n")
    docs, rejects, result = _import("brat", folder, tmp_path)
    assert not rejects
    doc = docs[0]
    assert sorted((s.label, s.start, s.end) for s in doc.spans) == [
        ("FIRST", 9, 11), ("SECOND", 12, 14), ("THIRD", 15, 17), ("X", 6, 7)]
    # a line without its text (T4) follows the rest of the file
    assert all(doc.span_text(s) == ("C" if s.label == "X" else "no") for s in doc.spans)
    assert result.repaired_spans == 4


def test_brat_crlf_file_counted_as_written_is_left_as_it_is(tmp_path):
    text = "A\r\nB\r\nC\r\nno no no"
    docs, rejects, result = _import("brat", _brat(tmp_path, text.encode(), "T1\tX 6 7\tC\nT2\tY 12 14\tno\n"), tmp_path)
    assert not rejects and [(s.start, s.end) for s in docs[0].spans] == [(6, 7), (12, 14)]
    assert result.repaired_spans == 0


# --- CoNLL -----------------------------------------------------------------------------------

CONLL_2003 = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O
. . O O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER

-DOCSTART- -X- -X- O

BRUSSELS NNP B-NP B-LOC
1996-08-22 CD I-NP O
"""


def test_conll_docstart_sentences_and_offsets_match_the_words(tmp_path):
    src = tmp_path / "eng.conll"
    src.write_text(CONLL_2003)
    docs, rejects, result = _import("conll", src, tmp_path)
    assert not rejects and result.counts.read == 2 and result.counts.written == 2
    assert [d.text for d in docs] == ["EU rejects German call .\nPeter Blackburn", "BRUSSELS 1996-08-22"]
    assert [_texts(d) for d in docs] == [[("EU", "ORG"), ("German", "MISC"), ("Peter Blackburn", "PER")],
                                         [("BRUSSELS", "LOC")]]
    assert docs[0].meta["n_sentences"] == 2


def test_conll_iob1_and_iob2_read_the_same_entities(tmp_path):
    words = ["U.N.", "official", "Ekeus", "met", "Bonn", "Berlin", "Paris"]
    iob1 = ["I-ORG", "O", "I-PER", "O", "I-LOC", "B-LOC", "I-LOC"]  # B- only between two LOCs
    iob2 = ["B-ORG", "O", "B-PER", "O", "B-LOC", "B-LOC", "I-LOC"]
    for name, tags in (("iob1", iob1), ("iob2", iob2)):
        (tmp_path / f"{name}.conll").write_text("".join(f"{w}\t{t}\n" for w, t in zip(words, tags)))
    (tmp_path / "one").mkdir()
    d1, r1, _ = _import("conll", tmp_path / "iob1.conll", tmp_path / "one", scheme="iob1")
    d2, r2, _ = _import("conll", tmp_path / "iob2.conll", tmp_path)
    assert not r1 and not r2 and d1[0].text == d2[0].text
    assert _texts(d1[0]) == _texts(d2[0]) == [("U.N.", "ORG"), ("Ekeus", "PER"), ("Bonn", "LOC"),
                                              ("Berlin Paris", "LOC")]


@pytest.mark.parametrize("scheme", ["bioes", "bilou"])
def test_conll_bioes_and_bilou_read_the_same_entities_as_iob2(tmp_path, scheme):
    # an S-/E- (U-/L-) tag was rejected as "not O, B-TYPE or I-TYPE ... is the tag the last column?"
    words = ["U.N.", "official", "Ekeus", "met", "Bonn", "Berlin", "Paris"]
    single, last = ("S", "E") if scheme == "bioes" else ("U", "L")
    tags = [f"{single}-ORG", "O", f"{single}-PER", "O", f"{single}-LOC", "B-LOC", f"{last}-LOC"]
    (tmp_path / "in.conll").write_text("".join(f"{w}\t{t}\n" for w, t in zip(words, tags)))
    docs, rejects, _ = _import("conll", tmp_path / "in.conll", tmp_path)
    assert not rejects
    assert _texts(docs[0]) == [("U.N.", "ORG"), ("Ekeus", "PER"), ("Bonn", "LOC"), ("Berlin Paris", "LOC")]
    assert not any(span.attrs for span in docs[0].spans)  # read as written, nothing repaired


def test_conll_crlf_bom_and_several_blank_lines(tmp_path):
    src = tmp_path / "w.conll"
    src.write_bytes(b"\xef\xbb\xbfAnn\tB-P\r\nLee\tI-P\r\n\r\n\r\nsaw\tO\r\nBob\tB-P\r\n")
    docs, rejects, _ = _import("conll", src, tmp_path)
    assert not rejects and docs[0].text == "Ann Lee\nsaw Bob"
    assert _texts(docs[0]) == [("Ann Lee", "P"), ("Bob", "P")]


# --- Label Studio and Prodigy: annotators, agreement, round trips ----------------------------

def _region(text, start, end, label, rid="r"):
    return {"id": rid, "type": "labels", "from_name": "label", "to_name": "text",
            "value": {"start": start, "end": end, "text": text[start:end], "labels": [label]}}


def _choice(*choices):
    return {"type": "choices", "from_name": "c", "to_name": "text", "value": {"choices": list(choices)}}


# two annotators over four documents. Choices: A x x y y, B x y y y -> p_o = 3/4,
# p_e = (2/4)(1/4) + (2/4)(3/4) = 1/2, kappa = (3/4 - 1/2) / (1 - 1/2) = 0.5.
# Spans: each marks one span per document, the same one on documents 1 and 3 -> F1 = 2*2/8.
TEXTS = ["one two three", "four five six", "seven eight", "nine ten"]
CHOICE_A, CHOICE_B = ["x", "x", "y", "y"], ["x", "y", "y", "y"]


def test_labelstudio_agreement_is_cohens_kappa_and_pairwise_f1_by_hand(tmp_path):
    tasks = []
    for i, t in enumerate(TEXTS):
        tasks.append({"id": i + 1, "data": {"text": t}, "annotations": [
            {"id": 1, "completed_by": {"id": 7, "email": "a@example.org"}, "ground_truth": True,
             "result": [_choice(CHOICE_A[i]), _region(t, 0, 3, "N")]},
            {"id": 2, "completed_by": 8, "result": [_choice(CHOICE_B[i]), _region(t, 0, 3 if i % 2 == 0 else 4, "N")]},
            # a skipped annotation is no annotator's vote
            {"id": 3, "completed_by": 9, "was_cancelled": True, "result": [_choice("z")]}]})
    src = tmp_path / "ls.json"
    src.write_text(json.dumps(tasks))
    docs, rejects, result = _import("labelstudio", src, tmp_path)
    assert not rejects
    agreement = json.loads(result.manifest.read_text())["agreement"]
    assert agreement["choice_cohen_kappa"] == {"ls-user-7 | ls-user-8": {"kappa": 0.5, "documents": 4}}
    assert agreement["span_pairwise_f1"] == 0.5 and agreement["span_pairs_compared"] == {"matched": 2, "spans": 8}
    assert agreement["annotators"] == 2 and agreement["documents_with_several_annotators"] == 4
    # annotator 7's annotations are marked ground truth: each task's version is theirs, where a
    # majority of two would leave the disagreements unresolved
    assert [(d.label, _keys(d)) for d in docs] == [("x", [(0, 3, "N")]), ("x", [(0, 3, "N")]), ("y", [(0, 3, "N")]),
                                                   ("y", [(0, 3, "N")])]
    assert {d.meta["labelstudio"]["resolved_by"] for d in docs} == {"ground_truth"}


def test_prodigy_agreement_is_cohens_kappa_and_pairwise_f1_by_hand(tmp_path):
    options = [{"id": "x", "text": "x"}, {"id": "y", "text": "y"}]
    lines = []
    for i, t in enumerate(TEXTS):
        for who, choice, end in (("ds-alice", CHOICE_A[i], 3), ("ds-bob", CHOICE_B[i], 3 if i % 2 == 0 else 4)):
            lines.append({"text": t, "options": options, "accept": [choice], "answer": "accept", "_input_hash": i,
                          "_task_hash": 100 + i, "_annotator_id": who,
                          "spans": [{"start": 0, "end": end, "label": "N"}]})
        lines.append({"text": t, "options": options, "accept": ["x"], "answer": "ignore", "_input_hash": i,
                      "_task_hash": 100 + i, "_annotator_id": "ds-carl"})
    src = tmp_path / "p.jsonl"
    src.write_text("".join(json.dumps(x) + "\n" for x in lines))
    docs, rejects, result = _import("prodigy", src, tmp_path)
    assert not rejects and result.agreement["choice_cohen_kappa"] == {
        "ds-alice | ds-bob": {"kappa": 0.5, "documents": 4}}
    assert result.agreement["span_pairwise_f1"] == 0.5 and result.agreement["annotators"] == 2
    assert docs[0].meta["prodigy"]["answers"] == {"accept": 2, "reject": 0, "ignore": 1}


def test_a_users_own_annotations_field_is_not_read_as_annotator_versions(tmp_path):
    # The agreement report looked for the versions in meta['annotations'], where a field of the
    # user's own record stands (the versions go to 'annotations_import'): a list of strings
    # crashed the import, a list of objects gave a report of annotators that never were, and
    # the real versions were not counted.
    jl = tmp_path / "notes.jsonl"
    jl.write_text(json.dumps({"id": "1", "text": "Ann was seen.", "annotations": ["reviewed"]}) + "\n"
                  + json.dumps({"id": "2", "text": "Bob was seen.",
                                "annotations": [{"start": 0, "end": 3, "label": "NAME"}] * 2}) + "\n")
    docs, rejects, result = _import("jsonl", jl, tmp_path)
    assert not rejects and len(docs) == 2 and result.agreement is None
    assert "agreement" not in json.loads(result.manifest.read_text())
    t = "Ann Lee went home."
    ls = tmp_path / "ls.json"
    ls.write_text(json.dumps([{"id": 1, "data": {"text": t, "annotations": ["their note"]}, "annotations": [
        {"completed_by": 1, "result": [_region(t, 0, 7, "NAME")]},
        {"completed_by": 2, "result": [_region(t, 0, 3, "NAME")]}]}]))
    (tmp_path / "ls").mkdir()
    docs, rejects, result = _import("labelstudio", ls, tmp_path / "ls")
    assert not rejects and docs[0].meta["annotations"] == ["their note"]
    assert len(docs[0].meta["annotations_import"]) == 2
    assert result.agreement["span_pairwise_f1"] == 0.0 and result.agreement["annotators"] == 2


@pytest.mark.parametrize("fmt", ["labelstudio", "prodigy"])
def test_one_choice_among_annotators_who_chose_several_is_a_vote_on_the_same_list(fmt, tmp_path):
    # 'auto' reads one ticked option as a label and several as labels; the majority was then
    # taken within each group apart: z, chosen by one annotator in two, was kept beside x, and
    # the document had both a label and labels.
    votes = [["x"], ["x", "z"]], [["x"], ["x", "y"], ["y", "z"]]
    if fmt == "labelstudio":
        src = tmp_path / "ls.json"
        src.write_text(json.dumps([{"id": i, "data": {"text": f"note {i}"}, "annotations": [
            {"completed_by": who, "result": [_choice(*chosen)]} for who, chosen in enumerate(task)]}
            for i, task in enumerate(votes)]))
    else:
        options = [{"id": c, "text": c} for c in "xyz"]
        src = tmp_path / "p.jsonl"
        src.write_text("".join(json.dumps({"text": f"note {i}", "options": options, "accept": chosen,
                                           "answer": "accept", "_input_hash": i, "_annotator_id": f"a{who}"}) + "\n"
                               for i, task in enumerate(votes) for who, chosen in enumerate(task)))
    docs, rejects, _ = _import(fmt, src, tmp_path)
    assert not rejects
    assert [(d.label, d.labels) for d in docs] == [(None, ["x"]), (None, ["x", "y"])]


def test_labelstudio_utf16_annotation_maps_every_region_even_one_that_also_matches_unmapped(tmp_path):
    # Label Studio before its 2021 fix counted UTF-16 units; each region was checked alone, so a
    # region whose text also stood at its unmapped offsets (three astral characters before it,
    # a word repeated every three characters) was left there, on the next "no".
    from domainfm.corpus.importers.labelstudio import codepoints_to_utf16

    t = "\U0001F600\U0001F600\U0001F600 Ann: no no no"
    name, first = t.index("Ann"), t.index("no")

    def old_region(start, end, label, with_text=True):
        value = {"start": codepoints_to_utf16(t, start), "end": codepoints_to_utf16(t, end), "labels": [label]}
        return {"type": "labels", "value": {**value, **({"text": t[start:end]} if with_text else {})}}

    src = tmp_path / "ls.json"
    src.write_text(json.dumps([{"id": 1, "data": {"text": t}, "annotations": [{"completed_by": 1, "result": [
        old_region(name, name + 3, "NAME"), old_region(first, first + 2, "FIRST"),
        old_region(first + 3, first + 5, "SECOND"), old_region(first + 6, first + 8, "THIRD", with_text=False)]}]}]))
    docs, rejects, _ = _import("labelstudio", src, tmp_path)
    assert not rejects
    assert [(s.label, s.start) for s in docs[0].spans] == [
        ("NAME", name), ("FIRST", first), ("SECOND", first + 3), ("THIRD", first + 6)]


def test_prodigy_relations_of_each_annotator_are_kept_with_their_line(tmp_path):
    # Fields Prodigy's importer does not read (rel.manual's 'relations') were taken from the
    # input's first line alone: the other annotators' relations, and a resubmitted answer's,
    # were dropped, and the first line's shown as the input's own.
    t = "Ann saw Bob."
    spans = [{"start": 0, "end": 3, "label": "P"}, {"start": 8, "end": 11, "label": "P"}]
    saw = [{"head": 0, "child": 2, "label": "SAW"}]
    line = {"text": t, "spans": spans, "answer": "accept", "_input_hash": 1, "_task_hash": 2, "source": "s1"}
    src = tmp_path / "rel.jsonl"
    resubmitted = {**line, "text": "Bob left.", "spans": [], "_input_hash": 3, "_annotator_id": "ds-a"}
    src.write_text("".join(json.dumps(x) + "\n" for x in [
        {**line, "relations": saw, "_annotator_id": "ds-a"}, {**line, "relations": [], "_annotator_id": "ds-b"},
        {**resubmitted, "relations": [{"old": 1}]}, {**resubmitted, "relations": [{"new": 1}]}]))
    docs, rejects, _ = _import("prodigy", src, tmp_path)
    assert not rejects
    first, second = (d.meta["prodigy"] for d in docs)
    assert first["fields"] == {"source": "s1"}
    assert first["fields_by_line"] == [
        {"line": "rel.jsonl:1", "answer": "accept", "annotator": "ds-a", "fields": {"relations": saw}},
        {"line": "rel.jsonl:2", "answer": "accept", "annotator": "ds-b", "fields": {"relations": []}}]
    assert [x["fields"]["relations"] for x in second["fields_by_line"]] == [[{"old": 1}], [{"new": 1}]]
    # one line, or lines alike: the fields as they were
    (tmp_path / "one").mkdir()
    src.write_text(json.dumps({**line, "relations": saw}) + "\n")
    docs, _, _ = _import("prodigy", src, tmp_path / "one")
    assert docs[0].meta["prodigy"]["fields"] == {"source": "s1", "relations": saw}
    assert "fields_by_line" not in docs[0].meta["prodigy"]


DOCS = [
    Document("d1", "Pätiënt Jöhn seen at Ōslo General on 3 May.",
             spans=[Span(8, 12, "PATIENT"), Span(21, 33, "HOSPITAL"), Span(21, 25, "CITY"), Span(37, 42, "DATE")]),
    Document("d2", "\U0001F600\U0001F600 Dr. Kim\r\ncalled.", spans=[Span(7, 10, "DOCTOR")]),
    Document("d3", "Nothing here.", spans=[]),
]


@pytest.mark.parametrize("kind", ["labelstudio", "prodigy"])
def test_span_export_then_import_keeps_nested_spans_astral_text_and_line_ends(kind, tmp_path):
    path = write_span_export(kind, tmp_path / f"export.{kind}", DOCS, labels=["PATIENT", "HOSPITAL", "CITY", "DATE",
                                                                              "DOCTOR"], as_annotations=True)
    docs, rejects, result = _import(kind, path, tmp_path)
    assert not rejects and result.repaired_spans == 0
    assert [(d.id, d.text, _keys(d), d.label, d.labels) for d in docs] == [
        (d.id, d.text, _keys(d), None, None) for d in DOCS]


# --- JSONL and CSV ---------------------------------------------------------------------------

def test_jsonl_and_csv_keep_text_unnormalised_with_bom_and_long_fields(tmp_path):
    nfd = unicodedata.normalize("NFD", "Café señor")  # 12 code points; NFC would be 10
    long = "x" * 300_000  # over csv's 128 KiB default field limit
    jl = tmp_path / "a.jsonl"
    jl.write_bytes(b"\xef\xbb\xbf" + json.dumps({"id": 1, "text": nfd + " end", "spans": [
        {"start": 0, "end": 5, "label": "W"}]}, ensure_ascii=False).encode() + b"\r\n"
                   + json.dumps({"id": "1", "text": "dup"}).encode() + b"\n"
                   + json.dumps({"id": "2", "text": long}).encode() + b"\n")
    docs, rejects, result = _import("jsonl", jl, tmp_path)
    assert [d.id for d in docs] == ["1", "2"] and docs[0].text == nfd + " end" and docs[1].text == long
    assert docs[0].span_text(docs[0].spans[0]) == nfd[:5]
    assert [r["location"] for r in rejects] == ["a.jsonl:2"] and "duplicate id" in rejects[0]["reason"]
    assert (result.counts.read, result.counts.written, result.counts.rejected) == (3, 2, 1)
    cv = tmp_path / "a.csv"
    cv.write_bytes(("\ufeffid,text,label\r\n" f'n1,"{nfd}\r\nline two",pos\r\n'
                    f"n2,{long},\r\nn1,again,neg\r\n").encode())
    (tmp_path / "csv").mkdir()
    docs, rejects, result = _import("csv", cv, tmp_path / "csv", id_col="id", label_col="label")
    assert [(d.id, d.text, d.label) for d in docs] == [("n1", nfd + "\r\nline two", "pos"), ("n2", long, None)]
    assert (result.counts.read, result.counts.written, result.counts.rejected) == (3, 2, 1)
    manifest = json.loads(result.manifest.read_text())["counts"]
    assert manifest["read"] == manifest["written"] + manifest["rejected"] and manifest["reconciles"]
