"""Log-likelihoods from a masked or causal language model, the measurements every privacy
attack here is built on.

- :meth:`ScoringModel.span_logprobs`: log-likelihood of the tokens of one character range of a
  text in its context. MLM: all the range's tokens are masked at once and the log-probabilities
  of the true tokens are summed (a fill-in). Causal LM: the sum of the next-token
  log-probabilities of the range's tokens given everything before them.
- :meth:`ScoringModel.document_losses`: mean loss per document (MLM: over seeded masks that
  depend only on the document's position and the seed, so two models see the same masks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np


@dataclass
class ScoringModel:
    """A language model and its tokenizer, in evaluation mode, on the best available device.

    Attributes:
        objective: ``mlm`` or ``causal``.
        head: the attribute holding the MLM head, applied only at masked positions (``None``:
            the model's full forward is used).
    """

    model: Any
    tokenizer: Any
    objective: str
    head: str | None
    batch_size: int = 64
    source: str = ""

    @classmethod
    def load(cls, name: str, *, tokenizer: str | None = None, objective: str = "auto", seed: int = 13,
             batch_size: int = 64, field: str = "model") -> ScoringModel:
        """Load like ``domainfm pretrain`` does (same offline resolution and checks; a missing
        MLM head is created seeded with ``seed``, as the training run created it). ``field``
        names the setting the model came from in errors (``base_model``).

        Raises:
            ModelResolutionError, ConfigError: as :func:`domainfm.pretrain.load_model`.
        """
        import torch

        from domainfm.pretrain.config import ModelConfig
        # the model module, not pretrain.train: that one imports the whole training engine
        # (transformers.Trainer and friends, ~5 s on one core) which scoring never uses
        from domainfm.pretrain.model import load_model

        loaded = load_model(ModelConfig(name=name, tokenizer=tokenizer, objective=objective), seed, field=field)
        model = loaded.model.eval()
        if torch.cuda.is_available():
            model = model.to("cuda")
        return cls(model, loaded.tokenizer, loaded.objective, loaded.head, batch_size, loaded.source)

    @property
    def device(self):
        return next(self.model.parameters()).device

    @property
    def max_length(self) -> int:
        config = self.model.config
        for key in ("max_position_embeddings", "n_positions", "max_seq_len"):
            value = getattr(config, key, None)
            if isinstance(value, int) and value > 0:
                return value
        return 512

    def _start_id(self) -> int | None:
        """Causal LMs: a start token so the first real token is predicted too."""
        tok = self.tokenizer
        return tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id

    def _encode(self, texts: Sequence[str], max_length: int) -> tuple[list[list[int]], list[list[tuple[int, int]]]]:
        causal = self.objective == "causal"
        enc = self.tokenizer(list(texts), return_offsets_mapping=True, add_special_tokens=not causal,
                             truncation=True, max_length=max_length - (1 if causal else 0),
                             return_attention_mask=False, return_token_type_ids=False, verbose=False)
        ids = [list(x) for x in enc["input_ids"]]
        offsets = [[tuple(o) for o in x] for x in enc["offset_mapping"]]
        start = self._start_id() if causal else None
        if start is not None:
            ids = [[start] + x for x in ids]
            offsets = [[(0, 0)] + x for x in offsets]
        return ids, offsets

    @staticmethod
    def _positions(offsets: list[tuple[int, int]], start: int, end: int) -> list[int]:
        return [j for j, (s, e) in enumerate(offsets) if e > s and s < end and e > start]

    def span_token_counts(self, texts: Sequence[str], spans: Sequence[tuple[int, int]]) -> np.ndarray:
        """How many tokens cover each span (0 when truncation cut it off)."""
        _, offsets = self._encode(texts, self.max_length)
        return np.asarray([len(self._positions(o, s, e)) for o, (s, e) in zip(offsets, spans)], dtype=np.int64)

    def span_logprobs(self, texts: Sequence[str], spans: Sequence[tuple[int, int]]) -> np.ndarray:
        """Sum of the log-probabilities of the tokens covering ``spans[i]`` in ``texts[i]``
        (``nan`` where no token covers the span)."""
        import torch

        ids, offsets = self._encode(texts, self.max_length)
        positions = [self._positions(o, s, e) for o, (s, e) in zip(offsets, spans)]
        if self.objective == "mlm":
            return self._fill_in_logprobs(ids, positions)
        out = np.full(len(texts), np.nan)
        scored = [i for i in range(len(texts)) if positions[i]]
        with torch.inference_mode():
            for rows, tensors in self._padded_batches([ids[i] for i in scored], [positions[i] for i in scored]):
                out[[scored[r] for r in rows]] = self._selected_logprob_sums(*tensors)
        return out

    def _fill_in_logprobs(self, ids: list[list[int]], positions: list[list[int]]) -> np.ndarray:
        """MLM: texts that differ only inside their (masked) spans share one masked input, so
        each distinct masked input is encoded once and every candidate is read off its
        log-probabilities (ranking 1,000 candidates costs one forward pass)."""
        import torch

        masked_inputs: dict[tuple[tuple[int, ...], tuple[int, ...]], int] = {}
        which = []
        for row, pos in zip(ids, positions):
            if not pos:
                which.append(-1)
                continue
            masked = list(row)
            for j in pos:
                masked[j] = self.tokenizer.mask_token_id
            key = (tuple(masked), tuple(pos))
            which.append(masked_inputs.setdefault(key, len(masked_inputs)))
        keys = list(masked_inputs)
        logprobs: list[Any] = [None] * len(keys)
        with torch.inference_mode():
            for chunk, (input_ids, attention, selected) in self._padded_batches([k[0] for k in keys],
                                                                                [list(k[1]) for k in keys]):
                rows = self._masked_logprobs(input_ids.to(self.device), attention.to(self.device),
                                             selected.to(self.device)).cpu()
                counts = selected.sum(1).tolist()
                start = 0
                for r, k in enumerate(chunk):
                    logprobs[k] = rows[start:start + counts[r]]
                    start += counts[r]
        out = np.full(len(ids), np.nan)
        for i, (row, pos) in enumerate(zip(ids, positions)):
            if which[i] >= 0:
                table = logprobs[which[i]]
                out[i] = float(table[torch.arange(len(pos)), torch.tensor([row[j] for j in pos])].double().sum())
        return out

    def _padded_batches(self, ids: list[list[int]], selected: list[list[int]]):
        """``(rows, (input_ids, attention, selected))`` per batch of rows of similar length
        (:func:`domainfm.inference.predict.length_batches`), ``selected`` marking the given
        positions of each row."""
        import torch

        from domainfm.inference.predict import length_batches, padding_cap

        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        for rows in length_batches([len(x) for x in ids], self.batch_size, padding_cap(self.device)):
            width = max(len(ids[r]) for r in rows)
            input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
            attention = torch.zeros((len(rows), width), dtype=torch.long)
            chosen = torch.zeros((len(rows), width), dtype=torch.bool)
            for b, r in enumerate(rows):
                input_ids[b, : len(ids[r])] = torch.tensor(ids[r])
                attention[b, : len(ids[r])] = 1
                chosen[b, selected[r]] = True
            yield rows, (input_ids, attention, chosen)

    def _masked_logprobs(self, masked, attention, selected):
        """MLM: log-softmax over the vocabulary at the selected (already masked) positions."""
        import torch

        if self.head is not None:
            encoder = getattr(self.model, self.model.base_model_prefix)
            hidden = encoder(input_ids=masked, attention_mask=attention)[0]
            logits = getattr(self.model, self.head)(hidden[selected])
        else:
            logits = self.model(input_ids=masked, attention_mask=attention).logits[selected]
        return torch.log_softmax(logits.float(), dim=-1)

    def _selected_logprob_sums(self, input_ids, attention, selected) -> np.ndarray:
        """Per row: sum of log p(true token) at the selected positions (MLM: masked first)."""
        import torch

        device = self.device
        targets = input_ids.to(device)
        attention = attention.to(device)
        selected = selected.to(device)
        if self.objective == "mlm":
            masked = targets.masked_fill(selected, self.tokenizer.mask_token_id)
            logp_all = self._masked_logprobs(masked, attention, selected)
            chosen = targets[selected]
            row = selected.nonzero()[:, 0]
            logp = logp_all.gather(1, chosen[:, None])[:, 0]
        else:
            logits_all = self.model(input_ids=targets, attention_mask=attention).logits
            shifted = selected[:, 1:]
            logits = logits_all[:, :-1][shifted]
            chosen = targets[:, 1:][shifted]
            row = shifted.nonzero()[:, 0]
            logp = torch.log_softmax(logits.float(), dim=-1).gather(1, chosen[:, None])[:, 0]
        sums = torch.zeros(input_ids.shape[0], dtype=torch.float64, device=device)
        sums.index_add_(0, row, logp.double())
        return sums.cpu().numpy()

    def document_losses(self, texts: Sequence[str], *, max_tokens: int = 256, mask_passes: int = 2,
                        mlm_probability: float = 0.15, seed: int = 13) -> np.ndarray:
        """Mean per-token loss of each document's first ``max_tokens`` tokens.

        MLM: ``mask_passes`` maskings of disjoint ``mlm_probability`` slices of the tokens (all
        replaced by the mask token; ``ceil(1 / mlm_probability)`` passes score every token
        once). The masks of document ``i`` depend only on ``(seed, i)`` and its tokens, so every
        model is scored on the same masks. Causal LM: next-token loss.
        """
        import torch

        from domainfm.seeding import seeded_generator

        ids, _ = self._encode(texts, min(max_tokens, self.max_length))
        special = set(i for i in self.tokenizer.all_special_ids if i is not None)
        rows: list[tuple[int, list[int], list[int]]] = []  # (document, ids, selected positions)
        for i, doc_ids in enumerate(ids):
            if self.objective == "causal":
                rows.append((i, doc_ids, list(range(1, len(doc_ids)))))
                continue
            candidates = [j for j, t in enumerate(doc_ids) if t not in special]
            if not candidates:
                continue
            # disjoint slices of one seeded permutation: pass k masks the k-th slice, so
            # ceil(1 / mlm_probability) passes score every token exactly once
            perm = torch.randperm(len(candidates), generator=seeded_generator(seed, i)).tolist()
            size = max(1, math.ceil(mlm_probability * len(candidates)))
            for k in range(mask_passes):
                chosen = sorted(candidates[p] for p in perm[k * size:(k + 1) * size])
                if not chosen:
                    break
                rows.append((i, doc_ids, chosen))
        totals = np.zeros(len(texts))
        counts = np.zeros(len(texts))
        rows = [row for row in rows if row[2]]
        with torch.inference_mode():
            for batch, tensors in self._padded_batches([row[1] for row in rows], [row[2] for row in rows]):
                sums = self._selected_logprob_sums(*tensors)
                for total, (i, _, chosen) in zip(sums, (rows[b] for b in batch)):
                    totals[i] -= total
                    counts[i] += len(chosen)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)
