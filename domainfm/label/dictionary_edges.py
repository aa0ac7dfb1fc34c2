"""Dictionary edges: a model span cut short inside a name the dictionary knows takes the name's edges.

A few-shot word tagger finds part of a name and loses the rest (made-up examples): "Zorbel
muscular" for "Zorbel muscular dystrophy", "dravoma" for "juvenile dravoma". Where a term
dictionary (:mod:`domainfm.label.dictionaries`) matches a longer run of words around a model span,
the dictionary says where the name ends; the span is widened to the match, keeping its label and
confidence (the model found the mention, the dictionary fixes its edges, as
:mod:`domainfm.label.span_edges` fixes punctuation). Model spans of the same label inside one match
become one span; a match another span crosses, or one holding a span of another label, is left
alone.

Whether a dictionary's edges are a label's edges is the annotation guideline's call, so the
seeds decide, per label and dictionary: of the seed spans of the label that a match covers, those
equal to the match agree, those strictly inside one (the annotator marked less than the
dictionary's name) disagree. A dictionary widens a label's spans when it agrees at least
``MIN_AGREE`` times and at least twice as often as it disagrees; each calibration fold decides
from its own training seeds, so the out-of-fold spans the confidences are fitted on are widened
as the suggestions will be. The manifest records the counts, never a string.
"""

from __future__ import annotations

from typing import Any, Sequence

from domainfm.corpus.document import Document

MIN_AGREE = 3  # seed spans equal to a match before a dictionary's edges are trusted for a label


class DictionaryEdges:
    """Per label, the dictionaries whose matches the seeds agree with (see the module docstring)."""

    def __init__(self, books: dict[str, tuple], summary: list[dict[str, Any]]):
        self.books, self.summary = books, summary

    @classmethod
    def fit(cls, seeds: Sequence[Document], labels: Sequence[str], dictionaries: Sequence) -> "DictionaryEdges | None":
        """The rule the seeds support, or None when no dictionary earns any label."""
        if not dictionaries:
            return None
        books: dict[str, list] = {}
        summary: list[dict[str, Any]] = []  # one entry per dictionary, in the order given
        for book in dictionaries:
            agree = dict.fromkeys(labels, 0)
            inside = dict.fromkeys(labels, 0)
            for d in seeds:
                found = book.find(d.text)
                for s in d.spans:
                    if s.label not in agree:
                        continue
                    for a, z in found:
                        if (a, z) == (s.start, s.end):
                            agree[s.label] += 1
                        elif a <= s.start and s.end <= z:
                            inside[s.label] += 1
            counts = {}
            for label in labels:
                used = agree[label] >= MIN_AGREE and agree[label] >= 2 * inside[label]
                if used:
                    books.setdefault(label, []).append(book)
                counts[label] = {"seed_spans_equal": agree[label], "seed_spans_inside": inside[label], "widens": used}
            summary.append({"dictionary": book.name, "labels": counts})
        if not books:
            return None
        return cls({label: tuple(b) for label, b in books.items()}, summary)

    def widen(self, text: str, spans: Sequence[tuple[int, int, str, float]]) -> list[tuple[int, int, str, float]]:
        """``spans`` ``(start, end, label, confidence)`` with those inside a longer match widened to it."""
        out = sorted(spans)
        found: dict[int, list[tuple[int, int]]] = {}  # a dictionary serving two labels is matched once
        for label, books in self.books.items():
            for book in books:
                if id(book) not in found:
                    found[id(book)] = book.find(text)
                for a, z in found[id(book)]:
                    touching = [x for x in out if x[0] < z and a < x[1]]
                    if not touching or any(x[0] < a or x[1] > z or x[2] != label for x in touching):
                        continue  # nothing to widen, or a span crosses the name or is of another label
                    if len(touching) == 1 and touching[0][:2] == (a, z):
                        continue
                    out = sorted([x for x in out if x not in touching] + [(a, z, label, max(x[3] for x in touching))])
        return out
