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
    logits aggregated exactly as :func:`domainfm.inference.predict` does."""

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
        from domainfm.inference import load_task_model

        return cls(load_task_model(model_dir), batch_size=batch_size)

    def score_sequences(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities for texts that each fit one model sequence (longer ones are truncated
        at ``max_length``), as :meth:`predict_proba` gives for them, without chunking: one
        tokenizer call, length-sorted batches padded to their longest member, inference mode.
        shap's masked samples of a chunk are such texts."""
        from domainfm.finetune.data import Feature
        from domainfm.inference.predict import score_features
        from domainfm.metrics import softmax

        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, len(self.labels)))
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_length, return_attention_mask=False,
                             return_token_type_ids=False, verbose=False)["input_ids"]
        features = [Feature(doc_index=i, input_ids=ids, offset=0, length=len(t))
                    for i, (ids, t) in enumerate(zip(enc, texts))]
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        logits = score_features(self.tm.model, features, pad_id=pad, batch_size=self.batch_size)
        return softmax(np.stack(logits))

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        from domainfm.corpus.document import Document
        from domainfm.inference.predict import predict_outputs

        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, len(self.labels)))
        # blank texts (a fully masked shap sample) still need a row: the model's score for an
        # empty sequence ([CLS] [SEP]); the document path rejects documents without text
        out = np.zeros((len(texts), len(self.labels)))
        blank = [i for i, t in enumerate(texts) if not t.strip()]
        if blank:
            out[blank] = self.score_sequences([""] * len(blank))
        docs = [Document(id=f"t{i}", text=t) for i, t in enumerate(texts) if t.strip()]
        if docs:
            outputs = predict_outputs(self.tm, docs, batch_size=self.batch_size)
            out[[i for i, t in enumerate(texts) if t.strip()]] = np.vstack([np.asarray(o, dtype=float) for o in outputs])
        return out


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
