"""The ``deid`` stage: :func:`~domainfm.deid.runner.deidentify_file` under the stage contract."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from domainfm.deid.config import DeidConfig
from domainfm.errors import DomainFMError
from domainfm.stages import StageContext, StageResult, record_counts

# Prefixed so that this hash of the key is unrelated to every other use of it (the vault and the
# surrogates derive their own keys from it), and cut short: the cache key only has to tell two
# secrets apart.
_KEY_FINGERPRINT_DOMAIN = b"domainfm/deid-stage/surrogate-key-fingerprint/v1\0"


def surrogate_key_identity(config: DeidConfig, seed: int | None) -> dict[str, str]:
    """Where this stage's surrogate key comes from and a fingerprint of it, for the pipeline's
    cache key: surrogates made from a readable seed are never kept for a run keyed by
    ``$DOMAINFM_VAULT_KEY``, nor one secret's surrogates for another secret. Never the key."""
    from domainfm.deid.runner import KEY_ENV, surrogate_secret

    if config.vault is None and not os.environ.get(KEY_ENV) and seed is None:
        # a fresh random secret every run: no run can reproduce another's surrogates anyway
        return {"source": "random"}
    try:
        secret, source = surrogate_secret(config, seed)
    except DomainFMError:  # a missing or short key: the stage says so when it runs
        return {"source": "unusable"}
    return {"source": source, "fingerprint": hashlib.sha256(_KEY_FINGERPRINT_DOMAIN + secret).hexdigest()[:16]}


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
    from domainfm.deid.outside_text import summary

    labels = ", ".join(f"{k} {v}" for k, v in list(result.detections_by_label.items())[:10])
    return StageResult([result.out, result.manifest], record_counts(result.counts), {"detections": result.detections},
                       manifest=result.manifest, rejects=result.rejects, first_rejects=result.first_rejects,
                       reject_reasons=dict(result.counts.reasons),
                       notes=[f"{result.detections} detections ({labels or 'none'}); "
                              f"surrogate key {result.surrogate_key}"],
                       warnings=[summary(result.outside_text)] if result.outside_text else [])
