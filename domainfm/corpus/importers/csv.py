"""``csv``: one document per row; chosen columns become text/id/label, the rest ``meta``."""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from domainfm.config import suggest
from domainfm.corpus.document import Document
from domainfm.corpus.importers.base import Sourced, register
from domainfm.corpus.io import Rejected
from domainfm.errors import CorpusError, RecordError

# Clinical transcriptions and contracts exceed csv's 128 KiB default field limit.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass
class CsvOptions:
    """Args:
    text_col: column holding the document text.
    id_col: column holding the id; without it the id is ``<file stem>-<row number>``.
    label_col: column holding a single label.
    labels_col: column holding several labels separated by ``labels_sep``.
    delimiter: field separator (``,``; use ``\\t`` for TSV).
    """

    text_col: str = "text"
    id_col: str | None = None
    label_col: str | None = None
    labels_col: str | None = None
    labels_sep: str = "|"
    delimiter: str = ","

    def __post_init__(self):
        if self.delimiter in ("\\t", "tab"):
            self.delimiter = "\t"


@register("csv", CsvOptions, "CSV/TSV with a header row; one document per row")
def read_csv(src: Path, options: CsvOptions) -> Iterator[Document | Rejected]:
    if not src.is_file():
        raise CorpusError(f"{src}: no such file (expected a CSV file with a header row)")
    # surrogateescape keeps undecodable bytes visible per row instead of failing the file.
    with open(src, encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
        reader = csv.reader(fh, delimiter=options.delimiter)
        try:
            header = next(reader)
        except StopIteration:
            return
        for role, col in (("text", options.text_col), ("id", options.id_col),
                          ("label", options.label_col), ("labels", options.labels_col)):
            if col is not None and col not in header:
                raise CorpusError(
                    f"{src.name}: no column {col!r} for the {role}{suggest(col, header)}; "
                    f"columns are {header} (set --{role}-col)"
                )
        for row in reader:
            location = f"{src.name}:{reader.line_num}"
            raw = _as_read(options.delimiter.join(row))
            if not row or all(not cell for cell in row):
                continue
            try:
                if len(row) != len(header):
                    raise RecordError(
                        f"row has {len(row)} fields, the header has {len(header)}", location=location
                    )
                if any(_undecodable(cell) for cell in row):
                    raise RecordError("row is not valid UTF-8", location=location)
                cells = dict(zip(header, row))
                doc_id = cells[options.id_col] if options.id_col else f"{src.stem}-{reader.line_num}"
                label = cells[options.label_col] or None if options.label_col else None
                labels = None
                if options.labels_col:
                    labels = [x.strip() for x in cells[options.labels_col].split(options.labels_sep) if x.strip()]
                used = {options.text_col, options.id_col, options.label_col, options.labels_col}
                meta = {k: v for k, v in cells.items() if k not in used}
                doc = Document(doc_id, cells[options.text_col], meta, label, labels)
                doc.validate(location=location)
                yield Sourced(doc, location, raw)
            except RecordError as err:
                yield Rejected.from_error(err, raw=raw)


def _undecodable(cell: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in cell)


def _as_read(text: str) -> str:
    """A row as it was read, undecodable bytes shown as ``\\xNN`` (valid text for the reject file)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
