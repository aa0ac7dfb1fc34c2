"""Run an importer: validate, de-duplicate, write documents + rejects + manifest, reconcile."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from domainfm.config import from_dict, to_dict
from domainfm.corpus.agreement import AgreementTally
from domainfm.corpus.importers import IMPORTERS, get_importer
from domainfm.corpus.importers.base import Skipped, Sourced
from domainfm.corpus.io import (Counts, DocumentWriter, OutputLock, Rejected, RejectWriter, check_output_path,
                                rejects_path_for)
from domainfm.errors import CorpusError, RecordError
from domainfm.manifest import write_manifest

# span attributes an importer sets where it repaired a record instead of rejecting it: crossing or
# repeated same-label spans merged (physionet, brat, tab), a stray I- tag read as an entity start (conll)
REPAIR_ATTRS = frozenset({"merged_from", "repaired"})


@dataclass
class ImportConfig:
    """What ``domainfm import`` ran with; saved in the output's manifest.

    Args:
        format: importer name (``jsonl``, ``csv``, ``textdir``, ``physionet``, ``tab``, ``brat``, ``conll``,
            ``labelstudio``, ``prodigy``).
        src: source file or folder.
        out: output JSONL path.
        options: the importer's own options (see ``domainfm import FORMAT --help``).
    """

    format: str
    src: str
    out: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImportResult:
    out: Path
    rejects: Path | None
    manifest: Path
    counts: Counts
    first_rejects: list[str]
    agreement: dict | None = None
    repaired: int = 0  # documents written with a repair (StageResult.repaired)
    repaired_spans: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # files a folder reader left out, by reason


def import_corpus(
    format: str,
    src: str | os.PathLike,
    out: str | os.PathLike,
    options: Mapping[str, Any] | Any | None = None,
    *,
    on_progress: Callable[[Counts], None] | None = None,
) -> ImportResult:
    """Import ``src`` in ``format`` into domainfm JSONL at ``out``.

    Invalid records go to ``<out>.rejects.jsonl`` (with location and reason); ids must be
    unique across the whole output. ``read == written + rejected`` always holds.

    Example:
        >>> result = import_corpus("csv", "notes.csv", "notes.jsonl", {"text_col": "note"})  # doctest: +SKIP
        >>> result.counts.rejected
        0
    """
    importer = get_importer(format)
    if options is None or isinstance(options, Mapping):
        opts = from_dict(importer.options_cls, dict(options or {}))
    else:
        opts = options
    src, out = Path(src), Path(out)
    rejects_file = rejects_path_for(out)
    inputs = _inputs(importer, src, opts)
    check_output_path(out, inputs=inputs)
    check_output_path(rejects_file, inputs=inputs)
    with OutputLock(out):
        return _import_locked(importer, opts, format, src, out, on_progress, inputs)


def extra_inputs(format: str, src: str | os.PathLike, options: Mapping[str, Any] | None) -> list[Path]:
    """The files an import of ``src`` reads besides it (PhysioNet's ``id-phi.phrase`` beside
    ``id.text``): a pipeline hashes them into the import stage's key, so an edited gold file
    re-runs the import. None for a format that is not an importer (a dataset preparer)."""
    if format not in IMPORTERS:
        return []
    importer = IMPORTERS[format]
    return _inputs(importer, Path(src), from_dict(importer.options_cls, dict(options or {})))[1:]


def _inputs(importer, src: Path, opts) -> list[Path]:
    """``src`` and the files the importer reads beside it (a gold annotation file), so an output
    cannot overwrite one and the manifest hashes each. One inside a ``src`` folder is hashed
    with the folder already."""
    inside = src.resolve() if src.is_dir() else None
    extra = [p for p in importer.inputs(src, opts) if inside is None or inside not in p.resolve().parents]
    return [src, *extra]


def _import_locked(importer, opts, format: str, src: Path, out: Path, on_progress,
                   inputs: list[Path]) -> ImportResult:
    counts = Counts()
    agreement = AgreementTally()  # several annotators' versions, as the reader hands them over (labelstudio, prodigy)
    repaired = repaired_docs = 0  # spans an importer repaired instead of rejecting, and their documents
    seen: dict[str, str | None] = {}  # id -> where the record that took it came from
    first_rejects: list[str] = []
    rejects_file = rejects_path_for(out)

    def reject(writer: RejectWriter, item: Rejected) -> None:
        counts.add_reject(item.reason)
        if len(first_rejects) < 5:
            first_rejects.append(item.describe())
        writer.write(item)

    skipped: dict[str, int] = {}
    with DocumentWriter(out) as docs_out, RejectWriter(rejects_file) as rejects_out:
        for item in _reading(importer.read(src, opts), src):
            if isinstance(item, Skipped):  # not a record: counted apart from read = written + rejected
                skipped[item.reason] = skipped.get(item.reason, 0) + 1
                continue
            counts.read += 1
            location = raw = annotators = None
            if isinstance(item, Sourced):
                item, location, raw, annotators = item
            if not isinstance(item, Rejected):
                if item.id in seen:
                    # where the first one is: two files named alike but for their extension (a.txt,
                    # a.md) give one id, and the user needs both names to fix it
                    earlier = f", at {seen[item.id]}" if seen[item.id] else ""
                    item = Rejected.from_error(
                        RecordError(f"duplicate id (already used by an earlier record{earlier})", record_id=item.id,
                                    location=location),
                        raw=raw if raw is not None else _as_json(item),
                    )
                else:
                    seen[item.id] = location
            if isinstance(item, Rejected):
                reject(rejects_out, item)
            else:
                docs_out.write(item)
                counts.written += 1
                fixed = sum(1 for span in item.spans if REPAIR_ATTRS & span.attrs.keys())
                repaired += fixed
                repaired_docs += fixed > 0
                if annotators is not None:
                    agreement.add(*annotators)
            if on_progress is not None and counts.read % 200 == 0:
                on_progress(counts)
    if on_progress is not None:
        on_progress(counts)
    assert counts.reconciles, counts  # the loop above accounts for every item it reads
    config = ImportConfig(format=format, src=str(src), out=str(out), options=to_dict(opts))
    manifest = write_manifest(
        out, stage="import", config=config, inputs=inputs,
        outputs=[out] + ([rejects_file] if counts.rejected else []),
        counts={**counts.to_dict(), "repaired": repaired_docs, "repaired_spans": repaired,
                **({"skipped_files": skipped} if skipped else {})},
        extra={"agreement": report} if (report := agreement.report()) is not None else None,
    )
    return ImportResult(out, rejects_file if counts.rejected else None, manifest, counts, first_rejects,
                        agreement.report(), repaired_docs, repaired, skipped)



def _reading(items, src: Path):
    """The reader's items; an OS error while reading names the source. Without this it would
    surface inside the output writers, whose error handling blames the output file."""
    try:
        yield from items
    except OSError as exc:
        raise CorpusError(f"{exc.filename or src}: cannot read ({exc.strerror or type(exc).__name__})") from None


def _as_json(doc) -> str:
    import json

    return json.dumps(doc.to_dict(), ensure_ascii=False)
