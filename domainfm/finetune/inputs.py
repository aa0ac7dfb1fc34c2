"""A task's documents: prepared from the original dataset files, labels renamed, split into
train and evaluation sides, with the label map and data statistics."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from domainfm.errors import ConfigError, RecordError
from domainfm.finetune.config import TaskConfig
from domainfm.finetune.data import build_label_map, check_known_labels, document_text, load_documents, split_documents

Event = Callable[[dict[str, Any]], None]


def prepare_data(cfg: TaskConfig, on_event: Event | None = None) -> dict[str, Any]:
    """Run the task's ``data.prepare`` steps whose outputs do not exist yet."""
    from domainfm.finetune.prepare import run_prepare

    done = {}
    for step in cfg.data.prepare:
        counts = run_prepare(step)
        if counts is not None:
            done[step.out] = counts
            if on_event:
                on_event({"kind": "info", "message": f"prepared {step.out}: read {counts['read']} = written "
                          f"{counts['written']} + rejected {counts['rejected']}"})
    return done


def rename_spans(docs: list, mapping: dict[str, str | None] | None) -> list:
    """``labels.map`` applied to the documents' spans, in place (null drops a span)."""
    if mapping:
        for doc in docs:
            doc.spans = [dataclasses.replace(s, label=mapping.get(s.label, s.label)) for s in doc.spans
                         if mapping.get(s.label, s.label) is not None]
    return docs


def _check_disjoint(train_docs: list, eval_docs: list, d) -> None:
    """An evaluation document that is also a training document (same id and text: a file
    concatenated into both) inflates every score, and the recorded split (``split.json``) cannot
    put one document on both sides, so the audit would later refuse the model."""
    seen = {(doc.id, doc.text) for doc in train_docs}
    for doc in eval_docs:
        if (doc.id, doc.text) in seen:
            raise RecordError(f"this evaluation document (field 'id' and 'text') is also in the training data "
                              f"{d.train}; remove it from one of the two files", record_id=doc.id)


def load_task_data(cfg: TaskConfig):
    """Training and evaluation documents, the label map and data statistics."""
    d = cfg.data
    docs = rename_spans(load_documents(d.train, d.max_train_documents), cfg.labels.map)
    if not docs:
        raise ConfigError(f"{d.train}: no training documents")
    for doc in docs:
        document_text(doc, d.text_field)
    if d.eval:
        if Path(d.eval).resolve() == Path(d.train).resolve() and not d.eval_is_training:
            raise ConfigError(f"data.eval is the training file {d.train}: scores on documents the model trained on "
                              "say nothing about new ones; give a separate evaluation file, or leave data.eval "
                              "out to hold out data.eval_fraction of the training documents")
        train_docs = docs
        eval_docs = rename_spans(load_documents(d.eval, d.max_eval_documents), cfg.labels.map)
        if not d.eval_is_training:
            _check_disjoint(train_docs, eval_docs, d)
        split = {"split_key": None, "eval_source": d.eval + (" (training documents: a fit measure)"
                                                               if d.eval_is_training else "")}
    else:
        train_docs, eval_docs, split = split_documents(
            docs, eval_fraction=d.eval_fraction, split_key=d.split_key, seed=cfg.train.seed, task=cfg.task,
            label_field=cfg.label_field)
        if d.max_eval_documents:
            eval_docs = eval_docs[: d.max_eval_documents]
        split["eval_source"] = f"{d.eval_fraction:g} of {d.train}"
    label_map, counts = build_label_map(cfg.task, train_docs, cfg.label_field, cfg.labels.names,
                                        cfg.labels.min_examples)
    for doc in eval_docs:
        document_text(doc, d.text_field)
    check_known_labels(eval_docs, label_map, cfg.label_field)
    stats = {"train_documents": len(train_docs), "eval_documents": len(eval_docs), "label_counts": counts, **split}
    return train_docs, eval_docs, label_map, stats
