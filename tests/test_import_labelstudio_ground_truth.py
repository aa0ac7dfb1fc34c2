"""Label Studio's ground truth: the annotation a reviewer marked (``"ground_truth": true``) is the
document's version, the others stay as versions and in the agreement; skipped annotations and
predictions never become labels. Made-up text only."""

from __future__ import annotations

import json

import pytest

from conftest import import_into, span_keys

_import, _keys = import_into, span_keys

TEXT = "Ann Lee went to Oslo."


def _region(start, end, label):
    return {"type": "labels", "from_name": "label", "to_name": "text",
            "value": {"start": start, "end": end, "text": TEXT[start:end], "labels": [label]}}


def _choice(choice):
    return {"type": "choices", "from_name": "c", "to_name": "text", "value": {"choices": [choice]}}


def _ann(ann_id, who, choice, *regions, **fields):
    return {"id": ann_id, "completed_by": who, "result": [_choice(choice), *regions], **fields}


def _write(tmp_path, tasks, name="export.json"):
    src = tmp_path / name
    src.write_text(json.dumps(tasks))
    return src


NAME, CITY = _region(0, 7, "NAME"), _region(16, 20, "CITY")


def test_the_ground_truth_annotation_is_the_documents_version_over_the_majority(tmp_path):
    tasks = [
        # two annotators agree; the reviewer marked the third's version as the reference
        {"id": 1, "data": {"text": TEXT}, "annotations": [
            _ann(101, 1, "travel", NAME), _ann(102, 2, "travel", NAME),
            _ann(103, 3, "other", CITY, ground_truth=True)]},
        # no mark (false, or a string no reviewer set): the rule decides, and says so
        {"id": 2, "data": {"text": TEXT}, "annotations": [
            _ann(201, 1, "travel", NAME, ground_truth=False), _ann(202, 2, "travel", NAME),
            _ann(203, 3, "other", CITY, ground_truth="true")]},
    ]
    docs, rejects, result = _import("labelstudio", _write(tmp_path, tasks), tmp_path)
    assert not rejects
    reviewed, voted = docs
    assert reviewed.label == "other" and _keys(reviewed) == [(16, 20, "CITY")]
    assert reviewed.meta["labelstudio"]["resolved_by"] == "ground_truth"
    assert reviewed.meta["labelstudio"]["ground_truth"] == {"annotator": "ls-user-3", "annotation": 103}
    assert "ground_truth_annotations" not in reviewed.meta["labelstudio"]
    # every version is kept, and nothing is left unresolved once a reviewer decided
    assert [a["annotator"] for a in reviewed.meta["annotations"]] == ["ls-user-1", "ls-user-2", "ls-user-3"]
    assert "annotation_conflicts" not in reviewed.meta
    assert voted.label == "travel" and _keys(voted) == [(0, 7, "NAME")]
    assert voted.meta["labelstudio"]["resolved_by"] == "majority" and "ground_truth" not in voted.meta["labelstudio"]
    # the agreement is over all three annotators of both tasks, the reviewer's pick included
    agreement = json.loads(result.manifest.read_text())["agreement"]
    assert agreement["annotators"] == 3 and agreement["documents_with_several_annotators"] == 2
    assert set(agreement["choice_cohen_kappa"]) == {"ls-user-1 | ls-user-2", "ls-user-1 | ls-user-3",
                                                     "ls-user-2 | ls-user-3"}
    # pairs per task: (1,2) 1 of 1+1, (1,3) 0 of 1+1, (2,3) 0 of 1+1 -> 2 matched of 12 spans
    assert agreement["span_pairs_compared"] == {"matched": 2, "spans": 12}


@pytest.mark.parametrize("first, second, chosen", [
    # updated last wins, though it has the lower id and comes first in the export
    ({"updated_at": "2024-05-02T09:00:00.000000Z"}, {"updated_at": "2024-05-01T09:00:00+00:00"}, "first"),
    # a time without zone is UTC, as Label Studio writes it
    ({"updated_at": "2024-05-01T08:00:00"}, {"updated_at": "2024-05-01T09:00:00+02:00"}, "first"),
    # no times: the higher id (Label Studio's docs write ids as strings)
    ({"id": "300"}, {"id": "20"}, "first"),
    # neither: the later in the export
    ({"id": None}, {"id": None}, "second"),
])
def test_several_ground_truths_take_the_latest_and_are_counted(tmp_path, first, second, chosen):
    marked = [_ann(11, 1, "travel", NAME, ground_truth=True, **first),
              _ann(12, 2, "other", CITY, ground_truth=True, **second)]
    docs, rejects, _ = _import("labelstudio", _write(tmp_path, [
        {"id": 1, "data": {"text": TEXT}, "annotations": marked}]), tmp_path)
    assert not rejects
    doc = docs[0]
    want = ("travel", [(0, 7, "NAME")], "ls-user-1") if chosen == "first" else ("other", [(16, 20, "CITY")],
                                                                              "ls-user-2")
    assert (doc.label, _keys(doc), doc.meta["labelstudio"]["ground_truth"]["annotator"]) == want
    assert doc.meta["labelstudio"]["ground_truth_annotations"] == 2
    assert doc.meta["labelstudio"]["resolved_by"] == "ground_truth"


def test_a_ground_truth_stands_for_its_annotator_over_their_later_version(tmp_path):
    tasks = [{"id": 1, "data": {"text": TEXT}, "annotations": [
        _ann(1, 1, "other", CITY, ground_truth=True), _ann(2, 2, "travel", NAME),
        _ann(3, 1, "travel", NAME)]}]  # annotator 1 again, after the reviewer's mark
    docs, rejects, result = _import("labelstudio", _write(tmp_path, tasks), tmp_path)
    assert not rejects
    doc = docs[0]
    assert doc.label == "other" and _keys(doc) == [(16, 20, "CITY")]
    assert doc.meta["labelstudio"]["superseded_versions"] == 1
    assert [(a["annotator"], a["label"]) for a in doc.meta["annotations"]] == [("ls-user-1", "other"),
                                                                               ("ls-user-2", "travel")]
    # the agreement compares the version the document holds, not the dropped one
    assert json.loads(result.manifest.read_text())["agreement"]["span_pairs_compared"]["matched"] == 0


@pytest.mark.parametrize("use_predictions", [False, True])
def test_skipped_annotations_and_predictions_never_become_labels(tmp_path, use_predictions):
    prediction = {"model_version": "m1", "score": 0.99, "result": [_choice("model"), _region(8, 12, "VERB")]}
    tasks = [
        # a skip marked ground truth and a confident prediction: the one submitted version stands
        {"id": 1, "data": {"text": TEXT}, "predictions": [prediction], "annotations": [
            _ann(1, 1, "skipped", _region(0, 3, "NAME"), was_cancelled=True, ground_truth=True),
            _ann(2, 2, "travel", NAME)]},
        # two people: the prediction is no third annotator, in the document or the agreement
        {"id": 2, "data": {"text": TEXT}, "predictions": [prediction], "annotations": [
            _ann(3, 1, "travel", NAME), _ann(4, 2, "other", CITY)]},
        # only a skip (marked ground truth) and a prediction: rejected, even with use_predictions
        {"id": 3, "data": {"text": TEXT}, "predictions": [prediction], "annotations": [
            _ann(5, 1, "skipped", NAME, was_cancelled=True, ground_truth=True)]},
    ]
    docs, rejects, result = _import("labelstudio", _write(tmp_path, tasks), tmp_path,
                                    use_predictions=use_predictions)
    assert [d.id for d in docs] == ["ls-1", "ls-2"]
    assert len(rejects) == 1 and rejects[0]["reason"].startswith("task was skipped by every annotator")
    one, two = docs
    assert one.label == "travel" and _keys(one) == [(0, 7, "NAME")]
    assert "annotations" not in one.meta and "ground_truth" not in one.meta["labelstudio"]
    assert "from_prediction" not in one.meta["labelstudio"]
    # a tie of two: no label, and no span of the model's either
    assert two.label is None and two.labels is None and (8, 12, "VERB") not in _keys(two)
    assert [a["annotator"] for a in two.meta["annotations"]] == ["ls-user-1", "ls-user-2"]
    agreement = json.loads(result.manifest.read_text())["agreement"]
    assert agreement["annotators"] == 2 and set(agreement["choice_cohen_kappa"]) == {"ls-user-1 | ls-user-2"}
    for doc in docs:
        assert {doc.label, *(doc.labels or [])}.isdisjoint({"model", "skipped"})
        assert all(s.label != "VERB" and "score" not in s.attrs for s in doc.spans)
