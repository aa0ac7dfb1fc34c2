"""``suggest_labels`` and ``check_labels``: the labeling assistant as a Python API."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from domainfm.config import as_config
from domainfm.corpus.document import Document, checked_document, document_stream
from domainfm.errors import ConfigError, DomainFMError
from domainfm.label.active import rank_pool
from domainfm.label.check import confident_joint, find_label_issues, find_multilabel_issues
from domainfm.label.config import LabelConfig
from domainfm.label.encoders import Encoder, SentenceEncoder
from domainfm.label import methods
from domainfm.metrics import expected_calibration_error, macro_f1

_ENCODERS: dict[tuple, SentenceEncoder] = {}


def get_encoder(cfg: LabelConfig) -> SentenceEncoder:
    """The (memoised) sentence encoder of ``cfg``: loaded once per process, and its cache of
    vectors is kept, so embedding the same pool twice costs nothing."""
    key = (cfg.model, cfg.max_tokens, cfg.batch_size)
    if key not in _ENCODERS:
        _ENCODERS[key] = SentenceEncoder(cfg.model, max_tokens=cfg.max_tokens, batch_size=cfg.batch_size,
                                         name=cfg.model)
    return _ENCODERS[key]


@dataclass
class Suggestion:
    """The suggestion for one pool document."""

    doc_id: str
    label: str
    confidence: float
    alternatives: list[dict]
    rank: int
    labels: list[str] | None = None  # multi-label: every label with probability >= 0.5

    def to_dict(self) -> dict[str, Any]:
        out = {"label": self.label, "confidence": round(self.confidence, 4), "alternatives": self.alternatives}
        if self.labels is not None:
            out["labels"] = self.labels
        return out


@dataclass
class Seeds:
    """Seeds turned into a training matrix, and what could not be used."""

    docs: list[Document]
    classes: list[str]
    Y: np.ndarray  # class indices, or a 0/1 matrix (multi-label)
    multilabel: bool
    counts: dict[str, int]
    too_few: dict[str, int]  # label -> seeds, for labels left out (< 2 seeds, or on every seed)
    left_out: list[tuple[Document, str]]  # the seeds not used, each with the reason

    @property
    def skipped(self) -> dict[str, int]:
        """reason -> seeds not used."""
        return dict(Counter(why for _, why in self.left_out))


@dataclass
class LabelResult:
    """What :func:`suggest_labels` returns.

    Attributes:
        suggestions: one per pool document that could be processed, in pool order.
        rejected: ``(document, reason)`` for pool documents given no suggestion (empty, no
            letter or digit, already labelled, an id collision: see :func:`suggest_labels`).
        summary: classes, seeds per class, labels left out, cross-validated expected accuracy
            and macro-F1, calibration, timing.
    """

    classes: list[str]
    multilabel: bool
    suggestions: list[Suggestion]
    docs: list[Document]
    rejected: list[tuple[Document, str]]
    summary: dict[str, Any]
    config: LabelConfig
    probabilities: np.ndarray = field(repr=False, default=None)
    embeddings: np.ndarray = field(repr=False, default=None)

    def records(self) -> list[dict]:
        """Pool documents with ``meta.suggestion`` and ``meta.rank`` (valid domainfm documents)."""
        return list(self.iter_records())

    def iter_records(self) -> Iterator[dict]:
        """:meth:`records` one at a time, for writing: the pool is held once, not again as records."""
        for doc, s in zip(self.docs, self.suggestions):
            record = doc.to_dict()
            record["meta"] = {**doc.meta, "suggestion": s.to_dict(), "rank": s.rank}
            yield record


@dataclass
class CheckResult:
    """What :func:`check_labels` returns: flagged likely label errors, most likely first.

    Attributes:
        docs: the documents checked.
        skipped: ``(document, reason)`` for each document not checked (``empty text``, ``no
            'label'``, ``label with fewer than 2 seeds``...: the reasons of
            :func:`prepare_seeds`); ``summary["not_checked"]`` counts them per reason.
    """

    classes: list[str]
    multilabel: bool
    flags: list[dict]
    docs: list[Document]
    summary: dict[str, Any]
    config: LabelConfig
    probabilities: np.ndarray = field(repr=False, default=None)
    skipped: list[tuple[Document, str]] = field(default_factory=list)


def multilabel_task(docs: Sequence[Document], task: str) -> bool:
    """Whether ``task`` (``auto``, ``single`` or ``multi``) reads ``docs`` as multi-label.

    ``auto`` follows the field most documents use: one document with a ``labels`` list among
    single-label ones is left out (reported), it does not turn the whole run multi-label.
    """
    if task != "auto":
        return task == "multi"
    return sum(d.labels is not None for d in docs) > sum(is_labelled(d, multilabel=False) for d in docs)


def is_labelled(doc: Document, multilabel: bool) -> bool:
    """Whether ``doc`` carries the label field of the task.

    Multi-label: a ``labels`` list, empty included. ``labels: []`` says that none of the labels
    applies (a labelled negative): Label Studio's multi-choice task answered with no choice, and
    Prodigy's ``choice_style: multiple`` task accepted with none, are imported so, and so is an
    empty cell of ``import csv --labels-col``. Only a missing or null ``labels`` is unlabelled.
    Single-label: a ``label`` that is not blank (``"  "`` is no label).
    """
    if multilabel:
        return doc.labels is not None
    return bool(doc.label and doc.label.strip())


def prepare_seeds(labeled: Sequence[Document], cfg: LabelConfig) -> Seeds:
    """Pick single/multi-label mode, drop unusable seeds and labels (reported, not fatal).

    A multi-label seed with ``labels: []`` is used: a negative for every label (see
    :func:`is_labelled`)."""
    labeled = list(labeled)
    multilabel = multilabel_task(labeled, cfg.task)
    left_out: list[tuple[Document, str]] = []
    docs: list[Document] = []
    for d in labeled:
        if not d.text.strip():
            left_out.append((d, "empty text"))
        elif multilabel and d.labels is None:
            left_out.append((d, "no 'labels' field"))
        elif multilabel and not all(l.strip() for l in d.labels):
            # a blank label is no label (as a blank 'label' is in single-label mode), not a class
            left_out.append((d, "a blank label in 'labels'"))
        elif not multilabel and not (d.label and d.label.strip()):
            # a blank label is no label, as a blank one in 'labels' is not a class (not "  " as a class)
            left_out.append((d, "no 'label'"))
        else:
            docs.append(d)
    if multilabel:
        counts = Counter(l for d in docs for l in set(d.labels))
        too_few = {l: n for l, n in counts.items() if n < 2 or n == len(docs)}
    else:
        counts = Counter(d.label for d in docs)
        too_few = {l: n for l, n in counts.items() if n < 2}
    classes = sorted(l for l in counts if l not in too_few)
    if len(classes) < (1 if multilabel else 2):
        from domainfm.corpus.summary import label_counts

        usable = label_counts(counts)
        # multi-label: a label on every seed has no negative example, so it cannot be learned either
        rule = "1 label with 2 or more seeds each and not on every seed" if multilabel else \
            "2 labels with 2 or more seeds each"
        raise DomainFMError(f"need at least {rule} (seeds per label: {usable}); add seeds to the labeled file")
    index = {c: i for i, c in enumerate(classes)}
    if multilabel:
        Y = np.zeros((len(docs), len(classes)), dtype=int)
        for r, d in enumerate(docs):
            for l in d.labels:
                if l in index:
                    Y[r, index[l]] = 1
    else:
        left_out += [(d, "label with fewer than 2 seeds") for d in docs if d.label not in index]
        docs = [d for d in docs if d.label in index]
        Y = np.array([index[d.label] for d in docs], dtype=int)
    return Seeds(docs, classes, Y, multilabel, dict(counts), too_few, left_out)


def _documents(docs, name: str) -> list[Document]:
    """``docs`` as a list of valid documents: a generator is read once (the summary counts it
    after the work), and a dict or a document whose span lies past its text is refused up front
    naming the record, not met later as an AttributeError or a silently wrong tag."""
    return [checked_document(d, name) for d in document_stream(docs, name)]


def _split_pool(pool: Sequence[Document], labeled: Sequence[Document], multilabel: bool,
                seed_locations: Sequence[str]) -> tuple[list[Document], list[tuple[Document, str]], Counter]:
    """The pool documents to suggest for, the rejected ones with their reasons, and how many
    were rejected per reason group (``already_labelled``, ``id_collisions``). Reasons name the
    seed's position, never an id or text: ids can be record numbers."""
    seeds: dict[str, int] = {}
    for i, d in enumerate(labeled):
        seeds.setdefault(d.id, i)
    ok, rejected, tally = [], [], Counter()
    for d in pool:
        i = seeds.get(d.id)
        if i is not None and labeled[i].text != d.text:
            # two documents under one id: the suggestion, its export and a later import would
            # merge them
            tally["id_collisions"] += 1
            rejected.append((d, f"id collision with a seed (the seed at {seed_locations[i]} has this id and "
                                "another text; give each document an id of its own)"))
        elif i is not None and is_labelled(labeled[i], multilabel):
            # a labelled document needs no suggestion, and must not head the "annotate next" queue
            tally["already_labelled"] += 1
            rejected.append((d, f"already labelled (the same id and text as the seed at {seed_locations[i]}; "
                                "left out of the pool)"))
        elif not d.text.strip():
            rejected.append((d, "empty text (nothing to classify)"))
        elif not any(ch.isalnum() for ch in d.text):
            # emoji or punctuation alone: the encoder still returns a vector, and the head a
            # confident label that means nothing
            rejected.append((d, "no letters or digits (nothing to classify; label it by hand)"))
        else:
            ok.append(d)
    return ok, rejected, tally


def _cv_summary(seeds: Seeds, cv: methods.CVResult) -> dict[str, Any]:
    Y, P = seeds.Y, cv.probs
    if seeds.multilabel:
        pred = (P >= 0.5).astype(int)
        from sklearn.metrics import f1_score

        return {
            "folds": cv.folds, "C": cv.C, "temperature": round(cv.temperature, 4),
            "expected_micro_f1": round(float(f1_score(Y, pred, average="micro", zero_division=0)), 4),
            "expected_macro_f1": round(float(f1_score(Y, pred, average="macro", zero_division=0)), 4),
            "expected_ece": round(expected_calibration_error(
                np.maximum(P, 1 - P).ravel(), ((P >= 0.5) == (Y > 0)).ravel()), 4),
        }
    pred = P.argmax(1)
    return {
        "folds": cv.folds, "C": cv.C, "temperature": round(cv.temperature, 4),
        "expected_accuracy": round(float((pred == Y).mean()), 4),
        "expected_macro_f1": round(macro_f1(Y, pred, labels=range(len(seeds.classes))), 4),
        "expected_ece": round(expected_calibration_error(P.max(1), pred == Y), 4),
    }


def suggest_labels(labeled_docs: Sequence[Document], pool_docs: Sequence[Document],
                   config: LabelConfig | None = None, *, encoder: Encoder | None = None,
                   on_stage: Callable[[str], None] | None = None,
                   seed_locations: Sequence[str] | None = None) -> LabelResult:
    """Suggest labels for ``pool_docs`` from a few labeled seeds.

    Args:
        labeled_docs: seeds with ``label`` (or ``labels`` for multi-label tasks; ``labels: []``
            is a seed none of the labels applies to).
        pool_docs: documents to label. These get no suggestion and are returned in
            ``rejected`` with the reason: empty text; no letter or digit at all (emoji or
            punctuation alone, where any label would be a confident guess at nothing: label it
            by hand); the same id and text as a labelled seed (``already labelled``: it is not
            ranked for annotation either); a seed's id with another text (``id collision with a
            seed``). ``summary["pool"]`` counts the last two (``already_labelled``,
            ``id_collisions``).
        config: :class:`LabelConfig` (defaults: ``embed`` on the embedded MiniLM).
        encoder: an :class:`~domainfm.label.encoders.Encoder` to use instead of ``config.model``.
        on_stage: called with a short stage name (progress display; never document text).
        seed_locations: where each of ``labeled_docs`` was read (``file:line``), named in the
            reasons above instead of its id; default ``labeled_docs[i]``.

    Returns:
        :class:`LabelResult` with one calibrated :class:`Suggestion` per pool document, its
        active-learning ``rank`` and a summary with the cross-validated expected accuracy.

    Example:
        >>> result = suggest_labels(seeds, pool, LabelConfig(method="embed"))  # doctest: +SKIP
        >>> result.suggestions[0].to_dict()  # doctest: +SKIP
        {'label': 'cardiology', 'confidence': 0.81, 'alternatives': [{'label': 'pulmonology', 'score': 0.1}, ...]}
    """
    cfg = as_config(config, LabelConfig)
    started = time.perf_counter()
    labeled_docs, pool_docs = _documents(labeled_docs, "labeled_docs"), _documents(pool_docs, "pool_docs")
    seeds = prepare_seeds(labeled_docs, cfg)
    if seed_locations is None:
        seed_locations = [f"labeled_docs[{i}]" for i in range(len(labeled_docs))]
    elif len(seed_locations) != len(labeled_docs):
        raise ConfigError(f"seed_locations must give one location per labeled document: got {len(seed_locations)} "
                          f"for {len(labeled_docs)}")
    pool, rejected, overlap = _split_pool(pool_docs, labeled_docs, seeds.multilabel, seed_locations)
    enc = encoder if encoder is not None else get_encoder(cfg)
    fitted = methods.fit_and_predict(enc, [d.text for d in seeds.docs], seeds.Y, [d.text for d in pool],
                                     seeds.classes, multilabel=seeds.multilabel, cfg=cfg, on_stage=on_stage)
    if on_stage:
        on_stage("ranking the pool")
    probs = fitted.pool_probs
    ranks = rank_pool(probs, fitted.pool_embeddings, diversity=cfg.diversity, multilabel=seeds.multilabel)
    suggestions = [_suggestion(d.id, p, int(r), seeds, cfg) for d, p, r in zip(pool, probs, ranks)]
    predicted = Counter(s.label for s in suggestions)
    summary = {
        "method": cfg.method,
        "model": fitted.encoder_name,
        "task": "multi" if seeds.multilabel else "single",
        "classes": seeds.classes,
        "seeds_per_class": {c: seeds.counts[c] for c in seeds.classes},
        "labels_left_out": seeds.too_few,
        "seeds_skipped": seeds.skipped,
        "descriptions_unused": sorted(set(cfg.label_descriptions or ()) - set(seeds.classes)),
        "cross_validation": _cv_summary(seeds, fitted.cv),
        "pool": {"read": len(pool_docs), "suggested": len(suggestions), "rejected": len(rejected),
                 "already_labelled": overlap["already_labelled"], "id_collisions": overlap["id_collisions"],
                 "predicted_labels": dict(predicted.most_common()),
                 "mean_confidence": round(float(probs.max(1).mean()), 4) if len(probs) else None},
        "chunked_documents": getattr(enc, "chunked_documents", None),
        "seconds": round(time.perf_counter() - started, 2),
    }
    return LabelResult(seeds.classes, seeds.multilabel, suggestions, pool, rejected, summary, cfg, probs,
                       fitted.pool_embeddings)


def _suggestion(doc_id: str, p: np.ndarray, rank: int, seeds: Seeds, cfg: LabelConfig) -> Suggestion:
    order = np.argsort(-p, kind="stable")
    best = int(order[0])
    alternatives = [{"label": seeds.classes[j], "score": round(float(p[j]), 4)}
                    for j in order[1:1 + cfg.max_alternatives]]
    labels = [seeds.classes[j] for j in order if p[j] >= 0.5] if seeds.multilabel else None
    return Suggestion(doc_id, seeds.classes[best], float(p[best]), alternatives, rank, labels)


def check_labels(labeled_docs: Sequence[Document], config: LabelConfig | None = None, *,
                 encoder: Encoder | None = None, on_stage: Callable[[str], None] | None = None) -> CheckResult:
    """Flag likely label errors in a labeled set (confident learning on out-of-fold probabilities).

    Returns:
        :class:`CheckResult`; ``flags`` are dicts ``{id, given, suggested, confidence,
        given_probability, margin}`` sorted with the most likely error first; ``skipped`` the
        documents not checked, each with its reason, counted per reason in
        ``summary["not_checked"]``.
    """
    cfg = as_config(config, LabelConfig)
    labeled_docs = _documents(labeled_docs, "labeled_docs")
    seeds = prepare_seeds(labeled_docs, cfg)
    enc = encoder if encoder is not None else get_encoder(cfg)
    texts = [d.text for d in seeds.docs]
    if on_stage:
        on_stage("embedding the labeled set")
    X = None if cfg.method == "setfit" else enc.encode(texts)  # setfit folds embed with their own encoder
    anchors = None if cfg.method == "setfit" else methods._anchors(enc, seeds.classes, seeds.multilabel, cfg)
    def tuned_fold(train_idx):
        tuned = methods.finetune_encoder(enc, [texts[i] for i in train_idx], seeds.Y[train_idx],
                                         multilabel=seeds.multilabel,
                                         cfg=methods._scaled(cfg, len(train_idx), len(texts)))
        return tuned.encode(texts), None, methods._anchors(tuned, seeds.classes, seeds.multilabel, cfg)

    fold_embed, splits = None, None
    if cfg.method == "setfit":
        splits = methods.cv_splits(seeds.Y, seeds.multilabel, cfg.cv_folds, cfg.seed)
        fold_embed = tuned_fold
    if on_stage:
        on_stage("cross-validating")
    # No pool: self-training would pseudo-label the checked items themselves.
    cv = methods.cross_validate(X, seeds.Y, None, multilabel=seeds.multilabel, n_classes=len(seeds.classes),
                                cfg=cfg, splits=splits, fold_embed=fold_embed, anchors=anchors)
    if seeds.multilabel:
        flags = find_multilabel_issues(cv.probs, seeds.Y, seeds.classes)
        joint = None
    else:
        flags = find_label_issues(cv.probs, seeds.Y, seeds.classes)
        joint = confident_joint(cv.probs, seeds.Y)[0].tolist()
    flag_dicts = [f.to_dict(seeds.docs[f.index].id) for f in flags]
    summary = {
        "method": cfg.method, "task": "multi" if seeds.multilabel else "single", "classes": seeds.classes,
        "labeled": len(labeled_docs), "checked": len(seeds.docs), "flagged": len(flag_dicts),
        "seeds_per_class": {c: seeds.counts[c] for c in seeds.classes},
        "labels_left_out": seeds.too_few, "not_checked": seeds.skipped,
        "cross_validation": _cv_summary(seeds, cv), "confident_joint": joint,
    }
    return CheckResult(seeds.classes, seeds.multilabel, flag_dicts, seeds.docs, summary, cfg, cv.probs,
                       seeds.left_out)


__all__ = ["CheckResult", "LabelResult", "Suggestion", "check_labels", "get_encoder", "is_labelled",
           "multilabel_task", "prepare_seeds", "suggest_labels"]
