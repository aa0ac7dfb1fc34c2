"""Mention replacement for ``ner`` training: extra copies of the training documents in which the
text of chosen entity spans is replaced by fresh surrogates (``augment:`` in a task file).

A tagger trained on one site's notes learns that site's names as much as the contexts names stand
in: on the same notes with every name and place swapped for a string no list holds, a de-id model
trained without augmentation lost 6.5 points of recall (README, de-identification). Showing it the
same sentences with other names and places teaches the context. The replacements come from
:class:`~domainfm.deid.surrogates.SurrogateGenerator` (Faker's name and place lists, case and
shape kept, one consistent replacement per string within a copy of a document), drawn with a
secret derived from the seed and the copy number, so a run is reproducible and every copy differs.

Deliberately *not* made-up pseudo-words: the de-id benchmark's unseen estimate replaces names by
pseudo-words, and a model that had learned "an odd word is a name" would flatter that estimate
while finding no more real names.

Only training documents are augmented (after the train/eval split), so evaluation stays on the
site's own text.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from domainfm.config import check_fields
from domainfm.corpus.document import Document, Span
from domainfm.errors import ConfigError

AUGMENT_ID_SEPARATOR = "#aug"


@dataclass
class AugmentConfig:
    """Extra training copies with replaced entity strings (``ner`` only; off by default).

    Args:
        copies: augmented copies per training document, besides the original (0 = off).
            Training time grows with ``1 + copies`` at the same ``train.epochs``.
        labels: span labels (after ``labels.map``) whose text is replaced; leave out labels
            whose strings a context does not reveal (dates, codes, numbers): they keep their text.
        seed: seeds the replacements; ``null`` uses ``train.seed``.
        name_locales: Faker locales whose name lists the replacement names come from (default
            the US lists; e.g. ``[en_US, de_DE, pl_PL, fi_FI, tr_TR, vi_VN]`` for names of many
            origins, which a site's own notes may rarely show).
        place_locales: Faker locales whose city and street lists the replacement places come
            from, one drawn per place (default the US lists; the same list as ``name_locales``
            gives places of many countries).
    """

    copies: int = 0
    labels: list[str] = field(default_factory=lambda: ["NAME", "LOCATION"])
    seed: int | None = None
    name_locales: list[str] = field(default_factory=lambda: ["en_US"])
    place_locales: list[str] = field(default_factory=lambda: ["en_US"])

    def __post_init__(self):
        check_fields(self, "augment")
        if self.copies < 0:
            raise ConfigError(f"augment.copies must be an int >= 0 (0 = off), got {self.copies!r}")
        if not self.labels or not all(isinstance(x, str) and x.strip() for x in self.labels):
            raise ConfigError(f"augment.labels must list span labels to replace, e.g. [NAME, LOCATION]; "
                              f"got {self.labels!r}")
        if not isinstance(self.name_locales, (list, tuple)) or not self.name_locales:
            raise ConfigError(f"augment.name_locales must list Faker locales, e.g. [en_US, pl_PL]; "
                              f"got {self.name_locales!r}")
        if not isinstance(self.place_locales, (list, tuple)) or not self.place_locales:
            raise ConfigError(f"augment.place_locales must list Faker locales, e.g. [en_US, de_DE]; "
                              f"got {self.place_locales!r}")
        from domainfm.deid.surrogates import check_place_locales, name_lists

        try:
            name_lists(tuple(self.name_locales))
            check_place_locales(tuple(self.place_locales))
        except ConfigError as exc:
            raise ConfigError(f"augment.{exc}") from None


def augment_documents(docs: list[Document], cfg: AugmentConfig, seed: int) -> tuple[list[Document], dict]:
    """``cfg.copies`` copies of every document that has a span to replace, and counts.

    Each copy's id is ``<id>#aug<k>``; its spans keep their labels and move with the new text.
    Nested or crossing spans inside a replaced one are dropped from the copy (counted), since
    their text no longer exists.
    """
    from domainfm.deid.surrogates import SurrogateGenerator

    if cfg.copies == 0:
        return [], {"copies": 0}
    wanted = set(cfg.labels)
    base = cfg.seed if cfg.seed is not None else seed
    out: list[Document] = []
    replaced = dropped = 0
    for k in range(1, cfg.copies + 1):
        secret = hashlib.sha256(f"domainfm-augment\x1f{base}\x1f{k}".encode()).digest()
        generator = SurrogateGenerator(secret, name_locales=tuple(cfg.name_locales),
                                       place_locales=tuple(cfg.place_locales))
        for doc in docs:
            if not any(s.label in wanted for s in doc.spans):
                continue
            copy, n_replaced, n_dropped = _replaced(doc, wanted, generator, f"aug{k}:{doc.id}")
            copy.id = f"{doc.id}{AUGMENT_ID_SEPARATOR}{k}"
            out.append(copy)
            replaced += n_replaced
            dropped += n_dropped
    return out, {"copies": cfg.copies, "documents": len(out), "spans_replaced": replaced,
                 "spans_dropped": dropped, "labels": sorted(wanted), "name_locales": list(cfg.name_locales),
                 "place_locales": list(cfg.place_locales)}


def _replaced(doc: Document, wanted: set[str], generator, scope: str) -> tuple[Document, int, int]:
    # the replaced ranges, outermost first: a wanted span inside another replaced one goes with it
    # Where a span is glued to a word ("...inBuilding"), a replacement ending in a letter would
    # make one new word whose sub-words cross the span's edge: a space keeps them apart.
    text = doc.text
    cuts: dict[tuple[int, int], tuple[str, str, str]] = {}  # (space before, replacement, space after)
    last_end = -1
    for s in sorted(doc.spans, key=lambda x: (x.start, -x.end)):
        if s.label in wanted and s.start >= last_end:
            new = generator.surrogate(text[s.start:s.end], s.label, scope)
            lead = " " if s.start > 0 and text[s.start - 1].isalnum() and new[:1].isalnum() else ""
            trail = " " if s.end < len(text) and text[s.end].isalnum() and new[-1:].isalnum() else ""
            cuts[(s.start, s.end)] = (lead, new, trail)
            last_end = s.end
    pieces, cursor, ends = [], 0, []  # ends: (old end of a cut, total length change up to it)
    change = 0
    for (start, end), parts in cuts.items():
        pieces += [text[cursor:start], "".join(parts)]
        change += len("".join(parts)) - (end - start)
        ends.append((end, change))
        cursor = end
    pieces.append(doc.text[cursor:])

    def moved(pos: int) -> int:
        # the change accumulated by the last cut ending at or before pos
        return pos + next((c for end, c in reversed(ends) if pos >= end), 0)

    kept, dropped = [], 0
    for s in doc.spans:
        if (s.start, s.end) in cuts and s.label in wanted:
            lead, new, _ = cuts[(s.start, s.end)]
            start = moved(s.start) + len(lead)
            kept.append(Span(start, start + len(new), s.label, attrs=dict(s.attrs)))
        elif any(a < s.end and s.start < b for a, b in cuts):
            dropped += 1  # overlaps replaced text: its own text is gone
        else:
            kept.append(Span(moved(s.start), moved(s.end), s.label, attrs=dict(s.attrs)))
    copy = Document(doc.id, "".join(pieces), dict(doc.meta), label=doc.label,
                    labels=None if doc.labels is None else list(doc.labels),
                    spans=sorted(kept, key=lambda x: (x.start, x.end)))
    return copy, len(cuts), dropped
