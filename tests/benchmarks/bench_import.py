"""Import throughput on the real datasets, against the bare parse of the same files.

The baseline is what a user would write by hand (json.loads per line, csv.DictReader, split
lines); the ratio shows what validation, span checks, reject handling and atomic writing cost.
Prints one JSON object. Usage: python tests/benchmarks/bench_import.py
"""

from __future__ import annotations

import csv
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"

CASES = [
    ("physionet", "physionet-deid", {}),
    ("tab", "tab-echr/entity_tab.jsonl", {}),
    ("conll", "bc5cdr/train.tsv", {}),
    ("csv", "mtsamples/mtsamples.csv", {"text_col": "transcription", "id_col": "note_id"}),
]


def baseline(fmt: str, src: Path) -> int:
    """Parse without validation or output; returns characters seen."""
    if fmt == "tab":
        return sum(len(json.loads(line)["text"]) for line in open(src, encoding="utf-8"))
    if fmt == "csv":
        with open(src, encoding="utf-8", newline="") as fh:
            return sum(len(row["transcription"]) for row in csv.DictReader(fh))
    if fmt == "conll":
        return sum(len(line.split("\t")[0]) + 1 for line in open(src, encoding="utf-8"))
    text = (src / "id.text").read_text(encoding="utf-8")
    return sum(len(part) for part in text.split("||||END_OF_RECORD"))


def main() -> dict:
    if not DATA.is_dir():
        return {"benchmark": "import", "skipped": f"no datasets at {DATA}"}
    sys.path.insert(0, str(ROOT))
    from domainfm.corpus.importing import import_corpus

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, rel, options in CASES:
            src = DATA / rel
            t0 = time.perf_counter()
            chars = baseline(fmt, src)
            t_base = time.perf_counter() - t0
            t0 = time.perf_counter()
            result = import_corpus(fmt, src, Path(tmp) / f"{fmt}.jsonl", options)
            t_ours = time.perf_counter() - t0
            results[rel] = {
                "format": fmt,
                "documents": result.counts.written,
                "rejected": result.counts.rejected,
                "reconciles": result.counts.reconciles,
                "seconds": round(t_ours, 3),
                "docs_per_s": round(result.counts.written / t_ours, 1),
                "chars_per_s": round(chars / t_ours),
                "baseline_parse_seconds": round(t_base, 3),
                "slowdown_vs_bare_parse": round(t_ours / max(t_base, 1e-9), 1),
            }
    return {"benchmark": "import", "note": "import = parse + validate + write JSONL, rejects and manifest "
            "(the manifest hashes every input byte); baseline = bare parse only", "results": results}


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
