"""The training engine of pretrain and finetune: ``transformers.Trainer`` with what domainfm adds.

Trainer brings the optimizer and its weight-decay groups, the warm-up/decay schedule, gradient
accumulation and clipping, mixed precision and DDP (through accelerate), ``report_to``,
best-model selection, early stopping and ``save_total_limit``. :class:`StageTrainer` adds:

- **seeded micro-batches**: micro-batch ``k`` of the whole run is ``make_batch(k)`` (the stage
  seeds its order and masks from ``(seed, k, rank)``), and dropout is reseeded from
  ``(seed, step, rank)`` before every step; so a run resumed from a checkpoint takes exactly the
  steps an uninterrupted run takes, and resuming skips batches without building them;
- **the stage's loss** (``loss_fn(model, batch)``: masked positions only, class weights...),
  weighted by item across the micro-batches of a step when the stage can count its items
  (``count_items``: a step's loss is then the mean over all its masked or next tokens, on every
  process, not a mean of micro-batch means), and **the stage's evaluation** (``evaluator()``:
  fixed-mask perplexity, document-level scores);
- **durable checkpoints**: Trainer's folder, fsync'd, then marked complete by
  ``domainfm_state.json`` (the stage's own state); older ones are rotated only after that, and a
  failed write raises :class:`~domainfm.training.checkpoints.CheckpointError` on every rank;
- **throughput**: real tokens and sequences per second of training (evaluation and checkpoint
  writing excluded), and progress events for the CLI.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader, Dataset
from transformers import Trainer, TrainerCallback
from transformers.trainer_callback import PrinterCallback

from domainfm.seeding import mix_seed
from domainfm.training.artifacts import sorted_adapter_config
from domainfm.training.checkpoints import CheckpointError, checkpoint_failed, commit_checkpoint

Event = Callable[[dict[str, Any]], None]
_EXTRA_TRAINABLE = "domainfm_trainable.pt"
# a step with no items has a loss sum of 0 too; class weights can sum to less than 1, so no clamp at 1
_NO_ITEMS = 1e-12


class BatchDataset(Dataset):
    """Micro-batches ``start .. n-1`` of a run, each built by ``make_batch(k)``."""

    def __init__(self, make_batch: Callable[[int], dict], n: int, start: int = 0):
        self.make_batch, self.n, self.start = make_batch, n, start

    def __len__(self) -> int:
        return self.n - self.start

    def __getitem__(self, i: int) -> dict:
        return self.make_batch(self.start + i)


def _check_trainer_counts_items() -> None:
    """A step's loss over all its items needs a Trainer that reads ``loss_is_scaled_for_ga`` and
    hands ``get_batch_samples`` the device: an older one would divide the step's share by the
    accumulation steps again (a loss, and gradients, too small) without a word."""
    import inspect

    import transformers

    if "loss_is_scaled_for_ga" not in vars(Trainer) or "device" not in inspect.signature(Trainer.get_batch_samples).parameters:
        from domainfm.errors import ConfigError

        raise ConfigError(f"transformers {transformers.__version__} is too old for domainfm's training engine (its "
                          "Trainer has no loss_is_scaled_for_ga); upgrade transformers (tested with 5.25)")


class StageTrainer(Trainer):
    """``Trainer`` over seeded micro-batches with a stage's loss, evaluation and checkpoint state.

    Args:
        make_batch: micro-batch ``k`` (0-based over the whole run) on this process.
        micro_batches: micro-batches in the run (``max_steps * gradient_accumulation_steps``).
        loss_fn: ``(model, batch) -> mean loss`` of one micro-batch; with ``count_items``,
            ``(model, batch) -> (loss sum, item count)``.
        count_items: ``batch -> the items its loss sums over`` (masked tokens, next tokens; the
            targets' class weights summed), from the batch alone. Given, the loss of an
            optimizer step is the sum over its micro-batches on every process divided by their
            items together: without it a
            micro-batch with 12 masked tokens weighs as much as one with 200 (the gradient
            accumulation loss bias that transformers fixed for its own models' losses).
        evaluator: ``() -> metrics`` (numbers are logged with an ``eval_`` prefix).
        checkpoint_state: ``() -> dict`` saved as ``domainfm_state.json`` in every checkpoint.
        on_event: progress events on the main process (``step``, ``log``, ``eval``).
        log_file: ``train_log.jsonl`` to append every logged window to (main process).
    """

    def __init__(self, *, model, args, make_batch, micro_batches: int, loss_fn, evaluator=None,
                 checkpoint_state=None, on_event: Event | None = None, log_file: Path | None = None,
                 callbacks=(), count_items: Callable[[dict], Any] | None = None):
        if count_items is not None:
            _check_trainer_counts_items()
        self.make_batch, self.micro_batches = make_batch, micro_batches
        self.loss_fn, self.evaluator, self.count_items = loss_fn, evaluator, count_items
        # a per-micro-batch mean: Trainer divides it by the accumulation steps; a sum over the
        # step's items (count_items) is already the step's share
        self.loss_is_scaled_for_ga = count_items is not None
        self.checkpoint_state = checkpoint_state or dict
        self.progress = _Progress(self, on_event, log_file)
        self.last_eval: dict[str, Any] | None = None
        # evaluation is the stage's evaluator; the empty eval set only tells Trainer there is one
        super().__init__(model=model, args=args, train_dataset=BatchDataset(make_batch, micro_batches),
                         eval_dataset=BatchDataset(make_batch, 0) if evaluator is not None else None,
                         callbacks=[self.progress, *callbacks])
        self.model_accepts_loss_kwargs = False
        self.remove_callback(PrinterCallback)  # stdout belongs to the CLI; logs go through on_event

    # ---- data: micro-batch k, whatever happened before
    def get_train_dataloader(self) -> DataLoader:
        return DataLoader(BatchDataset(self.make_batch, self.micro_batches), batch_size=None)

    def get_resumed_dataloader(self, dataloader, num_batches: int) -> DataLoader:
        return DataLoader(BatchDataset(self.make_batch, self.micro_batches, num_batches), batch_size=None)

    # ---- loss
    def get_batch_samples(self, epoch_iterator, num_batches, device):
        samples, num_items = super().get_batch_samples(epoch_iterator, num_batches, device)
        if self.count_items is None:
            return samples, num_items
        items = torch.tensor(float(sum(float(self.count_items(b)) for b in samples)), device=device)
        if self.args.world_size > 1:  # every process's items of this step: DDP averages the gradients
            items = self.accelerator.gather(items.reshape(1)).sum()
        return samples, items

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.count_items is None:
            loss = self.loss_fn(model, inputs)
        else:
            loss_sum, count = self.loss_fn(model, inputs)
            if model.training and num_items_in_batch is not None:
                # this micro-batch's share of the step's mean; DDP then averages over processes,
                # so each one's share is scaled up by their number
                loss = loss_sum / num_items_in_batch.clamp(min=_NO_ITEMS) * self.args.world_size
            else:
                loss = loss_sum / torch.as_tensor(count, dtype=torch.float32).clamp(min=_NO_ITEMS)
        if model.training:
            self.progress.count(inputs, loss, scaled=self.loss_is_scaled_for_ga)
        return (loss, None) if return_outputs else loss

    # ---- evaluation: the stage's own, logged and seen by callbacks (early stopping)
    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        if self.evaluator is None:
            return {}
        t0 = time.perf_counter()
        result = self.evaluator()
        self.last_eval = result
        metrics = {f"{metric_key_prefix}_{k}": float(v) for k, v in (result or {}).items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if metrics:
            self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        self.progress.excluded += time.perf_counter() - t0
        return metrics

    # ---- checkpoints: durable, marked complete, rotated only then
    def _save_checkpoint(self, model, trial) -> None:
        t0 = time.perf_counter()
        run_dir = Path(self._get_output_dir(trial=trial))
        folder = run_dir / f"checkpoint-{self.state.global_step}"
        limit = self.args.save_total_limit
        error: CheckpointError | None = None
        self.args.save_total_limit = None  # Trainer would rotate before this one is complete
        try:
            if self.args.should_save:
                shutil.rmtree(folder, ignore_errors=True)  # an incomplete folder of a killed run
            with sorted_adapter_config(self.model):  # adapter_config.json: the same bytes in every process
                super()._save_checkpoint(model, trial)
            if self.args.should_save:
                if _has_untracked_trainables(self.model):
                    torch.save(_trainable(self.model), folder / _EXTRA_TRAINABLE)
                commit_checkpoint(folder, {"step": self.state.global_step, **self.checkpoint_state()})
        except OSError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            error = checkpoint_failed(run_dir.parent, self.state.global_step, exc)
        finally:
            self.args.save_total_limit = limit
        ok = self.accelerator.reduce(torch.tensor([0.0 if error else 1.0], device=self.args.device), "sum")
        if error is not None:
            raise error
        if int(ok.item()) < self.accelerator.num_processes:
            raise CheckpointError(f"the main process could not write {folder.name}; see its error")
        if self.args.should_save:
            from transformers.trainer_utils import rotate_checkpoints

            rotate_checkpoints(str(run_dir), limit, self.state.best_model_checkpoint, use_mtime=False)
        self.progress.excluded += time.perf_counter() - t0

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        extra = Path(resume_from_checkpoint) / _EXTRA_TRAINABLE
        if extra.is_file():
            params = dict((model or self.model).named_parameters())
            with torch.no_grad():
                for name, value in torch.load(extra, map_location="cpu", weights_only=True).items():
                    params[name].copy_(value)

    @property
    def rank_world(self) -> tuple[int, int]:
        return self.args.process_index, self.args.world_size


def _trainable(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad}


def _has_untracked_trainables(model) -> bool:
    """A peft model whose trainable weights are not all in its adapter (LoRA-DAPT's new MLM
    head): the checkpoint keeps them too, or a resumed run would start them afresh."""
    try:
        from peft import PeftModel
    except ImportError:
        return False
    if not isinstance(model, PeftModel):
        return False
    return any(p.requires_grad and "lora_" not in n and "modules_to_save" not in n
               for n, p in model.named_parameters())


class SeedDropout(TrainerCallback):
    """Dropout of step ``s`` on rank ``r`` is seeded from ``(seed, s, r)``: independent of how
    the run got there (fresh, or resumed from any checkpoint)."""

    def __init__(self, seed: int):
        self.seed = seed

    def on_step_begin(self, args, state, control, **kwargs):
        torch.manual_seed(mix_seed(self.seed, state.global_step, args.process_index, 1))


class _Progress(TrainerCallback):
    """Real tokens/sequences per second of training, progress events, ``train_log.jsonl``."""

    def __init__(self, trainer: StageTrainer, on_event: Event | None, log_file: Path | None):
        self.trainer, self.on_event, self.log_file = trainer, on_event, log_file
        self.tokens = self.sequences = 0
        self.tokens_before = 0  # tokens of the steps before a resumption
        self.excluded = 0.0  # seconds of evaluation and checkpoint writing inside the loop
        self.step_loss = 0.0
        self.last_loss: float | None = None
        self.t0 = self.c0 = 0.0
        self.compute_s = self.cpu_s = 0.0
        self.start_step = 0

    def count(self, inputs, loss, scaled: bool = False) -> None:
        self.tokens += int(inputs["attention_mask"].sum())
        self.sequences += int(inputs["attention_mask"].shape[0])
        # this process's part of the step's loss: shares of the step's mean add up (scaled), micro-batch
        # means are averaged; on_step_end averages the parts over the processes
        share = float(loss.detach())
        self.step_loss += share if scaled else share / self.trainer.args.gradient_accumulation_steps

    def emit(self, kind: str, **payload) -> None:
        if self.on_event is not None and self.trainer.is_world_process_zero():
            self.on_event({"kind": kind, **payload})

    @property
    def world(self) -> int:
        return self.trainer.args.world_size

    def tokens_per_s(self) -> float:
        return self.tokens * self.world / max(self.compute_s, 1e-9)

    def on_train_begin(self, args, state, control, **kwargs):
        self.start_step = state.global_step
        self.emit("step", step=state.global_step, total_steps=state.max_steps, loss=None, tokens_per_s=None,
                  eta_s=None)
        self.t0, self.c0 = time.perf_counter(), time.process_time()

    def on_step_begin(self, args, state, control, **kwargs):
        self.step_loss = 0.0

    def on_step_end(self, args, state, control, **kwargs):
        self.compute_s = time.perf_counter() - self.t0 - self.excluded
        self.cpu_s = time.process_time() - self.c0
        self.last_loss = self.step_loss
        if self.world > 1:
            # a process's part is its items' loss sum over every process's items, times the number
            # of processes: alone no mean (the main process, with 6 of 9 items, said 1.33 for a step
            # whose every item's loss was 1). The mean of the parts is the step's mean, as Trainer's
            # logged loss is; every process ends every step here, so each meets the collective.
            part = torch.tensor([self.step_loss], dtype=torch.float32, device=args.device)
            self.last_loss = float(self.trainer.accelerator.reduce(part, reduction="mean"))
        done = state.global_step - self.start_step
        eta = (state.max_steps - state.global_step) * self.compute_s / max(done, 1)
        self.emit("step", step=state.global_step, total_steps=state.max_steps, loss=self.last_loss,
                  tokens_per_s=self.tokens_per_s(), eta_s=eta)
        if state.global_step >= state.max_steps:
            control.should_log = True  # the last window, even when shorter than logging_steps

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:
            return
        t0 = time.perf_counter()
        record = {"step": state.global_step, "loss": logs["loss"], "lr": logs.get("learning_rate"),
                  "tokens_per_s": round(self.tokens_per_s(), 1),
                  "tokens_seen": self.tokens_before + self.tokens * self.world}
        if self.log_file is not None and state.is_world_process_zero:
            with open(self.log_file, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
        self.emit("log", **record)
        self.excluded += time.perf_counter() - t0


def peak_memory() -> dict[str, float]:
    """Peak resident memory of this process (and GPU memory when there is a GPU), in MiB."""
    import resource

    peak = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if torch.cuda.is_available():
        peak["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return peak


def precision_flags(precision: str, *, fp16_ok: bool = True) -> dict[str, bool]:
    """TrainingArguments' ``bf16``/``fp16`` for a stage's ``train.precision``."""
    from domainfm.errors import ConfigError

    cuda = torch.cuda.is_available()
    if precision == "auto":
        if not cuda:
            return {}
        return {"bf16": True} if torch.cuda.is_bf16_supported() else ({"fp16": True} if fp16_ok else {})
    if precision == "fp16":
        if not cuda:
            raise ConfigError("train.precision fp16 needs a GPU; use fp32 or bf16 on a CPU")
        return {"fp16": True}
    return {"bf16": True} if precision == "bf16" else {}


def process_count() -> int:
    """How many training processes this run has (``accelerate launch --num_processes N``, torchrun;
    1 in a plain process), known before the Trainer's arguments are made: ``epochs`` are passes
    over the data, and N processes take N batches a micro-batch step, so a pass has N times fewer
    steps. Read from ``WORLD_SIZE``, which both launchers set: accelerate's ``PartialState()``
    built here says 1 for DDP on CPUs, and would be the state the Trainer then reuses."""
    import os

    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def training_arguments(out: Path, *, max_steps: int, grad_accum: int, batch_size: int, lr: float,
                       weight_decay: float, warmup_steps: int, max_grad_norm: float, seed: int,
                       precision: dict[str, bool], log_every: int, **extra):
    """``TrainingArguments`` with what every domainfm stage shares: offline, no tqdm, no
    dataloader workers (batches are built seeded in the main process), no column dropping."""
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(out), max_steps=max_steps, gradient_accumulation_steps=grad_accum,
        per_device_train_batch_size=batch_size, learning_rate=lr, weight_decay=weight_decay,
        warmup_steps=warmup_steps, lr_scheduler_type="linear", max_grad_norm=max_grad_norm, seed=seed,
        data_seed=seed, logging_steps=log_every, disable_tqdm=True, dataloader_num_workers=0,
        remove_unused_columns=False, average_tokens_across_devices=False, use_cpu=not torch.cuda.is_available(),
        report_to=[], **precision, **extra,
    )


def tensorboard_callback(folder: Path):
    """Trainer's TensorBoard reporting into ``folder`` (``train.report_to: tensorboard``)."""
    from domainfm.errors import ConfigError

    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("train.report_to tensorboard needs the tensorboard package "
                          "(pip install tensorboard), or set train.report_to none") from None
    from transformers.integrations import TensorBoardCallback

    return TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(folder)))


class StepTriggers(TrainerCallback):
    """Evaluate and/or save after the steps a stage picks: ``evaluate(step, max_steps)``,
    ``save(step, max_steps)`` (e.g. at epoch ends, or every N steps but the last)."""

    def __init__(self, evaluate: Callable[[int, int], bool] | None = None,
                 save: Callable[[int, int], bool] | None = None):
        self.evaluate, self.save = evaluate, save

    def on_step_end(self, args, state, control, **kwargs):
        if self.evaluate is not None and self.evaluate(state.global_step, state.max_steps):
            control.should_evaluate = True
        if self.save is not None and self.save(state.global_step, state.max_steps):
            control.should_save = True
