"""One detected PHI span and the one rule that makes overlapping detections disjoint.

Every producer (presidio recognizers, the learned tagger, name propagation, a caller's own
detections handed to ``apply_operator``) and every consumer (windows, surrogates, tags, masks)
speaks :class:`Detection`.

Overlap rule (:func:`resolve_overlaps`; :func:`merge_detections` is the same rule after trimming):
detections sorted by start (longer first) are folded left to right. A detection that overlaps
(shares at least one character with) the current region extends it to their union; the region's
label, score and recognizer become those of the better of the two, compared by

1. found by a rule rather than the learned model (rules tell a doctor from a patient, which the
   tagger's labels often cannot),
2. the higher score,
3. the longer span;

a tie keeps the current region's. The region's score is the higher of the two. Touching but
not overlapping detections stay separate replacements.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

#: the ``recognizer`` of detections made by the learned token classifier (domainfm.deid.learned)
LEARNED = "learned_ner"

# what trimming strips from both ends of a span: a recognizer's match may include them, a
# replacement should not swallow punctuation and whitespace around the identifier
_TRIM = " \t\r\n,;:()[]{}\"'"
_APOSTROPHE_YEAR = re.compile(r"'\d\d(?:s\b|\b)")
# a ")" that comes before any "(": it closes a bracket opened before the span's start
_CLOSES_FIRST = re.compile(r"[^()]*\)")


@dataclass(frozen=True, slots=True)
class Detection:
    """One PHI span ``text[start:end]`` in input coordinates.

    Args:
        start: first character.
        end: one past the last character.
        label: the PHI type (canonical labels in :mod:`domainfm.deid.labels`; aliases accepted).
        score: confidence in [0, 1].
        recognizer: which recognizer (and pattern) found it; ``""`` for a caller's own detections.
    """

    start: int
    end: int
    label: str
    score: float = 1.0
    recognizer: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The ``phi_spans`` record form: start, end, label, score."""
        return {"start": self.start, "end": self.end, "label": self.label, "score": self.score}


@dataclass(frozen=True, slots=True)
class Region:
    """A replacement region: the union of overlapping detections and the label that won."""

    start: int
    end: int
    label: str
    members: tuple[Detection, ...]


def _fold(detections: Iterable[Detection]) -> list[tuple[Detection, list[Detection]]]:
    """The rule in the module docstring: each merged detection (union span, winner's label and
    recognizer, best score) with the detections it absorbed."""
    def key(d: Detection):
        return (d.recognizer != LEARNED, d.score, d.end - d.start)

    out: list[tuple[Detection, list[Detection]]] = []
    for det in sorted(detections, key=lambda d: (d.start, -d.end)):
        if out and det.start < out[-1][0].end:
            current, members = out[-1]
            best = det if key(det) > key(current) else current  # a tie keeps the current region's
            out[-1] = (Detection(current.start, max(current.end, det.end), best.label,
                                 max(current.score, det.score), best.recognizer), members + [det])
        else:
            out.append((det, [det]))
    return out


def resolve_overlaps(detections: Iterable[Detection]) -> list[Region]:
    """Merge overlapping detections into disjoint, sorted replacement regions (rule above)."""
    return [Region(merged.start, merged.end, merged.label, tuple(members)) for merged, members in _fold(detections)]


def merge_detections(text: str, detections: Iterable[Detection]) -> list[Detection]:
    """Trim spans to their content, then merge overlapping ones (rule above), so the output never
    overlaps; each merged detection keeps the winner's label and recognizer and the best score."""
    trimmed = []
    for d in detections:
        start, end = d.start, d.end
        while start < end and text[start] in _TRIM:
            if text[start] == "'" and _APOSTROPHE_YEAR.match(text, start, end):
                break  # "'19" is a year: without its apostrophe the surrogate reads "19" as a day
            start += 1
        while end > start and text[end - 1] in _TRIM:
            end -= 1
        opener = text.rfind("(", d.start, start)
        if opener >= 0 and _CLOSES_FIRST.match(text, start, end):
            start = opener  # the span closes this bracket, so it is part of the value: "(555) 010-0199"
        if end > start:
            trimmed.append(Detection(start, end, d.label, d.score, d.recognizer))
    return [merged for merged, _ in _fold(trimmed)]
