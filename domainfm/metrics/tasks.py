"""Task metrics (scikit-learn underneath): accuracy, micro/macro F1, per-class scores, confusion matrix,
and entity-level (exact span) F1 for NER, as seqeval computes it on IOB2 tags."""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

import numpy as np

from domainfm.corpus.document import Span


def _r(x: float) -> float:
    return round(float(x), 4)


def _r_or_none(x: float | None) -> float | None:
    return None if x is None else _r(x)


def macro_f1(y_true: Sequence, y_pred: Sequence, labels: Sequence | None = None) -> float:
    """Macro-averaged F1 over ``labels`` (a label never gold nor predicted scores 0), or, with
    ``labels=None``, over the labels that occur in either sequence (0.0 when both are empty).

    The audit scores a group over the classes present in it; the labeler and the task metrics
    over every class of the task. One function, the choice made explicit by the caller.
    """
    from sklearn.metrics import f1_score

    if labels is None:
        labels = sorted(set(np.asarray(y_true).tolist()) | set(np.asarray(y_pred).tolist()))
    labels = list(labels)
    if not labels:
        return 0.0
    return float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))


def classification_metrics(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> dict:
    """Single-label metrics over documents.

    Example:
        >>> m = classification_metrics(["a", "b", "b"], ["a", "b", "a"], ["a", "b"])
        >>> m["accuracy"], m["confusion_matrix"]["matrix"]
        (0.6667, [[1, 0], [1, 1]])
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    labels = list(labels)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "n": len(y_true),
        "accuracy": _r(accuracy_score(y_true, y_pred)),
        "macro_f1": _r(macro_f1(y_true, y_pred, labels)),
        "micro_f1": _r(f1_score(y_true, y_pred, labels=labels, average="micro", zero_division=0)),
        "weighted_f1": _r(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)),
        "per_class": {lab: {"precision": _r(p[i]), "recall": _r(r[i]), "f1": _r(f[i]), "support": int(s[i])}
                      for i, lab in enumerate(labels)},
        "confusion_matrix": {"labels": labels, "rows": "gold", "columns": "predicted",
                             "matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist()},
    }


def multilabel_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict:
    """Multi-label metrics over documents from 0/1 indicator matrices (documents x labels);
    the confusion matrix is one 2x2 ``[[tn, fp], [fn, tp]]`` per label."""
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        hamming_loss,
        multilabel_confusion_matrix,
        precision_recall_fscore_support,
    )

    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, zero_division=0)
    cms = multilabel_confusion_matrix(y_true, y_pred)
    return {
        "n": int(y_true.shape[0]),
        "micro_f1": _r(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "macro_f1": _r(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "samples_f1": _r(f1_score(y_true, y_pred, average="samples", zero_division=0)),
        "subset_accuracy": _r(accuracy_score(y_true, y_pred)),
        "hamming_loss": _r(hamming_loss(y_true, y_pred)),
        "per_class": {lab: {"precision": _r(p[i]), "recall": _r(r[i]), "f1": _r(f[i]), "support": int(s[i])}
                      for i, lab in enumerate(labels)},
        "confusion_matrix": {"labels": list(labels), "per_label": "[[tn, fp], [fn, tp]]",
                             "matrix": cms.tolist()},
    }


def entity_metrics(gold: Iterable[Iterable[Span]], pred: Iterable[Iterable[Span]],
                   labels: Sequence[str] | None = None) -> dict:
    """Entity-level scores: a prediction is correct when start, end and label all match a gold
    span exactly (seqeval's default, conlleval-compatible definition, over character spans).

    A score whose denominator is 0 is undefined and reported as ``None`` (not measured), never
    as 0: precision when nothing of the type was predicted, recall when the type has no gold span.
    F1 is ``2 tp / (gold + predicted)``, so it is 0 when only one side is empty (every gold span
    missed, or every prediction a false positive) and ``None`` only when both are (a type listed
    in ``labels`` that neither the documents nor the predictions hold). ``macro_f1`` averages the
    types whose F1 is measured (``None`` when none is); the micro scores follow the same rule over
    all types together (``None`` F1 when there is no gold and no predicted entity at all).

    Args:
        gold, pred: one list of spans per document, in the same order.
        labels: entity types to score (default: all seen).

    Example:
        >>> g = [[Span(0, 3, "D"), Span(5, 9, "D")]]
        >>> entity_metrics(g, [[Span(0, 3, "D"), Span(5, 8, "D")]])["f1"]
        0.5
        >>> m = entity_metrics(g, [[Span(0, 3, "D")]], labels=["D", "FAX"])
        >>> m["per_type"]["FAX"]["f1"], m["macro_f1"]
        (None, 0.6667)
    """
    tp: Counter[str] = Counter()
    n_gold: Counter[str] = Counter()
    n_pred: Counter[str] = Counter()
    for g_doc, p_doc in zip(gold, pred, strict=True):
        g = {(s.start, s.end, s.label) for s in g_doc if labels is None or s.label in labels}
        p = {(s.start, s.end, s.label) for s in p_doc if labels is None or s.label in labels}
        for key in g:
            n_gold[key[2]] += 1
        for key in p:
            n_pred[key[2]] += 1
        for key in g & p:
            tp[key[2]] += 1
    types = list(labels) if labels is not None else sorted(set(n_gold) | set(n_pred))

    def prf(t: int, ng: int, npred: int) -> tuple[float | None, float | None, float | None]:
        precision = t / npred if npred else None
        recall = t / ng if ng else None
        if not ng + npred:
            return precision, recall, None
        # tp is 0 whenever one side is empty; 2PR/(P+R), not 2tp/(gold+predicted), rounds as seqeval
        f1 = 2 * precision * recall / (precision + recall) if t else 0.0
        return precision, recall, f1

    per_type, f1s = {}, []
    for label in types:
        pr, rc, f1 = prf(tp[label], n_gold[label], n_pred[label])
        if f1 is not None:
            f1s.append(f1)  # unrounded: the mean of rounded values can miss seqeval's by 1e-4
        per_type[label] = {"precision": _r_or_none(pr), "recall": _r_or_none(rc), "f1": _r_or_none(f1),
                           "support": n_gold[label], "predicted": n_pred[label]}
    pr, rc, f1 = prf(sum(tp.values()), sum(n_gold.values()), sum(n_pred.values()))
    return {
        "precision": _r_or_none(pr), "recall": _r_or_none(rc), "f1": _r_or_none(f1),
        "macro_f1": _r(np.mean(f1s)) if f1s else None,
        "gold_entities": sum(n_gold.values()), "predicted_entities": sum(n_pred.values()),
        "per_type": per_type,
        "definition": "exact match of (start, end, label), micro-averaged (seqeval default)",
    }
