"""The driver's half of a distributed de-identification or chunking job, shared by the engines.

The driver reads and validates the input exactly as one process does (the same rejects with
``file:line``, duplicate ids caught), stages it as Parquet rows for the engine, lets the engine
run the partition functions of :mod:`domainfm.distributed.core`, then writes what one process
writes: the output in input order (JSONL, or a Parquet folder of the document model's columns),
the reject file, the vault (merged from the workers' encrypted rows) and a manifest that names
the engine and its version. Counts must reconcile across partitions or nothing is trusted.
"""

from __future__ import annotations

import heapq
import json
import os
import shutil
import sqlite3
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

from domainfm.corpus.io import (Counts, CountingRejects, JsonlWriter, OutputLock, Rejected, RejectWriter,
                                check_output_path, rejects_path_for)
from domainfm.distributed.core import (DOCUMENT, DOCUMENT_COLUMNS, DUPLICATE_ID, OUTSIDE_TEXT, RECORD, REJECT, DeidJob,
                                       input_rows, meta_not_json, record_from_columns)
from domainfm.errors import ConfigError, CorpusError, OutputError, RecordError
from domainfm.manifest import write_manifest

_STAGE_ROWS = 20_000  # rows per staged Parquet part
# rows per row group of a part: what the driver holds while staging, and what the Ray driver
# reads at a time when it splits the parts into groups
_STAGE_GROUP = 1_000


class Outputs(Protocol):
    """An engine's results, read back on the driver."""

    def ordered(self, kind: str) -> Iterator[dict[str, Any]]:
        """Rows of one kind in input order (``order``, then ``seq``)."""

    def vault_rows(self) -> Iterator[tuple[str, tuple[bytes, ...]]]:
        """The workers' encrypted vault rows as ``(table, columns)``."""


class Engine(Protocol):
    name: str

    def deidentify(self, staged: Path, job: DeidJob, work: Path) -> Outputs: ...

    def chunk(self, staged: Path, config, work: Path) -> Outputs: ...

    def describe(self) -> dict[str, Any]: ...


def is_parquet(path: Path) -> bool:
    return path.suffix == ".parquet" or (path.is_dir() and any(path.glob("*.parquet")))


def check_input(path: Path) -> None:
    """The input is a JSONL file or a Parquet file or folder, checked before the output is locked
    or a vault created (a typo left an empty vault behind, and a missing ``notes.parquet`` was
    reported as the reject file that could not be written).

    Raises:
        CorpusError: naming the path and what it should be.
    """
    if path.is_file():
        return
    if not path.is_dir():
        raise CorpusError(f"{path}: no such file (expected a JSONL file, or a Parquet file or folder)")
    nested = next((p for p in sorted(path.rglob("*.parquet")) if p.parent != path), None)
    if nested is not None:
        # a partitioned dataset (year=2020/...): its files below the top are not read, and the
        # folder names' values are not columns of the rows
        raise CorpusError(f"{path}: holds Parquet files in subfolders ({nested.parent.relative_to(path)}/); "
                          "the engines read the .parquet files directly inside the folder: read a partitioned "
                          "dataset with Spark and use domainfm.distributed.spark.deidentify_dataframe")
    if not is_parquet(path):
        raise CorpusError(f"{path}: is a folder without .parquet files (expected a JSONL file, or a Parquet "
                          "file or folder)")


def _parquet_file(file: Path):
    """The opened Parquet file, with the columns a document table needs."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        # INT96 read in nanoseconds wrapped a date outside 1677-2262 into another (0001-01-01 came
        # out as 1754-08-30); Spark reads it to the microsecond, as every other timestamp
        opened = pq.ParquetFile(file, coerce_int96_timestamp_unit="us")
    except (pa.ArrowException, OSError) as exc:
        raise CorpusError(f"{file}: not a readable Parquet file ({type(exc).__name__}); give a JSONL file or "
                          "a Parquet file or folder") from None
    names = opened.schema_arrow.names
    for column in ("id", "text"):
        if column not in names:
            # every row would be rejected for it, each with its whole record in the reject file
            raise CorpusError(f"{file}: no column {column!r} (columns: {', '.join(names)}); a table of notes needs "
                              "'id' and 'text': rename its columns, or use domainfm.distributed.spark."
                              "deidentify_dataframe(df, id_col=..., text_col=...)")
    return opened


def _int96_as_instants(parquet):
    """The file's Arrow schema with its INT96 timestamp columns as instants in UTC, or None
    without one. INT96 (Spark's, Hive's and Impala's legacy timestamp) has no flag for its time
    zone; Spark reads it as an instant in UTC, so the DataFrame API wrote ``+00:00``, and so did
    these engines for the same column stored as INT64, but pyarrow reads INT96 as a naive
    timestamp: the text in ``meta`` depended on the engine and on how the table was written."""
    import pyarrow as pa

    def leaves(dtype) -> int:  # Parquet columns of a field, as pyarrow lays nested types out
        return sum(leaves(dtype.field(i).type) for i in range(dtype.num_fields)) or 1

    fields, first, changed = [], 0, False
    for field in parquet.schema_arrow:
        if pa.types.is_timestamp(field.type) and parquet.schema.column(first).physical_type == "INT96":
            field, changed = field.with_type(pa.timestamp("us", tz="UTC")), True
        fields.append(field)
        first += leaves(field.type)
    return pa.schema(fields, parquet.schema_arrow.metadata) if changed else None


def _rows_of(batch) -> list[dict[str, Any]]:
    """A Parquet batch's rows as Python values, map columns as objects. ``to_pylist`` gives a map
    as a list of pairs: a ``meta`` map column (as Spark writes one) rejected every row, and another
    map column reached ``meta`` as pairs where the DataFrame API gives an object. A repeated key
    keeps its last value, as the DataFrame API's JSON does; pyarrow's warning about it would print
    the key, which may be data."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return batch.to_pylist(maps_as_pydicts="lossy")


def parquet_documents(path: Path, rejects) -> Iterator[tuple[str, Any]]:
    """``(location, Document)`` for each row of a Parquet file or folder (the document model's
    columns; other columns go to ``meta``); invalid rows and duplicate ids go to ``rejects``
    with ``file:row N``, as JSONL lines do."""
    import pyarrow as pa

    from domainfm.corpus.document import Document

    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    opened = [_parquet_file(file) for file in files]  # every file's columns before any row is staged
    seen: set[str] = set()
    for file, parquet in zip(files, opened):
        number, instants = 0, _int96_as_instants(parquet)
        for batch in parquet.iter_batches(batch_size=4096):
            if instants is not None:
                batch = pa.Table.from_batches([batch]).cast(instants)
            for columns in _rows_of(batch):
                number += 1
                location = f"{file.name}:row {number}"
                record = record_from_columns(columns)
                try:
                    doc = Document.from_dict(record, location=location)
                    if doc.id in seen:
                        raise RecordError(DUPLICATE_ID, record_id=doc.id, location=location)
                    unwritable = meta_not_json(doc.meta, [c for c in columns if c not in DOCUMENT_COLUMNS])
                    if unwritable is not None:
                        raise RecordError(unwritable, record_id=doc.id, location=location)
                except RecordError as err:
                    rejects.write(Rejected.from_error(err, raw=json.dumps(record, ensure_ascii=False, default=str)))
                    continue
                seen.add(doc.id)
                yield location, doc


class InputRejects:
    """The rejects the driver finds while staging, held with their input position (the documents
    staged before each) in the job's work folder, as sensitive as the staged input beside it,
    until :func:`write_rejects` merges them with the workers' rejects in input order.

    One process writes a reject when it reaches the record, so its reject file is in input
    order; the driver wrote its rejects at once and the workers' after them, so an empty note's
    reject (found by a chunking worker) came after a broken line below it."""

    def __init__(self, path: Path):
        self.path, self.staged = path, 0
        self._out = None

    def write(self, item: Rejected) -> None:
        if self._out is None:
            self._out = self.path.open("w", encoding="utf-8")
        # ASCII JSON: a lone surrogate in a raw record survives the round trip
        self._out.write(json.dumps([self.staged, item.reason, item.location, item.record_id, item.raw]) + "\n")

    def close(self) -> None:
        if self._out is not None:
            self._out.close()

    def __iter__(self) -> Iterator[tuple[int, Rejected]]:
        """``(documents staged before it, reject)`` in the order they were found."""
        if self._out is None:
            return
        self.close()
        with self.path.open(encoding="utf-8") as lines:
            for line in lines:
                staged, reason, location, record_id, raw = json.loads(line)
                yield staged, Rejected(reason, location=location, record_id=record_id, raw=raw)


def stage_input(in_path: Path, staging: Path, rejects: InputRejects, vault=None) -> int:
    """Validate the input on the driver and stage it as engine rows (Parquet parts under
    ``staging``): ``order``, ``location``, ``scope``, ``doc``. Returns the documents staged.
    Invalid records go to ``rejects``, which keeps where each one was among the staged documents.

    With the job's ``vault``, a document whose id the vault already holds for another text is
    rejected here, as one process rejects it: workers write to staging vaults that cannot see it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from domainfm.corpus.io import read_located_documents

    schema = pa.schema([("order", pa.int64()), ("location", pa.string()), ("scope", pa.string()),
                        ("doc", pa.string())])
    staging.mkdir(parents=True)
    located = parquet_documents(in_path, rejects) if is_parquet(in_path) else \
        read_located_documents(in_path, rejects=rejects)
    if vault is not None:
        located = _not_held_for_another_text(located, vault, rejects)
    sent, batch, part, writer = 0, [], 0, None

    def flush():
        nonlocal batch, part, writer
        if writer is None:
            writer = pq.ParquetWriter(staging / f"part-{part:05d}.parquet", schema)
        writer.write_table(pa.Table.from_pylist(batch, schema=schema))
        batch = []
        if sent % _STAGE_ROWS == 0:
            writer.close()
            part, writer = part + 1, None

    try:
        for row in input_rows(located):
            batch.append(row)
            sent += 1
            rejects.staged = sent  # the rejects read from here on come after this document
            if len(batch) >= _STAGE_GROUP:
                flush()
        if batch or (not part and writer is None):
            flush()
    finally:
        if writer is not None:
            writer.close()
    return sent


def _not_held_for_another_text(located, vault, rejects):
    from domainfm.deid.transform import vault_conflict

    for location, doc in located:
        conflict = vault_conflict(vault, doc)
        if conflict is None:
            yield location, doc
        else:
            conflict.location = location
            rejects.write(Rejected.from_error(conflict, raw=json.dumps(doc.to_dict(), ensure_ascii=False)))


def write_rejects(input_rejects: InputRejects, outputs: Outputs, writer: RejectWriter, counts: Counts,
                  first: list[str], *, show_ids: bool = True) -> None:
    """The driver's and the workers' rejects in input order, as one process writes them: a reject
    the driver found before the ``n``-th staged document comes before that document's reject from
    a worker (the driver's count as read, the workers' were counted when staged)."""

    def workers():
        for row in outputs.ordered(REJECT):
            payload = json.loads(row["payload"])
            yield row["order"], 1, Rejected(payload["reason"], location=row["location"], record_id=row["record_id"],
                                            raw=payload["raw"])

    read = CountingRejects(writer, counts, first, show_ids=show_ids)
    staged = CountingRejects(writer, counts, first, count_read=False, show_ids=show_ids)
    driver = ((position, 0, item) for position, item in input_rejects)
    for _, from_worker, item in heapq.merge(driver, workers(), key=lambda entry: entry[:2]):
        (staged if from_worker else read).write(item)


def _replace_dir(tmp: Path, final: Path, work: Path) -> None:
    """Put a finished output folder in place of ``final``: a re-run never leaves a mix. The
    replaced folder goes into the job's ``work`` folder, so a job killed between the two renames
    leaves nothing beside the output that the next run does not remove."""
    if final.exists():
        os.replace(final, work / "replaced")
    os.replace(tmp, final)


def write_records(outputs: Outputs, out_path: Path, *, parquet: bool, work: Path | None = None,
                  labels: dict[str, int] | None = None, outside_text: dict[str, int] | None = None) -> int:
    """The ``record`` rows in input order: JSONL re-serialised exactly as one process writes it,
    or a Parquet folder of the document model's columns (JSON objects as JSON text), assembled
    in the job's ``work`` folder (needed with ``parquet``: the next run of the output removes
    what a killed job left there). ``labels`` (when given) counts the records' ``phi_spans`` by
    label in the same pass, ``outside_text`` the fields that still hold an identifier of their
    text (:mod:`domainfm.deid.outside_text`)."""

    def records():
        for row in outputs.ordered(RECORD):
            record = json.loads(row["payload"])
            for name in record.pop(OUTSIDE_TEXT, None) or []:
                if outside_text is not None:
                    outside_text[name] = outside_text.get(name, 0) + 1
            if labels is not None:
                for span in record.get("phi_spans") or []:
                    labels[span["label"]] = labels.get(span["label"], 0) + 1
            yield record

    if not parquet:
        n = 0
        with JsonlWriter(out_path) as out:
            for record in records():
                out.write_obj(record)
                n += 1
        return n
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("meta", pa.string()), ("label", pa.string()),
                        ("labels", pa.list_(pa.string())), ("spans", pa.string()), ("phi_spans", pa.string())])
    tmp = work / "output.parquet"
    tmp.mkdir()
    n, part, batch = 0, 0, []

    def flush():
        nonlocal part, batch
        pq.write_table(pa.Table.from_pylist(batch, schema=schema), tmp / f"part-{part:05d}.parquet")
        part, batch = part + 1, []

    for record in records():
        batch.append({"id": record["id"], "text": record["text"], "label": record.get("label"),
                      "labels": record.get("labels"),
                      **{k: json.dumps(record.get(k) or ({} if k == "meta" else []), ensure_ascii=False)
                         for k in ("meta", "spans", "phi_spans")}})
        n += 1
        if len(batch) >= _STAGE_ROWS:
            flush()
    if batch or not part:
        flush()
    _replace_dir(tmp, out_path, work)
    return n


def _work_dir(out_path: Path) -> Path:
    """Where a job stages its input and the engine's parts: beside the output, named by this
    process, so that the next run of the output removes a killed job's folder (it holds the
    input, raw notes for deid; :func:`domainfm.corpus.io.remove_stale_temps`)."""
    return out_path.with_name(f".{out_path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.work")


def run_deid(in_path: str | os.PathLike, out_path: str | os.PathLike, config, engine: Engine, *,
             seed: int | None = None, on_stage: Callable[[str], None] | None = None):
    """``domainfm deid --engine spark|ray``: what :func:`~domainfm.deid.runner.deidentify_file`
    returns, computed by ``engine``."""
    from domainfm.deid.runner import DeidResult, by_count, check_vault_path, run_vault, surrogate_secret

    in_path, out_path = Path(in_path), Path(out_path)
    check_input(in_path)
    reject_file = rejects_path_for(out_path)
    check_output_path(out_path, inputs=[in_path], folder=out_path.suffix == ".parquet")
    check_output_path(reject_file, inputs=[in_path])
    check_vault_path(config.vault, in_path, out_path)
    from domainfm.models import resolve_spacy_model

    # on the driver, before the engine starts: a worker's error would arrive wrapped in the
    # engine's traceback, after the job was staged
    resolve_spacy_model(config.spacy_model)
    secret, key_source = surrogate_secret(config, seed)
    stage = on_stage or (lambda message: None)
    counts, first = Counts(), []
    work = _work_dir(out_path)
    with ExitStack() as stack:
        stack.enter_context(OutputLock(out_path))
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        vault = run_vault(stack, config.vault, secret)
        input_rejects = InputRejects(work / "rejects.jsonl")
        stack.callback(input_rejects.close)
        with RejectWriter(reject_file) as rejects:
            stage("reading and checking the input")
            show_ids = not config.pseudonymize_ids  # as one process: pseudonymised ids are identifiers
            sent = stage_input(in_path, work / "input", input_rejects, vault)
            counts.read += sent
            stage(f"de-identifying {sent} documents ({engine.name})")
            job = DeidJob(config=config, secret=secret, vault_header=vault.header() if vault is not None else None)
            outputs = engine.deidentify(work / "input", job, work)
            if vault is not None:
                # before the output appears, as one process commits its vault before its output is
                # renamed into place: an output whose records the vault cannot restore never exists
                stage("merging the vault")
                try:
                    vault.merge_rows(outputs.vault_rows())
                except sqlite3.Error as exc:  # as one process words it (a full disk, a locked file)
                    raise OutputError(f"{config.vault}: the vault could not be written ({type(exc).__name__}); "
                                      "nothing was written, re-run when the vault is free") from None
            stage("writing the output")
            found: dict[str, int] = {}
            outside: dict[str, int] = {}
            counts.written = write_records(outputs, out_path, parquet=out_path.suffix == ".parquet", work=work,
                                           labels=found, outside_text=outside)
            write_rejects(input_rejects, outputs, rejects, counts, first, show_ids=show_ids)
        by_label = by_count(found)
        _check_reconciles(counts)
        manifest = write_manifest(
            out_path, stage="deid", config=config, inputs=[in_path],
            outputs=[out_path] + ([reject_file] if counts.rejected else []),
            counts={**counts.to_dict(), "detections": sum(by_label.values()), "detections_by_label": by_label,
                    "identifiers_outside_text": by_count(outside)},
            extra={"surrogate_key": key_source, "engine": engine.describe()},
        )
    return DeidResult(out_path, reject_file if counts.rejected else None, manifest, counts,
                      sum(by_label.values()), by_label, key_source, first, by_count(outside))


def _check_reconciles(counts: Counts) -> None:
    if not counts.reconciles:
        raise ConfigError(f"internal error: read {counts.read} != written {counts.written} + rejected "
                          f"{counts.rejected} across partitions; the output is not trusted (re-run)")


def run_chunk(in_path: str | os.PathLike, out_path: str | os.PathLike, config, engine: Engine, *,
              on_stage: Callable[[str], None] | None = None):
    """``domainfm chunk --engine spark|ray``: the chunks :func:`~domainfm.chunk.runner.chunk_file`
    writes, in the same order (a :class:`~domainfm.chunk.runner.ChunkResult`)."""
    from domainfm.chunk.runner import ChunkResult
    from domainfm.chunk.splitter import Chunker

    in_path, out_path = Path(in_path), Path(out_path)
    check_input(in_path)
    reject_file = rejects_path_for(out_path)
    check_output_path(out_path, inputs=[in_path])
    check_output_path(reject_file, inputs=[in_path])
    Chunker(config)  # tokenizer and budget errors on the driver, before the engine starts
    stage = on_stage or (lambda message: None)
    counts = Counts()
    result = ChunkResult(out_path, None, out_path, counts)
    work = _work_dir(out_path)
    input_rejects = InputRejects(work / "rejects.jsonl")
    with OutputLock(out_path):
        try:
            with RejectWriter(reject_file) as rejects:
                stage("reading and checking the input")
                sent = stage_input(in_path, work / "input", input_rejects)
                counts.read += sent
                stage(f"chunking {sent} documents ({engine.name})")
                outputs = engine.chunk(work / "input", config, work)
                stage("writing the output")
                result.chunks = write_records(outputs, out_path, parquet=False)
                write_rejects(input_rejects, outputs, rejects, counts, result.first_rejects)
            for row in outputs.ordered(DOCUMENT):
                info = json.loads(row["payload"])
                counts.written += 1
                result.empty_documents += info["chunks"] == 0
                result.max_chunk_tokens = max(result.max_chunk_tokens, info["max_chunk_tokens"])
                result.spans_outside_chunks += info["spans_outside_chunks"]
        finally:
            input_rejects.close()
            shutil.rmtree(work, ignore_errors=True)
        _check_reconciles(counts)
        result.rejects = reject_file if counts.rejected else None
        result.manifest = write_manifest(
            out_path, stage="chunk", config=config, inputs=[in_path],
            outputs=[out_path] + ([reject_file] if counts.rejected else []),
            counts={**counts.to_dict(), "chunks": result.chunks, "empty_documents": result.empty_documents,
                    "spans_outside_chunks": result.spans_outside_chunks, "max_chunk_tokens": result.max_chunk_tokens},
            extra={"engine": engine.describe()},
        )
    return result


def make_engine(config) -> Engine:
    """The engine an :class:`~domainfm.distributed.config.EngineConfig` names (``spark`` or ``ray``)."""
    if config.name == "spark":
        from domainfm.distributed.spark import SparkEngine

        return SparkEngine(config.master, config.partitions)
    if config.name == "ray":
        from domainfm.distributed.ray import RayEngine

        return RayEngine(config.workers, buckets=config.partitions, address=config.ray_address)
    raise ConfigError(f"engine {config.name!r} runs in this process; use deidentify_file / chunk_file")
