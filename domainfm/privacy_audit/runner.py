"""``audit_privacy``: what a trained language model or classifier memorised, and whether it may
be released.

Measures canary exposure (when the training run planted canaries), membership inference on
training vs held-out documents, and the regurgitation of originals (vault) or planted
identifiers; checks the release gate; writes ``report.json``, ``summary.md`` (the model card's
privacy statement) and ``manifest.json``. The report holds numbers, formats, PHI types and
canary ids only: before anything is written, every output is checked for PHI patterns and for
every canary secret and probed identifier, and nothing is written if one is found.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from domainfm.errors import ConfigError, CorpusError, DomainFMError
from domainfm.privacy_audit.config import PrivacyAuditConfig, PrivacyGateConfig

Event = Callable[[str], None]


class PrivacyGateError(DomainFMError):
    """The model exceeds a release threshold; the message gives the numbers."""


@dataclass
class PrivacyAuditResult:
    """Where the report went and what it says.

    Attributes:
        report: ``report.json``'s content.
        passed: every check with a threshold was measured and passed.
    """

    out_dir: Path | None
    report: dict[str, Any]

    @property
    def passed(self) -> bool:
        return bool(self.report["gate"]["passed"])

    @property
    def statement(self) -> str:
        return self.report["statement"]


def _read_manifest(model_dir: Path) -> dict[str, Any]:
    """The model's ``manifest.json`` (``{}`` without one: a plain ``save_pretrained`` folder),
    with the fields the audit reads checked.

    Raises:
        ConfigError: naming the file and the malformed field, never its value (a manifest
            holds the canary secrets).
    """
    path = model_dir / "manifest.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ConfigError(f"{path}: not a readable JSON file (the manifest domainfm pretrain or finetune "
                          "writes)") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a JSON object (the manifest domainfm pretrain or finetune writes)")

    def malformed(field: str, what: str) -> ConfigError:
        return ConfigError(f"{path}: field '{field}' must be {what}")

    seed, stage, base, config, canaries = (data.get(k) for k in ("seed", "stage", "base_model", "config", "canaries"))
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise malformed("seed", "an int >= 0")
    if stage is not None and not isinstance(stage, str):
        raise malformed("stage", "a string")
    if base is not None and not (isinstance(base, dict) and isinstance(base.get("name"), (str, type(None)))):
        raise malformed("base_model", "an object whose 'name' is a string")
    if config is not None and not isinstance(config, dict):
        raise malformed("config", "an object")
    model = (config or {}).get("model")
    if model is not None and not (isinstance(model, dict) and isinstance(model.get("tokenizer"), (str, type(None)))):
        raise malformed("config.model", "an object whose 'tokenizer' is a string or null")
    if canaries is not None and not (isinstance(canaries, list) and all(isinstance(c, dict) for c in canaries)):
        raise malformed("canaries", "a list of canary objects")
    section = (config or {}).get("data")
    field = section.get("text_field") if isinstance(section, dict) else None
    if field is not None and not (isinstance(field, str) and (field == "text" or
                                                            (field.startswith("meta.") and len(field) > 5))):
        raise malformed("config.data.text_field", "'text' or 'meta.<key>' (the field the model was trained on)")
    return data


def _trained_text_field(manifest: dict[str, Any]) -> str:
    """The field the model was trained on (``data.text_field`` of the config in its manifest;
    ``text`` when none is recorded). A pretrain or finetune run can train on a ``meta.<key>``:
    scoring ``text`` then measures text the model never saw, and says nothing of what it learned."""
    data = (manifest.get("config") or {}).get("data")
    field = data.get("text_field") if isinstance(data, dict) else None
    return field or "text"


def _located(source, flag: str) -> list[tuple[str, Any]]:
    """``(where, document)`` pairs: ``file:line`` for a JSONL path, else ``flag`` and the
    position (an error can then say where a document is without quoting its id)."""
    from domainfm.corpus.io import read_located_documents

    if source is None:
        return []
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise CorpusError(f"{path}: no such file")
        return list(read_located_documents(path))
    return [(f"{flag} document {i}", doc) for i, doc in enumerate(source, 1)]


def _docs(source) -> list:
    return [doc for _, doc in _located(source, "")]


def _check_planted_labels(docs) -> None:
    """Planted spans must carry a canonical PHI label: the report names each probed type, and any
    other label (which could be anything, a name included) is refused by count, never echoed."""
    from domainfm.deid.labels import CANONICAL

    unknown = sum(1 for doc in docs for span in doc.spans if span.label not in CANONICAL)
    if unknown:
        raise ConfigError(f"--planted: {unknown} span(s) have a label that is not a PHI type; use one of "
                          f"{', '.join(sorted(CANONICAL))}")


def _with_known_labels(target, train_docs: list, holdout_docs: list, data: dict[str, Any]
                       ) -> tuple[list, list, tuple[str, str] | None]:
    """A classifier's documents whose task loss can be computed, with the others counted in
    ``data`` by reason (no gold label, or a class the model does not know), and the warning:
    ``(for the report, for the console)``. The report gets counts only (it holds numbers); the
    console names the unknown classes unless they look like identifiers (:func:`_unknown_labels`)."""
    unknown: Counter = Counter()
    kept = {}
    for side, docs in (("train", train_docs), ("holdout", holdout_docs)):
        kept[side] = []
        for doc in docs:
            status, label = target.gold_status(doc)
            if status == "known":
                kept[side].append(doc)
            elif status == "missing":
                data[f"{side}_documents_left_out_without_label"] += 1
            else:
                data[f"{side}_documents_left_out_label_unknown_to_model"] += 1
                unknown[label] += 1
    parts = []
    for reason, what in (("without_label", "no gold label"),
                         ("label_unknown_to_model", f"a gold label the model does not know ({len(unknown)} distinct)")):
        n_train, n_holdout = (data[f"{side}_documents_left_out_{reason}"] for side in ("train", "holdout"))
        if n_train or n_holdout:
            parts.append(f"{n_train} training and {n_holdout} held-out document(s) with {what}")
    if not parts:
        return kept["train"], kept["holdout"], None
    warning = (f"left out of membership inference: {'; '.join(parts)} in field {target.label_field!r}")
    console = warning + (f" (unknown: {_unknown_labels(unknown)})" if unknown else "")
    return kept["train"], kept["holdout"], (warning, console)


def _unknown_labels(unknown: Counter) -> str:
    """The console's list of gold labels a classifier does not know, or only their counts when a
    value could identify someone: a label field pointing at the wrong column holds names or record
    numbers ("MRN 88123456"), and a few of them pass the many-distinct-values test of
    :func:`~domainfm.corpus.summary.label_counts`. A value is shown only when the deid rules, the
    PHI patterns and the dictionary test (:func:`domainfm.audit.privacy.mask_identifiers`) find
    nothing in it."""
    from domainfm.audit.privacy import mask_identifiers
    from domainfm.corpus.summary import label_counts, looks_like_identifiers

    if looks_like_identifiers(unknown):
        return label_counts(unknown)
    values = {str(label): str(label) for label in unknown}
    masked, _ = mask_identifiers(values)
    flagged = sum(1 for label in values if masked[label] != label)
    if flagged:
        return (f"{len(values)} distinct values (not shown: {flagged} of them read as names, record numbers or "
                "words no dictionary explains; check the label field)")
    return label_counts(unknown)


def _sample(items: list, n: int, rng: random.Random) -> list:
    if not n or len(items) <= n:
        return items
    return [items[i] for i in sorted(rng.sample(range(len(items)), n))]


def gate_checks(report: dict[str, Any], gate: PrivacyGateConfig) -> dict[str, Any]:
    """Compare the measured values with the thresholds.

    A check with a threshold that measured nothing is ``not measured``, with the reason, and the
    gate does not pass (a release gate must never pass on nothing measured); a null threshold
    is ``not checked``.
    """
    exposure = report.get("exposure") or {}
    membership = report.get("membership") or {}
    regurgitation = report.get("regurgitation") or {}
    measured = {
        "max_exposure": exposure.get("max_exposure"),
        "max_mia_auc": membership.get("auc"),
        # with no probe scored, "0 beyond chance" is 0 of 0: no evidence either way
        "max_regurgitated": regurgitation.get("beyond_chance") if regurgitation.get("scored") else None,
    }
    skipped = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in
                        (regurgitation.get("skipped") or {}).items() if n)
    unmeasured = {
        "max_exposure": exposure.get("note"),
        "max_mia_auc": membership.get("note"),
        "max_regurgitated": regurgitation.get("note")
        or f"none of the {regurgitation.get('probes', 0)} {regurgitation.get('source', 'probes')} could be scored"
        + (f"; skipped: {skipped}" if skipped else ""),
    }
    what = {"max_exposure": "highest canary exposure (bits)", "max_mia_auc": "membership-inference AUC",
            "max_regurgitated": "identifiers ranked first beyond their baseline (held-out originals, else the base model, else chance)"}
    checks = []
    for name, value in measured.items():
        threshold = getattr(gate, name)
        top = (report.get("exposure") or {}).get("max_possible")
        reason = None
        if threshold is None:
            status = "not checked"
        elif value is None:
            status, reason = "not measured", unmeasured[name]
        elif value > threshold:
            status = "failed"
        elif name == "max_exposure" and top is not None and top <= threshold:
            status = "inconclusive"  # no canary could exceed it: too few reference secrets
        else:
            status = "passed"
        checks.append({"check": name, "what": what[name], "value": value, "threshold": threshold, "status": status,
                       **({"reason": reason} if reason else {})})
    return {"passed": all(c["status"] in ("passed", "not checked") for c in checks), "checks": checks}


def _fmt(value: Any) -> str:
    return "n/a" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))


def gate_message(report: dict[str, Any], section: str = "") -> str:
    """One line: which thresholds the model exceeds, with the numbers. ``section`` prefixes the
    settings it names (``privacy.`` in a pipeline: ``privacy.gate.max_exposure``)."""
    parts = []
    for c in report["gate"]["checks"]:
        if c["status"] == "failed":
            parts.append(f"{c['what']} {_fmt(c['value'])} > {c['check']} {_fmt(c['threshold'])}")
        elif c["status"] == "inconclusive":
            parts.append(f"{c['check']} {_fmt(c['threshold'])} cannot be exceeded with "
                         f"{report['config']['n_candidates']} reference secrets (at most "
                         f"{_fmt(report['exposure']['max_possible'])} bits): raise {section}n_candidates")
        elif c["status"] == "not measured":
            parts.append(f"{c['check']} not measured ({c['reason']}): measure it, or set {section}gate.{c['check']} "
                         "to null to release without it")
    return "privacy gate failed: " + "; ".join(parts) if parts else "privacy gate passed"


def _statement(report: dict[str, Any]) -> str:
    parts = []
    exp = report.get("exposure") or {}
    if exp.get("max_exposure") is not None:
        parts.append(f"highest canary exposure {exp['max_exposure']:.2f} of {exp['max_possible']:.2f} bits "
                     f"({len(exp['canaries'])} canaries)")
    mia = report.get("membership") or {}
    if mia.get("auc") is not None:
        attack = mia["attacks"][mia["strongest"]]
        ci = attack.get("auc_ci")
        ci_text = f" (95% CI {ci[0]:.2f}-{ci[1]:.2f})" if ci else ""
        parts.append(f"membership-inference AUC {attack['auc']:.2f}{ci_text}, {mia['strongest']} attack, "
                     f"{mia['members']} training vs {mia['nonmembers']} held-out documents")
        check = (report.get("data") or {}).get("group_check") or {}
        if report["config"].get("keep_shared_groups") and check.get("holdout_documents_sharing_a_training_group"):
            parts[-1] += (f" ({check['holdout_documents_sharing_a_training_group']} held-out documents share a "
                          f"{check['split_key']} with training documents and were kept: it may under-state leakage)")
    reg = report.get("regurgitation") or {}
    if not reg.get("scored"):
        reg = {}  # nothing scored is no "0 of 0 ranked first": the gate says it was not measured, and why
    if reg.get("regurgitated") is not None and reg.get("held_out") is not None:
        h = reg["held_out"]
        parts.append(f"{reg['regurgitated']} of {reg['scored']} {reg['source']} ranked first, against "
                     f"{h['regurgitated']} of {h['scored']} originals of held-out notes (99th percentile at that "
                     f"rate: {reg['held_out_99th_percentile']})")
    elif reg.get("regurgitated") is not None and reg.get("reference_regurgitated") is not None:
        parts.append(f"{reg['regurgitated']} of {reg['scored']} {reg['source']} ranked first "
                     f"(the base model: {reg['reference_regurgitated']}; {reg['target_only']} by the trained model "
                     f"only, {reg['reference_only']} by the base only; sign test 99th percentile "
                     f"{reg['sign_test_99th_percentile']})")
    elif reg.get("regurgitated") is not None:
        parts.append(f"{reg['regurgitated']} of {reg['scored']} {reg['source']} ranked first "
                     f"(uniform chance, no base model to compare: {reg['expected_by_chance']:.1f} expected, "
                     f"{reg['chance_99th_percentile']} at the 99th percentile)")
    checks = report["gate"]["checks"]
    unmeasured = [c["check"] for c in checks if c["status"] == "not measured"]
    if unmeasured:
        parts.append("not measured: " + ", ".join(unmeasured))
    # nothing exceeded, but a threshold could not be judged (inconclusive or not measured): no pass
    verdict = ("PASSED" if report["gate"]["passed"] else
               "FAILED" if any(c["status"] == "failed" for c in checks) else "INCONCLUSIVE")
    return f"Privacy audit {verdict}: " + ("; ".join(parts) if parts else "nothing measured") + "."


def render_summary(report: dict[str, Any]) -> str:
    """The markdown summary (the model card's privacy section)."""
    lines = ["# Privacy audit", "", report["statement"], ""]
    if report.get("warnings"):
        lines += ["## Warnings", "", *(f"- {w}" for w in report["warnings"]), ""]
    exp = report.get("exposure") or {}
    if exp.get("canaries"):
        lines += ["## Canary exposure", "", "| repeats | canaries | mean exposure | max exposure | ranked first |",
                  "|---|---|---|---|---|"]
        for repeats, s in exp["by_repeats"].items():
            lines.append(f"| {repeats} | {s['canaries']} | {s['mean_exposure']:.2f} | {s['max_exposure']:.2f} | "
                         f"{s['ranked_first']} |")
        lines += ["", f"Maximum possible exposure: {exp['max_possible']:.2f} bits; {exp['chance_note']}.", ""]
    mia = report.get("membership") or {}
    if mia.get("attacks"):
        lines += ["## Membership inference", "", "| attack | AUC | 95% CI | TPR at 1% FPR | 95% CI |",
                  "|---|---|---|---|---|"]
        for name, a in mia["attacks"].items():
            ci = a["auc_ci"] or [None, None]
            tci = a["tpr_at_1pct_fpr_ci"] or [None, None]
            lines.append(f"| {name} | {a['auc']:.3f} | {_fmt(ci[0])}-{_fmt(ci[1])} | {a['tpr_at_1pct_fpr']:.3f} | "
                         f"{_fmt(tci[0])}-{_fmt(tci[1])} |")
        lines += ["", f"{mia['members']} training and {mia['nonmembers']} held-out documents.", ""]
    reg = report.get("regurgitation") or {}
    if reg.get("by_label"):
        lines += [f"## Regurgitation ({reg['source']})", "",
                  "| type | probed | scored | ranked first | expected by chance | chance 99th percentile |",
                  "|---|---|---|---|---|---|"]
        for label, s in reg["by_label"].items():
            lines.append(f"| {label} | {s['probes']} | {s['scored']} | {s['regurgitated']} | "
                         f"{s['expected_by_chance']:.1f} | {s['chance_99th_percentile']} |")
        skipped = reg.get("skipped") or {}
        if any(skipped.values()):
            lines += ["", "Not scored: " + ", ".join(f"{n} ({reason.replace('_', ' ')})"
                                                     for reason, n in skipped.items() if n) + "."]
        lines += ["", f"Calibration: {reg['calibration']}.", ""]
        if reg.get("held_out") is not None:
            h = reg["held_out"]
            lines += [f"Held-out originals: {h['scored']} scored, {h['regurgitated']} ranked first; training originals "
                      f"beyond the 99th percentile at that rate ({reg['held_out_99th_percentile']}): "
                      f"{reg['beyond_chance']}.", ""]
        if reg.get("reference_regurgitated") is not None:
            lines += [f"Ranked first by the base model: {reg['reference_regurgitated']}; by the trained model only: "
                      f"{reg['target_only']}; by the base model only: {reg['reference_only']}; beyond a fair coin "
                      f"(99th percentile {reg['sign_test_99th_percentile']}): {reg['beyond_chance']}.", ""]
        lines.append("")
    if report.get("data"):
        lines += _documents_section(report["data"])
    lines += ["## Release gate", "", "| check | value | threshold | status |", "|---|---|---|---|"]
    for c in report["gate"]["checks"]:
        status = f"{c['status']}: {c['reason']}" if c.get("reason") else c["status"]
        lines.append(f"| {c['what']} | {_fmt(c['value'])} | {_fmt(c['threshold'])} | {status} |")
    lines += ["", _audit_time(report["timing"]), ""]
    return "\n".join(lines)


def _audit_time(timing: dict[str, Any]) -> str:
    """The summary's timing line: the audit's time, and its share of the training it audits (a
    multiple where the audit took longer, as it does for a run that trained for seconds)."""
    line = f"Audit time {timing['total_seconds']:.1f} s"
    share = timing.get("share_of_training")
    if share is None:
        return line + "."
    trained = timing["audited_training_seconds"]
    trained = f"{trained:.0f}" if trained >= 10 else f"{trained:.1f}"
    if share > 1:
        return line + f" ({share:.1f} times the {trained} s of training it audits)."
    return line + f" ({100 * share:.1f}% of the {trained} s of training it audits)."


#: ``report["data"]`` keys of documents left out, and how the summary says why.
_LEFT_OUT = {"without_text": "without text", "as_training_texts": "whose text is a training text",
             "not_trained_on": "the model did not train on (by its split.json)",
             "trained_on": "the model trained on (by its split.json)",
             "sharing_a_training_group": "whose {key} also has training documents",
             "without_label": "without a gold label", "label_unknown_to_model": "with a label the model does not know"}


def _documents_section(data: dict[str, Any]) -> list[str]:
    """The summary's account of the documents: read = used + left out, by reason."""
    check = data.get("group_check") or {}
    lines = ["## Documents", "", f"Scored field: {data.get('text_field', 'text')} (the field the model was trained "
             "on, by its manifest).", "", "| | read | used | left out |", "|---|---|---|---|"]
    for side, name in (("train", "training"), ("holdout", "held-out")):
        reasons = [f"{data[k]} {what.format(key=check.get('split_key'))}" for reason, what in _LEFT_OUT.items()
                   if data.get(k := f"{side}_documents_left_out_{reason}")]
        lines.append(f"| {name} | {data[f'{side}_documents_read']} | {data[f'{side}_documents']} | "
                     f"{', '.join(reasons) or 'none'} |")
    lines.append("")
    if check.get("checked"):
        shared, values = check["holdout_documents_sharing_a_training_group"], check["shared_groups"]
        unkeyed = check["holdout_documents_without_key"]
        found = (f"{_count(shared, 'held-out document')} {'belongs' if shared == 1 else 'belong'} to "
                 f"{_count(values, 'value')} that also {'has' if values == 1 else 'have'} training documents" if shared
                 else "no held-out document shares a value with the training documents")
        lines.append(f"Held-out patients checked against the training documents by {check['split_key']} "
                     f"({check['source']}): {found}; "
                     + (f"{_count(unkeyed, 'held-out document')} {'has' if unkeyed == 1 else 'have'} no value to "
                        "check." if unkeyed else "every held-out document has a value to check."))
    elif check:
        lines.append(f"Held-out patients not checked against the training documents: {check.get('note')}.")
    lines += [f"Membership inference scored {data['members_scored']} training and {data['nonmembers_scored']} "
              "held-out documents (a seeded sample of those used, at most max_documents each).", ""]
    return lines


def _count(n: int, noun: str) -> str:
    """``"1 value"``, ``"3 values"``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _check_outputs(texts: dict[str, str], secrets: Iterable[str]) -> None:
    """Refuse to write a report that matches a PHI pattern or quotes a secret (never named)."""
    from domainfm.audit.privacy import scan_phi

    hits: dict[str, int] = {}
    for name, text in texts.items():
        for pattern, n in scan_phi(text).items():
            hits[f"{name}:{pattern}"] = n
    if hits:
        raise DomainFMError(f"the privacy report would contain PHI-like text {hits}; nothing was written")
    quoted = sum(1 for s in set(secrets) if len(s) >= 5 and any(s in text for text in texts.values()))
    if quoted:
        raise DomainFMError(f"the privacy report would quote {quoted} canary secret(s) or identifier(s); "
                            "nothing was written")


def _write_report_files(out: Path, texts: dict[str, str]) -> None:
    """Write the report files into ``out`` together: each in full under a temporary name before
    any is renamed into place, so a run that fails or is killed while writing leaves the previous
    report whole (never a new report.json beside an old summary.md)."""
    from contextlib import ExitStack

    from domainfm.corpus.io import atomic_file

    out.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        for name, text in texts.items():
            stack.enter_context(atomic_file(out / name)).write(text)


def _audit_documents(train, holdout, cfg: PrivacyAuditConfig, recorded_key: tuple[str | None, str | None],
                     split=None, text_field: str = "text") -> tuple[list, list, dict[str, Any], list[str]]:
    """The training and held-out documents the audit uses, what was read and left out, and the
    warnings: documents without text in ``text_field`` (the field the model was trained on) are
    left out, and so are held-out documents whose text is also a training text, white space
    aside (the model saw it, so it is no non-member), with a recorded ``split`` (the
    ``split.json`` of a finetune or pretrain model) training documents it did not train on and
    held-out documents it did, and, unless ``cfg.keep_shared_groups``, held-out documents whose
    patient (``cfg.split_key``) also has training documents (:func:`_check_groups`).

    Raises:
        ConfigError: either side has no document with text (nothing could be measured, and a
            release gate must not pass on that), an id is on both sides (located by file and
            line, never quoted: an id can hold PHI), or no held-out document is left.
    """
    from domainfm.pretrain.data import text_of

    read_train, read_holdout = _located(train, "--train"), _located(holdout, "--holdout")
    located_train = [(where, d) for where, d in read_train if text_of(d, text_field).strip()]
    located_holdout = [(where, d) for where, d in read_holdout if text_of(d, text_field).strip()]
    train_docs, holdout_docs = [d for _, d in located_train], [d for _, d in located_holdout]
    for name, docs, flag in (("training", train_docs, "--train"), ("held-out", holdout_docs, "--holdout")):
        if not docs:
            raise ConfigError(f"{flag}: no {name} document with text in {text_field!r} (the field the model was "
                              "trained on); the audit compares the model on training documents against held-out "
                              "ones, and nothing could be measured")
    train_at = {d.id: where for where, d in located_train}
    overlap = [(train_at[d.id], where) for where, d in located_holdout if d.id in train_at]
    if overlap:
        raise ConfigError(f"{len(overlap)} document id(s) are in both the training and the held-out documents "
                          f"(the first at {overlap[0][0]} and {overlap[0][1]}); the held-out set must be disjoint")
    # white space aside: a training note exported again with other line endings or spacing holds
    # the same words in the same order, so the model saw it and it is no non-member
    seen = {" ".join(text_of(d, text_field).split()) for d in train_docs}
    unseen = [d for d in holdout_docs if " ".join(text_of(d, text_field).split()) not in seen]
    if not unseen:
        raise ConfigError("--holdout: every held-out text is also a training text; the held-out set must be "
                          "documents the model was not trained on")
    members, nonmembers, control = _within_recorded_split(split, train_docs, unseen)
    kept, check = _check_groups(members, nonmembers, cfg, recorded_key)
    data = {"text_field": text_field,
            "train_documents_read": len(read_train), "holdout_documents_read": len(read_holdout),
            "train_documents_left_out_without_text": len(read_train) - len(train_docs),
            "train_documents_left_out_not_trained_on": len(train_docs) - len(members),
            "holdout_documents_left_out_without_text": len(read_holdout) - len(holdout_docs),
            "holdout_documents_left_out_as_training_texts": len(holdout_docs) - len(unseen),
            "holdout_documents_left_out_trained_on": len(unseen) - len(nonmembers),
            "holdout_documents_left_out_sharing_a_training_group": len(nonmembers) - len(kept),
            # a classifier's documents it cannot score, counted once it is loaded (_with_known_labels)
            **{f"{side}_documents_left_out_{reason}": 0 for side in ("train", "holdout")
               for reason in ("without_label", "label_unknown_to_model")},
            "group_check": check}
    warnings = []
    if data["train_documents_left_out_without_text"] or data["holdout_documents_left_out_without_text"]:
        warnings.append(f"left out {data['train_documents_left_out_without_text']} training documents without "
                        f"text in {text_field!r} and {data['holdout_documents_left_out_without_text']} held-out ones")
    if control:
        warnings.append(f"the model's split.json records none of the {len(members)} training documents as trained "
                        "on: membership inference compares documents it never trained on (as for a control model)")
    if data["train_documents_left_out_not_trained_on"] or data["holdout_documents_left_out_trained_on"]:
        warnings.append(f"by the model's split.json: left out {data['train_documents_left_out_not_trained_on']} "
                        "training documents it did not train on (its evaluation documents, or never seen) and "
                        f"{data['holdout_documents_left_out_trained_on']} held-out documents it trained on")
    key, shared = check["split_key"], check["holdout_documents_sharing_a_training_group"]
    if not check["checked"]:
        warnings.append(f"held-out documents not checked for patients who also have training documents: "
                        f"{check['note']}")
    elif shared:
        what = (f"{shared} held-out document(s) of {check['shared_groups']} {key} value(s) that also have "
                "training documents")
        warnings.append(f"{what}: kept as non-members (keep_shared_groups), so membership inference and the "
                        "held-out regurgitation baseline may under-state leakage" if cfg.keep_shared_groups else
                        f"{what}: left out of the non-member side (the model saw that patient's other notes); "
                        "keep_shared_groups: true keeps them")
    if check["checked"] and check["holdout_documents_without_key"]:
        warnings.append(f"{check['holdout_documents_without_key']} held-out document(s) have no {key}: their "
                        "patient could not be checked against the training documents")
    return members, kept, data, warnings


def _within_recorded_split(split, train_docs: list, holdout_docs: list) -> tuple[list, list, bool]:
    """The training documents the model trained on and the held-out documents it did not, by its
    recorded ``split`` (digests of id and text), and whether the split knows none of the training
    documents (then they are taken as given: a control model audited on another model's data).

    finetune and pretrain hold out ``eval_fraction`` of their data: given that whole file as
    --train, the documents the model only evaluated on would count as members, and a held-out
    document it trained on as a non-member; both pull the AUC towards 0.5, so a memorising model
    could pass the gate.

    Raises:
        ConfigError: every held-out document is one the model trained on (counts only).
    """
    if split is None:
        return train_docs, holdout_docs, False
    members = [d for d in train_docs if split.side(d) == "train"]
    nonmembers = [d for d in holdout_docs if split.side(d) != "train"]
    if not nonmembers:
        raise ConfigError(f"--holdout: all {len(holdout_docs)} held-out documents are ones the model trained on by "
                          "its split.json; give documents it never trained on")
    if not members:
        return train_docs, nonmembers, True
    return members, nonmembers, False


def _meta_value(doc, key: str) -> str | None:
    """``meta.<key>``'s value as a string (``123`` and ``"123"`` are one patient), None when empty."""
    value = doc.meta.get(key[len("meta."):])
    return None if value is None or value == "" else str(value)


def _recorded_split_key(model_dir: Path, manifest: dict[str, Any]) -> tuple[str | None, str | None]:
    """The ``meta.<key>`` the model's training split grouped documents by, and where it is
    recorded (``split.json`` of a finetune or pretrain model, else the manifest's
    ``config.data.split_key``)."""
    from domainfm.finetune.split import read_split

    split = read_split(model_dir)
    key = split.split_key if split is not None else None
    if isinstance(key, str) and key.startswith("meta.") and len(key) > 5:
        return key, "the model's split record"
    data = (manifest.get("config") or {}).get("data")
    key = data.get("split_key") if isinstance(data, dict) else None
    if isinstance(key, str) and key.startswith("meta.") and len(key) > 5:
        return key, "the model's training config"
    return None, None


def _check_groups(train_docs: list, holdout_docs: list, cfg: PrivacyAuditConfig,
                  recorded_key: tuple[str | None, str | None]) -> tuple[list, dict[str, Any]]:
    """The held-out documents to keep, and the check of their groups against the training ones.

    The key is ``cfg.split_key``; ``auto`` tries the model's recorded ``meta.<key>``, then
    ``meta.patient_id``, and takes the first that some training and some held-out documents
    carry. The check reports counts only, never a group's value.

    Raises:
        ConfigError: an explicit ``meta.<key>`` that no training or no held-out document carries
            (a misspelt field would silently switch the check off), or every held-out document
            shares a group with training documents and ``keep_shared_groups`` is off.
    """
    from domainfm.config import suggest

    check: dict[str, Any] = {"split_key": None, "source": None, "checked": False,
                             "holdout_documents_sharing_a_training_group": 0, "shared_groups": 0,
                             "train_documents_without_key": 0, "holdout_documents_without_key": 0}
    if cfg.split_key == "id":
        check["note"] = "split_key is 'id' (each document its own group; ids and texts were checked)"
        return holdout_docs, check
    if cfg.split_key == "auto":
        candidates = [c for c in (recorded_key, ("meta.patient_id", "auto")) if c[0]]
    else:
        candidates = [(cfg.split_key, "config")]
    carried = {}  # key -> how many documents on each side carry it, when not both
    for key, source in candidates:
        train_values = [_meta_value(d, key) for d in train_docs]
        holdout_values = [_meta_value(d, key) for d in holdout_docs]
        n_train, n_holdout = (len(v) - v.count(None) for v in (train_values, holdout_values))
        if n_train and n_holdout:
            break
        carried[key] = (f"{key} is on {n_train} of {len(train_docs)} training and {n_holdout} of "
                        f"{len(holdout_docs)} held-out documents")
    else:
        if cfg.split_key != "auto":
            fields = sorted({f"meta.{k}" for d in train_docs + holdout_docs for k in d.meta})
            raise ConfigError(f"split_key is {cfg.split_key!r}, but {carried[cfg.split_key]}"
                              f"{suggest(cfg.split_key, fields)}; "
                              "give the meta field that names each document's patient on both sides, or "
                              "split_key: id to skip the check")
        check["note"] = (f"no field names the patient on both sides ({'; '.join(carried.values())}); "
                         "set split_key: meta.<key>")
        return holdout_docs, check
    train_groups = {v for v in train_values if v is not None}
    shared = [v is not None and v in train_groups for v in holdout_values]
    check.update(split_key=key, source=source, checked=True, holdout_documents_sharing_a_training_group=sum(shared),
                 shared_groups=len({v for v, s in zip(holdout_values, shared) if s}),
                 train_documents_without_key=len(train_docs) - n_train,
                 holdout_documents_without_key=len(holdout_docs) - n_holdout)
    if cfg.keep_shared_groups:
        return holdout_docs, check
    kept = [d for d, s in zip(holdout_docs, shared) if not s]
    if not kept:
        raise ConfigError(f"--holdout: all {len(holdout_docs)} held-out documents belong to a {key} that also has "
                          "training documents; the held-out set must be other patients' documents (or set "
                          "keep_shared_groups: true to measure anyway, under-stating leakage)")
    return kept, check


def audit_privacy(
    model_dir: str | Path,
    train,
    holdout,
    out_dir: str | Path | None = None,
    config: PrivacyAuditConfig | None = None,
    *,
    vault: str | Path | None = None,
    planted=None,
    canaries: Sequence[Any] | None = None,
    on_event: Event | None = None,
) -> PrivacyAuditResult:
    """Audit what a masked or causal language model memorised.

    Args:
        model_dir: a ``domainfm pretrain`` output (or any ``save_pretrained`` LM folder; its
            ``manifest.json`` supplies the canaries, the base model, the seed and the field the
            model was trained on, ``data.text_field``, which is the field scored).
        train: the documents the model was trained on (a JSONL path or Documents); with the
            model's ``split.json`` (pretrain and finetune write one), only those it records as
            trained on are members, so the whole data file may be given.
        holdout: documents of the same distribution it was not trained on (patient-disjoint:
            held-out documents whose ``config.split_key`` group also has training documents are
            left out and counted unless ``config.keep_shared_groups``).
        out_dir: where ``report.json``, ``summary.md`` and ``manifest.json`` go (None: nothing
            is written).
        config: what to measure and the gate thresholds.
        vault: the ``domainfm deid`` vault of the training data (key in
            ``$DOMAINFM_VAULT_KEY``): its originals are probed in their training contexts.
        planted: without a vault, documents (path or Documents) whose ``spans`` mark gold or
            planted identifiers to probe.
        canaries: canaries to measure instead of the manifest's (``Canary`` or dicts), e.g. to
            audit a control model never trained on them.
        on_event: receives progress lines (counts only, never text).

    Example:
        >>> result = audit_privacy("runs/dapt", "train.jsonl", "holdout.jsonl", "reports/privacy")  # doctest: +SKIP
        >>> result.passed, result.statement  # doctest: +SKIP
    """
    cfg = config or PrivacyAuditConfig()
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ConfigError(f"{model_dir}: no such model folder")
    if vault is not None and planted is not None:
        raise ConfigError("give either a vault (its originals are probed) or planted identifiers, not both")
    run = dict(vault=vault, planted=planted, canaries=canaries, say=on_event or (lambda message: None))
    if out_dir is None:
        return _audit(model_dir, train, holdout, None, cfg, **run)
    from domainfm.corpus.io import OutputLock, check_output_path, check_report_folder

    inputs = [p for p in (train, holdout, vault, planted, model_dir) if isinstance(p, (str, Path))]
    out = check_output_path(out_dir, inputs=inputs, folder=True)
    check_report_folder(out, "audit-privacy")
    # as in every stage: a second run into the same folder is refused while this one writes, or
    # one run's report would end up beside the other's manifest
    with OutputLock(out):
        return _audit(model_dir, train, holdout, out, cfg, **run)


def _audit(model_dir: Path, train, holdout, out: Path | None, cfg: PrivacyAuditConfig, *, vault, planted,
           canaries, say: Event) -> PrivacyAuditResult:
    """:func:`audit_privacy` once its arguments and output folder are checked (and locked)."""
    from domainfm.finetune.split import read_split
    from domainfm.privacy_audit.canaries import Canary
    from domainfm.privacy_audit.exposure import exposures
    from domainfm.privacy_audit.lm import ScoringModel
    from domainfm.privacy_audit.membership import membership_inference
    from domainfm.inference import TASK_FILE
    from domainfm.privacy_audit.regurgitation import (
        MIN_HOLDOUT_SCORED,
        calibrate_with_holdout,
        probes_from_spans,
        probes_from_vault,
        regurgitation_scan,
    )
    from domainfm.privacy_audit.task_scorer import TaskScorer

    from domainfm.pretrain.data import text_of

    manifest = _read_manifest(model_dir)
    text_field = _trained_text_field(manifest)
    if vault is not None and text_field != "text":
        # the vault's originals sit in each document's text, which this model never read
        raise ConfigError(f"--vault: the model was trained on {text_field!r}, but the vault's originals are in the "
                          "documents' text field; give --planted identifiers in that field's text instead")
    train_docs, holdout_docs, data, warnings = _audit_documents(train, holdout, cfg,
                                                                _recorded_split_key(model_dir, manifest),
                                                                read_split(model_dir), text_field)
    for warning in warnings:
        say(warning)
    # the probes before the model loads: a vault or planted file with nothing to probe is said
    # before minutes of scoring, not reported as "0 of 0 ranked first"
    probes, holdout_probes, source, counts = [], [], None, {}
    if vault is not None:
        from domainfm.deid.vault import Vault

        with Vault.open_existing(vault) as v:
            probes, counts = probes_from_vault((d.to_dict() for d in train_docs), v, cfg.context_chars)
            # the same vault usually holds the held-out notes too: the model's rate on originals it
            # never trained on is the baseline (see calibrate_with_holdout)
            holdout_probes, _ = probes_from_vault((d.to_dict() for d in holdout_docs), v, cfg.context_chars)
        if not counts["records_in_vault"]:
            raise ConfigError(f"--vault: holds none of the {counts['records']} training documents "
                              f"({counts['records_changed']} changed since de-identification, the others not in it); "
                              "give the vault of the deid run that wrote --train")
        source = "originals from the vault"
    elif planted is not None:
        planted_docs = _docs(planted)
        _check_planted_labels(planted_docs)
        probes = probes_from_spans(planted_docs, cfg.context_chars)
        if not probes:
            raise ConfigError("--planted: no document has a span marking an identifier to probe")
        source = "planted identifiers"
    t0 = time.perf_counter()
    timing: dict[str, float] = {}
    seed = manifest["seed"] if manifest.get("seed") is not None else cfg.seed
    model_cfg = (manifest.get("config") or {}).get("model") or {}
    is_task_model = (model_dir / TASK_FILE).is_file()  # a domainfm finetune classifier, not an LM
    if is_task_model:
        target = TaskScorer.load(model_dir, batch_size=cfg.batch_size)
    else:
        target = ScoringModel.load(str(model_dir), seed=seed, batch_size=cfg.batch_size)
    timing["load_seconds"] = time.perf_counter() - t0
    if is_task_model:  # a task loss needs a gold label the model knows
        train_docs, holdout_docs, warning = _with_known_labels(target, train_docs, holdout_docs, data)
        if warning:
            warnings.append(warning[0])
            say(warning[1])

    if canaries is None:
        canaries = manifest.get("canaries") or []
    canary_objs = [c if isinstance(c, Canary) else Canary.from_dict(c) for c in canaries]
    # a classifier's canaries carry the label they were trained with (finetune's manifest)
    canary_labels = {c["id"]: c.get("label") for c in canaries if isinstance(c, dict)}
    if is_task_model and any(canary_labels.get(c.id) is None for c in canary_objs):
        raise ConfigError("a classifier's canaries need the label each was trained with ('label' in the "
                          "manifest's canary records, as domainfm finetune writes them)")
    secrets = [c.secret for c in canary_objs]
    report: dict[str, Any] = {
        "stage": "audit-privacy",
        "model": {"path": str(model_dir), "objective": target.objective, "trained_by": manifest.get("stage"),
                  "base_model": cfg.base_model or (manifest.get("base_model") or {}).get("name")},
        "config": None,
    }
    from domainfm.config import to_dict

    report["config"] = to_dict(cfg)

    t = time.perf_counter()
    if canary_objs:
        say(f"ranking {len(canary_objs)} canaries against up to {cfg.n_candidates} reference secrets each")
        scorer_for = (lambda c: target.with_label(canary_labels[c.id])) if is_task_model else None
        report["exposure"] = exposures(target, canary_objs, cfg.n_candidates, cfg.seed, scorer_for=scorer_for)
    else:
        report["exposure"] = {"note": "the model's manifest records no canaries; pretrain with canaries.enabled"}
    timing["exposure_seconds"] = time.perf_counter() - t

    t = time.perf_counter()
    rng = random.Random(cfg.seed)
    loaded: list = []

    def load_reference():
        """The base model, loaded once for the membership and regurgitation baselines."""
        if not loaded:
            loaded.append(ScoringModel.load(str(report["model"]["base_model"]),
                                            tokenizer=None if cfg.base_model else model_cfg.get("tokenizer"),
                                            seed=seed, batch_size=cfg.batch_size,
                                            field="base_model" if cfg.base_model else "the audited model's base_model"))
        return loaded[0]

    members = _sample(train_docs, cfg.max_documents, rng)
    nonmembers = _sample(holdout_docs, cfg.max_documents, rng)
    check = data.pop("group_check")
    report["data"] = {**data, "train_documents": len(train_docs), "holdout_documents": len(holdout_docs),
                      "members_scored": len(members), "nonmembers_scored": len(nonmembers), "group_check": check}
    report["warnings"] = warnings
    if members and nonmembers:
        say(f"membership inference on {len(members)} training and {len(nonmembers)} held-out documents")
        kwargs = {"max_tokens": cfg.max_tokens, "mask_passes": cfg.mask_passes, "seed": cfg.seed}
        texts_m, texts_n = ([text_of(d, text_field) for d in docs] for docs in (members, nonmembers))
        reference_losses = None
        base = report["model"]["base_model"]
        if is_task_model:  # the task loss under the gold label; a base model has no trained head to compare
            target_losses = tuple(target.document_losses(docs) for docs in (members, nonmembers))
            base = None
        else:
            # members and non-members in one call: one tokenisation and full length-sorted batches
            # (a document's masks depend on its index, which is the same for both models)
            losses = target.document_losses(texts_m + texts_n, **kwargs)
            target_losses = (losses[:len(texts_m)], losses[len(texts_m):])
        if base:
            reference = load_reference()
            losses = reference.document_losses(texts_m + texts_n, **kwargs)
            reference_losses = (losses[:len(texts_m)], losses[len(texts_m):])
        report["membership"] = membership_inference(target_losses, reference_losses,
                                                    n_bootstrap=cfg.n_bootstrap, seed=cfg.seed)
        # setdefault: "no attack measured" (too few scorable documents) is the note that matters
        if is_task_model:
            report["membership"].setdefault("note", "loss attack on the task loss under the gold labels; a "
                                            "classifier's base model has no trained head, so the "
                                            "reference-calibrated attack was not run")
        elif reference_losses is None:
            report["membership"].setdefault("note", "no base model known: the reference-calibrated attack was "
                                                    "not run")
    else:
        report["membership"] = {"note": "no training or no held-out documents left to score (see data): "
                                        "not measured"}
    timing["membership_seconds"] = time.perf_counter() - t

    t = time.perf_counter()
    if source is not None and is_task_model:
        secrets += [p.value for p in probes]
        report["regurgitation"] = {"source": source, "note": "not measured: fill-in probes need a language model; "
                                   "a classifier cannot complete a masked identifier (audit its DAPT model)"}
    elif source is not None:
        secrets += [p.value for p in probes]
        say(f"regurgitation scan of up to {cfg.max_probes} of {len(probes)} {source}")
        scan = dict(n_candidates=cfg.regurgitation_candidates, max_probes=cfg.max_probes, seed=cfg.seed)
        secrets += [p.value for p in holdout_probes]
        reference = load_reference() if report["model"]["base_model"] else None
        result = regurgitation_scan(target, probes, reference=reference, **scan)
        if holdout_probes:
            held = regurgitation_scan(target, holdout_probes, **scan)
            if held["scored"] >= MIN_HOLDOUT_SCORED:
                result = calibrate_with_holdout(result, held)
        report["regurgitation"] = {"source": source, **counts, **result}
    else:
        report["regurgitation"] = {"note": "no vault and no planted identifiers given: not measured"}
    timing["regurgitation_seconds"] = time.perf_counter() - t
    loaded.clear()  # the reference model's memory back before the report is written

    report["gate"] = gate_checks(report, cfg.gate)
    report["statement"] = _statement(report)
    total = time.perf_counter() - t0
    training = None
    try:
        training = json.loads((model_dir / "metrics.json").read_text(encoding="utf-8"))["train"]["train_seconds"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if not (isinstance(training, (int, float)) and math.isfinite(training) and training > 0):
        training = None  # json reads NaN; the share must stay a number or be unknown
    report["timing"] = {**{k: round(v, 2) for k, v in timing.items()}, "total_seconds": round(total, 2),
                        "audited_training_seconds": training,
                        "share_of_training": round(total / training, 4) if training is not None else None}
    summary = render_summary(report)
    # no NaN or Infinity in report.json: JSON has neither, and readers would reject the file
    text_json = json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False)
    _check_outputs({"report.json": text_json, "summary.md": summary}, secrets)
    if out is not None:
        from domainfm.manifest import write_manifest

        _write_report_files(out, {"report.json": text_json + "\n", "summary.md": summary})
        # the model folder is hashed like predict's: the report is about these exact weights
        inputs = [p for p in (model_dir, train, holdout, vault, planted) if isinstance(p, (str, Path))]
        write_manifest(out, stage="audit-privacy", config=cfg, inputs=inputs,
                       outputs=[out / "report.json", out / "summary.md"],
                       counts={k: v for k, v in report["data"].items()},
                       extra={"model": str(model_dir), "passed": report["gate"]["passed"]})
    return PrivacyAuditResult(out, report)
