"""``tab``: the Text Anonymization Benchmark (ECHR judgments).

Two layouts are read: the original TAB release (a JSON list of documents whose
``annotations`` hold one ``entity_mentions`` list per annotator) and the JSONL layout with
``metadata``/``entities`` per line. Span labels are the ``entity_type``; the masking decision
(``identifier_type``: DIRECT / QUASI / NO_MASK) and ids are kept in ``attrs``.

A record with a field of the wrong type is rejected with the field named: offsets must be JSON
integers (``true``, ``"32"`` or ``14.9`` are refused, not converted), ``entity_type`` a string,
``metadata``/``provenance`` and each annotator's entry objects, ``entity_mentions`` a list, and a
NaN or infinite number (which Python's ``json`` reads in the original layout) rejects its record.
An integer id is its decimal string, as in every stage. A mention listed twice, or two of one
type that cross, are merged into their union (counted as repaired) rather than rejecting the
judgment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from domainfm.corpus.document import (Document, Span, check_span_overlaps, describe_type, id_string,
                                      merge_crossing_spans)
from domainfm.corpus.importers.base import non_finite_field, register
from domainfm.corpus.io import Rejected, iter_jsonl_objects, not_a_file, refuse_unreadable_text, strip_bom
from domainfm.errors import CorpusError, RecordError

_SPAN_ATTRS = ("identifier_type", "entity_id", "confidential_status", "edit_type")


@dataclass
class TabOptions:
    """Args:
    annotator: original TAB layout only: whose annotations to take. ``first`` takes the first
        annotator of each document; ``all`` writes one document per annotator
        (id ``<doc_id>#<annotator>``); any other value names one annotator.
    """

    annotator: str = "first"


@register("tab", TabOptions, "Text Anonymization Benchmark JSON or JSONL (ECHR judgments)")
def read_tab(src: Path, options: TabOptions) -> Iterator[Document | Rejected]:
    if not src.is_file():
        raise CorpusError(f"{src}: {not_a_file(src)} (expected TAB .json or .jsonl)")
    refuse_unreadable_text(src)
    with open(src, "rb") as fh:
        first = strip_bom(fh.read(64)).lstrip()
    if first.startswith(b"["):
        yield from _read_original(src, options)
        return
    if first.startswith(b"{") and _pretty_printed_object(src):
        raise CorpusError(f"{src.name}: a JSON object written over several lines: TAB files are a JSON list of "
                          "documents ('[{...}, ...]') or JSONL, one document per line")
    for number, obj in iter_jsonl_objects(src):
        if isinstance(obj, Rejected):
            yield obj
            continue
        location = f"{src.name}:{number}"
        try:
            yield _from_jsonl_record(obj, location)
        except RecordError as err:
            yield Rejected.from_error(err, raw=json.dumps(obj, ensure_ascii=False))


def _pretty_printed_object(src: Path) -> bool:
    """Whether the file is one JSON object over several lines (not JSONL, where the first line
    holds a whole value; a broken first line of a JSONL file is rejected alone, not the file)."""
    with open(src, "rb") as fh:
        line = strip_bom(fh.readline()).strip()
    try:
        json.loads(line)
        return False
    except (UnicodeDecodeError, ValueError):
        pass
    try:
        return isinstance(json.loads(strip_bom(src.read_bytes())), dict)
    except (UnicodeDecodeError, ValueError):
        return False


def _from_jsonl_record(obj: Any, location: str) -> Document:
    if not isinstance(obj, dict):
        raise RecordError(f"expected a JSON object, got {type(obj).__name__}", location=location)
    metadata = _object(obj, "metadata", "metadata", location)
    provenance = _object(metadata, "provenance", "metadata.provenance", location)
    candidates = (metadata.get("data_id"), provenance.get("doc_id"), obj.get("doc_id"))
    doc_id = next((value for value in map(id_string, candidates) if value), None)
    if not isinstance(doc_id, str) or not doc_id:
        raise RecordError("no string or integer 'metadata.data_id', 'metadata.provenance.doc_id' or 'doc_id' to "
                          "use as id", location=location)
    text = obj.get("text")
    if not isinstance(text, str):
        raise RecordError("field 'text' must be a string", record_id=doc_id, location=location)
    mentions = obj.get("entities")
    if not isinstance(mentions, list):
        raise RecordError("field 'entities' must be a list", record_id=doc_id, location=location)
    meta = {k: v for k, v in provenance.items() if k != "task"}
    meta.update({k: v for k, v in metadata.items() if k not in ("provenance",)})
    meta["source"] = "tab"
    return _document(doc_id, text, mentions, meta, location)


def _object(parent: dict, key: str, name: str, location: str) -> dict:
    """``parent[key]`` as an object; absent or null is empty, any other type rejects the record."""
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecordError(f"'{name}' must be an object, got {describe_type(value)}", location=location)
    return value


def _read_original(src: Path, options: TabOptions) -> Iterator[Document | Rejected]:
    try:
        records = json.loads(strip_bom(src.read_bytes()).decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{src.name}: not a valid TAB JSON file (not UTF-8 at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise CorpusError(f"{src.name}:{exc.lineno}: not a valid TAB JSON file ({exc.msg} at column {exc.colno})") \
            from None
    for index, obj in enumerate(records):
        location = f"{src.name}[{index}]"
        raw = json.dumps(obj, ensure_ascii=False)
        doc_id = id_string(obj.get("doc_id")) if isinstance(obj, dict) else None
        try:
            if not isinstance(obj, dict) or not isinstance(doc_id, str):
                raise RecordError("expected an object with a string or integer 'doc_id'", location=location)
            bad_number = non_finite_field(obj)
            if bad_number is not None:
                raise RecordError(f"{bad_number} is NaN or infinite, which JSON cannot hold", record_id=doc_id,
                                  location=location)
            annotations = obj.get("annotations") or {}
            if not isinstance(annotations, dict) or not annotations:
                raise RecordError("no 'annotations'", record_id=doc_id, location=location)
            if options.annotator == "first":
                chosen = [next(iter(annotations))]
            elif options.annotator == "all":
                chosen = list(annotations)
            elif options.annotator in annotations:
                chosen = [options.annotator]
            else:
                raise RecordError(
                    f"no annotator {options.annotator!r} (has {sorted(annotations)})",
                    record_id=doc_id, location=location,
                )
        except RecordError as err:
            yield Rejected.from_error(err, raw=raw)
            continue
        base_meta = {k: v for k, v in obj.items() if k not in ("text", "annotations", "doc_id", "task")}
        for name in chosen:
            out_id = f"{doc_id}#{name}" if options.annotator == "all" else doc_id
            try:  # one annotator's bad entry rejects that version only (--annotator all)
                entry = annotations[name]
                if not isinstance(entry, dict):
                    raise RecordError(f"annotations.{name} must be an object with an 'entity_mentions' list, got "
                                      f"{describe_type(entry)}", record_id=out_id, location=location)
                mentions = entry.get("entity_mentions")
                if not isinstance(mentions, list):
                    raise RecordError(f"annotations.{name}.entity_mentions must be a list, got "
                                      f"{describe_type(mentions)}", record_id=out_id, location=location)
                meta = {**base_meta, "annotator": name, "source": "tab", "doc_id": doc_id}
                yield _document(out_id, obj.get("text"), mentions, meta, location)
            except RecordError as err:
                yield Rejected.from_error(err, raw=raw)


def _document(doc_id: str, text: Any, mentions: list, meta: dict, location: str) -> Document:
    if not isinstance(text, str):
        raise RecordError("field 'text' must be a string", record_id=doc_id, location=location)
    spans = []
    for i, m in enumerate(mentions):
        fields = m if isinstance(m, dict) else {}
        start, end, kind = fields.get("start_offset"), fields.get("end_offset"), fields.get("entity_type")
        # bool is an int in Python, and int() would turn "32" or 14.9 into an offset: refuse both
        offsets_ok = all(isinstance(x, int) and not isinstance(x, bool) for x in (start, end))
        if not offsets_ok or not isinstance(kind, str) or not kind:
            raise RecordError(
                f"entity {i} needs integer 'start_offset'/'end_offset' and a string 'entity_type'",
                record_id=doc_id, location=location,
            )
        if not 0 <= start < end <= len(text):
            # before the text check: a slice past the end or from a negative offset is some
            # other text, and "differs" sent the user looking for a wrong offset base
            raise RecordError(f"entity {i} ({kind} [{start}:{end}]) lies outside the text (length {len(text)})",
                              record_id=doc_id, location=location)
        if "span_text" in m and text[start:end] != m["span_text"]:
            raise RecordError(
                f"entity {i} ({kind} [{start}:{end}]): 'span_text' differs from the text at those offsets",
                record_id=doc_id, location=location,
            )
        attrs = {k: m[k] for k in _SPAN_ATTRS if k in m}
        mention_id = m.get("span_id") or m.get("entity_mention_id")
        if mention_id:
            attrs["mention_id"] = mention_id
        spans.append(Span(start, end, kind, attrs))
    doc = Document(doc_id, text, meta, spans=_merged_if_needed(spans))
    doc.validate(location=location)
    return doc


def _merged_if_needed(spans: list[Span]) -> list[Span]:
    """A mention listed twice, or two of one type that cross, merged into their union (counted
    as repaired, each mention's attrs kept in ``merged_attrs``) instead of rejecting the
    judgment. Spans that need no repair keep the file's order."""
    try:
        check_span_overlaps(spans, RecordError)
    except RecordError:
        return merge_crossing_spans(spans)
    return spans
