"""Group assignment, performance per group with bootstrap CIs, fairness gaps and calibration.

Definitions (the same as fairlearn's ``MetricFrame`` and metric functions on the same
predictions; ``tests/test_audit.py`` checks it):

* accuracy, macro-F1 (sklearn: mean F1 over the labels present in the group's gold or
  predicted labels), per-class precision / recall (0 where undefined).
* Multi-class fairness is one-vs-rest: for a class ``c``, selection rate is the share of
  documents predicted ``c``; TPR is recall of ``c``; FPR is the share of non-``c`` documents
  predicted ``c`` (0 when the group has no positives / negatives, as fairlearn).
* Demographic parity difference / ratio: max - min and min / max of the selection rate over
  groups (the ratio ``None`` when no group has a document predicted the class: 0/0, NaN in
  fairlearn); equalized odds difference: the larger of the TPR and FPR differences. Reported for
  the positive class and as the macro (mean) over the classes where it is defined. A scope with
  fewer than two groups has no gaps (``None``, ``comparable: false``), where fairlearn would
  report 0.
* ECE: sum over equal-width confidence bins of ``|accuracy - confidence| * n_bin / n``; MCE: the
  largest such gap over non-empty bins; confidence is the top-class probability.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from domainfm.errors import ConfigError
from domainfm.metrics import macro_f1

from domainfm.audit.config import AGE_BANDS, UNKNOWN


# ---------------------------------------------------------------------------------------------
# Groups


# no one has lived to 125: an age beyond it is a data error, not the oldest band
MAX_AGE = 125


def age_band(age: Any) -> str:
    """``meta.age`` -> one of :data:`AGE_BANDS` (``unknown`` if missing, not a number, or not a
    human age: a flag such as ``true``, an age of 125 or more)."""
    if isinstance(age, bool):
        return UNKNOWN
    try:
        value = float(age)
    except (TypeError, ValueError):
        return UNKNOWN
    if value != value or value >= MAX_AGE:  # NaN, or a typo that would fill the oldest band
        return UNKNOWN
    for name, lo, hi in AGE_BANDS:
        if lo <= value < hi:
            return name
    return UNKNOWN


def _lookup(record: dict[str, Any], dotted: str) -> Any:
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def group_value(record: dict[str, Any], attribute: str) -> str:
    """The group of a document record (``Document.to_dict()``) for a dotted attribute."""
    if attribute.endswith(".age_band") and _lookup(record, attribute) is None:
        return age_band(_lookup(record, attribute[: -len("_band")]))
    value = _lookup(record, attribute)
    # NaN is how pandas writes a missing value: 'nan' would be a group of its own
    if value is None or (isinstance(value, str) and not value.strip()) or (isinstance(value, float) and value != value):
        return UNKNOWN
    if isinstance(value, (dict, list)):  # its repr would be the group's name, and may hold anything
        kind = "list" if isinstance(value, list) else "nested object"
        raise ConfigError(f"group_by field {attribute!r} holds a {kind} on some documents, not one value per "
                          f"document: group by a field with a single code or category (or a key inside it, e.g. "
                          f"{attribute}.<key>)")
    return str(value)


def short_name(attribute: str) -> str:
    return attribute.rsplit(".", 1)[-1]


# ---------------------------------------------------------------------------------------------
# Point metrics (numpy; equal to sklearn / fairlearn)


def _prf(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> tuple[float, float, float, int]:
    tp = int(np.sum((y_true == k) & (y_pred == k)))
    fp = int(np.sum((y_true != k) & (y_pred == k)))
    fn = int(np.sum((y_true == k) & (y_pred != k)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return precision, recall, f1, tp + fn


def ovr_rates(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> dict[str, float]:
    """One-vs-rest selection rate, TPR and FPR of class index ``k``."""
    t, p = y_true == k, y_pred == k
    pos, neg = int(t.sum()), int((~t).sum())
    return {
        "selection_rate": float(p.mean()) if len(p) else 0.0,
        "tpr": float((t & p).sum() / pos) if pos else 0.0,
        "fpr": float((~t & p).sum() / neg) if neg else 0.0,
    }


def group_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """accuracy, macro-F1, per-class precision/recall/F1 and one-vs-rest rates of one group."""
    per_class = {}
    for k, name in enumerate(labels):
        precision, recall, f1, support = _prf(y_true, y_pred, k)
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": support,
                           **ovr_rates(y_true, y_pred, k)}
    return {"n": int(len(y_true)), "accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else 0.0,
            "macro_f1": macro_f1(y_true, y_pred), "per_class": per_class}


# ---------------------------------------------------------------------------------------------
# Bootstrap


def _boot_macro_f1(t: np.ndarray, p: np.ndarray, n_classes: int) -> np.ndarray:
    f1s, present = [], []
    for k in range(n_classes):
        tp = np.sum((t == k) & (p == k), axis=1)
        fp = np.sum((t != k) & (p == k), axis=1)
        fn = np.sum((t == k) & (p != k), axis=1)
        denom = 2 * tp + fp + fn
        f1s.append(np.divide(2 * tp, denom, out=np.zeros(len(t)), where=denom > 0))
        present.append(denom > 0)
    f1s, present = np.array(f1s), np.array(present)
    return np.divide((f1s * present).sum(0), present.sum(0), out=np.zeros(len(t)), where=present.sum(0) > 0)


def bootstrap_cis(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, positive: int, *,
                  n_boot: int, rng: np.random.Generator) -> dict[str, list[float] | None]:
    """95% percentile intervals for accuracy, macro-F1 and the positive class's rates.

    ``None`` when there are fewer than 2 documents or no resamples."""
    keys = ("accuracy", "macro_f1", "selection_rate", "tpr", "fpr")
    n = len(y_true)
    if n < 2 or n_boot == 0:
        return {k: None for k in keys}
    idx = rng.integers(0, n, size=(n_boot, n))
    t, p = y_true[idx], y_pred[idx]
    tk, pk = t == positive, p == positive
    pos, neg = tk.sum(1), (~tk).sum(1)
    samples = {
        "accuracy": (t == p).mean(1),
        "macro_f1": _boot_macro_f1(t, p, n_classes),
        "selection_rate": pk.mean(1),
        "tpr": np.divide((tk & pk).sum(1), pos, out=np.zeros(n_boot), where=pos > 0),
        "fpr": np.divide((~tk & pk).sum(1), neg, out=np.zeros(n_boot), where=neg > 0),
    }
    return {k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for k, v in samples.items()}


# ---------------------------------------------------------------------------------------------
# Fairness gaps


def _gaps(values: dict[str, dict[str, float]]) -> dict[str, float | None]:
    if len(values) < 2:  # a gap needs two groups: one group's 0.000 would read as "no gap found"
        return {"demographic_parity_difference": None, "demographic_parity_ratio": None,
                "equalized_odds_difference": None, "tpr_difference": None, "fpr_difference": None}
    sel = [v["selection_rate"] for v in values.values()]
    tpr = [v["tpr"] for v in values.values()]
    fpr = [v["fpr"] for v in values.values()]
    tpr_d, fpr_d = max(tpr) - min(tpr), max(fpr) - min(fpr)
    return {
        "demographic_parity_difference": max(sel) - min(sel),
        # 0/0 when no group has a document predicted the class: undefined (fairlearn: NaN), not the
        # worst disparity that 0.0 would read as
        "demographic_parity_ratio": (min(sel) / max(sel)) if max(sel) > 0 else None,
        "equalized_odds_difference": max(tpr_d, fpr_d),
        "tpr_difference": tpr_d,
        "fpr_difference": fpr_d,
    }


def fairness_gaps(groups: dict[str, dict[str, Any]], labels: Sequence[str], positive: str,
                  min_group_size: int) -> dict[str, Any]:
    """Gaps between the groups of one attribute, for the positive class and macro over classes,
    over all groups and over the groups with at least ``min_group_size`` documents."""
    out: dict[str, Any] = {}
    for scope, keep in (("all_groups", lambda g: True), ("reliable_groups", lambda g: g["n"] >= min_group_size)):
        chosen = {name: g for name, g in groups.items() if keep(g)}
        per_class = {c: _gaps({name: g["per_class"][c] for name, g in chosen.items()}) for c in labels}
        macro = {}
        for key in ("demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference"):
            vals = [per_class[c][key] for c in labels if per_class[c][key] is not None]
            macro[key] = float(np.mean(vals)) if vals else None
        accs = [g["accuracy"] for g in chosen.values()]
        f1s = [g["macro_f1"] for g in chosen.values()]
        worst = min(chosen, key=lambda name: chosen[name]["accuracy"]) if chosen else None
        out[scope] = {
            "groups": sorted(chosen),
            "comparable": len(chosen) >= 2,
            "positive_class": per_class[positive],
            "macro_over_classes": macro,
            "per_class": per_class,
            "worst_group": worst,
            "worst_group_accuracy": min(accs) if accs else None,
            "worst_group_macro_f1": min(f1s) if f1s else None,
            "accuracy_difference": (max(accs) - min(accs)) if len(accs) >= 2 else None,
        }
    return out


def gap_cis(y_true: np.ndarray, y_pred: np.ndarray, names: np.ndarray, groups: Sequence[str], positive: int, *,
            n_boot: int, rng: np.random.Generator) -> dict[str, list[float] | None]:
    """95% percentile intervals of the gaps between ``groups`` (documents resampled with
    replacement, as :func:`bootstrap_cis`): accuracy difference, and the positive class's
    demographic parity and equalized odds differences.

    A resample in which fewer than two of the groups occur has no gap and is left out; ``None``
    when there are fewer than two groups, no resamples, or no resample kept two groups."""
    keys = ("accuracy_difference", "demographic_parity_difference", "equalized_odds_difference")
    n = len(y_true)
    if len(groups) < 2 or n < 2 or n_boot == 0:
        return {k: None for k in keys}
    idx = rng.integers(0, n, size=(n_boot, n))
    t, p, g = y_true[idx], y_pred[idx], names[idx]
    correct, tk, pk = t == p, t == positive, p == positive

    def rate(hit: np.ndarray, within: np.ndarray) -> np.ndarray:
        # NaN where a resample holds none of the group (or none of its positives/negatives)
        den = within.sum(1).astype(float)
        return np.divide((hit & within).sum(1), den, out=np.full(n_boot, np.nan), where=den > 0)

    acc, sel, tpr, fpr = [], [], [], []
    for name in groups:
        m = g == name
        acc.append(rate(correct, m))
        sel.append(rate(pk, m))
        # fairlearn's convention (as ovr_rates): a group without positives has TPR 0
        tpr.append(np.where(np.isnan(acc[-1]), np.nan, np.nan_to_num(rate(pk, m & tk))))
        fpr.append(np.where(np.isnan(acc[-1]), np.nan, np.nan_to_num(rate(pk, m & ~tk))))
    acc, sel, tpr, fpr = map(np.array, (acc, sel, tpr, fpr))
    present = (~np.isnan(acc)).sum(0) >= 2
    if not present.any():
        return {k: None for k in keys}

    def spread(v: np.ndarray) -> np.ndarray:
        return np.nanmax(v[:, present], 0) - np.nanmin(v[:, present], 0)

    samples = {"accuracy_difference": spread(acc), "demographic_parity_difference": spread(sel),
               "equalized_odds_difference": np.maximum(spread(tpr), spread(fpr))}
    return {k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for k, v in samples.items()}
