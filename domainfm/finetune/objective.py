"""What a fine-tuning step computes: the (class-weighted) loss and seeded, length-grouped batches."""

from __future__ import annotations

import math

import numpy as np

from domainfm.finetune.config import TaskConfig
from domainfm.finetune.data import IGNORE_INDEX


def _loss_fn(cfg: TaskConfig, features, n_out: int):
    import torch

    weights = None
    if cfg.train.class_weights == "balanced":
        if cfg.task == "multilabel":
            pos = np.sum([f.label for f in features], axis=0)
            weights = torch.tensor(np.clip((len(features) - pos) / np.maximum(pos, 1), 1.0, 100.0), dtype=torch.float)
        else:
            ids = np.concatenate([np.atleast_1d(np.asarray(f.label)) for f in features])
            counts = np.bincount(ids[ids != IGNORE_INDEX], minlength=n_out).astype(float)
            weights = torch.tensor(counts.sum() / (n_out * np.maximum(counts, 1)), dtype=torch.float)

    def loss_sum(logits, labels, reduction: str = "sum"):
        w = weights.to(logits.device) if weights is not None else None
        if cfg.task == "multilabel":
            return torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), labels, pos_weight=w,
                                                                        reduction=reduction)
        return torch.nn.functional.cross_entropy(logits.float().reshape(-1, n_out), labels.reshape(-1), weight=w,
                                                 ignore_index=IGNORE_INDEX, reduction=reduction)

    def items(labels) -> float:
        """What the mean loss divides the sum by: every cell (multi-label), else the targets,
        each counted by its class weight (torch's weighted mean)."""
        if cfg.task == "multilabel":
            return float(labels.numel())
        y = labels.reshape(-1)
        y = y[y != IGNORE_INDEX]
        return float(weights[y.cpu()].sum()) if weights is not None else float(len(y))

    return WeightedLoss(loss_sum, items), (weights.tolist() if weights is not None else None)


class WeightedLoss:
    """The fine-tuning loss of a batch as a mean (``loss(logits, labels)``) or as ``total`` and
    ``items``: a sum and what it is divided by, so that the training engine can weigh every
    target once across accumulated micro-batches."""

    def __init__(self, loss_sum, items):
        self._sum, self.items = loss_sum, items

    def __call__(self, logits, labels):
        if not self.items(labels):  # every label ignored (-100): no mean (0/0), the sum over no targets, 0
            return self._sum(logits, labels)
        return self._sum(logits, labels, reduction="mean")

    def total(self, logits, labels):
        return self._sum(logits, labels), self.items(labels)


class _Batches:
    """Batch ``b`` of epoch ``e``: seeded order, length-grouped (little padding), rank slice."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int, rank: int, world: int):
        self.lengths, self.bs, self.seed, self.rank, self.world = np.asarray(lengths), batch_size, seed, rank, world
        self.global_bs = batch_size * world
        self.per_epoch = max(1, math.ceil(len(lengths) / self.global_bs))
        self._cache: tuple[int, list] | None = None

    def epoch(self, e: int) -> list[np.ndarray]:
        if self._cache is None or self._cache[0] != e:
            rng = np.random.default_rng([self.seed, e])
            perm = rng.permutation(len(self.lengths))
            window = self.global_bs * 50
            batches = []
            for a in range(0, len(perm), window):
                part = perm[a:a + window]
                part = part[np.argsort(-self.lengths[part], kind="stable")]
                batches += [part[i:i + self.global_bs] for i in range(0, len(part), self.global_bs)]
            order = rng.permutation(len(batches))
            self._cache = (e, [batches[i] for i in order])
        return self._cache[1]

    def get(self, k: int) -> np.ndarray:
        e, b = divmod(k, self.per_epoch)
        batch = self.epoch(e)[b]
        if self.world > 1:
            batch = np.resize(batch, max(len(batch), self.world))  # every rank gets a sequence
        return batch[self.rank::self.world]
