"""The audit for NER models: data, entity-level performance per group (with bootstrap CIs)
and the F1 gaps between groups. Calibration, explanations and counterfactuals are
classification-only for now.

F1 is ``2 tp / (2 tp + fp + fn)``: a group with neither gold nor predicted entities has nothing
to find and nothing wrongly found, so its precision, recall and F1 are ``None`` (not measured) and
it stays out of the gaps and the worst group. A group with predictions but no gold entities has
precision 0, recall ``None`` (no entity to recall) and F1 0 (every prediction is a false
positive); one with gold but no predictions has precision ``None``, recall 0 and F1 0. The rule
is :func:`domainfm.metrics.entity_metrics`'s, which applies it to each entity type as well.
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any, Callable, Sequence

import numpy as np

from domainfm.audit.config import AuditConfig
from domainfm.audit.metrics import (ci_definition, count_units, group_value, is_small_group, percentile_interval,
                                     resample_weights, resampling_units, unit_warning)


def _doc_counts(gold, pred) -> tuple[int, int, int]:
    g = {(s.start, s.end, s.label) for s in gold}
    p = {(s.start, s.end, s.label) for s in pred}
    return len(g & p), len(g), len(p)


def _f1(tp, ng, npred):
    """Entity F1 from counts, NaN where there is no gold and no predicted entity (0/0)."""
    den = np.asarray(ng + npred, dtype=float)
    return np.divide(2 * np.asarray(tp, dtype=float), den, out=np.full(den.shape, np.nan), where=den > 0)


def _ci(counts: np.ndarray, cfg: AuditConfig, rng: np.random.Generator,
        units: np.ndarray | None = None) -> tuple[list[float] | None, int]:
    """95% percentile interval of F1 over resamples of units (``units``: each document's, see
    :func:`~domainfm.audit.metrics.resampling_units`; ``None``: documents), and how many resamples
    it kept: those without any gold or predicted entity have no F1 and are left out (``None`` when
    none is left, or when the documents come from fewer than 2 units)."""
    n = len(counts)
    if count_units(units, n) < 2 or cfg.n_bootstrap == 0:
        return None, 0
    sums = resample_weights(units, n, cfg.n_bootstrap, rng) @ counts
    f1 = _f1(sums[:, 0], sums[:, 1], sums[:, 2])
    f1 = f1[~np.isnan(f1)]
    if len(f1) == 0:
        return None, 0
    return percentile_interval(f1), int(len(f1))


def _with_ci(m: dict[str, Any], interval_and_kept: tuple[list[float] | None, int], n_boot: int) -> dict[str, Any]:
    """``m`` with its F1 interval and the resamples that interval kept (a group that few resamples
    give any entity has an interval from those few: the count says so)."""
    interval, kept = interval_and_kept
    m["ci"] = {"f1": interval}
    m["ci_resamples"] = {"f1": {"kept": kept, "of": n_boot}}
    return m


def run_ner_audit(predict_spans: Callable[[list[Any]], list[list[Any]]], types: Sequence[str], docs: list[Any],
                  cfg: AuditConfig, source: str, profile: str = "clinical") -> dict[str, Any]:
    """Audit span predictions: ``predict_spans(docs)`` -> predicted spans per document; gold
    spans are ``doc.spans`` of the entity ``types``."""
    from domainfm.audit.runner import _data_section, checked_groups, identifying_warnings
    from domainfm.metrics import entity_metrics

    types = list(types)
    gold = [[s for s in (d.spans if not cfg.label_field or cfg.label_field == "spans" else getattr(d, cfg.label_field))
             if s.label in types] for d in docs]
    records = [d.to_dict() for d in docs]
    names = {a: np.array([group_value(r, a) for r in records], dtype=object) for a in cfg.group_by}
    flagged = checked_groups(names, cfg, profile)  # before the model runs
    pred = [[s for s in p if s.label in types] for p in predict_spans(docs)]
    counts = np.array([_doc_counts(g, p) for g, p in zip(gold, pred)]).reshape(-1, 3)
    base = dict(names)
    if cfg.intersections:
        for a, b in itertools.combinations(cfg.group_by, 2):
            names[f"{a} x {b}"] = np.array([f"{x} | {y}" for x, y in zip(names[a], names[b])], dtype=object)
    units, resampled = resampling_units(docs, cfg.bootstrap_unit)
    rng = np.random.default_rng(cfg.seed)
    overall = entity_metrics(gold, pred, types)
    overall["n"] = len(docs)
    _with_ci(overall, _ci(counts, cfg, rng, units), cfg.n_bootstrap)
    by_attr = {}
    for attr, groups_of in names.items():
        groups = {}
        for g in sorted(set(groups_of.tolist())):
            idx = np.flatnonzero(groups_of == g)
            m = entity_metrics([gold[i] for i in idx], [pred[i] for i in idx], types)
            n_units = None if units is None else count_units(units[idx], len(idx))
            m.update({"n": int(len(idx)), **({"units": n_units} if units is not None else {}),
                      "small": is_small_group(len(idx), n_units, cfg.min_group_size)})
            _with_ci(m, _ci(counts[idx], cfg, rng, None if units is None else units[idx]), cfg.n_bootstrap)
            groups[g] = m
        gaps = {}
        for scope, keep in (("all_groups", lambda m: True), ("reliable_groups", lambda m: not m["small"])):
            # a group without gold or predicted entities has no F1: it is listed, never compared
            kept = {g: m for g, m in groups.items() if keep(m)}
            chosen = {g: m for g, m in kept.items() if m["f1"] is not None}
            f1s = [m["f1"] for m in chosen.values()]
            gaps[scope] = {"groups": sorted(chosen), "not_measured": sorted(set(kept) - set(chosen)),
                           "comparable": len(f1s) >= 2,
                           "f1_difference": (max(f1s) - min(f1s)) if len(f1s) >= 2 else None,
                           "worst_group": min(chosen, key=lambda g: chosen[g]["f1"]) if chosen else None,
                           "worst_group_f1": min(f1s) if f1s else None}
        by_attr[attr] = {"groups": groups, "gaps": gaps}
    entity_counts = Counter(s.label for g in gold for s in g)
    data = _data_section(docs, [], types, base, cfg, 0, units, resampled)
    data["label_distribution"] = {t: int(entity_counts.get(t, 0)) for t in types}
    data["n_classes_in_data"] = len(entity_counts)
    from dataclasses import asdict

    return {
        "config": asdict(cfg),
        "model": {"task": "ner", "labels": types, "has_scores": False, "source": source, "path": None,
                  "fingerprint": None},
        "data": data,
        "performance": {"overall": overall, "by_attribute": by_attr,
                        "bootstrap": {**resampled, "resamples": cfg.n_bootstrap, "seed": cfg.seed}},
        "calibration": {"available": False, "reason": "calibration is audited for classification models only"},
        "warnings": identifying_warnings(flagged) + [w for w in [unit_warning(resampled)] if w],
        "privacy": {"identifying_groups": flagged},
        "definitions": {"ner": overall["definition"],
                        "ci": ci_definition(resampled, cfg.n_bootstrap, cfg.seed),
                        "ner_not_measured": "a group with no gold and no predicted entity has no precision, recall "
                                            "or F1 (null, 'n/a'): it is listed under the gaps' not_measured and "
                                            "left out of the F1 difference and the worst group; with no gold "
                                            "entity recall is null and F1 0, with no prediction precision is null",
                        "ner_ci_resamples": "a resample without any gold or predicted entity has no F1 and is left "
                                            "out of the F1 interval; ci_resamples.f1 counts the kept ones (kept, of)",
                        "unknown_group": "documents without the attribute form the group 'unknown'"},
    }
