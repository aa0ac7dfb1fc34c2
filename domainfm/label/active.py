"""Active-learning order of the pool: uncertain first, but not a run of near-duplicates.

Pure uncertainty sampling puts twenty copies of the same borderline boilerplate at the top of
the queue; pure diversity (k-center) spends the annotator on easy, already-known regions. We mix
them greedily, MMR style: the next item maximises

    (1 - diversity) * uncertainty(i) + diversity * novelty(i)

where ``uncertainty`` is 1 - margin between the two most likely labels (single-label) or the
largest per-label ``1 - |2p - 1|`` (multi-label), both in [0, 1], and ``novelty`` is the cosine
distance from ``i`` to the nearest item already ranked, divided by the largest such distance
among the remaining items (so both terms live on [0, 1] at every step). The first item is the
most uncertain one. A near-duplicate of a ranked item has novelty ~0, so it drops down the queue
until its uncertainty alone outweighs everything still unranked.

Greedy selection is O(n * k * dim); after ``greedy_top`` items (far more than an annotator
labels in a session) the remainder is appended in plain uncertainty order.
"""

from __future__ import annotations

import numpy as np


def uncertainty(probs: np.ndarray, *, multilabel: bool = False) -> np.ndarray:
    """Per-row uncertainty in [0, 1] (1 = a coin flip between the top two labels)."""
    probs = np.asarray(probs, dtype=float)
    if len(probs) == 0:
        return np.zeros(0)
    if multilabel:
        return (1.0 - np.abs(2.0 * probs - 1.0)).max(axis=1)
    if probs.shape[1] == 1:
        return np.zeros(len(probs))
    top2 = -np.sort(-probs, axis=1)[:, :2]
    return 1.0 - (top2[:, 0] - top2[:, 1])


def rank_pool(probs: np.ndarray, embeddings: np.ndarray, *, diversity: float = 0.5,
              multilabel: bool = False, greedy_top: int = 2000) -> np.ndarray:
    """Return ``rank`` per pool item (1 = label this first).

    Args:
        probs: calibrated probabilities ``(n, k)``.
        embeddings: L2-normalised embeddings ``(n, dim)`` of the same items.
        diversity: weight of novelty against uncertainty (0 = uncertainty order).
        greedy_top: how many items the greedy mix orders; the rest follow by uncertainty.
    """
    n = len(probs)
    if n == 0:
        return np.zeros(0, dtype=int)
    u = uncertainty(probs, multilabel=multilabel)
    order: list[int] = []
    remaining = np.ones(n, dtype=bool)
    if diversity <= 0:
        order = list(np.argsort(-u, kind="stable"))
    else:
        X = np.asarray(embeddings, dtype=np.float32)
        min_dist = np.full(n, np.inf, dtype=np.float64)
        first = int(np.argmax(u))
        k = min(n, greedy_top)
        current = first
        for _ in range(k):
            order.append(current)
            remaining[current] = False
            if not remaining.any():
                break
            d = 1.0 - X @ X[current]
            np.minimum(min_dist, np.clip(d, 0.0, 2.0), out=min_dist)
            cand = np.flatnonzero(remaining)
            md = min_dist[cand]
            scale = md.max()
            novelty = md / scale if scale > 1e-12 else np.zeros_like(md)
            score = (1.0 - diversity) * u[cand] + diversity * novelty
            current = int(cand[np.argmax(score)])
        if remaining.any():
            rest = np.flatnonzero(remaining)
            order.extend(rest[np.argsort(-u[rest], kind="stable")].tolist())
    ranks = np.empty(n, dtype=int)
    ranks[np.asarray(order, dtype=int)] = np.arange(1, n + 1)
    return ranks


def near_duplicate_share(ranks: np.ndarray, embeddings: np.ndarray, top: int = 20,
                         threshold: float = 0.95) -> float:
    """Share of the top-``top`` items with a cosine similarity >= ``threshold`` to a higher one."""
    order = np.argsort(ranks)[:top]
    X = np.asarray(embeddings, dtype=np.float32)[order]
    if len(X) < 2:
        return 0.0
    sims = X @ X.T
    dup = [bool((sims[i, :i] >= threshold).any()) for i in range(1, len(X))]
    return float(np.mean(dup))


def rank_scores(u: np.ndarray, embeddings: np.ndarray, *, diversity: float = 0.5, greedy_top: int = 2000) -> np.ndarray:
    """``rank_pool`` for items whose uncertainty in [0, 1] is already known (e.g. a document's
    span uncertainty aggregated over its chunks)."""
    u = np.clip(np.asarray(u, dtype=float), 0.0, 1.0)
    # two-column "probabilities" whose margin-uncertainty is exactly u
    probs = np.stack([1.0 - u / 2.0, u / 2.0], axis=1)
    return rank_pool(probs, embeddings, diversity=diversity, greedy_top=greedy_top)
