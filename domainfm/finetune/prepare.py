"""Turn the original dataset files a task names into domainfm JSONL (``data.prepare``).

A step's ``format`` is any importer of ``domainfm import`` (``csv``, ``conll``, ..., and the
dataset importers ``mtsamples``, ``unfair-tos``, ``cuad-types`` of
:mod:`domainfm.corpus.importers.datasets`), run through :func:`domainfm.corpus.import_corpus`:
one registry, the import stage's rules (rejects with reasons, counts that reconcile, a manifest).
"""

from __future__ import annotations

from pathlib import Path

from domainfm.config import suggest
from domainfm.errors import ConfigError


def run_prepare(step, *, force: bool = False) -> dict | None:
    """Write ``step.out`` from ``step.src`` unless it exists; returns the counts (None if skipped).

    Raises:
        ConfigError: unknown format or options (the message lists the valid ones).
        CorpusError: the source is missing or malformed.
    """
    from domainfm.corpus.importers import IMPORTERS
    from domainfm.corpus.importing import import_corpus

    out = Path(step.out)
    if out.is_file() and not force:
        return None
    if step.format not in IMPORTERS:
        names = sorted(IMPORTERS)
        raise ConfigError(f"data.prepare: unknown format {step.format!r}{suggest(step.format, names)}; "
                          f"available: {', '.join(names)}")
    return import_corpus(step.format, step.src, out, step.options).counts.to_dict()
