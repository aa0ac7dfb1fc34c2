"""Benchmark PHI detection on notes built to be slow: long runs of one short unit ("=====",
",,,,,", "Ab-Ab-Ab-", "1990s-1990s-") between two ordinary sentences.

A pattern whose cost grows with the square (or worse) of a run's length lets one pasted table
or one hostile note stall a whole de-identification job. For each shape and recognizer set
(clinical, legal, generic), prints the seconds of ``PhiDetector.detect_text`` at ``--short`` and
``--long`` characters and their growth (linear cost grows by long/short), whether the made-up
name in the note was still found, and, as the baseline in the same run, vanilla presidio's
``AnalyzerEngine`` (default recognizers, the same spaCy pipeline) on the same texts. Made-up text only.

    python tests/benchmarks/bench_deid_adversarial.py [--short 2000] [--long 8000] [--shapes '=|Ab-'] [--out F.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

SHAPES = ("=", "*", "_", ",,", ".:", "(&", "Ab-", "a-", "-1", "1990s-", "a.", "dot ", "A. ")
BEFORE = "Seen today by Dr. Zorblax Quintavius.\n"
AFTER = "\nFollow up in clinic."
NAME = "Quintavius"


def note(unit: str, length: int) -> str:
    return BEFORE + (unit * (length // len(unit) + 1))[:length] + AFTER


def timed(fn, text: str) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn(text)
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", type=int, default=2000)
    parser.add_argument("--long", type=int, default=8000)
    parser.add_argument("--shapes", default="|".join(SHAPES), help="|-separated units")
    parser.add_argument("--no-vanilla", action="store_true", help="skip the vanilla presidio baseline")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    from bench_deid import _vanilla_engine  # the benchmark folder is sys.path[0] when run as a script

    from domainfm.deid import DeidConfig, PhiDetector
    from domainfm.deid.engine import quiet_presidio_logs

    quiet_presidio_logs()
    shapes = args.shapes.split("|")
    name_at = len(BEFORE) - len(NAME) - 2
    rows = []
    engines = {}
    for engine, config in (("clinical", DeidConfig(profile="clinical")), ("legal", DeidConfig(profile="legal")),
                           ("generic", DeidConfig(profile="clinical", recognizers="generic"))):
        detector = PhiDetector(config)
        detector.detect_text("warm up")
        engines[engine] = detector.detect_text
    if not args.no_vanilla:
        from domainfm.models import resolve_spacy_model

        vanilla = _vanilla_engine(resolve_spacy_model("default"))
        vanilla.analyze("warm up", language="en")
        engines["vanilla presidio"] = lambda text: [(r.start, r.end) for r in vanilla.analyze(text, language="en")]
    for unit in shapes:
        for engine, detect in engines.items():
            seconds, found = [], True
            for length in (args.short, args.long):
                dt, spans = timed(detect, note(unit, length))
                seconds.append(round(dt, 3))
                if engine != "vanilla presidio":
                    found = found and any(d.start <= name_at < d.end for d in spans)
            rows.append({"shape": unit, "engine": engine, "seconds": dict(zip(("short", "long"), seconds)),
                         "growth": round(seconds[1] / max(seconds[0], 1e-3), 1),
                         **({"name_found": found} if engine != "vanilla presidio" else {})})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    result = {"benchmark": "deid_adversarial", "chars": {"short": args.short, "long": args.long},
              "linear_growth": round(args.long / args.short, 1), "rows": rows,
              "worst_growth": {e: max(r["growth"] for r in rows if r["engine"] == e) for e in engines},
              "all_names_found": all(r.get("name_found", True) for r in rows)}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
