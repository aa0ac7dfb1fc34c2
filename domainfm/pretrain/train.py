"""The pretraining loop: a compact loop over ``accelerate`` (DDP, mixed precision), with
masked-position MLM logits, atomic checkpoints and exact resume.

Why a custom loop instead of ``transformers.Trainer``: the MLM head is applied only to the
hidden states of the masked positions (about 15% of them), which removes most of the
vocabulary-sized matrix product and its softmax; and every random choice (data order, masks,
dropout) is seeded from ``(seed, step)``, so a run killed at any point and resumed from its
last checkpoint takes exactly the steps an uninterrupted run takes.

Output folder::

    <out>/config.json, model.safetensors, tokenizer files   the adapted model (save_pretrained)
    <out>/pretrain.yaml      the resolved config
    <out>/metrics.json       eval loss/perplexity before and after, throughput, data counts
    <out>/manifest.json      input hashes, versions, seed, privacy-gate decision, canaries
    <out>/train_log.jsonl    loss, learning rate and tokens/s every ``train.log_every`` steps
    <out>/checkpoints/checkpoint-<step>/   resumable state (the last ``keep_checkpoints``)
    <out>/adapter/           the LoRA adapter alone (``lora.enabled``)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from domainfm.config import config_differences, save_config, to_dict
from domainfm.manifest import write_json_atomic
from domainfm.models import quiet_peft_wrap
from domainfm.errors import ConfigError, CorpusError, DomainFMError, ModelResolutionError
from domainfm.pretrain.config import PretrainConfig
from domainfm.pretrain.data import PackedCorpus, build_corpus, privacy_gate
from domainfm.pretrain.masking import IGNORE_INDEX, causal_labels, collate, mask_tokens
from domainfm.seeding import mix_seed, seeded_generator

MLM_HEAD_NEW = "newly initialised, decoder tied to input embeddings"
CHECKPOINTS = "checkpoints"
CONFIG_NAME = "pretrain.yaml"
_HEAD_NAMES = ("cls", "lm_head", "generator_lm_head")
_EVAL_KEY = 999_983
# Settings that may differ between a run and its resumption (they change no computed number).
_RESUME_MAY_CHANGE = {"train.checkpoint_every", "train.keep_checkpoints", "train.log_every",
                      "train.report_to", "allow_identified_data"}

Event = Callable[[dict[str, Any]], None]


class CheckpointError(DomainFMError):
    """A checkpoint could not be written (disk full...); the previous one is intact."""


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


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    objective: str
    head: str | None
    mlm_head: str
    source: str
    info: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Model


def load_model(model_cfg, seed: int = 13) -> LoadedModel:
    """Load tokenizer and masked-LM / causal-LM model, offline-friendly, and check they match.

    A masked-LM head missing from the checkpoint (the embedded MiniLM is a bare encoder) is
    created seeded, with its decoder tied to the input embeddings and a zero bias.

    Raises:
        ModelResolutionError: the model or tokenizer cannot be found/loaded (no network here).
        ConfigError: the tokenizer does not belong to the model, or the objective does not fit.
    """
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    from domainfm.models import resolve_model

    source = resolve_model(model_cfg.name)
    # A hub id with no reachable hub: use the local cache only instead of retrying for minutes.
    hub = {} if Path(source).expanduser().exists() or _hub_reachable() else {"local_files_only": True}
    try:
        config = AutoConfig.from_pretrained(source, **hub)
    except (OSError, ValueError) as exc:
        raise ModelResolutionError(_unloadable(model_cfg.name, source, exc)) from None
    objective = model_cfg.objective
    model_type = getattr(config, "model_type", "?")
    if objective == "auto":
        if model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not getattr(config, "is_decoder", False):
            objective = "mlm"
        elif model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
            objective = "causal"
        else:
            raise ConfigError(f"model type {model_type!r} has neither a masked-LM nor a causal-LM head in transformers")
    mapping = MODEL_FOR_MASKED_LM_MAPPING_NAMES if objective == "mlm" else MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    if model_type not in mapping:
        raise ConfigError(f"model.objective {objective!r} does not fit model type {model_type!r}")

    tok_source = resolve_model(model_cfg.tokenizer) if model_cfg.tokenizer else source
    try:
        tokenizer = AutoTokenizer.from_pretrained(tok_source, **hub)
    except (OSError, ValueError, TypeError) as exc:
        hint = "" if model_cfg.tokenizer else " (set model.tokenizer to a tokenizer folder)"
        raise ModelResolutionError(_unloadable(model_cfg.tokenizer or model_cfg.name, tok_source, exc) + hint) from None
    vocab = int(config.vocab_size)
    n_tok = len(tokenizer)
    if n_tok > vocab or n_tok < vocab // 2:
        raise ConfigError(
            f"tokenizer ({tok_source}, {n_tok} tokens) does not match the model ({source}, vocabulary "
            f"{vocab}): use the tokenizer saved with the model (model.tokenizer: null)"
        )
    if objective == "mlm" and tokenizer.mask_token_id is None:
        raise ConfigError(f"the tokenizer of {tok_source} has no mask token, so it cannot train a masked LM")

    torch.manual_seed(seed)  # the new head's initialisation
    cls = AutoModelForMaskedLM if objective == "mlm" else AutoModelForCausalLM
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # the load report lists the head we re-create
    try:
        # fp32 master weights whatever the checkpoint stores; mixed precision is autocast's job
        model, loading = cls.from_pretrained(source, output_loading_info=True, dtype=torch.float32, **hub)
    except (OSError, ValueError) as exc:
        raise ModelResolutionError(_unloadable(model_cfg.name, source, exc)) from None
    finally:
        transformers.logging.set_verbosity(verbosity)
    head = next((h for h in _HEAD_NAMES if isinstance(getattr(model, h, None), torch.nn.Module)), None)
    missing = list(loading.get("missing_keys") or [])
    head_missing = head is not None and any(k.split(".")[0] == head for k in missing)
    mlm_head = "loaded from the checkpoint"
    if head_missing and objective == "mlm":
        mlm_head = _init_new_head(model)
    elif head_missing:
        mlm_head = "newly initialised"
    if objective == "causal" and tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # padding is masked out of the loss anyway
    info = {"missing_keys": missing, "unexpected_keys": list(loading.get("unexpected_keys") or [])}
    return LoadedModel(model, tokenizer, objective, head, mlm_head, source, info)


def _init_new_head(model) -> str:
    """Tie the new decoder to the embeddings, zero its bias, (re)initialise the transform."""
    out_emb, in_emb = model.get_output_embeddings(), model.get_input_embeddings()
    if out_emb is not None and out_emb.weight is not in_emb.weight:
        model.tie_weights()
    with torch.no_grad():
        bias = getattr(out_emb, "bias", None)
        if bias is not None:
            bias.zero_()
    if out_emb is not None and out_emb.weight is in_emb.weight:
        return MLM_HEAD_NEW
    return "newly initialised (decoder not tied: the model config sets tie_word_embeddings false)"


def _hub_reachable(timeout: float = 3.0) -> bool:
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _unloadable(name: str, source: str, exc: Exception) -> str:
    local = Path(source).expanduser().exists()
    if local:
        return f"cannot load {name!r} from {source}: {str(exc).splitlines()[0][:200]}"
    return (
        f"cannot load model {name!r}: it is not a local folder and there is no network access here "
        "to download it; download it on a connected machine (save_pretrained) and give the local "
        "folder as model.name, or use the embedded 'minilm'"
    )


# --------------------------------------------------------------------------------------------
# Objective modules: what DDP wraps (calling sub-modules outside the wrapped forward would skip
# gradient synchronisation)


class MaskedLMLoss(torch.nn.Module):
    """Encoder over all tokens, LM head only over the masked positions.

    Returns ``(sum of cross-entropy over masked tokens, number of masked tokens)``.
    """

    def __init__(self, model, inner, head: str | None):
        super().__init__()
        self.model = model  # owns the parameters (a PeftModel under LoRA)
        object.__setattr__(self, "_inner", inner)  # the transformers model inside, not re-registered
        self.head = head

    def forward(self, input_ids, attention_mask, labels):
        inner = self._inner
        selected = labels != IGNORE_INDEX
        if self.head is None:  # unknown head layout: full logits, transformers' own loss
            out = inner(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
            count = selected.sum()
            return out.loss * count, count
        encoder = getattr(inner, inner.base_model_prefix)
        hidden = encoder(input_ids=input_ids, attention_mask=attention_mask)[0]
        logits = getattr(inner, self.head)(hidden[selected])
        loss = torch.nn.functional.cross_entropy(logits.float(), labels[selected], reduction="sum")
        return loss, selected.sum()


class CausalLMLoss(torch.nn.Module):
    """Next-token loss; returns ``(sum of cross-entropy, number of predicted tokens)``."""

    def __init__(self, model, inner):
        super().__init__()
        self.model = model
        object.__setattr__(self, "_inner", inner)

    def forward(self, input_ids, attention_mask, labels):
        logits = self._inner(input_ids=input_ids, attention_mask=attention_mask).logits
        shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
        shift_labels = labels[:, 1:].reshape(-1)
        loss = torch.nn.functional.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE_INDEX,
                                                 reduction="sum")
        return loss, (shift_labels != IGNORE_INDEX).sum()


# --------------------------------------------------------------------------------------------
# Batches


class _Batcher:
    """Micro-batch ``k`` of the whole run, on this rank, reproducible from ``k`` alone."""

    def __init__(self, cfg: PretrainConfig, corpus: PackedCorpus, loaded: LoadedModel, rank: int, world: int):
        self.cfg, self.corpus, self.rank, self.world = cfg, corpus, rank, world
        tok = loaded.tokenizer
        self.objective = loaded.objective
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
        self.mask_id = tok.mask_token_id
        self.special = sorted({i for i in tok.all_special_ids if i is not None} | {self.pad_id})
        self.vocab = int(loaded.model.config.vocab_size)
        self.batch_size = cfg.sequences_per_batch
        n = len(corpus.train)
        self.per_rank = n // world
        if self.per_rank == 0:
            raise CorpusError(f"{n} training sequence(s) cannot be shared by {world} processes; add text")
        self.batches_per_epoch = math.ceil(self.per_rank / self.batch_size)
        self._order: tuple[int, np.ndarray] | None = None

    def indices(self, k: int) -> np.ndarray:
        epoch, b = divmod(k, self.batches_per_epoch)
        if self._order is None or self._order[0] != epoch:
            perm = np.random.default_rng([self.cfg.train.seed, epoch]).permutation(len(self.corpus.train))
            self._order = (epoch, perm[self.rank::self.world][: self.per_rank])
        return self._order[1][b * self.batch_size:(b + 1) * self.batch_size]

    def make(self, blocks, idx, gen_keys: tuple[int, ...]) -> dict[str, Any]:
        starts = [blocks.word_starts[i] for i in idx] if blocks.word_starts is not None else None
        batch = collate([blocks.ids[i] for i in idx], starts, self.pad_id)
        word_starts = batch.pop("word_starts", None)
        if self.objective == "causal":
            batch["labels"] = causal_labels(batch["input_ids"], batch["attention_mask"])
            return batch
        m = self.cfg.masking
        batch["input_ids"], batch["labels"] = mask_tokens(
            batch["input_ids"], batch["attention_mask"], special_ids=self.special, mask_id=self.mask_id,
            vocab_size=self.vocab, mlm_probability=m.mlm_probability, mask_replace_prob=m.mask_replace_prob,
            random_replace_prob=m.random_replace_prob, word_starts=word_starts,
            generator=seeded_generator(*gen_keys),
        )
        return batch

    def train_batch(self, k: int) -> dict[str, Any]:
        return self.make(self.corpus.train, self.indices(k), (self.cfg.train.seed, k, self.rank))


# --------------------------------------------------------------------------------------------
# Output folder and checkpoints


def _is_pretrain_output(out: Path) -> bool:
    if (out / CONFIG_NAME).is_file() or (out / CHECKPOINTS).is_dir():
        return True
    try:
        return json.loads((out / "manifest.json").read_text(encoding="utf-8")).get("stage") == "pretrain"
    except (OSError, ValueError, AttributeError):
        return False


def _output_action(out: Path, resume: bool, overwrite: bool) -> str:
    if resume and overwrite:
        raise ConfigError("--resume continues the run in the output folder and --overwrite deletes it: give one")
    if not out.exists():
        return "create"
    if not out.is_dir():
        raise ConfigError(f"output {out} exists and is not a folder")
    if not any(out.iterdir()):
        return "create"
    if resume or overwrite:
        if not _is_pretrain_output(out):
            raise ConfigError(
                f"{out} is not the output of 'domainfm pretrain' (no {CONFIG_NAME}, checkpoints/ or "
                f"pretrain manifest); refusing to {'resume in' if resume else 'delete'} it"
            )
        return "resume" if resume else "overwrite"
    raise ConfigError(
        f"output folder {out} already exists: pass --overwrite to replace it or --resume to continue its run"
    )


def list_checkpoints(out: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first (``*.tmp`` folders of interrupted writes are ignored)."""
    folder = Path(out) / CHECKPOINTS
    found = []
    if folder.is_dir():
        for path in folder.iterdir():
            match = re.fullmatch(r"checkpoint-(\d+)", path.name)
            if match and (path / "state.pt").is_file() and (path / "trainer_state.json").is_file():
                found.append((int(match.group(1)), path))
    return sorted(found)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _save_checkpoint(out: Path, step: int, payload: dict[str, Any], state: dict[str, Any], keep: int) -> Path:
    """Write ``checkpoint-<step>.tmp`` fully, then rename it into place (atomic on POSIX)."""
    folder = out / CHECKPOINTS
    final = folder / f"checkpoint-{step}"
    tmp = folder / f"checkpoint-{step}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        with open(tmp / "state.pt", "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        with open(tmp / "trainer_state.json", "w", encoding="utf-8") as fh:
            fh.write(json.dumps(state, indent=2) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(folder)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        complete = list_checkpoints(out)
        last = complete[-1][1].name if complete else "none"
        raise CheckpointError(
            f"could not write checkpoint-{step} ({exc.strerror or exc}); the last complete checkpoint "
            f"({last}) is intact: free disk space and rerun with --resume"
        ) from None
    for _, old in list_checkpoints(out)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


# --------------------------------------------------------------------------------------------
# Accelerator, optimizer, evaluation


def _mixed_precision(precision: str) -> str:
    cuda = torch.cuda.is_available()
    if precision == "auto":
        if not cuda:
            return "no"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp32":
        return "no"
    if precision == "fp16" and not cuda:
        raise ConfigError("train.precision fp16 needs a GPU; use fp32 or bf16 on a CPU")
    return precision


def _accelerator(mixed_precision: str):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        # several in-process runs (tests, notebooks) may ask for different precisions
        AcceleratorState._reset_state()
    # cpu=True on a machine without a GPU makes a torchrun/accelerate-launched job use gloo DDP
    return Accelerator(mixed_precision=mixed_precision, cpu=not torch.cuda.is_available())


def _optimizer(model, cfg: PretrainConfig, total_steps: int):
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.train.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.train.lr,
    )
    warmup = int(round(cfg.train.warmup_ratio * total_steps))

    def schedule(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def evaluate(module, batcher: _Batcher, accelerator, batch_size: int) -> dict[str, Any] | None:
    """Mean loss over the held-out blocks (masked tokens for MLM, next tokens for causal LM),
    with the same masks every time it is called."""
    blocks = batcher.corpus.eval
    if not len(blocks):
        return None
    module.eval()
    total = torch.zeros(2, dtype=torch.float64, device=accelerator.device)
    mine = list(range(accelerator.process_index, len(blocks), accelerator.num_processes))
    with torch.no_grad():
        for a in range(0, len(mine), batch_size):
            idx = mine[a:a + batch_size]
            batch = batcher.make(blocks, idx, (batcher.cfg.train.seed, _EVAL_KEY, idx[0]))
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            loss, count = module(**batch)
            total += torch.stack([loss.detach().double(), count.double()])
    module.train()
    total = accelerator.reduce(total, reduction="sum")
    loss_sum, count = float(total[0]), int(total[1])
    loss = loss_sum / max(count, 1)
    return {"loss": loss, "perplexity": math.exp(min(loss, 80.0)), "predicted_tokens": count,
            "sequences": len(blocks)}


def _peak_memory() -> dict[str, float]:
    import resource

    peak = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if torch.cuda.is_available():
        peak["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return peak


class _Tensorboard:
    def __init__(self, folder: Path | None):
        self.writer = None
        if folder is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError("train.report_to tensorboard needs the tensorboard package "
                                  "(pip install tensorboard), or set train.report_to none") from None
            self.writer = SummaryWriter(log_dir=str(folder))

    def log(self, values: dict[str, float], step: int) -> None:
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


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

    with main_process_lock(out_dir):  # a second run into the same folder is refused
        return _pretrain(config, out_dir, resume=resume, overwrite=overwrite,
                         allow_identified_data=allow_identified_data, on_event=on_event)


def _pretrain(config: PretrainConfig, out_dir: str | os.PathLike, *, resume: bool, overwrite: bool,
              allow_identified_data: bool, on_event: Event | None) -> PretrainResult:
    cfg = dataclasses.replace(config, allow_identified_data=config.allow_identified_data or allow_identified_data)
    out = Path(out_dir)
    gate = privacy_gate(cfg.data.paths, cfg.allow_identified_data)
    action = _output_action(out, resume, overwrite)
    accelerator = _accelerator(_mixed_precision(cfg.train.precision))
    main = accelerator.is_main_process
    rank, world = accelerator.process_index, accelerator.num_processes

    def emit(kind: str, **payload):
        if main and on_event is not None:
            on_event({"kind": kind, **payload})

    t_start = time.perf_counter()
    loaded = load_model(cfg.model, cfg.train.seed)
    emit("info", message=f"model {cfg.model.name} ({loaded.objective}); MLM head: {loaded.mlm_head}"
         if loaded.objective == "mlm" else f"model {cfg.model.name} (causal LM)")
    corpus = build_corpus(cfg, loaded.tokenizer, loaded.objective)
    if corpus.stats["max_token_id"] >= loaded.model.config.vocab_size:
        raise ConfigError(f"the tokenizer produced id {corpus.stats['max_token_id']} but the model has only "
                          f"{loaded.model.config.vocab_size} embeddings: tokenizer and model do not match")
    emit("info", message=(f"{corpus.stats['train_documents']} train / {corpus.stats['eval_documents']} held-out "
                          f"documents ({corpus.stats['split_key']} groups: {corpus.stats['train_groups']} / "
                          f"{corpus.stats['eval_groups']}); {len(corpus.train)} train sequences of "
                          f"{cfg.masking.seq_len} tokens"))
    if corpus.canaries:  # how many only: the canaries themselves go to the manifest alone
        emit("info", message=f"{len(corpus.canaries)} canaries inserted {corpus.stats['canary_insertions']} times "
                             "(recorded in the output manifest)")
    batcher = _Batcher(cfg, corpus, loaded, rank, world)
    tensorboard = _Tensorboard(out / "runs" if cfg.train.report_to == "tensorboard" and main else None)

    # Every check passed: only now touch the output folder.
    if main:
        if action == "overwrite":
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        if action != "resume" or not (out / CONFIG_NAME).is_file():
            save_config(cfg, out / CONFIG_NAME)
    accelerator.wait_for_everyone()

    model = loaded.model
    if cfg.lora.enabled:
        model = _wrap_lora(loaded, cfg)
    module = (MaskedLMLoss(model, loaded.model if not cfg.lora.enabled else model.get_base_model(), loaded.head)
              if loaded.objective == "mlm"
              else CausalLMLoss(model, loaded.model if not cfg.lora.enabled else model.get_base_model()))
    grad_accum = cfg.train.grad_accum
    total_steps = cfg.train.max_steps or max(1, math.ceil(cfg.train.epochs * batcher.batches_per_epoch / grad_accum))
    optimizer, scheduler = _optimizer(module, cfg, total_steps)
    module, optimizer = accelerator.prepare(module, optimizer)
    raw = accelerator.unwrap_model(module)
    trainable = {n: p for n, p in raw.named_parameters() if p.requires_grad}

    start_step, tokens_seen, eval_before, resumed_from, history = 0, 0, None, None, []
    if action == "resume":
        checkpoints = list_checkpoints(out)
        if checkpoints:
            resumed_from, path = checkpoints[-1]
            state = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
            diffs = config_differences(state["config"], to_dict(cfg), may_change=_RESUME_MAY_CHANGE)
            if diffs:
                raise ConfigError(f"cannot resume {out} with a different config ({'; '.join(diffs[:5])})")
            payload = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
            missing = set(trainable) - set(payload["params"])
            if missing:
                raise ConfigError(f"{path} lacks {len(missing)} parameter(s) of this model (e.g. {sorted(missing)[0]})")
            with torch.no_grad():
                for name, value in payload["params"].items():
                    trainable[name].copy_(value)
            optimizer.load_state_dict(payload["optimizer"])
            scheduler.load_state_dict(payload["scheduler"])
            if payload.get("scaler") is not None and accelerator.scaler is not None:
                accelerator.scaler.load_state_dict(payload["scaler"])
            start_step, tokens_seen = state["step"], state["tokens_seen"]
            eval_before, history = state.get("eval_before"), state.get("eval_history", [])
            emit("info", message=f"resuming from {path.name} (step {start_step} of {total_steps})")
        else:
            emit("info", message=f"no complete checkpoint in {out}: starting from the beginning")

    eval_bs = max(1, cfg.sequences_per_batch)
    if eval_before is None:
        eval_before = evaluate(module, batcher, accelerator, eval_bs)
        if eval_before:
            emit("eval", when="before", step=0, **eval_before)
    log_file = out / "train_log.jsonl"
    module.train()
    t_loop = time.perf_counter()
    compute_s, cpu_s, run_tokens, window_loss, window_n, last_loss = 0.0, 0.0, 0, 0.0, 0, None
    params = [p for p in module.parameters() if p.requires_grad]
    emit("step", step=start_step, total_steps=total_steps, loss=None, tokens_per_s=None, eta_s=None)
    for step in range(start_step, total_steps):
        t0, c0 = time.perf_counter(), time.process_time()
        torch.manual_seed(mix_seed(cfg.train.seed, step, rank, 1))  # dropout
        step_loss, step_tokens = 0.0, 0
        for a in range(grad_accum):
            batch = batcher.train_batch(step * grad_accum + a)
            step_tokens += int(batch["attention_mask"].sum())
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            sync = contextlib.nullcontext() if a == grad_accum - 1 else accelerator.no_sync(module)
            with sync:
                loss_sum, count = module(**batch)
                loss = loss_sum / count.clamp(min=1)
                accelerator.backward(loss / grad_accum)
            step_loss += float(loss.detach()) / grad_accum
        if cfg.train.max_grad_norm:
            accelerator.clip_grad_norm_(params, cfg.train.max_grad_norm)
        optimizer.step()
        if not accelerator.optimizer_step_was_skipped:  # fp16: the scaler skipped an overflowing step
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        done = step + 1
        step_tokens *= world
        tokens_seen += step_tokens
        run_tokens += step_tokens
        compute_s += time.perf_counter() - t0
        cpu_s += time.process_time() - c0
        window_loss += step_loss
        window_n += 1
        last_loss = step_loss
        tps = run_tokens / max(compute_s, 1e-9)
        eta = (total_steps - done) * compute_s / max(done - start_step, 1)
        emit("step", step=done, total_steps=total_steps, loss=step_loss, tokens_per_s=tps, eta_s=eta)
        if done % cfg.train.log_every == 0 or done == total_steps:
            record = {"step": done, "loss": window_loss / window_n, "lr": scheduler.get_last_lr()[0],
                      "tokens_per_s": round(tps, 1), "tokens_seen": tokens_seen}
            window_loss, window_n = 0.0, 0
            if main:
                with open(log_file, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(record) + "\n")
                tensorboard.log({"train/loss": record["loss"], "train/lr": record["lr"],
                                 "train/tokens_per_s": tps}, done)
            emit("log", **record)
        if cfg.train.eval_every and done % cfg.train.eval_every == 0 and done != total_steps:
            result = evaluate(module, batcher, accelerator, eval_bs)
            if result:
                history.append({"step": done, **result})
                tensorboard.log({"eval/loss": result["loss"], "eval/perplexity": result["perplexity"]}, done)
                emit("eval", when="during", step=done, **result)
        if cfg.train.checkpoint_every and (done % cfg.train.checkpoint_every == 0 or done == total_steps):
            _checkpoint(accelerator, out, done, trainable, optimizer, scheduler, cfg, tokens_seen,
                        eval_before, history)
    train_seconds = time.perf_counter() - t_loop

    eval_after = evaluate(module, batcher, accelerator, eval_bs)
    if eval_after:
        emit("eval", when="after", step=total_steps, **eval_after)
        tensorboard.log({"eval/loss": eval_after["loss"], "eval/perplexity": eval_after["perplexity"]}, total_steps)
    tensorboard.close()

    metrics = {
        "objective": loaded.objective,
        "base_model": cfg.model.name,
        "mlm_head": loaded.mlm_head if loaded.objective == "mlm" else None,
        "precision": accelerator.mixed_precision,
        "processes": world,
        "lora": to_dict(cfg.lora) if cfg.lora.enabled else None,
        "perplexity_note": ("exp(mean cross-entropy over masked tokens, fixed masks)" if loaded.objective == "mlm"
                            else "exp(mean next-token cross-entropy)"),
        "eval_before": eval_before,
        "eval_after": eval_after,
        "eval_history": history,
        "train": {
            "steps": total_steps,
            "resumed_from_step": resumed_from,
            "steps_this_run": total_steps - start_step,
            "sequences_per_batch": cfg.sequences_per_batch,
            "grad_accum": grad_accum,
            "seq_len": cfg.masking.seq_len,
            "epochs": round(total_steps * grad_accum / batcher.batches_per_epoch, 3),
            "tokens_seen": tokens_seen,
            "tokens_this_run": run_tokens,
            "tokens_per_s": round(run_tokens / max(compute_s, 1e-9), 1),
            "train_seconds": round(train_seconds, 2),
            "compute_seconds": round(compute_s, 2),
            "cpu_seconds": round(cpu_s, 2),
            "last_step_loss": last_loss,
        },
        "data": corpus.stats,
        **_peak_memory(),
    }
    manifest = out / "manifest.json"
    if main:
        _save_final(accelerator, module, loaded, cfg, out)
        metrics["total_seconds"] = round(time.perf_counter() - t_start, 2)
        write_json_atomic(out / "metrics.json", metrics)
        from importlib import metadata

        from domainfm.manifest import write_manifest

        outputs = [p for p in sorted(out.iterdir()) if p.is_file() and p.name != "manifest.json"]
        manifest = write_manifest(
            out, stage="pretrain", config=cfg, inputs=cfg.data.paths, outputs=outputs,
            counts={k: corpus.stats[k] for k in ("documents", "train_documents", "eval_documents",
                                                  "train_sequences", "eval_sequences")},
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
                "accelerate_version": metadata.version("accelerate"),
                **({"canaries": [c.to_dict() for c in corpus.canaries]} if corpus.canaries else {}),
            },
        )
    accelerator.wait_for_everyone()
    return PretrainResult(out_dir=out, metrics=metrics, manifest=manifest, steps=total_steps,
                          resumed_from=resumed_from, main_process=main)


def _wrap_lora(loaded: LoadedModel, cfg: PretrainConfig):
    from peft import get_peft_model

    try:
        with quiet_peft_wrap():
            model = get_peft_model(loaded.model, cfg.lora.to_peft("CAUSAL_LM" if loaded.objective == "causal" else None))
    except ValueError as exc:
        raise ConfigError(f"lora: {str(exc).splitlines()[0][:300]} (set lora.target_modules)") from None
    if loaded.objective == "mlm" and loaded.mlm_head != "loaded from the checkpoint" and loaded.head:
        # a new head must learn too; its decoder is the (frozen) embedding matrix
        embedding = loaded.model.get_input_embeddings().weight
        for param in getattr(loaded.model, loaded.head).parameters():
            if param is not embedding:
                param.requires_grad_(True)
    return model


def _checkpoint(accelerator, out, step, trainable, optimizer, scheduler, cfg, tokens_seen, eval_before, history):
    ok = torch.ones(1, device=accelerator.device)
    error: CheckpointError | None = None
    if accelerator.is_main_process:
        payload = {
            "params": {n: p.detach().cpu() for n, p in trainable.items()},
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": accelerator.scaler.state_dict() if accelerator.scaler is not None else None,
        }
        state = {"step": step, "tokens_seen": tokens_seen, "config": to_dict(cfg), "eval_before": eval_before,
                 "eval_history": history}
        try:
            _save_checkpoint(out, step, payload, state, cfg.train.keep_checkpoints)
        except CheckpointError as exc:
            error = exc
            ok.zero_()
    ok = accelerator.reduce(ok, reduction="sum")  # every process learns whether the save worked
    if error is not None:
        raise error
    if int(ok.item()) < accelerator.num_processes:
        raise CheckpointError(f"the main process could not write checkpoint-{step}; see its error")


def _save_final(accelerator, module, loaded: LoadedModel, cfg: PretrainConfig, out: Path) -> None:
    model = accelerator.unwrap_model(module).model
    if cfg.lora.enabled:
        model.save_pretrained(out / "adapter")
        model = model.merge_and_unload()
    model.save_pretrained(out)
    loaded.tokenizer.save_pretrained(out)


# --------------------------------------------------------------------------------------------
# Console rendering and the demo step


@contextlib.contextmanager
def console_reporter(console):
    """An ``on_event`` callback that draws a rich progress bar (tokens/s, loss, ETA) on a
    terminal and prints plain log lines elsewhere."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("pretrain"), BarColumn(), TextColumn("step {task.completed}/{task.total}"),
        TextColumn("{task.fields[tps]} tok/s"), TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=console, transient=True, disable=not console.is_terminal,
    )
    task = None

    def on_event(event: dict[str, Any]) -> None:
        nonlocal task
        kind = event["kind"]
        if kind == "info":
            progress.console.print(event["message"])
        elif kind == "eval":
            progress.console.print(f"eval ({event['when']}, step {event['step']}): loss {event['loss']:.4f}, "
                                   f"perplexity {event['perplexity']:.2f} on {event['sequences']} held-out sequences")
        elif kind == "step":
            fields = {"tps": f"{event['tokens_per_s']:.0f}" if event.get("tokens_per_s") else "-",
                      "loss": f"{event['loss']:.3f}" if event.get("loss") is not None else "-"}
            if task is None:
                task = progress.add_task("pretrain", total=event["total_steps"], **fields)
            progress.update(task, completed=event["step"], **fields)
        elif kind == "log" and not console.is_terminal:
            console.print(f"step {event['step']}: loss {event['loss']:.4f}, lr {event['lr']:.2e}, "
                          f"{event['tokens_per_s']:.0f} tokens/s")

    with progress:
        yield on_event


def demo_config(paths, **overrides: Any) -> PretrainConfig:
    """The short CPU DAPT step of ``domainfm demo``, ``tasks/pretrain-demo.yaml`` as shipped in the
    package: embedded MiniLM, packed 128-token blocks, whole-word masking, 40 steps of 16
    sequences; ``paths`` replaces the file's ``data.paths``."""
    from domainfm.config import apply_overrides, from_dict
    from domainfm.resources import read_packaged_task

    data = read_packaged_task("pretrain-demo.yaml")
    data["data"]["paths"] = [str(p) for p in paths]
    return from_dict(PretrainConfig, apply_overrides(data, overrides))


def pretrain_demo(paths, out_dir, *, console=None, allow_identified_data: bool = False,
                  **overrides: Any) -> PretrainResult:
    """Run the demo's DAPT step on de-identified sample corpora and print a short summary.

    Args:
        paths: de-identified JSONL files (the demo's deid outputs).
        out_dir: where the adapted model goes (replaced when it holds an earlier run).
        console: a rich console for progress (default: none).
        overrides: dotted config overrides, e.g. ``**{"train.max_steps": 10}``.
    """
    cfg = demo_config(paths, **overrides)
    reporter = console_reporter(console) if console is not None else contextlib.nullcontext(None)
    with reporter as on_event:
        result = pretrain(cfg, out_dir, overwrite=True, allow_identified_data=allow_identified_data,
                          on_event=on_event)
    if console is not None:
        before, after = result.metrics["eval_before"], result.metrics["eval_after"]
        if before and after:
            console.print(f"DAPT: held-out perplexity {before['perplexity']:.1f} -> {after['perplexity']:.1f} "
                          f"({result.steps} steps, {result.metrics['train']['tokens_per_s']:.0f} tokens/s) "
                          f"-> {result.out_dir}")
    return result
