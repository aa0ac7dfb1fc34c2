"""shap explanations: a Partition explainer with a Text masker over the scorer, one chunk at a
time for long documents, mapped back to document character offsets.

Per chunk, shap's Text masker splits the chunk into token segments that concatenate to the chunk
text, so each token's character range is known; every character of a token gets the token's
shap value, and :func:`domainfm.chunk.merge_char_attributions` averages chunks that overlap.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

logger = logging.getLogger(__name__)


@dataclass
class Explanation:
    """One document: its token segments in document coordinates and their shap values."""

    doc_id: str
    tokens: list[tuple[int, int, np.ndarray]]  # (start, end, values per class)
    char_values: np.ndarray  # [n_chars, n_classes] merged over chunks


def _chunks(scorer: Any, doc_id: str, text: str) -> list[Any]:
    """Chunks that fit the scorer's model (one chunk when it has no length limit)."""
    from domainfm.chunk.splitter import Chunk

    tm = getattr(scorer, "tm", None)
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


def explain_texts(scorer: Any, items: Sequence[tuple[str, str]], *, max_evals: int, seed: int = 0) -> list[Explanation]:
    """Explain ``(doc_id, text)`` items for every class of the scorer.

    Args:
        max_evals: shap's budget of model evaluations per chunk.
    """
    import shap

    from domainfm.chunk import merge_char_attributions

    tokenizer = getattr(scorer, "tokenizer", None)
    masker = shap.maskers.Text(tokenizer) if tokenizer is not None else shap.maskers.Text(r"\W+")
    n_classes = len(scorer.labels)

    def f(texts):
        return scorer.predict_proba([str(t) for t in np.asarray(texts).reshape(-1)])

    explainer = shap.explainers.Partition(f, masker, output_names=list(scorer.labels), seed=seed)
    logger.info("shap Partition explainer, max_evals=%d per chunk", max_evals)
    out = []
    for doc_id, text in items:
        chunks = _chunks(scorer, doc_id, text)
        per_chunk, tokens = [], []
        for chunk in chunks:
            sv = explainer([chunk.text], max_evals=max_evals, silent=True)
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
        # one entry per document token: overlapping chunks repeat tokens; keep the merged value
        seen, doc_tokens = set(), []
        for s, e, _ in sorted(tokens, key=lambda t: (t[0], t[1])):
            if (s, e) in seen or any(s < pe and e > ps for ps, pe in list(seen)[-3:]):
                continue
            seen.add((s, e))
            doc_tokens.append((s, e, char_values[s:e].mean(0) if e > s else np.zeros(n_classes)))
        out.append(Explanation(doc_id, doc_tokens, char_values))
    return out


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
