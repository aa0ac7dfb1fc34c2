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


# Two processes of one optimizer step (DDP over gloo): unequal items per process and per
# micro-batch, every item's error 1 at w = 0, so the step's loss is 1 wherever it is read.
DDP_STEP = """
import json, sys
from pathlib import Path
import torch
from domainfm.training import StageTrainer
from domainfm.training.engine import training_arguments

out = Path(sys.argv[1])
X = {0: [torch.tensor([[3.0]]), torch.ones(5, 1)], 1: [torch.tensor([[2.0], [2.0]]), torch.ones(1, 1)]}


class Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return x * self.w


args = training_arguments(out, max_steps=1, grad_accum=2, batch_size=1, lr=0.1, weight_decay=0.0, warmup_steps=0,
                          max_grad_norm=1e9, seed=0, precision={}, log_every=1, optim="sgd", save_strategy="no")
rank = args.process_index


def batch(k):
    x = X[rank][k % 2]
    return {"x": x, "attention_mask": torch.ones(len(x), 1, dtype=torch.long)}


def loss_sum(model, b):
    err = (model(b["x"]) - 1.0) ** 2
    return err.sum(), len(b["x"])


trainer = StageTrainer(model=Toy(), args=args, make_batch=batch, micro_batches=2, loss_fn=loss_sum,
                       count_items=lambda b: len(b["x"]))
trainer.train()
logged = [h["loss"] for h in trainer.state.log_history if "loss" in h]
(out / f"rank{rank}.json").write_text(json.dumps({"w": float(trainer.model.w.detach()), "logged": logged,
                                                  "last_loss": trainer.progress.last_loss}))
trainer.accelerator.wait_for_everyone()
torch.distributed.destroy_process_group()  # a clean exit: gloo torn down at interpreter exit can abort
"""


@pytest.mark.slow
def test_two_processes_take_the_mean_over_every_item_of_the_step_and_report_it(tmp_path):
    """Under DDP a step's gradient is the mean over the items of both processes, and the step
    loss the main process reports (progress events, finetune's history and ``last_step_loss``)
    is that mean too. Each process reported its own share scaled by the number of processes:
    the main one, holding 6 of the 9 items, said 1.33 for a step whose every item's loss is 1."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from conftest import ROOT

    script = tmp_path / "ddp_step.py"
    script.write_text(DDP_STEP)
    launcher = Path(sys.executable).with_name("accelerate")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "ACCELERATE_CONFIG_FILE": str(tmp_path / "none.yaml")}
    run = subprocess.run([str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                          "--mixed_precision", "no", "--dynamo_backend", "no", str(script), str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=240, env=env)
    # gloo's threads can abort the interpreter at exit on a loaded machine ("terminate called
    # without an active exception", SIGABRT) after both ranks wrote their results: seen once in a
    # CI emulation, then 3 passes of 3 alone. That teardown is torch's, not what is tested here;
    # any other failure, or one before both results are written, still fails
    written = all((tmp_path / f"rank{r}.json").is_file() for r in (0, 1))
    aborted_at_exit = written and "terminate called without an active exception" in run.stderr
    assert run.returncode == 0 or aborted_at_exit, run.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    # d/dw of the mean over all 9 items of (w x - 1)^2 at w = 0: -2 * (3 + 5 + 2 + 2 + 1) / 9
    for rank in ranks:
        assert rank["w"] == pytest.approx(-0.1 * -2 * 13 / 9, rel=1e-5)
        assert rank["logged"] == [pytest.approx(1.0)]
        assert rank["last_loss"] == pytest.approx(1.0)


def test_a_trainer_too_old_to_count_items_is_refused(monkeypatch):
    # without loss_is_scaled_for_ga, Trainer divides the step's share by the accumulation steps again
    import transformers

    from domainfm.errors import ConfigError
    from domainfm.training import engine

    monkeypatch.delattr(transformers.Trainer, "loss_is_scaled_for_ga")
    with pytest.raises(ConfigError, match="too old for domainfm's training engine"):
        engine._check_trainer_counts_items()


def test_the_process_count_is_read_from_the_launchers_world_size(monkeypatch):
    from domainfm.training.engine import process_count

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert process_count() == 1
    monkeypatch.setenv("WORLD_SIZE", "4")  # accelerate launch --num_processes 4, torchrun --nproc-per-node 4
    assert process_count() == 4
    monkeypatch.setenv("WORLD_SIZE", "")
    assert process_count() == 1
