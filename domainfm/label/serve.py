"""``domainfm label serve``: a Label Studio ML backend for span pre-annotation.

It speaks the protocol of Label Studio's ML backends (the ``label-studio-ml`` SDK's routes):

- ``GET /health`` (and ``GET /``): ``{"status": "UP", "model_version": ...}``;
- ``POST /setup``: ``{"project", "schema", ...}`` -> ``{"model_version"}``; the labels and the
  ``from_name``/``to_name`` of the project's ``<Labels>`` tag are read from ``schema``;
- ``POST /predict``: ``{"tasks": [...]}`` -> ``{"results": [{"result": [...], "score",
  "model_version"}], "model_version"}``: span pre-annotations from the current model;
- ``POST /webhook`` (Label Studio's ``ANNOTATION_CREATED``/``ANNOTATION_UPDATED``/
  ``START_TRAINING`` events) and ``POST /train``: the submitted annotation is imported with the
  ``labelstudio`` importer, appended to ``<project>/annotations.jsonl`` and the model is
  retrained on the seeds plus every annotation (the model version goes up by one).

The SDK itself (``label-studio-ml`` on PyPI, 1.0.9) pins Flask 1.1.2 / Werkzeug 2.0.2, which
conflict with this package's dependencies, so the same routes are served here with the standard
library's threading HTTP server; requests are small JSON bodies from one Label Studio.

Active-learning order: ``POST /rank`` (and ``domainfm label serve`` at start, when the project
has ``pool.jsonl``) returns the pool ordered uncertain-and-diverse first; the ``score`` of each
prediction is the document's certainty, so Label Studio's "sort by prediction score" shows the
same order, least certain first.

Privacy: annotators must see de-identified text only. The project's ``pool.jsonl`` must trace
back to ``domainfm deid`` (its manifest chain, as the pretrain privacy gate checks), and a task
whose text is not in that pool is refused (HTTP 403) - unless ``--allow-identified-data`` is
given, which is recorded in ``<project>/backend.json``.

Project folder::

    <project>/seeds.jsonl        span-annotated documents to start from (optional)
    <project>/pool.jsonl         the de-identified documents the tasks come from
    <project>/annotations.jsonl  written by the backend: every submitted annotation, imported
    <project>/backend.json       written by the backend: privacy decision, versions, counts
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from domainfm.corpus.document import Document
from domainfm.errors import ConfigError, CorpusError, DomainFMError, RecordError
from domainfm.label.span_config import SpanLabelConfig


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_schema(schema: str | None) -> tuple[str, str, list[str]] | None:
    """``(from_name, to_name, labels)`` of the first ``<Labels>`` tag of a labeling config."""
    if not schema:
        return None
    try:
        root = ElementTree.fromstring(schema)
    except ElementTree.ParseError:
        return None
    for tag in root.iter("Labels"):
        labels = [x.get("value") for x in tag.iter("Label") if x.get("value")]
        return tag.get("name", "label"), tag.get("toName", "text"), labels
    return None


@dataclass
class Backend:
    """The state behind the HTTP routes (usable without a server, e.g. in tests)."""

    project: Path
    config: SpanLabelConfig = field(default_factory=SpanLabelConfig)
    allow_identified_data: bool = False
    from_name: str = "label"
    to_name: str = "text"
    text_key: str = "text"

    def __post_init__(self) -> None:
        from domainfm.corpus.io import read_documents

        self.project = Path(self.project)
        if not self.project.is_dir():
            raise ConfigError(f"--project {self.project}: no such folder (it holds pool.jsonl and seeds.jsonl)")
        self.lock = threading.RLock()
        self.version = 0
        self.model = None
        self.trainings = 0
        self.refused = 0
        self.events: list[dict] = []
        pool_path = self.project / "pool.jsonl"
        self.pool: list[Document] = list(read_documents(pool_path)) if pool_path.is_file() else []
        self.known = {_digest(d.text) for d in self.pool}
        self.privacy = self._privacy_gate(pool_path)
        seeds_path = self.project / "seeds.jsonl"
        self.seeds: list[Document] = list(read_documents(seeds_path)) if seeds_path.is_file() else []
        self.annotations_path = self.project / "annotations.jsonl"
        self.annotated: dict[str, Document] = {}
        if self.annotations_path.is_file():
            for d in read_documents(self.annotations_path):
                self.annotated[d.id] = d
        self._save_state()

    # ------------------------------------------------------------------ privacy

    def _privacy_gate(self, pool_path: Path) -> dict[str, Any]:
        from domainfm.manifest import check_deidentified

        if not pool_path.is_file():
            if not self.allow_identified_data:
                raise ConfigError(
                    f"{pool_path}: no such file; the backend serves only text from a pool that 'domainfm deid' "
                    "wrote (copy the de-identified JSONL and its manifest there), or pass --allow-identified-data "
                    "(recorded in backend.json)")
            return {"allow_identified_data": True, "decision": "overridden", "evidence": "no pool.jsonl"}
        (check,) = check_deidentified([pool_path])
        if not check.deidentified and not self.allow_identified_data:
            raise ConfigError(
                f"{pool_path} does not trace back to 'domainfm deid' ({check.evidence}); de-identify it first, or "
                "pass --allow-identified-data if annotators may see this text (recorded in backend.json)")
        return {"allow_identified_data": self.allow_identified_data,
                "decision": "passed" if check.deidentified else "overridden", "evidence": check.evidence}

    def check_text(self, text: str) -> bool:
        """May this task's text be served? Only text of the de-identified pool, unless overridden."""
        return self.allow_identified_data or _digest(text) in self.known

    # ------------------------------------------------------------------ model

    @property
    def model_version(self) -> str:
        return f"domainfm-spans-v{self.version}"

    def training_docs(self) -> list[Document]:
        by_id = {d.id: d for d in self.seeds}
        by_id.update(self.annotated)  # an annotation of a seed document replaces it
        return [d for d in by_id.values() if d.spans]

    def retrain(self) -> dict[str, Any]:
        from domainfm.label.spans import train_span_model

        with self.lock:
            docs = self.training_docs()
            if not docs:
                return {"trained": False, "reason": "no annotated document with spans yet"}
            tagger = self.model.tagger if self.model is not None else None
            self.model = train_span_model(docs, self.config, tagger=tagger)
            self.version += 1
            self.trainings += 1
            self._save_state()
            return {"trained": True, "model_version": self.model_version, "documents": len(docs)}

    def predict(self, tasks: list[dict]) -> list[dict]:
        from domainfm.label.export import span_regions
        from domainfm.label.spans import predict_spans

        with self.lock:
            results = []
            docs, slots = [], []
            for i, task in enumerate(tasks):
                data = task.get("data") if isinstance(task, dict) else None
                text = data.get(self.text_key) if isinstance(data, dict) else None
                if not isinstance(text, str):
                    raise RecordError(f"task {i + 1}: data.{self.text_key} must be a string")
                Document(f"task-{i}", text).validate(location=f"task {i + 1}")  # e.g. an unpaired surrogate
                if not self.check_text(text):
                    self.refused += 1
                    self._save_state()
                    raise PermissionError(f"task {i + 1}: its text is not in the de-identified pool of this project; "
                                          "refusing to serve it (run 'domainfm deid' and import that output)")
                # numbered by position: two tasks with one id (or none) must not swap their spans
                docs.append(Document(f"task-{i}", text))
                slots.append(i)
            if self.model is None:
                return [{"result": [], "score": 0.0, "model_version": self.model_version} for _ in tasks]
            out = predict_spans(self.model, docs, self.config, seeds=self.seeds)
            by_slot = {d.id: (spans, score) for d, spans, score in zip(out.docs, out.spans, out.scores)}
            for doc in docs:
                spans, score = by_slot.get(doc.id, ([], 0.0))
                results.append({"result": span_regions(doc, spans, from_name=self.from_name, to_name=self.to_name),
                                "score": round(float(score), 4), "model_version": self.model_version})
            return results

    def rank(self) -> list[dict]:
        """The pool in annotation order (uncertain and diverse first), unannotated documents only."""
        from domainfm.label.spans import predict_spans

        with self.lock:
            todo = [d for d in self.pool if d.id not in self.annotated]
            if self.model is None or not todo:
                return [{"doc_id": d.id, "rank": i + 1} for i, d in enumerate(todo)]
            out = predict_spans(self.model, todo, self.config, seeds=self.seeds)
            order = sorted(zip(out.docs, out.ranks, out.uncertainty), key=lambda x: x[1])
            return [{"doc_id": d.id, "rank": r, "uncertainty": round(u, 4)} for d, r, u in order]

    def add_annotation(self, payload: dict) -> dict[str, Any]:
        """Import one webhook/``/train`` payload's annotation and retrain."""
        return self.add_annotations([payload])

    def add_annotations(self, payloads: list[dict]) -> dict[str, Any]:
        """Import webhook/``/train`` annotations and retrain once. Every one is checked first: a
        batch with one refused or malformed annotation stores none of them."""
        docs = [self._annotated_document(p, i, len(payloads)) for i, p in enumerate(payloads)]
        if not docs:
            return self.retrain()
        with self.lock:
            for doc in docs:
                self.annotated[doc.id] = doc
            tmp = self.annotations_path.with_suffix(".jsonl.tmp")
            with open(tmp, "w", encoding="utf-8") as fh:
                for d in self.annotated.values():
                    fh.write(json.dumps(d.to_dict(), ensure_ascii=False) + "\n")
            tmp.replace(self.annotations_path)
        return self.retrain()

    def _annotated_document(self, payload: dict, index: int, n: int) -> Document:
        from domainfm.corpus.importers.labelstudio import LabelStudioOptions, task_to_document

        which = f"annotation {index + 1}: " if n > 1 else ""
        task, annotation = payload.get("task"), payload.get("annotation")
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise RecordError(f"{which}the annotated task must be an object with a 'data' object holding "
                              f"data.{self.text_key}")
        if not isinstance(task["data"].get(self.text_key), str):
            raise RecordError(f"{which}data.{self.text_key} must be a string (the annotated text)")
        if annotation is not None and not isinstance(annotation, dict):
            raise RecordError(f"{which}'annotation' must be an object (Label Studio's annotation with its 'result' "
                              "list)")
        task = dict(task)
        if annotation is not None:
            task["annotations"] = [annotation]
        if not self.check_text(task["data"][self.text_key]):
            with self.lock:
                self.refused += 1
                self._save_state()  # the count of refusals survives a restart
            raise PermissionError(f"{which}annotated task's text is not in the de-identified pool of this project")
        return task_to_document(task, LabelStudioOptions(text_key=self.text_key), location="webhook")

    def setup(self, payload: dict) -> dict[str, Any]:
        schema = payload.get("schema") or payload.get("label_config")
        if schema is not None and not isinstance(schema, str):
            raise RecordError("'schema' must be the project's labeling config, an XML string")
        parsed = parse_schema(schema)
        if parsed is not None:
            self.from_name, self.to_name, _ = parsed
        if self.model is None and self.training_docs():
            self.retrain()
        return {"model_version": self.model_version}

    def health(self) -> dict[str, Any]:
        return {"status": "UP", "model_class": "domainfm-spans", "model_version": self.model_version,
                "trained": self.model is not None}

    def _save_state(self) -> None:
        state = {"privacy": self.privacy, "model_version": self.model_version, "trainings": self.trainings,
                 "seed_documents": len(self.seeds), "annotated_documents": len(self.annotated),
                 "pool_documents": len(self.pool), "refused_requests": self.refused,
                 "updated": time.strftime("%Y-%m-%dT%H:%M:%S")}
        path = self.project / "backend.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
        tmp.replace(path)


def make_handler(backend: Backend):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # no request bodies (text) in logs; status lines only
            pass

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict:
            n = int(self.headers.get("Content-Length") or 0)
            if n < 0:  # read(-1) would wait for the client to close the connection
                raise RecordError("Content-Length must not be negative")
            if n > MAX_BODY_BYTES:  # checked before reading: the header alone must not allocate gigabytes
                raise BodyTooLarge(f"the request body is {n} bytes; the backend takes at most {MAX_BODY_BYTES} "
                                   "(send fewer tasks per request)")
            raw = self.rfile.read(n) if n else b"{}"
            try:
                body = json.loads(raw or b"{}")
            except ValueError as exc:  # JSONDecodeError and undecodable bytes alike
                why = getattr(exc, "msg", None) or type(exc).__name__
                raise RecordError(f"the request body is not JSON ({why})") from None
            if not isinstance(body, dict):
                raise RecordError("the request body must be a JSON object")
            return body

        def _internal_error(self, route: str, exc: Exception) -> None:
            """A bug, not the caller's mistake: 500 and one log line with the exception's type and
            where it was raised, never its message or the request (either may quote note text)."""
            frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
            where = f" at {Path(frame.filename).name}:{frame.lineno}" if frame else ""
            print(f"domainfm label serve: internal error on {route}: {type(exc).__name__}{where}", file=sys.stderr)
            self._send(500, {"error": f"internal error ({type(exc).__name__}); the backend's log says where"})

        def do_GET(self):
            if self.path.split("?")[0] in ("/", "/health"):
                self._send(200, backend.health())
            elif self.path.startswith("/metrics"):
                self._send(200, {})
            else:
                self._send(404, {"error": "unknown route"})

        def do_POST(self):
            route = self.path.split("?")[0]
            try:
                body = self._body()
                if route == "/setup":
                    self._send(200, backend.setup(body))
                elif route == "/predict":
                    tasks = body.get("tasks", [])
                    if not isinstance(tasks, list):
                        raise RecordError("'tasks' must be a list of Label Studio tasks")
                    self._send(200, {"results": backend.predict(tasks), "model_version": backend.model_version})
                elif route == "/webhook":
                    action = body.get("action")
                    if action in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED"):
                        self._send(201, backend.add_annotation(body))
                    elif action == "START_TRAINING":
                        self._send(201, backend.retrain())
                    else:
                        self._send(200, {"status": "ignored", "action": action})
                elif route == "/train":
                    annotations = body.get("annotations", [])
                    if not isinstance(annotations, list) or not all(isinstance(a, dict) for a in annotations):
                        raise RecordError("'annotations' must be a list of annotation objects, each with its 'task'")
                    self._send(201, backend.add_annotations([{"task": a.get("task"), "annotation": a}
                                                             for a in annotations]))
                elif route == "/rank":
                    self._send(200, {"order": backend.rank()})
                else:
                    self._send(404, {"error": "unknown route"})
            except BodyTooLarge as exc:
                self.close_connection = True  # the unread body must not be taken for the next request
                self._send(413, {"error": str(exc)})
            except PermissionError as exc:
                self._send(403, {"error": str(exc)})
            except (DomainFMError, ValueError) as exc:
                self._send(400, {"error": str(exc)})
            except Exception as exc:  # noqa: BLE001 - answer the request instead of dropping it
                self._internal_error(route, exc)

        def _not_allowed(self):
            self.close_connection = True  # a body we do not read must not be taken for the next request
            self._send(405, {"error": f"method {self.command} is not allowed; the backend's routes take GET and POST"})

        do_PUT = do_DELETE = do_PATCH = _not_allowed

    return Handler


# Label Studio sends tasks in pages; 64 MB holds thousands of long notes (a request beyond it is refused)
MAX_BODY_BYTES = 64 * 1024 * 1024


class BodyTooLarge(RecordError):
    """A request whose Content-Length exceeds :data:`MAX_BODY_BYTES` (HTTP 413)."""


def serve(backend: Backend, host: str = "127.0.0.1", port: int = 9090) -> ThreadingHTTPServer:
    """A started server (``serve_forever`` on the caller); ``server.shutdown()`` stops it."""
    try:
        return ThreadingHTTPServer((host, port), make_handler(backend))
    except OSError as exc:
        raise CorpusError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port") from None
