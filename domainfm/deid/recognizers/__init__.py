"""Recognizer sets per profile, looked up by name.

A set is a function returning the recognizers and the spaCy components they need (the
detector disables every other component, which is most of the speed). Register a new set with
:func:`register_set`; an unknown name lists the available ones.

Example:
    >>> sorted(available_sets())
    ['clinical', 'generic', 'legal']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from domainfm.config import suggest
from domainfm.errors import ConfigError


@dataclass
class RecognizerSet:
    """What a set gives the detector: presidio recognizers and the spaCy pipes they read."""

    recognizers: list
    spacy_components: tuple[str, ...] = ()
    description: str = ""
    options: dict = field(default_factory=dict)


_REGISTRY: dict[str, tuple[Callable[[], RecognizerSet], str]] = {}


def register_set(name: str, description: str):
    def wrap(builder: Callable[[], RecognizerSet]):
        if name in _REGISTRY:
            raise ValueError(f"recognizer set {name!r} is already registered")
        _REGISTRY[name] = (builder, description)
        return builder

    return wrap


def available_sets() -> list[str]:
    return sorted(_REGISTRY)


def build_set(name: str) -> RecognizerSet:
    if name not in _REGISTRY:
        raise ConfigError(
            f"unknown recognizer set {name!r}{suggest(name, _REGISTRY)}; available: {', '.join(available_sets())}"
        )
    builder, description = _REGISTRY[name]
    built = builder()
    built.description = built.description or description
    return built


def _regex(name, *families):
    from domainfm.deid.recognizers.base import RegexRecognizer

    specs = [spec for family in families for spec in family]
    return RegexRecognizer(name, specs)


@register_set("clinical", "HIPAA Safe Harbor identifiers in clinical notes (mixed, ALL-CAPS or lower case)")
def _clinical() -> RecognizerSet:
    from domainfm.deid.recognizers import patterns as p
    from domainfm.deid.recognizers.names import NameRecognizer
    from domainfm.deid.recognizers.places import GazetteerRecognizer, PlaceRecognizer

    # spaCy's small news-trained NER is left out: on nursing notes it found 1 name per 20
    # false alarms (PhysioNet dev part), and without it spaCy only tokenizes.
    return RecognizerSet(
        recognizers=[
            _regex("dates", p.DATES),
            _regex("contact", p.PHONES, p.CONTACT),
            _regex("ids", p.IDS),
            _regex("ages", p.AGES_OVER_89),
            _regex("addresses", p.ADDRESSES, p.REGIONS),
            GazetteerRecognizer("places_list", kinds=("CITY", "STATE", "TOWNS", "COMPANY")),
            NameRecognizer("names"),
            PlaceRecognizer("places"),
        ],
        spacy_components=(),
    )


@register_set("legal", "parties, judges, counsel, case numbers and quasi identifiers in judgments (TAB)")
def _legal() -> RecognizerSet:
    from domainfm.deid.recognizers import patterns as p
    from domainfm.deid.recognizers.entities import SpacyEntityRecognizer
    from domainfm.deid.recognizers.names import NameRecognizer
    from domainfm.deid.recognizers.places import GazetteerRecognizer, PlaceRecognizer

    return RecognizerSet(
        recognizers=[
            _regex("dates", p.DATES),
            _regex("contact", p.PHONES, p.CONTACT),
            _regex("ids", p.IDS),
            _regex("ages", p.AGES_ANY),
            _regex("addresses", p.ADDRESSES),
            _regex("codes", p.LEGAL_CODES),
            _regex("quasi", p.LEGAL_QUASI),
            GazetteerRecognizer("places_list", kinds=("CITY", "STATE", "WORLD", "COUNTRY", "NATIONALITY", "TOWNS",
                                                           "COMPANY"),
                                legal=True),
            NameRecognizer("names", dictionary=True),
            PlaceRecognizer("places"),
            SpacyEntityRecognizer("spacy", labels={"PERSON": 0.7, "GPE": 0.6, "LOC": 0.6, "FAC": 0.5,
                                                    "ORG": 0.5, "NORP": 0.6, "DATE": 0.6, "MONEY": 0.5,
                                                    "QUANTITY": 0.4}, legal=True),
        ],
        spacy_components=("ner",),
    )


@register_set("generic", "generic PII in free text (Presidio's entity set): all ages, countries, foreign phones")
def _generic() -> RecognizerSet:
    from domainfm.deid.recognizers import patterns as p
    from domainfm.deid.recognizers.entities import SpacyEntityRecognizer
    from domainfm.deid.recognizers.names import NameRecognizer
    from domainfm.deid.recognizers.places import GazetteerRecognizer, PlaceRecognizer

    return RecognizerSet(
        recognizers=[
            _regex("dates", p.DATES),
            _regex("contact", p.PHONES, p.PHONES_LOOSE, p.CONTACT),
            _regex("ids", p.IDS),
            _regex("ages", p.AGES_ANY),
            _regex("addresses", p.ADDRESSES, p.ADDRESSES_INTL, p.CITY_BEFORE_COUNTRY, p.REGIONS),
            _regex("orgs", p.ORGS, p.ORG_CUES),
            _regex("said", p.NAME_CUES, p.PLACE_CUES),
            GazetteerRecognizer("places_list", kinds=("CITY", "STATE", "WORLD", "COUNTRY", "NATIONALITY",
                                                           "TOWNS", "COMPANY")),
            NameRecognizer("names"),
            PlaceRecognizer("places"),
            SpacyEntityRecognizer("spacy", labels={"PERSON": 0.7, "GPE": 0.6, "LOC": 0.6, "FAC": 0.5,
                                                    "ORG": 0.5, "NORP": 0.6, "DATE": 0.6}),
        ],
        spacy_components=("ner",),
    )


__all__ = ["RecognizerSet", "available_sets", "build_set", "register_set"]
