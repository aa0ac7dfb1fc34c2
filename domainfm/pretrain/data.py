"""Pretraining input: the privacy gate, a patient-safe train/eval split, and sequence packing.

- :func:`privacy_gate` refuses input that :func:`domainfm.manifest.check_deidentified` cannot
  trace back to ``domainfm deid`` (the label backend and the audit read the same trace).
- :func:`build_corpus` streams the documents once, tokenizes them in batches, sends every
  document to the train or eval side by a stable hash of its split key (``meta.patient_id``
  when present), so all notes of one patient land on the same side on every run and machine,
  and packs each side into blocks. The chunks of a ``domainfm chunk`` file are grouped by the
  document they come from.
- :func:`record_documents` writes the two sides to ``split.json`` (fine-tuning's form), where
  the privacy audit takes its members and non-members from.

Packing (``masking.packing: true``) concatenates documents with the tokenizer's separator
(``[SEP]`` for BERT-style encoders, the end-of-text token for decoders) and cuts the stream into
blocks of exactly ``seq_len`` tokens, so no position is padding. The last, partial training block
is dropped; the held-out side keeps it (padded) so evaluation sees all held-out text.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from domainfm.corpus.grouping import group_of, stable_fraction
from domainfm.errors import ConfigError, CorpusError, RecordError
from domainfm.manifest import check_deidentified

_TOKENIZE_BATCH = 256


# --------------------------------------------------------------------------------------------
# Privacy gate


def privacy_gate(paths: Iterable[str | os.PathLike], allow_identified_data: bool) -> dict[str, Any]:
    """Refuse input that no deid manifest vouches for, unless explicitly allowed.

    Returns the decision recorded in the output manifest.

    Raises:
        CorpusError: an input file does not exist.
        ConfigError: naming the first unverified file and how to proceed.
    """
    paths = list(paths)
    for path in paths:
        if not Path(path).is_file():
            raise CorpusError(f"{path}: no such file (the training data; for the demo's files run 'domainfm demo' "
                              "first)" if "demo-output" in str(path) else f"{path}: no such file (the training data)")
    checks = check_deidentified(paths)
    unverified = [c for c in checks if not c.deidentified]
    if unverified and not allow_identified_data:
        first = unverified[0]
        raise ConfigError(
            f"{first.path} was not produced by 'domainfm deid' ({first.evidence}); run "
            "'domainfm deid' first, or pass --allow-identified-data (allow_identified_data: true) "
            "if this text is already de-identified or you are permitted to train on it - the "
            "choice is recorded in the output manifest"
        )
    return {
        "allow_identified_data": bool(allow_identified_data),
        "decision": "overridden" if unverified else "passed",
        "inputs": [c.to_dict() for c in checks],
    }


# --------------------------------------------------------------------------------------------
# Split


# --------------------------------------------------------------------------------------------
# Corpus


@dataclass
class Blocks:
    """Token sequences ready for batching (every sequence already has its special tokens)."""

    ids: list[np.ndarray] = field(default_factory=list)
    word_starts: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def tokens(self) -> int:
        return int(sum(len(x) for x in self.ids))


@dataclass
class PackedCorpus:
    """Train and held-out blocks plus the counts that go into ``metrics.json``."""

    train: Blocks
    eval: Blocks
    stats: dict[str, Any]
    canaries: list = field(default_factory=list)
    eval_groups: set[str] = field(default_factory=set)  # the split groups held out (record_documents)


@dataclass
class _Doc:
    ids: np.ndarray
    starts: np.ndarray | None
    group: str
    fraction: float


def _documents(path) -> Iterator[tuple[Any, str | None]]:
    """``(document, id of the document it comes from)`` of one input: ``domainfm deid`` output
    as it is (``None``: itself), ``domainfm chunk`` output chunk by chunk, each read as a
    document (its chunk-only fields set aside) whose source is the chunked document, so that
    the split keeps all chunks of a document, which overlap, on one side."""
    from domainfm.corpus.document import DOCUMENT_KEYS, Document
    from domainfm.corpus.io import Rejected, iter_jsonl_lines, read_documents

    first = next((obj for _, _, obj in iter_jsonl_lines(path)), None)
    if not (isinstance(first, dict) and "doc_id" in first):
        for doc in read_documents(path):
            yield doc, None
        return
    from domainfm.chunk.splitter import CHUNK_KEYS

    seen: set[str] = set()
    for number, _, obj in iter_jsonl_lines(path):
        location = f"{Path(path).name}:{number}"
        if isinstance(obj, Rejected):
            raise RecordError(obj.reason, location=location)
        missing = [k for k in CHUNK_KEYS if not isinstance(obj, dict) or k not in obj]
        if missing or not isinstance(obj["doc_id"], str) or not obj["doc_id"]:
            raise RecordError(f"not a 'domainfm chunk' record like the file's first (missing or empty: "
                              f"{missing or ['doc_id']})", record_id=obj.get("id") if isinstance(obj, dict) else None,
                              location=location)
        doc = Document.from_dict({k: obj[k] for k in DOCUMENT_KEYS if k in obj}, location=location)
        if doc.id in seen:
            raise RecordError("duplicate id (already used by an earlier record)", record_id=doc.id, location=location)
        seen.add(doc.id)
        yield doc, obj["doc_id"]


def _group(doc, source: str | None, split_key: str) -> tuple[str, str]:
    """The split group of a document: a chunk's document id is that of the chunked document."""
    kind, value = group_of(doc, split_key)
    return kind, source if kind == "id" and source is not None else value


def text_of(doc, text_field: str) -> str:
    """The text pretraining reads from a document: ``text`` or the string in ``meta.<key>``
    (``""`` when there is none). The privacy audit scores the same field."""
    if text_field == "text":
        return doc.text
    value = doc.meta.get(text_field[len("meta."):])
    return value if isinstance(value, str) else ""


def _with_text(cfg_data, counts: dict[str, Any]) -> Iterator[tuple[Any, str, str, str]]:
    """``(document, text, group kind, group)`` of every document with text that pretraining
    reads (at most ``data.max_documents`` read), in file order; ``counts`` gets the documents
    read and those left out without text. Training (:func:`build_corpus`), the split record
    (:func:`record_documents`) and :func:`split_documents` all read through it, so they agree
    on which documents there are."""
    counts.setdefault("documents", 0)
    counts.setdefault("empty_documents", 0)
    limit = cfg_data.max_documents or None
    for path in cfg_data.paths:
        for doc, source in _documents(path):
            if limit is not None and counts["documents"] >= limit:
                return
            counts["documents"] += 1
            text = text_of(doc, cfg_data.text_field)
            if not text.strip():
                counts["empty_documents"] += 1
                if cfg_data.text_field != "text" and not isinstance(doc.meta.get(cfg_data.text_field[5:]), str):
                    # counted apart: a misspelt meta key reads as a corpus of empty documents
                    counts["without_text_field"] = counts.get("without_text_field", 0) + 1
                continue
            kind, value = _group(doc, source, cfg_data.split_key)
            yield doc, text, kind, f"{kind}:{value}"


def _read(cfg_data, tokenizer, want_word_starts: bool) -> tuple[list[_Doc], dict[str, Any]]:
    docs: list[_Doc] = []
    counts: dict[str, Any] = {"documents": 0, "empty_documents": 0}
    key_kinds: set[str] = set()
    pending: list[tuple[str, str, float]] = []  # (text, group, fraction)

    def flush():
        if not pending:
            return
        enc = tokenizer([t for t, _, _ in pending], add_special_tokens=False,
                        return_attention_mask=False, return_token_type_ids=False, verbose=False)
        for i, (_, group, fraction) in enumerate(pending):
            ids = np.asarray(enc["input_ids"][i], dtype=np.int32)
            starts = _word_starts(enc, i, ids, tokenizer) if want_word_starts else None
            docs.append(_Doc(ids, starts, group, fraction))
        pending.clear()

    for _, text, kind, group in _with_text(cfg_data, counts):
        key_kinds.add(kind)
        pending.append((text, group, stable_fraction(group)))
        if len(pending) >= _TOKENIZE_BATCH:
            flush()
    flush()
    counts["split_key"] = "+".join(sorted(key_kinds)) or cfg_data.split_key
    return docs, counts


def _word_starts(enc, i: int, ids: np.ndarray, tokenizer) -> np.ndarray:
    try:
        word_ids = enc.word_ids(i)
    except (ValueError, AttributeError):  # slow tokenizers: fall back to WordPiece's "##"
        tokens = tokenizer.convert_ids_to_tokens(ids.tolist())
        return np.asarray([not t.startswith("##") for t in tokens], dtype=bool)
    starts = np.ones(len(ids), dtype=bool)
    for j in range(1, len(ids)):
        starts[j] = word_ids[j] is None or word_ids[j] != word_ids[j - 1]
    return starts


def special_token_ids(tokenizer, objective: str) -> tuple[int | None, int]:
    """``(start, separator)`` token ids used when packing."""
    if objective == "causal":
        sep = tokenizer.eos_token_id
        if sep is None:
            raise ConfigError("the tokenizer has no end-of-text token to separate documents (eos_token)")
        return None, sep
    start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    sep = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    if sep is None:
        raise ConfigError("the tokenizer has no separator token ([SEP] or eos) to separate documents")
    return start, sep


def _pack(docs: list[_Doc], seq_len: int, start: int | None, sep: int, keep_tail: bool,
          with_starts: bool) -> Blocks:
    """Concatenate ``doc + [sep]`` and cut into ``[start] + (seq_len - 1)`` token blocks.

    A canary copy that would straddle a cut starts the next block instead (the block before it
    ends short), and a last, short block that holds one is kept: a copy cut in two, or dropped
    with the stream's tail, is not in the training data whole, and its exposure would measure
    nothing (13-20% of copies were so, a canary meant to appear once sometimes never whole)."""
    blocks = Blocks(word_starts=[] if with_starts else None)
    if not docs:
        return blocks
    body = seq_len - (1 if start is not None else 0)
    pieces: list[np.ndarray] = []
    piece_starts: list[np.ndarray] = []
    filled, holds_canary = 0, False

    def close() -> None:
        piece = np.concatenate(pieces).astype(np.int32)
        if start is not None:
            piece = np.concatenate([np.asarray([start], dtype=np.int32), piece])
        blocks.ids.append(piece)
        if with_starts:
            # the token after a separator always begins a word
            s = np.concatenate(piece_starts)
            if start is not None:
                s = np.concatenate([[True], s])
            blocks.word_starts.append(s.astype(bool))
        pieces.clear()
        piece_starts.clear()

    for d in docs:
        ids = np.append(d.ids, np.int32(sep))
        starts = np.append(d.starts, True) if with_starts else None
        canary = d.group == _CANARY_GROUP
        if canary and filled and filled + len(ids) > body and len(ids) <= body:
            close()
            filled, holds_canary = 0, False
        at = 0
        while at < len(ids):
            take = min(body - filled, len(ids) - at)
            pieces.append(ids[at:at + take])
            if with_starts:
                piece_starts.append(starts[at:at + take])
            filled += take
            at += take
            holds_canary = holds_canary or canary
            if filled == body:
                close()
                filled, holds_canary = 0, False
    if filled and (keep_tail or holds_canary):
        close()
    return blocks


def _per_document(docs: list[_Doc], seq_len: int, start: int | None, sep: int, with_starts: bool,
                  sep_every_window: bool = True) -> Blocks:
    """One or more sequences per document, each ``[start] + window + [sep]`` (unpacked mode).

    A causal LM learns to predict its separator, end-of-text: there (``sep_every_window``
    false) only a document's last window ends with it, or every cut inside a long document
    would be taught, and scored, as the end of the text."""
    blocks = Blocks(word_starts=[] if with_starts else None)
    head = 1 if start is not None else 0
    for d in docs:
        ids, starts = d.ids, d.starts
        if not sep_every_window:
            ids = np.append(ids, np.int32(sep))
            starts = np.append(starts, True) if with_starts else None
        body = seq_len - head - (1 if sep_every_window else 0)
        for a in range(0, len(ids), body):
            piece = [ids[a:a + body]]
            s = [starts[a:a + body]] if with_starts else None
            if start is not None:
                piece.insert(0, np.asarray([start], dtype=np.int32))
                if with_starts:
                    s.insert(0, np.asarray([True]))
            if sep_every_window:
                piece.append(np.asarray([sep], dtype=np.int32))
                if with_starts:
                    s.append(np.asarray([True]))
            blocks.ids.append(np.concatenate(piece).astype(np.int32))
            if with_starts:
                blocks.word_starts.append(np.concatenate(s).astype(bool))
    return blocks


def held_out_groups(groups: dict[str, float], eval_fraction: float, where: str, kind: str) -> set[str]:
    """The split groups held out: those whose stable fraction is below ``eval_fraction`` (at
    least one, never all)."""
    if eval_fraction <= 0:
        return set()
    if len(groups) < 2:
        raise CorpusError(
            f"{where} holds a single {kind} group; at least two are needed to hold "
            "one out for evaluation (or set data.eval_fraction 0)"
        )
    held = {g for g, f in groups.items() if f < eval_fraction}
    ordered = sorted(groups, key=lambda g: groups[g])
    if not held:  # small corpora: hold out the group closest to the threshold
        held = {ordered[0]}
    if len(held) == len(groups):
        held.discard(ordered[-1])
    return held


def split_documents(cfg_data) -> tuple[list, list]:
    """The documents (not the packed blocks) pretraining trains on and holds out, by the same
    rules as :func:`build_corpus`: the membership-inference sets of the privacy audit."""
    docs, kinds = [], set()
    for doc, _, kind, group in _with_text(cfg_data, {}):
        kinds.add(kind)
        docs.append((doc, group))
    groups = {g: stable_fraction(g) for _, g in docs}
    where = ", ".join(str(p) for p in cfg_data.paths)
    held = held_out_groups(groups, cfg_data.eval_fraction, where, "+".join(sorted(kinds)) or cfg_data.split_key)
    return [d for d, g in docs if g not in held], [d for d, g in docs if g in held]


def record_documents(out: str | os.PathLike, cfg, corpus: PackedCorpus) -> Path:
    """Write ``out/split.json`` in fine-tuning's form (:func:`domainfm.finetune.split.write_split`):
    digests of the documents the run trained on and of those it held out.

    The privacy audit takes its members and non-members from this record: given the whole data
    file as its training documents, it would otherwise count the held-out patients as members
    and pull the membership-inference AUC towards 0.5. The files are read again once, keeping
    only each document's digest on its side, instead of keeping every text in memory through
    training; the sides are the held-out groups of ``corpus``, the corpus the run trains on.
    Canaries are not documents of the files and are not recorded (the manifest holds them).
    """
    from domainfm.finetune.split import split_digest, split_salt, write_split

    salt = split_salt(cfg.train.seed)
    sides: dict[bool, list[str]] = {False: [], True: []}  # held out?
    for doc, _, _, group in _with_text(cfg.data, {}):
        sides[group in corpus.eval_groups].append(split_digest(salt, doc.id, doc.text))
    where = ", ".join(str(p) for p in cfg.data.paths)
    stats = {"split_key": _recorded_split_key(cfg.data.split_key, corpus.stats["split_key"]),
             "eval_source": f"{cfg.data.eval_fraction:g} of {where}"}
    return write_split(out, salt, sides[False], sides[True], stats)


def _recorded_split_key(split_key: str, kinds: str) -> str:
    """The split key in fine-tuning's spelling (``meta.patient_id``, ``id``, ``meta.<key>``), which
    the audit reads to check held-out patients: ``auto`` groups by ``meta.patient_id`` wherever a
    document has one."""
    if split_key != "auto":
        return split_key
    return "meta.patient_id" if "patient_id" in kinds.split("+") else "id"


def build_corpus(cfg, tokenizer, objective: str) -> PackedCorpus:
    """Read, split and pack the documents of ``cfg.data.paths``.

    Args:
        cfg: a :class:`~domainfm.pretrain.config.PretrainConfig`.
        tokenizer: a transformers tokenizer (fast tokenizers give exact word boundaries).
        objective: ``mlm`` or ``causal``.

    Raises:
        CorpusError: no text at all, too few groups to hold one out, or less training text
            than one sequence.
    """
    if not cfg.data.paths:
        raise ConfigError("data.paths is empty: give the de-identified JSONL file(s) to train on")
    with_starts = objective == "mlm" and cfg.masking.whole_word_mask
    docs, counts = _read(cfg.data, tokenizer, with_starts)
    where = ", ".join(str(p) for p in cfg.data.paths)
    if not docs:
        missing = counts.get("without_text_field", 0)
        if missing:
            raise CorpusError(f"no document with text in {where}: {missing} of {counts['documents']} documents have "
                              f"no string in data.text_field {cfg.data.text_field!r}; check the field's name")
        raise CorpusError(f"no document with text in {where} (empty corpus)")

    groups = {d.group: d.fraction for d in docs}
    eval_groups = held_out_groups(groups, cfg.data.eval_fraction, where, counts["split_key"])
    train_docs = [d for d in docs if d.group not in eval_groups]
    eval_docs = [d for d in docs if d.group in eval_groups]
    canaries = []
    if cfg.canaries.enabled:
        canaries, train_docs = _with_canaries(cfg, train_docs, tokenizer, with_starts)

    start, sep = special_token_ids(tokenizer, objective)
    seq_len = cfg.masking.seq_len
    if cfg.masking.packing:
        train = _pack(train_docs, seq_len, start, sep, keep_tail=False, with_starts=with_starts)
        held = _pack(eval_docs, seq_len, start, sep, keep_tail=True, with_starts=with_starts)
    else:
        every = objective != "causal"
        train = _per_document(train_docs, seq_len, start, sep, with_starts, sep_every_window=every)
        held = _per_document(eval_docs, seq_len, start, sep, with_starts, sep_every_window=every)
    if cfg.data.max_eval_blocks and len(held) > cfg.data.max_eval_blocks:
        held.ids = held.ids[: cfg.data.max_eval_blocks]
        if held.word_starts is not None:
            held.word_starts = held.word_starts[: cfg.data.max_eval_blocks]
    train_tokens = int(sum(len(d.ids) + 1 for d in train_docs if d.group != _CANARY_GROUP))
    if not len(train):
        raise CorpusError(
            f"the training text of {where} is shorter than one sequence ({train_tokens} tokens < "
            f"masking.seq_len {seq_len}); add text or lower masking.seq_len"
        )
    max_id = max((int(d.ids.max()) for d in docs if len(d.ids)), default=-1)
    stats = {
        **counts,
        "train_documents": len(train_docs) - sum(c.repeats for c in canaries),
        "canary_insertions": sum(c.repeats for c in canaries),
        "eval_documents": len(eval_docs),
        "train_groups": len({d.group for d in train_docs if d.group != _CANARY_GROUP}),
        "eval_groups": len(eval_groups),
        "train_text_tokens": train_tokens,
        "train_sequences": len(train),
        "train_sequence_tokens": train.tokens,
        "eval_sequences": len(held),
        "eval_sequence_tokens": held.tokens,
        "packing": cfg.masking.packing,
        "max_token_id": max_id,
    }
    return PackedCorpus(train=train, eval=held, stats=stats, canaries=canaries, eval_groups=eval_groups)


_CANARY_GROUP = "canary"


def _with_canaries(cfg, train_docs: list[_Doc], tokenizer, with_starts: bool) -> tuple[list, list[_Doc]]:
    """Make the run's canaries and insert every copy at a seeded random place among the
    training documents (packing then cuts the stream into blocks, each copy whole: :func:`_pack`)."""
    from domainfm.privacy_audit.canaries import insertion_texts, make_canaries

    canaries = make_canaries(cfg.canaries, cfg.train.seed)
    texts = insertion_texts(canaries, cfg.train.seed)
    enc = tokenizer(texts, add_special_tokens=False, return_attention_mask=False,
                    return_token_type_ids=False, verbose=False)
    inserted = []
    for i in range(len(texts)):
        ids = np.asarray(enc["input_ids"][i], dtype=np.int32)
        starts = _word_starts(enc, i, ids, tokenizer) if with_starts else None
        inserted.append(_Doc(ids, starts, _CANARY_GROUP, 1.0))
    rng = np.random.default_rng([cfg.train.seed, 7_919])
    slots = np.sort(rng.integers(0, len(train_docs) + 1, size=len(inserted)))
    merged: list[_Doc] = []
    j = 0
    for pos, doc in enumerate(train_docs + [None]):
        while j < len(slots) and slots[j] == pos:
            merged.append(inserted[j])
            j += 1
        if doc is not None:
            merged.append(doc)
    return canaries, merged
