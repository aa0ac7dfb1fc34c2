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
import re
from pathlib import Path
from typing import Any, Callable, Collection, Iterator

from domainfm.distributed.core import (DUPLICATE_ID, RECORD, ROW_FIELDS, VAULT, DeidJob, chunk_partition,
                                       deidentify_partition, meta_not_json, record_from_columns)
from domainfm.errors import ConfigError, RecordError

RESULT_SCHEMA = ("kind string, order long, seq long, location string, record_id string, payload string, vault_table string, "
                 "c1 binary, c2 binary, c3 binary, c4 binary, c5 binary")
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
    if not re.fullmatch(r"local(\[(\*|\d+)(,\d+)?\])?|local-cluster\[[\d, ]+\]|yarn|(spark|k8s|mesos)://\S+", master):
        # Spark would start a JVM, print its stack trace and only then refuse the master
        raise ConfigError(f"--master must be local, local[N], local[N,F], spark://HOST:PORT, k8s://..., or yarn. "
                          f"Got {master!r}.")
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

# reject_reason: a row that a worker rejects once its document is valid and its id new (binary
# data or NaN in meta, which the file jobs reject on the driver)
INPUT_SCHEMA = "order long, location string, scope string, doc string, reject_reason string"
# with the id of a valid document (null for an invalid one), for the check of repeated ids
_ID_SCHEMA = INPUT_SCHEMA + ", doc_id string"


def document_rows(df, *, text_col: str = "text", id_col: str = "id", patient_col: str | None = None,
                  order_col: str | None = None):
    """``df`` as engine input rows (``order``, ``location``, ``scope``, ``doc`` as JSON,
    ``reject_reason``).

    Columns ``meta`` (a JSON object as text or a map/struct), ``label``, ``labels`` and
    ``spans`` (JSON text) are read as the document model's; every other column goes to
    ``meta`` (as ``domainfm import csv`` does); ``patient_col`` becomes ``meta.patient_id``.
    Without ``order_col`` the DataFrame's own row order is the input order. A row whose ``meta``
    holds binary data or NaN is rejected, naming the column, as the file engines reject it
    (:func:`~domainfm.distributed.core.meta_not_json`): ``to_json`` wrote bytes as base64 text
    and NaN as the text ``"NaN"``, and such rows went through as text. A repeated id is rejected
    as the file engines reject it (:func:`_repeated_ids_rejected`).

    The rows are built in Python by the workers' own code (:func:`_document_rows`): the patient
    scope that partitions them is then the scope the workers de-identify with, wherever the
    patient id is (``patient_col``, a ``patient_id`` column, a ``meta`` struct, map or JSON
    text). Computed with Spark's functions, it missed all but the first and the JSON text, and a
    patient's notes were spread over partitions: a surname found in one note was left bare in
    the next.
    """
    from pyspark.sql import functions as F

    missing = [c for c in (text_col, id_col, patient_col, order_col) if c and c not in df.columns]
    if missing:
        raise ConfigError(f"the DataFrame has no column {missing[0]!r} (columns: {', '.join(df.columns)})")
    order = F.col(order_col).cast("long") if order_col else F.monotonically_increasing_id()
    fields = {"id": id_col, "text": text_col}
    known = {"meta", "label", "labels", "spans", "phi_spans"}
    extra = [c for c in df.columns if c not in (text_col, id_col, order_col) and c not in known]
    types = {field.name: field.dataType for field in df.schema.fields}
    columns = [F.col(c).alias(f"_{name}") for name, c in fields.items()]
    columns += [F.col(c).alias(f"_{c}") for c in known if c in df.columns]
    columns += [_packed_column(c, types[c]) for c in extra]
    packed = df.select(order.alias("order"), F.to_json(F.struct(*columns), {"ignoreNullFields": "false"}).alias("doc"))
    # the packed columns whose JSON is not their value (bytes as base64, NaN as "NaN"), by type
    packed_types = {f"_{name}": types[c].jsonValue() for name, c in fields.items()}
    packed_types.update({f"_{c}": types[c].jsonValue() for c in known if c in df.columns})
    packed_types.update({f"_x_{c}": types[c].jsonValue() for c in extra})
    lossy = {key: dtype for key, dtype in packed_types.items() if _json_loses(dtype)}
    meta_columns = [c for c in extra if c != patient_col]
    return _repeated_ids_rejected(packed.mapInPandas(_document_rows(patient_col, lossy, meta_columns), _ID_SCHEMA))


def _repeated_ids_rejected(rows):
    """``rows`` (:data:`_ID_SCHEMA`) as engine input rows, every valid row of an id after its first
    (in input order) rejected as a duplicate, as the file engines' driver rejects it: the first is
    the first valid row of the id that has no reject reason (one with binary data in ``meta`` is
    rejected for that and does not use its id up).

    The workers catch a repeat only inside their partition: two rows of one id and two patients
    were in two partitions, and both were written. Grouping the rows by id costs one more
    shuffle, and nothing is collected on the driver."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    clean = F.col("doc_id").isNotNull() & F.col("reject_reason").isNull()
    # invalid rows (no id) spread by their position: one group of them all would be one task
    by_id = Window.partitionBy("doc_id", F.when(F.col("doc_id").isNull(), F.col("order"))) \
        .orderBy(F.when(clean, 0).otherwise(1), "order")
    first = F.first(F.when(clean, F.col("order")), ignorenulls=True).over(by_id)
    # a tie in a caller's order_col keeps one row of the id, not both
    repeated = F.when(clean, F.row_number().over(by_id) > 1).otherwise(F.col("order") > first)
    reason = F.when(repeated, F.lit(DUPLICATE_ID)).otherwise(F.col("reject_reason"))
    return rows.select("order", "location", "scope", "doc", reason.alias("reject_reason"))


def _document_rows(patient_col: str | None, lossy: dict[str, Any] | None = None, meta_columns: Collection[str] = ()):
    """A ``mapInPandas`` function: :func:`document_rows`' packed columns -> engine input rows.
    ``lossy``: see :func:`_unpack`; ``meta_columns``: the columns that go to ``meta`` by their
    own names, named in a reject's reason."""

    def run(batches):
        import pandas as pd

        from domainfm.deid.surrogates import scope_for

        for frame in batches:
            records = [_unpack(doc, patient_col, lossy) for doc in frame["doc"]]
            scopes = [scope_for(str(r["id"]), r["meta"] if isinstance(r["meta"], dict) else None) for r in records]
            reasons = [meta_not_json(r["meta"], meta_columns) if isinstance(r["meta"], dict) else None
                       for r in records]
            # default=str: a rejected row's bytes, for the raw record of the reject row (as the
            # file jobs write it)
            docs = [json.dumps(r, ensure_ascii=True, default=str) for r in records]
            yield pd.DataFrame({"order": frame["order"], "location": None, "scope": scopes, "doc": docs,
                                "reject_reason": reasons, "doc_id": [_valid_id(doc) for doc in docs]})

    return run


def _valid_id(doc: str) -> str | None:
    """The id of ``doc`` (a document as JSON) if the workers will read it as a valid document."""
    from domainfm.corpus.document import Document

    try:
        return Document.from_dict(json.loads(doc)).id
    except (RecordError, TypeError, ValueError):
        return None


def _json_loses(dtype: Any) -> bool:
    """Whether ``to_json`` writes a value of Spark type ``dtype`` (``DataType.jsonValue()``) as
    something else: binary as base64 text, a float's NaN or infinity as text."""
    if isinstance(dtype, str):
        return dtype in ("binary", "float", "double")
    kind = dtype.get("type")
    if kind == "array":
        return _json_loses(dtype["elementType"])
    if kind == "map":
        return _json_loses(dtype["keyType"]) or _json_loses(dtype["valueType"])
    if kind == "struct":
        return any(_json_loses(field["type"]) for field in dtype["fields"])
    return False


def _exact(value: Any, dtype: Any) -> Any:
    """``value`` as ``to_json`` wrote it, back as the value itself: the bytes of a binary, the
    float of ``"NaN"``, ``"Infinity"`` or ``"-Infinity"`` (``dtype`` as in :func:`_json_loses`)."""
    import base64

    if value is None:
        return None
    if isinstance(dtype, str):
        if dtype == "binary" and isinstance(value, str):
            return base64.b64decode(value)
        if dtype in ("float", "double") and isinstance(value, str):
            return float(value)
        return value
    kind = dtype.get("type")
    if kind == "array" and isinstance(value, list):
        return [_exact(item, dtype["elementType"]) for item in value]
    if kind == "map" and isinstance(value, dict):
        return {_exact(key, dtype["keyType"]): _exact(item, dtype["valueType"]) for key, item in value.items()}
    if kind == "struct" and isinstance(value, dict):
        types = {field["name"]: field["type"] for field in dtype["fields"]}
        return {key: _exact(item, types.get(key, "string")) for key, item in value.items()}
    return value


def _packed_column(column: str, dtype):
    """A column that is not the document model's, as :func:`document_rows` packs it; the prefix
    tells :func:`_unpack` how to read it back.

    ``to_json`` writes a timestamp in the session's time zone to the millisecond and a decimal as
    a JSON number (a float once parsed), where the file API reads the same Parquet column as
    Python's ISO text and the decimal's exact text: the same rows gave other ``meta`` values, and
    a cluster's time zone changed them. Sent as exact values, they come out as the file API's."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if isinstance(dtype, T.TimestampType):  # an instant: written in UTC, as pyarrow reads one
        return F.unix_micros(F.col(column)).alias(f"_t_{column}")
    if isinstance(dtype, T.TimestampNTZType):
        return F.col(column).cast("string").alias(f"_n_{column}")
    if isinstance(dtype, T.DecimalType):
        return F.col(column).cast("string").alias(f"_d_{column}")
    return F.col(column).alias(f"_x_{column}")


def _unpacked_value(kind: str, value: Any) -> Any:
    import datetime
    import decimal

    if value is None or kind == "x":
        return value
    if kind == "t":
        return datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(microseconds=value)
    if kind == "n":
        return datetime.datetime.fromisoformat(value)
    return decimal.Decimal(value)


def _unpack(doc: str, patient_col: str | None, lossy: dict[str, Any] | None = None) -> dict:
    """The ``doc`` JSON that :func:`document_rows` packed, as a domainfm document record. The
    table's other columns go to ``meta`` by their own names, even one named ``id`` or ``text``
    beside ``id_col`` and ``text_col`` (it replaced the note's id or text). ``lossy``: the
    packed keys whose values come back by their Spark type (:func:`_exact`)."""
    fields, extra = {}, {}
    for key, value in json.loads(doc).items():
        if lossy and key in lossy:
            value = _exact(value, lossy[key])
        if key[1] in "xtnd" and key[2:3] == "_":  # _x_NAME ...: no document field starts so
            extra[key[3:]] = _unpacked_value(key[1], value)
        else:
            fields[key[1:]] = value
    return record_from_columns(fields, patient_col, extra)


def _partition_fn(process: Callable[[Iterator[dict]], Iterator[dict]]):
    """A ``mapInPandas`` function over one partition's Arrow batches (state lives across them)."""

    def run(batches):
        import pandas as pd

        def rows():
            for frame in batches:
                yield from frame.to_dict("records")

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

    if config.vault is not None and vault_header is None:
        # the workers fill no vault without its header: the run would end with nothing to
        # re-identify from, and with pseudonymize_ids each worker would fail with a traceback
        raise ConfigError(f"config.vault ({config.vault}) is written on the driver here: open it "
                          "(vault = Vault(path, secret)), pass vault_header=vault.header(), then "
                          "merge_vault_rows(rows, vault); or leave config.vault unset")
    job = DeidJob(config=config, secret=secret if secret is not None else secret_from_env(), vault_header=vault_header)
    rows = document_rows(df, text_col=text_col, id_col=id_col, patient_col=patient_col, order_col=order_col)
    return _deidentify_rows(rows, job, partitions)


def _deidentify_rows(rows, job: DeidJob, partitions: int | None):
    """Engine rows -> result rows, partitioned by patient scope, input order within a partition."""
    n = partitions or rows.sparkSession.sparkContext.defaultParallelism
    by_patient = rows.repartition(n, "scope").sortWithinPartitions("order")
    return by_patient.mapInPandas(_partition_fn(lambda it: deidentify_partition(it, job)), RESULT_SCHEMA)


def chunk_dataframe(df, *, config, text_col: str = "text", id_col: str = "id", order_col: str | None = None,
                    partitions: int | None = None):
    """Chunk the documents of ``df``; returns the result rows (one ``record`` row per chunk, one
    ``document`` row per chunked document, rejects). Any partitioning gives the same chunks."""
    rows = document_rows(df, text_col=text_col, id_col=id_col, order_col=order_col)
    return _chunk_rows(rows, config, partitions)


def _chunk_rows(rows, config, partitions: int | None):
    if partitions:
        rows = rows.repartition(partitions)
    return rows.mapInPandas(_partition_fn(lambda it: chunk_partition(it, config)), RESULT_SCHEMA)


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
    return vault.merge_rows(_vault_tuples(result))


def _vault_tuples(result) -> Iterator[tuple[str, tuple[bytes, ...]]]:
    from pyspark.sql import functions as F

    rows = result.where(F.col("kind") == VAULT).select("vault_table", "c1", "c2", "c3", "c4", "c5")
    for row in rows.toLocalIterator():
        yield row[0], tuple(bytes(v) for v in row[1:] if v is not None)


# --- the engine for files (``domainfm deid|chunk --engine spark``) -------------------------------

def spark_path(path: Path) -> str:
    """``path`` for Spark's readers, which expand glob patterns: an output named ``notes[1].jsonl``
    or kept under ``runs/{a,b}/`` staged its work there, and Spark found no such path. Hadoop's
    glob syntax escapes a character with a backslash."""
    return re.sub(r"([\\\[\]{}*?])", r"\\\1", str(path))


class SparkOutputs:
    """Result rows staged as Parquet by Spark (its commit protocol: a task's files appear only
    when it succeeds, and a retried task's replace them), read back in input order."""

    def __init__(self, session, staged: Path):
        self.staged = staged
        self.frame = session.read.parquet(spark_path(staged))

    def ordered(self, kind: str) -> Iterator[dict[str, Any]]:
        """Read on the driver straight from the committed files, without the JVM: each file is
        one task's output, sorted by ``(order, seq)`` as it was written (:meth:`SparkEngine._run`),
        so a k-way merge streams them in input order holding one batch per file. A global
        ``orderBy`` + ``toLocalIterator`` returned each sorted range to the driver as one block:
        100,000 generated notes exhausted the default 1 GB driver heap ("Java heap space")."""
        import heapq

        files = sorted(self.staged.glob("part-*.parquet"))
        return heapq.merge(*(_file_rows(path, kind) for path in files), key=lambda row: (row["order"], row["seq"]))

    def vault_rows(self) -> Iterator[tuple[str, tuple[bytes, ...]]]:
        return _vault_tuples(self.frame)


def _file_rows(path: Path, kind: str, batch_size: int = 1024) -> Iterator[dict[str, Any]]:
    """The rows of one result file whose ``kind`` is ``kind``, in file order, a batch at a time."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
        yield from batch.filter(pc.equal(batch.column("kind"), kind)).to_pylist()


class SparkEngine:
    """Runs the partition functions on a Spark session (``local[N]`` started here by default)."""

    name = "spark"

    def __init__(self, master: str = "local[2]", partitions: int | None = None, session=None):
        self.master, self.partitions = master, partitions
        self._session = session

    @property
    def session(self):
        """The Spark session, started on first use: once the job has checked its input, so a typo
        in a path is said before seconds of Java start-up."""
        if self._session is None:
            self._session = spark_session(self.master)
        return self._session

    def _rows(self, staged: Path):
        return self.session.read.parquet(spark_path(staged))

    def _run(self, result, work: Path) -> SparkOutputs:
        staged = work / "results"
        # sorted within each task's file (Spark spills as it sorts): SparkOutputs merges the files
        result.sortWithinPartitions("order", "seq").write.mode("overwrite").parquet(str(staged))
        return SparkOutputs(self.session, staged)

    def deidentify(self, staged: Path, job: DeidJob, work: Path) -> SparkOutputs:
        return self._run(_deidentify_rows(self._rows(staged), job, self.partitions), work)

    def chunk(self, staged: Path, config, work: Path) -> SparkOutputs:
        return self._run(_chunk_rows(self._rows(staged), config, self.partitions), work)

    def describe(self) -> dict[str, Any]:
        import pyspark

        context = self.session.sparkContext
        return {"name": "spark", "spark": self.session.version, "pyspark": pyspark.__version__,
                "master": context.master, "partitions": self.partitions or context.defaultParallelism}


def deidentify_with_spark(in_path: str | os.PathLike, out_path: str | os.PathLike, config, *, seed: int | None = None,
                          master: str = "local[2]", partitions: int | None = None, spark=None,
                          on_stage: Callable[[str], None] | None = None):
    """``domainfm deid --engine spark``: see :func:`domainfm.distributed.jobs.run_deid`."""
    from domainfm.distributed.jobs import run_deid

    return run_deid(in_path, out_path, config, SparkEngine(master, partitions, spark), seed=seed, on_stage=on_stage)


def chunk_with_spark(in_path: str | os.PathLike, out_path: str | os.PathLike, config, *, master: str = "local[2]",
                     partitions: int | None = None, spark=None, on_stage: Callable[[str], None] | None = None):
    """``domainfm chunk --engine spark``: see :func:`domainfm.distributed.jobs.run_chunk`."""
    from domainfm.distributed.jobs import run_chunk

    return run_chunk(in_path, out_path, config, SparkEngine(master, partitions, spark), on_stage=on_stage)
