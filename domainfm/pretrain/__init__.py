"""Domain-adaptive pretraining (DAPT): continue masked-LM or causal-LM training on
de-identified domain text, with packing, masked-position logits, exact resume and DDP.

``from domainfm.pretrain import PretrainConfig, pretrain`` is all a Python user needs; the
command line is ``domainfm pretrain TASK.yaml -o OUT [--dotted.overrides]``. Importing this
package is cheap: torch and transformers load on first use of :func:`pretrain`.
"""

from __future__ import annotations

from typing import Any

from domainfm.pretrain.config import (
    DataConfig,
    LoraSection,
    MaskingConfig,
    ModelConfig,
    PretrainConfig,
    TrainConfig,
)
from domainfm.manifest import check_deidentified
from domainfm.pretrain.data import privacy_gate

_LAZY = {"pretrain", "pretrain_demo", "demo_config", "PretrainResult", "CheckpointError", "load_model",
         "console_reporter", "MLM_HEAD_NEW"}

__all__ = sorted([
    "DataConfig", "LoraSection", "MaskingConfig", "ModelConfig", "PretrainConfig", "TrainConfig",
    "check_deidentified", "privacy_gate", *_LAZY,
])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        where = "demo" if name in ("pretrain_demo", "demo_config", "console_reporter") else "train"
        return getattr(importlib.import_module(f"domainfm.pretrain.{where}"), name)
    raise AttributeError(f"module 'domainfm.pretrain' has no attribute {name!r}")
