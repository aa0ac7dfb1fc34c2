"""Adversarial cases for the replacement layer: what a surrogate, a date shift or a restore from
the vault must never do (made-up identifiers only)."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from domainfm.corpus import Document, Span
from domainfm.deid.dates import shift_date_text
from domainfm.deid.surrogates import SurrogateGenerator
from domainfm.deid.transform import apply_operator, reidentify
from domainfm.deid.vault import Vault
from domainfm.errors import RecordError

SECRET = b"abuse-secret-0123456789-abcdefghij"
KEY = b"abuse-vault-key-0123456789abcdefghijklmn"


@pytest.fixture()
def gen():
    return SurrogateGenerator(SECRET)


# -- ages: Safe Harbor's "90 or older" ---------------------------------------------------------


@pytest.mark.parametrize("original, expected", [
    ("92 and 93", "90+ and 90+"),        # every age over 89 in the span, not only the first
    ("88-92", None),                     # the 92 must go whatever happens to the 88
    ("age 91.5", "age 90+"),             # no ".5" left behind an aggregate
    ("91-93", "90+"),                    # a range of ages over 89 is one aggregate
    ("91 to 93 years", "90+ years"),
    ("93 1/2", "90+"),                   # the detector's half year: "90+ 1/2" read as a half year over 90
    ("91 and a half", "90+"),
    ("92½", "90+"),
])
def test_every_age_over_89_in_a_span_is_aggregated(gen, original, expected):
    out = gen.surrogate(original, "AGE", "patient:z1")
    assert not re.search(r"9[1-9]|1\d\d", out), out
    if expected is not None:
        assert out == expected


@pytest.mark.parametrize("original", ["90+", "age 90+", "90-plus-year-old", "in her 90s", "90 or older",
                                      "ninety-plus", "over 90"])
def test_an_age_already_aggregated_stays_as_written(gen, original):
    # "90+" became "90++" and "ninety-plus" random letters: a wrong age for no privacy gain
    assert gen.surrogate(original, "AGE", "patient:z1") == original


def test_ages_under_90_still_move(gen):
    assert gen.surrogate("age 45", "AGE", "patient:z1") != "age 45"


@pytest.mark.parametrize("patient", range(12))
def test_ages_near_the_cut_off_keep_their_order_and_their_side_of_it(gen, patient):
    # a patient whose ages moved up had to turn back below 90: 88 and 89 came out as 89 and 88
    scope = f"patient:n{patient}"
    ages = [0, 1, 2, 3, 45, 85, 86, 87, 88, 89]
    text, dets = "", []
    for age in ages + [91, 93]:  # one note: "0 y/o; 1 y/o; ...; 93 y/o; "
        dets.append((len(text), len(text) + len(str(age)), "AGE"))
        text += f"{age} y/o; "
    out = apply_operator(Document(f"age-{patient}", text, {"patient_id": f"n{patient}"}), dets, "surrogate", gen).text
    values = re.findall(r"(\S+) y/o", out)
    assert values[-2:] == ["90+", "90+"]                       # over 89: Safe Harbor's aggregate
    moved = [int(v) for v in values[:-2]]
    assert all(0 <= v <= 89 for v in moved)                  # 89 and under never cross the cut-off
    assert all(v != age for v, age in zip(moved, ages))
    assert moved[3:] == sorted(moved[3:]) and len(set(moved[3:])) == len(moved) - 3, moved  # in order
    assert moved[4:] == [age - (45 - moved[4]) for age in ages[4:]]  # one shift for the patient
    # every age of one span moves by the same rule: the 88 of "88 and 91" was kept as written
    assert gen.surrogate("88 and 91", "AGE", scope) == f"{moved[8]} and 90+"
    assert gen.surrogate("88-92", "AGE", scope) == f"{moved[8]}-90+"
    assert gen.surrogate("85-87", "AGE", scope) == f"{moved[5]}-{moved[7]}"  # was "87-87" or "83-87"
    assert gen.surrogate("45 1/2", "AGE", scope) == f"{moved[4]} 1/2"


@pytest.mark.parametrize("original, over_89", [
    ("120 months", False),        # ten years old: "90+ months" said seven and a half
    ("100-120 months", False),    # the unit after a range is the whole range's
    ("1100 days", False),
    ("91 mos", False),
    ("1200 months old", True),    # a hundred years: the aggregate, in years
    ("5000 weeks", True),
])
def test_an_age_in_months_weeks_or_days_is_read_in_its_unit(gen, original, over_89):
    out = gen.surrogate(original, "AGE", "patient:z1")
    if over_89:
        assert out.startswith("90+ years") and not re.search(r"\d{3}", out), out
    else:
        assert "90" not in out and out.split()[-1] == original.split()[-1], out  # moved, unit kept
        assert out != original


@pytest.mark.parametrize("original", ["in her 40s", "late 80s", "in his 60's"])
def test_an_age_written_as_its_decade_stays(gen, original):
    # "in her 40s" became "in her 38s"
    assert gen.surrogate(original, "AGE", "patient:z1") == original


# -- dates: no original day or year left, format kept ------------------------------------------


@pytest.mark.parametrize("original, expected", [
    ("4 March '19", "14 October '21"),       # the '19 was kept as written
    ("March 4, '19", "October 14, '21"),
    ("March 4, ’19", "October 14, ’21"),
    ("March 4-6, 2019", "October 14-16, 2021"),   # the 6 was kept, the year moved as a year alone
    ("4 - 6 March 2019", "14 - 16 October 2021"),  # the 4 was kept
    ("4 to 6 March 2019", "14 to 16 October 2021"),
    ("4-6 March 2019", "14-16 October 2021"),      # was read as April 6 ("11-17 October")
    ("March 4 to 6, 2019", "October 14 to 16, 2021"),
    ("March of 2019", "October of 2021"),          # month and year moved apart (October of 2022)
    ("'19", "'22"),                                # a two-digit year, not the 19th
])
def test_date_forms_with_two_digit_years_and_day_ranges(original, expected):
    # 955 days: 2019-03-04 -> 2021-10-14, the same shift as 3/4/2019 -> 10/14/2021
    assert shift_date_text("3/4/2019", 955) == "10/14/2021"
    assert shift_date_text(original, 955) == expected


def test_a_day_range_that_crosses_a_month_names_both_months():
    assert shift_date_text("Jan 27-31, 2019", 396) == "Feb 27-Mar 2, 2020"
    assert shift_date_text("27-31 Jan 2019", 396) == "27 Feb-2 Mar 2020"


def test_each_day_of_a_range_moves_with_the_patient_shift(gen):
    for patient in range(40):
        scope = f"patient:{patient}"
        out = gen.surrogate("March 4-6, 2019", "DATE", scope)
        first = gen.surrogate("March 4, 2019", "DATE", scope)
        last = gen.surrogate("March 6, 2019", "DATE", scope)
        # "October 14-16, 2021" is "October 14, 2021" to "October 16, 2021" (or names both months)
        month, day, year = re.fullmatch(r"(\w+) (\d+), (\d+)", last).groups()
        assert out.startswith(first.split(",")[0]) and out.endswith(f"{day}, {year}"), (out, first, last)
        assert not re.search(r"'19\b", gen.surrogate("4 March '19", "DATE", scope))


@pytest.mark.parametrize("original, expected", [
    ("Christmas", "August 7"), ("Christmas Day", "August 7"), ("December 25", "August 7"),
    ("CHRISTMAS EVE", "AUGUST 6"), ("Thanksgiving", "July 6"), ("New Year’s Day", "August 13"),
    ("the 1990s", "the 2000s"), ("'90s", "'00s"), ("90s", "00s"),
])
def test_holidays_and_decades_move_like_the_dates_they_name(original, expected):
    # a holiday was replaced by random letters ("Christmas" -> "Qzkpwmtra") and a decade by
    # a few years ("1990s" -> "1993s"); a holiday is the day it names, moved by the same shift
    assert shift_date_text(original, 955) == expected


# -- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("possessive", ["Quintavius's", "QUINTAVIUS'S", "Quintavius’s", "Mr. Quintavius's"])
def test_a_possessive_keeps_the_name_surrogate_and_the_apostrophe_s(gen, possessive):
    surname = gen.surrogate("Zorblax Quintavius", "PATIENT", "patient:z1").split()[-1]
    out = gen.surrogate(possessive, "PATIENT", "patient:z1")
    assert out.casefold().endswith((surname.casefold() + "'s", surname.casefold() + "’s")), out


def test_a_decomposed_accent_takes_the_composed_names_surrogate(gen):
    decomposed = gen.surrogate("Jose\u0301 Quintavius", "NAME", "patient:z1")
    assert decomposed == gen.surrogate("Jos\u00e9 Quintavius", "NAME", "patient:z1")
    assert "\u0301" not in decomposed


def test_a_surrogate_is_never_another_original_of_the_same_patient():
    first = SurrogateGenerator(SECRET).surrogate("Quintavius", "NAME", "patient:z1")
    # the patient's earlier note names a relative whose real surname is that surrogate
    gen = SurrogateGenerator(SECRET)
    gen.surrogate(first, "RELATIVE", "patient:z1")
    assert gen.surrogate("Quintavius", "NAME", "patient:z1") != first


def test_the_same_holds_across_runs_through_the_vault(tmp_path):
    first = SurrogateGenerator(SECRET).surrogate("Quintavius", "NAME", "patient:z1")
    with Vault(tmp_path / "v.db", KEY) as vault:
        SurrogateGenerator(SECRET, vault).surrogate(first, "RELATIVE", "patient:z1")
    with Vault(tmp_path / "v.db", KEY) as vault:
        assert SurrogateGenerator(SECRET, vault).surrogate("Quintavius", "NAME", "patient:z1") != first


# -- identifiers -----------------------------------------------------------------------------------


def _ssn_issuable(ssn: str) -> bool:
    digits = re.sub(r"\D", "", ssn)
    return not (digits[:3] in ("000", "666") or digits[0] == "9" or digits[3:5] == "00" or digits[5:] == "0000")


def test_ssn_surrogates_are_never_from_ranges_the_ssa_does_not_issue(gen):
    for i in range(600):
        original = f"{101 + i % 600:03d}-{11 + i % 80:02d}-{1001 + i:04d}"
        out = gen.surrogate(original, "SSN", f"patient:{i}")
        assert re.fullmatch(r"\d{3}-\d{2}-\d{4}", out) and out != original
        assert _ssn_issuable(out), out


def test_zip_surrogates_avoid_the_restricted_three_digit_areas(gen):
    restricted = {"000", "036", "059", "063", "102", "203", "556", "692", "790", "821", "823", "830",
                  "831", "878", "879", "884", "890", "893"}
    for i in range(2500):
        out = gen.surrogate(f"{(i * 7) % 1000:03d}{i % 100:02d}", "ZIP", f"patient:{i}")
        assert re.fullmatch(r"\d{5}", out) and out[:3] not in restricted, out


# -- re-identification of records that were changed -----------------------------------------------


@pytest.fixture()
def restored_setup(tmp_path):
    text = "Zorblax Quintavius MRN 88123456 seen 3/4/2019."
    doc = Document("z-1", text, {"patient_id": "zp"}, spans=[Span(0, 18, "WHO")])
    dets = [(0, 18, "PATIENT", 0.9), (23, 31, "MRN", 0.9), (37, 45, "DATE", 0.9)]
    vault = Vault(tmp_path / "v.db", KEY)
    record = apply_operator(doc, dets, "surrogate", SurrogateGenerator(SECRET, vault)).to_dict()
    yield vault, record, doc
    vault.close()


@pytest.mark.parametrize("spans", [
    [{"start": "0", "end": 3, "label": "X"}], [{"start": 0}], ["WHO"], "WHO", 7,
    [{"start": 0, "end": 999, "label": "X"}], [{"start": 5, "end": 2, "label": "X"}],
    [{"start": 0, "end": 3, "label": 5}], [{"start": 0, "end": 3, "label": "X", "attrs": []}],
])
def test_a_record_with_broken_spans_is_a_record_error_not_a_traceback(restored_setup, spans):
    vault, record, doc = restored_setup
    with pytest.raises(RecordError) as info:
        list(reidentify([{**record, "spans": spans}], vault))
    assert info.value.record_id == "z-1"
    assert "Zorblax" not in str(info.value) and "88123456" not in str(info.value)


def test_a_record_whose_meta_is_not_an_object_is_refused(restored_setup):
    vault, record, _ = restored_setup
    with pytest.raises(RecordError, match="meta"):
        list(reidentify([{**record, "meta": "x"}], vault))


def test_an_integer_id_is_its_decimal_string(tmp_path):
    with Vault(tmp_path / "v.db", KEY) as vault:
        doc = Document("7", "Seen by Zorblax.")
        record = apply_operator(doc, [(8, 15, "DOCTOR", 0.9)], "tag", vault=vault).to_dict()
        (back,) = reidentify([{**record, "id": 7}], vault)
    assert back["id"] == "7" and back["text"] == doc.text


def test_detected_ranges_apostrophe_years_and_half_years_are_replaced_as_one_value():
    """The detectors cut "March 4-6, 2019" into "March 4" and a lone "6" (moved by another rule:
    a wrong interval), trimmed "'18" to "18" (shifted as a day of the month) and missed
    "91.5 year old" (an age over 89 left in clear)."""
    from domainfm.corpus import Document
    from domainfm.deid import DeidConfig
    from domainfm.deid.runner import deidentify

    texts = ["Admitted March 4-6, 2019.", "Worse since summer '18.", "A 91.5 year old woman."]
    docs = [Document(f"n{i}", t, meta={"patient_id": "p1"}) for i, t in enumerate(texts)]
    out = [r.text for r in deidentify(docs, DeidConfig(), secret=b"k" * 32)]
    first, last = re.fullmatch(r"Admitted [A-Z][a-z]+ (\d+)-(\d+), \d{4}\.", out[0]).groups()
    assert int(last) - int(first) == 2  # the interval stays
    # the season moves with the year (a season kept as written would be a date element left in clear)
    assert re.fullmatch(r"Worse since (?:spring|summer|fall|winter) '\d\d\.", out[1]) and "'18" not in out[1]
    assert out[2] == "A 90+ year old woman."


# -- dates without a year, seasons -------------------------------------------------------------


@pytest.fixture()
def shift_vault(tmp_path):
    with Vault(tmp_path / "shift.db", KEY) as vault:
        yield vault


def _generator_with_shift(vault: Vault, scope: str, offset: int) -> SurrogateGenerator:
    vault.put_shift(scope, offset)  # a stored shift wins over the derived one
    return SurrogateGenerator(SECRET, vault)


def _month_day(year: int, month: int, day: int, offset: int) -> str:
    shifted = date(year, month, day) + timedelta(days=offset)
    return f"{shifted.month}/{shifted.day}"


@pytest.mark.parametrize("offset", [-772, 400])
def test_a_date_without_a_year_is_shifted_in_the_year_of_the_note(shift_vault, offset):
    # read in 2000, 3/5 crossed 29 February 2000 where 5 March 2019 crosses none (or the
    # other way round): one day off the full date beside it
    gen = _generator_with_shift(shift_vault, "patient:zy", offset)
    text = "Seen 01/15/2019, recheck 3/5. Leap day 2/29."
    doc = Document("y-1", text, {"patient_id": "zy"})
    out = apply_operator(doc, [(5, 15, "DATE", 0.9), (25, 28, "DATE", 0.9), (39, 43, "DATE", 0.9)],
                         "surrogate", gen).text
    full, yearless, leap = re.fullmatch(r"Seen (\S+), recheck (\S+)\. Leap day (\S+)\.", out).groups()
    assert full == f"{date(2019, 1, 15) + timedelta(days=offset):%m/%d/%Y}"
    assert yearless == _month_day(2019, 3, 5, offset)
    assert leap == _month_day(2016, 2, 29, offset)  # 2019 has no 29 February: the leap year before


def test_the_nearest_full_date_before_gives_the_year_else_the_first_one(shift_vault):
    assert shift_date_text("01/15/2019 to 3/5", 400) == "02/19/2020 to " + _month_day(2019, 3, 5, 400)
    assert shift_date_text("3/5", 400, note_year=2020) == _month_day(2020, 3, 5, 400)
    gen = _generator_with_shift(shift_vault, "patient:zn", 400)
    text = "On 3/5 ill. Seen 01/15/2019. Seen 06/02/2020, recheck 3/5."
    dets = [(3, 6, "DATE"), (17, 27, "DATE"), (34, 44, "DATE"), (54, 57, "DATE")]
    out = apply_operator(Document("y-2", text, {"patient_id": "zn"}), dets, "surrogate", gen).text
    before, after = re.fullmatch(r"On (\S+) ill\. .* recheck (\S+)\.", out).groups()
    assert (before, after) == (_month_day(2019, 3, 5, 400), _month_day(2020, 3, 5, 400))  # 4/8, 4/9


@pytest.mark.parametrize("original, offset, expected", [
    ("Spring 2019", 91, "Summer 2019"),        # 15 April + 91 days is 15 July
    ("Spring 2019", 457, "Summer 2020"),
    ("winter of 2018", 457, "spring of 2019"),  # 15 January 2018 + 457 days: 17 April 2019
    ("summer '18", 457, "fall '19"),
    ("FALL 2020", 457, "WINTER 2022"),         # 15 January 2022: the winter named 2022
    ("Autumn, 2019", 731, "Autumn, 2021"),     # the word the original used for the fall
    ("spring", -200, "fall"),                  # no year: read in the note's year
    ("Autumn", 400, "Winter"),                 # 15 October + 400 days is still in the fall
])
def test_a_season_moves_with_the_shift_not_only_its_year(original, offset, expected):
    # "Spring 2019" kept its season while its year moved a whole year: a date element finer
    # than the year left in clear, and not where the patient's shift puts it
    assert shift_date_text(original, offset) == expected


def test_a_season_of_every_patient_is_the_season_of_its_shifted_middle_day(gen):
    for patient in range(20):
        scope = f"patient:s{patient}"
        middle = date(2019, 4, 15) + timedelta(days=gen.date_offset(scope))
        season = ("winter", "spring", "summer", "fall")[middle.month % 12 // 3]
        expected = f"{season.title()} {middle.year + (middle.month == 12)}"
        assert gen.surrogate("Spring 2019", "DATE", scope) == expected


# -- phone numbers with a country code -----------------------------------------------------------


@pytest.mark.parametrize("original, shape", [
    ("+1 617-555-0134", r"\+1 \d{3}-\d{3}-\d{4}"),
    ("+1 (617) 555 0134", r"\+1 \(\d{3}\) \d{3} \d{4}"),
    ("+1-617-555-0134", r"\+1-\d{3}-\d{3}-\d{4}"),
    ("+16175550134", r"\+1\d{10}"),
    ("1-800-555-0134", r"1-\d{3}-\d{3}-\d{4}"),
    ("1 (617) 555-0134", r"1 \(\d{3}\) \d{3}-\d{4}"),
    ("+44 20 7946 0958", r"\+44 \d{2} \d{4} \d{4}"),
])
@pytest.mark.parametrize("label", ["PHONE", "FAX"])
def test_a_country_code_is_kept_and_the_number_after_it_replaced(gen, original, shape, label):
    # "+1 617-555-0134" came out as "+7 ...": a scrambled country code moves the number abroad
    for patient in range(10):
        out = gen.surrogate(original, label, f"patient:c{patient}")
        assert re.fullmatch(shape, out), out
        assert out != original and out[-7:] != original[-7:]


def test_a_number_with_a_country_code_takes_the_surrogate_of_the_number_without_it(gen):
    bare = gen.surrogate("617-555-0134", "PHONE", "patient:c1")
    assert gen.surrogate("+1 617-555-0134", "PHONE", "patient:c1") == "+1 " + bare
    assert gen.surrogate("1-617-555-0134", "PHONE", "patient:c1") == "1-" + bare


# one made-up number in the forms notes write it, and the shape each must keep (number digits grouped)
_FORMATS = [
    ("(617) 555-0143", r"\((\d{3})\) (\d{3})-(\d{4})"), ("617.555.0143", r"(\d{3})\.(\d{3})\.(\d{4})"),
    ("617-555-0143", r"(\d{3})-(\d{3})-(\d{4})"), ("6175550143", r"(\d{3})(\d{3})(\d{4})"),
    ("+1 617 555 0143", r"\+1 (\d{3}) (\d{3}) (\d{4})"), ("+16175550143", r"\+1(\d{3})(\d{3})(\d{4})"),
    ("1-617-555-0143", r"1-(\d{3})-(\d{3})-(\d{4})"),
    ("617-555-0143 ext. 12", r"(\d{3})-(\d{3})-(\d{4}) ext\. \d\d"),
]


def _number_digits(out: str, shape: str) -> str:
    match = re.fullmatch(shape, out)
    assert match, (out, shape)
    return "".join(match.groups())


@pytest.mark.parametrize("patient", range(8))
def test_one_number_in_every_format_takes_the_same_fake_digits(gen, patient):
    # "(617) 555-0143" and "617.555.0143" in one patient's notes came out as two unrelated numbers
    scope = f"patient:f{patient}"
    fakes = {_number_digits(gen.surrogate(text, label, scope), shape)
             for text, shape in _FORMATS for label in ("PHONE", "FAX")}
    assert len(fakes) == 1 and fakes != {"6175550143"}, fakes
    other = _number_digits(gen.surrogate("(617) 555-0144", "PHONE", scope), _FORMATS[0][1])
    assert other not in fakes  # another number, even one digit apart, stays another number
    # two extensions of one number: one fake number, two extensions
    ext_12, ext_13 = (gen.surrogate(f"617-555-0143 ext. {ext}", "PHONE", scope) for ext in (12, 13))
    assert ext_12 != ext_13 and ext_12[:12] == ext_13[:12]


def test_the_shared_number_survives_the_vault_and_restores_exactly(tmp_path):
    text = "Call (617) 555-0143 or 617.555.0143; fax 617-555-0199."
    dets = [(5, 19, "PHONE"), (23, 35, "PHONE"), (41, 53, "FAX")]
    doc = Document("ph-1", text, {"patient_id": "ph"})
    with Vault(tmp_path / "v.db", KEY) as vault:
        out = apply_operator(doc, dets, "surrogate", SurrogateGenerator(SECRET, vault), vault=vault)
        assert next(reidentify([out], vault))["text"] == text
    first, second, fax = re.fullmatch(r"Call (.+) or (.+); fax (.+)\.", out.text).groups()
    assert _number_digits(first, _FORMATS[0][1]) == _number_digits(second, _FORMATS[1][1])
    assert _number_digits(fax, _FORMATS[2][1]) != _number_digits(first, _FORMATS[0][1])
    # a later run under another secret reads the number's digits back, for a form it never met too
    with Vault(tmp_path / "v.db", KEY) as vault:
        later = SurrogateGenerator(b"another-secret-for-run-two-000000", vault)
        assert later.surrogate("617.555.0143", "PHONE", "patient:ph") == second
        digits = _number_digits(first, _FORMATS[0][1])
        expected = f"+1 {digits[:3]} {digits[3:6]} {digits[6:]}"
        assert later.surrogate("+1 617 555 0143", "PHONE", "patient:ph") == expected
        assert vault.lookup_original("patient:ph", "PHONE", second.casefold()) == "617.555.0143"


def test_a_form_stored_before_numbers_shared_digits_keeps_its_fake_and_lends_it(tmp_path):
    # a vault written by an earlier version holds the written form alone: it still wins
    with Vault(tmp_path / "v.db", KEY) as vault:
        vault.put_surrogate("patient:old", "PHONE", "(617) 555-0143", "(617) 555-0143", "(212) 444-0987")
        gen = SurrogateGenerator(SECRET, vault)
        assert gen.surrogate("(617) 555-0143", "PHONE", "patient:old") == "(212) 444-0987"
        assert gen.surrogate("617.555.0143", "PHONE", "patient:old") == "212.444.0987"


# -- initials ------------------------------------------------------------------------------------


def _given_and_surname(name: str) -> tuple[str, str]:
    """("Carl", "Moore") of "Dr. Carl Moore" or "Moore, Carl"; ("C.", "Moore") of "C. Moore"."""
    name = name.removeprefix("Dr. ")
    if ", " in name:
        surname, given = name.split(", ")
        return given, surname
    given, surname = name.split()
    return given, surname


@pytest.mark.parametrize("full, short", [
    ("John Quintavius", "J. Quintavius"),
    ("Zorblax Quintavius", "Z. Quintavius"),        # a given name not in the first-name lists
    ("Quintavius, Mary", "Quintavius, M."),
    ("Dr. Mary Quintavius", "M Quintavius"),
])
@pytest.mark.parametrize("initial_first", [False, True])
def test_an_initial_is_the_initial_of_the_given_names_surrogate(full, short, initial_first):
    # "J. Smith" and "John Smith" became "K. Miller" and "Robert Miller": two people
    gen = SurrogateGenerator(SECRET)
    for patient in range(10):  # one generator: each patient is a scope of its own
        scope = f"patient:i{patient}"
        if initial_first:
            short_out = gen.surrogate(short, "PATIENT", scope)
            full_out = gen.surrogate(full, "PATIENT", scope)
        else:
            full_out = gen.surrogate(full, "PATIENT", scope)
            short_out = gen.surrogate(short, "PATIENT", scope)
        (given, surname), (initial, short_surname) = _given_and_surname(full_out), _given_and_surname(short_out)
        assert initial[0] == given[0] and surname == short_surname, (full_out, short_out)
        assert initial[1:] == _given_and_surname(short)[0][1:]  # "J." stays a letter and a dot


def test_an_initial_beside_another_surname_is_not_tied_to_the_given_name(gen):
    full = gen.surrogate("John Quintavius", "PATIENT", "patient:i1")
    others = {gen.surrogate(f"J. {surname}", "PATIENT", "patient:i1")[0]
              for surname in ("Drosk", "Paxwell", "Vellick", "Marsby", "Tarnfield", "Orrin")}
    assert others != {full[0]}


@pytest.mark.parametrize("original", ["ZQ", "JVK", "ZQ,", "(XK)"])
@pytest.mark.parametrize("patient", range(20))
def test_undotted_initials_become_other_initials(gen, original, patient):
    # "JS" signing a line became a surname ("Holloway"); no letter may stay in its place either
    out = gen.surrogate(original, "DOCTOR", f"patient:u{patient}")
    letters = original.strip("(),")
    fake = out.strip("(),")
    assert out.replace(fake, "") == original.replace(letters, "") and re.fullmatch(r"[A-Z]{%d}" % len(letters), fake), out
    assert all(a != b for a, b in zip(fake, letters)), out
    assert gen.surrogate(original, "DOCTOR", f"patient:u{patient}") == out  # the same in every note of the patient


def test_a_short_capitalised_listed_name_is_still_a_name(gen):
    out = gen.surrogate("LEE", "NAME", "patient:z1")  # a listed surname draws from the name lists
    assert out.isupper() and out.casefold() in gen._surnames | gen._male | gen._female, out


@pytest.mark.parametrize("original, kept", [("Van der Holt", " der "), ("Orla de la Vexa", " de la "),
                                            ("de Souza-Prell, Amalia", "de ")])
def test_a_surname_particle_stays_as_written(gen, original, kept):
    # "Van der Holt" became "Reed mcdaniel Obrien": a lower-case surname where "der" stood
    out = gen.surrogate(original, "NAME", "patient:z1")
    assert kept in out
    assert not set(re.findall(r"[A-Za-z]{3,}", out)) & {"Holt", "Vexa", "Orla", "Souza", "Prell", "Amalia"}


@pytest.mark.parametrize("original", ["Mercy Memorial Hospital", "St. Agnes Regional", "Lakeview Community Hospital",
                                      "Holy Cross General", "Brookfield Memorial"])
def test_a_facility_surrogate_keeps_its_kind_but_not_the_originals_distinctive_words(gen, original):
    # "Memorial" in the fake would still show the reader (and a leakage check) what the
    # original was called; the kind of place ("... Hospital") may stay
    own = {w.casefold() for w in re.findall(r"[^\W_]{3,}", original)} - {"hospital"}
    for patient in range(12):
        fake = gen.surrogate(original, "HOSPITAL", f"patient:f{patient}")
        assert not own & {w.casefold() for w in re.findall(r"[^\W_]{3,}", fake)}, (original, fake)
