"""``domainfm label serve``: a Label Studio ML backend for span pre-annotation.

It speaks the protocol of Label Studio's ML backends (the ``label-studio-ml`` SDK's routes, and
what Label Studio 1.23's ``ml/api_connector.py`` sends):

- ``GET /health`` (and ``GET /``): ``{"status": "UP", "model_version", "trained", "training"}``;
- ``GET /versions``: ``{"versions": [model_version]}`` (the one model this backend holds);
- ``POST /setup``: ``{"project", "schema", ...}`` -> ``{"model_version"}``; where span regions go
  (the ``<Labels>`` tag's ``name``/``toName``), the project's labels and the task data key of its
  text (``<Text value="$key">``) are read from ``schema`` and remembered per project;
- ``POST /predict``: ``{"tasks": [...], "project", "label_config"}`` -> ``{"results": [{"result":
  [...], "score", "model_version"}], "model_version"}``: span pre-annotations from the current
  model, addressed to the ``label_config`` sent with the request (else the project's ``/setup``),
  and only of the labels that config has;
- ``POST /webhook``: ``ANNOTATION_CREATED``/``ANNOTATION_UPDATED``/``ANNOTATIONS_CREATED`` store the
  annotation (imported with the ``labelstudio`` importer) in ``<project>/annotations.jsonl``; a
  skipped annotation (``was_cancelled``) and ``ANNOTATIONS_DELETED`` take theirs out of it;
  ``START_TRAINING`` asks for a retraining. A withdrawal that leaves nothing to learn from (no
  seeds, no annotated task) stops serving the model trained on the withdrawn annotations;
- ``POST /train``: Label Studio's export of every annotated task (``{"annotations": [task with
  its "annotations"], "project": "<id>.<created>", "label_config"}``), or annotations each with
  their ``task``: stored like webhook annotations. The export is the project's truth: a stored
  annotation of that project that it no longer holds (deleted in Label Studio) is withdrawn as
  ``ANNOTATIONS_DELETED`` withdraws it. Label Studio's ``ml/api_connector.py`` sends every task
  of the project that has an annotation, in one request; the body cannot say so itself, so only
  that shape (tasks with ``data`` and a ``project`` id) is taken as complete, and only for
  annotations stored with that project id. Annotation objects each with their ``task`` (a partial
  list) withdraw nothing.

Retraining never holds up a request: a stored annotation answers at once (Label Studio waits 1 s
for a webhook) and asks for a retraining in the background; annotations that arrive while a
model is being trained are learnt together by one more training, not one each. ``/predict``
keeps answering with the current model meanwhile; the new one replaces it when it is ready and
the model version goes up by one. The version counter is kept in ``backend.json``, so a restarted
backend never reuses a number for a different model (``v0`` means no model: empty predictions).

The SDK itself (``label-studio-ml`` on PyPI, 1.0.9) pins Flask 1.1.2 / Werkzeug 2.0.2, which
conflict with this package's dependencies, so the same routes are served here with the standard
library's threading HTTP server; requests are small JSON bodies from one Label Studio.

Active-learning order: ``POST /rank`` returns the pool ordered uncertain-and-diverse first; the
``score`` of each prediction is the document's certainty (1 - the uncertainty ``/rank`` orders
by), so Label Studio's "sort by prediction score" shows the least certain first.

Privacy: annotators must see de-identified text only. The project's ``pool.jsonl`` must trace
back to ``domainfm deid`` (its manifest chain, as the pretrain privacy gate checks), and a task
whose text is not in that pool is refused (HTTP 403) - unless ``--allow-identified-data`` is
given, which is recorded in ``<project>/backend.json`` (every run that gave it, kept across
restarts). Errors and log lines name what was wrong, never text, ids or annotation values.

Project folder::

    <project>/seeds.jsonl        span-annotated documents to start from (optional)
    <project>/pool.jsonl         the de-identified documents the tasks come from
    <project>/annotations.jsonl  written by the backend: every annotated task, imported
    <project>/backend.json       written by the backend: privacy decision, versions, counts
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from xml.etree import ElementTree

from domainfm.corpus.document import Document
from domainfm.errors import ConfigError, CorpusError, DomainFMError, RecordError
from domainfm.label.span_config import SpanLabelConfig


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _log(message: str) -> None:
    """One line on the backend's console: counts, versions and exception types only."""
    print(f"domainfm label serve: {message}", file=sys.stderr, flush=True)


def _where(exc: BaseException) -> str:
    """`` at file.py:LINE`` of the frame that raised ``exc`` (never its message, which could quote a note)."""
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    return f" at {Path(frame.filename).name}:{frame.lineno}" if frame else ""


class LabelingConfig(NamedTuple):
    """What the backend reads from a Label Studio labeling config."""

    from_name: str  # the <Labels> tag's name: predictions' regions are addressed to it
    to_name: str  # the object tag it labels
    labels: tuple[str, ...]  # the project's label values (predictions of other labels are dropped)
    text_key: str = "text"  # the task data key of that object's text (<Text value="$key">)


def parse_schema(schema: str | None) -> LabelingConfig | None:
    """The first ``<Labels>`` tag of a labeling config and the data key of the text it labels."""
    if not schema:
        return None
    try:
        root = ElementTree.fromstring(schema)
    except ElementTree.ParseError:
        return None
    for tag in root.iter("Labels"):
        labels = tuple(x.get("value") for x in tag.iter("Label") if x.get("value"))
        to_name = (tag.get("toName") or "text").split(",")[0].strip()
        text_key = "text"
        for obj in root.iter():
            value = obj.get("value") or ""
            if obj is not tag and obj.get("name") == to_name and value.startswith("$") and len(value) > 1:
                text_key = value[1:]
                break
        return LabelingConfig(tag.get("name", "label"), to_name, labels, text_key)
    return None


def _ls_meta(doc: Document) -> dict:
    """The ``labelstudio`` record the importer added to ``doc.meta`` (under another key when the
    task's own data used that name)."""
    for key, value in doc.meta.items():
        if key.startswith("labelstudio") and isinstance(value, dict) and "task_id" in value:
            return value
    return {}


def _count(value: Any) -> int:
    """A counter read back from ``backend.json`` (anything but a count there starts it at 0)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _is_id(value: Any) -> bool:
    """Is ``value`` a Label Studio id (an integer, or a string)?"""
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _annotation_ids(doc: Document) -> set:
    return set(_ls_meta(doc).get("annotation_ids") or ())


@dataclass
class Backend:
    """The state behind the HTTP routes (usable without a server, e.g. in tests).

    Args:
        project: the project folder (``pool.jsonl``, ``seeds.jsonl``; the backend writes
            ``annotations.jsonl`` and ``backend.json`` there).
        config: how the span model is trained.
        allow_identified_data: serve text that does not trace back to ``domainfm deid``.
        from_name, to_name, text_key: where regions go and the task text's data key, until a
            ``/setup`` or a request's ``label_config`` says otherwise.
    """

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
        self.lock = threading.RLock()  # the state below; never held while a model trains or predicts
        self._idle = threading.Condition(self.lock)
        self._train_lock = threading.Lock()  # one training at a time
        # one prediction at a time: a model's tagger flips its tokenizer between the chunker's
        # settings and the encoder's (truncation, padding) on every call, so two requests using it
        # at once failed or read each other's settings
        self._predict_lock = threading.Lock()
        self._train_wanted = False
        self._trainer: threading.Thread | None = None
        self.model = None
        self.project_configs: dict[str, LabelingConfig] = {}
        self._warned: set = set()
        saved = self._load_state()
        # counters survive a restart: a version number is never given to two different models (a
        # backend.json written before the counter was kept names the version it served last)
        served = str(saved.get("model_version") or "").rpartition("-v")[2]
        self.version = _count(saved.get("last_model_version", int(served) if served.isdigit() else 0))
        self.trainings = _count(saved.get("trainings"))
        self.refused = _count(saved.get("refused_requests"))
        self.skipped = _count(saved.get("skipped_annotations"))
        self.outside_config = _count(saved.get("spans_outside_labeling_config"))
        self.training_error: str | None = None
        pool_path = self.project / "pool.jsonl"
        self.pool: list[Document] = list(read_documents(pool_path)) if pool_path.is_file() else []
        self.known = {_digest(d.text) for d in self.pool}
        self.privacy = self._privacy_gate(pool_path)
        self.overrides: list[str] = [x for x in saved.get("privacy_overrides") or [] if isinstance(x, str)]
        if self.privacy["decision"] == "overridden":
            self.overrides.append(time.strftime("%Y-%m-%dT%H:%M:%S"))
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
        """May this task's text be served? Only text of the de-identified pool, unless overridden;
        blank text holds nothing to protect."""
        return self.allow_identified_data or not text.strip() or _digest(text) in self.known

    def _refuse(self, message: str) -> PermissionError:
        with self.lock:
            self.refused += 1
            self._save_state()  # the count of refusals is saved at once and survives a restart
        return PermissionError(message)

    # ------------------------------------------------------------------ model

    @property
    def model_version(self) -> str:
        """The version of the model that answers ``/predict`` now (``v0``: none yet)."""
        with self.lock:  # a training swaps the model and its number together
            return f"domainfm-spans-v{self.version if self.model is not None else 0}"

    def training_docs(self) -> list[Document]:
        """Seeds and annotated tasks; an annotation of a seed document replaces it. A task annotated
        with no span (the annotator removed a wrong suggestion) is learnt from too, once any
        document has spans."""
        by_id = {d.id: d for d in self.seeds}
        by_id.update(self.annotated)
        docs = [d for d in by_id.values() if d.spans or d.id in self.annotated]
        return docs if any(d.spans for d in docs) else []

    def retrain(self) -> dict[str, Any]:
        """Train a model on :meth:`training_docs` now and serve it (the caller waits; the routes use
        :meth:`request_training`). ``/predict`` answers with the previous model meanwhile."""
        from domainfm.label.spans import train_span_model

        with self._train_lock:
            with self.lock:
                docs = self.training_docs()
            if not docs:
                # every annotation it learnt from was withdrawn (deleted or turned into a skip in
                # Label Studio): a model trained on them must not go on pre-annotating from them
                with self.lock:
                    dropped = self.model is not None
                    if dropped:
                        self.model = None
                        self._save_state()
                if dropped:
                    _log("no annotated document with spans is left: the model trained on withdrawn "
                         "annotations is no longer served (v0: empty predictions)")
                return {"trained": False, "reason": "no annotated document with spans yet",
                        **({"dropped_model": True} if dropped else {})}
            t0 = time.perf_counter()
            # a tagger of its own (the encoder loaded again): the served model's tagger answers
            # /predict meanwhile, and its tokenizer cannot serve two threads at once
            model = train_span_model(docs, self.config)
            with self.lock:
                self.model = model
                self.version += 1
                self.trainings += 1
                self.training_error = None
                self._save_state()
                version = self.model_version
            _log(f"{version} trained on {len(docs)} documents in {time.perf_counter() - t0:.1f} s")
            return {"trained": True, "model_version": version, "documents": len(docs)}

    def request_training(self) -> None:
        """Retrain in the background. Requests made while a model is being trained are coalesced
        into one more training, on everything stored by the time it starts."""
        with self.lock:
            self._train_wanted = True
            if self._trainer is None:
                self._trainer = threading.Thread(target=self._train_loop, name="domainfm-retrain", daemon=True)
                self._trainer.start()

    def _train_loop(self) -> None:
        try:
            while True:
                with self.lock:
                    if not self._train_wanted:
                        self._trainer = None
                        self._idle.notify_all()
                        return
                    self._train_wanted = False
                try:
                    self.retrain()
                except Exception as exc:  # noqa: BLE001 - keep serving the previous model
                    with self.lock:
                        self.training_error = type(exc).__name__
                        self._save_state()
                    _log(f"retraining failed: {type(exc).__name__}{_where(exc)}; still serving {self.model_version}")
        finally:  # an exit the loop did not plan must not leave training switched off for good
            with self.lock:
                if self._trainer is threading.current_thread():
                    self._trainer = None
                    self._idle.notify_all()

    @property
    def training(self) -> bool:
        """Is a retraining running or asked for?"""
        with self.lock:
            return self._trainer is not None or self._train_wanted

    def wait_for_training(self, timeout: float | None = None) -> bool:
        """Block until no retraining is running or asked for; False if ``timeout`` passed first."""
        with self.lock:
            return self._idle.wait_for(lambda: self._trainer is None and not self._train_wanted, timeout)

    def _labeling(self, label_config: Any = None, project: Any = None) -> LabelingConfig:
        """Where this request's regions go: its own ``label_config``, else its project's ``/setup``,
        else the last ``/setup``'s (or the defaults)."""
        if label_config is not None and not isinstance(label_config, str):
            raise RecordError("'label_config' must be the project's labeling config, an XML string")
        parsed = parse_schema(label_config)
        if parsed is not None:
            return parsed
        with self.lock:
            if isinstance(project, (str, int)) and str(project) in self.project_configs:
                return self.project_configs[str(project)]
            return LabelingConfig(self.from_name, self.to_name, (), self.text_key)

    def predict(self, tasks: list[dict], *, label_config: Any = None, project: Any = None) -> list[dict]:
        """Pre-annotations of ``tasks`` (Label Studio tasks with ``data``), one result per task, in order."""
        from domainfm.label.export import span_regions
        from domainfm.label.spans import certainty, predict_spans

        where = self._labeling(label_config, project)
        docs = []
        for i, task in enumerate(tasks):
            data = task.get("data") if isinstance(task, dict) else None
            text = data.get(where.text_key) if isinstance(data, dict) else None
            if not isinstance(text, str):
                raise RecordError(f"task {i + 1}: data.{where.text_key} must be a string")
            Document(f"task-{i}", text).validate(location=f"task {i + 1}")  # e.g. an unpaired surrogate
            if not self.check_text(text):
                raise self._refuse(f"task {i + 1}: its text is not in the de-identified pool of this project; "
                                   "refusing to serve it (run 'domainfm deid' and import that output)")
            # numbered by position: two tasks with one id (or none) must not swap their spans
            docs.append(Document(f"task-{i}", text))
        with self.lock:  # one model and its version for the whole request, even if a training ends meanwhile
            model, version, seeds = self.model, self.model_version, list(self.seeds)
        if model is None:
            return [{"result": [], "score": 0.0, "model_version": version} for _ in tasks]
        with self._predict_lock:
            out = predict_spans(model, docs, self.config, seeds=seeds)
        by_slot = {d.id: (spans, u) for d, spans, u in zip(out.docs, out.spans, out.uncertainty)}
        allowed = set(where.labels)
        results, outside = [], 0
        for doc in docs:
            spans, u = by_slot.get(doc.id, ([], None))
            if allowed:  # a region of a label the project lacks is an error in Label Studio's editor
                kept = [s for s in spans if s.label in allowed]
                outside += len(spans) - len(kept)
                spans = kept
            # certainty, 1 - the uncertainty /rank orders by: ascending sort = least certain first;
            # blank text has nothing to annotate, text the chunker could not read needs a person
            score = certainty(u) if u is not None else float(not doc.text.strip())
            results.append({"result": span_regions(doc, spans, from_name=where.from_name, to_name=where.to_name),
                            "score": round(score, 4), "model_version": version})
        if outside:
            with self.lock:
                self.outside_config += outside
                self._save_state()
        return results

    def rank(self) -> list[dict]:
        """The pool in annotation order (uncertain and diverse first): the documents neither a seed
        nor annotated yet."""
        from domainfm.label.spans import predict_spans

        with self.lock:
            model, seeds = self.model, list(self.seeds)
            done = set(self.annotated) | {d.id for d in seeds}
            # a task without data.doc_id is stored as ls-<project>-<task>: its text says which
            # pool document it was
            annotated_texts = {_digest(d.text) for d in self.annotated.values()}
            todo = [d for d in self.pool if d.id not in done and _digest(d.text) not in annotated_texts]
        if model is None or not todo:
            return [{"doc_id": d.id, "rank": i + 1} for i, d in enumerate(todo)]
        with self._predict_lock:
            out = predict_spans(model, todo, self.config, seeds=seeds)
        order = sorted(zip(out.docs, out.ranks, out.uncertainty), key=lambda x: x[1])
        return [{"doc_id": d.id, "rank": r, "uncertainty": round(u, 4)} for d, r, u in order]

    # ------------------------------------------------------------------ annotations

    def add_annotation(self, payload: dict) -> dict[str, Any]:
        """Store one webhook payload's annotation (``{"task", "annotation", "project"}``)."""
        return self.add_annotations([payload])

    def add_annotations(self, payloads: list[dict], *, label_config: Any = None,
                        export_of: int | None = None) -> dict[str, Any]:
        """Store webhook/``/train`` annotations and ask for one retraining in the background.

        Each payload is ``{"task", "annotation"}`` (one annotation of the task), or ``{"task"}``
        whose task carries its ``annotations`` (Label Studio's export). Every one is checked
        first: a batch with one refused or malformed annotation stores none of them. A skipped
        annotation (``was_cancelled``) is not learnt from, and takes the task out of the training
        set if it replaces the annotation stored for it.

        ``export_of``: the payloads are the complete export of this Label Studio project (every
        task of it with an annotation). A stored annotation of that project that the export no
        longer holds was deleted there, and is withdrawn as :meth:`delete_annotations` withdraws
        it; annotations stored without a project id are kept (nothing says they belong to it)."""
        default = self._labeling(label_config)
        checked = [self._annotated_document(p, i, len(payloads), default) for i, p in enumerate(payloads)]
        stored = [x for x in checked if isinstance(x, Document)]
        skipped: set = set().union(*(x for x in checked if isinstance(x, set)))
        with self.lock:
            for doc in stored:
                self.annotated[doc.id] = doc
            withdrawn = self._withdraw(skipped)
            if export_of is not None:
                # every annotation id the export holds, skips included (a skip is still there)
                present = {a["id"] for p in payloads for a in p["task"].get("annotations") or []
                           if _is_id(a.get("id"))}
                gone = {i for d in self.annotated.values() if _ls_meta(d).get("project") == export_of
                        for i in _annotation_ids(d)} - present
                withdrawn += self._withdraw(gone)
            self.skipped += len(checked) - len(stored)
            if stored or withdrawn:
                self._write_annotations()
            self._save_state()
            version = self.model_version
        if stored or withdrawn:
            self.request_training()
        return {"status": "ok", "stored": len(stored), "skipped": len(checked) - len(stored),
                "withdrawn": len(withdrawn), "model_version": version,
                "training": "scheduled" if stored or withdrawn else "not needed"}

    def delete_annotations(self, ids: list) -> dict[str, Any]:
        """``ANNOTATIONS_DELETED``: take the tasks these annotations were stored for out of the
        training set (until one of them is annotated again) and ask for a retraining."""
        wanted = {x for x in ids if isinstance(x, (int, str)) and not isinstance(x, bool)}
        with self.lock:
            removed = self._withdraw(wanted)
            if removed:
                self._write_annotations()
                self._save_state()
            version = self.model_version
        if removed:
            self.request_training()
        return {"status": "ok", "removed": len(removed), "model_version": version,
                "training": "scheduled" if removed else "not needed"}

    def _withdraw(self, ids: set) -> list[str]:
        """Take out of the training set the tasks stored under any of these annotation ids (the
        caller writes the file and asks for the retraining); their keys."""
        with self.lock:
            removed = [k for k, d in self.annotated.items() if _annotation_ids(d) & ids]
            for k in removed:
                del self.annotated[k]
            return removed

    def _write_annotations(self) -> None:
        with self.lock:
            tmp = self.annotations_path.with_suffix(".jsonl.tmp")
            with open(tmp, "w", encoding="utf-8") as fh:
                for d in self.annotated.values():
                    fh.write(json.dumps(d.to_dict(), ensure_ascii=False) + "\n")
            tmp.replace(self.annotations_path)

    def _annotated_document(self, payload: dict, index: int, n: int, default: LabelingConfig) -> Document | set:
        """The document a payload's annotation makes, or the ids of its annotations when every one
        was skipped. Errors name the field, never the text, the record id or a value."""
        from domainfm.corpus.importers.labelstudio import LabelStudioOptions, task_to_document

        which = f"annotation {index + 1}: " if n > 1 else ""
        if not isinstance(payload, dict):
            raise RecordError(f"{which}expected an object with the annotated 'task'")
        task = payload.get("task")
        project = payload.get("project")
        key = default.text_key
        if isinstance(project, dict) and isinstance(project.get("label_config"), str):  # a webhook's project
            key = (parse_schema(project["label_config"]) or default).text_key
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise RecordError(f"{which}the annotated task must be an object with a 'data' object holding "
                              f"data.{key}")
        if not isinstance(task["data"].get(key), str):
            raise RecordError(f"{which}data.{key} must be a string (the annotated text)")
        annotation = payload.get("annotation")
        if annotation is not None and not isinstance(annotation, dict):
            raise RecordError(f"{which}'annotation' must be an object (Label Studio's annotation with its "
                              "'result' list)")
        annotations = [annotation] if annotation is not None else task.get("annotations") or []
        if not isinstance(annotations, list) or not all(isinstance(a, dict) for a in annotations):
            raise RecordError(f"{which}the task's 'annotations' must be a list of annotation objects")
        if not self.check_text(task["data"][key]):
            raise self._refuse(f"{which}annotated task's text is not in the de-identified pool of this project")
        if annotations and all(a.get("was_cancelled") for a in annotations):
            return {a["id"] for a in annotations if _is_id(a.get("id"))}
        # the document is made of the submitted annotations only (the importer leaves skips out),
        # so only theirs name it: deleting or re-skipping a skip must not withdraw the task
        ids = {a["id"] for a in annotations if _is_id(a.get("id")) and not a.get("was_cancelled")}
        try:
            doc = task_to_document({**task, "annotations": annotations}, LabelStudioOptions(text_key=key))
        except RecordError as exc:  # the importer names the record id, which may be an identifier
            raise RecordError(f"{which}{exc.reason}") from None
        ls = _ls_meta(doc)
        ls["annotation_ids"] = sorted(ids, key=str)
        task_project = task.get("project")
        if isinstance(task_project, int) and not isinstance(task_project, bool):
            # a later /train export of this project withdraws the annotation once it is gone there
            ls["project"] = task_project
            if doc.id == f"ls-{ls.get('task_id')}":
                doc = replace(doc, id=f"ls-{task_project}-{ls.get('task_id')}")  # task ids repeat across projects
        return doc

    # ------------------------------------------------------------------ protocol

    def setup(self, payload: dict) -> dict[str, Any]:
        schema = payload.get("schema") or payload.get("label_config")
        if schema is not None and not isinstance(schema, str):
            raise RecordError("'schema' must be the project's labeling config, an XML string")
        parsed = parse_schema(schema)
        if parsed is not None:
            with self.lock:
                self.from_name, self.to_name, self.text_key = parsed.from_name, parsed.to_name, parsed.text_key
                project = payload.get("project")
                if isinstance(project, (str, int)) and not isinstance(project, bool):
                    self.project_configs[str(project)] = parsed
                model_labels = list(getattr(self.model, "labels", None) or [])
            shared = len(set(model_labels) & set(parsed.labels))
            warning = (parsed, tuple(model_labels))  # Label Studio calls /setup before every prediction batch
            if model_labels and parsed.labels and shared < len(model_labels) and warning not in self._warned:
                self._warned.add(warning)
                _log(f"the project's labeling config has {shared} of the model's {len(model_labels)} labels; "
                     "predictions of the others are left out (rename the labels to match, or annotate with them)")
        with self.lock:
            untrained = self.model is None and bool(self.training_docs())
        if untrained:
            self.request_training()  # Label Studio waits 3 s for /setup; a training takes longer
        return {"model_version": self.model_version}

    def versions(self) -> dict[str, Any]:
        return {"versions": [self.model_version]}

    def health(self) -> dict[str, Any]:
        return {"status": "UP", "model_class": "domainfm-spans", "model_version": self.model_version,
                "trained": self.model is not None, "training": self.training}

    def _load_state(self) -> dict[str, Any]:
        path = self.project / "backend.json"
        if not path.is_file():
            return {}
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path} cannot be read ({type(exc).__name__}); it holds the model version counter "
                              "and the privacy record: restore it, or move it away to start both anew") from None
        if not isinstance(state, dict):
            raise ConfigError(f"{path} must hold a JSON object; restore it, or move it away to start anew")
        return state

    def _save_state(self) -> None:
        with self.lock:  # requests run in threads; one writer at a time
            state = {"privacy": self.privacy, "privacy_overrides": self.overrides,
                     "model_version": self.model_version, "last_model_version": self.version,
                     "trainings": self.trainings, "training_error": self.training_error,
                     "seed_documents": len(self.seeds), "annotated_documents": len(self.annotated),
                     "pool_documents": len(self.pool), "refused_requests": self.refused,
                     "skipped_annotations": self.skipped, "spans_outside_labeling_config": self.outside_config,
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
            try:
                n = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                raise RecordError("Content-Length must be a whole number of bytes") from None
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
            _log(f"internal error on {route}: {type(exc).__name__}{_where(exc)}")
            self._send(500, {"error": f"internal error ({type(exc).__name__}); the backend's log says where"})

        def do_GET(self):
            if self.path.split("?")[0] in ("/", "/health"):
                self._send(200, backend.health())
            elif self.path.split("?")[0] == "/versions":
                self._send(200, backend.versions())
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
                    results = backend.predict(tasks, label_config=body.get("label_config"),
                                              project=body.get("project"))
                    version = results[0]["model_version"] if results else backend.model_version
                    self._send(200, {"results": results, "model_version": version})
                elif route == "/webhook":
                    action = body.get("action")
                    if action in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED"):
                        self._send(201, backend.add_annotation(body))
                    elif action == "ANNOTATIONS_CREATED":  # a bulk import: lists of annotations and their tasks
                        self._send(201, backend.add_annotations(_bulk_payloads(body)))
                    elif action == "ANNOTATIONS_DELETED":
                        deleted = body.get("annotations")
                        if not isinstance(deleted, list) or not all(isinstance(a, dict) for a in deleted):
                            raise RecordError("'annotations' must be a list of objects with the deleted 'id'")
                        self._send(201, backend.delete_annotations([a.get("id") for a in deleted]))
                    elif action == "START_TRAINING":
                        backend.request_training()
                        self._send(201, {"status": "ok", "training": "scheduled",
                                         "model_version": backend.model_version})
                    else:
                        self._send(200, {"status": "ignored", "action": action})
                elif route == "/train":
                    items = body.get("annotations", [])
                    if not isinstance(items, list) or not all(isinstance(a, dict) for a in items):
                        raise RecordError("'annotations' must be a list of annotated tasks (Label Studio's export) "
                                          "or of annotation objects, each with its 'task'")
                    # Label Studio sends its export (tasks with their "annotations"); older callers, annotations
                    payloads = [{"task": a} if "data" in a else {"task": a.get("task"), "annotation": a}
                                for a in items]
                    # a body without the list is no export (it would withdraw the whole project)
                    export = "annotations" in body and all("data" in a for a in items)
                    self._send(201, backend.add_annotations(payloads, label_config=body.get("label_config"),
                                                            export_of=_project_id(body) if export else None))
                elif route == "/rank":
                    self._send(200, {"order": backend.rank()})
                else:
                    self._send(404, {"error": "unknown route"})
            except BodyTooLarge as exc:
                self.close_connection = True  # the unread body must not be taken for the next request
                self._send(413, {"error": str(exc)})
            except PermissionError as exc:
                self._send(403, {"error": str(exc)})
            except DomainFMError as exc:  # the caller's mistake; any other ValueError is a bug (500)
                self._send(400, {"error": str(exc)})
            except Exception as exc:  # noqa: BLE001 - answer the request instead of dropping it
                self._internal_error(route, exc)

        def _not_allowed(self):
            self.close_connection = True  # a body we do not read must not be taken for the next request
            self._send(405, {"error": f"method {self.command} is not allowed; the backend's routes take GET and POST"})

        do_PUT = do_DELETE = do_PATCH = _not_allowed

    return Handler


def _project_id(body: dict) -> int | None:
    """The project id of a ``/train`` body's ``project`` (Label Studio sends ``"<id>.<created>"``),
    or None: without it the request is not taken for a project's complete export."""
    project = body.get("project")
    if isinstance(project, int) and not isinstance(project, bool):
        return project
    head = project.split(".")[0] if isinstance(project, str) else ""
    return int(head) if head.isascii() and head.isdigit() else None


def _bulk_payloads(body: dict) -> list[dict]:
    """``ANNOTATIONS_CREATED``'s ``annotation`` and ``task`` lists as one payload per annotation,
    each with the task it names (else the task at its position)."""
    annotations, tasks = body.get("annotation"), body.get("task")
    if not isinstance(annotations, list) or not isinstance(tasks, list):
        raise RecordError("ANNOTATIONS_CREATED must carry 'annotation' and 'task' lists")
    by_id = {t["id"]: t for t in tasks if isinstance(t, dict) and isinstance(t.get("id"), (int, str))}
    payloads = []
    for i, a in enumerate(annotations):
        named = a.get("task") if isinstance(a, dict) else None
        task = by_id.get(named) if isinstance(named, (int, str)) else None
        payloads.append({"task": task if task is not None else (tasks[i] if i < len(tasks) else None),
                         "annotation": a, "project": body.get("project")})
    return payloads


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
