"""Benchmark of the few-shot labeling assistant; prints JSON.

Medical abstracts (../shared/data/medical-abstracts, 5 condition classes): the part kept aside
for independent evaluation is not available here, so we carve a deterministic dev/test split
(seed 0) from the released file: seeds are drawn from dev (several seeded draws, k per class),
the test part (~920 abstracts) is the pool that gets labeled and scored. Legal: UNFAIR-ToS
sentences tagged with exactly one unfair-clause category (9 categories); seeds from the
services with an even index, scored on the others.

Methods, side by side on the same draws (one shared embedding cache, so no text is embedded
twice):

- ``baseline_frozen_lr``: frozen MiniLM vectors + scikit-learn's default logistic regression
  (the reference of the issue), no calibration;
- ``embed``: the assistant's default (chunk-mean embeddings with 200 TF-IDF/SVD word dimensions
  fitted on the seed and pool texts appended, ``lsa_dims: 200``; C picked and temperature fitted
  on out-of-fold seeds, self-training on the pool);
- ``embed_no_lsa``: the same on the sentence embeddings alone (``lsa_dims: 0``);
- ``embed_described``: the same plus the label descriptions (``LabelConfig.label_descriptions``:
  the class names the datasets document, e.g. "neoplasms", "limitation of liability");
- ``setfit``: contrastive fine-tuning of MiniLM (``--setfit-draws`` draws; CPU-costly, so
  scored on a ``--setfit-pool`` subset of the pool, next to ``embed`` on the same subset). The
  SetFit recipe's scale (20 pair iterations per seed, one epoch) is ``--setfit-pairs 40
  --setfit-steps 1000000 --setfit-pool 0``: about 1,600 CPU-seconds per 8-shot run here, so
  meant for a GPU.

Per method: each draw's macro-F1, accuracy, expected calibration error of the suggestions,
cross-validated expected accuracy and seconds, then mean and sd over draws. Timing: one cold
8-shot ``embed`` run over the whole pool as a user gets it (model load and every embedding
included), with the load average before and after and the process CPU seconds: on a shared
machine the wall time mostly measures the other jobs.

Usage:
    python tests/benchmarks/bench_label.py [--quick] [--draws 5] [--setfit-draws 1]
        [--setfit-pairs 40 --setfit-steps 1000000 --setfit-pool 0 --setfit-shots 8,16]
        [--embedding-cache /tmp/label/cache] [--tasks abstracts,unfair_tos]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("DOMAINFM_SHARED_DATA", ROOT.parent / "shared" / "data"))

# Class names as the datasets document them (medical-abstracts README; UNFAIR-ToS paper).
DESCRIPTIONS = {
    "abstracts": {"1": "neoplasms", "2": "digestive system diseases", "3": "nervous system diseases",
                  "4": "cardiovascular diseases", "5": "general pathological conditions"},
    "unfair_tos": {"a": "arbitration", "ch": "unilateral change", "cr": "content removal",
                   "j": "jurisdiction", "law": "choice of law", "ltd": "limitation of liability",
                   "ter": "unilateral termination", "use": "contract by using", "pinc": "privacy included"},
}


def load_abstracts():
    from domainfm.corpus.document import Document

    with open(DATA / "medical-abstracts" / "medical_abstracts.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    docs = [Document(id=f"abs-{i}", text=r["medical_abstract"], label=r["condition_label"]) for i, r in enumerate(rows)]
    perm = np.random.default_rng(0).permutation(len(docs))
    cut = int(0.545 * len(docs))
    return [docs[i] for i in perm[:cut]], [docs[i] for i in perm[cut:]]


def load_unfair_tos():
    from domainfm.corpus.document import Document

    base = DATA / "unfair-tos"
    known = set(DESCRIPTIONS["unfair_tos"])
    services = sorted(p.name for p in (base / "tags" / "en" / "original").glob("*.txt"))
    parts: tuple[list, list] = ([], [])
    for k, name in enumerate(services):
        sentences = (base / "sentences" / "en" / "original" / name).read_text(encoding="utf-8").split("\n")
        tags = (base / "tags" / "en" / "original" / name).read_text(encoding="utf-8").split("\n")
        for i, (s, t) in enumerate(zip(sentences, tags)):
            cats = {re.sub(r"\d", "", x) for x in t.split()} & known
            if s.strip() and len(cats) == 1:
                parts[k % 2].append(Document(id=f"{name[:-4]}-{i}", text=s, label=cats.pop()))
    return parts


LOADERS = {"abstracts": (load_abstracts, "medical-abstracts"), "unfair_tos": (load_unfair_tos, "unfair-tos")}


def draw_seeds(dev, shots: int, draw: int):
    rng = np.random.default_rng(1000 + draw)
    by: dict[str, list] = {}
    for d in dev:
        by.setdefault(d.label, []).append(d)
    return [d for label in sorted(by) for d in rng.permutation(np.array(by[label], dtype=object))[:shots]]


def _scores(classes, docs, probs, gold) -> dict:
    from domainfm.metrics import expected_calibration_error, macro_f1

    y = np.array([classes.index(gold[d.id]) if gold[d.id] in classes else -1 for d in docs])
    pred = probs.argmax(1)
    return {"macro_f1": round(macro_f1(y, pred, labels=range(len(classes))), 4), "accuracy": round(float((pred == y).mean()), 4),
            "ece": round(expected_calibration_error(probs.max(1), pred == y), 4)}


def score(result, gold: dict) -> dict:
    return {**_scores(result.classes, result.docs, result.probabilities, gold),
            "cv_expected_accuracy": result.summary["cross_validation"]["expected_accuracy"],
            "seconds": result.summary["seconds"]}


def baseline(encoder, seeds, pool, gold) -> dict:
    """Frozen MiniLM + logistic regression with sklearn defaults (the issue's reference)."""
    from sklearn.linear_model import LogisticRegression

    t = time.perf_counter()
    classes = sorted({d.label for d in seeds})
    X = encoder.encode([d.text for d in seeds])
    P = encoder.encode([d.text for d in pool])
    lr = LogisticRegression(max_iter=3000).fit(X, [classes.index(d.label) for d in seeds])
    return {**_scores(classes, pool, lr.predict_proba(P), gold), "seconds": round(time.perf_counter() - t, 2)}


def summarize(runs: list[dict]) -> dict:
    out: dict = {"draws": len(runs)}
    for key in runs[0]:
        values = np.array([r[key] for r in runs], dtype=float)
        out[key] = {"mean": round(float(values.mean()), 4), "sd": round(float(values.std(ddof=1)) if len(values) > 1 else 0.0, 4)}
    out["per_draw"] = runs
    return out


def run_task(name, dev, test, *, shots_list, draws, setfit_draws, setfit_pool, setfit_steps, encoder, log,
             save_cache=None, setfit_extra=None, setfit_shots=None, model=None):
    from domainfm.corpus.document import Document
    from domainfm.label import LabelConfig, suggest_labels

    gold = {d.id: d.label for d in test}
    pool = [Document(id=d.id, text=d.text) for d in test]
    t, cpu = time.perf_counter(), time.process_time()
    encoder.encode([d.text for d in dev] + [d.text for d in test])  # every frozen vector once, then cached
    log(f"{name}: embedded {len(dev) + len(test)} texts in {time.perf_counter() - t:.0f}s "
        f"({time.process_time() - cpu:.0f}s CPU, load {os.getloadavg()[0]:.1f})")
    if save_cache:
        save_cache()
    described = DESCRIPTIONS[name]
    base = {"model": model} if model else {}
    configs = {"embed": base, "embed_no_lsa": {**base, "lsa_dims": 0},
               "embed_described": {**base, "label_descriptions": described}}
    sub = sorted(np.random.default_rng(5).permutation(len(pool))[:setfit_pool or len(pool)].tolist())
    small = [pool[i] for i in sub]
    setfit_extra = {"setfit_max_steps": setfit_steps, **(setfit_extra or {})}
    setfit_shots = shots_list[:1] if setfit_shots is None else setfit_shots
    report: dict = {"dev": len(dev), "pool": len(pool), "classes": sorted({d.label for d in dev}),
                    "label_descriptions": described}
    for shots in shots_list:
        rows: dict[str, list] = {"baseline_frozen_lr": [], **{k: [] for k in configs}}
        setfit_rows: dict[str, list] = {"embed_on_subset": [], "setfit": []}
        for draw in range(draws):
            seeds = draw_seeds(dev, shots, draw)
            rows["baseline_frozen_lr"].append(baseline(encoder, seeds, pool, gold))
            for key, extra in configs.items():
                res = suggest_labels(seeds, pool, LabelConfig(method="embed", seed=draw, **extra), encoder=encoder)
                rows[key].append(score(res, gold))
            log(f"{name} {shots}-shot draw {draw}: " + ", ".join(f"{k} F1 {v[-1]['macro_f1']:.3f}" for k, v in rows.items()))
            if draw < setfit_draws and shots in setfit_shots:
                for key, extra in (("", base),):
                    res = suggest_labels(seeds, small, LabelConfig(method="embed", seed=draw, **extra), encoder=encoder)
                    setfit_rows[f"embed{key}_on_subset"].append(score(res, gold))
                    res = suggest_labels(seeds, small, LabelConfig(method="setfit", seed=draw, **setfit_extra, **extra),
                                         encoder=encoder)
                    setfit_rows[f"setfit{key}"].append(score(res, gold))
                    log(f"{name} {shots}-shot draw {draw} setfit{key}: F1 {setfit_rows[f'setfit{key}'][-1]['macro_f1']:.3f} "
                        f"vs embed{key} {setfit_rows[f'embed{key}_on_subset'][-1]['macro_f1']:.3f} on {len(small)} "
                        f"({setfit_rows[f'setfit{key}'][-1]['seconds']:.0f}s, load {os.getloadavg()[0]:.1f})")
        report[f"{shots}_shot"] = {k: summarize(v) for k, v in rows.items() if v}
        if any(setfit_rows.values()):
            report[f"{shots}_shot"]["setfit_side_by_side"] = {
                "pool_subset": len(small), **setfit_extra,
                **{k: summarize(v) for k, v in setfit_rows.items() if v}}
    return report


def cold_timing(dev, test, shots: int, method: str, **extra) -> dict:
    """One end-to-end run as a user gets it: fresh encoder (model load, no cached vectors)."""
    from domainfm.corpus.document import Document
    from domainfm.label import LabelConfig, assist, suggest_labels

    assist._ENCODERS.clear()
    seeds = draw_seeds(dev, shots, 0)
    pool = [Document(id=d.id, text=d.text) for d in test]
    load_before = os.getloadavg()[0]
    t, cpu = time.perf_counter(), time.process_time()
    stages: list[tuple[str, float]] = []
    result = suggest_labels(seeds, pool, LabelConfig(method=method, **extra),
                            on_stage=lambda name: stages.append((name, time.perf_counter())))
    end = time.perf_counter()
    assist._ENCODERS.clear()
    # Wall seconds per stage (model load is inside the first one).
    marks = [("loading the model", t)] + stages + [("end", end)]
    per_stage = {name: round(marks[i + 1][1] - at, 1) for i, (name, at) in enumerate(marks[:-1])}
    # CPU seconds next to wall seconds: on a shared machine the gap is time spent waiting for a core.
    return {"method": method, **extra, "seeds": len(seeds), "pool": len(pool),
            "wall_seconds": round(time.perf_counter() - t, 1), "process_cpu_seconds": round(time.process_time() - cpu, 1),
            "load_average_before": round(load_before, 2), "load_average_after": round(os.getloadavg()[0], 2),
            "chunked_documents": result.summary["chunked_documents"], "wall_seconds_from_stage": per_stage}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 draws, 8-shot only, abstracts only, no setfit")
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--shots", default="8,16", help="seeds per class, comma-separated (legal: the first only)")
    parser.add_argument("--tasks", default="abstracts,unfair_tos")
    parser.add_argument("--setfit-draws", type=int, default=1, help="setfit is costly on CPU")
    parser.add_argument("--setfit-pool", type=int, default=200, help="pool documents setfit is scored on (0 = all)")
    parser.add_argument("--setfit-steps", type=int, default=60, help="setfit_max_steps of the benchmark runs")
    parser.add_argument("--setfit-pairs", type=int, default=0,
                        help="setfit_pairs_per_seed (0 = the LabelConfig default; 40 = the SetFit recipe's 20 iterations)")
    parser.add_argument("--setfit-max-length", type=int, default=0, help="setfit_max_length (0 = the LabelConfig default)")
    parser.add_argument("--setfit-shots", default="", help="shot levels setfit runs at (default: the first of --shots)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    parser.add_argument("--timing", default="embed", help="methods to time cold, comma-separated ('' = none)")
    parser.add_argument("--embedding-cache", default="", help="folder: reuse/save frozen vectors between runs")
    parser.add_argument("--out", default="", help="also write the report here after each task (partial results)")
    parser.add_argument("--encoder", default="", help="LabelConfig.model for every method (a 'domainfm pretrain' "
                        "output, a folder or hub id; default: the LabelConfig default)")
    args = parser.parse_args(argv)
    tasks = [t for t in args.tasks.split(",") if t]
    unknown = [t for t in tasks if t not in LOADERS]
    if unknown:
        parser.error(f"unknown task(s) {unknown}; choose from {sorted(LOADERS)}")
    if not DATA.is_dir():
        print(json.dumps({"skipped": f"shared data not found at {DATA}"}))
        return 0
    if args.quick:
        args.draws, args.setfit_draws, args.shots, tasks = 2, 0, "8", ["abstracts"]
    import torch

    from domainfm.label import LabelConfig
    from domainfm.label.encoders import SentenceEncoder

    if args.threads:
        torch.set_num_threads(args.threads)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    started = time.perf_counter()
    report: dict = {"device": "cuda" if torch.cuda.is_available() else "cpu", "cpus": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "load_average_start": os.getloadavg()[0],
                    "encoder": args.encoder or LabelConfig().model,
                    "note": "the held-out part of the medical abstracts is not available here; dev/test are "
                            "carved from the released file (seed 0); seeds drawn from dev, scored on test"}
    shots = [int(s) for s in args.shots.split(",")]
    encoder_kw = {"model": args.encoder} if args.encoder else {}  # LabelConfig's encoder, else its default
    for task in tasks:
        loader, folder = LOADERS[task]
        if not (DATA / folder).is_dir():
            report[task] = {"skipped": f"{DATA / folder} not found"}
            continue
        dev, test = loader()
        cfg = LabelConfig(**encoder_kw)
        encoder = SentenceEncoder(cfg.model, max_tokens=cfg.max_tokens, batch_size=cfg.batch_size, name=cfg.model)
        save_cache = None
        if args.embedding_cache:
            path = Path(args.embedding_cache) / f"{task}-{cfg.model}-{encoder.max_tokens}.npz"
            if path.exists():
                log(f"{task}: {encoder.load_cache(path)} vectors from {path}")
            path.parent.mkdir(parents=True, exist_ok=True)
            save_cache = lambda p=path, e=encoder: e.save_cache(p)  # noqa: E731
        report[task] = run_task(task, dev, test, shots_list=shots if task == "abstracts" else shots[:1],
                                draws=args.draws, setfit_draws=args.setfit_draws, setfit_pool=args.setfit_pool,
                                setfit_steps=args.setfit_steps, encoder=encoder, log=log, save_cache=save_cache,
                                setfit_extra={k: v for k, v in (("setfit_pairs_per_seed", args.setfit_pairs),
                                                                ("setfit_max_length", args.setfit_max_length)) if v},
                                setfit_shots=[int(s) for s in args.setfit_shots.split(",") if s] or None,
                                model=args.encoder or None)
        _dump(report, args.out)
    timing = [m for m in args.timing.split(",") if m]
    if timing and (DATA / "medical-abstracts").is_dir():
        # Last, and on a fresh encoder: the wall time of a first run, model load included.
        dev, test = load_abstracts()
        report["timing_8shot_cold"] = []
        for method in timing:
            report["timing_8shot_cold"].append(cold_timing(dev, test, 8, method, **encoder_kw))
            log(f"timing: {report['timing_8shot_cold'][-1]}")
            _dump(report, args.out)
    report["targets"] = {"8_shot_macro_f1": 0.60, "16_shot_macro_f1": 0.63, "ece": 0.10, "8_shot_seconds": 300}
    report["load_average_end"] = os.getloadavg()[0]
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    _dump(report, args.out)
    print(json.dumps(report, indent=2))
    return 0


def _dump(report: dict, path: str) -> None:
    if path:
        Path(path).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
