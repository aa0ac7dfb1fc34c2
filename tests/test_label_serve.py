"""The Label Studio ML backend: privacy gate, protocol routes, and (slow) a real Label Studio
server driving it through label-studio-sdk."""

from __future__ import annotations

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

import pytest

from domainfm.corpus.document import Document, Span
from domainfm.corpus.io import write_documents
from domainfm.errors import ConfigError
from domainfm.label.serve import Backend, parse_schema, serve
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
    trained = backend.model_version
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
        ("l", "t", ["A", "B"])
    assert parse_schema("<View><Choices name='c' toName='t'/></View>") is None
    assert parse_schema("not xml") is None


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
            pytest.fail(f"Label Studio exited with {proc.returncode}; log: {data / 'ls.log'}")
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
        # the annotation came back through the webhook: imported, and the model retrained
        deadline = time.time() + 300
        while time.time() < deadline and backend.version < 2:
            time.sleep(1)
        assert backend.version >= 2
        got = [json.loads(x) for x in (project / "annotations.jsonl").read_text().splitlines()]
        assert len(got) == 1 and sorted((s["start"], s["end"]) for s in got[0]["spans"]) == \
            sorted((s.start, s.end) for s in annotated.spans)
    finally:
        server.shutdown()
        server.server_close()
