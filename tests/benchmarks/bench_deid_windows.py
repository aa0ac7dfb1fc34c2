"""Benchmark windowed de-identification of one long document against the same text as
ordinary notes.

Prints one JSON object: seconds and characters per second of ``domainfm deid`` (detection,
name propagation and the operator, ``tag``) on one synthetic note over spaCy's 1,000,000
character limit, detected in overlapping windows, and — the baseline, in the same run — on the
same paragraphs cut into notes of about ``--note-chars`` characters that need no windows. The
two are alternated ``--repeats`` times so load on a shared machine hits both alike; the ratio
is baseline seconds / windowed seconds (1.0: windows cost nothing extra). Synthetic text only.

    python tests/benchmarks/bench_deid_windows.py [--chars 1200000] [--note-chars 5000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

WORDS = ("the patient was seen today and reports mild pain in the left knee after walking with "
         "a cane stable overnight no fever").split()
NAMES = ["Okonkwo", "Vandersloot", "Marguerite", "Abernathy"]


def paragraphs(n_chars: int, seed: int = 13) -> list[str]:
    rng = random.Random(seed)
    out, size = [], 0
    while size < n_chars:
        words = [rng.choice(WORDS) for _ in range(60)]
        if rng.random() < 0.05:
            words[rng.randrange(60)] = f"Dr. {rng.choice(NAMES)}"
        if rng.random() < 0.03:
            words.append(f"on {rng.randint(1, 12)}/{rng.randint(1, 28)}/2021")
        text = " ".join(words) + "."
        out.append(text)
        size += len(text) + 2
    return out


def run(src: Path, out: Path) -> float:
    from domainfm.deid.config import DeidConfig
    from domainfm.deid.runner import deidentify_file

    start = time.perf_counter()
    result = deidentify_file(src, out, DeidConfig(operator="tag"), seed=1)
    assert result.counts.reconciles and result.counts.rejected == 0
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=int, default=1_200_000)
    parser.add_argument("--note-chars", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    paras = paragraphs(args.chars)
    text = "\n\n".join(paras)
    notes, current = [], []
    for p in paras:
        current.append(p)
        if sum(len(x) + 2 for x in current) >= args.note_chars:
            notes.append("\n\n".join(current))
            current = []
    if current:
        notes.append("\n\n".join(current))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        long_file, notes_file = tmp / "long.jsonl", tmp / "notes.jsonl"
        long_file.write_text(json.dumps({"id": "long", "text": text}) + "\n")
        notes_file.write_text("".join(json.dumps({"id": f"n{i}", "text": t}) + "\n" for i, t in enumerate(notes)))
        run(notes_file, tmp / "warm.jsonl")  # load spaCy and presidio once, outside the timings
        windowed, baseline = [], []
        for _ in range(args.repeats):
            windowed.append(run(long_file, tmp / "long.out.jsonl"))
            baseline.append(run(notes_file, tmp / "notes.out.jsonl"))
    w, b = min(windowed), min(baseline)
    print(json.dumps({
        "document_chars": len(text),
        "windowed": {"seconds": round(w, 2), "chars_per_second": round(len(text) / w)},
        "baseline_notes": {"notes": len(notes), "seconds": round(b, 2),
                           "chars_per_second": round(sum(map(len, notes)) / b)},
        "speed_ratio_vs_notes": round(b / w, 3),
        "repeats": args.repeats,
    }, indent=2))


if __name__ == "__main__":
    main()
