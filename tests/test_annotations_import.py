"""Annotations back in: Label Studio and Prodigy exports become documents; round trips keep spans
and labels; several annotators are kept and their agreement reported in the manifest."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from conftest import import_into, span_keys
from domainfm.corpus.agreement import Annotation, cohen_kappa, resolve
from domainfm.corpus.document import Document, Span
from domainfm.corpus.importers import IMPORTERS, Importer
from domainfm.corpus.importers.labelstudio import codepoints_to_utf16, utf16_to_codepoints
from domainfm.corpus.importing import import_corpus
from domainfm.errors import ConfigError, CorpusError
from domainfm.label.export import write_span_export

DOCS = [
    Document("a1", "Patient Ann Lee seen at Mercy Hospital on 3 May.",
             spans=[Span(8, 15, "PATIENT"), Span(24, 38, "HOSPITAL"), Span(42, 47, "DATE")]),
    Document("a2", "No identifiers here.", spans=[]),
    # an astral character before the span: code points and UTF-16 units differ from here on
    Document("a3", "\U0001F600 Dr. Kim called.", spans=[Span(6, 9, "DOCTOR")]),
]


_import, _keys = import_into, span_keys


@pytest.mark.parametrize("kind", ["labelstudio", "prodigy"])
def test_export_then_import_gives_the_same_spans(kind, tmp_path):
    path = write_span_export(kind, tmp_path / f"export.{kind}", DOCS, labels=["PATIENT", "HOSPITAL", "DATE", "DOCTOR"],
                             as_annotations=True)
    docs, rejects, _ = _import(kind, path, tmp_path)
    assert not rejects
    assert [d.id for d in docs] == [d.id for d in DOCS]
    for got, want in zip(docs, DOCS):
        assert got.text == want.text and _keys(got) == _keys(want)
    if kind == "labelstudio":
        assert (tmp_path / "export.labelstudio.config.xml").read_text().count("<Label ") == 4


@pytest.mark.parametrize("kind", ["labelstudio", "prodigy"])
def test_an_export_saved_with_a_byte_order_mark_imports_the_same(kind, tmp_path):
    path = write_span_export(kind, tmp_path / f"export.{kind}", DOCS, labels=["PATIENT", "HOSPITAL", "DATE", "DOCTOR"],
                             as_annotations=True)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # re-saved by a Windows editor
    docs, rejects, _ = _import(kind, path, tmp_path)
    assert not rejects and [(d.id, d.text, _keys(d)) for d in docs] == [(d.id, d.text, _keys(d)) for d in DOCS]


def test_prodigy_round_trip_of_predictions_keeps_scores(tmp_path):
    predicted = [[Span(8, 15, "PATIENT", {"confidence": 0.9})], [], []]
    path = write_span_export("prodigy", tmp_path / "p.jsonl", DOCS, labels=["PATIENT"], predicted=predicted,
                             ranks=[2, 3, 1])
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["meta"]["id"] for x in lines] == ["a3", "a1", "a2"]  # active-learning order
    docs, _, _ = _import("prodigy", path, tmp_path, use_predictions=True)
    a1 = next(d for d in docs if d.id == "a1")
    assert _keys(a1) == [(8, 15, "PATIENT")] and a1.spans[0].attrs["score"] == 0.9
    assert a1.meta["prodigy"]["from_prediction"] is True


def test_prodigy_suggestions_nobody_answered_are_not_imported_as_gold(tmp_path):
    predicted = [[Span(8, 15, "PATIENT", {"confidence": 0.9})], [], []]
    path = write_span_export("prodigy", tmp_path / "p.jsonl", DOCS, labels=["PATIENT"], predicted=predicted)
    docs, rejects, result = _import("prodigy", path, tmp_path)
    assert not docs and len(rejects) == 3 and result.counts.reconciles
    assert all("no annotator answered" in r["reason"] and "--use-predictions" in r["reason"] for r in rejects)
    # once answered in Prodigy (db-out adds "answer"), the same lines are annotations
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    answered = tmp_path / "answered.jsonl"
    answered.write_text("".join(json.dumps({**x, "answer": "accept", "_annotator_id": "ann1"}) + "\n" for x in lines))
    docs, rejects, _ = _import("prodigy", answered, tmp_path)
    assert not rejects and _keys(next(d for d in docs if d.id == "a1")) == [(8, 15, "PATIENT")]


def _ls_task(task_id, text, versions, **data):
    return {"id": task_id, "data": {"text": text, **data}, "annotations": [
        {"id": 100 + i, "completed_by": who, "was_cancelled": cancelled, "result": result}
        for i, (who, result, cancelled) in enumerate(versions)]}


def _region(start, end, text, label):
    return {"type": "labels", "from_name": "label", "to_name": "text",
            "value": {"start": start, "end": end, "text": text[start:end], "labels": [label]}}


def _choice(*choices):
    return {"type": "choices", "from_name": "c", "to_name": "text", "value": {"choices": list(choices)}}


def test_labelstudio_annotators_resolved_by_majority_and_agreement_in_manifest(tmp_path):
    t = "Ann Lee went to Oslo with Bob."
    ann, oslo, bob = _region(0, 7, t, "NAME"), _region(16, 20, t, "CITY"), _region(26, 29, t, "NAME")
    tasks = [
        _ls_task(1, t, [(1, [ann, oslo, _choice("travel")], False), (2, [ann, bob, _choice("travel")], False),
                        (3, [ann, oslo, _choice("other")], False)]),
        _ls_task(2, "Quiet day.", [(1, [_choice("other")], False), (2, [_choice("other")], False)]),
        _ls_task(3, "Skipped.", [(1, [], True)]),
        _ls_task(4, "Nobody yet.", []),
        {"id": 5, "data": {"body": "wrong key"}, "annotations": []},
    ]
    src = tmp_path / "export.json"
    src.write_text(json.dumps(tasks))
    docs, rejects, result = _import("labelstudio", src, tmp_path)
    assert [d.id for d in docs] == ["ls-1", "ls-2"]
    d1 = docs[0]
    assert _keys(d1) == [(0, 7, "NAME"), (16, 20, "CITY")]  # Bob: one of three annotators
    assert d1.label == "travel" and len(d1.meta["annotations"]) == 3
    assert d1.spans[0].attrs["annotators"] == ["ls-user-1", "ls-user-2", "ls-user-3"]
    assert d1.meta["annotation_conflicts"] == ["1 span(s) marked by half of the annotators or fewer"]
    reasons = [r["reason"] for r in rejects]
    assert reasons[0] == "task was skipped by every annotator (its prediction is not imported)"
    assert reasons[1].startswith("task has no annotation")
    assert "data.text must be a string" in reasons[2]
    manifest = json.loads(result.manifest.read_text())
    agreement = manifest["agreement"]
    # pairs (1,2): 1 of 2+2 spans; (1,3): 2 of 2+2; (2,3): 1 of 2+2 -> 2*4/12
    assert agreement["span_pairwise_f1"] == pytest.approx(2 * 4 / 12, abs=1e-4)
    assert agreement["documents_with_several_annotators"] == 2
    assert set(agreement["choice_cohen_kappa"]) == {"ls-user-1 | ls-user-2", "ls-user-1 | ls-user-3",
                                                     "ls-user-2 | ls-user-3"}
    assert agreement["choice_cohen_kappa"]["ls-user-1 | ls-user-2"]["kappa"] == 1.0
    # union keeps Bob; first keeps annotator 1 alone
    (tmp_path / "union").mkdir()
    docs, _, _ = _import("labelstudio", src, tmp_path / "union", resolve="union")
    assert (26, 29, "NAME") in _keys(docs[0])
    with pytest.raises(ConfigError, match="'resolve'.*majority"):
        import_corpus("labelstudio", src, tmp_path / "x.jsonl", {"resolve": "majorty"})


def test_labelstudio_utf16_offsets_from_old_versions_are_converted_and_bad_ones_rejected(tmp_path):
    text = "\U0001F600 Dr. Kim called."
    start, end = codepoints_to_utf16(text, 6), codepoints_to_utf16(text, 9)
    assert (start, end) == (7, 10) and utf16_to_codepoints(text, start, end) == (6, 9)
    good = {"type": "labels", "value": {"start": start, "end": end, "text": "Kim", "labels": ["DOCTOR"]}}
    bad = {"type": "labels", "value": {"start": 0, "end": 3, "text": "Kim", "labels": ["DOCTOR"]}}
    src = tmp_path / "e.json"
    src.write_text(json.dumps([_ls_task(1, text, [(1, [good], False)], doc_id="d1"),
                               _ls_task(2, text, [(1, [bad], False)], doc_id="d2")]))
    docs, rejects, _ = _import("labelstudio", src, tmp_path)
    assert _keys(docs[0]) == [(6, 9, "DOCTOR")]
    assert "region 1 [0:3]: the region's text differs" in rejects[0]["reason"]
    assert "Kim" not in rejects[0]["reason"]  # no text in reasons


def test_labelstudio_predictions_only_when_asked(tmp_path):
    t = "Ann Lee."
    src = tmp_path / "e.json"
    src.write_text(json.dumps([{"id": 7, "data": {"text": t}, "annotations": [],
                                "predictions": [{"model_version": "m", "result": [_region(0, 7, t, "NAME")]}]}]))
    docs, rejects, _ = _import("labelstudio", src, tmp_path)
    assert not docs and len(rejects) == 1
    docs, _, _ = _import("labelstudio", src, tmp_path, use_predictions=True)
    assert _keys(docs[0]) == [(0, 7, "NAME")] and docs[0].meta["labelstudio"]["from_prediction"] is True
    # a task a person skipped keeps its skip: the model's guess does not stand in for it
    tasks = json.loads(src.read_text())
    tasks[0]["annotations"] = [{"id": 1, "completed_by": 1, "was_cancelled": True, "result": []}]
    src.write_text(json.dumps(tasks))
    docs, rejects, _ = _import("labelstudio", src, tmp_path, use_predictions=True)
    assert not docs and rejects[0]["reason"].startswith("task was skipped by every annotator")


def test_prodigy_groups_annotators_choices_and_rejects(tmp_path):
    rows = [
        {"text": "Chest pain.", "options": [{"id": "cardio"}, {"id": "neuro"}], "accept": ["cardio"],
         "answer": "accept", "_input_hash": 11, "_annotator_id": "s-ann"},
        {"text": "Chest pain.", "options": [{"id": "cardio"}, {"id": "neuro"}], "accept": ["neuro"],
         "answer": "accept", "_input_hash": 11, "_annotator_id": "s-bob"},
        {"text": "Headache.", "options": [{"id": "cardio"}, {"id": "neuro"}], "accept": ["neuro"],
         "answer": "accept", "_input_hash": 12, "_annotator_id": "s-ann"},
        {"text": "Headache.", "options": [{"id": "cardio"}, {"id": "neuro"}], "accept": ["neuro"],
         "answer": "accept", "_input_hash": 12, "_annotator_id": "s-bob"},
        {"text": "Bad task.", "answer": "reject", "_input_hash": 13, "_annotator_id": "s-ann"},
        {"text": "Mr Smith.", "spans": [{"start": 3, "end": 99, "label": "NAME"}], "_input_hash": 14},
    ]
    src = tmp_path / "db.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    docs, rejects, result = _import("prodigy", src, tmp_path)
    assert [d.id for d in docs] == ["prodigy-11", "prodigy-12"]
    assert docs[0].label is None and docs[0].meta["annotation_conflicts"]  # 1 vs 1: no majority
    assert docs[1].label == "neuro"
    reasons = " | ".join(r["reason"] for r in rejects)
    assert "no annotator accepted this input (1 reject, 0 ignore)" in reasons
    assert "span 0 [3:99] lies outside the text" in reasons
    assert result.counts.read == 5 and result.counts.rejected == 3
    kappa = json.loads(result.manifest.read_text())["agreement"]["choice_cohen_kappa"]["s-ann | s-bob"]
    assert kappa["documents"] == 2 and kappa["kappa"] == pytest.approx(cohen_kappa(["cardio", "neuro"],
                                                                                  ["neuro", "neuro"]))


def test_importers_never_replace_the_users_fields_or_merge_unrelated_lines(tmp_path):
    t = "Ann Lee called."
    ls = tmp_path / "ls.json"
    ls.write_text(json.dumps([
        _ls_task(5, t, [("ann", [_region(0, 7, t, "NAME")], False), ("bob", [_region(0, 7, t, "NAME")], False)],
                 labelstudio="keep me", annotations="theirs"),
        # one annotator who submitted twice is one annotator: the later version counts
        _ls_task(6, t, [("ann", [], False), ("ann", [_region(0, 7, t, "NAME")], False)])]))
    docs, rejects, result = _import("labelstudio", ls, tmp_path)
    assert not rejects
    assert docs[0].meta["labelstudio"] == "keep me" and docs[0].meta["labelstudio_import"]["task_id"] == 5
    assert docs[0].meta["annotations"] == "theirs" and len(docs[0].meta["annotations_import"]) == 2
    assert _keys(docs[1]) == [(0, 7, "NAME")] and docs[1].meta["labelstudio"]["superseded_versions"] == 1
    assert "annotations" not in docs[1].meta  # one annotator left: no agreement to report
    pd = tmp_path / "pd.jsonl"
    pd.write_text("\n".join(json.dumps(r) for r in [
        {"text": t, "meta": {"id": "pd-2", "prodigy": "keep me"}, "spans": [], "answer": "accept"},
        {"text": "Completely other doc", "spans": [], "answer": "accept"},  # line 2: 'pd-2' is taken
        {"text": "Same again", "spans": [], "answer": "accept", "_annotator_id": "s-ann", "_input_hash": 9},
        {"text": "Same again", "spans": [{"start": 0, "end": 4, "label": "X"}], "answer": "accept",
         "_annotator_id": "s-ann", "_input_hash": 9}]) + "\n")
    docs, rejects, result = _import("prodigy", pd, tmp_path)
    assert not rejects and [d.id for d in docs] == ["pd-2", "pd-2-1", "prodigy-9"]
    assert docs[0].meta["prodigy"] == "keep me" and docs[0].meta["prodigy_import"]["answers"]["accept"] == 1
    assert docs[2].meta["prodigy"]["superseded_versions"] == 1 and _keys(docs[2]) == [(0, 4, "X")]
    assert result.counts.read == 3 and result.counts.written == 3


def test_resolve_and_kappa_units():
    a = Annotation("x", [Span(0, 3, "A")], "p")
    b = Annotation("y", [Span(0, 3, "A"), Span(5, 7, "B")], "p")
    spans, label, _, conflicts = resolve([a, b], "majority")
    assert [s.key for s in spans] == [(0, 3, "A")] and label == "p" and conflicts
    spans, _, _, _ = resolve([a, b], "first")
    assert [s.key for s in spans] == [(0, 3, "A")]
    assert cohen_kappa(["a", "b", "a", "b"], ["a", "b", "a", "b"]) == 1.0
    assert cohen_kappa(["a", "a"], ["a", "a"]) is None  # chance agreement is 1: undefined
    assert cohen_kappa(["a", "b", "a", "b"], ["b", "a", "b", "a"]) == -1.0


# --- malformed exports: one bad task is rejected with the field named, the rest imported --------

LS_TEXT = "Patient Ann Lee seen."
LS_NAME = {"type": "labels", "value": {"start": 8, "end": 15, "text": "Ann Lee", "labels": ["NAME"]}}


def _ls_with(region=None, task=None, **data):
    base = _ls_task(9, LS_TEXT, [(1, [region or LS_NAME], False)], doc_id="bad", **data)
    return {**base, **(task or {})}


def _value(**value):
    return {"type": value.pop("type", "labels"), "value": {"start": 8, "end": 15, "text": "Ann Lee", **value}}


@pytest.mark.parametrize("bad, reason", [
    (_ls_with(_value(labels="NAME")), "region 1: 'labels' must be a list of non-empty strings, got a string"),
    (_ls_with(_value(labels=5)), "region 1: 'labels' must be a list of non-empty strings, got an integer"),
    (_ls_with(_value(labels=None)), "'labels' must be a list of non-empty strings, got null"),
    (_ls_with(_value(labels=["NAME", 3])), "'labels' must be a list of non-empty strings, got a list with other"),
    (_ls_with({"type": "choices", "value": {"choices": "pos"}}),
     "region 1: 'choices' must be a list of non-empty strings, got a string"),
    (_ls_with({"type": "choices", "value": {"choices": 5}}), "'choices' must be a list of non-empty strings"),
    (_ls_with({**LS_NAME, "score": float("nan")}), "annotations[0].result[0].score is NaN or infinite"),
    (_ls_with(extra=float("inf")), "data.extra is NaN or infinite"),
    (_ls_with(task={"annotations": "oops"}), "'annotations' must be a list, got a string"),
    (_ls_with(task={"annotations": ["oops"]}), "annotations 1 must be an object, got a string"),
    (_ls_with(task={"annotations": [{"completed_by": ["x"], "result": []}]}),
     "annotation 1: 'completed_by' must be a user id or a user object, got a list"),
], ids=["labels-str", "labels-int", "labels-null", "labels-mixed", "choices-str", "choices-int", "score-nan",
        "data-inf", "annotations-str", "annotation-str", "completed-by-list"])
def test_labelstudio_malformed_task_is_rejected_alone(bad, reason, tmp_path):
    good = _ls_task(1, LS_TEXT, [(1, [LS_NAME], False)], doc_id="good")
    src = tmp_path / "e.json"
    src.write_text(json.dumps([good, bad]))  # json.dumps writes NaN/Infinity, which json.load reads back
    docs, rejects, result = _import("labelstudio", src, tmp_path)
    assert [d.id for d in docs] == ["good"] and _keys(docs[0]) == [(8, 15, "NAME")]
    assert result.counts.read == 2 and len(rejects) == 1
    assert reason in rejects[0]["reason"] and rejects[0]["location"] == "e.json:task 2"
    assert "Ann" not in rejects[0]["reason"] and "oops" not in rejects[0]["reason"]  # no data in reasons


def test_labelstudio_relations_are_kept_beside_the_spans_they_link(tmp_path):
    name = {**LS_NAME, "id": "a"}
    place = {"id": "b", "type": "labels", "value": {"start": 16, "end": 20, "text": "seen", "labels": ["EVENT"]}}
    relation = {"from_id": "a", "to_id": "b", "type": "relation", "direction": "right", "labels": []}
    src = tmp_path / "e.json"
    src.write_text(json.dumps([_ls_task(1, LS_TEXT, [(1, [name, place, relation], False)], doc_id="r")]))
    docs, rejects, _ = _import("labelstudio", src, tmp_path)
    assert not rejects and _keys(docs[0]) == [(8, 15, "NAME"), (16, 20, "EVENT")]
    assert docs[0].meta["labelstudio"]["other"] == [{"annotation": 1, "type": "relation", "from_id": "a",
                                                     "to_id": "b", "direction": "right", "labels": []}]


def test_labelstudio_choices_of_several_controls_are_not_pooled_into_one_label_list(tmp_path):
    """A project asking two questions ("document type" and "note quality") gave one list mixing
    the answers of both; the label now comes from the control named by choices_from."""
    kind = {**_choice("discharge"), "from_name": "doc_type"}
    quality = {**_choice("poor"), "from_name": "quality"}
    src = tmp_path / "e.json"
    src.write_text(json.dumps([_ls_task(1, LS_TEXT, [(1, [kind, quality], False)], doc_id="q"),
                               _ls_task(2, LS_TEXT, [(1, [kind], False)], doc_id="one")]))
    docs, rejects, _ = _import("labelstudio", src, tmp_path)
    assert [d.id for d in docs] == ["one"] and docs[0].label == "discharge"
    assert "choices from 2 controls (doc_type, quality)" in rejects[0]["reason"]
    assert "--choices-from" in rejects[0]["reason"]
    docs, rejects, _ = _import("labelstudio", src, tmp_path, choices_from="doc_type")
    assert not rejects and [(d.label, d.labels) for d in docs] == [("discharge", None)] * 2
    assert docs[0].meta["labelstudio"]["other"] == [{"annotation": 1, "type": "choices", "from_name": "quality",
                                                     "value": {"choices": ["poor"]}}]
    with pytest.raises(ConfigError, match="choices_from"):
        _import("labelstudio", src, tmp_path, choices_from=" ")


@pytest.mark.parametrize("doc_id, want", [
    (["Ann Lee"], "data.doc_id must be a non-empty string or an integer, got a list"),
    ({"name": "Ann"}, "got an object"),
    ("  ", "got an empty string"),
    (True, "got a boolean"),
    (4.5, "got a number"),
], ids=["list", "object", "blank", "bool", "float"])
def test_labelstudio_non_string_doc_id_is_rejected_not_replaced(doc_id, want, tmp_path):
    src = tmp_path / "e.json"
    src.write_text(json.dumps([_ls_task(9, LS_TEXT, [(1, [LS_NAME], False)], doc_id=doc_id),
                               _ls_task(10, LS_TEXT, [(1, [LS_NAME], False)], doc_id=12),
                               _ls_task(11, LS_TEXT, [(1, [LS_NAME], False)])]))
    docs, rejects, _ = _import("labelstudio", src, tmp_path)
    assert [d.id for d in docs] == ["12", "ls-11"]  # an integer is written as text; no id: the task id
    assert len(rejects) == 1 and want in rejects[0]["reason"] and "Ann" not in rejects[0]["reason"]


def _pd(**fields):
    return {"text": "Chest pain.", "answer": "accept", **fields}


@pytest.mark.parametrize("bad, reason", [
    (_pd(answer=["accept"], meta={"id": "b"}), "'answer' must be accept, reject or ignore"),
    (_pd(meta="Ann Lee"), "'meta' must be an object, got a string"),
    (_pd(meta={"id": ["Ann"]}), "'meta.id' must be a non-empty string or an integer, got a list"),
    (_pd(_input_hash=["x"]), "'_input_hash' must be a non-empty string or an integer, got a list"),
    (_pd(options=[{"id": "a"}], accept=["a"], config="multiple", meta={"id": "b"}),
     "'config' must be an object, got a string"),
    (_pd(options=[], accept=[None], meta={"id": "b"}),
     "'accept' must be a list of option ids (strings or integers), got a list with other values"),
    (_pd(options=[{"id": "a"}], accept="a", meta={"id": "b"}), "'accept' must be a list of option ids"),
    (_pd(label=["cardio"], meta={"id": "b"}), "'label' must be a string, got a list"),
    (_pd(_annotator_id={"n": 1}, meta={"id": "b"}), "'_annotator_id'/'_session_id' must be a string or an integer"),
    (_pd(spans=[{"start": 0, "end": 5, "label": "SYMPTOM", "text": "Ann L"}], meta={"id": "b"}),
     "span 0 [0:5]: its 'text' differs from the text at its offsets"),
], ids=["answer-list", "meta-str", "id-list", "hash-list", "config-str", "accept-null", "accept-str", "label-list",
        "annotator-object", "span-text-differs"])
def test_prodigy_malformed_line_is_rejected_alone(bad, reason, tmp_path):
    good = _pd(options=[{"id": 1}, {"id": 2}], accept=[2], meta={"id": "good"})
    src = tmp_path / "db.jsonl"
    src.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    docs, rejects, result = _import("prodigy", src, tmp_path)
    assert [(d.id, d.label) for d in docs] == [("good", "2")]  # integer option ids are read as text
    assert result.counts.read == 2 and len(rejects) == 1
    assert rejects[0]["reason"] == reason or rejects[0]["reason"].startswith(reason)
    assert rejects[0]["location"] == "db.jsonl:2" and "Ann" not in rejects[0]["reason"]


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_labelstudio_missing_or_folder_source_is_named_not_the_reject_file(kind, tmp_path):
    src = tmp_path / "export.json"
    if kind == "folder":
        src.mkdir()
    with pytest.raises(CorpusError, match=r"export\.json: (no such file|is a folder, not a file) \(expected a Label Studio"):
        import_corpus("labelstudio", src, tmp_path / "out" / "x.jsonl")
    assert not list((tmp_path / "out").iterdir())  # nothing left behind


@dataclass
class _NoOptions:
    pass


def test_an_os_error_while_reading_names_the_source_not_an_output(tmp_path, monkeypatch):
    def read(src, options):
        yield Document("d1", "text")
        raise PermissionError(13, "Permission denied", str(src / "note.txt"))

    monkeypatch.setitem(IMPORTERS, "fake", Importer("fake", "test reader", _NoOptions, read))
    src = tmp_path / "notes"
    src.mkdir()
    with pytest.raises(CorpusError, match=r"note\.txt: cannot read \(Permission denied\)") as err:
        import_corpus("fake", src, tmp_path / "out.jsonl")
    assert "rejects" not in str(err.value) and not (tmp_path / "out.jsonl").exists()
    # an output inside the folder being read would be read back by the next import of it
    with pytest.raises(CorpusError, match="would be written inside the input folder notes/"):
        import_corpus("fake", src, src / "out.jsonl")
