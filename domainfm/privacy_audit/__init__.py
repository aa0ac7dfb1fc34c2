"""Model privacy audit: what a trained language model memorised, before anyone releases it.

- canaries: seeded, made-up PHI-shaped secrets that ``domainfm pretrain`` inserts into the
  training stream (``canaries:`` section) and records in its manifest only;
- exposure of each canary (its rank among same-format reference secrets), against repetitions;
- membership inference on training vs held-out documents (loss and reference-calibrated
  attacks; AUC and TPR at 1% FPR with bootstrap CIs);
- a regurgitation scan of the originals in the de-identification vault (or of planted
  identifiers);
- a release gate (``max_exposure``, ``max_mia_auc``, ``max_regurgitated``).

``domainfm audit-privacy MODEL_DIR --train TRAIN.jsonl --holdout HOLDOUT.jsonl [--vault V] -o DIR``,
or ``audit_privacy(...)``. Importing this package is cheap: torch loads on first use.
"""

from __future__ import annotations

from typing import Any

from domainfm.privacy_audit.config import CanaryConfig, PrivacyAuditConfig, PrivacyGateConfig

_LAZY = {
    "audit_privacy": "runner", "PrivacyAuditResult": "runner", "PrivacyGateError": "runner",
    "gate_message": "runner", "Canary": "canaries", "make_canaries": "canaries", "ScoringModel": "lm",
}

__all__ = sorted(["CanaryConfig", "PrivacyAuditConfig", "PrivacyGateConfig", *_LAZY])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"domainfm.privacy_audit.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'domainfm.privacy_audit' has no attribute {name!r}")
