"""From chunks back to documents: spans, predictions and attributions in document coordinates.

Models see chunks; users and the later stages (finetune, audit) reason about documents. These
helpers undo the chunking:

- :func:`project_spans`: spans in chunk coordinates (the chunk's own ``spans`` or a model's
  predictions per chunk) -> spans in document coordinates, with the copies that overlapping
  chunks produce merged and spans cut by a chunk boundary restored.
- :func:`aggregate_predictions`: one prediction per chunk (class probabilities) -> one per
  document: the mean weighted by chunk length, or the maximum.
- :func:`merge_char_attributions` / :func:`merge_token_attributions`: explanation scores per
  chunk -> per document, averaged where chunks overlap.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Literal, Mapping, Sequence

import numpy as np

from domainfm.chunk.splitter import Chunk
from domainfm.corpus.document import Span
from domainfm.errors import ConfigError

_CHUNK_ATTRS = ("cut", "doc_start", "doc_end")


def project_spans(
    chunks: Iterable[Chunk],
    spans: Iterable[Sequence[Span]] | None = None,
    *,
    merge: Literal["exact", "union"] = "union",
    texts: Mapping[str, str] | None = None,
) -> dict[str, list[Span]]:
    """Spans in chunk coordinates -> spans in document coordinates, per document id.

    Args:
        chunks: the chunks (of one or several documents).
        spans: one list of spans per chunk (e.g. a NER model's predictions), in chunk
            coordinates; ``None`` uses each chunk's own ``spans``: the document's spans, given
            back exactly as the document had them (``merge`` does not apply to them).
        merge: how copies from overlapping chunks are combined. Identical spans are always
            kept once, and a span cut by a boundary (attrs ``cut``/``doc_start``/``doc_end``,
            as the chunker writes them) is restored to its full extent, which is then final.
            ``"union"`` also joins same-label spans from *different* chunks that overlap or
            touch at a chunk edge (a model's two views of one entity), and the two pieces of an
            entity that a cut between chunks splits: one ends at its chunk's end, the other
            starts at the next chunk's start, and only the whitespace the chunker trimmed at the
            cut (no chunk holds it) lies between them. That rule takes the chunks as the chunker
            made them, all of a document's chunks (a chunk left out makes its neighbours look
            like neighbours). Two of a model's same-label entities that meet exactly at a cut
            are told from one cut entity by nothing in the spans: they come back as one; with
            chunks that overlap, one chunk sees them both and they stay apart. ``"exact"``
            keeps every view apart.
        texts: the documents' texts by id, when known: a cut at a line break that ends a short
            line (under :data:`WRAPPED_LINE` characters) joins nothing: a list of entities, one
            per line ("aspirin" / "heparin"), is cut exactly there, while an entity runs across
            a line break where the text is hard-wrapped, after a long line.

    Views are unioned, never chosen between: overlapping spans of different labels both stay,
    and scores in ``attrs`` are neither compared nor combined. The span labeler, which must pick
    one confident layer, joins its chunks' views with its own rule instead
    (``domainfm.label.spans._merge_chunk_spans``: the more confident view wins, a view at a cut
    gives way to a whole one; pieces on both sides of a cut are joined by :func:`joinable_cuts`,
    as here).

    Returns:
        ``{doc_id: [Span, ...]}`` sorted by position; the chunk-only attrs are removed.

    Example:
        >>> merged = project_spans(chunks)  # doctest: +SKIP
        >>> merged["n1"] == sorted(doc.spans, key=lambda s: (s.start, s.end))  # doctest: +SKIP
        True
    """
    if merge not in ("exact", "union"):
        raise ConfigError(f"'merge' must be 'exact' or 'union', got {merge!r}")
    chunks = list(chunks)
    if spans is None:
        # Two of the document's own same-label spans that meet at a chunk boundary ("aspirin"
        # ending one chunk, "81 mg" starting the next) are two spans, not two views of one.
        merge = "exact"
    per_chunk = [c.spans for c in chunks] if spans is None else list(spans)
    if len(per_chunk) != len(chunks):
        raise ConfigError(f"got spans for {len(per_chunk)} chunks but {len(chunks)} chunks")
    pieces: dict[str, list[tuple[Span, int, bool, bool]]] = defaultdict(list)  # span, chunk no., at edges
    ranges: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for number, (chunk, chunk_spans) in enumerate(zip(chunks, per_chunk)):
        length = chunk.end - chunk.start
        ranges[chunk.doc_id].append((chunk.start, chunk.end))
        for i, span in enumerate(chunk_spans):
            if not 0 <= span.start < span.end <= length:
                # a span past the chunk would land on the next chunk's text without a word said
                raise ConfigError(
                    f"chunk {chunk.id!r}: span {i} [{span.start}:{span.end}] must lie inside the chunk "
                    f"(0 <= start < end <= {length}); spans are given in chunk coordinates"
                )
            attrs = {k: v for k, v in span.attrs.items() if k not in _CHUNK_ATTRS}
            if "doc_start" in span.attrs and "doc_end" in span.attrs:
                start, end = int(span.attrs["doc_start"]), int(span.attrs["doc_end"])
                at_edge = (False, False)  # its whole extent is known: no other view completes it
            else:
                start, end = chunk.start + span.start, chunk.start + span.end
                at_edge = (span.start <= 0, span.end >= length)
            pieces[chunk.doc_id].append((Span(start, end, span.label, attrs), number, *at_edge))
    result = {}
    for doc_id, items in pieces.items():
        cuts = joinable_cuts(ranges[doc_id], (texts or {}).get(doc_id))
        result[doc_id] = _merge(items, union=merge == "union", cuts=cuts)
    return result


def joinable_cuts(ranges: Sequence[tuple[int, int]], text: str | None = None) -> dict[int, int]:
    """``{start: end}`` of the cuts between one document's chunks across which a same-label piece
    ending at ``end`` and one starting at ``start`` are taken for one entity that the cut split
    (:func:`project_spans`' ``"union"`` rule, which the span labeler shares).

    Args:
        ranges: ``(start, end)`` of each of the document's chunks, all of them, in document
            characters; where chunks overlap there is no cut.
        text: the document's text, when known: a cut whose gap holds a line break ending a line
            shorter than :data:`WRAPPED_LINE` characters (one entity per line) joins nothing;
            after a longer line the text is hard-wrapped and an entity may run on.
    """
    cuts = _cuts(list(ranges))
    if text is None:
        return cuts
    return {start: end for start, end in cuts.items() if not ends_short_line(text, end, start)}


#: a line at least this long ends in a line break the writer's editor put there (hard-wrapped text)
WRAPPED_LINE = 40


def ends_short_line(text: str, end: int, start: int) -> bool:
    """Whether the gap ``text[end:start]`` holds a line break that ends a line shorter than
    :data:`WRAPPED_LINE` (a list item, a heading), not a hard-wrapped one: the pieces on either
    side are two entities. Shared by :func:`joinable_cuts` (a cut between chunks) and the span
    labeler's ``domainfm.label.span_edges.compound_edges`` (whitespace between two spans)."""
    gap = text[end:start]
    if "\n" not in gap:
        return False
    line_start = text.rfind("\n", 0, end) + 1
    return end + gap.index("\n") - line_start < WRAPPED_LINE


def _cuts(ranges: list[tuple[int, int]]) -> dict[int, int]:
    """``{start: end}`` of every cut between one document's chunks: ``end`` is where the chunks
    before it leave off and ``start`` where the next one begins, and no chunk holds any character
    of ``[end, start)``: the whitespace the chunker trimmed there, or nothing."""
    cuts: dict[int, int] = {}
    covered = None  # the furthest any chunk so far reaches
    for start, end in sorted(r for r in ranges if r[1] > r[0]):  # an empty chunk holds no span nor cut
        if covered is not None and start >= covered:
            cuts[start] = covered
        covered = end if covered is None else max(covered, end)
    return cuts


def _merge(items: list[tuple[Span, int, bool, bool]], *, union: bool, cuts: Mapping[int, int]) -> list[Span]:
    # Identical spans from several chunks are one span: remember which chunks saw it and
    # whether it touched a chunk's left/right edge in any of them.
    unique: dict[tuple[int, int, str], list] = {}
    for span, number, left_edge, right_edge in items:
        entry = unique.setdefault(span.key, [span, set(), False, False])
        entry[1].add(number)
        entry[2] |= left_edge
        entry[3] |= right_edge
    if not union:
        return sorted((e[0] for e in unique.values()), key=lambda s: (s.start, s.end, s.label))
    merged: list[list] = []
    ordered = sorted(unique.values(), key=lambda e: (e[0].label, e[0].start, -e[0].end))
    for span, numbers, left_edge, right_edge in ordered:
        if merged:
            last, last_numbers, last_left, last_right = merged[-1]
            overlaps = span.start < last.end or (span.start == last.end and last_right and left_edge)
            # Only views from different chunks are joined: nested same-label spans that one
            # chunk reports side by side stay separate.
            if last.label == span.label and overlaps and numbers.isdisjoint(last_numbers):
                joined = Span(last.start, max(last.end, span.end), last.label, {**span.attrs, **last.attrs})
                # the joined span starts where ``last`` does, so it keeps ``last``'s left edge (a cut's
                # far side, see _join_at_cuts)
                merged[-1] = [joined, last_numbers | numbers, last_left,
                              right_edge if span.end >= last.end else last_right]
                continue
        merged.append([span, set(numbers), left_edge, right_edge])
    return sorted((m[0] for m in _join_at_cuts(merged, cuts)), key=lambda s: (s.start, s.end, s.label))


def _join_at_cuts(merged: list[list], cuts: Mapping[int, int]) -> list[list]:
    """Join the pieces of entities that a cut between chunks split (see :func:`project_spans`).

    The cut's whitespace is in neither chunk, so the two pieces neither overlap nor touch and the
    sweep in :func:`_merge` leaves them apart. ``merged`` holds ``[span, chunk numbers, at left
    edge, at right edge]`` sorted by label, then start.
    """
    # (label, end) -> the earliest-starting span that ends there at its chunk's right edge: a
    # piece that a cut's far side may continue. Only the edge flags make a span a piece: a
    # document's own spans restored to their full extent never carry them.
    ending: dict[tuple[str, int], list] = {}
    kept: list[list] = []
    for entry in merged:
        span, numbers, left_edge, right_edge = entry
        before = ending.get((span.label, cuts.get(span.start, -1))) if left_edge else None
        if before is not None and before[0].end == cuts[span.start] and before[3] \
                and numbers.isdisjoint(before[1]):
            # the piece before the cut grows in place, so an entity over three chunks chains on
            last = before[0]
            before[0] = Span(last.start, span.end, last.label, {**span.attrs, **last.attrs})
            before[1] = before[1] | numbers
            before[3] = right_edge
            entry = before
        else:
            kept.append(entry)
        key = (entry[0].label, entry[0].end)
        held = ending.get(key)
        if entry[3] and (held is None or held[0].end != key[1] or not held[3]):  # none, or one that grew on
            ending[key] = entry
    return kept


def aggregate_predictions(
    chunks: Iterable[Chunk],
    predictions: Iterable[Mapping[str, float] | Sequence[float] | np.ndarray],
    *,
    how: Literal["mean", "max"] = "mean",
    weight: Literal["chars", "tokens", "none"] = "chars",
) -> dict[str, Any]:
    """Chunk-level predictions -> document-level ones.

    Args:
        chunks: the chunks that were scored.
        predictions: one per chunk: a ``{label: probability}`` mapping or a probability vector.
        how: ``"mean"`` (weighted by chunk length: a long chunk says more about the document
            than a short tail) or ``"max"`` (the document has the label if any chunk has it,
            e.g. "contains a non-compete clause").
        weight: chunk length in characters, in tokens, or equal weights (``"none"``).

    Returns:
        ``{doc_id: aggregated}`` in the type the predictions came in (mapping or ``ndarray``).

    Example:
        >>> aggregate_predictions(chunks, [{"pos": 0.9}, {"pos": 0.2}], how="max")  # doctest: +SKIP
        {'n1': {'pos': 0.9}}
    """
    if how not in ("mean", "max"):
        raise ConfigError(f"'how' must be 'mean' or 'max', got {how!r}")
    if weight not in ("chars", "tokens", "none"):
        raise ConfigError(f"'weight' must be 'chars', 'tokens' or 'none', got {weight!r}")
    chunks, predictions = list(chunks), list(predictions)
    if len(chunks) != len(predictions):
        raise ConfigError(f"got {len(predictions)} predictions for {len(chunks)} chunks")
    groups: dict[str, list[tuple[float, Any, str]]] = defaultdict(list)
    for chunk, prediction in zip(chunks, predictions):
        w = {"chars": max(1, chunk.end - chunk.start), "tokens": max(1, chunk.n_tokens), "none": 1}[weight]
        groups[chunk.doc_id].append((float(w), prediction, chunk.id))
    result: dict[str, Any] = {}
    for doc_id, items in groups.items():
        weights = np.array([w for w, _, _ in items])
        first, first_id = items[0][1], items[0][2]
        for _, p, cid in items:
            if isinstance(p, Mapping) != isinstance(first, Mapping):
                raise ConfigError(f"chunk {cid!r}: prediction is a {type(p).__name__} but chunk {first_id!r} gave a "
                                  f"{type(first).__name__}; give every chunk a {{label: probability}} mapping, or "
                                  "every chunk a probability vector")
        if isinstance(first, Mapping):
            labels = list(dict.fromkeys(k for _, p, _ in items for k in p))
            matrix = np.array([[float(p.get(k, 0.0)) for k in labels] for _, p, _ in items])
        else:
            labels = None
            rows = [np.asarray(p, dtype=float) for _, p, _ in items]
            for row, (_, _, cid) in zip(rows, items):
                if row.shape != rows[0].shape:
                    raise ConfigError(f"chunk {cid!r}: prediction has shape {row.shape} but chunk {first_id!r} "
                                      f"{rows[0].shape}; give one probability per class for every chunk")
            matrix = np.array(rows)
        values = matrix.max(axis=0) if how == "max" else (weights[:, None] * matrix).sum(0) / weights.sum()
        result[doc_id] = dict(zip(labels, values.tolist())) if labels is not None else values
    return result


def merge_char_attributions(
    chunks: Iterable[Chunk],
    attributions: Iterable[Sequence[float] | np.ndarray],
    doc_lengths: Mapping[str, int] | None = None,
) -> dict[str, np.ndarray]:
    """Per-character scores of each chunk (length ``len(chunk.text)``) -> per document.

    Where chunks overlap, a character's score is the mean over the chunks that contain it;
    characters no chunk contains (whitespace between chunks) score 0.

    Args:
        doc_lengths: ``{doc_id: len(doc.text)}``; defaults to the last chunk's end.
    """
    chunks, attributions = list(chunks), list(attributions)
    if len(chunks) != len(attributions):
        raise ConfigError(f"got {len(attributions)} attributions for {len(chunks)} chunks")
    ends: dict[str, int] = defaultdict(int)
    for chunk in chunks:
        ends[chunk.doc_id] = max(ends[chunk.doc_id], chunk.end)
    totals = {d: np.zeros((doc_lengths or {}).get(d, e)) for d, e in ends.items()}
    for chunk in chunks:
        if chunk.end > len(totals[chunk.doc_id]):
            raise ConfigError(f"chunk {chunk.id!r} ends at character {chunk.end}, past doc_lengths"
                              f"[{chunk.doc_id!r}]={len(totals[chunk.doc_id])}; give len(doc.text) of its document")
    counts = {d: np.zeros_like(t) for d, t in totals.items()}
    for chunk, scores in zip(chunks, attributions):
        scores = np.asarray(scores, dtype=float)
        if scores.shape != (chunk.end - chunk.start,):
            raise ConfigError(
                f"chunk {chunk.id!r}: expected {chunk.end - chunk.start} character scores, got shape {scores.shape}"
            )
        totals[chunk.doc_id][chunk.start:chunk.end] += scores
        counts[chunk.doc_id][chunk.start:chunk.end] += 1
    return {d: np.divide(totals[d], counts[d], out=np.zeros_like(totals[d]), where=counts[d] > 0) for d in totals}


def merge_token_attributions(
    chunks: Iterable[Chunk],
    attributions: Iterable[Iterable[tuple[int, int, float]]],
) -> dict[str, list[tuple[int, int, float]]]:
    """Per-token scores ``(start, end, score)`` in chunk coordinates -> document coordinates.

    A token that two overlapping chunks both scored (same document character range) gets the
    mean of its scores. Returns ``{doc_id: [(start, end, score), ...]}`` sorted by position.
    """
    chunks, attributions = list(chunks), list(attributions)
    if len(chunks) != len(attributions):
        raise ConfigError(f"got {len(attributions)} attributions for {len(chunks)} chunks")
    sums: dict[str, dict[tuple[int, int], list[float]]] = defaultdict(dict)
    for chunk, tokens in zip(chunks, attributions):
        table = sums[chunk.doc_id]
        for start, end, score in tokens:
            if not 0 <= int(start) <= int(end) <= chunk.end - chunk.start:
                raise ConfigError(f"chunk {chunk.id!r}: token [{start}:{end}] must lie inside the chunk "
                                  f"(0 <= start <= end <= {chunk.end - chunk.start}); give chunk coordinates")
            key = (chunk.start + int(start), chunk.start + int(end))
            total = table.setdefault(key, [0.0, 0])
            total[0] += float(score)
            total[1] += 1
    return {
        d: [(s, e, total / count) for (s, e), (total, count) in sorted(table.items())]
        for d, table in sums.items()
    }
