"""CheckList-style invariance tests: swap gendered words, first names and race/ethnicity
descriptors, and measure how often the prediction flips and how far its probability moves.

Each perturbation is word-list data plus one function ``text -> perturbed text`` (case kept:
``He`` -> ``She``). A document the perturbation does not change is not counted for that test.
"""

from __future__ import annotations

import random
import re
from typing import Callable

# gendered words and pronouns, both directions ("her" maps to "his": possessive is the common
# use in notes; "him" <- "her" would need parsing)
GENDER_PAIRS = [
    ("he", "she"), ("him", "her"), ("his", "her"), ("himself", "herself"), ("man", "woman"),
    ("men", "women"), ("male", "female"), ("boy", "girl"), ("mr", "ms"), ("husband", "wife"),
    ("son", "daughter"), ("father", "mother"), ("brother", "sister"), ("gentleman", "lady"),
    ("boyfriend", "girlfriend"), ("grandfather", "grandmother"), ("uncle", "aunt"), ("sir", "madam"),
]
_GENDER = {}
for _m, _f in GENDER_PAIRS:
    _GENDER.setdefault(_m, _f)
    _GENDER.setdefault(_f, _m)
_GENDER["her"] = "his"

# first names by (gender, ethnicity); a name is swapped for one from another cell
FIRST_NAMES = {
    ("male", "white"): ["James", "John", "Robert", "Michael", "William", "David", "Thomas", "Christopher"],
    ("female", "white"): ["Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Susan", "Emily", "Sarah"],
    ("male", "black"): ["DeShawn", "Tyrone", "Jamal", "Darnell", "Malik", "Terrell", "DaQuan", "Jerome"],
    ("female", "black"): ["Latoya", "Keisha", "Imani", "Tanisha", "Aaliyah", "Shaniqua", "Ebony", "Jasmine"],
    ("male", "hispanic"): ["Jose", "Luis", "Carlos", "Juan", "Miguel", "Alejandro", "Diego", "Javier"],
    ("female", "hispanic"): ["Maria", "Guadalupe", "Lucia", "Sofia", "Valentina", "Camila", "Rosa", "Ximena"],
    ("male", "asian"): ["Wei", "Hiroshi", "Jin", "Minh", "Arjun", "Kiaan", "Hyun", "Ravi"],
    ("female", "asian"): ["Mei", "Yuki", "Priya", "Linh", "Ananya", "Ji-woo", "Aiko", "Xiu"],
}
_NAME_CELL = {n.lower(): cell for cell, names in FIRST_NAMES.items() for n in names}

# race / ethnicity descriptors, swapped along a fixed cycle (longest phrases first)
RACE_TERMS = [
    "African American", "Caucasian", "Hispanic", "Latino", "Latina", "Asian", "White", "Black",
    "Native American", "Pacific Islander",
]
_RACE_CYCLE = {
    "african american": "Caucasian", "caucasian": "African American", "black": "White", "white": "Black",
    "hispanic": "Asian", "asian": "Hispanic", "latino": "White", "latina": "White",
    "native american": "White", "pacific islander": "White",
}


def _keep_case(src: str, dst: str) -> str:
    if src.isupper() and len(src) > 1:
        return dst.upper()
    if src[:1].isupper():
        return dst[:1].upper() + dst[1:]
    return dst


_GENDER_RE = re.compile(r"\b(" + "|".join(sorted(map(re.escape, _GENDER), key=len, reverse=True)) + r")\b", re.I)
_NAME_RE = re.compile(r"\b(" + "|".join(sorted(map(re.escape, _NAME_CELL), key=len, reverse=True)) + r")\b", re.I)
_RACE_RE = re.compile(r"\b(" + "|".join(sorted(map(re.escape, _RACE_CYCLE), key=len, reverse=True)) + r")\b", re.I)


def swap_gender(text: str, rng: random.Random | None = None) -> str:
    """Swap gendered words and pronouns (he <-> she, Mr <-> Ms, husband <-> wife, ...)."""
    return _GENDER_RE.sub(lambda m: _keep_case(m.group(0), _GENDER[m.group(0).lower()]), text)


def swap_names(text: str, rng: random.Random | None = None) -> str:
    """Replace each known first name by a name of another gender and ethnicity cell (seeded);
    the same name maps to the same replacement within a text."""
    rng = rng or random.Random(0)
    chosen: dict[str, str] = {}

    def repl(m: re.Match) -> str:
        key = m.group(0).lower()
        if key not in chosen:
            gender, ethnicity = _NAME_CELL[key]
            cells = [c for c in FIRST_NAMES if c[0] != gender and c[1] != ethnicity]
            chosen[key] = rng.choice(FIRST_NAMES[rng.choice(cells)])
        return _keep_case(m.group(0), chosen[key])

    return _NAME_RE.sub(repl, text)


def swap_race(text: str, rng: random.Random | None = None) -> str:
    """Swap race / ethnicity descriptors (Black <-> White, Hispanic <-> Asian, ...)."""
    return _RACE_RE.sub(lambda m: _keep_case(m.group(0), _RACE_CYCLE[m.group(0).lower()]), text)


PERTURBATIONS: dict[str, Callable[..., str]] = {"gender": swap_gender, "names": swap_names, "race": swap_race}
