"""Calibrated confidences of suggested spans, fitted on out-of-fold spans of the seeds.

Model spans go through one Platt map of their raw score (with a shift for spans the seed
lexicon confirms); lexicon spans the model did not find, and carried short forms, get their
out-of-fold precision. :mod:`domainfm.label.spans` collects the out-of-fold rows (its
``oof_rows``) and applies the fitted map to every suggestion.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def _logit(raw) -> np.ndarray:
    raw = np.clip(np.asarray(raw, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(raw / (1 - raw))


def _platt(raw: np.ndarray, correct: np.ndarray, confirmed: np.ndarray | None = None) -> tuple[float, ...] | None:
    """``(a, b, c)`` of ``sigmoid(a * logit(raw) + b + c * confirmed)`` fitted by L2-regularised
    logistic regression (``c`` 0 without ``confirmed``); None with too few out-of-fold spans or
    only one outcome. The penalty shrinks ``c`` towards 0, so with few confirmed spans they are
    read like the others."""
    if len(raw) < 8 or correct.min() == correct.max():
        return None
    from sklearn.linear_model import LogisticRegression

    x = _logit(raw).reshape(-1, 1)
    if confirmed is not None:
        x = np.hstack([x, np.asarray(confirmed, dtype=float).reshape(-1, 1)])
    lr = LogisticRegression(C=1.0).fit(x, correct.astype(int))
    c = float(lr.coef_[0, 1]) if confirmed is not None else 0.0
    return float(lr.coef_[0, 0]), float(lr.intercept_[0]), c


def _apply_platt(raw: float, params: tuple[float, ...] | None, confirmed: bool = False) -> float:
    if params is None:
        return raw
    z = params[0] * float(_logit(raw)) + params[1] + (params[2] if confirmed else 0.0)
    return float(1.0 / (1.0 + np.exp(-z)))


# sources calibrated by their out-of-fold precision, not by the model's score
_BY_PRECISION = ("lexicon", "abbreviation")


class SpanCalibration:
    """Calibrated confidence of a suggested span by its source. Model spans (``model``, and
    ``model+lexicon`` where the seed lexicon confirms one) go through one Platt map of the raw
    score with a shift for confirmed spans (:func:`_platt`: one map fitted on all of them, so a
    handful of out-of-fold spans of either kind do not each get a map of their own);
    seed-lexicon spans the model did not find (``lexicon``) and carried short forms
    (``abbreviation``) get the out-of-fold precision of such spans, counted by document:
    ``(D * hits / found + 1) / (D + 2)`` over the ``D`` seed documents they come from. A short form
    or a lexicon entry recurs within a document and across the repeated splits, so its spans
    there are one piece of evidence, not many: 21 right of 21 from three documents reads as 0.80,
    not 0.96."""

    def __init__(self, platt: tuple[float, ...] | None = None, precision: dict[str, float] | None = None):
        self.platt, self.precision = platt, dict(precision or {})

    @classmethod
    def fit(cls, rows: Sequence[tuple]) -> tuple["SpanCalibration", dict[str, Any]]:
        """From out-of-fold ``(source, raw confidence, exactly right[, seed document])`` rows
        (without the document each row counts as one); with the summary the manifest records
        (counts and rates only)."""
        rows = [(r[0], r[1], bool(r[2]), r[3] if len(r) > 3 else n) for n, r in enumerate(rows)]
        scored = [(raw, ok, src == "model+lexicon") for src, raw, ok, _ in rows if src not in _BY_PRECISION]
        platt = _platt(np.array([r for r, _, _ in scored]), np.array([ok for _, ok, _ in scored], dtype=float),
                       np.array([c for *_, c in scored]) if any(c for *_, c in scored) else None) if scored else None
        precision, sources = {}, {}
        for src in sorted({src for src, *_ in rows}):
            oks = [ok for s_, _, ok, _ in rows if s_ == src]
            documents = len({doc for s_, _, _, doc in rows if s_ == src})
            sources[src] = {"oof_spans": len(oks), "oof_documents": documents,
                            "oof_precision": round(float(np.mean(oks)), 4)}
            if src in _BY_PRECISION:
                precision[src] = (documents * float(np.mean(oks)) + 1) / (documents + 2)
        oks = [ok for _, _, ok, _ in rows]
        summary = {"platt": None if platt is None else [round(x, 4) for x in platt], "oof_spans": len(rows),
                   "oof_span_precision": round(float(np.mean(oks)), 4) if oks else None, "sources": sources}
        return cls(platt, precision), summary

    def confidence(self, raw: float, source: str) -> float:
        """A suggested span's calibrated confidence from its raw one (the model's score, or for
        ``lexicon`` the entry's share on the seeds, kept when the folds saw no such span; an
        ``abbreviation`` the folds never saw takes its long form's calibrated confidence)."""
        if source in self.precision:
            return self.precision[source]
        if source == "lexicon":
            return raw
        return _apply_platt(raw, self.platt, confirmed=source == "model+lexicon")
