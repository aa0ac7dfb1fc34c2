"""Audit a classification model: data, performance and fairness per group with bootstrap CIs,
calibration, shap explanations, counterfactual robustness and privacy, as a self-contained
``index.html``, ``report.json`` and a ``model_card.md``.

``domainfm audit MODEL_DIR DATA.jsonl -o reports/NAME/ [--group-by meta.sex,meta.age_band]
[--explain N] [--seed N]``, or::

    from domainfm.audit import AuditConfig, audit
    audit("runs/demo", read_documents("notes.jsonl"), "reports/demo", AuditConfig(explain=4))

The model sits behind :class:`Scorer` (``labels`` + ``predict_proba(texts)``). Importing this
package is cheap: shap, matplotlib and torch load on first use.
"""

from __future__ import annotations

from domainfm.audit.config import AGE_BANDS, AuditConfig
from domainfm.audit.runner import AuditResult, audit, run_audit
from domainfm.audit.scorer import LabelOnlyScorer, Scorer, TaskModelScorer, as_scorer

__all__ = [
    "AGE_BANDS",
    "AuditConfig",
    "AuditResult",
    "LabelOnlyScorer",
    "Scorer",
    "TaskModelScorer",
    "as_scorer",
    "audit",
    "run_audit",
]
