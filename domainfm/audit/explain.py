"""shap explanations: a Partition explainer with a Text masker over the scorer, one chunk at a
time for long documents, mapped back to document character offsets.

Per chunk, shap's Text masker splits the chunk into token segments that concatenate to the chunk
text, so each token's character range is known; every character of a token gets the token's
shap value, and :func:`domainfm.chunk.merge_char_attributions` averages chunks that overlap.

Speed: every masked sample of a chunk is one model sequence, so a scorer that offers
``score_sequences`` (:class:`~domainfm.audit.scorer.TaskModelScorer` does) scores them directly:
one fast-tokenizer call per batch, length-sorted batches with dynamic padding, under
``torch.inference_mode``: the samples shap's Owen loop asks for in one call (about 6) go through
the model as one batch instead of one pipeline call each, and several chunks (``parallel``,
across documents) are explained at once in threads whose calls are joined into one forward
pass. The masking (shap's Text masker, the tokenizer's mask token, the partition tree) and each
Owen loop are shap's, so the explanation is the one shap's ``Explainer(pipeline)`` gives, up to
floating-point noise (``tests/benchmarks/bench_audit_explain.py`` measures both side by side).
A larger Owen batch was tried first: it expands other nodes under the same ``max_evals``, and
the top-10 tokens agreed half as often.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from domainfm.errors import ConfigError

logger = logging.getLogger(__name__)


@dataclass
class Explanation:
    """One document: its token segments in document coordinates and their shap values."""

    doc_id: str
    tokens: list[tuple[int, int, np.ndarray]]  # (start, end, values per class)
    char_values: np.ndarray  # [n_chars, n_classes] merged over chunks


def _chunks(scorer: Any, doc_id: str, text: str) -> list[Any]:
    """Chunks that fit the scorer's model (one chunk when it has no length limit). A model that
    truncates sees only its first ``max_length`` tokens: only that part is explained (the rest
    cannot change the prediction and keeps the value 0)."""
    from domainfm.chunk.splitter import Chunk

    tm = getattr(scorer, "tm", None)
    if tm is not None and tm.long_documents.strategy == "truncate" and text:
        enc = tm.tokenizer(text, truncation=True, max_length=tm.max_length, return_offsets_mapping=True,
                           return_special_tokens_mask=True, verbose=False)
        end = max((e for (_, e), special in zip(enc["offset_mapping"], enc["special_tokens_mask"]) if not special),
                  default=len(text))
        return [Chunk(id=f"{doc_id}#0", doc_id=doc_id, start=0, end=end, text=text[:end], n_tokens=0, section="")]
    if tm is not None and tm.long_documents.strategy == "chunk":
        from domainfm.chunk import ChunkConfig, Chunker
        from domainfm.corpus.document import Document

        cfg = ChunkConfig(tokenizer=getattr(tm.tokenizer, "name_or_path", None) or "model", max_tokens=tm.max_length,
                          overlap=min(tm.long_documents.overlap, max(0, tm.max_length // 2 - 1)),
                          profile=tm.long_documents.profile)
        chunks = Chunker(cfg, tm.tokenizer).chunk(Document(doc_id, text))
        if chunks:
            return chunks
    return [Chunk(id=f"{doc_id}#0", doc_id=doc_id, start=0, end=len(text), text=text, n_tokens=0, section="")]


class _Batcher:
    """Joins the model calls of several shap explainers running in threads into one forward
    pass: a call waits until every running explainer has asked (or finished), then all their
    masked samples are scored together. Each explainer's Owen loop is unchanged; only the
    batch it shares a forward pass with is larger."""

    def __init__(self, score, batch_size: int, n_workers: int, n_outputs: int):
        self.score = score
        self.n_outputs = n_outputs
        self.batch_size = batch_size
        self.active = n_workers
        self.pending: list[dict[str, Any]] = []
        self.cond = threading.Condition()

    def __call__(self, texts):
        slot: dict[str, Any] = {"texts": [str(t) for t in np.asarray(texts).reshape(-1)], "done": False}
        with self.cond:
            self.pending.append(slot)
            if len(self.pending) >= self.active:
                self._run()
            while not slot["done"]:
                self.cond.wait()
        if "error" in slot:
            raise slot["error"]
        return slot["out"]

    def finished(self):
        with self.cond:
            self.active -= 1
            if self.pending and len(self.pending) >= self.active:
                self._run()

    def _run(self):  # holds the lock; every other running explainer is waiting in __call__
        slots, self.pending = self.pending, []
        texts = [t for slot in slots for t in slot["texts"]]
        try:
            probs = np.vstack([np.zeros((0, self.n_outputs))] + [np.asarray(self.score(texts[a:a + self.batch_size]))
                                                                for a in range(0, len(texts), self.batch_size)])
        except BaseException as exc:  # handed to every waiting explainer, raised in its thread
            for slot in slots:
                slot["error"], slot["done"] = exc, True
        else:
            pos = 0
            for slot in slots:
                slot["out"], slot["done"] = probs[pos:pos + len(slot["texts"])], True
                pos += len(slot["texts"])
        self.cond.notify_all()


def explain_texts(scorer: Any, items: Sequence[tuple[str, str]], *, max_evals: int, seed: int = 0,
                  batch_size: int = 32, parallel: int = 8) -> list[Explanation]:
    """Explain ``(doc_id, text)`` items for every class of the scorer.

    Args:
        max_evals: shap's budget of model evaluations per chunk.
        batch_size: the most masked samples in one forward pass.
        parallel: chunks explained at the same time (in threads), their masked samples scored
            together; 1 explains one chunk after the other. The values do not depend on it
            (up to floating-point noise): each chunk's Owen loop runs as shap runs it.
    """
    import shap

    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"The 'batch_size' parameter must be an int >= 1. Got {batch_size!r} instead.")
    if not isinstance(parallel, int) or parallel < 1:
        raise ConfigError(f"The 'parallel' parameter must be an int >= 1. Got {parallel!r} instead.")
    tokenizer = getattr(scorer, "tokenizer", None)
    n_classes = len(scorer.labels)
    # a masked chunk is one model sequence: skip chunking it again when the scorer can
    score = getattr(scorer, "score_sequences", None) or scorer.predict_proba
    jobs = [(k, chunk) for k, (doc_id, text) in enumerate(items) for chunk in _chunks(scorer, doc_id, text)]
    n_workers = max(1, min(parallel, len(jobs)))
    batcher = _Batcher(score, batch_size, n_workers, n_classes)
    logger.info("shap Partition explainer, max_evals=%d per chunk, %d chunks, batch_size=%d, parallel=%d",
                max_evals, len(jobs), batch_size, n_workers)
    results: dict[int, Any] = {}
    queue = list(range(len(jobs)))
    lock = threading.Lock()

    def worker():
        # a tokenizer and masker per thread: shap's masker caches the text it masks, and a fast
        # tokenizer must not be reconfigured from two threads at once
        tok = copy.deepcopy(tokenizer) if tokenizer is not None else None
        masker = shap.maskers.Text(tok) if tok is not None else shap.maskers.Text(r"\W+")
        explainer = shap.explainers.Partition(batcher, masker, output_names=list(scorer.labels), seed=seed)
        try:
            while True:
                with lock:
                    if not queue:
                        return
                    j = queue.pop(0)
                # shap's own Owen batch size (about 6 masked samples per call): a larger one
                # expands other nodes under the same budget and changes the values
                results[j] = explainer([jobs[j][1].text], max_evals=max_evals, silent=True)
        except BaseException as exc:
            results.setdefault("error", exc)
        finally:
            batcher.finished()

    if n_workers == 1:
        worker()
    else:
        threads = [threading.Thread(target=worker, daemon=True) for _ in range(n_workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if "error" in results:
        raise results["error"]
    return [_document_explanation(doc_id, text, [(chunk, results[j]) for j, (k, chunk) in enumerate(jobs) if k == i],
                                  n_classes)
            for i, (doc_id, text) in enumerate(items)]


def _document_explanation(doc_id: str, text: str, explained: list[tuple[Any, Any]], n_classes: int) -> Explanation:
    """Chunk explanations -> token values and character values in document coordinates."""
    from domainfm.chunk import merge_char_attributions

    chunks = [chunk for chunk, _ in explained]
    per_chunk, tokens = [], []
    for chunk, sv in explained:
        values = np.asarray(sv.values[0], dtype=float).reshape(-1, n_classes)
        segments = list(sv.data[0])
        chars = np.zeros((len(chunk.text), n_classes))
        pos = 0
        for seg, val in zip(segments, values):
            seg = str(seg)
            end = min(pos + len(seg), len(chunk.text))
            if end > pos:
                chars[pos:end] = val
                stripped = seg.strip()
                if stripped:
                    lead = len(seg) - len(seg.lstrip())
                    tokens.append((chunk.start + pos + lead, chunk.start + pos + lead + len(stripped), val))
            pos = end
        per_chunk.append(chars)
    merged = {k: merge_char_attributions(chunks, [c[:, k] for c in per_chunk], {doc_id: len(text)})[doc_id]
              for k in range(n_classes)}
    char_values = np.stack([merged[k] for k in range(n_classes)], axis=1) if text else np.zeros((0, n_classes))
    # one entry per document token: overlapping chunks repeat tokens, or cut a word differently
    # where one starts inside it; keep the first of overlapping ones, with the merged value. In
    # start order, a token overlaps one already kept exactly when it starts before the last end
    doc_tokens, last_end = [], -1
    for s, e, _ in sorted(tokens, key=lambda t: (t[0], t[1])):
        if s < last_end:
            continue
        last_end = e
        doc_tokens.append((s, e, char_values[s:e].mean(0) if e > s else np.zeros(n_classes)))
    return Explanation(doc_id, doc_tokens, char_values)


def top_tokens(explanations: Sequence[Explanation], texts: dict[str, str], labels: Sequence[str],
               k: int = 10) -> dict[str, list[dict[str, Any]]]:
    """Per class, the tokens (lower-cased, with a letter or digit) with the largest summed shap
    value towards it over the explained documents (the examples plus ``explain_sample``)."""
    totals: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(len(labels)))
    counts: dict[str, int] = defaultdict(int)
    for ex in explanations:
        text = texts[ex.doc_id]
        for s, e, val in ex.tokens:
            word = text[s:e].lower()
            if not any(ch.isalnum() for ch in word):  # punctuation and masked PHI carry no meaning here
                continue
            totals[word] += val
            counts[word] += 1
    out = {}
    for c, label in enumerate(labels):
        ranked = sorted(totals, key=lambda w: -totals[w][c])[:k]
        out[label] = [{"token": w, "total": float(totals[w][c]), "count": counts[w]} for w in ranked
                      if totals[w][c] > 0]
    return out


def highlight_segments(ex: Explanation, text: str, k: int) -> list[dict[str, Any]]:
    """The document cut into plain and token segments, each with its shap value for class ``k``."""
    segments, pos = [], 0
    for s, e, val in ex.tokens:
        if s < pos:
            continue
        if s > pos:
            segments.append({"text": text[pos:s], "value": None})
        segments.append({"text": text[s:e], "value": float(val[k])})
        pos = e
    if pos < len(text):
        segments.append({"text": text[pos:], "value": None})
    return segments
