"""The span probe's tagger: the encoder split into a frozen, cached bottom and a trainable top,
documents cut into chunks of words with their encoder vectors, and the word features the
probe's logistic regression reads (sub-word means beside the neighbours', hashed spelling,
dictionary columns). :mod:`domainfm.label.spans` trains and calibrates it and turns its word
tags into suggested spans."""

from __future__ import annotations

import copy
import re
import zlib
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from domainfm.corpus.document import Document
from domainfm.errors import DomainFMError
from domainfm.label.dictionaries import dictionary_columns, load_dictionary
from domainfm.label.span_config import SpanLabelConfig


@dataclass
class WordChunk:
    """A chunk of a document as the tagger reads it: its words and the frozen layers' output."""

    doc: int  # index of the document in its list
    word_start: np.ndarray  # (W,) char offsets in the document of each word
    word_end: np.ndarray
    first_token: np.ndarray  # (W,) position of each word's first sub-word
    hidden: Any  # torch tensor (T, H): output of the frozen layers
    n_tokens: int
    last_token: np.ndarray | None = None  # (W,) position of each word's last sub-word (None: = first)
    words: list[str] | None = None  # (W,) each word's text, for its spelling features


class SpanTagger:
    """The encoder split into a frozen, cached bottom and a trainable top, with chunking and
    word alignment. One instance serves several fits (folds, the final model, refreshes)."""

    def __init__(self, cfg: SpanLabelConfig):
        import torch
        from transformers import AutoModel, AutoTokenizer

        from domainfm.chunk import ChunkConfig
        from domainfm.chunk.splitter import Chunker
        from domainfm.models import quiet_hf_loading, resolve_model

        self.cfg = cfg
        path = resolve_model(cfg.encoder, field="encoder")
        try:
            with quiet_hf_loading(f"encoder {cfg.encoder!r}"):
                self.tokenizer = AutoTokenizer.from_pretrained(path)
                self.encoder = AutoModel.from_pretrained(path, attn_implementation="sdpa").eval()
        except DomainFMError:
            raise
        except Exception as exc:  # OSError / ValueError from transformers
            raise DomainFMError(f"cannot load encoder {cfg.encoder!r} ({type(exc).__name__}); give 'minilm', a "
                                "'domainfm pretrain' output folder or a save_pretrained folder") from None
        layers = getattr(getattr(self.encoder, "encoder", None), "layer", None)
        if layers is None:
            raise DomainFMError(f"encoder {cfg.encoder!r} is not a BERT-style encoder (no encoder.layer list); "
                                "span suggestions need one (minilm, BERT, RoBERTa...)")
        self.n_layers = len(layers)
        self.train_layers = min(cfg.train_layers, self.n_layers)
        self.frozen = self.n_layers - self.train_layers
        self.probe_layers: tuple[int, ...] = ()
        if self.train_layers == 0:
            middle = sorted({max(1, self.n_layers // 2), min(self.n_layers, self.n_layers // 2 + 1)})
            self.probe_layers = tuple(cfg.probe_layers or middle)
            if max(self.probe_layers) > self.n_layers:
                raise DomainFMError(f"probe_layers {list(self.probe_layers)}: encoder {cfg.encoder!r} has "
                                    f"{self.n_layers} layers; give numbers from 1 to {self.n_layers}")
            # the layers above the highest one the probe reads would only cost time
            self.encoder.encoder.layer = layers[:max(self.probe_layers)]
        self.hidden_size = int(self.encoder.config.hidden_size)
        self.dictionaries = tuple(load_dictionary(source) for source in cfg.dictionaries)
        limit = getattr(self.tokenizer, "model_max_length", 512)
        max_tokens = min(cfg.max_tokens, limit if isinstance(limit, int) and 0 < limit < 100_000 else cfg.max_tokens)
        self.chunker = Chunker(ChunkConfig(tokenizer=path, max_tokens=max_tokens, overlap=min(cfg.overlap, max_tokens // 4)),
                               tokenizer=self.tokenizer)
        self.torch = torch
        torch.manual_seed(cfg.seed)

    # ------------------------------------------------------------------ features

    def featurize(self, docs: Sequence[Document]) -> tuple[list[WordChunk], list[tuple[int, str]]]:
        """Chunks of ``docs`` with the frozen layers' output; documents that cannot be chunked
        come back as ``(index, reason)``."""
        torch = self.torch
        chunks: list[WordChunk] = []
        bad: list[tuple[int, str]] = []
        pending = []
        for i, result in enumerate(self.chunker.iter_documents(docs)):
            if result.error is not None:
                bad.append((i, result.error.reason))
                continue
            for ch in result.chunks:
                pending.append((i, ch))
        texts = [ch.text for _, ch in pending]
        for lo in range(0, len(texts), 32):
            batch = pending[lo:lo + 32]
            enc = self.tokenizer([ch.text for _, ch in batch], return_offsets_mapping=True, padding=True,
                                 truncation=True, max_length=self.chunker.max_tokens, return_tensors="pt")
            offsets = enc.pop("offset_mapping").numpy()
            with torch.no_grad():
                out = self.encoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                                   output_hidden_states=True)
            # frozen encoder: the probe's layers side by side (the head reads them all); otherwise
            # the output of the last frozen layer, which the trained top layers continue from
            hidden = (torch.cat([out.hidden_states[i] for i in self.probe_layers], dim=-1)
                      if self.train_layers == 0 else out.hidden_states[self.frozen])
            if self.train_layers == 0:
                hidden = hidden.to(torch.float32)
            for b, (doc_index, ch) in enumerate(batch):
                word_ids = enc.word_ids(b)
                n = int(enc["attention_mask"][b].sum())
                starts, ends, firsts, lasts = [], [], [], []
                previous = None
                for t, w in enumerate(word_ids[:n]):
                    if w is None:
                        continue
                    s, e = int(offsets[b, t, 0]), int(offsets[b, t, 1])
                    if e <= s:
                        continue
                    if w != previous:
                        firsts.append(t)
                        lasts.append(t)
                        starts.append(ch.start + s)
                        ends.append(ch.start + e)
                    else:
                        ends[-1] = ch.start + e
                        lasts[-1] = t
                    previous = w
                if not firsts:
                    continue
                text = docs[doc_index].text
                # the chunker cuts inside a word when its window offers no better place (a long
                # name spelled out in sub-words): the piece at the edge is read as that whole
                # word, so tags, and spans, stay on the document's word boundaries
                while starts[0] > 0 and text[starts[0] - 1].isalnum() and text[starts[0]].isalnum():
                    starts[0] -= 1
                while ends[-1] < len(text) and text[ends[-1]].isalnum() and text[ends[-1] - 1].isalnum():
                    ends[-1] += 1
                chunks.append(WordChunk(doc_index, np.array(starts), np.array(ends), np.array(firsts),
                                     hidden[b, :n].clone(), n, np.array(lasts),
                                     [text[a:z] for a, z in zip(starts, ends)]))
        return chunks, bad

    # ------------------------------------------------------------------ model

    def new_head(self, n_tags: int):
        torch = self.torch

        class Head(torch.nn.Module):
            """The trained top encoder layers and a linear layer over the tags."""

            def __init__(inner, layers, width, dropout):
                super().__init__()
                inner.layers = torch.nn.ModuleList(layers)
                inner.dropout = torch.nn.Dropout(dropout)
                inner.out = torch.nn.Linear(width, n_tags)

            def forward(inner, h, mask):
                ext = (1.0 - mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min
                for layer in inner.layers:
                    r = layer(h, attention_mask=ext)
                    h = r[0] if isinstance(r, tuple) else r
                return inner.out(inner.dropout(h)), h

        top = [copy.deepcopy(layer) for layer in self.encoder.encoder.layer[self.frozen:]]
        return Head(top, self.hidden_size, self.cfg.dropout)

    def _batch(self, chunks: Sequence[WordChunk]):
        torch = self.torch
        T = max(c.n_tokens for c in chunks)
        h = torch.zeros(len(chunks), T, chunks[0].hidden.shape[-1])
        mask = torch.zeros(len(chunks), T)
        for i, c in enumerate(chunks):
            h[i, :c.n_tokens] = c.hidden
            mask[i, :c.n_tokens] = 1
        return h, mask

    @staticmethod
    def word_features(chunks: Sequence[WordChunk], spelling_dims: int = 0, dictionaries: Sequence = (),
                      dictionary_scale: float = 1.0) -> list[np.ndarray]:
        """Per chunk, each word's vector (the mean of its sub-words) beside its neighbours'
        (previous, next): what the frozen-encoder head reads, with ``spelling_dims`` the
        word's hashed spelling (:func:`spelling_features`) and with ``dictionaries`` their
        match columns (:func:`domainfm.label.dictionaries.dictionary_columns`). The mean, not the first sub-word
        alone: a rare clinical term is split into many pieces and its first ("ad" of
        "adrenoleukodystrophy") says little (NCBI, 2 draws: entity F1 0.347 / 0.501 with the
        first sub-word, 0.397 / 0.541 with the mean, at 8 / 32 seed abstracts)."""
        out = []
        for c in chunks:
            h = c.hidden.numpy()
            last = c.first_token if c.last_token is None else c.last_token
            # cumulative sums: the mean of each word's sub-word run in one pass
            csum = np.vstack([np.zeros((1, h.shape[1]), dtype=np.float64), np.cumsum(h, axis=0, dtype=np.float64)])
            x = ((csum[last + 1] - csum[c.first_token]) / (last - c.first_token + 1)[:, None]).astype(h.dtype)
            pad = np.zeros((1, x.shape[1]), dtype=x.dtype)
            parts = [x, np.vstack([pad, x[:-1]]), np.vstack([x[1:], pad])]
            if spelling_dims:
                parts.append(spelling_features(c.words or [""] * len(x), spelling_dims).astype(x.dtype))
            if dictionaries:
                parts.append(dictionary_columns(dictionaries, c.words or [""] * len(x), dictionary_scale).astype(x.dtype))
            out.append(np.hstack(parts))
        return out

    def features(self, chunks: Sequence[WordChunk], dictionaries: Sequence) -> list[np.ndarray]:
        """:meth:`word_features` with this tagger's settings and a head's ``dictionaries``."""
        return self.word_features(chunks, self.cfg.spelling_dims, dictionaries, self.cfg.dictionary_scale)

    def fit(self, chunks: Sequence[WordChunk], tags: Sequence[np.ndarray], n_tags: int, seed: int):
        """Train a head on chunks with word tags: a regularised multinomial logistic regression on
        the frozen encoder's word vectors (``train_layers: 0``), else top layers + a linear layer."""
        cfg = self.cfg
        if self.train_layers == 0:
            from sklearn.linear_model import LogisticRegression

            # each head reads the dictionaries less the entries its own seeds contradict, so a
            # calibration fold never learns from the held-out seeds' annotations
            books = tuple(book.consistent_with([(c.words or [], t) for c, t in zip(chunks, tags)])
                          for book in self.dictionaries)
            X = np.vstack(self.features(chunks, books))
            y = np.concatenate(list(tags))
            if len(np.unique(y)) < 2:
                raise DomainFMError("the seed documents' spans cover no word, or every word: cannot learn tags")
            head = LogisticRegression(C=cfg.c, max_iter=cfg.max_iter, random_state=seed).fit(X, y)
            return LinearHead(head, n_tags, books), 0
        torch = self.torch
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        head = self.new_head(n_tags)
        head_params = list(head.out.parameters())
        layer_params = [p for p in head.layers.parameters()]
        groups = [{"params": head_params, "lr": cfg.lr * 10}]
        if layer_params:
            groups.append({"params": layer_params, "lr": cfg.lr})
        opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
        n_batches = max(1, -(-len(chunks) // cfg.batch_size))
        steps = int(min(cfg.max_steps, max(cfg.min_steps, cfg.epochs * n_batches)))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, steps // 10))
                                                  * max(0.0, 1 - s / steps))
        head.train()
        order: list[int] = []
        for _ in range(steps):
            if len(order) < cfg.batch_size:
                order += list(rng.permutation(len(chunks)))
            pick, order = order[:cfg.batch_size], order[cfg.batch_size:]
            batch = [chunks[i] for i in pick]
            h, mask = self._batch(batch)
            logits, _ = head(h, mask)
            rows = torch.cat([logits[b, torch.as_tensor(c.first_token)] for b, c in enumerate(batch)])
            gold = torch.as_tensor(np.concatenate([tags[i] for i in pick]), dtype=torch.long)
            loss = torch.nn.functional.cross_entropy(rows, gold)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
            opt.step()
            sched.step()
        head.eval()
        return head, steps

    def score(self, head, chunks: Sequence[WordChunk]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Word logits per chunk, and each chunk's mean word vector (for diversity)."""
        if isinstance(head, LinearHead):
            logits, vectors = [], []
            for c in chunks:  # one chunk at a time: a pool's features would not fit at once
                (f,) = self.features([c], head.dictionaries)
                logits.append(head.logits(f))
                vectors.append(f[:, :c.hidden.shape[-1]].mean(0))
            return logits, vectors
        torch = self.torch
        logits_out, vectors = [], []
        order = sorted(range(len(chunks)), key=lambda i: chunks[i].n_tokens)
        results: dict[int, tuple] = {}
        with torch.no_grad():
            for lo in range(0, len(order), 32):
                idx = order[lo:lo + 32]
                batch = [chunks[i] for i in idx]
                h, mask = self._batch(batch)
                logits, top = head(h, mask)
                for b, (i, c) in enumerate(zip(idx, batch)):
                    ft = torch.as_tensor(c.first_token)
                    results[i] = (logits[b, ft].double().numpy(), top[b, ft].mean(0).numpy())
        for i in range(len(chunks)):
            logits_out.append(results[i][0])
            vectors.append(results[i][1])
        return logits_out, vectors


def spelling_features(words: Sequence[str], dims: int) -> np.ndarray:
    """Each word's spelling, hashed into ``dims`` columns (1 where a feature is present): its
    lower-case suffixes of 2-4 letters and prefixes of 3-4, and its shape with runs collapsed
    ("Xx", "X-d", "x"). A sentence encoder reads "-itis", "-emia", "-oma" or a gene-like "Xd"
    only through sub-word pieces; here a suffix one seed shows is read in every word that has it
    (NCBI, 2 draws, with edge trimming: entity F1 0.398 / 0.541 -> 0.403 / 0.558 at 8 / 32
    seed abstracts; 1,024 columns did as well as 4,096, the neighbours' spelling added nothing)."""
    out = np.zeros((len(words), dims), dtype=np.float32)
    for i, word in enumerate(words):
        low = word.lower()
        keys = [f"s{k}:{low[-k:]}" for k in (2, 3, 4) if len(low) > k]
        keys += [f"p{k}:{low[:k]}" for k in (3, 4) if len(low) > k]
        shape = "".join("X" if ch.isupper() else "x" if ch.islower() else "d" if ch.isdigit() else ch for ch in word)
        keys.append("shape:" + re.sub(r"(.)\1+", r"\1", shape))
        for key in keys:  # crc32, not hash(): the same columns in every process
            out[i, zlib.crc32(key.encode("utf-8")) % dims] = 1.0
    return out


class LinearHead:
    """The probe: a fitted logistic regression giving log-probabilities over every tag (tags absent from
    the seeds get a very low score)."""

    def __init__(self, model, n_tags: int, dictionaries: tuple = ()):
        self.model, self.n_tags, self.dictionaries = model, n_tags, dictionaries

    def logits(self, X: np.ndarray) -> np.ndarray:
        out = np.full((len(X), self.n_tags), -30.0)
        if len(X):
            out[:, self.model.classes_] = self.model.predict_log_proba(X)
        return out
