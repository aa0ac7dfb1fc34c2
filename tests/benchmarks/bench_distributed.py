"""Benchmark distributed de-identification (Spark, Ray) against one process, in the same run.

Prints one JSON object (and writes it with ``--out``):

* **equality**: every engine's output file against ``domainfm deid``'s in one process, byte for
  byte (records, spans, surrogates, date shifts; the same key), on a generated clinical corpus
  (``domainfm synth``; no real data) and on ``../shared/data/mtsamples`` when present;
* **scaling**: Spark ``local[2]`` against ``local[1]`` (two executor cores against one) on the
  generated corpus: ratio of wall times of the job (the session is started before timing);
* **overhead**: Spark ``local[2]`` and Ray with 2 actors against ``domainfm deid --workers 2``
  (the same machine's two cores through a process pool), as (engine seconds / workers seconds) - 1.

Timed runs alternate (``--repeats``) so that load on a shared machine falls on all alike.

    OMP_NUM_THREADS=1 python tests/benchmarks/bench_distributed.py --notes 2000 [--mtsamples 400] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _same(a: Path, b: Path) -> bool:
    return a.read_bytes() == b.read_bytes()


def generated_corpus(work: Path, n: int) -> Path:
    from domainfm.synth import write_sample_corpora

    write_sample_corpora(work / "synth", seed=29, n_clinical=n, n_legal=1)
    return work / "synth" / "clinical" / "notes.jsonl"


def mtsamples_corpus(work: Path, limit: int) -> Path | None:
    from domainfm.corpus import import_corpus, read_documents, write_documents

    csv = SHARED / "mtsamples" / "mtsamples.csv"
    if not csv.is_file():
        return None
    raw = work / "mtsamples-all.jsonl"
    import_corpus("csv", csv, raw, {"text_col": "transcription", "id_col": "note_id"})
    docs = [d for d in read_documents(raw) if d.text.strip()][:limit]
    out = work / "mtsamples.jsonl"
    write_documents(out, docs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=2000, help="generated clinical notes")
    parser.add_argument("--mtsamples", type=int, default=400, help="MTSamples notes for the equality check (0: skip)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--engines", default="spark,ray")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("DOMAINFM_VAULT_KEY", "bench-distributed-" + "k" * 30)

    from domainfm.deid.config import DeidConfig
    from domainfm.deid.runner import deidentify_file
    from domainfm.distributed.jobs import run_deid

    engines = [e for e in args.engines.split(",") if e]
    report: dict = {"machine": f"{os.cpu_count()} CPU cores (shared with other jobs)", "notes": args.notes}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        corpus = generated_corpus(work, args.notes)
        chars = sum(len(json.loads(line)["text"]) for line in corpus.open())
        report["generated"] = {"notes": args.notes, "characters": chars}
        spark1 = spark2 = None
        if "spark" in engines:
            from domainfm.distributed.spark import SparkEngine, spark_session

            session = spark_session("local[2]")
            spark2 = SparkEngine("local[2]", partitions=8, session=session)
        if "ray" in engines:
            from domainfm.distributed.ray import RayEngine

            ray_engine = RayEngine(2)
        times: dict[str, list[float]] = {}

        def record(name: str, seconds: float) -> None:
            times.setdefault(name, []).append(round(seconds, 2))

        # Warm-up on 20 notes: a Spark or Ray cluster keeps its workers (and their detectors)
        # between jobs, and the process pool of --workers is started anew by every run, which
        # is its real cost; the first timed runs are reported too ("cold_seconds").
        small = work / "warm.jsonl"
        small.write_text("".join(corpus.open().readlines()[:20]), encoding="utf-8")
        cold: dict[str, float] = {}
        if spark2 is not None:
            cold["spark_local_2_warmup_20_notes"] = round(_timed(lambda: run_deid(small, work / "w.jsonl", DeidConfig(), spark2))[0], 2)
        if "ray" in engines:
            cold["ray_warmup_20_notes"] = round(_timed(lambda: run_deid(small, work / "w.jsonl", DeidConfig(), ray_engine))[0], 2)
        report["warmup_seconds"] = cold
        equal: dict[str, bool] = {}
        for repeat in range(args.repeats):
            seconds, one = _timed(lambda: deidentify_file(corpus, work / "one.jsonl", DeidConfig()))
            record("one_process", seconds)
            seconds, _ = _timed(lambda: deidentify_file(corpus, work / "workers2.jsonl", DeidConfig(workers=2)))
            record("workers_2", seconds)
            equal["workers_2"] = _same(work / "one.jsonl", work / "workers2.jsonl")
            if spark2 is not None:
                seconds, _ = _timed(lambda: run_deid(corpus, work / "spark2.jsonl", DeidConfig(), spark2))
                record("spark_local_2", seconds)
                equal["spark_local_2"] = _same(work / "one.jsonl", work / "spark2.jsonl")
                # one executor core: the same session's scheduler limited to one task at a time
                spark1 = SparkEngine("local[2]", partitions=1, session=session)
                seconds, _ = _timed(lambda: run_deid(corpus, work / "spark1.jsonl", DeidConfig(), spark1))
                record("spark_one_task", seconds)
                equal["spark_one_task"] = _same(work / "one.jsonl", work / "spark1.jsonl")
            if "ray" in engines:
                seconds, _ = _timed(lambda: run_deid(corpus, work / "ray.jsonl", DeidConfig(), ray_engine))
                record("ray_2_actors", seconds)
                equal["ray_2_actors"] = _same(work / "one.jsonl", work / "ray.jsonl")
        best = {name: min(values) for name, values in times.items()}
        report["seconds"] = times
        report["notes_per_second"] = {name: round(args.notes / s, 2) for name, s in best.items()}
        report["identical_to_one_process"] = equal
        if "spark_local_2" in best:
            report["spark_2_tasks_vs_1_task"] = round(best["spark_one_task"] / best["spark_local_2"], 3)
            report["spark_overhead_vs_workers_2"] = round(best["spark_local_2"] / best["workers_2"] - 1, 3)
        if "ray_2_actors" in best:
            report["ray_overhead_vs_workers_2"] = round(best["ray_2_actors"] / best["workers_2"] - 1, 3)
        report["workers_2_vs_one_process"] = round(best["one_process"] / best["workers_2"], 3)

        if args.mtsamples:
            mts = mtsamples_corpus(work, args.mtsamples)
            if mts is None:
                report["mtsamples"] = "skipped: ../shared/data/mtsamples is absent"
            else:
                deidentify_file(mts, work / "mts-one.jsonl", DeidConfig())
                checks = {}
                if spark2 is not None:
                    run_deid(mts, work / "mts-spark.jsonl", DeidConfig(), spark2)
                    checks["spark_local_2"] = _same(work / "mts-one.jsonl", work / "mts-spark.jsonl")
                if "ray" in engines:
                    run_deid(mts, work / "mts-ray.jsonl", DeidConfig(), ray_engine)
                    checks["ray_2_actors"] = _same(work / "mts-one.jsonl", work / "mts-ray.jsonl")
                report["mtsamples"] = {"notes": args.mtsamples, "identical_to_one_process": checks}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
