"""The fine-tuning stage on the shared training engine (:mod:`domainfm.training`): LoRA (or full)
training of a classification / multi-label / NER head, with class weights, document-level
evaluation, best-model selection, early stopping, exact resume and DDP.

Every random choice is seeded from ``(seed, epoch)`` (data order) or ``(seed, step)``
(dropout), so the same seed and data give the same metrics, and a run resumed from its last
checkpoint takes the steps an uninterrupted run takes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


from domainfm.config import as_config, save_config, to_dict
from domainfm.corpus.io import check_output_path
from domainfm.errors import ConfigError
from domainfm.finetune.augment import augment_documents
from domainfm.finetune.canaries import canary_documents
from domainfm.finetune.config import TaskConfig
from domainfm.finetune.data import LabelMap, document_text, encode_documents
from domainfm.finetune.distill import mixed_loss, padded, teacher_scores
from domainfm.finetune.inputs import load_task_data, prepare_data, rename_spans
from domainfm.finetune.model import load_model, new_modules, wrap
from domainfm.finetune.objective import _Batches, _loss_fn
from domainfm.finetune.split import record_split
from domainfm.inference.pooling import check_mergeable
from domainfm.inference.predict import ADAPTER_DIR, TASK_FILE, collate, compute_metrics, document_outputs, score_features
from domainfm.manifest import write_json_atomic
from domainfm.training.checkpoints import (
    CHECKPOINTS,
    INPUTS_KEY,
    ITEM_MEAN,
    MICRO_BATCH_MEAN,
    OBJECTIVE_KEY,
    finished_run,
    handed_back,
    input_digests,
    latest_resumable,
    list_checkpoints,
    objective_record,
    output_action,
    prepare_output,
)

__all__ = ["FinetuneResult", "finetune", "list_checkpoints", "load_task_data", "new_modules", "prepare_data",
           "rename_spans"]

CONFIG_NAME = "finetune.yaml"
_RESUME_MAY_CHANGE = {"train.checkpoint", "train.eval_batch_size"}
# the rank of an eval score that is None (not measured) in checkpoint selection: the lowest a score
# can take, so a checkpoint measured at 0 is no worse and any measured gain beats it
_UNMEASURED_RANK = 0.0

Event = Callable[[dict[str, Any]], None]


@dataclass
class FinetuneResult:
    """What :func:`finetune` produced.

    Attributes:
        out_dir: the model folder (:func:`domainfm.finetune.load_task_model` loads it).
        metrics: the content of ``metrics.json`` (``eval`` holds the selected model's scores).
        manifest: path of ``manifest.json``.
        steps: optimizer steps taken (over all resumptions).
    """

    out_dir: Path
    metrics: dict[str, Any]
    manifest: Path
    steps: int
    resumed_from: int | None = None

    @property
    def score(self) -> float | None:
        return (self.metrics.get("eval") or {}).get(self.metrics.get("metric", ""))


# ---------------------------------------------------------------------------------------------
# Output folder


def _finetune_task_of(out: Path) -> str | None:
    """The task type of an earlier finetune output in ``out`` ('?' if unknown), None if none."""
    if (out / TASK_FILE).is_file():
        return json.loads((out / TASK_FILE).read_text(encoding="utf-8")).get("task", "?")
    if (out / CONFIG_NAME).is_file():
        import yaml

        return (yaml.safe_load((out / CONFIG_NAME).read_text(encoding="utf-8")) or {}).get("task", "?")
    return None


def _output_action(out: Path, resume: bool, overwrite: bool, task: str) -> str:
    action = output_action(out, resume, overwrite, stage="finetune", config_name=CONFIG_NAME,
                           earlier_run=lambda o: _finetune_task_of(o) is not None)
    earlier = _finetune_task_of(out) if action == "resume" else None
    if earlier is not None and earlier != task:
        raise ConfigError(f"{out} holds a {earlier!r} run; cannot resume it as a {task!r} task")
    return action


# ---------------------------------------------------------------------------------------------
# The stage


def finetune(config: TaskConfig, out_dir: str | os.PathLike, *, resume: bool = False, overwrite: bool = False,
             merge: bool = False, allow_identified_data: bool = False,
             on_event: Event | None = None) -> FinetuneResult:
    """Fine-tune a task model (LoRA by default) and save it with its metrics and manifest.

    Runs as one process or under ``accelerate launch`` (DDP): each process takes a slice of
    every batch; evaluation runs on every process (same numbers, same early-stopping decision);
    only the main process writes.

    Args:
        config: the resolved :class:`TaskConfig`.
        out_dir: output folder (refused when it exists, unless ``overwrite`` or ``resume``).
        resume: continue from the last checkpoint in ``out_dir`` (same config required).
        overwrite: replace an earlier finetune output in ``out_dir``.
        merge: LoRA only: also save the adapter merged into the base as a plain transformers
            model (``AutoModelFor...from_pretrained(out_dir)`` loads it).
        allow_identified_data: train on data that no ``domainfm deid`` manifest vouches for (the
            same privacy gate as ``pretrain``; recorded in the manifest); also settable as
            ``config.allow_identified_data``.
        on_event: receives progress events (``{"kind": "info" | "step" | "eval", ...}``).

    Raises:
        ConfigError: an input was not produced by ``domainfm deid`` and no override was given.

    Example:
        >>> cfg = load_config(TaskConfig, "tasks/demo-clinical-classify.yaml")  # doctest: +SKIP
        >>> finetune(cfg, "runs/demo").metrics["eval"]["macro_f1"]             # doctest: +SKIP
    """
    from domainfm.corpus.io import main_process_lock
    from domainfm.manifest import hashing_once

    config = as_config(config, TaskConfig)
    # a second run into the same folder is refused; the run hashes each input file once (its
    # privacy gate, resume check and manifest share the reading)
    with main_process_lock(out_dir), hashing_once():
        return _finetune(config, out_dir, resume=resume, overwrite=overwrite, merge=merge,
                         allow_identified_data=allow_identified_data, on_event=on_event)


def _finetune(config: TaskConfig, out_dir: str | os.PathLike, *, resume: bool, overwrite: bool, merge: bool,
              allow_identified_data: bool, on_event: Event | None) -> FinetuneResult:
    from accelerate import PartialState
    from transformers import EarlyStoppingCallback

    from domainfm.pretrain.data import privacy_gate
    from domainfm.training import SeedDropout, StageTrainer, peak_memory, precision_flags, training_arguments
    from domainfm.training.engine import StepTriggers, process_count

    cfg = dataclasses.replace(config, allow_identified_data=config.allow_identified_data or allow_identified_data)
    out = Path(out_dir)
    if merge and cfg.train.full_finetune:
        raise ConfigError("--merge applies to LoRA adapters; a full fine-tune is saved as a full model already")
    if merge:
        check_mergeable(cfg.model.pooling, cfg.task)
    check_output_path(out, inputs=[p for p in (cfg.data.train, cfg.data.eval, cfg.model.name) if p], folder=True)
    action = _output_action(out, resume, overwrite, cfg.task)
    processes = PartialState()  # accelerate's view of this process (DDP under accelerate launch)
    main = processes.is_main_process
    if action == "resume":
        finished = _finished_run(out, cfg, merge, on_event if main else None)
        if finished is not None:
            return finished

    def emit(kind: str, **payload):
        if main and on_event is not None:
            on_event({"kind": kind, **payload})

    t_start = time.perf_counter()
    with processes.main_process_first():  # the others then find the outputs (a step whose output exists is skipped)
        prepared = prepare_data(cfg, lambda e: emit(e["kind"], message=e["message"]))
    digests = input_digests([p for p in (cfg.data.train, cfg.data.eval) if p])  # recorded in every checkpoint
    gate = privacy_gate([p for p in (cfg.data.train, cfg.data.eval) if p], cfg.allow_identified_data)
    train_docs, eval_docs, label_map, data_stats = load_task_data(cfg)
    if not eval_docs:
        raise ConfigError("no evaluation documents: set data.eval or data.eval_fraction > 0")
    model, tokenizer, source = load_model(cfg, label_map)
    enc_kw = dict(task=cfg.task, tokenizer=tokenizer, max_length=cfg.model.max_length,
                  long_documents=cfg.long_documents, label_map=label_map, label_field=cfg.label_field,
                  text_field=cfg.data.text_field)
    augmented_docs, data_stats["augment"] = augment_documents(train_docs, cfg.augment, cfg.train.seed)
    if augmented_docs:
        emit("info", message=f"augment: {len(augmented_docs)} training copies with "
                             f"{data_stats['augment']['spans_replaced']} replaced spans")
    canary_docs, canary_records = canary_documents(cfg, label_map.labels)  # none unless canaries.enabled
    if canary_docs:  # how many only: the canaries themselves go to the manifest alone
        emit("info", message=f"{len(canary_records)} canaries added as {len(canary_docs)} training documents")
    train_enc = encode_documents(train_docs + augmented_docs + canary_docs, **enc_kw)
    eval_enc = encode_documents(eval_docs, **enc_kw)
    features = train_enc.features
    data_stats.update({"train": train_enc.stats, "eval": eval_enc.stats})
    emit("info", message=f"{cfg.task}: {len(train_docs)} train / {len(eval_docs)} eval documents "
                         f"({len(features)} / {len(eval_enc.features)} sequences of <= {cfg.model.max_length} "
                         f"tokens), {len(label_map.labels)} labels")

    model = wrap(model, cfg)
    n_params = sum(p.numel() for p in model.parameters())
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_out = len(label_map.tags)
    loss, weights = _loss_fn(cfg, features, n_out)
    accum, metric = cfg.train.grad_accum, cfg.metric
    # the processes' batches together make a pass: N processes, N times fewer steps a pass
    probe = _Batches([len(f.input_ids) for f in features], cfg.train.batch_size, cfg.train.seed, 0, process_count())
    # `epochs` counts passes over the data: micro-batch k is of pass k // per_epoch. Rounding the
    # steps of each pass up (5 batches, accumulation 4: 2 steps, 8 batches) trained 4.8 passes for
    # `epochs: 3`; the steps of all passes are rounded up once, and a pass ends inside a step.
    per_epoch = probe.per_epoch
    steps_per_epoch = per_epoch // accum if per_epoch % accum == 0 else round(per_epoch / accum, 3)
    total_steps = cfg.train.max_steps or max(1, math.ceil(cfg.train.epochs * per_epoch / accum))

    def passes(step: int) -> float:
        return round(step * accum / per_epoch, 3)

    def ends_a_pass(step: int) -> bool:
        return (step * accum) // per_epoch > ((step - 1) * accum) // per_epoch
    every = cfg.train.eval_every or total_steps
    args = training_arguments(
        out / CHECKPOINTS, max_steps=total_steps, grad_accum=accum, batch_size=cfg.train.batch_size,
        lr=cfg.train.lr, weight_decay=cfg.train.weight_decay,
        warmup_steps=int(round(cfg.train.warmup_ratio * total_steps)), max_grad_norm=cfg.train.max_grad_norm,
        seed=cfg.train.seed, precision=precision_flags(cfg.train.precision, fp16_ok=False),
        log_every=max(1, total_steps // 10), eval_strategy="steps", eval_steps=every, save_strategy="steps",
        save_steps=every, save_total_limit=1, load_best_model_at_end=True, metric_for_best_model=metric,
        greater_is_better=True, save_only_model=not cfg.train.checkpoint,
    )
    rank, world = args.process_index, args.world_size
    batches = _Batches([len(f.input_ids) for f in features], cfg.train.batch_size, cfg.train.seed, rank, world)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    teacher_logits = None
    if cfg.distill.enabled:  # before the output folder is touched: a mismatched teacher stops here
        emit("info", message=f"distill: the teacher scores {len(features)} training sequences")
        teacher_logits, data_stats["distill"] = teacher_scores(
            cfg.distill, cfg.task, label_map.labels, tokenizer, features, pad_id=pad_id,
            batch_size=cfg.train.eval_batch_size)
    eval_texts = [document_text(d, cfg.data.text_field) for d in eval_docs] if cfg.task == "ner" else None

    # A checkpoint to continue is found (and its config, data, objective and labels checked) before the
    # folder is touched; without one the run starts over under this config, and the saved config must say so.
    if teacher_logits is None:
        trained_under = objective_record(ITEM_MEAN, class_weights=weights)
    else:  # the teacher's outputs are half the loss: a teacher retrained in the same folder is another objective
        trained_under = objective_record(MICRO_BATCH_MEAN, class_weights=weights,
                                         teacher_manifest_sha256=data_stats["distill"]["teacher_manifest_sha256"])
    found = (latest_resumable(out, to_dict(cfg), _RESUME_MAY_CHANGE, digests, trained_under)
             if action == "resume" else None)
    if found:
        before = found[2].get("labels")  # (checkpoints written before it was recorded: not checked)
        if before is not None and before != list(label_map.labels):
            differ = ", ".join(sorted(set(before) ^ set(label_map.labels))[:5]) or "the same, in another order"
            raise ConfigError(
                f"cannot resume {out}: its checkpoint was trained on {len(before)} labels and the data now gives "
                f"{len(label_map.labels)} (differing: {differ}); the model's output layer cannot take them: "
                "fine-tune again with --overwrite")
    prepare_output(out, action, main)  # every check passed: only now touch the output folder
    if main and not found:
        save_config(cfg, out / CONFIG_NAME)

    def make_batch(k: int) -> dict:
        idx = batches.get(k)
        batch = collate([features[i] for i in idx], pad_id, cfg.task, with_labels=True)
        if teacher_logits is not None:
            batch["teacher_logits"] = padded([teacher_logits[i] for i in idx], batch["input_ids"].shape[1])
        return batch

    def loss_fn(m, batch) -> Any:
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "teacher_logits")}
        logits = m(**inputs).logits
        if teacher_logits is None:
            return loss.total(logits, batch["labels"])
        # distillation mixes two means of different items (targets, positions): kept per micro-batch
        gold = loss(logits, batch["labels"])
        return mixed_loss(gold, logits, batch["teacher_logits"], batch["labels"], cfg.task, cfg.distill)

    def run_eval() -> dict[str, Any]:
        logits = score_features(trainer.model, eval_enc.features, pad_id=pad_id, batch_size=cfg.train.eval_batch_size)
        outputs = document_outputs(cfg.task, label_map, eval_docs, eval_enc.features, logits,
                                   cfg.long_documents.aggregate, cfg.model.ner_decoding, eval_texts)
        return compute_metrics(cfg.task, label_map, eval_docs, outputs, cfg.label_field)

    history: list[dict[str, Any]] = []

    def during() -> dict[str, Any]:
        scores, step = run_eval(), trainer.state.global_step
        value = None if scores[metric] is None else float(scores[metric])
        history.append({"step": step, "epoch": passes(step),
                        "train_loss": trainer.progress.last_loss, metric: value})
        measured = [h[metric] for h in history if h[metric] is not None]
        emit("eval", step=step, metric=metric, value=value, best=max(measured, default=None))
        # an unmeasured score (entity precision while the model predicts no entity yet) is None in
        # the history; checkpoint selection and early stopping need a number, and it ranks last
        return {**scores, metric: _UNMEASURED_RANK if value is None else value}

    callbacks = [SeedDropout(cfg.train.seed),
                 StepTriggers(evaluate=lambda s, last: ends_a_pass(s), save=lambda s, last: ends_a_pass(s))]
    if cfg.train.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(cfg.train.early_stopping_patience))
    trainer = StageTrainer(model=model, args=args, make_batch=make_batch, micro_batches=total_steps * accum,
                           loss_fn=loss_fn, evaluator=during, on_event=on_event, callbacks=callbacks,
                           count_items=(lambda b: loss.items(b["labels"])) if teacher_logits is None else None,
                           checkpoint_state=lambda: {"config": to_dict(cfg), INPUTS_KEY: list(digests.values()),
                                                     OBJECTIVE_KEY: trained_under, "history": history,
                                                     "labels": list(label_map.labels)})

    resumed_from, checkpoint = None, None
    if found:
        resumed_from, checkpoint, saved = found
        history[:] = saved["history"]
        emit("info", message=f"resuming from {checkpoint.name} (step {resumed_from} of {total_steps})")
    elif action == "resume":
        emit("info", message=f"no checkpoint in {out}: starting from the beginning")

    t_loop = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    train_seconds = time.perf_counter() - t_loop
    step, progress = trainer.state.global_step, trainer.progress
    stopped_early = step < total_steps
    if stopped_early:
        emit("info", message=f"early stopping at step {step}: no {metric} gain in "
                             f"{cfg.train.early_stopping_patience} evaluations")
    best_step = trainer.state.best_global_step
    final = run_eval()  # the selected (best) model, loaded back by Trainer
    metrics = {
        "task": cfg.task,
        "metric": metric,
        "eval": final,
        "best_step": best_step,
        "history": history,
        "method": "full" if cfg.train.full_finetune else "lora",
        "base_model": cfg.model.name,
        "params": {"total": n_params, "trainable": n_trainable,
                   "trainable_pct": round(100.0 * n_trainable / max(n_params, 1), 3)},
        "train": {"steps": step, "planned_steps": total_steps, "resumed_from_step": resumed_from,
                  "stopped_early": stopped_early, "steps_per_epoch": steps_per_epoch,
                  "epochs": passes(step), "sequences_this_run": progress.sequences * world,
                  "train_seconds": round(train_seconds, 2),
                  "sequences_per_s": round(progress.sequences * world / max(train_seconds, 1e-9), 2),
                  "last_step_loss": progress.last_loss, "class_weights": weights, "processes": world,
                  "precision": trainer.accelerator.mixed_precision},
        "data": data_stats,
        "labels": label_map.labels,
        **peak_memory(),
    }
    manifest = out / "manifest.json"
    if main:
        if not cfg.train.checkpoint:  # kept only for best-model selection
            shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
        _save_model(trainer.model, tokenizer, cfg, label_map, source, out, merge)
        metrics["total_seconds"] = round(time.perf_counter() - t_start, 2)
        write_json_atomic(out / "metrics.json", metrics)
        record_split(out, train_docs, eval_docs, data_stats, seed=cfg.train.seed)  # the audit reads it instead of re-splitting
        from importlib import metadata

        from domainfm.manifest import write_manifest
        from domainfm.training.artifacts import compute_record, split_outputs

        inputs = [p for p in (cfg.data.train, cfg.data.eval) if p]
        # the model's files apart from the run's measurements (times, sequences/s): the manifests
        # of two runs of this config on this data then differ in their run section alone
        outputs, measured = split_outputs(p for p in sorted(out.rglob("*")) if p.is_file()
                                          and CHECKPOINTS not in p.parts and p.name != "manifest.json")
        manifest = write_manifest(
            out, stage="finetune", config=cfg, inputs=inputs, outputs=outputs,
            run={"seconds": metrics["total_seconds"], "outputs": measured},
            counts={"train_documents": len(train_docs), "eval_documents": len(eval_docs),
                    "train_sequences": len(features), "eval_sequences": len(eval_enc.features)},
            extra={"seed": cfg.train.seed, "task": cfg.task, "method": metrics["method"],
                   "base_model": _base_model_record(cfg.model.name, source), "merged": merge,
                   "prepared": prepared, "resumed_from_step": resumed_from, "steps": step,
                   "allow_identified_data": cfg.allow_identified_data, "privacy_gate": gate,
                   "compute": compute_record(),
                   "accelerate_version": metadata.version("accelerate"), "peft_version": metadata.version("peft"),
                   "transformers_version": metadata.version("transformers"),
                   **({"canaries": canary_records} if canary_records else {}),
                   **({"distill": data_stats["distill"]} if "distill" in data_stats else {})},
        )
    trainer.accelerator.wait_for_everyone()
    return FinetuneResult(out, metrics, manifest, step, resumed_from)


def _finished_run(out: Path, cfg: TaskConfig, merge: bool, on_event: Event | None) -> FinetuneResult | None:
    """The run in ``out`` when it finished under this config and data and left no checkpoint to
    continue (:func:`~domainfm.training.checkpoints.finished_run`): handed back, not trained again."""
    found = finished_run(out, to_dict(cfg), _RESUME_MAY_CHANGE, stage="finetune",
                         inputs=[p for p in (cfg.data.train, cfg.data.eval) if p])
    if found is None:
        return None
    metrics, manifest, steps = found
    if merge and not manifest.get("merged"):
        raise ConfigError(f"cannot resume {out} with --merge: it holds a finished run saved without a merged model; "
                          "pass --overwrite to train again with --merge")
    if on_event is not None:
        on_event({"kind": "info", "message": handed_back(out, steps)})
    return FinetuneResult(out, metrics, out / "manifest.json", steps)


def _base_model_record(name: str, source: str) -> dict[str, Any]:
    """The base model as given, as resolved and, for a folder, its identity (absolute path and the
    fingerprint of its manifest): a LoRA adapter is loaded onto that model and no other, and the
    cards find its lineage from any working folder (:func:`domainfm.manifest.model_identity`)."""
    from domainfm.manifest import model_identity

    record: dict[str, Any] = {"name": name, "resolved": source}
    if Path(source).is_dir():
        record["identity"] = model_identity(source)
    return record


def _pooling(cfg: TaskConfig) -> str | None:
    return None if cfg.task == "ner" else cfg.model.pooling


def _save_model(model, tokenizer, cfg: TaskConfig, label_map: LabelMap, source: str, out: Path, merge: bool) -> None:
    from domainfm import __version__

    for stale in ("config.json", "model.safetensors"):
        (out / stale).unlink(missing_ok=True)
    shutil.rmtree(out / ADAPTER_DIR, ignore_errors=True)
    from domainfm.training.artifacts import save_adapter

    model = model.cpu()
    if cfg.train.full_finetune:
        model.save_pretrained(out)
    else:
        save_adapter(model, out / ADAPTER_DIR)
        if merge:
            merged = model.merge_and_unload()
            merged.save_pretrained(out)
    tokenizer.save_pretrained(out)
    info = {
        "task": cfg.task, "labels": label_map.labels, "id2label": {str(k): v for k, v in label_map.id2label.items()},
        "label2id": label_map.label2id, "method": "full" if cfg.train.full_finetune else "lora",
        "merged": merge, "base_model": _base_model_record(cfg.model.name, source),
        # a LoRA adapter of a shallow model must be loaded onto a base cut to the same depth
        "max_length": cfg.model.max_length, "pooling": _pooling(cfg), "num_layers": cfg.model.num_layers,
        "ner_decoding": cfg.model.ner_decoding if cfg.task == "ner" else None, "long_documents": dataclasses.asdict(cfg.long_documents),
        "text_field": cfg.data.text_field, "label_field": cfg.label_field, "domainfm_version": __version__,
    }
    write_json_atomic(out / TASK_FILE, info)
