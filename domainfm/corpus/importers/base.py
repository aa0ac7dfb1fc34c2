"""Importer registry: a format name maps to an options dataclass and a reader.

A reader turns a source (file or folder) into a stream of :class:`Document` or
:class:`Rejected` items; the shared runner (:func:`domainfm.corpus.importing.import_corpus`)
validates, de-duplicates ids, writes output and rejects, and keeps the counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

from domainfm.config import suggest
from domainfm.corpus.document import Document
from domainfm.corpus.io import Rejected
from domainfm.errors import ConfigError



class Sourced(NamedTuple):
    """A document with where it came from, so a later reject (a duplicate id) can name the
    location and keep the source record as read. Readers may yield it instead of a bare
    :class:`Document`."""

    doc: Document
    location: str | None = None
    raw: str | None = None
    # several annotators' versions and the conflicts left unresolved (labelstudio, prodigy), for
    # the agreement report: handed over here, since the document's meta may hold a field of the
    # user's own data named 'annotations' (the versions then go to 'annotations_import')
    annotators: tuple[list, list[str]] | None = None


class Skipped(NamedTuple):
    """A file a folder reader left out on purpose, counted by reason in the import manifest and
    on the console (never a record: ``read = written + rejected`` counts records)."""

    location: str
    reason: str


def hidden(rel: Path) -> bool:
    """Whether a path below the source folder lies in or is a hidden one (``.git/``,
    ``.ipynb_checkpoints/``, ``.DS_Store``, macOS's ``._`` copies): tools' copies and metadata,
    not the corpus. Jupyter's checkpoint copy of a note, read as a second document under another
    id, could put one note on both sides of a train/test split."""
    return any(part.startswith(".") for part in rel.parts)


def visible(paths, src: Path) -> tuple[list[Path], list[Skipped]]:
    """``paths`` (found below ``src``) split into those to read and the hidden ones, skipped."""
    keep, skipped = [], []
    for path in paths:
        rel = path.relative_to(src)
        if hidden(rel):
            skipped.append(Skipped(rel.as_posix(), "hidden"))
        else:
            keep.append(path)
    return keep, skipped


Reader = Callable[[Path, Any], Iterator["Document | Sourced | Rejected | Skipped"]]
ExtraInputs = Callable[[Path, Any], list[Path]]


def _no_extra_inputs(src: Path, options: Any) -> list[Path]:
    return []


@dataclass(frozen=True)
class Importer:
    """Args:
    inputs: the files the reader reads besides ``src`` (the PhysioNet gold file), from the
        source and the options. The runner refuses an output that would overwrite one and
        hashes them into the manifest, as it does ``src``.
    """

    name: str
    summary: str
    options_cls: type
    read: Reader
    inputs: ExtraInputs = _no_extra_inputs


IMPORTERS: dict[str, Importer] = {}


def register(name: str, options_cls: type, summary: str, *,
             inputs: ExtraInputs | None = None) -> Callable[[Reader], Reader]:
    def decorate(read: Reader) -> Reader:
        if name in IMPORTERS:
            raise ValueError(f"importer {name!r} is registered twice")
        IMPORTERS[name] = Importer(name, summary, options_cls, read, inputs or _no_extra_inputs)
        return read

    return decorate


def get_importer(name: str) -> Importer:
    try:
        return IMPORTERS[name]
    except KeyError:
        raise ConfigError(
            f"unknown import format {name!r}{suggest(name, IMPORTERS)}; "
            f"available: {', '.join(sorted(IMPORTERS))}"
        ) from None


def non_finite_field(obj: Any, path: str = "") -> str | None:
    """Where the first NaN or infinite number in a parsed JSON value is (``data.extra``,
    ``annotations[0].result[1].score``), or None. Python's ``json`` reads ``NaN`` and
    ``Infinity``; JSON has no such values, so no output line could hold them.

    Example:
        >>> non_finite_field({"data": {"n": [1, float("nan")]}})
        'data.n[1]'
    """
    stack = [(obj, path)]
    while stack:
        value, where = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return where or "the value"
        if isinstance(value, dict):
            stack.extend((v, f"{where}.{k}" if where else str(k)) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((v, f"{where}[{i}]") for i, v in reversed(list(enumerate(value))))
    return None
