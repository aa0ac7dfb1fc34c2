"""Realistic, consistent replacements for detected PHI.

Every surrogate is a pure function of (secret, patient scope, PHI kind, normalised original,
and for a date without a year the note's year): a keyed HMAC of those seeds a private
:class:`faker.Faker` instance (never the global random state), so the same original becomes
the same surrogate within a document, across the documents of one patient and across runs.
Scope is ``meta.patient_id`` when present, else the document id. With a
:class:`~domainfm.deid.vault.Vault` the mapping is also stored, so it survives a change of this
module, and collisions (two originals, one surrogate) are avoided across runs as well as within
one.

Per kind:

* Names are mapped token by token (first, middle and last names separately), so ``John Smith``
  and later ``Mr. Smith`` share the surrogate surname. Format is kept: titles and suffixes
  (``Dr.``, ``Mrs``, ``Jr.``, ``MD``), initials (``J.`` -> another letter), ``Last, First``,
  hyphens, per-token case (``SMITH``, ``smith``) and a possessive (``Smith's`` -> ``Miller's``).
  A token found in Faker's first-name lists becomes a first name of the same inferred gender (a
  title like ``Mrs.`` decides when the name does not); any other token becomes a surname.
* An initial beside a surname stands for a given name of that surname in the same scope:
  after ``John Smith`` -> ``Carl Moore``, ``J. Smith`` is ``C. Moore`` (even when the given
  name's surrogate keeps its letter). When the initial comes first, its letter is remembered and
  the given name met later draws a surrogate with that letter, unless it already has one (then
  the two stay apart). So a given name's surrogate can depend on an initial met before it; the
  vault keeps both across runs.
* Dates move by the per-patient offset of :mod:`domainfm.deid.dates` in their own format; a date
  without a year is read in the note's year (``note_year``), seasons move with the shift.
* Ages above 89 become ``90+`` (``90-plus`` before a hyphen: ``90-plus-year-old``; in words,
  ``ninety-two`` or ``nonagenarian``, ``ninety-plus``), every one in the span (``92 and 93``,
  ``91-93`` -> ``90+``); an age already written as the aggregate (``90+``, ``in her 90s``)
  stays. Younger ages, every one in the span, move down by a per-patient 1-2 years, which keeps
  them clinically plausible while breaking exact-match linkage: one direction keeps a patient's
  ages in order and never carries one across the 89 cut-off (0, which has no younger age,
  becomes 1). A decade below 90 (``in her 40s``) is already coarse and stays. An age in months,
  weeks or days is read in its unit: ``120 months`` moves like any age under 90, ``1200 months``
  becomes ``90+ years``.
* Phone, fax, SSN, MRN, IDs, ZIP codes, codes and quantities keep their character pattern:
  each digit becomes a digit, each letter a letter of the same case, punctuation stays. A phone
  number's leading country code (``+1 617-...``, ``+44 20 ...``, ``0044 20 ...``, ``011 44 20 ...``,
  the ``1`` of ``1-800-...``), the trunk ``0`` of a national number (``020 7946 0018``) and its
  extension marker stay. A phone or
  fax number's fake digits are chosen once per patient for its digits (without the country code,
  the trunk ``0`` and the extension), so ``(617) 555-0143``, ``617.555.0143`` and ``+1 617 555
  0143`` become one fake number, each in its own shape, as do ``020 7946 0018`` and ``+44 20 7946
  0018``; two different numbers never share one, and a fake number opens with ``0`` only where
  the original does.
  An SSN never comes out in a range the SSA does not issue (``000``, ``666``, ``9xx``, group
  ``00``, serial ``0000``), nor a ZIP in one of the 3-digit areas Safe Harbor blanks.
* E-mails, URLs, IPs, addresses, cities, states, facilities and organisations get Faker
  equivalents; a facility that names a hospital becomes ``<City> General Hospital``-like.
* Unknown labels get the pattern-preserving replacement.

A surrogate is never equal to its original and never contains it (case-insensitively), nor
any word of at least 3 characters of the other PHI of the same document (``avoid``), nor an
original this generator (or its vault) has already met in the same patient scope (a relative's
real surname from an earlier note), so a replacement cannot re-introduce PHI that was removed
elsewhere. (An original met only in a later note cannot be foreseen.)
"""

from __future__ import annotations

import hashlib
import hmac
import random
import re
import unicodedata
from collections import OrderedDict
from functools import lru_cache
from typing import TYPE_CHECKING, Collection, Sequence

from domainfm.deid.dates import derive_offset, shift_date_text
from domainfm.deid.engine import visible_text
from domainfm.deid.recognizers.vocab import SURNAME_PARTICLES
from domainfm.errors import ConfigError

if TYPE_CHECKING:
    from domainfm.deid.vault import Vault

__all__ = ["CANONICAL_LABELS", "SurrogateGenerator", "canonical_label", "normalize_value", "scope_for"]

CANONICAL_LABELS = frozenset({
    "NAME", "PATIENT", "RELATIVE", "DOCTOR", "DATE", "AGE", "PHONE", "FAX", "EMAIL", "SSN", "ID",
    "MRN", "URL", "IP", "ADDRESS", "STREET", "CITY", "STATE", "ZIP", "FACILITY", "ORG", "LOCATION",
    "NATIONALITY", "OCCUPATION", "CODE", "QUANTITY", "MISC", "COUNTRY",
})
# Names other tools use for the same things (presidio, i2b2/n2c2, PhysioNet, TAB).
_ALIASES = {
    "PERSON": "NAME", "PER": "NAME", "PTNAME": "PATIENT", "HCPNAME": "DOCTOR",
    "RELATIVEPROXYNAME": "RELATIVE", "USERNAME": "ID", "DATEYEAR": "DATE", "DATETIME": "DATE",
    "DATE_TIME": "DATE", "PHONE_NUMBER": "PHONE", "TELEPHONE": "PHONE", "EMAIL_ADDRESS": "EMAIL",
    "US_SSN": "SSN", "IP_ADDRESS": "IP", "MEDICALRECORD": "MRN", "MEDICAL_RECORD": "MRN",
    "IDNUM": "ID", "ACCOUNT": "ID", "LICENSE": "ID", "DEVICE": "ID", "HEALTHPLAN": "ID",
    "BIOID": "ID", "VEHICLE": "ID", "US_DRIVER_LICENSE": "ID", "US_PASSPORT": "ID",
    "US_BANK_NUMBER": "ID", "CREDIT_CARD": "ID", "IBAN_CODE": "ID", "IBAN": "ID", "HEALTH_PLAN": "ID",
    "US_ITIN": "ID", "MEDICAL_LICENSE": "ID", "UK_NHS": "ID", "UUID": "ID", "US_MBI": "ID", "UK_NINO": "ID",
    "ABA_ROUTING_NUMBER": "ID", "CRYPTO": "ID", "MAC_ADDRESS": "ID", "ZIPCODE": "ZIP",
    "ZIP_CODE": "ZIP", "HOSPITAL": "FACILITY", "ORGANIZATION": "ORG", "ORGANISATION": "ORG",
    "COMPANY": "ORG", "LOC": "LOCATION", "GPE": "LOCATION", "NRP": "NATIONALITY",
    "NORP": "NATIONALITY", "DEM": "MISC", "OTHER": "MISC", "PROFESSION": "OCCUPATION", "STREET_ADDRESS": "STREET",
    "DOMAIN_NAME": "URL",
}
_NAME_LABELS = frozenset({"NAME", "PATIENT", "RELATIVE", "DOCTOR"})
_PATTERN_LABELS = frozenset({"PHONE", "FAX", "SSN", "ID", "MRN", "ZIP", "CODE", "QUANTITY", "MISC"})

_TITLES_MALE = {"mr", "sir", "mister"}
_TITLES_FEMALE = {"mrs", "ms", "miss", "madam", "mme"}
_TITLES = _TITLES_MALE | _TITLES_FEMALE | {"dr", "prof", "doctor", "rev", "nurse", "mx"}
_SUFFIXES = {"jr", "sr", "ii", "iii", "iv", "md", "do", "rn", "np", "pa", "phd", "dds", "esq"}
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
_ALNUM_TOKEN = re.compile(r"[^\W_]{3,}")
_FACILITY_KINDS = (
    (re.compile(r"rehab", re.I), ("Rehabilitation Center", "Rehab Hospital")),
    (re.compile(r"nursing|care home|hospice", re.I), ("Nursing Home", "Care Center")),
    (re.compile(r"clinic", re.I), ("Clinic", "Family Clinic")),
    (re.compile(r"medical|center|centre|health", re.I), ("Medical Center", "Health Center")),
    (re.compile(r"hosp|general|memorial|regional|infirmary|mercy|saint|st\b|holy|sinai", re.I),
     ("General Hospital", "Memorial Hospital", "Regional Hospital", "Community Hospital")),
)
_NATIONALITIES = ("American", "Canadian", "Mexican", "Brazilian", "Irish", "Scottish", "German",
                  "Dutch", "Polish", "Italian", "Spanish", "Portuguese", "Greek", "Swedish",
                  "Norwegian", "Kenyan", "Nigerian", "Indian", "Filipino", "Vietnamese",
                  "Korean", "Japanese", "Australian", "Chilean", "Peruvian")
# Parts of e-mail addresses and URLs that identify nobody; avoiding them would rule out every
# realistic fake address.
_TECHNICAL_TOKENS = frozenset({"com", "org", "net", "edu", "gov", "www", "http", "https", "html", "htm",
                               "info", "biz", "mail", "email"})
# Words of multi-word PHI that identify nobody on their own ("Holy Cross Hospital" may become
# "Dover General Hospital"). A detection consisting of one such word is still avoided.
_GENERIC_WORDS = frozenset({
    "hospital", "medical", "center", "centre", "general", "memorial", "regional", "community",
    "clinic", "health", "healthcare", "care", "rehabilitation", "rehab", "nursing", "home",
    "university", "the", "and", "street", "avenue", "road", "suite", "apt", "drive", "lane",
    "court", "boulevard", "saint", "family", "county", "city", "north", "south", "east", "west",
})
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# a NAME span that is one word of two or three capitals and no listed name: initials ("JS", "MKT")
_UNDOTTED_INITIALS = re.compile(r"[A-Z]{2,3}")

_MAX_CACHE = 200_000
_ATTEMPTS = 12


class _PatientMemory:
    """What this run gave each patient: surrogates by ``(scope, kind, value)`` and the surrogates
    in use per ``(scope, kind)``. Past ``limit`` surrogates it forgets whole patients, the least
    recently met first, never the one being replaced and never part of one.

    Clearing everything at the limit (as before) forgot the patient of the note being written too:
    a collision re-drawn before the clear was drawn differently after it (one original, two
    surrogates within a patient), and an earlier original of the patient could come back as another
    name's surrogate. A patient met again after being forgotten is read from the vault when there
    is one; without one, determinism gives the same surrogates except where a collision was re-drawn.
    """

    def __init__(self, limit: int = _MAX_CACHE):
        self.limit = limit
        self._scopes: OrderedDict[str, tuple[dict[tuple[str, str], str], dict[str, set[str]]]] = OrderedDict()
        self._size = 0

    def get(self, key: tuple[str, str, str]) -> str | None:
        entry = self._scopes.get(key[0])
        if entry is None:
            return None
        self._scopes.move_to_end(key[0])
        return entry[0].get(key[1:])

    def __contains__(self, key: tuple[str, str, str]) -> bool:
        entry = self._scopes.get(key[0])
        return entry is not None and key[1:] in entry[0]

    def put(self, key: tuple[str, str, str], value: str) -> None:
        values = self._entry(key[0])[0]
        self._size += key[1:] not in values
        values[key[1:]] = value
        while self._size > self.limit and len(self._scopes) > 1:
            _, (forgotten, _) = self._scopes.popitem(last=False)  # the patient met longest ago
            self._size -= len(forgotten)

    def used(self, scope: str, kind: str) -> set[str]:
        return self._entry(scope)[1].setdefault(kind, set())

    def _entry(self, scope: str):
        entry = self._scopes.get(scope)
        if entry is None:
            entry = self._scopes[scope] = ({}, {})
        self._scopes.move_to_end(scope)
        return entry


def canonical_label(label: str) -> str:
    """Map a detector's label to the canonical set (``PERSON`` -> ``NAME``); unknown -> ``MISC``."""
    key = re.sub(r"[\s-]+", "_", str(label).strip().upper())
    key = _ALIASES.get(key, key)
    return key if key in CANONICAL_LABELS else "MISC"


def normalize_value(text: str) -> str:
    """The lookup form of a PHI string: NFKC, case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def scope_for(doc_id: str, meta: dict | None) -> str:
    """``patient:<meta.patient_id>`` when the document names its patient, else ``doc:<id>``."""
    patient = (meta or {}).get("patient_id")
    if patient is not None and str(patient).strip():
        return f"patient:{str(patient).strip()}"
    return f"doc:{doc_id}"


def avoid_tokens(texts: Collection[str]) -> frozenset[str]:
    """Case-folded words (>= 3 characters) of a document's detected PHI, for ``avoid=``.

    Generic words of multi-word PHI (hospital, center, street, ...) are left out so facility
    and address surrogates can stay realistic; a one-word detection is always avoided.
    """
    tokens: set[str] = set()
    for text in texts:
        words = [t.casefold() for t in _ALNUM_TOKEN.findall(text)]
        if len(words) == 1 and text.strip().casefold() == words[0]:
            tokens.add(words[0])  # a detection that is one word: that word itself is PHI
        else:
            tokens.update(w for w in words if w not in _GENERIC_WORDS)
    return frozenset(tokens - _TECHNICAL_TOKENS)


@lru_cache(maxsize=8)
def name_lists(locales: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Male first names, female first names and last names of Faker's ``locales`` (in that
    order, duplicates once; a locale without gendered lists gives its first names to both).
    Cached: every generator (one per augmented copy, one per worker) reads the same lists."""
    from domainfm.deid.recognizers.vocab import faker_person_names

    if not locales or not all(isinstance(x, str) for x in locales):
        raise ConfigError(f"name_locales must list Faker locales, e.g. [en_US, pl_PL]; got {list(locales)!r}")
    male: dict[str, None] = {}
    female: dict[str, None] = {}
    last: dict[str, None] = {}
    for locale in locales:
        try:
            lists = {attr: [n for n in faker_person_names(locale, attr) if n.replace("-", "").replace("'", "").isalpha()]
                     for attr in ("first_names", "first_names_male", "first_names_female", "last_names")}
        except ImportError:
            raise ConfigError(f"name_locales: Faker has no person names for locale {locale!r} "
                              "(e.g. en_US, de_DE, pl_PL, fi_FI)") from None
        male.update(dict.fromkeys(lists["first_names_male"] or lists["first_names"]))
        female.update(dict.fromkeys(lists["first_names_female"] or lists["first_names"]))
        last.update(dict.fromkeys(lists["last_names"]))
    if not (male and female and last):
        raise ConfigError(f"name_locales {list(locales)!r} hold no first and last names")
    return tuple(male), tuple(female), tuple(last)


# the kinds whose surrogates come from Faker's place lists (``place_locales``)
_PLACE_KINDS = frozenset({"LOCATION", "CITY", "STREET", "ADDRESS", "FACILITY"})


def check_place_locales(locales: tuple[str, ...]) -> None:
    """A config error unless ``locales`` are locales Faker knows (checked by name: building the
    Fakers is left to the generators that use them)."""
    from faker.config import AVAILABLE_LOCALES

    if not locales or not all(isinstance(x, str) and x for x in locales):
        raise ConfigError(f"place_locales must list Faker locales, e.g. [en_US, de_DE]; got {list(locales)!r}")
    for locale in locales:
        if locale not in AVAILABLE_LOCALES:
            raise ConfigError(f"place_locales: Faker has no locale {locale!r} (e.g. en_US, de_DE, pl_PL, fi_FI)")


def place_fakers(locales: tuple[str, ...]) -> tuple:
    """One Faker per locale, for place surrogates of many countries (``place_locales``). Not
    cached: a Faker is re-seeded per value, so generators (one per worker) must not share one."""
    from faker import Faker

    check_place_locales(locales)
    return tuple(Faker(locale) for locale in locales)


class SurrogateGenerator:
    """Deterministic, format-preserving surrogates for PHI.

    Args:
        secret: at least 16 bytes; the same secret gives the same surrogates. Keep it secret:
            with it, anyone can test guesses of originals against surrogates.
        vault: optional :class:`~domainfm.deid.vault.Vault` that stores the mapping and the
            date offsets (cross-run consistency, reverse lookup).
        locale: Faker locale for places and companies.
        name_locales: Faker locales whose first- and last-name lists replace names (default
            the US lists). Several locales give names of many origins: mention replacement
            (``augment.name_locales``) uses this so a tagger meets names it has never seen.
        place_locales: Faker locales whose cities and streets replace places, one locale drawn
            per value (default: ``locale`` alone). Mention replacement
            (``augment.place_locales``) uses it as it uses ``name_locales``.

    Not thread-safe (one private Faker instance is re-seeded per value): use one generator
    per worker; outputs are identical across workers because they depend only on the seeds.

    Example:
        >>> gen = SurrogateGenerator(b"0" * 32)
        >>> gen.surrogate("John Smith", "PATIENT", "patient:7").split()[1] == \\
        ...     gen.surrogate("Mr. Smith", "PATIENT", "patient:7").split()[1]
        True
    """

    def __init__(self, secret: bytes, vault: Vault | None = None, *, locale: str = "en_US",
                 name_locales: Sequence[str] = ("en_US",), place_locales: Sequence[str] | None = None):
        if not isinstance(secret, (bytes, bytearray)) or len(secret) < 16:
            raise ConfigError("SurrogateGenerator secret must be at least 16 bytes (e.g. the vault key)")
        from faker import Faker

        self._key = hmac.new(bytes(secret), b"domainfm-surrogates-v1", hashlib.sha256).digest()
        self.vault = vault
        self._fake = Faker(locale)
        self._first_male, self._first_female, self._last = name_lists(tuple(name_locales))
        self._place_fakers = place_fakers(tuple(place_locales)) if place_locales else ()
        self._male = frozenset(n.casefold() for n in self._first_male)
        self._female = frozenset(n.casefold() for n in self._first_female)
        self._surnames = frozenset(n.casefold() for n in self._last)
        # what an initial beside a surname may become: the given name met later draws a
        # surrogate starting with it, from whichever list (male, female, last names) it uses
        self._paired_letters = sorted({n[:1].upper() for n in self._first_male}
                                      & {n[:1].upper() for n in self._first_female}
                                      & {n[:1].upper() for n in self._last}) or list(_LETTERS)
        self._memory = _PatientMemory()
        self._shifts: dict[str, int] = {}

    @classmethod
    def from_env(cls, vault: Vault | None = None, env: str = "DOMAINFM_VAULT_KEY", **kwargs) -> SurrogateGenerator:
        """A generator keyed by the secret in ``env`` (the vault key by default)."""
        from domainfm.deid.vault import secret_from_env

        return cls(secret_from_env(env), vault, **kwargs)

    # -- public ---------------------------------------------------------------------------------

    def surrogate(self, text: str, label: str, scope: str, *, avoid: Collection[str] = (),
                  note_year: int | None = None, day_first: bool | None = None) -> str:
        """The replacement for ``text`` detected as ``label`` in patient ``scope``.

        Args:
            text: the original PHI string.
            label: its label (canonical or an alias; unknown labels are pattern-preserved).
            scope: ``scope_for(doc.id, doc.meta)``.
            avoid: case-folded words that must not appear in a newly generated surrogate
                (see :func:`avoid_tokens`).
            note_year: for a DATE, the year its dates written without one are read in (the
                note's year; ``None``: the leap year 2000). See :mod:`domainfm.deid.dates`.
            day_first: for a DATE, whether the note writes numeric dates day first
                (``None``: as the date itself shows, else month first).
        """
        # whitespace around a value is the note's, not the value's (a span or a meta value read with
        # its leading space): " 6175550143" and "6175550143" are one number with one fake, each
        # keeping its own spacing, where the memo would hand the second the first's
        core = text.strip()
        if core and core != text:
            lead = len(text) - len(text.lstrip())
            return text[:lead] + self.surrogate(core, label, scope, avoid=avoid, note_year=note_year,
                                                day_first=day_first) + text[lead + len(core):]
        kind = canonical_label(label)
        avoid = frozenset(avoid)
        # A zero-width space or an ANSI escape inside a name or an MRN is not part of the value:
        # "Okon<ZWSP>kwo" takes the surrogate "Okonkwo" takes, and no escape sequence survives with
        # its parameters rewritten as if they were letters and digits.
        # Composed (NFC) so "Jose" + a combining accent is the token "José", with José's surrogate,
        # not "Jose"'s surrogate with the original's accent left on its last letter.
        visible = unicodedata.normalize("NFC", visible_text(text)[0])
        if not any(c.isalnum() for c in visible):
            return text  # only spaces/punctuation: nothing identifying to replace
        text = visible
        if kind in _NAME_LABELS:
            out = self._name(text, scope, avoid)
        elif kind == "DATE":
            out = self._date(text, scope, avoid, note_year, day_first)
        elif kind == "AGE":
            out = self._age(text, scope, avoid)
        else:
            out = self._mapped(text, kind, scope, avoid)
        if normalize_value(out) == normalize_value(text) and not (kind == "AGE" and _is_age_aggregate(text)):
            out = self._pattern(text, self._rng(scope, kind, text, 99), avoid)
        return out

    def date_offset(self, scope: str) -> int:
        """The secret per-patient date shift in days (stored in the vault when there is one)."""
        days = self._shifts.get(scope)
        if days is not None:
            return days
        if self.vault is not None:
            days = self.vault.get_shift(scope)
        if days is None:
            days = derive_offset(self._digest("date-shift", scope))
            if self.vault is not None:
                self.vault.put_shift(scope, days)
        self._shifts[scope] = days
        return days

    # -- seeding ----------------------------------------------------------------------------

    def _digest(self, *parts: str) -> bytes:
        data = "\x1f".join(parts).encode("utf-8", errors="surrogatepass")
        return hmac.new(self._key, data, hashlib.sha256).digest()

    def _rng(self, scope: str, kind: str, value: str, attempt: int) -> random.Random:
        seed = int.from_bytes(self._digest(scope, kind, normalize_value(value), str(attempt))[:16], "big")
        return random.Random(seed)

    def _faker(self, scope: str, kind: str, value: str, attempt: int, places: bool = True):
        digest = self._digest("faker", scope, kind, normalize_value(value), str(attempt))
        fake = self._fake
        if places and self._place_fakers and kind in _PLACE_KINDS:
            fake = self._place_fakers[digest[16] % len(self._place_fakers)]
        fake.seed_instance(int.from_bytes(digest[:16], "big"))
        return fake

    # -- consistent mapping (cache -> vault -> generate) -----------------------------------------

    def _lookup_or_make(self, kind: str, text: str, scope: str, avoid: frozenset[str], make) -> str:
        norm = normalize_value(text)
        key = (scope, kind, norm)
        hit = self._memory.get(key)
        if hit is not None:
            return hit
        if self.vault is not None:
            hit = self.vault.get_surrogate(scope, kind, norm)
        if hit is None:
            used = self._memory.used(scope, kind)
            candidate = None
            for attempt in range(_ATTEMPTS):
                candidate = make(attempt)
                cand_norm = normalize_value(candidate)
                if self._acceptable(candidate, norm, avoid) and cand_norm not in used and not (
                    self.vault is not None and self.vault.surrogate_in_use(scope, kind, cand_norm)
                ) and not self._is_original(scope, kind, cand_norm):
                    break
            else:
                candidate = self._pattern(text, self._rng(scope, kind, text, _ATTEMPTS), avoid)
            hit = candidate
            used.add(normalize_value(hit))
            if self.vault is not None:
                self.vault.put_surrogate(scope, kind, norm, text, hit, normalize_value(hit))
        self._remember(key, hit)
        return hit

    def _is_original(self, scope: str, kind: str, norm: str) -> bool:
        """Whether ``norm`` is itself an original of this patient (a relative's real surname from
        an earlier note): as another name's surrogate it would put that PHI back in the output."""
        if (scope, kind, norm) in self._memory:
            return True
        return self.vault is not None and self.vault.get_surrogate(scope, kind, norm) is not None

    def _remember(self, key: tuple[str, str, str], value: str) -> None:
        self._memory.put(key, value)  # bounded: whole patients forgotten, least recent first

    @staticmethod
    def _acceptable(candidate: str, norm_original: str, avoid: frozenset[str]) -> bool:
        cand = normalize_value(candidate)
        if not cand or cand == norm_original:
            return False
        if len(norm_original) >= 3 and norm_original in cand:
            return False
        return not any(t.casefold() in avoid for t in _ALNUM_TOKEN.findall(candidate))

    # -- names ---------------------------------------------------------------------------------

    def _name(self, text: str, scope: str, avoid: frozenset[str]) -> str:
        words = list(_WORD.finditer(text))
        if len(words) == 1 and _UNDOTTED_INITIALS.fullmatch(words[0].group(0)):
            low = words[0].group(0).casefold()
            if low not in self._male and low not in self._female and low not in self._surnames:
                # "JS" signing a line is a person's initials: other initials, not a surname ("Holloway")
                w = words[0]
                return text[:w.start()] + self._initial(w.group(0), scope) + text[w.end():]
        lowered = [w.group(0).casefold().rstrip(".") for w in words]
        title_gender = None
        roles: list[str] = []
        for i, (w, low) in enumerate(zip(words, lowered)):
            after = text[w.end():w.end() + 1]
            if i == 0 and low in _TITLES and (len(words) > 1):
                roles.append("title")
                title_gender = "M" if low in _TITLES_MALE else "F" if low in _TITLES_FEMALE else title_gender
            elif i > 0 and low in _SUFFIXES and (len(low) > 1 or after == ".") and i == len(words) - 1:
                roles.append("suffix")
            elif len(w.group(0)) == 1 or (w.group(0).isupper() and len(w.group(0)) <= 2 and after == "."):
                roles.append("initial")
            elif w.group(0).islower() and low in SURNAME_PARTICLES and i < len(words) - 1:
                # "Van der Holt", "de Souza": a particle names no one and stays as written; a
                # surname in its place ("Reed mcdaniel Obrien") reads as two names
                roles.append("title")
            else:
                roles.append("word")
        surname = _surname_index(text, words, roles)
        family = None if surname is None else normalize_value(_split_possessive(words[surname].group(0))[0])
        out: list[str] = []
        pos = 0
        for i, w in enumerate(words):
            out.append(_scramble_non_letters(text[pos:w.start()], self._rng(scope, "NAME", text, i)))
            token = w.group(0)
            given = family is not None and i != surname
            if roles[i] in ("title", "suffix"):
                out.append(token)
            elif roles[i] == "initial":
                out.append(self._initial(token, scope, family if given else None))
            else:
                # "Smith's" is "Smith" with a possessive: the same surrogate, the 's kept
                base, possessive = _split_possessive(token)
                letter = self._given_initial(scope, family, base[:1]) if given else None
                part = self._name_part(base, scope, avoid, title_gender, letter)
                if given:
                    self._pair_initial(scope, family, base[:1], part[:1])
                out.append(_case_like(part, base) + possessive)
            pos = w.end()
        out.append(_scramble_non_letters(text[pos:], self._rng(scope, "NAME", text, len(words))))
        return "".join(out)

    def _name_part(self, token: str, scope: str, avoid: frozenset[str], title_gender: str | None,
                   initial: str | None = None) -> str:
        """The surrogate of one name token; a new one starts with ``initial`` when a name of the
        list it draws from does (the letter an initial of this person already became)."""
        low = token.casefold()
        is_first = low in self._male or low in self._female
        # One mapping per token whatever its role, so "Smith" is the same in every mention;
        # the list it draws from depends only on the token (first-name list or not).
        gender = None
        if is_first:
            in_m, in_f = low in self._male, low in self._female
            gender = "M" if in_m and not in_f else "F" if in_f and not in_m else title_gender

        def make(attempt: int) -> str:
            rng = self._rng(scope, "NAME_PART", token, attempt)
            if is_first:
                g = gender or ("M" if rng.random() < 0.5 else "F")
                names = self._first_male if g == "M" else self._first_female
            else:
                names = self._last
            if initial is not None and attempt < _ATTEMPTS // 2:
                # later attempts draw from the whole list: a rare letter must not end in scrambled letters
                names = [n for n in names if n[:1].casefold() == initial] or names
            return rng.choice(names)

        return self._lookup_or_make("NAME_PART", token, scope, avoid, make)

    def _initial(self, token: str, scope: str, family: str | None = None) -> str:
        """Another letter for each letter of an initial. Beside a surname (``family``, normalised),
        a one-letter initial becomes the first letter of the surrogate of the given name with
        that initial and surname met before ("John Smith" -> "Carl Moore", so "J. Smith" -> "C.
        Moore"), even when that is its own letter. An initial met first draws a letter that
        starts names of every list and is remembered for the given name met later (see
        :meth:`_name_part`)."""
        pairs = family is not None and len(token) == 1
        out = self._given_initial(scope, family, token) if pairs else None
        if out is None:
            rng = self._rng(scope, "INITIAL", token, 0)
            pool = self._paired_letters if pairs else _LETTERS
            # no letter stays in its place ("JS" -> "KS" would keep half of the initials)
            out = "".join(rng.choice([c for c in pool if c != letter.upper()]) for letter in token)
            if pairs:
                self._pair_initial(scope, family, token, out)
        return out.upper() if token.isupper() else out.lower() if token.islower() else out

    def _given_initial(self, scope: str, family: str, letter: str) -> str | None:
        """The (case-folded) letter the given names with initial ``letter`` and surname ``family``
        start with in their surrogates, once one was met (this run, or the vault)."""
        key = (scope, "GIVEN_INITIAL", f"{family} {letter.casefold()}")
        hit = self._memory.get(key)
        if hit is None and self.vault is not None:
            hit = self.vault.get_surrogate(*key)
            if hit is not None:
                self._remember(key, hit)
        return hit

    def _pair_initial(self, scope: str, family: str, letter: str, surrogate_letter: str) -> None:
        """Remember that initial ``letter`` beside surname ``family`` became ``surrogate_letter``
        (the first pairing wins: two given names of one letter and surname share it)."""
        if self._given_initial(scope, family, letter) is not None:
            return
        key = (scope, "GIVEN_INITIAL", f"{family} {letter.casefold()}")
        folded = surrogate_letter.casefold()
        self._remember(key, folded)
        if self.vault is not None:
            self.vault.put_surrogate(*key, letter, folded, folded)

    # -- dates and ages -------------------------------------------------------------------------

    def _date(self, text: str, scope: str, avoid: frozenset[str], note_year: int | None,
              day_first: bool | None = None) -> str:
        # not cached by its text: "3/5" moves to another month-and-day in a note of another year
        # (or of another convention: "03/05" is 3 May in a note that writes "25/04/2019")
        rng = self._rng(scope, "DATE", text, 0)
        shifted = shift_date_text(text, self.date_offset(scope), rng, note_year=note_year, day_first=day_first)
        if shifted is None or normalize_value(shifted) == normalize_value(text):
            return self._pattern(text, rng, avoid)
        return shifted

    def _age(self, text: str, scope: str, avoid: frozenset[str]) -> str:
        numbers = list(_AGE_NUMBER.finditer(text))
        if not numbers:
            # the detectors find ages without digits only above 89 ("ninety-two", "nonagenarian"):
            # Safe Harbor's aggregate, in words, in the original's case
            if re.search(r"ninet(?:y|ies)|hundred|nonagenarian|centenarian", text, re.IGNORECASE):
                return "NINETY-PLUS" if text.isupper() else "Ninety-plus" if text[:1].isupper() else "ninety-plus"
            return self._pattern(text, self._rng(scope, "AGE", text, 0), avoid)
        # One per-patient rule for every number of the span (not only its first: "45-47" moved
        # to "47-47", and the 88 of "88 and 91" was kept as written). Ages 90 and over become
        # Safe Harbor's aggregate; younger ones move *down* by the patient's 1-2 years. One
        # direction keeps ages in order (a shift up had to turn back below 90, so 88 and 89 came
        # out as 89 and 88) and never carries an age across the 89 cut-off either way.
        years = 1 + self._digest("age-shift", scope)[0] % 2
        halves = _half_year_numbers(text, numbers)
        out = text
        for i in reversed(range(len(numbers))):
            m = numbers[i]
            if i in halves:
                continue
            if _age_in_years(text, numbers, i) <= 89:  # months, weeks and days move by the same count
                if not _is_decade(text, m):  # "in her 40s" is already ten years wide: it stays
                    out = out[:m.start()] + str(_younger(_whole_years(m), years)) + out[m.end("whole"):]
                continue
            # Every age over 89 in the span is aggregated ("92 and 93", "91.5"), not only the
            # first; one already written as an aggregate ("90+", "90-plus", "90s", "90 or
            # older") keeps its marker instead of gaining a second one ("90++").
            tail, head = text[m.end():], text[:m.start()]
            if i + 1 < len(numbers) and _age_in_years(text, numbers, i + 1) > 89 and _AGE_RANGE.fullmatch(
                    text[m.end():numbers[i + 1].start()]):
                # "91-93" -> "90+": one aggregate for the range (the upper end is already one)
                out = out[:m.start()] + out[numbers[i + 1].start():]
                continue
            half = _AGE_HALF.match(tail)
            if half:
                tail = tail[half.end():]
            unit = _AGE_UNIT.match(tail)
            if unit:
                # "1200 months": the aggregate is in years ("90+ months" would be seven and a half)
                out = out[:m.start()] + "90+ years" + out[m.end() + (half.end() if half else 0) + unit.end():]
                continue
            if _AGE_AGGREGATE_TAIL.match(tail) or _AGE_AGGREGATE_HEAD.search(head):
                new = "90"
            else:
                new = "90-plus" if tail[:1] == "-" and not tail[1:2].isdigit() else "90+"
            out = out[:m.start()] + new + out[m.end() + (half.end() if half else 0):]
        return out

    # -- everything else ------------------------------------------------------------------------

    def _mapped(self, text: str, kind: str, scope: str, avoid: frozenset[str]) -> str:
        if kind in ("PHONE", "FAX"):
            parts = _phone_parts(text)
            if parts[0]:
                return self._phone(text, kind, scope, avoid, parts)
        if kind in _PATTERN_LABELS:
            def make(attempt: int) -> str:
                rng = self._rng(scope, kind, text, attempt)
                out = self._pattern(text, rng, frozenset())
                # an SSN no one can hold (000-, 666-, 9xx-, -00-, -0000) or a ZIP in an area
                # Safe Harbor would have blanked is drawn again from the same digits' source, so
                # a surrogate that was plausible before stays what it was
                for _ in range(_ATTEMPTS):
                    if not _implausible(kind, out):
                        break
                    out = self._pattern(text, rng, frozenset())
                return out
        else:
            def make(attempt: int) -> str:
                fake = self._faker(scope, kind, text, attempt)
                try:
                    out = self._fake_for(kind, text, fake, attempt)
                except AttributeError:  # a place locale without this list (state_abbr...): ``locale``'s
                    if fake is self._fake:
                        raise
                    out = self._fake_for(kind, text, self._faker(scope, kind, text, attempt, places=False), attempt)
                if "\n" not in text:  # some locales write a street on two lines
                    out = out.replace("\n", " ")
                return _case_like_text(out, text)
        return self._lookup_or_make(kind, text, scope, avoid, make)

    def _phone(self, text: str, kind: str, scope: str, avoid: frozenset[str],
               parts: tuple[list[int], list[int], frozenset[int]]) -> str:
        """A phone or fax number with the fake digits of its number in every format.

        The number's digits (after a country code, before an extension) are mapped once per
        scope (kind ``PHONE_DIGITS``, shared by phones and faxes), so "(617) 555-0143",
        "617.555.0143" and "+1 617 555 0143" take the same fake digits, each in its own shape; an
        extension takes digits of its own. Each written form is also stored as itself (as every
        other value is), so reverse lookups and vaults written before the digits were shared
        keep working: a form found there keeps its surrogate, and lends its digits to the
        number's other forms when the number has none yet.
        """
        norm = normalize_value(text)
        key = (scope, kind, norm)
        hit = self._memory.get(key)
        if hit is not None:
            return hit
        number, extension, keep = parts
        digits = "".join(_digit_of(text[i]) for i in number)
        digits_key = (scope, _PHONE_DIGITS, digits)
        fake = self._memory.get(digits_key)
        if fake is None and self.vault is not None:
            fake = self.vault.get_surrogate(*digits_key)
        stored = self.vault.get_surrogate(scope, kind, norm) if self.vault is not None else None
        if stored is not None:
            if fake is None:  # a form stored before its digits were: they become the number's
                lent = "".join(_digit_of(stored[i]) for i in number if i < len(stored))
                if (len(lent) == len(digits) and lent.isascii() and lent.isdigit() and lent != digits
                        and not self._digits_taken(scope, lent)):
                    self._keep_digits(scope, digits, lent)
            self._remember(key, stored)
            self._memory.used(scope, kind).add(normalize_value(stored))
            return stored
        ext_digits = "".join(_digit_of(text[i]) for i in extension)

        def render(number_fake: str, attempt: int) -> str:
            # letters beside the number ("call x4432") as any pattern; an extension of its own
            return _render_phone(text, number, number_fake, extension,
                                 self._rng(scope, _PHONE_DIGITS, f"{digits} x{ext_digits}", attempt), keep,
                                 self._rng(scope, kind, text, attempt))

        if fake is None:
            for attempt in range(_ATTEMPTS + 1):
                rng = self._rng(scope, _PHONE_DIGITS, digits, attempt)
                fake = "".join(str(rng.randrange(10)) for _ in digits)
                # a number opens with "0" only where it did: no area code or number after a trunk
                # "0" does, and "0" + "0..." reads as the international prefix
                if attempt == _ATTEMPTS or fake != digits and (fake[0] != "0" or digits[0] == "0") \
                        and not self._digits_taken(scope, fake) and self._acceptable(render(fake, 0), norm, avoid):
                    break
            self._keep_digits(scope, digits, fake)
        else:
            self._memory.used(scope, _PHONE_DIGITS).add(fake)
            self._remember(digits_key, fake)
        used = self._memory.used(scope, kind)
        for attempt in range(_ATTEMPTS):
            # drawn again only where two extensions of one number would come out the same
            out = render(fake, attempt)
            taken = normalize_value(out) in used or (
                self.vault is not None and self.vault.surrogate_in_use(scope, kind, normalize_value(out)))
            if not taken or not extension:
                break
        used.add(normalize_value(out))
        if self.vault is not None:
            self.vault.put_surrogate(scope, kind, norm, text, out, normalize_value(out))
        self._remember(key, out)
        return out

    def _digits_taken(self, scope: str, fake: str) -> bool:
        """Whether fake number digits are another number's of ``scope``, or a real number of it."""
        return (fake in self._memory.used(scope, _PHONE_DIGITS)
                or self._is_original(scope, _PHONE_DIGITS, fake)
                or (self.vault is not None and self.vault.surrogate_in_use(scope, _PHONE_DIGITS, fake)))

    def _keep_digits(self, scope: str, digits: str, fake: str) -> None:
        """Remember (and store) that a number's ``digits`` take the fake ``fake`` in ``scope``."""
        self._memory.used(scope, _PHONE_DIGITS).add(fake)
        self._remember((scope, _PHONE_DIGITS, digits), fake)
        if self.vault is not None:
            self.vault.put_surrogate(scope, _PHONE_DIGITS, digits, digits, fake, fake)

    def _fake_for(self, kind: str, text: str, fake, attempt: int) -> str:
        if kind == "EMAIL":
            return f"{fake.user_name()}@{fake.free_email_domain()}"
        if kind == "URL":
            url = fake.url()
            if not re.match(r"(?i)https?://", text):
                url = re.sub(r"^https?://", "", url).rstrip("/")
                if text.lower().startswith("www.") and not url.startswith("www."):
                    url = "www." + url
            return url
        if kind == "IP":
            return fake.ipv6() if ":" in text else fake.ipv4_public()
        if kind == "ADDRESS":
            if "\n" in text:
                return fake.address()
            if "," in text:
                return fake.address().replace("\n", ", ")
            return fake.street_address()
        if kind == "STREET":
            return fake.street_address() if text.strip()[:1].isdigit() else fake.street_name()
        if kind == "CITY":
            return fake.city()
        if kind == "STATE":
            return fake.state_abbr() if len(text.strip().rstrip(".")) <= 3 else fake.state()
        if kind == "COUNTRY":
            return fake.country()
        if kind == "NATIONALITY":
            return fake.random_element(_NATIONALITIES)
        if kind == "OCCUPATION":
            job = fake.job().split(",")[0].lower()  # "taxi driver" -> "lighting technician"
            return job[:1].upper() + job[1:] if text[:1].isupper() else job
        if kind in ("FACILITY", "LOCATION") and attempt < _ATTEMPTS // 2:
            for pattern, suffixes in _FACILITY_KINDS:
                if pattern.search(text):
                    # the kind of place stays, the original's own wording as far as it can:
                    # "Mercy Memorial Hospital" becomes "<city> General Hospital", not "<city>
                    # Memorial Hospital", whose "Memorial" a reader would still see (and a
                    # leakage check still finds)
                    own = {w.casefold() for w in _ALNUM_TOKEN.findall(text)}
                    shared = [len(own & {w.casefold() for w in _ALNUM_TOKEN.findall(x)}) for x in suffixes]
                    fresh = tuple(x for x, n in zip(suffixes, shared) if n == min(shared))
                    return f"{fake.city()} {fake.random_element(fresh)}"
        if kind == "FACILITY":
            return f"{fake.last_name()} {fake.random_element(('Medical Center', 'Clinic', 'Health Center'))}"
        if kind == "ORG":
            return fake.company()
        if kind == "LOCATION":
            stripped = text.strip()
            if stripped[:1].isdigit():
                return fake.street_address()
            if len(stripped) == 2 and stripped.isupper():
                return fake.state_abbr()
            return fake.city()
        return self._pattern(text, fake.random, frozenset())

    def _pattern(self, text: str, rng: random.Random, avoid: frozenset[str]) -> str:
        """Digits -> random digits, letters -> random letters of the same case, the rest kept."""
        for _ in range(_ATTEMPTS):
            out = _pattern_fake(text, rng)
            if out != text and not any(t.casefold() in avoid for t in _ALNUM_TOKEN.findall(out)):
                return out
        return out


_AGE_NUMBER = re.compile(r"(?P<whole>\d+)(?:[.,]\d+)?")
# what follows an age that is already Safe Harbor's aggregate: "90+", "90-plus", "90s", "90 or older"
_AGE_AGGREGATE_TAIL = re.compile(r"\s*\+|-?plus\b|s\b|\s+or\s+(?:older|over|above|more)\b", re.IGNORECASE)
_AGE_AGGREGATE_HEAD = re.compile(r"(?:\b(?:over|above|older\s+than)\s+|>\s*|≥\s*)$", re.IGNORECASE)
_AGE_DECADE_TAIL = re.compile(r"['’]?s\b")
_AGE_RANGE = re.compile(r"\s*(?:-|–|to)\s*", re.IGNORECASE)
# the half year after an age ("93 1/2", "91 and a half", "92½"): the aggregate has no halves
_AGE_HALF = re.compile(r"\s*(?:and\s+)?(?:a\s+half\b|1/2(?![\d/])|½)", re.IGNORECASE)


# a unit after an age's number that is not years: "120 months" is ten years old, not over 89
_AGE_UNIT = re.compile(r"\s*-?\s*(?:(?P<months>months?|mos?|mths?)|(?P<weeks>weeks?|wks?)|(?P<days>days?|dys?))\b",
                       re.IGNORECASE)
_PER_YEAR = {"months": 12, "weeks": 52, "days": 365}


def _whole_years(match: re.Match) -> int:
    return int(match.group("whole"))


def _per_year(text: str, numbers: Sequence[re.Match], i: int) -> int:
    """How many of the unit of age number ``i`` make a year: 1 for years (or no unit), 12 for
    months, 52 for weeks, 365 for days. The unit after a range's last number is the whole
    range's ("100-120 months")."""
    while True:
        m = numbers[i]
        half = _AGE_HALF.match(text, m.end())
        unit = _AGE_UNIT.match(text, half.end() if half else m.end())
        if unit:
            return next(_PER_YEAR[k] for k, v in unit.groupdict().items() if v)
        if i + 1 < len(numbers) and _AGE_RANGE.fullmatch(text[m.end():numbers[i + 1].start()]):
            i += 1
            continue
        return 1


def _age_in_years(text: str, numbers: Sequence[re.Match], i: int) -> int:
    """Age number ``i`` of the span in whole years (its unit read: "120 months" is 10)."""
    return _whole_years(numbers[i]) // _per_year(text, numbers, i)


def _younger(age: int, years: int) -> int:
    """``age`` moved down by ``years``; an age below that becomes 0, and 0 itself 1 (it has no
    younger age: the one place where two ages, 0 and 1 or 2, can change order)."""
    return age - years if age >= years else 0 if age else 1


def _half_year_numbers(text: str, numbers: Sequence[re.Match]) -> set[int]:
    """Indices of the numbers that are the half year after an age ("45 1/2"), not ages."""
    skip: set[int] = set()
    for i, m in enumerate(numbers):
        half = _AGE_HALF.match(text, m.end())
        if half:
            skip.update(j for j in range(i + 1, len(numbers)) if numbers[j].start() < half.end())
    return skip


def _is_decade(text: str, match: re.Match) -> bool:
    """Whether an age below 90 is written as its decade ("40s", "in her 80's")."""
    whole = _whole_years(match)
    return (match.group(0) == match.group("whole") and whole % 10 == 0 and 10 <= whole <= 80
            and _AGE_DECADE_TAIL.match(text, match.end()) is not None)


def _is_age_aggregate(text: str) -> bool:
    """Whether an AGE span is already written as Safe Harbor's "90 or older" aggregate ("90+",
    "90-plus-year-old", "ninety-plus", "in her 90s") or as a decade below it ("in her 40s"): it
    identifies nobody and stays as it is (a fake age in its place would only make the record
    wrong)."""
    numbers = list(_AGE_NUMBER.finditer(text))
    if not numbers:
        return re.fullmatch(r"(?i)\W*ninety[- ]?plus\W*", text) is not None
    halves = _half_year_numbers(text, numbers)
    return all(i in halves or _is_decade(text, m) or m.group(0) == "90" and (
        _AGE_AGGREGATE_TAIL.match(text[m.end():]) or _AGE_AGGREGATE_HEAD.search(text[:m.start()]))
        for i, m in enumerate(numbers))


# 3-digit ZIP prefixes whose area holds 20,000 people or fewer (HHS Safe Harbor guidance, 2000
# census): Safe Harbor writes them as 000, so a surrogate must not look like a ZIP from there.
_RESTRICTED_ZIP3 = frozenset({"000", "036", "059", "063", "102", "203", "556", "692", "790", "821", "823",
                              "830", "831", "878", "879", "884", "890", "893"})
_DIGIT_RUN = re.compile(r"\d{3,}")


def _implausible(kind: str, value: str) -> bool:
    """An SSN surrogate the SSA never issues, or a ZIP surrogate in a restricted 3-digit area."""
    if kind == "SSN":
        digits = "".join(c for c in value if c.isdigit())
        return len(digits) == 9 and (digits[:3] in ("000", "666") or digits[0] == "9"
                                     or digits[3:5] == "00" or digits[5:] == "0000")
    if kind == "ZIP":
        run = _DIGIT_RUN.search(value)
        return run is not None and len(run.group(0)) in (3, 5, 9) and run.group(0)[:3] in _RESTRICTED_ZIP3
    return False


_EXTENSION_MARK = re.compile(r"\b(?:ext|extension)\b|(?<![A-Za-z])x(?=\s?\d)", re.IGNORECASE)


def _extension_marks(text: str) -> frozenset[int]:
    """Indices of the letters of a phone number's extension marker ("ext.", "extension", "x")."""
    return frozenset(i for m in _EXTENSION_MARK.finditer(text) for i in range(m.start(), m.end()))


# a leading country code followed by a separator ("+1 617-...", "+44 20 ...", "+353 1 ..."), also
# after the "00" international prefix ("0044 20 ...", "00 44 20 ...") or North America's "011"
# ("011 44 20 ...", "011-33-1-..."), or the North American "1" before a ten-digit number
# ("+16175550134", "1-800-...", "1 (617) ..."). Run together after "00" or "011" ("00442079460018",
# "01144 20 ...") the code ends where ITU's prefix-free code plan says: "1" and "7" alone, each
# zone's two-digit codes, else three digits; so the number takes the fake of "+44 20 ...". A
# British "0117 496 0000" or "01174960000" is a national number, not "011" and Russia's "7": a
# code glued to "011" and set apart is never "1" or "7" alone, and run together at least nine
# digits follow "011" (a British "011x" number has eight)
_ITU_CODE = r"(?:[17]|2[07]|3[0-469]|4[013-9]|5[1-8]|6[0-6]|8[1246]|9[0-58]|[2-9]\d\d)"
_COUNTRY_CODE = re.compile(r"[^\w+]*(?:(?:\+|00 ?|011[ .-])[1-9]\d{0,2}(?=[ .(-])|011(?![17])" + _ITU_CODE
                           + r"(?=[ .(-])|\+?1(?=[ .-]?\(?\d{3}\)?[ .-]?\d{3}[ .-]?\d{4}(?!\d))"
                           rf"|00{_ITU_CODE}(?=\d{{6,}}(?!\d))|011(?=\d{{9,}}(?!\d)){_ITU_CODE})")


def _country_code_end(text: str) -> int:
    """The end of a phone number's leading country code (0 when it has none)."""
    m = _COUNTRY_CODE.match(text)
    return m.end() if m else 0


# the memo and vault kind of a phone or fax number's digits (see SurrogateGenerator._phone)
_PHONE_DIGITS = "PHONE_DIGITS"
# the fewest digits of a number whose leading "0" is a trunk prefix ("020 7946 0018", "01 234 5678")
# rather than a digit of a short local number or an extension
_TRUNK_MIN_DIGITS = 9


def _phone_parts(text: str) -> tuple[list[int], list[int], frozenset[int]]:
    """Indices of a phone number's digits (after a country code and a trunk prefix, before an
    extension marker), of its extension's digits, and of what stays as written (the code, the
    trunk "0", the marker's letters). A text holding only an extension ("x4432") has those digits
    as its number.

    The trunk "0" that opens a national number ("020 7946 0018", "+44 (0)20 ...") is its
    country's format, not a digit of the number: kept, it leaves "0" + the fake of the digits
    "+44 20 7946 0018" holds, where replaced it gave "460 0763 2666", no UK number and not the
    international form's fake."""
    code_end = _country_code_end(text)
    marks = _extension_marks(text)
    ext_start = min(marks, default=len(text))
    numeric = [i for i, ch in enumerate(text) if i >= code_end and ch.isnumeric()]
    number = [i for i in numeric if i < ext_start]
    extension = [i for i in numeric if i >= ext_start]
    if not number:
        number, extension = extension, []
    trunk = number[:1] if len(number) >= _TRUNK_MIN_DIGITS and _digit_of(text[number[0]]) == "0" else []
    return number[len(trunk):], extension, marks | frozenset(range(code_end)) | frozenset(trunk)


def _digit_of(ch: str) -> str:
    """``ch`` as an ASCII digit where it is one in another script ("٣" -> "3"), else itself."""
    value = unicodedata.digit(ch, None)
    return ch if value is None else str(value)


def _render_phone(text: str, number: Sequence[int], fake: str, extension: Sequence[int],
                  ext_rng: random.Random, keep: frozenset[int], letter_rng: random.Random) -> str:
    """``text`` with the digits at ``number`` replaced by ``fake``, the extension's by digits of
    ``ext_rng`` and other letters by letters of ``letter_rng`` (same case); the rest kept."""
    chars = list(text)
    for i, digit in zip(number, fake):
        chars[i] = digit
    for i in extension:
        chars[i] = str(ext_rng.randrange(10))
    for i, ch in enumerate(text):
        if ch.isalpha() and i not in keep:
            letter = chr(ord("a") + letter_rng.randrange(26))
            chars[i] = letter.upper() if ch.isupper() else letter
    return "".join(chars)


def _pattern_fake(text: str, rng: random.Random) -> str:
    chars = []
    for ch in text:
        if ch.isnumeric():  # digits, and also '¼', '²', 'Ⅻ'...
            chars.append(str(rng.randrange(10)))
        elif ch.isalpha():
            letter = chr(ord("a") + rng.randrange(26))
            chars.append(letter.upper() if ch.isupper() else letter)
        else:
            chars.append(ch)
    return "".join(chars)


def _scramble_non_letters(text: str, rng: random.Random) -> str:
    """Keep separators of a name, but never digits that were inside the name span, nor a
    combining mark that no letter composes with (it would sit on the surrogate's letter)."""
    return "".join(str(rng.randrange(10)) if ch.isnumeric() else ch for ch in text
                   if not unicodedata.category(ch).startswith("M"))


def _surname_index(text: str, words: Sequence[re.Match], roles: Sequence[str]) -> int | None:
    """The index of the surname among a name's ``words``: the first word when a comma follows it
    ("Smith, J."), else the last whole word; ``None`` unless a given name or an initial goes with it."""
    parts = [i for i, role in enumerate(roles) if role in ("word", "initial")]
    full_words = [i for i in parts if roles[i] == "word"]
    if len(parts) < 2 or not full_words:
        return None
    first = parts[0]
    if roles[first] == "word" and text[words[first].end():].lstrip().startswith(","):
        return first
    return full_words[-1]


_POSSESSIVE = re.compile(r"(?P<base>.{2,}?)(?P<mark>['’][sS])")


def _split_possessive(token: str) -> tuple[str, str]:
    """``"Smith's"`` -> ``("Smith", "'s")``; a token without a possessive ending -> ``(token, "")``."""
    m = _POSSESSIVE.fullmatch(token)
    return (m.group("base"), m.group("mark")) if m else (token, "")


def _case_like(word: str, original: str) -> str:
    if original.isupper() and len(original) > 1:
        return word.upper()
    if original.islower():
        return word.lower()
    return word


def _case_like_text(value: str, original: str) -> str:
    letters = [c for c in original if c.isalpha()]
    if len(letters) > 1 and all(c.isupper() for c in letters):
        return value.upper()
    if letters and all(c.islower() for c in letters):
        return value.lower()
    return value
