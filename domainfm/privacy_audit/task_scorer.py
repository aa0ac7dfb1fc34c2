"""Scoring a fine-tuned classifier (``domainfm finetune``) for the privacy audit.

A classifier has no token likelihood, so its score of a text is the log-probability it gives a
label: the label tied to a canary (exposure) or a document's gold label (membership inference,
as loss = -score). The same ranking and AUC code as for language models then applies.
"""

from __future__ import annotations

import copy
import os
from typing import Sequence

import numpy as np

from domainfm.corpus.document import Document
from domainfm.errors import ConfigError


class TaskScorer:
    """A loaded task model (classification or multilabel) with the scorer interface of
    :class:`~domainfm.privacy_audit.lm.ScoringModel`."""

    def __init__(self, task_model, batch_size: int = 32, label: str | None = None):
        self.tm = task_model
        self.batch_size = batch_size
        self.label = label
        self.objective = f"task:{task_model.task}"

    @classmethod
    def load(cls, model_dir: str | os.PathLike, batch_size: int = 32) -> TaskScorer:
        from domainfm.inference import load_task_model

        tm = load_task_model(model_dir)
        if tm.task not in ("classification", "multilabel"):
            raise ConfigError(f"{model_dir}: the privacy audit measures classifiers and language models; "
                              f"this is a {tm.task!r} model")
        return cls(tm, batch_size)

    def with_label(self, label: str) -> TaskScorer:
        """The same model scoring ``label`` (a label of the model)."""
        if label not in self.tm.label_map.labels:
            raise ConfigError(f"canary label {label!r} is not one of the model's labels {self.tm.label_map.labels}")
        scorer = copy.copy(self)
        scorer.label = label
        return scorer

    def _docs(self, texts: Sequence[str]) -> list[Document]:
        from domainfm.finetune.canaries import with_field

        return [with_field(Document(id=str(i), text=""), self.tm.text_field, t) for i, t in enumerate(texts)]

    def _log_scores(self, docs: Sequence[Document]) -> np.ndarray:
        """Per document, the log-probability of every label, from the logits in float64 (probabilities
        in float32 saturate at 1 for a memorised text, and saturated scores would tie)."""
        from domainfm.finetune.data import encode_documents
        from domainfm.inference import score_features

        tm = self.tm
        encoded = encode_documents(list(docs), task=tm.task, tokenizer=tm.tokenizer, max_length=tm.max_length,
                                   long_documents=tm.long_documents, label_map=tm.label_map,
                                   label_field=tm.label_field, text_field=tm.text_field, with_labels=False)
        pad = tm.tokenizer.pad_token_id if tm.tokenizer.pad_token_id is not None else 0
        logits = score_features(tm.model, encoded.features, pad_id=pad, batch_size=self.batch_size)
        per_doc: list[list[np.ndarray]] = [[] for _ in docs]
        for feature, lg in zip(encoded.features, logits):
            per_doc[feature.doc_index].append(np.asarray(lg, dtype=np.float64))
        z = np.stack([np.mean(parts, axis=0) for parts in per_doc])  # a long document: its chunks' mean logits
        if tm.task == "multilabel":
            return -np.logaddexp(0.0, -z)  # log sigmoid
        return z - np.logaddexp.reduce(z, axis=1, keepdims=True)  # log softmax

    def span_token_counts(self, texts: Sequence[str], spans: Sequence[tuple[int, int]]) -> np.ndarray:
        """Tokens of each text that overlap its span (candidates must match the canary's count)."""
        enc = self.tm.tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return np.array([sum(1 for a, b in offsets if a < end and b > start and b > a)
                         for offsets, (start, end) in zip(enc["offset_mapping"], spans)])

    def span_logprobs(self, texts: Sequence[str], spans: Sequence[tuple[int, int]]) -> np.ndarray:
        """log P(label | text) for the bound label; the span only selects candidates upstream."""
        if self.label is None:
            raise ConfigError("TaskScorer.span_logprobs needs a label: use scorer.with_label(label)")
        k = self.tm.label_map.labels.index(self.label)
        return self._log_scores(self._docs(texts))[:, k]

    @property
    def label_field(self) -> str:
        """The document field holding the gold label(s)."""
        return self.tm.label_field

    def gold_status(self, doc: Document) -> tuple[str, str | None]:
        """Whether ``doc``'s task loss can be computed: ``("known", None)``, ``("missing", None)``
        (no gold label) or ``("unknown", label)`` (a class the model was not trained with). A
        multi-label loss runs over the model's labels, so only a missing list cannot be scored.

        Raises:
            RecordError: the label field holds something that is no label (a number list, ...).
        """
        from domainfm.finetune.data import document_target

        gold = document_target(doc, self.tm.task, self.tm.label_field, required=False)
        if gold is None:
            return "missing", None
        if self.tm.task == "classification" and gold not in self.tm.label_map.labels:
            return "unknown", gold
        return "known", None

    def document_losses(self, docs: Sequence[Document], **_ignored) -> np.ndarray:
        """The task loss of each document under its gold label(s): cross-entropy (NaN for a class
        the model does not know; the audit leaves those out first, see :meth:`gold_status`), or
        mean binary cross-entropy over the model's labels for multi-label models."""
        from domainfm.finetune.data import document_target

        labels = self.tm.label_map.labels
        log_p = self._log_scores(docs)
        losses = []
        for doc, row in zip(docs, log_p):
            gold = document_target(doc, self.tm.task, self.tm.label_field)
            if self.tm.task == "classification":
                losses.append(-row[labels.index(gold)] if gold in labels else np.nan)
            else:  # mean binary cross-entropy; log(1 - sigmoid(z)) = log sigmoid(z) - z
                y = np.array([1.0 if name in gold else 0.0 for name in labels])
                z = row - np.log1p(-np.exp(np.minimum(row, -1e-12)))  # back to logits
                losses.append(float(-(y * row + (1 - y) * (row - z)).mean()))
        return np.asarray(losses, dtype=float)
