"""Sentence encoders behind one small interface: texts -> L2-normalised vectors.

The labeling methods only need :class:`Encoder`; tests swap in a fake one for the math. The real
one wraps a sentence-transformers model, batches the forward passes, caches every vector by text
hash (the pool is embedded once however often the head is refit), and sends documents longer
than the encoder window through the chunk stage: the chunk vectors are averaged, weighted by
chunk length, so nothing past the window is silently cut off.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from domainfm.corpus.document import Document
from domainfm.errors import DomainFMError, ModelResolutionError, RecordError


@runtime_checkable
class Encoder(Protocol):
    """What a labeling method needs from an encoder."""

    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32 array of L2-normalised vectors."""


def normalize(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def load_sentence_model(name_or_path: str):
    """A ``SentenceTransformer`` on CPU (or the available GPU), offline for embedded names."""
    from domainfm.models import quiet_transformers, resolve_model

    path = resolve_model(name_or_path, field="model")
    try:
        from sentence_transformers import SentenceTransformer

        # transformers' load report would list a DAPT output's masked-LM head as "unexpected":
        # true and harmless (the encoder is all a sentence model uses), so not shown.
        with quiet_transformers():
            return SentenceTransformer(path, device=_device())
    except DomainFMError:
        raise
    except Exception as exc:  # OSError / ValueError / hub errors from transformers
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise ModelResolutionError(
            f"cannot load sentence encoder {name_or_path!r} ({type(exc).__name__}: {first[:200]}); "
            "give an embedded name (minilm), a folder written by save_pretrained, or a hub id"
        ) from None


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class SentenceEncoder:
    """A sentence-transformers model with a text-hash cache and chunking of long documents.

    Args:
        model: a loaded ``SentenceTransformer`` or a name/path for :func:`load_sentence_model`.
        max_tokens: positions per chunk (special tokens included); 0 = the model's
            ``max_seq_length``. Documents that fit are encoded whole.
        batch_size: texts per forward pass.
        chunk: send long documents through :mod:`domainfm.chunk` (False = truncate, which the
            encoder does silently at its window).
        name: recorded in outputs (``model_version``).
    """

    def __init__(self, model, *, max_tokens: int = 0, batch_size: int = 32, chunk: bool = True,
                 name: str | None = None):
        if isinstance(model, str):
            name = name or model
            model = load_sentence_model(model)
        self.model = model
        self.name = name or "sentence-encoder"
        window = int(getattr(model, "max_seq_length", 0) or 512)
        self.max_tokens = min(max_tokens, window) if max_tokens else window
        self.batch_size = batch_size
        self.chunk = chunk
        self._cache: dict[str, np.ndarray] = {}
        self._chunker = None
        self.chunked_documents = 0  # documents longer than the window, embedded from chunks
        self.on_progress: Callable[[int], None] | None = None

    # -------------------------------------------------------------------------- encoding

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        keys = [text_key(t) for t in texts]
        todo = {k: t for k, t in zip(keys, texts) if k not in self._cache}
        if todo:
            vectors = self._encode_documents(list(todo.values()))
            for key, vec in zip(todo, vectors):
                self._cache[key] = vec
        dim = self.dimension if not keys else None
        if not keys:
            return np.zeros((0, dim), dtype=np.float32)
        return np.stack([self._cache[k] for k in keys])

    @property
    def dimension(self) -> int:
        getter = getattr(self.model, "get_embedding_dimension", None) or getattr(
            self.model, "get_sentence_embedding_dimension"
        )
        return int(getter())

    def clear_cache(self) -> None:
        self._cache.clear()

    def save_cache(self, path) -> None:
        """Write the cached vectors (keyed by text hash, no text) to an ``.npz`` file."""
        keys = sorted(self._cache)
        vectors = np.stack([self._cache[k] for k in keys]) if keys else np.zeros((0, self.dimension), np.float32)
        np.savez(path, keys=np.array(keys), vectors=vectors, name=np.array(self.name),
                 max_tokens=np.array(self.max_tokens), chunk=np.array(self.chunk))

    def load_cache(self, path) -> int:
        """Add the vectors of :meth:`save_cache` to the cache; returns how many were added.
        A file written with another encoder name or window is refused (its vectors differ)."""
        with np.load(path) as data:
            saved = (str(data["name"]), int(data["max_tokens"]), bool(data["chunk"]))
            if saved != (self.name, self.max_tokens, self.chunk):
                raise DomainFMError(f"{path}: embeddings of encoder {saved}, not of {(self.name, self.max_tokens, self.chunk)}")
            keys, vectors = data["keys"].tolist(), data["vectors"]
        added = sum(k not in self._cache for k in keys)
        self._cache.update(zip(keys, vectors))
        return added

    def _forward(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        out = self.model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)

    def _encode_documents(self, texts: list[str]) -> np.ndarray:
        if not self.chunk:
            return self._forward(texts)
        lengths = self._count_tokens(texts)
        short = [i for i, n in enumerate(lengths) if n <= self.max_tokens]
        long = [i for i, n in enumerate(lengths) if n > self.max_tokens]
        result = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if short:
            result[short] = self._forward([texts[i] for i in short])
        if long:
            result[long] = self._encode_long([texts[i] for i in long])
            self.chunked_documents += len(long)
        return result

    def _count_tokens(self, texts: list[str]) -> list[int]:
        ids = self.model.tokenizer(texts, add_special_tokens=True, return_attention_mask=False,
                                   return_token_type_ids=False, verbose=False)["input_ids"]
        return [len(x) for x in ids]

    def _encode_long(self, texts: list[str]) -> np.ndarray:
        """Chunk (token-exact, via the chunk stage), encode the chunks, length-weighted mean."""
        chunker = self._get_chunker()
        docs = [Document(id=f"d{i}", text=t) for i, t in enumerate(texts)]
        pieces: list[tuple[int, str, float]] = []
        for i, result in enumerate(chunker.iter_documents(docs)):
            if result.error is not None or not result.chunks:
                # A document the chunker cannot cut: fall back to the encoder's truncation.
                pieces.append((i, texts[i], 1.0))
                continue
            for c in result.chunks:
                pieces.append((i, c.text, float(max(1, c.end - c.start))))
        vectors = self._forward([p[1] for p in pieces])
        out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
        weights = np.zeros(len(texts), dtype=np.float32)
        for (i, _, w), vec in zip(pieces, vectors):
            out[i] += w * vec
            weights[i] += w
        return normalize(out / np.maximum(weights, 1e-9)[:, None])

    def _get_chunker(self):
        if self._chunker is None:
            from domainfm.chunk import ChunkConfig, Chunker

            cfg = ChunkConfig(tokenizer="minilm", max_tokens=self.max_tokens,
                              overlap=max(0, self.max_tokens // 8), profile="generic")
            self._chunker = Chunker(cfg, tokenizer=self.model.tokenizer)
        return self._chunker

    def chunk_texts(self, texts: Sequence[str]) -> list[list[str]]:
        """The pieces each text is encoded from (one piece when it fits the window); used
        for fine-tuning so that training sees the same views as inference."""
        lengths = self._count_tokens(list(texts)) if self.chunk else [0] * len(texts)
        out: list[list[str]] = []
        for text, n in zip(texts, lengths):
            if n <= self.max_tokens:
                out.append([text])
                continue
            try:
                chunks = self._get_chunker().chunk(Document(id="d", text=text))
            except RecordError:
                chunks = []
            out.append([c.text for c in chunks] or [text])
        return out
