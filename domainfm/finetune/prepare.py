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
    """Write ``step.out`` from ``step.src`` unless it is there already, made from this source as
    it is now; returns the counts (None if skipped).

    A prepared file whose import manifest records another format or another content of the source
    (the source edited since) is prepared again: reused, it trained on the old data. A file
    without that manifest is the user's own and is kept.

    Raises:
        ConfigError: unknown format or options (the message lists the valid ones).
        CorpusError: the source is missing or malformed.
    """
    from domainfm.corpus.importers import IMPORTERS
    from domainfm.corpus.importing import import_corpus

    out = Path(step.out)
    if out.is_file() and not force and _prepared_from(out, step):
        return None
    if step.format not in IMPORTERS:
        names = sorted(IMPORTERS)
        raise ConfigError(f"data.prepare: unknown format {step.format!r}{suggest(step.format, names)}; "
                          f"available: {', '.join(names)}")
    return import_corpus(step.format, step.src, out, step.options).counts.to_dict()


def _prepared_from(out: Path, step) -> bool:
    """Whether ``out`` holds ``step.src`` as it is now: its import manifest names the step's format
    and the source's current content (sha256), or there is no manifest (a file the user made)."""
    import json

    from domainfm.manifest import describe_input, manifest_path_for

    manifest = manifest_path_for(out)
    if not manifest.is_file():
        return True
    try:
        recorded = json.loads(manifest.read_text(encoding="utf-8"))
        fmt = recorded["config"]["format"]
        digests = {entry.get("sha256") for entry in recorded["inputs"] if isinstance(entry, dict)}
    except (OSError, ValueError, KeyError, TypeError):
        return False  # a manifest that cannot be read vouches for nothing: prepare again
    src = Path(step.src)
    return fmt == step.format and src.exists() and describe_input(src).get("sha256") in digests
