"""The training engine on ``transformers.Trainer`` against the hand-written pretrain loop it replaced.

Both sides run the same recipe - embedded MiniLM with its new tied MLM head, packed 128-token
blocks, logits only at the masked positions, seeded masks, 16 sequences per step, fp32 - through
``domainfm.pretrain.pretrain``: "loop" from the source tree of a git ref before the port
(``--loop-ref``), "engine" from this checkout. Phases alternate (loop, engine, loop, engine...)
so load from other processes on a shared machine hits both alike, each in a fresh interpreter
with one torch thread. Throughput is real (non-padding) tokens per second of training compute
(evaluation and checkpoint writing excluded on both sides). Data: MTSamples deduplicated when
``../shared/data`` exists, else the sample clinical corpus. Prints one JSON object.

Usage: python tests/benchmarks/bench_trainer_engine.py [--steps 200] [--rounds 2] [--loop-ref REF]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOOP_REF = "7c398ce"  # main before the engine port: pretrain/train.py's own accelerate loop

PHASE = """
import json, os, sys
import torch
torch.set_num_threads(1)
sys.path.insert(0, {bench!r})
from bench_pretrain import config
from domainfm.pretrain import pretrain
cfg = config(__import__("pathlib").Path({corpus!r}), {steps}, False, 8)
m = pretrain(cfg, {out!r}, overwrite=True).metrics
t = m["train"]
print(json.dumps({{"tokens": t["tokens_this_run"], "compute_seconds": t["compute_seconds"],
                  "cpu_seconds": t["cpu_seconds"], "tokens_per_s": t["tokens_per_s"],
                  "tokens_per_cpu_s": round(t["tokens_this_run"] / max(t["cpu_seconds"], 1e-9), 1),
                  "eval_after_loss": m["eval_after"]["loss"], "last_step_loss": t["last_step_loss"],
                  "peak_rss_mb": m["peak_rss_mb"], "load_average": os.getloadavg()}}))
"""


def export_ref(ref: str, dest: Path) -> Path:
    """The ``domainfm`` package as of ``ref`` (git archive), to import the old loop from."""
    archive = dest / "src.tar"
    with open(archive, "wb") as fh:
        subprocess.run(["git", "-C", str(ROOT), "archive", ref, "domainfm"], stdout=fh, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(dest / "src", filter="data")
    return dest / "src"


def run_phase(src: Path, corpus: Path, steps: int, out: Path) -> dict:
    code = PHASE.format(bench=str(ROOT / "tests" / "benchmarks"), corpus=str(corpus), steps=steps, out=str(out))
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"phase failed ({src}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summary(runs: list[dict]) -> dict:
    return {
        "runs": runs,
        "tokens_per_s_median": statistics.median(r["tokens_per_s"] for r in runs),
        "tokens_per_cpu_s_median": statistics.median(r["tokens_per_cpu_s"] for r in runs),
        "eval_after_loss": runs[-1]["eval_after_loss"],
        "peak_rss_mb_max": max(r["peak_rss_mb"] for r in runs),
    }


def main(steps: int, rounds: int, loop_ref: str) -> dict:
    import torch

    sys.path.insert(0, str(ROOT / "tests" / "benchmarks"))
    from bench_pretrain import prepare_corpus

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        corpus, source = prepare_corpus(work)
        old = export_ref(loop_ref, work)
        t0 = time.perf_counter()
        loop, engine = [], []
        for r in range(rounds):
            loop.append(run_phase(old, corpus, steps, work / f"loop-{r}"))
            engine.append(run_phase(ROOT, corpus, steps, work / f"engine-{r}"))
    lo, en = summary(loop), summary(engine)
    ratio = en["tokens_per_s_median"] / lo["tokens_per_s_median"]
    return {
        "benchmark": "trainer_engine",
        "data": source,
        "model": "minilm (all-MiniLM-L6-v2 encoder, new MLM head tied to the embeddings)",
        "recipe": "packed 128-token blocks, masked-position logits, seeded masks, 16 sequences/step, fp32",
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)",
        "torch_threads": 1,
        "steps_per_run": steps,
        "rounds": rounds,
        "loop_ref": loop_ref,
        "loop_hand_written": lo,
        "engine_trainer": en,
        "ratio_engine_over_loop_tokens_per_s": round(ratio, 3),
        "ratio_engine_over_loop_tokens_per_cpu_s": round(en["tokens_per_cpu_s_median"]
                                                         / lo["tokens_per_cpu_s_median"], 3),
        "trainer_costs_more_than_10_percent": ratio < 0.9,
        "total_seconds": round(time.perf_counter() - t0, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps per run")
    parser.add_argument("--rounds", type=int, default=2, help="alternating loop/engine pairs")
    parser.add_argument("--loop-ref", default=LOOP_REF, help="git ref whose pretrain loop is the baseline")
    args = parser.parse_args()
    print(json.dumps(main(args.steps, args.rounds, args.loop_ref), indent=2))
