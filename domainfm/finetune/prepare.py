"""Turn the original dataset files a task names into domainfm JSONL (``data.prepare``).

A step's ``format`` is either an importer of ``domainfm import`` (``csv``, ``conll``, ...),
run through :func:`domainfm.corpus.import_corpus`, or one of the preparers below for datasets
whose labels need a decision that no generic importer makes:

- ``mtsamples``: one document per *unique* transcription (the CSV lists cross-listed notes once
  per specialty); the label is the one specialty of ``specialties`` the note is listed under.
- ``unfair-tos``: one document per ToS sentence, ``unfair`` when a tag's level is in
  ``unfair_levels`` (2 = potentially, 3 = clearly unfair), else ``fair``; ``meta.company``
  lets the split keep a company's sentences together.
- ``cuad-types``: one document per CUAD contract, labelled with its contract type.

Preparers follow the import stage's rule: every source record becomes a document or a
rejected record with its reason (``<out>.rejects.jsonl``), and the counts reconcile.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from domainfm.config import from_dict, suggest, to_dict
from domainfm.corpus.document import Document
from domainfm.corpus.io import Counts, DocumentWriter, Rejected, RejectWriter, rejects_path_for
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


def _read_mtsamples(src: Path, opts: MtsamplesOptions) -> Iterator[Document | Rejected]:
    if not opts.specialties:
        raise ConfigError("mtsamples: options.specialties must list the specialties to classify")
    if not src.is_file():
        raise CorpusError(f"{src}: no such file (expected mtsamples.csv)")
    with open(src, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        for col in (opts.text_col, opts.specialty_col, opts.id_col):
            if col not in header:
                raise CorpusError(f"{src.name}: no column {col!r}{suggest(col, header)}; columns are {header}")
        notes: dict[str, dict] = {}
        for row in reader:
            text = (row[opts.text_col] or "").strip()
            entry = notes.setdefault(text, {"ids": [], "specialties": [], "line": reader.line_num})
            entry["ids"].append(row[opts.id_col])
            entry["specialties"].append((row[opts.specialty_col] or "").strip())
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


def _read_unfair_tos(src: Path, opts: UnfairTosOptions) -> Iterator[Document | Rejected]:
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


def _read_cuad_types(src: Path, opts: CuadTypesOptions) -> Iterator[Document | Rejected]:
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


PREPARERS: dict[str, tuple[type, Callable[[Path, object], Iterator[Document | Rejected]]]] = {
    "mtsamples": (MtsamplesOptions, _read_mtsamples),
    "unfair-tos": (UnfairTosOptions, _read_unfair_tos),
    "cuad-types": (CuadTypesOptions, _read_cuad_types),
}


def run_prepare(step, *, force: bool = False) -> dict | None:
    """Write ``step.out`` from ``step.src`` unless it exists; returns the counts (None if skipped).

    Raises:
        ConfigError: unknown format or options (the message lists the valid ones).
        CorpusError: the source is missing or malformed.
    """
    out = Path(step.out)
    if out.is_file() and not force:
        return None
    if step.format not in PREPARERS:
        from domainfm.corpus.importers import IMPORTERS
        from domainfm.corpus.importing import import_corpus

        if step.format not in IMPORTERS:
            names = sorted(IMPORTERS) + sorted(PREPARERS)
            raise ConfigError(f"data.prepare: unknown format {step.format!r}{suggest(step.format, names)}; "
                              f"available: {', '.join(names)}")
        result = import_corpus(step.format, step.src, out, step.options)
        return result.counts.to_dict()
    options_cls, read = PREPARERS[step.format]
    opts = from_dict(options_cls, step.options, prefix="data.prepare.options.")
    counts = Counts()
    seen: set[str] = set()
    with DocumentWriter(out) as docs, RejectWriter(rejects_path_for(out)) as rejects:
        for item in read(Path(step.src), opts):
            counts.read += 1
            if isinstance(item, Document):
                if item.id in seen:
                    item = Rejected.from_error(RecordError("duplicate id", record_id=item.id))
                else:
                    seen.add(item.id)
            if isinstance(item, Rejected):
                counts.add_reject(item.reason)
                rejects.write(item)
            else:
                docs.write(item)
                counts.written += 1
    from domainfm.manifest import write_manifest

    write_manifest(out, stage="prepare", config={"format": step.format, "src": step.src, "out": step.out,
                                                  "options": to_dict(opts)},
                   inputs=[step.src], outputs=[out], counts=counts.to_dict())
    return counts.to_dict()
