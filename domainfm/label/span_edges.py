"""Span edges: a suggested mention does not begin or end with punctuation or a function word.

A frozen-encoder word tagger reads each word beside its neighbours, so it often carries a span
one word too far: "oral cleft ,", "odontoma and", "infertility of", "the disease". Entity
mentions of the kinds people annotate (diseases, drugs, names, places, clauses' key terms) are
noun phrases whose edges are content words, so trimming those edges is a rule of English, not a
list of what some corpus contained. Inside a span nothing is touched ("colon or lung cancer").

The other edge error is the opposite one: a hyphenated compound is one word to a reader but
three to the tagger (the tokenizer splits "X-linked" into "X", "-", "linked"), and the hyphen,
read alone, looks like punctuation, so the tagger cuts "X | linked disorder" or stops at
"Tay - Sachs" before "disease"'s compound partner. :func:`compound_edges` widens a span over
any compound it cuts and joins spans of one label that then overlap or touch, but never across
a blank line or the line break of a short line: a list written one entity per line ("fever" /
"cough") is two entities, while hard-wrapped text may run one on (the chunk stage's rule,
:func:`domainfm.chunk.reassemble.ends_short_line`).
Measured on NCBI-disease: README, span suggestions.
"""

from __future__ import annotations

import re
from functools import lru_cache

_OPENERS, _CLOSERS = "([{", ")]}"
# a hyphen (ASCII, Unicode hyphen, non-breaking hyphen; never a dash) joining two word pieces,
# with at most one space on each side: pre-tokenised corpora write "X - linked"
_HYPHENS = "-\u2010\u2011"
_PIECE = r"[^\W_][\w']*"
_AFTER = re.compile(rf" ?[{_HYPHENS}] ?({_PIECE})")
_BEFORE = re.compile(rf"(?<![\w'])({_PIECE}) ?[{_HYPHENS}] ?$")
_LOOK_BACK = 80  # characters searched before a span for the compound piece it cuts


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


def snap_compound(text: str, start: int, end: int) -> tuple[int, int]:
    """``(start, end)`` widened over the hyphenated compounds it cuts ("X" of "X - linked",
    "Sachs" of "Tay-Sachs"), piece by piece; a function word is never taken in, so a dash
    written as a spaced hyphen ("cancer - the first") stays outside."""
    while (m := _AFTER.match(text, end)) and not _is_function_word(m.group(1)):
        end = m.end()
    while (m := _BEFORE.search(text, max(0, start - _LOOK_BACK), start)) and not _is_function_word(m.group(1)):
        start = m.start()
    return start, end


def _parts_entities(text: str, end: int, start: int) -> bool:
    """Whether the gap ``text[end:start]`` between two spans keeps them two entities: it holds
    more than whitespace, a blank line, or a line break that ends a short line (a list, one entity
    per line); a line break after a long line is the writer's editor wrapping one entity."""
    from domainfm.chunk.reassemble import ends_short_line  # the chunk stage's rule; loaded on first use

    gap = text[end:start]
    return bool(gap.strip()) or gap.count("\n") > 1 or ends_short_line(text, end, start)


def compound_edges(text: str, spans):
    """``(start, end, label, score)`` spans widened over the compounds they cut
    (:func:`snap_compound`); spans of one label that then overlap, or that only whitespace
    separates, become one with the mean of their scores; whitespace holding a blank line or the
    line break of a short line (:func:`_parts_entities`) joins nothing. A span is not widened
    into another label's span. NCBI-disease tuning split, 3 draws: entity F1 0.545 -> 0.562 at 8
    seed abstracts, 0.638 -> 0.650 at 32, better on every draw."""
    spans = list(spans)
    widened = []
    for s, e, label, score in spans:
        ws, we = snap_compound(text, s, e)
        if (ws, we) != (s, e) and any(lab != label and a < we and ws < z for a, z, lab, _ in spans):
            ws, we = s, e
        widened.append((ws, we, label, score))
    out: list[tuple[int, int, str, float]] = []
    for s, e, label, score in sorted(widened):
        if out and out[-1][2] == label and (s <= out[-1][1] or not _parts_entities(text, out[-1][1], s)):
            ps, pe, _, pscore = out[-1]
            out[-1] = (ps, max(pe, e), label, (pscore + score) / 2)
            continue
        out.append((s, e, label, score))
    return out
