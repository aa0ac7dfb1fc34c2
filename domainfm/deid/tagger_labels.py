"""Tags of public token-classification de-id models, mapped onto the canonical PHI labels.

A tagger's output tags carry a position prefix and an entity type: ``B-PATIENT``, ``I-PATIENT``
(IOB2), ``S-``/``E-`` (BIOES), ``U-``/``L-`` (BILOU), or the bare type with no prefix (IO, as
in ``StanfordAIMI/stanford-deidentifier-base``). :func:`parse_tag` splits a tag, and
:func:`decode_tags` turns a sequence of word tags of any of these schemes into spans.

The entity types are mapped onto :data:`domainfm.deid.labels.CANONICAL` labels by a *label
map*: a user's map first (``DeidConfig.ner_label_map``), then the canonical names themselves,
then the shipped maps below, then the corpus tables of :mod:`domainfm.deid.labels`. ``None`` in
a map means "not PHI": spans of that type are ignored. A type no map knows is a config error.

Shipped maps (``ner_label_map: i2b2`` puts one first, where two maps disagree):

- ``i2b2``: the i2b2 2006 categories and the 2014 (n2c2) subcategories (``PATIENT``,
  ``DOCTOR``, ``HOSPITAL``, ``LOCATION-OTHER``, ``MEDICALRECORD``, ``IDNUM``, ``BIOID``...).
- ``obi``: the ``obi/deid_*_i2b2`` models (``STAFF``, ``HOSP``, ``LOC``, ``PATORG``, ``OTHERPHI``).
- ``stanford``: the ``StanfordAIMI/stanford-deidentifier-*`` models (``HCW``, ``VENDOR``).
- ``conll``: generic CoNLL-2003 taggers (``PER``, ``LOC``, ``ORG``; ``MISC`` is not PHI).
- ``ontonotes``: generic OntoNotes taggers (``PERSON``, ``GPE``, ``FAC``...; numbers, events and
  works are not PHI).

Example:
    >>> parse_tag("L-LOCATION-OTHER")
    ('L', 'LOCATION-OTHER')
    >>> resolve_label_map(["PATIENT", "STAFF", "OTHERPHI"])
    {'PATIENT': 'PATIENT', 'STAFF': 'DOCTOR', 'OTHERPHI': 'ID'}
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

from domainfm.config import suggest
from domainfm.errors import ConfigError

TAGGER_LABELS: dict[str, dict[str, str | None]] = {
    "i2b2": {
        # 2006 categories
        "PATIENT": "PATIENT", "DOCTOR": "DOCTOR", "HOSPITAL": "HOSPITAL", "LOCATION": "LOCATION",
        "DATE": "DATE", "ID": "ID", "PHONE": "PHONE", "AGE": "AGE",
        # 2014 categories and subcategories
        "NAME": "NAME", "USERNAME": "ID", "PROFESSION": "OCCUPATION", "CONTACT": "PHONE",
        "ORGANIZATION": "ORG", "STREET": "STREET", "CITY": "CITY", "STATE": "STATE",
        "COUNTRY": "COUNTRY", "ZIP": "ZIP", "LOCATION-OTHER": "LOCATION", "FAX": "FAX",
        "EMAIL": "EMAIL", "URL": "URL", "IPADDR": "IP", "SSN": "SSN", "MEDICALRECORD": "MRN",
        "HEALTHPLAN": "HEALTH_PLAN", "ACCOUNT": "ACCOUNT", "LICENSE": "LICENSE",
        "VEHICLE": "VEHICLE", "DEVICE": "DEVICE", "BIOID": "ID", "IDNUM": "ID",
    },
    "obi": {
        "AGE": "AGE", "DATE": "DATE", "EMAIL": "EMAIL", "HOSP": "HOSPITAL", "ID": "ID",
        "LOC": "LOCATION", "OTHERPHI": "ID", "PATIENT": "PATIENT", "PATORG": "ORG",
        "PHONE": "PHONE", "STAFF": "DOCTOR",
    },
    "stanford": {
        "PATIENT": "PATIENT", "HCW": "DOCTOR", "HOSPITAL": "HOSPITAL", "DATE": "DATE", "ID": "ID",
        "PHONE": "PHONE", "VENDOR": "ORG",
    },
    "conll": {"PER": "NAME", "LOC": "LOCATION", "ORG": "ORG", "MISC": None},
    "ontonotes": {
        "PERSON": "NAME", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION", "ORG": "ORG",
        "NORP": "NATIONALITY", "DATE": "DATE", "TIME": None, "PERCENT": None, "MONEY": None,
        "QUANTITY": None, "ORDINAL": None, "CARDINAL": None, "EVENT": None, "PRODUCT": None,
        "WORK_OF_ART": None, "LAW": None, "LANGUAGE": None,
    },
}

PREFIXES = "BIESUL"
# some taggers write their tags in lower case ("b-per", "i-per", "o")
_PREFIXED = re.compile(rf"^([{PREFIXES}])[-_](.+)$", re.IGNORECASE)


def parse_tag(tag: str) -> tuple[str, str | None]:
    """``(prefix, entity type)`` of a tag; ``("O", None)`` outside; a bare type is ``("I", type)``.
    The prefix is read in either case and returned in upper case."""
    tag = tag.strip()
    if tag in ("O", "", "_") or tag.upper() == "O":
        return "O", None
    match = _PREFIXED.match(tag)
    if match:
        return match.group(1).upper(), match.group(2)
    return "I", tag


def decode_tags(tags: Sequence[str], scores: Sequence[float] | None = None) -> list[tuple[int, int, str, float]]:
    """Spans ``(first, last + 1, type, mean score)`` over word positions, for any tag scheme.

    Decoding is lenient, as recall comes first: an ``I-``/``L-``/``E-`` tag that does not continue
    a span of its type starts one, so a missing ``B-`` never loses an entity.

    Example:
        >>> decode_tags(["B-PATIENT", "L-PATIENT", "O", "U-DATE", "I-LOC", "E-LOC"])
        [(0, 2, 'PATIENT', 1.0), (3, 4, 'DATE', 1.0), (4, 6, 'LOC', 1.0)]
    """
    spans: list[tuple[int, int, str, float]] = []
    open_span: list | None = None  # [start, type, [scores]]

    def close(end: int) -> None:
        nonlocal open_span
        if open_span is not None:
            start, kind, s = open_span
            spans.append((start, end, kind, sum(s) / len(s)))
            open_span = None

    for i, tag in enumerate(tags):
        score = 1.0 if scores is None else float(scores[i])
        prefix, kind = parse_tag(tag)
        if kind is None:
            close(i)
            continue
        continues = open_span is not None and open_span[1] == kind and prefix in "ILE"
        if not continues:
            close(i)
            open_span = [i, kind, []]
        open_span[2].append(score)
        if prefix in "SULE":
            close(i + 1)
    close(len(tags))
    return spans


def _key(name: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", name.upper())


def _lookup(table: Mapping[str, str | None], name: str) -> tuple[bool, str | None]:
    if name in table:
        return True, table[name]
    wanted = _key(name)
    for key, value in table.items():
        if _key(key) == wanted:
            return True, value
    return False, None


def check_label_map(label_map: str | Mapping[str, str | None] | None, field_name: str = "ner_label_map") -> None:
    """A shipped map's name, or a mapping whose values are canonical labels or null.

    Raises:
        ConfigError: naming the field, the bad entry and the valid choices.
    """
    from domainfm.deid.labels import CANONICAL

    if label_map is None:
        return
    if isinstance(label_map, str):
        if label_map not in TAGGER_LABELS:
            raise ConfigError(f"config field {field_name!r}: unknown label map {label_map!r}"
                              f"{suggest(label_map, TAGGER_LABELS)}; shipped maps: {', '.join(TAGGER_LABELS)} "
                              f"(or a mapping TAG: LABEL)")
        return
    if not isinstance(label_map, Mapping):
        raise ConfigError(f"config field {field_name!r} must be a shipped map name or a mapping TAG: LABEL, "
                          f"got {type(label_map).__name__}")
    valid = set(CANONICAL)
    for tag, label in label_map.items():
        if label is not None and label not in valid:
            raise ConfigError(f"config field {field_name!r}: {tag!r} maps to {label!r}, which is no PHI label"
                              f"{suggest(str(label), sorted(valid))}; use a canonical label "
                              f"({', '.join(sorted(CANONICAL)[:6])}...) or null to ignore the tag")


def parse_label_map_option(value: str) -> str | dict[str, str | None]:
    """A ``--ner-label-map`` value: a shipped map's name, a JSON/YAML file of ``{TYPE: LABEL}``,
    or inline ``TYPE=LABEL,TYPE=null``.

    Raises:
        ConfigError: an unreadable file or a malformed inline entry.
    """
    from pathlib import Path

    value = value.strip()
    if value in TAGGER_LABELS:
        return value
    path = Path(value)
    if path.suffix.lower() in (".json", ".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise ConfigError(f"--ner-label-map: cannot read {path}: not UTF-8 text (bad byte at position "
                              f"{exc.start})") from None
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"--ner-label-map: cannot read {path}: {str(exc).splitlines()[0][:160]}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"--ner-label-map: {path} must hold a mapping TYPE: LABEL")
        return {str(k): (None if v is None else str(v)) for k, v in data.items()}
    if "=" not in value:
        raise ConfigError(f"--ner-label-map: {value!r} is no shipped map{suggest(value, TAGGER_LABELS)} "
                          f"({', '.join(TAGGER_LABELS)}), no .json/.yaml file and no TYPE=LABEL list")
    mapping: dict[str, str | None] = {}
    for item in value.split(","):
        tag, sep, label = (part.strip() for part in item.partition("="))
        if not sep or not tag or not label:
            raise ConfigError(f"--ner-label-map: {item!r} is not TYPE=LABEL (TYPE=null ignores the type)")
        mapping[tag] = None if label.lower() in ("null", "none") else label
    return mapping


def resolve_label_map(types: Sequence[str], label_map: str | Mapping[str, str | None] | None = None,
                      ) -> dict[str, str | None]:
    """The canonical label (or ``None``: ignored) of each entity type a model predicts.

    Args:
        types: the model's entity types (tags without their prefix).
        label_map: a shipped map's name to consult first, or a user mapping
            ``{type: canonical label or None}`` (which must name only types the model has).

    Raises:
        ConfigError: a type no map knows (fix: add it to ``ner_label_map``), or a user map entry
            for a type the model does not predict.
    """
    from domainfm.deid.labels import CANONICAL, DATASET_LABELS

    check_label_map(label_map)
    tables: list[Mapping[str, str | None]] = []
    if isinstance(label_map, Mapping):
        unknown = [t for t in label_map if not _lookup({x: None for x in types}, t)[0]]
        if unknown:
            raise ConfigError(f"ner_label_map names {unknown[0]!r}{suggest(unknown[0], types)}, which the model "
                              f"does not predict; its entity types: {', '.join(types)}")
        tables.append(label_map)
    elif isinstance(label_map, str):
        tables.append(TAGGER_LABELS[label_map])
    tables.append({name: name for name in CANONICAL})
    tables += list(TAGGER_LABELS.values()) + list(DATASET_LABELS.values())
    resolved: dict[str, str | None] = {}
    for kind in types:
        for table in tables:
            found, label = _lookup(table, kind)
            if found:
                resolved[kind] = label
                break
        else:
            raise ConfigError(
                f"the NER model's entity type {kind!r} maps to no PHI label: add it to ner_label_map "
                f"(e.g. {{{kind}: NAME}}, or {{{kind}: null}} to ignore it); shipped maps: {', '.join(TAGGER_LABELS)}")
    return resolved
