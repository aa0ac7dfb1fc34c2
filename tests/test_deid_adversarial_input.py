"""Notes built to be slow: long runs of one short unit must cost time linear in their
length, and must not hide the identifiers around them.

Speed itself is measured by ``tests/benchmarks/bench_deid_adversarial.py``; the test here only
guards against a hang, with a limit many times what a linear pass needs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from domainfm.deid.engine import visible_text

# shapes that once took seconds to hours: punctuation runs (spaCy's suffix search), hyphenated
# capitals (town and company words that could be split many ways), hyphenated tokens (e-mail user
# names), runs of digits and dots (amounts)
SHAPES = ("=", ".:", "__", "Ab-", "-A", "a-", "1990s-", "1.")
NAME = "Quintavius"


def _note(unit: str, length: int) -> str:
    return f"Seen today by Dr. Zorblax {NAME}.\n" + (unit * length)[:length] + "\nFollow up in clinic."


def test_long_punctuation_runs_are_read_with_spaces_at_the_same_offsets():
    run = "=" * 100
    clean, positions = visible_text(f"x {run} y")
    assert positions is None and len(clean) == len(run) + 4
    assert clean[2:102].count(" ") == 3 and set(clean[2:102]) == {"=", " "}
    assert all(len(piece) <= 31 for piece in clean[2:102].split(" "))
    short = "=" * 63
    assert visible_text(short) == (short, None)
    # letters and digits are never touched
    assert visible_text("MRN4471" + ",," * 40)[0].startswith("MRN4471,,")


def test_names_beside_a_long_run_are_found(clinical_detector):
    for unit in SHAPES:
        text = _note(unit, 3000)
        start = text.index(NAME)
        assert any(d.start <= start < d.end for d in clinical_detector.detect_text(text)), unit


_HANG_GUARD = """
import json, sys, time
from domainfm.deid import DeidConfig, PhiDetector
shapes, length = json.loads(sys.argv[1]), int(sys.argv[2])
for profile, recognizers in (("clinical", None), ("legal", None), ("clinical", "generic")):
    detector = PhiDetector(DeidConfig(profile=profile, recognizers=recognizers))
    for unit in shapes:
        t0 = time.perf_counter()
        detector.detect_text((unit * length)[:length])
        print(profile, recognizers, repr(unit), round(time.perf_counter() - t0, 2), flush=True)
    # one word of 120,000 letters after a verb of movement: spelling-variant checks once built
    # every one-letter edit of it (about 45 s per note)
    t0 = time.perf_counter()
    detector.detect_text("Transferred to " + "ab" * 60000 + " today.")
    print(profile, recognizers, "long word", round(time.perf_counter() - t0, 2), flush=True)
"""


def test_long_runs_do_not_hang_detection():
    # 8,000 characters of each shape under three recognizer sets: about 12 s in all on a 2-core
    # machine; before the runs were bounded, "Ab-" alone took over a minute at 1,000 characters
    try:
        done = subprocess.run([sys.executable, "-c", _HANG_GUARD, json.dumps(SHAPES), "8000"],
                              capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"detection of long runs did not finish in 120 s; timings so far:\n"
                    f"{exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(done.stdout.splitlines()) == 3 * (len(SHAPES) + 1)
