"""Small shapes de-identification once handled by halves: a national number's trunk "0", a value
read with its note's space, a double-barrelled surname in a note of one case, and the initials
before a name found again. Every name and number here is made up."""

from __future__ import annotations

import re

import pytest

from domainfm.corpus import Document
from domainfm.deid import DeidConfig, PhiDetector, apply_operator
from domainfm.deid.detection import Detection
from domainfm.deid.propagate import NamePropagator
from domainfm.deid.surrogates import SurrogateGenerator

SECRET = b"test-secret-0123456789-abcdefghij"


@pytest.fixture()
def gen():
    return SurrogateGenerator(SECRET)


@pytest.fixture(scope="module")
def clinical():
    return PhiDetector(DeidConfig(profile="clinical"))


def _digits(out: str, shape: str) -> str:
    match = re.fullmatch(shape, out)
    assert match, (out, shape)
    return "".join(match.groups())


# -- phone numbers ------------------------------------------------------------------------------

# one UK number in the forms notes write it, and the shape its fake must keep (number digits grouped)
_UK_FORMS = [
    ("020 7946 0018", r"0(\d{2}) (\d{4}) (\d{4})"),
    ("(020) 7946 0018", r"\(0(\d{2})\) (\d{4}) (\d{4})"),
    ("0207 946 0018", r"0(\d{3}) (\d{3}) (\d{4})"),
    ("+44 20 7946 0018", r"\+44 (\d{2}) (\d{4}) (\d{4})"),
    ("+44 (0)20 7946 0018", r"\+44 \(0\)(\d{2}) (\d{4}) (\d{4})"),
    ("0044 20 7946 0018", r"0044 (\d{2}) (\d{4}) (\d{4})"),
    ("00 44 20 7946 0018", r"00 44 (\d{2}) (\d{4}) (\d{4})"),
]


@pytest.mark.parametrize("patient", range(6))
def test_a_uk_number_keeps_its_trunk_zero_and_takes_one_fake_in_every_form(gen, patient):
    # "020 7946 0018" became "460 0763 2666": its trunk "0" replaced (no UK number starts so) and
    # digits unrelated to the fake of "+44 20 7946 0018", the same number
    scope = f"patient:uk{patient}"
    fakes = set()
    for text, shape in _UK_FORMS:
        out = gen.surrogate(text, "PHONE", scope)
        assert out[-7:] != text[-7:]
        fakes.add(_digits(out, shape))
    assert len(fakes) == 1 and fakes != {"2079460018"}, fakes


@pytest.mark.parametrize("patient", range(6))
def test_north_american_forms_share_one_fake_and_keep_their_shape(gen, patient):
    scope = f"patient:na{patient}"
    toll_free = {_digits(gen.surrogate(text, "PHONE", scope), shape) for text, shape in [
        ("1-800-555-0199", r"1-(\d{3})-(\d{3})-(\d{4})"), ("800-555-0199", r"(\d{3})-(\d{3})-(\d{4})"),
        ("+1 800 555 0199", r"\+1 (\d{3}) (\d{3}) (\d{4})")]}
    local = {_digits(gen.surrogate(text, "PHONE", scope), shape) for text, shape in [
        ("(555) 010-0199", r"\((\d{3})\) (\d{3})-(\d{4})"), ("555.010.0199", r"(\d{3})\.(\d{3})\.(\d{4})")]}
    assert len(toll_free) == 1 and len(local) == 1 and toll_free != local
    assert toll_free != {"8005550199"} and local != {"5550100199"}


def test_a_three_digit_country_code_is_kept(gen):
    # "+353 1 234 5678" became "+849 ...": a code that is no country's
    out = gen.surrogate("+353 1 234 5678", "PHONE", "patient:ie")
    national = gen.surrogate("01 234 5678", "PHONE", "patient:ie")
    assert _digits(out, r"\+353 (\d) (\d{3}) (\d{4})") == _digits(national, r"0(\d) (\d{3}) (\d{4})")
    assert out[-4:] != "5678"


def test_a_fake_number_opens_with_zero_only_where_the_original_does(gen):
    # "(555) 010-0199" could become "(034) ...", no area code; after a kept trunk "0" a fake "0"
    # would read as the international prefix "00"
    for patient in range(60):
        scope = f"patient:z{patient}"
        assert gen.surrogate("(555) 010-0199", "PHONE", scope)[1] != "0"
        assert gen.surrogate("020 7946 0018", "PHONE", scope)[1] != "0"


@pytest.mark.parametrize("label, first, second", [
    ("PHONE", " 0000000000", "0000000000"),
    ("PHONE", "0000000000", " 0000000000"),
    ("PHONE", "(555) 010-0199\n", "(555) 010-0199"),
    ("NAME", " Quintavius", "Quintavius"),
])
def test_the_space_around_a_value_stays_its_own(gen, label, first, second):
    # a value read with its note's space (a meta field, a caller's span) has the fake of the value
    # without it; the memo handed the second form the first one's spacing, a character more or less
    one = gen.surrogate(first, label, "patient:ws")
    two = gen.surrogate(second, label, "patient:ws")
    assert one.strip() == two.strip() and one.strip() != first.strip()
    for original, out in ((first, one), (second, two)):
        assert len(out) - len(out.lstrip()) == len(original) - len(original.lstrip())
        assert len(out) - len(out.rstrip()) == len(original) - len(original.rstrip())


# -- double-barrelled surnames in a note of one case --------------------------------------------


@pytest.mark.parametrize("text, name", [
    ("seen by dr quarrie-jones today. bp stable.", "quarrie-jones"),
    ("SEEN BY DR QUARRIE-JONES TODAY. BP STABLE.", "QUARRIE-JONES"),
    ("pt's daughter jane quarrie-jones called, updated on plan.", "jane quarrie-jones"),
])
def test_a_double_barrelled_surname_in_one_case_is_found_whole(clinical, text, name):
    # in a note of one case an English word after a hyphen was no part of a name, so "jones", a
    # surname that is also a word, stayed in clear beside the surrogate of "quarrie"
    start = text.index(name)
    found = [(d.start, d.end) for d in clinical.detect_text(text) if d.start < start + len(name) and start < d.end]
    assert found == [(start, start + len(name))]


def test_an_english_word_glued_to_a_name_in_one_case_stays_out(clinical):
    text = "dr quarrie-aware of plan, bp stable."
    assert [text[d.start:d.end] for d in clinical.detect_text(text)] == ["quarrie"]


def test_a_lower_case_double_barrelled_surname_takes_a_lower_case_double_barrelled_fake(clinical, gen):
    doc = Document("hy-1", "seen by dr quarrie-jones today. bp stable.", {"patient_id": "hy"})
    out = apply_operator(doc, clinical.detect_text(doc.text), "surrogate", gen)
    assert re.fullmatch(r"seen by dr [a-z']+-[a-z']+ today\. bp stable\.", out.text), out.text
    assert "quarrie" not in out.text and "jones" not in out.text


# -- initials before a name found again ---------------------------------------------------------

_SEEN = "Seen with Mr. Quintavius today. "


@pytest.mark.parametrize("text, expected", [
    (_SEEN + "Later J. Quintavius called.", "J. Quintavius"),
    (_SEEN + "Later J.S. Quintavius called.", "J.S. Quintavius"),
    (_SEEN + "Later J. S. Quintavius called.", "J. S. Quintavius"),
    (_SEEN + "Later A. Quintavius called.", "A. Quintavius"),
    (_SEEN + "cc: J.Quintavius", "J.Quintavius"),
    (_SEEN.lower() + "later j.s. quintavius called.", "j.s. quintavius"),
    # no initials: a lower-case letter before a capitalised name, two capitals that may be "PT"
    (_SEEN + "Later j. Quintavius called.", "Quintavius"),
    (_SEEN + "Later PT Quintavius called.", "Quintavius"),
])
def test_propagation_takes_the_initials_the_recognizers_take(clinical, text, expected):
    # propagation had its own rule, one capital and a dot: "J.S." and "j." stayed beside the
    # surrogate; both now read the one definition (recognizers.names.initials_before)
    first = text.casefold().index("quintavius")
    doc = Document("in-1", text, {"patient_id": "in"})
    spread = NamePropagator()(doc, [Detection(first, first + len("quintavius"), "PATIENT", 0.9, "rules")])
    at = text.index(expected, first + 1)
    assert [(d.start, d.end) for d in spread[1:]] == [(at, at + len(expected))]
    if expected.casefold() != "quintavius" and "J.Q" not in expected:
        # the recognizers find the name again themselves and widen it by the same rule
        again = [(d.start, d.end) for d in clinical.detect_text(text) if d.start >= first + 10]
        assert again == [(at, at + len(expected))]
