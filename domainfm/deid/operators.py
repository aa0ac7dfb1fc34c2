"""Detections in, replacement regions out: validation, overlap resolution, tags and masks.

Operators (what replaces a detected span):

* ``surrogate``: a realistic fake from :class:`~domainfm.deid.surrogates.SurrogateGenerator`.
* ``tag``: a label-specific tag from :data:`TAGS` (``[NAME]``, ``[DATE]``...; unknown labels
  get ``[PHI]``). Person subtypes keep their subtype (``[PATIENT]``, ``[DOCTOR]``) since the
  role is not identifying and helps downstream models.
* ``redact``: every character becomes :data:`MASK_CHAR` (``█``) except line breaks, so the text
  keeps its length and line structure: annotation spans keep their exact offsets and line-based
  chunkers still work. The length of the PHI is visible, but ``phi_spans`` reports it anyway.

Overlapping detections become one replacement region by the one overlap rule of
:mod:`domainfm.deid.detection` (the same rule the detector applies to its own detections).
"""

from __future__ import annotations

from typing import Any, Iterable, Literal

from domainfm.deid.detection import Detection, Region, resolve_overlaps
from domainfm.deid.surrogates import canonical_label
from domainfm.errors import RecordError

__all__ = [
    "MASK_CHAR", "OPERATORS", "TAGS", "Detection", "Operator", "Region",
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
        recognizer = getattr(item, "recognizer", "") if not isinstance(item, (dict, tuple, list)) else ""
        try:
            if isinstance(item, Detection):
                start, end, label, score, recognizer = item.start, item.end, item.label, item.score, item.recognizer
            elif isinstance(item, dict):
                start, end = item["start"], item["end"]
                label = item.get("label", item.get("entity_type"))
                score = item.get("score", 1.0)
            elif hasattr(item, "entity_type"):  # presidio RecognizerResult
                start, end, label, score = item.start, item.end, item.entity_type, getattr(item, "score", 1.0)
            elif hasattr(item, "start") and hasattr(item, "label"):  # a Detection-like object
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
        out.append(Detection(int(start), int(end), label, score, recognizer))
    out.sort(key=lambda d: (d.start, -d.end, d.label))
    return out


def tag_for(label: str) -> str:
    """``"PATIENT"`` -> ``"[PATIENT]"``; aliases are canonicalised, unknown labels -> ``"[PHI]"``."""
    return TAGS.get(canonical_label(label), "[PHI]")


def redact_text(text: str, mask: str = MASK_CHAR) -> str:
    """Same-length mask that keeps line breaks (``"Jo\\nSmith"`` -> ``"██\\n█████"``)."""
    return "".join(ch if ch in "\r\n" else mask for ch in text)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
