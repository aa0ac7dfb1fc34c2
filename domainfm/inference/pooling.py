"""How a sequence classifier turns token states into one vector (``model.pooling``).

- ``cls``: the architecture's own head (BERT: the ``[CLS]`` state through the pre-trained
  ``pooler`` dense + tanh). What plain ``AutoModelForSequenceClassification`` computes.
- ``mean``: the attention-masked mean of the last hidden states, fed straight to the
  classifier. Sentence encoders such as all-MiniLM-L6-v2 were trained with exactly this
  pooling (sentence-transformers), and their ``[CLS]`` state / pooler never were, so a LoRA
  classifier on top starts from a useful sentence vector.

Mean pooling replaces the encoder's ``pooler`` module with a parameter-free :class:`MeanPooler`
and registers a forward pre-hook on the encoder that hands it the attention mask. Nothing
of it is a weight: a saved model records ``pooling`` in ``domainfm_task.json`` (and
``domainfm_pooling`` in ``config.json``) and :func:`domainfm.finetune.load_task_model` applies it
again. Plain ``transformers`` has no mean-pooling sequence classifier, which is why
``--merge`` is refused for ``mean`` (see :func:`check_mergeable`).
"""

from __future__ import annotations

from typing import Any

from domainfm.errors import ConfigError

POOLINGS = ("cls", "mean")
CONFIG_KEY = "domainfm_pooling"


def _mean_pooler_class():
    import torch

    class MeanPooler(torch.nn.Module):
        """Masked mean of ``hidden_states`` over the sequence; the mask is set by the encoder's
        pre-hook just before each forward (all positions count when there is none)."""

        def __init__(self):
            super().__init__()
            self.mask = None

        def forward(self, hidden_states):
            mask, self.mask = self.mask, None
            if mask is None:
                return hidden_states.mean(dim=1)
            weights = mask[:, : hidden_states.shape[1]].unsqueeze(-1).to(hidden_states.dtype)
            return (hidden_states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)

    return MeanPooler


def _hand_mask_to_pooler(encoder, args: tuple, kwargs: dict[str, Any]) -> None:
    mask = kwargs.get("attention_mask")
    if mask is None and len(args) > 1:
        mask = args[1]  # BertModel.forward(input_ids, attention_mask, ...)
    pooler = getattr(encoder, "pooler", None)
    if pooler is not None and hasattr(pooler, "mask"):
        pooler.mask = mask


def apply_pooling(model, pooling: str):
    """Set ``model``'s (a ``...ForSequenceClassification``) pooling in place and return it.

    Raises:
        ConfigError: ``pooling`` is unknown, or ``mean`` on an architecture whose head does not
            read a ``pooler`` module (BERT-style encoders do: BERT, MiniLM, a DAPT output of them).
    """
    if pooling not in POOLINGS:
        raise ConfigError(f"model.pooling must be one of {list(POOLINGS)}, got {pooling!r}")
    if pooling == "cls":
        return model
    encoder = getattr(model, getattr(model, "base_model_prefix", ""), None)
    if encoder is None or getattr(encoder, "pooler", None) is None:
        raise ConfigError(f"model.pooling 'mean' needs a BERT-style encoder with a pooler; "
                          f"{type(model).__name__} ({model.config.model_type}) has none: use model.pooling: cls")
    encoder.pooler = _mean_pooler_class()()
    encoder.register_forward_pre_hook(_hand_mask_to_pooler, with_kwargs=True)
    setattr(model.config, CONFIG_KEY, pooling)
    return model


def check_mergeable(pooling: str, task: str) -> None:
    """``--merge`` promises a model plain ``AutoModelForSequenceClassification`` loads and runs
    the same; with mean pooling it would silently run the [CLS] pooler instead."""
    if task != "ner" and pooling == "mean":
        raise ConfigError("--merge cannot express model.pooling 'mean': plain transformers' sequence "
                          "classifier pools the [CLS] token, so a merged model would predict differently. "
                          "Keep the adapter (domainfm.finetune.load_task_model applies mean pooling) or "
                          "train with --model.pooling cls to merge")
