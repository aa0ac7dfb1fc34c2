"""Calibration: one softmax, one temperature fit, one ECE with one binning rule.

The audit (predicted probabilities of a task model) and the labeler (logits of its few-shot
heads) used to bin differently, so the same predictions could get two ECEs. Both now call this
module. Bins are right-closed, ``(m-1)/M < confidence <= m/M`` (Guo et al. 2017), with
confidence 0 in the first bin.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in the input's float precision."""
    z = np.asarray(logits)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function; clipped so that large logits give 0/1 without overflow warnings."""
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))


# the search interval of fit_temperature: a fit at the top means the flattest confidences fit
# best, i.e. the scores say nothing about being right; at the bottom, that every row was right
TEMPERATURE_RANGE = (0.02, 50.0)


def at_temperature_bound(temperature: float) -> str | None:
    """``"upper"`` or ``"lower"`` when a fitted temperature sits at its search bound (not a fit
    of the model's confidences but the end of the interval), else None."""
    lo, hi = TEMPERATURE_RANGE
    return "upper" if temperature >= hi * 0.98 else "lower" if temperature <= lo * 1.02 else None


def fit_temperature(logits: np.ndarray, y: np.ndarray, *, multilabel: bool = False,
                    smoothing: float = 0.0) -> float:
    """The temperature T > 0 minimising the NLL of ``logits / T`` (golden-section search on
    log T over [0.02, 50]).

    ``y`` holds class indices (single-label) or a 0/1 matrix (multi-label, binary NLL per cell).
    With no rows the identity temperature 1 is returned. ``smoothing`` (ε) fits the targets
    ``(1 - ε) * y + ε / classes``: a handful of rows that the model happens to get all right
    would otherwise drive T to its floor and every confidence to 1.0.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if len(logits) == 0:
        return 1.0
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    if multilabel:
        target = np.asarray(y, dtype=np.float64) * (1 - smoothing) + smoothing / 2
    else:
        target = np.full(logits.shape, smoothing / logits.shape[1])
        target[np.arange(len(y)), y] += 1 - smoothing

    def nll(log_t: float) -> float:
        z = logits / math.exp(log_t)
        if multilabel:
            p = np.clip(sigmoid(z), 1e-12, 1 - 1e-12)
            return float(-(target * np.log(p) + (1 - target) * np.log(1 - p)).mean())
        log_p = np.log(np.clip(softmax(z), 1e-12, None))
        return float(-(target * log_p).sum(axis=1).mean())

    lo, hi = (math.log(x) for x in TEMPERATURE_RANGE)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(b)
    return float(math.exp((lo + hi) / 2))


def fit_temperature_to_probs(probs: np.ndarray, y: np.ndarray) -> float:
    """``fit_temperature`` for a model that gives probabilities: log-probabilities act as logits."""
    return fit_temperature(np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)), np.asarray(y))


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities rescaled by a temperature fitted with ``fit_temperature_to_probs``."""
    return softmax(np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)) / temperature)


def reliability(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 10) -> dict[str, Any]:
    """ECE, MCE and the reliability-diagram bins (only the non-empty ones) of confidences and
    0/1 correctness. ECE is the sum over bins of ``|accuracy - confidence| * share``; MCE the
    largest ``|accuracy - confidence|`` of a bin, and ``mce_n`` how many of the ``n`` predictions
    that bin holds (the first such bin on a tie): an MCE from a bin of 2 is mostly noise."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if len(confidence) == 0:
        return {"n": 0, "ece": None, "mce": None, "mce_n": None, "bins": []}
    # m / M exactly: np.linspace's edges fall one ulp short of it for some M (5/6, 5/7, ...), and
    # a confidence of exactly m / M then went one bin up, against the right-closed rule
    edges = np.arange(n_bins + 1) / n_bins
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    ece, mce, mce_n, bins = 0.0, 0.0, 0, []
    for b in range(n_bins):
        mask = which == b
        if not mask.any():
            continue
        acc, conf, m = float(correct[mask].mean()), float(confidence[mask].mean()), int(mask.sum())
        gap = abs(acc - conf)
        ece += gap * m / len(confidence)
        if not bins or gap > mce:
            mce, mce_n = gap, m
        bins.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "n": m, "accuracy": acc, "confidence": conf})
    return {"n": int(len(confidence)), "ece": float(ece), "mce": float(mce), "mce_n": mce_n, "bins": bins}


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 10) -> float:
    """ECE of confidences against 0/1 correctness (NaN with no rows)."""
    ece = reliability(confidence, correct, n_bins)["ece"]
    return float("nan") if ece is None else ece


def top_class_reliability(probs: np.ndarray, y_true: np.ndarray, n_bins: int = 10) -> dict[str, Any]:
    """``reliability`` of the top class of each row of a probability matrix."""
    probs = np.asarray(probs)
    if len(probs) == 0:
        return reliability(np.zeros(0), np.zeros(0), n_bins)
    return reliability(probs.max(1), probs.argmax(1) == np.asarray(y_true), n_bins)
