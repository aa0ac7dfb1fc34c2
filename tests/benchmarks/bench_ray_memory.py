"""Benchmark the Ray driver's peak memory as the corpus grows (``domainfm deid --engine ray``).

Prints one JSON object (and writes it with ``--out``). For each corpus size (``--sizes``: short
generated notes, about 145 characters, four per patient) and each engine, a fresh child process
warms up on 100 notes (imports, Ray's start, the actors' detectors), resets its peak RSS
(``/proc/self/clear_refs``), runs the de-identification job (surrogates and a vault) and reports:

* **peak_growth_mb**: the driver's peak RSS during the job minus its RSS just before it (the
  actors are other processes); **python_peak_mb** / **arrow_peak_mb**: the driver's peak of
  traced Python allocations and of Arrow's memory pool, which an allocator's retained pages do
  not blur; **groups**: how many groups the engine made; **seconds**: the job's wall time;
* **identical_outputs**: every engine's output bytes against the first engine's.

Engines: ``ray`` (``RayEngine(2)``, default settings: up to 10,000 documents a group, so below
80,000 notes its groups still grow with the corpus), ``ray_small_groups`` (``group_rows=250``: both
sizes are past the point where a group stops growing, so its peak should stay flat) and, with
``--engines local,...``, ``local`` (one process, for comparison). ``--ray-module FILE`` adds
``ray_alt``, the ``RayEngine`` of another copy of ``domainfm/distributed/ray.py`` (e.g.
``git show REV:domainfm/distributed/ray.py > /tmp/ray_rev.py``): two versions in one run.

    OMP_NUM_THREADS=1 python tests/benchmarks/bench_ray_memory.py [--sizes 2000,8000] [--out FILE]

About 2 to 3 minutes on 2 shared cores with the defaults.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SMALL_GROUPS = 250  # documents a group for "ray_small_groups"
# made-up name parts and wards: no real person, no data set
_SYLLABLES = ["ka", "lo", "mir", "ten", "sa", "vor", "el", "dan", "ru", "bex", "ni", "tal", "or", "win", "qu", "fen"]
_WARDS = ["4 North", "cardiac step-down", "the renal clinic", "the day unit", "ward 7B"]


def _name(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def write_corpus(path: Path, n: int, seed: int = 7) -> int:
    """``n`` short notes, about four per patient, patients interleaved; returns their characters."""
    rng = random.Random(seed)
    patients = [(f"P{i:06d}", _name(rng), _name(rng), rng.randint(1950, 2000)) for i in range(max(1, n // 4))]
    chars = 0
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            pid, first, last, born = patients[rng.randrange(len(patients))]
            text = (f"{first} {last} (born {rng.randint(1, 12)}/{rng.randint(1, 28)}/{born}) was seen on "
                    f"{rng.randint(1, 12)}/{rng.randint(1, 28)}/2021 by Dr. {_name(rng)} on {rng.choice(_WARDS)}. "
                    f"Call {rng.randint(200, 989)}-555-{rng.randint(1000, 9999)} to follow up in "
                    f"{rng.randint(1, 6)} weeks. Mr. {last} agreed.")
            chars += len(text)
            fh.write(json.dumps({"id": f"n{i:07d}", "text": text, "meta": {"patient_id": pid}}) + "\n")
    return chars


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _engine(name: str, ray_module: str | None):
    if name == "local":
        return None
    if name in ("ray", "ray_small_groups"):
        from domainfm.distributed.ray import RayEngine

        return RayEngine(2, group_rows=SMALL_GROUPS) if name == "ray_small_groups" else RayEngine(2)
    if name != "ray_alt" or not ray_module:
        raise SystemExit(f"unknown engine {name!r} (local, ray, ray_small_groups; ray_alt with --ray-module)")
    import importlib.util

    import ray.cloudpickle

    spec = importlib.util.spec_from_file_location("domainfm_bench_ray_alt", ray_module)
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ray.cloudpickle.register_pickle_by_value(module)  # the actors cannot import it by name
    return module.RayEngine(2)


def child(engine_name: str, corpus: Path, warm: Path, out: Path, ray_module: str | None) -> dict:
    """One measured job in this (fresh) process."""
    import pyarrow

    from domainfm.deid.config import DeidConfig
    from domainfm.deid.runner import deidentify_file
    from domainfm.distributed.jobs import run_deid

    engine = _engine(engine_name, ray_module)
    if engine is not None:
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")

    def job(src: Path, dst: Path) -> None:
        config = DeidConfig(vault=str(dst.with_suffix(".db")))
        if engine is None:
            deidentify_file(src, dst, config)
        else:
            run_deid(src, dst, config, engine)

    job(warm, out.with_name(out.stem + ".warm.jsonl"))
    gc.collect()
    before = _status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    if engine is not None:  # the driver only: tracing one process's detection would triple its time
        tracemalloc.start()
    start = time.perf_counter()
    job(corpus, out)
    seconds = time.perf_counter() - start
    peak = _status_kb("VmHWM")
    result = {"rss_before_mb": round(before / 1024, 1), "peak_growth_mb": round((peak - before) / 1024, 1),
              "seconds": round(seconds, 1)}
    if engine is not None:
        result["python_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
        result["arrow_peak_mb"] = round(pyarrow.default_memory_pool().max_memory() / 2**20, 1)
        result["groups"] = engine.describe()["groups"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,8000", help="notes per corpus, comma-separated")
    parser.add_argument("--engines", default="ray,ray_small_groups", help="of local, ray, ray_small_groups")
    parser.add_argument("--ray-module", help="another ray.py to measure as engine 'ray_alt'")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", nargs=4, metavar=("ENGINE", "CORPUS", "WARM", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("DOMAINFM_VAULT_KEY", "bench-ray-memory-" + "k" * 30)
    if args.child:
        name, corpus, warm, out = args.child
        print(json.dumps(child(name, Path(corpus), Path(warm), Path(out), args.ray_module)))
        return

    engines = [e for e in args.engines.split(",") if e] + (["ray_alt"] if args.ray_module else [])
    report: dict = {"machine": f"{os.cpu_count()} CPU cores (shared with other jobs)", "ray_actors": 2,
                    "measure": "driver peak RSS during the job minus RSS before it (fresh process per run)",
                    "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        warm = work / "warm.jsonl"
        write_corpus(warm, 100, seed=1)
        for size in [int(s) for s in args.sizes.split(",")]:
            corpus = work / f"notes-{size}.jsonl"
            runs = report["runs"][str(size)] = {"characters": write_corpus(corpus, size)}
            for name in engines:
                out = work / f"{name}-{size}.jsonl"
                command = [sys.executable, __file__, "--child", name, str(corpus), str(warm), str(out)]
                if args.ray_module:
                    command += ["--ray-module", args.ray_module]
                done = subprocess.run(command, capture_output=True, text=True, timeout=900)
                if done.returncode != 0:
                    raise SystemExit(f"{name} at {size} notes failed:\n{done.stderr[-3000:]}")
                runs[name] = json.loads(done.stdout.strip().splitlines()[-1])
            first = (work / f"{engines[0]}-{size}.jsonl").read_bytes()
            runs["identical_outputs"] = {name: (work / f"{name}-{size}.jsonl").read_bytes() == first
                                         for name in engines[1:]}
        sizes = list(report["runs"])
        if len(sizes) > 1:
            small, large = report["runs"][sizes[0]], report["runs"][sizes[-1]]
            report["peak_growth_large_over_small"] = {
                name: round(large[name]["peak_growth_mb"] / max(small[name]["peak_growth_mb"], 0.1), 2)
                for name in engines}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
