"""Full-audit timing: ``domainfm audit`` of a medical-abstracts classifier on 800 documents with
20 explained ones, end to end in one process; prints JSON with the seconds per stage.

Target (issue #7): <= 10 minutes on this machine. The documents are the last 800 of a seeded
permutation of ../shared/data/medical-abstracts (runs/data/medical-abstracts.jsonl when the
finetune task has prepared it); they carry no demographics, so the groups are a seeded synthetic
``meta.sex`` / ``meta.age`` (for timing only: the numbers say nothing about real groups).

The stages are those of :func:`domainfm.audit.audit` (``timings``): ``load`` (model), ``score``
(all documents), ``performance`` (per group and pair, bootstrap CIs), ``calibration``,
``explanations`` (shap, ``--explain`` documents), ``robustness`` (counterfactual rewrites are
scored again), ``privacy``, ``render`` (plots, HTML, JSON, model card, PHI scan); ``import`` is
the time to import domainfm.audit and read the documents.

Model: a ``domainfm finetune`` folder, e.g. a CPU-sized LoRA run::

    domainfm finetune tasks/medical-abstracts.yaml -o runs/ma-cpu --model.max_length 128 \\
        --data.max_train_documents 2000 --data.max_eval_documents 100 --train.max_steps 24 \\
        --train.epochs 1 --train.early_stopping_patience 0 --train.checkpoint false

Usage:
    python tests/benchmarks/bench_audit.py MODEL_DIR [--docs 800] [--explain 20] [--max-evals 200]
        [--out /tmp/bench-audit]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

T0 = time.perf_counter()

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("DOMAINFM_SHARED_DATA", ROOT.parent / "shared" / "data"))


def load_docs(n: int):
    import numpy as np

    from domainfm.corpus.document import Document

    with open(DATA / "medical-abstracts" / "medical_abstracts.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    rng = np.random.default_rng(0)
    picked = rng.permutation(len(rows))[-n:]
    docs = []
    for i in picked:
        meta = {"sex": str(rng.choice(["F", "M"])), "age": int(rng.integers(18, 95))}
        docs.append(Document(id=f"abs-{i}", text=rows[i]["medical_abstract"], meta=meta,
                             label=rows[i]["condition_label"]))
    return docs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir")
    ap.add_argument("--docs", type=int, default=800)
    ap.add_argument("--explain", type=int, default=20)
    ap.add_argument("--max-evals", type=int, default=200)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--out", default="/tmp/bench-audit")
    args = ap.parse_args(argv)
    if not (DATA / "medical-abstracts").is_dir():
        print(json.dumps({"skipped": f"{DATA / 'medical-abstracts'} not found"}))
        return 0

    import torch

    from domainfm.audit import AuditConfig, audit

    docs = load_docs(args.docs)
    t_import = time.perf_counter() - T0
    cfg = AuditConfig(group_by=["meta.sex", "meta.age_band"], explain=args.explain, max_evals=args.max_evals,
                      n_bootstrap=args.bootstrap,
                      data_note="timing run: meta.sex / meta.age are seeded synthetic values, not real groups")
    timings: dict[str, float] = {}
    t = time.perf_counter()
    result = audit(args.model_dir, docs, args.out, cfg, timings=timings)
    total = time.perf_counter() - t
    report = result.report
    print(json.dumps({
        "benchmark": "full audit, medical-abstracts classifier",
        "model_dir": args.model_dir, "n_docs": len(docs), "explain": args.explain, "max_evals": args.max_evals,
        "n_bootstrap": args.bootstrap, "torch_threads": torch.get_num_threads(),
        "max_length": json.loads((Path(args.model_dir) / "domainfm_task.json").read_text())["max_length"],
        "stage_s": {"import": round(t_import, 1), **{k: round(v, 1) for k, v in timings.items()}},
        "audit_s": round(total, 1), "end_to_end_s": round(time.perf_counter() - T0, 1),
        "target_s": 600, "met": time.perf_counter() - T0 <= 600,
        "accuracy": report["performance"]["overall"]["accuracy"],
        "macro_f1": report["performance"]["overall"]["macro_f1"],
        "n_explained": report["explanations"]["n_explained"], "report": str(result.html),
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
