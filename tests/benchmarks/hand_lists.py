"""Leave-fold-out hand lists: the de-id benchmark's guard against word lists that learned the notes.

The rules carry word lists typed by hand (clinical abbreviations, words that are never names,
words after a hospital acronym, misspelled titles...). Those lists were written while reading
every PhysioNet development fold, so a sealed fold is scored with lists that already know its
rare words: a typo or a unit abbreviation that only that fold's patients write was added
because someone read it, and it then blocks a false positive that a new site's own rare words
would not. Fresh strings do not remove this: they replace the PHI, not the words around it.

For each sealed fold the benchmark therefore runs the rules with every hand-list word taken out
that (a) occurs in that fold's notes, (b) occurs in no other fold's notes, and (c) is rarer than
``zipf_floor`` in running English (wordfreq), since a common word would be in any list written
without these notes. That is the list a reader of the other folds alone would have written, as
far as one can tell from the text: cross-validation of the lists themselves.

Which lists: every upper-case module or class attribute of ``domainfm.deid`` that is a set of
strings (WordNet's lexicon, filled at run time from spaCy's tables, is not typed and stays).
Lists compiled into a regular expression at import are not reached; they are few and short.
"""

from __future__ import annotations

import re
import sys
from contextlib import contextmanager
from typing import Iterable, Iterator

# WordNet's words and its non-noun words: filled from spaCy's lookup tables, not typed
_RUNTIME_SETS = frozenset({"_ENGLISH", "_NOT_ONLY_NOUN"})
_WORD = re.compile(r"[a-z0-9][a-z0-9'/&.\-]*[a-z0-9.]|[a-z0-9]")
_PLAIN = re.compile(r"[a-z0-9]+")


def _deid_modules() -> list:
    """Every module of ``domainfm.deid``, imported (a list lives where its rule does)."""
    import importlib
    import pkgutil

    import domainfm.deid

    for info in pkgutil.walk_packages(domainfm.deid.__path__, "domainfm.deid."):
        importlib.import_module(info.name)
    return [m for name, m in sorted(sys.modules.items()) if name.startswith("domainfm.deid") and m is not None]


def hand_list_slots() -> list[tuple[object, str, frozenset | set]]:
    """``(owner, attribute, words)`` for every hand-typed word list of the de-id rules."""
    slots = []
    for module in _deid_modules():
        owners = [module] + [v for v in vars(module).values()
                             if isinstance(v, type) and v.__module__ == module.__name__]
        for owner in owners:
            for attr, value in list(vars(owner).items()):
                if attr in _RUNTIME_SETS or not attr.lstrip("_").isupper():
                    continue
                if isinstance(value, (set, frozenset)) and value and all(isinstance(w, str) for w in value):
                    slots.append((owner, attr, value))
    return slots


def words_of(text: str) -> set[str]:
    """Lower-case words of a text as the hand lists write them: with inner punctuation
    ("pt/ot", "a&ox3", "dr.") and as plain letter-digit runs."""
    low = text.lower()
    return set(_WORD.findall(low)) | set(_PLAIN.findall(low))


def fold_only_words(texts_by_fold: dict[int, Iterable[str]], folds: Iterable[int],
                    zipf_floor: float = 3.0) -> dict[int, frozenset[str]]:
    """Per fold in ``folds``: the hand-list words found in that fold's texts and in no other
    fold's, rarer than ``zipf_floor`` (wordfreq's Zipf scale, English)."""
    from wordfreq import zipf_frequency

    listed = {w.lower() for _, _, words in hand_list_slots() for w in words}
    seen = {fold: set().union(*(words_of(t) for t in texts)) & listed for fold, texts in texts_by_fold.items()}
    out = {}
    for fold in folds:
        elsewhere = set().union(*(words for other, words in seen.items() if other != fold))
        out[fold] = frozenset(w for w in seen.get(fold, set()) - elsewhere if zipf_frequency(w, "en") < zipf_floor)
    return out


def _clear_caches(modules: list) -> None:
    # lru_cache'd unions of the lists (stop words, name lists) must be rebuilt from the new ones
    for module in modules:
        for value in list(vars(module).values()):
            if callable(value) and hasattr(value, "cache_clear"):
                value.cache_clear()


@contextmanager
def hand_lists_without(words: Iterable[str]) -> Iterator[int]:
    """Run the rules with ``words`` (lower case) taken out of every hand list; yields how many
    list entries were taken out. Build the detector inside the block: recognizers may copy a
    list when they are made. The lists are restored on leaving."""
    drop = frozenset(words)
    slots = hand_list_slots()
    modules = _deid_modules()
    removed = 0
    try:
        for owner, attr, value in slots:
            kept = type(value)(w for w in value if w.lower() not in drop)
            removed += len(value) - len(kept)
            setattr(owner, attr, kept)
        _clear_caches(modules)
        yield removed
    finally:
        for owner, attr, value in slots:
            setattr(owner, attr, value)
        _clear_caches(modules)
