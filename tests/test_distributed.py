"""Distributed de-identification and chunking give one process's output.

The default tier checks the engine-neutral partition functions directly (any patient-scoped
partitioning, scratch vaults merged into one); the slow tier runs a real local Spark
(``local[2]``, Java 17) and a real local Ray (2 CPUs), kills a Spark Python worker mid-job, and
greps Spark's logs for planted identifiers. Nothing is mocked."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from domainfm.chunk import ChunkConfig, chunk_file
from domainfm.corpus import read_documents, write_documents
from domainfm.deid.config import DeidConfig
from domainfm.deid.runner import deidentify_file, reidentify_file
from domainfm.distributed.core import (RECORD, REJECT, VAULT, DeidJob, bucket_of, chunk_partition,
                                       deidentify_partition, input_rows, record_from_columns)
from domainfm.errors import ConfigError

KEY = "distributed-test-key-" + "x" * 24


@pytest.fixture()
def vault_key(monkeypatch):
    monkeypatch.setenv("DOMAINFM_VAULT_KEY", KEY)
    return KEY.encode()


@pytest.fixture(scope="module")
def notes(tmp_path_factory, clinical_corpus) -> Path:
    """36 notes of 12 patients (several notes each, so propagation and collisions cross notes),
    plus one broken record and one duplicate id for the reject path."""
    docs = list(read_documents(clinical_corpus))
    patients = sorted({d.meta["patient_id"] for d in docs})[:12]
    chosen = [d for d in docs if d.meta["patient_id"] in patients]
    path = tmp_path_factory.mktemp("notes") / "notes.jsonl"
    write_documents(path, chosen)
    with path.open("a", encoding="utf-8") as fh:
        fh.write('{"id": "broken", "text": 7}\n')
        fh.write(json.dumps(chosen[0].to_dict()) + "\n")
    return path


def _partitions(path: Path, n: int, seed: int) -> list[list[dict]]:
    """Engine rows split into ``n`` patient-scoped partitions, shuffled across partitions but in
    input order inside each, as Spark's ``repartition(scope).sortWithinPartitions(order)`` does."""
    from domainfm.corpus.io import read_located_documents

    rows = list(input_rows(read_located_documents(path, rejects=[])))
    salt = random.Random(seed).random()
    parts: list[list[dict]] = [[] for _ in range(n)]
    for row in rows:
        parts[bucket_of(f"{salt}:{row['scope']}", n)].append(row)
    random.Random(seed).shuffle(parts)
    return parts


def _run_partitions(parts, job) -> list[dict]:
    out = []
    for part in parts:
        out.extend(deidentify_partition(iter(part), job))
    return out


@pytest.mark.parametrize("n_partitions, pseudonymize_ids", [(1, False), (3, False), (5, False), (3, True)])
def test_any_patient_partitioning_gives_one_process_output(tmp_path, notes, vault_key, n_partitions,
                                                           pseudonymize_ids):
    single = deidentify_file(notes, tmp_path / "one.jsonl", DeidConfig(vault=str(tmp_path / "one.db"),
                                                                       pseudonymize_ids=pseudonymize_ids))
    expected = [json.loads(line) for line in (tmp_path / "one.jsonl").open()]
    originals = {d.id for d in read_documents(notes, rejects=[])}
    assert all((r["id"] in originals) != pseudonymize_ids for r in expected)

    from domainfm.deid.vault import Vault

    with Vault(tmp_path / "merged.db", vault_key) as vault:
        job = DeidJob(DeidConfig(vault=str(tmp_path / "merged.db"), pseudonymize_ids=pseudonymize_ids),
                      vault_key, vault.header())
        rows = _run_partitions(_partitions(notes, n_partitions, seed=n_partitions), job)
        records = sorted((r for r in rows if r["kind"] == RECORD), key=lambda r: r["order"])
        assert [json.loads(r["payload"]) for r in records] == expected
        assert single.counts.written == len(records)
        merged = vault.merge_rows((r["vault_table"], tuple(r[c] for c in ("c1", "c2", "c3", "c4", "c5") if r[c]))
                                  for r in rows if r["kind"] == VAULT)
        assert merged > 0
        # a retried task sends its rows again: nothing changes
        again = vault.merge_rows((r["vault_table"], tuple(r[c] for c in ("c1", "c2", "c3", "c4", "c5") if r[c]))
                                 for r in rows if r["kind"] == VAULT)
        assert again == merged
    (tmp_path / "dist.jsonl").write_text("".join(r["payload"] + "\n" for r in records), encoding="utf-8")
    reidentify_file(tmp_path / "dist.jsonl", tmp_path / "back.jsonl", tmp_path / "merged.db")
    originals = {d.id: d.text for d in read_documents(notes, rejects=[])}
    assert {d.id: d.text for d in read_documents(tmp_path / "back.jsonl")} == originals


def test_partition_rejects_name_the_record_and_keep_it(tmp_path):
    rows = [{"order": 0, "location": "x.jsonl:1", "doc": json.dumps({"id": "a", "text": "Seen by Dr. Quill."})},
            {"order": 1, "location": "x.jsonl:2", "doc": json.dumps({"id": "b", "text": 5})},
            {"order": 2, "location": "x.jsonl:3", "doc": "{not json"}]
    out = list(deidentify_partition(iter(rows), DeidJob(DeidConfig(operator="tag"), b"s" * 32)))
    kinds = sorted((r["order"], r["kind"]) for r in out)
    assert kinds == [(0, RECORD), (1, REJECT), (2, REJECT)]
    reject = next(r for r in out if r["order"] == 1)
    assert reject["location"] == "x.jsonl:2" and reject["record_id"] == "b"
    assert "'text' must be a string" in json.loads(reject["payload"])["reason"]
    assert "[DOCTOR]" in json.loads(next(r for r in out if r["kind"] == RECORD)["payload"])["text"] or \
        "[NAME]" in json.loads(next(r for r in out if r["kind"] == RECORD)["payload"])["text"]


@pytest.mark.parametrize("pseudonymize_ids", [False, True])
def test_identifiers_outside_the_text_reach_the_driver_counts_and_not_the_output(tmp_path, vault_key,
                                                                                  pseudonymize_ids):
    """The worker names the fields (never values) in the row it sends; the driver counts them and
    writes the record without them, as one process does."""
    from domainfm.deid.vault import Vault
    from domainfm.distributed.core import OUTSIDE_TEXT
    from domainfm.distributed.jobs import write_records

    rows = [{"order": 0, "location": "x.jsonl:1", "doc": json.dumps(
        {"id": "MRN-88123456", "text": "MRN 88123456. Seen by Dr. Quillfeather.", "meta": {"seen_by": "Quillfeather"}})}]
    with Vault(tmp_path / "v.db", vault_key) as vault:
        job = DeidJob(DeidConfig(vault=str(tmp_path / "v.db"), pseudonymize_ids=pseudonymize_ids), vault_key,
                      vault.header())
        out = [r for r in deidentify_partition(iter(rows), job) if r["kind"] == RECORD]
    expected = ["meta.seen_by"] if pseudonymize_ids else ["id", "meta.seen_by"]
    assert json.loads(out[0]["payload"])[OUTSIDE_TEXT] == expected

    class Rows:
        def ordered(self, kind):
            return iter(out if kind == RECORD else [])

    counted: dict[str, int] = {}
    write_records(Rows(), tmp_path / "out.jsonl", parquet=False, outside_text=counted)
    assert counted == dict.fromkeys(expected, 1)
    assert OUTSIDE_TEXT not in (tmp_path / "out.jsonl").read_text()


def _later_batch(tmp_path) -> Path:
    """A vault that holds ``n1`` for one text, and a later batch that sends ``n1`` with another."""
    first = tmp_path / "first.jsonl"
    first.write_text(json.dumps({"id": "n1", "text": "Seen by Dr. Quill on 3/4."}) + "\n")
    deidentify_file(first, tmp_path / "first.out.jsonl", DeidConfig(vault=str(tmp_path / "v.db")))
    later = tmp_path / "later.jsonl"
    later.write_text(json.dumps({"id": "n1", "text": "Another note, by Dr. Farrow."}) + "\n"
                     + json.dumps({"id": "n1x", "text": "A third."}) + "\n"
                     + json.dumps({"id": "n2", "text": "Seen by Dr. Quill on 3/4."}) + "\n")
    return later


class _Kept(list):
    write = list.append


def _check_the_held_id_was_rejected(counts, rejects) -> None:
    assert counts.read == 1 and counts.rejected == 1
    assert rejects[0].record_id == "n1" and "already holds another document" in rejects[0].reason
    assert rejects[0].location == "later.jsonl:1" and "Farrow" not in rejects[0].reason


def test_the_driver_rejects_an_id_the_vault_holds_for_another_text(tmp_path, vault_key):
    """Workers write to staging vaults that cannot see the job's vault, so the driver checks it,
    as one process would (test_deid_vault: the first document of an id stays restorable). The
    engine-neutral check runs here; the slow tier runs it through ``stage_input`` (needs pyarrow)."""
    from domainfm.corpus.io import Counts, CountingRejects, read_located_documents
    from domainfm.deid.vault import Vault
    from domainfm.distributed.jobs import _not_held_for_another_text

    later = _later_batch(tmp_path)
    counts, rejects = Counts(), _Kept()
    sink = CountingRejects(rejects, counts, [])
    with Vault(tmp_path / "v.db", vault_key) as vault:
        kept = [doc.id for _, doc in _not_held_for_another_text(read_located_documents(later, rejects=sink), vault, sink)]
    assert kept == ["n1x", "n2"]
    _check_the_held_id_was_rejected(counts, rejects)


@pytest.mark.slow
def test_stage_input_applies_the_vault_check(tmp_path, vault_key):
    pytest.importorskip("pyarrow", reason="pip install 'domainfm[spark]' (.ci/run installs it)")
    from domainfm.corpus.io import Counts, CountingRejects
    from domainfm.deid.vault import Vault
    from domainfm.distributed.jobs import stage_input

    later = _later_batch(tmp_path)
    counts, rejects = Counts(), _Kept()
    with Vault(tmp_path / "v.db", vault_key) as vault:
        sent = stage_input(later, tmp_path / "staged", CountingRejects(rejects, counts, []), vault)
    assert sent == 2
    _check_the_held_id_was_rejected(counts, rejects)


def test_chunk_partitions_give_the_chunk_file(tmp_path, notes):
    config = ChunkConfig(max_tokens=128, overlap=16, profile="clinical")
    chunk_file(notes, tmp_path / "one.jsonl", config)
    from domainfm.corpus.io import read_located_documents

    rows = list(input_rows(read_located_documents(notes, rejects=[])))
    out = list(chunk_partition(iter(rows[1::2]), config)) + list(chunk_partition(iter(rows[::2]), config))
    records = sorted((r for r in out if r["kind"] == RECORD), key=lambda r: (r["order"], r["seq"]))
    assert [json.loads(r["payload"]) for r in records] == [json.loads(line) for line in (tmp_path / "one.jsonl").open()]


def test_table_rows_become_documents():
    record = record_from_columns({"id": 7, "text": "x", "meta": '{"a": 1}', "labels": None, "spans": "[]",
                                  "mrn": "123", "ward": "B"}, patient_col="mrn")
    assert record["id"] == "7" and record["meta"] == {"a": 1, "patient_id": "123", "ward": "B"}
    assert record["spans"] == []


def test_engine_config_errors_name_the_field():
    from domainfm.distributed.config import EngineConfig

    with pytest.raises(ConfigError, match="engine.name"):
        EngineConfig("sparc")
    with pytest.raises(ConfigError, match="engine.partitions"):
        EngineConfig("spark", partitions=0)
    # the command line checks engine options with the local engine too: a typo is not ignored
    from domainfm.cli import _engine_option

    with pytest.raises(ConfigError, match="engine.partitions must be an int >= 1"):
        _engine_option("local", "local[2]", -1, 1, None)
    assert _engine_option("local", "local[2]", None, 1, None) is None


def test_a_ray_address_nobody_listens_at_fails_fast_with_a_named_error():
    import socket

    from domainfm.distributed.ray import _check_reachable

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        _check_reachable(f"127.0.0.1:{port}")  # someone listens: no error
        _check_reachable(f"ray://127.0.0.1:{port}")
    with pytest.raises(ConfigError, match=f"cannot reach the Ray cluster at 127.0.0.1:{port}.*--ray-address"):
        _check_reachable(f"127.0.0.1:{port}", timeout=2)  # closed now: refused at once
    with pytest.raises(ConfigError, match="HOST:PORT, ray://HOST:PORT or auto"):
        _check_reachable("my-cluster")
    _check_reachable("auto")  # left to Ray


@pytest.mark.parametrize("master", ["bogus://x", "local[two]", "spark:/host"])
def test_a_spark_master_spark_cannot_read_is_refused_before_a_jvm_starts(master):
    pytest.importorskip("pyspark", reason="pip install 'domainfm[spark]' (.ci/run installs it)")
    from domainfm.distributed.spark import spark_session

    with pytest.raises(ConfigError, match="--master must be local, local\\[N\\]"):
        spark_session(master)


def test_pipeline_engine_is_read_and_not_in_the_cache_key(tmp_path):
    from domainfm.pipeline import pipeline_from_dict as load_pipeline

    base = {"run_dir": str(tmp_path / "run"), "import": {"format": "jsonl", "src": "corpora/clinical/notes.jsonl"},
            "deid": {"profile": "clinical"}}
    local = load_pipeline(base)
    spark = load_pipeline({**base, "engine": {"name": "spark", "master": "local[3]"}})
    assert spark.engine.name == "spark" and spark.engine.master == "local[3]" and local.engine is None
    assert spark.stages["deid"] == local.stages["deid"]
    with pytest.raises(ConfigError, match="engine.name"):
        load_pipeline({**base, "engine": "flink"})


# --- real engines (slow) ------------------------------------------------------------------------

def _java() -> str | None:
    return shutil.which("java") or (os.environ.get("JAVA_HOME") and str(Path(os.environ["JAVA_HOME"]) / "bin/java"))


@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark", reason="pip install 'domainfm[spark]' (.ci/run installs it)")
    if not _java():
        pytest.skip("Java 17 is not installed (.ci/run installs openjdk-17-jre-headless)")
    from domainfm.distributed.spark import spark_session

    # local[2,4]: two cores, and a failed task is retried up to 3 times (the worker-kill test)
    session = spark_session("local[2,4]")
    yield session
    session.stop()


def _same_files(a: Path, b: Path) -> bool:
    return a.read_text(encoding="utf-8") == b.read_text(encoding="utf-8")


@pytest.mark.slow
def test_spark_gives_one_process_output_and_the_vault_restores_it(tmp_path, spark, clinical_corpus, vault_key):
    from domainfm.distributed.jobs import run_chunk, run_deid
    from domainfm.distributed.spark import SparkEngine

    engine = SparkEngine("local[2,4]", partitions=4, session=spark)
    one = deidentify_file(clinical_corpus, tmp_path / "one.jsonl", DeidConfig(vault=str(tmp_path / "one.db")))
    dist = run_deid(clinical_corpus, tmp_path / "spark.jsonl", DeidConfig(vault=str(tmp_path / "spark.db")), engine)
    assert _same_files(tmp_path / "one.jsonl", tmp_path / "spark.jsonl")
    assert dist.counts.to_dict() == one.counts.to_dict() and dist.detections_by_label == one.detections_by_label
    manifest = json.loads(dist.manifest.read_text())
    assert manifest["engine"]["name"] == "spark" and manifest["engine"]["spark"]
    reidentify_file(tmp_path / "spark.jsonl", tmp_path / "back.jsonl", tmp_path / "spark.db")
    originals = [d.text for d in read_documents(clinical_corpus)]
    assert [d.text for d in read_documents(tmp_path / "back.jsonl")] == originals
    # a second run on the same output and vault: the same bytes, the vault unchanged in meaning
    run_deid(clinical_corpus, tmp_path / "spark.jsonl", DeidConfig(vault=str(tmp_path / "spark.db")),
             SparkEngine("local[2,4]", partitions=3, session=spark))
    assert _same_files(tmp_path / "one.jsonl", tmp_path / "spark.jsonl")
    # Parquet out and back in; chunks equal chunk_file's
    run_deid(clinical_corpus, tmp_path / "notes.parquet", DeidConfig(), engine)
    back = run_deid(tmp_path / "notes.parquet", tmp_path / "again.jsonl", DeidConfig(operator="tag"), engine)
    assert back.counts.read == back.counts.written == one.counts.written
    assert (tmp_path / "notes.parquet.manifest.json").is_file()
    config = ChunkConfig(max_tokens=128, overlap=16, profile="clinical")
    chunk_file(tmp_path / "one.jsonl", tmp_path / "one.chunks.jsonl", config)
    chunks = run_chunk(tmp_path / "one.jsonl", tmp_path / "spark.chunks.jsonl", config, engine)
    assert _same_files(tmp_path / "one.chunks.jsonl", tmp_path / "spark.chunks.jsonl")
    assert chunks.counts.reconciles and chunks.chunks > chunks.counts.written


@pytest.mark.slow
def test_spark_rejects_reconcile(tmp_path, spark, notes, vault_key):
    from domainfm.distributed.jobs import run_deid
    from domainfm.distributed.spark import SparkEngine

    one = deidentify_file(notes, tmp_path / "one.jsonl", DeidConfig())
    dist = run_deid(notes, tmp_path / "spark.jsonl", DeidConfig(), SparkEngine(session=spark, partitions=2))
    assert dist.counts.to_dict() == one.counts.to_dict()
    assert dist.counts.rejected == 2 and dist.counts.reconciles
    assert _same_files(tmp_path / "one.jsonl", tmp_path / "spark.jsonl")
    rejects = [json.loads(line) for line in dist.rejects.open()]
    assert {r["reason"].split(" (")[0] for r in rejects} >= {"duplicate id"}


def _python_workers() -> list:
    """Spark's Python worker processes (children of pyspark.daemon)."""
    import psutil

    workers = []
    for proc in psutil.process_iter(["cmdline"]):
        if "pyspark.daemon" in " ".join(proc.info["cmdline"] or []):
            workers += proc.children()
    return workers


@pytest.mark.slow
def test_a_killed_python_worker_loses_and_duplicates_nothing(tmp_path, spark, clinical_corpus, vault_key):
    """SIGKILL one Spark Python worker while it de-identifies; Spark retries the task and the
    output is still one process's, with every record once."""
    from domainfm.distributed.jobs import run_deid
    from domainfm.distributed.spark import SparkEngine

    deidentify_file(clinical_corpus, tmp_path / "one.jsonl", DeidConfig())
    killed: list[int] = []
    stop = threading.Event()

    def killer():
        seen: dict[int, float] = {}
        while not stop.is_set() and not killed:
            for proc in _python_workers():
                first = seen.setdefault(proc.pid, time.monotonic())
                if time.monotonic() - first > 2.0:  # busy in a task for a while: mid-partition
                    proc.kill()
                    killed.append(proc.pid)
                    break
            time.sleep(0.2)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        run_deid(clinical_corpus, tmp_path / "spark.jsonl", DeidConfig(), SparkEngine(session=spark, partitions=4))
    finally:
        stop.set()
        thread.join()
    assert killed, "no Python worker was running long enough to be killed"
    ids = [json.loads(line)["id"] for line in (tmp_path / "spark.jsonl").open()]
    assert len(ids) == len(set(ids)) == sum(1 for _ in read_documents(clinical_corpus))
    assert _same_files(tmp_path / "one.jsonl", tmp_path / "spark.jsonl")


@pytest.mark.slow
def test_spark_logs_carry_no_phi(tmp_path, clinical_corpus):
    """Planted identifiers go through ``domainfm deid --engine spark`` in a child process with
    Spark's event log on; neither its output nor the event log holds any of them."""
    if not _java():
        pytest.skip("Java 17 is not installed")
    pytest.importorskip("pyspark")
    planted = ["Zorblax Quintavius", "Quellmora Vantris", "778-41-9023", "MRN 55501234"]
    docs = list(read_documents(clinical_corpus))[:6]
    for doc, phi in zip(docs, planted + planted):
        doc.text = f"Patient {phi} seen today. {doc.text}" if "MRN" not in phi else f"{phi}. {doc.text}"
        doc.spans = []
    src = tmp_path / "planted.jsonl"
    write_documents(src, docs)
    events = tmp_path / "events"
    events.mkdir()
    code = (
        "import sys\nfrom domainfm.cli import main\n"
        f"sys.argv = ['domainfm', 'deid', {str(src)!r}, '-o', {str(tmp_path / 'out.jsonl')!r}, '--engine', 'spark',"
        f" '--partitions', '2', '--seed', '5']\n"
        "import domainfm.distributed.spark as s\n"
        "orig = s.spark_session\n"
        f"s.spark_session = lambda master, **k: orig(master, conf={{'spark.eventLog.enabled': 'true', "
        f"'spark.eventLog.dir': {str(events)!r}, 'spark.log.level': 'INFO'}})\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert done.returncode == 0, done.stderr[-3000:]
    logs = done.stdout + done.stderr + "".join(p.read_text(errors="replace") for p in events.rglob("*") if p.is_file())
    assert "read 6 = written 6" in logs
    assert any(p.is_file() for p in events.rglob("*")), "Spark wrote no event log"
    for phi in planted:
        assert phi not in logs and phi.split()[-1] not in logs


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray", reason="pip install 'domainfm[ray]' (.ci/run installs it)")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_gives_one_process_output(tmp_path, ray_local, clinical_corpus, vault_key):
    from domainfm.distributed.jobs import run_chunk, run_deid
    from domainfm.distributed.ray import RayEngine

    engine = RayEngine(2)
    one = deidentify_file(clinical_corpus, tmp_path / "one.jsonl", DeidConfig(vault=str(tmp_path / "one.db")))
    dist = run_deid(clinical_corpus, tmp_path / "ray.jsonl", DeidConfig(vault=str(tmp_path / "ray.db")), engine)
    assert _same_files(tmp_path / "one.jsonl", tmp_path / "ray.jsonl")
    assert dist.counts.to_dict() == one.counts.to_dict()
    assert json.loads(dist.manifest.read_text())["engine"]["name"] == "ray"
    reidentify_file(tmp_path / "ray.jsonl", tmp_path / "back.jsonl", tmp_path / "ray.db")
    assert [d.text for d in read_documents(tmp_path / "back.jsonl")] == [d.text for d in read_documents(clinical_corpus)]
    config = ChunkConfig(max_tokens=128, overlap=16, profile="clinical")
    chunk_file(tmp_path / "one.jsonl", tmp_path / "one.chunks.jsonl", config)
    run_chunk(tmp_path / "one.jsonl", tmp_path / "ray.chunks.jsonl", config, engine)
    assert _same_files(tmp_path / "one.chunks.jsonl", tmp_path / "ray.chunks.jsonl")


@pytest.mark.slow
def test_ray_holds_one_group_per_actor_and_writes_each_result_as_it_arrives(tmp_path, ray_local, notes, vault_key):
    """The Ray driver read the whole input into memory and collected every group's results before
    it wrote one, so its memory grew with the corpus. A group is read only when an actor is free
    for it, and its result is written before another group is read in its place: never more
    groups read and not yet written than actors, and the first results are written before the
    last group is read. The output, rejects and vault stay one process's."""
    from domainfm.distributed.jobs import run_deid
    from domainfm.distributed.ray import RayEngine

    events: list[tuple[str, int]] = []

    class Watched(RayEngine):
        def _group_input(self, inputs, group):
            events.append(("read", group))
            return super()._group_input(inputs, group)

        def _write_result(self, results, group, table):
            events.append(("written", group))
            return super()._write_result(results, group, table)

    deidentify_file(notes, tmp_path / "one.jsonl", DeidConfig(vault=str(tmp_path / "one.db")))
    engine = Watched(2, buckets=8)
    run_deid(notes, tmp_path / "ray.jsonl", DeidConfig(vault=str(tmp_path / "ray.db")), engine)
    for suffix in (".jsonl", ".rejects.jsonl"):
        assert _same_files(tmp_path / f"one{suffix}", tmp_path / f"ray{suffix}"), suffix
    reidentify_file(tmp_path / "ray.jsonl", tmp_path / "back.jsonl", tmp_path / "ray.db")
    assert [d.text for d in read_documents(tmp_path / "back.jsonl")] == \
        [d.text for d in read_documents(notes, rejects=[])]

    read = [group for what, group in events if what == "read"]
    written = [group for what, group in events if what == "written"]
    assert len(read) > engine.actors, events  # enough groups for the bound to matter
    assert sorted(read) == sorted(written) == sorted(set(read))
    in_flight = [sum(1 if what == "read" else -1 for what, _ in events[:i + 1]) for i in range(len(events))]
    assert max(in_flight) == engine.actors, events
    assert events.index(("written", written[0])) < events.index(("read", read[-1])), events


@pytest.mark.slow
def test_ray_with_more_groups_than_open_files_writes_one_process_bytes(tmp_path, ray_local, notes, vault_key,
                                                                       monkeypatch):
    """A large corpus gets more groups (``group_rows`` documents each) than the driver opens files
    at once: the input is split in several passes and the results merged in levels, and the
    output, rejects, vault and chunks are still one process's, in the same order."""
    import domainfm.distributed.ray as ray_engine
    from domainfm.distributed.jobs import run_chunk, run_deid

    monkeypatch.setattr(ray_engine, "_OPEN_FILES", 5)
    engine = ray_engine.RayEngine(2, group_rows=3)
    deidentify_file(notes, tmp_path / "one.jsonl", DeidConfig(vault=str(tmp_path / "one.db")))
    dist = run_deid(notes, tmp_path / "ray.jsonl", DeidConfig(vault=str(tmp_path / "ray.db")), engine)
    staged = len({d.id for d in read_documents(notes, rejects=[])})
    groups = json.loads(dist.manifest.read_text())["engine"]["groups"]
    assert groups == -(-staged // 3) > 2 * ray_engine._OPEN_FILES  # 3 passes of the split, a merge level
    for suffix in (".jsonl", ".rejects.jsonl"):
        assert _same_files(tmp_path / f"one{suffix}", tmp_path / f"ray{suffix}"), suffix
    reidentify_file(tmp_path / "ray.jsonl", tmp_path / "back.jsonl", tmp_path / "ray.db")
    assert [d.text for d in read_documents(tmp_path / "back.jsonl")] == \
        [d.text for d in read_documents(notes, rejects=[])]
    config = ChunkConfig(max_tokens=64, overlap=8, profile="clinical")
    chunk_file(tmp_path / "one.jsonl", tmp_path / "one.chunks.jsonl", config)
    run_chunk(tmp_path / "one.jsonl", tmp_path / "ray.chunks.jsonl", config, engine)
    assert _same_files(tmp_path / "one.chunks.jsonl", tmp_path / "ray.chunks.jsonl")


@pytest.mark.slow
def test_ray_workers_1_runs_one_actor_and_the_default_one_per_core(tmp_path, ray_local, cli):
    """``--engine ray --workers 1`` ran one actor per core (2 here): 1 was read as "unset". The
    manifest records what was asked and what ran."""
    src = tmp_path / "n.jsonl"
    src.write_text("".join(json.dumps({"id": f"n{i}", "text": f"Seen by Dr. Farrow on 3/{i + 1}/2021."}) + "\n"
                           for i in range(3)))
    ran = {}
    for name, args in (("one", ["--workers", "1"]), ("default", [])):
        out = tmp_path / f"{name}.jsonl"
        result = cli("deid", src, "-o", out, "--operator", "tag", "--engine", "ray", *args)
        assert result.exit_code == 0, result.output
        manifest = json.loads(out.with_name(f"{name}.manifest.json").read_text())
        ran[name] = manifest["engine"].get("workers"), manifest["engine"]["actors"], manifest["config"]["workers"]
        assert manifest["counts"]["read"] == manifest["counts"]["written"] == 3
    assert ran == {"one": (1, 1, 1), "default": (None, 2, 1)}  # ray_local: 2 CPUs
    assert (tmp_path / "one.jsonl").read_text() == (tmp_path / "default.jsonl").read_text()


@pytest.mark.slow
def test_a_pipeline_with_engine_spark_writes_what_a_local_pipeline_writes(tmp_path, spark, notes):
    from domainfm.pipeline import pipeline_from_dict, run_pipeline

    sections = {"import": {"format": "jsonl", "src": str(notes)}, "deid": {"profile": "clinical"},
                "chunk": {"max_tokens": 128, "overlap": 16, "profile": "clinical"}, "seed": 3}
    local = run_pipeline(pipeline_from_dict({**sections, "run_dir": str(tmp_path / "local")}))
    dist = run_pipeline(pipeline_from_dict({**sections, "run_dir": str(tmp_path / "spark"),
                                            "engine": {"name": "spark", "master": "local[2,4]", "partitions": 3}}))
    for stage in ("deid", "chunk"):
        a = next((tmp_path / "local" / stage).glob("*.jsonl"))
        assert _same_files(a, tmp_path / "spark" / stage / a.name), stage
    assert json.loads((tmp_path / "spark" / "deid" / "corpus.manifest.json").read_text())["engine"]["name"] == "spark"
    assert [s.status for s in dist.stages] == [s.status for s in local.stages]


@pytest.mark.slow
def test_the_dataframe_api_deidentifies_a_table_of_notes(tmp_path, spark, notes, vault_key):
    """A data-lake table (id, note, patient column, another column) through deidentify_dataframe
    gives the texts and replacements one process gives the same notes, and its vault rows merged
    on the driver re-identify them."""
    import pandas as pd

    from domainfm.deid.vault import Vault
    from domainfm.distributed.spark import deidentify_dataframe, merge_vault_rows, records_frame

    docs = list(read_documents(notes, rejects=[]))
    table = pd.DataFrame({"note_id": [d.id for d in docs], "note": [d.text for d in docs],
                          "mrn": [d.meta["patient_id"] for d in docs], "note_type": [d.meta["note_type"] for d in docs]})
    simple = [type(d)(d.id, d.text, meta={"patient_id": d.meta["patient_id"], "note_type": d.meta["note_type"]})
              for d in docs]
    write_documents(tmp_path / "simple.jsonl", simple)
    deidentify_file(tmp_path / "simple.jsonl", tmp_path / "one.jsonl", DeidConfig())
    expected = [json.loads(line) for line in (tmp_path / "one.jsonl").open()]

    with Vault(tmp_path / "lake.db", vault_key) as vault:
        rows = deidentify_dataframe(spark.createDataFrame(table), config=DeidConfig(), vault_header=vault.header(),
                                    text_col="note", id_col="note_id", patient_col="mrn", partitions=3).cache()
        got = [r.asDict() for r in records_frame(rows).orderBy("order").collect()]
        assert merge_vault_rows(rows, vault) > 0
    assert [g["id"] for g in got] == [e["id"] for e in expected]
    assert [g["text"] for g in got] == [e["text"] for e in expected]
    assert [json.loads(g["phi_spans"]) for g in got] == [e["phi_spans"] for e in expected]
    assert [json.loads(g["meta"]) for g in got] == [e["meta"] for e in expected]
    (tmp_path / "lake.jsonl").write_text("".join(json.dumps({"id": g["id"], "text": g["text"],
                                                             "phi_spans": json.loads(g["phi_spans"])}) + "\n"
                                                 for g in got), encoding="utf-8")
    reidentify_file(tmp_path / "lake.jsonl", tmp_path / "back.jsonl", tmp_path / "lake.db")
    assert [d.text for d in read_documents(tmp_path / "back.jsonl")] == [d.text for d in docs]


def test_a_spacy_model_that_is_not_there_is_refused_on_the_driver(tmp_path):
    """With Ray, the workers found it: about 120 lines of the engine's traceback after the job
    was staged, where one process gives one line."""
    from domainfm.deid import DeidConfig
    from domainfm.distributed.jobs import run_deid
    from domainfm.errors import DomainFMError

    class NeverStarted:
        name = "ray"

        def deidentify(self, *args, **kwargs):
            raise AssertionError("the engine started before the settings were checked")

    src = tmp_path / "n.jsonl"
    src.write_text('{"id": "a", "text": "Seen by Dr. Velorin."}\n')
    with pytest.raises(DomainFMError, match="spaCy pipeline 'en_core_web_zz' is neither an installed package"):
        run_deid(src, tmp_path / "o.jsonl", DeidConfig(spacy_model="en_core_web_zz"), NeverStarted(), seed=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.jsonl"]
