"""Token-level recognizers: person names, facilities and places, and spaCy's own entities.

They read the spaCy ``Doc`` computed once per batch. Evidence, strongest first: a trigger word
("Dr", "Mrs", "daughter", "transferred to"), a credential after a signature ("Jane Doe, RN"),
a reporting verb after a name ("Smith aware"), an initial ("E. DARBY", "k. fenwick"), a phone
number right after a name, a contact verb ("spoke with Marisol"), a dictionary hit (Faker's name
lists), and finally every other mention in the same note of a name already found. Places: facility
heads, hospital acronyms after a movement word ("to GH"), saint/virtue hospital names ("Holy
Cross"), wards with a number ("to Wentmore 2"), town-shaped words ("from Fallowtown"). Words of the clinical and
common-English allow-lists are never names on dictionary evidence alone, which is what keeps
"PT", "CABG" or "Will" out in ALL-CAPS nursing notes.
"""

from __future__ import annotations

import re

from presidio_analyzer import RecognizerResult

from domainfm.deid.recognizers import vocab
from domainfm.deid.recognizers.base import DocShape, TokenRecognizer, result, token_texts

_NAMEY = re.compile(r"[A-Za-zÀ-ÖØ-öø-ÿĀ-ž][A-Za-zÀ-ÖØ-öø-ÿĀ-ž'\-]*[A-Za-zÀ-ÖØ-öø-ÿĀ-ž]")
_INITIAL = re.compile(r"[A-Z]\.?")
_TITLE_CASE = re.compile(r"[A-Z][a-z]+(?:['-][A-Za-z][a-z]+)?")
# an initial right before a name already found ("PER H. CARVER", "k. o'casey")
_INITIAL_BEFORE = re.compile(r"(?:^|(?<=[\s(,;:/]))(?P<i>[A-Za-z])\.\s?$")
_GLUED_TITLE = re.compile(
    r"(?:(?<![A-Za-z.])(?P<t>(?i:drs?|mrs?|ms))\.(?=[A-Za-z])"      # "DR.GOLINI"
    r"|(?<=[a-z]\.)(?P<t2>(?i:drs?))\.?\s+)"                        # "ok.dr vascuez"
    r"(?P<n>[A-Za-z][A-Za-z'\-]+)")
_PHONE_START = re.compile(r"\d{3}\)?[-. ]?\d{3}[-. ]?\d{4}")
_PHONE_LABELS = frozenset("cell cell# home home# work work# ph phone tel # : - , ( = # pager beeper mobile c h w".split())
_NAME_VERBS_AFTER = vocab.NAME_FOLLOWERS - {"and", "or", "at"}
_HOMES = frozenset("house home apartment apt place condo farm residence".split())
_CLAUSE_START = {"(", ".", ",", ";", ":", "-", "--"}
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


class _Words:
    """Per-document token views, computed once and shared by the token recognizers."""

    def __init__(self, doc):
        self.doc = doc
        self.text = token_texts(doc)
        if "deid_raw" not in doc.user_data:  # Doc.text joins every token on each access
            doc.user_data["deid_raw"] = doc.text
        self.lower = [t.lower().rstrip(".") if t not in (".",) else t for t in self.text]
        self.n = len(self.text)

    @classmethod
    def of(cls, doc) -> "_Words":
        cached = doc.user_data.get("deid_words")
        if cached is None:
            cached = doc.user_data["deid_words"] = cls(doc)
        return cached


def _namey(word: str) -> bool:
    return bool(_NAMEY.fullmatch(word))


class NameRecognizer(TokenRecognizer):
    """Person names with their role where the context shows it (PATIENT, RELATIVE, DOCTOR)."""

    labels = ("PATIENT", "RELATIVE", "DOCTOR", "NAME")

    def load(self) -> None:
        self.stop = vocab.stop_words()
        self.function_words = _function_words()
        self.first = vocab.first_names() | vocab.NICKNAMES
        self.us_first = vocab.us_first_names()
        self.core = vocab.core_names()
        self.names = vocab.all_names() | vocab.NICKNAMES
        self.dictionary = self.options.get("dictionary", True)
        self.noun_first = vocab.noun_first_names()

    # a token may start a name after a trigger word; ``strong`` for titles ("Dr", "Mrs"), weak
    # for relation words ("daughter"), which verbs and clinical words follow as often as names
    def _ok_after_trigger(self, w: _Words, k: int, shape: DocShape, strong: bool) -> bool:
        word, low = w.text[k], w.lower[k]
        if not _namey(word) or low in vocab.AFTER_NAME_VERBS or low in vocab.CORE_FUNCTION_WORDS:
            return False
        if low in _SPACY_STOP:
            # "Dr. Noone", "Dr Will Cole": a title makes a rare stop word a name
            if not strong or low not in self.names or low in vocab.AUXILIARIES and not (
                    shape.mixed and word[0].isupper() and k + 1 < w.n and w.text[k + 1][:1].isupper()
                    and _namey(w.text[k + 1]) and (w.lower[k + 1] not in self.stop or w.lower[k + 1] in self.names)):
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

    def _continues(self, w: _Words, k: int, shape: DocShape, first_word: str) -> bool:
        word, low = w.text[k], w.lower[k]
        if _INITIAL.fullmatch(word) and word != "I":
            return k + 1 < w.n and self._continues(w, k + 1 + (w.text[k + 1] == "."), shape, first_word) \
                if k + 1 < w.n else False
        if not _namey(word) or low in self.stop and not (
                shape.mixed and word[0].isupper() and low in self.names and low not in self.function_words):
            return False
        if shape.mixed:
            return first_word[:1].isupper() == word[:1].isupper()
        if shape.lower and _TITLE_CASE.fullmatch(first_word) and _TITLE_CASE.fullmatch(word):
            return True  # "wife (Orla Dryden, ...)": capitals are rare, so two in a row are a name
        return low in self.names or not vocab.is_english(low)

    def _take(self, w: _Words, j: int, shape: DocShape, strong: bool) -> tuple[int, int] | None:
        """Name tokens starting at j: returns (first, last) token index or None."""
        while j < w.n and w.text[j] in _SKIP_AFTER_TRIGGER and (strong or w.text[j] != "."):
            j += 1
        if j >= w.n:
            return None
        k = j
        # an initial first: "Dr. J. Smith", "K. FENWICK"
        if _INITIAL.fullmatch(w.text[k]) and w.text[k] != "I" and k + 1 < w.n:
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
        w = _Words.of(doc)
        found: list[tuple[int, int, str, float]] = []  # token spans
        i = 0
        while i < w.n:
            low = w.lower[i]
            word = w.text[i]
            role = None
            nxt_low = w.lower[i + 1] if i + 1 < w.n else ""
            if (low in _DOCTOR or low in _PATIENT) and nxt_low == ":" and low not in ("dr", "drs"):
                pass  # "MS:" / "MR:" section headers (mental status, mitral regurgitation)
            elif low in _DOCTOR or (low in ("md", "pa", "np") and i + 1 < w.n and (
                    (w.text[i + 1][:1].isupper() and shape.mixed and (nxt_low in self.names or not vocab.is_english(nxt_low)))
                    or (not shape.mixed and i + 2 < w.n and w.lower[i + 2] in vocab.AFTER_NAME_VERBS
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
            elif low in vocab.CONTACT_TRIGGERS and i + 1 < w.n:
                # "spoke with Marisol", "ask to page Hank", "spoken extensively with Bre Murtaka":
                # a listed or unknown word (capitalised where the note uses capitals)
                j = i + 1 + (nxt_low.endswith("ly") and i + 2 < w.n and w.lower[i + 2] in ("with", "to"))
                j += j < w.n and w.lower[j] in ("with", "to")
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
                    # "Drs Rakusin and Toolis", "sons Smokey, Morris and Roger"
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
            ends_phrase = i + 1 == w.n or "\n" in w.text[i + 1] or w.text[i + 1] in (".", ",", ";", "..", ")") \
                or w.lower[i + 1] in vocab.AFTER_NAME_VERBS
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
            elif (span := self._initial_name(w, i, shape)) is not None:
                # "Z. MILLER", "J. Chang", "E. DARBY AWARE", "k. fenwick rrt"
                found.append((i, span, "NAME", 0.65))
                i = span
            elif (k := self._before_phone(w, i)) is not None:
                # "Odile Brankova cell# 410-...", "(Ines Dalloway, 301-555-0134)"
                span = self._back(w, k, shape, need_evidence=True)
                if span is not None and not any(w.lower[t] in vocab.RELATION_WORDS for t in range(span[0], span[1] + 1)):
                    found.append((span[0], span[1], "NAME", 0.6))
            elif low in vocab.AFTER_NAME_VERBS and not (i > 0 and w.lower[i - 1] in vocab.RELATION_WORDS):
                span = self._back(w, i, shape, need_evidence=True)
                if span is not None:
                    found.append((span[0], span[1], "DOCTOR", 0.65))
            elif self.dictionary and low in self.names and low not in self.stop and _namey(word) \
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
        found += self._home_owner(w, shape)
        found += self._addressed(w, shape)
        found += self._introduced(w, shape)
        found += self._dictation_opening(w, shape)
        found += self._described(w, shape)
        found += self._patient_named(w, shape)
        found += self._experiencer(w, shape)
        found += self._caps_line_opening(w, shape)
        out = self._propagate(text, doc, w, found, shape)
        # titles glued to the name or to the previous word ("DR.GOLINI", "ok.dr vascuez")
        for m in _GLUED_TITLE.finditer(text):
            name = m.group("n")
            if name.lower() not in self.function_words and name.lower() not in _SPACY_STOP:
                role = "DOCTOR" if (m.group("t") or m.group("t2")).lower().startswith("d") else "PATIENT"
                out.append(result(role, m.start("n"), m.end("n"), 0.8, f"{self.name}:glued_title"))
        return [self._with_initial(text, r, shape) for r in out]

    @staticmethod
    def _with_initial(text: str, found, shape: DocShape):
        """The name widened to an initial right before it ("H. CARVER" where "CARVER" is known)."""
        window = text[max(0, found.start - 4):found.start]
        m = _INITIAL_BEFORE.search(window)
        if m is None or m.group("i") in "IA" or (m.group("i").islower() and not shape.lower):
            return found
        return result(found.entity_type, found.start - len(window) + m.start("i"), found.end, found.score,
                      found.recognition_metadata[RecognizerResult.RECOGNIZER_NAME_KEY])

    def _coordinated(self, w: _Words, found, shape: DocShape) -> list[tuple[int, int, str, float]]:
        """A second name joined to a found one ("sons Smokey and Dale.", "proxies: marisol and
        dvorek"): a listed or unknown word that ends the phrase."""
        out = []
        starts = {first for first, *_ in found}
        for first, last, role, score in found:
            k = last + 2
            if k >= w.n or w.lower[last + 1] not in ("and", "&") or k in starts:
                continue
            word, low = w.text[k], w.lower[k]
            if not _namey(word) or low in self.stop or low in self.function_words or low in vocab.RELATION_WORDS \
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
            if before in _CLAUSE_START or "\n" in before or not before.strip() \
                    or w.lower[run[-1] - 1] in ("both", "with", "by", "per", "and"):
                out.append((run[-1], run[0], "DOCTOR" if title and w.lower[first - 1] in _DOCTOR else role,
                            min(score, 0.6)))
        return out

    def _home_owner(self, w: _Words, shape: DocShape) -> list[tuple[int, int, str, float]]:
        """Whose home a place is ("stays at Nell Varga's house"): up to two words before "'s
        house" when one of them is a listed name or an unknown word, and none is a relation
        ("her daughter's house") or a function word."""
        out = []
        for i in range(2, w.n - 1):
            if w.lower[i] not in ("'s", "’s") or w.lower[i + 1] not in _HOMES:
                continue
            first = None
            k = i - 1
            while k >= 0 and i - k <= 2:
                word, low = w.text[k], w.lower[k]
                if not _namey(word) or low in _SPACY_STOP or low in self.stop and low not in self.names \
                        or low in vocab.RELATION_WORDS or (shape.mixed and not word[0].isupper()):
                    break
                first = k
                k -= 1
            if first is None or not any(w.lower[t] in self.names or not vocab.is_english(w.lower[t])
                                        for t in range(first, i)):
                continue
            out.append((first, i - 1, "NAME", 0.55))
        return out

    def _addressed(self, w: _Words, shape: DocShape) -> list[tuple[int, int, str, float]]:
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

    def _introduced(self, w: _Words, shape: DocShape) -> list[tuple[int, int, str, float]]:
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

    def _dictation_opening(self, w: _Words, shape: DocShape) -> list[tuple[int, int, str, float]]:
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
            run = self._run_before(w, k, shape)
            k -= len(run)
            opens = k < 0 or w.text[k] in ("]", ":") or "\n" in w.text[k] or not w.text[k].strip()
            if run and opens and self._could_lead(w, run[-1], shape):
                out.append((run[-1], run[0], "NAME", 0.7))
        return out

    def _described(self, w: _Words, shape: DocShape) -> list[tuple[int, int, str, float]]:
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
                starts = before in _CLAUSE_START or before in ("]", "is") or not before.strip() or "\n" in before \
                    or before_low in vocab.CLINICAL_VOCAB or before_low in _PATIENT or before_low in _DOCTOR
                if starts and self._could_lead(w, first, shape):
                    out.append((first, i - 1, "NAME", 0.7))
                    break
        return out

    def _unknown_word(self, w: _Words, k: int) -> bool:
        """Token k is a word no list knows: not English, not a stop word, not clinical vocabulary,
        no relation or role ("Zorblax", "QUINTAVIUS")."""
        word, low = w.text[k], w.lower[k]
        return len(word) >= 3 and _namey(word) and low not in self.stop and low not in self.function_words \
            and low not in vocab.RELATION_WORDS and low not in vocab.NEVER_NAMES \
            and low.upper() not in vocab.CREDENTIALS and not vocab.is_english(low) and not vocab.is_role_noun(low)

    def _patient_named(self, w: _Words, shape: DocShape) -> list[tuple[int, int, str, float]]:
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

    def _experiencer(self, w: _Words, shape: DocShape) -> list[tuple[int, int, str, float]]:
        """"Zorblax reports feeling better": an unknown word starting a clause before a verb whose
        subject is a person (:data:`vocab.EXPERIENCER_VERBS`)."""
        out = []
        for i in range(w.n - 1):
            if w.lower[i + 1] not in vocab.EXPERIENCER_VERBS or (shape.mixed and not w.text[i][:1].isupper()):
                continue
            before = w.text[i - 1] if i > 0 else "\n"
            if shape.mixed and i > 0 and w.lower[i - 1] in ("pt", "patient"):
                before = w.text[i - 2] if i > 1 else "\n"  # "Pt Kexford states ...": "pt" as a title
            if (before in _CLAUSE_START or before in ('"', "'") or "\n" in before or not before.strip()) \
                    and self._unknown_word(w, i):
                out.append((i, i, "NAME", 0.65))
        return out

    def _caps_line_opening(self, w: _Words, shape: DocShape) -> list[tuple[int, int, str, float]]:
        """"ZORBLAX QUINTAVIUS, seen today.": in a note written in mixed case, two or three ALL-CAPS
        words that open a line before a comma, each a listed name or an unknown word."""
        if not shape.mixed:
            return []
        out = []
        for i in range(w.n):
            if i > 0 and "\n" not in w.text[i - 1] and w.text[i - 1].strip():
                continue
            k = i
            while k < w.n and k - i < 3 and w.text[k].isupper() and len(w.text[k]) >= 2 and _namey(w.text[k]) \
                    and w.lower[k] not in vocab.CLINICAL_VOCAB and w.lower[k] not in self.stop \
                    and (w.lower[k] in self.names or self._unknown_word(w, k)):
                k += 1
            if k - i >= 2 and k < w.n and w.text[k] == ",":
                out.append((i, k - 1, "NAME", 0.7))
        return out

    def _name_end(self, w: _Words, start: int, shape: DocShape) -> int:
        """Last token of a name that starts at ``start``: up to two more words that continue it."""
        last = start
        while last + 1 < w.n and last - start < 2 and self._continues(w, last + 1, shape, w.text[start]):
            last += 1
        return last

    def _run_before(self, w: _Words, end: int, shape: DocShape) -> list[int]:
        """Up to three tokens ending at ``end`` that could be a name a strong cue points at,
        nearest first."""
        run = []
        k = end
        while k >= 0 and len(run) < 3 and self._could_follow(w, k, shape):
            run.append(k)
            k -= 1
        return run

    @staticmethod
    def _record_cue(w: _Words, i: int) -> bool:
        """Token i starts "date of birth", "DOB" or "medical record" (what a dictation says after
        the name)."""
        low = w.lower[i]
        return low in ("dob", "d.o.b") or (low == "date" and w.lower[i + 1:i + 3] == ["of", "birth"]) \
            or (low == "medical" and i + 1 < w.n and w.lower[i + 1] == "record")

    def _could_lead(self, w: _Words, k: int, shape: DocShape) -> bool:
        """Token k can start a name that a strong cue points at: a listed first name even when it
        is also a word ("hunter", "carter"), or an unknown word."""
        low = w.lower[k]
        return self._could_follow(w, k, shape) and low not in vocab.CLINICAL_VOCAB and low not in vocab.AUXILIARIES \
            and (low in self.first or (not vocab.is_english(low) and low not in self.stop))

    def _could_follow(self, w: _Words, k: int, shape: DocShape) -> bool:
        """Token k can be part of a name that a strong cue points at, even an English word ("Lane")."""
        word, low = w.text[k], w.lower[k]
        return _namey(word) and low not in _SPACY_STOP and low not in vocab.CORE_FUNCTION_WORDS \
            and low not in vocab.RELATION_WORDS and low not in vocab.NEVER_NAMES \
            and low not in ("is", "was", "patient", "pt") and not (shape.mixed and not word[0].isupper())

    def _initial_name(self, w: _Words, i: int, shape: DocShape) -> int | None:
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
        if not _namey(name) or low in self.function_words or (shape.mixed and not name[0].isupper()):
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

    def _before_phone(self, w: _Words, i: int) -> int | None:
        """Where the words before a phone number starting at token i end (past labels such as
        "cell#", "home:"), or None when token i starts no phone number."""
        if not w.text[i][:1].isdigit() or (i > 0 and w.text[i - 1][:1].isdigit()):
            return None
        if not _PHONE_START.match("".join(w.text[i:i + 6])):
            return None
        k = i
        while k > 0 and i - k < 4 and (w.lower[k - 1] in _PHONE_LABELS or not w.text[k - 1].strip()):
            k -= 1
        return k if k > 0 and _namey(w.text[k - 1]) else None

    def _contact_name(self, w: _Words, j: int, shape: DocShape) -> bool:
        word, low = w.text[j], w.lower[j]
        if not _namey(word) or low in self.function_words or low in vocab.RELATION_WORDS or low in vocab.NEVER_NAMES:
            return False
        if shape.mixed:  # "spoke with Baker": a common surname, even when it is a word
            return word[0].isupper() and (low in self.first or not vocab.is_english(low) or vocab.likely_surname(low)) \
                and low not in self.stop
        if low in self.names and not vocab.is_english(low) and low not in self.stop:
            return True
        # in a note without capitals an unknown word after "spoke with" is a name unless it is
        # short (an abbreviation) or a typo of a word ("wtih", "protocall"); "per" reads as
        # "according to" far more often than it introduces a person
        return w.lower[j - 1] != "per" and len(word) >= 5 and self._unknown_word(w, j) and not vocab.near_english(low)

    def _verb_after_relation(self, w: _Words, k: int, shape: DocShape) -> bool:
        """The word after "wife" is a verb, not a name ("WIFE AGRESS THAT", "son met w/ team")."""
        word, low = w.text[k], w.lower[k]
        if shape.mixed and word[0].isupper() and low not in self.stop and not vocab.is_english(low):
            return False
        if low in self.first and low not in vocab.NEVER_NAMES:
            return False
        nxt = w.lower[k + 1] if k + 1 < w.n else ""
        return nxt in vocab.AFTER_VERB_WORDS or vocab.is_english(low) or low in vocab.NEVER_NAMES

    def _relative_fallback(self, w: _Words, j: int, shape: DocShape):
        """A listed first name after a relation word even when it is also a word, if the next
        token is what follows a name ("son rob lives", "Husband Rich Delacroix in")."""
        while j < w.n and w.text[j] in _SKIP_AFTER_TRIGGER:
            j += 1
        if j + 1 >= w.n:
            return None
        word, low = w.text[j], w.lower[j]
        if not _namey(word) or low in vocab.CORE_FUNCTION_WORDS or low in vocab.AFTER_NAME_VERBS \
                or (shape.mixed and not word[0].isupper()):
            return None
        if low not in self.first:
            return None
        nxt, nxt_low = w.text[j + 1], w.lower[j + 1]
        if shape.mixed and nxt[:1].isupper() and _namey(nxt) and nxt_low not in self.stop:
            return j, j + 1
        if nxt_low in vocab.NAME_FOLLOWERS or nxt in (",", "(", ")") or nxt[:1].isdigit():
            return j, j
        return None

    def _back(self, w: _Words, i: int, shape: DocShape, need_evidence: bool = False, credential: bool = False):
        """Name tokens right before token i ("Nancy Jones, RN", "Dr Smith aware")."""
        k = i - 1
        if k >= 0 and w.text[k] in (",", "-"):
            k -= 1
        last = k
        first = None
        while k >= 0 and last - k < 3:
            word, low = w.text[k], w.lower[k]
            if _INITIAL.fullmatch(word) and word not in ("I", "A") and first is not None:
                first = k
                k -= 1
                continue
            if word == "." and k > 0 and _INITIAL.fullmatch(w.text[k - 1]) and first is not None:
                k -= 1
                continue
            if _namey(word) and low not in _SPACY_STOP and low not in vocab.CREDENTIALS_LOWER \
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

    def _propagate(self, text, doc, w: _Words, found, shape):
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
                if w.lower[t] in strong_words:
                    out.append(result("NAME", doc[t].idx, doc[t].idx + len(doc[t].text), 0.6,
                                      f"{self.name}:same_note"))
        return out


_DOCTOR = frozenset(t.rstrip(".") for t in vocab.DOCTOR_TITLES)
_PATIENT = frozenset(t.rstrip(".") for t in vocab.PATIENT_TITLES)
_OTHER = frozenset(t.rstrip(".") for t in vocab.OTHER_TITLES)


from spacy.lang.en.stop_words import STOP_WORDS as _SPACY_STOP  # noqa: E402


def _function_words() -> frozenset[str]:
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(STOP_WORDS) | vocab.CLINICAL_VOCAB | vocab.MONTH_WORDS


_GLUED_WARD = re.compile(r"([A-Za-z]{4,})\d{1,2}")
_HOSPITAL_ACRONYM = re.compile(r"(?i:[A-Z]{1,4}(?:H|MC|HC))")
_TOWN = re.compile(r"(?:town|ville|burg|burgh|boro|borough|ford|field|wood|dale|ton|land|chester|mouth|port|"
                   r"bury|haven|shire|downe|more|mont|view|side|stead|wick|worth)$")
# hospitals named after a saint or a virtue, which carry no "Hospital": "Holy Cross", "Sacred Heart"
_NAMED_FACILITY = re.compile(r"(?i)\b(?:holy\s+(?:cross|family|name|spirit|redeemer|trinity|ghost)|sacred\s+heart"
                             r"|good\s+samaritan|good\s+shepherd|our\s+lady\s+of\s+(?-i:[A-Za-z]\w+))\b"
                             r"(?:\s+(?:memorial|hospital|medical\s+center|rehab|hospice|nursing\s+home)\b)?")


class PlaceRecognizer(TokenRecognizer):
    """Facilities ("Holy Cross Hospital", "St. Agnes") and places after movement verbs
    ("transferred to X", "lives in X")."""

    labels = ("HOSPITAL", "LOCATION")
    # words that end a facility's name ("Holy Cross Hospital", "Baltimore Rehab")
    heads = frozenset("hospital hospitals hosp hosp. clinic memorial regional infirmary hospice manor "
                      "rehab rehabilitation va vamc sanatorium nh snf".split())
    center_heads = frozenset("center ctr ctr. centre agency".split())  # "... Nursing Agency"
    center_modifiers = frozenset("medical med health cancer heart rehabilitation rehab nursing care "
                                 "surgical surgery dialysis".split())
    # heads that are everyday words too ("went home", "the house"): a facility only when a word
    # before them is no English word ("Blaxzo House", "Glavera Nursing Home")
    weak_heads = frozenset("house home".split())
    # street types after a street's name with no house number ("on Zorvale St.")
    street_types = frozenset("st street ave avenue rd road blvd boulevard lane ln".split())

    def load(self) -> None:
        self.stop = vocab.stop_words()
        self.modifiers = vocab.FACILITY_MODIFIERS
        self.function_words = _function_words()

    def _placey(self, w: _Words, k: int, shape: DocShape, in_facility: bool, moved: bool = False) -> bool:
        """Token k can be part of a place's name; ``moved``: right after "transferred to" and the
        like, where a short unknown word (an acronym: "to BMC", "at NEH") is a place too."""
        word, low = w.text[k], w.lower[k]
        if not _namey(word):
            return in_facility and low in ("st", "mt")
        if in_facility and low in self.modifiers and (not shape.mixed or word[0].isupper()):
            return True
        if low in self.function_words:
            return False
        if moved and not in_facility and len(low) >= 2 and low not in self.stop and not vocab.is_english(low) \
                and (word.isupper() or not shape.mixed or (len(low) >= 6 and not vocab.near_english(low))):
            return True  # "to BMC", "to NEH"; "transfer to bellmoor." written in lower case too
        if shape.mixed:
            return word[0].isupper() and (in_facility or low not in self.stop)
        if not in_facility and (len(low) < 4 or not re.search(r"[aeiouy]", low)):
            return False  # "TO BB", "to lcs": short or vowel-less abbreviations
        if in_facility:
            return low in self.modifiers or (low not in self.stop and not vocab.is_english(low)) \
                or vocab.is_place(low)
        return low not in self.stop and (not vocab.is_english(low) or vocab.is_place(low))

    def find(self, text, doc, shape):
        w = _Words.of(doc)
        out = []
        for i in range(w.n):
            low = w.lower[i]
            is_head = low in self.heads or (low in self.center_heads and i > 0
                                            and w.lower[i - 1] in self.center_modifiers)
            weak = low in self.weak_heads and (w.text[i][0].isupper() or not shape.mixed)
            if (is_head or weak) and i > 0:
                k = i - 1 - (low in self.center_heads)
                first = None
                while k >= 0 and i - k <= 4 and (self._placey(w, k, shape, True) or (
                        weak and w.lower[k] in self.center_modifiers and (w.text[k][0].isupper() or not shape.mixed))):
                    first = k  # ("Glavera Nursing Home": "nursing" is a clinical word elsewhere)
                    k -= 1
                if weak and first is not None and not any(
                        _namey(w.text[t]) and not vocab.is_english(w.lower[t]) and w.lower[t] not in self.stop
                        and w.lower[t] not in self.modifiers for t in range(first, i)):
                    first = None
                if first is not None and not all(w.lower[t] in ("st", "saint", "mt") for t in range(first, i)):
                    out.append(result("HOSPITAL", doc[first].idx, doc[i].idx + len(doc[i].text), 0.75 if is_head else 0.6,
                                      f"{self.name}:facility"))
            elif (street := self._street_name(w, i, shape)) is not None:
                out.append(result("LOCATION", doc[street].idx, doc[i].idx + len(doc[i].text), 0.6,
                                  f"{self.name}:street_name"))
            elif low in ("st", "saint") and i + 1 < w.n:
                dotted = w.text[i + 1] == "." or w.text[i].endswith(".")
                j = i + 1 + (w.text[i + 1] == ".")
                if j < w.n and (dotted or low == "saint" or not shape.upper or not vocab.is_english(w.lower[j])) \
                        and _namey(w.text[j]) and w.lower[j] not in self.function_words \
                        and (w.text[j][0].isupper() or not shape.mixed) \
                        and not (i > 0 and w.text[i - 1][:1].isdigit()) and w.lower[j] not in vocab.AFTER_ST:
                    out.append(result("HOSPITAL", doc[i].idx, doc[j].idx + len(doc[j].text), 0.6,
                                      f"{self.name}:saint"))
            elif _HOSPITAL_ACRONYM.fullmatch(w.text[i]) and (shape.lower or w.text[i].isupper()) \
                    and low not in self.function_words and low not in vocab.NOT_HOSPITAL_ACRONYMS \
                    and not vocab.is_english(low) and low not in self.stop and (
                        (i > 0 and (w.lower[i - 1] in vocab.PLACE_PREPS or w.lower[i - 1] in vocab.PLACE_VERBS))
                        or (i + 1 < w.n and w.lower[i + 1] in vocab.AFTER_HOSPITAL)):
                # "tranfered to GH", "GH EW", "seen by GBMC nurse"
                out.append(result("HOSPITAL", doc[i].idx, doc[i].idx + len(doc[i].text), 0.6, f"{self.name}:acronym"))
            elif (ward := self._bare_ward(w, i, shape)) is not None:
                out.append(result("LOCATION", doc[i].idx, doc[ward].idx + len(doc[ward].text), 0.55,
                                  f"{self.name}:ward"))
            elif low in vocab.ER_WORDS and i > 0 and w.text[i].isupper() and 2 <= len(w.text[i - 1]) <= 5 \
                    and w.text[i - 1].isupper() and w.text[i - 1].isalpha() and w.lower[i - 1] not in self.stop \
                    and w.lower[i - 1] not in self.function_words and not vocab.is_english(w.lower[i - 1]) \
                    and w.lower[i - 1] not in vocab.NOT_HOSPITAL_ACRONYMS:
                # "found unresponsive -> QUI EW": an unknown acronym before an emergency department
                out.append(result("HOSPITAL", doc[i - 1].idx, doc[i - 1].idx + len(doc[i - 1].text), 0.6,
                                  f"{self.name}:acronym_er"))
            elif low in vocab.ER_WORDS and i > 0 and shape.mixed and w.text[i - 1][:1].isupper():
                # "sent to Ashby Reed EW": capitalised words before an emergency department
                k, first = i - 1, None
                while k >= 0 and i - k <= 3 and _namey(w.text[k]) and w.text[k][:1].isupper() \
                        and w.lower[k] not in self.function_words and w.lower[k] not in vocab.ER_WORDS:
                    first = k
                    k -= 1
                if first is not None and k >= 0 and w.lower[k] in vocab.PLACE_PREPS | {"the"}:
                    out.append(result("HOSPITAL", doc[first].idx, doc[i - 1].idx + len(doc[i - 1].text), 0.6,
                                      f"{self.name}:before_er"))
            elif low in vocab.PLACE_PREPS and i + 1 < w.n and (glued := _GLUED_WARD.fullmatch(w.text[i + 1])) \
                    and not vocab.is_english(glued.group(1).lower()) and glued.group(1).lower() not in self.stop \
                    and glued.group(1).lower() not in self.function_words \
                    and not (glued.group(1)[-1] in "xX" and vocab.is_english(glued.group(1)[:-1].lower())):
                # "admitted to QUARTERMAIN7", "transfer to wentmore2": a ward glued to its floor
                out.append(result("LOCATION", doc[i + 1].idx, doc[i + 1].idx + len(doc[i + 1].text), 0.55,
                                  f"{self.name}:ward"))
            elif low in vocab.PLACE_PREPS and i + 1 < w.n:
                window = 8 if any(w.lower[k] in vocab.HOME_VERBS for k in range(max(0, i - 8), i)) else 4
                suffix_town = i + 1 < w.n and _TOWN.search(w.lower[i + 1]) and _namey(w.text[i + 1]) \
                    and (w.text[i + 1][0].isupper() or not shape.mixed) and not vocab.is_english(w.lower[i + 1]) \
                    and w.lower[i + 1] not in self.stop and low in ("in", "from", "of", "near", "at")
                j = i + 1
                ward = j + 1 < w.n and re.fullmatch(r"\d{1,2}", w.text[j + 1]) and _namey(w.text[j]) \
                    and len(w.text[j]) >= 4 and not vocab.is_english(w.lower[j]) and w.lower[j] not in self.stop \
                    and w.lower[j] not in self.function_words and low in ("to", "from", "at", "in") \
                    and (j + 2 >= w.n or w.lower[j + 2] in vocab.AFTER_WARD or not w.text[j + 2].strip())
                if ward:
                    # "pt to wentmore 3": an unknown word and a floor or ward number; "... or fellsway 4"
                    while ward:
                        out.append(result("LOCATION", doc[j].idx, doc[j].idx + len(doc[j].text), 0.55,
                                          f"{self.name}:ward"))
                        ward = j + 4 < w.n and w.lower[j + 2] in ("or", "and", "/") \
                            and re.fullmatch(r"\d{1,2}", w.text[j + 4]) and _namey(w.text[j + 3]) \
                            and len(w.text[j + 3]) >= 4 and not vocab.is_english(w.lower[j + 3]) \
                            and w.lower[j + 3] not in self.stop and w.lower[j + 3] not in self.function_words
                        j += 3
                    continue
                # "c/o to X": call out to a ward (spaCy splits "c/o" into three tokens)
                call_out = low == "to" and "".join(w.lower[max(0, i - 3):i]).endswith("c/o")
                verb = any(w.lower[k] in vocab.PLACE_VERBS for k in range(max(0, i - window), i))
                # "CABG at Quintara", "moved here from Kavelstan": no verb of movement, but in a
                # mixed-case note an unknown capitalised word right after at/in/from
                bare = not (suffix_town or call_out or verb) and shape.mixed and low in ("at", "in", "from") \
                    and self._unknown_capitalised(w, i + 1)
                if not suffix_town and not call_out and not verb and not bare:
                    continue
                j = i + 1
                if j < w.n and w.lower[j] == "the":
                    j += 1
                last = None
                k = j
                moved = i > 0 and w.lower[i - 1] in vocab.PLACE_VERBS and low in ("to", "at", "from")
                while k < w.n and k - j < 3 and self._placey(w, k, shape, False, moved and k == j):
                    last = k
                    k += 1
                if last is not None:
                    out.append(result("LOCATION", doc[j].idx, doc[last].idx + len(doc[last].text),
                                      0.45 if bare else 0.55, f"{self.name}:after_{low}" + ("_bare" if bare else "")))
        for m in _NAMED_FACILITY.finditer(text):
            out.append(result("HOSPITAL", m.start(), m.end(), 0.7, f"{self.name}:named_facility"))
        return out + self._propagate(text, doc, w, out)

    def _unknown_capitalised(self, w: _Words, k: int) -> bool:
        """Token k is a capitalised word no list knows: not English, not one typo from it, no
        clinical word or drug ("Quintara", not "Lasix", "Afib" or "Mornig")."""
        if k >= w.n:
            return False
        word, low = w.text[k], w.lower[k]
        return len(word) >= 4 and word[0].isupper() and word[1:].islower() and _namey(word) \
            and low not in self.stop and low not in self.function_words and not vocab.explained(low)

    def _street_name(self, w: _Words, i: int, shape: DocShape) -> int | None:
        """"on Zorvale St.", "off Main Street": up to two capitalised words and a street type after
        on/off/at/near, with no house number (numbered streets are a pattern); returns the first
        name token's index."""
        if w.lower[i].rstrip(".") not in self.street_types or i < 2:
            return None
        if shape.mixed and not w.text[i][0].isupper():
            return None
        first = None
        k = i - 1
        while k >= 0 and i - k <= 2 and _namey(w.text[k]) and w.lower[k] not in self.function_words \
                and (w.text[k][0].isupper() if shape.mixed else not vocab.is_english(w.lower[k])):
            first = k
            k -= 1
        if first is None or k < 0 or w.lower[k] not in ("on", "off", "at", "near"):
            return None
        return first

    def _bare_ward(self, w: _Words, i: int, shape: DocShape) -> int | None:
        """"PLAN: WENTMORE 2 WHEN BED AVAIL": an unknown word, a floor number and a bed phrase,
        with no preposition before; returns the number's token index."""
        if i + 2 >= w.n or not re.fullmatch(r"\d{1,2}", w.text[i + 1]) or w.lower[i + 2] not in ("when", "once", "bed"):
            return None
        word, low = w.text[i], w.lower[i]
        if len(word) < 5 or not _namey(word) or low in self.stop or low in self.function_words \
                or vocab.is_english(low) or (shape.mixed and not word[0].isupper()):
            return None
        return i + 1

    def _propagate(self, text, doc, w: _Words, found) -> list:
        """Other mentions in the same note of an unknown word already found as a place
        ("transfer to Wentmore 2" ... "wentmore2 when bed available")."""
        words = set()
        for r in found:
            for tok in re.findall(r"[A-Za-z][A-Za-z-]+(?![A-Za-z'])", text[r.start:r.end]):
                low = tok.lower()
                if len(low) >= 4 and low not in self.stop and low not in self.function_words \
                        and not vocab.is_english(low) and low not in self.modifiers and low not in self.heads:
                    words.add(low)
        if not words:
            return []
        out = []
        for t in range(w.n):
            base = w.lower[t].rstrip("0123456789")
            if base in words or (base[:-8] in words and base.endswith("building")):
                out.append(result("LOCATION", doc[t].idx, doc[t].idx + len(doc[t].text), 0.55,
                                  f"{self.name}:same_note"))
        return out


class GazetteerRecognizer(TokenRecognizer):
    """Cities, states, countries, nationalities and well-known companies from open lists, matched
    on tokens (up to four words); a listed place that is also an English word must be capitalised,
    and a town known only from GeoNames needs a preposition or a state after it (see ``_town``)."""

    labels = ("CITY", "STATE", "COUNTRY", "NATIONALITY", "ORG")

    def load(self) -> None:
        self.stop = vocab.stop_words()
        self.table = vocab.place_table(self.options.get("kinds", ("CITY", "STATE")))
        self.longest = max((len(k) for k in self.table), default=1)

    def find(self, text, doc, shape):
        w = _Words.of(doc)
        out = []
        i = 0
        lows = [t.lower() for t in w.text]
        while i < w.n:
            hit = None
            for n in range(min(self.longest, w.n - i), 0, -1):
                label = self.table.get(tuple(lows[i:i + n]))
                if label is not None:
                    hit = (n, label)
                    break
            if hit is None:
                i += 1
                continue
            n, label = hit
            words = w.text[i:i + n]
            if label == "TOWN":
                if not self._town(w, lows, i, n, shape):
                    i += 1
                    continue
                label = "CITY"
            elif label == "ORG" and not (words[0].isupper() if n == 1 and len(words[0]) <= 4
                                         else words[0][:1].isupper()):
                i += 1  # "IBM" and "Boeing", not "ibm" or "mobil"
                continue
            if n == 1 and (lows[i] in self.stop or vocab.is_english(lows[i]) and label != "NATIONALITY") \
                    and not words[0][:1].isupper():
                i += 1
                continue
            if n == 1 and label == "CITY" and vocab.is_english(lows[i]) and not (
                    i > 0 and (lows[i - 1] in vocab.PLACE_PREPS or lows[i - 1] in ("of", "near"))) \
                    and not self._proper_city(w, lows, i, shape):
                i += 1  # "NOT READING", "Reading are improved"
                continue
            if label == "NATIONALITY" and not words[0][:1].isupper():
                i += 1
                continue
            if self.options.get("legal") and vocab.generic_institution(
                    " ".join(words), text[doc[i + n - 1].idx + len(doc[i + n - 1].text):][:40],
                    text[max(0, doc[i].idx - 40):doc[i].idx]):
                i += n
                continue
            score = 0.6 if n > 1 or lows[i] not in self.stop else 0.45
            out.append(result(label, doc[i].idx, doc[i + n - 1].idx + len(doc[i + n - 1].text), score,
                              f"{self.name}:{label.lower()}"))
            i += n
        return out

    def _proper_city(self, w: _Words, lows: list[str], i: int, shape: DocShape) -> bool:
        """A listed city that WordNet also knows only as a proper noun ("Baltimore", "Boston"):
        capitalised inside a sentence of mixed-case or lower-case text is enough, unless it is a
        common word too."""
        return not shape.upper and w.text[i][:1].isupper() and lows[i] not in self.stop \
            and lows[i] not in vocab.COMMON_WORD_CITIES and i > 0 and w.text[i - 1] not in (".", "!", "?", ":") \
            and "\n" not in w.text[i - 1]

    def _town(self, w: _Words, lows: list[str], i: int, n: int, shape: DocShape) -> bool:
        """Whether a town known only from GeoNames is meant here: capitalised in mixed-case text,
        never a clinical word, and after "in"/"from"/"of" or before ", MD" when its words are
        English ("Reading", "Silver Spring") or the note's case says nothing."""
        alpha = [k for k in range(i, i + n) if lows[k].isalpha()]
        content = [k for k in alpha if lows[k] not in self.stop]
        if not content and n > 1 and alpha and all(w.text[k][:1].isupper() for k in alpha):
            content = alpha  # "Silver Spring": common words, so it needs "from" or ", MD" below
        if not content or (n == 1 and (lows[i] in vocab.CLINICAL_VOCAB or lows[i] in self.stop)):
            return False
        if shape.mixed and not all(w.text[k][:1].isupper() for k in content):
            return False
        english = all(vocab.is_english(lows[k]) or lows[k] in self.stop for k in content)
        if shape.mixed and not english:
            return True
        before = lows[i - 1] if i > 0 else ""
        after = lows[i + n:i + n + 2]
        preps = ("in", "from", "of", "near") if english else vocab.PLACE_PREPS | {"of", "near"}
        return before in preps or (
            len(after) == 2 and after[0] == "," and (after[1].upper() in vocab.STATE_ABBRS
                                                       or after[1] in vocab.US_STATES))


_PLACE_LABELS = frozenset({"GPE", "LOC", "FAC", "ORG", "NORP"})
_NUMBER_WORDS = (r"(?:\d+\+?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|"
                 r"forty|fifty|a|an|several|(?:a\s+)?few|(?:a\s+)?couple\s+of|many)")
_WEEKDAY = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
# what spaCy calls DATE but identifies no one: durations ("ten years", "a two-month period"),
# frequencies ("monthly"), anaphora ("the same day", "the following months") and centuries
_DURATION = re.compile(
    rf"(?i)^(?:(?:about|almost|at\s+least|less\s+than|more\s+than|over|some|up\s+to|nearly|the\s+last|the\s+first|"
    rf"another|a\s+further)\s+)?{_NUMBER_WORDS}(?:[\s-]+and\s+a\s+half)?[\s-]+(?:days?|weeks?|months?|years?|hours?|"
    rf"minutes?)(?:[\s-]+(?:long|ago))?$"
    r"|^(?:daily|weekly|monthly|yearly|annually|annual|quarterly)$"
    r"|^(?:the\s+|that\s+|this\s+|those\s+|next\s+|last\s+|every\s+|each\s+)?(?:same\s+|following\s+|next\s+|"
    r"previous\s+|preceding\s+|subsequent\s+|last\s+|first\s+|present\s+|\d+(?:st|nd|rd|th)\s+)?(?:day|days|week|"
    r"weeks|weekend|weekends|month|months|year|years|time)$"
    rf"|^the\s+(?:last|first|following|next|previous)\s+{_WEEKDAY}$"
    r"|^(?:the\s+)?(?:early\s+|late\s+|mid-?)?\d{1,2}(?:st|nd|rd|th)\s+century$|^the\s+age\s+of$"
    r"|^(?:the\s+)?(?:early\s+|late\s+|mid-?)?(?:'|19|20)?\d0['’]?s$")  # "the 60s"
# acronyms spaCy's news model calls organisations that name a kind of thing, not an organisation
_NOT_ORG = frozenset("iban ssn atm asap pin dob id faq ok tv dvd usb gps url pdf sms pc ceo cfo cto vip".split())


# a sentence's length is part of what identifies a case ("sentenced to five years' imprisonment")
_SENTENCE_AFTER = re.compile(r"(?i)^['’]?s?['’]?\s+(?:imprisonment|prison|detention|custody|suspended|probation)")


def _duration(text: str, start: int, end: int) -> bool:
    return bool(_DURATION.match(text[start:end].strip())) and not _SENTENCE_AFTER.match(text[end:end + 30]) \
        and not text[max(0, start - 16):start].rstrip().lower().endswith(("sentenced to", "sentence of"))


_NER_LABELS = {"PERSON": "NAME", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION", "ORG": "ORG",
               "NORP": "NATIONALITY", "DATE": "DATE", "TIME": "DATE", "MONEY": "QUANTITY",
               "QUANTITY": "QUANTITY", "PERCENT": "QUANTITY", "CARDINAL": "QUANTITY"}


class SpacyEntityRecognizer(TokenRecognizer):
    """spaCy's named entities, mapped to canonical labels, minus allow-listed vocabulary.

    Skipped in ALL-CAPS and all-lower-case notes, where a small news-trained model mostly
    mistakes clinical abbreviations for organisations.
    """

    labels = ("NAME", "LOCATION", "ORG", "NATIONALITY", "DATE", "QUANTITY")

    def load(self) -> None:
        self.stop = vocab.stop_words()
        self.keep = dict(self.options.get("labels") or {"PERSON": 0.6, "GPE": 0.5, "LOC": 0.5, "FAC": 0.5})
        self.legal = bool(self.options.get("legal"))

    def find(self, text, doc, shape):
        if not shape.mixed:
            return []
        out = []
        for ent in doc.ents:
            score = self.keep.get(ent.label_)
            if score is None:
                continue
            words = [t.text.lower() for t in ent if t.is_alpha]
            if ent.label_ in ("PERSON", "GPE", "LOC", "FAC", "ORG", "NORP") and (
                    not words or all(x in self.stop for x in words)):
                continue
            if ent.label_ in ("DATE", "TIME") and _duration(text, ent.start_char, ent.end_char) \
                    or ent.label_ == "ORG" and ent.text.lower() in _NOT_ORG:
                continue
            before = text[max(0, ent.start_char - 40):ent.start_char] if ent.label_ in _PLACE_LABELS else ""
            if self.legal and vocab.generic_institution(ent.text, text[ent.end_char:ent.end_char + 40], before):
                continue
            out.append(result(_NER_LABELS[ent.label_], ent.start_char, ent.end_char, score,
                              f"{self.name}:{ent.label_}"))
        return out
