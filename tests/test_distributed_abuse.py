"""What a user with millions of notes throws at ``--engine spark|ray`` and the DataFrame API:
repeated ids, rows without a location, Parquet tables with timestamps or binary columns, paths
Spark reads as glob patterns, a missing input, a job killed while it writes, options of the
other engine, and a patient whose id sits where the partitioning did not look. Each case once
failed (a traceback, a leftover, a leak); the engine tests run a real local Spark, nothing is
mocked. ``InProcess`` runs the partition functions in this process, to test the driver's half
alone (as ``test_distributed``'s ``NeverStarted`` does)."""

from __future__ import annotations

import datetime
import decimal
import json
import math
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from domainfm.chunk import ChunkConfig
from domainfm.deid.config import DeidConfig
from domainfm.deid.runner import deidentify_file
from domainfm.distributed.core import (RECORD, REJECT, VAULT, DeidJob, chunk_partition, deidentify_partition)
from domainfm.errors import ConfigError, CorpusError, OutputError
from test_distributed import _same_files, spark, vault_key  # noqa: F401 (fixtures)

# Two notes of one patient: the second names her by surname alone, found only because the first
# named her (name propagation), so it stays bare unless both notes are in one partition.
PATIENTS = ["Quillfeather", "Vandersloot", "Okonkwo", "Marchetti", "Delacroix", "Haverbrook", "Brightwater",
            "Castellanos"]


def _row(order: int, record: dict, location: str | None = "x.jsonl:1") -> dict:
    return {"order": order, "location": location, "doc": json.dumps(record)}


@pytest.mark.parametrize("stage", ["deid", "chunk"])
def test_a_repeated_id_in_a_partition_is_rejected_as_one_process_rejects_it(stage):
    """The DataFrame API has no driver read to catch duplicates: a table loaded twice put both
    rows of an id in one partition, and the job died on a KeyError naming the id."""
    rows = [_row(0, {"id": "d1", "text": "Seen by Dr. Farrow in Zürich."}, "t:1"),
            _row(1, {"id": "d1", "text": "Seen by Dr. Farrow in Zürich."}, "t:2"),
            _row(2, {"id": "d2", "text": "Seen again."}, "t:3")]
    out = list(deidentify_partition(iter(rows), DeidJob(DeidConfig(), b"k" * 32)) if stage == "deid"
               else chunk_partition(iter(rows), ChunkConfig(max_tokens=64, overlap=8)))
    rejects = [r for r in out if r["kind"] == REJECT]
    assert [(r["order"], r["location"], r["record_id"]) for r in rejects] == [(1, "t:2", "d1")]
    payload = json.loads(rejects[0]["payload"])
    assert payload["reason"] == "duplicate id (already used by an earlier record)"
    assert "Zürich" in payload["raw"]  # the record as one process writes it, not \\u-escaped
    assert sorted({r["order"] for r in out if r["kind"] == RECORD}) == [0, 2]


def test_a_row_without_a_location_gives_a_reject_row_arrow_can_carry():
    """pandas hands a missing location to the partition function as NaN: put in a reject row,
    it made Arrow fail the whole Spark task, so one bad row of a table stopped the job."""
    rows = [_row(0, {"id": "a", "text": None}, float("nan")), _row(1, {"id": "b", "text": "Fine."}, float("nan"))]
    out = list(deidentify_partition(iter(rows), DeidJob(DeidConfig(operator="tag"), b"k" * 32)))
    reject = next(r for r in out if r["kind"] == REJECT)
    assert reject["location"] is None and reject["record_id"] == "a"
    assert "field 'text' must be a string" in json.loads(reject["payload"])["reason"]


def test_the_dataframe_api_reads_back_the_bytes_and_nan_that_to_json_wrote_as_text():
    """``to_json`` writes a binary column as base64 and NaN or infinity as text: read as text,
    they reached ``meta`` as strings where the file engines reject the row."""
    from domainfm.distributed.spark import _unpack

    packed = json.dumps({"_id": "a", "_text": "Seen.", "_x_scan": "iVBORw==", "_x_score": "NaN", "_x_note": "NaN",
                         "_x_m": {"k": "-Infinity"}, "_x_s": {"b": "AA==", "t": "NaN"}})
    lossy = {"_x_scan": "binary", "_x_score": "double",
             "_x_m": {"type": "map", "keyType": "string", "valueType": "double", "valueContainsNull": True},
             "_x_s": {"type": "struct", "fields": [{"name": "b", "type": "binary"}, {"name": "t", "type": "string"}]}}
    meta = _unpack(packed, None, lossy)["meta"]
    assert meta["scan"] == b"\x89PNG" and math.isnan(meta["score"]) and meta["m"] == {"k": -math.inf}
    assert meta["s"] == {"b": b"\x00", "t": "NaN"} and meta["note"] == "NaN"  # a string column's "NaN" is text


def test_a_reject_reason_rejects_a_valid_new_row_after_the_checks_one_process_makes_first():
    """The DataFrame API's rows with binary data or NaN carry the file engines' reason; the
    worker gives it after the document's own checks and the duplicate check, as the file jobs'
    driver does, and a rejected row's id stays free for a later row."""
    reason = "column 'scan' holds a value of type bytes, which a document's meta cannot hold as JSON; convert or drop it"
    rows = [_row(0, {"id": "a", "text": "Seen."}), {**_row(1, {"id": "a", "text": "Seen."}), "reject_reason": reason},
            {**_row(2, {"id": "b", "text": 7}), "reject_reason": reason},
            {**_row(3, {"id": "c", "text": "Seen."}), "reject_reason": reason},
            {**_row(4, {"id": "c", "text": "Seen again."}), "reject_reason": float("nan")}]  # pandas' missing value
    for out in (list(deidentify_partition(iter(rows), DeidJob(DeidConfig(operator="tag"), b"k" * 32))),
                list(chunk_partition(iter(rows), ChunkConfig(max_tokens=64, overlap=8)))):
        rejects = {r["order"]: (r["record_id"], json.loads(r["payload"])["reason"]) for r in out if r["kind"] == REJECT}
        assert rejects[1] == ("a", "duplicate id (already used by an earlier record)")
        assert rejects[2][0] == "b" and rejects[2][1].startswith("field 'text' must be a string")
        assert rejects[3] == ("c", reason) and sorted(rejects) == [1, 2, 3]
        assert sorted({r["order"] for r in out if r["kind"] == RECORD}) == [0, 4]


@pytest.mark.parametrize("options, message", [
    ({"name": "spark", "workers": 8}, r"engine.workers \(--workers\) sets Ray's actors.*--master 'local\[8\]'"),
    # 1 was the default, so it passed unnoticed with Spark
    ({"name": "spark", "workers": 1}, r"engine.workers \(--workers\) sets Ray's actors.*--master 'local\[1\]'"),
    ({"name": "spark", "ray_address": "head:6379"}, r"engine.ray_address \(--ray-address\) is Ray's"),
    ({"name": "ray", "master": "local[8]"}, r"engine.master \(--master\) is Spark's"),
])
def test_an_option_of_the_other_engine_is_refused_not_ignored(options, message):
    """``--engine spark --workers 8`` ran on Spark's default two cores without a word."""
    from domainfm.distributed.config import EngineConfig

    with pytest.raises(ConfigError, match=message):
        EngineConfig(**options)
    EngineConfig("local", workers=8)  # detection processes of one process: still fine
    EngineConfig("ray", workers=8, ray_address="head:6379")


def test_ray_workers_1_is_one_actor_and_unset_is_one_per_core():
    """``--engine ray --workers 1`` started one actor per core: 1 was both the default and the
    value read as "unset", so exactly one actor could not be asked for."""
    from domainfm.distributed.config import EngineConfig
    from domainfm.distributed.jobs import make_engine
    from domainfm.distributed.ray import RayEngine

    assert EngineConfig().workers is None and EngineConfig("ray").workers is None
    # the engine is built without starting Ray; what it was asked for is what it will start
    assert make_engine(EngineConfig("ray", workers=1))._requested == 1
    assert make_engine(EngineConfig("ray", workers=3))._requested == 3
    assert make_engine(EngineConfig("ray"))._requested is None
    for bad in (0, -2, True, 1.5, "4"):
        with pytest.raises(ConfigError, match=r"engine.workers must be an int >= 1, or null for one Ray actor per "
                                              r"core|config field 'engine.workers'"):
            EngineConfig("ray", workers=bad)
    with pytest.raises(ConfigError, match=r"RayEngine\(actors=...\) must be an int >= 1, or None for one actor per"):
        RayEngine(0)  # read as "unset", it started one actor per core
    for bad in (0, -1, True, 2.5):
        with pytest.raises(ConfigError, match=r"RayEngine\(group_rows=...\) must be an int >= 1 \(documents per group\)"):
            RayEngine(2, group_rows=bad)


def test_pipeline_engine_workers_is_unset_unless_given(tmp_path):
    from domainfm.pipeline import pipeline_from_dict

    base = {"run_dir": str(tmp_path / "run"), "import": {"format": "jsonl", "src": "notes.jsonl"}, "deid": {}}
    assert pipeline_from_dict({**base, "engine": "ray"}).engine.workers is None
    assert pipeline_from_dict({**base, "engine": {"name": "ray", "workers": None}}).engine.workers is None
    assert pipeline_from_dict({**base, "engine": {"name": "ray", "workers": 1}}).engine.workers == 1
    assert pipeline_from_dict({**base, "engine": {"name": "ray", "workers": 1}}).to_dict()["engine"]["workers"] == 1
    with pytest.raises(ConfigError, match=r"engine.workers \(--workers\) sets Ray's actors"):
        pipeline_from_dict({**base, "engine": {"name": "spark", "workers": 1}})


@pytest.mark.parametrize("command", ["deid", "chunk"])
def test_workers_given_with_spark_is_refused_and_its_default_is_not(cli, tmp_path, command):
    """``--workers 1`` with Spark was taken for the default and ignored; ``deid``'s default
    (one detection process) is still no Spark option."""
    args = (command, tmp_path / "missing.jsonl", "-o", tmp_path / "o.jsonl", "--engine", "spark")
    result = cli(*args, "--workers", "1")
    assert result.exit_code == 2 and "engine.workers (--workers) sets Ray's actors" in result.stderr
    result = cli(*args)
    assert result.exit_code == 2 and "missing.jsonl: no such file" in result.stderr


@pytest.mark.parametrize("engine", ["spark", "ray"])
def test_deid_workers_with_a_distributed_engine_in_a_pipeline_is_refused_not_ignored(tmp_path, engine):
    """A pipeline's ``deid.workers: 4`` with ``engine: spark`` ran on the engine's cores without a word."""
    from domainfm.pipeline import pipeline_from_dict

    src = tmp_path / "notes.jsonl"
    src.write_text('{"id": "a", "text": "x"}\n')
    base = {"run_dir": str(tmp_path / "run"), "import": {"format": "jsonl", "src": str(src)}, "engine": engine}
    with pytest.raises(ConfigError, match=rf"deid.workers \(4\) .*with engine {engine}.*leave deid.workers out"):
        pipeline_from_dict({**base, "deid": {"workers": 4}})
    pipeline_from_dict({**base, "deid": {}})  # the default is fine
    pipeline_from_dict({**base, "engine": "local", "deid": {"workers": 4}})  # one process: its own processes


class NeverStarted:
    name = "spark"

    def deidentify(self, *args, **kwargs):
        raise AssertionError("the engine started before the input was checked")

    chunk = deidentify


@pytest.mark.parametrize("name", ["missing.jsonl", "missing.parquet", "folder"])
def test_a_missing_input_is_named_before_a_vault_is_created(tmp_path, vault_key, name):
    """A typo created an empty vault, and a missing ``notes.parquet`` was reported as the reject
    file that could not be written."""
    from domainfm.distributed.jobs import run_chunk, run_deid

    src = tmp_path / name
    if name == "folder":
        src.mkdir()
        (src / "notes.jsonl").write_text('{"id": "a", "text": "x"}\n')
    expected = "is a folder without .parquet files" if name == "folder" else "no such file"
    with pytest.raises(CorpusError, match=f"{name}: {expected}"):
        run_deid(src, tmp_path / "out.jsonl", DeidConfig(vault=str(tmp_path / "v.db")), NeverStarted())
    with pytest.raises(CorpusError, match=f"{name}: {expected}"):
        run_chunk(src, tmp_path / "chunks.jsonl", ChunkConfig(), NeverStarted())
    assert sorted(p.name for p in tmp_path.iterdir()) == ([name] if name == "folder" else [])


@pytest.mark.parametrize("command", ["deid", "chunk"])
@pytest.mark.parametrize("engine", ["spark", "ray"])
def test_a_missing_input_is_named_before_the_engine_starts(tmp_path, monkeypatch, command, engine):
    """The path was checked only once Spark (seconds of Java start-up) or Ray was running: the
    engines now start on first use, after the job has checked its input."""
    from domainfm.cli import app
    from typer.testing import CliRunner

    def never(*args, **kwargs):
        raise AssertionError(f"{engine} was started before the input was checked")

    if engine == "spark":
        monkeypatch.setattr("domainfm.distributed.spark.spark_session", never)
    else:
        monkeypatch.setattr("domainfm.distributed.ray._ray", never)
    result = CliRunner().invoke(app, [command, str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "out.jsonl"),
                                      "--engine", engine])
    assert result.exit_code != 0 and "missing.jsonl: no such file" in result.output, result.output
    assert not result.exception or isinstance(result.exception, SystemExit)


# --- the driver's half with Parquet (pyarrow: the spark/ray extras, so in the slow tier) ---------

def _stage(src: Path, tmp_path: Path):
    from domainfm.distributed.jobs import InputRejects, stage_input

    rejects = InputRejects(tmp_path / "rejects.jsonl")
    sent = stage_input(src, tmp_path / "staged", rejects)
    return sent, [item for _, item in rejects]


@pytest.mark.slow
def test_a_parquet_table_with_timestamps_decimals_and_binary_columns_is_staged_or_rejected(tmp_path):
    """A data lake's table has a ``note_date`` timestamp: staging died on "Object of type
    datetime is not JSON serializable". Dates and decimals become text, as a CSV export writes
    them; a binary column or NaN (which JSON cannot hold) rejects its row, naming the column."""
    pa = pytest.importorskip("pyarrow", reason="pip install 'domainfm[spark]' (.ci/run installs it)")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({
        "id": ["a", "b", "c"], "text": ["Seen by Dr. Farrow.", "Seen.", "Seen."],
        "note_date": [datetime.datetime(2021, 3, 4, 10, 30), datetime.datetime(2021, 3, 5), None],
        "visit_day": [datetime.date(2021, 3, 4)] * 3,
        "charge": [decimal.Decimal("12.50"), None, None],
        "scan": [None, b"\x89PNG", None],
        "score": [0.5, 0.7, float("nan")],
    }), tmp_path / "notes.parquet")
    sent, rejects = _stage(tmp_path / "notes.parquet", tmp_path)
    assert sent == 1
    assert [(r.location, r.record_id) for r in rejects] == [("notes.parquet:row 2", "b"), ("notes.parquet:row 3", "c")]
    assert rejects[0].reason.startswith("column 'scan' holds a value of type bytes, which a document's meta cannot")
    assert rejects[1].reason.startswith("column 'score' holds NaN or infinity")
    staged = pq.read_table(tmp_path / "staged").to_pylist()
    assert json.loads(staged[0]["doc"])["meta"] == {"note_date": "2021-03-04T10:30:00", "visit_day": "2021-03-04",
                                                    "charge": "12.50", "scan": None, "score": 0.5}


@pytest.mark.slow
def test_a_parquet_input_that_is_not_a_table_of_notes_is_refused_naming_the_fix(tmp_path):
    """A table whose note column is ``note`` rejected every row (each with its whole record in
    the reject file); a file that is not Parquet, or a partitioned dataset, gave a traceback or
    read nothing of its subfolders."""
    pa = pytest.importorskip("pyarrow", reason="pip install 'domainfm[spark]' (.ci/run installs it)")
    import pyarrow.parquet as pq

    from domainfm.distributed.jobs import check_input

    pq.write_table(pa.table({"id": ["a"], "note": ["Seen."]}), tmp_path / "wrong.parquet")
    with pytest.raises(CorpusError, match=r"wrong.parquet: no column 'text' \(columns: id, note\).*text_col"):
        _stage(tmp_path / "wrong.parquet", tmp_path)
    (tmp_path / "notes.parquet").write_text('{"id": "a", "text": "x"}\n')
    with pytest.raises(CorpusError, match="notes.parquet: not a readable Parquet file"):
        _stage(tmp_path / "notes.parquet", tmp_path / "again")
    (tmp_path / "lake" / "year=2021").mkdir(parents=True)
    pq.write_table(pa.table({"id": ["a"], "text": ["x"]}), tmp_path / "lake" / "year=2021" / "part-0.parquet")
    with pytest.raises(CorpusError, match=r"lake: holds Parquet files in subfolders \(year=2021/\)"):
        check_input(tmp_path / "lake")


class InProcess:
    """The partition functions in this process, one partition (no Spark, no Ray). ``kill_after``:
    SIGKILL this process after handing out that many output records (a job killed while its
    driver writes); ``broken_vault``: the vault file cannot take the rows (a full disk)."""

    name = "in-process"

    def __init__(self, kill_after: int | None = None, broken_vault: bool = False):
        self.kill_after, self.broken_vault = kill_after, broken_vault

    def deidentify(self, staged: Path, job, work: Path):
        import pyarrow.parquet as pq

        rows = sorted(pq.read_table(staged).to_pylist(), key=lambda r: r["order"])
        return _Rows(list(deidentify_partition(iter(rows), job)), self.kill_after, self.broken_vault)

    def describe(self) -> dict:
        return {"name": self.name}


class _Rows:
    def __init__(self, rows, kill_after, broken_vault):
        self.rows, self.kill_after, self.broken_vault = rows, kill_after, broken_vault

    def ordered(self, kind):
        import signal

        for n, row in enumerate(sorted((r for r in self.rows if r["kind"] == kind), key=lambda r: r["order"])):
            if kind == RECORD and n == self.kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
            yield row

    def vault_rows(self):
        if self.broken_vault:
            raise sqlite3.OperationalError("database or disk is full")
        for row in self.rows:
            if row["kind"] == VAULT:
                yield row["vault_table"], tuple(row[c] for c in ("c1", "c2", "c3", "c4", "c5") if row[c] is not None)


def _notes(path: Path, n: int = 6) -> Path:
    path.write_text("".join(json.dumps({"id": f"n{i}", "text": f"Seen by Dr. Farrow on 3/{i + 1}/2021.",
                                        "meta": {"patient_id": f"P{i % 2}"}}) + "\n" for i in range(n)))
    return path


@pytest.mark.slow
def test_a_job_killed_while_it_writes_a_parquet_output_leaves_nothing_after_the_next_run(tmp_path):
    """The Parquet output was assembled in ``.<out>.tmp-*`` beside the output (and the replaced
    one moved to ``.<out>.old-*``): a killed job left de-identified notes there that no later run
    removed. Now both live in the job's work folder, which the next run of the output removes."""
    pytest.importorskip("pyarrow", reason="pip install 'domainfm[spark]' (.ci/run installs it)")
    src = _notes(tmp_path / "notes.jsonl")
    out = tmp_path / "out" / "notes.parquet"
    code = ("import sys\nfrom domainfm.deid.config import DeidConfig\nfrom domainfm.distributed.jobs import run_deid\n"
            "from test_distributed_abuse import InProcess\n"
            "kill_after = None if sys.argv[3] == '-' else int(sys.argv[3])\n"
            "run_deid(sys.argv[1], sys.argv[2], DeidConfig(), InProcess(kill_after), seed=3)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), str(Path(__file__).parents[1])])}

    def run(kill_after: str) -> int:
        return subprocess.run([sys.executable, "-c", code, str(src), str(out), kill_after], env=env,
                              capture_output=True, text=True, timeout=300).returncode

    assert run("-") == 0  # an earlier output, which the killed job was replacing
    assert run("3") == -9
    assert any(p.name.startswith(".notes.parquet.") for p in out.parent.iterdir())  # the killed job's
    assert run("-") == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["notes.parquet", "notes.parquet.manifest.json"]


@pytest.mark.slow
def test_the_vault_is_filled_before_the_output_appears(tmp_path, vault_key):
    """The output was renamed into place before the workers' vault rows were merged: a job that
    failed (or was killed) in between left an output the vault could not restore, and a full
    disk gave SQLite's traceback where one process names the vault."""
    pytest.importorskip("pyarrow", reason="pip install 'domainfm[spark]' (.ci/run installs it)")
    from domainfm.distributed.jobs import run_deid

    src = _notes(tmp_path / "notes.jsonl")
    with pytest.raises(OutputError, match=r"v.db: the vault could not be written \(OperationalError\); nothing was"):
        run_deid(src, tmp_path / "out.jsonl", DeidConfig(vault=str(tmp_path / "v.db")), InProcess(broken_vault=True))
    assert not (tmp_path / "out.jsonl").exists()
    result = run_deid(src, tmp_path / "out.jsonl", DeidConfig(vault=str(tmp_path / "v.db")), InProcess())
    one = deidentify_file(src, tmp_path / "one.jsonl", DeidConfig(vault=str(tmp_path / "one.db")))
    assert _same_files(tmp_path / "one.jsonl", tmp_path / "out.jsonl")
    assert result.counts.to_dict() == one.counts.to_dict()


# --- real Spark (slow) ---------------------------------------------------------------------------

@pytest.mark.slow
def test_spark_reads_its_work_under_paths_with_glob_characters(tmp_path, spark, vault_key):
    """Spark's readers expand ``[...]`` and ``{...}``: an output named ``notes [1].jsonl``, or one
    in a folder ``runs{a}``, failed with Spark's "Path does not exist" after the input was staged."""
    from domainfm.distributed.jobs import run_deid
    from domainfm.distributed.spark import SparkEngine

    src = _notes(tmp_path / "notes.jsonl")
    deidentify_file(src, tmp_path / "one.jsonl", DeidConfig())
    folder = tmp_path / "runs{a,b}[1]"
    result = run_deid(src, folder / "notes [1].jsonl", DeidConfig(), SparkEngine(session=spark, partitions=2))
    assert result.counts.written == 6 and _same_files(tmp_path / "one.jsonl", folder / "notes [1].jsonl")
    assert sorted(p.name for p in folder.iterdir()) == ["notes [1].jsonl", "notes [1].manifest.json"]


def _one_process(tmp_path: Path, records: list[dict]) -> list[dict]:
    src = tmp_path / "one-src.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    deidentify_file(src, tmp_path / "one-out.jsonl", DeidConfig())
    return [json.loads(line) for line in (tmp_path / "one-out.jsonl").open()]


@pytest.mark.slow
def test_the_dataframe_api_keeps_a_patient_whole_wherever_the_table_holds_the_patient_id(tmp_path, spark, vault_key):
    """Partitioning looked only at ``patient_col`` or a ``meta`` JSON string. A ``patient_id``
    column, or ``meta`` as a struct or map, spread a patient's notes over partitions: the surname
    found in one note (name propagation) stayed in clear in the next. And one invalid or repeated
    row failed the whole job instead of becoming a reject with its reason."""
    from pyspark.sql import functions as F

    from domainfm.distributed.spark import deidentify_dataframe, records_frame

    records = []
    for p, surname in enumerate(PATIENTS):
        records.append({"id": f"a{p}", "text": f"Patient Amelia {surname} seen by Dr. Farrow.",
                        "meta": {"patient_id": f"P{p}"}})
        records.append({"id": f"b{p}", "text": f"{surname} stable. Plan as before.", "meta": {"patient_id": f"P{p}"}})
    expected = _one_process(tmp_path, records)
    assert not any(surname in r["text"] for r in expected for surname in PATIENTS)
    flat = spark.createDataFrame([(r["id"], r["text"], r["meta"]["patient_id"]) for r in records],
                                 "id string, text string, patient_id string")
    tables = {"patient_id column": flat,
              "meta struct": flat.select("id", "text", F.struct("patient_id").alias("meta")),
              "meta map": flat.select("id", "text", F.create_map(F.lit("patient_id"), "patient_id").alias("meta"))}
    for what, table in tables.items():
        rows = deidentify_dataframe(table, config=DeidConfig(), partitions=8)
        got = [r.asDict() for r in records_frame(rows).orderBy("order").collect()]
        assert [(g["id"], g["text"]) for g in got] == [(e["id"], e["text"]) for e in expected], what

    broken = spark.createDataFrame([("d1", "Seen by Dr. Farrow.", "P1"), ("d1", "Seen by Dr. Farrow.", "P1"),
                                    ("d2", None, "P2")], "id string, text string, mrn string")
    result = deidentify_dataframe(broken, config=DeidConfig(), patient_col="mrn", partitions=2).collect()
    rejects = [(r["record_id"], json.loads(r["payload"])["reason"])
               for r in sorted(result, key=lambda r: r["order"]) if r["kind"] == REJECT]
    assert [i for i, _ in rejects] == ["d1", "d2"]
    assert rejects[0][1].startswith("duplicate id") and rejects[1][1].startswith("field 'text' must be a string")

    with pytest.raises(ConfigError, match=r"config.vault \(v.db\) is written on the driver.*vault_header="):
        deidentify_dataframe(flat, config=DeidConfig(vault="v.db", pseudonymize_ids=True))


def _dataframe_and_file_rejects(spark, table, tmp_path: Path, name: str):
    """The rejects and records of one Parquet table through the DataFrame API (de-identify and
    chunk) and through the file engine's driver, with the row count."""
    import pyarrow.parquet as pq

    from domainfm.chunk import ChunkConfig
    from domainfm.deid.runner import surrogate_secret
    from domainfm.distributed.core import DOCUMENT
    from domainfm.distributed.jobs import run_deid
    from domainfm.distributed.spark import SparkEngine, chunk_dataframe, deidentify_dataframe

    src = tmp_path / f"{name}.parquet"
    pq.write_table(table, src)
    _, driver = _stage(src, tmp_path / f"{name}-staged")
    file_result = run_deid(src, tmp_path / f"{name}.jsonl", DeidConfig(operator="tag"), SparkEngine(session=spark),
                           seed=5)
    assert file_result.counts.read == table.num_rows
    assert file_result.counts.read == file_result.counts.written + file_result.counts.rejected
    secret, _ = surrogate_secret(DeidConfig(operator="tag"), 5)
    frame = spark.read.parquet(str(src))
    deid = sorted(deidentify_dataframe(frame, config=DeidConfig(operator="tag"), secret=secret, partitions=2).collect(),
                  key=lambda r: (r["order"], r["seq"]))
    chunks = chunk_dataframe(frame, config=ChunkConfig(max_tokens=64, overlap=8), partitions=2).collect()
    out = {"file": [(r.record_id, r.reason) for r in driver],
           "deid": [(r["record_id"], json.loads(r["payload"])["reason"]) for r in deid if r["kind"] == REJECT],
           "chunk": sorted(((r["order"], r["record_id"], json.loads(r["payload"])["reason"]) for r in chunks
                            if r["kind"] == REJECT))}
    out["chunk"] = [(i, reason) for _, i, reason in out["chunk"]]
    # read = written + rejected: every row is one record (one chunked document) or one reject
    assert sum(r["kind"] in (RECORD, REJECT) for r in deid) == table.num_rows
    assert sum(r["kind"] in (DOCUMENT, REJECT) for r in chunks) == table.num_rows
    records = [json.loads(r["payload"]) for r in deid if r["kind"] == RECORD]
    assert records == [json.loads(line) for line in (tmp_path / f"{name}.jsonl").open(encoding="utf-8")]
    return out


@pytest.mark.slow
def test_the_dataframe_api_rejects_binary_data_and_nan_as_the_file_engines_do(tmp_path, spark):
    """``to_json`` wrote a binary column as base64 text and NaN as the text "NaN", and the
    DataFrame API de-identified such rows where the file engines reject them, naming the column
    (a NaN note text went through as the text "NaN"). The same table now gives the same rejects
    both ways, the counts reconcile, and the first row of an id rejected this way leaves the id
    free for a later row, as one process does."""
    pa = pytest.importorskip("pyarrow", reason="pip install 'domainfm[spark]' (.ci/run installs it)")

    nan, inf = float("nan"), float("inf")
    device = pa.struct([("serial", pa.string()), ("blob", pa.binary())])
    notes = pa.table({
        "id": ["a", "b", "c", "d", "e", "f", "b"],
        "text": [f"Seen by Dr. Farrow on 3/{i + 1}/2021." for i in range(7)],
        "patient_id": ["P1", "P1", "P2", "P2", "P3", "P3", "P1"],
        "scan": pa.array([None, b"\x89PNG", None, None, None, None, None], pa.binary()),
        "score": [0.5, 0.7, nan, 0.1, -inf, 0.2, 0.4],
        "readings": pa.array([[1.0], [], None, [2.0, nan], None, None, [3.0]], pa.list_(pa.float64())),
        "device": pa.array([None, None, None, None, None, {"serial": "S1", "blob": b"\x00"}, None], device),
    })
    got = _dataframe_and_file_rejects(spark, notes, tmp_path, "notes")
    expected = [("b", "column 'scan' holds a value of type bytes, which a document's meta cannot hold as JSON; "
                      "convert or drop it"),
                ("c", "column 'score' holds NaN or infinity, which a document's meta cannot hold as JSON; "
                      "convert or drop it"),
                ("d", "column 'readings' holds NaN or infinity, which a document's meta cannot hold as JSON; "
                      "convert or drop it"),
                ("e", "column 'score' holds NaN or infinity, which a document's meta cannot hold as JSON; "
                      "convert or drop it"),
                ("f", "column 'device' holds a value JSON cannot hold, which a document's meta cannot hold as "
                      "JSON; convert or drop it")]
    assert got == {"file": expected, "deid": expected, "chunk": expected}

    numbers = pa.table({"id": ["x", "y"], "text": [nan, 1.5]})  # a note column of numbers
    got = _dataframe_and_file_rejects(spark, numbers, tmp_path, "numbers")
    assert got["deid"] == got["chunk"] == got["file"] and [i for i, _ in got["file"]] == ["x", "y"]
    assert all(reason.startswith("field 'text' must be a string") for _, reason in got["file"])
