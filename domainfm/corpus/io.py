"""Streaming JSONL input/output with reject files.

A corpus may be far larger than memory, so documents are read and written one line at a time.
Nothing is silently dropped: a record that cannot be read goes to ``<out>.rejects.jsonl`` with
its line number and the reason, and every run can show ``read = written + rejected``.
"""

from __future__ import annotations

import codecs
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from domainfm.corpus.document import Document
from domainfm.errors import CorpusError, RecordError


@dataclass(slots=True)
class Rejected:
    """A source record that did not become a document.

    ``raw`` keeps the original record so the user can repair it; it is written only to the
    reject file beside the output (as sensitive as the input), never to logs or the console.
    """

    reason: str
    location: str | None = None
    record_id: str | None = None
    raw: str | None = None

    @classmethod
    def from_error(cls, error: RecordError, raw: str | None = None) -> Rejected:
        return cls(reason=error.reason, location=error.location, record_id=error.record_id, raw=raw)

    def to_dict(self) -> dict[str, Any]:
        return {"location": self.location, "id": self.record_id, "reason": self.reason, "raw": self.raw}

    def describe(self) -> str:
        """One PHI-free line for the console: where, which id, why."""
        where = ", ".join(
            p for p in (self.location, f"id={self.record_id!r}" if self.record_id else None) if p
        )
        return f"{where}: {self.reason}" if where else self.reason


@dataclass(slots=True)
class Counts:
    """Reconciliation counts of one run: ``read == written + rejected`` must hold."""

    read: int = 0
    written: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def add_reject(self, reason: str) -> None:
        """Count one rejected record under its reason, grouped by the text before any offsets
        or details (``span 3 [10:99] ...`` and ``span 4 [2:80] ...`` count as one reason)."""
        self.rejected += 1
        key = reason.split(" [")[0].split(" (")[0][:80]
        self.reasons[key] = self.reasons.get(key, 0) + 1

    def merge(self, other: Counts) -> Counts:
        """The sum of two runs' counts (e.g. bad input lines + records rejected later)."""
        reasons = dict(self.reasons)
        for key, n in other.reasons.items():
            reasons[key] = reasons.get(key, 0) + n
        return Counts(self.read + other.read, self.written + other.written, self.rejected + other.rejected, reasons)

    @property
    def reconciles(self) -> bool:
        return self.read == self.written + self.rejected

    def to_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "written": self.written,
            "rejected": self.rejected,
            "reconciles": self.reconciles,
            "reject_reasons": dict(sorted(self.reasons.items(), key=lambda kv: -kv[1])),
        }


def rejects_path_for(out: str | os.PathLike) -> Path:
    """``corpus.jsonl`` -> ``corpus.rejects.jsonl`` beside it."""
    out = Path(out)
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    return out.with_name(f"{stem}.rejects.jsonl")


class _AtomicLines:
    """Write lines to ``path.tmp`` and move it into place only on success, so a crashed or
    interrupted run never leaves a truncated file that looks complete."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._tmp = self.path.with_name(self.path.name + ".tmp")
        self._fh = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self._tmp, "w", encoding="utf-8", newline="\n")
        return self

    def write_obj(self, obj: Any) -> None:
        self._fh.write(json.dumps(obj, ensure_ascii=False) + "\n")

    def __exit__(self, exc_type, exc, tb):
        self._fh.close()
        if exc_type is None:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)
        return False


class DocumentWriter(_AtomicLines):
    """Write documents as JSONL; the file appears only once writing finished."""

    def __init__(self, path: str | os.PathLike):
        super().__init__(path)
        self.count = 0

    def write(self, doc: Document) -> None:
        self.write_obj(doc.to_dict())
        self.count += 1


class RejectWriter(_AtomicLines):
    """Reject file; removed again when nothing was rejected so a clean run leaves no noise."""

    def __init__(self, path: str | os.PathLike):
        super().__init__(path)
        self.count = 0

    def write(self, rejected: Rejected) -> None:
        self.write_obj(rejected.to_dict())
        self.count += 1

    def __exit__(self, exc_type, exc, tb):
        super().__exit__(exc_type, exc, tb)
        if exc_type is None and self.count == 0:
            self.path.unlink(missing_ok=True)
        return False


def iter_jsonl_objects(path: str | os.PathLike) -> Iterator[tuple[int, Any | Rejected]]:
    """Yield ``(line_number, parsed_object)`` per non-blank line, or a :class:`Rejected`
    for lines that are not UTF-8 or not JSON. Reads in binary so one bad byte costs one line,
    not the file."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: no such file (expected a JSONL file, one document per line)")
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            location = f"{path.name}:{number}"
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]  # files saved by Windows editors
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield number, Rejected(
                    f"line is not valid UTF-8 (bad byte at position {exc.start})",
                    location=location,
                    raw=raw.decode("utf-8", errors="backslashreplace").rstrip("\n"),
                )
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, Rejected(
                    f"broken JSON ({exc.msg} at column {exc.colno})",
                    location=location,
                    raw=line.rstrip("\n"),
                )


def read_documents(
    path: str | os.PathLike, *, rejects: list[Rejected] | RejectWriter | None = None
) -> Iterator[Document]:
    """Stream the documents of a domainfm JSONL file.

    Args:
        path: JSONL file in the domainfm document format.
        rejects: where invalid records go (a list or a :class:`RejectWriter`). When ``None``,
            the first invalid record raises :class:`RecordError` — the right default for a
            stage that expects an already validated corpus.

    Duplicate ids are rejected (the second occurrence), since every later stage keys on ids.
    """
    seen: set[str] = set()
    path = Path(path)
    for number, obj in iter_jsonl_objects(path):
        location = f"{path.name}:{number}"
        if isinstance(obj, Rejected):
            item: Document | Rejected = obj
        else:
            try:
                item = Document.from_dict(obj, location=location)
                if item.id in seen:
                    raise RecordError("duplicate id (already used by an earlier record)",
                                      record_id=item.id, location=location)
                seen.add(item.id)
            except RecordError as err:
                item = Rejected.from_error(err, raw=json.dumps(obj, ensure_ascii=False))
        if isinstance(item, Rejected):
            if rejects is None:
                raise RecordError(item.reason, record_id=item.record_id, location=item.location)
            if isinstance(rejects, list):
                rejects.append(item)
            else:
                rejects.write(item)
            continue
        yield item


def write_documents(path: str | os.PathLike, docs: Iterable[Document]) -> int:
    """Write documents to JSONL atomically; returns how many were written."""
    with DocumentWriter(path) as writer:
        for doc in docs:
            writer.write(doc)
    return writer.count
