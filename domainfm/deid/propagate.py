"""Name propagation: a name found once is found everywhere it recurs.

Recognizers need context ("Dr.", "daughter", a capitalised first name) to call a word a name,
so the same surname written bare later in the note ("Vandersloot stable.") or in the patient's
next note slips through. Once a name token has been detected, every other whole-word
occurrence in the same document and in later documents of the same patient is flagged too.
Tokens that are stop words, clinical vocabulary or too short are not propagated: "Will" or
"May" found as a name once must not turn every "will" into PHI. A listed first name or surname
that is also an English word ("Amelia", a medical term; "Frank", "Rose") propagates only where it
is capitalised: "Plan: Amelia to return." in the next note, never "frank blood" or "BP rose".
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Iterable, Iterator

from domainfm.corpus.document import Document
from domainfm.deid.detection import Detection, merge_detections

NAME_LABELS = frozenset({"NAME", "PATIENT", "RELATIVE", "DOCTOR", "PERSON"})
PROPAGATED_SCORE = 0.6
_TOKEN = re.compile(r"[^\W\d_][^\W\d_'\-]+", re.UNICODE)


class NamePropagator:
    """Remembers detected name tokens per patient scope, for the whole run by default.

    A bound (``max_scopes``: the most recently seen patients with a name) forgets a patient seen
    longer ago: in a stream sorted by date, a patient's second visit can come after more other
    patients than any bound, and the bare surname in it would leak; it would also make Spark and
    Ray (whose groups hold fewer patients each) differ from one process. Unbounded, memory grows
    with the patients that have a name detected, a few hundred bytes each (about 250 MB for a
    million); patients without one are not kept.
    """

    def __init__(self, max_scopes: int | None = None):
        self.max_scopes = max_scopes
        self._memory: OrderedDict[str, dict[str, tuple[str, bool]]] = OrderedDict()  # label, capitalised only

    def __call__(self, doc: Document, detections: list[Detection]) -> list[Detection]:
        from domainfm.deid.recognizers.names import initials_before
        from domainfm.deid.surrogates import scope_for

        scope = scope_for(doc.id, doc.meta)
        known = self._memory.pop(scope, {})
        for det in detections:
            if det.label in NAME_LABELS:
                for token in _TOKEN.findall(doc.text[det.start:det.end]):
                    if (how := _propagatable(token)) is not None:
                        known.setdefault(token.casefold(), (det.label, how == "capitalised"))
        if not known:
            return detections
        self._memory[scope] = known
        while self.max_scopes is not None and len(self._memory) > self.max_scopes:
            self._memory.popitem(last=False)
        covered = [(d.start, d.end) for d in detections]
        extra = []
        for match in _TOKEN.finditer(doc.text):
            label, capitalised_only = known.get(match.group().casefold(), (None, False))
            if label is None or (capitalised_only and not match.group()[:1].isupper()) \
                    or any(s <= match.start() and match.end() <= e for s, e in covered):
                continue
            # initials right before a recurring name ("J.S. Quintavius" after "John Quintavius") go
            # with it, by the recognizers' rule: lower-case ones before a name written in lower case
            start = initials_before(doc.text, match.start(), match.group().islower())
            extra.append(Detection(start, match.end(), label, PROPAGATED_SCORE, "NamePropagation"))
        return merge_detections(doc.text, detections + extra) if extra else detections


def propagate_names(pairs: Iterable[tuple[Document, list[Detection]]]) -> Iterator[tuple[Document, list[Detection]]]:
    """Apply :class:`NamePropagator` to a stream of ``(document, detections)`` pairs in order."""
    propagator = NamePropagator()
    for doc, detections in pairs:
        yield doc, propagator(doc, list(detections))


def _propagatable(token: str) -> str | None:
    """How a detected name token propagates: ``"any"`` case, ``"capitalised"`` occurrences only (a
    listed name that is also an English word), or ``None`` (too short, a stop word or clinical
    vocabulary, or an English word no name list holds)."""
    from domainfm.deid.recognizers.vocab import all_names, is_english, stop_words

    low = token.casefold()
    if len(low) < 3 or low in stop_words():
        return None
    if not is_english(low):
        return "any"
    return "capitalised" if low in all_names() else None
