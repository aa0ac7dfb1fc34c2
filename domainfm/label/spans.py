"""Few-shot span suggestions: from a handful of documents annotated with spans, suggest spans
with calibrated confidences for a pool, and order the pool for annotation.

How it works (and why):

- **Chunks.** Documents are cut by :class:`domainfm.chunk.Chunker` (sentence boundaries first,
  ``overlap`` tokens repeated), so a long note or contract is tagged whole; spans from the
  overlapping parts of two chunks are merged, the more confident one winning a conflict, except
  that a span touching a chunk's cut edge (maybe part of its entity) gives way to one that does
  not and joins the other chunk's view of its label. Where chunks do not overlap (``overlap:
  0``), the two pieces of an entity on both sides of the cut are joined as
  :func:`domainfm.chunk.project_spans` joins them. A word the chunker cut is read whole.
- **Model** (:mod:`domainfm.label.span_tagger`). A word-level BIO tagger on the encoder (the
  embedded MiniLM, or a ``domainfm pretrain`` output). With eight documents, fine-tuning all
  layers overfits and costs minutes of CPU; the bottom layers stay frozen, their output is
  computed once and cached, and only the top ``train_layers`` layers plus a linear head are
  trained (AdamW with weight decay, dropout). With the whole encoder frozen (the default) a word
  is read as the mean of its sub-word vectors (from the encoder's middle layers,
  ``probe_layers``) beside its neighbours'; tags are per word, so suggested spans always cover
  whole words.
- **Decoding.** The most probable BIO-valid tag sequence (Viterbi), as the fine-tuned taggers
  decode: a stray ``I`` does not start a span that cuts a name. A decision shift on the no-span
  tag's log-odds (``decision_shift``; chosen by the calibration folds' out-of-fold F1 unless
  given) trades doubtful spans for precision where more seeds make the probe over-eager.
- **Term dictionaries** (:mod:`domainfm.label.dictionaries`, opt-in). Their matches are probe
  columns beside the encoder; a model span cut short inside a longer name is widened to it where
  the seeds agree with the dictionary's edges (:mod:`domainfm.label.dictionary_edges`).
- **Seed lexicon** (:mod:`domainfm.label.lexicon`). The strings the seeds annotate are suggested
  where they occur again; a match replaces the model spans it contains and confirms an equal
  one (``source``: ``model``, ``lexicon`` or ``model+lexicon``).
- **Abbreviations** (:mod:`domainfm.label.abbreviations`). A suggested long form gives its label
  to the short form the text defines after it, there and where it recurs (``source``:
  ``abbreviation``).
- **Calibration.** The seeds are split into ``calibration_folds`` folds; a model per fold tags
  the held-out seeds, with a lexicon of the fold's training seeds. Those out-of-fold word logits
  fit a temperature (:func:`domainfm.metrics.fit_temperature`), and the out-of-fold spans
  (confidence = mean probability of its tags, right or wrong by exact match) fit a Platt map
  from that raw score to the probability that the span is exactly right, shifted for spans the
  lexicon confirms, with a prior that keeps a few spans from moving it far from the
  temperature-scaled score; lexicon spans the model did not find, and carried short forms, get
  their out-of-fold precision drawn towards that of all string-matched spans
  (:class:`SpanCalibration`). The final model is trained on all seeds, so
  fold models trained on fewer seeds are weaker than the one that makes the suggestions; the probe's folds are
  cheap, so it uses 4 (NCBI, 4 draws: worst span ECE 0.092 -> 0.075 at 8 seeds, 0.072 -> 0.053
  at 32, against 2 folds; 8 folds overshot at 8 seeds, 0.14) and draws the split 3 times
  (``calibration_repeats``), so the map does not hang on which seeds were held out together.
- **PHI prior.** For PHI labels (``PATIENT``, ``DATE``, ``HOSPITAL``... the de-id label set), the
  de-id detectors run on the pool; a detector span of a requested label that no model span
  overlaps is suggested with the detectors' precision on the seeds for that label
  (``(hits + 1) / (found + 2)``) as its confidence (``source: "deid"``); a model span the
  detectors also found is marked ``deid_agrees``.
- **Annotation order.** A document's uncertainty is the largest, over its chunks, of the mean of
  the three most uncertain items in the chunk, an item being a suggested span (``1 - |2c - 1|``)
  or a word (``1 - |2e - 1|``, ``e`` its probability of being inside any span: a likely missed
  span). Documents are then ordered by :func:`domainfm.label.active.rank_scores`: uncertain
  first, mixed with novelty (cosine distance of the document's mean word vector to those ranked
  before it), so the top of the queue is not ten copies of one template.
"""

from __future__ import annotations

import bisect
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Mapping, Sequence

import numpy as np

from domainfm.config import as_config
from domainfm.corpus.document import Document, Span, checked_document, document_stream
from domainfm.errors import DomainFMError
from domainfm.label.abbreviations import carry
from domainfm.label.dictionary_edges import DictionaryEdges
from domainfm.label.span_calibration import SpanCalibration
from domainfm.label.span_config import SpanLabelConfig
from domainfm.label.span_edges import compound_edges, trimmed
from domainfm.label.span_heads import HeadRule, PartsOfSpeech
from domainfm.label.span_tagger import SpanTagger, WordChunk

_FEATURE_CACHE: dict[tuple, Any] = {}
# decision shifts tried on the out-of-fold seeds when SpanLabelConfig.decision_shift is unset.
# None is negative: the fold models see fewer seeds than the final one and find fewer spans, so
# a recall boost that helps them overshoots for the final model (NCBI tuning split, 8 seeds: the
# folds chose -0.5 on all 3 draws, and F1 fell 0.562 -> 0.557).
DECISION_SHIFTS = (0.0, 0.5, 1.0)


@dataclass
class SpanSuggestions:
    """What :func:`suggest_spans` returns."""

    docs: list[Document]
    spans: list[list[Span]]  # suggested spans per pool document (attrs: confidence, source)
    ranks: list[int]
    uncertainty: list[float]
    labels: list[str]
    summary: dict[str, Any]
    rejected: list[tuple[Document, str]] = field(default_factory=list)

    def records(self) -> list[dict]:
        """Pool documents with ``meta.suggestion.spans`` and ``meta.rank`` (their own spans kept)."""
        out = []
        for doc, spans, rank, u in zip(self.docs, self.spans, self.ranks, self.uncertainty):
            record = doc.to_dict()
            record["meta"] = {**doc.meta, "rank": rank, "suggestion": {
                "spans": [{"start": s.start, "end": s.end, "label": s.label, **s.attrs} for s in spans],
                "uncertainty": round(float(u), 4)}}
            out.append(record)
        return out

    @property
    def scores(self) -> list[float]:
        """Per document, Label Studio's prediction score: its :func:`certainty`, so sorting by
        score in ascending order shows the documents least certain first, as ``meta.rank`` does."""
        return [certainty(u) for u in self.uncertainty]


def certainty(uncertainty: float) -> float:
    """A document's prediction score, ``1 - uncertainty`` (clipped to [0, 1]). Not the mean
    confidence of its spans: a document with one sure span and many unsure tokens would sort
    as certain, and one with no suggestion at all as fully certain."""
    return 1.0 - min(max(float(uncertainty), 0.0), 1.0)


# ---------------------------------------------------------------------- tags and decoding

def tag_names(labels: Sequence[str]) -> list[str]:
    return ["O"] + [f"{p}-{lab}" for lab in labels for p in ("B", "I")]


def one_layer(spans: Sequence[Span], labels: Collection[str]) -> list[Span]:
    """The spans of ``labels`` a one-layer BIO tagger learns from a document whose annotations
    overlap (a drug inside a longer problem, two annotation layers of one note): longest first,
    each span kept unless it overlaps one already kept, so the outer span wins whatever order the
    file listed them in. The probe and ``--span-method finetune`` both train on these."""
    kept: list[Span] = []  # disjoint, by start: only the last one starting before a span's end can overlap it
    starts: list[int] = []
    for s in sorted((s for s in spans if s.label in labels), key=lambda s: (-(s.end - s.start), s.start)):
        k = bisect.bisect_left(starts, s.end)
        if k == 0 or kept[k - 1].end <= s.start:
            kept.insert(k, s)
            starts.insert(k, s.start)
    return kept


def overlapped_spans(docs: Sequence[Document], labels: Sequence[str]) -> int:
    """How many seed spans of ``labels`` :func:`one_layer` leaves out (counted in the summary)."""
    return sum(sum(s.label in labels for s in doc.spans) - len(one_layer(doc.spans, labels)) for doc in docs)


def word_tags(chunk: WordChunk, spans: Sequence[Span], label_index: dict[str, int]) -> np.ndarray:
    """BIO tag per word of a chunk from the document's gold spans (a word belongs to a span when
    it overlaps it; a span's first word in the chunk is B; of overlapping spans, :func:`one_layer`)."""
    tags = np.zeros(len(chunk.first_token), dtype=np.int64)
    for s in one_layer(spans, label_index):
        inside = np.flatnonzero((chunk.word_start < s.end) & (chunk.word_end > s.start))
        if len(inside) == 0:
            continue
        k = label_index[s.label]
        tags[inside] = 2 + 2 * k  # I
        tags[inside[0]] = 1 + 2 * k  # B
    return tags


def decode(chunk: WordChunk, probs: np.ndarray, labels: Sequence[str]) -> list[tuple[int, int, str, float]]:
    """Spans from word tag probabilities: the most probable tag sequence in which ``I-X`` only
    follows ``B-X`` or ``I-X`` (Viterbi, :func:`domainfm.finetune.data.decode_words`, the
    fine-tuned taggers' decoder); a span's raw confidence is the mean probability of its words'
    tags. Against reading each word's most probable tag alone, this lifted NCBI entity F1 from
    0.314 / 0.396 to 0.334 / 0.444 at 8 / 32 seed abstracts (2 draws): a stray ``I`` no longer
    starts a cut-off span."""
    from domainfm.finetune.data import decode_words

    n = len(probs)
    id2label = dict(enumerate(tag_names(labels)))
    offsets = list(zip(chunk.word_start.tolist(), chunk.word_end.tolist()))
    found = decode_words(np.log(np.clip(probs, 1e-12, 1.0)), list(range(n)), offsets, id2label)
    return [(int(x.start), int(x.end), x.label, float(x.attrs["score"])) for x in found]


def _merge_chunk_spans(found: list[tuple[int, int, str, float]], cut: Sequence[bool] | None = None,
                       joins: Mapping[int, int] | None = None) -> list[tuple[int, int, str, float]]:
    """Spans of one document from its chunks: duplicates (overlap regions) keep the higher
    confidence; of two overlapping different spans the more confident one stays.

    ``cut[i]`` marks a view that touches an edge where its chunk cuts the document: the chunk
    may hold only part of that entity, however sure it is of the part. Such a view gives way to
    a view that touches no cut, and is joined to the one view of its label it overlaps (the
    other chunk's view of the same entity: the union is kept, with that view's confidence when
    the union is that view, else the mean of the two).

    ``joins`` (``{start: end}``, :func:`domainfm.chunk.reassemble.joinable_cuts`) are the cuts
    between chunks that do not overlap (``overlap: 0``, see :func:`_texts_to_join`): there the
    two views of one entity share no word, so a view ending at a cut's ``end`` (its
    chunk's last word) and a same-label view starting at its ``start`` (the next chunk's first
    word) are joined, with the mean of their confidences, by the rule ``project_spans`` joins
    such pieces with: one entity per short line, cut at its line break, stays apart.

    This is not :func:`domainfm.chunk.project_spans`, and must not become it: here one tagger's
    views of one document are *chosen between* for a one-layer suggestion, there the views are
    *unioned*. Here a duplicate keeps the higher confidence, of overlapping spans of different
    labels (or two same-label views that touch no cut) only the more confident stays, and pieces
    are joined where they overlap or across a cut in ``joins``; ``project_spans(merge="union")`` keeps
    overlapping spans of every label, joins every overlapping or edge-touching same-label view
    from different chunks and the pieces on both sides of a cut, and knows no confidence (a
    joined span keeps one view's attrs). Use this for the labeler's decoded views, which carry
    a confidence and feed calibration; use ``project_spans`` for a model's or a document's
    spans per :class:`domainfm.chunk.Chunk`."""
    cut = [False] * len(found) if cut is None else list(cut)
    kept: list[list] = []
    for (s, e, label, conf), at_cut in sorted(zip(found, cut), key=lambda x: (x[1], -x[0][3])):
        hits = [k for k in kept if k[0] < e and s < k[1]]
        if not hits:
            kept.append([s, e, label, conf])
        elif at_cut and len(hits) == 1 and hits[0][2] == label:
            k = hits[0]
            union = (min(k[0], s), max(k[1], e))
            if union != (k[0], k[1]):
                k[0], k[1], k[3] = union[0], union[1], (k[3] + conf) / 2
    if joins:
        kept = _join_at_cuts(kept, joins)
    return sorted(tuple(k) for k in kept)


def _join_at_cuts(kept: list[list], joins: Mapping[int, int]) -> list[list]:
    """``kept`` (``[start, end, label, confidence]``) with the two pieces at each cut of ``joins``
    made one; the piece before a cut grows in place, so an entity over three chunks chains on."""
    ending: dict[tuple[str, int], list] = {}  # (label, end) -> the span that ends there
    out: list[list] = []
    for k in sorted(kept, key=lambda k: (k[0], k[1])):
        before = ending.get((k[2], joins[k[0]])) if k[0] in joins else None
        if before is not None:
            del ending[(before[2], before[1])]
            before[1], before[3] = k[1], (before[3] + k[3]) / 2
        else:
            out.append(k)
            before = k
        ending[(before[2], before[1])] = before
    return out


def oof_rows(docs: Sequence[Document], found: Sequence[Sequence[tuple[int, int, str, float]]],
             lexicon, abbreviations: bool = False, heads=None, edges=None) -> list[tuple[str, float, bool, str]]:
    """Out-of-fold calibration rows of held-out seeds: their spans as the suggestions would be
    (model spans with raw confidence, combined with the fold's seed lexicon), right or wrong,
    and the seed document each comes from (a document's spans are not independent evidence)."""
    rows = []
    for d, spans in zip(docs, found):
        gold = {s.key for s in d.spans}
        for s, e, lab, raw, src in final_spans(d.text, spans, lexicon, abbreviations, heads, edges):
            rows.append((src, raw, (s, e, lab) in gold, d.id))
    return rows


def final_spans(text: str, spans: Sequence[tuple[int, int, str, float]], lexicon, abbreviations: bool = False,
                heads=None, edges=None) -> list[tuple[int, int, str, float, str]]:
    """A document's model spans as they are suggested and calibrated: edges trimmed and widened
    over the hyphenated compounds they cut (:mod:`domainfm.label.span_edges`), widened to a
    dictionary name they lie inside when there is an ``edges`` rule
    (:class:`domainfm.label.dictionary_edges.DictionaryEdges`), those not ending
    in their label's head left out when there is a ``heads`` rule
    (:class:`domainfm.label.span_heads.HeadRule`), combined with the seed lexicon's matches
    (:meth:`SeedLexicon.combine`) when there is one, then with ``abbreviations`` the short forms
    of the long forms they end on (:func:`domainfm.label.abbreviations.carry`)."""
    spans = compound_edges(text, trimmed(text, spans))
    if edges is not None:
        spans = edges.widen(text, spans)
    if heads is not None:
        spans = heads.keep(text, spans)
    out = ([(s, e, lab, c, "model") for s, e, lab, c in spans] if lexicon is None
           else lexicon.combine(text, spans))
    return carry(text, out) if abbreviations else out


def suggested(text: str, spans: Sequence[tuple[int, int, str, float]], lexicon, calibration: SpanCalibration,
              min_confidence: float, abbreviations: bool = False, heads=None, edges=None) -> list[Span]:
    """A document's suggestions from its model spans (raw confidence), the seed lexicon and the
    abbreviations the text defines."""
    out = []
    for s, e, lab, raw, src in final_spans(text, spans, lexicon, abbreviations, heads, edges):
        conf = calibration.confidence(raw, src)
        if conf >= min_confidence:
            out.append(Span(s, e, lab, {"confidence": round(conf, 4), "source": src}))
    return out


def seed_lexicon(seeds: Sequence[Document], labels: Sequence[str], cfg: SpanLabelConfig):
    """The seeds' lexicon (:mod:`domainfm.label.lexicon`), or None when ``seed_lexicon`` is off."""
    if not cfg.seed_lexicon:
        return None
    from domainfm.label.lexicon import SeedLexicon

    return SeedLexicon.from_documents(seeds, labels)


# ---------------------------------------------------------------------- the API

@dataclass
class _Fitted:
    """A trained tagger with its calibration: what the live backend keeps between requests."""

    tagger: SpanTagger
    head: Any
    labels: list[str]
    temperature: float
    calibration: SpanCalibration
    summary: dict[str, Any]
    lexicon: Any = None  # domainfm.label.lexicon.SeedLexicon, or None when turned off
    heads: Any = None  # domainfm.label.span_heads.HeadRule, or None (turned off, or too few seed spans)
    shift: float = 0.0  # log-odds added to the no-span tag before decoding (SpanLabelConfig.decision_shift)
    edges: Any = None  # domainfm.label.dictionary_edges.DictionaryEdges, or None (no dictionary, or none earned)


def seed_labels(seeds: Sequence[Document]) -> list[str]:
    return sorted({s.label for d in seeds for s in d.spans})


def _tags_for(chunks, docs, label_index):
    return [word_tags(c, docs[c.doc].spans, label_index) for c in chunks]


def _spans_from_logits(chunks, logits, labels, temperature, calibrate, n_docs, shift: float = 0.0,
                       texts: Sequence[str] | None = None):
    """Per document, the merged spans of its chunks with raw confidence, and its uncertainty for
    the annotation order (read from ``calibrate(raw)``). ``shift`` is added to the log-odds of
    the no-span tag before decoding (positive: fewer, surer spans). With the documents'
    ``texts``, the pieces of an entity on both sides of a cut between chunks that do not overlap
    are joined (:func:`_merge_chunk_spans`); without, they stay pieces."""
    from domainfm.chunk.reassemble import joinable_cuts
    from domainfm.metrics import softmax

    per_doc: list[list] = [[] for _ in range(n_docs)]
    at_cut: list[list[bool]] = [[] for _ in range(n_docs)]
    word_u: list[list[float]] = [[] for _ in range(n_docs)]
    chunk_items: list[list[float]] = []
    # where each document's words begin and end: a chunk edge inside that range is a cut
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    ranges: list[list[tuple[int, int]]] = [[] for _ in range(n_docs)]
    for c in chunks:
        first[c.doc] = min(int(c.word_start[0]), first.get(c.doc, int(c.word_start[0])))
        last[c.doc] = max(int(c.word_end[-1]), last.get(c.doc, int(c.word_end[-1])))
        ranges[c.doc].append((int(c.word_start[0]), int(c.word_end[-1])))
    for c, lg in zip(chunks, logits):
        p = softmax(lg / temperature)
        if shift:
            p = p.copy()
            p[:, 0] *= np.exp(shift)
            p /= p.sum(1, keepdims=True)
        found = decode(c, p, labels)
        per_doc[c.doc].extend(found)
        lo, hi = int(c.word_start[0]), int(c.word_end[-1])
        at_cut[c.doc].extend((lo > first[c.doc] and s <= lo) or (hi < last[c.doc] and e >= hi) for s, e, *_ in found)
        e_inside = 1.0 - p[:, 0]
        items = sorted([1 - abs(2 * calibrate(x[3]) - 1) for x in found] + list(1 - np.abs(2 * e_inside - 1)),
                       reverse=True)
        chunk_items.append(float(np.mean(items[:3])) if items else 0.0)
        word_u[c.doc].append(chunk_items[-1])
    joins: list[dict[int, int] | None] = [None] * n_docs
    for d in range(n_docs if texts is not None else 0):
        # the gap is what the chunker trimmed; text there that no chunk's words hold (a chunk the
        # tokenizer truncated) was never tagged, and an entity is not joined over it
        joins[d] = {s: e for s, e in joinable_cuts(ranges[d], texts[d]).items() if not texts[d][e:s].strip()}
    return ([_merge_chunk_spans(x, cut, j) for x, cut, j in zip(per_doc, at_cut, joins)],
            [max(u) if u else 0.0 for u in word_u])


def _texts_to_join(tagger: SpanTagger, docs: Sequence[Document]) -> list[str] | None:
    """The texts :func:`_spans_from_logits` needs to join an entity's pieces across the cuts
    between chunks, when the chunker repeats no token (``overlap: 0``); else None. With overlap,
    every cut the chunker makes inside a sentence overlaps the next chunk, where the overlap
    join sees both views; a cut left without overlap is a sentence, paragraph or section
    boundary, which an entity does not cross, though the cut rule would join pieces there after
    a long line: suggestions with overlap stay as they were."""
    return [d.text for d in docs] if tagger.cfg.overlap == 0 else None  # the chunker's overlap follows it


def train_span_model(seeds: Sequence[Document], cfg: SpanLabelConfig | None = None, *,
                     tagger: SpanTagger | None = None, on_stage: Callable[[str], None] | None = None) -> _Fitted:
    """Fit the calibrated span tagger on seed documents (see the module docstring)."""
    from domainfm.metrics import fit_temperature

    cfg = as_config(cfg, SpanLabelConfig)
    seeds = [d for d in seeds if d.text.strip()]
    labels = seed_labels(seeds)
    if not labels:
        raise DomainFMError("no seed document has spans: give --labeled documents annotated with spans "
                            "(e.g. from 'domainfm import labelstudio' or 'domainfm import brat')")
    if cfg.method == "finetune":
        from domainfm.label.span_finetune import train_finetuned

        return train_finetuned(seeds, labels, cfg, on_stage=on_stage)
    t0 = time.perf_counter()
    tagger = tagger or SpanTagger(cfg)
    label_index = {lab: i for i, lab in enumerate(labels)}
    stage = on_stage or (lambda s: None)
    stage("encoding seeds")
    # the texts themselves, hashed: two trainings whose seeds share ids and lengths but not words
    # (a served project's task edited in place) must not reuse the other's features
    key = (cfg.encoder, tagger.frozen, tagger.probe_layers, cfg.max_tokens, tuple(d.id for d in seeds),
           hashlib.sha256("\x00".join(d.text for d in seeds).encode("utf-8", "surrogatepass")).hexdigest())
    if key not in _FEATURE_CACHE:
        _FEATURE_CACHE.clear()
        _FEATURE_CACHE[key] = tagger.featurize(seeds)
    chunks, _ = _FEATURE_CACHE[key]
    tags = _tags_for(chunks, seeds, label_index)
    n_tags = 1 + 2 * len(labels)
    pos = None
    if cfg.span_heads:
        stage("tagging the seeds' parts of speech")
        pos = PartsOfSpeech()
    temperature, fitted, shift = 1.0, SpanCalibration(), cfg.decision_shift or 0.0
    calibration: dict[str, Any] = {"folds": 0}
    folds = min(cfg.folds, len(seeds))
    if folds >= 2:
        rng = np.random.default_rng(cfg.seed)
        repeats = cfg.repeats
        splits = [rng.permutation(len(seeds)) % folds for _ in range(repeats)]
        oof: list[tuple[int, list[int], list[np.ndarray]]] = []  # (repeat, chunk indices, logits)
        fold_books: dict[tuple[int, int], tuple] = {}  # each fold head's dictionaries (less what its seeds contradict)
        scored: set[tuple[int, int]] = set()  # the (split, fold) pairs whose held-out seeds were tagged
        for r, fold_of in enumerate(splits):
            for f in range(folds):
                stage(f"calibration fold {f + 1}/{folds}" + (f" of split {r + 1}/{repeats}" if repeats > 1 else ""))
                train_idx = [i for i, c in enumerate(chunks) if fold_of[c.doc] != f]
                test_idx = [i for i, c in enumerate(chunks) if fold_of[c.doc] == f]
                # a fold whose training seeds hold no span (the one annotated seed is held out)
                # cannot fit a tagger; it is left out of the calibration, not fatal to the run
                if not train_idx or not test_idx or len(np.unique(np.concatenate([tags[i] for i in train_idx]))) < 2:
                    continue
                head, _ = tagger.fit([chunks[i] for i in train_idx], [tags[i] for i in train_idx], n_tags,
                                     cfg.seed + 1 + f + r * folds)
                logits, _ = tagger.score(head, [chunks[i] for i in test_idx])
                oof.append((r, test_idx, logits))
                fold_books[r, f] = getattr(head, "dictionaries", ())
                scored.add((r, f))
        if oof:
            temperature = fit_temperature(np.concatenate([lg for _, _, logits in oof for lg in logits]),
                                          np.concatenate([tags[i] for _, idx, _ in oof for i in idx]))
            # the out-of-fold spans under the fitted temperature, merged per document as the
            # suggestions are, with each fold's own seed lexicon: raw confidence, right or wrong
            fold_parts = []
            for r, fold_of in enumerate(splits):
                for f in range(folds):
                    kept = [seeds[i] for i in range(len(seeds)) if fold_of[i] != f]
                    # a fold left out above tags none of its held-out seeds: none of them is a row
                    fold_parts.append(([i for i in range(len(seeds)) if fold_of[i] == f and (r, f) in scored],
                                       seed_lexicon(kept, labels, cfg),
                                       HeadRule.fit(kept, labels, pos) if pos is not None else None,
                                       DictionaryEdges.fit(kept, labels, fold_books.get((r, f), ()))))

            # each split's held-out chunks and their logits, gathered once for every shift tried
            by_split = [([chunks[i] for r_, part, _ in oof if r_ == r for i in part],
                         [lg for r_, _, part in oof if r_ == r for lg in part]) for r in range(len(splits))]

            def rows_at(shift: float) -> list[tuple[str, float, bool, str]]:
                rows = []
                for r, (held_chunks, logits) in enumerate(by_split):
                    found, _ = _spans_from_logits(held_chunks, logits, labels, temperature,
                                                  lambda raw: raw, len(seeds), shift, _texts_to_join(tagger, seeds))
                    for held, lexicon, heads, edges in fold_parts[r * folds:(r + 1) * folds]:
                        rows += oof_rows([seeds[i] for i in held], [found[i] for i in held], lexicon,
                                         cfg.abbreviations, heads, edges)
                return rows

            gold = sum(len(seeds[i].spans) for held, *_ in fold_parts for i in held)
            by_shift = {x: rows_at(x) for x in ((cfg.decision_shift,) if cfg.decision_shift is not None
                                                else DECISION_SHIFTS)}
            f1 = {x: 2 * sum(row[2] for row in rows) / max(1, len(rows) + gold) for x, rows in by_shift.items()}
            # the best out-of-fold entity F1; a tie keeps the shift nearest 0
            shift = max(f1, key=lambda x: (round(f1[x], 6), -abs(x)))
            fitted, fit_summary = SpanCalibration.fit(by_shift[shift])
            calibration = {"folds": folds, "repeats": repeats, "temperature": round(temperature, 4),
                           "decision_shift": shift, "oof_f1_by_shift": {str(x): round(v, 4) for x, v in f1.items()},
                           **fit_summary}
            if len(scored) < folds * repeats:  # folds whose training seeds held no span
                calibration["folds_left_out"] = folds * repeats - len(scored)
    stage("training on all seeds")
    head, steps = tagger.fit(chunks, tags, n_tags, cfg.seed)
    lexicon = seed_lexicon(seeds, labels, cfg)
    heads = HeadRule.fit(seeds, labels, pos) if pos is not None else None
    edges = DictionaryEdges.fit(seeds, labels, getattr(head, "dictionaries", ()))
    summary = {"labels": labels, "seed_documents": len(seeds), "seed_chunks": len(chunks),
               "seed_spans": sum(len(d.spans) for d in seeds),
               "seed_spans_overlapped": overlapped_spans(seeds, labels), "steps": steps,
               "encoder": cfg.encoder, "frozen_layers": tagger.frozen, "trained_layers": tagger.train_layers,
               "probe_layers": list(tagger.probe_layers),
               "dictionaries": [d.summary for d in tagger.dictionaries],
               "calibration": calibration, "seed_lexicon": None if lexicon is None else lexicon.summary,
               "span_heads": None if heads is None else heads.summary,
               "dictionary_edges": None if edges is None else edges.summary,
               "train_seconds": round(time.perf_counter() - t0, 2)}
    return _Fitted(tagger, head, labels, temperature, fitted, summary, lexicon, heads, shift, edges)


def predict_spans(model: _Fitted, docs: Sequence[Document], cfg: SpanLabelConfig | None = None, *,
                  seeds: Sequence[Document] = (), on_stage: Callable[[str], None] | None = None) -> SpanSuggestions:
    """Suggest spans for ``docs`` with a trained model, add the PHI prior, and rank the documents."""
    from domainfm.label.active import rank_scores

    from domainfm.label.span_finetune import FinetunedSpans

    tuned = isinstance(model, FinetunedSpans)
    cfg = cfg or (SpanLabelConfig() if tuned else model.tagger.cfg)
    stage = on_stage or (lambda s: None)
    t0 = time.perf_counter()
    usable = [i for i, d in enumerate(docs) if d.text.strip()]
    rejected = [(docs[i], "empty text: nothing to tag") for i in range(len(docs)) if not docs[i].text.strip()]
    pool = [docs[i] for i in usable]
    if tuned:
        return _predict_tuned(model, pool, rejected, cfg, seeds, len(docs), stage, t0)
    stage("encoding pool")
    chunks, bad = model.tagger.featurize(pool)
    bad_idx = {i for i, _ in bad}
    rejected += [(pool[i], f"cannot be chunked: {reason}") for i, reason in bad]
    stage("tagging pool")
    logits, vectors = model.tagger.score(model.head, chunks)
    found, uncertainty = _spans_from_logits(chunks, logits, model.labels, model.temperature,
                                            lambda raw: model.calibration.confidence(raw, "model"), len(pool),
                                            model.shift, _texts_to_join(model.tagger, pool))
    prior = _deid_prior(model.labels, pool, seeds, cfg)
    kept_idx = [i for i in range(len(pool)) if i not in bad_idx]
    out_spans: list[list[Span]] = []
    for i in kept_idx:
        spans = suggested(pool[i].text, found[i], model.lexicon, model.calibration, cfg.min_confidence,
                          cfg.abbreviations, model.heads, model.edges)
        if prior is not None:
            spans = prior.combine(i, spans, cfg.min_confidence)
        out_spans.append(sorted(spans, key=lambda s: (s.start, s.end, s.label)))
    emb = np.zeros((len(pool), len(vectors[0]) if vectors else 1))
    weight = np.zeros(len(pool))
    for c, v in zip(chunks, vectors):
        emb[c.doc] += v * len(c.first_token)
        weight[c.doc] += len(c.first_token)
    emb = emb[kept_idx] / np.maximum(weight[kept_idx], 1)[:, None]
    emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    u = np.array([uncertainty[i] for i in kept_idx])
    ranks = rank_scores(u, emb, diversity=cfg.diversity) if len(u) else np.zeros(0, dtype=int)
    summary = {**model.summary, "pool_documents": len(docs), "pool_chunks": len(chunks),
               "suggested_spans": sum(len(s) for s in out_spans),
               "deid_prior": None if prior is None else prior.summary,
               "predict_seconds": round(time.perf_counter() - t0, 2)}
    return SpanSuggestions([pool[i] for i in kept_idx], out_spans, [int(r) for r in ranks], [float(x) for x in u],
                           list(model.labels), summary, rejected)


def _predict_tuned(model, pool, rejected, cfg, seeds, n_docs, stage, t0) -> SpanSuggestions:
    """:func:`predict_spans` for ``method: finetune`` (chunking is the finetune encoder's own)."""
    from domainfm.label.active import rank_scores
    from domainfm.label.span_finetune import predict_finetuned

    stage("tagging pool")
    found, uncertainty, emb = predict_finetuned(model, pool)
    prior = _deid_prior(model.labels, pool, seeds, cfg)
    out_spans: list[list[Span]] = []
    for i in range(len(pool)):
        spans = suggested(pool[i].text, found[i], model.lexicon, model.calibration, cfg.min_confidence,
                          cfg.abbreviations)  # span heads are the probe's
        if prior is not None:
            spans = prior.combine(i, spans, cfg.min_confidence)
        out_spans.append(sorted(spans, key=lambda s: (s.start, s.end, s.label)))
    u = np.array(uncertainty, dtype=float)
    ranks = rank_scores(u, emb, diversity=cfg.diversity) if len(u) else np.zeros(0, dtype=int)
    summary = {**model.summary, "pool_documents": n_docs, "suggested_spans": sum(len(s) for s in out_spans),
               "deid_prior": None if prior is None else prior.summary,
               "predict_seconds": round(time.perf_counter() - t0, 2)}
    return SpanSuggestions(list(pool), out_spans, [int(r) for r in ranks], [float(x) for x in u],
                           list(model.labels), summary, rejected)


def suggest_spans(seeds: Sequence[Document], pool: Sequence[Document], cfg: SpanLabelConfig | None = None, *,
                  on_stage: Callable[[str], None] | None = None) -> SpanSuggestions:
    """Train on ``seeds`` (documents with spans) and suggest spans for ``pool``.

    Example:
        >>> result = suggest_spans(seeds, pool, SpanLabelConfig())  # doctest: +SKIP
        >>> result.records()[0]["meta"]["suggestion"]["spans"][0]["confidence"]  # doctest: +SKIP
        0.83
    """
    cfg = as_config(cfg, SpanLabelConfig)
    # a span past its text or two crossing spans of one label would train wrong tags in silence,
    # and a dict fails deep inside: each is refused here, naming the record
    seeds = [checked_document(d, "seeds") for d in document_stream(seeds, "seeds")]
    pool = [checked_document(d, "pool") for d in document_stream(pool, "pool")]
    # a seed in the pool is annotated already: suggesting it spans and a place in the annotation
    # queue would send the annotator back to it (document labels and `label serve` leave it out too)
    # a seed's id with another text is two documents under one id: the suggestion, its export and
    # a later import would merge them (the document path refuses it the same way). Reasons name
    # the seed's position, never an id: ids can be record numbers.
    position = {}
    for k, d in enumerate(seeds, start=1):
        position.setdefault(d.id, k)
    labelled = {(d.id, d.text) for d in seeds}
    done, collisions, kept = [], [], []
    for d in pool:
        if (d.id, d.text) in labelled:
            done.append((d, "already labelled (the same id and text as a seed; left out of the pool)"))
        elif d.id in position:
            collisions.append((d, f"id collision with a seed (seed {position[d.id]} has this id and another "
                                  "text; give each document an id of its own)"))
        else:
            kept.append(d)
    model = train_span_model(seeds, cfg, on_stage=on_stage)
    result = predict_spans(model, kept, cfg, seeds=seeds, on_stage=on_stage)
    result.rejected = done + collisions + result.rejected
    result.summary.update(pool_documents=len(pool), already_labelled=len(done), id_collisions=len(collisions))
    return result


# ---------------------------------------------------------------------- PHI prior

class _DeidPrior:
    """De-id detector spans of the requested PHI labels, with per-label precision on the seeds."""

    def __init__(self, labels: list[str], detected: list[list], precision: dict[str, float], summary: dict):
        self.labels, self.detected, self.precision, self.summary = labels, detected, precision, summary

    def combine(self, i: int, spans: list[Span], min_confidence: float = 0.0) -> list[Span]:
        """Document ``i``'s suggestions with the detector spans no suggestion overlaps; those of a
        label whose precision is under ``min_confidence`` are left out, as any suggestion is."""
        out = list(spans)
        dets = [d for d in self.detected[i] if d.label in self.precision]
        for k, s in enumerate(out):
            if any(d.start == s.start and d.end == s.end and d.label == s.label for d in dets):
                out[k] = Span(s.start, s.end, s.label, {**s.attrs, "deid_agrees": True})
        for d in dets:
            if self.precision[d.label] < min_confidence or any(s.start < d.end and d.start < s.end for s in out):
                continue
            out.append(Span(d.start, d.end, d.label, {"confidence": round(self.precision[d.label], 4),
                                                      "source": "deid"}))
        return out


def _deid_prior(labels: list[str], pool: Sequence[Document], seeds: Sequence[Document],
                cfg: SpanLabelConfig) -> _DeidPrior | None:
    from domainfm.deid.labels import CANONICAL

    phi = [lab for lab in labels if lab in CANONICAL]
    if cfg.deid_prior == "off" or (cfg.deid_prior == "auto" and not phi):
        return None
    if not phi:
        raise DomainFMError(f"--deid-prior on, but none of the labels {labels} is a PHI label of the de-id "
                            f"detectors ({', '.join(sorted(CANONICAL))})")
    from domainfm.deid.config import DeidConfig
    from domainfm.deid.engine import PhiDetector

    detector = PhiDetector(DeidConfig(profile=cfg.deid_profile))
    on_seeds = list(detector.detect_texts(d.text for d in seeds))
    precision = {}
    per_label = {}
    for lab in phi:
        found = hits = 0
        for d, dets in zip(seeds, on_seeds):
            gold = {s.key for s in d.spans}
            for x in dets:
                if x.label == lab:
                    found += 1
                    hits += (x.start, x.end, x.label) in gold
        precision[lab] = (hits + 1) / (found + 2)
        per_label[lab] = {"found_on_seeds": found, "exact_hits": hits, "prior_confidence": round(precision[lab], 4)}
    detected = list(detector.detect_texts(d.text for d in pool))
    return _DeidPrior(phi, detected, precision, {"profile": cfg.deid_profile, "labels": per_label})
