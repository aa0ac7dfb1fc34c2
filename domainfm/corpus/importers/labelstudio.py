"""``labelstudio``: a Label Studio JSON export (``Export -> JSON``) becomes documents.

A task is ``{"id", "data": {"text": ..., "doc_id": ...}, "annotations": [{"completed_by",
"result": [...], "was_cancelled"}], "predictions": [...]}``. In a result, ``labels`` regions
(``value: {start, end, text, labels}``) become spans (one per label of the region) and
``choices`` (``value: {choices}``) become ``label`` (one choice) or ``labels`` (several, or
``choices="multi"``). Other result types (text areas, ratings...) are kept in
``meta.labelstudio.other``. A project with several ``<Choices>`` controls ("document type" and
"note quality") needs ``choices_from``, the control whose choices are the label: pooled, the two
would become one list of labels of different questions. The other controls' choices are kept in
``meta.labelstudio.other``; without ``choices_from`` such a task is rejected with the controls
named.

Several annotators of one task: each version is kept in ``meta.annotations`` and the document's
own spans/label are resolved (``resolve``: majority, union or first; see
:mod:`domainfm.corpus.agreement`); the import manifest reports their agreement. An annotation a
reviewer marked as the task's ground truth (``"ground_truth": true``) is the document's version
instead, whatever the rule: ``meta.labelstudio.resolved_by`` says ``ground_truth`` (with
``meta.labelstudio.ground_truth`` naming the annotation) or the rule used. Label Studio keeps one
per task; an export that holds several (merged projects, tasks written through the API) takes the
one updated last (``updated_at``, then the highest ``id``, then the last in the export) and counts
them in ``meta.labelstudio.ground_truth_annotations``. Skipped (``was_cancelled``) annotations and
predictions are never a version, ground truth or not; a prediction becomes the labels only with
``use_predictions`` and only for a task with no annotation at all.

Offsets: current Label Studio stores code points (Python string indices); versions before the
2021 fix stored JavaScript (UTF-16) offsets, which differ after an emoji or other astral
character. A region whose ``value.text`` does not match the text at its offsets is read as
UTF-16 offsets; if that does not match either, the task is rejected with the region named. When
an annotation's regions are found only as UTF-16 offsets (and none only as code points), all of
its regions are read so, those without a ``value.text`` too. A
``value.text`` whose runs of blanks and line breaks Label Studio collapsed matches when its words
do. Result types other than labels, choices and relations are kept with their ``value``.

Malformed tasks are rejected one by one with the field named, never guessed at: ``labels`` and
``choices`` must be lists of strings (a bare string is not read as a one-element list), a
``data.<id_key>`` must be a non-empty string or an integer, and a NaN or infinite number anywhere
in a task (Python's ``json`` reads them, JSON has none) rejects that task.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from domainfm.config import suggest
from domainfm.corpus.agreement import (Annotation, annotated_document, check_resolve, free_key,
                                       latest_per_annotator, resolve)
from domainfm.corpus.document import Document, Span, describe_type
from domainfm.corpus.importers.base import Sourced, non_finite_field, register
from domainfm.corpus.io import Rejected, not_a_file, refuse_unreadable_text, strip_bom
from domainfm.errors import ConfigError, CorpusError, RecordError

CHOICES = ("auto", "single", "multi")


@dataclass
class LabelStudioOptions:
    """Args:
    text_key: key of the text in each task's ``data``.
    id_key: key of the document id in ``data`` (``domainfm label`` exports write ``doc_id``);
        tasks without it get ``ls-<task id>``; an integer is written as a string, any other
        value rejects the task.
    resolve: how several annotators' versions become the document's spans and label when none
        is marked as ground truth: ``majority`` | ``union`` | ``first``.
    choices: ``auto`` (one choice -> ``label``, several -> ``labels``), ``single`` or ``multi``.
    choices_from: the ``from_name`` of the ``<Choices>`` control that gives the label, when a
        project has several (the others go to ``meta.labelstudio.other``).
    use_predictions: import a task that has no annotation from its latest prediction instead
        of rejecting it (marked ``meta.labelstudio.from_prediction``); a task every annotator
        skipped stays rejected.
    """

    text_key: str = "text"
    id_key: str = "doc_id"
    resolve: str = "majority"
    choices: str = "auto"
    choices_from: str | None = None
    use_predictions: bool = False

    def __post_init__(self) -> None:
        check_resolve(self.resolve)
        if self.choices not in CHOICES:
            raise ConfigError(f"The 'choices' parameter must be one of {list(CHOICES)}. Got {self.choices!r} "
                              f"instead{suggest(self.choices, CHOICES)}.")
        if self.choices_from is not None and not (isinstance(self.choices_from, str) and self.choices_from.strip()):
            raise ConfigError(f"The 'choices_from' parameter must be the name of a <Choices> control (its "
                              f"from_name). Got {self.choices_from!r} instead.")


@register("labelstudio", LabelStudioOptions, "Label Studio JSON export (span and choice annotations)")
def read_labelstudio(src: Path, options: LabelStudioOptions) -> Iterator[Document | Sourced | Rejected]:
    if not src.is_file():
        raise CorpusError(f"{src}: {not_a_file(src)} (expected a Label Studio JSON export file)")
    refuse_unreadable_text(src)
    for number, task in enumerate(_tasks(src), start=1):
        location = f"{src.name}:task {number}"
        raw = json.dumps(task, ensure_ascii=False)
        try:
            doc, annotators = _task_document(task, options, location)
            yield Sourced(doc, location, raw, annotators)
        except RecordError as err:
            yield Rejected.from_error(err, raw=raw)


def _tasks(src: Path) -> Iterator[Any]:
    """The tasks of an export, one at a time (:class:`_TaskReader`); a file that is not JSON, or
    not UTF-8, stops the import naming the error (the output is not written)."""
    reader = _TaskReader(src)
    try:
        yield from reader
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorpusError(f"{src}: not a Label Studio JSON export ({type(exc).__name__}: "
                          f"{reader.describe(exc)}); export the project as JSON (not JSON-MIN or CSV)") from None


class _TaskReader:
    """The items of a JSON list read from a file a piece at a time, each parsed as soon as it is
    whole: an export is one list, and parsed at once a project of 100,000 notes was held in
    memory several times over before its first document was written. A file that is not a list
    (one task exported on its own, or another value) is parsed whole, as it holds one value.

    Parse errors carry the messages ``json.loads`` gives for the whole file."""

    _READ = 1 << 20  # bytes per read
    _SPACE = re.compile(r"[ \t\n\r]*")  # JSON's whitespace
    _AFTER_ITEM = frozenset(", \t\n\r]")

    def __init__(self, src: Path):
        self.src = src
        self.buf, self.pos, self.eof = "", 0, False
        self.read_bytes = 0  # bytes of the file decoded so far (after its byte-order mark)
        self._offset = 0  # where the bytes of the last decode started in the file

    def __iter__(self) -> Iterator[Any]:
        decoder = json.JSONDecoder()
        with open(self.src, "rb") as self._fh:
            self._utf8 = codecs.getincrementaldecoder("utf-8")()
            self._skip_space()
            if not self.buf.startswith("[", self.pos):
                whole = json.loads(self.buf[self.pos:] + self._rest())
                if not isinstance(whole, dict):
                    raise CorpusError(f"{self.src}: expected a JSON list of tasks, got {type(whole).__name__}")
                yield whole  # one task exported on its own
                return
            self.pos += 1
            first = True
            while True:
                self._skip_space()
                if self.buf.startswith("]", self.pos):
                    self.pos += 1
                    break
                if not first:
                    if not self.buf.startswith(",", self.pos):
                        raise json.JSONDecodeError("Expecting ',' delimiter", self.buf, self.pos)
                    self.pos += 1
                    self._skip_space()
                while True:
                    try:
                        task, end = decoder.raw_decode(self.buf, self.pos)
                    except json.JSONDecodeError:
                        if self._fill():  # the item goes on past what was read
                            continue
                        raise
                    # an item not followed by a delimiter may go on in the next read (a number
                    # read as "3.25" of "3.25e10"): parsed again with more of the file
                    if self.buf[end:end + 1] in self._AFTER_ITEM or not self._fill():
                        break
                self.pos, first = end, False
                yield task
            self._skip_space()
            if self.pos < len(self.buf):
                raise json.JSONDecodeError("Extra data", self.buf, self.pos)

    def describe(self, exc: Exception) -> str:
        """The error as decoding and parsing the whole file at once words it: a decoding error's
        position counts from the file's start (after a byte-order mark), not from the read."""
        if not isinstance(exc, UnicodeDecodeError):
            return exc.msg
        start, end = self._offset + exc.start, self._offset + exc.end
        if end - start == 1:
            return f"'utf-8' codec can't decode byte 0x{exc.object[exc.start]:02x} in position {start}: {exc.reason}"
        return f"'utf-8' codec can't decode bytes in position {start}-{end - 1}: {exc.reason}"

    def _decode(self, data: bytes, final: bool = False) -> str:
        if not self.read_bytes and not self.buf:
            data = strip_bom(data)
        # bytes of an unfinished character kept from the previous read come first in the error's object
        self._offset = self.read_bytes - len(self._utf8.getstate()[0])
        text = self._utf8.decode(data, final)
        self.read_bytes += len(data)
        return text

    def _rest(self) -> str:
        return self._decode(self._fh.read(), final=True)

    def _fill(self) -> bool:
        """Read more after the unread part of the buffer (at least as much as it holds, so an item
        longer than one read takes few re-parses); False at the end of the file."""
        if self.eof:
            return False
        # the first read holds the whole byte-order mark, if any (stripped as the file's own)
        data = self._fh.read(max(self._READ, len(self.buf) - self.pos, len(codecs.BOM_UTF8)))
        self.eof = not data
        self.buf, self.pos = self.buf[self.pos:] + self._decode(data, final=self.eof), 0
        return not self.eof

    def _skip_space(self) -> None:
        while True:
            self.pos = self._SPACE.match(self.buf, self.pos).end()
            if self.pos < len(self.buf) or not self._fill():
                return


def task_to_document(task: Any, options: LabelStudioOptions | None = None, location: str | None = None) -> Document:
    """One Label Studio task (export or webhook payload) as a document.

    Raises:
        RecordError: naming the task and the region; never quoting the text.
    """
    return _task_document(task, options, location)[0]


def _task_document(task: Any, options: LabelStudioOptions | None,
                   location: str | None) -> tuple[Document, tuple | None]:
    """:func:`task_to_document`, and the annotators' versions and conflicts when there are
    several (for the import's agreement report)."""
    options = options or LabelStudioOptions()
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        # JSON-MIN, Label Studio's other JSON export, puts the task's fields at the top level
        # and drops annotators and skips: every task of it was rejected with no word of why
        hint = ("; this looks like a JSON-MIN export: export the project as JSON"
                if isinstance(task, dict) and "data" not in task and options.text_key in task else "")
        raise RecordError(f"expected a task object with a 'data' object{hint}", location=location)
    data = task["data"]
    task_id = task.get("id")
    doc_id = _doc_id(data.get(options.id_key), task_id, options.id_key, location)
    bad_number = non_finite_field(task)
    if bad_number is not None:
        raise RecordError(f"{bad_number} is NaN or infinite, which JSON cannot hold", record_id=doc_id,
                          location=location)
    text = data.get(options.text_key)
    if not isinstance(text, str):
        raise RecordError(f"data.{options.text_key} must be a string (set --text-key to the task's text field)",
                          record_id=doc_id, location=location)
    annotations = _objects(task, "annotations", doc_id, location)
    done = [a for a in annotations if not a.get("was_cancelled")]
    source = "annotations"
    if not done:
        # a task a person skipped (an unsuitable text, one they could not judge) stays out even
        # with use_predictions: the model's guess must not stand in for a human's decision
        skipped = any(a.get("was_cancelled") for a in annotations)
        predictions = _objects(task, "predictions", doc_id, location) if options.use_predictions and not skipped else []
        if predictions:
            done, source = predictions[-1:], "prediction"
        else:
            raise RecordError("task was skipped by every annotator (its prediction is not imported)" if skipped else
                              "task has no annotation (use --use-predictions to import its prediction instead)",
                              record_id=doc_id, location=location)
    versions, other = [], []
    for i, ann in enumerate(done):
        versions.append(_annotation(ann, i, text, options, doc_id, location, other, source))
    truth, marked = _ground_truth(done) if source == "annotations" else (None, 0)
    kept, superseded = latest_per_annotator(versions, keep=truth)
    if truth is None:
        spans, label, labels, conflicts = resolve(kept, options.resolve)
    else:
        # the reviewer settled the task: nothing is left unresolved, and the other versions stay
        # in meta.annotations and in the agreement
        spans, label, labels, conflicts = resolve([versions[truth]], "first")
    meta: dict[str, Any] = {k: v for k, v in data.items() if k not in (options.text_key, options.id_key)}
    ls_meta: dict[str, Any] = {"task_id": task_id}
    if source == "prediction":
        ls_meta["from_prediction"] = True
    if other:
        ls_meta["other"] = other
    if superseded:
        ls_meta["superseded_versions"] = superseded
    if truth is not None:
        ls_meta["resolved_by"] = "ground_truth"
        ann_id = done[truth].get("id")
        ls_meta["ground_truth"] = {"annotator": versions[truth].annotator,
                                   **({"annotation": ann_id} if isinstance(ann_id, (int, str))
                                      and not isinstance(ann_id, bool) else {})}
        if marked > 1:
            ls_meta["ground_truth_annotations"] = marked
    elif len(kept) > 1:
        ls_meta["resolved_by"] = options.resolve
    meta[free_key(meta, "labelstudio")] = ls_meta
    doc = annotated_document(doc_id, text, meta, kept, (spans, label, labels, conflicts), location)
    return doc, ((kept, conflicts) if len(kept) > 1 else None)


def _ground_truth(annotations: list[dict]) -> tuple[int | None, int]:
    """The index of the annotation marked as ground truth, and how many are marked. Of several,
    the one updated last: Label Studio moves the mark, so the latest is the reviewer's last word.
    Only ``true`` marks (a string is no reviewer's decision)."""
    marked = [i for i, a in enumerate(annotations) if a.get("ground_truth") is True]
    if not marked:
        return None, 0
    return max(marked, key=lambda i: (_timestamp(annotations[i].get("updated_at")),
                                      _number(annotations[i].get("id")), i)), len(marked)


_NO_TIME = datetime.min.replace(tzinfo=timezone.utc)


def _timestamp(value: Any) -> datetime:
    """An ISO 8601 time (one without a zone is read as UTC, the zone Label Studio writes); the
    earliest time when absent or unreadable, so a dated mark wins over an undated one."""
    if not isinstance(value, str):
        return _NO_TIME
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return _NO_TIME
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _number(value: Any) -> int:
    """An annotation id as a number (Label Studio writes integers; its docs show strings); -1
    when it is neither."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return -1


def _doc_id(value: Any, task_id: Any, id_key: str, location: str | None) -> str:
    """``data.<id_key>`` as the document id, else ``ls-<task id>``; a value of another type
    rejects the task rather than being replaced."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    if value is not None:
        raise RecordError(f"data.{id_key} must be a non-empty string or an integer, got {describe_type(value)}",
                          location=location)
    if isinstance(task_id, bool) or not isinstance(task_id, (int, str)) or not str(task_id).strip():
        what = "" if task_id is None else f" ('id' is {describe_type(task_id)}, expected an integer)"
        raise RecordError(f"task has neither data.{id_key} nor an 'id'{what}", location=location)
    return f"ls-{task_id}"


def _objects(task: dict, key: str, doc_id: str, location: str | None) -> list[dict]:
    """``task[key]`` as a list of objects (absent or null: empty)."""
    items = task.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        raise RecordError(f"'{key}' must be a list, got {describe_type(items)}", record_id=doc_id, location=location)
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise RecordError(f"{key} {i + 1} must be an object, got {describe_type(item)}", record_id=doc_id,
                              location=location)
    return items


def _annotator(ann: dict, index: int, source: str, doc_id: str, location: str | None) -> str:
    who = ann.get("completed_by")
    if isinstance(who, dict):
        who = who.get("id", who.get("email"))
    if who is None:
        return f"{source}-{index + 1}" if source == "prediction" else f"annotation-{ann.get('id', index + 1)}"
    if isinstance(who, bool) or not isinstance(who, (int, str)):
        raise RecordError(f"annotation {index + 1}: 'completed_by' must be a user id or a user object, got "
                          f"{describe_type(who)}", record_id=doc_id, location=location)
    return f"ls-user-{who}"


def _annotation(ann: dict, index: int, text: str, options: LabelStudioOptions, doc_id: str, location: str | None,
                other: list, source: str) -> Annotation:
    result = ann.get("result")
    if not isinstance(result, list):
        raise RecordError(f"annotation {index + 1}: 'result' must be a list", record_id=doc_id, location=location)
    spans: list[Span] = []
    choices: list[str] = []
    controls: list[str] = []  # the from_names the choices came from
    utf16 = _counts_utf16(result, text)
    for j, region in enumerate(result):
        where = f"annotation {index + 1} region {j + 1}"
        if isinstance(region, dict) and region.get("type") == "relation":
            # a relation between two regions has no 'value': kept by the ids it links
            other.append({"annotation": index + 1, "type": "relation",
                          **{k: region[k] for k in ("from_id", "to_id", "direction", "labels")
                             if isinstance(region.get(k), (str, list))}})
            continue
        if not isinstance(region, dict) or not isinstance(region.get("value"), dict):
            raise RecordError(f"{where}: expected an object with a 'value' object", record_id=doc_id, location=location)
        kind, value = region.get("type"), region["value"]
        if kind == "labels" or (kind is None and "labels" in value):
            start, end = _offsets(value, text, where, doc_id, location, utf16)
            for lab in _strings(value, "labels", where, doc_id, location):
                attrs = {"ls_id": region["id"]} if isinstance(region.get("id"), str) else {}
                score = region.get("score")
                if isinstance(score, (int, float)) and not isinstance(score, bool):
                    attrs["score"] = float(score)
                spans.append(Span(start, end, lab, attrs))
        elif (kind == "choices" or (kind is None and "choices" in value)) and (
                options.choices_from is None or region.get("from_name") == options.choices_from):
            for c in _strings(value, "choices", where, doc_id, location):
                if c not in choices:
                    choices.append(c)
            if str(region.get("from_name")) not in controls:
                controls.append(str(region.get("from_name")))
        else:
            # the region's value too (a text area's words, a rating, a taxonomy path): the
            # annotator's work, which type and control name alone did not keep
            other.append({"annotation": index + 1, "type": kind, "from_name": region.get("from_name"),
                          "value": value})
    if len(controls) > 1:
        raise RecordError(f"annotation {index + 1}: choices from {len(controls)} controls ({', '.join(controls)}); "
                          "pass --choices-from CONTROL to say which one is the document label (the others are "
                          "kept in meta.labelstudio.other)", record_id=doc_id, location=location)
    label = labels = None
    if options.choices == "multi" or (options.choices == "auto" and len(choices) > 1):
        labels = choices if choices or options.choices == "multi" else None
    elif choices:
        if len(choices) > 1:
            raise RecordError(f"annotation {index + 1}: {len(choices)} choices but --choices single",
                              record_id=doc_id, location=location)
        label = choices[0]
    return Annotation(_annotator(ann, index, source, doc_id, location), spans, label, labels)


def _strings(value: dict, key: str, where: str, doc_id: str, location: str | None) -> list[str]:
    """``value[key]`` as a list of non-empty strings. A bare string is refused rather than read
    as a list of its characters or guessed to be a one-element list."""
    items = value.get(key)
    if not isinstance(items, list) or not all(isinstance(x, str) and x for x in items):
        got = describe_type(items) if not isinstance(items, list) else "a list with other values"
        raise RecordError(f"{where}: '{key}' must be a list of non-empty strings, got {got}", record_id=doc_id,
                          location=location)
    return items


def _counts_utf16(result: Any, text: str) -> bool:
    """Whether one annotation's regions count UTF-16 units: some region's text is found only so,
    none only at its code points. Decided once for the annotation (one Label Studio version made
    it), since a region whose text is found both ways (a word repeated as many characters on as
    there are astral characters before it) would otherwise stay on the wrong occurrence, and a
    region without its text could not tell at all."""
    found_only = set()
    for region in result if isinstance(result, list) else ():
        value = region.get("value") if isinstance(region, dict) else None
        if not isinstance(value, dict) or not isinstance(value.get("text"), str):
            continue
        start, end = value.get("start"), value.get("end")
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in (start, end)):
            continue  # rejected with its reason by _offsets
        at_codepoints = _found(text, (start, end), value["text"])
        as_utf16 = _found(text, utf16_to_codepoints(text, start, end), value["text"])
        if at_codepoints != as_utf16:
            found_only.add("utf16" if as_utf16 else "codepoints")
    return found_only == {"utf16"}


def _found(text: str, at: tuple[int, int] | None, expected: str) -> bool:
    """Whether ``expected`` is the text at ``at``, or its words are (see :func:`_offsets`)."""
    if at is None:
        return False
    return text[at[0]:at[1]] == expected or (
        0 <= at[0] < at[1] <= len(text) and bool(expected.split()) and text[at[0]:at[1]].split() == expected.split())


def _offsets(value: dict, text: str, where: str, doc_id: str, location: str | None,
             utf16: bool = False) -> tuple[int, int]:
    start, end = value.get("start"), value.get("end")
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in (start, end)):
        raise RecordError(f"{where}: 'start'/'end' must be integers (a Text region; HyperText regions "
                          "with XPath offsets are not supported)", record_id=doc_id, location=location)
    expected = value.get("text")
    converted = utf16_to_codepoints(text, start, end)
    # the annotation's other regions said how it counts (_counts_utf16); that way is tried first
    order = (converted, (start, end)) if utf16 else ((start, end), converted)
    if expected is None:
        return order[0] if order[0] is not None else (start, end)
    for at in order:
        if at is not None and text[at[0]:at[1]] == expected:
            return at
    # Label Studio may write a region's text with runs of blanks and line breaks collapsed
    # (HumanSignal/label-studio#3078) while its offsets are right: the same words, in order
    words = expected.split() if isinstance(expected, str) else None
    for at in order:
        if words and at is not None and 0 <= at[0] < at[1] <= len(text) and text[at[0]:at[1]].split() == words:
            return at
    raise RecordError(f"{where} [{start}:{end}]: the region's text differs from the task text at its offsets "
                      "(as code points and as UTF-16 units)", record_id=doc_id, location=location)


def utf16_to_codepoints(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Code-point offsets of a ``[start, end)`` range given in UTF-16 code units (JavaScript string
    indices); None when an offset falls inside a surrogate pair or past the text."""
    units = 0
    out = {}
    for i, ch in enumerate(text):
        for target in (start, end):
            if units == target:
                out.setdefault(target, i)
        units += 2 if ord(ch) > 0xFFFF else 1
    for target in (start, end):
        if units == target:
            out.setdefault(target, len(text))
    if start not in out or end not in out:
        return None
    return out[start], out[end]


def codepoints_to_utf16(text: str, offset: int) -> int:
    """UTF-16 code units before code point ``offset`` (for tools that count like JavaScript)."""
    return offset + sum(1 for ch in text[:offset] if ord(ch) > 0xFFFF)
