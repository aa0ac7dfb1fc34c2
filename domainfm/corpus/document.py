"""The one document model every stage reads and writes.

Offsets are Python string indices (Unicode code points), end-exclusive: ``text[start:end]`` is
the span's text. That is what Python users slice with; byte or UTF-16 offsets from other tools
are converted by the importers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from domainfm.errors import RecordError

DOCUMENT_KEYS = ("id", "text", "meta", "label", "labels", "spans", "phi_spans")
SPAN_KEYS = ("start", "end", "label", "attrs")


@dataclass(frozen=True, slots=True)
class Span:
    """A labelled character range ``[start, end)`` of a document's text.

    Args:
        start: first character, 0-based.
        end: one past the last character.
        label: the span's type, e.g. ``"PATIENT"`` or ``"B-Disease"``'s ``"Disease"``.
        attrs: free-form JSON-serialisable attributes (``identifier_type``, ``brat_id``...).
    """

    start: int
    end: int
    label: str
    attrs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "label": self.label, "attrs": dict(self.attrs)}

    @property
    def key(self) -> tuple[int, int, str]:
        return (self.start, self.end, self.label)


@dataclass(slots=True)
class Document:
    """A clinical note, contract, judgment... with its labels and annotated spans.

    Example:
        >>> doc = Document(id="n1", text="Seen by Dr. Lee.", spans=[Span(12, 15, "DOCTOR")])
        >>> doc.span_text(doc.spans[0])
        'Lee'
    """

    id: str
    text: str
    meta: dict[str, Any] = field(default_factory=dict)
    label: str | None = None
    labels: list[str] | None = None
    spans: list[Span] = field(default_factory=list)
    # Written by ``domainfm deid``: what was replaced, as ``{start, end, label, score}`` in the
    # coordinates of the text *before* de-identification (no PHI text). Kept so later stages and
    # audits can see a document was de-identified; ``None`` for documents that never were.
    phi_spans: list[dict[str, Any]] | None = None

    def span_text(self, span: Span) -> str:
        return self.text[span.start : span.end]

    def to_dict(self) -> dict[str, Any]:
        record = {
            "id": self.id,
            "text": self.text,
            "meta": self.meta,
            "label": self.label,
            "labels": self.labels,
            "spans": [s.to_dict() for s in self.spans],
        }
        if self.phi_spans is not None:
            record["phi_spans"] = self.phi_spans
        return record

    @classmethod
    def from_dict(cls, record: Any, *, location: str | None = None) -> Document:
        """Build and validate a document from its JSONL form.

        Raises:
            RecordError: naming the field and what was expected; never quoting the text.
        """
        if not isinstance(record, dict):
            raise RecordError(
                f"expected a JSON object per line, got {type(record).__name__}", location=location
            )
        raw_id = id_string(record.get("id"))
        record_id = raw_id if isinstance(raw_id, str) else None

        def fail(reason: str) -> RecordError:
            return RecordError(reason, record_id=record_id, location=location)

        unknown = sorted(set(record) - set(DOCUMENT_KEYS))
        if unknown:
            raise fail(
                f"{unknown_keys(unknown, DOCUMENT_KEYS)}; a document has {list(DOCUMENT_KEYS)} "
                "(put extra information under 'meta', or import with 'domainfm import jsonl')"
            )
        if not isinstance(raw_id, str) or not raw_id.strip():
            raise fail(f"field 'id' must be a non-empty string, got {describe_type(raw_id)}")
        text = record.get("text")
        if not isinstance(text, str):
            raise fail(f"field 'text' must be a string, got {describe_type(text)}")
        meta = record.get("meta")
        meta = {} if meta is None else meta
        if not isinstance(meta, dict):
            raise fail(f"field 'meta' must be an object, got {describe_type(meta)}")
        label = record.get("label")
        if label is not None and not isinstance(label, str):
            raise fail(f"field 'label' must be a string or null, got {describe_type(label)}")
        labels = record.get("labels")
        if labels is not None and (
            not isinstance(labels, list) or not all(isinstance(x, str) for x in labels)
        ):
            raise fail("field 'labels' must be a list of strings or null")
        raw_spans = record.get("spans")
        raw_spans = [] if raw_spans is None else raw_spans
        if not isinstance(raw_spans, list):
            raise fail(f"field 'spans' must be a list, got {describe_type(raw_spans)}")
        spans = []
        for i, raw in enumerate(raw_spans):
            spans.append(_span_from_dict(raw, i, fail))
        phi_spans = record.get("phi_spans")
        if phi_spans is not None:
            _check_phi_spans(phi_spans, fail)
        doc = cls(id=raw_id, text=text, meta=meta, label=label, labels=labels, spans=spans,
                  phi_spans=phi_spans)
        doc.validate(location=location)
        return doc

    def validate(self, *, location: str | None = None) -> None:
        """Check the invariants every stage relies on.

        Spans must lie inside the text and be non-empty. Spans may nest or overlap when their
        labels differ (several annotation layers), but two spans with the same label may not
        cross each other, and no span may be listed twice.
        """

        def fail(reason: str) -> RecordError:
            return RecordError(reason, record_id=self.id, location=location)

        if not isinstance(self.id, str) or not self.id.strip():
            raise fail("field 'id' must be a non-empty string")
        if not isinstance(self.text, str):
            raise fail(f"field 'text' must be a string, got {describe_type(self.text)}")
        if _has_lone_surrogate(self.text):
            raise fail("field 'text' contains an unpaired UTF-16 surrogate (not valid Unicode text)")
        # the other fields too: one lone surrogate in an id or a meta value made every later
        # reader that prints or encodes it fail (summary's console, a UTF-8 writer)
        for name in ("id", "label", "labels", "meta", "spans", "phi_spans"):
            if any(_has_lone_surrogate(x) for x in _strings(getattr(self, name))):
                raise fail(f"field {name!r} contains an unpaired UTF-16 surrogate (not valid Unicode text)")
        n = len(self.text)
        for i, span in enumerate(self.spans):
            if not (0 <= span.start < span.end <= n):
                raise fail(
                    f"span {i} [{span.start}:{span.end}] must satisfy 0 <= start < end <= "
                    f"len(text)={n}"
                )
        check_span_overlaps(self.spans, fail)


def document_stream(docs: Any, name: str = "docs") -> Iterable[Document]:
    """``docs`` checked to be a stream of documents, not one document, a string or a mapping
    (each of which a stage would otherwise take apart item by item: a string into characters).

    Raises:
        ConfigError: naming the argument and what to pass instead.
    """
    from collections.abc import Mapping

    from domainfm.errors import ConfigError

    if isinstance(docs, Document):
        raise ConfigError(f"{name} must be an iterable of Document; for one document pass [doc]")
    if isinstance(docs, (str, bytes, Mapping)) or not isinstance(docs, Iterable):
        raise ConfigError(f"{name} must be an iterable of Document (e.g. read_documents(path)), got "
                          f"{describe_type(docs)}")
    return docs


def checked_document(doc: Any, name: str = "docs") -> Document:
    """One item of a document stream: a :class:`Document` satisfying :meth:`Document.validate`.

    Raises:
        ConfigError: the item is not a Document (a dict: ``Document.from_dict`` builds one).
        RecordError: the document breaks an invariant (a span past the text's end, no text).
    """
    from domainfm.errors import ConfigError

    if not isinstance(doc, Document):
        hint = "; Document.from_dict(record) builds one" if isinstance(doc, dict) else ""
        raise ConfigError(f"{name} must be Document objects, got {describe_type(doc)}{hint}")
    doc.validate()
    return doc


def merge_crossing_spans(spans: Iterable[Span]) -> list[Span]:
    """Repair what :func:`check_span_overlaps` would reject: same-label spans that cross are
    merged into their union, and a span listed twice is kept once. The kept span lists the
    originals in ``attrs["merged_from"]`` (``[[start, end], ...]``, a duplicate as the same pair
    twice) so the repair can be counted and undone. It keeps the attrs of the original that
    starts first; when any original had attrs, ``attrs["merged_attrs"]`` holds each one's, in
    the order of ``merged_from``, so none is lost. Nested spans and spans of different labels
    are left as they are.

    Example:
        >>> [(s.start, s.end, s.attrs) for s in merge_crossing_spans([Span(0, 5, "LOC"), Span(3, 9, "LOC")])]
        [(0, 9, {'merged_from': [[0, 5], [3, 9]]})]
        >>> [(s.start, s.end, s.attrs) for s in merge_crossing_spans([Span(0, 5, "LOC"), Span(0, 5, "LOC")])]
        [(0, 5, {'merged_from': [[0, 5], [0, 5]]})]
    """
    out: list[Span] = []
    by_label: dict[str, list[Span]] = {}
    for span in spans:
        by_label.setdefault(span.label, []).append(span)
    for group in by_label.values():
        group.sort(key=lambda s: (s.start, -s.end))
        kept: list[Span] = []
        for span in group:
            # a union can equal or cross a span kept before it (5-7 and 6-11 give 5-11, which a
            # kept 5-11 repeats): fold those in too, until nothing kept repeats or crosses it
            while touching := [k for k in kept if k.key == span.key or _cross(k, span)]:
                kept = [k for k in kept if k not in touching]
                parts = sorted([*touching, span], key=lambda k: k.start)  # the first original's attrs stay
                span = _merged(parts[0].start, max(k.end for k in parts), span.label, parts)
            kept.append(span)
        out.extend(kept)
    return sorted(out, key=lambda s: (s.start, s.end, s.label))


def _cross(a: Span, b: Span) -> bool:
    """Whether two spans overlap without one holding the other."""
    return a.start < b.start < a.end < b.end or b.start < a.start < b.end < a.end


_MERGE_ATTRS = ("merged_from", "merged_attrs")


def _merged(start: int, end: int, label: str, parts: list[Span]) -> Span:
    """One span for ``parts`` (earlier merges among them unfolded into their originals)."""
    originals: list[tuple[list[int], dict[str, Any]]] = []
    for part in parts:
        if "merged_from" in part.attrs:
            pairs = part.attrs["merged_from"]
            originals.extend(zip(pairs, part.attrs.get("merged_attrs") or [{} for _ in pairs]))
        else:
            own = {k: v for k, v in part.attrs.items() if k not in _MERGE_ATTRS}
            originals.append(([part.start, part.end], own))
    attrs = {**originals[0][1], "merged_from": [list(pair) for pair, _ in originals]}
    if any(own for _, own in originals):
        attrs["merged_attrs"] = [dict(own) for _, own in originals]
    return Span(start, end, label, attrs)


def check_span_overlaps(spans: Iterable[Span], fail) -> None:
    """Reject duplicated spans and crossing spans of the same label."""
    by_label: dict[str, list[Span]] = {}
    for span in spans:
        by_label.setdefault(span.label, []).append(span)
    for label, group in by_label.items():
        group.sort(key=lambda s: (s.start, -s.end))
        open_spans: list[Span] = []  # stack of spans that contain the current position
        for span in group:
            while open_spans and open_spans[-1].end <= span.start:
                open_spans.pop()
            if open_spans:
                outer = open_spans[-1]
                if outer.key == span.key:
                    raise fail(f"span [{span.start}:{span.end}] label {label!r} is listed twice")
                if span.end > outer.end:
                    raise fail(
                        f"spans [{outer.start}:{outer.end}] and [{span.start}:{span.end}] with "
                        f"label {label!r} cross each other (same-label spans may nest, not cross)"
                    )
            open_spans.append(span)


def _check_phi_spans(phi_spans: Any, fail) -> None:
    if not isinstance(phi_spans, list):
        raise fail(f"field 'phi_spans' must be a list or null, got {describe_type(phi_spans)}")
    for i, raw in enumerate(phi_spans):
        if not isinstance(raw, dict) or not all(
            isinstance(raw.get(k), int) and not isinstance(raw.get(k), bool) for k in ("start", "end")
        ) or not isinstance(raw.get("label"), str):
            raise fail(f"phi_spans {i} must be an object with integer 'start'/'end' and a string 'label'")


def _span_from_dict(raw: Any, index: int, fail) -> Span:
    if not isinstance(raw, dict):
        raise fail(f"span {index} must be an object, got {describe_type(raw)}")
    unknown = sorted(set(raw) - set(SPAN_KEYS))
    if unknown:
        raise fail(f"span {index} has {unknown_keys(unknown, SPAN_KEYS)}; a span has {list(SPAN_KEYS)}")
    start, end, label = raw.get("start"), raw.get("end"), raw.get("label")
    for name, value in (("start", start), ("end", end)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise fail(f"span {index} field '{name}' must be an integer, got {describe_type(value)}")
    if not isinstance(label, str) or not label.strip():  # "  " would become a class of its own
        raise fail(f"span {index} field 'label' must be a non-empty string, got {describe_type(label)}")
    attrs = raw.get("attrs")
    attrs = {} if attrs is None else attrs
    if not isinstance(attrs, dict):
        raise fail(f"span {index} field 'attrs' must be an object, got {describe_type(attrs)}")
    return Span(start, end, label, attrs)


def id_string(value: Any) -> Any:
    """One rule for every stage: an integer id is its decimal string. Any other value is
    returned as it is for the caller to check (``True`` is not an integer here).

    Example:
        >>> id_string(7), id_string("n1"), id_string(True)
        ('7', 'n1', True)
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def unknown_keys(unknown: Iterable[str], known: Iterable[str]) -> str:
    """``"unknown field(s) [...]"`` for a message, quoting only the keys a typo away from a
    known one (``'txet'``, did you mean ``'text'``): any other key may be data written as a key
    (``{"Zorblax Quintavius": 1}``), and a message reaches the console and the manifest.

    Example:
        >>> unknown_keys(["txet", "Jane Roe 555-0199"], ["id", "text"])
        "unknown field(s) ['txet'] (did you mean 'text'?) and 1 more, not quoted (a key may hold data)"
    """
    import difflib

    known = list(known)
    quoted, hints, others = [], [], 0
    for key in unknown:
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.75)
        if close:
            quoted.append(key)
            hints.append(f"did you mean {close[0]!r}?")
        else:
            others += 1
    if not quoted:
        return f"{others} unknown field(s), not quoted (a key may hold data)"
    more = f" and {others} more, not quoted (a key may hold data)" if others else ""
    return f"unknown field(s) {quoted} ({'; '.join(hints)}){more}"


def describe_type(value: Any) -> str:
    """A bad value's JSON type for a message, never its content (it may be PHI).

    Example:
        >>> describe_type(None), describe_type(7), describe_type(7.5), describe_type("  "), describe_type([1])
        ('null', 'an integer', 'a number', 'an empty string', 'a list')
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "an empty string" if not value.strip() else "a string"
    return "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else type(value).__name__


def _strings(value: Any) -> Iterable[str]:
    """Every string in a field's value: keys and values of objects, items of lists, span labels
    and attrs."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, Span):
        yield value.label
        yield from _strings(value.attrs)


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
