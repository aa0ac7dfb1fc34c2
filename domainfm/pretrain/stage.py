"""The ``pretrain`` stage: :func:`~domainfm.pretrain.pretrain` (or a launched
``domainfm pretrain``) under the stage contract."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from domainfm.pretrain.config import PretrainConfig
from domainfm.stages import StageContext, StageResult


def run(config: PretrainConfig, inputs: list[Path], out: Path, context: StageContext | None = None) -> StageResult:
    """Pretrain into the folder ``out`` (the documents are ``config.data.paths``; ``inputs``
    name them for the cache key). A resumed stage continues from its last checkpoint."""
    from domainfm.training import list_checkpoints
    from domainfm.training.launch import launched, output_mode

    context = context or StageContext()
    mode = output_mode(out, context.resume, list_checkpoints)
    if context.launch:
        extra = ["--allow-identified-data"] if config.allow_identified_data else []
        raw, manifest = launched(config, out, context.launch, "pretrain", mode, extra, context.console)
        steps, resumed_from = manifest.get("steps"), manifest.get("resumed_from_step")
    else:
        from domainfm.pretrain import console_reporter, pretrain

        reporter = console_reporter(context.console) if context.console is not None else contextlib.nullcontext(None)
        with reporter as on_event:
            result = pretrain(config, out, allow_identified_data=config.allow_identified_data,
                              on_event=on_event, **mode)
        raw, steps, resumed_from = result.metrics, result.steps, result.resumed_from
    return summarize(out, raw, steps, resumed_from)


def summarize(out: Path, raw: dict[str, Any], steps: int | None, resumed_from: int | None) -> StageResult:
    """The StageResult of a pretraining run from its ``metrics.json`` content."""
    metrics: dict[str, Any] = {}
    notes = []
    before, after = raw.get("eval_before"), raw.get("eval_after")
    if before and after:
        metrics = {"perplexity_before": round(before["perplexity"], 2),
                   "perplexity_after": round(after["perplexity"], 2)}
        notes.append(f"held-out perplexity {before['perplexity']:.2f} -> {after['perplexity']:.2f}")
    if resumed_from is not None:
        metrics["resumed_from_step"] = resumed_from
    return StageResult([Path(out)], {"steps": steps}, metrics, notes=notes)
