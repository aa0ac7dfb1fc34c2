"""Which cards to write, and the deployer's own fields (``cards.yaml``).

domainfm fills a card from what it can prove (the audit's numbers and the lineage files); what
only the organisation deploying the model knows (intended use, who to contact, release stage,
risk management...) comes from ``cards.yaml``, validated here. A field left out stays in the
card as "To be completed by the deployer" and counts against its completeness score.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Iterable

from domainfm.errors import ConfigError

#: Card name -> the files it writes.
CARD_FILES: dict[str, tuple[str, ...]] = {
    "chai": ("chai_model_card.xml",),
    "annex-iv": ("annex_iv.md", "annex_iv.json"),
    "fda": ("fda_model_card.md",),
}
CARD_NAMES = tuple(CARD_FILES)
#: Beside the cards: each card's completeness and every source file (its manifest beside it).
SUMMARY_FILE = "cards.json"


def card_outputs() -> frozenset[str]:
    """Every file name the cards write: the cards, ``cards.json`` and its manifest (what a
    re-run audit removes, and what an earlier cards-only output may hold)."""
    from domainfm.manifest import manifest_path_for

    return frozenset(n for files in CARD_FILES.values() for n in files) | {SUMMARY_FILE,
                                                                             manifest_path_for(SUMMARY_FILE).name}
#: The deployer fields of the demo classifier (package data).
DEMO_CARDS_CONFIG = Path(__file__).resolve().parent / "demo-cards.yaml"


def parse_cards(values: str | Iterable[str] | None) -> list[str]:
    """``"all"``, ``"chai,fda"`` or ``["chai", "annex-iv"]`` -> the card names, in a fixed order."""
    if values is None:
        return []
    items = [values] if isinstance(values, str) else list(values)
    wanted: set[str] = set()
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"card names must be text, got {item!r}; choose from {', '.join(CARD_NAMES)} or all")
        for name in (p.strip().lower() for p in item.split(",")):
            if not name:
                continue
            if name == "all":
                wanted.update(CARD_NAMES)
            elif name in CARD_FILES:
                wanted.add(name)
            else:
                from domainfm.config import suggest

                raise ConfigError(f"unknown card {name!r}{suggest(name, [*CARD_NAMES, 'all'])}; "
                                  f"choose from {', '.join(CARD_NAMES)} or all")
    return [n for n in CARD_NAMES if n in wanted]


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# what a contact a reviewer may use looks like: an e-mail address, a phone number or a web address
_CONTACT = {
    "e-mail": re.compile(r"^[\w.+-]+@[\w-]+(\.[\w-]+)+$"),
    "phone": re.compile(r"^\+?[\d().\- ]*\d[\d().\- ]*((ext\.?|x) ?\d+)?$", re.I),
    "URL": re.compile(r"^https?://[\w.-]+\.[a-z]{2,}(:\d+)?([/?#]\S*)?$", re.I),
}
#: The PHI patterns the declared contact may match (and only where the whole contact stands).
CONTACT_PATTERNS = ("email", "phone")
# XML 1.0 forbids them and no card needs them: tab, newline and carriage return are the exceptions
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _is_contact(text: str) -> bool:
    if _CONTACT["phone"].match(text):
        return sum(ch.isdigit() for ch in text) >= 7
    return bool(_CONTACT["e-mail"].match(text) or _CONTACT["URL"].match(text))


def _is_date(text) -> bool:
    import datetime

    if not isinstance(text, str) or not _DATE.match(text):
        return False
    try:
        datetime.date.fromisoformat(text)
    except ValueError:  # 2025-13-45 has the shape of a date but is none
        return False
    return True


@dataclass
class DeployerFields:
    """``cards.yaml``: what the deployer states (every key optional; text unless noted).

    Identity and release (CHAI BasicInfo / ReleaseInfo, Annex IV 1(a), FDA device information):
        model_name, developer, developer_contact (an e-mail address, phone number or web address a
        reviewer may use; the PHI scan lets this exact address or number through, nothing else),
        release_stage, release_date (a real date, ``YYYY-MM-DD``),
        release_version, global_availability, regulatory_approval, ehr_compatibility (list).
    Use (CHAI UsesAndDirections, Annex IV 1(a)/(h), FDA indications):
        intended_use, primary_users, how_to_use, target_population, out_of_scope, clinical_risk_level.
    Warnings and governance:
        known_risks (added to the measured limitations), ongoing_maintenance, security, funding_source,
        third_party, stakeholders_consulted, bias_mitigation (added to the recorded measures),
        human_oversight, risk_management, changes, standards_applied, declaration_of_conformity,
        post_market_plan, hardware, training_data (where the training data came from, used when the
        model's manifest does not record it).
    Resources:
        peer_reviewed_publications, patient_consent, clinical_trial, reimbursement_status,
        evaluation_references, bibliography.
    """

    model_name: str | None = None
    developer: str | None = None
    developer_contact: str | None = None
    release_stage: str | None = None
    release_date: str | None = None
    release_version: str | None = None
    global_availability: str | None = None
    regulatory_approval: str | None = None
    ehr_compatibility: list[str] = field(default_factory=list)
    intended_use: str | None = None
    primary_users: str | None = None
    how_to_use: str | None = None
    target_population: str | None = None
    out_of_scope: str | None = None
    clinical_risk_level: str | None = None
    known_risks: str | None = None
    ongoing_maintenance: str | None = None
    security: str | None = None
    funding_source: str | None = None
    third_party: str | None = None
    stakeholders_consulted: str | None = None
    bias_mitigation: str | None = None
    human_oversight: str | None = None
    risk_management: str | None = None
    changes: str | None = None
    standards_applied: str | None = None
    declaration_of_conformity: str | None = None
    post_market_plan: str | None = None
    hardware: str | None = None
    training_data: str | None = None
    peer_reviewed_publications: str | None = None
    patient_consent: str | None = None
    clinical_trial: str | None = None
    reimbursement_status: str | None = None
    evaluation_references: str | None = None
    bibliography: str | None = None

    #: the one field allowed to hold an e-mail address or phone number
    CONTACT = "developer_contact"

    def __post_init__(self) -> None:
        from domainfm.audit.privacy import scan_phi

        if self.release_date is not None and not _is_date(self.release_date):
            raise ConfigError(f"cards.yaml: 'release_date' must be an ISO date YYYY-MM-DD (e.g. 2025-06-30); "
                              f"got {self.release_date!r}")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "ehr_compatibility":
                if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                    raise ConfigError(f"cards.yaml: 'ehr_compatibility' must be a list of EHR names, e.g. [Epic, "
                                      f"Cerner]; got {value!r}")
                texts = value
            elif value is None:
                continue
            elif not isinstance(value, str) or not value.strip():
                raise ConfigError(f"cards.yaml: {f.name!r} must be non-empty text (or left out: the card then says "
                                  f"'To be completed by the deployer'); got {value!r}")
            else:
                texts = [value]
            for text in texts:
                if _CONTROL.search(text):
                    raise ConfigError(f"cards.yaml: {f.name!r} contains a control character (e.g. \\x01), which an "
                                      f"XML card cannot hold: remove it")
            if f.name == self.CONTACT:
                other = sorted(set(scan_phi(value)) - set(CONTACT_PATTERNS))
                if not _is_contact(value.strip()) or other:
                    raise ConfigError(f"cards.yaml: 'developer_contact' must be one e-mail address, phone number or "
                                      f"web address (e.g. ai-governance@example.org); got {value!r}")
                continue
            for text in texts:
                hits = scan_phi(text)
                if hits:
                    raise ConfigError(f"cards.yaml: {f.name!r} matches the PHI patterns {sorted(hits)}; cards must "
                                      f"carry no identifiers: rewrite it without them (dates as YYYY-MM-DD; "
                                      f"contact details only in 'developer_contact')")

    def get(self, name: str) -> str | None:
        value = getattr(self, name)
        return value.strip() if isinstance(value, str) else value


def load_deployer_fields(path: str | Path | None) -> DeployerFields:
    """Read and validate ``cards.yaml`` (None: no deployer fields)."""
    if path is None:
        return DeployerFields()
    from domainfm.config import from_dict, read_yaml

    path = Path(path)
    data = read_yaml(path)
    if set(data) == {"cards"} and isinstance(data["cards"], dict):  # fields nested under a 'cards:' key
        data = data["cards"]
    import datetime

    # YAML reads an unquoted 2026-01-15 as a date: it is the form asked for, so take it as text
    data = {k: v.isoformat() if isinstance(v, datetime.date) else v for k, v in data.items()}
    try:
        return from_dict(DeployerFields, data)
    except ConfigError as exc:
        text = str(exc)
        raise ConfigError(text if text.startswith("cards.yaml") else f"{path}: {text}") from None
