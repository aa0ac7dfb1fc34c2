"""Card text every card shares, written from the evidence: what the model is, what it was
trained and tested on, how the data was prepared, what the audit found. Each function returns a
:class:`~domainfm.audit.cards.evidence.Filled` naming its origin and source files; the cards
only arrange these."""

from __future__ import annotations

from pathlib import Path

from domainfm.audit.cards.config import DeployerFields
from domainfm.audit.cards.evidence import Evidence, Filled, Metric, fmt, lookup


def pick(deployer: DeployerFields, name: str, what: str, fallback: Filled | None = None,
         hint: str | None = None) -> Filled:
    """The deployer's value for ``name``, else ``fallback``, else "to be completed"."""
    value = deployer.get(name)
    if value:
        return Filled(value, "deployer", ["cards_config"])
    if fallback is not None:
        return fallback
    return Filled.missing(what, hint or f"cards.yaml: {name}")


def joined(*parts: Filled | None, deployer_addition: str | None = None) -> Filled | None:
    """Several filled parts as one field: its origin is the strongest of theirs (evidence over
    config), plus what the deployer added."""
    parts = tuple(p for p in parts if p is not None and p.origin != "missing")
    if not parts and not deployer_addition:
        return None
    text = " ".join(p.text for p in parts)
    sources = [s for p in parts for s in p.sources]
    origin = "evidence" if any(p.origin == "evidence" for p in parts) else parts[0].origin if parts else "deployer"
    if deployer_addition:
        text = f"{text} Deployer: {deployer_addition}".strip()
        sources.append("cards_config")
    return Filled(text, origin, sorted(set(sources)))


def _labels(ev: Evidence) -> list[str]:
    return list(ev.report["model"].get("labels", []))


def task_phrase(ev: Evidence) -> str:
    labels = _labels(ev)
    if ev.task == "ner":
        return f"named-entity recognition of {len(labels)} entity types ({', '.join(labels)})"
    return f"document classification into {len(labels)} classes ({', '.join(labels)})"


def model_type(ev: Evidence) -> Filled:
    info, cfg = ev.task_info or {}, ev.finetune_config or {}
    if not info:
        why = f"the model's lineage is not verifiable ({ev.unverified_model})" if ev.unverified_model else \
            "the model folder's task info was not available"
        return Filled(f"{task_phrase(ev)}; {why}, so the architecture is not recorded here.", "config",
                      ["audit_report"])
    method = info.get("method", "unknown")
    lora = cfg.get("lora") or {}
    detail = (f"LoRA adapters (r={lora.get('r')}, alpha={lora.get('lora_alpha')}, modules "
              f"{', '.join(lora.get('target_modules') or [])})" if method == "lora" and lora else f"{method} fine-tuning")
    return Filled(f"Transformer text model for {task_phrase(ev)}, fine-tuned from {info.get('base_model', {}).get('name')} "
                  f"with {detail}; inputs truncated or split at {info.get('max_length')} tokens.",
                  # the LoRA settings are read from the model manifest's config (finetune.yaml is its copy)
                  "config", [s for s in ("task_info", "model_manifest", "finetune_config") if s in ev.sources])


def foundation_models(ev: Evidence) -> Filled | None:
    base = ev.base_model()
    if not base:
        return None
    text = f"Fine-tuned from {base}."
    sources = ["task_info"]
    pre = ev.pretrain_manifest
    if pre:
        cfg = pre.get("config") or {}
        steps = pre.get("steps") or lookup(cfg, ("train", "max_steps"))
        text += (f" That model is a domain-adaptive pretraining (domainfm pretrain) of {lookup(cfg, ('model', 'name'))}"
                 f" for {steps} steps on {_pretrain_inputs(pre)}.")
        sources.append("pretrain_manifest")
    return Filled(text, "evidence" if pre else "config", sources)


def _pretrain_inputs(pre: dict) -> str:
    """The pretraining inputs as its privacy gate recorded them: de-identified only where the gate
    traced every one to domainfm deid (allow_identified_data lets others through)."""
    n = len(pre.get("inputs") or [])
    checked = lookup(pre, ("privacy_gate", "inputs"))
    if not isinstance(checked, list) or len(checked) != n:  # no gate recorded: claim nothing
        return f"{n} input file(s)"
    unverified = sum(1 for c in checked if not (isinstance(c, dict) and c.get("deidentified") is True))
    if not unverified:
        return f"{n} de-identified input file(s)"
    return f"{n} input file(s), {unverified} of them not traced to domainfm deid (allow_identified_data)"


def io_types(ev: Evidence) -> Filled:
    info = ev.task_info or {}
    long_docs = (info.get("long_documents") or {}).get("strategy")
    out = ("entity spans with a type each" if ev.task == "ner" else
           "one class per document with a probability per class" if ev.report["model"].get("has_scores")
           else "one class per document (no scores)")
    limit = f", at most {info['max_length']} tokens per sequence" if info.get("max_length") else ""
    text = (f"Input: plain text (field '{info.get('text_field', 'text')}'){limit}"
            f"{f'; longer documents: {long_docs}' if long_docs else ''}. Output: {out}.")
    return Filled(text, "config", [s for s in ("task_info", "audit_report") if s in ev.sources])


def input_data_source(ev: Evidence) -> Filled | None:
    if not ev.training_data:
        return None
    parts = []
    for t in ev.training_data:
        stage = f"written by domainfm {t['stage']}" if t.get("stage") else "origin not recorded"
        parts.append(f"{t['name']} (sha256 {str(t.get('sha256'))[:12]}, {stage})")
    return Filled("Training data (from the model manifest): " + "; ".join(parts) + ".", "evidence",
                  ["model_manifest", *[t["role"] for t in ev.training_data if t.get("role")]])


def development_data(ev: Evidence) -> Filled:
    counts = (ev.model_manifest or {}).get("counts") or {}
    parts, sources = [], ["audit_report"]
    if counts.get("train_documents") is not None:
        parts.append(f"Fine-tuning read {counts['train_documents']} training and {counts.get('eval_documents', 0)} "
                     f"held-out documents.")
        sources.append("model_manifest")
    parts.append(testing_data(ev).text)
    return Filled(" ".join(parts), "evidence", sources)


def testing_data(ev: Evidence) -> Filled:
    data = ev.report["data"]
    dist = ", ".join(f"{k} {v}" for k, v in (data.get("label_distribution") or {}).items())
    groups = "; ".join(f"{attr}: " + ", ".join(f"{g} {n}" for g, n in a.get("groups", {}).items())
                       for attr, a in (data.get("attributes") or {}).items())
    scope = {"eval": "the documents fine-tuning held out", "all": "training documents among them (in-sample)",
             "unseen": "documents the model did not train on, by its recorded split"}
    where = scope.get(ev.audit_scope)
    if data.get("n_unlabelled"):  # the card must not read as if every document given was used
        used = (f"The audit was given {data.get('n_documents')} documents{f' ({where})' if where else ''}; "
                f"{data['n_unlabelled']} had no gold label and were left out. The audit used "
                f"{data.get('n_labelled')} labelled documents. ")
    else:
        used = f"The audit used {data.get('n_labelled')} labelled documents ({where or 'the documents given to it'}). "
    text = f"{used}{'Labels: ' + dist + '. ' if dist else ''}{'Groups: ' + groups + '.' if groups else ''}"
    if data.get("note"):
        text += f" Data note: {data['note']}"
    return Filled(text.strip(), "evidence", ["audit_report"])


def preparation(ev: Evidence) -> Filled:
    """Article 10(2)(c): the data-preparation operations the lineage shows."""
    parts, sources = [], ["audit_report"]
    for t in ev.training_data:
        cfg = t.get("config") or {}
        if t.get("stage") == "deid":
            counts = t.get("counts") or {}
            parts.append(f"{t['name']}: de-identified by domainfm deid (profile {cfg.get('profile', 'n/a')}, "
                         f"{counts.get('written', 'n/a')} records written, {counts.get('rejected', 0)} rejected).")
        elif t.get("stage"):
            parts.append(f"{t['name']}: written by domainfm {t['stage']}.")
        if t.get("role"):
            sources.append(t["role"])
    deid_status = (ev.report.get("privacy") or {}).get("statement")
    if deid_status:
        parts.append(f"De-identification status of the training data: {deid_status}.")
    cfg = ev.finetune_config or {}
    if cfg:
        label_field = lookup(cfg, ("data", "label_field")) or ev.report["model"].get("label_field")
        recorded = lookup(ev.finetune_metrics or {}, ("data",)) or {}
        if isinstance(recorded, dict) and isinstance(recorded.get("eval_source"), str):
            # what fine-tuning did: the key 'auto' resolved to, or a separate evaluation file (then
            # eval_fraction was never used, and the file may be the training data: "a fit measure")
            key = recorded.get("split_key")
            split = f"fine-tuning's evaluation documents: {recorded['eval_source']}{f', split key {key}' if key else ''}"
            sources.append("finetune_metrics")
        else:
            split = (f"held-out split: eval_fraction {lookup(cfg, ('data', 'eval_fraction'))}, split key "
                     f"{lookup(cfg, ('data', 'split_key'))}")
        parts.append(f"Labels from '{label_field}'; {split}.")
        sources.append("model_manifest")
    deid = [m for m in ev.metrics() if m.source == "deid_eval"]
    if deid:
        parts.append("Measured de-identification: " + "; ".join(f"{m.label} {fmt(m.value)}" for m in deid) + ".")
        sources.append("deid_eval")
    return Filled(" ".join(parts), "evidence", sorted(set(sources)))


def largest_gap(ev: Evidence) -> Metric | None:
    gaps = [m for m in ev.metrics() if m.group == "fairness" and " gap across " in m.label]
    return max(gaps, key=lambda m: m.value or 0, default=None)


def _intervals(ev: Evidence) -> str:
    """Which of the fairness results carry a 95% interval: none without bootstrap resamples, and
    an NER audit's F1 gaps never do."""
    fairness = [m for m in ev.metrics() if m.group == "fairness" and m.ci]
    per_group = any(" gap across " not in m.label for m in fairness)
    gaps = any(" gap across " in m.label for m in fairness)
    if per_group and gaps:
        return ", with 95% bootstrap intervals per group and for each gap"
    if per_group or gaps:
        return f", with 95% bootstrap intervals {'per group (the gaps have none)' if per_group else 'for each gap'}"
    return "; confidence intervals: not measured"


def bias_examination(ev: Evidence) -> Filled:
    """Article 10(2)(f)/(g): what was examined for bias and what it found."""
    attrs = list((ev.report["data"].get("attributes") or {}))
    if not attrs:
        return Filled("Performance across groups: not measured (the audit grouped the documents by no attribute).",
                      "evidence", ["audit_report"])
    both = " (and their pairwise intersections)" if lookup(ev.report, ("config", "intersections")) and len(attrs) > 1 else ""
    text = f"Performance was compared across {', '.join(attrs)}{both}{_intervals(ev)}. "
    gap = largest_gap(ev)
    if gap is not None:
        ci = f" (95% CI {fmt(gap.ci[0])}-{fmt(gap.ci[1])})" if gap.ci else ""
        text += f"Largest gap: {gap.label} = {fmt(gap.value)}{ci}. "
    for attr, groups in ev.not_comparable().items():
        text += f"{attr}: not comparable: {'one group' if len(groups) == 1 else 'no group'} in the audited data. "
    for attr, groups in ev.not_measured().items():
        shown = ", ".join(f"{g} (n={fmt(n)})" for g, n in groups.items())
        text += (f"{attr}: F1 n/a, not measured (no gold and no predicted entity) and left out of the gaps for "
                 f"{shown}. ")
    flips = [m for m in ev.metrics() if m.label.startswith("prediction flip rate")]
    if flips:
        text += "Counterfactual swaps: " + "; ".join(f"{m.label.split('swapping ')[1]} {fmt(m.value)}" for m in flips) + "."
    return Filled(text.strip(), "evidence", ["audit_report"])


def data_gaps(ev: Evidence) -> Filled:
    """Article 10(2)(h) and the card's known limitations: small or missing groups, warnings."""
    data = ev.report["data"]
    # reports written before patients were counted say only the documents
    rule = data.get("small_group_rule") or f"fewer than {data.get('min_group_size')} documents"
    parts = []
    for attr, a in (data.get("attributes") or {}).items():
        if a.get("small_groups"):
            parts.append(f"{attr}: groups with {rule} ({', '.join(a['small_groups'])}) have wide intervals")
        if a.get("missing"):
            parts.append(f"{attr}: {a['missing']} documents without the attribute")
    for attr, section in (ev.report["performance"].get("by_attribute") or {}).items():
        small = [g for g, m in (section.get("groups") or {}).items() if m.get("small")]
        if " x " in attr and small:  # the attributes' own groups are listed above from the data section
            parts.append(f"{attr}: {len(small)} of {len(section['groups'])} intersection groups with {rule}")
    parts += list(ev.report.get("warnings") or [])
    if ev.audit_scope == "all":
        parts.append("the audit includes training documents (in-sample): numbers are optimistic")
    text = ("; ".join(parts) + ".") if parts else "No small or missing groups among the audited attributes."
    text = text.replace("..", ".")
    return Filled(text, "evidence", ["audit_report"])


def limitations(ev: Evidence) -> Filled:
    parts = [data_gaps(ev).text]
    ece = next((m for m in ev.metrics() if m.label == "expected calibration error"), None)
    if ece is not None:
        parts.append(f"Expected calibration error {fmt(ece.value)}: treat probabilities as scores, not risks, "
                     f"unless recalibrated on the deployment population.")
    parts.append(f"Evaluated on {ev.report['data'].get('n_labelled')} documents; performance on another site, "
                 f"note type or population is not established by this audit.")
    return Filled(" ".join(parts), "evidence", ["audit_report"])


def privacy(ev: Evidence) -> Filled:
    parts, sources = [], ["audit_report"]
    status = (ev.report.get("privacy") or {}).get("statement")
    if status:
        parts.append(f"Training data de-identification: {status}.")
    mem = (ev.report.get("privacy") or {}).get("memorization") or {}
    if ev.privacy is not None:
        gate = "passed" if lookup(ev.privacy, ("gate", "passed")) else "did not pass"
        parts.append(f"Memorisation audit (domainfm audit-privacy) of {ev.privacy_subject()[0]}: "
                     f"{ev.privacy.get('statement')}; release gate {gate}.")
        sources.append("privacy_audit")
    elif mem.get("statement"):
        parts.append(f"Memorisation audit of the pretrained model: {mem['statement']}")
    else:
        parts.append("No memorisation audit was given (run domainfm audit-privacy and pass --privacy-audit).")
    scan = lookup(ev.report, ("privacy", "report_scan", "patterns"))
    if scan:
        parts.append(f"Reports and cards are scanned for PHI patterns ({', '.join(scan)}) before they are written.")
    return Filled(" ".join(parts), "evidence", sources)


def summary(ev: Evidence) -> Filled:
    findings = " ".join(f.get("text", "") for f in ev.report.get("summary", []))
    text = f"A model for {task_phrase(ev)}, adapted with domainfm. Audit findings: {findings}".strip()
    return Filled(text, "evidence", ["audit_report"])


def evaluation_kind(ev: Evidence) -> str:
    """What kind of test the audit was, by which documents it read: only the pipeline knows
    whether they were held out from fine-tuning (``audit_scope``)."""
    return {"eval": "Retrospective held-out evaluation (internal validation)",
            "unseen": "Retrospective evaluation on documents the model did not train on (by its recorded split)",
            "all": "Retrospective in-sample evaluation: the documents include the training data (not an independent "
                   "test)"}.get(ev.audit_scope, "Retrospective evaluation on the documents given to the audit (whether "
                                                "they were held out from training is not recorded)")


def validation_process(ev: Evidence) -> Filled:
    """How the numbers were obtained, naming only the methods whose results the cards show."""
    d = ev.report.get("definitions") or {}
    measured = ev.metrics()
    with_ci = [m for m in measured if m.ci]
    parts = [d.get("ci") if with_ci else "confidence intervals: not measured",
             d.get("gap_ci") if any(" gap across " in m.label for m in with_ci) else None,
             d.get("ece") if any(m.label == "expected calibration error" for m in measured) else None,
             d.get("multiclass_fairness") if any(" gap across " in m.label for m in measured) else None]
    kind = evaluation_kind(ev)
    text = f"By domainfm audit: {kind[0].lower()}{kind[1:]}. " + "; ".join(str(p) for p in parts if p) + "."
    return Filled(text, "config", ["audit_report"])


def versions(ev: Evidence) -> Filled:
    env = lookup(ev.model_manifest or {}, ("environment", "packages")) or {}
    shown = ", ".join(f"{k} {v}" for k, v in env.items() if v)
    version = (ev.model_manifest or {}).get("domainfm_version") or (ev.task_info or {}).get("domainfm_version")
    if not version:
        return Filled.missing("software versions", "the model folder's manifest was not found")
    text = f"Trained with domainfm {version or 'n/a'}" + (f" ({shown})" if shown else "") + "."
    return Filled(text, "evidence" if ev.model_manifest else "config",
                  [s for s in ("model_manifest", "task_info") if s in ev.sources])


def release_version(ev: Evidence, deployer: DeployerFields) -> Filled:
    fallback = None
    sha = (ev.sources.get("model_manifest") or ev.sources.get("task_info"))
    if sha is not None:  # a folder without manifest.json is fingerprinted by its domainfm_task.json
        what = "model manifest" if sha.role == "model_manifest" else Path(sha.path).name
        fallback = Filled(f"{what} sha256 {sha.sha256[:16]}", "evidence", [sha.role])
    return pick(deployer, "release_version", "release version", fallback)


def transparency(ev: Evidence) -> Filled:
    text = ("This card is generated by domainfm from the audit report and lineage manifests; every source file is "
            "listed with its sha256 in cards.json.")
    exp = ev.report.get("explanations") or {}
    if exp.get("n_explained"):
        text += (f" Explanations: {exp.get('method')}, {exp['n_explained']} documents explained; top tokens per "
                 f"class and highlighted examples are in the HTML report.")
        return Filled(text, "evidence", ["audit_report"])
    return Filled(text, "config", ["audit_report"])
