"""Cases that rules for new de-id shapes read wrongly at first, each in a
mixed-case note and in notes written all in capitals or all in lower case. Every value here is made up."""

from __future__ import annotations

import pytest
from conftest import NOTE_CASES, in_case
from conftest import detected_dates as _dates


# a function word glued to a number labels a quantity (fluid in and out over a shift); it dates nothing
QUANTITIES = [
    "I/O: IN-2000 OUT-1500 this shift.",
    "Shift totals in-2010, out-1650.",
    "Intake by mouth and IV, in-1990 out-1200.",
]


@pytest.mark.parametrize("case", NOTE_CASES)
@pytest.mark.parametrize("text", QUANTITIES)
def test_a_number_glued_to_a_function_word_is_no_year(clinical_detector, text, case):
    text = in_case(text, case)
    assert _dates(clinical_detector, text) == [], text


# the year glued to the event it dates stays a date
GLUED_YEARS = [
    ("Hx: CABG-2009 with LIMA.", "2009"),
    ("s/p MI-1998, stable.", "1998"),
    ("Pt had colonoscopy-2015, normal.", "2015"),
]


@pytest.mark.parametrize("case", ("mixed", "lower"))
@pytest.mark.parametrize("text, year", GLUED_YEARS)
def test_a_year_glued_to_an_event_stays_a_date(clinical_detector, text, year, case):
    text = in_case(text, case)
    assert year in _dates(clinical_detector, text), text


# a date after a strength label but not given for a limb is still a date; a grade for a limb is not
@pytest.mark.parametrize("case", NOTE_CASES)
def test_a_date_after_a_strength_label_is_still_a_date(clinical_detector, case):
    text = in_case("Motor: intact, f/u 4/5 in clinic.", case)
    assert any("4/5" in d for d in _dates(clinical_detector, text)), text


@pytest.mark.parametrize("case", NOTE_CASES)
@pytest.mark.parametrize("text", ["Motor: RUE 4/5, otherwise intact.", "Strength: left arm 4/5."])
def test_a_grade_given_for_a_limb_is_no_date(clinical_detector, text, case):
    text = in_case(text, case)
    assert _dates(clinical_detector, text) == [], text


# "PD" is peritoneal dialysis as often as a police department: the word before it names no town
@pytest.mark.parametrize("case", NOTE_CASES)
def test_peritoneal_dialysis_is_no_place(clinical_detector, case):
    text = in_case("Tenckhoff PD catheter site clean. Fresenius PD cycler set up.", case)
    assert clinical_detector.detect_text(text) == [], text


@pytest.mark.parametrize("case", ("mixed",))
def test_records_faxed_to_a_department_name_no_place(clinical_detector, case):
    text = in_case("Records faxed to Pharmacy and Admitting.", case)
    assert clinical_detector.detect_text(text) == [], text
