"""Nursing-note shapes that name a staff member or a relative, each read in a mixed-case note and
in notes written all in capitals or all in lower case: who is asked for, paged out to, rounded
with or awaited a call from; who is to call; whose number it is; a role's abbreviation before a
name and what the person does; a name in brackets after a team. Ordinary text in the same shapes
stays unmasked. Every name here is made up."""

from __future__ import annotations

import pytest

from conftest import NOTE_CASES, in_case

NAMES = ("Quorvath", "Zelbrook Quorvath")


def _note(sentence: str, case: str) -> tuple[str, int]:
    """The sentence inside a short nursing note written in ``case``, and where the sentence starts."""
    before = "Afebrile, vitals stable. "
    text = f"{before}{sentence}. Plan unchanged for now."
    return in_case(text, case), len(before)


def _masked(detector, text: str, start: int, end: int) -> bool:
    return any(d.start <= start and end <= d.end for d in detector.detect_text(text))


# each shape with {} where the name stands
SHAPES = [
    "Pt asking for {}",
    "Paged out to {}",
    "Page out to {}",
    "Rounds with {}",
    "Rounded with {}",
    "Rounded w/ {}",
    "Awaiting call back from {}",
    "Awaiting callback from {}",
    "{} to call back",
    "{} to call family",
    "{}'s number is 555-0134",
    "Left msg on {}'s cell",
    "SW {} following",
    "CM {} following",
    "Team ({}) aware",
    "MICU team ({}) aware",
]


@pytest.mark.parametrize("case", NOTE_CASES)
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", SHAPES)
def test_the_name_in_each_shape_is_masked_in_every_case(clinical_detector, shape, name, case):
    text, at = _note(shape.format(name), case)
    start = at + shape.index("{}")
    assert _masked(clinical_detector, text, start, start + len(name)), (text, clinical_detector.detect_text(text))


# shapes an earlier rule already read (a relation word, a title, a verb of being told): kept as they are
@pytest.mark.parametrize("case", NOTE_CASES)
@pytest.mark.parametrize("shape", ["Pt asking for her son {}", "Paged out to Dr {}", "SW {} aware"])
def test_shapes_read_before_still_lead_to_the_name(clinical_detector, shape, case):
    text, at = _note(shape.format("Zelbrook Quorvath"), case)
    start = at + shape.index("{}")
    assert _masked(clinical_detector, text, start, start + len("Zelbrook Quorvath")), text


# what else the same cues point at: a thing, a drug, a service, a unit, a role, a relative
CLEAN = [
    "Pt asking for water",
    "Pt asking for pain meds",
    "Pt asking for her daughter",
    "Pt asking for Tylenol",
    "Pt asking for Miralax",
    "Pt asking for assistance",
    "Paged out to MD",
    "Paged out to Cardiology",
    "Page out to covering",
    "Rounds with team",
    "Rounded with Attending",
    "Rounds with MICU team",
    "Awaiting call back from pharmacy",
    "Awaiting callback from Radiology",
    "Awaiting call back from MD",
    "MD to call back",
    "Pharmacy to call back",
    "Wife to call back",
    "Unable to call",
    "family to call",
    "Pt is to call back",
    "Instructed to call",
    "pt's number",
    "PCP's number",
    "NOK's number is 555-0134",
    "Agency's phone",
    "SW following",
    "SW aware",
    "SW Consult following",
    "CM to follow",
    "2 cm Tegaderm to site",
    "PT aware",
    "OT following",
    "team aware",
    "Team (ICU) aware",
    "Team (Gold) aware",
    "Team (Onc) aware",
    "Team (Hospitalist) aware",
    "Service (Cards) aware",
]


@pytest.mark.parametrize("case", NOTE_CASES)
@pytest.mark.parametrize("sentence", CLEAN)
def test_ordinary_text_in_the_same_shapes_stays_unmasked(clinical_detector, sentence, case):
    text, at = _note(sentence, case)
    found = [text[d.start:d.end] for d in clinical_detector.detect_text(text)
             if d.start < at + len(sentence) and at < d.end and d.label != "PHONE"]
    assert found == [], (text, found)
