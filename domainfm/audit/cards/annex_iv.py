"""EU AI Act technical documentation (Regulation (EU) 2024/1689, Annex IV), with the Article 10
data governance points, as ``annex_iv.md`` and ``annex_iv.json``.

Filled from lineage where domainfm knows the answer (the development process, the data, its
preparation and de-identification, the examination for bias, the metrics); the points only the
provider can state (intended purpose, risk management, human oversight, changes, standards,
declaration of conformity, post-market monitoring) come from ``cards.yaml`` or are marked "To be
completed by the deployer".
"""

from __future__ import annotations

from domainfm.audit.cards import facts
from domainfm.audit.cards.config import DeployerFields
from domainfm.audit.cards.document import CardDocument, Section
from domainfm.audit.cards.evidence import Evidence, Filled, Metric

TITLE = "EU AI Act technical documentation (Annex IV)"


def build(ev: Evidence, d: DeployerFields) -> CardDocument:
    pick = facts.pick
    metrics = ev.metrics()
    general = Section("1", "1. General description of the AI system")
    general.add("Intended purpose (1(a))", pick(d, "intended_use", "intended purpose"))
    general.add("Provider (1(a))", pick(d, "developer", "provider name"))
    general.add("Provider contact", pick(d, "developer_contact", "provider contact"))
    general.add("System name", pick(d, "model_name", "system name", Filled(ev.model_name, "config", ["audit_report"])))
    general.add("Version (1(a))", facts.release_version(ev, d))
    general.add("Software versions (1(c))", facts.versions(ev))
    general.add("Forms placed on the market (1(d))", pick(d, "global_availability", "forms of placing on the market"))
    general.add("Hardware (1(e))", pick(d, "hardware", "hardware the system runs on"))
    general.add("Instructions for use (1(h))", pick(d, "how_to_use", "instructions for use"))

    development = Section("2", "2. Elements of the AI system and its development process")
    development.add("Methods and pre-trained systems used (2(a))",
                    facts.joined(facts.model_type(ev), facts.foundation_models(ev)))
    development.add("Design choices: what the system optimises (2(b))", _design(ev))
    development.add("Input and output (2(b))", facts.io_types(ev))
    development.add("Human oversight measures (2(e))", pick(d, "human_oversight", "human oversight measures (Art. 14)"))
    development.add("Pre-determined changes (2(f))", pick(d, "changes", "pre-determined changes and how they are assessed"))
    development.add("Validation and testing procedures (2(g))",
                    facts.joined(facts.validation_process(ev), facts.testing_data(ev)))
    development.add("Cybersecurity measures (2(h))", facts.joined(facts.privacy(ev), deployer_addition=d.get("security")))

    data = Section("2d", "2(d). Data and data governance (Article 10)")
    data.add("Collection and origin (10(2)(b))", facts.input_data_source(ev) or pick(
        d, "training_data", "origin of the training data", hint="the model manifest lists none; cards.yaml: "
        "training_data"))
    data.add("Preparation: annotation, labelling, cleaning, de-identification (10(2)(c))", facts.preparation(ev))
    data.add("Availability, quantity and suitability (10(2)(e))", facts.development_data(ev))
    data.add("Examination for possible biases (10(2)(f))", facts.bias_examination(ev))
    data.add("Measures to detect, prevent and mitigate biases (10(2)(g))",
             pick(d, "bias_mitigation", "bias mitigation measures"))
    data.add("Data gaps and shortcomings (10(2)(h))", facts.data_gaps(ev))
    data.metrics = [m for m in metrics if m.source == "deid_eval"]

    monitoring = Section("3", "3. Monitoring, functioning and control; 4. appropriateness of the metrics")
    monitoring.add("Capabilities and limitations in performance", facts.limitations(ev))
    monitoring.add("Accuracy for the groups the system is used on", facts.bias_examination(ev))
    monitoring.add("Foreseeable unintended outcomes and risks", pick(d, "known_risks", "foreseeable risks to health, "
                                                                      "safety and fundamental rights"))
    monitoring.add("Choice of metrics", _metric_choice(ev, metrics))
    monitoring.metrics = [m for m in metrics if m.source != "deid_eval"]

    rest = Section("5", "5.-9. Risk management, changes, standards, conformity, post-market monitoring")
    rest.add("Risk management system (5, Art. 9)", pick(d, "risk_management", "risk management system"))
    rest.add("Changes through the lifecycle (6)", pick(d, "changes", "relevant changes through the lifecycle"))
    rest.add("Harmonised standards applied (7)", pick(d, "standards_applied", "standards and specifications applied"))
    rest.add("EU declaration of conformity (8)", pick(d, "declaration_of_conformity", "declaration of conformity"))
    rest.add("Post-market monitoring plan (9, Art. 72)", pick(d, "post_market_plan", "post-market monitoring plan"))

    intro = ("Technical documentation following Annex IV of Regulation (EU) 2024/1689 (AI Act), written by domainfm "
             "from the audit report and the model's lineage. It documents the model component; the provider "
             "completes the points that concern the whole system and its placing on the market.")
    return CardDocument("annex-iv", TITLE, intro, [general, development, data, monitoring, rest])


def _metric_choice(ev: Evidence, metrics: list[Metric]) -> Filled:
    """Point 4: the metrics chosen for each purpose, as far as the cards show results of them;
    a purpose with none says "not measured" rather than naming a metric nobody computed."""
    ner = ev.task == "ner"

    def has(text: str) -> bool:
        return any(text in m.label for m in metrics)

    purposes = {
        "Usefulness": [("entity precision, recall and F1" if ner else "accuracy, macro-F1 and per-class F1",
                        any(m.group == "usefulness" for m in metrics))],
        "Discriminatory impact": [(f"per-group {'F1' if ner else 'accuracy'}",
                                   any(m.group == "fairness" for m in metrics)),
                                  ("the gaps between groups", has(" gap across ")),
                                  ("demographic parity and equalized odds differences",
                                   has("demographic parity difference"))],
        "Robustness": [("calibration error", has("calibration error")),
                       ("counterfactual flip rates", has("prediction flip rate"))],
        "Privacy": [("de-identification recall", any(m.source == "deid_eval" for m in metrics)),
                    ("memorisation tests", any(m.source == "privacy_audit" for m in metrics))],
    }
    text = " ".join(f"{purpose}: {', '.join(what for what, done in choices if done) or 'not measured'}."
                    for purpose, choices in purposes.items())
    return Filled(text, "config", sorted({m.source for m in metrics} | {"audit_report"}))


def _design(ev: Evidence) -> Filled:
    cfg = ev.finetune_config or {}
    train = cfg.get("train") or {}
    if not train:
        return Filled.missing("design choices", "the fine-tuning config was not found beside the model")
    # what the run did (metrics.json), not only what was asked: max_steps overrides epochs, and
    # the checkpoint kept is the best by train.metric (the task's default when unset) whenever
    # fine-tuning evaluated during training
    done = ev.finetune_metrics if isinstance(ev.finetune_metrics, dict) else {}
    run = done.get("train") if isinstance(done.get("train"), dict) else {}
    if run.get("steps") is not None:
        length = f"{run['steps']} steps ({run.get('epochs')} epochs)"
    else:
        cap = f", at most {train['max_steps']} steps" if train.get("max_steps") else ""
        length = f"{train.get('epochs')} epochs{cap}"
    metric = done.get("metric") or train.get("metric") or "the task's default metric"
    if "best_step" in done and done["best_step"] is None:
        choice = "the last step (no evaluation during training chose another)"
    else:
        step = f" (step {done['best_step']})" if done.get("best_step") is not None else ""
        choice = f"the best {metric} on fine-tuning's evaluation documents{step}"
    text = (f"Fine-tuning minimises cross-entropy on the labelled documents ({length}, "
            f"learning rate {train.get('lr')}, batch size {train.get('batch_size')}, seed {train.get('seed')}, "
            f"class weights {train.get('class_weights')}); checkpoint chosen by {choice}.")
    return Filled(text, "config", [r for r in ("model_manifest", "finetune_config", "finetune_metrics")
                                   if r in ev.sources])
