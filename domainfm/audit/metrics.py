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
* Intervals: 95% percentile bootstrap. A resample draws patients (``meta.patient_id``) with
  replacement and takes all their documents when every document names its patient, else it draws
  documents (:func:`resampling_units`; ``AuditConfig.bootstrap_unit``).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from domainfm.corpus.grouping import missing
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
#
# A resample draws units with replacement, as many as there are, and takes every document of a
# drawn unit. The unit is the patient when the documents name one: a patient's notes share the
# patient, the clinician and the wording, so they are not independent draws, and resampling them
# one by one gives intervals that are too narrow. Each resample is held as how many times it drew
# each document (a weight), and every statistic is a weighted count.


#: The field :func:`resampling_units` resamples by when every document names its patient.
PATIENT_KEY = "meta.patient_id"


def resampling_units(docs: Sequence[Any], unit: str = "auto") -> tuple[np.ndarray | None, dict[str, Any]]:
    """Which unit the audit's bootstrap resamples, per document.

    Args:
        docs: the audited documents (``Document``), in the order of the arrays the intervals read.
        unit: ``auto``: patients (``meta.patient_id``) when every document names one, else
            documents (as ``domainfm deid-eval --intervals`` decides, and fine-tuning's
            ``split_key: auto``); ``document``; or ``meta.<key>``, a field every document has (an
            encounter, a patient under another name).

    Returns:
        ``(units, described)``: ``units[i]`` is document ``i``'s unit (``None`` when the unit is
        the document); ``described`` is what the report records: ``resampled`` (``"patients
        (n=27; 90 documents)"`` or ``"documents (n=90)"``), ``unit`` (``document`` or the field),
        ``n_units``, ``n_documents`` and, with ``auto``, ``with_patient_id`` (how many documents
        name their patient). The field's values never leave this function.

    Raises:
        ConfigError: ``unit`` is a field some documents lack (counted, with their positions).
    """
    n = len(docs)
    key = PATIENT_KEY if unit == "auto" else unit
    values: list[str] | None = None
    named = 0
    if key != "document":
        raw = [doc.meta.get(key[len("meta."):]) for doc in docs]
        absent = [i for i, v in enumerate(raw) if missing(v)]
        if absent and unit != "auto":
            where = ", ".join(str(i + 1) for i in absent[:3])
            raise ConfigError(f"bootstrap_unit is {unit!r} but {len(absent)} of {n} documents have no value there "
                              f"(document(s) {where} of the audited data, counting from 1): give every document one, "
                              "or set bootstrap_unit to 'auto' or 'document'")
        named = n - len(absent)
        # "auto" resamples patients only when every document names one: a corpus with a few ids
        # among many notes is more likely a mistake than a mix to honour (fine-tuning's rule)
        if n and not absent:
            values = [str(v) for v in raw]  # 17 and "17" are one patient, as fine-tuning's split has them
    if values is None:
        described: dict[str, Any] = {"resampled": f"documents (n={n})", "unit": "document", "n_units": n,
                                     "n_documents": n}
        if unit == "auto":
            described["with_patient_id"] = named
        return None, described
    units = np.unique(np.array(values, dtype=object), return_inverse=True)[1].reshape(-1)
    k = int(units.max()) + 1
    noun = "patients" if key == PATIENT_KEY else f"{key} units"
    return units, {"resampled": f"{noun} (n={k}; {n} documents)", "unit": key, "n_units": k, "n_documents": n}


def ci_definition(described: dict[str, Any], n_boot: int, seed: int) -> str:
    """The report's ``definitions.ci``: the interval, and what a resample drew."""
    if described["unit"] == "document":
        return f"95% percentile bootstrap over documents ({n_boot} resamples, seed {seed})"
    who = "patients" if described["unit"] == PATIENT_KEY else f"{described['unit']} units"
    one = "a patient's" if described["unit"] == PATIENT_KEY else "a unit's"
    return (f"95% percentile bootstrap over {who} ({described['n_units']} by {described['unit']}, "
            f"{described['n_documents']} documents; {one} documents are drawn together, and a group's interval "
            f"draws the {who} with documents in that group; {n_boot} resamples, seed {seed})")


def unit_warning(described: dict[str, Any]) -> str | None:
    """A warning when some documents name their patient and others do not (``auto`` then
    resamples documents, and the intervals are too narrow if a patient has several notes)."""
    named, n = described.get("with_patient_id", 0), described["n_documents"]
    if not 0 < named < n:
        return None
    return (f"{named} of {n} documents name their patient ({PATIENT_KEY}) and {n - named} do not: the intervals "
            "resample documents, which makes them too narrow where a patient has several notes; give every document "
            "its patient_id, or set bootstrap_unit to say what to resample")


def _codes(units: np.ndarray | None, n: int) -> np.ndarray:
    """The units renumbered ``0..k-1``; every document its own unit, in order, when ``None``."""
    if units is None:
        return np.arange(n)
    return np.unique(np.asarray(units), return_inverse=True)[1].reshape(-1)


def count_units(units: np.ndarray | None, n: int) -> int:
    """How many units ``n`` documents with these ``units`` (:func:`resampling_units`) come from."""
    return n if units is None else len(np.unique(np.asarray(units)))


def resample_weights(units: np.ndarray | None, n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """How many times each of ``n`` documents is drawn in each of ``n_boot`` resamples:
    ``(n_boot, n)`` floats holding whole numbers. Each resample draws as many units as there are,
    with replacement, and every document of a drawn unit.

    With every document its own unit (``units`` ``None``) this is the document bootstrap, from the
    same draws as ``rng.integers(0, n, size=(n_boot, n))``: the audit's intervals of documents that
    name no patient are the ones it gave before it resampled patients.
    """
    codes = _codes(units, n)
    k = int(codes.max()) + 1 if n else 0
    draws = rng.integers(0, k, size=(n_boot, k))
    # one bincount for all resamples: resample b's units counted at b*k .. b*k + k-1
    drawn = np.bincount((draws + k * np.arange(n_boot)[:, None]).ravel(), minlength=n_boot * k)
    drawn = drawn.astype(float).reshape(n_boot, k)
    return drawn if units is None else drawn[:, codes]


def _ratio(num: np.ndarray, den: np.ndarray, fill: float) -> np.ndarray:
    return np.divide(num, den, out=np.full(len(den), fill), where=den > 0)


def _boot_macro_f1(w: np.ndarray, t: np.ndarray, p: np.ndarray, n_classes: int) -> np.ndarray:
    """Each resample's macro-F1: the mean F1 over the classes in its gold or predicted labels."""
    f1s, present = [], []
    for k in range(n_classes):
        tp, fp, fn = (w @ np.stack([(t == k) & (p == k), (t != k) & (p == k), (t == k) & (p != k)], 1)).T
        denom = 2 * tp + fp + fn
        f1s.append(_ratio(2 * tp, denom, 0.0))
        present.append(denom > 0)
    f1s, present = np.array(f1s), np.array(present)
    return _ratio((f1s * present).sum(0), present.sum(0), 0.0)


def percentile_interval(samples: np.ndarray) -> list[float]:
    """The 95% percentile interval of bootstrap samples."""
    return [float(np.percentile(samples, 2.5)), float(np.percentile(samples, 97.5))]


def bootstrap_cis(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, positive: int, *,
                  n_boot: int, rng: np.random.Generator,
                  units: np.ndarray | None = None) -> dict[str, list[float] | None]:
    """95% percentile intervals for accuracy, macro-F1 and the positive class's rates.

    Args:
        units: each document's resampling unit (:func:`resampling_units`); ``None``: documents.

    ``None`` when the documents come from fewer than 2 units (one patient's notes, however many,
    say nothing of how the next patient's would go) or there are no resamples."""
    keys = ("accuracy", "macro_f1", "selection_rate", "tpr", "fpr")
    n = len(y_true)
    if count_units(units, n) < 2 or n_boot == 0:
        return {k: None for k in keys}
    w = resample_weights(units, n, n_boot, rng)
    tk, pk = y_true == positive, y_pred == positive
    total, correct, selected, pos, tp, fp = (w @ np.stack([np.ones(n, bool), y_true == y_pred, pk, tk, tk & pk,
                                                            ~tk & pk], 1)).T
    samples = {
        "accuracy": correct / total,
        "macro_f1": _boot_macro_f1(w, y_true, y_pred, n_classes),
        "selection_rate": selected / total,
        "tpr": _ratio(tp, pos, 0.0),
        "fpr": _ratio(fp, total - pos, 0.0),
    }
    return {k: percentile_interval(v) for k, v in samples.items()}


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


def is_small_group(n_documents: int, n_units: int | None, min_group_size: int) -> bool:
    """Whether a group is too small to trust: fewer than ``min_group_size`` documents or, when the
    intervals resample patients (``n_units``: the group's patients), fewer patients. Forty notes
    of three patients are three observations to a patient bootstrap, not forty."""
    return n_documents < min_group_size or (n_units is not None and n_units < min_group_size)


def small_group_rule(min_group_size: int, described: dict[str, Any]) -> str:
    """The rule :func:`is_small_group` applied, in words, for reports and cards."""
    unit = described.get("unit", "document")
    if unit == "document":
        return f"fewer than {min_group_size} documents"
    name = "patients" if unit == PATIENT_KEY else f"{unit} units"
    return f"fewer than {min_group_size} documents or {min_group_size} {name}"


def fairness_gaps(groups: dict[str, dict[str, Any]], labels: Sequence[str], positive: str,
                  min_group_size: int) -> dict[str, Any]:
    """Gaps between the groups of one attribute, for the positive class and macro over classes,
    over all groups and over the groups that are not small (``small``, set by
    :func:`is_small_group`; a group without the flag: at least ``min_group_size`` documents)."""
    out: dict[str, Any] = {}
    for scope, keep in (("all_groups", lambda g: True),
                        ("reliable_groups", lambda g: not g.get("small", g["n"] < min_group_size))):
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
            n_boot: int, rng: np.random.Generator, units: np.ndarray | None = None,
            return_resamples: bool = False) -> Any:
    """95% percentile intervals of the gaps between ``groups`` (units resampled with replacement
    over all documents, as :func:`bootstrap_cis`): accuracy difference, and the positive class's
    demographic parity and equalized odds differences.

    A resample in which fewer than two of the groups occur has no gap and is left out; one in
    which some but not all occur measures the gap among those that do. The gap is a range (max -
    min), and the range of noisy group estimates is larger than the range of the exact ones: with
    small groups the resampled gaps sit above the measured gap, and the whole interval can lie
    above it. It is the spread of the resampled gaps, not a bias-corrected interval.

    Returns:
        The intervals (``None`` when there are fewer than two groups or two units, no resamples, or
        no resample kept two groups); with ``return_resamples``, ``(intervals, resamples)``,
        ``resamples`` being ``{"kept": resamples with two or more of the groups, "all_groups":
        resamples with every one, "of": n_boot}`` (``None`` where none was drawn).
    """
    keys = ("accuracy_difference", "demographic_parity_difference", "equalized_odds_difference")
    n = len(y_true)
    if len(groups) < 2 or count_units(units, n) < 2 or n_boot == 0:
        return ({k: None for k in keys}, None) if return_resamples else {k: None for k in keys}
    w = resample_weights(units, n, n_boot, rng)
    correct, tk, pk = y_true == y_pred, y_true == positive, y_pred == positive

    acc, sel, tpr, fpr = [], [], [], []
    for name in groups:
        m = names == name
        # NaN where a resample holds none of the group (or none of its positives/negatives)
        within, right, chosen, pos, tp, neg, fp = (w @ np.stack([m, correct & m, pk & m, m & tk, pk & m & tk,
                                                                  m & ~tk, pk & m & ~tk], 1)).T
        acc.append(_ratio(right, within, np.nan))
        sel.append(_ratio(chosen, within, np.nan))
        # fairlearn's convention (as ovr_rates): a group without positives has TPR 0
        tpr.append(np.where(np.isnan(acc[-1]), np.nan, _ratio(tp, pos, 0.0)))
        fpr.append(np.where(np.isnan(acc[-1]), np.nan, _ratio(fp, neg, 0.0)))
    acc, sel, tpr, fpr = map(np.array, (acc, sel, tpr, fpr))
    occurring = (~np.isnan(acc)).sum(0)
    present = occurring >= 2
    resamples = {"kept": int(present.sum()), "all_groups": int((occurring == len(groups)).sum()), "of": int(n_boot)}
    if not present.any():
        return ({k: None for k in keys}, resamples) if return_resamples else {k: None for k in keys}

    def spread(v: np.ndarray) -> np.ndarray:
        return np.nanmax(v[:, present], 0) - np.nanmin(v[:, present], 0)

    samples = {"accuracy_difference": spread(acc), "demographic_parity_difference": spread(sel),
               "equalized_odds_difference": np.maximum(spread(tpr), spread(fpr))}
    intervals = {k: percentile_interval(v) for k, v in samples.items()}
    return (intervals, resamples) if return_resamples else intervals
