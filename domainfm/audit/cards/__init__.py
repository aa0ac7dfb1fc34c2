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

from domainfm.audit.cards.config import (CARD_FILES, CARD_NAMES, SUMMARY_FILE, DeployerFields, card_outputs,
                                         load_deployer_fields, parse_cards)
from domainfm.errors import DomainFMError

__all__ = ["CARD_FILES", "CARD_NAMES", "SUMMARY_FILE", "CardsResult", "DeployerFields", "load_deployer_fields",
           "parse_cards", "write_cards"]


@dataclass
class CardsResult:
    out_dir: Path
    files: list[Path]
    summary: dict[str, Any]  # cards.json's content
    warnings: list[str]  # what the cards could not verify (also in cards.json)


def check_cards_folder(out: Path, audit_dir: Path) -> None:
    """Cards go beside their report (or a copy of it), into a new or empty folder, or over an
    earlier cards-only output of the same audit, never into another audit's report folder (its
    cards would cite groups its report.json lacks) or a folder of other files (a model folder).

    Raises:
        OutputError: naming the folder and what it holds.
    """
    from domainfm.errors import OutputError
    from domainfm.manifest import manifest_path_for

    if out.resolve() == audit_dir.resolve() or not out.is_dir() or _same_report(out, audit_dir):
        return
    present = [f.name for f in out.iterdir() if f.suffix not in (".lock", ".tmp")]
    if not present:
        return
    others = [name for name in present if name not in card_outputs()]
    if not others:
        earlier = _read_manifest(manifest_path_for(out / SUMMARY_FILE))
        if earlier.get("stage") == "audit-cards" and _same_audit(earlier, audit_dir):
            return
        what = "the cards of another audit" if earlier.get("stage") == "audit-cards" else "card files of unknown origin"
    else:
        stage = _read_manifest(out / "manifest.json").get("stage")
        what = f"a 'domainfm {stage}' output" if isinstance(stage, str) else "other files"
    raise OutputError(f"{out}: holds {what}; the cards of {audit_dir} go beside its report (leave out -o), into a "
                      "new or empty folder, or over an earlier cards-only output of the same audit: choose another "
                      "-o folder")


def _same_report(out: Path, audit_dir: Path) -> bool:
    """``out`` holds a copy of the audit's report.json (the demo's ``reports/demo/``): the cards
    go beside the report they describe."""
    from domainfm.manifest import sha256_file

    copy, report = out / "report.json", audit_dir / "report.json"
    return copy.is_file() and report.is_file() and sha256_file(copy) == sha256_file(report)


def _same_audit(manifest: dict[str, Any], audit_dir: Path) -> bool:
    """Whether a cards manifest was written from ``audit_dir``: its recorded folder, or (cards
    written before the folder was recorded) its input hashes hold this report.json's."""
    if "audit_dir" in manifest:
        return manifest["audit_dir"] == str(audit_dir.resolve())
    from domainfm.manifest import sha256_file

    report = audit_dir / "report.json"
    digest = sha256_file(report) if report.is_file() else None
    return digest is not None and any(isinstance(i, dict) and i.get("sha256") == digest
                                      for i in manifest.get("inputs") or [])


def _read_manifest(path: Path) -> dict[str, Any]:
    from domainfm.audit.cards.evidence import _read_json

    data = _read_json(path)
    return data if isinstance(data, dict) else {}


def _scan(texts: dict[str, str], deployer: DeployerFields) -> dict[str, int]:
    """PHI-pattern hits per file. The one exemption: an e-mail or phone match that lies inside
    an occurrence of the deployer's declared contact; the text around it is scanned as any other
    (a contact of "-" once removed every hyphen the SSN and date patterns need)."""
    import re
    from xml.sax.saxutils import escape

    from domainfm.audit.cards.config import CONTACT_PATTERNS
    from domainfm.audit.privacy import PHI_PATTERNS

    contact = deployer.get(DeployerFields.CONTACT)
    forms = {contact, escape(contact)} if contact else set()  # as written in Markdown/JSON, and in the XML
    hits = {}
    for name, text in texts.items():
        declared = [(m.start(), m.end()) for form in forms for m in re.finditer(re.escape(form), text)]
        for pattern, regex in PHI_PATTERNS.items():
            n = sum(1 for m in regex.finditer(text)
                    if not (pattern in CONTACT_PATTERNS and any(s <= m.start() and m.end() <= e for s, e in declared)))
            if n:
                hits[f"{name}:{pattern}"] = n
    return hits


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
        OutputError: ``out_dir`` holds another audit's report or cards, or other files
            (:func:`check_cards_folder`).
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
    audit_dir = Path(audit_dir)
    out = check_output_path(out_dir or audit_dir, folder=True)
    check_cards_folder(out, audit_dir)
    if deployer is None:
        deployer = load_deployer_fields(cards_config)
    ev = Evidence(audit_dir, deid_eval=deid_eval, privacy_audit=privacy_audit, cards_config=cards_config,
                  audit_scope=audit_scope)
    texts: dict[str, str] = {}
    summary: dict[str, Any] = {"cards": {}, "sources": [vars(s) for s in ev.sources.values()],
                               "warnings": list(ev.warnings)}
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
            texts[f"{stem}.json"] = json.dumps(to_json(doc, ev), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
            files.append(f"{stem}.json")
        summary["cards"][name] = {"files": files, "completeness": completeness(fields_of(doc)),
                                  "fields": {f"{s.title} / {n}": f.origin for s in doc.sections for n, f in s.fields}}
    summary_text = json.dumps(summary, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    hits = _scan({**texts, SUMMARY_FILE: summary_text}, deployer)
    if hits:
        origins = ev.phi_origins()
        where = f"it comes from {', '.join(origins)}" if origins else "check cards.yaml and the audit's data note"
        raise DomainFMError(f"the cards would contain PHI-like text {hits}; nothing was written ({where})")
    paths = [out / name for name in (*texts, SUMMARY_FILE)]
    with ExitStack() as stack:  # all written in full before any is renamed into place
        for path, text in zip(paths, (*texts.values(), summary_text)):
            stack.enter_context(atomic_file(path)).write(text)
    # the audit folder, resolved: a later '-o' into this folder is checked against it
    write_manifest(out / SUMMARY_FILE, stage="audit-cards", config={"cards": names, "chai_schema": str(chai_schema)
                   if chai_schema else "shipped v0.2"}, inputs=[s.path for s in ev.sources.values()],
                   outputs=paths, counts={n: c["completeness"] for n, c in summary["cards"].items()},
                   extra={"audit_dir": str(audit_dir.resolve())})
    return CardsResult(out, paths, summary, list(ev.warnings))
