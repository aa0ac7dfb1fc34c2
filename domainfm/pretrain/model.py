"""The model a DAPT run adapts: loaded offline-friendly, checked against its tokenizer, given a
seeded masked-LM head when the checkpoint is a bare encoder, and wrapped in LoRA adapters."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from domainfm.errors import ConfigError, ModelResolutionError
from domainfm.models import quiet_peft_wrap

MLM_HEAD_NEW = "newly initialised, decoder tied to input embeddings"
_HEAD_NAMES = ("cls", "lm_head", "generator_lm_head")


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    objective: str
    head: str | None
    mlm_head: str
    source: str
    info: dict[str, Any] = field(default_factory=dict)


def load_model(model_cfg, seed: int = 13, *, field: str = "model.name") -> LoadedModel:
    """Load tokenizer and masked-LM / causal-LM model, offline-friendly, and check they match.

    A masked-LM head missing from the checkpoint (the embedded MiniLM is a bare encoder) is
    created seeded, with its decoder tied to the input embeddings and a zero bias. ``field`` is
    the setting that named the model, as errors call it (the privacy audit's ``base_model``).

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

    source = resolve_model(model_cfg.name, field=field)
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

    tok_source = resolve_model(model_cfg.tokenizer, field="model.tokenizer", weights=False) if model_cfg.tokenizer \
        else source
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


def wrap_lora(loaded: LoadedModel, cfg) -> Any:
    """LoRA adapters (``cfg.lora``) around the model; a new MLM head is trained in full."""
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
