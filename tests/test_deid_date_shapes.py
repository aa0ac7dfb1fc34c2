"""Date and phone shapes the clinical rules once missed or took for something else: a year glued to
a word by a hyphen ("colonoscopy-2015"), a decade with "mid-", "early", "late-" ("mid-1990s"), a
full date glued by a colon to what it heads ("3/4/19:3VD"), and a number dialled from North America
with its "011" prefix; beside them the values that look alike and are no dates: strength grades
("strength 5/5-4/5"), fractions with a unit after their range ("from 1/2 to 3/4 strength"), codes
("ABC-2015-07") and vital signs by the decade ("HR 90s"). Every value here is made up (Ofcom's
drama range 020 7946 0xxx)."""

from __future__ import annotations

import re

import pytest
from conftest import detected as _spans
from conftest import detected_dates as _dates

from domainfm.corpus import Document
from domainfm.deid import apply_operator
from domainfm.deid.surrogates import SurrogateGenerator

SECRET = b"test-secret-0123456789-abcdefghij"


# (text, the DATE spans it must give, in order)
DATES_FOUND = [
    # a year glued to a word by a hyphen: the year alone is the date
    ("Pt had colonoscopy-2015, normal.", ["2015"]),
    ("Hx: CABG-2009 with LIMA.", ["2009"]),
    ("s/p MI-1998, stable.", ["1998"]),
    ("Covid-2020, recovered at home.", ["2020"]),
    # a decade with "mid-", "early", "late-" before it, or two decades as a range
    ("Symptoms since mid-1990s.", ["1990s"]),
    ("Smoked since the early 1980s.", ["1980s"]),
    ("Moved here in the late-2000s.", ["2000s"]),
    ("Worked nights in the 1990s-2000s.", ["1990s", "2000s"]),
    # a full date glued by a colon to the finding it heads (a time after it stays a time)
    ("Cath 3/4/19:3VD, EF 40%.", ["3/4/19"]),
    ("Cath 3/4/2019:3VD", ["3/4/2019"]),
    # "m/5" where the line names no strength and the values make a date
    ("seen on 5/5 by PT", ["5/5"]),
    ("PT on 4/5-5/5 daily", ["4/5", "5/5"]),            # a rising range of days
    ("CXR 5/5, 4/5 showed effusion", ["5/5", "4/5"]),   # a list, latest first
    ("s/p motor vehicle accident 4/5", ["4/5"]),        # "motor" here heads no grades
    ("Strength 5/5. Return 4/5.", ["4/5"]),             # the grades ended with their sentence
    ("power outage 4/5 at home", ["4/5"]),
    # a month and a number after a hyphen stays one date, whichever way it is read
    ("seen Oct-31 in clinic", ["Oct-31"]),
    ("Oct-31 CT chest", ["Oct-31"]),
]


@pytest.mark.parametrize("text, dates", DATES_FOUND, ids=[f"date-{i}" for i in range(len(DATES_FOUND))])
def test_a_date_is_found_with_its_own_span(clinical_detector, text, dates):
    assert _dates(clinical_detector, text) == dates


# looks like a date and is not one: no DATE, whatever else is found
NOT_DATES = [
    # codes: a year with more code after it, or after a prefix in capitals
    "Order ABC-2015-07 placed.",
    "Part CD-2000x used.",
    "Pump XR-2000, placed on the left.",
    "Lot ABC-2015.",
    "HbA1c-1990 on the old form",
    "heparin x-1990",
    # a decade written in two digits: a vital sign as often as a time
    "Started in the mid 90s.",
    "SBP in the 80s overnight.",
    "HR 90s this am.",
    "sats in the low 90s.",
    "sats mid 90s on 2L",
    # strength grades, in a range or a list on a line that names strength
    "strength 5/5-4/5 in LUE.",
    "strength 5/5 - 4/5 LUE",
    "5/5-4/5 in LUE",
    "Motor: RUE 5/5, LUE 4/5",
    "power 4/5 in L hand",
    "grip 3/5 R",
    "Strength 5/5 throughout except L hip flexion 4/5",
    "Motor strength 4+/5 RLE, 3/5 LLE",
    # fractions in a range whose unit follows it
    "from 1/2 to 3/4 strength",
    "1/2 to 3/4 NS",
    "1/2-3/4 NS",
    # ordinary values with slashes, dots, hyphens and colons
    "PEEP 5/5 overnight",
    "pain 4/10 today",
    "pain 4/10-6/10",
    "K 4.5 Mg 2.0",
    "BP 120/80 HR 88",
    "temp 98.6",
    "Type-2 DM",
    "COVID-19 negative",
    "IL-2 given",
    "heparin x-2000 units",
    "I:E 1/2:1",
]


@pytest.mark.parametrize("text", NOT_DATES, ids=[f"not-date-{i}" for i in range(len(NOT_DATES))])
def test_values_that_look_like_dates_stay_out(clinical_detector, text):
    assert _dates(clinical_detector, text) == []


def test_a_code_word_before_a_year_keeps_its_own_label(clinical_detector):
    assert _spans(clinical_detector, "ID-2015 on file.") == [("2015", "ID")]


def _surrogate(clinical_detector, text):
    doc = Document("note-1", text, {"patient_id": "p1"})
    return apply_operator(doc, clinical_detector.detect_text(text), "surrogate", SurrogateGenerator(SECRET)).text


def test_a_glued_year_and_a_decade_shift_and_keep_the_words_around_them(clinical_detector):
    out = _surrogate(clinical_detector, "Pt had colonoscopy-2015, normal; symptoms since mid-1990s.")
    match = re.fullmatch(r"Pt had colonoscopy-(\d{4}), normal; symptoms since mid-(\d{4})s\.", out)
    assert match, out
    assert match.group(1) != "2015" and match.group(2) != "1990"


# (text, the number as it must be found, whole, and its label)
PHONES_FOUND = [
    ("call 011 44 20 7946 0018", "011 44 20 7946 0018", "PHONE"),
    ("phone 011-33-1-55-01-01-42", "011-33-1-55-01-01-42", "PHONE"),
    ("011-33-1-55-01-01-42 (son in Lyon)", "011-33-1-55-01-01-42", "PHONE"),
    ("Daughter abroad, reached on 01144 20 7946 0018 last night.", "01144 20 7946 0018", "PHONE"),
    ("Fax 011 44 20 7946 0018.", "011 44 20 7946 0018", "FAX"),
    ("Phone: 011442079460018", "011442079460018", "PHONE"),
    ("Fax: 011442079460018", "011442079460018", "FAX"),
    # a British number of an "011x" area is a national number, found whole as before
    ("tel 0117 496 0000", "0117 496 0000", "PHONE"),
]


@pytest.mark.parametrize("text, number, label", PHONES_FOUND, ids=[f"phone-{i}" for i in range(len(PHONES_FOUND))])
def test_a_number_dialled_with_011_is_found_whole_with_its_label(clinical_detector, text, number, label):
    assert _spans(clinical_detector, text) == [(number, label)]


NOT_PHONES = [
    "Meds given at 0115 0130 0145 and 0200.",   # 24-hour times after "011"
    "Lot 011-2345-67 used",
    "Order 011442079460018 placed",            # run together, no phone word: a record number
]


@pytest.mark.parametrize("text", NOT_PHONES, ids=[f"not-phone-{i}" for i in range(len(NOT_PHONES))])
def test_numbers_after_011_that_are_not_phones_stay_out(clinical_detector, text):
    assert _spans(clinical_detector, text, ("PHONE", "FAX")) == []


def test_a_number_dialled_with_011_keeps_its_prefix_and_code_and_takes_the_fake_of_the_plus_form():
    gen = SurrogateGenerator(SECRET)
    forms = [("011 44 20 7946 0018", r"011 44 (\d\d) (\d{4}) (\d{4})"),
             ("01144 20 7946 0018", r"01144 (\d\d) (\d{4}) (\d{4})"),
             ("011442079460018", r"01144(\d{10})"),
             ("+44 20 7946 0018", r"\+44 (\d\d) (\d{4}) (\d{4})")]
    fakes = set()
    for text, shape in forms:
        out = gen.surrogate(text, "PHONE", "patient:p1")
        match = re.fullmatch(shape, out)
        assert match, (text, out)
        fakes.add("".join(match.groups()))
    assert len(fakes) == 1 and fakes != {"2079460018"}, fakes


def test_a_british_011x_number_stays_a_national_number():
    out = SurrogateGenerator(SECRET).surrogate("0117 496 0000", "PHONE", "patient:p1")
    assert re.fullmatch(r"0\d{3} \d{3} \d{4}", out) and not out.startswith("0117"), out
