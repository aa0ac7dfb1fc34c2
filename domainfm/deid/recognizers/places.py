"""Places: facilities, wards, towns and the gazetteer of cities, states and companies.

Facility heads ("Holy Cross Hospital", "St. Agnes"), hospital acronyms after a movement word
("to GH"), saint/virtue hospital names ("Holy Cross"), wards with a number ("to Wentmore 2"),
town-shaped words ("from Fallowtown") and places after movement verbs ("transferred to X",
"lives in X"); the gazetteer recognizer adds listed cities, states and companies.
"""

from __future__ import annotations

import re

from spacy.lang.en.stop_words import STOP_WORDS as _SPACY_STOP

from domainfm.deid.recognizers import vocab
from domainfm.deid.recognizers.base import DocShape, TokenRecognizer, result
from domainfm.deid.recognizers.words import Words, function_words, namey, unknown_capitalised

_GLUED_WARD = re.compile(r"([A-Za-z]{4,})\d{1,2}")
_HOSPITAL_ACRONYM = re.compile(r"(?i:[A-Z]{1,4}(?:H|MC|HC))")
_TOWN = re.compile(r"(?:town|ville|burg|burgh|boro|borough|ford|field|wood|dale|ton|land|chester|mouth|port|"
                   r"bury|haven|shire|downe|more|mont|view|side|stead|wick|worth)$")
# hospitals named after a saint or a virtue, which carry no "Hospital": "Holy Cross", "Sacred Heart"
_NAMED_FACILITY = re.compile(r"(?i)\b(?:holy\s+(?:cross|family|name|spirit|redeemer|trinity|ghost)|sacred\s+heart"
                             r"|good\s+samaritan|good\s+shepherd|our\s+lady\s+of\s+(?-i:[A-Za-z]\w+))\b"
                             r"(?:\s+(?:memorial|hospital|medical\s+center|rehab|hospice|nursing\s+home)\b)?")


# words before a facility's kind that say which one it is without naming it ("Outside hospital")
_NO_FACILITY_NAME = frozenset("outside local previous prior referring nearest nearby receiving sending "
                              "current different".split())
# who someone is, then the place they are "of" ("a resident of X", "a native of X")
_OF_PLACE = frozenset("resident residents native natives".split())
# institutions named after the town they serve ("VNA of X", "Hospice of X", "University of X")
_OF_INSTITUTION = frozenset("vna hospice university univ college hospital association".split())
# a town's public services, named by the town ("X EMS", "X Police Department"); not "PD", which is
# peritoneal dialysis as often ("Tenckhoff PD catheter")
_TOWN_SERVICES = frozenset("ems police fire sheriff".split())


def _place_verb_at(w: Words, k: int) -> bool:
    """Token k is a verb of movement or residence (:func:`vocab.place_verb`), also the last part
    of one written with a slash, which spaCy cuts in three ("d/c to X": "d", "/", "c")."""
    return vocab.place_verb(w.lower[k]) or (k >= 2 and w.text[k - 1] == "/"
                                            and vocab.place_verb(f"{w.lower[k - 2]}/{w.lower[k]}"))


class PlaceRecognizer(TokenRecognizer):
    """Facilities ("Holy Cross Hospital", "St. Agnes") and places after movement verbs
    ("transferred to X", "lives in X")."""

    labels = ("HOSPITAL", "LOCATION")
    # words that end a facility's name ("Holy Cross Hospital", "Fennimark Rehab")
    heads = frozenset("hospital hospitals hosp hosp. clinic memorial regional infirmary hospice manor "
                      "rehab rehabilitation va vamc sanatorium nh snf".split())
    # "... Nursing Agency", "... Skilled Nursing Facility", "... Assisted Living"
    center_heads = frozenset("center ctr ctr. centre agency facility living".split())
    center_modifiers = frozenset("medical med health cancer heart rehabilitation rehab nursing care "
                                 "surgical surgery dialysis assisted".split())
    # heads that are everyday words too ("went home", "the house"): a facility only when a word
    # before them is no English word ("Blaxzo House", "Glavera Nursing Home")
    weak_heads = frozenset("house home".split())
    # places of work and study, named like facilities ("Pellston High School", "Tovrin Paper Mill"):
    # as weak as "home" (an unknown word must be among them), and a place, not a hospital
    institution_heads = frozenset("school college academy university mill factory plant shipyard "
                                  "building bldg pavilion".split())
    # street types after a street's name with no house number ("on Zorvale St.")
    street_types = frozenset("st street ave avenue rd road blvd boulevard lane ln".split())

    def load(self) -> None:
        self.stop = vocab.stop_words()
        self.modifiers = vocab.FACILITY_MODIFIERS
        self.function_words = function_words()

    def _placey(self, w: Words, k: int, shape: DocShape, in_facility: bool, moved: bool = False) -> bool:
        """Token k can be part of a place's name; ``moved``: right after "transferred to" and the
        like, where a short unknown word (an acronym: "to BMC", "at NEH") is a place too."""
        word, low = w.text[k], w.lower[k]
        if not namey(word):
            return in_facility and low in ("st", "mt")
        if in_facility and low in _NO_FACILITY_NAME:
            return False  # "Outside hospital", "the local hospital": which one is not said
        if in_facility and low in self.modifiers and (not shape.mixed or word[0].isupper()):
            return True
        if low in self.function_words:
            return False
        if moved and not in_facility and len(low) >= 2 and low not in self.stop and not vocab.is_english(low) \
                and (word.isupper() or not shape.mixed or (len(low) >= 6 and not vocab.near_english(low))):
            return True  # "to BMC", "to NEH"; "transfer to bellmoor." written in lower case too
        if shape.mixed:
            # a hospital service is where a patient or a sample goes, not a town ("sent to Pathology")
            return word[0].isupper() and (in_facility or (low not in self.stop and not vocab.is_service(low)))
        if not in_facility and (len(low) < 4 or not re.search(r"[aeiouy]", low)):
            return False  # "TO BB", "to lcs": short or vowel-less abbreviations
        if in_facility:
            return low in self.modifiers or (low not in self.stop and not vocab.is_english(low)) \
                or vocab.is_place(low)
        return low not in self.stop and (not vocab.is_english(low) or vocab.is_place(low))

    def find(self, text, doc, shape):
        w = Words.of(doc)
        out = []
        for i in range(w.n):
            low = w.lower[i]
            is_head = low in self.heads or (low in self.center_heads and i > 0
                                            and w.lower[i - 1] in self.center_modifiers)
            weak = (low in self.weak_heads or low in self.institution_heads) and (w.text[i][0].isupper() or not shape.mixed)
            if (aside := self._facility_aside(w, i, shape)) is not None:
                # a kind of facility is often a head too ("Outside hospital: X"): the name after it,
                # and the words before it still looked at below
                out.append(result("HOSPITAL", doc[aside[0]].idx, doc[aside[1]].idx + len(doc[aside[1]].text), 0.6,
                                  f"{self.name}:facility_aside"))
            if low in _TOWN_SERVICES and (town := self._town_before_service(w, i, shape)) is not None:
                out.append(result("LOCATION", doc[town].idx, doc[i - 1].idx + len(doc[i - 1].text), 0.55,
                                  f"{self.name}:town_service"))
            if (is_head or weak) and i > 0:
                k = i - 1 - (low in self.center_heads)
                first = None
                while k >= 0 and i - k <= 4 and (self._placey(w, k, shape, True) or (
                        weak and w.lower[k] in self.center_modifiers and (w.text[k][0].isupper() or not shape.mixed))):
                    first = k  # ("Glavera Nursing Home": "nursing" is a clinical word elsewhere)
                    k -= 1
                if weak and first is not None and not any(
                        namey(w.text[t]) and not vocab.is_english(w.lower[t]) and w.lower[t] not in self.stop
                        and w.lower[t] not in self.modifiers for t in range(first, i)):
                    first = None
                if first is not None and not all(w.lower[t] in ("st", "saint", "mt") for t in range(first, i)):
                    out.append(result("LOCATION" if low in self.institution_heads else "HOSPITAL", doc[first].idx,
                                      doc[i].idx + len(doc[i].text), 0.75 if is_head else 0.6, f"{self.name}:facility"))
            elif aside is not None:
                pass  # the name after a kind of facility ("OSH (Brackmoor)"), taken above
            elif (street := self._street_name(w, i, shape)) is not None:
                out.append(result("LOCATION", doc[street].idx, doc[i].idx + len(doc[i].text), 0.6,
                                  f"{self.name}:street_name"))
            elif low in ("st", "saint") and i + 1 < w.n:
                dotted = w.text[i + 1] == "." or w.text[i].endswith(".")
                j = i + 1 + (w.text[i + 1] == ".")
                if j < w.n and (dotted or low == "saint" or not shape.upper or not vocab.is_english(w.lower[j])) \
                        and namey(w.text[j]) and w.lower[j] not in self.function_words \
                        and (w.text[j][0].isupper() or not shape.mixed) \
                        and not (i > 0 and w.text[i - 1][:1].isdigit()) and w.lower[j] not in vocab.AFTER_ST:
                    out.append(result("HOSPITAL", doc[i].idx, doc[j].idx + len(doc[j].text), 0.6,
                                      f"{self.name}:saint"))
            elif _HOSPITAL_ACRONYM.fullmatch(w.text[i]) and (shape.lower or w.text[i].isupper()) \
                    and low not in self.function_words and low not in vocab.NOT_HOSPITAL_ACRONYMS \
                    and not vocab.is_english(low) and low not in self.stop and (
                        (i > 0 and (w.lower[i - 1] in vocab.PLACE_PREPS or _place_verb_at(w, i - 1)))
                        or (i + 1 < w.n and w.lower[i + 1] in vocab.AFTER_HOSPITAL)):
                # "tranfered to GH", "GH EW", "seen by BVMC nurse"
                out.append(result("HOSPITAL", doc[i].idx, doc[i].idx + len(doc[i].text), 0.6, f"{self.name}:acronym"))
            elif i > 0 and i + 1 < w.n and w.lower[i + 1] in vocab.AFTER_HOSPITAL and w.text[i].isalpha() \
                    and (w.lower[i - 1] in vocab.PLACE_PREPS or _place_verb_at(w, i - 1)) \
                    and (w.text[i].isupper() or not shape.mixed) and not vocab.explained(low) \
                    and low not in vocab.NOT_HOSPITAL_ACRONYMS and low not in self.function_words:
                # "to kab cath lab", "TO QUI ICU": a word no list explains between a movement word and
                # a hospital's unit is that hospital, whatever its shape
                out.append(result("HOSPITAL", doc[i].idx, doc[i].idx + len(doc[i].text), 0.6,
                                  f"{self.name}:before_unit"))
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
                while k >= 0 and i - k <= 3 and namey(w.text[k]) and w.text[k][:1].isupper() \
                        and w.lower[k] not in self.function_words and w.lower[k] not in vocab.ER_WORDS:
                    first = k
                    k -= 1
                if first is not None and k >= 0 and w.lower[k] in vocab.PLACE_PREPS | {"the"}:
                    out.append(result("HOSPITAL", doc[first].idx, doc[i - 1].idx + len(doc[i - 1].text), 0.6,
                                      f"{self.name}:before_er"))
            elif low == "place" and (named := self._oriented_to_place(w, i, shape)) is not None:
                out.append(result("LOCATION", doc[named[0]].idx, doc[named[1]].idx + len(doc[named[1]].text), 0.55,
                                  f"{self.name}:oriented_place"))
            elif low in vocab.PLACE_PREPS and i + 1 < w.n and (glued := _GLUED_WARD.fullmatch(w.text[i + 1])) \
                    and not vocab.is_english(glued.group(1).lower()) and glued.group(1).lower() not in self.stop \
                    and glued.group(1).lower() not in self.function_words \
                    and not (glued.group(1)[-1] in "xX" and vocab.is_english(glued.group(1)[:-1].lower())):
                # "admitted to QUARTERMAIN7", "transfer to wentmore2": a ward glued to its floor
                out.append(result("LOCATION", doc[i + 1].idx, doc[i + 1].idx + len(doc[i + 1].text), 0.55,
                                  f"{self.name}:ward"))
            elif (low in vocab.PLACE_PREPS or (low == "of" and i > 0 and w.lower[i - 1] in _OF_PLACE | _OF_INSTITUTION)) \
                    and i + 1 < w.n:
                window = 8 if any(w.lower[k] in vocab.HOME_VERBS for k in range(max(0, i - 8), i)) else 4
                suffix_town = i + 1 < w.n and _TOWN.search(w.lower[i + 1]) and namey(w.text[i + 1]) \
                    and (w.text[i + 1][0].isupper() or not shape.mixed) and not vocab.is_english(w.lower[i + 1]) \
                    and w.lower[i + 1] not in self.stop and low in ("in", "from", "of", "near", "at")
                j = i + 1
                ward = j + 1 < w.n and re.fullmatch(r"\d{1,2}", w.text[j + 1]) and namey(w.text[j]) \
                    and len(w.text[j]) >= 4 and not vocab.is_english(w.lower[j]) and w.lower[j] not in self.stop \
                    and w.lower[j] not in self.function_words and low in ("to", "from", "at", "in") \
                    and (j + 2 >= w.n or w.lower[j + 2] in vocab.AFTER_WARD or not w.text[j + 2].strip())
                if ward:
                    # "pt to wentmore 3": an unknown word and a floor or ward number; "... or fellsway 4"
                    while ward:
                        out.append(result("LOCATION", doc[j].idx, doc[j].idx + len(doc[j].text), 0.55,
                                          f"{self.name}:ward"))
                        ward = j + 4 < w.n and w.lower[j + 2] in ("or", "and", "/") \
                            and re.fullmatch(r"\d{1,2}", w.text[j + 4]) and namey(w.text[j + 3]) \
                            and len(w.text[j + 3]) >= 4 and not vocab.is_english(w.lower[j + 3]) \
                            and w.lower[j + 3] not in self.stop and w.lower[j + 3] not in self.function_words
                        j += 3
                    continue
                # "c/o to X": call out to a ward (spaCy splits "c/o" into three tokens)
                call_out = low == "to" and "".join(w.lower[max(0, i - 3):i]).endswith("c/o")
                oriented = self._orientation(w, i)
                verb = any(_place_verb_at(w, k) for k in range(max(0, i - window), i)) or oriented
                # "CABG at Quintara", "moved here from Kavelstan": no verb of movement, but in a
                # mixed-case note an unknown capitalised word right after at/in/from
                bare = not (suffix_town or call_out or verb) and shape.mixed and low in ("at", "in", "from") \
                    and self._unknown_capitalised(w, i + 1)
                named_for = low == "of" and w.lower[i - 1] in _OF_INSTITUTION
                if not suffix_town and not call_out and not verb and not bare and not named_for:
                    continue
                j = i + 1
                if j < w.n and w.lower[j] == "the":
                    j += 1
                last = None
                k = j
                moved = i > 0 and _place_verb_at(w, i - 1) and low in ("to", "at", "from")
                while k < w.n and k - j < 3 and self._placey(w, k, shape, False, moved and k == j):
                    last = k
                    k += 1
                # where someone lives: everyday words may name the place ("lives in north fennimark")
                home = not shape.mixed and any(w.lower[t] in vocab.HOME_VERBS or w.lower[t] in vocab.HOME_WORDS
                                               for t in range(max(0, i - 6), i))
                if home and (worded := self._place_with_words(w, j, shape)) is not None:
                    last = max(worded, last if last is not None else worded)
                if oriented and last is not None and last + 1 < w.n and w.lower[last + 1] in ("'s", "’s"):
                    continue  # "believes he is at mabry quellwood's house": a person's, not a place's name
                if named_for and not (verb or bare or suffix_town) and last is not None and all(
                        vocab.is_english(w.lower[t]) and not vocab.is_place(w.lower[t]) for t in range(j, last + 1)):
                    continue  # "College of Physicians", "Association of Critical Care": a field, not a town
                if last is not None:
                    out.append(result("LOCATION", doc[j].idx, doc[last].idx + len(doc[last].text),
                                      0.45 if bare else 0.55, f"{self.name}:after_{low}" + ("_bare" if bare else "")))
        for m in _NAMED_FACILITY.finditer(text):
            out.append(result("HOSPITAL", m.start(), m.end(), 0.7, f"{self.name}:named_facility"))
        return out + self._propagate(text, doc, w, out)

    _ORIENTATION_VERBS = frozenset("knows know knew thinks thought believes believed realizes realized "
                                   "understands understood aware states stated says said".split())

    def _orientation(self, w: Words, i: int) -> bool:
        """Token i ("in"/"at") ends an orientation statement, which names where the patient is:
        "knows she is in X", "thinks that pt is at X", "aware he's in X"."""
        if w.lower[i] not in ("in", "at") or i < 3:
            return False
        k = i - 1
        if w.lower[k] in ("is", "was", "'s", "’s"):
            k -= 1
        if k < 1 or w.lower[k] not in ("he", "she", "pt", "patient", "they", "pt.", "i"):
            return False
        k -= 1 + (w.lower[k - 1] == "that")
        return k >= 0 and w.lower[k] in self._ORIENTATION_VERBS

    def _oriented_to_place(self, w: Words, i: int, shape: DocShape) -> tuple[int, int] | None:
        """"oriented to place (X)", "ORIENTED TO PLACE-X": the place the patient named, token i
        being "place"; the first and last token of its name, or None."""
        if i < 2 or w.lower[i - 1] != "to" or not w.lower[i - 2].startswith("orient"):
            return None
        j = i + 1
        if j >= w.n or w.text[j] not in ("(", "-", ":", "=", "/", "["):
            return None
        first = last = j + 1
        while last < w.n and last - first < 3 and self._placey(w, last, shape, False, last == first):
            last += 1
        return (first, last - 1) if last > first else None

    # what may follow a place's name in a note without capitals ("... in quorby gravel by daughter")
    _AFTER_PLACE = frozenset("by and with for on at to in from of where who when until".split())

    def _place_with_words(self, w: Words, j: int, shape: DocShape) -> int | None:
        """In a note without capitals, where someone lives (after "lives", "home" and the like): up
        to three words that end the phrase, English words among them, at least one word no list
        knows ("lives with wife in north fennimark,", "found at his home in QUORBY GRAVEL BY
        DAUGHTER"). Places are often named with everyday words ("White Plains", "Glen Burnie"),
        which only capitals mark in a mixed-case note. Returns the last token, or None."""
        last, unknown, k = None, False, j
        while k < w.n and k - j < 3:
            word, low = w.text[k], w.lower[k]
            if not namey(word) or low in _SPACY_STOP or low in vocab.CORE_FUNCTION_WORDS or low in vocab.MONTH_WORDS:
                break
            if self._placey(w, k, shape, False):
                unknown = True
            elif not vocab.is_english(low):
                break  # an abbreviation or a typo, not a word of a name
            last, k = k, k + 1
        ends = k >= w.n or not w.text[k].strip() or "\n" in w.text[k] or w.text[k] in (",", ".", ";", ":", "(", ")") \
            or w.lower[k] in self._AFTER_PLACE
        return last if last is not None and unknown and ends else None

    def _unknown_capitalised(self, w: Words, k: int) -> bool:
        return unknown_capitalised(w, k, self.stop, self.function_words)

    # kinds of facility written for the facility's name ("from OSH (Brackmoor)", "to SNF (Quorby Manor)")
    facility_kinds = frozenset("osh snf ltac ltach ltc rehab nh facility hospital".split())

    def _facility_aside(self, w: Words, i: int, shape: DocShape) -> tuple[int, int] | None:
        """The name in brackets after a kind of facility ("OSH (Brackmoor)"), or as the value of a
        field named by one ("Outside hospital: Brackmoor", "SNF: Quorby Manor"): up to three words,
        the first one no list knows; returns its first and last token, or None."""
        if w.lower[i] not in self.facility_kinds or i + 2 >= w.n or w.text[i + 1] not in ("(", ":"):
            return None
        k = i + 2
        if not (self._unknown_capitalised(w, k) if shape.mixed else
                namey(w.text[k]) and w.lower[k] not in self.stop and not vocab.is_english(w.lower[k])):
            return None
        close = ")" if w.text[i + 1] == "(" else None
        last = k
        while last + 1 < w.n and last - k < 2 and w.text[last + 1] != close and self._placey(w, last + 1, shape, True):
            last += 1
        if close is None:  # a field's value: the words up to the end of the field
            ends = last + 1 >= w.n or "\n" in w.text[last + 1] or w.text[last + 1] in (",", ".", ";", ")")
            return (k, last) if ends or "\n" in w.doc[last].whitespace_ else None
        return (k, last) if last + 1 < w.n and w.text[last + 1] == close else None

    def _town_before_service(self, w: Words, i: int, shape: DocShape) -> int | None:
        """The town that names a public service, token i ("Quorvath EMS", "found by Quorby
        Falls police", "QUORVATH FIRE DEPT"): up to two words right before it, one of them no list knows
        (or a listed place); returns the first token, or None. "Local EMS", "State Police" and "by
        EMS" name no town."""
        first, k, evidence = None, i - 1, False
        while k >= 0 and i - k <= 2 and "\n" not in w.text[k] and self._placey(w, k, shape, False) \
                and w.lower[k] not in _TOWN_SERVICES:
            evidence = evidence or vocab.is_place(w.lower[k]) or (
                self._unknown_capitalised(w, k) if shape.mixed else not vocab.explained(w.lower[k]))
            first, k = k, k - 1
        return first if evidence else None

    def _street_name(self, w: Words, i: int, shape: DocShape) -> int | None:
        """"on Zorvale St.", "off Main Street": up to two capitalised words and a street type after
        on/off/at/near, with no house number (numbered streets are a pattern); returns the first
        name token's index."""
        if w.lower[i].rstrip(".") not in self.street_types or i < 2:
            return None
        if shape.mixed and not w.text[i][0].isupper():
            return None
        first = None
        k = i - 1
        while k >= 0 and i - k <= 2 and namey(w.text[k]) and w.lower[k] not in self.function_words \
                and (w.text[k][0].isupper() if shape.mixed else not vocab.is_english(w.lower[k])):
            first = k
            k -= 1
        if k > 0 and w.lower[k] == "the":
            k -= 1  # "at the Quorvane Street shelter"
        if first is None or k < 0 or w.lower[k] not in ("on", "off", "at", "near"):
            return None
        return first

    def _bare_ward(self, w: Words, i: int, shape: DocShape) -> int | None:
        """"PLAN: WENTMORE 2 WHEN BED AVAIL": an unknown word, a floor number and a bed phrase,
        with no preposition before; returns the number's token index."""
        if i + 2 >= w.n or not re.fullmatch(r"\d{1,2}", w.text[i + 1]) or w.lower[i + 2] not in ("when", "once", "bed"):
            return None
        word, low = w.text[i], w.lower[i]
        if len(word) < 5 or not namey(word) or low in self.stop or low in self.function_words \
                or vocab.is_english(low) or (shape.mixed and not word[0].isupper()):
            return None
        return i + 1

    def _propagate(self, text, doc, w: Words, found) -> list:
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
        w = Words.of(doc)
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

    def _proper_city(self, w: Words, lows: list[str], i: int, shape: DocShape) -> bool:
        """A listed city that WordNet also knows only as a proper noun ("Baltimore", "Boston"):
        capitalised inside a sentence of mixed-case or lower-case text is enough, unless it is a
        common word too."""
        return not shape.upper and w.text[i][:1].isupper() and lows[i] not in self.stop \
            and lows[i] not in vocab.COMMON_WORD_CITIES and i > 0 and w.text[i - 1] not in (".", "!", "?", ":") \
            and "\n" not in w.text[i - 1]

    def _town(self, w: Words, lows: list[str], i: int, n: int, shape: DocShape) -> bool:
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

