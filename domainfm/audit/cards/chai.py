"""The Coalition for Health AI's *applied model card* (schema v0.2) as ``chai_model_card.xml``.

Key metrics come from the audit's numbers: Usefulness from the task metrics, Fairness from the
per-group results and the gaps between groups (each with its 95% bootstrap interval), Safety from
calibration, the counterfactual swaps, the de-identification of the training data and the
privacy audit. Each ``ValueJson`` holds the value, interval and unit and names where in the
source file it lives. The card is validated against the schema before it is written, offline:
the schema (shipped, under CHAI's licence, in ``schemas/``) imports the W3C xmldsig schema by URL
for its optional signature, and a resolver maps that URL to a local stand-in.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from domainfm.audit.cards import facts
from domainfm.audit.cards.config import DeployerFields
from domainfm.audit.cards.evidence import Evidence, Filled, Metric
from domainfm.errors import ConfigError, DomainFMError

NS = "https://mc.chai.org/v0.2/schema.xsd"
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"  # package data
CHAI_SCHEMA = SCHEMA_DIR / "chai-applied-model-card-v0.2.xsd"
XMLDSIG_URL = "http://www.w3.org/TR/xmldsig-core/xmldsig-core-schema.xsd"
XMLDSIG_STUB = SCHEMA_DIR / "xmldsig-core-stub.xsd"

GOALS = {
    # the goal, not the test: whether the documents were held out is the TestType's to say, as
    # the audit's data.training_overlap shows (an in-sample audit claims no held-out test)
    "usefulness": "Correct output on documents of the intended kind.",
    "fairness": "Comparable performance and selection rates across demographic groups.",
    "safety": "Calibrated scores, predictions invariant to demographic wording, no identifiers learnt "
              "or exposed from the training data.",
}


class CardValidationError(DomainFMError):
    """A card does not validate against its schema."""


def _lxml():
    try:
        from lxml import etree
    except ImportError:
        raise ConfigError("the CHAI card is validated with lxml: pip install 'domainfm[cards]'") from None
    return etree


def load_schema(path: str | Path | None = None):
    """The CHAI schema (the shipped copy unless ``path``), its xmldsig import resolved locally
    and no network access."""
    etree = _lxml()
    path = Path(path) if path is not None else CHAI_SCHEMA
    if not path.is_file():
        raise ConfigError(f"CHAI schema {path} does not exist (point --chai-schema at the v0.2 schema.xsd, or "
                          "leave it out to use the copy domainfm ships)")

    class LocalXmldsig(etree.Resolver):
        def resolve(self, url, pubid, context):
            if url == XMLDSIG_URL:
                return self.resolve_filename(str(XMLDSIG_STUB), context)
            return None

    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    parser.resolvers.add(LocalXmldsig())
    try:
        return etree.XMLSchema(etree.parse(str(path), parser))
    except (etree.XMLSchemaParseError, etree.XMLSyntaxError) as exc:
        raise ConfigError(f"{path} is not a usable XML schema: {exc}") from None


def validate(xml: bytes | str, schema_path: str | Path | None = None) -> None:
    """Raise :class:`CardValidationError` (with the schema's messages) unless ``xml`` is a valid
    applied model card."""
    etree = _lxml()
    schema = load_schema(schema_path)
    data = xml.encode("utf-8") if isinstance(xml, str) else xml
    try:
        doc = etree.fromstring(data, etree.XMLParser(no_network=True, resolve_entities=False))
    except etree.XMLSyntaxError as exc:
        raise CardValidationError(f"the CHAI card is not well-formed XML: {exc}") from None
    if not schema.validate(doc):
        errors = "; ".join(f"line {e.line}: {e.message}" for e in list(schema.error_log)[:5])
        raise CardValidationError(f"the CHAI card does not validate against the v0.2 schema: {errors}")


# what XML 1.0 cannot hold at all (not even as a character reference)
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """``text`` with the characters XML 1.0 forbids (control characters a group value in the
    data may hold) replaced by U+FFFD, as the Markdown cards show them."""
    return _NOT_XML.sub("\ufffd", text)


def build(ev: Evidence, deployer: DeployerFields) -> tuple[bytes, dict[str, Filled]]:
    """``(xml bytes, {element path: Filled})`` for the card."""
    from xml.etree import ElementTree as ET

    filled: dict[str, Filled] = {}
    ET.register_namespace("", NS)

    def el(parent, name: str, value: Filled | str | None = None, key: str | None = None):
        node = ET.SubElement(parent, f"{{{NS}}}{name}")
        if isinstance(value, Filled):
            node.text = xml_text(value.text)
            filled[key or name] = value
        elif value is not None:
            node.text = xml_text(value)
        return node

    d = deployer
    pick = facts.pick
    root = ET.Element(f"{{{NS}}}AppliedModelCard")
    basic = el(root, "BasicInfo")
    el(basic, "ModelName", pick(d, "model_name", "model name",
                                Filled(ev.model_name, "config", ["audit_report"])))
    el(basic, "ModelDeveloper", pick(d, "developer", "the organisation that developed the model"))
    el(basic, "DeveloperContact", pick(d, "developer_contact", "a contact for questions about the model"))

    release = el(root, "ReleaseInfo")
    el(release, "ReleaseStage", pick(d, "release_stage", "release stage (e.g. pilot, production)"))
    el(release, "ReleaseDate", pick(d, "release_date", "release date (YYYY-MM-DD)"))
    el(release, "ReleaseVersion", facts.release_version(ev, d))
    el(release, "GlobalAvailability", pick(d, "global_availability", "where the model is available"))
    if d.ehr_compatibility:
        ehr = el(release, "EHRCompatibility")
        for name in d.ehr_compatibility:
            el(ehr, "EHR", name)
        filled["EHRCompatibility"] = Filled(", ".join(d.ehr_compatibility), "deployer", ["cards_config"])
    if d.get("regulatory_approval"):
        el(release, "RegulatoryApproval", pick(d, "regulatory_approval", "regulatory approval"))

    summary = el(root, "ModelSummary")
    el(summary, "Summary", facts.summary(ev))
    keywords = el(summary, "Keywords")
    for word in ["domainfm", ev.task, *ev.report["model"].get("labels", [])[:20]]:
        el(keywords, "Keyword", str(word))
    filled["Keywords"] = Filled("task and labels", "config", ["audit_report"])

    uses = el(root, "UsesAndDirections")
    el(uses, "IntendedUseAndWorkflow", pick(d, "intended_use", "intended use and clinical workflow"))
    el(uses, "PrimaryIntendedUsers", pick(d, "primary_users", "primary intended users"))
    el(uses, "HowToUse", pick(d, "how_to_use", "how to use", Filled(
        f"Score documents with 'domainfm predict {ev.model_name} DOCUMENTS.jsonl'; review outputs before acting.",
        "config", ["task_info"] if "task_info" in ev.sources else ["audit_report"])))
    el(uses, "TargetedPatientPopulation", pick(d, "target_population", "targeted patient population",
                                               hint=f"cards.yaml: target_population; the audit covered: "
                                                    f"{', '.join(ev.report['data'].get('attributes', {}))}"))
    el(uses, "CautionedOutOfScopeSettings", pick(d, "out_of_scope", "settings the model must not be used in"))

    warnings = el(root, "Warnings")
    el(warnings, "KnownRisksAndLimitations", facts.joined(facts.limitations(ev), deployer_addition=d.get("known_risks")))
    el(warnings, "KnownBiasesOrEthicalConsiderations", facts.bias_examination(ev))
    el(warnings, "ClinicalRiskLevel", pick(d, "clinical_risk_level", "clinical risk level"))

    trust = el(root, "TrustIngredients")
    sysfacts = el(trust, "AISystemFacts")
    labels = ", ".join(ev.report["model"].get("labels", []))
    el(sysfacts, "OutcomesAndOutputs", Filled(f"{facts.task_phrase(ev)}; outputs: {labels}.", "config", ["audit_report"]))
    el(sysfacts, "ModelType", facts.model_type(ev))
    foundation = facts.foundation_models(ev)
    if foundation is not None:
        el(sysfacts, "FoundationModels", foundation)
    el(sysfacts, "InputDataSource", facts.input_data_source(ev) or pick(
        d, "training_data", "where the training data came from",
        hint="the model manifest lists no training data; cards.yaml: training_data"))
    el(sysfacts, "OutputAndInputDataTypes", facts.io_types(ev))
    el(sysfacts, "DevelopmentDataCharacterization", facts.joined(facts.development_data(ev), facts.preparation(ev)))
    el(sysfacts, "BiasMitigationApproaches", _bias_mitigation(ev, d))
    el(sysfacts, "OngoingMaintenance", pick(d, "ongoing_maintenance", "monitoring and maintenance plan"))
    el(sysfacts, "Security", facts.joined(facts.privacy(ev), deployer_addition=d.get("security")))
    el(sysfacts, "Transparency", facts.transparency(ev))
    transparency = el(trust, "TransparencyInformation")
    el(transparency, "FundingSource", pick(d, "funding_source", "funding source"))
    el(transparency, "ThirdPartyInformation", pick(d, "third_party", "third-party components",
                                                   facts.joined(facts.foundation_models(ev), facts.versions(ev))))
    el(transparency, "StakeholdersConsulted", pick(d, "stakeholders_consulted", "stakeholders consulted"))

    metrics = el(root, "KeyMetrics")
    all_metrics = ev.metrics()
    for group, name in (("usefulness", "UsefulnessUsabilityEfficacy"), ("fairness", "FairnessEquity"),
                        ("safety", "SafetyReliability")):
        chosen = [m for m in all_metrics if m.group == group]
        _key_metric(el, metrics, name, group, chosen, ev, filled)

    resources = el(root, "Resources")
    report = ev.sources["audit_report"]
    el(resources, "EvaluationReferences", pick(d, "evaluation_references", "evaluation references", Filled(
        f"domainfm audit report.json (sha256 {report.sha256[:16]}); HTML report index.html beside it.",
        "evidence", ["audit_report"])))
    if d.get("clinical_trial"):
        el(resources, "ClinicalTrial", pick(d, "clinical_trial", "clinical trial"))
    el(resources, "PeerReviewedPublications", pick(d, "peer_reviewed_publications", "peer-reviewed publications"))
    if d.get("reimbursement_status"):
        el(resources, "ReimbursementStatus", pick(d, "reimbursement_status", "reimbursement status"))
    el(resources, "PatientConsentOrDisclosure", pick(d, "patient_consent", "patient consent or disclosure"))
    el(root, "Bibliography", pick(d, "bibliography", "bibliography", Filled(
        "Mitchell et al., Model Cards for Model Reporting (2019); Coalition for Health AI, Applied Model Card "
        "schema v0.2.", "config", [])))

    ET.indent(root, space="  ")
    xml = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return xml, filled


def _bias_mitigation(ev: Evidence, d: DeployerFields) -> Filled:
    cfg = ev.finetune_config or {}
    parts = []
    weights = (cfg.get("train") or {}).get("class_weights")
    if weights is not None:
        parts.append(f"class weights during fine-tuning: {weights}")
    measured = ev.metrics()
    checks = [what for what, done in (
        ("subgroup performance", any(m.group == "fairness" for m in measured)),
        ("fairness gaps", any(" gap across " in m.label for m in measured)),
        ("counterfactual swaps", any(m.label.startswith("prediction flip rate") for m in measured))) if done]
    if checks:
        parts.append(f"{', '.join(checks)} measured before release (KeyMetrics)")
    base = Filled("Recorded measures: " + "; ".join(parts) + ".", "evidence",
                  [s for s in ("model_manifest", "audit_report") if s in ev.sources]) if parts else None
    return facts.joined(base, deployer_addition=d.get("bias_mitigation")) or Filled.missing(
        "bias mitigation approaches", "none recorded or measured; cards.yaml: bias_mitigation")


def _interpretation(group: str, chosen: list[Metric]) -> str:
    from domainfm.audit.cards.evidence import fmt

    if not chosen:
        return "Not measured."
    if group == "fairness":
        gaps = [m for m in chosen if " gap across " in m.label]
        worst = max(gaps, key=lambda m: m.value or 0, default=None)
        if worst is not None:
            ci = f" (95% CI {fmt(worst.ci[0])}-{fmt(worst.ci[1])})" if worst.ci else ""
            return (f"Largest {worst.label}: {fmt(worst.value)}{ci}. Gaps are max - min over the groups, never "
                    f"negative; with few documents per group even equal performance shows a gap, so read them "
                    f"with the per-group intervals.")
    head = chosen[0]
    ci = f" (95% CI {fmt(head.ci[0])}-{fmt(head.ci[1])})" if head.ci else ""
    return f"{head.label}: {fmt(head.value)}{ci}. Each result's ValueJson names its source file and path."


#: The test behind each kind of result that is not the audit's own evaluation of its documents.
_TESTS = {"flip": "counterfactual invariance tests", "deid_eval": "de-identification scored against gold PHI",
          "privacy_audit": "memorisation audit (domainfm audit-privacy)"}


def _test_type(ev: Evidence, chosen: list[Metric]) -> str:
    """The tests the results came from: only those that were run (no counterfactual test is
    claimed without a flip rate, nor a held-out test when the documents were not held out)."""
    if not chosen:
        return "Not measured."
    kinds = ["flip" if m.label.startswith("prediction flip rate") else m.source for m in chosen]
    tests = [facts.evaluation_kind(ev)] if "audit_report" in kinds else []
    return "; ".join(tests + [_TESTS[k] for k in _TESTS if k in kinds])


def _key_metric(el, parent, name: str, group: str, chosen: list[Metric], ev: Evidence, filled: dict) -> None:
    node = el(parent, name)
    el(node, "MetricGoal", GOALS[group])
    results = el(node, "Results")
    if not chosen:  # the schema needs one result: say that nothing was measured, with no number
        result = el(results, "MetricResult")
        el(result, "Label", f"{group}: not measured")
        el(result, "ValueJson", json.dumps({"kind": "not-measured", "value": None}))
        filled[f"KeyMetrics/{name}"] = Filled.missing(f"{group} metrics", "not measured by this audit")
    for m in chosen:
        result = el(results, "MetricResult")
        el(result, "Label", m.label)
        el(result, "ValueJson", json.dumps(m.value_json(ev.sources), ensure_ascii=False, allow_nan=False))
    if chosen:
        filled[f"KeyMetrics/{name}"] = Filled(f"{len(chosen)} results", "evidence", sorted({m.source for m in chosen}))
    el(node, "Interpretation", _interpretation(group, chosen))
    el(node, "TestType", _test_type(ev, chosen))
    el(node, "TestingDataDescription", facts.testing_data(ev).text)
    el(node, "ValidationProcessAndJustification", facts.validation_process(ev).text)
