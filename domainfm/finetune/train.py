"""The fine-tuning loop: LoRA (or full) training of a classification / multi-label / NER head,
evaluation at document level, early stopping, exact resume, ``accelerate`` for DDP.

Every random choice is seeded from ``(seed, epoch)`` (data order) or ``(seed, step)``
(dropout), so the same seed and data give the same metrics, and a run resumed from its last
checkpoint takes the steps an uninterrupted run takes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from domainfm.config import config_differences, save_config, to_dict
from domainfm.manifest import write_json_atomic
from domainfm.models import quiet_hf_loading, quiet_peft_wrap
from domainfm.seeding import mix_seed
from domainfm.errors import ConfigError
from domainfm.finetune.canaries import canary_documents
from domainfm.finetune.config import TaskConfig
from domainfm.finetune.split import record_split
from domainfm.finetune.data import (
    IGNORE_INDEX,
    LabelMap,
    build_label_map,
    check_known_labels,
    document_text,
    encode_documents,
    load_documents,
    split_documents,
)
from domainfm.inference.pooling import apply_pooling, check_mergeable
from domainfm.inference.predict import (
    ADAPTER_DIR,
    TASK_FILE,
    auto_model_class,
    collate,
    compute_metrics,
    document_outputs,
    keep_first_layers,
    score_features,
    task_model_config,
)

CONFIG_NAME = "finetune.yaml"
CHECKPOINTS = "checkpoints"
_RESUME_MAY_CHANGE = {"train.checkpoint", "train.eval_batch_size"}

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
# Output folder and checkpoints


def _finetune_task_of(out: Path) -> str | None:
    """The task type of an earlier finetune output in ``out`` ('?' if unknown), None if none."""
    if (out / TASK_FILE).is_file():
        return json.loads((out / TASK_FILE).read_text(encoding="utf-8")).get("task", "?")
    if (out / CONFIG_NAME).is_file():
        import yaml

        return (yaml.safe_load((out / CONFIG_NAME).read_text(encoding="utf-8")) or {}).get("task", "?")
    return None


def _output_action(out: Path, resume: bool, overwrite: bool, task: str) -> str:
    if resume and overwrite:
        raise ConfigError("--resume continues the run in the output folder and --overwrite deletes it: give one")
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return "create"
    if not out.is_dir():
        raise ConfigError(f"output {out} exists and is not a folder")
    earlier = _finetune_task_of(out)
    if resume or overwrite:
        if earlier is None:
            raise ConfigError(f"{out} is not the output of 'domainfm finetune' (no {CONFIG_NAME}); refusing to "
                              f"{'resume in' if resume else 'delete'} it")
        if resume and earlier != task:
            raise ConfigError(f"{out} holds a {earlier!r} run; cannot resume it as a {task!r} task")
        return "resume" if resume else "overwrite"
    raise ConfigError(f"output folder {out} already exists: pass --overwrite to replace it or --resume to continue")


def list_checkpoints(out: Path) -> list[tuple[int, Path]]:
    found = []
    folder = Path(out) / CHECKPOINTS
    if folder.is_dir():
        for path in folder.iterdir():
            m = re.fullmatch(r"checkpoint-(\d+)", path.name)
            if m and (path / "state.pt").is_file() and (path / "trainer_state.json").is_file():
                found.append((int(m.group(1)), path))
    return sorted(found)


def _save_checkpoint(out: Path, step: int, payload: dict, state: dict) -> None:
    """Write ``checkpoint-<step>.tmp`` fully, rename it into place, keep only the newest."""
    import torch

    folder = out / CHECKPOINTS
    final, tmp = folder / f"checkpoint-{step}", folder / f"checkpoint-{step}.tmp"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    torch.save(payload, tmp / "state.pt")
    (tmp / "trainer_state.json").write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for _, old in list_checkpoints(out)[:-1]:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Data and model


def prepare_data(cfg: TaskConfig, on_event: Event | None = None) -> dict[str, Any]:
    """Run the task's ``data.prepare`` steps whose outputs do not exist yet."""
    from domainfm.finetune.prepare import run_prepare

    done = {}
    for step in cfg.data.prepare:
        counts = run_prepare(step)
        if counts is not None:
            done[step.out] = counts
            if on_event:
                on_event({"kind": "info", "message": f"prepared {step.out}: read {counts['read']} = written "
                          f"{counts['written']} + rejected {counts['rejected']}"})
    return done


def rename_spans(docs: list, mapping: dict[str, str | None] | None) -> list:
    """``labels.map`` applied to the documents' spans, in place (null drops a span)."""
    if mapping:
        for doc in docs:
            doc.spans = [dataclasses.replace(s, label=mapping.get(s.label, s.label)) for s in doc.spans
                         if mapping.get(s.label, s.label) is not None]
    return docs


def load_task_data(cfg: TaskConfig):
    """Training and evaluation documents, the label map and data statistics."""
    d = cfg.data
    docs = rename_spans(load_documents(d.train, d.max_train_documents), cfg.labels.map)
    if not docs:
        raise ConfigError(f"{d.train}: no training documents")
    for doc in docs:
        document_text(doc, d.text_field)
    if d.eval:
        train_docs = docs
        eval_docs = rename_spans(load_documents(d.eval, d.max_eval_documents), cfg.labels.map)
        split = {"split_key": None, "eval_source": d.eval}
    else:
        train_docs, eval_docs, split = split_documents(
            docs, eval_fraction=d.eval_fraction, split_key=d.split_key, seed=cfg.train.seed, task=cfg.task,
            label_field=cfg.label_field)
        if d.max_eval_documents:
            eval_docs = eval_docs[: d.max_eval_documents]
        split["eval_source"] = f"{d.eval_fraction:g} of {d.train}"
    label_map, counts = build_label_map(cfg.task, train_docs, cfg.label_field, cfg.labels.names,
                                        cfg.labels.min_examples)
    for doc in eval_docs:
        document_text(doc, d.text_field)
    check_known_labels(eval_docs, label_map, cfg.label_field)
    stats = {"train_documents": len(train_docs), "eval_documents": len(eval_docs), "label_counts": counts, **split}
    return train_docs, eval_docs, label_map, stats


def _load_model(cfg: TaskConfig, label_map: LabelMap):
    import torch
    from transformers import AutoTokenizer

    from domainfm.models import resolve_model

    source = resolve_model(cfg.model.name)
    tok_source = resolve_model(cfg.model.tokenizer) if cfg.model.tokenizer else source
    # quiet: the load report lists the new head as newly initialised
    with quiet_hf_loading(f"model {cfg.model.name!r} ({source})"):
        tokenizer = AutoTokenizer.from_pretrained(tok_source)
        config = task_model_config(source, cfg.task, label_map)
        if cfg.model.num_layers:
            keep_first_layers(config, cfg.model.num_layers, cfg.model.name)
        torch.manual_seed(cfg.train.seed)  # the new head's initialisation
        model, loading = auto_model_class(cfg.task).from_pretrained(source, config=config,
                                                                    output_loading_info=True)
        # Modules the checkpoint lacks are freshly initialised (a DAPT masked-LM output has no
        # pooler). Under LoRA they must be trained and saved with the adapter, or a reloaded
        # model would get different random weights there and different predictions.
        fresh = new_modules(loading.get("missing_keys", ()), getattr(model, "base_model_prefix", ""))
        if cfg.task != "ner" and cfg.model.pooling == "mean":
            apply_pooling(model, "mean")
            fresh = [m for m in fresh if m != "pooler"]  # replaced by a parameter-free mean
        model._domainfm_new_modules = fresh
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"tokenizer of {cfg.model.tokenizer or cfg.model.name!r} is not a fast tokenizer; "
                          "character offsets are needed")
    limit = getattr(model.config, "max_position_embeddings", None)
    if isinstance(limit, int) and cfg.model.max_length > limit:
        raise ConfigError(f"model.max_length ({cfg.model.max_length}) exceeds the model's {limit} positions")
    if len(tokenizer) > model.config.vocab_size:
        raise ConfigError(f"tokenizer ({len(tokenizer)} tokens) does not match the model (vocabulary "
                          f"{model.config.vocab_size}); use the tokenizer saved with the model")
    return model, tokenizer, source


_HEAD_MODULES = ("classifier", "score")  # what peft saves by default for SEQ_CLS / TOKEN_CLS


def new_modules(missing_keys, prefix: str) -> list[str]:
    """Top-level module names of the weights a checkpoint did not provide
    (``bert.pooler.dense.weight`` -> ``pooler``)."""
    names = set()
    for key in missing_keys:
        parts = key.split(".")
        if prefix and parts[0] == prefix:
            parts = parts[1:]
        if len(parts) > 1:
            names.add(parts[0])
    return sorted(names)


def _wrap(model, cfg: TaskConfig):
    if cfg.train.full_finetune:
        return model
    from peft import get_peft_model

    peft_config = cfg.lora.to_peft("TOKEN_CLS" if cfg.task == "ner" else "SEQ_CLS")
    extra = [m for m in getattr(model, "_domainfm_new_modules", ()) if m not in _HEAD_MODULES]
    if extra:
        peft_config.modules_to_save = sorted(set(peft_config.modules_to_save or _HEAD_MODULES) | set(extra))
    try:
        with quiet_peft_wrap():
            return get_peft_model(model, peft_config)
    except ValueError as exc:
        raise ConfigError(f"lora: {str(exc).splitlines()[0][:300]} (set lora.target_modules)") from None


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

    def loss(logits, labels):
        w = weights.to(logits.device) if weights is not None else None
        if cfg.task == "multilabel":
            return torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), labels, pos_weight=w)
        return torch.nn.functional.cross_entropy(logits.float().reshape(-1, n_out), labels.reshape(-1), weight=w,
                                                 ignore_index=IGNORE_INDEX)

    return loss, (weights.tolist() if weights is not None else None)


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


def _optimizer(model, cfg: TaskConfig, total_steps: int):
    import torch

    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.train.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.train.lr)
    warmup = int(round(cfg.train.warmup_ratio * total_steps))

    def schedule(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def _accelerator(precision: str):
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    cuda = torch.cuda.is_available()
    mixed = {"fp32": "no", "bf16": "bf16"}.get(precision, "bf16" if cuda and torch.cuda.is_bf16_supported() else "no")
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        AcceleratorState._reset_state()  # several in-process runs (tests, notebooks)
    return Accelerator(mixed_precision=mixed)


def _peak_memory() -> dict[str, float]:
    import resource

    import torch

    peak = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if torch.cuda.is_available():
        peak["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return peak


# ---------------------------------------------------------------------------------------------
# The stage


def finetune(config: TaskConfig, out_dir: str | os.PathLike, *, resume: bool = False, overwrite: bool = False,
             merge: bool = False, allow_identified_data: bool = False,
             on_event: Event | None = None) -> FinetuneResult:
    """Fine-tune a task model (LoRA by default) and save it with its metrics and manifest.

    Runs as one process or under ``accelerate launch`` (DDP): each process takes a slice of
    every batch; evaluation runs on every process (same numbers, same early-stopping decision).

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

    with main_process_lock(out_dir):  # a second run into the same folder is refused
        return _finetune(config, out_dir, resume=resume, overwrite=overwrite, merge=merge,
                         allow_identified_data=allow_identified_data, on_event=on_event)


def _finetune(config: TaskConfig, out_dir: str | os.PathLike, *, resume: bool, overwrite: bool, merge: bool,
              allow_identified_data: bool, on_event: Event | None) -> FinetuneResult:
    import torch

    from domainfm.pretrain.data import privacy_gate

    cfg = dataclasses.replace(config, allow_identified_data=config.allow_identified_data or allow_identified_data)
    out = Path(out_dir)
    if merge and cfg.train.full_finetune:
        raise ConfigError("--merge applies to LoRA adapters; a full fine-tune is saved as a full model already")
    if merge:
        check_mergeable(cfg.model.pooling, cfg.task)
    action = _output_action(out, resume, overwrite, cfg.task)
    accelerator = _accelerator(cfg.train.precision)
    main, rank, world = accelerator.is_main_process, accelerator.process_index, accelerator.num_processes

    def emit(kind: str, **payload):
        if main and on_event is not None:
            on_event({"kind": kind, **payload})

    t_start = time.perf_counter()
    prepared: dict[str, Any] = {}
    if main:
        prepared = prepare_data(cfg, lambda e: emit(e["kind"], message=e["message"]))
    accelerator.wait_for_everyone()
    gate = privacy_gate([p for p in (cfg.data.train, cfg.data.eval) if p], cfg.allow_identified_data)
    train_docs, eval_docs, label_map, data_stats = load_task_data(cfg)
    if not eval_docs:
        raise ConfigError("no evaluation documents: set data.eval or data.eval_fraction > 0")
    model, tokenizer, source = _load_model(cfg, label_map)
    enc_kw = dict(task=cfg.task, tokenizer=tokenizer, max_length=cfg.model.max_length,
                  long_documents=cfg.long_documents, label_map=label_map, label_field=cfg.label_field,
                  text_field=cfg.data.text_field)
    canary_docs, canary_records = canary_documents(cfg, label_map.labels)  # none unless canaries.enabled
    if canary_docs:  # how many only: the canaries themselves go to the manifest alone
        emit("info", message=f"{len(canary_records)} canaries added as {len(canary_docs)} training documents")
    train_enc = encode_documents(train_docs + canary_docs, **enc_kw)
    eval_enc = encode_documents(eval_docs, **enc_kw)
    features = train_enc.features
    data_stats.update({"train": train_enc.stats, "eval": eval_enc.stats})
    emit("info", message=f"{cfg.task}: {len(train_docs)} train / {len(eval_docs)} eval documents "
                         f"({len(features)} / {len(eval_enc.features)} sequences of <= {cfg.model.max_length} "
                         f"tokens), {len(label_map.labels)} labels")

    if main:
        if action == "overwrite":
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        if action != "resume" or not (out / CONFIG_NAME).is_file():
            save_config(cfg, out / CONFIG_NAME)
    accelerator.wait_for_everyone()

    model = _wrap(model, cfg)
    n_params = sum(p.numel() for p in model.parameters())
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_out = len(label_map.tags)
    loss_fn, weights = _loss_fn(cfg, features, n_out)
    batches = _Batches([len(f.input_ids) for f in features], cfg.train.batch_size, cfg.train.seed, rank, world)
    accum = cfg.train.grad_accum
    steps_per_epoch = max(1, math.ceil(batches.per_epoch / accum))
    total_steps = cfg.train.max_steps or max(1, math.ceil(cfg.train.epochs * steps_per_epoch))
    optimizer, scheduler = _optimizer(model, cfg, total_steps)
    module, optimizer = accelerator.prepare(model, optimizer)
    raw = accelerator.unwrap_model(module)
    trainable = {n: p for n, p in raw.named_parameters() if p.requires_grad}
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    metric = cfg.metric

    eval_texts = [document_text(d, cfg.data.text_field) for d in eval_docs] if cfg.task == "ner" else None

    def run_eval() -> dict[str, Any]:
        logits = score_features(raw, eval_enc.features, pad_id=pad_id, batch_size=cfg.train.eval_batch_size)
        outputs = document_outputs(cfg.task, label_map, eval_docs, eval_enc.features, logits,
                                   cfg.long_documents.aggregate, cfg.model.ner_decoding, eval_texts)
        return compute_metrics(cfg.task, label_map, eval_docs, outputs, cfg.label_field)

    start_step, history, best, best_params, bad_evals, resumed_from = 0, [], None, None, 0, None
    if action == "resume":
        found = list_checkpoints(out)
        if found:
            resumed_from, path = found[-1]
            state = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
            diffs = config_differences(state["config"], to_dict(cfg), may_change=_RESUME_MAY_CHANGE)
            if diffs:
                raise ConfigError(f"cannot resume {out} with a different config ({'; '.join(diffs[:5])})")
            payload = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
            with torch.no_grad():
                for name, value in payload["params"].items():
                    trainable[name].copy_(value)
            optimizer.load_state_dict(payload["optimizer"])
            scheduler.load_state_dict(payload["scheduler"])
            best_params = payload.get("best_params")
            start_step, history, best, bad_evals = state["step"], state["history"], state["best"], state["bad_evals"]
            emit("info", message=f"resuming from {path.name} (step {start_step} of {total_steps})")
        else:
            emit("info", message=f"no checkpoint in {out}: starting from the beginning")

    module.train()
    t_loop = time.perf_counter()
    seqs_this_run, stopped_early, last_loss = 0, False, None
    params = [p for p in module.parameters() if p.requires_grad]
    emit("step", step=start_step, total_steps=total_steps, loss=None)
    step = start_step
    while step < total_steps and not stopped_early:
        torch.manual_seed(mix_seed(cfg.train.seed, step, rank, 1))  # dropout
        step_loss = 0.0
        for a in range(accum):
            idx = batches.get(step * accum + a)
            batch = collate([features[i] for i in idx], pad_id, cfg.task, with_labels=True)
            labels = batch.pop("labels").to(accelerator.device)
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            with accelerator.autocast():
                logits = module(**batch).logits
            loss = loss_fn(logits, labels)
            accelerator.backward(loss / accum)
            step_loss += float(loss.detach()) / accum
            seqs_this_run += len(idx)
        if cfg.train.max_grad_norm:
            accelerator.clip_grad_norm_(params, cfg.train.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        last_loss = step_loss
        emit("step", step=step, total_steps=total_steps, loss=step_loss)
        epoch_end = step % steps_per_epoch == 0
        if epoch_end or step == total_steps or (cfg.train.eval_every and step % cfg.train.eval_every == 0):
            scores = run_eval()
            value = float(scores[metric])
            history.append({"step": step, "epoch": round(step / steps_per_epoch, 3), "train_loss": step_loss,
                            metric: value})
            if best is None or value > best["value"]:
                best = {"step": step, "value": value}
                best_params = {n: p.detach().cpu().clone() for n, p in trainable.items()}
                bad_evals = 0
            else:
                bad_evals += 1
            emit("eval", step=step, metric=metric, value=value, best=best["value"])
            patience = cfg.train.early_stopping_patience
            if patience and bad_evals >= patience and step < total_steps:
                stopped_early = True
                emit("info", message=f"early stopping at step {step}: no {metric} gain in {patience} evaluations")
            if cfg.train.checkpoint and main:
                payload = {"params": {n: p.detach().cpu() for n, p in trainable.items()}, "best_params": best_params,
                           "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
                state = {"step": step, "history": history, "best": best, "bad_evals": bad_evals,
                         "config": to_dict(cfg)}
                _save_checkpoint(out, step, payload, state)
            accelerator.wait_for_everyone()
    train_seconds = time.perf_counter() - t_loop

    if best_params is not None:
        with torch.no_grad():
            for name, value in best_params.items():
                trainable[name].copy_(value)
    final = run_eval()
    metrics = {
        "task": cfg.task,
        "metric": metric,
        "eval": final,
        "best_step": best["step"] if best else None,
        "history": history,
        "method": "full" if cfg.train.full_finetune else "lora",
        "base_model": cfg.model.name,
        "params": {"total": n_params, "trainable": n_trainable,
                   "trainable_pct": round(100.0 * n_trainable / max(n_params, 1), 3)},
        "train": {"steps": step, "planned_steps": total_steps, "resumed_from_step": resumed_from,
                  "stopped_early": stopped_early, "steps_per_epoch": steps_per_epoch,
                  "epochs": round(step / steps_per_epoch, 3), "sequences_this_run": seqs_this_run,
                  "train_seconds": round(train_seconds, 2),
                  "sequences_per_s": round(seqs_this_run / max(train_seconds, 1e-9), 2),
                  "last_step_loss": last_loss, "class_weights": weights, "processes": world,
                  "precision": accelerator.mixed_precision},
        "data": data_stats,
        "labels": label_map.labels,
        **_peak_memory(),
    }
    manifest = out / "manifest.json"
    if main:
        _save_model(raw, tokenizer, cfg, label_map, source, out, merge)
        metrics["total_seconds"] = round(time.perf_counter() - t_start, 2)
        write_json_atomic(out / "metrics.json", metrics)
        record_split(out, train_docs, eval_docs, data_stats, seed=cfg.train.seed)  # the audit reads it instead of re-splitting
        from importlib import metadata

        from domainfm.manifest import write_manifest

        inputs = [p for p in (cfg.data.train, cfg.data.eval) if p]
        outputs = [p for p in sorted(out.rglob("*")) if p.is_file() and CHECKPOINTS not in p.parts
                   and p.name != "manifest.json"]
        manifest = write_manifest(
            out, stage="finetune", config=cfg, inputs=inputs, outputs=outputs,
            counts={"train_documents": len(train_docs), "eval_documents": len(eval_docs),
                    "train_sequences": len(features), "eval_sequences": len(eval_enc.features)},
            extra={"seed": cfg.train.seed, "task": cfg.task, "method": metrics["method"],
                   "base_model": {"name": cfg.model.name, "resolved": source}, "merged": merge,
                   "prepared": prepared, "resumed_from_step": resumed_from, "steps": step,
                   "allow_identified_data": cfg.allow_identified_data, "privacy_gate": gate,
                   "accelerate_version": metadata.version("accelerate"), "peft_version": metadata.version("peft"),
                   **({"canaries": canary_records} if canary_records else {})},
        )
    accelerator.wait_for_everyone()
    return FinetuneResult(out, metrics, manifest, step, resumed_from)


def _pooling(cfg: TaskConfig) -> str | None:
    return None if cfg.task == "ner" else cfg.model.pooling


def _save_model(model, tokenizer, cfg: TaskConfig, label_map: LabelMap, source: str, out: Path, merge: bool) -> None:
    from domainfm import __version__

    for stale in ("config.json", "model.safetensors"):
        (out / stale).unlink(missing_ok=True)
    shutil.rmtree(out / ADAPTER_DIR, ignore_errors=True)
    model = model.cpu()
    if cfg.train.full_finetune:
        model.save_pretrained(out)
    else:
        model.save_pretrained(out / ADAPTER_DIR)
        if merge:
            merged = model.merge_and_unload()
            merged.save_pretrained(out)
    tokenizer.save_pretrained(out)
    info = {
        "task": cfg.task, "labels": label_map.labels, "id2label": {str(k): v for k, v in label_map.id2label.items()},
        "label2id": label_map.label2id, "method": "full" if cfg.train.full_finetune else "lora",
        "merged": merge, "base_model": {"name": cfg.model.name, "resolved": source},
        "max_length": cfg.model.max_length, "pooling": _pooling(cfg),
        "ner_decoding": cfg.model.ner_decoding if cfg.task == "ner" else None, "long_documents": dataclasses.asdict(cfg.long_documents),
        "text_field": cfg.data.text_field, "label_field": cfg.label_field, "domainfm_version": __version__,
    }
    write_json_atomic(out / TASK_FILE, info)


# ---------------------------------------------------------------------------------------------
# Console rendering and the demo step


def console_reporter(console):
    """An ``on_event`` callback printing progress lines (steps every 10%, evaluations, info)."""
    state = {"last": -1}

    def on_event(event: dict[str, Any]) -> None:
        kind = event["kind"]
        if kind == "info":
            console.print(event["message"])
        elif kind == "eval":
            console.print(f"eval at step {event['step']}: {event['metric']} {event['value']:.4f} "
                          f"(best {event['best']:.4f})")
        elif kind == "step" and event.get("loss") is not None:
            tenth = int(10 * event["step"] / max(event["total_steps"], 1))
            if tenth != state["last"]:
                state["last"] = tenth
                console.print(f"step {event['step']}/{event['total_steps']}: loss {event['loss']:.4f}")

    return on_event


def demo_config(corpus: str | os.PathLike, **overrides: Any) -> TaskConfig:
    """The demo task, ``tasks/demo-clinical-classify.yaml`` as shipped in the package: a LoRA
    classifier of the note type (``meta.note_type``) of the sample clinical notes on the embedded
    MiniLM, 2 epochs, about 2 minutes on 2 CPU cores. ``corpus`` is the notes JSONL (e.g. the
    demo's de-identified output) and replaces the file's ``data.train``."""
    from domainfm.config import apply_overrides, from_dict
    from domainfm.resources import read_packaged_task

    data = read_packaged_task("demo-clinical-classify.yaml")
    data.pop("allow_identified_data", None)  # the file trains on the synthetic corpus; the demo on its deid output
    data["data"]["train"] = str(corpus)
    return from_dict(TaskConfig, apply_overrides(data, overrides))


def finetune_demo(corpus: str | os.PathLike, out_dir: str | os.PathLike, *, console=None,
                  **overrides: Any) -> FinetuneResult:
    """Fine-tune the demo's LoRA note-type classifier on the (de-identified) sample clinical notes.

    Args:
        corpus: the clinical notes JSONL (``corpora/clinical/notes.jsonl`` or its deid output).
        out_dir: model folder (replaced when it holds an earlier run).
        console: a rich console for progress lines (default: silent).
        overrides: dotted config overrides, e.g. ``**{"train.epochs": 1}``.

    Example:
        >>> result = finetune_demo("demo-output/clinical/deid/corpus.jsonl", "demo-output/classifier")  # doctest: +SKIP
        >>> result.metrics["eval"]["macro_f1"]  # doctest: +SKIP
    """
    cfg = demo_config(corpus, **overrides)
    out = Path(out_dir)
    result = finetune(cfg, out, overwrite=out.exists() and any(out.iterdir()) if out.is_dir() else False,
                      on_event=console_reporter(console) if console is not None else None)
    if console is not None:
        ev = result.metrics["eval"]
        console.print(f"classifier: macro-F1 {ev['macro_f1']:.3f}, accuracy {ev['accuracy']:.3f} on "
                      f"{ev['n']} held-out notes ({result.metrics['train']['train_seconds']:.0f} s training) "
                      f"-> {result.out_dir}")
    return result
