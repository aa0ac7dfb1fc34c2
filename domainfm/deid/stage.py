"""The ``deid`` stage: :func:`~domainfm.deid.runner.deidentify_file` under the stage contract."""

from __future__ import annotations

from pathlib import Path

from domainfm.deid.config import DeidConfig
from domainfm.stages import StageContext, StageResult, record_counts


def run(config: DeidConfig, inputs: list[Path], out: Path, context: StageContext | None = None) -> StageResult:
    """De-identify ``inputs[0]`` into ``out``; ``context.seed`` seeds the surrogates (demos and
    tests only; None uses the vault key or a random secret)."""
    context = context or StageContext()
    engine = context.distributed_engine()
    if engine is not None:
        from domainfm.distributed.jobs import run_deid

        result = run_deid(inputs[0], out, config, engine, seed=context.seed, on_stage=context.on_stage)
    else:
        from domainfm.deid.runner import deidentify_file

        result = deidentify_file(inputs[0], out, config, seed=context.seed, on_progress=context.on_progress)
    labels = ", ".join(f"{k} {v}" for k, v in list(result.detections_by_label.items())[:10])
    return StageResult([result.out, result.manifest], record_counts(result.counts), {"detections": result.detections},
                       manifest=result.manifest, rejects=result.rejects, first_rejects=result.first_rejects,
                       notes=[f"{result.detections} detections ({labels or 'none'}); "
                              f"surrogate key {result.surrogate_key}"])
