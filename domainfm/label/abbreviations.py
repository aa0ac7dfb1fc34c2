"""Abbreviations a document defines, and the spans they carry with them.

Scientific, clinical and legal writers define a short form once and use it after: "Duchenne
muscular dystrophy (DMD)", "the Master Services Agreement (MSA)". A mention's short form is the
same mention: annotation guidelines mark both (NCBI-disease does), and a reader who has seen
the definition reads every later "DMD" as the disease. A few-shot tagger often finds the long
form and misses the short one, whose letters say nothing by themselves.

- **Definitions** (:func:`definitions`) follow Schwartz & Hearst (2003, "A simple algorithm for
  identifying abbreviation definitions in biomedical text"): a short form in parentheses (2-10
  characters, at most two words, starting with a letter or digit, holding a letter), and as long
  form the shortest run of words before it in which the short form's letters occur in order, the
  first one at the start of a word, within ``min(len + 5, 2 * len)`` words.
- **Carrying a span** (:func:`carry`). A suggested span that ends where a defined long form ends
  (right before the parenthesis) gives its label to the short form there and to every later
  occurrence of the short form in the document, written as defined and on word boundaries, where
  nothing else is suggested. The new spans say ``source: "abbreviation"`` and are calibrated like
  the seed lexicon's, by their out-of-fold precision on the seeds.

Measured on NCBI-disease (the README has the benchmark); the rule reads no corpus's strings.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Sequence

# "( DMD )" as the corpus tokenises it, "(DMD)" as people write it; a short form never spans a line
_PAREN = re.compile(r"\(\s*([^\s()][^()\n]{0,9}?)\s*\)")
_WORD = re.compile(r"\S+")
_LOOKBACK_PER_WORD = 40  # characters searched back per word of a long form's window


@dataclass(frozen=True)
class Definition:
    """A long form and the short form defined after it (character offsets)."""

    long_start: int
    long_end: int
    short_start: int
    short_end: int
    short: str


def _short_form_ok(short: str) -> bool:
    return (2 <= len(short) <= 10 and len(short.split()) <= 2 and short[0].isalnum()
            and any(ch.isalpha() for ch in short))


def _long_form_start(short: str, candidate: str) -> int | None:
    """Schwartz & Hearst's best long form: where in ``candidate`` it starts, or None."""
    s, k = len(short) - 1, len(candidate) - 1
    while s >= 0:
        ch = short[s].lower()
        if not ch.isalnum():
            s -= 1
            continue
        # the short form's first character must begin a word of the long form
        while k >= 0 and (candidate[k].lower() != ch or (s == 0 and k > 0 and candidate[k - 1].isalnum())):
            k -= 1
        if k < 0:
            return None
        k -= 1
        s -= 1
    return candidate.rfind(" ", 0, k + 1) + 1


def definitions(text: str) -> list[Definition]:
    """The abbreviations ``text`` defines as "long form (short form)" (see the module docstring)."""
    out = []
    for m in _PAREN.finditer(text):
        short = m.group(1)
        if not _short_form_ok(short):
            continue
        # the words before the parenthesis, within the sentence and the window; the search
        # looks back a bounded stretch, so a long contract full of parentheses stays linear
        window = min(len(short) + 5, 2 * len(short))
        lo = max(0, m.start() - _LOOKBACK_PER_WORD * window)
        cut = max(text.rfind(". ", lo, m.start()), text.rfind("\n", lo, m.start()), text.rfind("; ", lo, m.start()))
        words = list(_WORD.finditer(text, max(lo, cut + 1), m.start()))[-window:]
        if not words:
            continue
        base = words[0].start()
        start = _long_form_start(short, text[base:words[-1].end()])
        if start is None:
            continue
        long_start, long_end = base + start, words[-1].end()
        long_form = text[long_start:long_end]
        if len(long_form) <= len(short) or short.lower() in long_form.lower().split():
            continue
        out.append(Definition(long_start, long_end, m.start(1), m.start(1) + len(short), short))
    return out


def carry(text: str, spans: Sequence[tuple[int, int, str, float, str]]
          ) -> list[tuple[int, int, str, float, str]]:
    """``spans`` (start, end, label, raw confidence, source) with the short forms of the long
    forms they end on added (see the module docstring); the raw confidence is the long form's.
    A later use of a short form defined twice takes the nearer definition's label."""
    found = definitions(text)
    if not found or not spans:
        return list(spans)
    ending_at: dict[int, tuple[int, int, str, float, str]] = {}
    for sp in spans:
        if sp[0] < sp[1] and (sp[1] not in ending_at or sp[3] > ending_at[sp[1]][3]):
            ending_at[sp[1]] = sp  # the most confident span ending there
    carried: dict[str, list[tuple[int, str, float]]] = {}
    for d in found:
        if d.long_end in ending_at:
            _, _, label, raw, _ = ending_at[d.long_end]
            carried.setdefault(d.short, []).append((d.short_start, label, raw))
    if not carried:
        return list(spans)
    covered = bytearray(len(text) + 1)  # characters already in a span: linear in the text
    for s, e, *_ in spans:
        covered[s:e] = b"\x01" * (e - s)
    out = list(spans)
    for short, defs in carried.items():
        starts = [start for start, _, _ in defs]
        pattern = re.compile(r"(?<![\w-])" + re.escape(short) + r"(?![\w-])")
        for m in pattern.finditer(text, starts[0]):
            if any(covered[m.start():m.end()]):
                continue
            _, label, raw = defs[bisect.bisect_right(starts, m.start()) - 1]
            out.append((m.start(), m.end(), label, raw, "abbreviation"))
            covered[m.start():m.end()] = b"\x01" * (m.end() - m.start())
    return sorted(out, key=lambda sp: (sp[0], sp[1]))


__all__ = ["Definition", "carry", "definitions"]
