"""Regenerate the synthetic sample corpora in this folder: python corpora/generate.py [--seed 13]."""
import argparse
from pathlib import Path

from domainfm.synth import write_sample_corpora

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="output folder")
parser.add_argument("--seed", type=int, default=13, help="random seed (same seed, same corpora)")
args = parser.parse_args()
for path in write_sample_corpora(args.out, seed=args.seed):
    print(f"wrote {path}")
