"""Person names, with their role where the context shows it (PATIENT, RELATIVE, DOCTOR).

Reads the spaCy ``Doc`` computed once per batch. Evidence, strongest first: a trigger word
("Dr", "Mrs", "daughter"), a credential after a signature ("Jane Doe, RN"), a reporting verb
after a name ("Smith aware"), an initial ("E. DARBY", "k. fenwick"), a phone number right after
a name, a contact verb ("spoke with Marisol"), a dictionary hit (Faker's name lists), and finally
every other mention in the same note of a name already found. Words of the clinical and
common-English allow-lists are never names on dictionary evidence alone, which is what keeps
"PT", "CABG" or "Will" out in ALL-CAPS nursing notes.
"""

from __future__ import annotations

import re

from presidio_analyzer import RecognizerResult
from spacy.lang.en.stop_words import STOP_WORDS as _SPACY_STOP

from domainfm.deid.recognizers import vocab
from domainfm.deid.recognizers.base import DocShape, TokenRecognizer, result
from domainfm.deid.recognizers.words import Words, function_words, namey, unknown_capitalised

_INITIAL = re.compile(r"[A-Z]\.?")
_DOTTED_INITIALS = re.compile(r"(?:[A-Z]\.){2,3}")  # "Z.Q." signing a note
_TITLE_CASE = re.compile(r"[A-Z][a-z]+(?:['-][A-Za-z][a-z]+)?")
# dotted initials right before a name already found ("PER H. CARVER", "J.S. Quintavius", "k. o'casey"),
# up to three, after the start of the text, a space or punctuation that parts words
_INITIALS_BEFORE = re.compile(r"(?:^|(?<=[\s(,;:/]))(?:[A-Za-z]\.\s?){1,3}$")
_INITIALS_REACH = len("J. S. T. ")
# the second part of a double-barrelled surname glued on by a hyphen ("Dallow-Venn"), or a second
# name after a slash ("Attending: Quorvane/Tillet"), which the tokenizer splits off: it was left in
# clear beside the surrogate of the first
_HYPHEN_PART = re.compile(r"(?P<sep>[-/])(?P<w>[A-Za-z][A-Za-z']*[A-Za-z])\b")
_GLUED_TITLE = re.compile(
    r"(?:(?<![A-Za-z.])(?P<t>(?i:drs?|mrs?|ms))\.(?=[A-Za-z])"      # "DR.QUORVANE"
    r"|(?<=[a-z]\.)(?P<t2>(?i:drs?))\.?\s+)"                        # "ok.dr wexley"
    r"(?P<n>[A-Za-z][A-Za-z'\-]+)")
_PHONE_START = re.compile(r"\d{3}\)?[-. ]?\d{3}[-. ]?\d{4}")
_PHONE_LABELS = frozenset("cell cell# home home# work work# ph phone tel # : - , ( = # pager beeper mobile c h w".split())
_NAME_VERBS_AFTER = vocab.NAME_FOLLOWERS - {"and", "or", "at"}
_HOMES = frozenset("house home apartment apt place condo farm residence".split())
# whose phone a number is ("Quorvath's number is ...", "Zelbrook Quorvath's cell"); an agency or a
# pharmacy has a number too, so the owner must be a word only a name explains
_PHONES = frozenset("number cell phone mobile pager #".split())
# who a name in brackets speaks for ("MICU team (Quorvath) aware")
_TEAMS = frozenset("team teams service".split())
_CLOSING_BRACKET = frozenset({")"})
_CLAUSE_START = {"(", ".", ",", ";", ":", "-", "--"}
# what opens a signature line before initials ("-- Z.Q., RN", "/s/ Z.Q., RN")
_SIGNATURE_OPENERS = frozenset("- -- --- — /s/ | *".split())
# what may end the value of a person field: the end of the line or cell, a credential's comma,
# an e-mail address or a role in brackets
_FIELD_VALUE_ENDS = frozenset(", ; | ( < [ / -".split())
_PATIENT_FIELDS = frozenset(("name", "full name", "legal name", "preferred name", "patient name", "pt name",
                             "patient's name", "patient", "pt"))


def initials_before(text: str, start: int, lower: bool) -> int:
    """Where the dotted initials right before the name at ``start`` begin ("J. ", "J.S. ", "J. S. "),
    or ``start`` when none stand there. Lower-case initials ("k. o'casey") count only where
    ``lower`` (the name is read in lower case); a mix of cases ("j.S.") is no initials.

    The one definition for the recognizers and name propagation (:mod:`domainfm.deid.propagate`):
    an initial left beside a name's surrogate is the real person's ("J. Quintavius" must not come
    out as "J. Li"). A lone "A." or "I." counts too: a list's letter right before a name already
    found is rarer than a real initial, and the name's span only grows by it.
    """
    m = _INITIALS_BEFORE.search(text, max(0, start - _INITIALS_REACH), start)
    if m is None:
        return start
    letters = "".join(c for c in m.group() if c.isalpha())
    return m.start() if letters.isupper() or lower and letters.islower() else start


def _short_capitals(word: str, shape: DocShape) -> bool:
    """Up to four capitals in a note that has lower case too: a unit, a service or an
    abbreviation ("MICU", "PCP", "GI"), not a name written in capitals."""
    return shape.mixed and word.isupper() and len(word) <= 4


def _opens_clause(before: str) -> bool:
    """Whether a clause starts after this token: punctuation, a line break, or none at all."""
    return before in _CLAUSE_START or "\n" in before or not before.strip()

_CUT_OFF = re.compile(r"[a-z]{1,3}-")  # a word broken off in a transcript ("n-", "th-")
# who is spoken to ("hi, thea", "thanks hunter", "hello, ms. x"): transcribed visits
_GREETINGS = frozenset("hi hey hello bye goodbye thanks welcome".split())
# what follows a greeting but is no one: interjections, and the dictation assistants that a
# clinician addresses in ambient notes (Dragon, DAX)
_NOT_ADDRESSED = frozenset("yep yeah yup yes nope ok okay um uh uhm hmm mhm alright sure great cool wow oh ah huh "
                           "dragon dax".split())
# who is described by age ("Hunter Lane is a pleasant 72-year-old", "carter x is a 58 -year-old")
_AGED = re.compile(r"(?i)is\s+an?\s+(?:[a-z]+\s+){0,2}?(?:\d{1,3}|[a-z]+(?:[- ][a-z]+)?)\s*-?\s*"
                   r"(?:years?|yrs?)\s*-?\s*old\b|is\s+an?\s+(?:[a-z]+\s+){0,2}?\d{1,3}\s*(?:y\.?o\b|y/o\b)")
_SKIP_AFTER_TRIGGER = {".", ",", ":", "-", "(", "'s", "'S", "’s", "is", "named", "=", "--", '"'}

_DOCTOR = frozenset(t.rstrip(".") for t in vocab.DOCTOR_TITLES)
_PATIENT = frozenset(t.rstrip(".") for t in vocab.PATIENT_TITLES)
_OTHER = frozenset(t.rstrip(".") for t in vocab.OTHER_TITLES)


# what is discussed before with whom ("discussed pt with", "discussed plan w/")
_DISCUSSED_OBJECTS = frozenset("pt patient case plan plans care results findings situation this above same".split())


def _after_with(w: Words, j: int) -> int:
    """The token after "with"/"to" at token j, also written "w/" (nurses' "with", which spaCy
    may cut in two: "spoke w/ wife"); j itself when no such word is there."""
    if j < w.n and w.lower[j] in ("with", "to", "w/"):
        return j + 1
    if j + 1 < w.n and w.lower[j] == "w" and w.text[j + 1] == "/":
        return j + 2
    return j


# who a message or a shift report went to or came from ("left message for", "report given to")
_HANDOFF_NOUNS = frozenset("message msg voicemail vm report".split())


def _handoff_to(w: Words, j: int) -> int:
    """After a handoff noun, the token after "for"/"to"/"from" (with "given"/"received"/"left"
    between: "report given to", "message left for"); j itself when none follows."""
    if j < w.n and w.lower[j] in ("given", "received", "left", "gvn"):
        j += 1
    return j + 1 if j < w.n and w.lower[j] in ("for", "to", "from") else j


def _by_first_word(phrases: str) -> dict[str, list[tuple[str, ...]]]:
    """Phrases ("|" between them) by their first word, each with the words that follow it."""
    out: dict[str, list[tuple[str, ...]]] = {}
    for phrase in phrases.split("|"):
        first, *rest = phrase.split()
        out.setdefault(first, []).append(tuple(rest))
    return out


# cue phrases a person's name follows that "spoke with" (vocab.CONTACT_TRIGGERS) does not read: who
# is asked for, paged out to, rounded with or awaited a call from; "with" is also "w/" (and, as
# _after_with reads it, "to"). A thing or a service follows them as often ("asking for water",
# "call back from pharmacy"), so the word after must be one only a name explains
# (NameRecognizer._only_a_name)
_NAME_CUES = _by_first_word("asking for|asked for|asks for|ask for|page out to|paged out to|paging out to|"
                            "round with|rounds with|rounded with|rounding with|call back from|called back from|"
                            "callback from|call - back from|return call from")


def _after_cue(w: Words, i: int) -> int:
    """The token after a cue phrase of :data:`_NAME_CUES` that starts at token i, or i."""
    for rest in _NAME_CUES.get(w.lower[i], ()):
        j = i + 1
        for word in rest:
            if word == "with" and _after_with(w, j) > j:
                j = _after_with(w, j)
            elif j < w.n and w.lower[j] == word:
                j += 1
            else:
                break
        else:
            return j
    return i


def _discussed_with(w: Words, i: int) -> bool:
    """Token i is the "w" of "d/w" (nurses' "discussed with"), which spaCy cuts into "d", "/",
    "w"; not the end of a longer word ("hd/w")."""
    return w.lower[i] == "w" and i >= 2 and w.text[i - 1] == "/" and w.lower[i - 2] == "d" \
        and (i < 3 or not w.text[i - 3].isalnum() or " " in w.doc[i - 3].whitespace_)


class NameRecognizer(TokenRecognizer):
    """Person names with their role where the context shows it (PATIENT, RELATIVE, DOCTOR)."""

    labels = ("PATIENT", "RELATIVE", "DOCTOR", "NAME")

    def load(self) -> None:
        self.stop = vocab.stop_words()
        self.function_words = function_words()
        self.first = vocab.first_names() | vocab.NICKNAMES
        self.us_first = vocab.us_first_names()
        self.core = vocab.core_names()
        self.names = vocab.all_names() | vocab.NICKNAMES
        self.surnames = vocab.last_names() & self.core  # listed surnames the English-speaking locales know
        self.dictionary = self.options.get("dictionary", True)
        self.noun_first = vocab.noun_first_names()

    # a token may start a name after a trigger word; ``strong`` for titles ("Dr", "Mrs"), weak
    # for relation words ("daughter"), which verbs and clinical words follow as often as names
    def _ok_after_trigger(self, w: Words, k: int, shape: DocShape, strong: bool) -> bool:
        word, low = w.text[k], w.lower[k]
        if not namey(word) or low in vocab.AFTER_NAME_VERBS or low in vocab.CORE_FUNCTION_WORDS:
            return False
        if low in _SPACY_STOP:
            # "Dr. Noone", "Dr Will Cole": a title makes a rare stop word a name
            if not strong or low not in self.names or low in vocab.AUXILIARIES and not (
                    shape.mixed and word[0].isupper() and k + 1 < w.n and w.text[k + 1][:1].isupper()
                    and namey(w.text[k + 1]) and (w.lower[k + 1] not in self.stop or w.lower[k + 1] in self.names)):
                return False
            return not shape.mixed or word[0].isupper()
        if strong and low not in self.function_words:
            return not (shape.mixed and word[0].islower() and low in self.stop)
        if low in self.function_words or low in self.stop:
            return low in self.names and low not in vocab.NEVER_NAMES and (
                strong or (low in self.first and low not in vocab.CLINICAL_VOCAB))
        if shape.mixed and word[0].islower() and low not in self.names:
            return False
        if strong or low in self.names:
            return True
        if shape.mixed:
            return word[0].isupper() and not vocab.is_english(low)
        return not vocab.is_english(low)

    def _particle_before_name(self, w: Words, k: int, shape: DocShape) -> int | None:
        """The token after the surname particles starting at k ("der" of "Van der Holt", up to
        two), when it could be part of a name in the note's case; None when k is no particle."""
        j = k
        while j < w.n and j - k < 2 and w.lower[j] in vocab.SURNAME_PARTICLES:
            j += 1
        if j == k or j >= w.n or not namey(w.text[j]) or w.lower[j] in _SPACY_STOP:
            return None
        if shape.mixed:
            return j if w.text[j][:1].isupper() else None
        return j if w.lower[j] in self.names or not vocab.is_english(w.lower[j]) else None

    def _continues(self, w: Words, k: int, shape: DocShape, first_word: str) -> bool:
        word, low = w.text[k], w.lower[k]
        if self._record_cue(w, k):
            return False  # "John A. DOB: ...", "Pt John A. MRN ...": the field after the name
        if low in vocab.SURNAME_PARTICLES:
            return self._particle_before_name(w, k, shape) is not None
        if _INITIAL.fullmatch(word) and word != "I":
            return k + 1 < w.n and self._continues(w, k + 1 + (w.text[k + 1] == "."), shape, first_word) \
                if k + 1 < w.n else False
        if not namey(word) or low in self.stop and not (
                shape.mixed and word[0].isupper() and low in self.names and low not in self.function_words):
            return False
        if shape.mixed:
            return first_word[:1].isupper() == word[:1].isupper()
        if shape.lower and _TITLE_CASE.fullmatch(first_word) and _TITLE_CASE.fullmatch(word):
            return True  # "wife (Orla Dryden, ...)": capitals are rare, so two in a row are a name
        return low in self.names or not vocab.is_english(low)

    def _take(self, w: Words, j: int, shape: DocShape, strong: bool) -> tuple[int, int] | None:
        """Name tokens starting at j: returns (first, last) token index or None."""
        # a title's name follows it; a bracket after a title opens an aside ("a 65-year-old lady
        # (generalized anxiety disorder, ...)"), where a relation's name may stand ("wife (Orla)")
        while j < w.n and w.text[j] in _SKIP_AFTER_TRIGGER and (strong or w.text[j] != ".") and not (
                strong and w.text[j] == "("):
            j += 1
        if j >= w.n:
            return None
        k = self._particle_before_name(w, j, shape) or j  # "Dr. de Vexa": the particle opens the name
        # an initial first: "Dr. J. Smith", "K. FENWICK", "Attending: C.K. Herring"
        initial = _INITIAL.fullmatch(w.text[k]) and w.text[k] != "I" or _DOTTED_INITIALS.fullmatch(w.text[k])
        if initial and k + 1 < w.n:
            nxt = k + 1 + (w.text[k + 1] == ".")
            if nxt < w.n and self._ok_after_trigger(w, nxt, shape, strong):
                k = nxt
            else:
                return None
        elif not self._ok_after_trigger(w, k, shape, strong):
            return None
        last = k
        while last + 1 < w.n and last - j < 3 and self._continues(w, last + 1, shape, w.text[k]):
            last += 1
        return j, last

    def find(self, text, doc, shape):
        w = Words.of(doc)
        found: list[tuple[int, int, str, float]] = []  # token spans
        i = 0
        while i < w.n:
            low = w.lower[i]
            word = w.text[i]
            role = None
            nxt_low = w.lower[i + 1] if i + 1 < w.n else ""
            if (low in _DOCTOR or low in _PATIENT) and nxt_low == ":" and low not in ("dr", "drs"):
                pass  # "MS:" / "MR:" section headers (mental status, mitral regurgitation)
            elif low in _DOCTOR or (low in ("md", "pa", "np", "rn") and i + 1 < w.n and (
                    (w.text[i + 1][:1].isupper() and shape.mixed and (nxt_low in self.names or not vocab.is_english(nxt_low)))
                    or (not shape.mixed and i + 2 < w.n and (w.lower[i + 2] in vocab.AFTER_NAME_VERBS or (
                        # "per np tillet, hold lasix": a word, not an abbreviation ("rn bx, neg")
                        w.text[i + 2] in (",", ";", ")") and len(nxt_low) >= 4 and re.search(r"[aeiouy]", nxt_low)))
                        and not vocab.is_english(nxt_low) and nxt_low not in self.stop))):
                role, strong = "DOCTOR", True
            elif low in _PATIENT:
                role, strong = "PATIENT", True
                if low == "ms":
                    k = i + 1
                    while k < w.n and w.text[k] in _SKIP_AFTER_TRIGGER:
                        k += 1
                    cand = w.lower[k] if k < w.n else ""
                    if not (cand in self.names or not vocab.is_english(cand)) or cand in vocab.CLINICAL_VOCAB \
                            or (shape.mixed and k < w.n and not w.text[k][:1].isupper()):
                        role = None  # "MS changes", "ms: remains", "MS. Aspiration" (mental status)
            elif low in _OTHER:
                role, strong = "NAME", True
                if low in vocab.WEAK_TITLES:
                    strong = False
            elif low in vocab.RELATION_WORDS:
                role, strong = "RELATIVE", False
            elif vocab.is_role_noun(low) and i + 1 < w.n and w.text[i + 1] not in (":", "-"):
                role, strong = "DOCTOR", False  # "cardiologist Pemberton", "attending Okafor aware"
            elif (low in vocab.CONTACT_TRIGGERS or _discussed_with(w, i)
                  or (low in _HANDOFF_NOUNS and _handoff_to(w, i + 1) > i + 1)) and i + 1 < w.n:
                # "spoke with Ingrid", "ask to page Oswin", "spoke at length with Bre Halvorsen",
                # "spoke w/ Ingrid", "d/w Ingrid", "discussed plan w/ Ingrid": a listed or
                # unknown word (capitalised where the note uses capitals)
                if low in _HANDOFF_NOUNS:
                    j = _handoff_to(w, i + 1)
                elif low == "discussed" and nxt_low in _DISCUSSED_OBJECTS and _after_with(w, i + 2) > i + 2:
                    j = _after_with(w, i + 2)  # "discussed pt with", "discussed plan w/": what, then with whom
                else:  # "spoke with", "spoken extensively with", "d/w"
                    j = _after_with(w, i + 1 + (nxt_low.endswith("ly") and _after_with(w, i + 2) > i + 2))
                if j < w.n and self._contact_name(w, j, shape):
                    last = self._name_end(w, j, shape)
                    found.append((j, last, "NAME", 0.6))
                    i = last + 1
                    continue
            if role is not None:
                start = i + 1
                if role == "RELATIVE" and w.lower[start:start + 4] == ["-", "in", "-", "law"]:
                    start += 4  # "son-in-law Bob"
                span = self._take(w, start, shape, strong)
                if span is None and role == "RELATIVE":
                    span = self._relative_fallback(w, start, shape)
                elif span is not None and not strong and span[0] == span[1] \
                        and self._verb_after_relation(w, span[0], shape):
                    span = None
                while span is not None:
                    found.append((span[0], span[1], role, 0.85 if role != "RELATIVE" else 0.8))
                    # "Drs Quorvane and Tillet", "sons Oswin, Arden and Brendan"
                    nxt = span[1] + 1
                    if nxt + 1 < w.n and w.lower[nxt] in ("and", "&", ",", "or"):
                        j = nxt + 1 + (w.lower[nxt + 1] == "and" and w.lower[nxt] == ",")
                        span = self._take(w, j, shape, False) if j < w.n and w.lower[j] not in ("dr", "drs") \
                            else None
                        if span is not None and w.lower[span[0]] in vocab.RELATION_WORDS:
                            span = None
                    else:
                        span = None
                i += 1
                continue
            after = i + 1
            if i + 2 < w.n and w.text[i + 1] == "-" and f"{word}-{w.text[i + 2]}".upper() in vocab.CREDENTIALS_UPPER:
                after = i + 3  # "PA-C", which the tokenizer splits in three
            ends_phrase = after == w.n or "\n" in w.text[after] or w.text[after] in (".", ",", ";", "..", ")") \
                or w.lower[after] in vocab.AFTER_NAME_VERBS
            if (word in vocab.CREDENTIALS or (word.upper() in vocab.CREDENTIALS and (word.isupper() or (
                    shape.lower and low in ("rrt", "crt", "rn", "np", "msw") and ends_phrase)))) \
                    and (ends_phrase or word.upper() not in vocab.AMBIGUOUS_CREDENTIALS or shape.upper):
                span = self._back(w, i, shape, credential=True)
                if span is not None and not ends_phrase and word.upper() in vocab.AMBIGUOUS_CREDENTIALS and not (
                        span[1] > span[0] and any(not vocab.is_english(w.lower[t]) and w.lower[t] not in self.stop
                                                  and len(w.text[t]) > 2 for t in range(span[0], span[1] + 1))):
                    span = None
                if span is not None:
                    found.append((span[0], span[1], "DOCTOR", 0.75))
            elif low in ("(", "-") and i + 2 < w.n and w.text[i + 2] in (")", "-") and (
                    w.lower[i + 1] in vocab.RELATION_WORDS or w.text[i + 1] in vocab.CREDENTIALS
                    or vocab.is_role_noun(w.lower[i + 1])):
                # "Hank Smith (son)", "Blaxo (SW) following", "Zorvale (attending)"
                relative = w.lower[i + 1] in vocab.RELATION_WORDS
                span = self._back(w, i, shape, credential=True)
                if span is not None and not relative and not all(
                        self._unknown_word(w, t) or (w.lower[t] in self.names and w.lower[t] not in self.stop)
                        for t in range(span[0], span[1] + 1) if not _INITIAL.fullmatch(w.text[t])):
                    span = None  # "Vanc (PA)", "Cardiology (attending)": a drug or a service
                if span is not None:
                    found.append((span[0], span[1], "RELATIVE" if relative else "DOCTOR", 0.7))
            elif low == "," and (relation := self._appositive_relation(w, i)) is not None:
                # "Discussed with Zorvek, pt's nephew", "called zorvek, her son": the relation after
                # the name says who it is
                span = self._back(w, i, shape)
                if span is not None and all(
                        self._unknown_word(w, t) or (w.lower[t] in self.names and w.lower[t] not in self.stop)
                        for t in range(span[0], span[1] + 1) if not _INITIAL.fullmatch(w.text[t])):
                    found.append((span[0], span[1], "RELATIVE" if relation else "DOCTOR", 0.7))
            elif low == "(" and i > 0 and i + 2 < w.n and w.text[i + 2] == ")" \
                    and (w.text[i - 1].upper() in vocab.CREDENTIALS_UPPER | {"PT", "OT"}
                         or vocab.is_role_noun(w.lower[i - 1]) or w.lower[i - 1] in vocab.SERVICE_WORDS) \
                    and self._unknown_word(w, i + 1) \
                    and (w.text[i + 1][0].isupper() if shape.mixed
                         else len(w.text[i + 1]) >= 4 and not vocab.near_english(w.lower[i + 1])):
                # "seen by PT (Ravlin)", "SW (TORVAK) FOLLOWING", "Ortho (Velloran) saw pt": a
                # clinician's name after the role or service
                found.append((i + 1, i + 1, "DOCTOR", 0.65))
            elif low == "(" and i > 0 and w.lower[i - 1] in _TEAMS \
                    and (last := self._short_name(w, i + 1, shape, _CLOSING_BRACKET)) is not None:
                # "team (Quorvath) aware", "MICU team (Zelbrook Quorvath) aware": who speaks for the
                # team; a unit, a service or a colour stands there too ("Team (ICU)", "team (Gold)")
                found.append((i + 1, last, "DOCTOR", 0.65))
            elif (span := self._initial_name(w, i, shape)) is not None:
                # "Z. MILLER", "J. Chang", "E. DARBY AWARE", "k. fenwick rrt"
                found.append((i, span, "NAME", 0.65))
                i = span
            elif (k := self._before_phone(w, i)) is not None:
                # "Odile Brankova cell# 410-...", "(Ines Dalloway, 301-555-0134)"
                span = self._back(w, k, shape, need_evidence=True)
                if span is not None and not any(w.lower[t] in vocab.RELATION_WORDS for t in range(span[0], span[1] + 1)):
                    found.append((span[0], span[1], "NAME", 0.6))
            elif (low in vocab.AFTER_NAME_VERBS or w.lower[i:i + 2] == ["to", "call"]) \
                    and not (i > 0 and w.lower[i - 1] in vocab.RELATION_WORDS):
                # "Smith aware", "Quorvath to call back": a name before what it was told or is to do
                span = self._back(w, i, shape, need_evidence=True)
                if span is not None:
                    found.append((span[0], span[1], "DOCTOR", 0.65))
                elif (k := self._told_one(w, i, shape)) is not None:
                    found.append((k, k, "NAME", 0.6))
            elif self.dictionary and low in self.names and low not in self.stop and namey(word) \
                    and len(word) >= 3 and (not shape.mixed or word[0].isupper()) \
                    and (low in self.us_first or not vocab.is_english(low)) \
                    and (low in self.core or len(word) >= 5 or shape.mixed) and low not in vocab.CLINICAL_VOCAB:
                last = self._name_end(w, i, shape)
                first = i
                if i > 0 and _INITIAL.fullmatch(w.text[i - 1]) and w.text[i - 1] not in ("I", "A"):
                    first = i - 1
                found.append((first, last, "NAME", 0.5 if low in self.first else 0.45))
                i = last
            elif self.dictionary and low in self.noun_first and (not shape.mixed or word[0].isupper()) \
                    and i + 1 < w.n and w.lower[i + 1] in _NAME_VERBS_AFTER \
                    and (i == 0 or w.text[i - 1] in _CLAUSE_START or "\n" in w.text[i - 1]
                         or w.lower[i - 1] in ("and", "with", "per")):
                # "(PHOEBE IS OFF TODAY)": a first name that is also a noun, starting a clause
                found.append((i, i, "NAME", 0.45))
            i += 1
        found += self._coordinated(w, found, shape)
        found += self._owner(w, shape)
        found += self._addressed(w, shape)
        found += self._introduced(w, shape)
        found += self._dictation_opening(w, shape)
        found += self._described(w, shape)
        found += self._patient_named(w, shape)
        found += self._experiencer(w, shape)
        found += self._person_in_sentence(w, shape)
        found += self._named_after_cue(w, shape)
        found += self._staff_by_role(w, shape)
        found += self._from_service(w, shape)
        found += self._caps_line_opening(w, shape)
        found += self._field_value(w, shape)
        found += self._signed_off(w, shape)
        out = self._propagate(text, doc, w, found, shape)
        # titles glued to the name or to the previous word ("DR.QUORVANE", "ok.dr wexley")
        for m in _GLUED_TITLE.finditer(text):
            name = m.group("n")
            if name.lower() not in self.function_words and name.lower() not in _SPACY_STOP:
                role = "DOCTOR" if (m.group("t") or m.group("t2")).lower().startswith("d") else "PATIENT"
                out.append(result(role, m.start("n"), m.end("n"), 0.8, f"{self.name}:glued_title"))
        return [self._with_hyphen_part(text, self._with_initial(text, r, shape), shape) for r in out]

    @staticmethod
    def _with_initial(text: str, found, shape: DocShape):
        """The name widened to the initials right before it ("H. CARVER" where "CARVER" is known)."""
        start = initials_before(text, found.start, shape.lower)
        if start == found.start:
            return found
        return result(found.entity_type, start, found.end, found.score,
                      found.recognition_metadata[RecognizerResult.RECOGNIZER_NAME_KEY])

    def _with_hyphen_part(self, text: str, found, shape: DocShape):
        """The name widened to a surname part glued on by a hyphen ("Tamsey Dallow-Venn's") or a name
        after a slash ("Quorvane/Tillet"), written in the name's case; a lower-case part after a
        capitalised name ("Smith-ordered") or an English word in a note or a name of one case
        ("SMITH-AWARE", "smith-aware") is no part of it."""
        end = found.end
        capitals = text[found.start:found.end].isupper()  # "MRS. DALLOW-VENN" in a mixed-case note
        while (m := _HYPHEN_PART.match(text, end)) is not None:
            part = m.group("w")
            part = part[:-2] if part[-2:] in ("'s", "'S") else part  # "Dallow-Venn's": the possessive is no part
            low = part.lower()
            if capitals or shape.upper:
                in_case = part.isupper()
            else:
                in_case = shape.lower or bool(_TITLE_CASE.fullmatch(part))
            # in a note or a name of one case, capitals say nothing: an English word is no part of a
            # name unless it is a surname too ("smith-jones", "SMITH-JONES"; never "smith-aware")
            english = vocab.is_english(low) and not (low in self.surnames and low not in self.stop)
            if not in_case or (not shape.mixed or capitals) and english \
                    or (low in self.stop and low not in self.names):
                break
            # after a slash stands a word as often as a name ("Dr. Smith/Cardiology"): a listed name or
            # a word no lexicon knows
            if m.group("sep") == "/" and (vocab.is_english(low) and low not in self.names or low in vocab.CLINICAL_VOCAB):
                break
            end = m.start("w") + len(part)
        if end == found.end:
            return found
        return result(found.entity_type, found.start, end, found.score,
                      found.recognition_metadata[RecognizerResult.RECOGNIZER_NAME_KEY])

    def _coordinated(self, w: Words, found, shape: DocShape) -> list[tuple[int, int, str, float]]:
        """A second name joined to a found one ("sons Smokey and Dale.", "proxies: marisol and
        dvorek"): a listed or unknown word that ends the phrase."""
        out = []
        starts = {first for first, *_ in found}
        for first, last, role, score in found:
            k = last + 2
            if k >= w.n or w.lower[last + 1] not in ("and", "&") or k in starts:
                continue
            word, low = w.text[k], w.lower[k]
            if not namey(word) or low in self.stop or low in self.function_words or low in vocab.RELATION_WORDS \
                    or low in vocab.NEVER_NAMES or (shape.mixed and not word[0].isupper()) \
                    or vocab.is_english(low) and low not in self.first:
                continue
            ends = k + 1 == w.n or "\n" in w.text[k + 1] or w.text[k + 1] in (".", ",", ";", ":", ")") \
                or w.lower[k + 1] in _NAME_VERBS_AFTER
            if ends:
                out.append((k, k, role, min(score, 0.6)))
        # before it: "Both Yorvel and Hank are his proxies", "KAZ BRE AND DRS DADAKA AWARE"
        for first, last, role, score in found:
            title = first > 0 and (w.lower[first - 1] in _DOCTOR or w.lower[first - 1] in _PATIENT)
            conj = first - 1 - title
            if conj < 2 or w.lower[conj] not in ("and", "&"):
                continue
            run = [k for k in range(conj - 1, max(-1, conj - 3), -1) if self._unknown_word(w, k)
                   and not (shape.mixed and not w.text[k][0].isupper())]
            run = run[:next((n for n, k in enumerate(run) if k != conj - 1 - n), len(run))]  # contiguous
            if not run:
                continue
            before = w.text[run[-1] - 1] if run[-1] > 0 else "\n"
            if _opens_clause(before) or w.lower[run[-1] - 1] in ("both", "with", "by", "per", "and"):
                out.append((run[-1], run[0], "DOCTOR" if title and w.lower[first - 1] in _DOCTOR else role,
                            min(score, 0.6)))
        return out

    def _owner(self, w: Words, shape: DocShape) -> list[tuple[int, int, str, float]]:
        """Whose home or phone it is ("stays at Nell Varga's house", "Quorvath's cell"): up to two
        words before "'s house" or "'s number", none a relation ("her daughter's house") or a
        function word ("pt's number"). Before a home one of them must be a listed name or an
        unknown word; before a phone, a listed name no dictionary knows or a word only a name
        explains (:meth:`_only_a_name`), as a service or an agency has a number too."""
        out = []
        for i in range(1, w.n - 1):
            if w.lower[i] not in ("'s", "’s") or (w.lower[i + 1] not in _HOMES and w.lower[i + 1] not in _PHONES):
                continue
            first = None
            k = i - 1
            while k >= 0 and i - k <= 2:
                word, low = w.text[k], w.lower[k]
                if not namey(word) or low in _SPACY_STOP or low in self.stop and low not in self.names \
                        or low in vocab.RELATION_WORDS or (shape.mixed and not word[0].isupper()):
                    break
                first = k
                k -= 1
            if first is None:
                continue
            owner = range(first, i)
            listed = [t for t in owner if w.lower[t] in self.names]
            if w.lower[i + 1] in _HOMES:
                named = listed or any(not vocab.is_english(w.lower[t]) for t in owner)
            else:
                named = any(not vocab.is_english(w.lower[t]) for t in listed) \
                    or any(self._only_a_name(w, t, shape) for t in owner)
            if named:
                out.append((first, i - 1, "NAME", 0.55))
        return out

    def _addressed(self, w: Words, shape: DocShape) -> list[tuple[int, int, str, float]]:
        """Who a greeting speaks to, as transcribed visits write it ("hi, thea.", "hey hunter good
        to see you", "thanks hunter", "hello, ms. gray"): after a title the title's rules take the
        name (the greeting settles "ms." as a title, not mental status); otherwise a listed or
        unknown word, with a surname that continues it."""
        out = []
        for i in range(w.n - 1):
            low = w.lower[i]
            if low == "thank" and w.lower[i + 1] == "you":
                k = i + 2
            elif low in _GREETINGS:
                k = i + 1
            else:
                continue
            k += k < w.n and w.text[k] == ","
            if k >= w.n:
                continue
            title = w.lower[k]
            if title in _PATIENT or title in _DOCTOR or title in _OTHER:
                span = self._take(w, k + 1, shape, True)
                if span is not None:
                    role = "DOCTOR" if title in _DOCTOR else "PATIENT" if title in _PATIENT else "NAME"
                    out.append((span[0], span[1], role, 0.85))
                continue
            if title in _NOT_ADDRESSED or title in _GREETINGS or not self._could_lead(w, k, shape):
                continue
            out.append((k, self._name_end(w, k, shape), "NAME", 0.6))
        return out

    def _introduced(self, w: Words, shape: DocShape) -> list[tuple[int, int, str, float]]:
        """Dictated introductions: "next patient is dorothy fields .", "patient's name is ..." (a
        name that ends the phrase)."""
        out = []
        for i in range(1, w.n - 1):
            if w.lower[i] != "is" or w.lower[i - 1] not in ("patient", "name") \
                    or (i > 1 and w.lower[i - 2] in ("this", "the", "a", "our")):
                continue
            run = []
            k = i + 1
            while k < w.n and k - i <= 3 and self._could_follow(w, k, shape):
                run.append(k)
                k += 1
            ends = k == w.n or "\n" in w.text[k] or w.text[k] in (".", ",", ";", "(", "#") \
                or w.lower[k] in _PHONE_LABELS or w.text[k][:1].isdigit()
            if run and ends and self._could_lead(w, run[0], shape):
                out.append((run[0], run[-1], "NAME", 0.7))
        return out

    def _dictation_opening(self, w: Words, shape: DocShape) -> list[tuple[int, int, str, float]]:
        """A dictation or a note header opens with who it is about: the name at the start of a
        line right before "date of birth", "DOB" or "medical record" ("carter lane , n- date of
        birth ...", "Jane Doe\nDOB: ..."), past a line break or a word the transcript broke off."""
        out = []
        for i in range(1, w.n):
            if not self._record_cue(w, i):
                continue
            k = i - 1
            while k >= 0 and (w.text[k] in (",", ".", ":", "-") or not w.text[k].strip()
                              or _CUT_OFF.fullmatch(w.text[k])
                              or (w.text[k + 1] == "-" and _CUT_OFF.fullmatch(w.text[k] + "-"))):
                k -= 1
            last = k
            if k > 0 and _INITIAL.fullmatch(w.text[k]) and w.text[k] not in ("I", "I."):
                k -= 1  # a middle initial closes the name ("Vorrin, Tamsey A., DOB ...")
            run = self._run_before(w, k, shape)
            if not run:
                continue
            k -= len(run)
            first = run[-1]
            if k >= 1 and w.text[k] == "," and self._could_follow(w, k - 1, shape) and self._before_header(w, k - 2):
                first, k = k - 1, k - 2  # the surname first, as record headers write it ("Smith, John, DOB")
            if self._before_header(w, k) and self._could_lead(w, run[-1], shape):
                out.append((first, max(last, run[0]), "NAME", 0.7))
        return out

    @staticmethod
    def _before_header(w: Words, k: int) -> bool:
        """Token k is what may stand before a dictation's or a header's first word: nothing, a
        line break, a blank, a closing bracket or a colon (:meth:`_line_opens` asks of a line or
        a table cell, without the colon)."""
        return k < 0 or w.text[k] in ("]", ":") or "\n" in w.text[k] or not w.text[k].strip()

    def _described(self, w: Words, shape: DocShape) -> list[tuple[int, int, str, float]]:
        """Who is described by age at the start of a clause ("Hunter Lane is a pleasant 72-year-old
        male", "carter booker is a 58 -year-old"): up to three words before "is a ... year-old",
        the first a listed first name or an unknown word; the age settles the rest as the surname
        even when it is also a word ("Lane", "Gray")."""
        out = []
        raw = w.doc.user_data["deid_raw"]
        for i in range(1, w.n - 3):
            if w.lower[i] != "is" or not _AGED.match(raw, w.doc[i].idx):
                continue
            run = self._run_before(w, i - 1, shape)
            for first in reversed(run):  # the longest run that starts a clause with a name
                before, before_low = (w.text[first - 1], w.lower[first - 1]) if first > 0 else ("\n", "\n")
                starts = _opens_clause(before) or before in ("]", "is") \
                    or before_low in vocab.CLINICAL_VOCAB or before_low in _PATIENT or before_low in _DOCTOR
                if starts and self._could_lead(w, first, shape):
                    out.append((first, i - 1, "NAME", 0.7))
                    break
        return out

    # between a name and what it was told ("Quorvane made aware", "QUORVANE WAS NOTIFIED")
    _TOLD_BETWEEN = frozenset("made was is been has".split())

    def _told_one(self, w: Words, i: int, shape: DocShape) -> int | None:
        """The one word before a verb of being told (token i: "aware", "notified", "paged"), with
        "made"/"was"/"has been" between, when it can only be a name (:meth:`_only_a_name`:
        "Quorvane made aware", "QUORVANE NOTIFIED", not "PT RECIEVING ORDERED FLUIDS"); services,
        roles and abbreviations ("Renal aware", "MD notified", "HO paged") are known words."""
        k = i - 1
        while k >= 0 and i - k <= 3 and w.lower[k] in self._TOLD_BETWEEN:
            k -= 1
        if k < 0 or i - k > 3:
            return None
        return k if self._only_a_name(w, k, shape) else None

    def _only_a_name(self, w: Words, k: int, shape: DocShape) -> bool:
        """Token k can only be a name, where the cue before or after it could as well point at a
        thing or a service: in a mixed-case note a capitalised word no list knows
        (:meth:`_unknown_capitalised`), else a word of five letters or more that no list knows and
        that is no typo of a word or of its stem ("QUORVANE", not "RECIEVING")."""
        if shape.mixed:
            return self._unknown_capitalised(w, k)
        low = w.lower[k]
        return len(low) >= 5 and self._unknown_word(w, k) and low not in vocab.drug_names() \
            and not any(vocab.near_english(form) for form in vocab.word_forms(low))

    def _unknown_word(self, w: Words, k: int) -> bool:
        """Token k is a word no list knows: not English, not a stop word, not clinical vocabulary,
        no relation or role ("Zorblax", "QUINTAVIUS")."""
        word, low = w.text[k], w.lower[k]
        return len(word) >= 3 and namey(word) and low not in self.stop and low not in self.function_words \
            and low not in vocab.RELATION_WORDS and low not in vocab.NEVER_NAMES \
            and low.upper() not in vocab.CREDENTIALS and not vocab.is_english(low) and not vocab.is_role_noun(low)

    def _patient_named(self, w: Words, shape: DocShape) -> list[tuple[int, int, str, float]]:
        """"Patient Zorblax Quintavius seen on ...": "patient" used as a title. Nursing notes
        follow "pt"/"PATIENT" with abbreviations and misspellings as often as with a name, so
        only a note written in mixed case counts it: a capitalised unknown word, or two
        capitalised words the first of which is a listed first name ("Pt Ann Brellow")."""
        out = []
        if not shape.mixed:
            return out
        for i in range(w.n - 1):
            if w.lower[i] not in ("patient", "pt") or (i > 0 and w.lower[i - 1] in ("the", "this", "a", "our", "your")):
                continue
            k = i + 1 + (w.text[i + 1] in (":", "-", ","))
            if k >= w.n or not w.text[k][:1].isupper() or w.text[k].isupper():
                continue
            second = k + 1 < w.n and w.text[k + 1][:1].isupper() and self._could_follow(w, k + 1, shape) and (
                self._unknown_word(w, k + 1) or w.lower[k + 1] in self.names)
            if (self._unknown_word(w, k) and (second or w.lower[i] == "patient")) \
                    or (w.lower[k] in self.first and second and w.lower[k] not in vocab.CLINICAL_VOCAB):
                out.append((k, self._name_end(w, k, shape), "PATIENT", 0.7))
        return out

    def _experiencer(self, w: Words, shape: DocShape) -> list[tuple[int, int, str, float]]:
        """"Zorblax reports feeling better": an unknown word starting a clause before a verb whose
        subject is a person (:data:`vocab.EXPERIENCER_VERBS`)."""
        out = []
        for i in range(w.n - 1):
            if w.lower[i + 1] not in vocab.EXPERIENCER_VERBS or (shape.mixed and not w.text[i][:1].isupper()):
                continue
            before = w.text[i - 1] if i > 0 else "\n"
            if shape.mixed and i > 0 and w.lower[i - 1] in ("pt", "patient"):
                before = w.text[i - 2] if i > 1 else "\n"  # "Pt Kexford states ...": "pt" as a title
            if (_opens_clause(before) or before in ('"', "'")) and self._unknown_word(w, i):
                out.append((i, i, "NAME", 0.65))
        return out

    # what a person does or is, right after a name: "and Quorvane agreed", "Quorvane at bedside"
    _PERSON_AFTER = frozenset("who agreed agrees saw visited visiting came arrived aware updated".split())

    def _person_in_sentence(self, w: Words, shape: DocShape) -> list[tuple[int, int, str, float]]:
        """In a mixed-case note, a capitalised word no list knows inside a sentence (not where
        any word is capitalised) with a person's verb or place after it ("... and Quorvane
        agreed", "Quorvane at bedside", "w Orvelle, who agrees") or with the patient before it
        ("Pt and Quorvane discussed"). Capitals mid-sentence are the note's own mark of a name."""
        out = []
        if not shape.mixed:
            return out
        for i in range(w.n - 1):
            nxt = w.lower[i + 1]
            after = w.lower[i + 2] if i + 2 < w.n else ""
            person = nxt in self._PERSON_AFTER or nxt in vocab.EXPERIENCER_VERBS
            # where only a person fits, a clause may start with the name too
            surely = (nxt == "at" and after in ("bedside", "bs")) or (nxt == "," and after == "who")
            with_patient = i > 1 and w.lower[i - 1] == "and" and w.lower[i - 2] in ("pt", "patient", "pt.")
            # the cue first: the word test (a spelling check) is the costly part
            if ((person and i > 0 and not _opens_clause(w.text[i - 1])) or surely or with_patient) \
                    and self._unknown_capitalised(w, i):
                out.append((i, i, "NAME", 0.6))
        return out

    def _named_after_cue(self, w: Words, shape: DocShape) -> list[tuple[int, int, str, float]]:
        """Who is asked for, paged out to, rounded with or awaited a call from ("asking for
        Quorvath", "paged out to Zelbrook Quorvath", "AWAITING CALL BACK FROM QUORVATH"): a word
        only a name explains right after a cue phrase (:data:`_NAME_CUES`), with the surname that
        continues it."""
        out = []
        for i in range(w.n - 1):
            j = _after_cue(w, i)
            if i < j < w.n and self._only_a_name(w, j, shape):
                out.append((j, self._name_end(w, j, shape), "NAME", 0.6))
        return out

    # role abbreviations that head a staff member's name before what they do ("SW Quorvath following");
    # not "RT", which is "right" far more often
    _STAFF_ABBREVIATIONS = frozenset("sw msw cm rn np pa md ot slp".split())
    _STAFF_DOINGS = _PERSON_AFTER | vocab.AFTER_NAME_VERBS | frozenset("following follows followed to".split())

    def _staff_by_role(self, w: Words, shape: DocShape) -> list[tuple[int, int, str, float]]:
        """A staff member named between the abbreviation of their role and what they do ("SW
        Quorvath following", "CM ZELBROOK QUORVATH AWARE", "sw quorvath to see pt"). After a
        number the abbreviation is a unit ("2 CM TEGADERM TO SACRUM"), and in a mixed-case note
        it is written in capitals ("cm" is a length there)."""
        out = []
        for i in range(w.n - 2):
            if w.lower[i] not in self._STAFF_ABBREVIATIONS or (shape.mixed and not w.text[i].isupper()) \
                    or (i > 0 and w.text[i - 1][-1:].isdigit()):
                continue
            if (last := self._short_name(w, i + 1, shape, self._STAFF_DOINGS)) is not None:
                out.append((i + 1, last, "DOCTOR", 0.65))
        return out

    def _short_name(self, w: Words, j: int, shape: DocShape, closing: frozenset[str]) -> int | None:
        """Last token of a name of one or two words that starts at token j and is followed by a
        word of ``closing``: each word a listed name or one no list knows (capitalised in a
        mixed-case note), one of them a word only a name explains (:meth:`_only_a_name`)."""
        for last in (j, j + 1):
            if last + 1 >= w.n or not (self._unknown_word(w, last) or w.lower[last] in self.names
                                       and w.lower[last] not in self.stop) \
                    or shape.mixed and not w.text[last][0].isupper():
                return None
            if w.lower[last + 1] in closing:
                return last if any(self._only_a_name(w, t, shape) for t in range(j, last + 1)) else None
        return None

    def _unknown_capitalised(self, w: Words, k: int) -> bool:
        """:func:`unknown_capitalised`, and no drug of the drug dictionary nor a role ("Quorvane",
        not "Levophed" or "Cardiologist")."""
        return unknown_capitalised(w, k, self.stop, self.function_words) \
            and w.lower[k] not in vocab.drug_names() and not vocab.is_role_noun(w.lower[k])

    def _from_service(self, w: Words, shape: DocShape) -> list[tuple[int, int, str, float]]:
        """Staff introduced by their service: "vorlanda quispet from speech therapy in to eval",
        "Rhonda from the palliative care team": up to three words starting a clause right before
        "from" and a service or department (:func:`vocab.is_service`), the first a listed first name
        or an unknown word."""
        out = []
        for i in range(1, w.n - 1):
            if w.lower[i] != "from":
                continue
            j = i + 1 + (w.lower[i + 1] == "the" and i + 2 < w.n)
            if not vocab.is_service(w.lower[j]):
                continue
            run = self._run_before(w, i - 1, shape)
            for first in reversed(run):  # the longest run that starts a clause with a name
                before = w.text[first - 1] if first > 0 else "\n"
                if _opens_clause(before) and self._could_lead(w, first, shape) \
                        and all(self._unknown_word(w, k) or w.lower[k] in self.names for k in range(first, i)):
                    out.append((first, i - 1, "NAME", 0.6))
                    break
        return out

    def _caps_line_opening(self, w: Words, shape: DocShape) -> list[tuple[int, int, str, float]]:
        """"ZORBLAX QUINTAVIUS, seen today.": in a note written in mixed case, two or three ALL-CAPS
        words that open a line before a comma, each a listed name or an unknown word."""
        if not shape.mixed:
            return []
        out = []
        for i in range(w.n):
            if i > 0 and "\n" not in w.text[i - 1] and w.text[i - 1].strip():
                continue
            k = i
            while k < w.n and k - i < 3 and w.text[k].isupper() and len(w.text[k]) >= 2 and namey(w.text[k]) \
                    and w.lower[k] not in vocab.CLINICAL_VOCAB and w.lower[k] not in self.stop \
                    and (w.lower[k] in self.names or self._unknown_word(w, k)):
                k += 1
            if k - i >= 2 and k < w.n and w.text[k] == ",":
                out.append((i, k - 1, "NAME", 0.7))
        return out

    def _field_label(self, w: Words, end: int) -> tuple[str | None, int]:
        """The person field (:data:`vocab.PERSON_FIELDS`) whose label ends at token ``end`` and its
        first token, if the label opens a line or a table cell; one who signed or dictated the note
        (:data:`vocab.SIGNING_FIELDS`) may stand anywhere."""
        for first in range(max(0, end - 3), end + 1):
            label = " ".join(w.lower[first:end + 1]).replace(" 's", "'s").replace(" - ", "-")
            if label not in vocab.PERSON_FIELDS and not (first == end and (
                    vocab.is_role_noun(label) or label in _DOCTOR or label in _OTHER)):
                continue  # "Attending:", "Cardiologist |", "Nurse:" head a person too
            if self._line_opens(w, first) or label in vocab.SIGNING_FIELDS:
                return label, first
        return None, end

    @staticmethod
    def _line_opens(w: Words, k: int) -> bool:
        """Token k opens a line (or the text, or a table cell)."""
        return k <= 0 or "\n" in w.text[k - 1] or w.text[k - 1] in ("|", "]")

    def _field_value(self, w: Words, shape: DocShape) -> list[tuple[int, int, str, float]]:
        """The person a form, table or message-header field names: "Name: Zorblax Quintavius",
        "Name | ...", "From: ...", "cc: ...", "Pt: QUINTAVIUS, ZORBLAX", "Dictated by O. Paxwell".
        The value is up to four words (initials, one comma for "LAST, FIRST") that each could be
        part of a name, at least one a listed name or a word no list knows; after a label that
        heads other values too (:data:`vocab.WEAK_PERSON_FIELDS`) every word must be one, and
        the value must end the field."""
        out = []
        for i in range(1, w.n):
            sep = w.text[i]
            sep_less = False
            if sep in (":", "|") or ("\t" in sep and not sep.strip()):
                label, opens = self._field_label(w, i - 1)
            elif w.lower[i - 1] == "by":
                (label, opens), i, sep_less = self._field_label(w, i - 1), i - 1, True
            else:
                continue
            if label is None:
                continue
            k = i + 1
            while k < w.n and not w.text[k].strip() and "\n" not in w.text[k]:
                k += 1  # "Name:\tZorblax"
            words, first, last, comma = [], None, None, False
            while k < w.n and len(words) < 4:
                word = w.text[k]
                if _INITIAL.fullmatch(word) and word not in ("I", "A") or _DOTTED_INITIALS.fullmatch(word):
                    first = k if first is None else first
                    last = k
                    k += 1 + (k + 1 < w.n and w.text[k + 1] == ".")
                    continue
                if (after := self._particle_before_name(w, k, shape)) is not None and self._could_follow(w, after, shape):
                    first = k if first is None else first  # "Name: de Souza-Prell, Amalia"
                    k = after
                    continue
                if word == "," and words and not comma and k + 1 < w.n and self._could_follow(w, k + 1, shape):
                    comma = True  # "QUINTAVIUS, ZORBLAX"
                    k += 1
                    continue
                if not self._could_follow(w, k, shape) or w.text[k].upper() in vocab.CREDENTIALS_UPPER \
                        or (w.lower[k] in vocab.CLINICAL_VOCAB and w.lower[k] not in self.names):
                    break
                words.append(k)
                first = k if first is None else first
                last = k
                k += 1
            if not words:
                continue
            if any(w.lower[t] in vocab.drug_names() for t in words):
                continue  # "Name | Furosemide": a medication table
            listed = [t for t in words if self._unknown_word(w, t)
                      or (w.lower[t] in self.names and w.lower[t] not in self.stop)]
            ends = k >= w.n or "\n" in w.text[k] or not w.text[k].strip() or w.text[k] in _FIELD_VALUE_ENDS \
                or w.text[k] in (".", ")") or w.text[k].upper() in vocab.CREDENTIALS_UPPER \
                or (shape.mixed and w.text[k][:1].islower())
            if label in vocab.WEAK_PERSON_FIELDS or (sep_less and not self._line_opens(w, opens)):
                # "CC: Presyncope" (the chief complaint): one word is a name only if a list has it
                if len(words) == 1 and w.lower[words[0]] not in self.names:
                    continue
                # a word no list knows must not be in the lexicon at all: rare nouns count as unknown
                # elsewhere ("dyspnea"), and "CC:" heads a chief complaint far more often than a copy
                listed = [t for t in listed if w.lower[t] in self.names or not vocab.in_lexicon(w.lower[t])]
                if comma and listed and ends and label in _PATIENT_FIELDS:
                    listed = words  # "Patient: LEWIS, AMBER": the record's "LAST, FIRST" settles the rest
                # "To: MICU CCU"
                if len(listed) < len(words) or not ends or any(_short_capitals(w.text[t], shape) for t in words):
                    continue
            elif not listed:
                continue
            role = "DOCTOR" if label.endswith((" by", "physician", "provider")) or label.startswith("sign") \
                else "PATIENT" if label in _PATIENT_FIELDS else "NAME"
            out.append((first, last, role, 0.8))
        return out

    def _signed_off(self, w: Words, shape: DocShape) -> list[tuple[int, int, str, float]]:
        """The writer's name on the line after a letter's or an e-mail's closing ("Thanks," or
        "Regards," and then "Velmira" or "Z. Quintavius" on the next line): up to three words alone
        on their line, each a listed name, a word no list knows or an initial."""
        out = []
        for i in range(w.n - 3):
            if w.lower[i] not in vocab.SIGN_OFFS:
                continue
            k = i + 1 + (w.lower[i] == "thank" and w.lower[i + 1] == "you")
            k += k < w.n and w.text[k] in (",", "!", ".")
            if k >= w.n or "\n" not in w.text[k]:
                continue
            k += 1
            start, words = k, []
            while k < w.n and k - start < 4:
                word = w.text[k]
                if (_INITIAL.fullmatch(word) and word not in ("I", "A")) or word == "." and words:
                    k += 1
                    continue
                if not self._could_follow(w, k, shape) or not (
                        self._unknown_word(w, k) or (w.lower[k] in self.names and w.lower[k] not in self.stop)):
                    break
                words.append(k)
                k += 1
            if words and (k >= w.n or "\n" in w.text[k] or w.text[k] in (",",)):
                out.append((start, words[-1], "NAME", 0.7))
        return out

    def _name_end(self, w: Words, start: int, shape: DocShape) -> int:
        """Last token of a name that starts at ``start``: up to two more words that continue it."""
        last = start
        while last + 1 < w.n and last - start < 2 and self._continues(w, last + 1, shape, w.text[start]):
            last += 1
        return last

    def _run_before(self, w: Words, end: int, shape: DocShape) -> list[int]:
        """Up to three tokens ending at ``end`` that could be a name a strong cue points at,
        nearest first."""
        run = []
        k = end
        while k >= 0 and len(run) < 3 and self._could_follow(w, k, shape):
            run.append(k)
            k -= 1
        return run

    @staticmethod
    def _record_cue(w: Words, i: int) -> bool:
        """Token i starts "date of birth", "DOB", "MRN" or "medical record" (what a dictation or a
        note's header line says after the name)."""
        low = w.lower[i]
        return low in ("dob", "d.o.b", "mrn") or (low == "date" and w.lower[i + 1:i + 3] == ["of", "birth"]) \
            or (low == "medical" and i + 1 < w.n and w.lower[i + 1] == "record")

    def _could_lead(self, w: Words, k: int, shape: DocShape) -> bool:
        """Token k can start a name that a strong cue points at: a listed first name even when it
        is also a word ("hunter", "carter"), or an unknown word."""
        low = w.lower[k]
        return self._could_follow(w, k, shape) and low not in vocab.CLINICAL_VOCAB and low not in vocab.AUXILIARIES \
            and (low in self.first or (not vocab.is_english(low) and low not in self.stop))

    def _could_follow(self, w: Words, k: int, shape: DocShape) -> bool:
        """Token k can be part of a name that a strong cue points at, even an English word ("Lane")."""
        word, low = w.text[k], w.lower[k]
        return namey(word) and low not in _SPACY_STOP and low not in vocab.CORE_FUNCTION_WORDS \
            and low not in vocab.RELATION_WORDS and low not in vocab.NEVER_NAMES \
            and low not in ("is", "was", "patient", "pt") and not (shape.mixed and not word[0].isupper())

    def _initial_name(self, w: Words, i: int, shape: DocShape) -> int | None:
        """Last token of "<initial>. <Surname>" starting at token i, or None."""
        word = w.text[i]
        if len(word) == 2 and word[1] == "." and word[0].isalpha():
            j = i + 1
        elif len(word) == 1 and word.isalpha() and i + 1 < w.n and w.text[i + 1] == ".":
            j = i + 2
        else:
            return None
        if word[0] in "IA" or (word[0].islower() and not shape.lower) or j >= w.n:
            return None
        name, low = w.text[j], w.lower[j]
        if not namey(name) or low in self.function_words or (shape.mixed and not name[0].isupper()):
            return None
        if word[0].islower() and name[0].isupper():
            return None
        after = w.lower[j + 1] if j + 1 < w.n else ""
        before = w.lower[i - 1] if i > 0 else ""
        start = w.doc[i].idx
        glued = start > 0 and w.doc.user_data["deid_raw"][start - 1] not in " \t\n(,"
        if glued or low in self.function_words or low in vocab.NEVER_NAMES or low in vocab.RELATION_WORDS:
            return None
        if after in vocab.AFTER_NAME_VERBS or after.upper() in vocab.CREDENTIALS:
            return j
        if word[0] in "SOAP" and before in ("", "\n") or "\n" in before:
            return None  # "P. REDRAW ABG", "A. SEPSIS": SOAP headings
        if low in self.names and (not vocab.is_english(low) or name[0].isupper() and low not in self.stop
                                  or name.isupper() and after in ("in", "to", "placing", "at", "and", ".")):
            return j
        if not vocab.is_english(low) and (after in (":", "and", ")", ",", ".", "in", "to", "placing", "at")
                                          or before in ("to", "per", "by", "with", "and", "(", "nsg", "dr")):
            return j
        return None

    @staticmethod
    def _appositive_relation(w: Words, i: int) -> bool | None:
        """What follows the comma at token i: ", pt's nephew" / ", her son" (True: a relative),
        ", his attending" (False: a clinician), or None when no possessive relation follows."""
        j = i + 1 + (i + 1 < w.n and w.lower[i + 1] == "the")
        if j + 1 >= w.n or w.lower[j] not in ("pt", "pts", "patient", "patients", "his", "her", "their"):
            return None
        j += 1
        if j < w.n and w.lower[j] in ("'s", "’s", "'"):
            j += 1
        if j >= w.n:
            return None
        if w.lower[j] in vocab.RELATION_WORDS:
            return True
        return False if vocab.is_role_noun(w.lower[j]) else None

    def _before_phone(self, w: Words, i: int) -> int | None:
        """Where the words before a phone number starting at token i end (past labels such as
        "cell#", "home:"), or None when token i starts no phone number."""
        if not w.text[i][:1].isdigit() or (i > 0 and w.text[i - 1][:1].isdigit()):
            return None
        if not _PHONE_START.match("".join(w.text[i:i + 6])):
            return None
        k = i
        while k > 0 and i - k < 4 and (w.lower[k - 1] in _PHONE_LABELS or not w.text[k - 1].strip()):
            k -= 1
        return k if k > 0 and namey(w.text[k - 1]) else None

    def _contact_name(self, w: Words, j: int, shape: DocShape) -> bool:
        word, low = w.text[j], w.lower[j]
        if not namey(word) or low in self.function_words or low in vocab.RELATION_WORDS or low in vocab.NEVER_NAMES:
            return False
        if _short_capitals(word, shape):
            return False  # "called PCP", "paged ICU", "per DKA protocol"
        if shape.mixed:  # "spoke with Baker": a common surname, even when it is a word
            return word[0].isupper() and (low in self.first or not vocab.is_english(low) or vocab.likely_surname(low)) \
                and low not in self.stop
        if low in self.names and not vocab.is_english(low) and low not in self.stop:
            return True
        # in a note without capitals an unknown word after "spoke with" is a name unless it is
        # short (an abbreviation) or a typo of a word ("wtih", "protocall"); "per" reads as
        # "according to" far more often than it introduces a person ("per protocol"), unless what
        # follows is what a person does ("PER QUINTAR WILL HOLD", "per zorvane aware")
        after = w.lower[j + 1] if j + 1 < w.n else ""
        person_follows = after in vocab.AUXILIARIES or after in vocab.AFTER_NAME_VERBS
        return (w.lower[j - 1] != "per" or person_follows) and len(word) >= 5 and self._unknown_word(w, j) \
            and not vocab.near_english(low)

    def _verb_after_relation(self, w: Words, k: int, shape: DocShape) -> bool:
        """The word after "wife" is a verb, not a name ("WIFE AGRESS THAT", "son met w/ team")."""
        word, low = w.text[k], w.lower[k]
        if shape.mixed and word[0].isupper() and low not in self.stop and not vocab.is_english(low):
            return False
        if low in self.first and low not in vocab.NEVER_NAMES:
            return False
        nxt = w.lower[k + 1] if k + 1 < w.n else ""
        return nxt in vocab.AFTER_VERB_WORDS or vocab.is_english(low) or low in vocab.NEVER_NAMES

    def _relative_fallback(self, w: Words, j: int, shape: DocShape):
        """A listed first name after a relation word even when it is also a word, if the next
        token is what follows a name ("son rob lives", "Husband Rich Delacroix in")."""
        while j < w.n and w.text[j] in _SKIP_AFTER_TRIGGER:
            j += 1
        if j + 1 >= w.n:
            return None
        word, low = w.text[j], w.lower[j]
        if not namey(word) or low in vocab.CORE_FUNCTION_WORDS or low in vocab.AFTER_NAME_VERBS \
                or (shape.mixed and not word[0].isupper()):
            return None
        if low not in self.first:
            return None
        nxt, nxt_low = w.text[j + 1], w.lower[j + 1]
        if shape.mixed and nxt[:1].isupper() and namey(nxt) and nxt_low not in self.stop:
            return j, j + 1
        if nxt_low in vocab.NAME_FOLLOWERS or nxt in (",", "(", ")") or nxt[:1].isdigit():
            return j, j
        return None

    def _back(self, w: Words, i: int, shape: DocShape, need_evidence: bool = False, credential: bool = False):
        """Name tokens right before token i ("Nancy Jones, RN", "Dr Smith aware")."""
        k = i - 1
        if k >= 0 and w.text[k] in (",", "-"):
            k -= 1
        last = k
        first = None
        while k >= 0 and last - k < 3:
            word, low = w.text[k], w.lower[k]
            if credential and first is None and _DOTTED_INITIALS.fullmatch(word) \
                    and word.upper() not in vocab.CREDENTIALS_UPPER and low not in ("a.m", "p.m") \
                    and (k == 0 or "\n" in w.text[k - 1] or w.text[k - 1] in _SIGNATURE_OPENERS):
                return k, k  # "/s/ Z.Q., RN": a note signed with initials
            if _INITIAL.fullmatch(word) and word not in ("I", "A") and first is not None:
                first = k
                k -= 1
                continue
            if word == "." and k > 0 and _INITIAL.fullmatch(w.text[k - 1]) and first is not None:
                k -= 1
                continue
            if namey(word) and low not in _SPACY_STOP and low not in vocab.CREDENTIALS_LOWER \
                    and low not in vocab.ROLE_NOUNS \
                    and (low not in vocab.CLINICAL_VOCAB or credential and shape.mixed and word[0].isupper()
                         and low in self.names and first is not None) and low not in vocab.NEVER_NAMES and (
                    (low not in self.stop or low in self.names or (credential and shape.mixed))
                    and (word[0].isupper() if shape.mixed else (low in self.names or not vocab.is_english(low)))):
                first = k
                k -= 1
                continue
            break
        if first is None:
            return None
        if need_evidence:
            tokens = [w.lower[t] for t in range(first, last + 1) if not _INITIAL.fullmatch(w.text[t])]
            initial = (first > 0 and _INITIAL.fullmatch(w.text[first - 1] or "")) \
                or (len(tokens) < last - first + 1 and bool(tokens))  # "J DROQU ORDERED"
            unknown = last > first and bool(tokens) and not any(vocab.is_english(t) or t in self.stop for t in tokens)
            if not (any(t in self.names for t in tokens) or (shape.mixed and last > first) or initial or unknown):
                return None
        return first, last

    def _propagate(self, text, doc, w: Words, found, shape):
        out = []
        strong_words: set[str] = set()
        for first, last, role, score in found:
            start, end = doc[first].idx, doc[last].idx + len(doc[last].text)
            out.append(result(role, start, end, score, f"{self.name}:{role.lower()}"))
            if score >= 0.65:
                for t in range(first, last + 1):
                    # "Regional Governor" found once must not make every "Regional" a name
                    low = w.lower[t]
                    # a listed first name that is also a word ("hunter", "carter") once a strong cue named it
                    listed = low in self.first and low not in _SPACY_STOP and low not in vocab.AUXILIARIES \
                        and low not in vocab.CLINICAL_VOCAB and low not in vocab.CORE_FUNCTION_WORDS
                    if len(w.text[t]) >= 3 and (low not in self.stop or listed) and low not in vocab.INSTITUTION_WORDS:
                        strong_words.add(low)
        if strong_words:
            for t in range(w.n):
                low = w.lower[t]
                # in a mixed-case note an English word is a name only where it is capitalised, as
                # the name was: "Frank aware" makes no name of "frank blood", nor "Rose" of "BP rose"
                if low in strong_words and (not shape.mixed or w.text[t][:1].isupper() or not vocab.is_english(low)):
                    out.append(result("NAME", doc[t].idx, doc[t].idx + len(doc[t].text), 0.6,
                                      f"{self.name}:same_note"))
        return out

