"""Abbreviations a document defines carry a suggested long form's label to the short form."""

from __future__ import annotations

from domainfm.label.abbreviations import carry, definitions

TEXT = ("Boys with Zorbel muscular dystrophy ( ZMD ) were seen. ZMD carriers and ZMD-like cases. "
        "The Master Quarry Agreement (MQA) governs; MQA terms apply. Cohort (n = 5) with pain (10%).")


def _at(text: str, sub: str, nth: int = 0) -> tuple[int, int]:
    start = -1
    for _ in range(nth + 1):
        start = text.index(sub, start + 1)
    return start, start + len(sub)


def test_definitions_find_the_shortest_long_form_whose_words_spell_the_short_form():
    found = {d.short: TEXT[d.long_start:d.long_end] for d in definitions(TEXT)}
    assert found == {"ZMD": "Zorbel muscular dystrophy", "MQA": "Master Quarry Agreement"}
    # numbers and counts in parentheses are not short forms; a short form needs its letters in order
    assert definitions("the tumour (T2) and the nodes (nerve palsy) were seen") == []


def test_a_suggested_long_form_marks_its_short_form_there_and_where_it_recurs():
    long_start, long_end = _at(TEXT, "muscular dystrophy")  # the model cut the first word: still the long form's end
    spans = [(long_start, long_end, "Disease", 0.7, "model")]
    out = carry(TEXT, spans)
    added = [(TEXT[s:e], lab, raw, src) for s, e, lab, raw, src in out if src == "abbreviation"]
    # the definition and the later whole-word use; "ZMD-like" is another word
    assert added == [("ZMD", "Disease", 0.7, "abbreviation")] * 2
    assert [s for s, *_ in out] == sorted(s for s, *_ in out)


def test_nothing_is_carried_without_a_suggested_long_form_or_over_another_span():
    assert carry(TEXT, []) == []
    other = [(*_at(TEXT, "Boys"), "Disease", 0.9, "model")]
    assert carry(TEXT, other) == other  # a span that does not end a long form carries nothing
    long_span = (*_at(TEXT, "Master Quarry Agreement"), "Clause", 0.6, "lexicon")
    taken = (*_at(TEXT, "MQA", 1), "Other", 0.8, "model")
    out = carry(TEXT, [long_span, taken])
    assert [(TEXT[s:e], lab) for s, e, lab, _, src in out if src == "abbreviation"] == [("MQA", "Clause")]
    assert taken in out  # the later "MQA" keeps the span already there


def test_a_short_form_defined_twice_takes_the_nearer_definitions_label():
    text = ("The Zorbel Anomaly (ZA) is rare. ZA again. "
            "Later the Zonal Agreement (ZA) applies. ZA binds.")
    spans = [(*_at(text, "Zorbel Anomaly"), "Disease", 0.7, "model"),
             (*_at(text, "Zonal Agreement"), "Clause", 0.6, "model")]
    carried = [lab for _, _, lab, _, src in carry(text, spans) if src == "abbreviation"]
    assert carried == ["Disease", "Disease", "Clause", "Clause"]
