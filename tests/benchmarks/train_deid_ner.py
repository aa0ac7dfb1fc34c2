"""Train the learned PHI model (``domainfm deid --ner-model``) on PhysioNet nursing notes.

Imports ``../shared/data/physionet-deid``, keeps one half of the patients (``--split A|B``, the
same halves as ``bench_deid.py --split``; ``all`` keeps every note), maps PhysioNet's labels to
the canonical coarse ones the recipe trains on (HCPName/PTName/RelativeProxyName -> NAME,
Date/DateYear -> DATE, Location -> LOCATION; phones, ages and IDs stay with the rules) and runs
``domainfm finetune`` with ``tasks/deid-physionet-ner.yaml``. Prints the finetune metrics as JSON.

    python tests/benchmarks/train_deid_ner.py --split A -o runs/deid-ner-A [--epochs 6] [--layers 2] [--set train.lr=3e-4]
    python tests/benchmarks/bench_deid.py --sets physionet --split B --ner-model runs/deid-ner-A
    python tests/benchmarks/train_deid_ner.py --split all --train-folds 0,1,2 -o runs/deid-ner-f012
    python tests/benchmarks/bench_deid.py --sets physionet --ner-model runs/deid-ner-f012   # sealed + fresh strings
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

TRAINED_LABELS = ("NAME", "DATE", "LOCATION")


def write_half(data: Path, split: str, out: Path, folds: int = 5, train_folds: list[int] | None = None) -> dict:
    """The half's (or the folds') notes with coarse canonical labels; returns counts."""
    from bench_deid import patient_fold, patient_half

    from domainfm.corpus import Span, import_corpus, read_documents, write_documents
    from domainfm.deid.labels import coarse, to_canonical

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "physionet.jsonl"
        import_corpus("physionet", data / "physionet-deid", raw)
        docs = list(read_documents(raw))
    kept, spans, left_to_rules = [], 0, 0
    for doc in docs:
        patient = str(doc.meta.get("patient_id", doc.id))
        if split != "all" and patient_half(patient) != split:
            continue
        if train_folds is not None and patient_fold(patient, folds) not in train_folds:
            continue
        mapped = []
        for s in doc.spans:
            label = coarse(to_canonical(s.label, "physionet"))
            if label in TRAINED_LABELS:
                mapped.append(Span(s.start, s.end, label))
            else:
                left_to_rules += 1
        doc.spans = mapped
        spans += len(mapped)
        kept.append(doc)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_documents(out, kept)
    return {"notes": len(kept), "spans": spans, "spans_left_to_the_rules": left_to_rules}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("A", "B", "all"), default="A")
    parser.add_argument("--train-folds", default=None,
                        help="keep only these patient folds (bench_deid.py's --folds), e.g. 0,1,2 so the sealed "
                             "folds 3,4 stay unseen by the model as well as by the rule writers")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("-o", "--out", required=True, help="model folder")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--epochs", type=float, default=0, help="override train.epochs")
    parser.add_argument("--layers", type=int, default=0,
                        help="override model.num_layers: keep the first N layers (a faster, shallower model)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any other recipe override, e.g. --set train.lr=3e-4 (repeatable)")
    args = parser.parse_args(argv)
    data = Path(args.data)
    if not (data / "physionet-deid").is_dir():
        print(json.dumps({"skipped": f"{data / 'physionet-deid'} not found"}))
        return 0
    from domainfm.config import load_config, parse_overrides
    from domainfm.finetune import finetune
    from domainfm.finetune.config import TaskConfig

    train_folds = [int(f) for f in args.train_folds.split(",")] if args.train_folds else None
    name = args.split + (f"-folds{''.join(map(str, train_folds))}" if train_folds else "")
    train = ROOT / "runs" / "data" / f"deid-ner-{name}.jsonl"
    counts = write_half(data, args.split, train, args.folds, train_folds)
    overrides = {"data.train": str(train)}
    if args.epochs:
        overrides["train.epochs"] = args.epochs
    if args.layers:
        overrides["model.num_layers"] = args.layers
    overrides.update(parse_overrides([f"--{item}" for item in args.set]))
    cfg = load_config(TaskConfig, ROOT / "tasks" / "deid-physionet-ner.yaml", overrides)
    result = finetune(cfg, args.out, overwrite=True)
    print(json.dumps({"split": args.split, "train_folds": train_folds, **counts, "model": args.out, "eval": result.metrics.get("eval")},
                     indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
