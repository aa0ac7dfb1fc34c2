"""The ``privacy`` stage: the memorisation audit of the pretrained model, gated, under the stage
contract."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from domainfm.errors import ConfigError
from domainfm.privacy_audit.config import PrivacyAuditConfig
from domainfm.stages import StageContext, StageResult


@dataclasses.dataclass
class PrivacySection(PrivacyAuditConfig):
    """The ``privacy:`` section: every :class:`~domainfm.privacy_audit.PrivacyAuditConfig` key
    (``gate:`` thresholds included). It audits the pretrained model on pretraining's own split
    (the documents it trained on vs the patients it held out) and fails the run, with the
    numbers, when the model exceeds a gate threshold or a check with a threshold was not
    measured (no vault or ``planted``: set ``gate.max_regurgitated`` to null); fine-tuning does
    not start.

    Args:
        holdout: held-out documents to use instead of pretraining's held-out side.
        vault: the deid vault to probe (default: the deid section's ``vault``; its key in
            ``$DOMAINFM_VAULT_KEY``).
        planted: without a vault, a JSONL whose spans mark planted identifiers to probe.
    """

    holdout: Path | None = None
    vault: Path | None = None
    planted: Path | None = None


def run(config: PrivacySection, inputs: list[Path], out: Path, context: StageContext) -> StageResult:
    """Audit the pretrained model ``inputs[0]`` on pretraining's own split (``context.stages``
    holds the pretrain section); raises :class:`~domainfm.privacy_audit.PrivacyGateError` when
    a gate threshold is exceeded. ``out`` is the report's ``report.json``."""
    from domainfm.pretrain.data import split_documents
    from domainfm.privacy_audit import PrivacyGateError, audit_privacy, gate_message

    section, out_dir = config, out.parent
    train_docs, held_docs = split_documents(context.stages["pretrain"].data)
    holdout = section.holdout if section.holdout is not None else held_docs
    if section.holdout is None and not held_docs:
        raise ConfigError("the privacy stage needs held-out documents: set pretrain.data.eval_fraction > 0 "
                          "or privacy.holdout")
    cfg = PrivacyAuditConfig(**{f.name: getattr(section, f.name) for f in dataclasses.fields(PrivacyAuditConfig)})
    on_event = (lambda message: context.console.print(message)) if context.console is not None else None
    result = audit_privacy(inputs[0], train_docs, holdout, out_dir, cfg, vault=section.vault,
                           planted=section.planted, on_event=on_event)
    report = result.report
    if not result.passed:
        raise PrivacyGateError(f"{gate_message(report, section='privacy.')} (report: {out_dir / 'summary.md'})")
    metrics = {"max_exposure": (report.get("exposure") or {}).get("max_exposure"),
               "mia_auc": round(report["membership"]["auc"], 4) if report["membership"].get("auc") is not None
               else None,
               "regurgitated": (report.get("regurgitation") or {}).get("regurgitated")}
    counts = {"members": report["data"]["members_scored"], "nonmembers": report["data"]["nonmembers_scored"]}
    return StageResult([out_dir / "report.json", out_dir / "summary.md"], counts, metrics)
