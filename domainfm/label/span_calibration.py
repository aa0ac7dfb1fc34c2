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


# The Platt map's prior, in out-of-fold spans: its parameters are drawn towards the identity of
# the temperature-scaled score (the temperature is already fitted on the out-of-fold word
# logits), not towards a flat 0.5. With 8 seeds a map fitted freely on ~100 spans from a few
# documents could go nearly flat (slope 0.13) or overshoot; NCBI train hold-out, 8 draws of 8
# seeds: worst span ECE 0.167 -> 0.084, mean 0.077 -> 0.050 (with the pooled prior below).
_PLATT_PRIOR_SPANS = 20.0
# The by-precision sources' prior, in seed documents: their precision is drawn towards the pooled
# precision of every string-matched span (lexicon, carried short forms, model spans the lexicon
# confirms), not towards 0.5; such spans are right far more often than a coin (0.84 on average on
# the hold-out draws, where the 0.5 prior gave them 0.57-0.80).
_PRECISION_PRIOR_DOCUMENTS = 2.0


def _platt(raw: np.ndarray, correct: np.ndarray, confirmed: np.ndarray | None = None) -> tuple[float, ...] | None:
    """``(a, b, c)`` of ``sigmoid(a * logit(raw) + b + c * confirmed)`` fitted by logistic
    regression with a Gaussian prior centred on ``(1, 0, 0)`` worth :data:`_PLATT_PRIOR_SPANS`
    spans (``c`` 0 without ``confirmed``); None without out-of-fold spans. The prior keeps a
    handful of spans, or spans of one outcome, from moving the map far, and likewise ``c`` when
    few spans are confirmed."""
    if len(raw) == 0:
        return None
    from scipy.optimize import minimize
    from scipy.special import expit

    x = _logit(raw)
    c = np.zeros_like(x) if confirmed is None else np.asarray(confirmed, dtype=float)
    y = np.asarray(correct, dtype=float)
    centre = np.array([1.0, 0.0, 0.0])

    def loss(p: np.ndarray) -> tuple[float, np.ndarray]:
        z = p[0] * x + p[1] + p[2] * c
        prob = expit(z)  # no overflow where the optimiser tries a steep map
        nll = float(np.sum(np.logaddexp(0.0, z) - y * z))
        g = prob - y
        grad = np.array([g @ x, g.sum(), g @ c]) + _PLATT_PRIOR_SPANS * (p - centre)
        return nll + _PLATT_PRIOR_SPANS * float((p - centre) @ (p - centre)) / 2, grad

    fit = minimize(loss, centre, jac=True, method="L-BFGS-B")
    a, b, shift = (float(v) for v in fit.x)
    return a, b, shift if confirmed is not None else 0.0


def _apply_platt(raw: float, params: tuple[float, ...] | None, confirmed: bool = False) -> float:
    if params is None:
        return raw
    z = params[0] * float(_logit(raw)) + params[1] + (params[2] if confirmed else 0.0)
    return float(1.0 / (1.0 + np.exp(-z)))


# sources calibrated by their out-of-fold precision, not by the model's score
_BY_PRECISION = ("lexicon", "abbreviation")
# sources whose spans repeat a string the seeds annotate: the by-precision prior is their pooled precision
_STRING_MATCHED = ("lexicon", "abbreviation", "model+lexicon")


class SpanCalibration:
    """Calibrated confidence of a suggested span by its source. Model spans (``model``, and
    ``model+lexicon`` where the seed lexicon confirms one) go through one Platt map of the raw
    score with a shift for confirmed spans (:func:`_platt`: one map fitted on all of them, so a
    handful of out-of-fold spans of either kind do not each get a map of their own);
    seed-lexicon spans the model did not find (``lexicon``) and carried short forms
    (``abbreviation``) get the out-of-fold precision of such spans, counted by document:
    ``(D * hits / found + 2 * p) / (D + 2)`` over the ``D`` seed documents they come from, ``p``
    being the pooled out-of-fold precision of all string-matched spans (lexicon, short forms,
    confirmed model spans); a lexicon the folds never saw gets ``p`` itself. A short form or a
    lexicon entry recurs within a document and across the repeated splits, so its spans there
    are one piece of evidence, not many: 21 right of 21 from three documents moves ``p`` three
    fifths of the way to 1, not all of it."""

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
        matched = [ok for src, _, ok, _ in rows if src in _STRING_MATCHED] or [ok for _, _, ok, _ in rows]
        prior = float(np.mean(matched)) if matched else None
        for src in sorted({src for src, *_ in rows}):
            oks = [ok for s_, _, ok, _ in rows if s_ == src]
            documents = len({doc for s_, _, _, doc in rows if s_ == src})
            sources[src] = {"oof_spans": len(oks), "oof_documents": documents,
                            "oof_precision": round(float(np.mean(oks)), 4)}
            if src in _BY_PRECISION:
                k = _PRECISION_PRIOR_DOCUMENTS
                precision[src] = (documents * float(np.mean(oks)) + k * prior) / (documents + k)
        if "lexicon" not in precision and prior is not None:
            # the entry's share on the seeds read 0.94-1.0 where such spans were right 0.74-1.0
            precision["lexicon"] = prior
        oks = [ok for _, _, ok, _ in rows]
        summary = {"platt": None if platt is None else [round(x, 4) for x in platt], "oof_spans": len(rows),
                   "oof_span_precision": round(float(np.mean(oks)), 4) if oks else None, "sources": sources}
        return cls(platt, precision), summary

    def confidence(self, raw: float, source: str) -> float:
        """A suggested span's calibrated confidence from its raw one (the model's score, or for
        ``lexicon`` the entry's share on the seeds, kept only when the folds saw no span at all;
        an ``abbreviation`` the folds never saw takes its long form's calibrated confidence)."""
        if source in self.precision:
            return self.precision[source]
        if source == "lexicon":
            return raw
        return _apply_platt(raw, self.platt, confirmed=source == "model+lexicon")
