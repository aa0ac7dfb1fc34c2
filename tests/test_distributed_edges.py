"""Three edges of the engines that gave other output than one process or than each other: a
Parquet table whose timestamps are stored as INT96 (Spark's, Hive's and Impala's legacy type),
the order of the reject file when the driver and the workers both reject records, and one id
used by notes of two patients in the DataFrame API. Real local Spark and Ray, made-up notes."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from domainfm.chunk import ChunkConfig, chunk_file
from domainfm.deid.config import DeidConfig
from test_distributed import _same_files, ray_local, spark  # noqa: F401 (fixtures)

SIGNED = [datetime.datetime(2021, 3, 4, 10, 30, 0, 500000), datetime.datetime(1, 1, 1), None]
# as Spark and the DataFrame API read an INT96 or an INT64 instant: ISO text in UTC
SIGNED_TEXT = ["2021-03-04T10:30:00.500000+00:00", "0001-01-01T00:00:00+00:00", None]


def _signed_notes(folder: Path, *, int96: bool) -> Path:
    """Three made-up notes with a ``signed_at`` timestamp column, stored as INT96 or INT64."""
    pa = pytest.importorskip("pyarrow", reason="pip install 'domainfm[spark]' (.ci/run installs it)")
    import pyarrow.parquet as pq

    table = pa.table({"id": ["a", "b", "c"],
                      "text": ["Seen by Dr. Farrow on 3/4/2021.", "Stable.", "Seen again."],
                      "patient_id": ["P1", "P1", "P2"],
                      "signed_at": pa.array(SIGNED, pa.timestamp("us", tz="UTC"))})
    path = folder / ("int96.parquet" if int96 else "int64.parquet")
    pq.write_table(table, path, use_deprecated_int96_timestamps=int96)
    return path


def test_an_int96_timestamp_is_read_as_the_same_instant_in_utc(tmp_path):
    """pyarrow reads INT96 as a naive timestamp in nanoseconds: the file engines wrote
    ``2021-03-04T10:30:00.500000`` where INT64 and Spark give ``+00:00``, and 0001-01-01 wrapped
    round into 1754-08-30."""
    from domainfm.distributed.jobs import parquet_documents

    rejects: list = []
    sink = type("Kept", (), {"write": staticmethod(rejects.append)})()
    metas = {int96: [doc.meta["signed_at"] for _, doc in parquet_documents(_signed_notes(tmp_path, int96=int96), sink)]
             for int96 in (False, True)}
    assert not rejects
    assert metas[True] == metas[False] == SIGNED_TEXT


@pytest.mark.slow
def test_int96_timestamps_give_the_int64_meta_on_every_engine(tmp_path, request):
    """``--engine spark`` and ``--engine ray`` on an INT96 table (written by pyarrow, and by Spark
    with ``outputTimestampType=INT96``) write what they write for the INT64 table, and the
    DataFrame API reads the INT96 table as they do. (One process reads JSONL only.)"""
    from domainfm.deid.runner import surrogate_secret
    from domainfm.distributed.jobs import run_deid
    from domainfm.distributed.ray import RayEngine
    from domainfm.distributed.spark import SparkEngine, deidentify_dataframe

    session = request.getfixturevalue("spark")
    int64, int96 = _signed_notes(tmp_path, int96=False), _signed_notes(tmp_path, int96=True)
    previous = session.conf.get("spark.sql.parquet.outputTimestampType")
    session.conf.set("spark.sql.parquet.outputTimestampType", "INT96")
    try:
        session.read.parquet(str(int64)).coalesce(1).write.parquet(str(tmp_path / "by_spark.parquet"))
    finally:
        session.conf.set("spark.sql.parquet.outputTimestampType", previous)

    run_deid(int64, tmp_path / "int64.jsonl", DeidConfig(), SparkEngine(session=session), seed=5)
    expected = (tmp_path / "int64.jsonl").read_text(encoding="utf-8")
    assert [json.loads(line)["meta"]["signed_at"] for line in expected.splitlines()] == SIGNED_TEXT
    request.getfixturevalue("ray_local")
    for name, engine in {"spark": SparkEngine(session=session), "ray": RayEngine(2)}.items():
        for source in (int96, tmp_path / "by_spark.parquet"):
            out = tmp_path / f"{name}-{source.stem}.jsonl"
            run_deid(source, out, DeidConfig(), engine, seed=5)
            assert out.read_text(encoding="utf-8") == expected, (name, source.name)

    secret, _ = surrogate_secret(DeidConfig(), 5)
    rows = deidentify_dataframe(session.read.parquet(str(int96)), config=DeidConfig(), secret=secret).collect()
    got = [r["payload"] for r in sorted(rows, key=lambda r: r["order"]) if r["kind"] == "record"]
    assert [json.loads(payload) for payload in got] == [json.loads(line) for line in expected.splitlines()]


def _notes_with_rejects(path: Path) -> Path:
    """Twelve notes of four patients, three of them empty (a chunking worker rejects those), with
    a broken line, a repeated id and a text that is not a string below them (the driver rejects
    those)."""
    lines = [json.dumps({"id": f"n{i}", "text": "" if i in (1, 6, 10) else f"Seen on day {i}. Stable.",
                         "meta": {"patient_id": f"P{i % 4}"}}) for i in range(12)]
    lines.insert(3, "{broken")
    lines.insert(9, json.dumps({"id": "n2", "text": "Repeated."}))
    lines.insert(12, json.dumps({"id": "n99", "text": 7}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("engine_name", ["spark", "ray"])
def test_the_reject_file_is_in_input_order_as_one_process_writes_it(tmp_path, request, engine_name):
    """The driver wrote its rejects while staging and the workers' after them: an empty note's
    reject came after the broken line below it, and the reject file was not one process's."""
    from domainfm.distributed.jobs import run_chunk

    if engine_name == "spark":
        from domainfm.distributed.spark import SparkEngine

        engine = SparkEngine(session=request.getfixturevalue("spark"), partitions=3)
    else:
        from domainfm.distributed.ray import RayEngine

        request.getfixturevalue("ray_local")
        engine = RayEngine(2, buckets=3)
    src = _notes_with_rejects(tmp_path / "notes.jsonl")
    one = chunk_file(src, tmp_path / "one.jsonl", ChunkConfig())
    dist = run_chunk(src, tmp_path / "dist.jsonl", ChunkConfig(), engine)
    assert dist.counts.to_dict() == one.counts.to_dict() and dist.counts.rejected == 6
    assert dist.first_rejects == one.first_rejects
    assert _same_files(tmp_path / "one.rejects.jsonl", tmp_path / "dist.rejects.jsonl")
    assert _same_files(tmp_path / "one.jsonl", tmp_path / "dist.jsonl")


@pytest.mark.slow
def test_the_dataframe_api_rejects_an_id_used_by_two_patients_as_the_file_engines_do(tmp_path, spark):
    """The workers caught a repeated id only inside their partition: the second note of an id
    under another patient was in another partition, and both notes were written. The first valid
    row of an id is kept; a row rejected for binary data does not use its id up."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from domainfm.deid.runner import surrogate_secret
    from domainfm.distributed.jobs import run_deid
    from domainfm.distributed.spark import SparkEngine, chunk_dataframe, deidentify_dataframe

    ids = [f"n{i}" for i in range(8)] + [f"n{i}" for i in range(8)] + ["z", "z", None]
    patients = [f"P{i}" for i in range(8)] + [f"P{(i + 3) % 8}" for i in range(8)] + ["P1", "P2", "P3"]
    scans = [None] * 16 + [b"\x00", None, None]
    pq.write_table(pa.table({"id": ids, "text": [f"Seen by Dr. Farrow, note {n}." for n in range(len(ids))],
                             "patient_id": patients, "scan": pa.array(scans, pa.binary())}),
                   tmp_path / "notes.parquet")
    result = run_deid(tmp_path / "notes.parquet", tmp_path / "file.jsonl", DeidConfig(), SparkEngine(session=spark),
                      seed=5)
    assert (result.counts.written, result.counts.rejected) == (9, 10)
    written = [json.loads(line) for line in (tmp_path / "file.jsonl").open(encoding="utf-8")]
    rejected = [(r["id"], r["reason"]) for r in map(json.loads, (tmp_path / "file.rejects.jsonl").open())]

    secret, _ = surrogate_secret(DeidConfig(), 5)
    table = spark.read.parquet(str(tmp_path / "notes.parquet"))
    rows = sorted(deidentify_dataframe(table, config=DeidConfig(), secret=secret, partitions=4).collect(),
                  key=lambda r: r["order"])
    assert [json.loads(r["payload"]) for r in rows if r["kind"] == "record"] == written
    assert [(r["record_id"], json.loads(r["payload"])["reason"]) for r in rows if r["kind"] == "reject"] == rejected
    chunks = chunk_dataframe(table, config=ChunkConfig(), partitions=4).collect()
    assert sorted(r["record_id"] for r in chunks if r["kind"] == "document") == sorted(d["id"] for d in written)
