"""Phone and fax numbers in the shapes the clinical rules once missed or cut: dialled from abroad
("0044 20 7946 0018", "Fax +44 ..."), ten digits without a break after a phone word, and an area
code in brackets; beside them the numbers that look alike and are not phones (dates, times, lab
values, doses, ranges, record numbers, ZIP+4, blood pressures). Every number here is made up
(555-01xx, and Ofcom's drama range 020 7946 0xxx)."""

from __future__ import annotations

import re

import pytest

from domainfm.corpus import Document
from domainfm.deid import DeidConfig, PhiDetector, apply_operator
from domainfm.deid.detection import Detection, merge_detections
from domainfm.deid.surrogates import SurrogateGenerator

SECRET = b"test-secret-0123456789-abcdefghij"


@pytest.fixture(scope="module")
def clinical():
    return PhiDetector(DeidConfig(profile="clinical"))


def _spans(detector, text):
    return [(text[d.start:d.end], d.label) for d in detector.detect_text(text)]


# (text, the number as it must be found, whole, and its label)
FOUND = [
    # the "00" international prefix, after a phone word, a fax word, or alone
    ("tel 0044 20 7946 0018 today", "0044 20 7946 0018", "PHONE"),
    ("Fax 0044 20 7946 0018.", "0044 20 7946 0018", "FAX"),
    ("Tel: 0044 (0)20 7946 0018", "0044 (0)20 7946 0018", "PHONE"),
    ("Daughter lives abroad, reached on 00 44 20 7946 0018 last night.", "00 44 20 7946 0018", "PHONE"),
    ("mobile 00353 1 555 0142", "00353 1 555 0142", "PHONE"),
    ("Son in Lyon: 0033 1 55 01 01 42", "0033 1 55 01 01 42", "PHONE"),
    ("Son: 001 617 555 0143", "001 617 555 0143", "PHONE"),
    # "+" and the country code, after a fax word: a fax, not a phone
    ("Fax: +44 20 7946 0018", "+44 20 7946 0018", "FAX"),
    ("fax +44 (0)20 7946 0019 for results", "+44 (0)20 7946 0019", "FAX"),
    ("Wife +44 20 7946 0018 (home)", "+44 20 7946 0018", "PHONE"),
    # ten digits without a break after a phone word
    ("Phone: 6175550143", "6175550143", "PHONE"),
    ("cell 6175550143.", "6175550143", "PHONE"),
    ("Fax: 6175550143", "6175550143", "FAX"),
    # the area code's bracket belongs to the number
    ("(555) 010-0199 is her number", "(555) 010-0199", "PHONE"),
    ("phone (555) 010-0199", "(555) 010-0199", "PHONE"),
    ("Fax: (555) 010-0198 to the clinic", "(555) 010-0198", "FAX"),
    ("tel +1 (555) 010-0199", "+1 (555) 010-0199", "PHONE"),
    # written without a break: the North American "1" or the "00" prefix before the number, and
    # ten digits after a word of calling or paging (all were IDs: a fake ID where a phone was)
    ("Phone: 16175550143", "16175550143", "PHONE"),
    ("Cell 16175550143.", "16175550143", "PHONE"),
    ("Phone: 00442079460018", "00442079460018", "PHONE"),
    ("wife's cell: 0033123456789", "0033123456789", "PHONE"),
    ("Fax: 16175550143", "16175550143", "FAX"),
    ("Fax 00442079460018 for results", "00442079460018", "FAX"),
    ("call 6175550143", "6175550143", "PHONE"),
    ("pager 6175550143", "6175550143", "PHONE"),
    ("Called her back on 16175550143.", "16175550143", "PHONE"),
    ("6175550143 is her number", "6175550143", "PHONE"),
]


@pytest.mark.parametrize("text, number, label", FOUND, ids=[f"{c[2]}-{i}" for i, c in enumerate(FOUND)])
def test_a_phone_number_is_found_whole_with_its_label(clinical, text, number, label):
    assert _spans(clinical, text) == [(number, label)]


# looks like a phone number and is not one: no PHONE or FAX, whatever else is found
NOT_PHONES = [
    "Dates 2019-03-04 and 2019.03.04 reviewed.",
    "tel 2019-03-04",
    "Meds given at 0015 0030 0045 and 0100.",
    "Turned at 0030 0130 0230 overnight.",
    "Turned q2h at 0030 0230 0430 0630.",
    "BP 120/80 HR 88 after phone call with son.",
    "Goal SBP 120-140, phone 120-140 per team.",
    "Hgb 12.3 Plt 245 WBC 7.8 Na 140 K 4.0 Cl 100 HCO3 24",
    "IVF 1000 500 250 125 ml/hr, heparin 1000 units then 500 units/hr",
    "I/O +1200 500 300 today.",
    "glucose 00 100 200 300",
    "Boston, MA 02115-1234",
    "Tel 10:30 appointment",
    "phone 0000000000",
    "+2 edema, 1+ pulses",
    "call at 1400",
    "Lab called 1200 5 mg",
    "Plt 245000 called to RN",
    "Called 20190304 results",
    "Order 16175550143 was the number",
    "phone 00000000000",
    "text 0012345",
]


@pytest.mark.parametrize("text", NOT_PHONES, ids=[f"not-phone-{i}" for i in range(len(NOT_PHONES))])
def test_numbers_that_are_not_phones_stay_out(clinical, text):
    assert [s for s in _spans(clinical, text) if s[1] in ("PHONE", "FAX")] == []


@pytest.mark.parametrize("text, number", [
    ("MRN: 6175550143", "6175550143"),
    ("MRN 0044 2079 4600 18", "0044 2079 4600 18"),
    ("MRN: 16175550143", "16175550143"),
    ("MRN 00442079460018", "00442079460018"),
])
def test_a_number_after_a_record_label_stays_a_record_number(clinical, text, number):
    assert _spans(clinical, text) == [(number, "MRN")]


def test_a_number_after_an_id_word_stays_an_id_after_a_contact_word(clinical):
    assert _spans(clinical, "contact ID 6175550143") == [("6175550143", "ID")]


@pytest.mark.parametrize("text, number", [
    ("Phone: 16175550143", "16175550143"),
    ("Cell 00442079460018.", "00442079460018"),
    ("call 6175550143", "6175550143"),
])
def test_the_generic_set_finds_a_run_together_number_as_a_phone(text, number):
    # there the model's DATE or the long-number ID took these
    generic = PhiDetector(DeidConfig(profile="clinical", recognizers="generic"))
    assert _spans(generic, text) == [(number, "PHONE")]


def _surrogate(clinical, text):
    doc = Document("ph-3", text, {"patient_id": "ph"})
    return apply_operator(doc, clinical.detect_text(text), "surrogate", SurrogateGenerator(SECRET)).text


def test_eleven_digits_with_a_leading_one_keep_it_and_take_the_fake_of_the_ten(clinical):
    out = _surrogate(clinical, "Phone: 16175550143\nCall back on 617-555-0143.")
    match = re.fullmatch(r"Phone: 1(\d{10})\nCall back on (\d{3})-(\d{3})-(\d{4})\.", out)
    assert match, out
    assert match.group(1) == "".join(match.group(2, 3, 4)) != "6175550143"


def test_a_run_together_number_after_00_keeps_its_country_code_and_the_fake_of_the_spaced_form(clinical):
    out = _surrogate(clinical, "Phone: 00442079460018 or +44 20 7946 0018")
    match = re.fullmatch(r"Phone: 0044(\d{10}) or \+44 (\d\d) (\d{4}) (\d{4})", out)
    assert match, out
    assert match.group(1) == "".join(match.group(2, 3, 4)) != "2079460018"


def test_ten_digits_after_a_phone_word_take_the_fake_of_the_same_number_written_with_hyphens(clinical):
    # "Phone: 6175550143" was an ID: its fake digits had nothing to do with the fake of
    # "617-555-0143" two lines down, so the note named two numbers where it had one
    doc = Document("ph-1", "Phone: 6175550143\nCall back on 617-555-0143.", {"patient_id": "ph"})
    out = apply_operator(doc, clinical.detect_text(doc.text), "surrogate", SurrogateGenerator(SECRET))
    match = re.fullmatch(r"Phone: (\d{10})\nCall back on (\d{3})-(\d{3})-(\d{4})\.", out.text)
    assert match, out.text
    bare, hyphenated = match.group(1), "".join(match.group(2, 3, 4))
    assert bare == hyphenated != "6175550143"


def test_the_area_code_bracket_is_replaced_with_the_number(clinical):
    doc = Document("ph-2", "Son (555) 010-0199.", {"patient_id": "ph"})
    out = apply_operator(doc, clinical.detect_text(doc.text), "tag")
    assert out.text == "Son [PHONE].", out.text


@pytest.mark.parametrize("text, start, end, kept", [
    ("see (555) 010-0199 now", 4, 18, "(555) 010-0199"),       # balanced: the bracket stays
    ("see (555) 010-0199) now", 4, 19, "(555) 010-0199"),      # the stray closer goes
    ("see ( 555) 010-0199 now", 4, 19, "( 555) 010-0199"),
    ("see (Quintavius) now", 4, 16, "Quintavius"),             # a bracket round the whole value goes
    ("see (555 010-0199) now", 4, 18, "555 010-0199"),
])
def test_trimming_keeps_an_opening_bracket_only_when_the_span_closes_it(text, start, end, kept):
    (merged,) = merge_detections(text, [Detection(start, end, "PHONE", 0.7, "test")])
    assert text[merged.start:merged.end] == kept
