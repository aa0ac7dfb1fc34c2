"""The ``lora:`` section of pretrain and finetune task files: ``peft.LoraConfig``'s own field
names, one definition for both stages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from domainfm.config import check_fields
from domainfm.errors import ConfigError


@dataclass
class LoraSection:
    """LoRA adapters; every field is the ``peft.LoraConfig`` field of the same name.

    Args:
        r: adapter rank.
        lora_alpha: scaling numerator (the update is scaled by ``lora_alpha / r``).
        lora_dropout: dropout on the adapter input.
        target_modules: module names to adapt; null uses peft's default for the architecture
            (``query``, ``value`` for BERT).
        bias: ``none``, ``all`` or ``lora_only`` biases are trained.
        modules_to_save: modules trained in full and saved with the adapter; null = the
            task head (``classifier``/``score``), which peft adds for these task types.
        use_rslora: rank-stabilised scaling ``lora_alpha / sqrt(r)``.
        layers_to_transform: only adapt these layer indices (null = all).
    """

    r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    target_modules: list[str] | None = None
    bias: Literal["none", "all", "lora_only"] = "none"
    modules_to_save: list[str] | None = None
    use_rslora: bool = False
    layers_to_transform: list[int] | None = None

    def __post_init__(self):
        check_fields(self, "lora")
        if self.r < 1:
            raise ConfigError(f"lora.r must be an int >= 1, got {self.r}")
        if self.lora_alpha < 1:
            raise ConfigError(f"lora.lora_alpha must be an int >= 1, got {self.lora_alpha}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ConfigError(f"lora.lora_dropout must be in [0, 1), got {self.lora_dropout}")

    def to_peft(self, task_type: str | None = None):
        """The equivalent ``peft.LoraConfig`` (``task_type`` e.g. ``SEQ_CLS``, ``TOKEN_CLS``,
        ``CAUSAL_LM``; None for a masked LM, which peft has no task type for)."""
        from peft import LoraConfig

        return LoraConfig(
            task_type=task_type, r=self.r, lora_alpha=self.lora_alpha, lora_dropout=self.lora_dropout,
            target_modules=self.target_modules, bias=self.bias, modules_to_save=self.modules_to_save,
            use_rslora=self.use_rslora, layers_to_transform=self.layers_to_transform,
        )
