"""Streaming JSONL input/output with reject files.

A corpus may be far larger than memory, so documents are read and written one line at a time.
Nothing is silently dropped: a record that cannot be read goes to ``<out>.rejects.jsonl`` with
its line number and the reason, and every run can show ``read = written + rejected``.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import secrets
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from domainfm.corpus.document import DOCUMENT_KEYS, SPAN_KEYS, Document, checked_document
from domainfm.errors import CorpusError, OutputError, RecordError
from domainfm.manifest import manifest_path_for


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

    def describe(self, *, show_id: bool = True) -> str:
        """One PHI-free line for the console: where, which id (unless ``show_id`` is off: a run
        that pseudonymises ids treats them as identifying), why."""
        where = ", ".join(
            p for p in (self.location, f"id={self.record_id!r}" if self.record_id and show_id else None) if p
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
    """``corpus.jsonl`` -> ``corpus.rejects.jsonl`` beside it.

    Raises:
        OutputError: ``out`` has no file name (``-o .``), so nothing can be written beside it.
    """
    out = Path(out)
    if not out.name:
        raise OutputError(f"{out}: is a folder; -o takes a file path here (e.g. {out / 'out.jsonl'})")
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    return out.with_name(f"{stem}.rejects.jsonl")


# --- safe outputs: one writer per path, temporary files renamed into place --------------------
#
# Every file domainfm writes goes through :func:`atomic_file`: it is written under a temporary
# name unique to this process (``<name>.<pid>.<random>.tmp`` in the same folder) and renamed over
# the final name only once complete, so a crash or a kill never leaves a truncated file that
# looks finished, and two processes never share a temporary file. A command holds an
# :class:`OutputLock` on its output for the whole run (output, rejects and manifest), so a second
# run writing the same path is refused up front instead of interleaving with the first, and the
# manifest's hash is the hash of the file that stays on disk.

_HELD_LOCKS: dict[Path, int] = {}


def _output_error(path: Path, exc: OSError, doing: str = "cannot write") -> OutputError:
    reason = exc.strerror or type(exc).__name__
    return OutputError(f"{path}: {doing} ({reason})")


def check_output_path(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = (),
                      folder: bool = False) -> Path:
    """Refuse an output path that cannot work, before anything is read or written.

    Args:
        path: the output file (or folder when ``folder``).
        inputs: paths the command reads; the output may not be one of them (same file after
            resolving links and ``..``), nor may the reject file and manifest written beside it.
        folder: the output is a folder (``audit -o``, model folders): an existing file is refused.

    Raises:
        OutputError: the output is an input, an existing folder (file outputs), an existing file
            (folder outputs), a ``.parquet`` file (file outputs are JSONL), or its folder cannot
            be created.
    """
    path = Path(path)
    sources = {Path(src).resolve() for src in inputs}
    resolved = path.resolve()
    if resolved in sources:
        raise CorpusError(f"{path}: the output would overwrite the input; choose another -o path")
    for src in sorted(sources):
        if src.is_dir() and src in resolved.parents:  # predict -o MODEL/domainfm_task.json
            raise CorpusError(f"{path}: the output would be written inside the input folder {src.name}/; "
                              "choose another -o path")
        if folder and resolved in src.parents:  # finetune --overwrite would delete its own training data
            raise CorpusError(f"{path}: the output folder holds an input ({src.name}), which the run would delete "
                              "or mix with its own files; choose another -o folder or move the input out")
    if not folder and path.suffix == ".parquet":  # JSONL under that name fails every Parquet reader
        raise OutputError(f"{path}: this writes JSONL, not Parquet: name the output .jsonl ('domainfm deid' "
                          "writes a .parquet folder with --engine spark or --engine ray)")
    if not folder and path.is_dir():  # before the companions: '.' has no name to put them beside
        raise OutputError(f"{path}: is a folder; -o takes a file path here (e.g. {path / 'out.jsonl'})")
    # an input's own manifest and reject file (when they exist) are its provenance and its
    # rejected records: reidentify -o deid.manifest.json would put the restored notes there
    companions_of_inputs = {c.resolve(): src for src in sorted(sources) if src.is_file()
                            for c in (manifest_path_for(src), rejects_path_for(src)) if c.is_file()}
    if resolved in companions_of_inputs:
        raise CorpusError(f"{path}: the output would overwrite the manifest or reject file of the input "
                          f"{companions_of_inputs[resolved].name}; choose another -o path")
    if not folder:  # the files written beside the output must not be inputs either
        for companion, what in ((rejects_path_for(path), "reject file"), (manifest_path_for(path), "manifest")):
            if companion.resolve() in sources:
                raise CorpusError(f"{path}: the output's {what} ({companion.name}) would overwrite an input; "
                                  "choose another -o path")
    if folder and path.exists() and not path.is_dir():
        raise OutputError(f"{path}: is a file; -o takes a folder here")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _output_error(path.parent, exc, "cannot create the output folder") from None
    return path


def check_report_folder(out: str | os.PathLike, stage: str) -> None:
    """A report folder is new, empty, or an earlier report of the same stage: writing into another
    stage's report (or a folder of other files) would leave a folder whose files disagree, with
    one stage's manifest beside the other's pages.

    Raises:
        OutputError: ``out`` holds files and no ``manifest.json`` of ``stage``.
    """
    out = Path(out)
    # a pipeline's own record of the stage (stage.json, error.log) and lock files are not a report
    if not out.is_dir() or all(f.name in ("stage.json", "error.log") or f.suffix in (".lock", ".tmp")
                               for f in out.iterdir()):
        return
    try:
        earlier = json.loads((out / "manifest.json").read_text(encoding="utf-8")).get("stage")
    except (OSError, ValueError, AttributeError):
        earlier = None
    if earlier != stage:
        what = f"a 'domainfm {earlier}' report" if isinstance(earlier, str) else "other files"
        raise OutputError(f"{out}: holds {what}; 'domainfm {stage}' writes into a new or empty folder, or over "
                          "an earlier report of its own: choose another -o folder")


class OutputLock:
    """An advisory lock (``fcntl.flock``) on an output path for the duration of a run.

    The lock file is ``<path>.lock`` beside the output (``lock_file`` overrides it); it holds the
    owner's pid, is removed on release, and a lock left by a killed process is free again (the
    kernel drops the flock with the process). Re-entrant within one process. On entry, the
    temporary files that killed runs left for this output are removed.

    Raises:
        OutputError: another process holds the lock, or the lock cannot be created there.
    """

    def __init__(self, path: str | os.PathLike, *, lock_file: str | os.PathLike | None = None,
                 what: str = "another domainfm run"):
        self.path = Path(path)
        self.lock_file = Path(lock_file) if lock_file is not None else self.path.with_name(self.path.name + ".lock")
        self.what = what
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        key = self.lock_file.resolve()
        if key in _HELD_LOCKS:
            _HELD_LOCKS[key] += 1
            return self
        try:
            import fcntl
        except ImportError:  # no flock (Windows): unique temporary names still keep files whole
            _HELD_LOCKS[key] = 1
            return self
        try:
            self.lock_file.parent.mkdir(parents=True, exist_ok=True)
            while True:
                fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    owner = os.read(fd, 32).decode("ascii", "replace").strip()
                    os.close(fd)
                    raise OutputError(
                        f"{self.path} is being written by {self.what}"
                        f"{f' (pid {owner})' if owner.isdigit() else ''}; wait for it to finish or "
                        f"choose another output (lock: {self.lock_file})") from None
                # The previous holder may have removed the file between our open and flock.
                try:
                    same = os.fstat(fd).st_ino == os.stat(self.lock_file).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    break
                os.close(fd)
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode("ascii"))
        except OSError as exc:
            raise _output_error(self.lock_file, exc, "cannot create the lock file") from None
        self._fd = fd
        _HELD_LOCKS[key] = 1
        remove_stale_temps(self.path)
        return self

    def __exit__(self, *exc: Any) -> None:
        key = self.lock_file.resolve()
        _HELD_LOCKS[key] -= 1
        if _HELD_LOCKS[key]:
            return
        del _HELD_LOCKS[key]
        if self._fd is not None:
            self.lock_file.unlink(missing_ok=True)  # still ours: unlinked before the flock is dropped
            os.close(self._fd)
            self._fd = None


def main_process_lock(path: str | os.PathLike):
    """:class:`OutputLock` on ``path`` in the main process of a run (``RANK`` 0, or no
    ``accelerate launch``); a no-op in the other ranks, which write into the same folder."""
    from contextlib import nullcontext

    if os.environ.get("RANK", "0") not in ("", "0"):
        return nullcontext()
    return OutputLock(path)


def temp_path_for(path: str | os.PathLike) -> Path:
    """A temporary name for ``path`` in the same folder (so the final rename is atomic), unique
    to this process: ``<name>.<pid>.<random>.tmp``."""
    path = Path(path)
    return path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def remove_stale_temps(path: str | os.PathLike) -> int:
    """Remove temporary files that killed processes left for ``path`` (its own, its rejects' and
    its manifest's; inside it too when it is a folder); returns how many were removed.

    A temporary file is ``<name>.<pid>.<random>.tmp``; one whose process still runs is kept. The
    work folder of a Spark/Ray job (``.<name>.<pid>.<random>.work``, see
    :mod:`domainfm.distributed.jobs`) holds a copy of the job's input, raw notes for ``deid``:
    a killed job's is removed too (one without a pid, as earlier versions named it, as well: the
    caller holds the output's lock, so no live run of this output owns it)."""
    path = Path(path)
    manifest = manifest_path_for(path)  # inside a folder output, found by the folder's glob below
    names = {path.name, rejects_path_for(path).name} | ({manifest.name} if manifest.parent == path.parent else set())
    candidates: list[Path] = []
    work: list[Path] = []
    if path.parent.is_dir():
        for name in names:
            candidates += path.parent.glob(f"{glob_escape(name)}.*.tmp")
        work = [w for w in path.parent.glob(f".{glob_escape(path.name)}.*.work") if w.is_dir()]
    if path.is_dir():
        candidates += path.glob("*.tmp")
    removed = 0
    for tmp in candidates + work:
        parts = tmp.name.split(".")
        pid_named = len(parts) >= 4 and parts[-3].isdigit() and len(parts[-2]) == 8
        if tmp in work and not pid_named:
            pass
        elif not pid_named or _process_alive(int(parts[-3])):
            continue
        try:
            if tmp.is_dir():
                import shutil

                shutil.rmtree(tmp)
            else:
                tmp.unlink()
            removed += 1
        except OSError:
            pass
    return removed


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


@contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w", *, encoding: str | None = "utf-8",
                newline: str | None = "\n") -> Iterator[IO]:
    """Open a temporary file for ``path``; on success it is synced and renamed over ``path``, on
    error (or interrupt) removed. Unwritable paths raise :class:`OutputError`, never a traceback.

    Example:
        >>> with atomic_file("report.json") as fh:  # doctest: +SKIP
        ...     fh.write("{}")
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file path")
    tmp = temp_path_for(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if "b" in mode:
            fh = open(tmp, mode)
        else:
            fh = open(tmp, mode, encoding=encoding, newline=newline)
    except OSError as exc:
        raise _output_error(path, exc) from None
    try:
        try:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        finally:
            fh.close()
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, (BlockingIOError, InterruptedError)):
            raise _output_error(path, exc) from None
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a whole text file atomically (see :func:`atomic_file`)."""
    with atomic_file(path) as fh:
        fh.write(text)


def write_json_line(fh, obj: Any) -> None:
    """Write ``obj`` as one JSON line to the UTF-8 text file ``fh`` (what :class:`JsonlWriter`
    writes): a value JSON cannot hold is a :class:`RecordError` naming its type, and a string
    that is not valid Unicode (a lone UTF-16 surrogate) is written escaped."""
    record_id = obj.get("id") if isinstance(obj, dict) else None
    try:
        line = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    except ValueError:  # NaN or infinity: not JSON, and no reader could take the line back
        raise RecordError("a value is NaN or infinite, which JSON cannot hold; nothing was written",
                          record_id=record_id) from None
    except TypeError as exc:  # a numpy number, a set, a datetime in meta: named by type only
        kind = re.search(r"type (\w+) is not JSON serializable", str(exc))
        raise RecordError(f"a value of type {kind.group(1) if kind else 'unknown'} cannot be written as JSON "
                          "(convert it to a string, number, list or mapping first); nothing was written",
                          record_id=record_id) from None
    try:
        fh.write(line + "\n")
    except UnicodeEncodeError:
        fh.write(json.dumps(obj, ensure_ascii=True, allow_nan=False) + "\n")


class JsonlWriter:
    """The one JSONL writer: objects written as lines through :func:`atomic_file`, so the file
    appears only complete (``with JsonlWriter(path) as out: out.write_obj({...})``).

    Strings that are not valid Unicode (a lone UTF-16 surrogate read from ``"\\ud800"``) are
    written escaped as JSON allows, never raising while a reject is written."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._cm = None
        self._fh = None

    def __enter__(self):
        self._cm = atomic_file(self.path)
        self._fh = self._cm.__enter__()
        return self

    def write_obj(self, obj: Any) -> None:
        write_json_line(self._fh, obj)

    def __exit__(self, exc_type, exc, tb):
        return self._cm.__exit__(exc_type, exc, tb)


class DocumentWriter(JsonlWriter):
    """Write documents as JSONL; the file appears only once writing finished."""

    def __init__(self, path: str | os.PathLike):
        super().__init__(path)
        self.count = 0

    def write(self, doc: Document) -> None:
        # what read_documents would refuse is refused here, before it is written: a span past
        # the text's end, a text that is not a string, an id that is not one
        self.write_obj(checked_document(doc, "documents to write").to_dict())
        self.count += 1


class RejectWriter(JsonlWriter):
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


class CountingRejects:
    """A reject sink (``read_documents(rejects=...)`` and stages): counts each reject under its
    reason, keeps the first five PHI-free descriptions for the console and writes the record
    (raw text kept: the reject file is as sensitive as the input).

    Args:
        count_read: also count the record as read (input lines that never reached the stage);
            False for records a stage read and then rejected.
        show_ids: name the record id in the console lines (off for ``deid --pseudonymize-ids``,
            whose ids are identifiers: the location names the record instead).
    """

    def __init__(self, writer: RejectWriter, counts: Counts, first: list[str], *, count_read: bool = True,
                 show_ids: bool = True):
        self.writer, self.counts, self.first, self.count_read = writer, counts, first, count_read
        self.show_ids = show_ids

    def write(self, item: Rejected) -> None:
        self.counts.read += self.count_read
        self.counts.add_reject(item.reason)
        if len(self.first) < 5:
            self.first.append(item.describe(show_id=self.show_ids))
        self.writer.write(item)


def iter_jsonl_objects(path: str | os.PathLike) -> Iterator[tuple[int, Any | Rejected]]:
    """Yield ``(line_number, parsed_object)`` per non-blank line, or a :class:`Rejected`
    for lines that are not UTF-8 or not JSON. Reads in binary so one bad byte costs one line,
    not the file."""
    for number, _, obj in iter_jsonl_lines(path):
        yield number, obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def iter_jsonl_lines(path: str | os.PathLike) -> Iterator[tuple[int, str, Any | Rejected]]:
    """Like :func:`iter_jsonl_objects`, with the line as read (without its line break), for
    reject files: ``(line_number, line, parsed_object | Rejected)``. ``NaN``/``Infinity``
    (which Python's json accepts but JSON does not) reject the line."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: {not_a_file(path)} (expected a JSONL file, one document per line)")
    refuse_unreadable_text(path)
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            location = f"{path.name}:{number}"
            if number == 1:
                raw = strip_bom(raw)
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                text = raw.decode("utf-8", errors="backslashreplace").rstrip("\r\n")
                yield number, text, Rejected(
                    f"line is not valid UTF-8 (bad byte at position {exc.start})", location=location, raw=text)
                continue
            try:
                yield number, line, json.loads(line, parse_constant=_no_constant, object_pairs_hook=_unique_keys)
            except json.JSONDecodeError as exc:
                # json's messages may end in "at" ("Invalid control character at")
                message = exc.msg[: -len(" at")] if exc.msg.endswith(" at") else exc.msg
                yield number, line, Rejected(f"broken JSON ({message} at column {exc.colno})",
                                             location=location, raw=line)
            except (ValueError, RecursionError) as exc:
                reason = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
                yield number, line, Rejected(f"broken JSON ({reason})", location=location, raw=line)


# what a compressed file starts with; no UTF-8 text can (0x8b, 0xfd and 0xb5 cannot follow what
# comes before them in UTF-8; zip's and bzip2's signatures hold control characters)
_COMPRESSED = ((b"\x1f\x8b", "gzip", "gunzip -k"), (b"BZh", "bzip2", "bunzip2 -k"),
               (b"\xfd7zXZ\x00", "xz", "unxz -k"), (b"\x28\xb5\x2f\xfd", "zstd", "unzstd"),
               (b"PK\x03\x04", "zip", "unzip"))
_PARQUET_MAGIC = b"PAR1"


def refuse_unreadable_text(path: Path) -> None:
    """A file saved as UTF-16 or UTF-32 (Excel's "Unicode text", some Windows tools) is refused
    as a whole, naming the encoding: read as UTF-8, every line would be rejected as broken.
    (A UTF-8 file cannot start with these bytes.) So is a compressed file (``notes.jsonl.gz``):
    read as text it was one "not valid UTF-8" reject for a file of many records, or a CSV
    "no column 'text'", and the counts no longer described the file. A Parquet file too."""
    with open(path, "rb") as fh:
        start = fh.read(10)
    if start[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        raise CorpusError(f"{path}: UTF-16 or UTF-32 text (it starts with that byte-order mark); domainfm reads "
                          f"UTF-8: convert it first (e.g. iconv -f UTF-16 -t UTF-8 IN > OUT)")
    for magic, kind, command in _COMPRESSED:
        if start.startswith(magic) and (kind != "bzip2" or start[4:10] in (b"1AY&SY", b"\x17rE8P\x90")):
            raise CorpusError(f"{path}: a compressed file ({kind}); domainfm reads uncompressed UTF-8 text: "
                              f"decompress it first (e.g. {command} {path.name})")
    if start.startswith(_PARQUET_MAGIC):
        # read as lines, each piece of it was a "not valid UTF-8" reject with raw Parquet bytes
        raise CorpusError(f"{path}: a Parquet file, where UTF-8 text is read: 'domainfm deid' and 'domainfm chunk' "
                          "read a .parquet file or folder with --engine spark or --engine ray; otherwise convert "
                          "it to JSONL first")


def strip_bom(data: bytes) -> bytes:
    """A file's first bytes without the UTF-8 byte-order mark that Windows editors write."""
    return data[len(codecs.BOM_UTF8):] if data.startswith(codecs.BOM_UTF8) else data


def not_a_file(path: Path) -> str:
    """Why an input path is not a readable file, for an error message."""
    return "is a folder, not a file" if Path(path).is_dir() else "no such file"


def _unique_keys(pairs: list) -> dict:
    """A JSON object whose keys are all distinct: json keeps the last of a repeated key, which
    would silently drop the first value (a record's text, say)."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))
        # only a field of the document model is named: any other key may be data written as a key
        named = f"key {twice!r}" if twice in _SCHEMA_KEYS else "a key (not quoted: it may hold data)"
        raise ValueError(f"{named} is given twice in one object")
    return out


_SCHEMA_KEYS = frozenset(DOCUMENT_KEYS) | frozenset(SPAN_KEYS)


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
    for _, doc in read_located_documents(path, rejects=rejects):
        yield doc


def read_located_documents(
    path: str | os.PathLike, *, rejects: list[Rejected] | RejectWriter | None = None
) -> Iterator[tuple[str, Document]]:
    """:func:`read_documents` yielding ``(location, document)``; ``location`` is ``file:line``,
    for reject records written later in a stage."""
    seen: set[str] = set()
    path = Path(path)
    for number, line, obj in iter_jsonl_lines(path):
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
                item = Rejected.from_error(err, raw=line)
        if isinstance(item, Rejected):
            if rejects is None:
                raise RecordError(item.reason, record_id=item.record_id, location=item.location)
            if isinstance(rejects, list):
                rejects.append(item)
            else:
                rejects.write(item)
            continue
        yield location, item


def write_documents(path: str | os.PathLike, docs: Iterable[Document]) -> int:
    """Write documents to JSONL atomically; returns how many were written."""
    with DocumentWriter(path) as writer:
        for doc in docs:
            writer.write(doc)
    return writer.count
