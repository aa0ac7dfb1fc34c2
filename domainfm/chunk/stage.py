"""The ``chunk`` stage: :func:`~domainfm.chunk.runner.chunk_file` under the stage contract."""

from __future__ import annotations

from pathlib import Path

from domainfm.chunk.config import ChunkConfig
from domainfm.stages import StageContext, StageResult, record_counts


def run(config: ChunkConfig, inputs: list[Path], out: Path, context: StageContext | None = None) -> StageResult:
    """Chunk the documents of ``inputs[0]`` into ``out`` (counts are documents; ``chunks`` the
    chunks written)."""
    context = context or StageContext()
    engine = context.distributed_engine()
    if engine is not None:
        from domainfm.distributed.jobs import run_chunk

        result = run_chunk(inputs[0], out, config, engine, on_stage=context.on_stage)
    else:
        from domainfm.chunk.runner import chunk_file

        result = chunk_file(inputs[0], out, config, on_progress=context.on_progress)
    return StageResult([result.out, result.manifest], record_counts(result.counts, chunks=result.chunks),
                       {"max_chunk_tokens": result.max_chunk_tokens}, manifest=result.manifest,
                       rejects=result.rejects, first_rejects=result.first_rejects,
                       reject_reasons=dict(result.counts.reasons),
                       detail=f" documents; {result.chunks} chunks (max {result.max_chunk_tokens} of "
                              f"{config.max_tokens} positions)")
