"""The model behind the audit: a small ``Scorer`` interface so tests can pass a fake.

A scorer has ``labels`` (class names, in score-column order) and ``predict_proba(texts)`` ->
``[n_texts, n_labels]`` array. A model that only gives labels (``predict(texts)``) is wrapped by
:class:`LabelOnlyScorer`: its scores are one-hot and the audit says calibration and probability
shifts are not available.
"""

from __future__ import annotations

import os
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from domainfm.errors import ConfigError


@runtime_checkable
class Scorer(Protocol):
    """``labels`` and ``predict_proba(texts) -> np.ndarray [n, len(labels)]``."""

    labels: Sequence[str]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...


class LabelOnlyScorer:
    """Wrap a model with ``labels`` and ``predict(texts) -> list of labels`` (no scores)."""

    has_scores = False

    def __init__(self, model: Any):
        self.model = model
        self.labels = list(model.labels)
        self.tokenizer = getattr(model, "tokenizer", None)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        index = {l: i for i, l in enumerate(self.labels)}
        out = np.zeros((len(texts), len(self.labels)))
        for row, label in enumerate(self.model.predict(list(texts))):
            if label not in index:
                raise ConfigError(f"the model predicted {label!r}, which is not one of its labels {self.labels}")
            out[row, index[label]] = 1.0
        return out


class TaskModelScorer:
    """A classification model from ``domainfm finetune``; long texts are chunked and their chunk
    logits aggregated exactly as :func:`domainfm.finetune.predict` does."""

    has_scores = True

    def __init__(self, task_model: Any, batch_size: int = 32):
        if task_model.task != "classification":
            raise ConfigError(f"the audit scores classification models; this one is a {task_model.task!r} model")
        self.tm = task_model
        self.labels = list(task_model.label_map.labels)
        self.tokenizer = task_model.tokenizer
        self.max_length = task_model.max_length
        self.batch_size = batch_size

    @classmethod
    def from_dir(cls, model_dir: str | os.PathLike, batch_size: int = 32) -> "TaskModelScorer":
        from domainfm.finetune import load_task_model

        return cls(load_task_model(model_dir), batch_size=batch_size)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        from domainfm.corpus.document import Document
        from domainfm.finetune.predict import predict_outputs

        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, len(self.labels)))
        # empty texts (a fully masked shap sample) still need a row: score a single space
        docs = [Document(id=f"t{i}", text=t if t.strip() else " ") for i, t in enumerate(texts)]
        outputs = predict_outputs(self.tm, docs, batch_size=self.batch_size)
        return np.vstack([np.asarray(o, dtype=float) for o in outputs])


def as_scorer(model: Any, batch_size: int = 32) -> Any:
    """A model folder, a loaded ``TaskModel`` or a scorer -> a scorer."""
    if isinstance(model, (str, os.PathLike)):
        return TaskModelScorer.from_dir(model, batch_size=batch_size)
    if hasattr(model, "label_map") and hasattr(model, "task"):
        return TaskModelScorer(model, batch_size=batch_size)
    if hasattr(model, "predict_proba") and hasattr(model, "labels"):
        return model
    if hasattr(model, "predict") and hasattr(model, "labels"):
        return LabelOnlyScorer(model)
    raise ConfigError("the model must be a model folder, a TaskModel, or have 'labels' and "
                      "'predict_proba(texts)' (or 'predict(texts)')")
