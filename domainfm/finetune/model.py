"""The model a fine-tune trains: a base checkpoint with a new task head, and its LoRA wrapping."""

from __future__ import annotations

from domainfm.errors import ConfigError
from domainfm.finetune.config import TaskConfig
from domainfm.finetune.data import LabelMap
from domainfm.inference.pooling import apply_pooling
from domainfm.inference.predict import auto_model_class, keep_first_layers, task_model_config
from domainfm.models import quiet_hf_loading, quiet_peft_wrap, usable_positions


def load_model(cfg: TaskConfig, label_map: LabelMap):
    """The base model with a new task head, its tokenizer and the resolved source."""
    import torch
    from transformers import AutoTokenizer

    from domainfm.models import resolve_model

    source = resolve_model(cfg.model.name, field="model.name")
    tok_source = resolve_model(cfg.model.tokenizer, field="model.tokenizer", weights=False) if cfg.model.tokenizer \
        else source
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
    limit = usable_positions(model.config)
    if limit is not None and cfg.model.max_length > limit:
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


def wrap(model, cfg: TaskConfig):
    """LoRA adapters (unless ``train.full_finetune``); freshly initialised modules are trained and saved with them."""
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
