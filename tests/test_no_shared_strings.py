"""No identifier of the PhysioNet development notes in the project's own files.

The de-id rules are written and tested with made-up strings; the notes' gold PHI (realistic
surrogates, still the dataset's text, under its GPL licence) must not reach docstrings, comments,
tests or docs, where they would ship and where a rule could be tuned to them. Earlier rounds let
some in ("DR.<surname>" examples, whole sentences as test cases), found by scanning.

The check: every word of four letters or more in a gold name or place that is rare in running
English (wordfreq Zipf below 3) and that no open list the project uses holds (a surname of
Faker's locales such as "Souza", a town of the gazetteer, a WordNet word: those are there on their
own account) must occur in no tracked source, test or doc file, as a whole word in any case. The generated corpora and
committed reports are left out: the seeded generator writes them from Faker's lists.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ("domainfm", "tests", "tasks", "README.md", "CHANGELOG.md", "Makefile", ".ci")
SKIPPED_TYPES = frozenset({"Date", "DateYear", "Age", "Phone", "Other"})  # numbers: shapes, not words
RARE_ZIPF = 3.0


def _rare_gold_words(phrase_file: Path) -> set[str]:
    from wordfreq import zipf_frequency

    from domainfm.deid.recognizers import vocab

    from domainfm.deid import DeidConfig, PhiDetector

    PhiDetector(DeidConfig(profile="clinical"))  # fills the lexicon from spaCy's tables
    listed = vocab.all_names() | vocab._every_locale_name()
    words = set()
    for line in phrase_file.read_text(encoding="utf-8").splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) < 6 or parts[4] in SKIPPED_TYPES:
            continue
        for word in re.findall(r"[A-Za-z]{4,}", parts[5]):
            low = word.lower()
            if zipf_frequency(low, "en") < RARE_ZIPF and low not in listed and not vocab.is_place(low) \
                    and not vocab.in_lexicon(low):
                words.add(low)
    return words


def _tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "--", *CHECKED], cwd=ROOT, capture_output=True, text=True, check=True)
    return [ROOT / name for name in out.stdout.splitlines() if name]


def test_no_rare_gold_word_of_the_physionet_notes_is_in_the_project(shared_data):
    phrase_file = shared_data / "physionet-deid" / "id-phi.phrase"
    words = _rare_gold_words(phrase_file)
    assert words, "no gold words read: the check would pass on anything"
    pattern = re.compile(r"\b(?:" + "|".join(map(re.escape, sorted(words))) + r")\b", re.IGNORECASE)
    found = []
    for path in _tracked_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if pattern.search(line):
                # the place, never the word: the failure message must not copy the notes either
                found.append(f"{path.relative_to(ROOT)}:{number}")
    assert not found, f"a gold name or place of the PhysioNet notes is written in: {found}"
