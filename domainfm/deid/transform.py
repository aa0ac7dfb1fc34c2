"""Apply an operator to a document's detections; re-map annotations; re-identify from a vault.

:func:`apply_operator` turns one :class:`~domainfm.corpus.Document` plus detections
``(start, end, label, score)`` into the output record::

    {"id", "text" (transformed), "meta", "label", "labels",
     "spans" (annotations re-mapped onto the new text),
     "phi_spans": [{"start", "end", "label", "score"}]  (every detection, INPUT coordinates)}

Overlapping detections are merged first (rule in :mod:`domainfm.deid.operators`). Each
replacement is an :class:`Edit`; the sorted edits form an :class:`OffsetMap` that re-maps
annotation spans:

* a span outside every edit shifts;
* a span containing an edit (or sharing its bounds) stretches or shrinks with it, exactly;
* a span that partially overlaps an edit, or lies strictly inside one, is widened to the
  replacement's bounds and marked ``attrs["deid_adjusted"] = True`` (never dropped). When this
  makes two spans of one label identical or crossing, they become one span (``attrs["deid_merged"]``
  counts the extra spans) so the output still satisfies :meth:`Document.validate`.

With a vault, the originals of every edit and the input spans are stored (encrypted) per
document, so :func:`reidentify` restores the exact input for all three operators.

Nothing here logs or raises document text: messages name the record id, fields and offsets.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import logging
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Literal, Sequence

from domainfm.corpus.document import Document, Span, id_string
from domainfm.corpus.io import Counts, Rejected
from domainfm.deid.dates import full_date_years, reads_day_first
from domainfm.deid.operators import (
    MASK_CHAR, OPERATORS, Operator, Region, coerce_detections, redact_text, resolve_overlaps, tag_for,
)
from domainfm.deid.outside_text import identifier_strings
from domainfm.deid.surrogates import avoid_tokens, canonical_label, scope_for
from domainfm.errors import ConfigError, RecordError

if TYPE_CHECKING:
    from domainfm.deid.surrogates import SurrogateGenerator
    from domainfm.deid.vault import Vault

__all__ = [
    "Edit", "OffsetMap", "TransformedRecord", "apply_operator", "map_offset", "map_span",
    "reidentify", "remap_spans", "transform_documents",
]

logger = logging.getLogger("domainfm.deid")


@dataclass(frozen=True, slots=True)
class Edit:
    """Input ``[in_start, in_end)`` was replaced by output ``[out_start, out_end)``."""

    in_start: int
    in_end: int
    out_start: int
    out_end: int

    def inverse(self) -> Edit:
        return Edit(self.out_start, self.out_end, self.in_start, self.in_end)


class OffsetMap:
    """Sorted, non-overlapping edits; maps input offsets to output offsets.

    Example:
        >>> m = OffsetMap([Edit(4, 9, 4, 10)])          # "Met Smith today" -> "Met [NAME] today"
        >>> m.map_span(10, 15)                           # "today" shifts by one
        (11, 16, False)
        >>> m.map_span(6, 8)                             # inside the name: widened, adjusted
        (4, 10, True)
        >>> m.inverse().map_span(11, 16)
        (10, 15, False)
    """

    __slots__ = ("edits", "_starts")

    def __init__(self, edits: Iterable[Edit] = ()):
        self.edits: tuple[Edit, ...] = tuple(sorted(edits, key=lambda e: e.in_start))
        self._starts = [e.in_start for e in self.edits]
        for prev, cur in zip(self.edits, self.edits[1:]):
            if cur.in_start < prev.in_end or cur.out_start < prev.out_end:
                raise ValueError("edits must not overlap")

    def map_offset(self, pos: int, side: Literal["start", "end"] = "start") -> tuple[int, bool]:
        """Output offset of input offset ``pos`` and whether it fell strictly inside an edit
        (then it goes to the replacement's start for ``side="start"``, its end for ``"end"``)."""
        i = bisect_right(self._starts, pos) - 1
        if i < 0:
            return pos, False
        e = self.edits[i]
        if pos == e.in_start:
            return e.out_start, False
        if pos < e.in_end:
            return (e.out_start if side == "start" else e.out_end), True
        return pos - e.in_end + e.out_end, False

    def map_span(self, start: int, end: int) -> tuple[int, int, bool]:
        """``(new_start, new_end, adjusted)`` for input span ``[start, end)``."""
        new_start, a1 = self.map_offset(start, "start")
        new_end, a2 = self.map_offset(end, "end")
        return new_start, new_end, a1 or a2

    def inverse(self) -> OffsetMap:
        """The map from output offsets back to input offsets."""
        return OffsetMap(e.inverse() for e in self.edits)

    def to_list(self) -> list[list[int]]:
        return [[e.in_start, e.in_end, e.out_start, e.out_end] for e in self.edits]

    def __len__(self) -> int:
        return len(self.edits)

    def __repr__(self) -> str:
        return f"OffsetMap({len(self.edits)} edits)"


def map_offset(offset_map: OffsetMap, pos: int, side: Literal["start", "end"] = "start") -> tuple[int, bool]:
    """Function form of :meth:`OffsetMap.map_offset`."""
    return offset_map.map_offset(pos, side)


def map_span(offset_map: OffsetMap, start: int, end: int) -> tuple[int, int, bool]:
    """Function form of :meth:`OffsetMap.map_span`."""
    return offset_map.map_span(start, end)


@dataclass(slots=True)
class TransformedRecord:
    """One de-identified document; :meth:`to_dict` is the JSONL record."""

    id: str
    text: str
    meta: dict[str, Any]
    label: str | None
    labels: list[str] | None
    spans: list[Span]
    phi_spans: list[dict[str, Any]]
    offset_map: OffsetMap = field(repr=False, default_factory=OffsetMap)
    # the detected strings (PHI: never printed or written), kept only until deidentify() has
    # looked for them outside the text (domainfm.deid.outside_text), then emptied
    identifiers: frozenset[str] = field(repr=False, default=frozenset())
    # the output fields that still hold one of them (names only): carried to the run's counts
    outside_text: list[str] = field(default_factory=list)
    # how the note writes dates (its first full date's year, day first or not): a date in its
    # ``meta`` ("3/5", "03/05") is read the same way, not in the shifter's reference year
    note_year: int | None = None
    day_first: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return self.to_document().to_dict()

    def to_document(self) -> Document:
        return Document(self.id, self.text, self.meta, self.label, self.labels, list(self.spans),
                        phi_spans=list(self.phi_spans))


def apply_operator(
    doc: Document,
    detections: Iterable[Any] | None,
    operator: Operator = "surrogate",
    surrogates: SurrogateGenerator | None = None,
    *,
    vault: Vault | None = None,
    mask: str = MASK_CHAR,
    record: bool = True,
) -> TransformedRecord:
    """De-identify one document given its detections.

    Args:
        doc: the input document (validated here).
        detections: ``(start, end, label[, score])`` tuples, dicts, ``Detection`` or presidio
            ``RecognizerResult`` objects, in ``doc.text`` coordinates. May overlap.
        operator: ``"surrogate"``, ``"redact"`` or ``"tag"``.
        surrogates: required for ``"surrogate"``; its vault (if any) is used when ``vault`` is
            not given.
        vault: where the per-document edits go for :func:`reidentify`.
        mask: the single character ``redact`` writes.
        record: write the edits to the vault (``False`` for text that is not the document's
            own, such as a ``meta`` value).

    Raises:
        RecordError: invalid document or detection (message names id and offsets only).
        ConfigError: unknown operator, or ``surrogate`` without a generator.

    Example:
        >>> doc = Document("n1", "Seen by Dr. Lee on 7/22.")
        >>> apply_operator(doc, [(12, 15, "DOCTOR", 0.9), (19, 23, "DATE", 1.0)], "tag").text
        'Seen by Dr. [DOCTOR] on [DATE].'
    """
    if operator not in OPERATORS:
        raise ConfigError(f"unknown de-identification operator {operator!r}; choose one of {list(OPERATORS)}")
    if operator == "surrogate" and surrogates is None:
        raise ConfigError("operator 'surrogate' needs a SurrogateGenerator (surrogates=...)")
    if not isinstance(mask, str) or len(mask) != 1:
        raise ConfigError("mask must be a single character (redaction keeps the text length)")
    if vault is None and surrogates is not None and record:
        vault = surrogates.vault
    if not isinstance(doc, Document):
        raise RecordError(f"expected a Document, got {type(doc).__name__}")
    doc.validate()
    text = doc.text
    dets = coerce_detections(detections, len(text), record_id=doc.id)
    regions = resolve_overlaps(dets)
    conflict = vault_conflict(vault, doc) if vault is not None else None
    if conflict is not None:
        raise conflict
    scope = scope_for(doc.id, doc.meta)
    avoid = avoid_tokens([text[r.start:r.end] for r in regions]) if operator == "surrogate" else frozenset()
    note_years = _note_years(text, regions) if operator == "surrogate" else [None] * len(regions)
    # "03/05/2019" is 3 May in a note whose other dates show it writes the day first ("25/04/2019")
    day_first = reads_day_first("\n".join(text[r.start:r.end] for r in regions
                                           if canonical_label(r.label) == "DATE")) if operator == "surrogate" else None

    pieces: list[str] = []
    edits: list[Edit] = []
    cursor = out_len = 0
    for region, note_year in zip(regions, note_years):
        original = text[region.start:region.end]
        if operator == "surrogate":
            replacement = surrogates.surrogate(original, region.label, scope, avoid=avoid, note_year=note_year,
                                               day_first=day_first)
        elif operator == "tag":
            replacement = tag_for(region.label)
        else:
            replacement = redact_text(original, mask)
        if not replacement:
            replacement = tag_for(region.label)  # an empty output range could not be re-mapped
        pieces.append(text[cursor:region.start])
        out_len += region.start - cursor
        edits.append(Edit(region.start, region.end, out_len, out_len + len(replacement)))
        pieces.append(replacement)
        out_len += len(replacement)
        cursor = region.end
    pieces.append(text[cursor:])
    new_text = "".join(pieces)
    offset_map = OffsetMap(edits)
    spans = remap_spans(doc.spans, offset_map)

    if vault is not None:
        vault.put_document(doc.id, {
            "source_h": vault.text_digest(text),
            "text_h": vault.text_digest(new_text),
            "spans_h": _spans_digest(spans),
            "edits": [[e.out_start, e.out_end, e.in_start, e.in_end, text[e.in_start:e.in_end]] for e in edits],
            "spans": [s.to_dict() for s in doc.spans],
        })
    logger.debug("deid: operator=%s detections=%d regions=%d adjusted_spans=%d", operator,
                 len(dets), len(regions), sum(1 for s in spans if s.attrs.get("deid_adjusted")))
    return TransformedRecord(
        id=doc.id, text=new_text, meta=doc.meta, label=doc.label, labels=doc.labels, spans=spans,
        phi_spans=[d.to_dict() for d in dets], offset_map=offset_map,
        identifiers=identifier_strings(text, regions),
        note_year=note_years[0] if note_years else None, day_first=day_first,
    )


def _note_years(text: str, regions: Sequence[Region]) -> list[int | None]:
    """Per region, the year its dates without a year are read in: the year of the nearest full
    date (day, month and year) in an earlier DATE region, else of the record's first full date,
    else ``None`` (the shifter's leap year). Shifted in another year, "3/5" next to "01/15/2019"
    could move by another month-and-day than the full date (a 29 February crossed in one year
    and not in the other)."""
    years = [full_date_years(text[r.start:r.end]) if canonical_label(r.label) == "DATE" else [] for r in regions]
    first = next((found[0] for found in years if found), None)
    out: list[int | None] = []
    latest = None
    for found in years:
        out.append(first if latest is None else latest)
        if found:
            latest = found[-1]
    return out


def vault_conflict(vault: Vault, doc: Document) -> RecordError | None:
    """The error for a document whose id ``vault`` already holds for another text, else None."""
    if not vault.holds_other_document(doc.id, doc.text):
        return None
    return RecordError("this vault already holds another document (another text) under this id; storing this one "
                       "would make that one impossible to re-identify: give records unique ids, or use another "
                       "vault", record_id=doc.id)


def remap_spans(spans: Sequence[Span], offset_map: OffsetMap) -> list[Span]:
    """Re-map annotation spans through ``offset_map`` (rules in the module docstring)."""
    mapped: list[list[Any]] = []  # [start, end, label, attrs, input order]
    for order, span in enumerate(spans):
        start, end, adjusted = offset_map.map_span(span.start, span.end)
        attrs = dict(span.attrs)
        if adjusted:
            attrs["deid_adjusted"] = True
        mapped.append([start, end, span.label, attrs, order])
    if any(m[3].get("deid_adjusted") for m in mapped):
        mapped = _repair_same_label(mapped)
    mapped.sort(key=lambda m: m[4])
    return [Span(m[0], m[1], m[2], m[3]) for m in mapped]


def _repair_same_label(mapped: list[list[Any]]) -> list[list[Any]]:
    """Merge same-label spans that widening made identical or crossing."""
    by_label: dict[str, list[list[Any]]] = {}
    for m in mapped:
        by_label.setdefault(m[2], []).append(m)
    kept: list[list[Any]] = []
    for group in by_label.values():
        group.sort(key=lambda m: (m[0], -m[1], m[4]))
        stack: list[list[Any]] = []
        for m in group:
            while stack and stack[-1][1] <= m[0]:
                stack.pop()
            if stack and (m[1] > stack[-1][1] or (m[0], m[1]) == (stack[-1][0], stack[-1][1])):
                top = stack[-1]
                _absorb(top, m)
                # The widened span may now cross the spans that contained it, or equal one of
                # them ([0:3] widened to [0:4] inside [0:4]).
                while len(stack) > 1 and (stack[-1][1] > stack[-2][1]
                                          or (stack[-1][0], stack[-1][1]) == (stack[-2][0], stack[-2][1])):
                    inner = stack.pop()
                    _absorb(stack[-1], inner)
                    kept.remove(inner)
                continue
            stack.append(m)
            kept.append(m)
    return kept


def _absorb(into: list[Any], other: list[Any]) -> None:
    into[0] = min(into[0], other[0])
    into[1] = max(into[1], other[1])
    into[3]["deid_adjusted"] = True
    into[3]["deid_merged"] = into[3].get("deid_merged", 0) + 1 + other[3].get("deid_merged", 0)
    into[4] = min(into[4], other[4])


def _spans_digest(spans: Iterable[Span]) -> str:
    blob = json.dumps([s.to_dict() for s in spans], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def transform_documents(
    items: Iterable[tuple[Document | dict, Iterable[Any] | None]],
    operator: Operator = "surrogate",
    surrogates: SurrogateGenerator | None = None,
    *,
    vault: Vault | None = None,
    counts: Counts | None = None,
    on_progress: Callable[[Counts], None] | None = None,
) -> Iterator[TransformedRecord | Rejected]:
    """Apply :func:`apply_operator` to a stream of ``(document, detections)`` pairs.

    Never stops on a bad record: each one yields a :class:`~domainfm.corpus.io.Rejected`
    naming its id and the reason (no text), so ``read == written + rejected`` always holds.
    Documents may also be given as raw dicts (validated here).
    """
    counts = counts if counts is not None else Counts()
    if operator not in OPERATORS:
        raise ConfigError(f"unknown de-identification operator {operator!r}; choose one of {list(OPERATORS)}")
    logged: set[str] = set()
    for doc, detections in items:
        counts.read += 1
        record_id = _safe_id(doc)
        try:
            if not isinstance(doc, Document):
                doc = Document.from_dict(doc)
            result: TransformedRecord | Rejected = apply_operator(doc, detections, operator, surrogates, vault=vault)
            counts.written += 1
        except RecordError as err:
            result = Rejected(reason=err.reason, location=err.location, record_id=err.record_id or record_id)
        except (ConfigError, sqlite3.Error):
            raise  # the vault is shared by every record: a vault failure stops the run
        except Exception as exc:  # one broken record must not stop the corpus; no message: may hold PHI
            if type(exc).__name__ not in logged:  # once per kind: the reject file lists every record
                logged.add(type(exc).__name__)
                # no id either: record ids are often record numbers, and the reject file names them
                logger.error("deid: internal error (%s) while transforming a record: it is rejected, as are further "
                             "records with this error (ids and locations in the reject file)", type(exc).__name__)
            result = Rejected(reason=f"internal error ({type(exc).__name__}) while de-identifying",
                              record_id=record_id)
        if isinstance(result, Rejected):
            counts.add_reject(result.reason)
        if on_progress is not None:
            on_progress(counts)
        yield result
    if vault is not None:
        vault.commit()


def reidentify(records: Iterable[dict[str, Any] | TransformedRecord], vault: Vault) -> Iterator[dict[str, Any]]:
    """Restore the original documents of de-identified records (authorised users only).

    Uses the per-document edits stored in ``vault`` by :func:`apply_operator`, so it is exact
    for ``surrogate``, ``redact`` and ``tag``. Spans are restored exactly when they were not
    changed after de-identification; spans added or edited since are mapped back through the
    inverse offset map.

    Yields:
        document dicts (``id, text, meta, label, labels, spans``; ``phi_spans`` dropped).

    Raises:
        RecordError: no vault entry for the record, its text changed since de-identification, or
            a span or ``meta`` that is not a valid one (named by index, never quoted).
        VaultKeyError: the vault key is wrong.
    """
    from domainfm.deid.vault import is_pseudonym

    for record in records:
        rec = record.to_dict() if isinstance(record, TransformedRecord) else record
        raw_id = id_string(rec.get("id")) if isinstance(rec, dict) else None  # 7 -> "7", as every stage reads it
        record_id = raw_id if isinstance(raw_id, str) else None
        if not isinstance(rec, dict) or not isinstance(rec.get("text"), str) or record_id is None:
            raise RecordError("expected a de-identified record with 'id' and 'text'", record_id=record_id)
        # checked before the vault is read: a broken span must be this record's reject, not a
        # traceback that stops the run, nor a restored span outside the restored text
        out_spans = _checked_spans(rec.get("spans"), len(rec["text"]), record_id)
        if rec.get("meta") is not None and not isinstance(rec["meta"], dict):
            raise RecordError("field 'meta' must be an object", record_id=record_id)
        original_id = vault.original_id(record_id) if is_pseudonym(record_id) else None
        payload = vault.get_document(original_id if original_id is not None else record_id)
        if payload is None:
            raise RecordError("this vault holds no de-identification entry for the record "
                              "(de-identified with another vault, or without one)", record_id=record_id)
        text = rec["text"]
        if vault.text_digest(text) != payload["text_h"]:
            raise RecordError("the record's text is not the text this vault de-identified (edited since, or "
                              "de-identified in another run or with another vault); it cannot be re-identified "
                              "exactly", record_id=record_id)
        pieces: list[str] = []
        cursor = 0
        edits = []
        for out_start, out_end, in_start, in_end, original in payload["edits"]:
            pieces.append(text[cursor:out_start])
            pieces.append(original)
            cursor = out_end
            edits.append(Edit(in_start, in_end, out_start, out_end))
        pieces.append(text[cursor:])
        if _spans_digest(out_spans) == payload["spans_h"]:
            spans = [dict(s) for s in payload["spans"]]
        else:
            back = OffsetMap(edits).inverse()
            spans = []
            for s in out_spans:
                start, end, _ = back.map_span(s.start, s.end)
                attrs = {k: v for k, v in s.attrs.items() if k not in ("deid_adjusted", "deid_merged")}
                spans.append(Span(start, end, s.label, attrs).to_dict())
        yield {"id": original_id or record_id, "text": "".join(pieces), "meta": rec.get("meta") or {},
               "label": rec.get("label"), "labels": rec.get("labels"), "spans": spans}


def output_record(record: TransformedRecord, vault: Vault | None, pseudonymize_ids: bool) -> dict[str, Any]:
    """The record as written to a deid output: its ``id`` replaced by the vault's keyed pseudonym
    when ``pseudonymize_ids`` (both writers, one process and the engines, go through here)."""
    out = record.to_dict()
    if pseudonymize_ids:
        if vault is None:
            raise ConfigError("pseudonymize_ids needs a vault: the pseudonyms are keyed by it")
        out["id"] = vault.pseudonym(record.id)
    return out


def _checked_spans(raw_spans: Any, text_length: int, record_id: str) -> list[Span]:
    """The spans of a de-identified record, each checked against its text (a ``RecordError``
    naming the record and the span's index otherwise, never its text)."""
    if raw_spans is None:
        return []
    if not isinstance(raw_spans, list):
        raise RecordError(f"field 'spans' must be a list, got {type(raw_spans).__name__}", record_id=record_id)
    spans = []
    for i, raw in enumerate(raw_spans):
        if isinstance(raw, Span):
            span = raw
        elif isinstance(raw, dict):
            start, end, label, attrs = raw.get("start"), raw.get("end"), raw.get("label"), raw.get("attrs")
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)):
                raise RecordError(f"span {i} needs integer 'start' and 'end'", record_id=record_id)
            if not isinstance(label, str) or not label:
                raise RecordError(f"span {i} field 'label' must be a non-empty string", record_id=record_id)
            if attrs is not None and not isinstance(attrs, dict):
                raise RecordError(f"span {i} field 'attrs' must be an object", record_id=record_id)
            span = Span(start, end, label, dict(attrs or {}))
        else:
            raise RecordError(f"span {i} must be an object, got {type(raw).__name__}", record_id=record_id)
        if not 0 <= span.start < span.end <= text_length:
            raise RecordError(f"span {i} [{span.start}:{span.end}] must satisfy 0 <= start < end <= "
                              f"len(text)={text_length}", record_id=record_id)
        spans.append(span)
    return spans


def _safe_id(record: Any) -> str | None:
    raw = record.id if isinstance(record, Document) else record.get("id") if isinstance(record, dict) else None
    return raw if isinstance(raw, str) else None
