"""What a DAPT step computes: seeded micro-batches of packed blocks with their masks, the loss
(logits only at the masked positions) and the fixed-mask held-out evaluation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from domainfm.errors import CorpusError
from domainfm.pretrain.config import PretrainConfig
from domainfm.pretrain.data import PackedCorpus
from domainfm.pretrain.masking import IGNORE_INDEX, causal_labels, collate, mask_tokens
from domainfm.pretrain.model import LoadedModel
from domainfm.seeding import seeded_generator

_EVAL_KEY = 999_983


# --------------------------------------------------------------------------------------------
# Objectives: (sum of cross-entropy, number of predicted tokens) of one batch


class MaskedPositionsLoss:
    """Masked-LM loss with the LM head applied only to the masked positions.

    A forward pre-hook on the head gathers the selected hidden states before the vocabulary
    projection, so the call still goes through the whole (possibly DDP-wrapped) model and DDP
    synchronises every gradient. A model whose head layout is unknown gets the full-vocabulary
    logits, and the loss of the masked positions among them.
    """

    def __init__(self, inner, head: str | None):
        self.head, self.selected = head, None
        if head is not None:
            getattr(inner, head).register_forward_pre_hook(self._gather)

    def _gather(self, module, args):
        if self.selected is not None:
            return (args[0][self.selected], *args[1:])
        return None

    def __call__(self, model, batch):
        labels = batch["labels"]
        selected = labels != IGNORE_INDEX
        if self.head is None:
            # the sum over every position's logits: transformers' own loss is a mean, 0/0 (NaN) for a
            # batch without masked tokens, which must add nothing instead
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, -2).float(), labels.flatten(),
                                                     ignore_index=IGNORE_INDEX, reduction="sum")
            return loss, selected.sum()
        self.selected = selected
        try:
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        finally:
            self.selected = None
        loss = torch.nn.functional.cross_entropy(logits.float(), labels[selected], reduction="sum")
        return loss, selected.sum()


def causal_loss(model, batch):
    """Next-token loss over the non-padding positions."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    shift_labels = batch["labels"][:, 1:].reshape(-1)
    loss = torch.nn.functional.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE_INDEX, reduction="sum")
    return loss, (shift_labels != IGNORE_INDEX).sum()


# --------------------------------------------------------------------------------------------
# Batches


class _Batcher:
    """Micro-batch ``k`` of the whole run, on this rank, reproducible from ``k`` alone."""

    def __init__(self, cfg: PretrainConfig, corpus: PackedCorpus, loaded: LoadedModel, rank: int, world: int):
        self.cfg, self.corpus, self.rank, self.world = cfg, corpus, rank, world
        tok = loaded.tokenizer
        self.objective = loaded.objective
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
        self.mask_id = tok.mask_token_id
        self.special = sorted({i for i in tok.all_special_ids if i is not None} | {self.pad_id})
        self.vocab = int(loaded.model.config.vocab_size)
        self.batch_size = cfg.sequences_per_batch
        n = len(corpus.train)
        self.per_rank = n // world
        if self.per_rank == 0:
            raise CorpusError(f"{n} training sequence(s) cannot be shared by {world} processes; add text")
        self.batches_per_epoch = math.ceil(self.per_rank / self.batch_size)
        self._order: tuple[int, np.ndarray] | None = None

    def indices(self, k: int) -> np.ndarray:
        epoch, b = divmod(k, self.batches_per_epoch)
        if self._order is None or self._order[0] != epoch:
            perm = np.random.default_rng([self.cfg.train.seed, epoch]).permutation(len(self.corpus.train))
            self._order = (epoch, perm[self.rank::self.world][: self.per_rank])
        return self._order[1][b * self.batch_size:(b + 1) * self.batch_size]

    def make(self, blocks, idx, gen_keys: tuple[int, ...]) -> dict[str, Any]:
        starts = [blocks.word_starts[i] for i in idx] if blocks.word_starts is not None else None
        batch = collate([blocks.ids[i] for i in idx], starts, self.pad_id)
        word_starts = batch.pop("word_starts", None)
        if self.objective == "causal":
            batch["labels"] = causal_labels(batch["input_ids"], batch["attention_mask"])
            return batch
        m = self.cfg.masking
        batch["input_ids"], batch["labels"] = mask_tokens(
            batch["input_ids"], batch["attention_mask"], special_ids=self.special, mask_id=self.mask_id,
            vocab_size=self.vocab, mlm_probability=m.mlm_probability, mask_replace_prob=m.mask_replace_prob,
            random_replace_prob=m.random_replace_prob, word_starts=word_starts,
            generator=seeded_generator(*gen_keys),
        )
        return batch

    def loss_items(self, batch: dict[str, Any]) -> int:
        """The positions a batch's loss sums over (masked tokens; next tokens for causal LM),
        counted as :class:`MaskedPositionsLoss` and :func:`causal_loss` count them."""
        labels = batch["labels"][:, 1:] if self.objective == "causal" else batch["labels"]
        return int((labels != IGNORE_INDEX).sum())

    def train_batch(self, k: int) -> dict[str, Any]:
        return self.make(self.corpus.train, self.indices(k), (self.cfg.train.seed, k, self.rank))

    def eval_batch(self, idx) -> dict[str, Any]:
        """Held-out blocks ``idx``, each masked from ``(seed, block index)`` alone. Masks drawn
        per batch would change with the batch size and the number of processes, and so would
        the held-out loss of the same model on the same text."""
        rows = [self.make(self.corpus.eval, [i], (self.cfg.train.seed, _EVAL_KEY, int(i))) for i in idx]
        width = max(row["input_ids"].shape[1] for row in rows)
        fill = {"input_ids": self.pad_id, "attention_mask": 0, "labels": IGNORE_INDEX}
        return {key: torch.cat([torch.nn.functional.pad(row[key], (0, width - row[key].shape[1]), value=value)
                                for row in rows]) for key, value in fill.items()}


def evaluate(model, objective, batcher: _Batcher, accelerator, batch_size: int) -> dict[str, Any] | None:
    """Mean loss over the held-out blocks (masked tokens for MLM, next tokens for causal LM),
    with the same masks every time it is called, whatever the batch size or number of processes."""
    blocks = batcher.corpus.eval
    if not len(blocks):
        return None
    was_training = model.training
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=accelerator.device)
    mine = list(range(accelerator.process_index, len(blocks), accelerator.num_processes))
    with torch.no_grad(), accelerator.autocast():
        for a in range(0, len(mine), batch_size):
            idx = mine[a:a + batch_size]
            batch = batcher.eval_batch(idx)
            loss, count = objective(model, {k: v.to(accelerator.device) for k, v in batch.items()})
            total += torch.stack([loss.detach().double(), count.double()])
    model.train(was_training)
    total = accelerator.reduce(total, reduction="sum")
    loss_sum, count = float(total[0]), int(total[1])
    loss = loss_sum / max(count, 1)
    return {"loss": loss, "perplexity": math.exp(min(loss, 80.0)), "predicted_tokens": count,
            "sequences": len(blocks)}
