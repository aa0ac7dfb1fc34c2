"""Few-shot classifiers on sentence embeddings, with calibration that is honest on tiny seed sets.

Calibration. With 8 seeds per class, isotonic regression (or per-class Platt scaling inside
``CalibratedClassifierCV``) fits 2 parameters per class on a handful of points and overfits. We
fit one *temperature* (a single scalar that divides all logits) on out-of-fold logits of the
seeds: one parameter cannot overfit 40 points, it keeps the ranking of the logistic regression,
and it corrects the main failure of few-shot LR (probabilities far too flat or far too sharp,
depending on the regularisation). The whole procedure - including self-training on the pool - is
rerun inside every fold, so the out-of-fold probabilities, the expected accuracy and the label
check all describe exactly the model that produces the suggestions (trained on a little less
data, so the estimates lean pessimistic).

Self-training. The pool is unlabeled but available (transductive setting): after a first fit,
the most confident pool documents of each predicted label are added with a low weight and the
head is refit, over several rounds with a growing share (see :func:`fit_self_trained`). This
moves the decision boundaries towards low-density regions of the pool: +0.04 macro-F1 over
frozen MiniLM + logistic regression on the medical abstracts and on UNFAIR-ToS at 8 seeds per
label (tests/benchmarks/bench_label.py).

Label descriptions. A short description per label (its name in an annotation guideline) is
embedded with the same encoder and added as one weighted training row of that label
(:func:`label_anchors`).

Word features (``lsa_dims``, on by default). ``embed`` appends to every sentence embedding a
latent-semantic-analysis vector (TF-IDF of the words, truncated SVD) fitted on the seed and pool
texts without their labels (:class:`LSA`): the pool is available anyway, and a small sentence
encoder blurs the rare domain terms (clause wording) that the TF-IDF keeps. At 8 seeds per label
with 200 dimensions: UNFAIR-ToS +0.07 macro-F1, medical abstracts unchanged (+-0.001), calibration
kept (tests/benchmarks/bench_label.py); ``lsa_dims: 0`` turns it off.

SetFit. The encoder is first fine-tuned contrastively (``CosineSimilarityLoss`` on seed pairs:
target 1 for same label, 0 for different labels, Jaccard of the label sets for multi-label),
then the same calibrated head is fitted on the tuned embeddings. Calibrating that head on
out-of-fold seeds would be dishonest (the encoder saw every seed), so the calibration folds
cross-fit the fine-tuning too, at the cost of extra (smaller) fine-tuning runs.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from domainfm.label.config import LabelConfig
from domainfm.label.encoders import Encoder, SentenceEncoder, normalize
from domainfm.metrics import fit_temperature, sigmoid, softmax


# --------------------------------------------------------------------------- calibration math

# ------------------------------------------------------------------------------------ heads

@dataclass
class Head:
    """A fitted calibrated head: ``predict_proba(X)`` on embeddings."""

    classes: list[str]
    multilabel: bool
    temperature: float
    C: float
    models: list  # one multinomial LR, or one binary LR per label

    def logits(self, X: np.ndarray) -> np.ndarray:
        if not self.multilabel:
            return _decision(self.models[0], X)
        return np.stack([m.decision_function(X) for m in self.models], axis=1)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if not self.multilabel:
            return softmax(self.logits(X) / self.temperature)
        return sigmoid(self.logits(X) / _temperatures(self.models, self.temperature))


@dataclass
class _Prior:
    """The model of a label column that every training seed has, or none has: with no contrast
    to learn from, the model is the label's base rate in those seeds, smoothed by the rule of
    succession ``(k + 1) / (n + 2)`` (none of 8 seeds: 0.1, not 0 - a document that has the
    label stays possible). It stands in for the binary LR (same ``decision_function``)."""

    logit: float

    @classmethod
    def of(cls, y: np.ndarray) -> "_Prior":
        rate = (float(np.sum(y)) + 1.0) / (len(y) + 2.0)
        return cls(math.log(rate / (1.0 - rate)))

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return np.full(len(X), self.logit)


def _temperatures(models, temperature: float) -> np.ndarray:
    """Per label column: the fitted temperature, or 1 for a :class:`_Prior` column. The
    temperature rescales LR margins; a base rate is no margin and was left out of its fit."""
    return np.array([1.0 if isinstance(m, _Prior) else temperature for m in models])


def _label_models(Xt, Yt, wt, Y_seeds, C: float, seed: int) -> list:
    """One binary LR per label column of the training set ``Xt, Yt`` (seeds then anchors); a
    column that is constant there has nothing to separate (sklearn refuses it) and gets the
    :class:`_Prior` of its seeds ``Y_seeds`` (anchors are descriptions, not documents). The
    calibration folds and the final head both go through here, so they treat such a column alike."""
    return [_fit_lr(Xt, Yt[:, j], C, wt, seed) if Yt[:, j].min() != Yt[:, j].max() else _Prior.of(Y_seeds[:, j])
            for j in range(Yt.shape[1])]


def _decision(model, X) -> np.ndarray:
    """Multinomial logits ``(n, k)``; a binary LR's single margin becomes ``[0, z]``
    (same softmax), so every caller sees one column per class."""
    z = model.decision_function(X)
    return np.stack([np.zeros_like(z), z], axis=1) if z.ndim == 1 else z


def _fit_lr(X, y, C: float, weights=None, seed: int = 0):
    from sklearn.linear_model import LogisticRegression

    from threadpoolctl import threadpool_limits

    model = LogisticRegression(C=C, max_iter=3000, random_state=seed)
    # Tiny problems: multi-threaded BLAS only adds spin-waits (5x slower on a shared machine).
    with warnings.catch_warnings(), threadpool_limits(1, user_api="blas"):
        warnings.simplefilter("ignore")
        model.fit(X, y, sample_weight=weights)
    return model


def _raw_logits(X_train, Y_train, X_eval, *, C, seed, weights=None):
    """Fit the single-label LR and return (models, logits on X_eval) - uncalibrated (multi-label
    heads are one LR per label column: :func:`_label_models`)."""
    model = _fit_lr(X_train, Y_train, C, weights, seed)
    return [model], _decision(model, X_eval)


def _stack(X, Y, anchors, weights=None):
    """The training set: rows of ``X`` (weight 1 unless ``weights``) plus the label anchors."""
    w = np.ones(len(Y)) if weights is None else np.asarray(weights, dtype=float)
    if anchors is None or len(anchors[0]) == 0:
        return X, Y, w
    Xa, Ya, wa = anchors
    return np.vstack([X, Xa]), np.concatenate([Y, Ya]), np.concatenate([w, np.full(len(Ya), float(wa))])


def fit_self_trained(X, Y, X_pool, *, C, multilabel, n_classes, cfg: LabelConfig, temperature=1.0,
                     anchors=None):
    """LR on the seeds, then ``cfg.self_training`` rounds of self-training on the pool.

    Round ``r`` pseudo-labels, within each predicted label, the most confident
    ``min(1, r * cfg.pseudo_share)`` of the pool documents predicted as that label (weight
    ``cfg.pseudo_weight``) and refits from the seeds. The share is taken per predicted label, so
    the pseudo-labels follow the pool's own label mix (a fixed count per label would force a
    balanced mix: -0.09 macro-F1 on the skewed UNFAIR-ToS pool), and the growing share lets the
    boundaries settle in low-density regions of the pool a little at a time. Should a label's
    predicted count fall below half of what the seeds-only head predicted, the rounds stop and the
    last round before the drift is kept.

    ``anchors`` = ``(vectors, targets, weight)``: embedded label descriptions, one extra training
    row per described label (see :func:`label_anchors`). Returns the fitted models (list).
    """
    Xt, Yt, wt = _stack(X, Y, anchors)
    if multilabel:
        return _label_models(Xt, Yt, wt, Y, C, cfg.seed)
    models, _ = _raw_logits(Xt, Yt, X[:1], C=C, seed=cfg.seed, weights=wt)
    if cfg.self_training == 0 or X_pool is None or len(X_pool) == 0:
        return models
    first, previous = None, models
    for r in range(1, cfg.self_training + 1):
        probs = softmax(_decision(models[0], X_pool) / temperature)
        pred = probs.argmax(1)
        counts = np.bincount(pred, minlength=n_classes)
        if first is None:
            first = counts
        elif np.any(counts < 0.5 * first):
            # A label is being swallowed by its neighbours (seen with strongly regularised heads
            # and catch-all labels): keep the last round that had not drifted.
            models = previous
            break
        share = min(1.0, r * cfg.pseudo_share)
        chosen, labels = [], []
        for c in range(n_classes):
            idx = np.flatnonzero(pred == c)
            top = idx[np.argsort(-probs[idx, c], kind="stable")[: math.ceil(share * len(idx))]]
            chosen.extend(top.tolist())
            labels.extend([c] * len(top))
        X_aug = np.vstack([Xt, X_pool[chosen]])
        y_aug = np.concatenate([Yt, np.asarray(labels, dtype=int)])
        w = np.concatenate([wt, np.full(len(chosen), cfg.pseudo_weight)])
        previous = models
        models, _ = _raw_logits(X_aug, y_aug, X[:1], C=C, seed=cfg.seed, weights=w)
    return models


def label_anchors(encoder: Encoder, classes: Sequence[str], descriptions: dict | None, *,
                  multilabel: bool, weight: float, lsa: "LSA | None" = None, lsa_weight: float = 0.0):
    """Embedded label descriptions as training rows ``(vectors, targets, weight)``, or None;
    with ``lsa``, their LSA vectors are appended as :func:`with_lsa` does for the texts.

    A description (``"neoplasms"``, ``"limitation of liability"``) is what an annotation
    guideline says about a label; as one extra weighted training row per label it tells the head
    where the label lies before the seeds do (at 8 seeds per label, weight 3: +0.005 macro-F1 on
    the medical abstracts, +0.03 on UNFAIR-ToS). Descriptions of labels that are not among
    ``classes`` are ignored.
    """
    if not descriptions:
        return None
    described = [(i, descriptions[c]) for i, c in enumerate(classes) if c in descriptions]
    if not described:
        return None
    texts = [text for _, text in described]
    vectors = with_lsa(encoder.encode(texts), texts, lsa, lsa_weight)
    if multilabel:
        targets = np.zeros((len(described), len(classes)), dtype=int)
        targets[np.arange(len(described)), [i for i, _ in described]] = 1
    else:
        targets = np.array([i for i, _ in described], dtype=int)
    return vectors, targets, weight


class LSA:
    """TF-IDF (sublinear, English stop words) -> truncated SVD -> unit vectors.

    Fitted on texts without labels (the seeds and the pool together: what the head is trained
    and evaluated on, so cross-validation folds see the same features); :meth:`transform`
    embeds further texts (label descriptions) in the same space.
    """

    def __init__(self, dims: int, seed: int = 0):
        self.dims = dims
        self.seed = seed
        self.vectorizer = None
        self.svd = None

    def fit(self, texts: Sequence[str]) -> "LSA | None":
        """Fit on ``texts``; None when they hold too few distinct words to reduce."""
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = list(texts)
        vectorizer = TfidfVectorizer(sublinear_tf=True, stop_words="english", max_features=50_000,
                                     min_df=2 if len(texts) >= 50 else 1, dtype=np.float32)
        try:
            tfidf = vectorizer.fit_transform(texts)
        except ValueError:  # empty vocabulary (only stop words or numbers)
            return None
        dims = min(self.dims, tfidf.shape[1] - 1, len(texts) - 1)
        if dims < 2:
            return None
        self.svd = TruncatedSVD(dims, random_state=self.seed).fit(tfidf)
        self.vectorizer = vectorizer
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        if not len(texts):
            return np.zeros((0, self.svd.n_components), dtype=np.float32)
        return normalize(self.svd.transform(self.vectorizer.transform(list(texts))))


def with_lsa(X: np.ndarray, texts: Sequence[str], lsa: LSA | None, weight: float) -> np.ndarray:
    """``X`` with the weighted LSA vectors of ``texts`` appended (``X`` itself when no LSA)."""
    if lsa is None:
        return X
    return np.hstack([X, weight * lsa.transform(texts)]).astype(np.float32)


def _logits_of(models, X, multilabel):
    if not multilabel:
        return _decision(models[0], X)
    return np.stack([m.decision_function(X) for m in models], axis=1)


def cv_splits(Y: np.ndarray, multilabel: bool, folds: int, seed: int):
    """Stratified folds (single-label) or shuffled folds (multi-label)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if multilabel:
        folds = max(2, min(folds, len(Y)))
        return list(KFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(Y))))
    smallest = int(np.bincount(Y).min())
    folds = max(2, min(folds, smallest))
    return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(Y)), Y))


@dataclass
class CVResult:
    """Out-of-fold view of the seeds: what ``--check`` and the summary are built from."""

    logits: np.ndarray  # raw out-of-fold logits of the chosen C
    probs: np.ndarray  # calibrated out-of-fold probabilities
    temperature: float
    C: float
    folds: int
    scores: dict = field(default_factory=dict)  # per C: calibrated NLL
    # multi-label cells whose label was constant in their fold's training seeds: base-rate
    # logits (see _Prior), not in the temperature fit and not rescaled by it
    prior: np.ndarray | None = None


def cross_validate(X, Y, X_pool, *, multilabel, n_classes, cfg: LabelConfig,
                   splits=None, fold_embed: Callable | None = None, anchors=None) -> CVResult:
    """Out-of-fold logits of the seeds: C by calibrated NLL of the plain head, then the
    temperature of the full (self-trained) head at that C.

    ``fold_embed(train_idx)`` (SetFit) returns ``(X, X_pool, anchors)`` from an encoder tuned on
    that fold's seeds only; by default the given embeddings are used in every fold. Label
    anchors are training rows in every fold (they are never held out: they are not seeds).
    """
    splits = splits if splits is not None else cv_splits(Y, multilabel, cfg.cv_folds, cfg.seed)
    folds = [(train, test, *((X, X_pool, anchors) if fold_embed is None else fold_embed(train)))
             for train, test in splits]
    plain = copy.copy(cfg)
    plain.self_training = 0
    # C by calibrated out-of-fold NLL of the plain head (self-training follows the head's C, and
    # running it for every C would multiply the cost by the grid size).
    oof = {C: _oof_logits(folds, Y, C, multilabel=multilabel, n_classes=n_classes, cfg=plain) for C in cfg.c_grid}
    scores, temps = {}, {}
    # the temperature is fitted to targets smoothed by 1 / (seeds + 1): four seeds that the folds
    # happen to get all right do not make every suggestion certain (confidence 1.0 for a note
    # of neither class, as it was), and with 40 seeds the smoothing is down to 0.024
    smoothing = 1.0 / (len(Y) + 1)
    for C, (logits, prior) in oof.items():
        temps[C] = _fit_temperature(logits, Y, prior, multilabel, smoothing)
        scores[C] = _nll(_tempered(logits, prior, temps[C]), Y, multilabel)
    best = min(cfg.c_grid, key=lambda c: (round(scores[c], 6), c))
    logits, prior = oof[best]
    if cfg.self_training and not multilabel and any(f[3] is not None and len(f[3]) for f in folds):
        # The calibrated model is the self-trained one: rerun it in every fold.
        logits, prior = _oof_logits(folds, Y, best, multilabel=False, n_classes=n_classes, cfg=cfg)
        temps[best] = fit_temperature(logits, Y, multilabel=False, smoothing=smoothing)
    T = temps[best]
    probs = sigmoid(_tempered(logits, prior, T)) if multilabel else softmax(logits / T)
    return CVResult(logits, probs, T, best, len(splits), scores, prior if multilabel else None)


def _fit_temperature(logits, Y, prior, multilabel: bool, smoothing: float) -> float:
    """``fit_temperature`` on the cells that hold LR margins. A base-rate cell (``prior``) is
    no margin: at the +-30 it once was, the one held-out seed that carries a label no training
    seed of its fold had cost 30 / T nats, and T went up to shrink it, flattening every label."""
    if not multilabel:
        return fit_temperature(logits, Y, multilabel=False, smoothing=smoothing)
    # the multi-label NLL is a mean over cells, so the kept cells can go in as one column
    keep = ~prior
    return fit_temperature(logits[keep][:, None], Y[keep][:, None], multilabel=True, smoothing=smoothing)


def _tempered(logits, prior, T: float) -> np.ndarray:
    return logits / T if prior is None else np.where(prior, logits, logits / T)


def _oof_logits(folds, Y, C, *, multilabel, n_classes, cfg: LabelConfig) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold logits of the seeds, and which cells are base rates (:class:`_Prior`)."""
    width = n_classes
    oof = np.zeros((len(Y), width))
    prior = np.zeros((len(Y), width), dtype=bool)
    for train, test, Xf, Pf, Af in folds:
        if Pf is not None and len(Pf) and cfg.self_training:
            # The held-out seeds are unlabeled pool documents for this fold, as the pool is for
            # the final head: they are pseudo-labelled along with it.
            Pf = np.vstack([Pf, Xf[test]])
        anchor_y = Af[1] if Af is not None else np.zeros((0,) + Y.shape[1:], dtype=int)
        if not multilabel and len(np.unique(np.concatenate([Y[train], anchor_y]))) < n_classes:
            # A class absent from this fold's training part: give it no mass.
            present = np.unique(np.concatenate([Y[train], anchor_y]))
            remap = {c: i for i, c in enumerate(present)}
            Ar = None if Af is None else (Af[0], np.array([remap[c] for c in Af[1]], dtype=int), Af[2])
            models = fit_self_trained(Xf[train], np.array([remap[c] for c in Y[train]]), Pf, C=C,
                                      multilabel=False, n_classes=len(present), cfg=cfg, anchors=Ar)
            part = np.full((len(test), width), -30.0)
            part[:, present] = _logits_of(models, Xf[test], False)
            oof[test] = part
            continue
        if multilabel:
            Xt, Yt, wt = _stack(Xf[train], Y[train], Af)
            models = _label_models(Xt, Yt, wt, Y[train], C, cfg.seed)
            oof[test] = _logits_of(models, Xf[test], True)
            prior[test] = [isinstance(m, _Prior) for m in models]
        else:
            models = fit_self_trained(Xf[train], Y[train], Pf, C=C, multilabel=False,
                                      n_classes=n_classes, cfg=cfg, anchors=Af)
            oof[test] = _logits_of(models, Xf[test], False)
    return oof, prior


def _nll(z, Y, multilabel):
    if multilabel:
        p = np.clip(sigmoid(z), 1e-12, 1 - 1e-12)
        return float(-(Y * np.log(p) + (1 - Y) * np.log(1 - p)).mean())
    p = softmax(z)
    return float(-np.log(np.clip(p[np.arange(len(Y)), Y], 1e-12, None)).mean())


def fit_head(X, Y, X_pool, classes, *, multilabel, cv: CVResult, cfg: LabelConfig, anchors=None) -> Head:
    # Self-training ranks pseudo-labels by the softmax at temperature 1, as in the calibration
    # folds (they run before any temperature exists): with the fitted one the head picked other
    # pseudo-labels and was not the model its temperature and expected accuracy were fitted on.
    models = fit_self_trained(X, Y, X_pool, C=cv.C, multilabel=multilabel, n_classes=len(classes),
                              cfg=cfg, anchors=anchors)
    return Head(list(classes), multilabel, cv.temperature, cv.C, models)


# ---------------------------------------------------------------------------------- SetFit

def contrastive_pairs(Y: np.ndarray, *, multilabel: bool, pairs_per_seed: int, seed: int):
    """SetFit pair sampling: for each seed, ``pairs_per_seed / 2`` positives (same label) and as
    many negatives. Multi-label: target = Jaccard similarity of the two label sets.

    Returns a list of ``(i, j, target)``.
    """
    rng = np.random.default_rng(seed)
    n = len(Y)
    pairs: list[tuple[int, int, float]] = []
    if multilabel:
        sets = [frozenset(np.flatnonzero(row)) for row in Y]
        sim = np.array([[len(a & b) / max(1, len(a | b)) for b in sets] for a in sets])
    else:
        sim = (Y[:, None] == Y[None, :]).astype(float)
    np.fill_diagonal(sim, np.nan)
    for _ in range(max(1, pairs_per_seed // 2)):
        for i in rng.permutation(n):
            pos = np.flatnonzero(sim[i] >= 0.5)
            neg = np.flatnonzero(sim[i] < 0.5)
            if len(pos):
                j = int(rng.choice(pos))
                pairs.append((int(i), j, float(sim[i, j])))
            if len(neg):
                j = int(rng.choice(neg))
                pairs.append((int(i), j, float(sim[i, j])))
    order = rng.permutation(len(pairs))
    return [pairs[k] for k in order]


def finetune_encoder(encoder: SentenceEncoder, texts: Sequence[str], Y: np.ndarray, *, multilabel: bool,
                     cfg: LabelConfig, seed: int | None = None,
                     on_step: Callable[[int, int], None] | None = None) -> SentenceEncoder:
    """A copy of ``encoder`` fine-tuned with ``CosineSimilarityLoss`` on seed pairs.

    Long seeds contribute a random chunk per pair (the views inference averages), so the
    tuning never trains on text the encoder window would cut off.
    """
    import torch
    from sentence_transformers import losses

    seed = cfg.seed if seed is None else seed
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = copy.deepcopy(encoder.model)
    window = model.max_seq_length
    model.max_seq_length = min(window, cfg.setfit_max_length)
    pieces = encoder.chunk_texts(list(texts))
    pairs = contrastive_pairs(Y, multilabel=multilabel, pairs_per_seed=cfg.setfit_pairs_per_seed, seed=seed)
    bs = cfg.setfit_batch_size
    steps_per_epoch = math.ceil(len(pairs) / bs)
    total = min(cfg.setfit_max_steps, steps_per_epoch * cfg.setfit_epochs)
    loss_fn = losses.CosineSimilarityLoss(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.setfit_lr)
    warmup = max(1, total // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
    )
    device = next(model.parameters()).device
    model.train()
    step = 0
    while step < total:
        for start in range(0, len(pairs), bs):
            if step >= total:
                break
            batch = pairs[start:start + bs]
            left = [pieces[i][rng.integers(len(pieces[i]))] for i, _, _ in batch]
            right = [pieces[j][rng.integers(len(pieces[j]))] for _, j, _ in batch]
            features = [_features(model, side, device) for side in (left, right)]
            labels = torch.tensor([t for _, _, t in batch], dtype=torch.float32, device=device)
            loss = loss_fn(features, labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            if on_step is not None:
                on_step(step, total)
        rng.shuffle(pairs)
    model.eval()
    model.max_seq_length = window
    return SentenceEncoder(model, max_tokens=encoder.max_tokens, batch_size=encoder.batch_size,
                           chunk=encoder.chunk, name=f"{encoder.name}+setfit")


def _features(model, texts: list[str], device) -> dict:
    # sentence-transformers >= 6 renamed ``tokenize`` to ``preprocess``; both return tensors plus
    # non-tensor entries (e.g. the modality) that must stay as they are.
    prepare = getattr(model, "preprocess", None) or model.tokenize
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in prepare(texts).items()}


# ------------------------------------------------------------------------- the full procedure

@dataclass
class Fitted:
    """Everything a run produced about the seeds and the pool."""

    head: Head
    cv: CVResult
    pool_probs: np.ndarray
    pool_embeddings: np.ndarray
    encoder_name: str


def fit_and_predict(encoder: Encoder, seed_texts, Y, pool_texts, classes, *, multilabel: bool,
                    cfg: LabelConfig, on_stage: Callable[[str], None] | None = None) -> Fitted:
    """Run ``cfg.method`` end to end: calibrated CV on the seeds, final head, pool probabilities."""
    say = on_stage or (lambda s: None)
    if cfg.method == "embed":
        say("embedding seeds and pool")
        X = encoder.encode(seed_texts)
        P = encoder.encode(pool_texts) if len(pool_texts) else np.zeros((0, X.shape[1]), np.float32)
        lsa = LSA(cfg.lsa_dims, cfg.seed).fit(list(seed_texts) + list(pool_texts)) if cfg.lsa_dims else None
        anchors = _anchors(encoder, classes, multilabel, cfg, lsa)
        # The ranking's diversity term keeps the sentence embeddings; the head sees both.
        Xh, Ph = with_lsa(X, seed_texts, lsa, cfg.lsa_weight), with_lsa(P, pool_texts, lsa, cfg.lsa_weight)
        say("cross-validating on the seeds")
        cv = cross_validate(Xh, Y, Ph, multilabel=multilabel, n_classes=len(classes), cfg=cfg, anchors=anchors)
        head = fit_head(Xh, Y, Ph, classes, multilabel=multilabel, cv=cv, cfg=cfg, anchors=anchors)
        return Fitted(head, cv, head.predict_proba(Ph) if len(Ph) else np.zeros((0, len(classes))), P, encoder.name)
    if not isinstance(encoder, SentenceEncoder):
        raise TypeError("method 'setfit' fine-tunes the encoder and needs a SentenceEncoder")
    # Calibration folds cross-fit the fine-tuning (see the module docstring); 2 folds keep the
    # cost at one extra full-size tuning.
    splits = cv_splits(Y, multilabel, 2, cfg.seed)

    def fold_embed(train_idx):
        say(f"fine-tuning a calibration fold on {len(train_idx)} seeds")
        tuned = finetune_encoder(encoder, [seed_texts[i] for i in train_idx], Y[train_idx],
                                 multilabel=multilabel, cfg=_scaled(cfg, len(train_idx), len(Y)))
        # The fold's head self-trains on the pool as the final head does: calibrating a plain
        # head and applying its temperature to the self-trained one left the suggestions far
        # too confident (ECE 0.32 at 16 seeds per class on the GPU, see bench_label.py).
        pool = None
        if cfg.self_training and not multilabel and len(pool_texts):
            say("embedding the pool with the fold's encoder")
            pool = tuned.encode(pool_texts)
        return tuned.encode(seed_texts), pool, _anchors(tuned, classes, multilabel, cfg)

    # Every fold embeds with its own tuned encoder: the frozen vectors would go unused.
    cv = cross_validate(None, Y, None, multilabel=multilabel, n_classes=len(classes), cfg=cfg,
                        splits=splits, fold_embed=fold_embed)
    say("fine-tuning the encoder on all seeds")
    tuned = finetune_encoder(encoder, seed_texts, Y, multilabel=multilabel, cfg=cfg)
    say("embedding seeds and pool with the tuned encoder")
    Xt = tuned.encode(seed_texts)
    Pt = tuned.encode(pool_texts) if len(pool_texts) else np.zeros((0, Xt.shape[1]), np.float32)
    head = fit_head(Xt, Y, Pt, classes, multilabel=multilabel, cv=cv, cfg=cfg,
                    anchors=_anchors(tuned, classes, multilabel, cfg))
    return Fitted(head, cv, head.predict_proba(Pt) if len(Pt) else np.zeros((0, len(classes))), Pt, tuned.name)


def _anchors(encoder, classes, multilabel, cfg: LabelConfig, lsa: LSA | None = None):
    return label_anchors(encoder, classes, cfg.label_descriptions, multilabel=multilabel,
                         weight=cfg.description_weight, lsa=lsa, lsa_weight=cfg.lsa_weight)


def _scaled(cfg: LabelConfig, n_part: int, n_all: int) -> LabelConfig:
    """Same recipe on a subset: the step cap shrinks with the number of seeds (pairs do too)."""
    scaled = copy.copy(cfg)
    scaled.setfit_max_steps = max(1, int(round(cfg.setfit_max_steps * n_part / max(1, n_all))))
    return scaled


__all__ = [
    "CVResult", "Fitted", "Head", "LSA", "contrastive_pairs", "cross_validate", "finetune_encoder",
    "fit_and_predict", "label_anchors", "normalize",
]
