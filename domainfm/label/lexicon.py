"""The seed lexicon: the surface forms the seed documents annotate, found again in new text.

A handful of annotated documents already name many of the entities a pool repeats ("breast
cancer", "ataxia-telangiectasia", a ward's name): an annotator marks the same string again and
again, and a few-shot tagger still misses or cuts it (it tagged "cancer" in "breast cancer").
The lexicon is what the annotator taught, used literally, beside the model:

- **Entries.** Each seed span's words (``\\w+`` runs and single punctuation marks, so
  "non-Hodgkin" and "non - Hodgkin" are one entry). An entry with a lower-case letter matches
  in any case (sentence-initial capitals); one without (acronyms, codes: "AT", "DM1") only as
  written, so "AT" never matches "at".
- **Consistency on the seeds.** An entry is kept only if, where it occurs in the seed texts, at
  least half of its occurrences are annotated with its label (``min_share``): a string the
  annotator marked once and left unmarked elsewhere is not a reliable cue. One character is
  never an entry. A string annotated with two labels takes the more frequent one.
- **Matching.** Left to right, longest entry first, on word boundaries.
- **Combining with the model** (:meth:`SeedLexicon.combine`). A lexicon match replaces the model
  spans it contains (the model cut or missed part of a known name) and is added where the model
  found nothing; where a model span reaches outside it, the model's span stays (the annotator's
  string may be part of a longer name). A model span equal to a match is kept as
  ``model+lexicon``.

Confidences are not set here: the span methods calibrate each source (``model``, ``lexicon``,
``model+lexicon``) on out-of-fold seeds, where every fold builds its own lexicon from its
training seeds (:class:`domainfm.label.span_calibration.SpanCalibration`).

Measured on NCBI-disease with the frozen probe (first sub-word features, BIO-constrained
decoding; 2 draws, devel): entity F1 0.347 / 0.501 at 8 / 32 seed abstracts with the lexicon
against 0.334 / 0.444 without; see the README for the benchmark of both span methods.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from domainfm.corpus.document import Document

WORD = re.compile(r"\w+|[^\w\s]")
MAX_WORDS = 12  # longer annotated strings do not recur verbatim


def words(text: str) -> list[tuple[int, int]]:
    """Character offsets of the lexicon's words in ``text``."""
    return [(m.start(), m.end()) for m in WORD.finditer(text)]


def longest_matches(count: int, max_words: int, lookup: Callable[[int, int], Any]) -> list[tuple[int, int, Any]]:
    """``(first word, number of words, what lookup said)`` of each match among ``count`` words,
    left to right, the longest run first: ``lookup(i, n)`` says what words ``i .. i + n - 1``
    match, or None. Shared by the seed lexicon and the term dictionaries."""
    out = []
    i = 0
    while i < count:
        for n in range(min(max_words, count - i), 0, -1):
            hit = lookup(i, n)
            if hit is not None:
                out.append((i, n, hit))
                i += n
                break
        else:
            i += 1
    return out


def _case_free(surface: str) -> bool:
    """Entries with a lower-case letter match in any case; acronyms and codes only as written."""
    return any(ch.islower() for ch in surface)


@dataclass
class SeedLexicon:
    """Annotated strings of the seeds, by label (see the module docstring)."""

    folded: dict[tuple[str, ...], tuple[str, float]]  # case-folded words -> (label, share annotated)
    exact: dict[tuple[str, ...], tuple[str, float]]  # words as written -> (label, share annotated)
    max_words: int
    summary: dict

    @classmethod
    def from_documents(cls, seeds: Sequence[Document], labels: Sequence[str] | None = None,
                       min_share: float = 0.5) -> "SeedLexicon":
        wanted = set(labels) if labels is not None else None
        votes: dict[tuple[bool, tuple[str, ...]], Counter] = defaultdict(Counter)
        for d in seeds:
            for s in d.spans:
                if wanted is not None and s.label not in wanted:
                    continue
                surface = d.text[s.start:s.end]
                toks = tuple(surface[a:z] for a, z in words(surface))
                if not toks or len(toks) > MAX_WORDS or len("".join(toks)) < 2 or not any(
                        ch.isalnum() for ch in surface):
                    continue
                folded = _case_free(surface)
                votes[(folded, tuple(t.casefold() for t in toks) if folded else toks)][s.label] += 1
        candidates = cls({}, {}, 0, {})
        for (folded, key), counts in votes.items():
            label = max(sorted(counts), key=lambda lab: counts[lab])
            (candidates.folded if folded else candidates.exact)[key] = (label, 1.0)
        candidates.max_words = max((len(k) for k in [*candidates.folded, *candidates.exact]), default=0)
        # consistency: how often each entry, where it occurs in the seeds, is annotated so
        seen: Counter = Counter()
        marked: Counter = Counter()
        for d in seeds:
            gold = {s.key for s in d.spans}
            for start, end, label, _, key in candidates._find(d.text):
                seen[key] += 1
                marked[key] += (start, end, label) in gold
        kept = cls({}, {}, 0, {})
        dropped = 0
        for table, out in ((candidates.folded, kept.folded), (candidates.exact, kept.exact)):
            for key, (label, _) in table.items():
                ref = (table is candidates.folded, key)
                if seen[ref] and marked[ref] / seen[ref] >= min_share:
                    out[key] = (label, marked[ref] / seen[ref])
                else:
                    dropped += 1
        kept.max_words = max((len(k) for k in [*kept.folded, *kept.exact]), default=0)
        kept.summary = {"entries": len(kept.folded) + len(kept.exact), "dropped_inconsistent": dropped,
                        "min_share": min_share}
        return kept

    def __len__(self) -> int:
        return len(self.folded) + len(self.exact)

    def _find(self, text: str):
        """``(start, end, label, share, entry)`` of each match, longest first, left to right."""
        spans = words(text)
        raw = [text[a:z] for a, z in spans]
        low = [t.casefold() for t in raw]

        def lookup(i: int, n: int):
            key = tuple(raw[i:i + n])
            if key in self.exact:
                return (*self.exact[key], (False, key))
            key = tuple(low[i:i + n])
            return (*self.folded[key], (True, key)) if key in self.folded else None

        return [(spans[i][0], spans[i + n - 1][1], *hit) for i, n, hit in longest_matches(len(spans), self.max_words, lookup)]

    def find(self, text: str) -> list[tuple[int, int, str, float]]:
        """Lexicon matches in ``text``: ``(start, end, label, share)``, ``share`` being how often the
        entry is annotated where it occurs in the seeds."""
        return [(s, e, lab, share) for s, e, lab, share, _ in self._find(text)] if len(self) else []

    def combine(self, text: str, spans: Sequence[tuple[int, int, str, float]]
                ) -> list[tuple[int, int, str, float, str]]:
        """Model spans ``(start, end, label, confidence)`` and lexicon matches as
        ``(start, end, label, confidence, source)``, source one of ``model``, ``model+lexicon``
        (a model span the lexicon confirms; the model's confidence) and ``lexicon``
        (confidence: the entry's share on the seeds). The span methods calibrate each source."""
        out = [(s, e, lab, c, "model") for s, e, lab, c in spans]
        for s, e, lab, share in self.find(text):
            overlapping = [x for x in out if x[0] < e and s < x[1]]
            if not all(s <= x[0] and x[1] <= e for x in overlapping):
                continue  # a model span reaches beyond the known string: keep the model's
            same = [x for x in overlapping if (x[0], x[1], x[2]) == (s, e, lab)]
            out = [x for x in out if x not in overlapping]
            out.append((s, e, lab, same[0][3], "model+lexicon") if same else (s, e, lab, share, "lexicon"))
        return sorted(out)
