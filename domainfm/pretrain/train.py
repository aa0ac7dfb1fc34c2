"""The pretraining stage on the shared training engine (:mod:`domainfm.training`).

What makes DAPT fast here is the objective, not the loop: the masked-LM head sees only the
hidden states of the masked positions (about 15% of them), which removes most of the
vocabulary-sized matrix product and its softmax, and packed blocks carry no padding. Every
random choice (data order, masks, dropout) is seeded from ``(seed, step)``, so a run killed at
any point and resumed from its last checkpoint takes exactly the steps an uninterrupted run takes.

Output folder::

    <out>/config.json, model.safetensors, tokenizer files   the adapted model (save_pretrained)
    <out>/pretrain.yaml      the resolved config
    <out>/metrics.json       eval loss/perplexity before and after, throughput, data counts
    <out>/manifest.json      input hashes, versions, seed, privacy-gate decision, canaries; its
                             ``run`` section: what two identical runs do not share (times)
    <out>/train_log.jsonl    loss, learning rate and tokens/s every ``train.log_every`` steps
    <out>/checkpoints/checkpoint-<step>/   resumable state (the last ``keep_checkpoints``)
    <out>/adapter/           the LoRA adapter alone (``lora.enabled``)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


from domainfm.corpus.io import check_output_path
from domainfm.config import as_config, save_config, to_dict
from domainfm.errors import ConfigError
from domainfm.manifest import write_json_atomic
from domainfm.models import keep_sentence_encoder_files
from domainfm.pretrain.config import PretrainConfig
from domainfm.pretrain.data import build_corpus, privacy_gate, record_documents
from domainfm.pretrain.model import MLM_HEAD_NEW, LoadedModel, load_model, wrap_lora
from domainfm.pretrain.objective import MaskedPositionsLoss, _Batcher, causal_loss, evaluate
from domainfm.training.checkpoints import (
    CHECKPOINTS,
    INPUTS_KEY,
    ITEM_MEAN,
    OBJECTIVE_KEY,
    CheckpointError,
    finished_run,
    handed_back,
    input_digests,
    latest_resumable,
    list_checkpoints,
    objective_record,
    output_action,
    prepare_output,
)

__all__ = ["CheckpointError", "MLM_HEAD_NEW", "PretrainResult", "list_checkpoints", "load_model", "pretrain",
           "MaskedPositionsLoss", "causal_loss", "evaluate"]

CONFIG_NAME = "pretrain.yaml"
# Settings that may differ between a run and its resumption (they change no computed number).
_RESUME_MAY_CHANGE = {"train.checkpoint_every", "train.keep_checkpoints", "train.log_every",
                      "train.report_to", "allow_identified_data"}

Event = Callable[[dict[str, Any]], None]


@dataclass
class PretrainResult:
    """What :func:`pretrain` produced.

    Attributes:
        out_dir: the output folder; ``AutoModelForMaskedLM.from_pretrained(out_dir)`` (or
            ``AutoModelForCausalLM``) and ``AutoTokenizer.from_pretrained(out_dir)`` load it.
        metrics: the content of ``metrics.json``.
        manifest: path of ``manifest.json``.
        steps: optimizer steps taken in total (over all resumptions).
        resumed_from: the checkpoint step this call resumed from, if any.
        main_process: false on the other ranks of a distributed run (they write nothing).
    """

    out_dir: Path
    metrics: dict[str, Any]
    manifest: Path
    steps: int
    resumed_from: int | None = None
    main_process: bool = True

    @property
    def eval_loss_before(self) -> float | None:
        return (self.metrics.get("eval_before") or {}).get("loss")

    @property
    def eval_loss_after(self) -> float | None:
        return (self.metrics.get("eval_after") or {}).get("loss")


def _is_pretrain_output(out: Path) -> bool:
    if (out / CONFIG_NAME).is_file() or (out / CHECKPOINTS).is_dir():
        return True
    try:
        return json.loads((out / "manifest.json").read_text(encoding="utf-8")).get("stage") == "pretrain"
    except (OSError, ValueError, AttributeError):
        return False


# --------------------------------------------------------------------------------------------
# The stage


def pretrain(
    config: PretrainConfig,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    overwrite: bool = False,
    allow_identified_data: bool = False,
    on_event: Event | None = None,
) -> PretrainResult:
    """Domain-adaptive pretraining of a masked-LM or causal-LM checkpoint.

    Runs unchanged as one process or under ``accelerate launch`` / ``torchrun`` (DDP).

    Args:
        config: the resolved :class:`PretrainConfig`.
        out_dir: output folder (refused when it exists, unless ``overwrite`` or ``resume``).
        resume: continue from the latest complete checkpoint in ``out_dir``.
        overwrite: replace an earlier pretrain output in ``out_dir``.
        allow_identified_data: accept input that no ``domainfm deid`` manifest vouches for
            (recorded in the manifest); also settable as ``config.allow_identified_data``.
        on_event: receives progress events (``{"kind": "step" | "eval" | "info", ...}``) on
            the main process; the CLI renders them.

    Example:
        >>> cfg = load_config(PretrainConfig, "tasks/pretrain-demo.yaml")  # doctest: +SKIP
        >>> result = pretrain(cfg, "runs/dapt")                             # doctest: +SKIP
        >>> result.metrics["eval_after"]["perplexity"]                      # doctest: +SKIP
    """
    from domainfm.corpus.io import main_process_lock
    from domainfm.manifest import hashing_once

    config = as_config(config, PretrainConfig)
    # a second run into the same folder is refused; the run hashes each input file once (its
    # privacy gate, resume check and manifest share the reading)
    with main_process_lock(out_dir), hashing_once():
        return _pretrain(config, out_dir, resume=resume, overwrite=overwrite,
                         allow_identified_data=allow_identified_data, on_event=on_event)


def _pretrain(config: PretrainConfig, out_dir: str | os.PathLike, *, resume: bool, overwrite: bool,
              allow_identified_data: bool, on_event: Event | None) -> PretrainResult:
    from domainfm.training import (SeedDropout, StageTrainer, peak_memory, precision_flags, tensorboard_callback,
                                   training_arguments)
    from domainfm.training.engine import process_count

    cfg = dataclasses.replace(config, allow_identified_data=config.allow_identified_data or allow_identified_data)
    out = Path(out_dir)
    gate = privacy_gate(cfg.data.paths, cfg.allow_identified_data)
    check_output_path(out, inputs=[*cfg.data.paths, cfg.model.name], folder=True)
    action = output_action(out, resume, overwrite, stage="pretrain", config_name=CONFIG_NAME,
                           earlier_run=_is_pretrain_output)
    if action == "resume":
        finished = _finished_run(out, cfg, on_event)
        if finished is not None:
            return finished
    precision = precision_flags(cfg.train.precision)
    t_start = time.perf_counter()
    loaded = load_model(cfg.model, cfg.train.seed)
    _check_seq_len(cfg, loaded)
    digests = input_digests(cfg.data.paths)  # the data as read now: recorded in every checkpoint
    corpus = build_corpus(cfg, loaded.tokenizer, loaded.objective)
    if corpus.stats["max_token_id"] >= loaded.model.config.vocab_size:
        raise ConfigError(f"the tokenizer produced id {corpus.stats['max_token_id']} but the model has only "
                          f"{loaded.model.config.vocab_size} embeddings: tokenizer and model do not match")
    callbacks = [SeedDropout(cfg.train.seed)]
    if cfg.train.report_to == "tensorboard":
        callbacks.append(tensorboard_callback(out / "runs"))

    grad_accum = cfg.train.grad_accum
    # a pass's length in steps: the processes share each pass (N processes, N times fewer steps)
    probe = _Batcher(cfg, corpus, loaded, 0, process_count())
    total_steps = cfg.train.max_steps or max(1, math.ceil(cfg.train.epochs * probe.batches_per_epoch / grad_accum))
    args = training_arguments(
        out / CHECKPOINTS, max_steps=total_steps, grad_accum=grad_accum, batch_size=cfg.sequences_per_batch,
        lr=cfg.train.lr, weight_decay=cfg.train.weight_decay,
        warmup_steps=int(round(cfg.train.warmup_ratio * total_steps)), max_grad_norm=cfg.train.max_grad_norm,
        seed=cfg.train.seed, precision=precision, log_every=cfg.train.log_every,
        save_strategy="steps" if cfg.train.checkpoint_every else "no", save_steps=cfg.train.checkpoint_every or 1,
        save_total_limit=cfg.train.keep_checkpoints, ddp_find_unused_parameters=False,
    )
    rank, world = args.process_index, args.world_size
    main = args.process_index == 0

    def emit(kind: str, **payload):
        if main and on_event is not None:
            on_event({"kind": kind, **payload})

    emit("info", message=f"model {cfg.model.name} ({loaded.objective}); MLM head: {loaded.mlm_head}"
         if loaded.objective == "mlm" else f"model {cfg.model.name} (causal LM)")
    emit("info", message=(f"{corpus.stats['train_documents']} train / {corpus.stats['eval_documents']} held-out "
                          f"documents ({corpus.stats['split_key']} groups: {corpus.stats['train_groups']} / "
                          f"{corpus.stats['eval_groups']}); {len(corpus.train)} train sequences of "
                          f"{cfg.masking.seq_len} tokens"
                          + (f"; {corpus.stats['empty_documents']} documents without text left out"
                             if corpus.stats.get("empty_documents") else "")))
    if corpus.canaries:  # how many only: the canaries themselves go to the manifest alone
        emit("info", message=f"{len(corpus.canaries)} canaries inserted {corpus.stats['canary_insertions']} times "
                             "(recorded in the output manifest)")
    batcher = _Batcher(cfg, corpus, loaded, rank, world)

    # The checkpoint to continue is found (and its config, data and objective checked) before the
    # folder is touched; without one the run starts over under this config, and the saved config must say so.
    trained_under = objective_record(ITEM_MEAN, objective=loaded.objective)  # "auto" as resolved
    found = (latest_resumable(out, to_dict(cfg), _RESUME_MAY_CHANGE, digests, trained_under)
             if action == "resume" else None)

    # Every check passed: only now touch the output folder.
    prepare_output(out, action, main)
    if main and not found:
        save_config(cfg, out / CONFIG_NAME)
    if main:
        # now, not after training: the record must be of the files as they were read
        record_documents(out, cfg, corpus)
    if main:
        _trim_log(out / "train_log.jsonl", found[0] if found else 0)

    model = wrap_lora(loaded, cfg) if cfg.lora.enabled else loaded.model
    if loaded.objective == "mlm":
        objective = MaskedPositionsLoss(loaded.model, loaded.head)  # loaded.model: the base under LoRA too
    else:
        objective = causal_loss
    state: dict[str, Any] = {"config": to_dict(cfg), INPUTS_KEY: list(digests.values()), OBJECTIVE_KEY: trained_under,
                             "tokens_seen": 0, "eval_before": None, "eval_history": []}
    eval_bs = max(1, cfg.sequences_per_batch)


    def during() -> dict[str, Any] | None:
        result = evaluate(trainer.model, objective, batcher, trainer.accelerator, eval_bs)
        if result:
            state["eval_history"].append({"step": trainer.state.global_step, **result})
            emit("eval", when="during", step=trainer.state.global_step, **result)
        return result

    def checkpoint_state() -> dict[str, Any]:
        return {**state, "tokens_seen": progress.tokens_before + progress.tokens * world}

    if cfg.train.eval_every:
        from domainfm.training.engine import StepTriggers

        callbacks.append(StepTriggers(evaluate=lambda s, last: s % cfg.train.eval_every == 0 and s != last))
    trainer = StageTrainer(model=model, args=args, make_batch=batcher.train_batch,
                           micro_batches=total_steps * grad_accum, loss_fn=objective, evaluator=during,
                           count_items=batcher.loss_items,
                           checkpoint_state=checkpoint_state, on_event=on_event,
                           log_file=out / "train_log.jsonl", callbacks=callbacks)
    progress = trainer.progress

    resumed_from, checkpoint = None, None
    if found:
        resumed_from, checkpoint, saved = found
        state.update(eval_before=saved["eval_before"], eval_history=saved["eval_history"])
        progress.tokens_before = saved["tokens_seen"]
        emit("info", message=f"resuming from {checkpoint.name} (step {resumed_from} of {total_steps})")
    elif action == "resume":
        emit("info", message=f"no complete checkpoint in {out}: starting from the beginning")
    if state["eval_before"] is None:
        state["eval_before"] = evaluate(trainer.model, objective, batcher, trainer.accelerator, eval_bs)
        if state["eval_before"]:
            emit("eval", when="before", step=0, **state["eval_before"])

    t_loop = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    train_seconds = time.perf_counter() - t_loop
    eval_after = evaluate(trainer.model, objective, batcher, trainer.accelerator, eval_bs)
    if eval_after:
        emit("eval", when="after", step=total_steps, **eval_after)
        trainer.log({"eval_loss": eval_after["loss"], "eval_perplexity": eval_after["perplexity"]})
    for callback in callbacks:
        if hasattr(callback, "tb_writer") and callback.tb_writer is not None:
            callback.tb_writer.close()

    run_tokens = progress.tokens * world
    metrics = {
        "objective": loaded.objective,
        "base_model": cfg.model.name,
        "mlm_head": loaded.mlm_head if loaded.objective == "mlm" else None,
        "precision": trainer.accelerator.mixed_precision,
        "processes": world,
        "lora": to_dict(cfg.lora) if cfg.lora.enabled else None,
        "perplexity_note": ("exp(mean cross-entropy over masked tokens, fixed masks)" if loaded.objective == "mlm"
                            else "exp(mean next-token cross-entropy)"),
        "eval_before": state["eval_before"],
        "eval_after": eval_after,
        "eval_history": state["eval_history"],
        "train": {
            "steps": total_steps,
            "resumed_from_step": resumed_from,
            "steps_this_run": total_steps - (resumed_from or 0),
            "sequences_per_batch": cfg.sequences_per_batch,
            "grad_accum": grad_accum,
            "seq_len": cfg.masking.seq_len,
            "epochs": round(total_steps * grad_accum / batcher.batches_per_epoch, 3),
            "tokens_seen": progress.tokens_before + run_tokens,
            "tokens_this_run": run_tokens,
            "tokens_per_s": round(progress.tokens_per_s(), 1),
            "train_seconds": round(train_seconds, 2),
            "compute_seconds": round(progress.compute_s, 2),
            "cpu_seconds": round(progress.cpu_s, 2),
            "last_step_loss": progress.last_loss,
        },
        "data": corpus.stats,
        **peak_memory(),
    }
    manifest = out / "manifest.json"
    if main:
        _save_final(trainer.model, loaded, cfg, out)
        metrics["total_seconds"] = round(time.perf_counter() - t_start, 2)
        write_json_atomic(out / "metrics.json", metrics)
        from importlib import metadata

        from domainfm.manifest import write_manifest
        from domainfm.training.artifacts import compute_record, split_outputs

        # every file of the model folder (the adapter's and a sentence encoder's folders too;
        # checkpoints and TensorBoard logs aside), the run's measurements (times, tokens/s) apart:
        # the manifests of two runs of this config on this data then differ in their run section alone
        outputs, measured = split_outputs(
            p for p in sorted(out.rglob("*")) if p.is_file() and p.name != "manifest.json"
            and not {CHECKPOINTS, "runs"} & set(p.relative_to(out).parts[:1]))
        manifest = write_manifest(
            out, stage="pretrain", config=cfg, inputs=cfg.data.paths, outputs=outputs,
            run={"seconds": metrics["total_seconds"], "outputs": measured},
            # documents = train + eval + empty (left out): the manifest's counts reconcile
            counts={k: corpus.stats[k] for k in ("documents", "train_documents", "eval_documents",
                                                  "empty_documents", "train_sequences", "eval_sequences")},
            extra={
                "seed": cfg.train.seed,
                "objective": loaded.objective,
                "base_model": {"name": cfg.model.name, "resolved": loaded.source},
                "mlm_head": metrics["mlm_head"],
                "allow_identified_data": cfg.allow_identified_data,
                "privacy_gate": gate,
                "resumed_from_step": resumed_from,
                "steps": total_steps,
                "processes": world,
                "compute": compute_record(),
                "accelerate_version": metadata.version("accelerate"),
                "transformers_version": metadata.version("transformers"),
                **({"canaries": [c.to_dict() for c in corpus.canaries]} if corpus.canaries else {}),
            },
        )
    trainer.accelerator.wait_for_everyone()
    return PretrainResult(out_dir=out, metrics=metrics, manifest=manifest, steps=total_steps,
                          resumed_from=resumed_from, main_process=main)


def _finished_run(out: Path, cfg: PretrainConfig, on_event: Event | None) -> PretrainResult | None:
    """The run in ``out`` when it finished under this config and data and left no checkpoint to
    continue (:func:`~domainfm.training.checkpoints.finished_run`): handed back, not trained again."""
    from accelerate import PartialState

    found = finished_run(out, to_dict(cfg), _RESUME_MAY_CHANGE, stage="pretrain", inputs=list(cfg.data.paths))
    if found is None:
        return None
    metrics, _, steps = found
    main = PartialState().is_main_process
    if main and on_event is not None:
        on_event({"kind": "info", "message": handed_back(out, steps)})
    return PretrainResult(out_dir=out, metrics=metrics, manifest=out / "manifest.json", steps=steps,
                          main_process=main)


def _check_seq_len(cfg: PretrainConfig, loaded: LoadedModel) -> None:
    """A block longer than the model's position table fails deep inside the forward pass."""
    from domainfm.models import usable_positions

    positions = usable_positions(loaded.model.config)
    if positions is not None and cfg.masking.seq_len > positions:
        raise ConfigError(f"masking.seq_len ({cfg.masking.seq_len}) exceeds the {positions} positions of model "
                          f"{cfg.model.name!r}; use --masking.seq_len {positions} or less")


def _trim_log(path: Path, step: int) -> None:
    """Keep the log lines of steps up to ``step``: a killed run logged steps after its last
    checkpoint, which the resumed run takes (and logs) again; a run that starts over keeps none."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", step + 1) <= step:
                kept.append(line + "\n")
        except (ValueError, AttributeError):  # a line cut by the kill
            continue
    if step == 0 or not kept:
        path.unlink()
    else:
        path.write_text("".join(kept), encoding="utf-8")


def _save_final(model, loaded: LoadedModel, cfg: PretrainConfig, out: Path) -> None:
    from domainfm.training.artifacts import save_adapter

    if cfg.lora.enabled:
        save_adapter(model, out / "adapter")
        model = model.merge_and_unload()
    model.save_pretrained(out)
    loaded.tokenizer.save_pretrained(out)
    if loaded.objective == "mlm":
        # A DAPT of a sentence encoder (the embedded MiniLM) is used again as one (domainfm label
        # --model / --encoder): keep its pooling, normalisation and window.
        keep_sentence_encoder_files(loaded.source, out)
