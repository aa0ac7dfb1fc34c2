"""Canaries in fine-tuning: made-up secrets, each tied to one label, added to the training
documents so that ``domainfm audit-privacy`` can measure what a task model memorised.

Every canary sentence (``prefix + secret + suffix``, see :mod:`domainfm.privacy_audit.canaries`)
becomes ``repeats`` extra training documents carrying one label. A classifier that
memorises the secret gives that label a higher probability with the true secret than with other
secrets of the same format in the same sentence: the secret-sharer exposure, with the model's
label probability as the score. The canaries and their labels go to the model's manifest only.
"""

from __future__ import annotations

import random
from typing import Any, Sequence

from domainfm.corpus.document import Document

CANARY_ID_PREFIX = "canary:"


def with_field(doc: Document, name: str, value: Any) -> Document:
    """``doc`` with ``value`` at a document field or ``meta.<key>``."""
    if name.startswith("meta."):
        doc.meta[name[5:]] = value
    else:
        setattr(doc, name, value)
    return doc


def canary_documents(cfg, labels: Sequence[str]) -> tuple[list[Document], list[dict[str, Any]]]:
    """The extra training documents and the manifest records (canary + its label) of a task.

    Args:
        cfg: the :class:`~domainfm.finetune.config.TaskConfig` (``canaries``, ``task``, fields).
        labels: the task's labels; each canary gets one, drawn with the run's seed.
    """
    from domainfm.privacy_audit.canaries import make_canaries

    if not cfg.canaries.enabled:
        return [], []
    rng = random.Random(f"domainfm-finetune-canary-labels:{cfg.train.seed}")
    docs, records = [], []
    # Canaries that share a sentence get different labels (a seeded rotation of the labels): the
    # sentence then says nothing about the label, and only the secret itself can fit it. One
    # canary per sentence leaves the sentence as a shortcut, and the exposure stays low even for
    # a model that memorises (use per_repeat >= the number of labels, see the README).
    next_label: dict[tuple[str, str, str], int] = {}
    order = list(labels)
    rng.shuffle(order)
    for canary in make_canaries(cfg.canaries, cfg.train.seed):
        sentence = (canary.format, canary.prefix, canary.suffix)
        if sentence not in next_label:
            next_label[sentence] = rng.randrange(len(order))
        label = order[next_label[sentence] % len(order)]
        next_label[sentence] += 1
        records.append({**canary.to_dict(), "label": label})
        target = label if cfg.task == "classification" else [label]
        for k in range(canary.repeats):
            doc = with_field(Document(id=f"{CANARY_ID_PREFIX}{canary.id}:{k}", text=""), cfg.data.text_field, canary.text)
            docs.append(with_field(doc, cfg.label_field, target))
    return docs, records
