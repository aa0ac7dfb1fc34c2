"""Fine-tune task models with LoRA (or in full): document classification, multi-label
classification and NER from character spans, long documents through the chunk stage.

``from domainfm.finetune import TaskConfig, finetune, predict, evaluate`` is all a Python user
needs; the command line is ``domainfm finetune TASK.yaml -o MODEL_DIR [--dotted.overrides]``,
``domainfm predict MODEL_DIR IN.jsonl -o OUT.jsonl`` and ``domainfm evaluate MODEL_DIR IN.jsonl``.
Importing this package is cheap: torch and transformers load on first use.
"""

from __future__ import annotations

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
from domainfm.finetune.metrics import classification_metrics, entity_metrics, multilabel_metrics
from domainfm.finetune.predict import TaskModel, evaluate, load_task_model, predict
from domainfm.finetune.prepare import run_prepare
from domainfm.finetune.train import FinetuneResult, console_reporter, demo_config, finetune, finetune_demo

__all__ = [
    "DataSection",
    "FinetuneResult",
    "LabelsSection",
    "LongDocumentsSection",
    "LoraSection",
    "ModelSection",
    "PrepareStep",
    "TaskConfig",
    "TaskModel",
    "TrainSection",
    "classification_metrics",
    "console_reporter",
    "demo_config",
    "entity_metrics",
    "evaluate",
    "finetune",
    "finetune_demo",
    "load_task_model",
    "multilabel_metrics",
    "predict",
    "run_prepare",
]
