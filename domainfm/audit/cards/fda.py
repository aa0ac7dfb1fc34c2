"""An FDA-style model card (``fda_model_card.md``): the model card elements suggested in the
FDA's draft guidance "Artificial Intelligence-Enabled Device Software Functions: Lifecycle
Management and Marketing Submission Recommendations" (January 2025): identification, intended
use, model description, data, performance overall and by subgroup, limitations, and lifecycle
management, filled the same way as the other cards.
"""

from __future__ import annotations

from domainfm.audit.cards import facts
from domainfm.audit.cards.config import DeployerFields
from domainfm.audit.cards.document import CardDocument, Section
from domainfm.audit.cards.evidence import Evidence, Filled

TITLE = "Model card (FDA draft guidance on AI-enabled device software functions, 2025)"


def build(ev: Evidence, d: DeployerFields) -> CardDocument:
    pick = facts.pick
    metrics = ev.metrics()
    ident = Section("identification", "Device and model identification")
    ident.add("Model name", pick(d, "model_name", "model name", Filled(ev.model_name, "config", ["audit_report"])))
    ident.add("Model version", facts.release_version(ev, d))
    ident.add("Manufacturer / developer", pick(d, "developer", "manufacturer"))
    ident.add("Contact", pick(d, "developer_contact", "contact"))
    ident.add("Release date", pick(d, "release_date", "release date (YYYY-MM-DD)"))
    ident.add("Regulatory status", pick(d, "regulatory_approval", "regulatory status (e.g. not cleared; 510(k) number)"))

    use = Section("use", "Intended use")
    use.add("Indications for use / intended use", pick(d, "intended_use", "indications for use"))
    use.add("Intended users", pick(d, "primary_users", "intended users"))
    use.add("Intended patient population", pick(d, "target_population", "intended patient population"))
    use.add("Use environment and workflow", pick(d, "how_to_use", "use environment and clinical workflow"))
    use.add("Contraindications / out of scope", pick(d, "out_of_scope", "settings and populations out of scope"))
    use.add("Clinical risk level", pick(d, "clinical_risk_level", "clinical risk level"))

    model = Section("model", "Model description")
    model.add("Inputs and outputs", facts.io_types(ev))
    model.add("Architecture and development", facts.model_type(ev))
    model.add("Foundation model", facts.foundation_models(ev), "foundation model (none recorded)")
    model.add("Software versions", facts.versions(ev))

    data = Section("data", "Data")
    data.add("Training data sources", facts.input_data_source(ev) or pick(
        d, "training_data", "training data sources", hint="none recorded; cards.yaml: training_data"))
    data.add("Data preparation and de-identification", facts.preparation(ev))
    data.add("Training and test data size", facts.development_data(ev))
    data.add("Reference standard", Filled(
        f"Gold labels from the documents' '{ev.report['model'].get('label_field', 'label')}' field, as recorded "
        f"in the data; how they were assigned is stated by the data owner.", "config", ["audit_report"]))
    data.add("Test data independence", Filled(
        {"eval": "The test documents are the ones fine-tuning held out (patient-disjoint when the split key is a "
                 "patient id).", "all": "The audit included training documents: not an independent test.",
         "unseen": "The test documents are none the model trained on (by the split it recorded)."}.get(
            ev.audit_scope,
            "The documents given to the audit; their independence from the training data is not recorded."),
        "config", ["audit_report"]))
    data.metrics = [m for m in metrics if m.source == "deid_eval"]

    perf = Section("performance", "Performance")
    perf.add("Testing", facts.validation_process(ev))
    perf.metrics = [m for m in metrics if m.group == "usefulness"]
    sub = Section("subgroups", "Subgroup performance")
    sub.add("Examination", facts.bias_examination(ev))
    sub.metrics = [m for m in metrics if m.group == "fairness"]
    safety = Section("safety", "Calibration, robustness and privacy")
    safety.add("Privacy", facts.privacy(ev))
    safety.metrics = [m for m in metrics if m.group == "safety" and m.source != "deid_eval"]

    limits = Section("limitations", "Limitations and risks")
    limits.add("Known limitations", facts.joined(facts.limitations(ev), deployer_addition=d.get("known_risks")))
    limits.add("Risk management", pick(d, "risk_management", "risk management"))
    limits.add("Human oversight", pick(d, "human_oversight", "human oversight in the workflow"))

    life = Section("lifecycle", "Lifecycle management")
    life.add("Performance monitoring", pick(d, "post_market_plan", "post-market performance monitoring",
                                            facts.pick(d, "ongoing_maintenance", "monitoring") if d.get(
                                                "ongoing_maintenance") else None))
    life.add("Planned changes (PCCP)", pick(d, "changes", "predetermined change control plan"))
    life.add("Cybersecurity", facts.joined(facts.privacy(ev), deployer_addition=d.get("security")))

    intro = ("A model card with the elements the FDA's January 2025 draft guidance on AI-enabled device software "
             "functions suggests, written by domainfm from the audit report and the model's lineage. It is not a "
             "regulatory submission; the manufacturer completes and verifies it.")
    return CardDocument("fda", TITLE, intro, [ident, use, model, data, perf, sub, safety, limits, life])
