"""``csv``: one document per row; chosen columns become text/id/label, the rest ``meta``."""

from __future__ import annotations

import csv
import difflib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple

from domainfm.corpus.document import Document
from domainfm.corpus.importers.base import Sourced, register
from domainfm.corpus.io import Rejected, not_a_file, refuse_unreadable_text
from domainfm.errors import ConfigError, CorpusError, RecordError

# Clinical transcriptions and contracts exceed csv's 128 KiB default field limit.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass
class CsvOptions:
    """Args:
    text_col: column holding the document text.
    id_col: column holding the id; without it the id is ``<file stem>-<line the row starts on>``.
    label_col: column holding a single label.
    labels_col: column holding several labels separated by ``labels_sep``.
    labels_sep: separator of the labels in ``labels_col`` (non-empty; ``|``).
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
        if not isinstance(self.delimiter, str) or len(self.delimiter) != 1 or self.delimiter in '"\r\n':
            raise ConfigError(
                f"'delimiter' must be one character other than a quote or a line break "
                f"(',', ';', '|', or 'tab' for TSV), got {self.delimiter!r}"
            )
        if not isinstance(self.labels_sep, str) or not self.labels_sep:
            raise ConfigError(f"'labels_sep' must be a non-empty string (e.g. '|'), got {self.labels_sep!r}")


@register("csv", CsvOptions, "CSV/TSV with a header row; one document per row")
def read_csv(src: Path, options: CsvOptions) -> Iterator[Document | Rejected]:
    if not src.is_file():
        raise CorpusError(f"{src}: {not_a_file(src)} (expected a CSV file with a header row)")
    rows = csv_rows(src, options.delimiter)
    header = next(rows, None)
    if header is None:
        return
    _check_header(src, header.cells, options)
    for row in rows:
        if isinstance(row, Rejected):
            yield row
            continue
        location = f"{src.name}:{row.line}"
        try:
            cells = row_cells(row, header.cells, location, options.id_col)
            doc_id = cells[options.id_col] if options.id_col else f"{src.stem}-{row.line}"
            # a blank cell (a space typed into it) is no label, as an empty one is; as a label
            # it became a class " " beside the real ones
            label = cells[options.label_col] if options.label_col else None
            label = label if label and label.strip() else None
            labels = None
            if options.labels_col:
                labels = [x.strip() for x in cells[options.labels_col].split(options.labels_sep) if x.strip()]
            used = {options.text_col, options.id_col, options.label_col, options.labels_col}
            meta = {k: v for k, v in cells.items() if k not in used}
            doc = Document(doc_id, cells[options.text_col], meta, label, labels)
            doc.validate(location=location)
            yield Sourced(doc, location, row.raw)
        except RecordError as err:
            yield Rejected.from_error(err, raw=row.raw)


class CsvRow(NamedTuple):
    """A row as the csv reader parsed it, with the line it starts on and its fields as read
    (joined by the delimiter, undecodable bytes as ``\\xNN``) for the reject file."""

    line: int
    cells: list[str]
    raw: str


def csv_rows(src: Path, delimiter: str = ",") -> Iterator[CsvRow | Rejected]:
    """The rows of a UTF-8 CSV file: the header row first, then every record row, or a
    :class:`Rejected` for a row the csv reader cannot parse (a misplaced quote). Every CSV
    importer reads through it, so each cites a row by the line it starts on and rejects the same
    rows for the same reasons. Blank lines (empty, or spaces without a delimiter) are no row.
    Bytes that are not UTF-8 stay in the cells as surrogates, so one costs its row alone
    (:func:`row_cells` rejects it). A UTF-16 or compressed file, a header the reader cannot
    parse, or a quote never closed is a :class:`CorpusError`."""
    refuse_unreadable_text(src)
    # surrogateescape keeps undecodable bytes visible per row instead of failing the file.
    with open(src, encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
        lines = _Lines(fh)
        # strict: a quote left open ends in an error instead of silently swallowing later rows
        reader = csv.reader(lines, delimiter=delimiter, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise CorpusError(f"{src.name}:{reader.line_num}: the header row cannot be read ({exc})") from None
        yield CsvRow(1, header, _as_read(delimiter.join(header)))
        while True:
            # the line the row starts on, where a user looks for it: a quoted field may hold line
            # breaks, and reader.line_num is the line the row ends on
            first_line = reader.line_num + 1
            lines.taken.clear()
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                yield _unreadable_row(src, lines, first_line, reader.line_num, exc)
                continue
            # a blank line holds no field, nor does one of spaces an editor left (unquoted, no
            # delimiter); a row of empty cells (",,") is a record, counted
            if not row or (len(row) == 1 and not "".join(lines.taken).strip()):
                continue
            yield CsvRow(first_line, row, _as_read(delimiter.join(row)))


def row_cells(row: CsvRow, header: list[str], location: str, id_col: str | None = None) -> dict[str, str]:
    """The row's cells by column name. A row with another number of fields than the header, or
    with bytes that are not UTF-8, is a :class:`RecordError` at ``location``, named by its
    ``id_col`` cell when that one is readable."""
    if len(row.cells) != len(header):
        raise RecordError(f"row has {len(row.cells)} fields, the header has {len(header)}", location=location)
    cells = dict(zip(header, row.cells))
    if any(_undecodable(cell) for cell in row.cells):
        readable_id = id_col and cells[id_col] and not _undecodable(cells[id_col])
        raise RecordError("row is not valid UTF-8", location=location,
                          record_id=cells[id_col] if readable_id else None)
    return cells


class _Lines:
    """The file's lines, remembering those the csv reader took for the current row, so a row
    it cannot parse goes to the reject file as it was written."""

    def __init__(self, fh):
        self.fh = fh
        self.taken: list[str] = []
        self.exhausted = False

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = next(self.fh, None)
        if line is None:
            self.exhausted = True
            raise StopIteration
        self.taken.append(line)
        return line


def _check_header(src: Path, header: list[str], options: CsvOptions) -> None:
    """Refuse a header that lacks a chosen column or names a column twice. The message never
    lists the header's cells: in a file without a header row they are the first record."""
    for role, col in (("text", options.text_col), ("id", options.id_col),
                      ("label", options.label_col), ("labels", options.labels_col)):
        if col is not None and col not in header:
            hint = " or --delimiter" if len(header) == 1 else ""
            raise CorpusError(missing_column(src, col, header, f"the {role}", f"set --{role}-col{hint}"))
    seen: dict[str, int] = {}
    for number, name in enumerate(header, start=1):
        if name in seen:
            raise CorpusError(
                f"{src.name}: the header's columns {seen[name]} and {number} have the same name; rename one so "
                "neither column's values are lost (if the file has no header row, add one)"
            )
        seen[name] = number


def missing_column(src: Path, col: str, header: list[str], role: str, fix: str) -> str:
    """The message for a CSV whose first row lacks column ``col`` (which holds ``role``), ending
    in ``fix``. It never lists the row's cells: in a file without a header row they are the first
    record, a patient's name or note. Every CSV reader (importers, a pipeline's ``meta_join``)
    words it so."""
    return (f"{src.name}: no column {col!r} for {role}{_near_miss(col, header)}; the first row has "
            f"{len(header)} column(s) and none is named {col!r} ({fix}; if the file has no header row, add one)")


def _near_miss(name: str, header: list[str]) -> str:
    """``" (did you mean 'x'?)"`` for a header name only a typo away: a looser match could
    quote a cell of the first record when the file has no header row."""
    close = difflib.get_close_matches(name, header, n=1, cutoff=0.8)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unreadable_row(src: Path, lines: _Lines, first: int, last: int, exc: csv.Error) -> Rejected:
    """A row the csv reader refused (a quote left open or misplaced). All lines it took are
    rejected together with their range; a quote open until the end of the file is an error,
    since every later row would be lost inside it."""
    span = f"line {first}" if first == last else f"lines {first}-{last}"
    if lines.exhausted and first < last:
        raise CorpusError(
            f"{src.name}:{first}: a quoted field opened on this line is never closed, so the rest of "
            f"the file ({span}) would read as one row; fix the quotes in that row"
        )
    raw = _as_read("".join(lines.taken)).rstrip("\r\n")
    return Rejected(
        f"row cannot be parsed as CSV ({exc}); {span} read as one row: check its quotes",
        location=f"{src.name}:{first}", raw=raw,
    )


def _undecodable(cell: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in cell)


def _as_read(text: str) -> str:
    """A row as it was read, undecodable bytes shown as ``\\xNN`` (valid text for the reject file)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
