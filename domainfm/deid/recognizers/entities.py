"""spaCy's own named entities as one more vote (legal and generic profiles), minus durations,
frequencies and acronyms that name a kind of thing rather than an organisation."""

from __future__ import annotations

import re

from domainfm.deid.recognizers import vocab
from domainfm.deid.recognizers.base import TokenRecognizer, result


_PLACE_LABELS = frozenset({"GPE", "LOC", "FAC", "ORG", "NORP"})
_NUMBER_WORDS = (r"(?:\d+\+?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|"
                 r"forty|fifty|a|an|several|(?:a\s+)?few|(?:a\s+)?couple\s+of|many)")
_WEEKDAY = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
# what spaCy calls DATE but identifies no one: durations ("ten years", "a two-month period"),
# frequencies ("monthly"), anaphora ("the same day", "the following months") and centuries
_DURATION = re.compile(
    rf"(?i)^(?:(?:about|almost|at\s+least|less\s+than|more\s+than|over|some|up\s+to|nearly|the\s+last|the\s+first|"
    rf"another|a\s+further)\s+)?{_NUMBER_WORDS}(?:[\s-]+and\s+a\s+half)?[\s-]+(?:days?|weeks?|months?|years?|hours?|"
    rf"minutes?)(?:[\s-]+(?:long|ago))?$"
    r"|^(?:daily|weekly|monthly|yearly|annually|annual|quarterly)$"
    r"|^(?:the\s+|that\s+|this\s+|those\s+|next\s+|last\s+|every\s+|each\s+)?(?:same\s+|following\s+|next\s+|"
    r"previous\s+|preceding\s+|subsequent\s+|last\s+|first\s+|present\s+|\d+(?:st|nd|rd|th)\s+)?(?:day|days|week|"
    r"weeks|weekend|weekends|month|months|year|years|time)$"
    rf"|^the\s+(?:last|first|following|next|previous)\s+{_WEEKDAY}$"
    r"|^(?:the\s+)?(?:early\s+|late\s+|mid-?)?\d{1,2}(?:st|nd|rd|th)\s+century$|^the\s+age\s+of$"
    r"|^(?:the\s+)?(?:early\s+|late\s+|mid-?)?(?:'|19|20)?\d0['’]?s$")  # "the 60s"
# acronyms spaCy's news model calls organisations that name a kind of thing, not an organisation
_NOT_ORG = frozenset("iban ssn atm asap pin dob id faq ok tv dvd usb gps url pdf sms pc ceo cfo cto vip".split())


# a sentence's length is part of what identifies a case ("sentenced to five years' imprisonment")
_SENTENCE_AFTER = re.compile(r"(?i)^['’]?s?['’]?\s+(?:imprisonment|prison|detention|custody|suspended|probation)")


def _duration(text: str, start: int, end: int) -> bool:
    return bool(_DURATION.match(text[start:end].strip())) and not _SENTENCE_AFTER.match(text[end:end + 30]) \
        and not text[max(0, start - 16):start].rstrip().lower().endswith(("sentenced to", "sentence of"))


_NER_LABELS = {"PERSON": "NAME", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION", "ORG": "ORG",
               "NORP": "NATIONALITY", "DATE": "DATE", "TIME": "DATE", "MONEY": "QUANTITY",
               "QUANTITY": "QUANTITY", "PERCENT": "QUANTITY", "CARDINAL": "QUANTITY"}


class SpacyEntityRecognizer(TokenRecognizer):
    """spaCy's named entities, mapped to canonical labels, minus allow-listed vocabulary.

    Skipped in ALL-CAPS and all-lower-case notes, where a small news-trained model mostly
    mistakes clinical abbreviations for organisations.
    """

    labels = ("NAME", "LOCATION", "ORG", "NATIONALITY", "DATE", "QUANTITY")

    def load(self) -> None:
        self.stop = vocab.stop_words()
        self.keep = dict(self.options.get("labels") or {"PERSON": 0.6, "GPE": 0.5, "LOC": 0.5, "FAC": 0.5})
        self.legal = bool(self.options.get("legal"))

    def find(self, text, doc, shape):
        if not shape.mixed:
            return []
        out = []
        for ent in doc.ents:
            score = self.keep.get(ent.label_)
            if score is None:
                continue
            words = [t.text.lower() for t in ent if t.is_alpha]
            if ent.label_ in ("PERSON", "GPE", "LOC", "FAC", "ORG", "NORP") and (
                    not words or all(x in self.stop for x in words)):
                continue
            if ent.label_ in ("DATE", "TIME") and _duration(text, ent.start_char, ent.end_char) \
                    or ent.label_ == "ORG" and ent.text.lower() in _NOT_ORG:
                continue
            before = text[max(0, ent.start_char - 40):ent.start_char] if ent.label_ in _PLACE_LABELS else ""
            if self.legal and vocab.generic_institution(ent.text, text[ent.end_char:ent.end_char + 40], before):
                continue
            out.append(result(_NER_LABELS[ent.label_], ent.start_char, ent.end_char, score,
                              f"{self.name}:{ent.label_}"))
        return out
