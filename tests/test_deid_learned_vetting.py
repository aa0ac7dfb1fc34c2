"""Shape checks on learned spans no rule found (``domainfm.deid.learned_vetting``), on made-up
lines: a DATE must be a date and cut no number, a NAME/LOCATION cuts no word and, outside ALL-CAPS
notes, is no lower-case dictionary word or typo."""

from __future__ import annotations

import pytest

from domainfm.deid.learned_vetting import plausible

LINE = ("hgb 10.4, pain 7/10 at 9pm (3p-9p), gas 7.41/38/-2, map 10-15; seen 3/4/2019, on March 3 "
        "and at Christmas, born in the '90s, moved in 2021; beta blokers; she called Ann from Quarvel; Tromsby came")


def check(piece: str, label: str, *, all_caps: bool = False, occurrence: int = 0) -> bool:
    start = -1
    for _ in range(occurrence + 1):
        start = LINE.index(piece, start + 1)
    return plausible(LINE, start, start + len(piece), label, all_caps=all_caps)


@pytest.mark.parametrize("piece", ["3/4/2019", "March 3", "Christmas", "'90s", "2021"])
def test_dates_that_are_dates_stay(piece):
    assert check(piece, "DATE")


@pytest.mark.parametrize("piece,why", [
    ("4", "a digit of a decimal (10.4)"), ("10.", "the other half of it"), ("7/", "half of a pain score"),
    ("9pm", "a clock time"), ("9p", "a shift's end"), ("41/38/", "a piece of a lab value"),
    ("10-15", "a range after a measurement's name"), ("Ann", "no date shape at all"),
])
def test_date_shapes_that_are_no_dates_go(piece, why):
    assert not check(piece, "DATE"), why


def test_names_and_places():
    assert check("Ann", "PATIENT") and check("Quarvel", "LOCATION") and check("Tromsby", "NAME")
    assert not check("An", "PATIENT")  # cuts a word
    assert not check("called", "PATIENT") and not check("blokers", "NAME")  # English / a typo of it
    # in an ALL-CAPS note case says nothing, so a dictionary word is not ruled out by its case
    assert check("called", "PATIENT", all_caps=True)
    # a title or relation right before backs the model on a dictionary word
    cued = "seen by dr. hope and her daughter may; nurse practitioner grace came"
    for word in ("hope", "may", "grace"):
        start = cued.index(word)
        assert plausible(cued, start, start + len(word), "NAME", all_caps=False), word
    assert not plausible(cued, cued.index("came"), cued.index("came") + 4, "NAME", all_caps=False)
    # a place's preposition or verb backs a place (not a name)
    place = "she was sent to heartwood and felt hope"
    at = place.index("heartwood")
    assert plausible(place, at, at + 9, "LOCATION", all_caps=False)
    assert not plausible(place, at, at + 9, "NAME", all_caps=False)
    # so does a word no dictionary explains beside it: the other half of a two-word name
    pair = "visit from zyqvo perpetua today"
    assert plausible(pair, pair.index("perpetua"), pair.index("perpetua") + 8, "NAME", all_caps=False)
    # labels the checks do not know about pass (phones, ids: their shapes are the rules' business)
    assert check("9pm", "PHONE")
    assert not plausible(LINE, 5, 5, "NAME", all_caps=False)


def test_drugs_no_hand_list_holds_are_explained_by_the_open_drug_dictionary():
    # generic and brand names of an open drug dictionary (vocab.drug_names), in lower case
    line = "started neratinib and multaq today; seen by zyqvo"
    for drug in ("neratinib", "multaq"):
        at = line.index(drug)
        assert not plausible(line, at, at + len(drug), "NAME", all_caps=False), drug
    assert plausible(line, line.index("zyqvo"), line.index("zyqvo") + 5, "NAME", all_caps=False)


def test_the_drug_dictionary_leaves_out_every_name_a_locale_lists():
    from domainfm.deid.recognizers import vocab

    drugs = vocab.drug_names()
    assert len(drugs) > 20_000 and {"fexofenadine", "neratinib", "tinidazole"} <= drugs
    # brand names that are also people's names in Faker's lists stay possible names
    names_too = {"corwin", "laurine", "mareen"}
    assert names_too <= vocab.drug_dictionary_words() and not names_too & drugs



@pytest.mark.parametrize("word, kept", [
    # names with letters outside ASCII: cut at the accents, "ukasz", "rgen", "garc"... were taken
    # for typos of English words and the names dropped
    ("łukasz", True), ("jürgen", True), ("garcía", True), ("rodríguez", True), ("élodie", True), ("ramón", True),
    # words whose plain spelling is English stay explained, as their plain spelling is
    ("café", False), ("naïve", False), ("fiancé", False),
])
def test_words_with_accents_are_judged_whole(word, kept):
    line = f"visit from {word} today"
    at = line.index(word)
    assert plausible(line, at, at + len(word), "NAME", all_caps=False) is kept
