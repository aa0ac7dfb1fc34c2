"""Regex pattern data per identifier family, with the validation hooks they name.

Each family is a list of :class:`PatternSpec`; the registry in ``__init__`` combines families
into recognizer sets per profile. Scores: 0.85+ for self-evident formats (SSN, e-mail, a
labelled MRN), 0.5-0.7 for formats that need a plausibility check, <= 0.45 for weak evidence.
"""

from __future__ import annotations

import re

from domainfm.deid.recognizers.base import PatternSpec, validator, word_before
from domainfm.deid.recognizers.offline import generic_tlds, offline_tld_extract
from domainfm.deid.recognizers.vocab import (
    COUNTRIES, NATIONALITIES, RELATION_WORDS, STATE_ABBRS, US_CITIES, US_STATES, WORLD_CITIES, gazetteer_pattern,
    is_english, stop_words,
)

MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
          r"|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)")
HOLIDAY = (r"(?:(?:christmas|x-?mas)(?: eve| day)?|thanksgiving|easter|new year'?s(?: eve| day)?|"
           r"independence day|memorial day|labor day|veterans day|halloween|valentine'?s day|"
           r"hanukkah|passover|ramadan|yom kippur|rosh hashanah)")
_ORD = r"(?:st|nd|rd|th)"
_YEAR = r"(?:1[89]\d\d|20\d\d)"
# a day of the month as an ordinal word ("March the fourth", "the twenty-first of May")
_ORD_WORD = (r"(?:(?:twenty|thirty)[- ]first|(?:twenty[- ])?(?:second|third|fourth|fifth|sixth|seventh|eighth|ninth)|"
             r"first|tenth|eleventh|twelfth|thirteenth|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|"
             r"nineteenth|twentieth|thirtieth)")

# words right before "12/5" that make it a measurement, not a date
NOT_DATE_BEFORE = frozenset(
    "bp sbp dbp nbp abp nibp cuff map art aline a-line ps psv peep cpap bipap ac imv simv vent "
    "settings setting set abg abgs vbg gas gases ratio ie i:e strength cvp pap paps pad wedge "
    "pcwp rate hr rr tv vt fio2 fi02 o2 sat sats x mmhg tidal pressures pressure pressors "
    "ps/peep peep/ps bs rsbi mdi inr bili lytes pa ra pas grade gr score scores scale "
    "nc fm levels level k mg ca phos hct hgb ptt tid bid qid q".split()
)
# a unit or a measurement's word on the same line ("5/5 strength", "1/2 NS"); the next line's
# first word ("...12/3/19\nCC: chest pain", "L arm") says nothing about the date before it
_NOT_DATE_AFTER = re.compile(
    r"[ \t]*(?:%|mm|cm|ml|cc|mg|mcg|meq|units?\b|u\b|l\b|lpm|liters?|ns\b|strength|tabs?\b|amps?\b|"
    r"normal|way\b|of\b|dose|hours?\b|hrs?\b|min\b|x\b|ratio|split|peep|ps\b|bpm|mmhg|psi|breaths?|"
    r"beats?|sec\b|kg|lb|times)", re.IGNORECASE)
_NEAR_DATE = re.compile(r"(?P<m>\d{1,2})/(?P<d>\d{1,2})\s*(?:-|to|or|and|thru|through|,)\s*$", re.IGNORECASE)
_DATE_CONTEXT = frozenset(
    "on since from until till thru through before after dated date dob born admitted adm "
    "admission discharged started start started stopped placed done d/c'd dc'd changed removed "
    "inserted drawn extubated intubated seen last next due expired died ended held for in at "
    "and to - note".split()
    # events named as nouns ("s/p extubation 2/3", "since admission 7/2")
    + "extubation intubation reintubation insertion placement removal surgery op procedure cath "
    "transfer discharge onset arrival".split()
    # a weekday ("Tues 3/4") and imaging studies ("CXR 3/4 showed", "echo 3/4: EF 30%")
    + "mon tue tues wed weds thu thur thurs fri sat sun monday tuesday wednesday thursday friday "
    "saturday sunday cxr xray x-ray film films ct cta mri mra echo tte tee eeg ekg ecg kub egd scan".split()
)
# "L AC 5/14": the antecubital site after a side, not the ventilator mode that vetoes a date
_SIDE_BEFORE_AC = r"(?:^|[^\w/])(?:r|l|rt|lt|right|left)\.?\s+a\.?c\.?\s*$"


# what follows a range's first day when the range's last day carries the year ("3/4-3/9/19")
_RANGE_TO_FULL_DATE = re.compile(r"\s?[-–]\s?(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01])/(?:\d{4}|\d{2})(?![\w/])")


def _scale_value(m: int, d: int) -> bool:
    """Whether "m/d" reads as a value: a fraction ("1/2 NS"), a pain or strength scale ("4/10",
    "5/5") or a PS/PEEP pair ("10/5")."""
    return (m < d and d in (2, 3, 4, 8)) or d == 10 or (d == 5 and m in (5, 10, 12)) or (m == d and m in (5, 10))


# a word that heads muscle strength grades, as a label ("Motor: RUE 4/5"), right before
# the grade ("power 4/5") or before another grade in the sentence ("strength 5/5 except hip 4/5");
# "motor vehicle accident 4/5" is none of these
_SAME_SENTENCE = r"(?:(?!\.\s)[^\n])"
# the limbs and sides a grade is given for ("Motor: RUE 4/5", "Strength: left arm 4/5"); anything else
# after the label may carry a date ("Motor: intact, f/u 4/5")
_LIMB = r"(?:[RL]?[UL]E|[RL]|right|left|bilat(?:eral)?|upper|lower|extremit(?:y|ies)|arms?|legs?|hips?|knees?|" \
        r"ankles?|shoulders?|elbows?|wrists?|hands?|feet|foot)"
_STRENGTH_BEFORE = re.compile(rf"\b(?:strength|motor|power|grip)\b(?:\s*:(?:\s*{_LIMB}\b[\s:,]*){{0,3}}|\s*"
                              rf"|{_SAME_SENTENCE}{{0,40}}?(?<![\d/])[0-5][+-]?/5\b{_SAME_SENTENCE}{{0,40}})$",
                              re.IGNORECASE)
# a higher grade before a range sign: as dates "5/5-4/5" would run backwards (May 5 to April 5);
# a list ("CXR 5/5, 4/5") is no range and may well name dates, latest first
_HIGHER_GRADE_BEFORE = re.compile(r"(?<![\d/])(?P<m>[0-5])/5\s*(?:-|–|to|thru|through)\s*$", re.IGNORECASE)


def _strength_grade(text: str, start: int, m: int, d: int) -> bool:
    """Whether the "m/5" at ``start`` reads as a muscle strength grade (1/5 to 5/5): after a word
    that heads grades on its line, or as the lower end of a range from a higher grade."""
    if d != 5 or m > 5:
        return False
    if _STRENGTH_BEFORE.search(text[max(0, start - 90):start]):
        return True
    higher = _HIGHER_GRADE_BEFORE.search(text[max(0, start - 12):start])
    return higher is not None and int(higher.group("m")) > m


def _value_at(text: str, start: int, m: int, d: int) -> bool:
    """Whether the "m/d" at ``start`` reads as a value (:func:`_scale_value`, or a strength grade
    where its line says so) rather than a month and a day."""
    return _scale_value(m, d) or _strength_grade(text, start, m, d)


# the second value of a range ("1/2 to 3/4", "5/5-4/5")
_RANGE_TO_VALUE = re.compile(r"\s*(?:-|–|to|thru|through)\s*(?P<m>\d{1,2})/(?P<d>\d{1,2})(?![\w/])", re.IGNORECASE)


def _opens_range_of_values(text: str, start: int, end: int, m: int, d: int) -> bool:
    """Whether the "m/d" at ``start:end`` opens a range of two values that no dates could make:
    one running down to a lower strength grade ("5/5-4/5"), or one whose last value carries a
    unit, which is the whole range's ("from 1/2 to 3/4 strength"). "x" is no such unit: it follows
    a course of days too ("vanco 5/5-5/10 x 5d")."""
    to = _RANGE_TO_VALUE.match(text, end)
    if to is None or not _value_at(text, start, m, d):
        return False
    last_m, last_d = int(to.group("m")), int(to.group("d"))
    if d == last_d == 5 and m <= 5 and last_m < m:
        return True
    unit = text[to.end():to.end() + 12]
    return (_value_at(text, to.start("m"), last_m, last_d)
            and _NOT_DATE_AFTER.match(unit) is not None and not re.match(r"[ \t]*x\b", unit, re.IGNORECASE))


@validator("slash_date")
def _slash_date(text, match, start, end, score):
    after = text[end:end + 12]
    if _NOT_DATE_AFTER.match(after):
        return None
    if match.group("y") is None:
        # a bare "5/5" right after a number ("PEEP 10 5/5") or inside a list of values
        if match.group("y2") is not None:
            return score
        if match.group("s") == "-":
            # "7-8" is far more often a range than a date: only with a date word before it
            return score if word_before(text, start) in _DATE_CONTEXT else None
        m, d = int(match.group("m")), int(match.group("d"))
        near = _NEAR_DATE.search(text[max(0, start - 12):start])
        if near and _value_at(text, start, m, d) and _value_at(
                text, max(0, start - 12) + near.start(), int(near.group("m")), int(near.group("d"))):
            return None  # a range of values, not of dates ("pain 4/10-6/10", "4/10 to 6/10")
        if _opens_range_of_values(text, start, end, m, d):
            return None  # "from 1/2 to 3/4 strength", "5/5-4/5": the range's first value
        if word_before(text, start) in _DATE_CONTEXT or start == 0 or text[start - 1] == "\n" \
                or text[max(0, start - 2):start] == ". " or near:
            return max(score, 0.7)
        if _RANGE_TO_FULL_DATE.match(after):
            return score  # "vanco 3/4-3/9/19": a range's first day, its year written once at its end
        # a value before a colon heads what follows ("Labs 3/4: Hct 28"); a fraction never does
        if m < d and d in (2, 3, 4, 8) and re.match(r":(?:\s|$)", after):
            return score
        if _value_at(text, start, m, d):
            return None
    return score


@validator("month_alone")
def _month_alone(text, match, start, end, score):
    word = text[start:end].rstrip(".")
    low = word.lower()
    if low == "may" and not word[0].isupper():
        return None
    if low in ("may", "dec", "mar", "aug", "jun", "jan", "march"):
        # "DEC BS", "MAR" (medication record), "IABP aug", "may"/"march" as verbs
        if word_before(text, start) not in ("in", "of", "since", "early", "late", "mid", "from",
                                           "until", "through", "last", "next", "during", "this"):
            return None
    return score


@validator("month_word_case")
def _month_word_case(text, match, start, end, score):
    # "may"/"march" in lower case are verbs far more often than months ("may the first dose ...")
    if re.search(r"(?<![A-Za-z])(?:may|march)(?![A-Za-z])", text[start:end]):
        return None
    return score


@validator("slash_year")
def _slash_year(text, match, start, end, score):
    if _NOT_DATE_AFTER.match(text[end:end + 12]):
        return None
    return score


@validator("ordinal_day")
def _ordinal_day(text, match, start, end, score):
    after = text[end:end + 16].lower()
    # a day named alone ends its phrase: "on the 3rd.", "the 11th of", "by the 22nd, ..."
    if not re.match(r"\s*(?:$|[.,;:!?)\n]|of\b|and\b|or\b|at\b|in\b|" + MONTH + ")", after):
        return None
    if re.match(r"\s*(?:day|time|hour|hr|week|wk|month|floor|grade|rib|ics|intercostal|degree|"
                r"percentile|cranial|nerve|dose|attempt|episode|unit|bag|liter|try|trial|"
                r"generation|line|toe|finger|digit|stage|level|round|cycle)", after):
        return None
    return score


# words after which a number of 1900-2039 is a year: time words and the events notes date
_YEAR_WORDS_BEFORE = frozenset(
    "in since of year yr born dob circa early late mid summer winter spring fall autumn during until from "
    "s/p sp dx dx'd diagnosed through by before after in/ and mi cabg cva tia ptca pci avr mvr stent redo "
    "surgery repair transplant fx its it's".split()
)
# a word alone on its side of a hyphen, glued to the year after it ("colonoscopy-2015"; not "A1-2015")
_HYPHENED_WORD = re.compile(r"(?<![\w./-])(?P<w>[A-Za-z]{2,})-$")


def _year_after_hyphened_word(text: str, start: int, before: str) -> bool:
    """Whether a year glued by a hyphen to the word before it ("colonoscopy-2015", "s/p MI-1998")
    is that word's date, read as if a space stood there, rather than the number of a code: a word
    in capitals is a code's prefix ("ABC-2015", "XR-2000") unless years follow it ("CABG-2009").
    A function word glued to a number labels a quantity ("IN-2000 OUT-1500": fluid in and out),
    even one that years follow when a space stands there ("in 2000")."""
    from spacy.lang.en.stop_words import STOP_WORDS  # spaCy loads on first use, not at import

    word = _HYPHENED_WORD.search(text[max(0, start - 30):start])
    return word is not None and word.group("w").lower() not in STOP_WORDS \
        and (not word.group("w").isupper() or before in _YEAR_WORDS_BEFORE)


@validator("year4")
def _year4(text, match, start, end, score):
    year = int(text[start:end])
    after = text[end:end + 8].lower()
    if re.match(r"[ \t]*(?:cc|ml|mg|kcal|cal|g\b|gm|units|kg|mcg|/|x\b|%|cm|mm|ms|ml/|-\s*\d{4}|:)", after):
        return None
    before = word_before(text, start)
    hyphened = text[start - 1:start] == "-"  # the pattern lets one in only after a letter
    if hyphened and not _year_after_hyphened_word(text, start, before):
        return None
    context = before in _YEAR_WORDS_BEFORE \
        or bool(re.search(MONTH + r"\.?,?\s*$", text[max(0, start - 12):start], re.I)) \
        or bool(re.search(r"(?<![\w.])(?:19|20)\d\d\s*(?:,|/|&|and|or)\s*$", text[max(0, start - 12):start], re.I))
    # (the last: a year listed after another, "2003,2005", shifts with it, or the pair shows the offset)
    if not context and 2000 <= year <= 2039 and re.match(r"[.,;)]", text[end:end + 1]) \
            and word_before(text, start) not in ("at", "until", "till", "from", "to", "by", "@"):
        context = True
    if 1960 <= year <= 1999 or (year <= 2039 and context):
        if not context and not hyphened and text[max(0, start - 3):start].strip()[-1:] in ("@", "-"):
            return None
        return score if context else score - 0.15
    return None


# words that take years but not clock times ("from 1900-2000" is as often visiting hours)
_YEAR_RANGE_CONTEXT = frozenset("smoked smoking worked lived quit years yrs year employed married served born dob "
                                "dx dx'd diagnosed s/p sp mi cabg cva tia ptca pci avr mvr stent stents redo surgery "
                                "surgeries repair transplant fx circa".split())


@validator("year_range")
def _year_range(text, match, start, end, score):
    """"1980-2005", "2003/2005": two years, rising, each reported alone (the date shift moves each).
    Military times look the same ("1900-2000", "2000-2030"), so a pair whose numbers could both
    be clock times needs a word before it that years take ("from 2001-2004")."""
    first, last = int(match.group("a")), int(match.group("b"))
    if not first < last <= 2039:
        return None
    if re.match(r"[ \t]*(?:cc|ml|mg|kcal|cal|g\b|gm|units|kg|mcg|x\b|%|cm|mm|hrs?\b|h\b)", text[match.end():match.end() + 8],
                re.I):
        return None
    clock = first % 100 < 60 and last % 100 < 60
    if clock and word_before(text, match.start()) not in _YEAR_RANGE_CONTEXT:
        return None
    return score


@validator("phone_context")
def _phone_context(text, match, start, end, score):
    window = text[max(0, match.start() - 30):match.start()].lower()
    if re.search(r"(?:tel|phone|ph|cell|mobile|home|work|office|call|contact|number|#|fax|pager|"
                 r"beeper|reached|at)\W*$", window):
        return score
    if word_before(text, match.start()) in RELATION_WORDS:
        return score  # "daughter 555-0142"
    return None


@validator("ssn")
def _ssn(text, match, start, end, score):
    digits = re.sub(r"\D", "", text[start:end])
    if len(digits) != 9 or digits[:3] in ("000", "666") or digits[3:5] == "00" or digits[5:] == "0000":
        return None
    if len(set(digits)) == 1:
        return None
    return score


@validator("dea")
def _dea(text, match, start, end, score):
    d = [int(c) for c in text[start + 2:end]]
    return score if (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10 == d[6] else None


_VIN_VALUES = {**{str(n): n for n in range(10)}, **dict(zip("ABCDEFGH", range(1, 9))),
               **dict(zip("JKLMN", range(1, 6))), "P": 7, "R": 9, **dict(zip("STUVWXYZ", range(2, 10)))}
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


@validator("vin")
def _vin(text, match, start, end, score):
    value = text[start:end]
    if not any(c.isdigit() for c in value):
        return None
    check = sum(_VIN_VALUES[c] * w for c, w in zip(value, _VIN_WEIGHTS)) % 11
    return score if value[8] == ("X" if check == 10 else str(check)) else None


@validator("luhn")
def _luhn(text, match, start, end, score):
    digits = [int(c) for c in text[start:end] if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return None
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return score if total % 10 == 0 else None


@validator("iban")
def _iban(text, match, start, end, score):
    code = re.sub(r"\s", "", text[start:end]).upper()
    if not 15 <= len(code) <= 34:
        return None
    moved = code[4:] + code[:4]
    number = "".join(str(int(c, 36)) for c in moved)
    return score if int(number) % 97 == 1 else score * 0.6


@validator("labelled_id")
def _labelled_id(text, match, start, end, score):
    value = text[start:end]
    if sum(c.isdigit() for c in value) < 3:
        return None
    return score


@validator("long_number")
def _long_number(text, match, start, end, score):
    value = text[start:end]
    if len(set(value)) == 1:
        return None
    return score


_AMBIGUOUS_PLACES = None


@validator("gazetteer")
def _gazetteer(text, match, start, end, score):
    global _AMBIGUOUS_PLACES
    if _AMBIGUOUS_PLACES is None:
        _AMBIGUOUS_PLACES = stop_words()
    value = text[start:end]
    if value.lower() in _AMBIGUOUS_PLACES:
        if not value[:1].isupper():
            return None
        return score * 0.7
    return score


@validator("email")
def _email(text, match, start, end, score):
    return score if offline_tld_extract()(text[start:end]).fqdn else None


@validator("generic_tld")
def _generic_tld(text, match, start, end, score):
    # generic top-level domains of three letters or more from the bundled public-suffix list
    # (read once, cached); two-letter country codes are left out: "mg.kg/d", "ns.ml/hr" are doses
    if match.group("tld").lower() not in generic_tlds():
        return None
    if all(is_english(label) for label in text[start:match.end("tld")].lower().split(".")):
        return None  # "home.day/night", "bedside.stable.family/...": words and missing spaces
    return _bare_url(text, match, start, end, score)


@validator("bare_url")
def _bare_url(text, match, start, end, score):
    host = text[start:end].split("/")[0]
    labels = host.split(".")
    if len(labels[0]) < 3 and labels[0].lower() != "www":
        return None
    return score


@validator("handle")
def _handle(text, match, start, end, score):
    # "@home", "@baseline", "@St", "@CVICU", "@Q4H", "@12AM", "@83CC/HR": notes write "@" for "at"
    # before a word, an abbreviation, a time or a rate; a user name starts with a letter, is not
    # written in capitals, and is no word unless it holds a digit, "_" or "."
    name = text[start + 1:end]
    if not 3 <= len(name) <= 30 or not (name[0].isalpha() or name[0] == "_") or name.isupper():
        return None
    if name.isalpha() and (is_english(name.lower()) or name.lower() in stop_words() or len(name) < 4):
        return None
    return score


# --- families -----------------------------------------------------------------------------

_YEAR_RANGE = r"(?<![\w.:/-])(?P<a>(?:19|20)\d\d)\s?[-–/]\s?(?P<b>(?:19|20)\d\d)(?![\w:/-]|\.\d)"

DATES = [
    # not after "3-" (a range of numbers), but after a date ("12/3-12/9", "12/3/01-12/9/01")
    PatternSpec("numeric", r"(?<![\w./])(?<!\d:)(?:(?<!\d-)|(?<=/\d-)|(?<=/\d\d-)|(?<=/\d{4}-))"
                r"(?P<m>0?[1-9]|1[0-2])(?P<s>[/-])(?P<d>0?[1-9]|[12]\d|3[01])"
                r"(?:(?P=s)(?P<y>\d{4}|\d{2})|\.(?P<y2>\d{2})(?!\d))?(?![\w/]|\.\d|-\d(?!\d?/))"
                # a colon and a digit after it ("3:1") make a ratio or a time of "5/5", but a date
                # with its year may be glued to the text it heads ("3/4/19:3VD"): not to a number
                r"(?(y)(?!:\d+(?![A-Za-z\d]))|(?!:\d))", "DATE", 0.6,
                validate="slash_date", veto_before=NOT_DATE_BEFORE, keep_before=_SIDE_BEFORE_AC),
    # a full date with a four-digit year is a date whatever letters are glued to it: a missing
    # space ("DOB:01/02/1930MRN", "on3/4/2005") must not leave a birth date in clear
    PatternSpec("numeric_glued", r"(?<=[A-Za-z])(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01])/(?:19|20)\d\d(?![\d/])"
                r"|(?<![\d./])(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01])/(?:19|20)\d\d(?=[A-Za-z])", "DATE", 0.6),
    PatternSpec("dotted", r"(?<![\w.])(?:0?[1-9]|[12]\d|3[01])\.(?:0?[1-9]|1[0-2])\.(?:\d{4}|\d{2})(?!\w|\.\w)"
                r"|(?<![\w.])(?:0?[1-9]|1[0-2])\.(?:0?[1-9]|[12]\d|3[01])\.(?:\d{4})(?!\w|\.\w)",
                "DATE", 0.6),
    # with a time as ISO 8601 and logs write it: seconds, fractions, a zone ("T10:22:00.5Z", "+01:00")
    PatternSpec("iso", rf"\b{_YEAR}[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])"
                r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z\b|[+-][01]\d:?[0-5]\d(?!\d))?)?(?![\w/])",
                "DATE", 0.85),
    PatternSpec("month_day", rf"\b{MONTH}\.?\s*(?:the\s+)?\d{{1,2}}{_ORD}?(?!\d|:\d)(?:,?\s*(?:{_YEAR}|'\d\d))?\b",
                "DATE", 0.8),
    PatternSpec("day_month", rf"\b\d{{1,2}}{_ORD}?(?:\s+of)?(?:[\s-]*|/){MONTH}\b\.?(?:[\s,/-]*(?:{_YEAR}|\d\d\b))?",
                "DATE", 0.8),
    PatternSpec("month_year", rf"\b{MONTH}\.?(?:\s+of)?[\s,-]*(?:{_YEAR}|'\d\d)\b", "DATE", 0.8),
    # a season before its year narrows the date to three months, finer than Safe Harbor's year: the
    # season joins the span so the date shift moves it with the year ("Spring 2019", "winter of '18")
    PatternSpec("season_year", rf"\b(?:spring|summer|fall|autumn|winter)(?:\s+of)?[\s,-]*(?:{_YEAR}|'\d\d)\b",
                "DATE", 0.8),
    # a day range ("March 4-6, 2019") as one date, so the surrogate moves both days by the patient's
    # offset (the last day found alone moved by the lone-day rule: a wrong interval)
    PatternSpec("month_day_range", rf"\b{MONTH}\.?\s*\d{{1,2}}{_ORD}?\s?[-–]\s?"
                rf"(?:0?[1-9]|[12]\d|3[01]){_ORD}?(?![\d/:.]|\s*(?:%|mg|mcg|ml|cc|units?\b|l\b|days?|weeks?|"
                rf"months?|years?|hours?|hrs?|times|x\b))(?:,?\s*(?:{_YEAR}|'\d\d)\b)?", "DATE", 0.75),
    # year first with the month's name ("2019-Mar-04", "2019 MAR 04")
    PatternSpec("year_month_day", rf"\b{_YEAR}(?P<s>[-/. ]){MONTH}(?P=s)(?:0?[1-9]|[12]\d|3[01])(?![\w/-])",
                "DATE", 0.85),
    # month, day and year joined by hyphens or slashes ("Mar-04-2019", "MAR/4/19")
    PatternSpec("month_day_year_joined", rf"\b{MONTH}\.?(?P<s>[-/])(?:0?[1-9]|[12]\d|3[01])(?P=s)"
                rf"(?:{_YEAR}|\d\d)(?![\w/-])", "DATE", 0.8),
    # the day as an ordinal word: "March the fourth", "the twenty-first of May, 2019"
    # (the lookaheads name the first letters the months and ordinals can have: without them every
    # word start tries some 40 alternatives, 2.7x the time over the PhysioNet notes, same matches)
    PatternSpec("month_ordinal_word", rf"\b(?=[adfjmnos]){MONTH}\.?\s+(?:the\s+)?{_ORD_WORD}\b(?:,?\s*{_YEAR}\b)?"
                rf"|\b(?=[tfsen])(?:the\s+)?{_ORD_WORD}\s+(?:of\s+)?{MONTH}\b\.?(?:,?\s*{_YEAR}\b)?", "DATE", 0.7,
                validate="month_word_case"),
    PatternSpec("month", r"\b(?:january|february|march|april|may|june|july|august|september|october"
                r"|november|december|jan|feb|mar|apr|jun|jul|aug|sept?|oct|nov|dec)\b\.?", "DATE", 0.6,
                validate="month_alone"),
    PatternSpec("ordinal", rf"\b(?:the|on)\s+(?P<o>\d{{1,2}}{_ORD})\b", "DATE", 0.5, group="o",
                validate="ordinal_day"),
    PatternSpec("year_apostrophe", r"(?<![\w'])'(?P<y>\d\d)\b(?!')|(?<![\w'])(?P<y2>\d\d)'(?![\w'])",
                "DATE", 0.6),
    # a hyphen may glue a word to the year ("colonoscopy-2015"): the validator tells a code ("ABC-2015")
    PatternSpec("year", r"(?:(?<![\w.:/-])|(?<=[A-Za-z]-))(?:19|20)\d\d(?![\w:/]|\.\d|-\d)", "DATE", 0.6,
                validate="year4"),
    PatternSpec("year_range", _YEAR_RANGE, "DATE", 0.6, group=("a", "b"), validate="year_range"),
    # decades ("the 1990s", "'80s", "mid-1990s", "pre-2000s", "1990s-2000s"); a bare "80s" is left
    # alone: "SBP 80s", "sats in the 90s", and so is "the mid 90s": "sats mid 90s" reads the same
    PatternSpec("decade", r"(?:(?<![\w.:/-])|(?<=\bmid-)|(?<=\bearly-)|(?<=\blate-)|(?<=\bpre-)|(?<=\bpost-)|(?<=0s-))"
                r"(?:19|20)\d0'?s\b|(?<![\w'])'\d0s\b", "DATE", 0.6),
    PatternSpec("month_slash_year", r"(?<![\w./])(?<!\d:)(?:0?[1-9]|1[0-2])/(?P<y>3[2-9]|[4-9]\d|0\d|(?:19|20)\d\d)"
                r"(?![\w/]|[.:]\d)", "DATE", 0.6, veto_before=NOT_DATE_BEFORE, validate="slash_year"),
    # a month and a two-digit year joined by a hyphen ("Dec-89"; "may" is left out: a verb too)
    PatternSpec("month_hyphen_year", r"\b(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|june?|july?|aug(?:ust)?"
                r"|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?-(?P<y>\d\d)(?![\w/-]|[.:]\d)",
                "DATE", 0.6),
    # day, month and year written as one word ("23OCT89", "3Dec2019"), as some systems print them
    PatternSpec("day_month_year_glued", rf"\b(?:0?[1-9]|[12]\d|3[01]){MONTH}(?:{_YEAR}|\d\d)\b", "DATE", 0.8),
    PatternSpec("year_after_event", r"\b(?:mi|ami|cabg|cva|tia|ptca|pci|avr|mvr|stent|redo|nstemi|stemi|chf|dx|"
                r"dx'd|diagnosed|turp|ppm|aicd|surgery|repair|transplant)\s+(?:x\s?\d\s+)?(?P<y>[3-9]\d|0\d)"
                r"(?![\w.%/-]|\.\d|\s*(?:%|mm|cm|ml|cc|mg|mcg|units?|min|minutes|hours?|hrs?|days?|weeks?|months?|years?|yrs?|"
                r"sec|x\b|times|lbs?|kg|pts?|patients|mmhg|beats|bpm|degrees?|/))", "DATE", 0.5, group="y"),
    PatternSpec("holiday", rf"\b{HOLIDAY}\b", "DATE", 0.6),
]

_PHONE = (r"(?<![\w/.])(?:\+?1[\s.-]?)?(?:\(\s*\d\d\d\s*\)|\d\d\d)[\s.\-/]{0,2}\d{3}[\s.\-/]{1,2}"
          r"\d{4,5}(?:\s*[,;]?\s*(?:x|ext\.?|extension)\s*[.:#]?\s*\d{1,5})?(?![\w/-])")
# a number dialled from abroad: "+", the "00" international prefix or North America's "011", the
# country code, then the national number in groups ("+44 (0)20 7946 0018", "0044 20 7946 0018",
# "00 353 1 234 5678", "011 44 20 7946 0018"); after "011" no code starts with "1" (that is dialled alone)
_INTL = (r"(?:\+|00\s?(?=[1-9])|011[\s.-]?(?=[2-9]))\d{1,3}[\s.-]?(?:\(\d{1,4}\)[\s.-]?)?\d{1,4}"
         r"(?:[\s.-]?\d{2,4}){1,4}")
# a number written without a break, a phone only beside a word that says so: ten digits
# ("6175550143"), the North American "1" before them ("16175550143"), or the "00" or "011"
# international prefix, a country code and the national number ("00442079460018"; at most 15
# digits, E.164). After "011" at least nine: a British number of an "011x" area has eight there
_BARE_NUMBER = r"(?:1?[2-9]\d{9}|00[1-9]\d{7,14}|011[2-9]\d{8,14})(?![\w/-]|[.,]\d)"
# the words that say so before it: a phone word, or calling, texting, paging ("call back on ...")
_BARE_CUE = (r"\b(?:tel|telephone|phone|cell|cellphone|mobile|mob|whatsapp|pager|beeper|contact|"
             r"call(?:ed|ing)?|text(?:ed)?|reach(?:ed)?)\b(?:(?:\s+[a-z']+){0,2}?\s+(?:at|on|@))?\.?"
             r"\s*(?:number|no\.?|num|#)?[\s:#.-]*")
# ... or after it ("6175550143 is her number", "... was his cell")
_BARE_NUMBER_WORD = (r"\s+(?:is|was)\s+(?:(?:his|her|their|my|your|our)\s+)?"
                     r"(?:(?:home|work|cell|mobile|contact|best|new|phone)\s+)?(?:number|phone|cell|mobile)\b")
_FAX_CUE = r"\bfax\b[\s:#.-]*(?:number|no\.?|#)?[\s:#.-]*"
PHONES = [
    PatternSpec("us", _PHONE, "PHONE", 0.7),
    PatternSpec("fax", _FAX_CUE + r"(?P<n>" + _PHONE[len(r"(?<![\w/.])"):] + "|" + _BARE_NUMBER + ")",
                "FAX", 0.85, group="n"),
    PatternSpec("fax_intl", _FAX_CUE + rf"(?P<n>{_INTL})(?![\w-]|[.,:]\d)", "FAX", 0.85, group="n",
                validate="intl_phone"),
    PatternSpec("local", r"(?<![\w./-])\d{3}-\d{4}(?![\w/-])", "PHONE", 0.55, validate="phone_context"),
    PatternSpec("pager", r"\b(?:pager|beeper|pgr|pg|page|beep|p)\b\s*(?:number|no\.?|num|#)?[\s:#.]*(?P<n>\d{4,6})\b",
                "PHONE", 0.7, group="n"),
    # a hospital extension to page or call at ("page me at 4-4412", "reach her at 55012"); four
    # digits alone after "at" are a time ("call at 1400"), so only the hyphenated or 5-digit forms
    PatternSpec("page_at", r"\b(?:page|paged|paging|pager|beeper|beep|call|reach|reached)\b(?:\s+[A-Za-z]+){0,2}?"
                r"\s+(?:at|@)\s*(?P<n>\d-\d{4}|\d{5})\b(?![:.]\d)", "PHONE", 0.65, group="n"),
    # an extension said alone ("ext. 4432", "call x4432"); "x4" alone is "times 4"
    PatternSpec("extension", r"\b(?:ext|extension)\b\.?\s*[:#]?\s*(?P<n>\d{4,5})\b(?!\s*(?:°|deg))", "PHONE", 0.7,
                group="n"),
    PatternSpec("extension_x", r"(?<![\w.])x\s?(?P<n>\d{4,5})\b", "PHONE", 0.6, group="n", validate="phone_context"),
    # a number of any country's shape after the word that says it is one ("Mobile 07700 900123",
    # "tel. 0490 75 40 81"); without the word such digit groups are doses, counts and codes
    PatternSpec("after_phone_word", r"\b(?:tel|telephone|phone|cell|cellphone|mobile|mob|whatsapp)\b\.?"
                r"\s*(?:number|no\.?|num|#)?[\s:#.-]*(?P<n>(?:\(\d{1,4}\)\s?|\d{2,5}[\s.-])\d{2,6}"
                r"(?:[\s.-]\d{2,4}){0,3}(?![\w/:-]|[.,]\d))", "PHONE", 0.7, group="n",
                validate="loose_phone"),
    # without a break the digits alone would be an ID ("Phone: 16175550143"), so the word decides
    PatternSpec("run_together", _BARE_CUE + rf"(?P<n>{_BARE_NUMBER})", "PHONE", 0.7, group="n"),
    PatternSpec("run_together_before_word", rf"(?<![\w.,/+-])(?P<n>{_BARE_NUMBER}){_BARE_NUMBER_WORD}", "PHONE",
                0.7, group="n"),
    PatternSpec("intl", rf"(?<![\w+])(?=\+){_INTL}(?![\w-])", "PHONE", 0.7, validate="intl_phone"),
    PatternSpec("intl_00", rf"(?<![\w+.,:/-])(?=00|011){_INTL}(?![\w-]|[.,:]\d)", "PHONE", 0.7, validate="intl_phone"),
]
# looser phone shapes of non-US numbers ("0490 75 40 81", "(37) 788-063"), for the generic set
PHONES_LOOSE = [
    PatternSpec("loose", r"(?<![\w/.,:-])(?:\(\d{1,4}\)\s?|\d{2,5}[\s.-])\d{2,4}(?:[\s.-]\d{2,4}){0,3}(?![\w/.,:-]|\.\d)",
                "PHONE", 0.4, validate="loose_phone"),
]


_HHMM = re.compile(r"(?:[01]\d|2[0-3])[0-5]\d")


@validator("intl_phone")
def _intl_phone(text, match, start, end, score):
    value = text[start:end]
    dialled = value.startswith(("00", "011"))
    # the country code, then the national number with a written trunk "(0)" left out
    code, national = re.fullmatch(r"(?:\+|011[\s.-]?|00\s?)(\d+)(.*)", value.replace("(0)", "", 1), re.S).groups()
    digits = len(code) + sum(c.isdigit() for c in national)
    if digits < 9 or (digits < 11 and not re.search(r"[\s.()-]", value)):
        return None
    if code[0] == "1" and digits != 11:
        return None  # a North American number is ten digits after its 1 ("+1200 500 300" is a fluid balance)
    if len(code) <= 3:
        if not 6 <= digits - len(code) <= 12:
            return None
    elif dialled or digits > 15:
        return None  # after "00" or "011" only a code set apart says where the number starts
    if dialled:
        groups = re.findall(r"\d+", value)
        if national.lstrip(" .-(").startswith("00") or all(_HHMM.fullmatch(g) for g in groups):
            return None  # "0015 0030 0045": 24-hour times, not a country code
    return score


@validator("loose_phone")
def _loose_phone(text, match, start, end, score):
    digits = sum(c.isdigit() for c in text[start:end])
    if not 7 <= digits <= 13:
        return None
    return score


# An address's parts are bounded as RFC 5321 bounds them: a user name of at most 64 characters, a
# domain label of at most 63. Unbounded, every word start in a long hyphenated run ("1990s-1990s-")
# was scanned to the run's end, and 20,000 such characters took seconds.
_LOCAL = 64
_LABEL = r"[\w-]{1,63}"

CONTACT = [
    PatternSpec("email", rf"\b[\w.+%-]{{1,{_LOCAL}}}@{_LABEL}(?:\.{_LABEL})+\b", "EMAIL", 0.9, validate="email"),
    PatternSpec("url", r"\b(?:https?://|ftp://|www\d{0,3}\.)[^\s<>\"'()]+[^\s<>\"'().,;:!?]", "URL", 0.85),
    PatternSpec("bare_url", r"(?<![@\w.-])[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.(?:com|org|net|edu|gov|mil|"
                r"info|biz|io|co\.uk|org\.uk|ac\.uk)\b(?:/[^\s<>\"'()]*[^\s<>\"'().,;:!?])?", "URL", 0.6,
                validate="bare_url"),
    # an address written to dodge harvesters: "zq [at] example [dot] com", "zq(at)example.org"
    PatternSpec("email_obfuscated", rf"\b[\w.+%-]{{1,{_LOCAL}}}\s*[\[(<{{]\s*at\s*[\])>}}]\s*{_LABEL}"
                rf"(?:\s*(?:[\[(<{{]\s*dot\s*[\])>}}]|\.)\s*{_LABEL})+\b", "EMAIL", 0.85),
    # the same spelled out in words: "zq dot quint at example dot org" (a pronoun or a verb before
    # "at" is no user name: "reach him at ...")
    PatternSpec("email_spelled", rf"\b(?!(?:him|her|them|me|us|you|it|is|was|are|be|mail|email|e-mail|reached|"
                rf"contact|contacted|written)\s)[\w+%-]{{1,{_LOCAL}}}(?:\s+dot\s+[\w+%-]{{1,{_LOCAL}}}){{0,8}}"
                rf"\s+at\s+{_LABEL}(?:\s+dot\s+{_LABEL}){{0,8}}"
                r"\s+dot\s+(?:com|org|net|edu|gov|mil|io|info|biz|co|us|uk|ca|de|fr)\b", "EMAIL", 0.85),
    # a user name on a social network or messaging service ("@zquintavius", "@zq_1970"): letters,
    # digits and underscores after an "@" that stands alone; "@home", "@bedside" (notes write "@"
    # for "at") are words, and "@1500" a time
    PatternSpec("handle", r"(?<![\w.@/+-])@(?=[a-z0-9_.]*[a-z])[a-z0-9_]+(?:\.[a-z0-9_]+)*\b(?!@|-)", "ID", 0.7,
                validate="handle"),
    # a host under any other generic top-level domain (".health", ".clinic", ".app"), when a path
    # follows: "stable.family" is a missing space, "quintavius.health/record" is a site
    PatternSpec("bare_url_path", r"(?<![@\w.-])[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.(?P<tld>[a-z]{2,24})"
                r"/[^\s<>\"'()]*[^\s<>\"'().,;:!?]", "URL", 0.6, validate="generic_tld"),
    PatternSpec("ipv4", r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w.]|\.\d)",
                "IP", 0.8),
    PatternSpec("ipv6", r"\b(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b|\b(?:[0-9a-f]{1,4}:){1,6}:(?:[0-9a-f]{1,4}:?){1,6}\b",
                "IP", 0.7),
]

_ID_KEYWORDS = {
    "MRN": r"mrn|mr\s?#|m\.r\.n\.?|medical\s+record(?:\s+(?:number|no\.?|#))?|record\s+(?:number|no\.?|#)|"
           r"med\.?\s+rec\.?(?:\s*(?:number|no\.?|#))?|"
           r"unit\s+(?:number|no\.?)|hosp(?:ital|\.)?\s*(?:number|no\.?|#|id)|patient\s+id|pt\s+id|"
           r"chart\s+(?:number|no\.?|#)|enc(?:ounter|\.)?\s*(?:id|number|no\.?|#)|csn|fin(?:\s*(?:number|no\.?|#))?|"
           r"visit\s+(?:id|number|no\.?|#)|accession(?:\s+(?:id|number|no\.?|#))?",
    "ACCOUNT": r"acct\.?(?:\s+(?:number|no\.?|#))?|account(?:\s+(?:number|no\.?|#))?|billing\s+(?:number|no\.?|#)|"
               r"routing\s+(?:number|no\.?|#)|iban",
    "HEALTH_PLAN": r"member\s+(?:id|number|no\.?|#)|subscriber\s+(?:id|number|no\.?|#)|policy(?:\s+(?:number|no\.?|#))?|"
                   r"(?:health\s+)?plan\s+(?:id|number|no\.?|#)|insurance\s+(?:id|number|no\.?|#)|"
                   r"group\s+(?:number|no\.?|#)|medicaid(?:\s+(?:id|number|no\.?|#))?|"
                   r"medicare(?:\s+(?:id|number|no\.?|#))?|beneficiary\s+(?:id|number|no\.?|#)|"
                   r"hicn|hic\s*(?:number|no\.?|#)|mbi|nhs\s+(?:number|no\.?|#)|chi\s+(?:number|no\.?|#)",
    "LICENSE": r"licen[cs]e(?:\s+(?:number|no\.?|#))?|lic\.?\s*(?:no\.?|#)|dea(?:\s+(?:number|no\.?|#))?|npi|"
               r"driver'?s?\s+licen[cs]e(?:\s+(?:number|no\.?|#))?|cert(?:ificate|\.)?\s*(?:number|no\.?|#)|"
               r"passport(?:\s+(?:number|no\.?|#))?|badge\s+(?:number|no\.?|#)",
    "DEVICE": r"serial(?:\s+(?:number|no\.?|#))?|s/n|sn|device\s+(?:id|number|no\.?|#)|model\s+(?:number|no\.?|#)|"
              r"implant\s+(?:id|number|#)|udi",
    "VEHICLE": r"vin|vehicle\s+(?:id|number|no\.?|#)|(?:license\s+)?plate(?:\s+(?:number|no\.?|#))?|tag\s+(?:number|#)",
    "ID": r"id(?:\s+(?:number|no\.?|#))?|identification\s+(?:number|no\.?|#)?|ref(?:erence)?\s+(?:number|no\.?|#)|"
          r"case\s+(?:number|no\.?|#)|claim\s+(?:number|no\.?|#)|employee\s+(?:id|number|no\.?|#)|"
          r"national\s+insurance(?:\s+(?:number|no\.?|#))?|ni\s+(?:number|no\.?)|nino",
}
_ID_VALUE = r"(?P<id>(?=[A-Z0-9-]*\d)[A-Z0-9](?:[A-Z0-9-]|\s(?=\d)){2,24}[A-Z0-9])\b"
IDS = [
    # a label ending in "#" ("MR#:", "Group # 0044") has no word boundary after it; "mrn4471229"
    PatternSpec(f"labelled_{label.lower()}", rf"\b(?:{kw})(?:(?<=#)|\b|(?<=mrn)(?=\d))\s*(?:is|was|of)?[\s:#.=-]*"
                rf"{_ID_VALUE}", label, 0.85, group="id", validate="labelled_id")
    for label, kw in _ID_KEYWORDS.items()
] + [
    # a vehicle's plate with a space inside ("vehicle plate HM 2978", "plate #: 7AZ T69"); "PLATE LETS
    # 41,000" and "PLATE AU 18" in capitals are platelets and a plateau pressure split in two
    PatternSpec("plate_spaced", r"(?:\b(?:licen[cs]e|vehicle|car|auto|registration|tag)\s+plates?"
                r"(?:\s+(?:number|no\.?|#))?|\bplates?\s*(?:number|no\.?|#|:))(?:\s+(?:is|was))?[\s:#.]*"
                r"(?P<p>(?-i:(?=[A-Z\d]*\d|[A-Z\d]+[\s-][A-Z]*\d)[A-Z\d]{1,4}[\s-][A-Z\d]{2,7}))\b(?![.,]\d)",
                "VEHICLE", 0.8, group="p"),
    PatternSpec("ssn", r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])", "SSN", 0.85, validate="ssn"),
    PatternSpec("ssn_labelled", r"\b(?:ssn|ss#|ss\s*(?:no\.?|number)|social\s+security(?:\s+(?:number|no\.?|#))?)"
                r"[\s:#.]*(?P<n>\d{3}([\s.-]?)\d{2}\2\d{4})\b", "SSN", 0.9, group="n", validate="ssn"),
    # the last four digits behind a mask ("xxx-xx-6789", "***-**-6789"): still part of the number
    PatternSpec("ssn_masked", r"(?<![\w*#-])(?:x{3}|X{3}|\*{3}|#{3})([\s.-]?)(?:x{2}|X{2}|\*{2}|#{2})\1(?P<n>\d{4})\b",
                "SSN", 0.85, group="n"),
    # Medicare Beneficiary Identifier (CMS format: 11 characters, letters never S L O I B Z)
    PatternSpec("mbi", r"\b[1-9][AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y\d]\d-?[AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y\d]\d-?"
                r"[AC-HJKMNP-RT-Y]{2}\d\d\b", "HEALTH_PLAN", 0.8, flags=0),
    # DEA registration numbers carry a check digit; VINs (North American) too
    PatternSpec("dea", r"\b[ABCDEFGHJKLMPRSTUX][A-Z9]\d{7}\b", "LICENSE", 0.75, flags=0, validate="dea"),
    PatternSpec("vin", r"\b(?=[A-HJ-NPR-Z\d]*[A-HJ-NPR-Z])[A-HJ-NPR-Z\d]{17}\b", "VEHICLE", 0.8, flags=0,
                validate="vin"),
    PatternSpec("long_number", r"(?<![\w.,/-])\d{7,}(?![\w/-]|[.,]\d)", "ID", 0.4, validate="long_number"),
    PatternSpec("credit_card", r"(?<![\w-])\d{4}[ -]?\d{4}[ -]?\d{4}[ -]?\d{1,7}(?![\w-])|(?<![\w-])\d{13,19}(?![\w-])",
                "CREDIT_CARD", 0.8, validate="luhn"),
    # a UK National Insurance number by its shape (HMRC's letters: no D F I Q U V first, no O second,
    # no BG GB NK KN NT TN ZZ; Presidio's UkNinoRecognizer reads the same shape), in capitals only:
    # "ab 12 34 56 c" in lower case is not how anyone writes it
    PatternSpec("uk_nino", r"\b(?!BG|GB|NK|KN|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b",
                "ID", 0.75, flags=0),
    PatternSpec("iban", r"\b[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){2,7}(?:\s?[A-Z0-9]{1,4})?\b", "IBAN", 0.7,
                validate="iban"),
]

_AGE_WORDS_OVER_89 = (r"ninety(?:[- ](?:one|two|three|four|five|six|seven|eight|nine))?|(?:one|a)[- ]hundred"
                      r"(?:[- ](?:and[- ])?(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
                      r"thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen))?")
_TEMPERATURE_WORDS = frozenset("t tm tmax temp temps temperature febrile afebrile fever fevers grade oral po "
                               "axillary ax rectal core tc spike spiked spiking".split())
# "yo"/"y/o" may carry the sex glued on ("92yoF")
_AGE_UNIT = (r"(?:\s*|-)(?:yo(?:\b|(?=[mfMF]\b))|y/o(?:\b|(?=[mfMF]\b))|y\.o\.?|yr?s?\.?(?:\s*|-)old\b|"
             r"years?(?:\s*|-)old\b|years\s+of\s+age\b|yrs?\b|years?\b|y\b)")
# a half year written out ("93 1/2", "91 and a half", "92½") belongs to the age: left outside its
# span, "1/2" read as a date and the bare number was no match before a unit
_HALF_YEAR = r"(?:\.\d|\s+(?:and\s+)?(?:a\s+half\b|1/2(?![\d/]))|\s?½)"
AGES_OVER_89 = [
    PatternSpec("age_over_89", rf"\b(?P<a>(?:9\d|1[01]\d){_HALF_YEAR}?)(?={_AGE_UNIT})", "AGE", 0.85, group="a"),
    PatternSpec("aged_over_89", rf"\b(?:age|aged|age:)\s*(?P<a>(?:9\d|1[01]\d){_HALF_YEAR}?)\b",
                "AGE", 0.85, group="a"),
    PatternSpec("age_first", r"(?:^|\n)[ \t]*(?P<a>9\d|1[01]\d)\s+(?=s/p|w/|with|m\b|f\b|male|female|man|woman|gentleman|lady)",
                "AGE", 0.7, group="a"),
    PatternSpec("nonagenarian", r"\b(?:nonagenarian|centenarian)\b", "AGE", 0.7),
    # in words: "ninety-two year old", "aged ninety-four", "a one hundred and one-year-old"
    PatternSpec("age_words_over_89", rf"\b(?P<a>{_AGE_WORDS_OVER_89})(?={_AGE_UNIT})", "AGE", 0.85, group="a"),
    PatternSpec("aged_words_over_89", rf"\b(?:age|aged|age:)\s*(?P<a>{_AGE_WORDS_OVER_89})\b", "AGE", 0.85, group="a"),
    # the sex glued on as case summaries write it: "92M with CHF", "a 94F s/p fall" (not "T 99F")
    PatternSpec("age_sex", r"(?<![\w.,/:-])(?P<a>9\d|1[01]\d)\s?[MF](?=\s+(?i:with|w/|s/p|h/o|p/w|c/o|who|presents?|"
                r"presenting|admitted|transferred|brought|here|pmh|hx|history|pt|patient)\b)", "AGE", 0.7, group="a",
                flags=0, veto_before=_TEMPERATURE_WORDS),
    # "she turned 93", "pt is 92." (a sat or a rate is written with its name, or with %)
    PatternSpec("age_turned", r"\b(?:turned|turns|turning)\s+(?P<a>9\d|1[01]\d)\b"
                r"(?!\s*(?:%|°|degrees?|mm|ml|cc|mg|kg|lbs?|pounds|x\b|times))", "AGE", 0.7, group="a"),
    # a relative's age over 89 is an identifier too (Safe Harbor counts relatives): "her husband is 93"
    PatternSpec("age_is", r"\b(?:pt|patient|he|she|husband|wife|spouse|partner|mother|father|mom|dad|son|daughter|"
                rf"brother|sister)\s+(?:is|was)\s+(?P<a>(?:9\d|1[01]\d){_HALF_YEAR}?)(?=\s*(?:[.;]\s|[.;]?$|\n)|"
                r"\s+(?:and|today|now|when|then|at\s+the\s+time)\b)", "AGE", 0.6, group="a"),
]
AGES_ANY = [
    PatternSpec("age", rf"\b(?P<a>\d{{1,3}})(?={_AGE_UNIT})", "AGE", 0.7, group="a"),
    PatternSpec("aged", r"\b(?:age|aged|age:|ages)\s*(?:of\s+)?(?P<a>\d{1,3})\b", "AGE", 0.75, group="a"),
    PatternSpec("age_words", r"\b(?:i\s+am|i'm|turned|turning)\s+(?P<a>\d{1,3})\b", "AGE", 0.6, group="a"),
]

_STREET_SUFFIX = (r"(?i:street|st|avenue|ave|road|rd|boulevard|blvd|drive|dr|lane|ln|way|court|ct|place|pl|"
                  r"terrace|ter|parkway|pkwy|highway|hwy|circle|cir|square|sq|trail|trl|alley|plaza|pike|"
                  r"loop|crossing|ridge|heights|route|rte|row|walk|close|crescent|gardens|mews|hill)")
# one to three capitalised words of a town ("Winston-Salem", "St. Louis"), each taken whole and at
# most 41 characters long: a word's hyphen is also a separator, and unbounded, a run like
# "Ab-Ab-Ab-..." could be split in so many ways that 1,000 characters took over a minute
_CITY_WORDS = r"[A-Z][a-zA-Z.'-]{1,40}+(?:[ -][A-Z][a-zA-Z.'-]{1,40}+){0,2}"

ADDRESSES = [
    PatternSpec("street", r"\b(?P<s>\d{1,6}[A-Z]?(?:-\d{1,4})?\s+(?:[NSEW]\.?\s+|(?i:north|south|east|west)\s+)?"
                r"(?:[A-Z][A-Za-z'\-]*\.?\s+){1,3}" + _STREET_SUFFIX + r"\b\.?)"
                r"(?:,?\s*(?i:apt|apartment|suite|ste|unit|fl|floor|#)\.?\s*#?\s*[A-Z0-9-]+)?", "STREET", 0.75,
                flags=0, validate="street"),
    # a labelled address or where someone lives, to its comma or the end of the line, whatever the
    # street type ("Address: 02185 Quorvale Summit, ...", "lives at 88 Blenthorn Crossing with ...")
    PatternSpec("street_labelled", r"\b(?i:(?:home\s+|mailing\s+|street\s+|current\s+)?address|addr\.?|lives\s+at|"
                r"resides\s+at|living\s+at)\s*[:|]?[ \t]*(?P<s>\d{1,6}[A-Z]?(?:-\d{1,4})?[ \t]+(?:[NSEW]\.?[ \t]+)?"
                r"[A-Z][A-Za-z'\-]*\.?(?:[ \t]+[A-Z0-9][A-Za-z0-9'\-]*\.?){0,5})"
                r"(?=[ \t]*(?:,|;|\(|\n|$|[ \t](?i:with|and|in)\b))", "STREET", 0.7, group="s", flags=0,
                validate="street_value"),
    # the town after a street line or a post-office box and its comma ("77 Quorvale Street Apt. 5,
    # Drennick.", "PO Box 4432, Drennick OH"), before the line, the sentence or a state ends
    PatternSpec("city_after_street", r"(?:\b\d{1,6}[A-Z]?(?:-\d{1,4})?\s+(?:[NSEW]\.?\s+)?"
                r"(?:[A-Z][A-Za-z'\-]*\.?\s+){1,3}" + _STREET_SUFFIX
                + r"\b\.?(?:,?\s*(?i:apt|apartment|suite|ste|unit|fl|floor|#)\.?\s*#?\s*[A-Z0-9-]+)?"
                r"|\b(?i:(?:home\s+|mailing\s+|street\s+)?address|lives\s+at|resides\s+at)\s*[:|]?[ \t]*"
                r"\d{1,6}[A-Z]?[ \t]+(?:[A-Z0-9][A-Za-z0-9'\-]*\.?[ \t]+){0,5}?[A-Z0-9][A-Za-z0-9'\-]*\.?"
                r"|\b(?i:p\.?\s?o\.?\s+box|post\s+office\s+box)\s+\d{2,6}),[ \t]*"
                r"(?P<c>[A-Z][a-z][a-zA-Z'\-]*(?:[ \t-][A-Z][a-z][a-zA-Z'\-]*){0,2})"
                r"(?=[ \t]*(?:[,.;)\n]|$)|[ \t]+(?:[A-Z]{2}\b|(?i:with|and|in|on)\b))", "CITY", 0.55, group="c",
                flags=0, validate="city_state"),
    PatternSpec("unit", r"\b(?i:apt|apartment|suite|ste)\.?\s*#?\s*\d+[A-Z]?\b", "STREET", 0.6, flags=0),
    PatternSpec("po_box", r"\b(?:p\.?\s?o\.?\s+box|post\s+office\s+box|box|psc|apo|fpo|dpo)\s+(?:[A-Z]{2}\s+)?\d{2,6}\b",
                "STREET", 0.6),
    PatternSpec("city_state", rf"\b(?P<c>{_CITY_WORDS}),\s*(?:"
                + "|".join(sorted(STATE_ABBRS)) + r")\b(?!-)", "CITY", 0.6, group="c", flags=0,
                validate="city_state"),
    # the city of an address line written without its comma: "Marsby MA 02139"
    PatternSpec("city_state_zip", rf"\b(?P<c>{_CITY_WORDS})\s+(?:"
                + "|".join(sorted(STATE_ABBRS)) + r")\.?\s+\d{5}(?:-\d{4})?\b", "CITY", 0.6, group="c", flags=0,
                validate="city_state"),
    # "Paulamouth, New Hampshire 03301": a city before a state written out and a ZIP code
    PatternSpec("city_state_name_zip", rf"\b(?P<c>{_CITY_WORDS}),\s*(?:"
                + "|".join(s.title() for s in sorted(US_STATES, key=len, reverse=True))
                + r")\.?,?\s+\d{5}(?:-\d{4})?\b", "CITY", 0.6, group="c", flags=0, validate="city_state"),
    PatternSpec("state_abbr_zip", r"\b(?P<s>" + "|".join(sorted(STATE_ABBRS)) + r")\.?,?\s+\d{5}(?:-\d{4})?\b",
                "STATE", 0.7, group="s", flags=0),
    PatternSpec("zip_after_state", r"\b(?:" + "|".join(sorted(STATE_ABBRS)) + "|"
                + "|".join(s.title() for s in US_STATES) + r")\.?,?\s+(?P<z>\d{5}(?:-\d{4})?)\b", "ZIP", 0.8,
                group="z", flags=0),
    PatternSpec("zip_labelled", r"\b(?:zip|zipcode|zip\s+code|postal\s+code|postcode)(?:\s+is)?[\s:#]*"
                r"(?P<z>\d{5}(?:-\d{4})?|\d{3,4}(?:[\s-]\d{2,3})?(?:\s(?-i:[A-Z]{2})\b)?|[A-Z0-9]{3,4}\s?[A-Z0-9]{3})\b",
                "ZIP", 0.85, group="z"),
]
# a region named by a compass word and a landform ("the South Shore", "WESTERN HILLS"), in title case
# or capitals only: "the lower lobe", "left side" are anatomy
_COMPASS = r"(?:North|South|East|West|Northern|Southern|Eastern|Western|Upper|Central|Mid)"
_LANDFORM = r"(?:Shore|Coast|Cape|Valley|Hills|Mountains|Islands?|Plains|Woods|Lakes|Highlands|Peninsula|Side|End)"
REGIONS = [
    PatternSpec("compass_region", rf"\b{_COMPASS}[ -]{_LANDFORM}\b|\b{_COMPASS.upper()}[ -]{_LANDFORM.upper()}\b",
                "LOCATION", 0.55, flags=0, validate="region"),
]


@validator("region")
def _region(text, match, start, end, score):
    words = text[start:end].split()
    if words[0].lower() == "upper" and words[-1].lower() in ("side", "end"):
        return None  # "upper end of normal"
    return score


# non-US postcodes and streets, for the generic set (Presidio-style synthetic addresses)
ADDRESSES_INTL = [
    PatternSpec("street_number_after", r"\b(?:[A-Z][\w'.-]{1,40}+\s+){1,3}\d{1,5}[A-Za-z]?\b(?=\s*(?:,|\n|$|Apt|Suite))",
                "STREET", 0.35, flags=0, validate="street_after"),
    PatternSpec("postcode_uk", r"\b[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}\b", "ZIP", 0.5, flags=0),
]


# a compass word opens many a town's and street's name ("North Adams", "East Orange")
_COMPASS_WORDS = frozenset("north south east west".split())


def _stop_word(word: str) -> bool:
    return word in stop_words() and word not in _COMPASS_WORDS


@validator("city_state")
def _city_state(text, match, start, end, score):
    words = text[start:end].replace("-", " ").split()
    if any(w.isupper() or _stop_word(w.lower().strip(".")) for w in words) or words[-1].lower() in _COMPASS_WORDS:
        return None
    return score


@validator("street_value")
def _street_value(text, match, start, end, score):
    words = [w.lower().strip(".,") for w in text[start:end].split()[1:]]
    if not words or all(_stop_word(w) or w.isdigit() for w in words):
        return None  # "lives at 2 Story house", "address: 3 West"
    return score


@validator("street")
def _street(text, match, start, end, score):
    end = match.end("s")  # the number, name and suffix; a unit after them is checked by its shape
    value = text[start:end]
    if value.isupper() and re.search(r"\s(?:ST|CT|SQ|DR|PL)$", value) and text[end:end + 1] not in (".", ","):
        return None  # "3 EPISODES ST IN 130'S", "2 MEDIASTINAL CT": ST segment, chest tube, subcutaneous
    words = value.split()[1:-1]
    if any(w.lower().strip(".,") in stop_words() - {"north", "south", "east", "west"} for w in words):
        return None
    return score


@validator("street_after")
def _street_after(text, match, start, end, score):
    words = text[start:end].split()[:-1]
    if all(w.lower().strip(".,") in stop_words() for w in words):
        return None
    return score


GEO = [
    PatternSpec("us_city", r"\b(?:" + gazetteer_pattern(US_CITIES) + r")\b", "CITY", 0.55,
                validate="gazetteer"),
    PatternSpec("us_state", r"\b(?:" + gazetteer_pattern("|".join(US_STATES)) + r")\b", "STATE", 0.45,
                validate="gazetteer"),
]
GEO_WORLD = [
    PatternSpec("world_city", r"\b(?:" + gazetteer_pattern(WORLD_CITIES) + r")\b", "CITY", 0.6,
                validate="gazetteer"),
    PatternSpec("country", r"\b(?:" + gazetteer_pattern(COUNTRIES) + r")\b", "COUNTRY", 0.6, flags=0),
    PatternSpec("nationality", r"\b(?:" + "|".join(sorted(NATIONALITIES, key=len, reverse=True)) + r")s?\b",
                "NATIONALITY", 0.55, validate="capitalised"),
]


@validator("capitalised")
def _capitalised(text, match, start, end, score):
    return score if text[start].isupper() else None


# ECHR style case and application numbers ("no. 36042/97", "Application no. 5678/02")
LEGAL_CODES = [
    PatternSpec("application_no", r"\b(?:application|applications|appl\.|case|no|nos|n°)\.?\s*(?:no\.?|nos\.?|number)?\s*"
                r"(?P<n>\d{1,6}/\d{2,4}(?:\s*(?:,|and)\s*\d{1,6}/\d{2,4})*)", "CODE", 0.9, group="n"),
    PatternSpec("number_slash_year", r"(?<![\w/.-])\d{3,6}/(?:9\d|0\d|1\d|2\d|19\d\d|20\d\d)(?![\w/-])", "CODE", 0.6),
    PatternSpec("docket", r"\b(?:case|file|docket|register|reg|ref|judgment|decision|appeal|complaint|"
                r"criminal\s+case|civil\s+case)\s*(?:no\.?|number|nr\.?|#)\s*:?\s*(?P<n>[A-Z0-9][\w./:-]*\d[\w./-]*)",
                "CODE", 0.85, group="n"),
]


# --- quasi identifiers in judgments (TAB: what could re-identify together with other facts) ----

_OCCUPATIONS = (
    r"teachers?|lecturers?|professors?|lawyers?|advocates?|barristers?|solicitors?|notar(?:y|ies)|journalists?|"
    r"reporters?|editors?|publishers?|writers?|authors?|translators?|interpreters?|dancers?|singers?|musicians?|"
    r"actors?|actress(?:es)?|artists?|painters?|photographers?|drivers?|escorts?|pilots?|sailors?|seam[ae]n|"
    r"fisherm[ae]n|farmers?|labourers?|laborers?|workers?|miners?|builders?|carpenters?|electricians?|"
    r"mechanics?|plumbers?|tailors?|bakers?|butchers?|cooks?|chefs?|waiters?|waitress(?:es)?|cleaners?|"
    r"caretakers?|janitors?|porters?|guards?|watchm[ae]n|shopkeepers?|traders?|merchants?|businessm[ae]n|"
    r"businesswom[ae]n|entrepreneurs?|bankers?|brokers?|accountants?|economists?|engineers?|architects?|"
    r"technicians?|scientists?|researchers?|assistants?|secretar(?:y|ies)|clerks?|cashiers?|managers?|"
    r"directors?|chief\s+executive\s+officers?|ceos?|chairm[ae]n|headmasters?|headmistress(?:es)?|principals?|"
    r"doctors?|physicians?|surgeons?|dentists?|pharmacists?|psychiatrists?|psychologists?|nurses?|midwi(?:fe|ves)|"
    r"veterinar(?:y|ians?)|police\s+officers?|policem[ae]n|officers?|soldiers?|conscripts?|gendarmes?|"
    r"civil\s+servants?|officials?|inspectors?|bailiffs?|judges?|prosecutors?|politicians?|mayors?|activists?|"
    r"trade\s+unionists?|imams?|priests?|monks?|nuns?|pensioners?|housewi(?:fe|ves)|students?|pupils?|consultants?|"
    r"agents?|contractors?|employees?|servicem[ae]n|barbers?|hairdressers?|security\s+guards?|estate\s+agents?|"
    r"administrators?|practitioners?|breadwinners?|housing\s+officers?"
)
# up to two lower-case modifiers before the occupation ("primary school teacher", "taxi driver")
_OCCUPATION = rf"(?P<o>(?:[a-z][a-z-]*(?:['’]s)?\s+){{0,2}}?(?:{_OCCUPATIONS}))\b"
_NUMBER_WORD = (r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|"
                r"sixty|seventy|eighty|ninety|hundred|thousand|million|billion")
_RACE_AFTER = r"(?:people|persons?|population|nationals?|m[ae]n|wom[ae]n|british|immigra\w+|citizens?|community|members?)"

LEGAL_QUASI = [
    # "worked as a taxi driver", "reinstated to the post of primary school teacher", "who is a lawyer"
    PatternSpec("occupation", r"(?-i:(?:\b(?:[Aa]s|who\s+(?:is|was|had\s+been|has\s+been)|is|was|became|become|becoming|"
                r"[Aa]pplicants?,|(?<=[a-z]),)\s+an?\s+|\b(?:post|position|profession|occupation)\s+of\s+(?:an?\s+)?))"
                + _OCCUPATION + r"(?!\s+practi[sc]ing)", "OCCUPATION", 0.55, group="o", flags=0),
    # skin colour as a protected characteristic ("membership limited to white people", "who is white British")
    PatternSpec("race", rf"\b(?:white|black)(?=\s+{_RACE_AFTER}\b)|(?:(?<=\bis\s)|(?<=\bwas\s))(?:white|black)\b"
                r"(?=\s*[,.;)]|\s+by\b)",
                "NATIONALITY", 0.5, flags=0),
    PatternSpec("chief_executive", r"(?-i:\b(?:Chief\s+Executive\s+Officer|CEO|Managing\s+Director)\b)",
                "OCCUPATION", 0.5),
    # amounts of money ("EUR 5,000", "PLN 159.50", "10,000 euros", "TRL 1 billion")
    PatternSpec("money_code", r"(?-i:\b(?:EUR|USD|GBP|CHF|PLN|TRL|TRY|YTL|RUB|RUR|UAH|HRK|BGN|BGL|RON|ROL|CZK|SKK|"
                r"HUF|SEK|NOK|DKK|DEM|FRF|ITL|ATS|BEF|NLG|ESP|PTE|GRD|FIM|IEP|LTL|LVL|EEK|SIT|MKD|RSD|BAM|GEL|AMD|"
                r"AZN|MDL|ISK|CYP|MTL|LUF|SUR)|[€£$])\s?\d[\d,.]*(?:\d|\s+(?:million|billion|thousand)\b)",
                "QUANTITY", 0.6),
    PatternSpec("money_word", r"\b\d[\d,.]{0,30}+(?:\s+(?:million|billion|thousand))?\s+(?:euros?|dollars?|US\s+dollars?|"
                r"pounds(?:\s+sterling)?|(?:swiss\s+|french\s+|belgian\s+)?francs?|(?:deutsche\s+)?marks|lire|"
                r"(?:new\s+)?(?:turkish\s+)?liras?|zlotys?|zloty|roubles?|rubles?|kunas?|hryvnias?|korun[ay]?|forints?|"
                r"kroner|kronor|drachmas?|escudos?|pesetas?|schillings?|lei|leva|dinars?|lats|lit(?:ai|as))\b",
                "QUANTITY", 0.6),
    PatternSpec("money_in_words", rf"\b(?:{_NUMBER_WORD})(?:[\s-]+(?:and\s+)?(?:{_NUMBER_WORD}))*\s+(?:euros?|"
                r"dollars?|pounds(?:\s+sterling)?|francs?|marks|liras?|zlotys?|roubles?|rubles?|kunas?|hryvnias?)\b",
                "QUANTITY", 0.55),
    # rates and shares ("reduced by 33%", "an inflation of 81.7%")
    PatternSpec("percent", r"(?<![\w.,])\d{1,3}(?:[.,]\d{1,2})?\s?%", "QUANTITY", 0.5),
]


# --- organisations and foreign place lines in free text (generic set) ------------------------

_COMPANY_SUFFIX = (r"Inc|Incorporated|LLC|L\.L\.C|LLP|Ltd|Limited|GmbH|AG|S\.A|SA|SAS|SARL|S\.p\.A|SpA|B\.V|BV|N\.V|"
                   r"NV|Oy|AB|ASA|A/S|ApS|Pty|PLC|plc|Corp|Corporation|Company|Co|Group|Holdings|Partners|"
                   r"Associates|Technologies|Technology|Systems|Solutions|Markets|Capital|Global|Labs|Ventures|"
                   r"Industries|Enterprises|Consulting|International|Networks|Software|Analytics|Logistics|"
                   r"Foundation|Bank|Insurance|Pharmaceuticals|Motors|Airlines|Media")
# a word taken whole (possessive) and bounded, like the town words above: unbounded, each capital in
# a run like "-A-A-A-A" started a scan to the run's end
_CAP_WORD = r"[A-Z][\w'&.-]{0,40}+"
ORGS = [
    # "Shepherd Ltd.", "Asc Partners", "Enervee Corporation", "Miller and Sons", "Smith & Sons"
    PatternSpec("company_suffix", rf"\b{_CAP_WORD}(?:\s+(?:&\s+)?{_CAP_WORD}){{0,3}}\s+"
                rf"(?:(?:{_COMPANY_SUFFIX})\b\.?|(?:and|&)\s+Sons\b)", "ORG", 0.6, flags=0),
    # Faker's law-firm shape: "White, Willis and Hoffman"
    PatternSpec("partnership", r"\b[A-Z][a-z]+,\s+[A-Z][a-z]+,?\s+(?:and|&)\s+[A-Z][a-z]+\b", "ORG", 0.65,
                flags=0),
]
# a capitalised place right before a country on an address line ("Wrocław  Poland", "TRONDHEIM > Norway")
CITY_BEFORE_COUNTRY = [
    PatternSpec("city_before_country", r"(?<![\w'])(?P<c>[A-ZÀ-ÖØ-Þ][\wÀ-ÿ'-]{1,40}+(?: [A-ZÀ-ÖØ-Þ][\wÀ-ÿ'-]{1,40}+){0,2})"
                r"\s*(?:,|>|\s)\s*(?:" + gazetteer_pattern(COUNTRIES) + r")\b", "CITY", 0.5, group="c", flags=0,
                validate="no_stop_start"),  # not "In United States", "Take Me Home To Ohio"
]


# --- identifiers said in a sentence (generic set): "my name is ...", "I work for ...", ---------
# "originally from ...", and the pieces of non-US address lines. Every cue is a phrase of
# ordinary English, never a list of names; validators drop function words and dictionary
# words in lower-case text.

_WORD = r"[^\W\d_][\w'’.-]*"  # a word in any script ("Gelencsér", "ΛΕΥΚΩΣΙΑ")
# words that end a name or place said after a cue ("call me Aantje but ...", "from Ankara for ...")
_STOP_NEXT = (r"(?:and|but|or|from|the|is|was|are|were|i|im|i'm|to|at|in|on|for|with|of|a|an|he|she|it|we|"
              r"they|you|not|have|has|had|will|would|can|could|please|who|what|how|why|since|when|where|"
              r"so|too|also|as|by|then|there|here|if|that|this|speak|talking|began|spent|lives|is)\b")
_NEXT_WORD = rf"(?:\s+(?!(?i:{_STOP_NEXT})){_WORD})"
_ROMANCE = frozenset("de del della dei di da das dos do du des la le les el al van von der den ten ter y i e "
                     "u ul. ul rue via calle avda. avda av. str. út utca".split())

NAME_CUES = [
    PatternSpec("name_said", rf"\b(?:my\s+name\s+is|my\s+name's|(?:please\s+)?call\s+me|calls\s+me|called\s+me|"
                rf"(?:maiden|first|last|middle|given|family|sur)\s*name(?:\s+is|\s*[?:])|named\s+(?:him|her)|"
                rf"my\s+(?:kid|son|daughter|wife|husband|child|brother|sister|friend|boss|mother|father|mom|dad|"
                rf"partner|colleague|neighbou?r))\s+(?P<n>{_WORD}{_NEXT_WORD}{{0,2}})", "NAME", 0.6, group="n",
                validate="said_name"),
    PatternSpec("greeting", r"(?:^|(?<=\n))[ \t]*(?i:hi|hello|dear|hey)\s+(?P<n>[^\W\d_a-z][\w'-]+(?:\s+[^\W\d_a-z][\w'-]+)?)"
                r"\s*[,!:]", "NAME", 0.6, group="n", flags=0, validate="said_name"),
    # a dialogue speaker: "Marta: Where were you?", "Olli: \"Not now.\""
    PatternSpec("speaker", r"(?:^|(?<=[\n.!?\"”]\s)|(?<=[\n.!?\"”]))(?P<n>[^\W\d_a-z][\w'-]+):\s*(?=[\"“]|[^\W\d_a-z])",
                "NAME", 0.62, group="n", flags=0, validate="name_shape"),
    # "Edda J Marlowe", "Tove K. Lindqvist": a middle initial between two capitalised words
    PatternSpec("middle_initial", r"(?<![\w.])(?P<n>[^\W\d_a-z][^\W\d_]+\s+[A-Z]\.?\s+[^\W\d_a-z][^\W\d_'’-]+(?:-[^\W\d_]+)?)"
                r"(?![\w.]|\.\w)", "NAME", 0.5, group="n", flags=0, validate="name_shape"),
]

_ORG_NAME = r"(?P<o>[A-Z][\w'&.-]*(?:\s+(?:&\s+|and\s+)?[A-Z][\w'&.-]*){0,3})"
ORG_CUES = [
    # "the Brightwell office", "according to the Tandro website", "The Kelmor Quartet"
    PatternSpec("org_before_noun", rf"\b(?i:the)\s+{_ORG_NAME}\s+(?i:office|offices|website|web\s+site|headquarters|"
                r"orchestra|foundation|app|platform|staff|team)\b", "ORG", 0.5, group="o", flags=0,
                validate="no_stop_start"),
    PatternSpec("org_after_verb", rf"\b(?i:work(?:s|ed|ing)?\s+(?:for|at)|employed\s+(?:by|at)|(?:a|one|two|the)\s+years?"
                rf"\s+at|joined|ceo\s+of|founder\s+of|founded|(?:is|am|was)\s+from|recorded\s+for|resign(?:ed)?\s+from)"
                rf"\s+(?:the\s+)?{_ORG_NAME}", "ORG", 0.45, group="o", flags=0, validate="no_stop_start"),
    PatternSpec("org_is_a", rf"(?:^|(?<=[\n.!?]\s)|(?<=[,:]\s)){_ORG_NAME}\s+is\s+(?:the\s+brainchild|a\s+501|an?\s+"
                r"(?:[\w-]+\s+){0,3}(?:company|corporation|firm|start-?up|multinational|organi[sz]ation|"
                r"non-?profit|charity|bank|agency|business|provider|platform))", "ORG", 0.5, group="o", flags=0,
                validate="no_stop_start"),
    PatternSpec("org_role", rf"\b(?i:of|from|at)\s+{_ORG_NAME}\s+(?i:is|was)\s+(?i:the|our|a|an)\s+(?i:ceo|founder|"
                r"president|chair\w*|keynote|director|head|manager|owner)", "ORG", 0.5, group="o", flags=0,
                validate="no_stop_start"),
]

PLACE_CUES = [
    PatternSpec("place_said", rf"\b(?:originally\s+from|grew\s+up\s+in|(?:moved|came|relocated)\s+(?:here\s+)?from|"
                rf"i\s+am\s+in|i'm\s+in|home\s+(?:city|town)(?:\s+of|\s+is)?|born\s+in|(?:live|lives|living|reside|"
                rf"resides)\s+in)\s+(?P<c>{_WORD}{_NEXT_WORD}{{0,2}})(?=\s*(?:[,.:;!?)]|$|\s(?i:{_STOP_NEXT})))",
                "LOCATION", 0.5, group="c", validate="said_place"),
    # a building number before a street that carries its own number: "40100 Kalliokatu 9",
    # "2210 fjordveien 14 st.", "31 12 rue des Lilas"
    PatternSpec("house_number_street", r"(?<![\w.,/:-])\d{1,5}\s+(?:\d{1,5}\s+)?(?P<s>[^\W\d_][\w'’.-]*(?:\s+[^\W\d_][\w'’.-]*){0,4})"
                r"(?:\s+\d{1,5}[A-Za-z]?\b\.?)?(?=\s*(?:,|\n|$|>|\?|\s\s|(?i:\s+(?:apt|suite|unit|st\b|street\b))))",
                "STREET", 0.65, validate="intl_street"),
    # the place after a flat or suite number on an address line: "Apt. 31    TAMPERE"
    PatternSpec("place_after_unit", r"\b(?i:apt|apartment|suite|unit)\.?\s*#?\s*\d+[A-Z]?\s*(?:,\s*|\s*>\s*|\s*\?{2,}\s*|\s{2,})"
                r"(?P<c>[^\W\d_][\w'’.()-]*(?:[ -][^\W\d_(][\w'’.()-]*){0,3})", "CITY", 0.55, group="c", flags=0,
                validate="said_place"),
    # the place after a numbered street and a comma: "118 Koivutie 7, OULU"
    PatternSpec("place_after_street", r"(?<![\w.,/:-])\d{1,5}\s+(?:\d{1,5}\s+)?[^\W\d_][\w'’.-]*(?:\s+[^\W\d_][\w'’.-]*){0,4}?"
                r"(?:\s+\d{1,5}[A-Za-z]?)?,\s+(?P<c>[^\W\d_][\w'’.-]*(?:\s+[^\W\d_][\w'’.-]*){0,2})(?=\s*(?:$|\n|[,.!?;]))",
                "CITY", 0.45, group="c", validate="said_place"),
    PatternSpec("nationality_said", r"\b(?:i\s+am|i'm|we\s+are|we're|they\s+are|he\s+is|she\s+is)\s+(?:a\s+|an\s+|proud\s+|"
                r"very\s+)*(?P<n>[^\W\d_]+)(?=\s+but\b|\s*[.,!]|$)", "NATIONALITY", 0.5, group="n",
                validate="said_nationality"),
]


def _said_words(value: str) -> list[str]:
    return [w.strip(".,'’").lower() for w in value.split()]


def _name_words(text: str, start: int, end: int, strong: bool) -> bool:
    from domainfm.deid.recognizers.vocab import all_names, is_english

    words = [w for w in _said_words(text[start:end]) if len(w) > 1]
    if not words or any(w in stop_words() for w in words):
        return False
    if strong and text[start].isupper():
        return True  # "my name is Key": the cue makes a capitalised word a name
    return not all(is_english(w) and w not in all_names() for w in words)


@validator("said_name")
def _said_name(text, match, start, end, score):
    return score if _name_words(text, start, end, strong=True) else None


@validator("name_shape")
def _name_shape(text, match, start, end, score):
    # a speaker label or a middle initial: "Answer:" or "Vitamin B Complex" are not names
    return score if _name_words(text, start, end, strong=False) else None


@validator("no_stop_start")
def _no_stop_start(text, match, start, end, score):
    words = _said_words(text[start:end])
    if not words or words[0] in stop_words() or all(w in stop_words() for w in words):
        return None
    return score


@validator("said_place")
def _said_place(text, match, start, end, score):
    from domainfm.deid.recognizers.vocab import COUNTRIES, is_english

    value = text[start:end]
    words = _said_words(value)
    stop = stop_words()
    if not words or words[0] in stop or words[0] == "nan":
        return None
    if not value[:1].isupper() and all(is_english(w) or w in stop for w in words) \
            and value.lower() not in {c.lower() for c in COUNTRIES.split("|")}:
        return None  # "I'm in love", "lives in hope"; "we moved here from chile" stays
    return score


@validator("intl_street")
def _intl_street(text, match, start, end, score):
    from domainfm.deid.recognizers.vocab import MONTH_WORDS

    words = _said_words(match.group("s"))
    stop = stop_words()
    if not words or any((w in stop or w in MONTH_WORDS) and w not in _ROMANCE for w in words):
        return None  # "2014 we had 3", "12 May 2004"
    if not re.search(r"\d[A-Za-z]?\.?\s*$", text[start:end]) and not re.match(
            r"\s*(?:,|\s\s|>|\?|(?i:apt|suite|unit|st\b|street\b))", text[end:end + 8]):
        return None
    return score


@validator("said_nationality")
def _said_nationality(text, match, start, end, score):
    from domainfm.deid.recognizers.vocab import NATIONALITIES, is_english

    low = text[start:end].lower()
    base = re.sub(r"(?:es|s)$", "", low)
    if low in NATIONALITIES or base in NATIONALITIES or base + "s" in NATIONALITIES:
        return score
    if re.search(r"(?:ian|ean|ese|ish|an|i)(?:s|es)?$", low) and not is_english(low) and not is_english(base):
        return score  # lower-case demonyms: "peruvian", "ghanaians"
    return None
