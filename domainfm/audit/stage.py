"""The ``audit`` stage: the fine-tuned model audited on the documents fine-tuning held out (as
the model folder recorded them, not a recomputed split), with the reviewer's cards."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from domainfm.audit.config import AuditConfig
from domainfm.errors import ConfigError
from domainfm.stages import StageContext, StageResult


@dataclass
class AuditSection(AuditConfig):
    """The ``audit:`` section: every :class:`~domainfm.audit.AuditConfig` key, plus which
    documents the fine-tuned model is audited on.

    Args:
        data: ``eval``: the documents fine-tuning held out (the same seeded split, recomputed);
            ``all``: every document fine-tuning read (training documents included: in-sample).
        max_documents: audit at most this many of them (null: all).
        cards: reviewer's cards to write beside the report: ``chai``, ``annex-iv``, ``fda`` or
            ``all`` (:mod:`domainfm.audit.cards`).
        cards_config: the deployer's ``cards.yaml`` (intended use, contact, release...).
        chai_schema: the CHAI v0.2 ``schema.xsd`` to validate against (null: the shipped copy).
    """

    data: Literal["eval", "all"] = "eval"
    max_documents: int | None = None
    cards: list[str] = field(default_factory=list)
    cards_config: str | None = None
    chai_schema: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_documents is not None and self.max_documents < 2:
            raise ConfigError(f"The 'audit.max_documents' parameter must be an int >= 2 or null. "
                              f"Got {self.max_documents!r} instead.")
        from domainfm.audit.cards.config import load_deployer_fields, parse_cards

        try:
            self.cards = parse_cards(self.cards)
        except ConfigError as exc:
            raise ConfigError(f"audit.cards: {exc}") from None
        if self.cards_config is not None:
            if not self.cards:
                raise ConfigError("audit.cards_config is set but audit.cards names no card: add e.g. 'cards: [all]'")
            load_deployer_fields(self.cards_config)  # its errors name the file and the field
        if self.chai_schema is not None and not Path(self.chai_schema).is_file():
            raise ConfigError(f"audit.chai_schema {self.chai_schema} does not exist (leave it out to use the shipped "
                              "CHAI v0.2 schema)")


def run(config: AuditSection, inputs: list[Path], out: Path, context: StageContext) -> StageResult:
    """Audit the fine-tuned model ``inputs[0]`` (``context.stages`` holds the finetune section,
    whose data files the model's recorded split is read from); ``out`` is ``index.html``."""
    from domainfm.audit import audit
    from domainfm.finetune.split import recorded_documents

    section, out_dir = config, out.parent
    task = context.stages["finetune"]
    train_docs, eval_docs, _ = recorded_documents(inputs[0], task)  # the split finetune recorded
    if section.data == "eval":
        docs = eval_docs
        if not docs:
            raise ConfigError("audit.data is 'eval' but fine-tuning held out no documents: set "
                              "finetune.data.eval_fraction > 0, finetune.data.eval, or audit.data: all")
    else:
        docs = train_docs + eval_docs
    if section.max_documents is not None:
        docs = docs[: section.max_documents]
    cfg = AuditConfig(**{f.name: getattr(section, f.name) for f in dataclasses.fields(AuditConfig)})
    privacy_report = None
    if "privacy" in context.stages:  # the model card states the memorisation audit of the DAPT model
        with contextlib.suppress(OSError, ValueError):
            privacy_report = json.loads(context.outputs["privacy"].read_text(encoding="utf-8"))
    data_files = [f for f in (task.data.train, task.data.eval) if f]  # traced to deid for the examples' masking
    result = audit(inputs[0], docs, out_dir, cfg, privacy_audit=privacy_report, data_files=data_files)
    report = result.report
    perf = report.get("performance", {})
    overall = perf.get("overall", {})
    metrics: dict[str, Any] = {k: round(v, 4) for k, v in overall.items()
                               if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "n"}
    ece = ((report.get("calibration") or {}).get("overall") or {}).get("ece")
    if isinstance(ece, (int, float)):
        metrics["ece"] = round(ece, 4)
    for attr, part in (perf.get("by_attribute") or {}).items():
        gap = ((part.get("gaps") or {}).get("all_groups") or {}).get("accuracy_difference")
        if " x " not in attr and isinstance(gap, (int, float)):
            metrics[f"accuracy_gap_{attr.rsplit('.', 1)[-1]}"] = round(gap, 4)
    counts = {"documents": len(docs), "data": section.data}
    outputs = [result.html, out_dir / "report.json", out_dir / "model_card.md"]
    if section.cards:
        from domainfm.audit.cards import write_cards

        evidence = {stage: context.outputs[stage] for stage in ("privacy", "deid_eval")
                    if stage in context.stages and context.outputs[stage].is_file()}
        cards = write_cards(out_dir, section.cards, cards_config=section.cards_config,
                            chai_schema=section.chai_schema, privacy_audit=evidence.get("privacy"),
                            deid_eval=evidence.get("deid_eval"), audit_scope=section.data)
        outputs += cards.files
        for name, card in cards.summary["cards"].items():
            counts[f"card_{name}_open_fields"] = card["completeness"]["missing"]
    return StageResult(outputs, counts, metrics)
