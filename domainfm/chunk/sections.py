"""Sectionizers: find the headings of a clinical note, a contract or a generic document.

A sectionizer is pattern data plus a little code. It returns :class:`Heading` objects (where a
heading starts, its title as written and its *rank*: lower ranks are outer levels);
:func:`build_sections` turns them into :class:`Section` objects with a heading path such as
``("Article 7", "7.2")`` and a flag for the top-level sections, which the splitter never lets a
chunk cross (except to pack several small whole sections together).

Sectionizers are looked up by name (:func:`get_sectionizer`); :func:`register_sectionizer`
adds one, e.g. for a hospital's own note template. They are given the text as
:func:`layout_text` writes it (every line break a ``\\n``, no-break spaces as spaces, same
length), so one pattern serves Windows, old Mac and web-copied text alike.

Example:
    >>> [s.title for s in sectionize("HPI: cough.\\nPLAN: rest.", "clinical")]
    ['HPI', 'PLAN']
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from typing import Callable, Sequence

from domainfm.config import suggest
from domainfm.errors import ConfigError

# Rank of a heading that sits at the document's outermost numbered level (recitals, an exhibit
# title on a contract's first line); resolved per document by build_sections.
TOP_LEVEL = None


@dataclass(frozen=True, slots=True)
class Heading:
    """A heading found in the text: ``text[start:end]`` is the heading as written."""

    start: int
    end: int
    title: str
    rank: int | None


@dataclass(frozen=True, slots=True)
class Section:
    """A section starts at its heading and runs to the next heading.

    Args:
        start: character where the heading starts.
        path: heading titles from the outermost section down to this one.
        top: True for a top-level section (a hard boundary for chunks).
    """

    start: int
    path: tuple[str, ...]
    top: bool

    @property
    def title(self) -> str:
        return self.path[-1]

    @property
    def label(self) -> str:
        return " > ".join(self.path)


Sectionizer = Callable[[str], list[Heading]]

# Same-length replacements: a heading pattern anchored at "^"/"$" with [ \t] gaps then matches
# "HPI\r\n", a page break before "ARTICLE 7", "Section\xa07.2" and a BOM before the first heading,
# and every offset found in the copy is the offset in the original.
_LAYOUT = str.maketrans({
    "\r": "\n", "\x0b": "\n", "\x0c": "\n", "\x85": "\n", "\u2028": "\n", "\u2029": "\n",
    "\xa0": " ", "\u2007": " ", "\u202f": " ", "\ufeff": " ", "\u200b": " ",
})


def layout_text(text: str) -> str:
    r"""``text`` with every line break as ``\n`` (``\r\n`` as ``" \n"``) and no-break/zero-width
    spaces and a BOM as spaces: the same length, so offsets found in it hold in ``text``."""
    return text.replace("\r\n", " \n").translate(_LAYOUT)


SECTIONIZERS: dict[str, Sectionizer] = {}


def register_sectionizer(name: str) -> Callable[[Sectionizer], Sectionizer]:
    """Register ``fn(text) -> list[Heading]`` under ``name`` (usable as ``--profile name``).

    The chunker and :func:`sectionize` call ``fn`` with :func:`layout_text`'s copy of the text.
    """

    def decorate(fn: Sectionizer) -> Sectionizer:
        if name in SECTIONIZERS:
            raise ValueError(f"sectionizer {name!r} is registered twice")
        SECTIONIZERS[name] = fn
        return fn

    return decorate


def get_sectionizer(name: str) -> Sectionizer:
    try:
        return SECTIONIZERS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown profile {name!r}{suggest(str(name), SECTIONIZERS)}; "
            f"available: {', '.join(sorted(SECTIONIZERS))}"
        ) from None


def sectionize(text: str, profile: str = "generic") -> list[Section]:
    """The sections of ``text`` according to sectionizer ``profile``, in text order."""
    return build_sections(get_sectionizer(profile)(layout_text(text)))


def build_sections(headings: Sequence[Heading]) -> list[Section]:
    """Nest headings by rank into heading paths; mark the top-level ones.

    The top level is the outermost rank the document actually uses: a contract without
    Articles has its ``1.``, ``2.`` clauses at the top; one with Articles has the Articles there.
    Headings of rank :data:`TOP_LEVEL` take that level; negative ranks (exhibits after the body) are
    outside everything and are top-level too.
    """
    headings = sorted(headings, key=lambda h: h.start)
    ranked = [h.rank for h in headings if h.rank is not None and h.rank >= 0]
    top_rank = min(ranked) if ranked else 0
    stack: list[tuple[int, str]] = []
    sections = []
    for heading in headings:
        rank = top_rank if heading.rank is None else heading.rank
        while stack and stack[-1][0] >= rank:
            stack.pop()
        stack.append((rank, heading.title))
        sections.append(Section(heading.start, tuple(t for _, t in stack), rank <= top_rank))
    return sections


class SectionIndex:
    """Which section a character is in, for many look-ups on one document."""

    def __init__(self, sections: Sequence[Section]):
        self.sections = list(sections)
        self._starts = [s.start for s in self.sections]

    def at(self, pos: int) -> Section | None:
        i = bisect_right(self._starts, pos) - 1
        return self.sections[i] if i >= 0 else None

    def label(self, start: int, end: int) -> str:
        """Heading path at ``start``; ``"A; B"`` when ``[start, end)`` also reaches into later
        top-level sections (small whole sections packed into one chunk)."""
        first = self.at(start)
        labels = [first.label] if first is not None else []
        i = bisect_right(self._starts, start)
        while i < len(self.sections) and self._starts[i] < end:
            if self.sections[i].top:
                labels.append(self.sections[i].label)
            i += 1
        return "; ".join(dict.fromkeys(label for label in labels if label))


# --------------------------------------------------------------------------------- clinical

# Canonical note sections and how they are written. Matching is case-insensitive; what is
# reported is the heading as written in the note.
CLINICAL_HEADERS = {
    "chief complaint": ["chief complaint", "cc", "reason for visit", "reason for consultation",
                        "reason for consult", "reason for admission", "presenting complaint"],
    "history of present illness": ["history of present illness", "hpi", "present illness",
                                   "history of the present illness", "interval history",
                                   "history", "subjective", "brief history"],
    "past medical history": ["past medical history", "pmh", "past history", "medical history",
                             "past medical/surgical history", "past surgical history", "psh",
                             "surgical history", "past medical and surgical history"],
    "medications": ["medications", "meds", "current medications", "home medications",
                    "admission medications", "medications on admission", "discharge medications",
                    "outpatient medications", "current meds"],
    "allergies": ["allergies", "allergy", "drug allergies", "medication allergies"],
    "family history": ["family history", "fh", "family hx", "fhx"],
    "social history": ["social history", "sh", "social hx", "shx"],
    "review of systems": ["review of systems", "ros", "systems review"],
    "physical exam": ["physical examination", "physical exam", "exam", "examination", "pe",
                      "objective", "vital signs", "general examination"],
    "labs": ["laboratory data", "laboratory", "labs", "lab data", "lab results",
             "laboratory studies", "laboratory results", "diagnostic studies", "diagnostic data",
             "imaging", "radiology", "studies", "pertinent results", "results"],
    "assessment": ["assessment and plan", "assessment & plan", "assessment/plan", "a/p", "a&p",
                   "assessment", "impression and plan", "impression", "clinical impression",
                   "diagnosis", "diagnoses", "admitting diagnosis", "discharge diagnosis",
                   "final diagnosis", "preoperative diagnosis", "postoperative diagnosis",
                   "differential diagnosis"],
    "plan": ["plan", "recommendations", "recommendation", "disposition", "plan of care"],
    "hospital course": ["hospital course", "brief hospital course", "course", "ed course",
                        "clinical course"],
    "procedure": ["procedure", "procedures", "procedure performed", "procedures performed",
                  "operation", "operations", "operation performed", "description of procedure",
                  "procedure in detail", "details of procedure", "indications",
                  "indication", "indications for procedure", "anesthesia", "findings",
                  "estimated blood loss", "complications", "specimens", "specimen",
                  "condition", "operative findings"],
    "discharge instructions": ["discharge instructions", "discharge condition",
                               "discharge disposition", "follow-up", "follow up",
                               "followup", "follow-up instructions", "patient instructions",
                               "instructions"],
}
_CLINICAL_PHRASES = sorted({p for ps in CLINICAL_HEADERS.values() for p in ps}, key=len, reverse=True)

# Where a heading may begin: the start of a line, or after the ".," / ":," glue of flattened
# notes ("...flaring up.,MEDICATIONS: , Her only medication...").
_LEAD = r"(?:(?<=\n)|^|(?<=[.:;)\]],)|(?<=[.:;)\]], ))[ \t]*"
_CLINICAL_KNOWN = re.compile(
    _LEAD + r"(?P<title>(?:" + "|".join(re.escape(p).replace(r"\ ", r"[ \t]+") for p in _CLINICAL_PHRASES)
    + r"))(?![\w/&-])[ \t]*(?P<colon>:)?",
    re.IGNORECASE | re.MULTILINE,
)
# Any other short label with a colon at a line start ("HEENT:", "Neck:", "Vitals:"), or an
# ALL-CAPS line of its own ("DISCHARGE SUMMARY"): sub-headings inside the known sections.
_CLINICAL_LABEL = re.compile(
    _LEAD + r"(?P<title>[A-Z][A-Za-z/&-]*(?:[ \t][A-Za-z/&-]+){0,3})[ \t]*:(?![/\d])", re.MULTILINE
)
_LINE_END = re.compile(r"[ \t]*(?:\n|$)")
_CAPS_LINE = re.compile(r"^[ \t]*(?P<title>[A-Z][A-Z0-9 /&,()'-]{2,60}?)[ \t]*:?[ \t]*$", re.MULTILINE)


@register_sectionizer("clinical")
def clinical_headings(text: str) -> list[Heading]:
    """Clinical note headings: known headers (rank 1) in their written variants, ``HEADER:``,
    ``HEADER:,`` and ALL-CAPS lines; other ``Label:`` headings at a line start (rank 2)."""
    found: dict[int, Heading] = {}
    for m in _CLINICAL_KNOWN.finditer(text):
        title = m.group("title")
        if not title[0].isupper():
            continue
        if m.group("colon") is None and not (title.isupper() and _LINE_END.match(text, m.end())):
            continue  # without a colon only an ALL-CAPS heading alone on its line counts ("PLAN\n")
        found[m.start("title")] = Heading(m.start("title"), m.end(), _clean(title), 1)
    for pattern in (_CLINICAL_LABEL, _CAPS_LINE):
        for m in pattern.finditer(text):
            title = m.group("title")
            start = m.start("title")
            if start in found or sum(c.isalpha() for c in title) < 2:
                continue
            if pattern is _CAPS_LINE and not any(c.isalpha() for c in title):
                continue
            if pattern is _CLINICAL_LABEL and not title.isupper() and len(title.split()) > 2:
                continue
            found[start] = Heading(start, m.end(), _clean(title), 2)
    return sorted(found.values(), key=lambda h: h.start)


# ------------------------------------------------------------------------------------ legal

_ROMAN = re.compile(r"^(?=[ivxlcdm]+$)m{0,3}(cm|cd|d?c{0,3})(xc|xl|l?x{0,3})(ix|iv|v?i{0,3})$")
_LEGAL = re.compile(
    r"^[ \t]*(?:"
    r"(?P<article>(?:ARTICLE|Article)[ \t]+(?P<art_no>[IVXLC]+|\d+)\b)"
    r"|(?P<section>(?:SECTION|Section)[ \t]+(?P<sec_no>\d+(?:\.\d+)*)\b)"
    r"|(?P<para>§+[ \t]*(?P<para_no>\d+(?:\.\d+)*))"
    r"|(?P<num>(?P<num_no>\d{1,3}(?:\.\d{1,3})*)(?P<num_dot>\.)?(?=[ \t]+[\"“(\[A-Z]))"
    r"|(?P<letter>\((?P<letter_no>[a-z]{1,2}|[ivxl]{1,5})\)|(?P<letter_no2>[a-z])\)(?=[ \t]))"
    r"|(?P<upper>\((?P<upper_no>[A-Z])\))"
    r"|(?P<paren_num>\((?P<paren_no>\d{1,2})\))"
    r"|(?P<recitals>RECITALS|Recitals|WHEREAS|W[ \t]?I[ \t]?T[ \t]?N[ \t]?E[ \t]?S[ \t]?S[ \t]?E[ \t]?T[ \t]?H"
    r"|BACKGROUND|PREAMBLE)\b"
    r"|(?P<exhibit>(?P<ex_kind>EXHIBIT|Exhibit|SCHEDULE|Schedule|APPENDIX|Appendix|ANNEX|Annex"
    r"|ATTACHMENT|Attachment|ADDENDUM|Addendum)[ \t]+(?P<ex_no>[A-Z0-9][\w.-]{0,8})(?=[ \t]*(?:[-–—:.][^\n]{0,70})?$))"
    r")",
    re.MULTILINE,
)

_LEGAL_KINDS = ("article", "section", "para", "num", "letter", "upper", "paren_num", "recitals", "exhibit")


@register_sectionizer("legal")
def legal_headings(text: str) -> list[Heading]:
    """Contract and statute headings at the start of a line: recitals, Article, Section, §,
    numbered clauses (``1.``, ``7.2``, ``7.2.1``), lettered (``(a)``, ``a)``), roman (``(iv)``),
    ``(A)``, ``(1)``, and schedules/exhibits/annexes."""
    headings = []
    seen_body = seen_recitals = False
    last_letter = ""
    for m in _LEGAL.finditer(text):
        kind = next(k for k in _LEGAL_KINDS if m.group(k) is not None)
        start = m.start(kind)
        if kind == "article":
            title, rank = f"Article {m.group('art_no')}", 0
        elif kind in ("section", "para", "num"):
            number = m.group({"section": "sec_no", "para": "para_no", "num": "num_no"}[kind])
            if kind == "num" and m.group("num_dot") is None and "." not in number:
                continue  # "2 Years" is text, "2. Term" and "7.2 Term" are clauses
            depth = number.count(".") + 1
            title = {"section": f"Section {number}", "para": f"§ {number}", "num": number}[kind]
            rank = 1 + depth
        elif kind == "letter":
            label = m.group("letter_no") or m.group("letter_no2")
            is_roman = bool(_ROMAN.match(label)) and not (
                len(label) == 1 and last_letter and ord(label) == ord(last_letter) + 1
            )
            if not is_roman:
                last_letter = label[-1]
            title, rank = f"({label})", 11 if is_roman else 10
        elif kind == "upper":
            title, rank = f"({m.group('upper_no')})", 12
        elif kind == "paren_num":
            title, rank = f"({m.group('paren_no')})", 13
        elif kind == "recitals":
            if seen_recitals:
                continue  # every recital starts "WHEREAS"; only the first opens the section
            seen_recitals = True
            title, rank = "Recitals", TOP_LEVEL
        else:  # exhibit / schedule / annex
            title = f"{m.group('ex_kind').title()} {m.group('ex_no').rstrip('.')}"
            rank = -1 if seen_body else TOP_LEVEL  # "EXHIBIT 10.1" on a filing's first line is its title
        if kind in ("article", "section", "para", "num"):
            seen_body = True
        headings.append(Heading(start, m.end(), title, rank))
    return headings


# ---------------------------------------------------------------------------------- generic

_MARKDOWN = re.compile(r"^[ \t]{0,3}(?P<hashes>#{1,6})[ \t]+(?P<title>[^\n#]+?)[ \t#]*$", re.MULTILINE)


@register_sectionizer("generic")
def generic_headings(text: str) -> list[Heading]:
    """Markdown headings (rank = number of ``#``) and ALL-CAPS lines (rank 1)."""
    headings = [Heading(m.start("hashes"), m.end(), _clean(m.group("title")), len(m.group("hashes")))
                for m in _MARKDOWN.finditer(text)]
    taken = {h.start for h in headings}
    for m in _CAPS_LINE.finditer(text):
        title = m.group("title")
        if m.start("title") not in taken and sum(c.isalpha() for c in title) >= 3:
            headings.append(Heading(m.start("title"), m.end(), _clean(title), 1))
    return sorted(headings, key=lambda h: h.start)


def _clean(title: str) -> str:
    return " ".join(title.replace(":", " ").split()).strip(" ,")
