"""Documents -> labelled model inputs: fields, label maps, splits, chunks and BIO tags.

Every check names the record and the field, and nothing is dropped silently: a document that
cannot be used is an error (the user fixes the data or the task file), and what a task
deliberately leaves out (spans of other labels, text past a truncation) is counted.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from domainfm.config import suggest
from domainfm.corpus.document import DOCUMENT_KEYS, Document, Span
from domainfm.corpus.grouping import group_of, has_patient
from domainfm.corpus.io import read_documents
from domainfm.errors import ConfigError, RecordError

IGNORE_INDEX = -100
OUTSIDE = "O"


def load_documents(path: str | os.PathLike, limit: int = 0) -> list[Document]:
    """Read a domainfm JSONL file (strict: the first invalid record raises :class:`RecordError`)."""
    docs = read_documents(Path(path))
    return list(islice(docs, limit) if limit else docs)


def available_fields(doc: Document) -> list[str]:
    """The fields of ``doc`` that hold a value, ``meta.<key>`` included, for error messages."""
    names = [k for k in DOCUMENT_KEYS if k != "meta" and getattr(doc, k) not in (None, [], "")]
    return names + [f"meta.{k}" for k in doc.meta]


def get_field(doc: Document, name: str, *, location: str | None = None) -> Any:
    """``doc.<name>`` or ``doc.meta[<key>]`` for ``meta.<key>``; a missing field is an error
    that lists the fields the record does have."""
    if name.startswith("meta."):
        key = name[5:]
        if key not in doc.meta:
            raise RecordError(
                f"field {name!r} does not exist{suggest(key, doc.meta)}; this record has "
                f"{available_fields(doc)}", record_id=doc.id, location=location)
        return doc.meta[key]
    if name not in DOCUMENT_KEYS:
        raise ConfigError(f"field {name!r} is not a document field{suggest(name, DOCUMENT_KEYS)}; "
                          f"use one of {list(DOCUMENT_KEYS)} or 'meta.<key>'")
    return getattr(doc, name)


def document_text(doc: Document, text_field: str = "text") -> str:
    text = get_field(doc, text_field)
    if not isinstance(text, str):
        raise RecordError(f"field {text_field!r} must be a string, got {type(text).__name__}", record_id=doc.id)
    if not text.strip():
        raise RecordError(f"field {text_field!r} is empty: there is no text to classify", record_id=doc.id)
    return text


def document_target(doc: Document, task: str, label_field: str, *, required: bool = True) -> Any:
    """The gold label of one document: a string (classification), a list of strings
    (multilabel) or a list of spans (ner). ``None`` when absent and not ``required``."""
    value = get_field(doc, label_field)
    if task == "ner":
        return list(value or [])
    if task == "classification":
        if value is None or value == "":
            if not required:
                return None
            raise RecordError(f"field {label_field!r} is empty; a classification task needs a label per "
                              f"document (fields with values here: {available_fields(doc)})", record_id=doc.id)
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise RecordError(f"field {label_field!r} must be a string, got {type(value).__name__}", record_id=doc.id)
        return str(value)
    if value is None:
        if not required:
            return None
        raise RecordError(f"field {label_field!r} is empty; a multilabel task needs a list of labels per "
                          f"document ([] for none; fields with values here: {available_fields(doc)})", record_id=doc.id)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RecordError(f"field {label_field!r} must be a list of strings", record_id=doc.id)
    return sorted(set(value))


@dataclass
class LabelMap:
    """Labels of a task and, for ``ner``, the BIO tags the model predicts."""

    task: str
    labels: list[str]

    @property
    def tags(self) -> list[str]:
        """Model outputs: the labels, or ``O, B-X, I-X, ...`` for ner."""
        if self.task != "ner":
            return list(self.labels)
        return [OUTSIDE] + [f"{p}-{label}" for label in self.labels for p in ("B", "I")]

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.tags))

    @property
    def label2id(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tags)}


def build_label_map(task: str, docs: Sequence[Document], label_field: str, names: list[str] | None,
                    min_examples: int = 2) -> tuple[LabelMap, dict[str, int]]:
    """The label set from ``names`` or the training documents, and the count per label.

    Raises:
        RecordError: a training document carries a label outside ``names``.
        ConfigError: a label has fewer than ``min_examples`` training examples (naming it and
            the record that has it), or the task has fewer than 2 classes.
    """
    counts: Counter[str] = Counter()
    first_seen: dict[str, str] = {}
    show = _label_quoter(label_field)
    for doc in docs:
        target = document_target(doc, task, label_field)
        found = [s.label for s in target] if task == "ner" else ([target] if task == "classification" else target)
        for label in found:
            counts[label] += 1
            first_seen.setdefault(label, doc.id)
    if names is None:
        labels = sorted(counts)
    else:
        labels = list(names)
        if task != "ner":
            for label in sorted(set(counts) - set(labels)):
                raise RecordError(f"label {show(label)} (field {label_field!r}) is not in labels.names {labels}",
                                  record_id=first_seen[label])
    if task == "classification" and len(labels) < 2:
        raise ConfigError(f"a classification task needs at least 2 classes; the training part has {show(labels)} "
                          "(after the evaluation hold-out, if data.eval is not given: a class with very few "
                          "documents may have gone to the hold-out; add documents or give data.eval)")
    if not labels:
        raise ConfigError(f"no labels found in field {label_field!r} of the training documents")
    for label in labels:
        if counts[label] < min_examples:
            where = f" (only in record {first_seen[label]!r})" if label in first_seen else ""
            raise ConfigError(
                f"label {show(label)} has {counts[label]} training example(s){where}; at least "
                f"{min_examples} are needed (labels.min_examples): add examples, merge the class, or "
                "list labels.names without it")
    return LabelMap(task, labels), {label: counts[label] for label in labels}


def check_known_labels(docs: Iterable[Document], label_map: LabelMap, label_field: str, what: str = "eval") -> None:
    """Every gold label of ``docs`` must be one the model was trained on (ner: spans of other
    types are not predicted by design and are ignored)."""
    if label_map.task == "ner":
        return
    known = set(label_map.labels)
    show = _label_quoter(label_field)
    for doc in docs:
        target = document_target(doc, label_map.task, label_field, required=False)
        found = [] if target is None else ([target] if isinstance(target, str) else target)
        for label in found:
            if label not in known:
                hint = suggest(label, known) if show(label) == repr(label) else ""
                raise RecordError(
                    f"{what} label {show(label)} (field {label_field!r}) was never seen in training; the model "
                    f"knows {show(sorted(known))}{hint}", record_id=doc.id)


def _label_quoter(label_field: str):
    """How a message shows label values: quoted, unless the label field's key is one
    de-identification treats as PHI (``meta.patient_name``: a field picked by mistake, whose
    values are then names; :func:`domainfm.deid.meta.identifier_field`)."""
    from domainfm.deid.meta import identifier_field

    kind = identifier_field(label_field)
    if kind is None:
        return repr

    def show(value: Any) -> str:
        if isinstance(value, list):
            return f"{len(value)} {kind} value(s), not quoted"
        return f"<a {kind} value, not quoted>"
    return show


def split_documents(docs: Sequence[Document], *, eval_fraction: float, split_key: str, seed: int,
                    task: str, label_field: str) -> tuple[list[Document], list[Document], dict[str, Any]]:
    """Hold out ``eval_fraction`` of the groups (patients or documents), seeded.

    Classification splits are stratified by label over groups (scikit-learn's
    ``StratifiedGroupKFold``) so that every class appears on both sides where it can.
    """
    # "auto" groups by patient only when every document names one: a corpus with a few ids
    # among patients is more likely a mistake than a mix to honour, so it falls back to ids
    auto_patient = split_key == "auto" and bool(docs) and all(has_patient(d) for d in docs)
    key = ("meta.patient_id" if auto_patient else "id") if split_key == "auto" else split_key
    groups = [group_of(d, key)[1] for d in docs]
    used = "meta.patient_id" if auto_patient else ("id" if split_key == "auto" else split_key)
    info = {"split_key": used, "groups": len(set(groups))}
    if eval_fraction <= 0 or len(docs) < 2:
        return list(docs), [], info
    n_groups = len(set(groups))
    if n_groups < 2:
        raise ConfigError(f"cannot hold out documents: all {len(docs)} share one {used} value; set data.eval")
    if task == "classification":
        from sklearn.model_selection import StratifiedGroupKFold

        from domainfm.corpus.summary import label_counts

        if eval_fraction > 0.5:
            # one of k stratified folds is held out, so at most half: 0.9 would quietly become 0.5
            raise ConfigError(f"data.eval_fraction {eval_fraction:g}: a classification hold-out is one of k folds "
                              "stratified by label, at most half of the groups; use a value <= 0.5, or give "
                              "data.eval (a separate evaluation file)")
        n_splits = max(2, min(int(round(1 / eval_fraction)), n_groups))
        y = [document_target(d, task, label_field) for d in docs]
        per_class = Counter(y)
        if max(per_class.values()) < n_splits:
            # scikit-learn cannot stratify when no class fills every fold; holding out more than
            # asked, or an unstratified draw, would quietly change the evaluation the user set
            raise ConfigError(
                f"data.eval_fraction {eval_fraction:g} of {len(docs)} training documents: the stratified "
                f"hold-out cuts them into {n_splits} folds and holds one out, which needs a class with at least "
                f"{n_splits} documents, but the documents per class are "
                f"{label_counts(per_class)}; add documents, or give "
                "data.eval (a separate evaluation file)")
        folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        train_idx, eval_idx = next(folds.split(np.zeros(len(docs)), y, groups))
    else:
        from sklearn.model_selection import GroupShuffleSplit

        folds = GroupShuffleSplit(n_splits=1, test_size=eval_fraction, random_state=seed)
        train_idx, eval_idx = next(folds.split(np.zeros(len(docs)), groups=groups))
    train = [docs[i] for i in sorted(train_idx)]
    held = [docs[i] for i in sorted(eval_idx)]
    return train, held, info


# ---------------------------------------------------------------------------------------------
# Token-level alignment


def bio_labels(offsets: Sequence[tuple[int, int]], spans: Sequence[Span], label2id: dict[str, int], *,
               special_mask: Sequence[int] | None = None, record_id: str | None = None,
               text: str | None = None) -> tuple[list[int], int]:
    """BIO tag ids for the tokens of one sequence from character spans.

    ``offsets`` are the fast tokenizer's ``(start, end)`` per token in the same coordinates as
    the spans; special tokens (``special_mask`` 1, or empty offsets) get ``-100``. A token is
    ``B-X`` when it is the first token of span X, ``I-X`` for the following ones. A span whose
    edge falls inside a token (``"Lee"`` in ``"McLee"``) cannot be represented by whole
    tokens: that is an error naming the record and the span. A span that covers no token at
    all (only whitespace) is an error too.

    Returns:
        ``(tag ids, number of spans placed)``.

    Example:
        >>> bio_labels([(0, 0), (0, 4), (5, 9), (0, 0)], [Span(0, 9, "X")],
        ...            {"O": 0, "B-X": 1, "I-X": 2}, special_mask=[1, 0, 0, 1])
        ([-100, 1, 2, -100], 1)
    """
    n = len(offsets)
    tags = [IGNORE_INDEX if (special_mask is not None and special_mask[i]) or offsets[i][1] <= offsets[i][0]
            else label2id[OUTSIDE] for i in range(n)]
    starts = np.array([o[0] for o in offsets])
    ends = np.array([o[1] for o in offsets])
    real = np.array([t != IGNORE_INDEX for t in tags], dtype=bool)
    placed = 0
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        inside = np.nonzero(real & (starts < span.end) & (ends > span.start))[0]
        if inside.size == 0:
            raise RecordError(f"span [{span.start}:{span.end}] label {span.label!r} covers no token "
                              "(whitespace or characters the tokenizer drops)", record_id=record_id)
        first, last = int(inside[0]), int(inside[-1])
        if starts[first] < span.start or ends[last] > span.end:
            raise RecordError(
                f"span [{span.start}:{span.end}] label {span.label!r} does not align to token boundaries "
                f"(token [{starts[first] if starts[first] < span.start else starts[last]}:"
                f"{ends[first] if starts[first] < span.start else ends[last]}] crosses its edge); fix the "
                "span or tokenize differently", record_id=record_id)
        if any(tags[i] not in (label2id[OUTSIDE],) for i in inside):
            raise RecordError(f"span [{span.start}:{span.end}] label {span.label!r} overlaps another span of "
                              "the task's labels; BIO tags cannot represent overlapping entities",
                              record_id=record_id)
        tags[first] = label2id[f"B-{span.label}"]
        for i in inside[1:]:
            tags[int(i)] = label2id[f"I-{span.label}"]
        placed += 1
    return tags, placed


def decode_bio(tag_ids: Sequence[int], probs: np.ndarray, offsets: Sequence[tuple[int, int]],
               id2label: dict[int, str]) -> list[Span]:
    """Predicted tags -> character spans with a score (mean probability of the chosen tags).

    An entity starts at ``B-X``, or at ``I-X`` that does not continue an ``X`` entity
    (conlleval's lenient reading), and continues over ``I-X``. Tokens with empty offsets
    (special tokens, padding) are skipped.
    """
    spans: list[Span] = []
    current: list | None = None  # [label, start, end, [probs]]

    def close():
        if current is not None:
            spans.append(Span(current[1], current[2], current[0],
                              {"score": round(float(np.mean(current[3])), 4)}))

    for i, tag_id in enumerate(tag_ids):
        start, end = offsets[i]
        if end <= start:
            continue
        tag = id2label[int(tag_id)]
        p = float(probs[i]) if probs is not None else 1.0
        if tag == OUTSIDE:
            close()
            current = None
            continue
        prefix, label = tag.split("-", 1)
        if prefix == "I" and current is not None and current[0] == label:
            current[2] = end
            current[3].append(p)
        else:
            close()
            current = [label, start, end, [p]]
    close()
    return spans


def decode_words(log_probs: np.ndarray, word_ids: Sequence[int | None], offsets: Sequence[tuple[int, int]],
                 id2label: dict[int, str]) -> list[Span]:
    """Tag log-probabilities -> character spans, one tag per word, BIO obeyed.

    Each word (tokens sharing a ``word_ids`` entry) takes the scores of its first sub-token, as
    word-level taggers are usually read; Viterbi then finds the most probable tag sequence in
    which ``I-X`` only follows ``B-X`` or ``I-X``, so an entity never starts in the middle and
    never covers part of a word. Score of a span: mean probability of its words' tags.

    Example:
        >>> lp = np.log(np.array([[.1, .8, .1], [.2, .1, .7], [.6, .1, .3], [.5, .1, .4]]))
        >>> decode_words(lp, [0, 1, 1, 2], [(0, 3), (4, 8), (8, 10), (11, 13)],
        ...              {0: "O", 1: "B-X", 2: "I-X"})  # the second word's second piece does not split it
        [Span(start=0, end=10, label='X', attrs={'score': 0.75})]
    """
    words: list[list[int]] = []
    last = None
    for i, w in enumerate(word_ids):
        if w is None or offsets[i][1] <= offsets[i][0]:
            continue
        if w != last:
            words.append([])
            last = w
        words[-1].append(i)
    if not words:
        return []
    names = [id2label[i] for i in range(len(id2label))]
    entity = [n.split("-", 1)[1] if n != OUTSIDE else None for n in names]
    inside = np.array([n.startswith("I-") for n in names])
    # transition[a, b]: 0 when tag b may follow tag a, -inf when BIO forbids it
    allowed = np.array([[not inside[b] or (entity[a] is not None and entity[a] == entity[b])
                         for b in range(len(names))] for a in range(len(names))])
    transition = np.where(allowed, 0.0, -np.inf)
    emissions = np.asarray(log_probs)[[w[0] for w in words]]
    score = np.where(inside, -np.inf, emissions[0])
    back = []
    for t in range(1, len(words)):
        candidates = score[:, None] + transition
        back.append(candidates.argmax(0))
        score = candidates.max(0) + emissions[t]
    path = [int(score.argmax())]
    for pointers in reversed(back):
        path.append(int(pointers[path[-1]]))
    path.reverse()
    spans: list[Span] = []
    current: list | None = None  # [label, start, end, [probs]]
    for w, (tokens, tag) in enumerate(zip(words, path)):
        p = float(np.exp(emissions[w, tag]))
        if names[tag] == OUTSIDE or not inside[tag]:
            if current is not None:
                spans.append(Span(current[1], current[2], current[0], {"score": round(float(np.mean(current[3])), 4)}))
                current = None
            if names[tag] != OUTSIDE:
                current = [entity[tag], offsets[tokens[0]][0], offsets[tokens[-1]][1], [p]]
        else:
            current[2] = offsets[tokens[-1]][1]
            current[3].append(p)
    if current is not None:
        spans.append(Span(current[1], current[2], current[0], {"score": round(float(np.mean(current[3])), 4)}))
    return spans


# ---------------------------------------------------------------------------------------------
# Features


@dataclass
class Feature:
    """One model sequence: a chunk (or the truncated start) of one document."""

    doc_index: int
    input_ids: list[int]
    offset: int  # character offset of the sequence's text in the document
    length: int  # characters of the sequence's text
    offsets: list[tuple[int, int]] = field(default_factory=list)  # per token, sequence coordinates
    word_ids: list[int | None] = field(default_factory=list)  # per token, the fast tokenizer's word index
    label: Any = None  # class id, multi-hot list, or tag ids
    chunk: Any = None


@dataclass
class EncodedDocuments:
    features: list[Feature]
    stats: dict[str, Any]


def encode_documents(docs: Sequence[Document], *, task: str, tokenizer, max_length: int, long_documents,
                     label_map: LabelMap, label_field: str, text_field: str = "text",
                     with_labels: bool = True) -> EncodedDocuments:
    """Tokenize documents into model sequences, chunking or truncating long ones.

    With ``long_documents.strategy == "chunk"`` every document becomes one or more chunks from
    :func:`domainfm.chunk.chunk_documents` (labels inherited, spans projected to the chunk);
    with ``truncate`` the first ``max_length`` tokens are kept.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError("the tokenizer must be a fast tokenizer (character offsets); "
                          "set model.tokenizer to one with a tokenizer.json")
    texts = [document_text(d, text_field) for d in docs]
    label2id = label_map.label2id
    stats: Counter[str] = Counter(documents=len(docs))
    targets: list[Any] = []
    for doc in docs:
        targets.append(document_target(doc, task, label_field, required=with_labels) if with_labels or task == "ner"
                       else None)
    pieces: list[tuple[int, int, int, Any]] = []  # doc index, start, end, chunk
    if long_documents.strategy == "chunk":
        from domainfm.chunk import ChunkConfig, Chunker

        cfg = ChunkConfig(tokenizer=getattr(tokenizer, "name_or_path", None) or "model", max_tokens=max_length,
                          overlap=min(long_documents.overlap, max(0, max_length // 2 - 1)),
                          profile=long_documents.profile)
        chunker = Chunker(cfg, tokenizer)
        source = [Document(d.id, t, {}, spans=[s for s in (targets[i] if task == "ner" else [])
                                                if f"B-{s.label}" in label2id])
                  for i, (d, t) in enumerate(zip(docs, texts))]
        for i, result in enumerate(chunker.iter_documents(source)):
            if result.error is not None:
                raise result.error
            if not result.chunks:
                raise RecordError(f"field {text_field!r} holds no tokens", record_id=docs[i].id)
            for chunk in result.chunks:
                pieces.append((i, chunk.start, chunk.end, chunk))
            if task == "ner":
                # a span that no chunk holds whole is learned as a partial entity in each chunk it
                # touches; one between chunks (only whitespace) is not learned: both are counted
                cut = {(x.attrs["doc_start"], x.attrs["doc_end"], x.label) for c in result.chunks for x in c.spans
                       if "cut" in x.attrs}
                whole = {(c.start + x.start, c.start + x.end, x.label) for c in result.chunks for x in c.spans
                         if "cut" not in x.attrs}
                stats["spans_cut_by_chunks"] += len(cut - whole)
                stats["spans_between_chunks"] += result.spans_outside
            stats["chunks"] += len(result.chunks)
            stats["long_documents"] += len(result.chunks) > 1
    else:
        for i, text in enumerate(texts):
            pieces.append((i, 0, len(text), None))
    enc = tokenizer([texts[i][s:e] for i, s, e, _ in pieces], truncation=True, max_length=max_length,
                    return_offsets_mapping=True, return_special_tokens_mask=True,
                    return_attention_mask=False, return_token_type_ids=False, verbose=False)
    features = []
    for k, (i, s, e, chunk) in enumerate(pieces):
        offsets = [tuple(o) for o in enc["offset_mapping"][k]]
        special = enc["special_tokens_mask"][k]
        feature = Feature(i, list(enc["input_ids"][k]), s, e - s, offsets, chunk=chunk)
        if task == "ner":
            feature.word_ids = enc.word_ids(k)
        if long_documents.strategy == "truncate":
            covered = max((o[1] for o, m in zip(offsets, special) if not m), default=0)
            feature.length = covered
            stats["truncated_documents"] += covered < len(texts[i].rstrip())
        target = targets[i]
        if task == "ner":
            spans = chunk.spans if chunk is not None else [x for x in target if x.end <= feature.length]
            spans = [x for x in spans if f"B-{x.label}" in label2id]
            if chunk is None:
                kept = [x for x in target if f"B-{x.label}" in label2id]
                stats["spans_truncated"] += len(kept) - len(spans)
            if with_labels:
                feature.label, _ = bio_labels(offsets, spans, label2id, special_mask=special,
                                                   record_id=docs[i].id)
        elif with_labels and target is not None:
            if task == "classification":
                feature.label = label2id[target]
            else:
                feature.label = [1.0 if t in target else 0.0 for t in label_map.tags]
        features.append(feature)
    if task == "ner":
        for i, doc in enumerate(docs):
            for s in targets[i]:
                stats["spans" if f"B-{s.label}" in label2id else "spans_other_labels"] += 1
    stats["sequences"] = len(features)
    return EncodedDocuments(features, dict(stats))
