"""Shift dates inside a detected DATE span by a per-patient offset, keeping their written form.

One secret offset per patient moves every date of that patient by the same number of days, so
intervals ("admitted 7/22, discharged 7/29") survive de-identification. The offset is chosen so
that no partial date stays as it was:

* ``|offset| = 365 * k + d`` days with ``k`` in 1..3 and ``d`` in 32..321 (and ``offset % 7 != 0``):
  the year always changes, the month-and-day always changes (``d >= 32``), a month named alone
  always changes (``d`` stays far from a whole year) and so does a weekday named alone.
* Partial dates use the same offset on a reference date: ``July 2019`` is shifted as 15 July
  2019, and a date without a year is read in the note's year: ``7/22`` as 22 July and ``July``
  as 15 July of it. In another year the same shift can cross one 29 February more or less, so
  ``3/5`` beside ``01/15/2019`` is shifted as 5 March 2019 to stay as many days after it.
* The note's year is the year of the nearest full date (day, month and year) before the date in
  its DATE span, else the caller's ``note_year`` (:func:`~domainfm.deid.transform.apply_operator`
  gives the year of the nearest full date in an earlier DATE span of the record, else of the
  record's first one, found by :func:`full_date_years`), else the leap year 2000. ``2/29`` in a
  year without one is read in the leap year before it. The dates of one span (a range) are in
  order: ``Dec 30 - Jan 2`` ends in the next year, and ``July 31`` in ``July 31-August 2, 2019``
  is of 2019 whatever year an earlier date of the note had.
* A numeric date that reads both ways (``03/05/2019``) is month first, unless the note's other
  numeric dates show it writes the day first (``25/04/2019`` and none such as ``04/25/2019``;
  :func:`reads_day_first`, over the record's DATE spans in
  :func:`~domainfm.deid.transform.apply_operator`); it is written back the same way.
* A season (``Spring 2019``, ``winter of 2018``) is its middle day (15 January, April, July,
  October: the winter of 2018 is December 2017 to February 2018), shifted, then named again as the
  season of the shifted day and that season's year (``fall``/``autumn`` as the original wrote it).
  A season named alone that would come out the same moves one season on in the shift's direction.
* A year named alone moves by the offset rounded to whole years (at least one year).
* A day named alone ("the 3rd", "20th") has no month to shift within; it moves by
  ``offset % 27 + 1`` days modulo 31, which keeps it a valid day and never the same day.
* A day range inside one month (``4-6 March 2019``, ``March 4 to 6, '19``) moves both days.
* A decade (``the 1990s``, ``'90s``) moves by a decade with the offset's sign; a holiday
  (``Christmas Day``, ``Thanksgiving``) names a month and day, so it becomes the shifted day
  written as ``August 7``.
* A month, a hyphen and two digits with no year after them is a month and a two-digit year
  (``Mar-07`` is March 2007, ``Dec-89`` December 1989), as spreadsheets and problem lists write
  ``Mmm-yy``; a day needs one digit (``Mar-7``), a space (``Mar 07``), an ordinal or a year after
  it (``Mar-07-2019``). It is shifted as a month-year and written back as ``Mmm-yy``.
* Times (``10:30``) are kept. Text that holds no recognisable date returns ``None`` and the caller
  replaces it with a format-preserving fake instead of keeping it.

Written forms kept: separators and zero padding (``07/02/19``, ``7-2-2019``, ``2019-07-02``,
``11/21.93``, ``04/Mar/2019``, ``23OCT89`` and ``3oct1989`` glued, ``2019-Mar-04``), two- or
four-digit years (``'19`` too, and ``04-Mar-19``, ``Dec-89`` after a hyphen or slash), month names
full or abbreviated with their case and trailing dot (``JULY``, ``Jul.``, ``nov``), ordinal suffixes
(``22nd``), weekday names full or abbreviated (``Tue``; ``Tues``, ``Thurs``), season words in their
case (``Spring``, ``autumn``).
"""

from __future__ import annotations

import calendar
import random
import re
from datetime import date, timedelta

__all__ = ["derive_offset", "full_date_years", "reads_day_first", "shift_date_text", "year_delta"]

_MONTHS_FULL = ("january", "february", "march", "april", "may", "june", "july", "august",
                "september", "october", "november", "december")
_MONTH_INDEX = {name[:3]: i + 1 for i, name in enumerate(_MONTHS_FULL)}
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WEEKDAY_INDEX = {name[:3]: i for i, name in enumerate(_WEEKDAYS)}
_WEEKDAY_LONG_ABBR = ("mon", "tues", "weds", "thurs", "fri", "sat", "sun")  # "Tues", "Thurs"

_M = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
      r"|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)")
_ORD = r"(?:st|nd|rd|th)"
# the days of a range inside one month ("4-6 March", "March 4 to 6, 2019"): both days move
_RANGE = r"\s*[-–—]\s*|\s+(?:to|through|thru|until|till|and)\s+"
_APOS = "['’]"  # a two-digit year written '19 or ’19
# a year beside a month name: four digits, '19, or two digits after a hyphen or slash ("04-Mar-19", "Dec-89")
_YEAR = rf"\d{{4}}|{_APOS}\d{{2}}|(?<=[-/])\d{{2}}"
# a day of a month (1-31): "Dec-89" is December 1989, not its 89th day
_DAY = r"(?:3[01]|[12]\d|0?[1-9])"
# A month, a hyphen and two digits with no year after them ("Mar-07", "Dec-89", "mar-17") is a
# month and a two-digit year, as spreadsheets and problem lists write it ("Mmm-yy"), whatever the
# number: "Mar-07" is March 2007, never 7 March. One digit ("Mar-7"), a space ("Mar 07"), an ordinal
# ("Mar-07th") or a year after the number ("Mar-07-2019", "Mar-07, 2019") keeps it a day of the month.
_NOT_MONTH_YEAR = rf"(?!\d{{2}}(?!\d|{_ORD}|(?:,?[ ]*|-)(?:\d{{4}}|{_APOS}\d{{2}})|-\d{{2}}(?!\d)))"
# holidays on a fixed day (Thanksgiving as in the reference year 2000): a DATE span that names one
# reveals the month and day the shift hides
_HOLIDAYS = {"christmas eve": (12, 24), "christmas": (12, 25), "xmas": (12, 25), "new year's eve": (12, 31),
             "new years eve": (12, 31), "new year's": (1, 1), "new years": (1, 1), "new year": (1, 1),
             "halloween": (10, 31), "valentine's": (2, 14), "valentines": (2, 14), "independence day": (7, 4),
             "fourth of july": (7, 4), "veterans day": (11, 11), "thanksgiving": (11, 23),
             "st. patrick's": (3, 17), "st patrick's": (3, 17), "saint patrick's": (3, 17)}
# a season is named by the year of its middle day: winter 2018 is December 2017 to February 2018
_SEASONS = ("winter", "spring", "summer", "fall")
_SEASON_MIDDLE_MONTH = {"winter": 1, "spring": 4, "summer": 7, "fall": 10}
_HOLIDAY = ("(?:" + "|".join(re.escape(h).replace("'", "['’]?") for h in sorted(_HOLIDAYS, key=len, reverse=True))
            + r")(?:\s+day)?")
_PATTERN = re.compile(
    r"(?<![\w])(?:"
    r"(?P<time>\d{1,2}:\d{2}(?::\d{2})?)"
    r"|(?P<iso>(?P<iso_y>\d{4})(?P<iso_s>[-/.])(?P<iso_m>\d{1,2})(?P=iso_s)(?P<iso_d>\d{1,2}))(?!\d)"
    # "12/3-12/9" is two month/day dates, not 3 December 2012 and "/9": no year before the first separator again
    r"|(?P<n3>(?P<n3_a>\d{1,2})(?P<n3_s1>[-/.])(?P<n3_b>\d{1,2})(?P<n3_s2>[-/.])(?P<n3_y>\d{4}|\d{2}))"
    r"(?!\d)(?!(?P=n3_s1)\d)"
    # "23OCT89", "3oct1989": day, month and year glued together (a common form of older notes)
    rf"|(?P<dmg>(?P<dmg_d>{_DAY})(?P<dmg_m>{_M})(?P<dmg_y>\d{{4}}|\d{{2}}))(?!\d)"
    # "2019-Mar-04", "2019/mar/4": a year, a month name and a day (a date, not a year and a month-year)
    rf"|(?P<ymd>(?P<ymd_y>\d{{4}})(?P<ymd_s>[-/ ])(?P<ymd_m>{_M})(?P<ymd_dot>\.)?(?P=ymd_s)(?P<ymd_d>{_DAY}))(?!\d)"
    rf"|(?P<dmy>(?:(?P<dmy_d0>\d{{1,2}})(?P<dmy_o0>{_ORD})?(?P<dmy_r>{_RANGE}))?"
    rf"(?P<dmy_d>\d{{1,2}})(?P<dmy_o>{_ORD})?(?P<dmy_s1>[ /-]|\s+of\s+)(?P<dmy_m>{_M})(?P<dmy_dot>\.)?(?![a-z])"
    rf"(?:(?P<dmy_s2>,?[ -]*|/)(?P<dmy_y>{_YEAR}))?)(?!\d)"
    rf"|(?P<mdy>(?P<mdy_m>{_M})(?P<mdy_dot>\.)?(?P<mdy_s1>[ ]+|-{_NOT_MONTH_YEAR})"
    rf"(?P<mdy_d>{_DAY})(?P<mdy_o>{_ORD})?(?![a-z\d])"
    rf"(?:(?P<mdy_r>{_RANGE})(?P<mdy_d2>\d{{1,2}})(?P<mdy_o2>{_ORD})?(?![a-z\d]))?"
    rf"(?:(?P<mdy_s2>,?[ ]*|-)(?P<mdy_y>{_YEAR}))?)(?!\d)"
    rf"|(?P<my>(?P<my_m>{_M})(?P<my_dot>\.)?(?P<my_s>,?[ ]*|[-/]|\s+of\s+)(?P<my_y>{_YEAR}))(?!\d)"
    r"|(?P<n2>(?P<n2_a>\d{1,2})(?P<n2_s>[-/.])(?P<n2_b>\d{4}|\d{1,2}))(?!\d)"
    rf"|(?P<mon>(?P<mon_m>{_M})(?P<mon_dot>\.)?)(?![a-z])"
    rf"|(?P<ord>(?P<ord_d>\d{{1,2}})(?P<ord_o>{_ORD}))(?![a-z])"
    rf"|(?P<season>(?P<season_w>spring|summer|fall|autumn|winter)"
    rf"(?:(?P<season_s>,?[ ]+(?:of[ ]+)?)(?P<season_y>\d{{4}}|{_APOS}\d{{2}}))?)(?![a-z\d])"
    r"|(?P<decade>(?P<decade_y>(?:1[89]|20)\d0|['’]?\d0)s)(?![a-z])"
    rf"|(?P<hol>{_HOLIDAY})(?![a-z])"
    r"|(?P<year>(?:1[89]|20)\d\d)(?!\d)"
    r"|(?P<wd>(?:mon|tue|wed|thu|fri|sat|sun)(?:day|sday|nesday|rsday|urday|s|r|rs)?)(?![a-z])"
    r")",
    re.IGNORECASE,
)
_BARE = re.compile(r"^(\W*)(\d{1,2})(\W*)$")
_ZERO_PADDED = re.compile(r"(?<!\d)0\d")
_REF_YEAR = 2000  # a leap year: 2/29 of a note without a full date stays valid


def derive_offset(digest: bytes) -> int:
    """The per-patient shift in days from 8+ bytes of a keyed digest (see the module docstring)."""
    n = int.from_bytes(digest[:8], "big")
    sign = 1 if n & 1 else -1
    years = 1 + (n >> 1) % 3
    days = 32 + (n >> 3) % 290
    total = 365 * years + days
    if total % 7 == 0:
        total += 1
    return sign * total


def year_delta(offset: int) -> int:
    """Whole years a year named alone moves: the offset rounded, never zero."""
    years = round(offset / 365.25)
    return years if years else (1 if offset >= 0 else -1)


def shift_date_text(text: str, offset: int, rng: random.Random | None = None, *,
                    note_year: int | None = None, day_first: bool | None = None) -> str | None:
    """Shift every date inside ``text`` by ``offset`` days, keeping its format.

    Args:
        text: the text of one detected DATE span, e.g. ``"07/22/2019"`` or ``"July 22nd"``.
        offset: days to add (negative moves back), from :func:`derive_offset`.
        rng: source of digits for pieces that look like dates but are not valid ones.
        note_year: the year a date written without one is read in, until a full date in ``text``
            names another (``None``: the leap year 2000; see the module docstring).
        day_first: read a numeric date that could be either way ("03/05/2019") day first (the
            note's convention, :func:`reads_day_first`); ``None``: as ``text`` itself shows it,
            else month first.

    Returns:
        The shifted text, or ``None`` when no date could be recognised in ``text``.

    Example:
        >>> shift_date_text("seen 7/22/2019 and 7/29/2019", 400)
        'seen 8/25/2020 and 9/1/2020'
        >>> shift_date_text("3/5", 400, note_year=2019), shift_date_text("3/5", 400)
        ('4/8', '4/9')
    """
    rng = rng or random.Random(0)
    bare = _BARE.match(text)
    if bare:
        lead, digits, trail = bare.groups()
        value = int(digits)
        if 1 <= value <= 31 and len(digits) <= 2 and not lead.endswith(("'", "’")):  # '19 is a year
            return lead + _pad(_shift_day(value, offset), digits) + trail
        return lead + _fmt_year((_pivot(value) + year_delta(offset)), digits) + trail
    out: list[str] = []
    pos = 0
    found = False
    day_first = bool(reads_day_first(text) if day_first is None else day_first)
    matches = list(_PATTERN.finditer(text))
    years = _span_years(matches, _REF_YEAR if note_year is None else note_year, day_first)
    for match, year in zip(matches, years):
        try:
            replacement = _shift_match(match, offset, year, day_first)
        except (ValueError, OverflowError):
            replacement = _scramble_digits(match.group(0), rng)
        if match.group("time") is None:
            found = True
        out.append(text[pos:match.start()])
        out.append(replacement)
        pos = match.end()
    if not found:
        return None
    out.append(text[pos:])
    return "".join(out)


def full_date_years(text: str) -> list[int]:
    """The years of the dates in ``text`` that name a day, a month and a year, in order.

    Example:
        >>> full_date_years("seen 7/22/19, again 3 Aug 2020; next 9/1")
        [2019, 2020]
    """
    return [year for match in _PATTERN.finditer(text) if (year := _full_date_year(match)) is not None]


def reads_day_first(text: str) -> bool | None:
    """Whether the numeric dates of ``text`` are written day first: ``True`` when some can only be
    read day first ("25/04/2019") and none only month first ("04/25/2019"), ``False`` for the
    reverse, ``None`` when none tells (or they disagree).

    Example:
        >>> reads_day_first("25/04/2019 to 03/05/2019"), reads_day_first("03/05/2019")
        (True, None)
    """
    day = month = False
    for m in _PATTERN.finditer(text):
        g = m.group
        if g("n3") is not None:
            a, b = int(g("n3_a")), int(g("n3_b"))
        elif g("n2") is not None and len(g("n2_b")) <= 2:
            a, b = int(g("n2_a")), int(g("n2_b"))
        else:
            continue
        day = day or (12 < a <= 31 and 1 <= b <= 12)
        month = month or (1 <= a <= 12 and 12 < b <= 31)
    return None if day == month else day


def _full_date_year(m: re.Match) -> int | None:
    """The year of a match that is a valid full date (day, month and year), else ``None``."""
    full = _full_date(m)
    return None if full is None else full[0]


def _full_date(m: re.Match, day_first: bool = False) -> tuple[int, int, int] | None:
    """``(year, month, day)`` of a match that is a valid full date, else ``None``."""
    g = m.group
    if g("iso") is not None:
        year, month, day = int(g("iso_y")), int(g("iso_m")), int(g("iso_d"))
    elif g("n3") is not None:
        a, b, raw = int(g("n3_a")), int(g("n3_b")), g("n3_y")
        month, day = (b, a) if _swapped(a, b, day_first) else (a, b)
        year = _pivot(int(raw)) if len(raw) == 2 else int(raw)
    elif g("dmg") is not None:
        year, month, day = _year_value(g("dmg_y")), _month(g("dmg_m")), int(g("dmg_d"))
    elif g("ymd") is not None:
        year, month, day = int(g("ymd_y")), _month(g("ymd_m")), int(g("ymd_d"))
    elif g("dmy") is not None and g("dmy_y") is not None:
        year, month, day = _year_value(g("dmy_y")), _month(g("dmy_m")), int(g("dmy_d"))
    elif g("mdy") is not None and g("mdy_y") is not None:
        year, month, day = _year_value(g("mdy_y")), _month(g("mdy_m")), int(g("mdy_d"))
    else:
        return None
    try:
        date(year, month, day)
    except ValueError:
        return None
    return year, month, day


def _swapped(a: int, b: int, day_first: bool) -> bool:
    """Whether numeric date parts ``a``/``b`` are day/month: when only that reading is a date,
    or when both are and the note writes day first."""
    return b <= 12 and (a > 12 or day_first)


def _month_day(m: re.Match, day_first: bool) -> tuple[int, int] | None:
    """``(month, day)`` of a match that names a month (and day) but no year, else ``None``; a
    month alone stands for its 15th."""
    g = m.group
    if g("dmy") is not None and g("dmy_y") is None:
        return _month(g("dmy_m")), int(g("dmy_d0") or g("dmy_d"))
    if g("mdy") is not None and g("mdy_y") is None:
        return _month(g("mdy_m")), int(g("mdy_d"))
    if g("n2") is not None and len(g("n2_b")) <= 2:
        a, b = int(g("n2_a")), int(g("n2_b"))
        if a <= 12 and b > 31:  # month/year
            return None
        return (b, a) if _swapped(a, b, day_first) else (a, b)
    if g("mon") is not None:
        return _month(g("mon_m")), 15
    if g("hol") is not None:
        try:
            return _holiday_date(g("hol"))
        except ValueError:
            return None
    return None


def _span_years(matches: list[re.Match], note_year: int, day_first: bool) -> list[int]:
    """Per match, the year its date is read in when it names none. The dates of one span (a
    range, "Dec 30 - Jan 2") are in order: one before the span's first full date is the latest
    such day on or before it ("July 31-August 2, 2019": July 31, 2019), one after a full date
    or another partial date the earliest on or after it ("7/22/2019 to 7/29": 2019; "12/30-1/2":
    the 1/2 of the next year); before any full date, ``note_year``. Read in another year, a
    shift that crosses one 29 February more or less would change the range's length."""
    fulls = [_full_date(m, day_first) for m in matches]
    days = [_month_day(m, day_first) for m in matches]
    first = next((i for i, full in enumerate(fulls) if full is not None), len(matches))
    years: list[int] = []
    if first < len(matches):
        year, cursor = fulls[first][0], fulls[first][1:]
        for i in range(first - 1, -1, -1):
            if days[i] is not None:
                year -= days[i] > cursor
                cursor = days[i]
            years.append(year)
        years.reverse()
    year, cursor = note_year, None
    for i in range(len(years), len(matches)):
        if fulls[i] is not None:
            year, cursor = fulls[i][0], fulls[i][1:]
        elif days[i] is not None:
            year += cursor is not None and days[i] < cursor
            cursor = days[i]
        years.append(year)
    return years


def _shift_match(m: re.Match, offset: int, note_year: int, day_first: bool = False) -> str:
    g = m.group
    global_pad = _ZERO_PADDED.search(m.group(0)) is not None

    def _pad(value: int, original: str) -> str:
        return _pad_like(value, original, global_pad)

    if g("time") is not None:
        return g("time")
    if g("iso") is not None:
        d = _shift(int(g("iso_y")), int(g("iso_m")), int(g("iso_d")), offset)
        s = g("iso_s")
        return f"{_fmt_year(d.year, g('iso_y'))}{s}{_pad(d.month, g('iso_m'))}{s}{_pad(d.day, g('iso_d'))}"
    if g("n3") is not None:
        a, b, y = int(g("n3_a")), int(g("n3_b")), g("n3_y")
        swapped = _swapped(a, b, day_first)
        month, day = (b, a) if swapped else (a, b)
        d = _shift(_pivot(int(y)) if len(y) == 2 else int(y), month, day, offset)
        first, second = (d.day, d.month) if swapped else (d.month, d.day)
        return (f"{_pad(first, g('n3_a'))}{g('n3_s1')}{_pad(second, g('n3_b'))}{g('n3_s2')}"
                f"{_fmt_year(d.year, y)}")
    if g("dmg") is not None:
        # "23OCT89" -> "05JUN92": glued as written, the month in its case, the year in its digits;
        # a two-digit day stays two digits (the form is read by its width)
        d = _shift(_year_value(g("dmg_y")), _month(g("dmg_m")), int(g("dmg_d")), offset)
        return f"{d.day:0{len(g('dmg_d'))}d}{_month_name(d.month, g('dmg_m'))}{_fmt_year(d.year, g('dmg_y'))}"
    if g("ymd") is not None:
        d = _shift(int(g("ymd_y")), _month(g("ymd_m")), int(g("ymd_d")), offset)
        s = g("ymd_s")
        return f"{d.year}{s}{_month_name(d.month, g('ymd_m'))}{g('ymd_dot') or ''}{s}{_pad(d.day, g('ymd_d'))}"
    if g("dmy") is not None:
        year = g("dmy_y")
        month = _month(g("dmy_m"))
        ref = _year_value(year) if year else _leap_if_needed(note_year, month, g("dmy_d"), g("dmy_d0"))
        d = _shift(ref, month, int(g("dmy_d")), offset)
        out = ""
        if g("dmy_d0") is not None:
            # the first day of "4-6 March 2019" is a date of the same month, and moves with it
            d0 = _shift(ref, month, int(g("dmy_d0")), offset)
            out = f"{_pad(d0.day, g('dmy_d0'))}{_ordinal(d0.day, g('dmy_o0'))}{g('dmy_r')}"
            if (d0.year, d0.month) != (d.year, d.month):  # the range now spans two months
                out = f"{_pad(d0.day, g('dmy_d0'))}{_ordinal(d0.day, g('dmy_o0'))} {_month_name(d0.month, g('dmy_m'))}"
                out += (g("dmy_dot") or "") + g("dmy_r")
        out += f"{_pad(d.day, g('dmy_d'))}{_ordinal(d.day, g('dmy_o'))}{g('dmy_s1')}"
        out += _month_name(d.month, g("dmy_m")) + (g("dmy_dot") or "")
        if year:
            out += g("dmy_s2") + _show_year(d.year, year)
        return out
    if g("mdy") is not None:
        year = g("mdy_y")
        month = _month(g("mdy_m"))
        ref = _year_value(year) if year else _leap_if_needed(note_year, month, g("mdy_d"), g("mdy_d2"))
        d = _shift(ref, month, int(g("mdy_d")), offset)
        out = _month_name(d.month, g("mdy_m")) + (g("mdy_dot") or "") + g("mdy_s1")
        out += f"{_pad(d.day, g('mdy_d'))}{_ordinal(d.day, g('mdy_o'))}"
        if g("mdy_d2") is not None:
            # the last day of "March 4-6, 2019" moves with the first, never kept as written
            d2 = _shift(ref, month, int(g("mdy_d2")), offset)
            out += g("mdy_r")
            if (d2.year, d2.month) != (d.year, d.month):
                out += _month_name(d2.month, g("mdy_m")) + (g("mdy_dot") or "") + g("mdy_s1")
            out += f"{_pad(d2.day, g('mdy_d2'))}{_ordinal(d2.day, g('mdy_o2'))}"
            d = d2  # the year written after the range is the last day's
        if year:
            out += g("mdy_s2") + _show_year(d.year, year)
        return out
    if g("my") is not None:
        raw_year = g("my_y")
        d = _shift(_year_value(raw_year), _month(g("my_m")), 15, offset)
        return _month_name(d.month, g("my_m")) + (g("my_dot") or "") + g("my_s") + _show_year(d.year, raw_year)
    if g("n2") is not None:
        a_s, b_s = g("n2_a"), g("n2_b")
        a, b, sep = int(a_s), int(b_s), g("n2_s")
        if len(b_s) == 4 or (a <= 12 and b > 31):  # month/year: 7/2019, 11/92
            d = _shift(int(b_s) if len(b_s) == 4 else _pivot(b), a, 15, offset)
            return f"{_pad(d.month, a_s)}{sep}{_fmt_year(d.year, b_s)}"
        if a <= 12 and not _swapped(a, b, day_first):  # month/day
            d = _shift(_leap_if_needed(note_year, a, b_s), a, b, offset)
            return f"{_pad(d.month, a_s)}{sep}{_pad(d.day, b_s)}"
        if b <= 12:  # day/month
            d = _shift(_leap_if_needed(note_year, b, a_s), b, a, offset)
            return f"{_pad(d.day, a_s)}{sep}{_pad(d.month, b_s)}"
        raise ValueError("not a date")
    if g("mon") is not None:
        d = _shift(note_year, _month(g("mon_m")), 15, offset)
        return _month_name(d.month, g("mon_m")) + (g("mon_dot") or "")
    if g("ord") is not None:
        day = _shift_day(int(g("ord_d")), offset)
        return f"{_pad(day, g('ord_d'))}{_ordinal(day, g('ord_o'))}"
    if g("decade") is not None:
        # "the 1990s": a decade on, or back, with the shift's sign (a few years would give "1993s")
        raw = g("decade_y")
        step = 10 if offset >= 0 else -10
        if len(raw.lstrip("'’")) == 2:
            return raw[:-2] + f"{(int(raw[-2:]) + step) % 100:02d}s"
        return f"{int(raw) + step}s"
    if g("hol") is not None:
        # a holiday names its day: it becomes the shifted day, written as a month and a day
        month, day = _holiday_date(g("hol"))
        d = _shift(note_year, month, day, offset)
        return _case_like(_MONTHS_FULL[d.month - 1], g("hol")) + f" {d.day}"
    if g("season") is not None:
        word, raw_year = g("season_w"), g("season_y")
        named = "fall" if word.lower() == "autumn" else word.lower()
        middle = _shift(_year_value(raw_year) if raw_year else note_year, _SEASON_MIDDLE_MONTH[named], 15, offset)
        season, season_year = _season_of(middle)
        if season == named and not raw_year:  # the year moved, so only a season alone can stay
            season = _SEASONS[(_SEASONS.index(season) + (1 if offset > 0 else -1)) % 4]
        out = _case_like("autumn" if season == "fall" and named != word.lower() else season, word)
        if raw_year:
            out += g("season_s") + _show_year(season_year, raw_year)
        return out
    if g("year") is not None:
        return str(int(g("year")) + year_delta(offset))
    if g("wd") is not None:
        word = g("wd")
        index = (_WEEKDAY_INDEX[word[:3].lower()] + offset) % 7
        full = _WEEKDAYS[index]
        # an abbreviation becomes the other day's usual one: the first four letters of a day
        # ("Tues" -> "Wedn") are no weekday a reader (or this grammar) knows
        shown = full if word.lower() in _WEEKDAYS else full[:3] if len(word) == 3 else _WEEKDAY_LONG_ABBR[index]
        return _case_like(shown, word)
    raise ValueError("unhandled date form")


def _shift(year: int, month: int, day: int, offset: int) -> date:
    if not 1 <= month <= 12:
        raise ValueError("month out of range")
    if not 1 <= day <= 31:
        raise ValueError("day out of range")
    last = (date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)).day
    return date(year, month, min(day, last)) + timedelta(days=offset)


def _leap_if_needed(year: int, month: int, *days: str | None) -> int:
    """``year``, or the leap year before it for a 29 February that ``year`` does not have."""
    if month == 2 and any(day is not None and int(day) == 29 for day in days):
        while not calendar.isleap(year):
            year -= 1
    return year


def _season_of(day: date) -> tuple[str, int]:
    """The season ``day`` falls in and the year naming it (a December is in the next year's winter)."""
    return _SEASONS[day.month % 12 // 3], day.year + (day.month == 12)


def _shift_day(day: int, offset: int) -> int:
    return (day - 1 + offset % 27 + 1) % 31 + 1


def _pivot(two_digit: int) -> int:
    if two_digit >= 100:
        return two_digit
    return 2000 + two_digit if two_digit <= 30 else 1900 + two_digit


def _year_value(raw: str) -> int:
    """The year a written year stands for: ``2019``, ``'19``, ``19`` -> 2019."""
    return _pivot(int(raw.lstrip("'’")))


def _show_year(year: int, original: str) -> str:
    """``year`` written as ``original`` was: four digits, or an apostrophe and two."""
    if original[:1] in "'’":
        return original[0] + f"{year % 100:02d}"
    return _fmt_year(year, original)


def _fmt_year(year: int, original: str) -> str:
    if len(original) <= 2:
        return f"{year % 100:02d}"
    return str(year)


def _pad(value: int, original: str) -> str:
    return _pad_like(value, original, False)


def _pad_like(value: int, original: str, zero_padded: bool) -> str:
    """Two-digit zero padding when the original number, or another in the same date, used it."""
    if len(original) == 2 and (original.startswith("0") or zero_padded):
        return f"{value:02d}"
    return str(value)


def _holiday_date(name: str) -> tuple[int, int]:
    """(month, day) of a holiday as :data:`_HOLIDAY` matched it ("Christmas Day", "new years")."""
    written = " ".join(name.lower().replace("’", "'").split()).replace("'", "")
    for key in (written, re.sub(r"\s+day$", "", written)):
        for holiday, when in _HOLIDAYS.items():
            if holiday.replace("'", "") == key:
                return when
    raise ValueError("not a holiday")


def _month(name: str) -> int:
    return _MONTH_INDEX[name[:3].lower()]


def _month_name(month: int, original: str) -> str:
    full = _MONTHS_FULL[month - 1]
    if original.lower() in _MONTHS_FULL and len(original) > 3:
        shown = full
    elif len(original) == 4 and original.lower() == "sept":
        shown = full[:4] if month == 9 else full[:3]
    else:
        shown = full[:3]
    return _case_like(shown, original)


def _ordinal(day: int, original: str | None) -> str:
    if not original:
        return ""
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return suffix.upper() if original.isupper() else suffix


def _case_like(word: str, original: str) -> str:
    if original.isupper() and len(original) > 1:
        return word.upper()
    if original.islower():
        return word.lower()
    return word[:1].upper() + word[1:].lower()


def _scramble_digits(text: str, rng: random.Random) -> str:
    return "".join(str(rng.randrange(10)) if ch.isdigit() else ch for ch in text)
