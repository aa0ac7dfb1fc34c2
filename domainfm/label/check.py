"""Find likely label errors in a labeled set: confident learning (Northcutt, Jiang & Chuang,
"Confident Learning: Estimating Uncertainty in Dataset Labels", JAIR 2021).

From out-of-fold probabilities ``p(i, j)`` (a model that never saw item ``i`` scores it):

1. per-class threshold ``t_j`` = mean of ``p(i, j)`` over the items *labeled* ``j`` (the
   model's average self-confidence for that class; it adapts to classes the model finds hard);
2. an item's confident label ``y*(i)`` = the most likely class among those with
   ``p(i, j) >= t_j``; items above no threshold are not counted;
3. the confident joint ``C[given][y*]`` counts items; its off-diagonal cells are the likely
   label errors. Each flagged item is suggested ``y*`` and ranked by the margin
   ``p(i, y*) - p(i, given)`` (the rank-by-normalized-margin rule of the paper).

Multi-label sets are checked one label at a time as binary problems (label present / absent);
a flag then suggests adding or removing that label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Flag:
    """A likely label error."""

    index: int
    given: str
    suggested: str
    confidence: float  # out-of-fold probability of the suggested label
    given_probability: float  # out-of-fold probability of the given label
    margin: float

    def to_dict(self, doc_id: str | None = None) -> dict:
        out = {"id": doc_id} if doc_id is not None else {}
        out.update(given=self.given, suggested=self.suggested, confidence=round(self.confidence, 4),
                   given_probability=round(self.given_probability, 4), margin=round(self.margin, 4))
        return out


def confident_joint(probs: np.ndarray, given: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(joint, thresholds, confident_label)``; ``confident_label`` is -1 where no class
    reaches its threshold."""
    probs = np.asarray(probs, dtype=float)
    given = np.asarray(given, dtype=int)
    k = probs.shape[1]
    thresholds = np.array([probs[given == j, j].mean() if (given == j).any() else 1.0 for j in range(k)])
    above = probs >= thresholds[None, :] - 1e-12
    masked = np.where(above, probs, -np.inf)
    confident = np.where(above.any(1), masked.argmax(1), -1)
    joint = np.zeros((k, k), dtype=int)
    for g, c in zip(given, confident):
        if c >= 0:
            joint[g, c] += 1
    return joint, thresholds, confident


def find_label_issues(probs: np.ndarray, given: np.ndarray, classes: list[str]) -> list[Flag]:
    """Single-label check; flags sorted by margin (most likely error first)."""
    probs = np.asarray(probs, dtype=float)
    given = np.asarray(given, dtype=int)
    _, _, confident = confident_joint(probs, given)
    # a confident off-diagonal count whose given label is still the model's first choice is no
    # error (cleanlab drops these too): per-class thresholds can put a 0.49 above a 0.51
    first_choice = probs.argmax(axis=1)
    flags = []
    for i in np.flatnonzero((confident >= 0) & (confident != given) & (first_choice != given)):
        c, g = int(confident[i]), int(given[i])
        flags.append(Flag(int(i), classes[g], classes[c], float(probs[i, c]), float(probs[i, g]),
                          float(probs[i, c] - probs[i, g])))
    return sorted(flags, key=lambda f: (-f.margin, f.index))


def find_multilabel_issues(probs: np.ndarray, given: np.ndarray, classes: list[str]) -> list[Flag]:
    """Per-label binary confident learning; ``suggested`` reads ``+label`` / ``-label``."""
    probs = np.asarray(probs, dtype=float)
    given = np.asarray(given, dtype=int)
    flags = []
    for j, name in enumerate(classes):
        col = given[:, j]
        if col.min() == col.max():
            continue
        binary = np.stack([1 - probs[:, j], probs[:, j]], axis=1)
        for f in find_label_issues(binary, col, [f"-{name}", f"+{name}"]):
            flags.append(Flag(f.index, f.given, f.suggested, f.confidence, f.given_probability, f.margin))
    return sorted(flags, key=lambda f: (-f.margin, f.index))
