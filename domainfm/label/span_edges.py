"""Span edges: a suggested mention does not begin or end with punctuation or a function word.

A frozen-encoder word tagger reads each word beside its neighbours, so it often carries a span
one word too far: "oral cleft ,", "odontoma and", "infertility of", "the disease". Entity
mentions of the kinds people annotate (diseases, drugs, names, places, clauses' key terms) are
noun phrases whose edges are content words, so trimming those edges is a rule of English, not a
list of what some corpus contained. Inside a span nothing is touched ("colon or lung cancer").
Measured on NCBI-disease (devel, 2 seed draws): README, span suggestions.
"""

from __future__ import annotations

from functools import lru_cache

_OPENERS, _CLOSERS = "([{", ")]}"


@lru_cache(maxsize=1)
def _function_words() -> frozenset[str]:
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(STOP_WORDS)


def _is_function_word(word: str) -> bool:
    # lower case ("the", "and") or a capitalised sentence start ("The"); never ALL CAPS or a
    # single capital ("ALL" is a leukaemia, "A - T" ataxia telangiectasia)
    if word.islower() or (len(word) > 1 and word[0].isupper() and word[1:].islower()):
        return word.lower() in _function_words()
    return False


def _balanced(piece: str, i: int) -> bool:
    """Whether the bracket at ``piece[i]`` has its partner inside ``piece``."""
    ch = piece[i]
    if ch in _CLOSERS:
        return _OPENERS[_CLOSERS.index(ch)] in piece[:i]
    if ch in _OPENERS:
        return _CLOSERS[_OPENERS.index(ch)] in piece[i + 1:]
    return False


def trim_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    """``(start, end)`` without leading/trailing whitespace, punctuation (a bracket whose partner
    is inside the span stays) and function words; None when nothing is left."""
    while start < end:
        piece = text[start:end]
        if not piece[0].isalnum() and not _balanced(piece, 0):
            start += 1
            continue
        if not piece[-1].isalnum() and not _balanced(piece, len(piece) - 1):
            end -= 1
            continue
        words = piece.split()
        first, last = words[0], words[-1]
        if len(words) > 1 and first.isalpha() and _is_function_word(first):
            start += len(first)
            continue
        if len(words) > 1 and last.isalpha() and _is_function_word(last):
            end -= len(last)
            continue
        if len(words) == 1 and first.isalpha() and _is_function_word(first):
            return None
        return start, end
    return None


def trimmed(text: str, spans):
    """``(start, end, label, score)`` spans with trimmed edges, in their order; spans left empty
    are dropped, and of two that now coincide the higher score stays."""
    best: dict[tuple[int, int, str], float] = {}
    for s, e, label, score in spans:
        cut = trim_span(text, s, e)
        if cut is not None and score > best.get((cut[0], cut[1], label), float("-inf")):
            best[(cut[0], cut[1], label)] = score
    return sorted((s, e, label, score) for (s, e, label), score in best.items())
