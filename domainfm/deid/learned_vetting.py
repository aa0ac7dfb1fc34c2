"""Shape checks on the learned model's spans that no rule found.

The site model's spans are added to the rules' (``DeidConfig.ner_model``). Where a rule found the
same text too, the span is kept as is. A span only the model found is kept only if its shape
can be what its label says; the model's own errors on notes it never saw are mostly shapeless:

- a DATE made of a number inside a number ("hgb 10.[[4]]", "pain [[7/]]10"), a clock time
  ("[[9pm]]", "3p-[[9p]]") or a piece of a lab value ("7.[[41/38/]]-2"). A learned DATE must be a
  date: a month or holiday, a numeric date (m/d, m/d/y, y-m-d), a year or a decade, and it may
  not cut a number. Dates are what the rules' grammar reads best; what the model adds there
  was noise on the notes it never saw (on the sealed folds its DATE recall equals the rules').
- a DATE right after a measurement's name ("map [[10-15]]"; the rules' own list of them);
- a NAME or LOCATION that starts or ends inside a word, or has no letter;
- outside ALL-CAPS notes, a NAME or LOCATION written in lower case whose every word is English,
  a clinical word or drug (the rules' list, or an open drug dictionary of some 29,000 generic
  and brand names: :func:`vocab.drug_names`), or one typo from an English word ("[[recieved]]",
  "[[stoool]]", "beta [[blokers]]", "she [[called]] Ann"), unless a title, relation or role
  stands right before a name ("dr. [[hope]]", "daughter [[may]]"), a place's preposition or verb
  right before a place ("sent to [[heartwood]]"), or a word no dictionary explains stands beside
  it ("zyqvo [[perpetua]]", the other half of a name): a lower-case word the model calls a name,
  with no rule and no cue seeing a name there, is a name only if no dictionary explains it.

These checks read only the span, the characters beside it and the note's casing: no list of
what some notes contained.
"""

from __future__ import annotations

import re
import unicodedata

from domainfm.deid.labels import coarse
from domainfm.deid.recognizers import vocab
from domainfm.deid.recognizers.patterns import HOLIDAY, MONTH, NOT_DATE_BEFORE

_NUMERIC_DATE = re.compile(
    r"(?:\d{1,2}[/-]\d{1,2}(?:[/-](?:\d{2}|\d{4}))?"       # 3/4, 03-04-2019
    r"|\d{4}[-/.]\d{1,2}[-/.]\d{1,2}"                    # 2019-03-04
    r"|\d{1,2}\.\d{1,2}\.(?:\d{2}|\d{4})"                 # 3.4.19
    r"|(?:1[89]|20)\d\d"                                  # 2019
    r"|'\d\d"                                             # '98
    r"|(?:(?:1[89]|20)\d|')?\d0'?s)",                     # 1990s, '90s, 90s
    re.IGNORECASE)
_WORDY_DATE = re.compile(rf"\b(?:{MONTH}|{HOLIDAY})\b", re.IGNORECASE)
# a number continues across these when a digit follows: 11.8, 6/10, 11:30, 7-11
_NUMBER_JOINERS = "./:-"


def _cuts_a_number(text: str, start: int, end: int) -> bool:
    """Whether [start, end) begins or ends inside a number ("10.[[4]]", "[[7/]]10", "[[9]]:30")."""
    if _cuts_a_word(text, start, end):
        return True
    before, after = text[max(0, start - 2):start], text[end:end + 2]
    return (len(before) == 2 and before[1] in _NUMBER_JOINERS and before[0].isdigit()) \
        or (len(after) == 2 and after[0] in _NUMBER_JOINERS and after[1].isdigit()) \
        or (text[end - 1] in _NUMBER_JOINERS and after[:1].isdigit())


def _is_date(span: str) -> bool:
    core = span.strip().strip(".,;:()[]")
    return bool(_NUMERIC_DATE.fullmatch(core) or _WORDY_DATE.search(core))


def _cuts_a_word(text: str, start: int, end: int) -> bool:
    return (start > 0 and text[start - 1].isalnum() and text[start].isalnum()) or \
        (end < len(text) and text[end].isalnum() and text[end - 1].isalnum())


_WORD = re.compile(r"[^\W\d_]+")


def _explained_word(word: str) -> bool:
    """Whether a dictionary explains a lower-case word (:func:`vocab.explained`, or a drug).

    A word with a letter outside ASCII is explained only when its plain spelling is a dictionary
    word as it stands ("café", "naïve"). Cut at its accents, "łukasz" and "jürgen" left "ukasz"
    and "rgen", which the typo tolerance took for English words, and the names were dropped;
    whole, the tolerance still reads most accented names as a typo of some English word."""
    if word.isascii():
        return vocab.explained(word) or word in vocab.drug_names()
    plain = "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))
    return plain in vocab.stop_words() or vocab.in_lexicon(plain) or plain in vocab.CLINICAL_VOCAB


def _explained_lower_case(span: str) -> bool:
    """A lower-case span every word of which a dictionary explains (:func:`_explained_word`)."""
    words = _WORD.findall(span)
    return bool(words) and span == span.lower() and all(_explained_word(w) for w in words)


def plausible(text: str, start: int, end: int, label: str, *, all_caps: bool) -> bool:
    """Whether a learned span that no rule found has a shape its label allows (module doc)."""
    if end <= start:
        return False
    kind = coarse(label)
    span = text[start:end]
    if kind == "DATE":
        return not _cuts_a_number(text, start, end) and _is_date(span) and not _after_a_measure(text, start)
    if kind in ("NAME", "LOCATION"):
        if _cuts_a_word(text, start, end) or not any(c.isalpha() for c in span):
            return False
        return all_caps or not _explained_lower_case(span) or _after_a_cue(text, start, kind) \
            or _beside_an_unknown_word(text, start, end)
    return True


def _beside_an_unknown_word(text: str, start: int, end: int) -> bool:
    """"zyqvo [[perpetua]]": the word right before or after is one no dictionary explains, so the
    span may be the other half of a two-word name."""
    before = re.search(r"(?<![A-Za-z])([a-z]{3,}) $", text[max(0, start - 30):start])
    after = re.match(r" ([a-z]{3,})\b", text[end:end + 30])
    return any(m is not None and not _explained_lower_case(m.group(1)) for m in (before, after))


_NAME_CUES = (vocab.DOCTOR_TITLES | vocab.PATIENT_TITLES | vocab.OTHER_TITLES | vocab.WEAK_TITLES
              | vocab.RELATION_WORDS)
_PLACE_CUES = vocab.PLACE_PREPS | vocab.PLACE_VERBS


def _after_a_cue(text: str, start: int, kind: str) -> bool:
    """"dr. [[hope]]", "daughter [[may]]", "sent to [[heartwood]]": a title, relation or role
    before a name, a place's preposition or verb before a place, backs the model where the word
    itself is a dictionary word."""
    before = re.findall(r"[a-z@/.']+", text[max(0, start - 20):start].lower())
    if not before:
        return False
    last = before[-1]
    word = last.rstrip(".") or last  # "dr." and "dr" alike
    if kind == "LOCATION":
        return word in _PLACE_CUES or last in _PLACE_CUES
    return word in _NAME_CUES or last in _NAME_CUES or vocab.is_role_noun(word)


def _after_a_measure(text: str, start: int) -> bool:
    """"map [[10-15]]", "bp [[12/5]]": a measurement's name right before (the rules' own list)."""
    before = re.findall(r"[a-z0-9/:-]+", text[max(0, start - 20):start].lower())
    return bool(before) and before[-1].strip(":") in NOT_DATE_BEFORE
