"""Dataset importers whose labels need a decision no generic importer makes (used by the
real-data task files' ``data.prepare`` steps, and by ``domainfm import`` like any format):

- ``mtsamples``: one document per *unique* transcription (the CSV lists cross-listed notes once
  per specialty); the label is the one specialty of ``specialties`` the note is listed under.
- ``unfair-tos``: one document per ToS sentence, ``unfair`` when a tag's level is in
  ``unfair_levels`` (2 = potentially, 3 = clearly unfair), else ``fair``; ``meta.company``
  lets the split keep a company's sentences together.
- ``cuad-types``: one document per CUAD contract, labelled with its contract type.

Every source record becomes a document or a rejected record with its reason, as for every
importer.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from domainfm.corpus.document import Document
from domainfm.corpus.importers.base import register
from domainfm.corpus.importers.csv import csv_rows, missing_column, row_cells
from domainfm.corpus.io import Rejected, not_a_file
from domainfm.errors import ConfigError, CorpusError, RecordError

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass
class MtsamplesOptions:
    """Args:
    specialties: the specialties to keep (the label set); a note listed under none of them, or
        under several, is rejected with that reason.
    text_col / specialty_col / id_col: the CSV columns.
    """

    specialties: list[str] = field(default_factory=list)
    text_col: str = "transcription"
    specialty_col: str = "medical_specialty"
    id_col: str = "note_id"


@dataclass
class UnfairTosOptions:
    """Args:
    language: sub-folder of ``sentences/`` and ``tags/`` (``en``).
    variant: ``original`` (the annotated sentences).
    unfair_levels: tag levels that make a sentence ``unfair`` (``2`` potentially, ``3`` clearly).
    """

    language: str = "en"
    variant: str = "original"
    unfair_levels: list[int] = field(default_factory=lambda: [2, 3])


@dataclass
class CuadTypesOptions:
    """Args:
    min_per_type: contract types with fewer contracts are rejected (too few to learn or score).
    types: keep only these types (null = every type with ``min_per_type`` contracts).
    """

    min_per_type: int = 10
    types: list[str] | None = None


@register("mtsamples", MtsamplesOptions, "MTSamples CSV: one document per unique transcription, labelled with its one specialty of a subset")
def read_mtsamples(src: Path, opts: MtsamplesOptions) -> Iterator[Document | Rejected]:
    if not opts.specialties:
        raise ConfigError("mtsamples: options.specialties must list the specialties to classify")
    if not src.is_file():
        raise CorpusError(f"{src}: {not_a_file(src)} (expected mtsamples.csv)")
    rows = csv_rows(src)
    first = next(rows, None)
    header = first.cells if first is not None else []
    for role, col in (("the text", opts.text_col), ("the specialty", opts.specialty_col), ("the id", opts.id_col)):
        if col not in header:
            raise CorpusError(missing_column(src, col, header, role, "set the mtsamples options' column names"))
    notes: dict[str, dict] = {}
    for row in rows:
        if isinstance(row, Rejected):
            yield row
            continue
        try:
            cells = row_cells(row, header, f"{src.name}:{row.line}", opts.id_col)
        except RecordError as err:
            if err.record_id is not None:  # named as its document would have been
                err.record_id = f"mtsamples-{err.record_id}"
            yield Rejected.from_error(err, raw=row.raw)
            continue
        text = cells[opts.text_col].strip()
        entry = notes.setdefault(text, {"ids": [], "specialties": [], "line": row.line})
        entry["ids"].append(cells[opts.id_col])
        entry["specialties"].append(cells[opts.specialty_col].strip())
    wanted = set(opts.specialties)
    for text, entry in notes.items():
        doc_id = f"mtsamples-{entry['ids'][0]}"
        location = f"{src.name}:{entry['line']}"
        listed = sorted(set(entry["specialties"]))
        chosen = sorted(wanted.intersection(listed))
        try:
            if not text:
                raise RecordError("empty transcription", record_id=doc_id, location=location)
            if not chosen:
                raise RecordError(f"specialties {listed} are not in the task's subset", record_id=doc_id,
                                  location=location)
            if len(chosen) > 1:
                raise RecordError(f"ambiguous: listed under {chosen} of the subset", record_id=doc_id,
                                  location=location)
        except RecordError as err:
            yield Rejected.from_error(err)
            continue
        yield Document(doc_id, text, {"note_ids": entry["ids"], "listed_specialties": listed}, chosen[0])


@register("unfair-tos", UnfairTosOptions, "UNFAIR-ToS folder: one document per terms-of-service sentence, fair/unfair")
def read_unfair_tos(src: Path, opts: UnfairTosOptions) -> Iterator[Document | Rejected]:
    sentences = src / "sentences" / opts.language / opts.variant
    tags = src / "tags" / opts.language / opts.variant
    if not sentences.is_dir() or not tags.is_dir():
        raise CorpusError(f"{src}: expected the folders sentences/{opts.language}/{opts.variant} and tags/...")
    levels = {str(x) for x in opts.unfair_levels}
    for path in sorted(sentences.glob("*.txt")):
        company = path.stem
        lines = path.read_text(encoding="utf-8").split("\n")
        tag_file = tags / path.name
        if not tag_file.is_file():
            raise CorpusError(f"{tag_file}: missing (the tags of {path.name})")
        tag_lines = tag_file.read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines = lines[:-1]
        tag_lines = tag_lines[: len(lines)] + [""] * max(0, len(lines) - len(tag_lines))
        for number, (sentence, tag_line) in enumerate(zip(lines, tag_lines), start=1):
            doc_id = f"{company}-{number:04d}"
            if not sentence.strip():
                yield Rejected.from_error(RecordError("empty sentence", record_id=doc_id,
                                                      location=f"{path.name}:{number}"))
                continue
            found = tag_line.split()
            unfair = any(t[-1:] in levels for t in found)
            yield Document(doc_id, sentence.strip(), {"company": company, "tags": found},
                           "unfair" if unfair else "fair")


@register("cuad-types", CuadTypesOptions, "CUAD folder: one document per contract, labelled with its contract type")
def read_cuad_types(src: Path, opts: CuadTypesOptions) -> Iterator[Document | Rejected]:
    table = src / "contract_types.csv"
    texts = src / "full_contract_txt"
    if not table.is_file() or not texts.is_dir():
        raise CorpusError(f"{src}: expected contract_types.csv and full_contract_txt/ (the CUAD folder)")
    with open(table, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["contract_type"]] = counts.get(row["contract_type"], 0) + 1
    for number, row in enumerate(rows, start=2):
        kind, stem = row["contract_type"], row["document_stem"]
        location = f"{table.name}:{number}"
        doc_id = f"cuad-{number - 1:04d}"
        path = texts / f"{stem}.txt"
        try:
            if opts.types is not None and kind not in opts.types:
                raise RecordError(f"contract type {kind!r} is not in options.types", record_id=doc_id, location=location)
            if opts.types is None and counts[kind] < opts.min_per_type:
                raise RecordError(f"contract type {kind!r} has {counts[kind]} < {opts.min_per_type} contracts",
                                  record_id=doc_id, location=location)
            if not path.is_file():
                raise RecordError(f"no file full_contract_txt/{stem}.txt", record_id=doc_id, location=location)
            text = path.read_text(encoding="utf-8", errors="replace")
            if not text.strip():
                raise RecordError("empty contract text", record_id=doc_id, location=location)
        except RecordError as err:
            yield Rejected.from_error(err)
            continue
        yield Document(doc_id, text, {"document_stem": stem, "part": row.get("part")}, kind)
