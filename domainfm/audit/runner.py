"""The audit: data, performance and fairness per group, calibration, explanations,
counterfactual robustness and privacy, gathered into one JSON-able report."""

from __future__ import annotations

import itertools
import logging
import os
import random
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from domainfm.audit.config import AGE_BANDS, UNKNOWN, AuditConfig
from domainfm.config import as_config
from domainfm.audit.metrics import (bootstrap_cis, ci_definition, count_units, fairness_gaps, gap_cis, group_metrics,
                                    group_value, is_small_group, resampling_units, small_group_rule, unit_warning)
from domainfm.metrics import apply_temperature, at_temperature_bound, fit_temperature_to_probs, top_class_reliability
from domainfm.audit.scorer import as_scorer
from domainfm.errors import ConfigError, RecordError

logger = logging.getLogger(__name__)


@dataclass
class AuditResult:
    """Where the report went, and the report itself (``report.json``'s content)."""

    out_dir: Path
    report: dict[str, Any]

    @property
    def html(self) -> Path:
        return self.out_dir / "index.html"


@contextmanager
def _timed(timings: dict[str, float] | None, name: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds = time.perf_counter() - start
        logger.info("audit: %s took %.1f s", name, seconds)
        if timings is not None:
            timings[name] = timings.get(name, 0.0) + seconds


def _score(scorer: Any, texts: Sequence[str], batch_size: int) -> np.ndarray:
    rows = [np.asarray(scorer.predict_proba(list(texts[a:a + batch_size])), dtype=float)
            for a in range(0, len(texts), batch_size)]
    probs = np.vstack(rows) if rows else np.zeros((0, len(scorer.labels)))
    if probs.shape != (len(texts), len(scorer.labels)):
        raise ConfigError(f"the scorer returned scores of shape {probs.shape}; expected "
                          f"({len(texts)}, {len(scorer.labels)}) (texts x labels)")
    # NaN would be every argmax's "prediction" and blank out ECE; logits would make confidences
    # of 3.2 or -1: every number after this would be wrong without a word
    bad = ~np.isfinite(probs).all(1)
    if bad.any():
        raise ConfigError(f"the scorer returned NaN or infinite scores for {int(bad.sum())} of {len(texts)} texts; "
                          "predict_proba must give finite probabilities")
    bad = ((probs < -1e-6) | (probs > 1 + 1e-6)).any(1) | (np.abs(probs.sum(1) - 1) > 1e-3)
    if bad.any():
        raise ConfigError(f"the scorer's rows are not probabilities for {int(bad.sum())} of {len(texts)} texts (each "
                          "row must be in [0, 1] and sum to 1); apply a softmax to logits before returning them "
                          "from predict_proba")
    return probs


def _group_table(y_true, y_pred, labels, names: np.ndarray, positive: int, cfg: AuditConfig,
                 rng: np.random.Generator, units: np.ndarray | None = None) -> dict[str, Any]:
    groups = {}
    for g in sorted(set(names.tolist())):
        mask = names == g
        m = group_metrics(y_true[mask], y_pred[mask], labels)
        # the group's own units (its patients), each with its documents in the group
        m["ci"] = bootstrap_cis(y_true[mask], y_pred[mask], len(labels), positive, n_boot=cfg.n_bootstrap, rng=rng,
                                units=None if units is None else units[mask])
        if units is not None:
            m["units"] = count_units(units[mask], m["n"])
        m["small"] = is_small_group(m["n"], m.get("units"), cfg.min_group_size)
        groups[g] = m
    return groups


def _data_section(docs, y_true_names, labels, group_names: dict[str, np.ndarray], cfg, n_unlabelled,
                  units: np.ndarray | None, resampled: dict[str, Any]) -> dict:
    from collections import Counter

    attrs = {}
    for attr, names in group_names.items():
        counts = Counter(names.tolist())
        n_units = {g: count_units(units[names == g], n) for g, n in counts.items()} if units is not None else {}
        attrs[attr] = {
            "groups": {g: int(n) for g, n in sorted(counts.items())},
            **({"group_units": dict(sorted(n_units.items()))} if units is not None else {}),
            "missing": int(counts.get(UNKNOWN, 0)),
            "small_groups": sorted(g for g, n in counts.items() if is_small_group(n, n_units.get(g), cfg.min_group_size)),
        }
    dist = Counter(y_true_names)
    return {"n_documents": len(docs) + n_unlabelled, "n_labelled": len(docs), "n_unlabelled": n_unlabelled,
            "n_classes_in_data": len(dist), "labels": list(labels),
            "label_distribution": {l: int(dist.get(l, 0)) for l in labels},
            "mean_chars": float(np.mean([len(d.text) for d in docs])) if docs else 0.0,
            "attributes": attrs, "min_group_size": cfg.min_group_size,
            "small_group_rule": small_group_rule(cfg.min_group_size, resampled), "note": cfg.data_note or None,
            "age_bands": [{"band": b, "from": lo, "to": None if hi == float("inf") else hi} for b, lo, hi in AGE_BANDS]}


def _calibration(probs, y_true, group_names, cfg, rng: np.random.Generator) -> dict[str, Any]:
    out = {"overall": top_class_reliability(probs, y_true, cfg.n_bins),
           "per_group": {attr: {g: top_class_reliability(probs[names == g], y_true[names == g], cfg.n_bins)
                                for g in sorted(set(names.tolist()))} for attr, names in group_names.items()}}
    n = len(y_true)
    val, test = _validation_split(y_true, cfg.calibration_split, rng)
    if len(val) < 2 or len(test) < 2:
        out["temperature"] = {"fitted": False, "reason": f"too few documents ({n}) for a validation split"}
        return out
    t = fit_temperature_to_probs(probs[val], y_true[val])
    out["temperature"] = {
        "fitted": True, "temperature": t, "at_search_bound": at_temperature_bound(t),
        "n_validation": int(len(val)), "n_test": int(len(test)),
        "before": top_class_reliability(probs[test], y_true[test], cfg.n_bins),
        "after": top_class_reliability(apply_temperature(probs[test], t), y_true[test], cfg.n_bins),
    }
    return out


def _validation_split(y_true: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(validation, test)`` positions for the temperature: seeded, stratified by label when every
    label present has 2 or more documents (each then has at least one on both sides: a rare class
    left out of the validation part would go unfitted), else a plain seeded split."""
    n = len(y_true)
    classes, counts = np.unique(y_true, return_counts=True)
    if n == 0 or counts.min() < 2 or round(n * fraction) < 1:
        order = rng.permutation(n)
        n_val = int(round(n * fraction))
        return order[:n_val], order[n_val:]
    val, test = [], []
    for c, n_c in zip(classes, counts):
        members = rng.permutation(np.flatnonzero(y_true == c))
        k = min(max(1, int(round(n_c * fraction))), int(n_c) - 1)
        val.append(members[:k])
        test.append(members[k:])
    return np.sort(np.concatenate(val)), np.sort(np.concatenate(test))


def _counterfactuals(scorer, texts, probs, group_names, cfg, has_scores) -> dict[str, Any]:
    from domainfm.audit.counterfactual import PERTURBATIONS

    pred = probs.argmax(1)
    out = {}
    for name in cfg.counterfactuals:
        fn = PERTURBATIONS[name]
        rng = random.Random(cfg.seed)
        new_texts = [fn(t, rng) for t in texts]
        changed = np.array([a != b for a, b in zip(texts, new_texts)])
        idx = np.flatnonzero(changed)
        res: dict[str, Any] = {"n_changed": int(len(idx)), "n": len(texts)}
        if len(idx) == 0:
            res.update({"flip_rate": None, "mean_shift": None, "mean_abs_shift": None, "per_group": {}})
            out[name] = res
            continue
        new_probs = _score(scorer, [new_texts[i] for i in idx], cfg.batch_size)
        flips = new_probs.argmax(1) != pred[idx]
        shift = new_probs[np.arange(len(idx)), pred[idx]] - probs[idx, pred[idx]]

        def summary(mask):
            return {"n_changed": int(mask.sum()), "flip_rate": float(flips[mask].mean()),
                    "mean_shift": float(shift[mask].mean()) if has_scores else None,
                    "mean_abs_shift": float(np.abs(shift[mask]).mean()) if has_scores else None}

        res.update(summary(np.ones(len(idx), bool)))
        res["per_group"] = {attr: {g: summary(names[idx] == g) for g in sorted(set(names[idx].tolist()))}
                            for attr, names in group_names.items()}
        out[name] = res
    return out


def checked_groups(group_names: dict[str, np.ndarray], cfg: AuditConfig, profile: str) -> dict[str, str]:
    """The ``group_by`` attributes whose values would identify people in the report
    (:func:`domainfm.audit.privacy.identifying_groups`), each with why; all of them must be in
    ``cfg.allow_identifying_groups``, else the audit stops here, before anything is scored."""
    from domainfm.audit.privacy import identifying_groups

    flagged = identifying_groups({a: group_names[a] for a in cfg.group_by}, unknown=UNKNOWN, profile=profile)
    refused = [a for a in flagged if a not in cfg.allow_identifying_groups]
    if refused:
        attr = refused[0]
        raise ConfigError(f"group_by field {attr!r} would put identifiers into the report and cards: {flagged[attr]}. "
                          "Group by a coded field instead (an age band, a site or clinician code), or name the field "
                          "in --allow-identifying-groups (allow_identifying_groups) if its values may be shown")
    return flagged


def identifying_warnings(flagged: dict[str, str]) -> list[str]:
    return [f"group_by field {a!r} is shown although its values look identifying ({why}); "
            "allow_identifying_groups names it" for a, why in flagged.items()]


def _pick_examples(y_true, y_pred, names: np.ndarray, n: int, seed: int) -> list[int]:
    """Round-robin over (group, correct / wrong) cells so examples cover both and every group."""
    rng = random.Random(seed)
    cells: dict[tuple[str, bool], list[int]] = {}
    for i in range(len(y_true)):
        cells.setdefault((names[i], bool(y_true[i] == y_pred[i])), []).append(i)
    for v in cells.values():
        rng.shuffle(v)
    order = sorted(cells, key=lambda c: (c[1], c[0]))  # wrong first
    picked: list[int] = []
    while len(picked) < n and any(cells.values()):
        for c in order:
            if cells[c] and len(picked) < n:
                picked.append(cells[c].pop())
    return picked


def _deid_profile(scorer) -> str:
    """The de-identification profile that fits the model's documents (its chunking profile:
    ``clinical`` or ``legal``), else ``clinical``."""
    return _task_profile(getattr(scorer, "tm", None))


def _task_profile(tm) -> str:
    profile = getattr(getattr(tm, "long_documents", None), "profile", None)
    return profile if profile in ("clinical", "legal") else "clinical"


def _quoted(scorer, docs, chosen: list[int], explained, trace: dict[str, Any]) -> tuple[dict, dict, dict]:
    """What the report may quote of the explained documents: ``(masked text by position, shown
    id by position, the masking record)``. Data that traces back to ``domainfm deid`` is quoted
    with the PHI patterns masked; any other data is first masked by the deid stage's own
    detector, tokens overlapping a detection whole, because names and places pass the patterns.
    Keys are positions in ``docs``, not ids: two documents may share an id."""
    from domainfm.audit.privacy import PHI_PATTERNS, mask_identifiers, mask_ids, mask_phi

    profile = _deid_profile(scorer)
    # ids are masked in both cases: deid keeps them as they were unless told to pseudonymise them
    by_id = mask_ids(list(dict.fromkeys(docs[i].id for i in chosen)), profile=profile)
    shown_ids = {i: by_id[docs[i].id] for i in chosen}
    if trace["deidentified"]:
        return ({i: mask_phi(docs[i].text) for i in chosen}, shown_ids,
                {"deidentified_input": True, "masked": f"PHI patterns ({', '.join(sorted(PHI_PATTERNS))}); "
                                                       "record ids as in data that is not de-identified"})
    texts = {("text", i): docs[i].text for i in chosen}
    tokens = {("text", int(ex.doc_id)): [(s, e) for s, e, _ in ex.tokens] for ex in explained}
    masked, n_spans = mask_identifiers(texts, tokens, profile=profile)
    record = {"deidentified_input": False, "detected_spans": n_spans,
              "masked": f"domainfm deid rules (profile {profile}), words no dictionary explains and PHI patterns "
                        f"({', '.join(sorted(PHI_PATTERNS))})",
              "reason": "the audited data does not trace back to domainfm deid: " + "; ".join(trace["evidence"])}
    return ({i: masked[("text", i)] for i in chosen}, shown_ids, record)


def _explanations(scorer, docs, probs, y_true, labels, group_names, cfg, trace: dict[str, Any]) -> dict[str, Any]:
    from domainfm.audit.explain import explain_texts, highlight_segments, top_tokens

    y_pred = probs.argmax(1)
    first = next(iter(group_names))
    examples = _pick_examples(y_true, y_pred, group_names[first], cfg.explain, cfg.seed)
    rest = [i for i in random.Random(cfg.seed + 1).sample(range(len(docs)), len(docs)) if i not in examples]
    chosen = examples + rest[: cfg.explain_sample]
    # explained under their positions: an id may be shared, and the ids never reach shap
    explained = explain_texts(scorer, [(str(i), docs[i].text) for i in chosen], max_evals=cfg.max_evals,
                              seed=cfg.seed, batch_size=cfg.batch_size)
    masked, shown_id, masking = _quoted(scorer, docs, chosen, explained, trace)
    out_examples = []
    for i, ex in zip(chosen, explained):
        if i not in examples:
            continue
        k = int(y_pred[i])
        out_examples.append({
            "doc_id": shown_id[i], "group": {a: str(n[i]) for a, n in group_names.items()},
            "gold": labels[int(y_true[i])], "pred": labels[k], "correct": bool(y_true[i] == k),
            "confidence": float(probs[i, k]), "explained_class": labels[k],
            "segments": highlight_segments(ex, masked[i], k),
        })
        values = [abs(s["value"]) for s in out_examples[-1]["segments"] if s["value"] is not None]
        out_examples[-1]["scale"] = max(values, default=0.0)
    return {"method": "shap Partition explainer, Text masker, per chunk, mapped to characters",
            "max_evals": cfg.max_evals, "batch_size": cfg.batch_size, "n_explained": len(chosen),
            "masking": masking, "top_tokens": top_tokens(explained, {str(i): t for i, t in masked.items()}, labels),
            "examples": out_examples}


def _ner_report(tm: Any, docs: Iterable[Any], cfg: AuditConfig, model_dir, data_files) -> dict[str, Any]:
    from domainfm.audit.ner import run_ner_audit
    from domainfm.audit.privacy import data_trace, training_deid_status
    from domainfm.audit.summary import findings
    from domainfm.inference.predict import predict_outputs
    from domainfm.manifest import model_identity

    docs = list(docs)
    if not docs:
        raise ConfigError(_no_documents(data_files))
    types = sorted({t[2:] for t in tm.label_map.tags if t[:2] in ("B-", "I-")})
    report = run_ner_audit(lambda ds: predict_outputs(tm, ds, batch_size=cfg.batch_size), types, docs, cfg,
                           str(model_dir) if model_dir else "TaskModel", profile=_task_profile(tm))
    report["model"].update(model_identity(model_dir))
    overlap, warning = training_overlap(model_dir, docs)
    report["data"]["training_overlap"] = overlap
    report["warnings"] = [*report.get("warnings", []), *([warning] if warning else [])]
    report["privacy"] = {**training_deid_status(model_dir, docs, data_trace(data_files)), **report["privacy"]}
    report["summary"] = findings(report)
    return report


def training_overlap(model_dir, docs: Sequence[Any]) -> tuple[dict[str, Any] | None, str | None]:
    """How many audited documents the model trained on, by the split it recorded (``split.json``:
    digests of each document's id and text), and the warning when any did; ``(None, None)`` for a
    model without a recorded split. Scores on training documents are optimistic: the cards call
    such an audit in-sample, and one of unseen or evaluation documents held-out."""
    if model_dir is None:
        return None, None
    from collections import Counter

    from domainfm.finetune.split import SPLIT_FILE, read_split

    split = read_split(model_dir)
    if split is None:
        return None, None
    sides = Counter(split.side(d) for d in docs)
    overlap = {"recorded_split": SPLIT_FILE, "in_training": sides["train"], "in_evaluation": sides["eval"],
               "unseen": sides[None]}
    if not sides["train"]:
        return overlap, None
    return overlap, (f"{sides['train']} of {len(docs)} audited documents are in the model's training data (by its "
                     f"{SPLIT_FILE}): their scores are optimistic; audit its evaluation documents or unseen ones for "
                     "an independent estimate")


def _no_documents(data_files) -> str:
    files = [str(f) for f in data_files or []]
    if not files:
        return "no documents to audit: the data holds none"
    return f"no documents to audit: {' and '.join(files)} {'holds' if len(files) == 1 else 'hold'} no documents " \
           "(an empty file?)"


def run_audit(model: Any, docs: Iterable[Any], config: AuditConfig | None = None, *,
              model_dir: str | os.PathLike | None = None, timings: dict[str, float] | None = None,
              data_files: Sequence[str | os.PathLike] | None = None) -> dict[str, Any]:
    """Compute the audit report (a JSON-able dict) without writing anything.

    Args:
        timings: when given, filled with the seconds each stage took (``load``, ``score``,
            ``performance``, ``calibration``, ``explanations``, ``robustness``, ``privacy``);
            they stay out of the report so that the same seed gives the same report.
        data_files: the files ``docs`` were read from. When every one traces back to ``domainfm
            deid`` (its manifest's output hash), explanation examples are quoted as they are (PHI
            patterns masked); otherwise, or when not given, their text is first masked by the
            deid stage's detector, and the report says so.
    """
    cfg = as_config(config, AuditConfig)
    with _timed(timings, "load"):
        scorer, model_dir = _load(model, model_dir, cfg)
    if getattr(scorer, "task", None) == "ner" and hasattr(scorer, "label_map"):
        return _ner_report(scorer, docs, cfg, model_dir, data_files)
    return _classification_report(scorer, docs, cfg, model_dir, timings, data_files)


def _load(model: Any, model_dir, cfg: AuditConfig):
    """``(scorer or NER TaskModel, model_dir)``."""
    if isinstance(model, (str, os.PathLike)):
        from domainfm.inference.predict import read_task_info

        if Path(model).is_file():  # 'audit data.jsonl model/': the arguments swapped
            raise ConfigError(f"{model} is a file, not a model folder: the first argument is the folder "
                              "'domainfm finetune' wrote, the documents come second")

        model_dir = model_dir or model
        if read_task_info(model).get("task") == "ner":
            from domainfm.inference import load_task_model

            model = load_task_model(model)
    if getattr(model, "task", None) == "ner" and hasattr(model, "label_map"):
        return model, model_dir
    return as_scorer(model, batch_size=cfg.batch_size), model_dir


def _gold_labels(all_docs: list, label_field: str, labels: list[str], data_files) -> list[str | None]:
    """Each document's gold label (None for a document without one), by position: ids need not
    be unique, and a label looked up by id would be another document's.

    Raises:
        ConfigError: no documents, or none labelled.
        RecordError: gold values that are not the model's labels; the message gives counts and
            the documents' positions, never the values (the field may hold names or whole texts)
            nor the ids (``deid`` keeps ids, and an id is often a record number).
    """
    if not all_docs:
        raise ConfigError(_no_documents(data_files))
    gold: list[str | None] = []
    for d in all_docs:
        value = d.meta.get(label_field[5:]) if label_field.startswith("meta.") else getattr(d, label_field, None)
        # NaN is how pandas writes a missing value; str() of it would be the class 'nan'
        missing = value is None or value == "" or (isinstance(value, float) and value != value)
        gold.append(None if missing else str(value))
    n_labelled = sum(g is not None for g in gold)
    if not n_labelled:
        raise ConfigError(f"no document has a gold {label_field!r}: the audit needs labelled documents "
                          "(set label_field to the field that holds the class)")
    known = set(labels)
    bad = [i for i, g in enumerate(gold) if g is not None and g not in known]
    if bad:
        n_values = len({gold[i] for i in bad})
        where = ", ".join(str(i + 1) for i in bad[:3])
        raise RecordError(f"{len(bad)} of {n_labelled} labelled documents have a gold {label_field!r} not among "
                          f"the model's labels {labels} ({n_values} distinct value(s); document(s) {where} of the "
                          "data, counting from 1); set label_field (--label-field) to the field that holds the class")
    return gold


def _shared_ids(docs: list) -> int:
    """How many documents share their id with an earlier one."""
    return len(docs) - len({d.id for d in docs})


def _classification_report(scorer, docs, cfg: AuditConfig, model_dir, timings, data_files=None) -> dict[str, Any]:
    # a scorer's labels may be numbers; gold values are read as text, and the report keys are text
    labels = [str(label) for label in scorer.labels]
    has_scores = bool(getattr(scorer, "has_scores", True))
    all_docs = list(docs)
    label_field = cfg.label_field or getattr(getattr(scorer, "tm", None), "label_field", None) or "label"
    gold = _gold_labels(all_docs, label_field, labels, data_files)
    labelled = [d for d, g in zip(all_docs, gold) if g is not None]
    gold_names = [g for g in gold if g is not None]
    index = {l: i for i, l in enumerate(labels)}
    y_true = np.array([index[g] for g in gold_names])
    texts = [d.text for d in labelled]
    positive_name = cfg.positive_class or labels[int(np.bincount(y_true, minlength=len(labels)).argmax())]
    if positive_name not in index:
        raise ConfigError(f"positive_class {positive_name!r} is not one of the model's labels {labels}")
    positive = index[positive_name]

    records = [d.to_dict() for d in labelled]
    group_names = {a: np.array([group_value(r, a) for r in records], dtype=object) for a in cfg.group_by}
    absent = [a for a in cfg.group_by if all(v == UNKNOWN for v in group_names[a])]
    if absent and len(absent) == len(cfg.group_by):
        keys = sorted({k for d in labelled for k in d.meta})[:20]
        raise ConfigError(f"no document has any of the group_by fields {absent}; the documents' meta fields "
                          f"are {keys} (set --group-by to some of them)")
    flagged = checked_groups(group_names, cfg, _deid_profile(scorer))  # before the model runs
    with _timed(timings, "score"):
        probs = _score(scorer, texts, cfg.batch_size)
    y_pred = probs.argmax(1)
    if cfg.intersections:
        for a, b in itertools.combinations(cfg.group_by, 2):
            group_names[f"{a} x {b}"] = np.array([f"{x} | {y}" for x, y in zip(group_names[a], group_names[b])],
                                                 dtype=object)
    units, resampled = resampling_units(labelled, cfg.bootstrap_unit)
    rng = np.random.default_rng(cfg.seed)

    with _timed(timings, "performance"):
        overall = group_metrics(y_true, y_pred, labels)
        overall["ci"] = bootstrap_cis(y_true, y_pred, len(labels), positive, n_boot=cfg.n_bootstrap, rng=rng,
                                      units=units)
        per_attr = {}
        # the gaps' intervals draw from their own stream, so adding them left every other number as it was
        gap_rng = np.random.default_rng([cfg.seed, 1])
        for attr, names in group_names.items():
            groups = _group_table(y_true, y_pred, labels, names, positive, cfg, rng, units)
            gaps = fairness_gaps(groups, labels, positive_name, cfg.min_group_size)
            for scope in gaps.values():
                scope["ci"], scope["ci_resamples"] = gap_cis(y_true, y_pred, names, scope["groups"], positive,
                                                             n_boot=cfg.n_bootstrap, rng=gap_rng, units=units,
                                                             return_resamples=True)
            per_attr[attr] = {"groups": groups, "gaps": gaps}

    from domainfm.manifest import model_identity

    n_unlabelled = len(all_docs) - len(labelled)
    warnings = [f"group_by field {a!r} is absent from every document (one '{UNKNOWN}' group)" for a in absent]
    warnings += identifying_warnings(flagged)
    if unit_note := unit_warning(resampled):
        warnings.append(unit_note)
    if n_unlabelled:
        warnings.append(f"{n_unlabelled} of {len(all_docs)} documents have no gold {label_field!r} (missing, empty or "
                        f"null) and were left out; the audit used the {len(labelled)} labelled documents")
    overlap, overlap_warning = training_overlap(model_dir, labelled)
    if overlap_warning:
        warnings.append(overlap_warning)
    if n_shared := _shared_ids(all_docs):
        warnings.append(f"{n_shared} of {len(all_docs)} documents share their id with another document; each was "
                        "audited as a document of its own (check the data for duplicates)")
    report: dict[str, Any] = {
        "config": asdict(cfg),
        "model": {"task": "classification", "label_field": label_field, "labels": labels, "has_scores": has_scores,
                  "source": str(model_dir) if model_dir else type(scorer).__name__, **model_identity(model_dir)},
        "data": {**_data_section(labelled, gold_names, labels,
                                 {a: n for a, n in group_names.items() if a in cfg.group_by}, cfg, n_unlabelled,
                                 units, resampled),
                 "training_overlap": overlap},
        "performance": {"positive_class": positive_name, "overall": overall, "by_attribute": per_attr,
                        "bootstrap": {**resampled, "resamples": cfg.n_bootstrap, "seed": cfg.seed}},
        "warnings": warnings,
        "definitions": {
            "multiclass_fairness": "one-vs-rest per class; gaps for the positive class and the mean over classes",
            "ci": ci_definition(resampled, cfg.n_bootstrap, cfg.seed),
            "gap_ci": "95% percentile bootstrap of the gap (max - min over the scope's groups), resampled as the "
                      "other intervals; a resample with fewer than two of the groups is left out, one missing some "
                      "measures the gap among the rest (ci_resamples: kept, all_groups, of); demographic parity and "
                      "equalized odds for the positive class. A range of noisy estimates is wider than the exact "
                      "range, so with small groups the interval can lie wholly above the measured gap: it shows how "
                      "far the gap moves under resampling, not a bias-corrected interval",
            "ece": f"{cfg.n_bins} equal-width bins of top-class confidence",
            "unknown_group": f"documents without the attribute form the group '{UNKNOWN}'",
        },
    }
    if has_scores:
        with _timed(timings, "calibration"):
            # the temperature's split draws from its own stream: drawn from the bootstrap's, it moved
            # (and the calibrated numbers with it) whenever --bootstrap changed
            split_rng = np.random.default_rng([cfg.seed, 2])
            report["calibration"] = _calibration(probs, y_true, group_names, cfg, split_rng)
    else:
        report["calibration"] = {"available": False, "reason": "the model gives labels only, no scores"}
    from domainfm.audit.privacy import data_trace

    trace = data_trace(data_files)
    if cfg.explain > 0 or cfg.explain_sample > 0:
        if has_scores:
            with _timed(timings, "explanations"):
                report["explanations"] = _explanations(scorer, labelled, probs, y_true, labels, group_names, cfg,
                                                       trace)
        else:
            report["explanations"] = {"available": False, "reason": "the model gives labels only, no scores"}
    if cfg.counterfactuals:
        with _timed(timings, "robustness"):
            report["robustness"] = _counterfactuals(scorer, texts, probs, group_names, cfg, has_scores)
    from domainfm.audit.privacy import training_deid_status

    with _timed(timings, "privacy"):
        report["privacy"] = training_deid_status(model_dir, labelled, trace)
    report["privacy"]["identifying_groups"] = flagged
    from domainfm.audit.summary import findings

    report["summary"] = findings(report)
    return report


def audit(model: Any, docs: Iterable[Any], out_dir: str | os.PathLike, config: AuditConfig | None = None, *,
          model_dir: str | os.PathLike | None = None, template_dir: str | os.PathLike | None = None,
          timings: dict[str, float] | None = None, privacy_audit: dict[str, Any] | None = None,
          data_files: Sequence[str | os.PathLike] | None = None) -> AuditResult:
    """Audit a classification model on labelled documents and write ``index.html``,
    ``report.json``, ``model_card.md`` and ``manifest.json`` to ``out_dir``.

    Args:
        model: a model folder from ``domainfm finetune``, a loaded ``TaskModel``, or any scorer
            with ``labels`` and ``predict_proba(texts)`` (see :mod:`domainfm.audit.scorer`).
        docs: labelled documents (``domainfm.corpus.read_documents``).
        config: :class:`AuditConfig`.
        timings: filled with the seconds per stage, as in :func:`run_audit`, plus ``render``.
        privacy_audit: a ``domainfm audit-privacy`` report (of this model or the model it was
            fine-tuned from); its statement goes to the report's privacy section and the model card.
        data_files: the files ``docs`` were read from (see :func:`run_audit`: explanation examples
            of data that does not trace back to ``domainfm deid`` are masked by its detector).

    Card files an earlier run left in ``out_dir`` are removed when the report is rewritten: they
    describe the old report (write them again with ``domainfm audit-cards``).

    Example:
        >>> from domainfm.corpus import read_documents
        >>> audit("runs/demo", read_documents("notes.jsonl"), "reports/demo",
        ...       AuditConfig(group_by=["meta.sex", "meta.age_band"], explain=4))  # doctest: +SKIP
    """
    from domainfm.audit.report import write_report

    from domainfm.corpus.io import OutputLock, check_output_path, check_report_folder

    from domainfm.audit.cards.evidence import check_privacy_audit

    cfg = config or AuditConfig()
    if privacy_audit is not None:  # before the audit runs, not after
        check_privacy_audit(privacy_audit, "privacy_audit")
    out = check_output_path(out_dir, folder=True)
    check_report_folder(out, "audit")
    with OutputLock(out):
        report = run_audit(model, docs, cfg, model_dir=model_dir, timings=timings, data_files=data_files)
        if privacy_audit is not None:
            report.setdefault("privacy", {})["memorization"] = {
                "statement": privacy_audit.get("statement"), "passed": privacy_audit["gate"].get("passed")}
        with _timed(timings, "render"):
            write_report(report, out, template_dir=template_dir)
        _remove_cards(out)
    return AuditResult(out, report)


def _remove_cards(out: Path) -> None:
    """Delete the card files (by the names :mod:`domainfm.audit.cards` writes) beside a rewritten
    report: they cite the old report's numbers and groups."""
    from domainfm.audit.cards.config import card_outputs

    for name in card_outputs():
        (out / name).unlink(missing_ok=True)
