"""The training engine's loss weighting across accumulated micro-batches (a toy model, one step)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from domainfm.training import StageTrainer
from domainfm.training.engine import training_arguments

# two micro-batches of one optimizer step with very different numbers of items: 1 and 5
X = [torch.tensor([[3.0]]), torch.tensor([[1.0], [1.0], [1.0], [1.0], [1.0]])]


class Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return x * self.w


def _batch(k: int) -> dict:
    x = X[k % 2]
    return {"x": x, "attention_mask": torch.ones(len(x), 1, dtype=torch.long)}


def _one_step(tmp_path, weighted: bool) -> float:
    def loss_sum(model, batch):  # the squared error of every item against 1
        err = (model(batch["x"]) - 1.0) ** 2
        return (err.sum(), len(batch["x"])) if weighted else err.mean()

    args = training_arguments(tmp_path / ("w" if weighted else "m"), max_steps=1, grad_accum=2, batch_size=1, lr=0.1,
                              weight_decay=0.0, warmup_steps=0, max_grad_norm=1e9, seed=0, precision={},
                              log_every=1, optim="sgd", save_strategy="no")
    trainer = StageTrainer(model=Toy(), args=args, make_batch=_batch, micro_batches=2, loss_fn=loss_sum,
                           count_items=(lambda b: len(b["x"])) if weighted else None)
    trainer.train()
    # the step's reported loss is its mean either way (every item's error is 1 at w = 0)
    assert trainer.progress.last_loss == pytest.approx(1.0)
    return float(trainer.model.w.detach())


def test_a_step_weighs_every_item_once_across_accumulated_micro_batches(tmp_path):
    # d/dw of the mean over all 6 items of (w x - 1)^2 at w = 0: -2 * (3 + 5 * 1) / 6
    assert _one_step(tmp_path, weighted=True) == pytest.approx(-0.1 * -2 * 8 / 6, rel=1e-5)
    # a mean of the two micro-batch means gives the single item of the first as much weight as
    # the five of the second: -2 * (3 / 1 + 5 / 5) / 2 (what a stage without count_items gets)
    assert _one_step(tmp_path, weighted=False) == pytest.approx(-0.1 * -2 * 4 / 2, rel=1e-5)


@pytest.mark.parametrize("task", ["ner", "multilabel"])
def test_finetune_loss_sums_and_items_add_up_to_the_mean_of_the_batches_together(task):
    # what the engine divides across micro-batches must be torch's own (class-weighted) mean
    # of the two batches as one: a batch of 1 labelled token next to one of 5
    from types import SimpleNamespace

    from domainfm.finetune.data import IGNORE_INDEX
    from domainfm.finetune.objective import _loss_fn

    torch.manual_seed(0)
    n_out = 3
    if task == "ner":
        labels = [torch.tensor([[0, IGNORE_INDEX, IGNORE_INDEX]]), torch.tensor([[1, 2, 2], [2, 1, IGNORE_INDEX]])]
        features = [SimpleNamespace(label=[0, 1, 2, 2, 2, 1])]
    else:
        labels = [torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]])]
        features = [SimpleNamespace(label=np.array(row)) for row in ([1, 0, 0], [0, 1, 1], [0, 0, 1])]
    cfg = SimpleNamespace(task=task, train=SimpleNamespace(class_weights="balanced"))
    loss, weights = _loss_fn(cfg, features, n_out)
    assert weights is not None and len(set(weights)) > 1  # unequal class weights: the case that matters
    logits = [torch.randn(*y.shape[:2], n_out) if task == "ner" else torch.randn(len(y), n_out) for y in labels]
    parts = [loss.total(x, y) for x, y in zip(logits, labels)]
    together = loss(torch.cat(logits), torch.cat(labels))
    assert float(sum(s for s, _ in parts) / sum(n for _, n in parts)) == pytest.approx(float(together), rel=1e-6)
    assert float(sum(loss(x, y) for x, y in zip(logits, labels)) / 2) != pytest.approx(float(together), rel=1e-3)
