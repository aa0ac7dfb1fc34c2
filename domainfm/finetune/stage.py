"""The ``finetune`` stage: :func:`~domainfm.finetune.finetune` (or a launched
``domainfm finetune``) under the stage contract. The model folder records which documents it
trained and evaluated on (:func:`domainfm.finetune.split.read_split`); the audit and deid_eval
stages read that record instead of recomputing the split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from domainfm.finetune.config import TaskConfig
from domainfm.stages import StageContext, StageResult


def run(config: TaskConfig, inputs: list[Path], out: Path, context: StageContext | None = None) -> StageResult:
    """Fine-tune into the folder ``out`` (the documents are ``config.data``; ``inputs`` name
    them for the cache key). A resumed stage continues from its last checkpoint."""
    from domainfm.training import list_checkpoints
    from domainfm.training.launch import launched, output_mode

    context = context or StageContext()
    mode = output_mode(out, context.resume, list_checkpoints)
    if context.launch:
        raw, manifest = launched(config, out, context.launch, "finetune", mode, [], context.console)
        steps, resumed_from = manifest.get("steps"), manifest.get("resumed_from_step")
    else:
        from domainfm.finetune import console_reporter, finetune

        on_event = console_reporter(context.console) if context.console is not None else None
        result = finetune(config, out, on_event=on_event, **mode)
        raw, steps, resumed_from = result.metrics, result.steps, result.resumed_from
    return summarize(out, raw, steps, resumed_from)


def summarize(out: Path, raw: dict[str, Any], steps: int | None, resumed_from: int | None) -> StageResult:
    """The StageResult of a fine-tuning run from its ``metrics.json`` content."""
    ev = raw.get("eval") or {}
    keys = ("macro_f1", "accuracy", "micro_f1", "f1")
    metrics = {k: round(ev[k], 4) for k in keys if isinstance(ev.get(k), (int, float))}
    if resumed_from is not None:
        metrics["resumed_from_step"] = resumed_from
    # the documents scored, from the data section: ner scores have no "n" (they count entities)
    held_out = (raw.get("data") or {}).get("eval_documents", ev.get("n"))
    return StageResult([Path(out)], {"steps": steps, "eval_documents": held_out}, metrics)
