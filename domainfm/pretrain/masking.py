"""Batching and masked-language-model masking.

Masks are drawn from a generator seeded by ``(seed, micro-batch index, rank)``, not from a
global random state: the same micro-batch gets the same masks whether the run was interrupted
and resumed or not, and evaluation uses the same masks before and after training.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

IGNORE_INDEX = -100


def collate(ids: Sequence[np.ndarray], word_starts: Sequence[np.ndarray] | None, pad_id: int):
    """Stack sequences into ``input_ids``/``attention_mask`` (padding only to the longest one;
    packed blocks all have the same length, so they carry no padding at all)."""
    import torch

    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(ids), width), dtype=torch.long)
    starts = torch.ones((len(ids), width), dtype=torch.bool) if word_starts is not None else None
    for i, row in enumerate(ids):
        input_ids[i, : len(row)] = torch.from_numpy(row.astype(np.int64))
        attention[i, : len(row)] = 1
        if starts is not None:
            starts[i, : len(row)] = torch.from_numpy(word_starts[i])
    batch = {"input_ids": input_ids, "attention_mask": attention}
    if starts is not None:
        batch["word_starts"] = starts
    return batch


def mask_tokens(
    input_ids,
    attention_mask,
    *,
    special_ids: Sequence[int],
    mask_id: int,
    vocab_size: int,
    mlm_probability: float = 0.15,
    mask_replace_prob: float = 0.8,
    random_replace_prob: float = 0.1,
    word_starts=None,
    generator=None,
):
    """BERT masking: select ``mlm_probability`` of the tokens (or of the words when
    ``word_starts`` is given: a word is selected or not as a whole), replace 80% of them by the
    mask token, 10% by a random token, keep 10%.

    Special tokens and padding are never selected; at least one token per batch is, so the
    loss is always defined.

    Returns:
        ``(masked_input_ids, labels)`` with ``labels`` = original id at selected positions,
        ``-100`` elsewhere.
    """
    import torch

    ids = input_ids.clone()
    candidate = attention_mask.bool() & ~torch.isin(ids, torch.as_tensor(list(special_ids), dtype=ids.dtype))
    batch, width = ids.shape
    if word_starts is not None:
        # word index per token; a word is kept or selected as a whole
        word_index = torch.cumsum(word_starts.long(), dim=1)
        draws = torch.rand((batch, width + 1), generator=generator)
        prob = torch.gather(draws, 1, word_index.clamp(max=width))
    else:
        prob = torch.rand((batch, width), generator=generator)
    selected = (prob < mlm_probability) & candidate
    if not bool(selected.any()) and bool(candidate.any()):
        flat = candidate.flatten().nonzero().flatten()
        pick = flat[torch.randint(len(flat), (1,), generator=generator)]
        selected.view(-1)[pick] = True
    labels = torch.where(selected, ids, torch.full_like(ids, IGNORE_INDEX))
    action = torch.rand((batch, width), generator=generator)
    to_mask = selected & (action < mask_replace_prob)
    to_random = selected & (action >= mask_replace_prob) & (action < mask_replace_prob + random_replace_prob)
    ids[to_mask] = mask_id
    random_ids = torch.randint(vocab_size, (batch, width), generator=generator, dtype=ids.dtype)
    ids[to_random] = random_ids[to_random]
    return ids, labels


def causal_labels(input_ids, attention_mask):
    """Labels for causal LM: the inputs themselves, with padding ignored (the model shifts)."""
    import torch

    return torch.where(attention_mask.bool(), input_ids, torch.full_like(input_ids, IGNORE_INDEX))
