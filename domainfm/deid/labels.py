"""One PHI label set, and the tables that map every corpus's labels onto it.

Detectors emit *canonical* labels (``PATIENT``, ``DATE``, ``STREET``...). Evaluation compares
datasets whose annotators used other names (PhysioNet ``HCPName``, TAB ``PERSON``, Presidio's
``PHONE_NUMBER``...), so each one is mapped here once, and every canonical label rolls up to a
*coarse* type (``NAME``, ``LOCATION``, ``ID``...) at which typed scores are compared across
datasets. ``None`` in a mapping means "not PHI for evaluation" (e.g. Presidio's ``TITLE``).

Example:
    >>> to_canonical("HCPName", "physionet")
    'DOCTOR'
    >>> coarse("DOCTOR")
    'NAME'
"""

from __future__ import annotations

from domainfm.config import suggest
from domainfm.errors import ConfigError

# canonical label -> coarse type (the unit of typed, cross-dataset comparison)
CANONICAL: dict[str, str] = {
    # names; the subtype is set where the context shows the role
    "PATIENT": "NAME", "RELATIVE": "NAME", "DOCTOR": "NAME", "NAME": "NAME",
    "DATE": "DATE",
    "AGE": "AGE",
    "PHONE": "PHONE", "FAX": "PHONE",
    "EMAIL": "EMAIL",
    "URL": "URL",
    "IP": "IP",
    # numbers that identify a person, record, account or thing
    "SSN": "ID", "MRN": "ID", "HEALTH_PLAN": "ID", "ACCOUNT": "ID", "LICENSE": "ID",
    "VEHICLE": "ID", "DEVICE": "ID", "CREDIT_CARD": "ID", "IBAN": "ID", "ID": "ID",
    # places; facilities count as places (as in i2b2's LOCATION category)
    "STREET": "LOCATION", "CITY": "LOCATION", "STATE": "LOCATION", "ZIP": "LOCATION",
    "COUNTRY": "LOCATION", "LOCATION": "LOCATION", "HOSPITAL": "LOCATION",
    "ORG": "ORG",
    "NATIONALITY": "DEM",
    # a job or trade: a quasi identifier in judgments (TAB files it under DEM)
    "OCCUPATION": "DEM",
    "CODE": "CODE",
    "QUANTITY": "QUANTITY",
    "MISC": "MISC",
}

COARSE_TYPES = tuple(sorted(set(CANONICAL.values())))

# dataset name -> {source label: canonical label or None (not PHI)}
DATASET_LABELS: dict[str, dict[str, str | None]] = {
    "physionet": {
        "HCPName": "DOCTOR", "PTName": "PATIENT", "RelativeProxyName": "RELATIVE",
        "Date": "DATE", "DateYear": "DATE", "Age": "AGE", "Phone": "PHONE",
        "Location": "LOCATION", "Other": "ID",
    },
    "tab": {
        "PERSON": "NAME", "CODE": "CODE", "LOC": "LOCATION", "ORG": "ORG", "DATETIME": "DATE",
        "DEM": "NATIONALITY", "QUANTITY": "QUANTITY", "MISC": "MISC",
    },
    "presidio-synth": {
        "PERSON": "NAME", "STREET_ADDRESS": "STREET", "GPE": "LOCATION", "ORGANIZATION": "ORG",
        "CREDIT_CARD": "CREDIT_CARD", "DATE_TIME": "DATE", "PHONE_NUMBER": "PHONE", "AGE": "AGE",
        "NRP": "NATIONALITY", "EMAIL_ADDRESS": "EMAIL", "ZIP_CODE": "ZIP", "DOMAIN_NAME": "URL",
        "IBAN_CODE": "IBAN", "US_SSN": "SSN", "IP_ADDRESS": "IP", "US_DRIVER_LICENSE": "LICENSE",
        # a courtesy title or a job title is not an identifier by itself
        "TITLE": None,
    },
    # what a vanilla presidio AnalyzerEngine emits
    "presidio": {
        "PERSON": "NAME", "LOCATION": "LOCATION", "NRP": "NATIONALITY", "DATE_TIME": "DATE",
        "ORGANIZATION": "ORG", "EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "URL": "URL",
        "IP_ADDRESS": "IP", "US_SSN": "SSN", "CREDIT_CARD": "CREDIT_CARD", "IBAN_CODE": "IBAN",
        "US_DRIVER_LICENSE": "LICENSE", "US_PASSPORT": "ID", "US_BANK_NUMBER": "ACCOUNT",
        "US_ITIN": "ID", "MEDICAL_LICENSE": "LICENSE", "UK_NHS": "ID", "CRYPTO": "ACCOUNT",
        "MAC_ADDRESS": "DEVICE", "UUID": "ID", "AGE": "AGE", "US_MBI": "HEALTH_PLAN",
        "UK_NINO": "ID", "ABA_ROUTING_NUMBER": "ACCOUNT",
    },
    # our synthetic corpora (corpora/clinical, corpora/legal)
    "synthetic-clinical": {
        "PATIENT": "PATIENT", "RELATIVE": "RELATIVE", "DOCTOR": "DOCTOR", "DATE": "DATE",
        "AGE": "AGE", "PHONE": "PHONE", "FAX": "FAX", "EMAIL": "EMAIL", "SSN": "SSN", "MRN": "MRN",
        "HEALTH_PLAN": "HEALTH_PLAN", "ACCOUNT": "ACCOUNT", "LICENSE": "LICENSE",
        "VEHICLE": "VEHICLE", "DEVICE": "DEVICE", "URL": "URL", "IP": "IP", "STREET": "STREET",
        "CITY": "CITY", "STATE": "STATE", "ZIP": "ZIP", "HOSPITAL": "HOSPITAL",
    },
}
DATASET_LABELS["synthetic-legal"] = dict(DATASET_LABELS["tab"])
DATASET_LABELS["canonical"] = {label: label for label in CANONICAL}


def coarse(label: str) -> str:
    """The coarse type of a canonical label (unknown labels map to themselves)."""
    return CANONICAL.get(label, label)


def to_canonical(label: str, dataset: str = "canonical") -> str | None:
    """Map a dataset's label to the canonical one; ``None`` when the label is not PHI.

    Raises:
        ConfigError: for an unknown dataset, or a label the dataset's table does not know.
    """
    table = dataset_table(dataset)
    if label in table:
        return table[label]
    if label in CANONICAL:  # already canonical (e.g. predictions written by domainfm)
        return label
    raise ConfigError(
        f"label {label!r} is not in the {dataset!r} label table{suggest(label, table)}; "
        f"known: {', '.join(sorted(table))}"
    )


def dataset_table(dataset: str) -> dict[str, str | None]:
    if dataset not in DATASET_LABELS:
        raise ConfigError(
            f"unknown label dataset {dataset!r}{suggest(dataset, DATASET_LABELS)}; "
            f"available: {', '.join(sorted(DATASET_LABELS))}"
        )
    return DATASET_LABELS[dataset]


def validate_entities(names: list[str] | None, field_name: str) -> None:
    """Check user-given entity names (canonical or coarse), naming the field on error."""
    if not names:
        return
    valid = set(CANONICAL) | set(COARSE_TYPES)
    for name in names:
        if name not in valid:
            raise ConfigError(
                f"config field {field_name!r}: unknown entity {name!r}{suggest(name, sorted(valid))}; "
                f"valid: {', '.join(sorted(valid))}"
            )


def entity_selected(label: str, include: list[str] | None, exclude: list[str] | None) -> bool:
    """Whether a canonical label passes include/exclude lists (which may name coarse types)."""
    names = {label, coarse(label)}
    if include and not names & set(include):
        return False
    if exclude and names & set(exclude):
        return False
    return True
