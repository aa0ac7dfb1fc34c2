"""Span heads: which part of speech ends a label's mentions, learned from the seeds.

A mention of a disease, a drug or a party is a noun phrase, and a noun phrase ends in its head,
a noun. A few-shot word tagger does not know that: it marks "hereditary" without the disease
after it, "asymptomatic", "skeletal". A date ends in a number or a month's name, so no fixed
rule holds for every label; the seeds say which one does:

- the seeds' spans of a label are tagged with spaCy's part-of-speech tagger (the embedded
  ``en_core_web_sm``; parser and NER off), and the parts of speech that end at least
  ``MIN_SHARE`` of them are that label's heads (NCBI-disease: noun and proper noun, 97% of its
  spans);
- a span the model suggests whose last word is none of them is left out. Lexicon matches and
  carried abbreviations are kept (an annotator's own string is its own evidence);
- a label with fewer than ``MIN_SPANS`` seed spans gets no rule: too few to say.

The manifest records each label's heads (part-of-speech names only, never a string). Measured on
NCBI-disease: README, span suggestions.
"""

from __future__ import annotations

import bisect
from collections import Counter, OrderedDict
from typing import Any, Sequence

from domainfm.corpus.document import Document
from domainfm.label.encoders import text_key

MIN_SHARE = 0.05  # a part of speech ending fewer of a label's seed spans is not a head
MIN_SPANS = 20  # seed spans of a label needed before its heads are trusted
CACHED_TEXTS = 4096  # the seeds are read once per fold; a serving backend's pool must not pile up
BLOCK_CHARS = 100_000  # a long contract is tagged in blocks of lines (spaCy refuses texts over 1M characters)


class PartsOfSpeech:
    """spaCy's tagger over texts, each text tagged once (folds, repeats and the final model
    share it); the ``CACHED_TEXTS`` most recently read are kept."""

    def __init__(self) -> None:
        from domainfm.models import load_spacy

        self.nlp = load_spacy(disable=["parser", "ner", "lemmatizer"])
        self._cache: OrderedDict[str, tuple[list[int], list[int], list[str]]] = OrderedDict()

    def tokens(self, text: str) -> tuple[list[int], list[int], list[str]]:
        """Start and end offsets and the part of speech of each token of ``text``."""
        key = text_key(text)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        starts, ends, tags = [], [], []
        for offset, block in _blocks(text, BLOCK_CHARS):
            for t in self.nlp(block):
                starts.append(offset + t.idx)
                ends.append(offset + t.idx + len(t.text))
                tags.append(t.pos_)
        self._cache[key] = (starts, ends, tags)
        if len(self._cache) > CACHED_TEXTS:
            self._cache.popitem(last=False)
        return self._cache[key]

    def last(self, text: str, start: int, end: int) -> str | None:
        """The part of speech of the last token that overlaps ``[start, end)`` (a span's word
        may be part of a longer spaCy token)."""
        starts, ends, pos = self.tokens(text)
        k = bisect.bisect_left(starts, end) - 1
        return pos[k] if k >= 0 and ends[k] > start else None


def _blocks(text: str, size: int):
    """``(offset, block)`` pieces of ``text`` of about ``size`` characters, cut after a newline
    where there is one (else after a space, else anywhere)."""
    start = 0
    while len(text) - start > size:
        cut = text.rfind("\n", start, start + size)
        if cut <= start:
            cut = text.rfind(" ", start, start + size)
        end = cut + 1 if cut > start else start + size
        yield start, text[start:end]
        start = end
    yield start, text[start:]


class HeadRule:
    """Per label, the parts of speech its mentions end in (see the module docstring)."""

    def __init__(self, heads: dict[str, frozenset[str]], pos: PartsOfSpeech):
        self.heads, self.pos = heads, pos

    @classmethod
    def fit(cls, seeds: Sequence[Document], labels: Sequence[str], pos: PartsOfSpeech) -> "HeadRule | None":
        endings: dict[str, Counter] = {label: Counter() for label in labels}
        for doc in seeds:
            for span in doc.spans:
                if span.label in endings:
                    tag = pos.last(doc.text, span.start, span.end)
                    if tag is not None:
                        endings[span.label][tag] += 1
        heads = {label: frozenset(tag for tag, n in c.items() if n >= MIN_SHARE * sum(c.values()))
                 for label, c in endings.items() if sum(c.values()) >= MIN_SPANS}
        return cls(heads, pos) if heads else None

    def keep(self, text: str, spans: Sequence[tuple[int, int, str, float]]) -> list[tuple[int, int, str, float]]:
        """The model spans whose last word is one of their label's heads (labels without a
        rule keep all)."""
        out = []
        for span in spans:
            allowed = self.heads.get(span[2])
            if allowed is None or self.pos.last(text, span[0], span[1]) in allowed:
                out.append(span)
        return out

    @property
    def summary(self) -> dict[str, Any]:
        return {label: sorted(tags) for label, tags in sorted(self.heads.items())}


__all__ = ["HeadRule", "MIN_SHARE", "MIN_SPANS", "PartsOfSpeech"]
