"""``prodigy``: Prodigy annotations (``prodigy db-out DATASET > FILE.jsonl``) become documents.

Each line is one annotator's answer to one task: ``{"text", "spans": [{start, end, label}],
"answer": "accept" | "reject" | "ignore", "_input_hash", "_annotator_id", "meta": {...}}``.
Spans become spans (Prodigy offsets are Python string indices, as in domainfm); a choice task's
``accept`` list of option ids becomes ``label`` (one option) or ``labels`` (several, or
``choice_style: multiple``): the id is the label, as Prodigy's recipes make it, and an option's
``text`` what the annotator saw, kept in ``meta.prodigy.option_texts`` (id -> text); a binary
classification task's accepted ``label`` becomes ``label``.

Lines for the same input (same ``meta.id``, else the same ``_input_hash``) from several
annotators are one document: each version is kept in ``meta.annotations``, the document's own
spans/label are resolved (``resolve``), and the import manifest reports agreement. One
annotator's accepted answers to different tasks of one input (``ner.teach`` and
``textcat.teach`` ask one span or label per task: another ``_task_hash``) are one version with
all of them; the same task answered again replaces the earlier answer. ``reject``
and ``ignore`` answers carry no annotation: they are counted in ``meta.prodigy``, and an input
that no annotator accepted is rejected with that reason. Fields Prodigy does not define (a
``rel.manual`` answer's ``relations``, a custom field) are kept in ``meta.prodigy.fields`` when
every line of the input has them alike, else with each line in ``meta.prodigy.fields_by_line``
(``line``, ``answer``, ``annotator``).

A line whose fields have the wrong type (``answer`` not one of the three words, ``meta`` or
``config`` not an object, an ``accept`` option id that is not a string or integer, a ``meta.id``
that is not a string or integer) is rejected with the field named; only integers are written
as strings, nothing else is turned into text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from domainfm.corpus.agreement import (Annotation, annotated_document, check_resolve, free_key,
                                       latest_per_annotator, resolve)
from domainfm.corpus.document import Document, Span, describe_type
from domainfm.corpus.importers.base import Sourced, register
from domainfm.corpus.io import Rejected, iter_jsonl_lines
from domainfm.errors import RecordError

#: the ``meta`` key marking a task as a model's suggestion (``domainfm label --export prodigy``
#: writes it; a line with it that nobody answered is refused unless ``use_predictions``)
SUGGESTED_BY = "suggested_by"

_PRODIGY_KEYS = ("text", "spans", "tokens", "answer", "accept", "options", "label", "meta", "config",
                 "_input_hash", "_task_hash", "_annotator_id", "_session_id", "_view_id", "_timestamp",
                 "_is_binary", "html")


@dataclass
class ProdigyOptions:
    """Args:
    id_key: key in each task's ``meta`` holding the document id (``domainfm label`` exports
        write ``id``); inputs without it get ``prodigy-<_input_hash>``. An integer is written as
        a string; any other value rejects the line.
    resolve: how several annotators' versions become the document's spans and label:
        ``majority`` | ``union`` | ``first``.
    use_predictions: import a line that ``domainfm label`` exported as a suggestion
        (``meta.suggested_by``) and nobody answered (no ``answer``) as if accepted (marked
        ``meta.prodigy.from_prediction``); without it such a line is rejected, so a model's
        suggestions never become gold labels unseen. A line without ``answer`` from anywhere
        else is read as accepted, as hand-made and converted Prodigy files are written.
    """

    id_key: str = "id"
    resolve: str = "majority"
    use_predictions: bool = False

    def __post_init__(self) -> None:
        check_resolve(self.resolve)


@register("prodigy", ProdigyOptions, "Prodigy JSONL (db-out): span, choice and binary annotations")
def read_prodigy(src: Path, options: ProdigyOptions) -> Iterator[Document | Sourced | Rejected]:
    read: list[tuple[int, str, str, dict, str | None]] = []
    for number, line, obj in iter_jsonl_lines(src):
        if isinstance(obj, Rejected):
            yield obj
            continue
        location = f"{src.name}:{number}"
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            yield Rejected.from_error(RecordError("expected a Prodigy task object with a string 'text'",
                                                  location=location), raw=line)
            continue
        try:
            read.append((number, location, line, obj, _doc_id(obj, options.id_key, location)))
        except RecordError as err:
            yield Rejected.from_error(err, raw=line)
    # A line without an id is '<file>-<line>', unless a line names that id itself: two unrelated
    # inputs would otherwise be grouped as one document (or rejected as one with two texts).
    taken = {doc_id for *_, doc_id in read if doc_id is not None}
    groups: dict[str, list[tuple[str, str, dict]]] = {}
    for number, location, line, obj, doc_id in read:
        if doc_id is None:
            doc_id = f"{src.stem}-{number}"
            suffix = 1
            while doc_id in taken:
                doc_id, suffix = f"{src.stem}-{number}-{suffix}", suffix + 1
            taken.add(doc_id)
        groups.setdefault(doc_id, []).append((location, line, obj))
    for doc_id, lines in groups.items():
        location = lines[0][0] if len(lines) == 1 else f"{lines[0][0]} (+{len(lines) - 1} more lines)"
        raw = "\n".join(line for _, line, _ in lines)
        try:
            doc, annotators = _document(doc_id, lines, options, location)
            yield Sourced(doc, location, raw, annotators)
        except RecordError as err:
            yield Rejected.from_error(err, raw=raw)


def _document(doc_id: str, lines: list[tuple[str, str, dict]], options: ProdigyOptions,
              location: str) -> tuple[Document, tuple | None]:
    """The input's document, and its annotators' versions and conflicts when there are several
    (for the import's agreement report)."""
    text = lines[0][2]["text"]
    versions: list[tuple[Annotation, Any]] = []  # with the line's _task_hash
    answers = {"accept": 0, "reject": 0, "ignore": 0}
    unnamed: dict[str, int] = {}  # accepted answers to each task by annotators Prodigy did not name
    unanswered, from_prediction = 0, False  # domainfm's suggestions that no one answered
    for i, (line_location, _, obj) in enumerate(lines):
        where = f"{line_location}: " if len(lines) > 1 else ""  # which line of the group, when several
        if obj["text"] != text:
            raise RecordError(f"{where}same id as {lines[0][0]} but a different text", record_id=doc_id,
                              location=location)
        if "answer" not in obj and _suggested(obj):
            if not options.use_predictions:
                unanswered += 1
                continue
            from_prediction = True
        answer = obj.get("answer", "accept")
        if not isinstance(answer, str) or answer not in answers:
            raise RecordError(f"{where}'answer' must be accept, reject or ignore", record_id=doc_id,
                              location=location)
        answers[answer] += 1
        if answer != "accept":
            continue
        task_hash = obj.get("_task_hash")
        # without an annotator id, the k-th answer to one task is the k-th annotator's; a binary
        # recipe's answers to different tasks of the input are one annotator's (not several
        # who each marked one span and so out-vote each other)
        if task_hash is None:
            unnamed_as = f"annotator-{i + 1}"
        else:
            unnamed[str(task_hash)] = unnamed.get(str(task_hash), 0) + 1
            unnamed_as = f"annotator-{unnamed[str(task_hash)]}"
        versions.append((_annotation(obj, unnamed_as, where, doc_id, location), task_hash))
    if not versions and unanswered and not any(answers.values()):
        raise RecordError("a domainfm suggestion that no annotator answered (no 'answer'): annotate it in Prodigy "
                          "first, or use --use-predictions to import the suggestion itself", record_id=doc_id,
                          location=location)
    if not versions:
        raise RecordError(f"no annotator accepted this input ({answers['reject']} reject, {answers['ignore']} ignore)",
                          record_id=doc_id, location=location)
    versions, superseded = _per_annotator(versions)
    spans, label, labels, conflicts = resolve(versions, options.resolve)
    first = lines[0][2]
    meta = {k: v for k, v in (first.get("meta") or {}).items() if k != options.id_key}
    record = {"answers": answers, **({"input_hash": first["_input_hash"]} if "_input_hash" in first else {})}
    record.update(_option_texts(lines))
    record.update(_fields(lines))
    if superseded:
        record["superseded_versions"] = superseded
    if from_prediction:
        record["from_prediction"] = True
    if unanswered:
        record["unanswered_suggestions"] = unanswered
    meta[free_key(meta, "prodigy")] = record
    doc = annotated_document(doc_id, text, meta, versions, (spans, label, labels, conflicts), location)
    return doc, ((versions, conflicts) if len(versions) > 1 else None)


def _fields(lines: list[tuple[str, str, dict]]) -> dict[str, Any]:
    """The fields of the input's lines that Prodigy does not define (a ``rel.manual`` answer's
    ``relations``, a custom field): ``fields`` holds those every line has alike; one that
    differs between lines stays with each line (``fields_by_line``), since it is an answer's
    (one annotator's relations), and taken from the first line alone it was put on the whole
    input while every other annotator's, and a resubmitted answer's, was lost."""
    extras = [{k: v for k, v in obj.items() if k not in _PRODIGY_KEYS} for _, _, obj in lines]
    shared = {k: v for k, v in extras[0].items() if all(k in e and e[k] == v for e in extras[1:])}
    by_line = []
    for (location, _, obj), extra in zip(lines, extras):
        own = {k: v for k, v in extra.items() if k not in shared}
        if own:
            who = obj.get("_annotator_id") or obj.get("_session_id")
            by_line.append({"line": location, **({"answer": obj["answer"]} if "answer" in obj else {}),
                            **({"annotator": who} if who is not None else {}), "fields": own})
    return {**({"fields": shared} if shared else {}), **({"fields_by_line": by_line} if by_line else {})}


def _option_texts(lines: list[tuple[str, str, dict]]) -> dict[str, Any]:
    """What each choice option looked like to the annotators: ``option_texts`` maps an option's
    id, written as a label is, to its ``text`` (the label stays the id, which round trips
    compare). When the input's lines show different options or texts (an option reworded
    between sessions), each line keeps its own in ``option_texts_by_line``."""
    shown = []
    for location, _, obj in lines:
        options = obj.get("options")
        texts = {str(o["id"]): o["text"] for o in (options if isinstance(options, list) else [])
                 if isinstance(o, dict) and _option_id(o.get("id")) and isinstance(o.get("text"), str)}
        if texts:
            shown.append({"line": location, "option_texts": texts})
    if not shown:
        return {}
    if all(s["option_texts"] == shown[0]["option_texts"] for s in shown[1:]):
        return {"option_texts": shown[0]["option_texts"]}
    return {"option_texts_by_line": shown}


def _option_id(value: Any) -> bool:
    """Whether ``value`` is a Prodigy option id: a non-blank string or an integer."""
    return isinstance(value, (str, int)) and not isinstance(value, bool) and bool(str(value).strip())


def _per_annotator(answers: list[tuple[Annotation, Any]]) -> tuple[list[Annotation], int]:
    """One version per annotator, and how many earlier answers were replaced. Prodigy's binary
    recipes (``ner.teach``, ``textcat.teach``) ask one span or label per task, so one annotator
    accepts several tasks of one input (same ``_input_hash``, another ``_task_hash``): those are
    answers to different questions and are combined, not read as a resubmission that keeps only
    the last (which dropped every earlier accepted span). The same task answered again (same or
    no ``_task_hash``) is a resubmission: the later answer counts."""
    latest, superseded = latest_per_annotator([ann for ann, _ in answers],
                                              [None if task is None else str(task) for _, task in answers])
    parts: dict[str, list[Annotation]] = {}
    for ann in latest:
        parts.setdefault(ann.annotator, []).append(ann)
    return [_combined(group) for group in parts.values()], superseded


def _combined(parts: list[Annotation]) -> Annotation:
    """One annotator's accepted answers to several tasks of one input as one version: every
    span, and the accepted labels (one label stays ``label``; several become ``labels``)."""
    if len(parts) == 1:
        return parts[0]
    spans = [s for p in parts for s in p.spans]
    chosen: list[str] = []
    for p in parts:
        for lab in ([p.label] if p.label is not None else []) + list(p.labels or []):
            if lab not in chosen:
                chosen.append(lab)
    several = len(chosen) > 1 or any(p.labels is not None for p in parts)
    return Annotation(parts[0].annotator, spans, None if several or not chosen else chosen[0],
                      chosen if several else None)


def _suggested(obj: dict) -> bool:
    """Whether the line is a suggestion ``domainfm label`` exported (``meta.suggested_by``)."""
    meta = obj.get("meta")
    return isinstance(meta, dict) and meta.get(SUGGESTED_BY) == "domainfm"


def _doc_id(obj: dict, id_key: str, location: str) -> str | None:
    """The line's document id: ``meta.<id_key>``, else ``prodigy-<_input_hash>``, else None (the
    caller numbers it); a value of another type rejects the line rather than being replaced or
    turned into text."""
    meta = obj.get("meta")
    if meta is not None and not isinstance(meta, dict):
        raise RecordError(f"'meta' must be an object, got {describe_type(meta)}", location=location)
    for field, value in ((f"meta.{id_key}", (meta or {}).get(id_key)), ("_input_hash", obj.get("_input_hash"))):
        if value is None:
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            raise RecordError(f"'{field}' must be a non-empty string or an integer, got {describe_type(value)}",
                              location=location)
        return value if field != "_input_hash" else f"prodigy-{value}"
    return None


def _annotation(obj: dict, unnamed_as: str, where: str, doc_id: str, location: str) -> Annotation:
    """One accepted line as an annotator's version (``unnamed_as`` when the line names none);
    ``where`` prefixes messages with the line."""
    who = obj.get("_annotator_id") or obj.get("_session_id") or unnamed_as
    if isinstance(who, bool) or not isinstance(who, (str, int)):
        raise RecordError(f"{where}'_annotator_id'/'_session_id' must be a string or an integer, got "
                          f"{describe_type(who)}", record_id=doc_id, location=location)
    spans = []
    raw_spans = obj.get("spans") or []
    if not isinstance(raw_spans, list):
        raise RecordError(f"{where}'spans' must be a list", record_id=doc_id, location=location)
    text = obj["text"]
    for j, s in enumerate(raw_spans):
        if not isinstance(s, dict) or not all(isinstance(s.get(k), int) and not isinstance(s.get(k), bool)
                                              for k in ("start", "end")) or not isinstance(s.get("label"), str):
            raise RecordError(f"{where}span {j} needs integer 'start'/'end' and a string 'label'",
                              record_id=doc_id, location=location)
        if not 0 <= s["start"] < s["end"] <= len(text):
            raise RecordError(f"{where}span {j} [{s['start']}:{s['end']}] lies outside the text",
                              record_id=doc_id, location=location)
        if isinstance(s.get("text"), str) and s["text"] != text[s["start"]:s["end"]]:
            raise RecordError(f"{where}span {j} [{s['start']}:{s['end']}]: its 'text' differs from the text at "
                              "its offsets", record_id=doc_id, location=location)
        attrs: dict[str, Any] = {}
        if isinstance(s.get("score"), (int, float)) and not isinstance(s["score"], bool):
            attrs["score"] = float(s["score"])
        spans.append(Span(s["start"], s["end"], s["label"], attrs))
    label = labels = None
    config = obj.get("config")
    if config is not None and not isinstance(config, dict):
        raise RecordError(f"{where}'config' must be an object, got {describe_type(config)}", record_id=doc_id,
                          location=location)
    if obj.get("label") is not None and not isinstance(obj["label"], str):
        raise RecordError(f"{where}'label' must be a string, got {describe_type(obj['label'])}", record_id=doc_id,
                          location=location)
    if "options" in obj and obj.get("accept") is not None:
        accepted = obj["accept"]
        if not isinstance(accepted, list) or not all(_option_id(c) for c in accepted):
            got = describe_type(accepted) if not isinstance(accepted, list) else "a list with other values"
            raise RecordError(f"{where}'accept' must be a list of option ids (strings or integers), got {got}",
                              record_id=doc_id, location=location)
        chosen = [str(c) for c in accepted]
        multiple = (config or {}).get("choice_style") == "multiple"
        if multiple or len(chosen) > 1:
            labels = chosen
        elif chosen:
            label = chosen[0]
    elif isinstance(obj.get("label"), str) and not raw_spans:
        label = obj["label"]  # binary classification: the accepted label holds
    return Annotation(str(who), spans, label, labels)
