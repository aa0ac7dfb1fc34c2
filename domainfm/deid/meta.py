"""What ``deid`` does with a document's ``meta`` fields: keep, drop or de-identify, by key.

Notes travel with metadata, and metadata holds PHI as often as the text does: a ``patient_name``
column, a date of birth, a free-text ``comment``. Each key gets one action:

* ``keep``: written as it is;
* ``drop``: left out of the output;
* ``deid``: a free-text value, de-identified like the note (the same recognizers, and the names
  already found in the note or in the patient's earlier notes);
* a canonical PHI label (``NAME``, ``DATE``, ``PHONE``, ``MRN``...): the whole value *is* that
  identifier and is replaced as one (a surrogate consistent with the text: the patient's name in
  ``meta.patient_name`` gets the same fake as in the note, a date of birth moves by the patient's
  date shift).

Keys are matched case-insensitively with ``-``/space as ``_``. Known PHI-bearing keys (below) are
de-identified by default; every other key gets ``default`` (``keep`` unless configured).
``patient_id`` is kept by default: it scopes surrogates and date shifts across a patient's notes.
Give it an action of its own (``drop``, ``MRN``) when it is a real record number. Strings,
numbers and lists of them are replaced. A nested object, also one inside a list, is walked key
by key: a key with an action of its own (known or configured) follows it, any other key takes
the action of the object's key when that is not ``keep``, so a value under a PHI key is PHI at
any depth (``patient_name: {first: .., last: ..}`` is two names, ``mrn: {value: ..}`` a record
number), and ``default`` otherwise (``contacts: [{name: .., phone: ..}]`` is a name and a phone).

Example:
    >>> policy = MetaPolicy({"ward_note": "deid"})
    >>> policy.action("Patient Name"), policy.action("ward_note"), policy.action("site")
    ('NAME', 'deid', 'keep')
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping

from domainfm.config import suggest
from domainfm.deid.labels import CANONICAL
from domainfm.errors import ConfigError

ACTIONS = ("keep", "drop", "deid")


def _keys(label: str, block: str) -> dict[str, str]:
    return {key: label for key in block.split()}


# Keys whose value is PHI in every dataset we know (MIMIC, i2b2, n2c2, EHR exports).
KNOWN_PHI_KEYS: dict[str, str] = {
    **_keys("NAME", "name full_name patient_name patientname first_name firstname given_name last_name lastname "
                    "surname family_name middle_name maiden_name nickname patient_firstname patient_familyname "
                    "physician doctor attending provider_name nurse next_of_kin emergency_contact contact_name "
                    "author signed_by pcp relative guardian proxy"),
    **_keys("DATE", "dob date_of_birth birth_date birthdate birthday dod date_of_death death_date admission_date "
                    "admit_date discharge_date visit_date encounter_date service_date note_date"),
    **_keys("PHONE", "phone phone_number telephone tel mobile cell pager"),
    **_keys("FAX", "fax"),
    **_keys("EMAIL", "email e_mail email_address"),
    **_keys("STREET", "address street street_address home_address address_line address_line1 address_line2"),
    **_keys("CITY", "city town"),
    **_keys("ZIP", "zip zipcode zip_code postcode postal_code"),
    **_keys("SSN", "ssn social_security_number"),
    **_keys("MRN", "mrn medical_record_number record_number"),
    **_keys("HEALTH_PLAN", "insurance_id member_id health_plan_id policy_number"),
    **_keys("ACCOUNT", "account account_number"),
    **_keys("LICENSE", "license_number licence_number drivers_license"),
    **_keys("deid", "note notes comment comments remarks description history summary narrative free_text "
                    "reason indication chief_complaint"),
}


def _normal(key: str) -> str:
    return re.sub(r"[\s\-.]+", "_", str(key).strip().lower())


def identifier_field(field: str) -> str | None:
    """The PHI label of a dotted document field whose values are identifiers by their key: a
    known PHI key anywhere under ``meta`` (free-text keys such as ``comment`` aside), else None.

    A label field or audit group named like this puts names, dates or record numbers into
    messages, models and reports, whatever the values look like (a fresh name no rule knows).

    Example:
        >>> identifier_field("meta.patient_name"), identifier_field("meta.contact.Phone"), identifier_field("meta.sex")
        ('NAME', 'PHONE', None)
    """
    parts = str(field).split(".")
    if len(parts) < 2 or parts[0] != "meta":
        return None
    labels = [KNOWN_PHI_KEYS.get(_normal(key)) for key in parts[1:]]
    return next((label for label in labels if label not in (None, "deid")), None)


class MetaPolicy:
    """Per-key actions for ``meta`` (see the module docstring).

    Args:
        actions: ``{key: keep | drop | deid | <canonical label>}``; overrides the known keys.
        default: the action for keys neither given nor known (``keep``, ``drop`` or ``deid``).

    Raises:
        ConfigError: an action that is none of the above (the message names the key).
    """

    def __init__(self, actions: Mapping[str, str] | None = None, default: str = "keep"):
        if default not in ACTIONS:
            raise ConfigError(f"config field 'meta_default' must be one of {list(ACTIONS)}, got {default!r}"
                              f"{suggest(str(default), ACTIONS)}")
        self.default = default
        self.actions = dict(KNOWN_PHI_KEYS)
        for key, action in (actions or {}).items():
            self.actions[_normal(key)] = check_action(key, action)

    def action(self, key: str, inherited: str | None = None) -> str:
        """The action for ``key``: its own, else ``inherited`` (the enclosing PHI key's), else
        the default."""
        own = self.actions.get(_normal(key))
        if own is not None:
            return own
        return inherited if inherited is not None else self.default

    def apply(self, meta: Mapping[str, Any], replace: Callable[[str, str], str],
              inherited: str | None = None) -> dict[str, Any]:
        """A copy of ``meta`` with every action applied; ``replace(value, action)`` de-identifies
        one string (``action`` is ``deid`` or a canonical label)."""
        out: dict[str, Any] = {}
        for key, value in meta.items():
            action = self.action(key, inherited)
            if action != "drop":
                out[key] = self._value(value, action, replace)
        return out

    def _value(self, value: Any, action: str, replace: Callable[[str, str], str]) -> Any:
        if isinstance(value, Mapping):
            return self.apply(value, replace, None if action == "keep" else action)
        if isinstance(value, list):
            return [self._value(v, action, replace) for v in value]
        if action == "keep" or isinstance(value, bool) or value is None:
            return value
        if isinstance(value, (int, float)):  # an MRN or a phone number stored as a number
            return replace(str(value), action)
        if isinstance(value, str) and value.strip():
            return replace(value, action)
        return value


def check_action(key: str, action: Any) -> str:
    """``action`` as given when it is ``keep``/``drop``/``deid`` or a canonical label."""
    if isinstance(action, str) and (action in ACTIONS or action.upper() in CANONICAL):
        return action if action in ACTIONS else action.upper()
    choices = list(ACTIONS) + sorted(CANONICAL)
    raise ConfigError(f"config field 'meta.{key}' must be keep, drop, deid or a PHI label (NAME, DATE, MRN...), "
                      f"got {action!r}{suggest(str(action), choices)}")
