"""Per-document word views shared by the token recognizers (names, places).

A spaCy ``Doc`` is tokenised once per batch; these views (token texts, lower-cased forms) are
computed once per document and cached on the ``Doc`` so every recognizer reads the same words.
"""

from __future__ import annotations

import re

from domainfm.deid.recognizers import vocab
from domainfm.deid.recognizers.base import token_texts

_NAMEY = re.compile(r"[A-Za-zÀ-ÖØ-öø-ÿĀ-ž][A-Za-zÀ-ÖØ-öø-ÿĀ-ž'\-]*[A-Za-zÀ-ÖØ-öø-ÿĀ-ž]")


class Words:
    """Per-document token views, computed once and shared by the token recognizers."""

    def __init__(self, doc):
        self.doc = doc
        self.text = token_texts(doc)
        if "deid_raw" not in doc.user_data:  # Doc.text joins every token on each access
            doc.user_data["deid_raw"] = doc.text
        self.lower = [t.lower().rstrip(".") if t not in (".",) else t for t in self.text]
        self.n = len(self.text)

    @classmethod
    def of(cls, doc) -> "Words":
        cached = doc.user_data.get("deid_words")
        if cached is None:
            cached = doc.user_data["deid_words"] = cls(doc)
        return cached



def namey(word: str) -> bool:
    """Whether a word is shaped like a name: letters, with inner apostrophes or hyphens."""
    return bool(_NAMEY.fullmatch(word))


def function_words() -> frozenset[str]:
    """Words that never start or continue a name or place on their own: stop words, clinical
    vocabulary and month names."""
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(STOP_WORDS) | vocab.CLINICAL_VOCAB | vocab.MONTH_WORDS


def unknown_capitalised(w: Words, k: int, stop: frozenset[str], function: frozenset[str]) -> bool:
    """Token k is a capitalised word no list knows: 4+ letters in title case, no stop or function
    word, not English nor one typo from it, no clinical word ("Quintara", not "Lasix", "Afib" or
    "Mornig"). Shared by the name and place rules, which add their own vetoes."""
    if k >= w.n:
        return False
    word, low = w.text[k], w.lower[k]
    return len(word) >= 4 and word[0].isupper() and word[1:].islower() and namey(word) \
        and low not in stop and low not in function and not vocab.explained(low)
