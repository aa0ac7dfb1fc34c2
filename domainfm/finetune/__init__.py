"""Fine-tune task models with LoRA (or in full): document classification, multi-label
classification and NER from character spans, long documents through the chunk stage.

``from domainfm.finetune import TaskConfig, finetune, predict, evaluate`` is all a Python user
needs; the command line is ``domainfm finetune TASK.yaml -o MODEL_DIR [--dotted.overrides]``,
``domainfm predict MODEL_DIR IN.jsonl -o OUT.jsonl`` and ``domainfm evaluate MODEL_DIR IN.jsonl``.
Importing this package is cheap: torch and transformers load on first use.
"""

from __future__ import annotations

from typing import Any

from domainfm.finetune.config import (
    DataSection,
    LabelsSection,
    LongDocumentsSection,
    LoraSection,
    ModelSection,
    PrepareStep,
    TaskConfig,
    TrainSection,
)

# Resolved on first use: training pulls in torch, and inference (domainfm.inference, shared with
# the audit, the labeler and the de-id tagger) imports this package's config and data modules.
_LAZY = {
    "FinetuneResult": "domainfm.finetune.train", "console_reporter": "domainfm.finetune.demo",
    "demo_config": "domainfm.finetune.demo", "finetune": "domainfm.finetune.train",
    "finetune_demo": "domainfm.finetune.demo", "run_prepare": "domainfm.finetune.prepare",
    "TaskModel": "domainfm.inference", "evaluate": "domainfm.inference", "load_task_model": "domainfm.inference",
    "predict": "domainfm.inference", "classification_metrics": "domainfm.metrics",
    "entity_metrics": "domainfm.metrics", "multilabel_metrics": "domainfm.metrics",
}

__all__ = sorted(["DataSection", "LabelsSection", "LongDocumentsSection", "LoraSection", "ModelSection",
                  "PrepareStep", "TaskConfig", "TrainSection", *_LAZY])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'domainfm.finetune' has no attribute {name!r}")
