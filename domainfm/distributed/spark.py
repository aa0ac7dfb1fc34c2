"""De-identify and chunk on Apache Spark, with the output one ``domainfm deid`` process writes.

``pip install 'domainfm[spark]'`` (pyspark >= 3.5; Java 17). Two levels:

* DataFrame API for data lakes: :func:`deidentify_dataframe` / :func:`chunk_dataframe` take a
  DataFrame of notes and return a DataFrame of result rows (see :mod:`domainfm.distributed.core`):
  records, rejects and encrypted vault rows. :func:`records_frame` turns the records into the
  document model as columns; :func:`merge_vault_rows` writes the vault rows into one vault file
  on the driver.
* Files (what ``domainfm deid|chunk --engine spark`` calls): :func:`deidentify_with_spark` /
  :func:`chunk_with_spark` read JSONL or Parquet and write the same JSONL as one process (input
  order), or Parquet, plus rejects, vault and a manifest that records the Spark version.

Built on ``mapInPandas`` (Arrow batches). Each Python worker builds its detector once, lazily, in
the worker (:func:`~domainfm.distributed.core.detector_for`); nothing is broadcast, so Spark
Connect works too. De-identification is partitioned by patient scope and ordered by input
position within a partition (see the core module for why that gives one process's output).
Results are staged with Spark's file commit protocol, so a task that dies and is retried leaves
no duplicate or missing row; final outputs are renamed into place only when complete.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

from domainfm.distributed.core import (DOCUMENT, RECORD, REJECT, ROW_FIELDS, VAULT, DeidJob, chunk_partition,
                                       deidentify_partition)
from domainfm.errors import ConfigError

RESULT_SCHEMA = ("kind string, order long, seq long, location string, record_id string, payload string, vault_table string, "
                 "c1 binary, c2 binary, c3 binary, c4 binary, c5 binary")
# The document model as Parquet columns: JSON objects (meta, spans, phi_spans) stay JSON text.
DOCUMENT_COLUMNS = ("id", "text", "meta", "label", "labels", "spans", "phi_spans")
_ARROW_ROWS = 1000


def spark_session(master: str = "local[2]", *, app_name: str = "domainfm", conf: dict[str, str] | None = None):
    """A Spark session for a domainfm job. Local masters bind to 127.0.0.1 with the UI off.

    ``local[N,F]`` lets a failed task be retried ``F - 1`` times (plain ``local[N]`` never
    retries). On a cluster or Databricks, pass the session you have to the DataFrame functions.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError("--engine spark needs pyspark: pip install 'domainfm[spark]' (and Java 17)") from None
    builder = SparkSession.builder.appName(app_name).master(master)
    settings = {"spark.sql.execution.arrow.pyspark.enabled": "true", "spark.python.worker.reuse": "true",
                "spark.sql.shuffle.partitions": "8", "spark.ui.showConsoleProgress": "false"}
    if master.startswith("local"):
        import sys

        # the workers run this interpreter (with domainfm and pyarrow), not whatever python3 is on
        # PATH; pyspark reads the environment variable when the context starts, the conf after
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        settings.update({"spark.ui.enabled": "false", "spark.driver.host": "127.0.0.1",
                         "spark.driver.bindAddress": "127.0.0.1", "spark.pyspark.python": sys.executable,
                         "spark.pyspark.driver.python": sys.executable})
    settings.update(conf or {})
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # Java missing or not startable: one clear line, not a JVM trace
        raise ConfigError(f"Spark could not start ({type(exc).__name__}); --engine spark needs Java 17 "
                          "(e.g. apt-get install openjdk-17-jre-headless) and pyspark") from None
    session.sparkContext.setLogLevel("WARN")
    return session


# --- DataFrame API ------------------------------------------------------------------------------

def document_rows(df, *, text_col: str = "text", id_col: str = "id", patient_col: str | None = None,
                  order_col: str | None = None):
    """``df`` as engine input rows (``order``, ``location``, ``scope``, ``doc`` as JSON).

    Columns ``meta`` (a JSON object as text or a map/struct), ``label``, ``labels`` and
    ``spans`` (JSON text) are read as the document model's; every other column goes to
    ``meta`` (as ``domainfm import csv`` does); ``patient_col`` becomes ``meta.patient_id``.
    Without ``order_col`` the DataFrame's own row order is the input order.
    """
    from pyspark.sql import functions as F

    missing = [c for c in (text_col, id_col, patient_col, order_col) if c and c not in df.columns]
    if missing:
        raise ConfigError(f"the DataFrame has no column {missing[0]!r} (columns: {', '.join(df.columns)})")
    order = F.col(order_col).cast("long") if order_col else F.monotonically_increasing_id()
    fields = {"id": id_col, "text": text_col}
    known = {"meta", "label", "labels", "spans", "phi_spans"}
    extra = [c for c in df.columns if c not in (text_col, id_col, order_col) and c not in known]
    patient = F.trim(F.col(patient_col).cast("string")) if patient_col else None
    if patient is None and "meta" in df.columns and dict(df.dtypes)["meta"] == "string":
        patient = F.trim(F.get_json_object("meta", "$.patient_id"))
    scope = F.concat(F.lit("doc:"), F.col(id_col).cast("string"))
    if patient is not None:
        scope = F.when(patient.isNotNull() & (patient != ""), F.concat(F.lit("patient:"), patient)).otherwise(scope)
    columns = [F.col(c).alias(f"_{name}") for name, c in fields.items()]
    columns += [F.col(c).alias(f"_{c}") for c in known if c in df.columns]
    columns += [F.col(c).alias(f"_x_{c}") for c in extra]
    packed = df.select(order.alias("order"), scope.alias("scope"), F.struct(*columns).alias("fields"))
    return packed.select("order", F.lit(None).cast("string").alias("location"), "scope",
                         F.to_json("fields", {"ignoreNullFields": "false"}).alias("doc"))


def _unpack(doc: str, patient_col: str | None) -> str:
    """The ``doc`` JSON that :func:`document_rows` packed, as a domainfm document record."""
    packed = json.loads(doc)
    record: dict[str, Any] = {"id": packed.get("_id"), "text": packed.get("_text")}
    meta = packed.get("_meta")
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except ValueError:
            pass  # Document.from_dict names the field and rejects the record
    record["meta"] = meta if meta is not None else {}
    for key in ("label", "labels", "spans", "phi_spans"):
        value = packed.get(f"_{key}")
        if key == "phi_spans" and value is None:
            continue
        if key in ("labels", "spans", "phi_spans") and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        record[key] = value
    if isinstance(record["meta"], dict):
        for key, value in packed.items():
            if key.startswith("_x_"):
                name = key[3:]
                record["meta"][("patient_id" if name == patient_col else name)] = value
    if isinstance(record["id"], int):
        record["id"] = str(record["id"])
    return json.dumps(record, ensure_ascii=False)


def _partition_fn(process: Callable[[Iterator[dict]], Iterator[dict]], unpack: str | None):
    """A ``mapInPandas`` function over one partition's Arrow batches (state lives across them).
    ``unpack``: None when ``doc`` is a document record already, else the patient column ("" for
    none) of :func:`document_rows`' packing."""

    def run(batches):
        import pandas as pd

        def rows():
            for frame in batches:
                for row in frame.to_dict("records"):
                    if unpack is not None:
                        row["doc"] = _unpack(row["doc"], unpack or None)
                    yield row

        out: list[dict] = []
        for row in process(rows()):
            out.append(row)
            if len(out) >= _ARROW_ROWS:
                yield pd.DataFrame(out, columns=list(ROW_FIELDS))
                out = []
        if out:
            yield pd.DataFrame(out, columns=list(ROW_FIELDS))

    return run


def deidentify_dataframe(df, *, config, secret: bytes | None = None, vault_header: tuple[bytes, bytes] | None = None,
                         text_col: str = "text", id_col: str = "id", patient_col: str | None = None,
                         order_col: str | None = None, partitions: int | None = None):
    """De-identify the notes of ``df``; returns the result rows (``RESULT_SCHEMA``), lazily.

    Args:
        config: :class:`~domainfm.deid.config.DeidConfig`.
        secret: the surrogate key (default: ``$DOMAINFM_VAULT_KEY`` read on the driver; on
            Databricks read it from a secret scope, e.g. ``dbutils.secrets.get(...)``, and pass
            it here). It travels inside the task closure, never in the Spark conf.
        vault_header: the target vault's :meth:`~domainfm.deid.vault.Vault.header`; with it,
            executors return encrypted vault rows for :func:`merge_vault_rows`.
        partitions: how many patient-scoped partitions (default: the session's default parallelism).

    Example:
        >>> rows = deidentify_dataframe(spark.table("notes"), config=DeidConfig(), patient_col="mrn")  # doctest: +SKIP
        >>> records_frame(rows).write.parquet("notes_deid")                                           # doctest: +SKIP
    """
    from domainfm.deid.vault import secret_from_env

    job = DeidJob(config=config, secret=secret if secret is not None else secret_from_env(), vault_header=vault_header)
    rows = document_rows(df, text_col=text_col, id_col=id_col, patient_col=patient_col, order_col=order_col)
    return _deidentify_rows(rows, job, partitions, unpack=patient_col or "")


def _deidentify_rows(rows, job: DeidJob, partitions: int | None, *, unpack: str | None):
    """Engine rows -> result rows, partitioned by patient scope, input order within a partition.
    ``unpack`` (the patient column, or "") when the rows' ``doc`` is :func:`document_rows`' packing."""
    n = partitions or rows.sparkSession.sparkContext.defaultParallelism
    by_patient = rows.repartition(n, "scope").sortWithinPartitions("order")
    return by_patient.mapInPandas(_partition_fn(lambda it: deidentify_partition(it, job), unpack), RESULT_SCHEMA)


def chunk_dataframe(df, *, config, text_col: str = "text", id_col: str = "id", order_col: str | None = None,
                    partitions: int | None = None):
    """Chunk the documents of ``df``; returns the result rows (one ``record`` row per chunk, one
    ``document`` row per chunked document, rejects). Any partitioning gives the same chunks."""
    rows = document_rows(df, text_col=text_col, id_col=id_col, order_col=order_col)
    return _chunk_rows(rows, config, partitions, unpack="")


def _chunk_rows(rows, config, partitions: int | None, *, unpack: str | None):
    if partitions:
        rows = rows.repartition(partitions)
    return rows.mapInPandas(_partition_fn(lambda it: chunk_partition(it, config), unpack), RESULT_SCHEMA)


def records_frame(result):
    """The ``record`` rows of :func:`deidentify_dataframe` as the document model's columns."""
    from pyspark.sql import functions as F

    records = result.where(F.col("kind") == RECORD)
    return records.select(
        "order",
        F.get_json_object("payload", "$.id").alias("id"),
        F.get_json_object("payload", "$.text").alias("text"),
        F.get_json_object("payload", "$.meta").alias("meta"),
        F.get_json_object("payload", "$.label").alias("label"),
        F.from_json(F.get_json_object("payload", "$.labels"), "array<string>").alias("labels"),
        F.get_json_object("payload", "$.spans").alias("spans"),
        F.get_json_object("payload", "$.phi_spans").alias("phi_spans"),
    )


def merge_vault_rows(result, vault) -> int:
    """Write the encrypted vault rows of a result into ``vault`` (an open
    :class:`~domainfm.deid.vault.Vault` whose header the job used) on the driver. Idempotent."""
    from pyspark.sql import functions as F

    rows = result.where(F.col("kind") == VAULT).select("vault_table", "c1", "c2", "c3", "c4", "c5")

    def tuples():
        for row in rows.toLocalIterator():
            columns = tuple(bytes(v) for v in row[1:] if v is not None)
            yield row[0], columns

    return vault.merge_rows(tuples())


# --- files ----------------------------------------------------------------------------------------

def _is_parquet(path: Path) -> bool:
    return path.suffix == ".parquet" or (path.is_dir() and any(path.glob("*.parquet")))


def _stage_input(spark, in_path: Path, staging: Path, reject) -> tuple[Any, int, str | None]:
    """The input as engine rows. JSONL is parsed on the driver, as one process parses it (same
    rejects with ``file:line``, ids checked for duplicates), and staged as Parquet; Parquet
    input is read by Spark and validated in the workers."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from domainfm.corpus.io import read_located_documents
    from domainfm.distributed.core import input_rows

    if _is_parquet(in_path):
        df = spark.read.parquet(str(in_path))
        return document_rows(df, order_col="order" if "order" in df.columns else None), df.count(), ""
    schema = pa.schema([("order", pa.int64()), ("location", pa.string()), ("scope", pa.string()), ("doc", pa.string())])
    staging.mkdir(parents=True)
    sent, batch, part = 0, [], 0

    class _Sink:
        write = staticmethod(reject)

    def flush():
        nonlocal batch, part
        if batch:
            pq.write_table(pa.Table.from_pylist(batch, schema=schema), staging / f"part-{part:05d}.parquet")
            part, batch = part + 1, []

    for row in input_rows(read_located_documents(in_path, rejects=_Sink())):
        batch.append(row)
        sent += 1
        if len(batch) >= 20_000:
            flush()
    flush()
    if not sent:
        pq.write_table(pa.Table.from_pylist([], schema=schema), staging / "part-00000.parquet")
    return spark.read.parquet(str(staging)), sent, None


def _replace_dir(tmp: Path, final: Path) -> None:
    """Put a finished output folder in place of ``final``: a re-run never leaves a mix."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class _Outputs:
    """The results staged by Spark, read back on the driver into the final files."""

    def __init__(self, spark, staged: Path):
        from pyspark.sql import functions as F

        self.F = F
        self.frame = spark.read.parquet(str(staged))

    def count(self, kind: str) -> int:
        return self.frame.where(self.F.col("kind") == kind).count()

    def ordered(self, kind: str) -> Iterator[Any]:
        return self.frame.where(self.F.col("kind") == kind).orderBy("order", "seq").toLocalIterator()


def _run_staged(result, spark, work: Path) -> _Outputs:
    staged = work / "results"
    # Spark's commit protocol: a task's files appear only when it succeeds (a retry replaces them).
    result.write.mode("overwrite").parquet(str(staged))
    return _Outputs(spark, staged)


def _write_records(outputs: _Outputs, out_path: Path, work: Path, parquet: bool) -> int:
    from domainfm.corpus.io import JsonlWriter

    if parquet:
        tmp = out_path.with_name(f".{out_path.name}.tmp-{uuid.uuid4().hex[:8]}")
        records = records_frame(outputs.frame).orderBy("order").drop("order")  # input order, like JSONL
        records.write.parquet(str(tmp))
        _replace_dir(tmp, out_path)
        return outputs.count(RECORD)
    n = 0
    with JsonlWriter(out_path) as out:
        for row in outputs.ordered(RECORD):
            out.write_obj(json.loads(row["payload"]))  # re-serialised exactly as one process writes it
            n += 1
    return n


def _write_rejects(outputs: _Outputs, writer, counts, first: list[str]) -> None:
    from domainfm.corpus.io import Rejected

    for row in outputs.ordered(REJECT):
        payload = json.loads(row["payload"])
        item = Rejected(payload["reason"], location=row["location"], record_id=row["record_id"], raw=payload["raw"])
        counts.add_reject(item.reason)
        if len(first) < 5:
            first.append(item.describe())
        writer.write(item)


def deidentify_with_spark(in_path: str | os.PathLike, out_path: str | os.PathLike, config, *, seed: int | None = None,
                          master: str = "local[2]", partitions: int | None = None, spark=None,
                          on_stage: Callable[[str], None] | None = None):
    """``domainfm deid --engine spark``: the same result as :func:`~domainfm.deid.runner.deidentify_file`
    (a :class:`~domainfm.deid.runner.DeidResult`), computed by Spark. A ``.parquet`` output (or
    input) is a Parquet folder of the document model's columns; anything else is JSONL."""
    from contextlib import ExitStack

    from domainfm.corpus.io import Counts, OutputLock, RejectWriter, check_output_path, rejects_path_for
    from domainfm.deid.runner import DeidResult, surrogate_secret
    from domainfm.manifest import write_manifest

    in_path, out_path = Path(in_path), Path(out_path)
    reject_file = rejects_path_for(out_path)
    check_output_path(out_path, inputs=[in_path])
    check_output_path(reject_file, inputs=[in_path])
    if config.vault is not None:
        check_output_path(config.vault, inputs=[in_path, out_path])
    secret, key_source = surrogate_secret(config, seed)
    stage = on_stage or (lambda message: None)
    counts, first = Counts(), []
    work = out_path.with_name(f".{out_path.name}.spark-{uuid.uuid4().hex[:8]}")
    with ExitStack() as stack:
        stack.enter_context(OutputLock(out_path))
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        vault = None
        if config.vault is not None:
            from domainfm.deid.vault import Vault

            stack.enter_context(OutputLock(config.vault, what="another 'domainfm deid' run (the vault)"))
            vault = stack.enter_context(Vault(config.vault, secret))
        session = spark or spark_session(master)
        with RejectWriter(reject_file) as rejects:
            def reject(item):
                counts.read += 1
                counts.add_reject(item.reason)
                if len(first) < 5:
                    first.append(item.describe())
                rejects.write(item)

            stage("reading the input")
            rows, sent, unpack = _stage_input(session, in_path, work / "input", reject)
            counts.read += sent
            stage(f"de-identifying {sent} documents on Spark")
            job = DeidJob(config=config, secret=secret, vault_header=vault.header() if vault is not None else None)
            result = _deidentify_rows(rows, job, partitions, unpack=unpack)
            outputs = _run_staged(result, session, work)
            stage("writing the output")
            counts.written = _write_records(outputs, out_path, work, parquet=out_path.suffix == ".parquet")
            _write_rejects(outputs, rejects, counts, first)
        if vault is not None:
            stage("merging the vault")
            merge_vault_rows(outputs.frame, vault)
        by_label = _detections_by_label(outputs)
        if not counts.reconciles:
            raise ConfigError(f"internal error: counts do not reconcile ({counts.to_dict()}); output not trusted")
        manifest = write_manifest(
            out_path, stage="deid", config=config, inputs=[in_path],
            outputs=[out_path] + ([reject_file] if counts.rejected else []),
            counts={**counts.to_dict(), "detections": sum(by_label.values()), "detections_by_label": by_label},
            extra={"surrogate_key": key_source, "engine": _engine_record(session, master, partitions)},
        )
    return DeidResult(out_path, reject_file if counts.rejected else None, manifest, counts,
                      sum(by_label.values()), by_label, key_source, first)


def _detections_by_label(outputs: _Outputs) -> dict[str, int]:
    from pyspark.sql import functions as F

    labels = (outputs.frame.where(F.col("kind") == RECORD)
              .select(F.explode(F.from_json(F.get_json_object("payload", "$.phi_spans"),
                                            "array<struct<label:string>>")).alias("span"))
              .groupBy("span.label").count().collect())
    return dict(sorted(((row["label"], row["count"]) for row in labels), key=lambda kv: (-kv[1], kv[0])))


def _engine_record(session, master: str, partitions: int | None) -> dict[str, Any]:
    import pyspark

    return {"name": "spark", "pyspark": pyspark.__version__, "spark": session.version,
            "master": session.sparkContext.master if session is not None else master,
            "partitions": partitions or session.sparkContext.defaultParallelism}


def chunk_with_spark(in_path: str | os.PathLike, out_path: str | os.PathLike, config, *, master: str = "local[2]",
                     partitions: int | None = None, spark=None, on_stage: Callable[[str], None] | None = None):
    """``domainfm chunk --engine spark``: the chunks :func:`~domainfm.chunk.runner.chunk_file`
    writes, in the same order (a :class:`~domainfm.chunk.runner.ChunkResult`)."""
    from domainfm.chunk.runner import ChunkResult
    from domainfm.chunk.splitter import Chunker
    from domainfm.corpus.io import Counts, OutputLock, RejectWriter, check_output_path, rejects_path_for
    from domainfm.manifest import write_manifest

    in_path, out_path = Path(in_path), Path(out_path)
    reject_file = rejects_path_for(out_path)
    check_output_path(out_path, inputs=[in_path])
    check_output_path(reject_file, inputs=[in_path])
    Chunker(config)  # tokenizer and budget errors on the driver, before Spark starts
    stage = on_stage or (lambda message: None)
    counts = Counts()
    result = ChunkResult(out_path, None, out_path, counts)
    work = out_path.with_name(f".{out_path.name}.spark-{uuid.uuid4().hex[:8]}")
    with OutputLock(out_path):
        try:
            session = spark or spark_session(master)
            with RejectWriter(reject_file) as rejects:
                def reject(item):
                    counts.read += 1
                    counts.add_reject(item.reason)
                    if len(result.first_rejects) < 5:
                        result.first_rejects.append(item.describe())
                    rejects.write(item)

                stage("reading the input")
                rows, sent, unpack = _stage_input(session, in_path, work / "input", reject)
                counts.read += sent
                stage(f"chunking {sent} documents on Spark")
                outputs = _run_staged(_chunk_rows(rows, config, partitions, unpack=unpack), session, work)
                stage("writing the output")
                result.chunks = _write_records(outputs, out_path, work, parquet=False)
                _write_rejects(outputs, rejects, counts, result.first_rejects)
                for row in outputs.frame.where(outputs.F.col("kind") == DOCUMENT).select("payload").toLocalIterator():
                    info = json.loads(row["payload"])
                    counts.written += 1
                    result.empty_documents += info["chunks"] == 0
                    result.max_chunk_tokens = max(result.max_chunk_tokens, info["max_chunk_tokens"])
                    result.spans_outside_chunks += info["spans_outside_chunks"]
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if not counts.reconciles:
            raise ConfigError(f"internal error: counts do not reconcile ({counts.to_dict()}); output not trusted")
        result.rejects = reject_file if counts.rejected else None
        result.manifest = write_manifest(
            out_path, stage="chunk", config=config, inputs=[in_path],
            outputs=[out_path] + ([reject_file] if counts.rejected else []),
            counts={**counts.to_dict(), "chunks": result.chunks, "empty_documents": result.empty_documents,
                    "spans_outside_chunks": result.spans_outside_chunks, "max_chunk_tokens": result.max_chunk_tokens},
            extra={"engine": _engine_record(session, master, partitions)},
        )
    return result
