"""Few-shot span suggestions on NCBI-disease (issue 22), printing JSON; ``--data`` takes another
IOB2 set of the same layout (``../shared/data/bc5cdr``: Chemical and Disease, a check on a corpus
nothing was tuned on).

Seeds are drawn from train.tsv, scores are measured on devel.tsv (never seen in training or
calibration). The IOB2 files have no abstract boundaries, so an "abstract" here is a run of 10
consecutive sentences (the corpus averages ~9.5 sentences per abstract: 5,424 train sentences
over 593 abstracts); entity F1 is exact (start, end, label) over character spans.

Measured:
- entity F1 and ECE of the suggested spans' confidences (equal-width 10 bins, a span is right
  when it matches a gold span exactly) with 8 and 32 seed abstracts, over ``--draws`` draws;
- the wall time of one ``suggest_spans`` call with 32 seeds on a 200-document pool (train
  abstracts not among the seeds), against the baseline of encoding the same pool once with the
  frozen encoder (the floor any encoder-based method pays).

    PYTHONPATH=. python tests/benchmarks/bench_label_spans.py --draws 2 > bench_label_spans.json
    PYTHONPATH=. python tests/benchmarks/bench_label_spans.py --score-on train-holdout --draws 3 --methods probe \
        --probe-layers "5,6;3,4" --no-timing   # compare layer choices on the split to tune on
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from domainfm.corpus import read_documents  # noqa: E402
from domainfm.corpus.importing import import_corpus  # noqa: E402
from domainfm.label.span_config import SpanLabelConfig  # noqa: E402
from domainfm.label.span_tagger import SpanTagger  # noqa: E402
from domainfm.label.spans import predict_spans, train_span_model  # noqa: E402
from domainfm.metrics import entity_metrics, reliability  # noqa: E402


TARGETS = {"f1_8": 0.50, "f1_32": 0.70, "ece_max": 0.10, "seconds_200_pool_32_seeds": 120}  # issue 22, NCBI-disease


def load(split: str, data: Path, tmp: Path):
    out = tmp / f"{split}.jsonl"
    import_corpus("conll", data / f"{split}.tsv", out, {"sentences_per_doc": 10})
    return list(read_documents(out))


def score(result, gold_docs):
    by_id = {d.id: d for d in gold_docs}
    gold = [by_id[d.id].spans for d in result.docs]
    pred = result.spans
    m = entity_metrics(gold, pred)
    conf, correct, source = [], [], []
    for g, p in zip(gold, pred):
        keys = {s.key for s in g}
        for s in p:
            conf.append(s.attrs["confidence"])
            correct.append(s.key in keys)
            source.append(s.attrs.get("source", "model"))
    rel = reliability(np.array(conf), np.array(correct, dtype=float))
    # per source (model, lexicon, model+lexicon, deid): how many, how often right, how confident
    by_source = {src: {"spans": int(sum(x == src for x in source)),
                       "precision": round(float(np.mean([c for c, x in zip(correct, source) if x == src])), 4),
                       "mean_confidence": round(float(np.mean([c for c, x in zip(conf, source) if x == src])), 4)}
                 for src in sorted(set(source))}
    return {"f1": m["f1"], "precision": m["precision"], "recall": m["recall"], "ece": round(rel["ece"], 4)
            if rel["ece"] is not None else None, "spans": len(conf), "by_source": by_source,
            **({"f1_by_label": {lab: v["f1"] for lab, v in m["per_type"].items()}} if len(m["per_type"]) > 1 else {})}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "ncbi-disease"))
    ap.add_argument("--draws", type=int, default=2)
    ap.add_argument("--seeds", default="8,32")
    ap.add_argument("--encoder", default="minilm")
    ap.add_argument("--pool", type=int, default=200)
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--methods", default="probe,finetune", help="span methods to compare (SpanLabelConfig.method)")
    ap.add_argument("--probe-layers", default="",
                    help="';'-separated probe layer choices to compare, e.g. '5,6;3,4' (unset: the default)")
    ap.add_argument("--dictionaries", default="",
                    help="';'-separated dictionary choices for the probe to compare, each a ','-list or 'none', "
                         "e.g. 'none;diseases' (unset: the default, none)")
    ap.add_argument("--dictionary-scales", default="", help="','-separated dictionary_scale values to compare")
    ap.add_argument("--score-on", choices=["devel", "train-holdout"], default="devel",
                    help="train-holdout: seeds from train, scored on 150 train abstracts never drawn as "
                         "seeds (the split to tune on; devel stays for the reported numbers)")
    ap.add_argument("--out", default="", help="also write the JSON here (e.g. reports/benchmarks/label_spans_cpu.json)")
    args = ap.parse_args()
    data = Path(args.data)
    if not (data / "train.tsv").is_file():
        # as the other benchmarks do when ../shared is absent: say why, print JSON, no traceback
        print(json.dumps({"skipped": f"{data}/train.tsv not found: give --data the folder of an IOB2 set with "
                                     "train.tsv and devel.tsv (../shared/data/ncbi-disease or ../shared/data/bc5cdr)"}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        train, test = load("train", data, Path(tmp)), load("devel", data, Path(tmp))
    scored = "devel.tsv"
    if args.score_on == "train-holdout":
        perm = np.random.default_rng(99).permutation(len(train))
        test, train = [train[i] for i in perm[:150]], [train[i] for i in perm[150:]]
        scored = "150 train.tsv abstracts never drawn as seeds"
    corpus = {"ncbi-disease": "NCBI-disease", "bc5cdr": "BC5CDR (Chemical, Disease)"}.get(data.name, data.name)
    report: dict = {"data": f"{corpus}: seeds from train.tsv, scored on {scored} (10-sentence abstracts)",
                    "targets": TARGETS if data.name == "ncbi-disease" else "none: the targets are NCBI-disease's",
                    "methods": {}}
    for method in args.methods.split(","):
        probe = method == "probe"
        for layers in (args.probe_layers.split(";") if args.probe_layers and probe else [""]):
            for books in (args.dictionaries.split(";") if args.dictionaries and probe else [""]):
                for scale in (args.dictionary_scales.split(",") if args.dictionary_scales and probe else [""]):
                    pick = tuple(int(x) for x in layers.split(",")) if layers else None
                    chosen = () if books in ("", "none") else tuple(books.split(","))
                    if not chosen and scale not in ("", args.dictionary_scales.split(",")[0]):
                        continue  # without a dictionary the scale changes nothing
                    cfg = SpanLabelConfig(encoder=args.encoder, method=method, probe_layers=pick, dictionaries=chosen,
                                          **({"dictionary_scale": float(scale)} if scale else {}))
                    name = method + (f"_layers_{layers.replace(',', '-')}" if layers else "") + (
                        f"_dictionaries_{books.replace(',', '-')}" if books else "") + (
                        f"_scale_{scale}" if scale and chosen else "")
                    report["methods"][name] = run_method(args, cfg, train, test, f"{corpus}: {scored}")
    text = json.dumps(report, indent=1)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)


def run_method(args, cfg: SpanLabelConfig, train, test, scored: str = "NCBI-disease: devel.tsv") -> dict:
    tagger = SpanTagger(cfg) if cfg.method == "probe" else None
    out: dict = {"data": f"seeds from train.tsv, scored on {scored} (10-sentence abstracts)",
                 "test_documents": len(test), "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
                 "results": {}}
    for n in [int(x) for x in args.seeds.split(",")]:
        rows = []
        for draw in range(args.draws):
            rng = np.random.default_rng((1000 if args.score_on == "devel" else 2000) + draw)
            seeds = [train[i] for i in rng.choice(len(train), n, replace=False)]
            t0 = time.perf_counter()
            model = train_span_model(seeds, cfg, tagger=tagger)
            result = predict_spans(model, test, cfg, seeds=seeds)
            row = {"draw": draw, **score(result, test), "seconds": round(time.perf_counter() - t0, 1),
                   "calibration": model.summary["calibration"], "dictionary_edges": model.summary["dictionary_edges"]}
            rows.append(row)
            print(json.dumps({"method": cfg.method, "seeds": n, **row}), file=sys.stderr)
        out["results"][str(n)] = {"draws": rows, "mean_f1": round(float(np.mean([r["f1"] for r in rows])), 4),
                                  "worst_ece": max(r["ece"] for r in rows if r["ece"] is not None)}
    if not args.no_timing:
        rng = np.random.default_rng(7)
        idx = rng.permutation(len(train))
        seeds, pool = [train[i] for i in idx[:32]], [train[i] for i in idx[32:32 + args.pool]]
        fresh = SpanTagger(cfg)  # nothing cached: the time a user waits, model loading included
        t0 = time.perf_counter()
        fresh.featurize(pool)
        baseline = time.perf_counter() - t0
        t0 = time.perf_counter()
        model = train_span_model(seeds, cfg, tagger=SpanTagger(cfg) if cfg.method == "probe" else None)
        predict_spans(model, pool, cfg, seeds=seeds)
        seconds = time.perf_counter() - t0
        out["timing"] = {"pool": len(pool), "seeds": 32, "seconds": round(seconds, 1),
                         "baseline_encode_pool_seconds": round(baseline, 1),
                         "ratio_to_baseline": round(seconds / baseline, 2)}
    return out


if __name__ == "__main__":
    main()
