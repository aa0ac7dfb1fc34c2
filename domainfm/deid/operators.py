"""Detections in, replacement regions out: validation, overlap resolution, tags and masks.

Operators (what replaces a detected span):

* ``surrogate``: a realistic fake from :class:`~domainfm.deid.surrogates.SurrogateGenerator`.
* ``tag``: a label-specific tag from :data:`TAGS` (``[NAME]``, ``[DATE]``...; unknown labels
  get ``[PHI]``). Person subtypes keep their subtype (``[PATIENT]``, ``[DOCTOR]``) since the
  role is not identifying and helps downstream models.
* ``redact``: every character becomes :data:`MASK_CHAR` (``█``) except line breaks, so the text
  keeps its length and line structure: annotation spans keep their exact offsets and line-based
  chunkers still work. The length of the PHI is visible, but ``phi_spans`` reports it anyway.

Overlap rule (:func:`resolve_overlaps`): detections that overlap (share at least one character)
are merged into one replacement region covering their union. Its label is the label of a
detection covering the whole region when there is one (ties: the higher rank in
:data:`LABEL_PRIORITY`, then the higher score); otherwise the highest-ranked label. Touching but
not overlapping detections stay separate replacements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Literal

from domainfm.deid.surrogates import canonical_label
from domainfm.errors import RecordError

__all__ = [
    "LABEL_PRIORITY", "MASK_CHAR", "OPERATORS", "TAGS", "Detection", "Operator", "Region",
    "coerce_detections", "redact_text", "resolve_overlaps", "tag_for",
]

Operator = Literal["surrogate", "redact", "tag"]
OPERATORS: tuple[str, ...] = ("surrogate", "redact", "tag")
MASK_CHAR = "█"

TAGS: dict[str, str] = {
    "NAME": "[NAME]", "PATIENT": "[PATIENT]", "RELATIVE": "[RELATIVE]", "DOCTOR": "[DOCTOR]",
    "DATE": "[DATE]", "AGE": "[AGE]", "PHONE": "[PHONE]", "FAX": "[FAX]", "EMAIL": "[EMAIL]",
    "SSN": "[SSN]", "ID": "[ID]", "MRN": "[MRN]", "URL": "[URL]", "IP": "[IP]",
    "ADDRESS": "[ADDRESS]", "STREET": "[STREET]", "CITY": "[CITY]", "STATE": "[STATE]",
    "ZIP": "[ZIP]", "FACILITY": "[FACILITY]", "ORG": "[ORG]", "LOCATION": "[LOCATION]",
    "COUNTRY": "[COUNTRY]", "NATIONALITY": "[NATIONALITY]", "OCCUPATION": "[OCCUPATION]", "CODE": "[CODE]",
    "QUANTITY": "[QUANTITY]", "MISC": "[PHI]",
}

# Most specific / most directly identifying first: the label that wins a merged region.
LABEL_PRIORITY: tuple[str, ...] = (
    "SSN", "MRN", "ID", "PHONE", "FAX", "EMAIL", "URL", "IP", "PATIENT", "RELATIVE", "DOCTOR",
    "NAME", "ADDRESS", "STREET", "ZIP", "CITY", "STATE", "DATE", "AGE", "FACILITY", "ORG",
    "LOCATION", "COUNTRY", "NATIONALITY", "OCCUPATION", "CODE", "QUANTITY", "MISC",
)
_RANK = {label: i for i, label in enumerate(LABEL_PRIORITY)}


@dataclass(frozen=True, slots=True)
class Detection:
    """One detected PHI span ``[start, end)`` in input coordinates."""

    start: int
    end: int
    label: str
    score: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "label": self.label, "score": self.score}


@dataclass(frozen=True, slots=True)
class Region:
    """A replacement region: the union of overlapping detections and the label that won."""

    start: int
    end: int
    label: str
    members: tuple[Detection, ...]


def coerce_detections(detections: Iterable[Any] | None, text_length: int, *, record_id: str | None = None
                      ) -> list[Detection]:
    """Accept ``(start, end, label[, score])`` tuples, dicts, objects with ``start``, ``end``,
    ``label``/``entity_type`` and ``score`` (this module's or the engine's ``Detection``, presidio's
    ``RecognizerResult``); check offsets against the text.

    Raises:
        RecordError: naming the record and the detection's index and offsets, never its text.
    """
    out: list[Detection] = []
    for i, item in enumerate(detections or ()):
        try:
            if isinstance(item, Detection):
                start, end, label, score = item.start, item.end, item.label, item.score
            elif isinstance(item, dict):
                start, end = item["start"], item["end"]
                label = item.get("label", item.get("entity_type"))
                score = item.get("score", 1.0)
            elif hasattr(item, "entity_type"):  # presidio RecognizerResult
                start, end, label, score = item.start, item.end, item.entity_type, getattr(item, "score", 1.0)
            elif hasattr(item, "start") and hasattr(item, "label"):  # domainfm.deid.engine.Detection
                start, end, label, score = item.start, item.end, item.label, getattr(item, "score", 1.0)
            else:
                start, end, label, *rest = item
                score = rest[0] if rest else 1.0
        except (KeyError, TypeError, ValueError, AttributeError):
            raise RecordError(f"detection {i} is not (start, end, label, score)", record_id=record_id) from None
        if not _is_int(start) or not _is_int(end):
            raise RecordError(f"detection {i} offsets must be integers", record_id=record_id)
        if not 0 <= start < end <= text_length:
            raise RecordError(
                f"detection {i} [{start}:{end}] must satisfy 0 <= start < end <= len(text)={text_length}",
                record_id=record_id,
            )
        if not isinstance(label, str) or not label.strip():
            raise RecordError(f"detection {i} [{start}:{end}] has no label", record_id=record_id)
        try:
            score = float(score) if score is not None else 1.0
        except (TypeError, ValueError):
            raise RecordError(f"detection {i} [{start}:{end}] score must be a number", record_id=record_id) from None
        out.append(Detection(int(start), int(end), label, score))
    out.sort(key=lambda d: (d.start, -d.end, d.label))
    return out


def resolve_overlaps(detections: Iterable[Detection]) -> list[Region]:
    """Merge overlapping detections into disjoint, sorted replacement regions (rule above)."""
    regions: list[Region] = []
    group: list[Detection] = []
    group_end = -1
    for det in sorted(detections, key=lambda d: (d.start, -d.end)):
        if group and det.start >= group_end:
            regions.append(_region(group))
            group = []
        group_end = max(group_end, det.end) if group else det.end
        group.append(det)
    if group:
        regions.append(_region(group))
    return regions


def _region(group: list[Detection]) -> Region:
    start = min(d.start for d in group)
    end = max(d.end for d in group)
    covering = [d for d in group if d.start == start and d.end == end]
    pool = covering or group
    best = min(pool, key=lambda d: (_RANK.get(canonical_label(d.label), len(_RANK)), -d.score))
    return Region(start, end, best.label, tuple(group))


def tag_for(label: str) -> str:
    """``"PATIENT"`` -> ``"[PATIENT]"``; aliases are canonicalised, unknown labels -> ``"[PHI]"``."""
    return TAGS.get(canonical_label(label), "[PHI]")


def redact_text(text: str, mask: str = MASK_CHAR) -> str:
    """Same-length mask that keeps line breaks (``"Jo\\nSmith"`` -> ``"██\\n█████"``)."""
    return "".join(ch if ch in "\r\n" else mask for ch in text)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
