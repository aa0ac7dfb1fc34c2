"""Canary exposure: how far up the model ranks each planted secret among reference secrets of
the same format and the same number of tokens, in the canary's own sentence.

``exposure = log2(n_candidates + 1) - log2(rank)``, rank 1 = the canary scores highest. A model
that learned nothing ranks the canary uniformly, so the exposure exceeds ``t`` bits with
probability about ``2**-t``; a memorised canary reaches the maximum, ``log2(n_candidates + 1)``.
"""

from __future__ import annotations

import math
import random
from typing import Any, Callable, Sequence

import numpy as np

from domainfm.privacy_audit.canaries import Canary, reference_secrets

# Reference secrets drawn per wanted candidate before giving up on finding enough with the
# canary's token count.
_POOL_FACTOR = 30


def canary_exposure(scorer, canary: Canary, n_candidates: int, seed: int) -> dict[str, Any]:
    """Rank and exposure of one canary (the result never contains the secret)."""
    start, end = canary.span
    n_tokens = int(scorer.span_token_counts([canary.text], [canary.span])[0])
    rng = random.Random(f"domainfm-exposure:{seed}:{canary.id}")
    texts: list[str] = []
    spans: list[tuple[int, int]] = []
    drawn: set[str] = set()
    # draw in rounds until enough have the canary's token count (tokenizing is the cost here)
    for _ in range(_POOL_FACTOR // 2):
        pool = [s for s in reference_secrets(canary, 2 * n_candidates, rng, accept=lambda s: s not in drawn)]
        drawn.update(pool)
        round_texts = [canary.prefix + s + canary.suffix for s in pool]
        round_spans = [(start, start + len(s)) for s in pool]
        counts = scorer.span_token_counts(round_texts, round_spans)
        for t, sp, k in zip(round_texts, round_spans, counts):
            if k == n_tokens and len(texts) < n_candidates:
                texts.append(t)
                spans.append(sp)
        if len(texts) >= n_candidates or not pool:
            break
    keep = range(len(texts))
    scores = scorer.span_logprobs([canary.text] + [texts[i] for i in keep], [canary.span] + [spans[i] for i in keep])
    own, others = scores[0], scores[1:]
    # ties share their ranks (mid-rank): a model that scores every secret alike, e.g. a classifier
    # that reads only the sentence around it, must not rank the canary first by a tie
    rank = 1 + float(np.sum(others > own)) + 0.5 * float(np.sum(others == own))
    total = len(keep) + 1
    return {
        "id": canary.id, "format": canary.format, "repeats": canary.repeats, "tokens": n_tokens,
        "candidates": len(keep), "rank": int(rank) if rank == int(rank) else rank,
        "exposure": round(math.log2(total) - math.log2(rank), 4),
        "max_exposure": round(math.log2(total), 4),
    }


def exposures(scorer, canaries: Sequence[Canary], n_candidates: int, seed: int,
              scorer_for: Callable[[Canary], Any] | None = None) -> dict[str, Any]:
    """Exposure of every canary and its summary per repeat count; ``scorer_for(canary)`` gives a
    per-canary scorer where the score depends on the canary (a classifier's canary label)."""
    items = [canary_exposure(scorer_for(c) if scorer_for else scorer, c, n_candidates, seed) for c in canaries]
    by_repeats: dict[str, Any] = {}
    for repeats in sorted({c["repeats"] for c in items}):
        values = [c["exposure"] for c in items if c["repeats"] == repeats]
        by_repeats[str(repeats)] = {
            "canaries": len(values), "mean_exposure": round(float(np.mean(values)), 3),
            "min_exposure": min(values), "max_exposure": max(values),
            "ranked_first": sum(1 for c in items if c["repeats"] == repeats and c["rank"] == 1),
        }
    return {
        "canaries": items,
        "by_repeats": by_repeats,
        "max_exposure": max((c["exposure"] for c in items), default=None),
        "max_possible": max((c["max_exposure"] for c in items), default=None),
        "chance_note": "a model that learned nothing exceeds t bits with probability about 2^-t per canary",
    }
