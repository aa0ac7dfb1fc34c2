"""The ``import`` stage: an importer (or a dataset preparer) -> domainfm JSONL, then optionally
per-document attributes joined from a CSV and a seeded sample (``max_documents``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domainfm.config import from_dict
from domainfm.errors import ConfigError
from domainfm.stages import StageContext, StageResult, record_counts


@dataclass
class MetaJoin:
    """Add per-document attributes (e.g. the audit's groups) from a CSV beside the corpus.

    Args:
        src: CSV file with one row per source record.
        key_col: the column that identifies the record.
        columns: CSV column -> ``meta`` key, e.g. ``{gender_combined: sex, age_regex: age}``.
            Numbers become numbers; empty cells are left out (the audit's ``unknown`` group).
        id_format: the document id made from ``key_col`` (``{}`` is the value), e.g.
            ``mtsamples-{}`` for the ``mtsamples`` preparer's ids.
    """

    src: Path
    key_col: str
    columns: dict[str, str]
    id_format: str = "{}"

    def __post_init__(self) -> None:
        if not self.columns:
            raise ConfigError("'import.meta_join.columns' must map at least one CSV column to a meta key")
        if not _one_placeholder(self.id_format):
            raise ConfigError(f"'import.meta_join.id_format' must contain exactly one '{{}}' (the key value; "
                              f"'{{{{' and '}}}}' for literal braces), e.g. 'mtsamples-{{}}'. "
                              f"Got {self.id_format!r} instead.")


def _one_placeholder(id_format: Any) -> bool:
    """``id_format.format(key)`` works and uses the key once (``n{}{}``, ``{0}{1}``, ``{x}`` and a
    stray brace would fail on the first row of the table, after the import ran)."""
    import string

    if not isinstance(id_format, str):
        return False
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(id_format) if name is not None]
        id_format.format("1")
    except (ValueError, IndexError, KeyError, AttributeError, TypeError):
        return False
    return fields in ([""], ["0"])


@dataclass
class ImportSection:
    """Args:
    format: importer name (``jsonl``, ``csv``, ``textdir``, ...; see ``domainfm import --help``)
        or a dataset preparer of :mod:`domainfm.finetune.prepare` (``mtsamples``,
        ``unfair-tos``, ``cuad-types``), which also sets each document's label.
    src: source file or folder (relative paths resolve against the current directory).
    options: the importer's (or preparer's) own options, e.g. ``{text_key: body}``.
    meta_join: attributes joined from a CSV by document id (:class:`MetaJoin`).
    max_documents: keep a seeded random sample of N documents, in their input order (to size
        a run; sources are often sorted by label, so not simply the first N). Null keeps all.
    """

    src: Path
    format: str = "jsonl"
    options: dict[str, Any] = field(default_factory=dict)
    meta_join: MetaJoin | None = None
    max_documents: int | None = None

    def __post_init__(self) -> None:
        if self.max_documents is not None and self.max_documents < 1:
            raise ConfigError(f"The 'import.max_documents' parameter must be an int >= 1 or null. "
                              f"Got {self.max_documents!r} instead.")

    @classmethod
    def check_section(cls, data: Any, prefix: str) -> None:
        """A pipeline checks the importer's own options with the section, before any stage runs."""
        from domainfm.corpus.importers import get_importer

        options = data.get("options") or {} if isinstance(data, dict) else None
        if isinstance(options, dict) and isinstance(data.get("format", "jsonl"), str):
            from_dict(get_importer(data.get("format", "jsonl")).options_cls, options, prefix=f"{prefix}options.")


def run(config: ImportSection, inputs: list[Path], out: Path, context: StageContext | None = None) -> StageResult:
    """Import ``config.src`` (``inputs[0]``) to ``out``; with ``meta_join`` or ``max_documents``
    the importer writes ``source.jsonl`` beside ``out`` and the reshaped corpus goes to ``out``."""
    from domainfm.corpus.importing import import_corpus
    from domainfm.manifest import manifest_path_for

    context = context or StageContext()
    cfg = config
    reshaped = cfg.meta_join is not None or cfg.max_documents is not None
    target = out.parent / "source.jsonl" if reshaped else out
    result = import_corpus(cfg.format, cfg.src, target, cfg.options, on_progress=context.on_progress)
    counts = record_counts(result.counts)
    notes = []
    agreement = getattr(result, "agreement", None)
    if agreement:
        parts = [f"{agreement['documents_with_several_annotators']} documents with several annotators"]
        if "span_pairwise_f1" in agreement:
            parts.append(f"pairwise span F1 {agreement['span_pairwise_f1']:.2f}")
        if agreement.get("choice_mean_pairwise_kappa") is not None:
            parts.append(f"mean pairwise Cohen's kappa {agreement['choice_mean_pairwise_kappa']:.2f}")
        notes.append("agreement: " + ", ".join(parts))
    if result.repaired:
        counts.update(repaired=result.repaired, repaired_spans=result.repaired_spans)
    if result.skipped:
        counts["skipped_files"] = dict(result.skipped)
        notes.append("skipped " + ", ".join(f"{n} {reason} file{'s' if n != 1 else ''}" for reason, n in
                                             result.skipped.items())
                     + " (in hidden folders such as .git/ or .ipynb_checkpoints/, or named with a leading dot; "
                       "a pattern naming the folder reads them)")
    warnings = []
    if result.counts.read and not result.counts.written:  # ``domainfm run`` stops here; the command says so
        warnings.append("no document was written: every record was rejected (reasons below: a wrong "
                        "format or option, such as the field that holds the text?)")
    if reshaped:
        counts.update(_reshape(target, out, cfg, seed=13 if context.seed is None else context.seed))
    manifest = manifest_path_for(out)
    return StageResult([out, manifest], counts, manifest=manifest, rejects=result.rejects,
                       first_rejects=result.first_rejects, notes=notes, warnings=warnings,
                       reject_reasons=dict(result.counts.reasons))


def _read_meta_table(join: MetaJoin) -> dict[str, dict[str, Any]]:
    """The join table by document id. It is read as the CSV importer reads (``csv_rows``): a
    header byte-order mark is no part of the first column's name, and a row the reader cannot
    parse, with another number of fields than the header or with bytes that are not UTF-8 stops
    the run naming its first line, where the table is to be fixed (a row left out would leave its
    document without the attributes the audit groups by, unnoticed). A key given twice with other
    values is refused too: which row is meant cannot be told."""
    from domainfm.corpus.importers.csv import csv_rows, missing_column, row_cells
    from domainfm.corpus.io import Rejected
    from domainfm.errors import CorpusError, RecordError

    if not join.src.is_file():
        raise CorpusError(f"import.meta_join.src: {join.src}: no such file")
    rows = csv_rows(join.src)
    first = next(rows, None)
    header = first.cells if first is not None else []
    for col in (join.key_col, *join.columns):
        if col not in header:
            raise CorpusError(missing_column(join.src, col, header, "import.meta_join",
                                             "set import.meta_join.key_col and its columns"))
    table: dict[str, dict[str, Any]] = {}
    first_line: dict[str, int] = {}
    try:
        for row in rows:
            if isinstance(row, Rejected):
                raise RecordError(row.reason, location=row.location)
            location = f"{join.src.name}:{row.line}"
            cells = row_cells(row, header, location)
            meta = {}
            for col, key in join.columns.items():
                value = cells[col].strip()
                if not value:
                    continue
                try:
                    number = float(value)
                except ValueError:
                    number = None
                if number is None or number != number or number in (float("inf"), float("-inf")):
                    meta[key] = value  # text, or "nan"/"inf" kept as written (not JSON numbers)
                else:
                    meta[key] = int(number) if number.is_integer() else number
            doc_id = join.id_format.format(cells[join.key_col])
            if doc_id in table and table[doc_id] != meta:
                raise RecordError(f"{join.key_col} gives the document id {doc_id!r} again (first on line "
                                  f"{first_line[doc_id]}) with other values; keep one row per document",
                                  location=location)
            table.setdefault(doc_id, meta)
            first_line.setdefault(doc_id, row.line)
    except RecordError as err:
        raise CorpusError(f"import.meta_join.src: {err.location}: {err.reason}") from None
    except CorpusError as err:  # a quote never closed: the rest of the table would read as one row
        raise CorpusError(f"import.meta_join.src: {err}") from None
    return table


def _sample(docs, n: int, seed: int) -> list:
    """A uniform sample of ``n`` items of a stream (reservoir sampling), in stream order."""
    import random

    rng = random.Random(seed)
    reservoir: list = []
    for i, doc in enumerate(docs):
        if i < n:
            reservoir.append((i, doc))
        else:
            j = rng.randint(0, i)
            if j < n:
                reservoir[j] = (i, doc)
    return [doc for _, doc in sorted(reservoir, key=lambda pair: pair[0])]


def _reshape(src: Path, out: Path, cfg: ImportSection, *, seed: int) -> dict[str, int]:
    """Join attributes and apply ``max_documents``: ``src`` (the importer's output) -> ``out``."""
    from domainfm.corpus import read_documents
    from domainfm.corpus.io import DocumentWriter
    from domainfm.manifest import write_manifest

    table = _read_meta_table(cfg.meta_join) if cfg.meta_join is not None else None
    docs = read_documents(src)
    if cfg.max_documents is not None:
        docs = _sample(docs, cfg.max_documents, seed)
    kept = joined = 0
    with DocumentWriter(out) as writer:
        for doc in docs:
            if table is not None and doc.id in table:
                doc.meta.update(table[doc.id])
                joined += 1
            writer.write(doc)
            kept += 1
    counts = {"kept": kept}
    if table is not None:
        counts["with_joined_meta"] = joined
    inputs = [src] + ([cfg.meta_join.src] if cfg.meta_join is not None else [])
    write_manifest(out, stage="import", config=cfg, inputs=inputs, outputs=[out], counts=counts)
    return counts
