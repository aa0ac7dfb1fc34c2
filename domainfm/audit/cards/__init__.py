"""Audit exports a reviewer can file: the CHAI applied model card (``chai_model_card.xml``,
schema-validated), the EU AI Act Annex IV technical documentation (``annex_iv.md`` +
``annex_iv.json``) and an FDA-style model card (``fda_model_card.md``), filled from the audit's
``report.json`` and the model's lineage, with the deployer's ``cards.yaml`` for the rest.

``domainfm audit MODEL DATA -o OUT --card all [--cards-config cards.yaml]``, ``audit.cards: [all]``
in a pipeline, or::

    from domainfm.audit.cards import write_cards
    write_cards("reports/demo", ["all"], cards_config="cards.yaml")

Beside the cards, ``cards.json`` gives each card's completeness score (fields from evidence /
config / deployer / still open) and every source file with its sha256, and
``cards.manifest.json`` the provenance of the export.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from domainfm.audit.cards.config import CARD_FILES, CARD_NAMES, DeployerFields, load_deployer_fields, parse_cards
from domainfm.errors import DomainFMError

__all__ = ["CARD_FILES", "CARD_NAMES", "CardsResult", "DeployerFields", "load_deployer_fields", "parse_cards",
           "write_cards"]

SUMMARY_FILE = "cards.json"


@dataclass
class CardsResult:
    out_dir: Path
    files: list[Path]
    summary: dict[str, Any]  # cards.json's content


def _scan(texts: dict[str, str], deployer: DeployerFields) -> dict[str, int]:
    """PHI-pattern hits per file; the deployer's declared contact is the one exempt value."""
    from domainfm.audit.privacy import scan_phi

    contact = deployer.get(DeployerFields.CONTACT)
    hits = {}
    for name, text in texts.items():
        if contact:
            text = text.replace(contact, "").replace(_xml_escape(contact), "")
        for pattern, n in scan_phi(text).items():
            hits[f"{name}:{pattern}"] = n
    return hits


def _xml_escape(text: str) -> str:
    from xml.sax.saxutils import escape

    return escape(text)


def write_cards(audit_dir: str | Path, cards: str | Iterable[str] = "all", *, out_dir: str | Path | None = None,
                deployer: DeployerFields | None = None, cards_config: str | Path | None = None,
                deid_eval: str | Path | None = None, privacy_audit: str | Path | None = None,
                chai_schema: str | Path | None = None, audit_scope: str | None = None) -> CardsResult:
    """Write the chosen cards for the audit in ``audit_dir`` (its ``report.json``).

    Args:
        cards: ``chai``, ``annex-iv``, ``fda`` or ``all`` (a list, or comma-separated).
        out_dir: where the cards go (default: ``audit_dir``, beside the report).
        deployer, cards_config: the deployer's fields, or the ``cards.yaml`` to read them from.
        deid_eval: de-identification scores of the training data (``domainfm deid-eval -o``, or
            the pipeline's ``deid_eval/report.json``).
        privacy_audit: ``domainfm audit-privacy``'s ``report.json``.
        chai_schema: the CHAI v0.2 ``schema.xsd`` to validate against (default: the shipped copy).
        audit_scope: ``eval`` or ``all``: which documents the audit read (the pipeline knows).

    Raises:
        CardValidationError: the CHAI card does not validate (nothing is written).
        DomainFMError: a card would contain PHI-like text (nothing is written).
    """
    from contextlib import ExitStack

    from domainfm.audit.cards import annex_iv, chai, fda
    from domainfm.audit.cards.document import completeness, fields_of, render_markdown, to_json
    from domainfm.audit.cards.evidence import Evidence
    from domainfm.corpus.io import atomic_file, check_output_path
    from domainfm.manifest import write_manifest

    names = parse_cards(cards)
    if not names:
        raise DomainFMError("no card chosen: pass chai, annex-iv, fda or all")
    if deployer is None:
        deployer = load_deployer_fields(cards_config)
    ev = Evidence(audit_dir, deid_eval=deid_eval, privacy_audit=privacy_audit, cards_config=cards_config,
                  audit_scope=audit_scope)
    texts: dict[str, str] = {}
    summary: dict[str, Any] = {"cards": {}, "sources": [vars(s) for s in ev.sources.values()]}
    if "chai" in names:
        xml, filled = chai.build(ev, deployer)
        chai.validate(xml, chai_schema)
        texts["chai_model_card.xml"] = xml.decode("utf-8")
        summary["cards"]["chai"] = {"files": ["chai_model_card.xml"], "schema": "CHAI applied model card v0.2",
                                    "schema_valid": True, "completeness": completeness(filled.values()),
                                    "fields": {k: f.origin for k, f in filled.items()}}
    for name, module, stem in (("annex-iv", annex_iv, "annex_iv"), ("fda", fda, "fda_model_card")):
        if name not in names:
            continue
        doc = module.build(ev, deployer)
        texts[f"{stem}.md"] = render_markdown(doc, ev)
        files = [f"{stem}.md"]
        if name == "annex-iv":
            texts[f"{stem}.json"] = json.dumps(to_json(doc, ev), indent=2, ensure_ascii=False) + "\n"
            files.append(f"{stem}.json")
        summary["cards"][name] = {"files": files, "completeness": completeness(fields_of(doc)),
                                  "fields": {f"{s.title} / {n}": f.origin for s in doc.sections for n, f in s.fields}}
    summary_text = json.dumps(summary, indent=2, ensure_ascii=False) + "\n"
    hits = _scan({**texts, SUMMARY_FILE: summary_text}, deployer)
    if hits:
        raise DomainFMError(f"the cards would contain PHI-like text {hits}; nothing was written (check cards.yaml "
                            "and the audit's data note)")
    out = check_output_path(out_dir or audit_dir, folder=True)
    paths = [out / name for name in (*texts, SUMMARY_FILE)]
    with ExitStack() as stack:  # all written in full before any is renamed into place
        for path, text in zip(paths, (*texts.values(), summary_text)):
            stack.enter_context(atomic_file(path)).write(text)
    write_manifest(out / SUMMARY_FILE, stage="audit-cards", config={"cards": names, "chai_schema": str(chai_schema)
                   if chai_schema else "shipped v0.2"}, inputs=[s.path for s in ev.sources.values()],
                   outputs=paths, counts={n: c["completeness"] for n, c in summary["cards"].items()})
    return CardsResult(out, paths, summary)
