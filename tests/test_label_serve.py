"""The Label Studio ML backend: privacy gate, protocol routes, and (slow) a real Label Studio
server driving it through label-studio-sdk."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from domainfm.corpus.document import Document, Span
from domainfm.corpus.io import write_documents
from domainfm.errors import ConfigError
from domainfm.label.serve import Backend, LabelingConfig, parse_schema, serve
from domainfm.label.span_config import SpanLabelConfig
from domainfm.manifest import write_manifest

NOTES = [
    "Seen for chest pain and diabetes. Plan: follow up in clinic.",
    "History of asthma. No chest pain today.",
    "Diabetes is stable; asthma controlled on inhaler.",
    "Presents with migraine and nausea.",
]


def _pool(project: Path, deid_manifest: bool) -> list[Document]:
    docs = [Document(f"n{i}", t) for i, t in enumerate(NOTES)]
    write_documents(project / "pool.jsonl", docs)
    if deid_manifest:
        write_manifest(project / "pool.jsonl", stage="deid", config={"profile": "clinical"},
                       outputs=[project / "pool.jsonl"])
    return docs


def _post_raw(url: str, raw: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=raw, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _post(url: str, body: dict) -> tuple[int, dict]:
    return _post_raw(url, json.dumps(body).encode())


def test_backend_refuses_a_pool_that_does_not_trace_back_to_deid(tmp_path):
    _pool(tmp_path, deid_manifest=False)
    with pytest.raises(ConfigError, match="does not trace back to 'domainfm deid'.*--allow-identified-data"):
        Backend(tmp_path)
    Backend(tmp_path, allow_identified_data=True)
    state = json.loads((tmp_path / "backend.json").read_text())
    assert state["privacy"]["decision"] == "overridden" and state["privacy"]["allow_identified_data"] is True


def test_routes_health_setup_predict_and_refusal_of_unknown_text(tmp_path):
    _pool(tmp_path, deid_manifest=True)
    backend = Backend(tmp_path)
    assert backend.privacy["decision"] == "passed"
    server = serve(backend, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with urllib.request.urlopen(base + "/health", timeout=10) as r:
            health = json.loads(r.read())
        assert health["status"] == "UP" and health["trained"] is False
        schema = '<View><Labels name="ner" toName="txt"><Label value="DISEASE"/></Labels><Text name="txt" value="$text"/></View>'
        status, body = _post(base + "/setup", {"project": "1.1", "schema": schema})
        assert status == 200 and body["model_version"] == "domainfm-spans-v0"
        assert (backend.from_name, backend.to_name) == ("ner", "txt")
        status, body = _post(base + "/predict", {"tasks": [{"id": 1, "data": {"text": NOTES[0]}}]})
        assert status == 200 and body["results"] == [{"result": [], "score": 0.0, "model_version": "domainfm-spans-v0"}]
        status, body = _post(base + "/predict", {"tasks": [{"id": 2, "data": {"text": "Identified note of Ann Lee."}}]})
        assert status == 403 and "not in the de-identified pool" in body["error"] and "Ann" not in body["error"]
        assert json.loads((tmp_path / "backend.json").read_text())["refused_requests"] == 1
        status, body = _post(base + "/webhook", {"action": "PROJECT_UPDATED"})
        assert status == 200 and body["status"] == "ignored"
        # Label Studio's model versions list (a 404 there says "Upgrade your ML backend")
        with urllib.request.urlopen(base + "/versions", timeout=10) as r:
            assert json.loads(r.read()) == {"versions": ["domainfm-spans-v0"]}
    finally:
        server.shutdown()
        server.server_close()


def test_malformed_requests_get_a_clear_400_and_a_bug_a_500_that_quotes_nothing(tmp_path, capsys):
    _pool(tmp_path, deid_manifest=True)
    backend = Backend(tmp_path)
    server = serve(backend, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    note = json.dumps(NOTES[0])
    cases = [  # (route, body, what the 400 must say); some were once a dropped connection or a 200
        ("/predict", b"[1, 2]", "body must be a JSON object"),
        ("/predict", b"{not json", "body is not JSON"),
        ("/predict", b'{"tasks": "abc"}', "'tasks' must be a list"),
        ("/webhook", b'{"action": "ANNOTATION_CREATED", "task": [1]}', "'data' object holding data.text"),
        ("/webhook", b'{"action": "ANNOTATION_CREATED", "task": {"data": "x"}}', "'data' object"),
        ("/webhook", b'{"action": "ANNOTATION_CREATED", "task": {"id": 7, "data": {"text": %s}}, "annotation": [1]}'
         % note.encode(), "'annotation' must be an object"),
        ("/train", b'{"annotations": "x"}', "'annotations' must be a list"),
        ("/train", b'{"annotations": [{"task": "x"}]}', "'data' object"),
        ("/setup", b'{"schema": 5}', "'schema' must be the project's labeling config"),
        ("/predict", b'{"tasks": {}}', "'tasks' must be a list"),  # an empty object once passed as no tasks
        ("/predict", b'{"tasks": null}', "'tasks' must be a list"),
        ("/predict", b'{"tasks": [{"data": {"text": "a \\ud800 b"}}]}', "unpaired UTF-16 surrogate"),  # was a 500
        ("/webhook", b'{"action": "ANNOTATION_CREATED", "task": {"data": {}}}', "data.text must be a string"),
    ]
    try:
        for route, raw, says in cases:
            status, body = _post_raw(base + route, raw)
            assert status == 400 and says in body["error"], (route, raw, status, body)
        # the importer's message names the record id (data.doc_id may be a medical record number)
        bad_region = {"type": "labels", "value": {"start": "1", "end": 4, "labels": ["DISEASE"]}}
        status, body = _post(base + "/webhook", {"action": "ANNOTATION_CREATED", "annotation": {"result": [bad_region]},
                                                 "task": {"id": 3, "data": {"text": NOTES[0], "doc_id": "MRN-4471"}}})
        assert status == 400 and "'start'/'end' must be integers" in body["error"] and "4471" not in body["error"]

        # a Content-Length alone must not make the server allocate it
        with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10) as sock:
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 99999999999\r\n\r\n{")
            reply = b""
            while b"at most" not in reply:  # headers and body may come in separate packets
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 413") and b"the backend takes at most" in reply
        req = urllib.request.Request(base + "/predict", data=b"{}", method="PUT")
        with pytest.raises(urllib.error.HTTPError) as put:
            urllib.request.urlopen(req, timeout=10)
        assert put.value.code == 405 and "not allowed" in json.loads(put.value.read())["error"]

        def broken():
            raise KeyError("Ann Lee, 12 Elm St")  # a bug whose message quotes a note
        backend.rank = broken
        status, body = _post(base + "/rank", {})
        assert status == 500 and body["error"] == "internal error (KeyError); the backend's log says where"
        err = capsys.readouterr().err
        assert "internal error on /rank: KeyError at test_label_serve.py:" in err and "Ann" not in err
        with urllib.request.urlopen(base + "/health", timeout=10) as r:  # still serving
            assert json.loads(r.read())["status"] == "UP"
    finally:
        server.shutdown()
        server.server_close()


def test_each_task_gets_its_own_spans_and_a_refused_batch_stores_nothing(tmp_path):
    _pool(tmp_path, deid_manifest=True)
    backend = Backend(tmp_path)
    region = {"type": "labels", "from_name": "label", "to_name": "text",
              "value": {"start": 17, "end": 25, "text": NOTES[0][17:25], "labels": ["DISEASE"]}}
    backend.add_annotation({"task": {"id": 1, "data": {"text": NOTES[0]}}, "annotation": {"result": [region]}})
    assert backend.wait_for_training(timeout=300)
    trained = backend.model_version
    assert trained == "domainfm-spans-v1"
    # two tasks under one id (or none): each result is its own task's, on its own text
    results = backend.predict([{"id": 5, "data": {"text": NOTES[2]}}, {"id": 5, "data": {"text": NOTES[1]}},
                               {"data": {"text": NOTES[0]}}])
    for result, text in zip(results, (NOTES[2], NOTES[1], NOTES[0])):
        assert all(r["value"]["text"] == text[r["value"]["start"]:r["value"]["end"]] for r in result["result"])
    # one refused annotation in a batch: none of it is stored, the model is not retrained
    before = (tmp_path / "annotations.jsonl").read_text()
    with pytest.raises(PermissionError, match="annotation 2: annotated task's text is not in the de-identified pool"):
        backend.add_annotations([{"task": {"id": 2, "data": {"text": NOTES[1]}}, "annotation": {"result": []}},
                                 {"task": {"id": 9, "data": {"text": "Ann Lee, not in the pool"}},
                                  "annotation": {"result": []}}])
    assert (tmp_path / "annotations.jsonl").read_text() == before and backend.model_version == trained
    assert json.loads((tmp_path / "backend.json").read_text())["refused_requests"] == 1  # saved at once


def test_a_hand_written_deid_manifest_without_hashes_vouches_for_nothing(tmp_path):
    _pool(tmp_path, deid_manifest=False)
    (tmp_path / "pool.manifest.json").write_text(json.dumps({"stage": "deid"}))
    with pytest.raises(ConfigError, match="records no output hash, so nothing ties it to this file"):
        Backend(tmp_path)


def test_parse_schema():
    assert parse_schema('<View><Labels name="l" toName="t"><Label value="A"/><Label value="B"/></Labels></View>') == \
        LabelingConfig("l", "t", ("A", "B"), "text")
    assert parse_schema('<View><Text name="t" value="$note"/><Labels name="l" toName="t"><Label value="A"/></Labels>'
                        '</View>') == LabelingConfig("l", "t", ("A",), "note")
    assert parse_schema("<View><Choices name='c' toName='t'/></View>") is None
    assert parse_schema("not xml") is None


# ------------------------------------------------- an annotation session, with a fake span model

CONFIG = ('<View><Labels name="label" toName="text"><Label value="DISEASE"/></Labels>'
          '<Text name="text" value="$text"/></View>')


class FakeSpans:
    """``train_span_model``/``predict_spans`` swapped for fakes: a training records the documents
    it got and waits for ``release`` (when cleared); prediction marks "diabetes" DISEASE and
    "inhaler" DRUG, and a note with no mark is the uncertain one; blank text is left out, as the
    real ``predict_spans`` leaves it."""

    def __init__(self):
        self.trained: list[list[Document]] = []
        self.release = threading.Event()
        self.release.set()

    def train(self, docs, cfg=None, *, tagger=None, on_stage=None):
        self.trained.append(list(docs))
        assert self.release.wait(timeout=30), "a test left a training waiting"
        return SimpleNamespace(labels=sorted({s.label for d in docs for s in d.spans}), tagger=None)

    def predict(self, model, docs, cfg=None, *, seeds=(), on_stage=None):
        from domainfm.label.spans import SpanSuggestions

        docs = [d for d in docs if d.text.strip()]  # as the real one: blank text is rejected, not tagged
        spans = [[Span(m, m + len(w), lab, {"confidence": 0.5})
                  for w, lab in (("diabetes", "DISEASE"), ("inhaler", "DRUG")) for m in [d.text.lower().find(w)]
                  if m >= 0] for d in docs]
        uncertainty = [0.1 if s else 0.9 for s in spans]
        return SpanSuggestions(list(docs), spans, list(range(1, len(docs) + 1)), uncertainty, model.labels, {})


@pytest.fixture()
def fake_spans(monkeypatch):
    import domainfm.label.spans as spans

    fake = FakeSpans()
    monkeypatch.setattr(spans, "train_span_model", fake.train)
    monkeypatch.setattr(spans, "predict_spans", fake.predict)
    yield fake
    fake.release.set()


@contextlib.contextmanager
def _served(backend: Backend):
    server = serve(backend, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _post_within(url: str, body: dict, seconds: float) -> tuple[int, dict]:
    """``_post`` that fails the test when the answer takes longer than ``seconds``."""
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=seconds) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
    except (TimeoutError, socket.timeout, urllib.error.URLError) as e:
        pytest.fail(f"{url} took longer than {seconds} s ({type(e).__name__})")


def _marked(text: str, *words: str, label: str = "DISEASE") -> list[dict]:
    return [{"id": f"r{k}", "type": "labels", "from_name": "label", "to_name": "text",
             "value": {"start": text.index(w), "end": text.index(w) + len(w), "text": w, "labels": [label]}}
            for k, w in enumerate(words)]


def _webhook(action: str, note: int, annotation_id: int, result: list, *, cancelled: bool = False) -> dict:
    """What Label Studio 1.23 posts for one annotation (task and project serialized whole)."""
    return {"action": action, "project": {"id": 1, "label_config": CONFIG},
            "task": {"id": 100 + note, "project": 1, "data": {"text": NOTES[note]}},
            "annotation": {"id": annotation_id, "task": 100 + note, "project": 1, "completed_by": 1,
                           "result": result, "was_cancelled": cancelled}}


def test_annotations_answer_at_once_and_retraining_is_coalesced_while_predict_keeps_serving(tmp_path, fake_spans):
    _pool(tmp_path, deid_manifest=True)
    write_documents(tmp_path / "seeds.jsonl", [Document("s0", NOTES[2], spans=[Span(0, 8, "DISEASE")])])
    backend = Backend(tmp_path)
    backend.retrain()
    assert backend.model_version == "domainfm-spans-v1"
    fake_spans.release.clear()  # the next training takes as long as the test wants
    with _served(backend) as base:
        # Label Studio waits 1 s for a webhook: each annotation must be stored and answered at once,
        # not after a retraining (five annotations were five trainings in a row, each holding /predict)
        for k, note in enumerate((0, 1, 3)):
            status, body = _post_within(base + "/webhook", _webhook("ANNOTATION_CREATED", note, 10 + k,
                                                                    _marked(NOTES[note], NOTES[note].split()[2])), 1.0)
            assert status == 201 and body["stored"] == 1 and body["training"] == "scheduled", body
        status, body = _post_within(base + "/webhook", _webhook("ANNOTATION_CREATED", 2, 13, []), 1.0)
        assert status == 201 and body["stored"] == 1  # "no disease in this note" is an annotation too
        assert backend.training
        # predictions come from the current model while the next one trains
        status, body = _post_within(base + "/predict", {"tasks": [{"id": 1, "data": {"text": NOTES[2]}}],
                                                        "label_config": CONFIG}, 1.0)
        assert status == 200 and body["model_version"] == "domainfm-spans-v1"
        assert [r["value"]["labels"] for r in body["results"][0]["result"]] == [["DISEASE"]]
        with urllib.request.urlopen(base + "/health", timeout=1) as r:
            assert json.loads(r.read())["training"] is True
        fake_spans.release.set()
        assert backend.wait_for_training(timeout=30)
    # one training took the first annotation; the three that came during it were learnt by one more
    assert len(fake_spans.trained) <= 3 and backend.model_version == f"domainfm-spans-v{len(fake_spans.trained)}"
    last = {d.id: d for d in fake_spans.trained[-1]}
    assert set(last) == {"s0", "ls-1-100", "ls-1-101", "ls-1-102", "ls-1-103"} and not last["ls-1-102"].spans
    assert json.loads((tmp_path / "backend.json").read_text())["model_version"] == backend.model_version


def test_skipped_updated_and_deleted_annotations_reach_the_training_set(tmp_path, fake_spans):
    _pool(tmp_path, deid_manifest=True)
    backend = Backend(tmp_path)
    with _served(backend) as base:
        def stored():
            backend.wait_for_training(timeout=30)
            lines = (tmp_path / "annotations.jsonl").read_text().splitlines()
            return {json.loads(x)["id"]: [s["start"] for s in json.loads(x)["spans"]] for x in lines}

        status, body = _post(base + "/webhook", _webhook("ANNOTATION_CREATED", 0, 21, _marked(NOTES[0], "diabetes")))
        assert status == 201 and stored() == {"ls-1-100": [NOTES[0].index("diabetes")]}
        # the annotator corrects it: the update replaces the stored version
        status, body = _post(base + "/webhook", _webhook("ANNOTATION_UPDATED", 0, 21,
                                                         _marked(NOTES[0], "chest pain", "diabetes")))
        assert status == 201 and stored() == {"ls-1-100": [NOTES[0].index("chest pain"), NOTES[0].index("diabetes")]}
        # a skip is not a malformed request (it was HTTP 400) and is never learnt from
        status, body = _post(base + "/webhook", _webhook("ANNOTATION_CREATED", 1, 22, [], cancelled=True))
        assert status == 201 and body["skipped"] == 1 and body["stored"] == 0
        assert stored() == {"ls-1-100": [NOTES[0].index("chest pain"), NOTES[0].index("diabetes")]}
        # the stored annotation turned into a skip: the task leaves the training set
        status, body = _post(base + "/webhook", _webhook("ANNOTATION_UPDATED", 0, 21, [], cancelled=True))
        assert status == 201 and body["withdrawn"] == 1 and stored() == {}
        # deleted in Label Studio (only ids are sent): forgotten, and the model retrained without it
        _post(base + "/webhook", _webhook("ANNOTATION_CREATED", 3, 23, _marked(NOTES[3], "migraine")))
        assert stored() == {"ls-1-103": [NOTES[3].index("migraine")]}
        trainings = len(fake_spans.trained)
        status, body = _post(base + "/webhook", {"action": "ANNOTATIONS_DELETED", "project": {"id": 1},
                                                 "annotations": [{"id": 23}, {"id": 999}]})
        assert status == 201 and body["removed"] == 1 and stored() == {}
        assert len(fake_spans.trained) == trainings  # nothing left to learn from
        # and nothing learnt from the withdrawn annotations goes on pre-annotating: no model, v0
        state = json.loads((tmp_path / "backend.json").read_text())
        assert state["annotated_documents"] == 0 and state["model_version"] == "domainfm-spans-v0"
        status, body = _post(base + "/predict", {"tasks": [{"id": 1, "data": {"text": NOTES[2]}}],
                                                 "label_config": CONFIG})
        assert status == 200 and body["results"][0]["result"] == [], body
        assert body["model_version"] == "domainfm-spans-v0"
        # the next annotation trains a model with a number never used before
        _post(base + "/webhook", _webhook("ANNOTATION_CREATED", 3, 24, _marked(NOTES[3], "migraine")))
        backend.wait_for_training(timeout=30)
        assert backend.model_version == f"domainfm-spans-v{state['last_model_version'] + 1}"


def test_train_and_bulk_webhooks_take_label_studios_payloads(tmp_path, fake_spans):
    _pool(tmp_path, deid_manifest=True)
    backend = Backend(tmp_path)
    note_config = CONFIG.replace("$text", "$note")
    # what ml/api_connector.py sends to /train: the export serializer's tasks, predictions as ids
    tasks = [{"id": 7, "project": 2, "data": {"note": NOTES[0], "doc_id": "n0"}, "predictions": [3], "drafts": [],
              "annotations": [{"id": 31, "completed_by": 1, "was_cancelled": False, "task": 7,
                               "result": _marked(NOTES[0], "diabetes")}]},
             {"id": 8, "project": 2, "data": {"note": NOTES[1], "doc_id": "n1"}, "predictions": [], "drafts": [],
              "annotations": [{"id": 32, "completed_by": 1, "was_cancelled": True, "task": 8, "result": []}]}]
    with _served(backend) as base:
        status, body = _post(base + "/train", {"annotations": tasks, "project": "2.1700000000",
                                               "label_config": note_config, "params": {}})
        assert status == 201 and (body["stored"], body["skipped"]) == (1, 1), body
        assert backend.wait_for_training(timeout=30) and backend.model_version == "domainfm-spans-v1"
        assert [d.id for d in fake_spans.trained[-1]] == ["n0"]
        # ANNOTATIONS_CREATED (a bulk import): a list of annotations and one of tasks, each paired by id
        bulk = {"action": "ANNOTATIONS_CREATED", "project": {"id": 2, "label_config": note_config},
                "task": [{"id": 9, "project": 2, "data": {"note": NOTES[3]}}, tasks[0]],
                "annotation": [{"id": 33, "task": 7, "result": _marked(NOTES[0], "chest pain")},
                               {"id": 34, "task": 9, "result": _marked(NOTES[3], "migraine")}]}
        status, body = _post(base + "/webhook", bulk)
        assert status == 201 and body["stored"] == 2, body
        assert backend.wait_for_training(timeout=30)
    assert {d.id: [s.start for s in d.spans] for d in fake_spans.trained[-1]} == \
        {"n0": [NOTES[0].index("chest pain")], "ls-2-9": [NOTES[3].index("migraine")]}


def test_predictions_follow_each_projects_labeling_config(tmp_path, fake_spans, capsys):
    _pool(tmp_path, deid_manifest=True)
    write_documents(tmp_path / "seeds.jsonl", [Document("s0", NOTES[2], spans=[Span(0, 8, "DISEASE"),
                                                                                 Span(38, 45, "DRUG")])])
    backend = Backend(tmp_path)
    backend.retrain()
    diseases = ('<View><Text name="txt" value="$note"/><Labels name="ner" toName="txt"><Label value="DISEASE"/>'
                '</Labels></View>')
    drugs = ('<View><Labels name="meds" toName="text"><Label value="DRUG"/></Labels>'
             '<Text name="text" value="$text"/></View>')
    with _served(backend) as base:
        assert _post(base + "/setup", {"project": "1.1", "schema": diseases})[0] == 200
        assert _post(base + "/setup", {"project": "2.1", "schema": drugs})[0] == 200
        assert _post(base + "/setup", {"project": "2.1", "schema": drugs})[0] == 200
        assert capsys.readouterr().err.count("the project's labeling config has 1 of the model's 2 labels") == 2
        # project 1 after project 2's /setup: its own names, its own text key, its own labels
        status, body = _post(base + "/predict", {"project": "1.1", "tasks": [{"data": {"note": NOTES[2]}}]})
        assert status == 200, body
        assert [(r["from_name"], r["to_name"], r["value"]["labels"]) for r in body["results"][0]["result"]] == \
            [("ner", "txt", ["DISEASE"])]
        # the config sent with the request wins
        status, body = _post(base + "/predict", {"project": "1.1", "label_config": drugs,
                                                 "tasks": [{"data": {"text": NOTES[2]}}]})
        assert [(r["from_name"], r["value"]["labels"]) for r in body["results"][0]["result"]] == [("meds", ["DRUG"])]
    assert json.loads((tmp_path / "backend.json").read_text())["spans_outside_labeling_config"] == 2


def test_score_is_certainty_so_uncertain_tasks_sort_first_and_blank_text_is_served(tmp_path, fake_spans):
    _pool(tmp_path, deid_manifest=True)
    write_documents(tmp_path / "seeds.jsonl", [Document("s0", NOTES[2], spans=[Span(0, 8, "DISEASE")])])
    backend = Backend(tmp_path)
    backend.retrain()
    # NOTES[3] gets no suggestion but is the uncertain one: it must not sort as the most certain
    unsure, sure, blank = backend.predict([{"data": {"text": t}} for t in (NOTES[3], NOTES[2], "  ")])
    assert unsure["result"] == [] and unsure["score"] == pytest.approx(0.1)
    assert sure["score"] == pytest.approx(0.9) and unsure["score"] < sure["score"]
    # blank text holds nothing to protect (it was refused as "not in the de-identified pool")
    assert blank == {"result": [], "score": 1.0, "model_version": "domainfm-spans-v1"}


def test_rank_lists_only_documents_still_to_annotate(tmp_path, fake_spans):
    _pool(tmp_path, deid_manifest=True)
    write_documents(tmp_path / "seeds.jsonl", [Document("n2", NOTES[2], spans=[Span(0, 8, "DISEASE")])])
    backend = Backend(tmp_path)
    backend.retrain()
    backend.add_annotations([{"task": {"id": 1, "data": {"text": NOTES[0], "doc_id": "n0"}},
                              "annotation": {"id": 5, "result": _marked(NOTES[0], "diabetes")}}])
    assert backend.wait_for_training(timeout=30)
    # a seed is annotated already: it was ranked for annotation again
    assert sorted(x["doc_id"] for x in backend.rank()) == ["n1", "n3"]


def test_a_restart_keeps_the_version_counter_refusals_and_override_record(tmp_path, fake_spans):
    _pool(tmp_path, deid_manifest=False)
    write_documents(tmp_path / "seeds.jsonl", [Document("s0", NOTES[2], spans=[Span(0, 8, "DISEASE")])])
    first = Backend(tmp_path, allow_identified_data=True)
    first.retrain()
    first.add_annotation(_webhook("ANNOTATION_CREATED", 0, 41, _marked(NOTES[0], "diabetes")))
    assert first.wait_for_training(timeout=30) and first.model_version == "domainfm-spans-v2"
    write_manifest(tmp_path / "pool.jsonl", stage="deid", config={}, outputs=[tmp_path / "pool.jsonl"])
    again = Backend(tmp_path)  # restarted, de-identified pool now, no override
    with pytest.raises(PermissionError):
        again.predict([{"data": {"text": "A note that is not in the pool."}}])
    # no model yet: predictions say v0, not v2 (another model's number)
    assert again.model_version == "domainfm-spans-v0"
    again.retrain()  # same annotations, but a new model: a new number, never v1 again
    assert again.model_version == "domainfm-spans-v3"
    state = json.loads((tmp_path / "backend.json").read_text())
    assert state["model_version"] == "domainfm-spans-v3" and state["trainings"] == 3
    assert state["refused_requests"] == 1 and state["privacy"]["decision"] == "passed"
    assert len(state["privacy_overrides"]) == 1  # the earlier run's override is still on record
    # a backend.json from before the counter was kept names the version served last
    (tmp_path / "backend.json").write_text(json.dumps({"model_version": "domainfm-spans-v7"}))
    upgraded = Backend(tmp_path)
    upgraded.retrain()
    assert upgraded.model_version == "domainfm-spans-v8"
    (tmp_path / "backend.json").write_text("{")
    with pytest.raises(ConfigError, match="backend.json cannot be read.*version counter"):
        Backend(tmp_path)

# ---------------------------------------------------------------------- slow: a real Label Studio

def _label_studio() -> Path | None:
    """Label Studio's executable: $DOMAINFM_LABEL_STUDIO, /work/ls-venv (see .ci/run), or PATH."""
    for candidate in (os.environ.get("DOMAINFM_LABEL_STUDIO"), "/work/ls-venv/bin/label-studio",
                      str(Path(sys.prefix).parent.parent / "ls-venv" / "bin" / "label-studio"),
                      shutil.which("label-studio")):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    exe = _label_studio()
    if exe is None:
        pytest.skip("Label Studio is not installed (.ci/run installs it into ../ls-venv; or set DOMAINFM_LABEL_STUDIO)")
    data = tmp_path_factory.mktemp("ls-data")
    port = _free_port()
    token = "d0" * 20
    env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(data), "DJANGO_DB": "sqlite",
           "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true", "ML_TIMEOUT_PREDICT": "300",
           "ML_TIMEOUT_SETUP": "120", "ML_TIMEOUT_TRAIN": "300", "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
           # the backend listens on loopback, which Label Studio blocks by default (SSRF protection)
           "SSRF_PROTECTION_ENABLED": "false", "ML_BLOCK_LOCAL_IP": "false"}
    log = open(data / "ls.log", "w")
    proc = subprocess.Popen([str(exe), "start", "--port", str(port), "--no-browser", "--host", "",
                             "--username", "annotator@example.org", "--password", "test-password-1",
                             "--user-token", token, "--enable-legacy-api-token"], cwd=data, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 900  # first start migrates a fresh SQLite database
    while time.time() < deadline:
        if proc.poll() is not None:
            log.close()
            # the log's tail names the cause (CI keeps only the test output); it holds no note text
            lines = [ln for ln in (data / "ls.log").read_text(errors="replace").splitlines()
                     if not ln.startswith("WARNING: Location")]
            pytest.fail(f"Label Studio exited with {proc.returncode}; log {data / 'ls.log'} ends:\n"
                        + "\n".join(lines[-6:]))
        try:
            with urllib.request.urlopen(url + "/health", timeout=5) as r:
                if r.status == 200:
                    break
        except (urllib.error.URLError, OSError):
            time.sleep(2)
    else:
        proc.terminate()
        pytest.fail("Label Studio did not answer /health within 15 minutes")
    yield {"url": url, "token": token, "python": exe.parent / "python"}
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.mark.slow
def test_real_label_studio_gets_predictions_and_sends_annotations(label_studio, tmp_path):
    from domainfm.deid.config import DeidConfig
    from domainfm.deid.runner import deidentify_file
    from domainfm.label.export import write_span_export

    project = tmp_path / "project"
    project.mkdir()
    raw = tmp_path / "raw.jsonl"
    write_documents(raw, [Document(f"n{i}", t) for i, t in enumerate(NOTES)])
    deidentify_file(raw, project / "pool.jsonl", DeidConfig(profile="clinical"), seed=1)
    from domainfm.corpus import read_documents

    pool = list(read_documents(project / "pool.jsonl"))

    def mark(doc, words):
        return Document(doc.id, doc.text, spans=[Span(doc.text.index(w), doc.text.index(w) + len(w), "DISEASE")
                                                 for w in words if w in doc.text])

    seeds = [mark(pool[0], ["chest pain", "diabetes"]), mark(pool[1], ["asthma", "chest pain"])]
    write_documents(project / "seeds.jsonl", seeds)
    backend = Backend(project, SpanLabelConfig(calibration_folds=0, deid_prior="off", min_steps=1))
    backend.retrain()
    server = serve(backend, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    backend_url = f"http://127.0.0.1:{server.server_address[1]}"
    tasks = tmp_path / "tasks.json"
    annotated = mark(pool[2], ["Diabetes", "asthma"])
    write_span_export("labelstudio", tasks, [annotated] + pool[3:], labels=["DISEASE"], as_annotations=True)
    try:
        done = subprocess.run([str(label_studio["python"]), str(Path(__file__).parent / "labelstudio" / "ls_client.py"),
                               label_studio["url"], label_studio["token"], backend_url, str(tasks)],
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        seen = json.loads(done.stdout.strip().splitlines()[-1])
        assert seen["tasks"] == 2
        versions = {p["model_version"] for p in seen["predictions"]}
        assert versions == {"domainfm-spans-v1"}, seen["predictions"]
        # the pre-annotations are span regions of the project's labels
        regions = [r for p in seen["predictions"] for r in p["result"]]
        assert all(r["type"] == "labels" and r["value"]["labels"] == ["DISEASE"] for r in regions)
        # GET /versions, as Label Studio reads it (annotations may have retrained the model by then)
        assert [v.rsplit("-v", 1)[0] for v in seen["versions"]["versions"]] == ["domainfm-spans"]
        # the annotation came back through the webhooks: imported, corrected, and the model retrained;
        # the other task's deleted annotation and its skip left nothing to learn
        assert backend.wait_for_training(timeout=300) and backend.version >= 2
        got = [json.loads(x) for x in (project / "annotations.jsonl").read_text().splitlines()]
        first = min(annotated.spans, key=lambda s: (s.start, s.end))
        assert len(got) == 1 and [(s["start"], s["end"]) for s in got[0]["spans"]] == [(first.start, first.end)]
        state = json.loads((project / "backend.json").read_text())
        assert state["skipped_annotations"] == 1 and state["model_version"] == backend.model_version
    finally:
        server.shutdown()
        server.server_close()
