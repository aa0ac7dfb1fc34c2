"""Identifiers a de-identified record still carries outside its text.

``deid`` replaces what it finds in the text, and ``meta`` values by the meta policy
(:mod:`domainfm.deid.meta`). The record ``id``, the ``meta`` keys the policy keeps and the
labels are written as they came: documented behaviour, and right for a site id or a ward. But
when one of them holds a string the detectors found in the note (an id that is the MRN, a kept
``meta.attending`` with the doctor's name, a label that is the patient's name), the output
still has that identifier. The run counts such records per field, by the field's name and never
its value, writes the counts to the manifest and says which option fixes each field.

Only direct identifiers are looked for (names, record and account numbers, contacts, street
addresses, dates finer than a year: :data:`DIRECT`), of at least :data:`MIN_LENGTH` characters,
as whole words: "Lee" or "3/4" turn up inside unrelated ids and codes, a year ("2020") inside
every date, a city or a specialty in ordinary metadata (a site, a department), and a warning
that always fires is not read. A label is a class name, so it counts only when it is one of them
whole (a label "smith" for a patient Smith, not "parkinson_disease" for an eponym).
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from domainfm.deid.labels import coarse

MIN_LENGTH = 4
#: coarse types (and canonical labels) whose strings single a person out on their own
DIRECT = frozenset({"NAME", "ID", "PHONE", "EMAIL", "URL", "IP", "STREET", "DATE"})
_YEAR_ONLY = re.compile(r"(?:(?:19|20)\d\d|['’]\d\d)s?")  # Safe Harbor leaves years in clear


def identifier_strings(text: str, regions: Iterable[Any]) -> frozenset[str]:
    """The detected strings of ``text`` (regions with ``start``/``end``/``label``) worth looking
    for: direct identifiers of :data:`MIN_LENGTH` characters or more, not a year alone."""
    found = set()
    for r in regions:
        label = getattr(r, "label", None)
        if label is not None and label not in DIRECT and coarse(label) not in DIRECT:
            continue
        value = " ".join(text[r.start:r.end].split()).casefold()
        if len(value) >= MIN_LENGTH and not _YEAR_ONLY.fullmatch(value):
            found.add(value)
    return frozenset(found)


def fields_holding(record, identifiers: frozenset[str], *, ids_replaced: bool) -> list[str]:
    """The output fields of ``record`` (``id``, ``meta.<key>``, ``label``, ``labels``) whose value
    holds one of ``identifiers`` as whole words; ``id`` is not checked when ``ids_replaced``
    (``--pseudonymize-ids`` writes a pseudonym instead)."""
    if not identifiers:
        return []
    fields = [] if ids_replaced or not _holds(record.id, identifiers) else ["id"]
    fields += [f"meta.{key}" for key, value in (record.meta or {}).items() if _holds(value, identifiers)]
    fields += [name for name in ("label", "labels") if _is_one(getattr(record, name), identifiers)]
    return fields


def _is_one(value: Any, identifiers: frozenset[str]) -> bool:
    """A label (or one of a list) that is an identifier whole ("smith_john" reads "smith john")."""
    values = value if isinstance(value, (list, tuple)) else [value]
    return any(isinstance(v, str) and " ".join(v.replace("_", " ").split()).casefold() in identifiers
               for v in values)


def _holds(value: Any, identifiers: frozenset[str]) -> bool:
    if isinstance(value, Mapping):
        return any(_holds(v, identifiers) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds(v, identifiers) for v in value)
    if value is None or isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return False
    hay = " ".join(str(value).split()).casefold()
    return len(hay) >= MIN_LENGTH and any(_as_words(needle, hay) for needle in identifiers)


def _as_words(needle: str, hay: str) -> bool:
    """``needle`` in ``hay`` with no letter or digit glued to either end ("4471" is in
    "mrn-4471" but not in "44712")."""
    start = hay.find(needle)
    while start >= 0:
        end = start + len(needle)
        before = hay[start - 1] if start else " "
        after = hay[end] if end < len(hay) else " "
        if not (needle[0].isalnum() and before.isalnum()) and not (needle[-1].isalnum() and after.isalnum()):
            return True
        start = hay.find(needle, start + 1)
    return False


def fix_for(field: str) -> str:
    """The option that stops ``field`` carrying identifiers (for the console and the docs)."""
    if field == "id":
        return "--pseudonymize-ids"
    if field.startswith("meta."):
        key = field[len("meta."):]
        return f"--meta {key}=deid (or drop, or its PHI label)"
    return "labels are not de-identified: relabel, or drop the field before deid"


def summary(counts: Mapping[str, int]) -> str:
    """One console line: how many records keep identifiers in which field, and the fix."""
    parts = [f"{field} in {n} record{'s' if n != 1 else ''} ({fix_for(field)})" for field, n in counts.items()]
    return "identifiers found in the text are still outside it: " + "; ".join(parts)
