"""Benchmark LoRA fine-tuning of the embedded MiniLM on real data; prints one JSON object.

Runs (each training run in its own process, so time and peak memory are its own):

- medical-abstracts, 5 classes (``tasks/medical-abstracts.yaml``): LoRA, a TF-IDF + logistic
  regression anchor on the same split, and (``--full``) a full fine-tune; macro-F1 on the
  task's stratified 15% hold-out (the official held-out part is not here). Target >= 0.64.
- NCBI-disease NER (``tasks/ncbi-disease.yaml``): train on train.tsv, entity-level F1 on
  devel.tsv. Target >= 0.80.
- ``mtsamples-specialty``, ``unfair-tos``, ``cuad-contract-type`` (the other real task files; no
  target, scored on their task files' held-out splits).
- with ``--dapt DIR`` (or ``--dapt clinical=DIR legal=DIR``, matched to each task's domain): the
  same LoRA runs on a ``domainfm pretrain`` output as base model.
- with ``--pooling``: medical-abstracts LoRA also with ``model.pooling`` ``cls`` (the task file
  uses ``mean``), the same split, seed and steps.

Every run reports wall and CPU seconds per optimizer step and the 1-minute load average before and
after it: on a shared machine the wall time is inflated by the load, and CPU seconds / threads
estimates the wall time on an idle machine.

Data is read from ``<repo>/../shared/data`` (prepared into ``runs/data`` by the task files'
``data.prepare`` steps); without it the benchmark prints ``{"skipped": reason}``.

Usage: ``python tests/benchmarks/bench_finetune.py [--quick] [--full] [--max-steps N]
[--tasks medical-abstracts ncbi-disease] [--dapt runs/dapt-mtsamples] [--model NAME] [--pooling]``. ``--quick`` bounds
every run to a few dozen steps on a subset (a smoke run, not a score); ``--max-steps`` bounds
each training run's optimizer steps (the JSON says what was run).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script from a checkout without installing the package
    sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("DOMAINFM_SHARED_DATA", ROOT.parent / "shared" / "data"))
TARGETS = {"medical-abstracts": ("macro_f1", 0.64), "ncbi-disease": ("f1", 0.80)}
TASKS = {"medical-abstracts": "clinical", "ncbi-disease": "clinical", "mtsamples-specialty": "clinical",
         "unfair-tos": "legal", "cuad-contract-type": "legal"}


def run_finetune(task: str, out: Path, overrides: dict) -> dict:
    args = [sys.executable, "-m", "domainfm", "finetune", f"tasks/{task}.yaml", "-o", str(out), "--overwrite"]
    for key, value in overrides.items():
        args += [f"--{key}", str(value)]
    load_before = os.getloadavg()[0]
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:], "overrides": overrides}
    m = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    metric = m["metric"]
    return {
        "score": {metric: m["eval"][metric], **{k: m["eval"][k] for k in ("accuracy", "micro_f1", "precision", "recall")
                                                if k in m["eval"]}},
        "per_class": {k: v["f1"] for k, v in (m["eval"].get("per_class") or m["eval"].get("per_type") or {}).items()},
        "method": m["method"],
        "trainable_params": m["params"]["trainable"],
        "total_params": m["params"]["total"],
        "train_seconds": m["train"]["train_seconds"],
        "seconds_per_step": round(m["train"]["train_seconds"] / max(1, m["train"]["steps"]), 3),
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
        "threads": int(os.environ.get("OMP_NUM_THREADS", 0)) or os.cpu_count(),
        "load_avg_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "peak_rss_mb": m["peak_rss_mb"],
        "steps": m["train"]["steps"],
        "epochs": m["train"]["epochs"],
        "stopped_early": m["train"]["stopped_early"],
        "sequences": {"train": m["data"]["train"]["sequences"], "eval": m["data"]["eval"]["sequences"]},
        "history": m["history"],
        "overrides": overrides,
    }


def tfidf_anchor(task: str, overrides: dict) -> dict:
    """TF-IDF (1-2 grams) + logistic regression on exactly the task's train/eval split."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from domainfm.config import load_config
    from domainfm.finetune import TaskConfig, classification_metrics
    from domainfm.finetune.train import load_task_data, prepare_data

    cfg = load_config(TaskConfig, ROOT / "tasks" / f"{task}.yaml",
                      {k: v for k, v in overrides.items() if k.startswith("data.")})
    prepare_data(cfg)
    train, held, label_map, _ = load_task_data(cfg)
    t0 = time.perf_counter()
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    x = vec.fit_transform([d.text for d in train])
    clf = LogisticRegression(max_iter=2000, C=10.0).fit(x, [d.label for d in train])
    pred = clf.predict(vec.transform([d.text for d in held]))
    m = classification_metrics([d.label for d in held], list(pred), label_map.labels)
    return {"score": {"macro_f1": m["macro_f1"], "accuracy": m["accuracy"]}, "train_seconds": round(time.perf_counter() - t0, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small subsets, few steps")
    parser.add_argument("--full", action="store_true", help="also run a full fine-tune per task")
    parser.add_argument("--max-steps", type=int, default=0, help="bound every training run (0 = task file)")
    parser.add_argument("--tasks", nargs="+", default=list(TARGETS), choices=list(TASKS))
    parser.add_argument("--dapt", nargs="+", default=[],
                        help="a 'domainfm pretrain' output to compare as base model, or DOMAIN=DIR per domain "
                             "(clinical=..., legal=...)")
    parser.add_argument("--max-eval-documents", type=int, default=0, help="bound every held-out set (0 = all)")
    parser.add_argument("--model", default="minilm", help="base model (default: the embedded MiniLM)")
    parser.add_argument("--pooling", action="store_true", help="medical-abstracts: also LoRA with [CLS] pooling")
    args = parser.parse_args()
    dapt = {}
    for item in args.dapt:
        domain, _, path = item.rpartition("=")
        for d in ([domain] if domain else ["clinical", "legal"]):
            dapt[d] = path
    if not DATA.is_dir():
        print(json.dumps({"benchmark": "finetune", "skipped": f"shared data not found at {DATA}"}))
        return 0
    import torch

    report: dict = {"benchmark": "finetune", "data": str(DATA), "model": args.model,
                    "device": "cuda" if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)",
                    "quick": args.quick, "max_steps": args.max_steps or None, "tasks": {}}
    for task in args.tasks:
        overrides: dict = {"train.checkpoint": "false"}
        if args.model != "minilm":
            overrides["model.name"] = args.model
        if args.quick:
            overrides.update({"data.max_train_documents": 400, "data.max_eval_documents": 150,
                              "train.max_steps": 20, "train.eval_every": 10})
        if args.max_steps:
            overrides.update({"train.max_steps": args.max_steps, "train.eval_every": max(1, args.max_steps // 3)})
        if args.max_eval_documents:
            overrides["data.max_eval_documents"] = args.max_eval_documents
        runs: dict = {}
        out = ROOT / "runs" / "bench-finetune"
        runs["lora"] = run_finetune(task, out / f"{task}-lora", overrides)
        if task == "medical-abstracts":
            runs["tfidf_lr_anchor"] = tfidf_anchor(task, overrides)
            if args.pooling:
                runs["lora_cls_pooling"] = run_finetune(task, out / f"{task}-lora-cls", {**overrides, "model.pooling": "cls"})
        if args.full:
            runs["full_finetune"] = run_finetune(task, out / f"{task}-full",
                                                 {**overrides, "train.full_finetune": "true", "train.lr": 5e-5})
        if TASKS[task] in dapt:
            runs["lora_on_dapt"] = run_finetune(task, out / f"{task}-dapt",
                                                {**overrides, "model.name": dapt[TASKS[task]]})
            runs["lora_on_dapt"]["dapt_model"] = dapt[TASKS[task]]
        if task in TARGETS:
            metric, target = TARGETS[task]
            score = (runs["lora"].get("score") or {}).get(metric)
            runs["target"] = {"metric": metric, "target": target, "lora": score,
                              "met": None if score is None else score >= target,
                              "measured_on": ("stratified 15% hold-out of the local data"
                                              if task == "medical-abstracts" else "devel.tsv")}
        report["tasks"][task] = runs
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
