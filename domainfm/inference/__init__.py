"""Inference with task models, shared by every stage that scores text with one: ``finetune``
(evaluation), ``predict``/``evaluate``, the learned de-id tagger, the audit and the labeler.

``load_task_model(folder)`` loads what ``domainfm finetune`` wrote (LoRA adapter or full model,
with its label map and sequence settings); ``predict`` / ``evaluate`` / ``predict_outputs``
score documents of any length through the same windows and aggregation as training.
Importing this package is cheap: torch and transformers load on first use.
"""

from __future__ import annotations

from domainfm.inference.predict import (
    TASK_FILE,
    TaskModel,
    evaluate,
    load_task_model,
    predict,
    predict_outputs,
    read_task_info,
    score_features,
)

__all__ = ["TASK_FILE", "TaskModel", "evaluate", "load_task_model", "predict", "predict_outputs", "read_task_info",
           "score_features"]
