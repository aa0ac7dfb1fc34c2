"""``domainfm label serve`` against Label Studio's ML-backend protocol: concurrent requests during a
retraining, which annotations name a stored task, the annotation order, and what an error may say."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from domainfm.corpus.document import Document, Span
from domainfm.corpus.io import write_documents
from domainfm.label.serve import Backend
from domainfm.label.span_config import SpanLabelConfig
from domainfm.manifest import write_manifest

from test_label_serve import _served

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# made-up, de-identified notes; emoji (outside the BMP) and CRLF before the words to be marked
NOTES = [
    "Seen 😀😀 for diabetes today.\r\nPlan: asthma clinic. " * 4,
    "🩺 History of asthma 👍 and diabetes.\r\n\r\nNo asthma now. " * 5,
    "Diabetes is stable; asthma controlled on inhaler. " * 6,
    "Presents with migraine and nausea.",
]
CONFIG = ('<View><Labels name="label" toName="text"><Label value="DISEASE"/></Labels>'
          '<Text name="text" value="$text"/></View>')


def _project(tmp_path: Path) -> Path:
    write_documents(tmp_path / "pool.jsonl", [Document(f"n{i}", t) for i, t in enumerate(NOTES)])
    write_manifest(tmp_path / "pool.jsonl", stage="deid", config={}, outputs=[tmp_path / "pool.jsonl"])
    return tmp_path


def _marked(text: str, *words: str) -> list[dict]:
    return [{"id": f"r{k}", "type": "labels", "from_name": "label", "to_name": "text",
             "value": {"start": text.index(w), "end": text.index(w) + len(w), "text": w, "labels": ["DISEASE"]}}
            for k, w in enumerate(words)]


def _post(url: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


class _OneCallAtATime:
    """A tokenizer that counts the calls made while another call is running."""

    def __init__(self, tokenizer):
        self.tokenizer, self.inside, self.calls, self.overlaps = tokenizer, 0, 0, 0
        self.lock = threading.Lock()

    def __call__(self, *args, **kwargs):
        with self.lock:
            self.calls += 1
            self.inside += 1
            self.overlaps += self.inside > 1
        try:
            time.sleep(0.005)
            return self.tokenizer(*args, **kwargs)
        finally:
            with self.lock:
                self.inside -= 1

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)

    def __len__(self):
        return len(self.tokenizer)


def test_concurrent_predictions_during_a_retraining_answer_each_with_one_whole_model(tmp_path, tiny_model_dir):
    # the served model's tagger was handed to the retraining and shared by every /predict thread;
    # its tokenizer switches truncation and padding on and off per call, so concurrent calls failed
    # ("Unable to create tensor", answered as HTTP 400) or chunked with another call's settings
    project = _project(tmp_path)
    seeds = [Document("s0", "Known diabetes and asthma.", spans=[Span(6, 14, "DISEASE"), Span(19, 25, "DISEASE")]),
             Document("s1", "No diabetes.\r\nAsthma 😀 yes.", spans=[Span(3, 11, "DISEASE"), Span(14, 20, "DISEASE")])]
    write_documents(project / "seeds.jsonl", seeds)
    cfg = SpanLabelConfig(encoder=str(tiny_model_dir), max_tokens=32, overlap=4, calibration_folds=0,
                          deid_prior="off", min_confidence=0.0, seed_lexicon=False, span_heads=False)
    backend = Backend(project, cfg)
    backend.retrain()
    # the served tagger's tokenizer (its chunker's too), watched: a call that begins while
    # another is running is counted (each waits a little inside, so an overlap shows every time)
    tagger = backend.model.tagger
    watched = _OneCallAtATime(tagger.tokenizer)
    tagger.tokenizer = tagger.chunker.tokenizer = watched
    tasks = [{"id": 10 + i, "data": {"text": t}} for i, t in enumerate(NOTES)]
    expected = {backend.model_version: backend.predict(tasks)}
    # a new annotation: the retraining encodes it while the predictions below run
    backend.add_annotation({"project": {"id": 1, "label_config": CONFIG},
                            "task": {"id": 12, "project": 1, "data": {"text": NOTES[2]}},
                            "annotation": {"id": 5, "result": _marked(NOTES[2], "Diabetes", "asthma")}})
    answers, errors = [], []

    def ask():
        while (backend.training or len(answers) < 6) and len(errors) < 3:
            try:
                answers.append(backend.predict(tasks))
            except Exception as exc:  # noqa: BLE001 - the test reports every failure
                errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert backend.wait_for_training(timeout=300) and backend.model_version == "domainfm-spans-v2"
    assert not errors, errors[:3]
    assert watched.calls and watched.overlaps == 0
    expected[backend.model_version] = backend.predict(tasks)
    for answer in answers:
        versions = {r["model_version"] for r in answer}
        assert len(versions) == 1  # one model for the whole request
        assert answer == expected[versions.pop()]  # the same as when nothing else runs
    for answer in expected.values():  # code-point offsets: the region text is the task's, after emoji and CRLF
        assert all(r["value"]["text"] == t[r["value"]["start"]:r["value"]["end"]]
                   for a, t in zip(answer, NOTES) for r in a["result"])
    assert any(a["result"] for a in expected["domainfm-spans-v2"])


@pytest.fixture()
def no_training(monkeypatch):
    """Annotations are stored but no model is trained (these checks read only the stored set)."""
    monkeypatch.setattr(Backend, "request_training", lambda self: None)


def _stored(project: Path) -> dict:
    lines = (project / "annotations.jsonl").read_text().splitlines()
    return {json.loads(x)["id"]: [s["start"] for s in json.loads(x)["spans"]] for x in lines}


def test_deleting_or_skipping_again_a_skip_keeps_the_submitted_annotation_beside_it(tmp_path, no_training):
    # a /train export holds a task one annotator submitted (31) and another skipped (32): the task
    # was stored under both ids, so deleting the skip, or re-skipping it, withdrew the submission
    project = _project(tmp_path)
    backend = Backend(project)
    task = {"id": 7, "project": 2, "data": {"text": NOTES[3]}, "predictions": [], "drafts": [],
            "annotations": [{"id": 31, "completed_by": 1, "was_cancelled": False, "task": 7,
                             "result": _marked(NOTES[3], "migraine")},
                            {"id": 32, "completed_by": 2, "was_cancelled": True, "task": 7, "result": []}]}
    with _served(backend) as base:
        status, body = _post(base + "/train", {"annotations": [task], "project": "2.1700000000",
                                               "label_config": CONFIG})
        assert status == 201 and body["stored"] == 1, body
        learnt = {"ls-2-7": [NOTES[3].index("migraine")]}
        assert _stored(project) == learnt
        status, body = _post(base + "/webhook", {
            "action": "ANNOTATION_UPDATED", "project": {"id": 2, "label_config": CONFIG},
            "task": {"id": 7, "project": 2, "data": {"text": NOTES[3]}},
            "annotation": {"id": 32, "task": 7, "completed_by": 2, "was_cancelled": True, "result": []}})
        assert status == 201 and body["withdrawn"] == 0, body
        status, body = _post(base + "/webhook", {"action": "ANNOTATIONS_DELETED", "project": {"id": 2},
                                                 "annotations": [{"id": 32}]})
        assert status == 201 and body["removed"] == 0, body
        assert _stored(project) == learnt
        # the submission itself still withdraws the task when it is deleted
        status, body = _post(base + "/webhook", {"action": "ANNOTATIONS_DELETED", "project": {"id": 2},
                                                 "annotations": [{"id": 31}]})
        assert status == 201 and body["removed"] == 1 and _stored(project) == {}


def test_rank_leaves_out_a_pool_document_annotated_in_a_task_without_doc_id(tmp_path, no_training):
    # tasks imported as plain {"text": ...} carry no data.doc_id: the annotation is stored as
    # ls-<project>-<task>, and /rank kept offering the annotated document for annotation
    project = _project(tmp_path)
    backend = Backend(project)
    assert [x["doc_id"] for x in backend.rank()] == ["n0", "n1", "n2", "n3"]
    backend.add_annotation({"project": {"id": 1, "label_config": CONFIG},
                            "task": {"id": 101, "project": 1, "data": {"text": NOTES[1]}},
                            "annotation": {"id": 9, "result": _marked(NOTES[1], "asthma")}})
    assert list(_stored(project)) == ["ls-1-101"]
    with _served(backend) as base:
        status, body = _post(base + "/rank", {})
    assert status == 200 and [x["doc_id"] for x in body["order"]] == ["n0", "n2", "n3"]
    assert [x["rank"] for x in body["order"]] == [1, 2, 3]


def test_a_value_error_inside_the_backend_is_a_500_that_quotes_nothing(tmp_path, capsys):
    # every ValueError was answered as the caller's mistake (HTTP 400) with its message, which a
    # bug's error may fill with note text; only the backend's own RecordError is the caller's
    backend = Backend(_project(tmp_path))

    def broken():
        raise ValueError("invalid literal for int() with base 10: 'Ann Lee'")
    backend.rank = broken
    with _served(backend) as base:
        status, body = _post(base + "/rank", {})
        assert status == 500 and body == {"error": "internal error (ValueError); the backend's log says where"}
        # a header the caller got wrong is still the caller's mistake
        req = urllib.request.Request(base + "/setup", data=b"{}", headers={"Content-Length": "12abc"})
        with pytest.raises(urllib.error.HTTPError) as bad:
            urllib.request.urlopen(req, timeout=10)
        assert bad.value.code == 400
        assert "Content-Length must be a whole number" in json.loads(bad.value.read())["error"]
    err = capsys.readouterr().err
    assert "internal error on /rank: ValueError at test_label_serve_correctness.py:" in err and "Ann" not in err
