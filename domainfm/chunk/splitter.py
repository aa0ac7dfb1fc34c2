"""Token-exact chunking: chunks that never overflow the model and map back character for character.

How a document is chunked:

1. It is tokenized once (fast tokenizer, offsets, no special tokens); documents are batched
   through the tokenizer. All decisions are then made in token-index space, so a boundary can
   only fall between two tokens, never inside one (nor inside a character that a byte-level
   tokenizer spreads over several tokens).
2. Every gap between two tokens gets a boundary level from the text around it:
   top-level section > nested heading > paragraph > line end after punctuation > sentence end >
   line break > clause punctuation > whitespace > inside a word. Patterns run on
   :func:`~domainfm.chunk.sections.layout_text`'s copy (CRLF, NBSP... written as newlines and
   spaces, same offsets); a boundary found at a character is the gap before the token starting
   there, or before the token that carries the whitespace leading up to it (byte-level BPE's
   ``" The"``), so it does not land one word late.
3. The sectionizer's top-level sections are hard boundaries: a chunk never crosses one, except
   that consecutive *whole* sections that together fit the budget are packed into one chunk
   (its ``section`` is then ``"A; B"``). Inside a section, a chunk ends at the best boundary that
   keeps it within ``budget = max_tokens - special tokens``: the highest level found in the last
   three quarters of the window (the latest one of that level), or a higher level earlier on when
   the far part offers nothing better than a clause or word break.
4. The next chunk starts ``overlap`` tokens before the end, at the earliest sentence (or better)
   boundary inside that window; with none there it starts at the previous end when that end is a
   sentence/paragraph boundary, else at the best word boundary in the window (inside a word when
   the window has no break at all, e.g. a URL or CJK text), or at the previous end when the whole
   window lies inside one character (``overlap`` is an upper bound). It never starts at or before
   the previous start, and never overlaps across a top-level section or heading.
5. A chunk's characters are ``[start of its first token, start of the next chunk's first
   token)`` with surrounding whitespace trimmed, so ``text == doc.text[start:end]`` and every
   non-whitespace character is in some chunk. Each chunk text is re-encoded *with* special
   tokens; if that count exceeds ``max_tokens`` (tokenizing a substring can differ from slicing
   the full tokenization at its edges) the chunk is shrunk and re-checked. ``n_tokens`` is that
   re-encoded count, so ``n_tokens <= max_tokens`` is a guarantee, not a hope.
"""

from __future__ import annotations

import logging
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import numpy as np

from domainfm.chunk.config import ChunkConfig
from domainfm.config import as_config
from domainfm.chunk.sections import SectionIndex, build_sections, get_sectionizer, layout_text
from domainfm.corpus.document import Document, Span, checked_document, document_stream
from domainfm.errors import ConfigError, DomainFMError, ModelResolutionError, RecordError

logger = logging.getLogger(__name__)

# Boundary levels of the gap before a token (higher = better place to cut).
INVALID = -1  # inside one character (byte-level tokens of a single code point)
WORD = 0  # between two tokens of one word
SPACE = 1
CLAUSE = 2  # after , ; : or around a dash
LINE = 3  # a line break inside a sentence (hard-wrapped text, list items)
SENTENCE = 4
LINE_END = 5  # a line break after terminal punctuation
PARAGRAPH = 6
HEADING = 7  # the heading of a nested section
TOP = 8  # the heading of a top-level section (hard boundary)

CHUNK_KEYS = ("id", "doc_id", "start", "end", "text", "n_tokens", "section", "spans", "meta", "label", "labels")

_PARAGRAPH = re.compile(r"\n[ \t\r\f\v]*\n\s*")
_LINE = re.compile(r"\n\s*")
_LINE_END = re.compile(r"(?<=[.!?:;])[\"'”’)\]]*[ \t]*\n\s*")
_SENTENCE = re.compile(r"[.!?][\"'”’)\]]*(?:\s+|,(?=[A-Z]))(?=[\"'“‘(\[]?[A-Z0-9])")
_CLAUSE = re.compile(r"[;:,][\"'”’)\]]*\s+|\s[-–—]+\s|[，、；：]")
_CJK_SENTENCE = re.compile(r"[。！？]+[」』”’）)]*")
_WORD_BEFORE = re.compile(r"(\w+)\W{0,3}$")
ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st sr jr no nos vs etc al fig figs sec art para cf approx inc ltd co corp "
    "jan feb mar apr jun jul aug sep sept oct nov dec e.g i.e u.s ex exh pp vol ch".split()
)
_BATCH_DOCS = 32
_BATCH_CHARS = 2_000_000
_PLAN_AHEAD = 64  # chunks planned before their token counts are verified in one batch
EMPTY_TEXT = "empty text: nothing to chunk"  # the reject reason of a blank document (chunk_file, engines)


@dataclass(slots=True)
class Chunk:
    """A piece of a document that fits the model, with its exact place in the source.

    Args:
        id: ``"<doc_id>#<i>"``.
        doc_id: the source document's id.
        start: first character in the document (``doc.text[start:end] == text``).
        end: one past the last character.
        text: the chunk's text.
        n_tokens: model positions the chunk occupies, special tokens included.
        section: heading path at the start, e.g. ``"Article 7 > 7.2"``; ``"A; B"`` when small
            whole sections were packed together; ``""`` before the first heading.
        spans: the document's spans that touch the chunk, in chunk coordinates. A span cut by a
            chunk boundary is clipped and its attrs gain ``cut`` (``"start"``, ``"end"`` or
            ``"both"``) plus ``doc_start``/``doc_end``, its full extent in the document.
        meta, label, labels: inherited from the document.
    """

    id: str
    doc_id: str
    start: int
    end: int
    text: str
    n_tokens: int
    section: str
    spans: list[Span] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    label: str | None = None
    labels: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "doc_id": self.doc_id, "start": self.start, "end": self.end,
            "text": self.text, "n_tokens": self.n_tokens, "section": self.section,
            "spans": [s.to_dict() for s in self.spans], "meta": self.meta,
            "label": self.label, "labels": self.labels,
        }

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Chunk:
        """Read a chunk back from its JSONL form (as written by :func:`chunk_file`)."""
        missing = [k for k in CHUNK_KEYS if k not in record]
        if missing:
            raise RecordError(f"chunk record lacks field(s) {missing}", record_id=record.get("id"))
        spans = [Span(s["start"], s["end"], s["label"], dict(s.get("attrs") or {})) for s in record["spans"]]
        return cls(record["id"], record["doc_id"], record["start"], record["end"], record["text"],
                   record["n_tokens"], record["section"], spans, dict(record["meta"] or {}),
                   record["label"], record["labels"])


@dataclass(slots=True)
class DocumentChunks:
    """The chunks of one document, or why it could not be chunked."""

    doc: Document
    chunks: list[Chunk]
    error: RecordError | None = None
    spans_outside: int = 0  # whitespace-only spans lying between chunks (reported, not dropped silently)


def load_chunk_tokenizer(name_or_path: str):
    """Load a tokenizer for chunking; any failure becomes one clear line.

    Raises:
        ModelResolutionError: the name cannot be resolved or loaded (the transformers
            exception is summarised, not passed through with its hub-download traceback).
    """
    from domainfm.models import load_tokenizer

    try:
        tokenizer = load_tokenizer(name_or_path)
        n_vocab = len(tokenizer) - len(set(tokenizer.all_special_ids))
    except DomainFMError:
        raise
    except Exception as exc:  # transformers raises OSError, ValueError, HF hub errors...
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = lines[0][:200] if lines else type(exc).__name__
        raise ModelResolutionError(
            f"cannot load tokenizer {name_or_path!r} ({type(exc).__name__}: {reason}); give an "
            "embedded name (minilm), a folder written by save_pretrained, or a hub id"
        ) from None
    if n_vocab < 1:
        # transformers builds an empty tokenizer from a folder without vocabulary files.
        raise ModelResolutionError(
            f"tokenizer {name_or_path!r} has no vocabulary (only special tokens): the folder lacks "
            "its vocabulary files (tokenizer.json / vocab.txt)"
        )
    return tokenizer


class Chunker:
    """Chunk documents for one tokenizer and configuration (see the module docstring).

    Args:
        config: the :class:`ChunkConfig`.
        tokenizer: an already loaded *fast* tokenizer; loaded from ``config.tokenizer`` if None.

    Raises:
        ConfigError: slow tokenizer, or a budget that the special tokens or overlap leave empty.
    """

    def __init__(self, config: ChunkConfig, tokenizer=None):
        self.config = config
        self.tokenizer = tokenizer if tokenizer is not None else load_chunk_tokenizer(config.tokenizer)
        tok = self.tokenizer
        if not getattr(tok, "is_fast", False):
            raise ConfigError(
                f"tokenizer {config.tokenizer!r} ({type(tok).__name__}) is a slow tokenizer without "
                "character offsets; chunking needs a fast one (AutoTokenizer.from_pretrained(..., use_fast=True))"
            )
        self.max_tokens = config.max_tokens
        self.n_special = int(tok.num_special_tokens_to_add(pair=False))
        self.budget = config.max_tokens - self.n_special
        if self.budget < 1:
            raise ConfigError(
                f"'max_tokens' ({config.max_tokens}) leaves no room for text: the tokenizer adds "
                f"{self.n_special} special tokens; use --max-tokens {self.n_special + 64} or more"
            )
        if config.overlap >= self.budget:
            raise ConfigError(
                f"'overlap' ({config.overlap}) must be smaller than the text budget {self.budget} "
                f"('max_tokens' {config.max_tokens} minus {self.n_special} special tokens); "
                f"try --overlap {self.budget // 8}"
            )
        limit = getattr(tok, "model_max_length", None)
        if isinstance(limit, int) and 0 < limit < 1_000_000 and config.max_tokens > limit:
            raise ConfigError(
                f"'max_tokens' ({config.max_tokens}) exceeds the model's maximum sequence length "
                f"({limit}); chunks that long would overflow it. Try --max-tokens {limit}"
            )
        self.overlap = config.overlap
        self.min_fill = max(1, self.budget // 4)
        self.sectionizer = get_sectionizer(config.profile)

    # ------------------------------------------------------------------ public entry points

    def iter_documents(self, docs: Iterable[Document], *, reject_empty: bool = False) -> Iterator[DocumentChunks]:
        """Chunk each document; one :class:`DocumentChunks` per document, in order.

        Args:
            docs: the documents.
            reject_empty: give a document whose text is empty or only whitespace an error
                (``"empty text: nothing to chunk"``) instead of zero chunks, so that a file stage
                rejects it rather than counting it written with nothing in the output.
        """
        batch: list[Document] = []
        size = 0
        for doc in document_stream(docs):
            try:
                checked_document(doc)
                if reject_empty and not doc.text.strip():
                    raise RecordError(EMPTY_TEXT, record_id=doc.id)
            except RecordError as err:  # a span past the text's end would come out cut, silently
                if batch:  # the results stay in input order
                    yield from self._chunk_batch(batch)
                    batch, size = [], 0
                yield DocumentChunks(doc, [], err)
                continue
            batch.append(doc)
            size += len(doc.text)
            if len(batch) >= _BATCH_DOCS or size >= _BATCH_CHARS:
                yield from self._chunk_batch(batch)
                batch, size = [], 0
        if batch:
            yield from self._chunk_batch(batch)

    def chunk(self, doc: Document) -> list[Chunk]:
        """The chunks of one document (raises :class:`RecordError` if it cannot be chunked or
        breaks a document invariant, e.g. a span past the end of its text)."""
        (result,) = self.iter_documents([doc])
        if result.error is not None:
            raise result.error
        return result.chunks

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Model positions each text occupies, special tokens included."""
        if not texts:
            return []
        ids = self.tokenizer(texts, add_special_tokens=True, return_attention_mask=False,
                             return_token_type_ids=False, verbose=False)["input_ids"]
        return [len(x) for x in ids]

    # ------------------------------------------------------------------------- internals

    def _chunk_batch(self, docs: list[Document]) -> list[DocumentChunks]:
        texts = [d.text for d in docs]
        offsets = self.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True,
                                 return_attention_mask=False, return_token_type_ids=False,
                                 verbose=False)["offset_mapping"]
        results = []
        for doc, offs in zip(docs, offsets):
            try:
                results.append(self._chunk_document(doc, offs))
            except RecordError as err:
                results.append(DocumentChunks(doc, [], err))
        return results

    def _chunk_document(self, doc: Document, offsets) -> DocumentChunks:
        text = doc.text
        if not text.strip():
            return DocumentChunks(doc, [])
        layout = layout_text(text)  # CRLF, NBSP...: found by the same patterns, at the same offsets
        sections = build_sections(self.sectionizer(layout))
        n = len(offsets)
        if n == 0:  # only characters the tokenizer drops (control characters...): one chunk
            cs, ce = _strip(text, 0, len(text))
            ranges = [(cs, ce, self.count_tokens([text[cs:ce]])[0])]
            if ranges[0][2] > self.max_tokens:
                raise RecordError(f"text needs {ranges[0][2]} positions > max_tokens", record_id=doc.id)
        else:
            arr = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
            starts, ends = arr[:, 0], arr[:, 1]
            levels, hard = self._levels(layout, starts, ends, sections)
            ranges = self._ranges(doc, starts, levels, hard)
        index = SectionIndex(sections)
        ordered = sorted(doc.spans, key=lambda s: (s.start, s.end))
        touched: set[int] = set()
        chunks = []
        for i, (cs, ce, n_tokens) in enumerate(ranges):
            spans = []
            for j, span in enumerate(ordered):
                if span.start >= ce:
                    break
                if span.end <= cs:
                    continue
                touched.add(j)
                spans.append(_project(span, cs, ce))
            chunks.append(Chunk(
                id=f"{doc.id}#{i}", doc_id=doc.id, start=cs, end=ce, text=text[cs:ce],
                n_tokens=n_tokens, section=index.label(cs, ce), spans=spans, meta=dict(doc.meta),
                label=doc.label, labels=list(doc.labels) if doc.labels is not None else None,
            ))
        outside = len(ordered) - len(touched)
        if outside:
            # no document id: after 'deid --pseudonymize-ids' ids are safe, before it they are often
            # record numbers; the manifest counts these (spans_outside_chunks)
            logger.warning("%d whitespace-only span(s) of a document lie between chunks (counted in the "
                           "manifest as spans_outside_chunks)", outside)
        return DocumentChunks(doc, chunks, None, outside)

    def _levels(self, text: str, starts: np.ndarray, ends: np.ndarray, sections) -> tuple[np.ndarray, list[int]]:
        """Boundary level of the gap before each token (index ``n`` = end of text)."""
        n = len(starts)
        levels = np.full(n + 1, WORD, dtype=np.int8)
        space = _whitespace_mask(text)
        # non-whitespace characters before each position: text[a:b] is blank iff the counts agree
        solid = np.zeros(len(text) + 1, dtype=np.int64)
        np.cumsum(~space, out=solid[1:])
        if n > 1:
            reach = np.maximum.accumulate(ends)[:-1]  # furthest character covered before token i
            gap = starts[1:]
            # Byte-level BPE (GPT-2, RoBERTa, Llama 3) puts the space inside the next token
            # (" The"): no gap in the offsets, yet a word boundary all the same.
            leads_with_space = space[np.minimum(gap, len(text) - 1)] & (gap < len(text))
            levels[1:n][(gap > reach) | (leads_with_space & (gap == reach))] = SPACE
            invalid = gap < reach
            invalid |= gap < starts[:-1]  # offsets going backwards: never cut there
        else:
            invalid = np.zeros(0, dtype=bool)

        def gaps(positions) -> np.ndarray:
            """Token gap of each character position: before the first token starting there, or
            before the token that covers it when only whitespace of that token lies before it."""
            pos = np.asarray(positions, dtype=np.int64)
            idx = np.searchsorted(starts, pos, side="left")
            prev = np.maximum(idx - 1, 0)
            covering = (idx > 0) & (ends[prev] > pos) & (solid[pos] == solid[np.minimum(starts[prev], pos)])
            return idx - covering

        def mark(positions: list[int], level: int) -> None:
            if positions:
                idx = gaps(positions)
                idx = idx[(idx > 0) & (idx < n)]
                np.maximum.at(levels, idx, level)

        mark([m.end() for m in _CLAUSE.finditer(text)], CLAUSE)
        mark([m.end() for m in _LINE.finditer(text)], LINE)
        mark([m.end() for m in _SENTENCE.finditer(text) if not _is_abbreviation(text, m.start())], SENTENCE)
        mark([m.end() for m in _CJK_SENTENCE.finditer(text)], SENTENCE)
        mark([m.end() for m in _LINE_END.finditer(text)], LINE_END)
        mark([m.end() for m in _PARAGRAPH.finditer(text)], PARAGRAPH)
        mark([s.start for s in sections if not s.top], HEADING)
        levels[1:n][invalid] = INVALID
        hard_idx = gaps([s.start for s in sections if s.top])
        hard = sorted({int(i) for i in hard_idx if 0 < i < n})
        levels[hard] = TOP
        levels[0] = levels[n] = TOP
        return levels, hard

    def _ranges(self, doc: Document, starts: np.ndarray, levels: np.ndarray, hard: list[int]):
        """``(char_start, char_end, n_tokens)`` of every chunk, verified against max_tokens."""
        text, n = doc.text, len(starts)
        hard_set = set(hard)
        out: list[tuple[int, int, int]] = []
        s = 0
        while s < n:
            planned, t = [], s
            while t < n and len(planned) < _PLAN_AHEAD:
                e = self._end(levels, hard, t, n)
                planned.append((t, e))
                t = self._next_start(levels, hard_set, t, e, n)
            chars = [self._char_range(text, starts, n, a, b) for a, b in planned]
            counts = self.count_tokens([text[cs:ce] for cs, ce in chars])
            s = t
            for (a, b), (cs, ce), count in zip(planned, chars, counts):
                shrunk = count > self.max_tokens
                if shrunk:
                    b, cs, ce, count = self._shrink(doc, starts, levels, a, b, count)
                # Chunks that differ only by whitespace tokens (byte-level "Ġ", "Ċ" runs) trim to
                # nested ranges: keep the larger one, never a chunk twice or inside another.
                if cs >= ce or (out and out[-1][0] <= cs and ce <= out[-1][1]):
                    pass
                elif out and cs == out[-1][0]:
                    out[-1] = (cs, ce, count)
                else:
                    out.append((cs, ce, count))
                if shrunk:  # the chunks planned after this one are stale: re-plan from here
                    s = self._next_start(levels, hard_set, a, b, n)
                    break
        return out

    def _end(self, levels: np.ndarray, hard: list[int], s: int, n: int) -> int:
        """Token index where the chunk starting at token ``s`` ends (exclusive)."""
        i = bisect_right(hard, s)
        section_end = hard[i] if i < len(hard) else n
        if section_end - s > self.budget:
            return self._best_cut(levels, s, s + self.budget)
        e = section_end
        if s == 0 or (i > 0 and hard[i - 1] == s):  # a whole section: pack the next whole ones too
            while e < n:
                i += 1
                following = hard[i] if i < len(hard) else n
                if following - s > self.budget:
                    break
                e = following
        return e

    def _best_cut(self, levels: np.ndarray, s: int, e_max: int) -> int:
        lo, hi = s + 1, e_max + 1
        window = levels[lo:hi]
        best = int(window.max()) if window.size else INVALID
        if best < 0:
            # No cut within the budget (one character spread over more tokens than the budget):
            # take the smallest cuttable piece; verification decides whether it fits at all.
            return hi + int(np.argmax(levels[hi:] >= 0))
        far_lo = max(lo, s + self.min_fill)
        far = levels[far_lo:hi]
        far_best = int(far.max()) if far.size else INVALID
        if far_best >= 0 and (far_best >= SENTENCE or far_best >= best):
            region_lo, target = far_lo, far_best
        else:
            region_lo, target = lo, best
        region = levels[region_lo:hi]
        return region_lo + len(region) - 1 - int(np.argmax(region[::-1] == target))

    def _next_start(self, levels: np.ndarray, hard_set: set[int], s: int, e: int, n: int) -> int:
        if e >= n:
            return n
        if self.overlap == 0 or e - s <= self.overlap or e in hard_set or levels[e] >= HEADING:
            return e
        lo = e - self.overlap  # > s, so every chunk starts after the previous one
        window = levels[lo:e]
        good = np.flatnonzero(window >= SENTENCE)
        if good.size:
            return lo + int(good[0])
        if levels[e] >= SENTENCE:
            return e
        best = int(window.max())
        if best < 0:
            # The whole window lies inside one character (a CJK character or an emoji that a
            # byte-level tokenizer spreads over more than ``overlap`` tokens): ``overlap`` is an
            # upper bound (tests/test_chunk_abuse.py), so the next chunk starts at the end.
            return e
        # With no break at all in the window (a URL, a base64 blob, CJK text) best is WORD and the
        # chunk starts inside a word, at the first cuttable gap of the window (``overlap`` tokens
        # back unless that gap is inside a character): a cut between two tokens is still
        # token-exact, and overlap cut mid-word beats none.
        return lo + int(np.argmax(window == best))

    def _shrink(self, doc: Document, starts, levels, s: int, e: int, count: int):
        """Shorten the chunk ``[s, e)`` until its re-encoded length fits ``max_tokens``."""
        text, n = doc.text, len(starts)
        while True:
            e_max = e - max(1, count - self.max_tokens)
            if e_max > s:
                new_e = self._best_cut(levels, s, e_max)
            else:
                new_e = s + 1 + int(np.argmax(levels[s + 1:] >= 0))
            if new_e >= e:
                cs, ce = self._char_range(text, starts, n, s, e)
                raise RecordError(
                    f"characters [{cs}:{ce}] cannot be split further and need {count} model "
                    f"positions, more than max_tokens={self.max_tokens}", record_id=doc.id,
                )
            e = new_e
            cs, ce = self._char_range(text, starts, n, s, e)
            count = self.count_tokens([text[cs:ce]])[0]
            if count <= self.max_tokens:
                return e, cs, ce, count

    @staticmethod
    def _char_range(text: str, starts: np.ndarray, n: int, s: int, e: int) -> tuple[int, int]:
        cs = 0 if s == 0 else int(starts[s])
        ce = len(text) if e >= n else int(starts[e])
        return _strip(text, cs, ce)


def chunk_documents(docs: Iterable[Document], config: ChunkConfig, tokenizer=None) -> Iterator[Chunk]:
    """Chunk documents for a model: every chunk fits ``config.max_tokens`` positions (special
    tokens included) and ``chunk.text == doc.text[chunk.start:chunk.end]``.

    Args:
        docs: documents (e.g. :func:`domainfm.corpus.read_documents`); streamed in batches.
        config: the :class:`ChunkConfig`.
        tokenizer: an already loaded fast tokenizer; loaded from ``config.tokenizer`` if None.

    Raises:
        RecordError: a document that cannot be chunked within the limit (e.g. one character
            that needs more positions than ``max_tokens``).

    Example:
        >>> cfg = ChunkConfig(max_tokens=128, overlap=16, profile="clinical")
        >>> doc = Document(id="n1", text="HPI: cough for 3 days.\\nPLAN: rest.")
        >>> [(c.id, c.section) for c in chunk_documents([doc], cfg)]
        [('n1#0', 'HPI; PLAN')]
    """
    chunker = Chunker(as_config(config, ChunkConfig), tokenizer)
    for result in chunker.iter_documents(docs):
        if result.error is not None:
            raise result.error
        yield from result.chunks


_WHITESPACE = np.array([c for c in range(0x3001) if chr(c).isspace()], dtype=np.uint32)


def _whitespace_mask(text: str) -> np.ndarray:
    """``str.isspace`` of every character, without a Python loop over the text."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    return np.isin(codes, _WHITESPACE)


def _strip(text: str, cs: int, ce: int) -> tuple[int, int]:
    segment = text[cs:ce]
    stripped = segment.strip()
    if not stripped:
        return cs, cs
    left = len(segment) - len(segment.lstrip())
    return cs + left, cs + left + len(stripped)


def _is_abbreviation(text: str, dot: int) -> bool:
    """Is the period at ``dot`` more likely an abbreviation or list number than a sentence end?"""
    m = _WORD_BEFORE.search(text, max(0, dot - 12), dot)
    if m is None:
        return False
    word = m.group(1)
    if word.lower() in ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
        return True
    if word.isdigit() and len(word) <= 2:  # "1. Definitions" at a line start is a list number
        line_start = text.rfind("\n", max(0, m.start(1) - 16), m.start(1)) + 1
        if line_start == 0 and m.start(1) > 16:
            return False
        return not text[line_start:m.start(1)].strip()
    return False


def _project(span: Span, cs: int, ce: int) -> Span:
    attrs = dict(span.attrs)
    cut_start, cut_end = span.start < cs, span.end > ce
    if cut_start or cut_end:
        attrs["cut"] = "both" if cut_start and cut_end else ("start" if cut_start else "end")
        attrs["doc_start"], attrs["doc_end"] = span.start, span.end
    return Span(max(span.start, cs) - cs, min(span.end, ce) - cs, span.label, attrs)
