"""``method: finetune`` of few-shot span suggestion: a short LoRA fine-tune of a token classifier
on the seed documents, through the project's own NER fine-tune (:func:`domainfm.finetune.finetune`:
model, objective, training engine, chunking of long documents) and scored by
:mod:`domainfm.inference` -- no training loop of its own.

- **Regularisation for a handful of documents.** LoRA adapters only (``lora_r``), weight decay,
  and a step budget: ``epochs`` passes, bounded by ``min_steps`` / ``max_steps`` so 4 seeds
  still train and 64 seeds stay within minutes of CPU.
- **Calibration.** The seeds are split into ``calibration_folds`` folds; a model per fold (same
  recipe, fewer seeds) tags the held-out seeds, and those out-of-fold spans (raw confidence =
  mean probability of its words' tags, right or wrong by exact match) fit a Platt map to the
  probability that a span is exactly right. The final model is trained on all seeds. 2 folds
  by default: 4 folds (fold models nearer the final one) cost two more fine-tunes and were not
  better (NCBI, 32 seeds, two draws: ECE 0.110 / 0.108 with 2 folds, 0.055 / 0.126 with 4).
- **Annotation order.** As the probe's: a document's uncertainty is the largest, over its
  chunks, of the mean of its three most uncertain items (a suggested span, ``1 - |2c - 1|``, or
  a token's probability of being inside any span, a likely missed span), then
  :func:`domainfm.label.active.rank_scores` mixes in novelty (cosine distance of hashed
  word-count vectors of the texts).
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from domainfm.corpus.document import Document
from domainfm.label.span_config import SpanLabelConfig
from domainfm.label.spans import one_layer, overlapped_spans


@dataclass
class FinetunedSpans:
    """A fine-tuned span model with its calibration (the probe's ``_Fitted`` counterpart)."""

    task_model: Any  # domainfm.inference.TaskModel
    labels: list[str]
    calibration: Any  # domainfm.label.span_calibration.SpanCalibration
    summary: dict[str, Any]
    lexicon: Any = None  # domainfm.label.lexicon.SeedLexicon, or None when turned off
    tagger: None = None  # the probe's cached encoder; the live backend passes it back on refresh


def _task_config(cfg: SpanLabelConfig, train: Path, eval_: Path, labels: list[str], n_docs: int, seed: int,
                 fit: bool = False):
    from domainfm.finetune.config import (DataSection, LabelsSection, LongDocumentsSection, ModelSection,
                                          TaskConfig, TrainSection)
    from domainfm.lora import LoraSection

    # steps: ``epochs`` passes over the seeds' chunks (~2 per abstract at 256 tokens), clipped
    steps_per_epoch = max(1, math.ceil(2 * n_docs / cfg.batch_size))
    steps = int(min(cfg.max_steps, max(cfg.min_steps, cfg.epochs * steps_per_epoch)))
    return TaskConfig(
        task="ner",
        model=ModelSection(name=cfg.encoder, max_length=cfg.max_tokens, ner_decoding="words"),
        # the final model trains on every seed: its evaluation is a fit measure (seed_fit_f1)
        data=DataSection(train=str(train), eval=str(eval_), max_eval_documents=8, eval_is_training=fit),
        labels=LabelsSection(names=list(labels), min_examples=1),
        lora=LoraSection(r=cfg.lora_r, lora_alpha=2 * cfg.lora_r, lora_dropout=cfg.dropout,
                         target_modules=["query", "key", "value", "dense"]),
        long_documents=LongDocumentsSection(strategy="chunk", overlap=cfg.overlap),
        train=TrainSection(lr=cfg.finetune_lr, max_steps=steps, batch_size=cfg.batch_size,
                           weight_decay=cfg.weight_decay, warmup_ratio=0.1, class_weights=cfg.class_weights,
                           checkpoint=False, seed=seed,
                           eval_batch_size=32),
        # the seeds are what the user hands the labeler; the label stage's own gate (serve) decides
        # what annotators see, so the finetune stage's de-id gate is not the one that applies here
        allow_identified_data=True,
    )


def _one_layer(doc: Document, labels: Sequence[str]) -> Document:
    return dataclasses.replace(doc, spans=one_layer(doc.spans, labels))


def _train(cfg: SpanLabelConfig, train: Sequence[Document], eval_: Sequence[Document], labels: list[str],
           seed: int, work: Path, name: str):
    """One fine-tune through :func:`domainfm.finetune.finetune`; returns the loaded task model."""
    from domainfm.corpus import write_documents
    from domainfm.finetune import finetune
    from domainfm.inference import load_task_model

    folder = work / name
    folder.mkdir()
    # one annotation layer, as the probe learns: finetune would reject a seed whose spans overlap
    write_documents(folder / "train.jsonl", [_one_layer(d, labels) for d in train])
    write_documents(folder / "eval.jsonl", [_one_layer(d, labels) for d in eval_])
    tcfg = _task_config(cfg, folder / "train.jsonl", folder / "eval.jsonl", labels, len(train), seed,
                        fit=train is eval_)
    result = finetune(tcfg, folder / "model")
    tm = load_task_model(folder / "model", task="ner", device="cpu")
    shutil.rmtree(folder, ignore_errors=True)
    return tm, result.steps, (result.metrics.get("eval") or {}).get("f1")


def _score(tm, docs: Sequence[Document]):
    """Spans (with raw ``score``) per document and the per-chunk token probabilities of being
    inside a span, through :mod:`domainfm.inference`."""
    from domainfm.finetune.data import encode_documents
    from domainfm.inference import score_features
    from domainfm.inference.predict import document_outputs
    from domainfm.metrics import softmax

    enc = encode_documents(docs, task="ner", tokenizer=tm.tokenizer, max_length=tm.max_length,
                           long_documents=tm.long_documents, label_map=tm.label_map, label_field=tm.label_field,
                           text_field=tm.text_field, with_labels=False)
    pad = tm.tokenizer.pad_token_id if tm.tokenizer.pad_token_id is not None else 0
    logits = score_features(tm.model, enc.features, pad_id=pad, batch_size=32)
    spans = document_outputs("ner", tm.label_map, docs, enc.features, logits, tm.long_documents.aggregate,
                             "words", [d.text for d in docs])
    index = {d.id: i for i, d in enumerate(docs)}
    inside: list[list[np.ndarray]] = [[] for _ in docs]
    o = tm.label_map.tags.index("O") if "O" in tm.label_map.tags else 0
    for f, lg in zip(enc.features, logits):
        i = index[f.chunk.doc_id] if f.chunk is not None else f.doc_index
        p = softmax(np.asarray(lg, dtype=float))
        inside[i].append(1.0 - p[1:-1, o] if len(p) > 2 else 1.0 - p[:, o])  # without [CLS]/[SEP]
    return spans, inside


def train_finetuned(seeds: Sequence[Document], labels: list[str], cfg: SpanLabelConfig, *,
                    on_stage: Callable[[str], None] | None = None) -> FinetunedSpans:
    from domainfm.label.span_calibration import SpanCalibration
    from domainfm.label.spans import oof_rows, seed_lexicon

    stage = on_stage or (lambda s: None)
    t0 = time.perf_counter()
    fitted, calibration = SpanCalibration(), {"folds": 0}
    with tempfile.TemporaryDirectory(prefix="domainfm-spans-") as tmp:
        work = Path(tmp)
        folds = min(cfg.folds, len(seeds))
        if folds >= 2:
            rng = np.random.default_rng(cfg.seed)
            rows = []
            for r in range(cfg.repeats):
                fold_of = rng.permutation(len(seeds)) % folds
                for f in range(folds):
                    stage(f"calibration fold {f + 1}/{folds}" + (f" of split {r + 1}/{cfg.repeats}"
                                                                 if cfg.repeats > 1 else ""))
                    train = [d for d, k in zip(seeds, fold_of) if k != f]
                    held = [d for d, k in zip(seeds, fold_of) if k == f]
                    if not any(d.spans for d in train) or not held:
                        continue
                    tm, _, _ = _train(cfg, train, held, labels, cfg.seed + 1 + f + r * folds, work, f"fold{r}-{f}")
                    found, _ = _score(tm, held)
                    raw = [[(s.start, s.end, s.label, float(s.attrs.get("score", 0.5))) for s in spans]
                           for spans in found]
                    rows += oof_rows(held, raw, seed_lexicon(train, labels, cfg), cfg.abbreviations)
            fitted, fit_summary = SpanCalibration.fit(rows)
            calibration = {"folds": folds, "repeats": cfg.repeats, **fit_summary}
        stage("fine-tuning on all seeds")
        tm, steps, fit = _train(cfg, seeds, seeds, labels, cfg.seed, work, "final")
    lexicon = seed_lexicon(seeds, labels, cfg)
    summary = {"method": "finetune", "labels": labels, "seed_documents": len(seeds),
               "seed_spans": sum(len(d.spans) for d in seeds),
               "seed_spans_overlapped": overlapped_spans(seeds, labels), "steps": steps, "encoder": cfg.encoder,
               "lora_r": cfg.lora_r, "calibration": calibration,
               "seed_lexicon": None if lexicon is None else lexicon.summary,
               "seed_fit_f1": fit,  # entity F1 of the final model on (up to 8 of) its own seeds
               "train_seconds": round(time.perf_counter() - t0, 2)}
    return FinetunedSpans(tm, labels, fitted, summary, lexicon)


def predict_finetuned(model: FinetunedSpans, pool: Sequence[Document]):
    """Per document: ``(start, end, label, raw confidence)`` spans, the uncertainty, and a text
    vector for diversity."""
    from sklearn.feature_extraction.text import HashingVectorizer

    spans, inside = _score(model.task_model, pool)
    found, uncertainty = [], []
    for doc_spans, chunks in zip(spans, inside):
        raw = [(s.start, s.end, s.label, float(s.attrs.get("score", 0.5))) for s in doc_spans]
        found.append(raw)
        span_items = [1 - abs(2 * model.calibration.confidence(c, "model") - 1) for *_, c in raw]
        best = 0.0
        for e in chunks:  # the chunk's own tokens plus the document's spans (offsets differ per chunk)
            items = sorted(span_items + list(1 - np.abs(2 * e - 1)), reverse=True)
            best = max(best, float(np.mean(items[:3])) if items else 0.0)
        uncertainty.append(best)
    vectors = HashingVectorizer(n_features=2 ** 12, alternate_sign=False, norm="l2").transform(
        [d.text for d in pool]).toarray() if pool else np.zeros((0, 1))
    return found, uncertainty, vectors

