"""What de-identification's replacement and scoring promise, checked exactly on made-up notes:
date shifts keep intervals and written forms, surrogates stay consistent and apart, the vault
gives back the originals, and the scores are the ratios of their counts."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from domainfm.corpus.document import Document, Span
from domainfm.deid.dates import _PATTERN, _WEEKDAYS, shift_date_text
from domainfm.deid.evaluate import _scores, bootstrap_intervals, evaluate, leakage, unit_counts
from domainfm.deid.surrogates import SurrogateGenerator
from domainfm.deid.transform import apply_operator, reidentify
from domainfm.deid.vault import Vault, VaultKeyError

SECRET = b"correctness-pass-secret-0123456789"


def _md(d: date) -> str:
    return f"{d.month}/{d.day}"


# ---------------------------------------------------------------------- dates


@pytest.mark.parametrize("word", ["Tues", "Thur", "Thurs", "Weds", "tues", "TUES", "Tue", "Sat", "Monday"])
@pytest.mark.parametrize("offset", [400, -926, 1101])
def test_a_shifted_weekday_is_a_weekday_the_grammar_reads_again(word, offset):
    # "Tues" used to come out as the first four letters of another day ("Wedn", "Frid"): no weekday
    out = shift_date_text(word, offset)
    match = _PATTERN.fullmatch(out)
    assert match is not None and match.group("wd") is not None, out
    day = next(i for i, name in enumerate(_WEEKDAYS) if name.startswith(word[:3].lower()))
    assert out[:3].lower() == _WEEKDAYS[(day + offset) % 7][:3]
    assert out.isupper() == word.isupper() and out[:1].isupper() == word[:1].isupper()


@pytest.mark.parametrize("text, offset", [
    ("04/Mar/2019", 400), ("04-Mar-19", 400), ("04-MAR-2019", -926), ("4/Mar/19", 1101),
])
def test_a_day_month_year_written_with_slashes_or_two_digits_moves_whole(text, offset):
    # "04/Mar/2019" moved its month and year but kept the original day
    day, month, year = re.split(r"[/-]", text)
    full_year = int(year) + (2000 if len(year) == 2 else 0)
    shifted = date(full_year, 3, int(day)) + timedelta(days=offset)
    sep = text[len(day)]
    month_name = shifted.strftime("%b")
    expected = (f"{shifted.day:0{len(day)}d}{sep}{month_name.upper() if month.isupper() else month_name}{sep}"
                f"{shifted.year if len(year) == 4 else f'{shifted.year % 100:02d}'}")
    assert shift_date_text(text, offset) == expected


@pytest.mark.parametrize("text, year", [("Dec-89", 1989), ("Mar-97", 1997), ("dec-2019", 2019),
                                        ("Mar-07", 2007), ("Mar-17", 2017), ("jan-12", 2012),
                                        ("Oct-31", 1931)])  # any two digits; 31-99 are 19xx
def test_a_hyphenated_month_and_two_digit_year_moves_as_a_month(text, year):
    # "Dec-89" was read as the 89th of December: the month stayed and the year became random digits
    month = {"dec": 12, "mar": 3, "jan": 1, "oct": 10}[text[:3].lower()]
    shifted = date(year, month, 15) + timedelta(days=400)
    out = shift_date_text(text, 400)
    name = shifted.strftime("%b")
    written_year = str(shifted.year) if len(text.split("-")[1]) == 4 else f"{shifted.year % 100:02d}"
    assert out == f"{name.lower() if text.islower() else name}-{written_year}"


@pytest.mark.parametrize("text, offset, expected", [
    ("Mar-7", 400, "Apr-11"),          # one digit: a day (7 March 2000, the reference year)
    ("Mar 07", 400, "Apr 11"),         # a space: a day
    ("Mar-07th", 400, "Apr-11th"),     # an ordinal: a day
    ("Mar-07-2019", 400, "Apr-10-2020"),   # a year after it: a day of that year
    ("Mar-07, 2019", 400, "Apr-10, 2020"),
    ("MAR-07", 400, "APR-08"),         # March 2007 -> April 2008, case kept
    ("CABG Mar-07, redo 2/1998", 400, "CABG Apr-08, redo 3/1999"),
])
def test_a_month_hyphen_and_two_digits_is_a_month_and_year_unless_a_day_is_plain(text, offset, expected):
    # "Mar-07" was read as 7 March: a month-year of a problem list became a day of the note's year
    assert shift_date_text(text, offset) == expected


@pytest.mark.parametrize("text", ["23OCT89", "23Oct1989", "3oct89", "07MAR19", "23october1989", "1JAN2000"])
@pytest.mark.parametrize("offset", [400, -926, 1101])
def test_a_glued_day_month_and_year_moves_whole_in_its_own_form(text, offset):
    # "23OCT89" got a fake of its shape ("33LJO55"), neither a date nor the patient's shift
    day, month, year = re.fullmatch(r"(\d+)([a-z]+)(\d+)", text, re.I).groups()
    full_year = int(year) + (1900 if len(year) == 2 and int(year) > 30 else 2000 if len(year) == 2 else 0)
    shifted = date(full_year, {"oct": 10, "mar": 3, "jan": 1}[month[:3].lower()], int(day)) + timedelta(days=offset)
    name = shifted.strftime("%B" if len(month) > 3 else "%b")
    name = name.upper() if month.isupper() else name.lower() if month.islower() else name
    written_year = str(shifted.year) if len(year) == 4 else f"{shifted.year % 100:02d}"
    assert shift_date_text(text, offset) == f"{shifted.day:0{len(day)}d}{name}{written_year}"
    assert shift_date_text(f"ADMITTED {text} FROM ER", offset) == f"ADMITTED {shift_date_text(text, offset)} FROM ER"


def test_a_year_month_name_and_day_is_one_date():
    # "2019-Mar-04" moved its year alone and its day in the reference year: one day off
    assert shift_date_text("2019-Mar-04", 400) == "2020-Apr-07"
    shifted = date(2019, 3, 4) - timedelta(days=926)
    assert shift_date_text("2019/mar/4", -926) == f"{shifted.year}/{shifted:%b}/{shifted.day}".lower()


@pytest.mark.parametrize("offset", [400, -926])
def test_a_range_of_two_month_day_dates_moves_both(offset):
    # "12/3-12/9" was read as 3 December 2012 followed by "/9": the 9 was kept and the rest garbled
    out = shift_date_text("12/3-12/9", offset, note_year=2019)
    first, last = (date(2019, 12, d) + timedelta(days=offset) for d in (3, 9))
    assert out == f"{_md(first)}-{_md(last)}"


@pytest.mark.parametrize("text, note_year, days", [
    ("12/30-1/2", 2019, [date(2019, 12, 30), date(2020, 1, 2)]),
    ("Dec 30 - Jan 2", 2019, [date(2019, 12, 30), date(2020, 1, 2)]),
    ("July 31-August 2, 2019", 2018, [date(2019, 7, 31), date(2019, 8, 2)]),
    ("Dec 30 - Jan 2, 2020", 2015, [date(2019, 12, 30), date(2020, 1, 2)]),
])
@pytest.mark.parametrize("offset", [400, -926, 1101])
def test_a_range_in_one_span_keeps_its_length_across_a_new_year_and_a_29_february(text, note_year, days, offset):
    # The dates of one range are in order: "Dec 30 - Jan 2" ends in the next year, and "July 31"
    # before "August 2, 2019" is in 2019 whatever year an earlier date of the note had. Read in
    # other years, the shift crossed one 29 February more or less for one end than the other.
    out = shift_date_text(text, offset, note_year=note_year)
    got = [_read_month_day(m) for m in _PATTERN.finditer(out)]
    want = [d + timedelta(days=offset) for d in days]
    assert got == [(d.month, d.day) for d in want], out


def _read_month_day(match: re.Match) -> tuple[int, int]:
    g = match.group
    if g("n2") is not None:
        return int(g("n2_a")), int(g("n2_b"))
    month = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"].index(
        g("mdy_m")[:3].lower()) + 1
    return month, int(g("mdy_d"))


def test_a_note_written_day_first_keeps_its_ambiguous_dates_day_first():
    # "03/05/2019" in a note that writes "25/04/2019" is the 3rd of May: read as 5 March, the
    # 8-day stay came out as some two months, however the output was read
    gen = SurrogateGenerator(SECRET)
    text = "Admitted 25/04/2019. Discharged 03/05/2019, review 10/05."
    dets = [(m.start(), m.end(), "DATE") for m in re.finditer(r"\d\d/\d\d(?:/\d{4})?", text)]
    doc = Document("n-dayfirst", text, meta={"patient_id": "zq-1"})
    out = apply_operator(doc, dets, "surrogate", gen).text
    offset = timedelta(days=gen.date_offset("patient:zq-1"))
    want = [date(2019, 4, 25) + offset, date(2019, 5, 3) + offset, date(2019, 5, 10) + offset]
    got = re.findall(r"\d\d/\d\d(?:/\d{4})?", out)
    assert got == [f"{want[0]:%d/%m/%Y}", f"{want[1]:%d/%m/%Y}", f"{want[2]:%d/%m}"], out


def test_a_note_written_month_first_is_read_month_first_as_before():
    gen = SurrogateGenerator(SECRET)
    text = "Admitted 04/25/2019. Discharged 05/03/2019."
    dets = [(9, 19, "DATE"), (32, 42, "DATE")]
    out = apply_operator(Document("n-us", text, meta={"patient_id": "zq-1"}), dets, "surrogate", gen).text
    offset = timedelta(days=gen.date_offset("patient:zq-1"))
    assert re.findall(r"\d\d/\d\d/\d{4}", out) == [f"{date(2019, 4, 25) + offset:%m/%d/%Y}",
                                                  f"{date(2019, 5, 3) + offset:%m/%d/%Y}"]


# ---------------------------------------------------------------------- evaluate


def test_f1_and_f2_are_those_of_the_unrounded_precision_and_recall():
    # precision 1, recall 1/7: F1 = 2/8 = 0.25 exactly; computed from the rounded recall 0.1429 it was 0.2501
    scores = _scores(1, 1, 1, 7)
    assert scores["f1"] == 0.25 and scores["f2"] == round(5 / 29, 4)
    for pred_ok, pred, found, gold in [(1, 1, 1, 6), (1, 1, 4, 7), (2, 3, 5, 9), (7, 11, 3, 13)]:
        p, r = pred_ok / pred, found / gold
        s = _scores(pred_ok, pred, found, gold)
        assert s["f1"] == round(2 * p * r / (p + r), 4) and s["f2"] == round(5 * p * r / (4 * p + r), 4)


def test_bootstrap_interval_leaves_out_draws_where_the_ratio_has_no_value():
    # one patient of ten has every prediction, all right: precision is 1 in every draw that has
    # a prediction. A draw without one has no precision, and counting it as 0 gave [0.0, 1.0].
    counts = {f"p{i}": [1, 1, 0, 0, 0, 1] for i in range(9)}
    counts["p9"] = [1, 1, 3, 3, 1, 1]
    out = bootstrap_intervals(counts, resamples=500)
    assert out["precision"] == [1.0, 1.0]
    assert out["recall"] == [1.0, 1.0]
    # leakage is defined in every draw here: the ratio of the drawn counts, never padded
    assert 0.0 <= out["leakage"][0] <= out["leakage"][1] <= 1.0


def test_counts_reconcile_and_leakage_matches_a_hand_count():
    text = "Ann Okafor met Jo at Ridgeview Hospital; Okafor's son called 555-0134."
    gold = Document("d1", text, meta={"patient_id": "p1"}, spans=[
        Span(0, 10, "PATIENT"), Span(15, 17, "PATIENT"), Span(21, 39, "HOSPITAL"), Span(41, 47, "PATIENT"),
        Span(61, 69, "PHONE")])
    other = Document("d2", "Seen by Dr Quintavius.", meta={"patient_id": "p2"}, spans=[Span(11, 21, "DOCTOR")])
    predicted = {"d1": [(0, 10, "PATIENT"), (21, 30, "NAME"), (50, 53, "NAME")], "d2": [(11, 21, "DOCTOR")]}
    outputs = {"d1": "Bea Mensah met Jo at Wexford Hospital; Okafor's Sam called 555-0134.",
               "d2": "Seen by Dr Adeyemi."}
    report = evaluate([gold, other], predicted)
    s = report.summary()
    # by hand: gold found 3 of 6 (Ann Okafor, Ridgeview Hospital, Quintavius); predictions right 3 of 4
    assert (report.overlap_gold_found, report.gold, report.overlap_pred_correct, report.pred) == (3, 6, 3, 4)
    assert s["any_overlap"]["recall"] == 0.5 and s["any_overlap"]["precision"] == 0.75
    # exact: Ann Okafor and Quintavius; the partial hospital span is not exact
    assert report.exact_gold_found == 2 and report.exact_pred_correct == 2
    assert s["per_type"]["NAME"]["recall"] == round(2 / 4, 4)  # Ann Okafor, Quintavius of 4 names
    # leakage by hand: strings of 3+ characters are Ann Okafor, Ridgeview Hospital, Okafor,
    # 555-0134, Quintavius ("Jo" is too short); Okafor and the phone are still in the output
    leak = leakage([gold, other], outputs)
    assert (leak["leaked"], leak["gold_strings"], leak["rate"]) == (2, 5, 0.4)
    units = unit_counts([gold, other], predicted, output_texts=outputs)
    totals = [sum(row[i] for row in units.values()) for i in range(6)]
    assert totals == [3, 6, 3, 4, 2, 5]


# ---------------------------------------------------------------------- surrogates and the vault


def test_one_patient_one_shift_and_one_fake_across_runs_and_the_vault_gives_back_the_originals(tmp_path):
    # a later run with another generator secret takes the patient's shift and fakes from the vault
    text = "Zorblax Quintavius seen 03/04/2019 by Dr. Okafor; ZORBLAX's son called 617-555-0134."
    dets = [(0, 18, "PATIENT"), (24, 34, "DATE"), (42, 48, "DOCTOR"), (50, 59, "PATIENT"), (72, 84, "PHONE")]
    doc = Document("n1", text, meta={"patient_id": "zq"}, spans=[Span(0, 18, "PER"), Span(24, 34, "DAY")])
    with Vault(tmp_path / "v.vault", b"k" * 32) as vault:
        first = apply_operator(doc, dets, "surrogate", SurrogateGenerator(SECRET, vault))
        assert list(reidentify([first.to_dict()], vault)) == [
            {"id": "n1", "text": text, "meta": {"patient_id": "zq"}, "label": None, "labels": None,
             "spans": [s.to_dict() for s in doc.spans]}]
    fake = first.text[:first.offset_map.edits[0].out_end]
    assert fake.split()[0].upper() in first.text and "Zorblax" not in first.text and "Okafor" not in first.text
    later = Document("n2", "Zorblax Quintavius again 03/11/2019.", meta={"patient_id": "zq"})
    with Vault(tmp_path / "v.vault", b"k" * 32) as vault:
        second = apply_operator(later, [(0, 18, "PATIENT"), (25, 35, "DATE")], "surrogate",
                                SurrogateGenerator(b"another-secret-for-run-two-000000", vault))
    assert second.text.startswith(fake + " again ")
    shifted = [date(*map(int, (y, m, d))) for m, d, y in re.findall(r"(\d+)/(\d+)/(\d{4})", first.text + second.text)]
    assert shifted[1] - shifted[0] == timedelta(days=7)
    with pytest.raises(VaultKeyError):
        Vault(tmp_path / "v.vault", b"w" * 32)


def test_the_surrogate_memory_forgets_whole_patients_least_recent_first_never_the_current_one():
    # at its bound the memory was cleared whole, the current patient too: a collision re-drawn
    # before the clear was drawn otherwise after it, and a patient's earlier original could come
    # back as another of its names' surrogate
    gen = SurrogateGenerator(SECRET)
    gen._memory.limit = 4
    first = {name: gen.surrogate(name, "PATIENT", "p-current") for name in ("Quorvane", "Tillet", "Brisca")}
    for k in range(6):  # other patients come and go while the current one is still being written
        gen.surrogate(f"Vexil{k}", "PATIENT", f"p-other-{k}")
        gen.surrogate("Quorvane", "PATIENT", "p-current")  # the current patient is met again
    assert all(("p-current", "NAME_PART", name.casefold()) in gen._memory for name in first)
    assert ("p-other-0", "NAME_PART", "vexil0") not in gen._memory  # met longest ago: forgotten whole
    assert {name: gen.surrogate(name, "PATIENT", "p-current") for name in first} == first
    # one patient larger than the bound is kept whole rather than cut
    big = SurrogateGenerator(SECRET)
    big._memory.limit = 2
    names = [big.surrogate(n, "PATIENT", "p-big") for n in ("Quorvane", "Tillet", "Brisca", "Ostrava")]
    assert all(("p-big", "NAME_PART", n) in big._memory for n in ("quorvane", "tillet", "brisca", "ostrava"))
    assert len(set(names)) == 4
