"""What ``domainfm label`` runs with; saved in the output's manifest."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from domainfm.config import check_fields, suggest
from domainfm.errors import ConfigError

METHODS = ("embed", "setfit")
TASKS = ("auto", "single", "multi")
EXPORTS = ("labelstudio", "prodigy", "csv")


@dataclass
class LabelConfig:
    """Settings of the few-shot labeling assistant.

    Args:
        method: ``embed`` (frozen sentence embeddings + logistic regression) or ``setfit``
            (contrastive fine-tuning of the encoder on pairs built from the seeds, then the same
            logistic-regression head: the SetFit recipe).
        model: sentence-transformers encoder: an embedded name (``minilm``), a folder written
            by ``save_pretrained`` or a hub id.
        task: ``single`` (one label per document, from ``label``), ``multi`` (several, from
            ``labels``) or ``auto`` (``multi`` when more seeds have ``labels`` than ``label``, else
            ``single``; seeds without the chosen field are left out and counted).
        seed: random seed; the same seed, inputs and machine give the same output.
        cv_folds: folds of the cross-validation on the seeds that gives the calibration, the
            expected accuracy and the out-of-fold probabilities of ``--check`` (lowered to the
            smallest class size when a class has fewer seeds).
        c_grid: inverse regularisation strengths of the logistic regression, picked by
            out-of-fold log loss (0.5 is left out by default: so flat a head lets self-training
            swallow a catch-all label).
        self_training: rounds of transductive self-training on the pool: round r adds the most
            confident ``r * pseudo_share`` of the pool documents predicted as each label
            (weighted ``pseudo_weight``) to the seeds and refits the head. 0 turns it off.
        pseudo_share: share of each predicted label's pool documents added per round.
        pseudo_weight: sample weight of a pseudo-labelled document (a seed weighs 1).
        setfit_epochs: passes over the contrastive pairs (``setfit`` only).
        setfit_pairs_per_seed: positive + negative pairs generated per seed and epoch (the
            SetFit paper's "R" iterations count each seed twice: one positive, one negative).
        setfit_max_steps: hard cap on optimiser steps, which bounds the CPU time.
        setfit_batch_size: pairs per optimiser step.
        setfit_lr: learning rate of the encoder fine-tuning.
        setfit_max_length: tokens per text during fine-tuning (inference keeps the full window);
            short views make each CPU step several times cheaper and act as augmentation.
        max_tokens: encoder positions per chunk; longer documents are chunked and their chunk
            embeddings averaged (weighted by chunk length). 0 uses the encoder's own limit.
        batch_size: texts per encoder forward pass.
        diversity: weight of diversity against uncertainty in the active-learning rank
            (0 = pure uncertainty order, 1 = pure coverage of the embedding space).
        max_alternatives: alternatives listed after the suggested label.
        label_descriptions: optional ``{label: short description}`` (``{"ltd": "limitation of
            liability"}``): each description is embedded and added as one training row of its
            label, weighted ``description_weight``. Helps most when labels are codes and seeds
            are few; labels without a description are learned from the seeds alone.
        description_weight: sample weight of a description row (a seed weighs 1).
        lsa_dims: ``embed`` only: a TF-IDF of the seed and pool words, reduced to this many
            dimensions by truncated SVD (latent semantic analysis, fitted on the texts without
            their labels), is appended to every sentence embedding. It adds the rare domain
            terms a small sentence encoder blurs. 200 (the default) is the measured setting:
            UNFAIR-ToS +0.07 macro-F1 at 8 seeds per label, medical abstracts unchanged (+-0.001,
            5 draws); 0 turns it off (sentence embeddings alone).
        lsa_weight: scale of the appended LSA vector (unit length before scaling) against the
            unit-length sentence embedding.
    """

    method: Literal["embed", "setfit"] = "embed"
    model: str = "minilm"
    task: Literal["auto", "single", "multi"] = "auto"
    seed: int = 13
    cv_folds: int = 5
    c_grid: tuple[float, ...] = (2.0, 8.0, 32.0)
    self_training: int = 5
    pseudo_share: float = 0.2
    pseudo_weight: float = 0.5
    setfit_epochs: int = 1
    setfit_pairs_per_seed: int = 20
    setfit_max_steps: int = 120
    setfit_batch_size: int = 16
    setfit_lr: float = 2e-5
    setfit_max_length: int = 128
    max_tokens: int = 0
    batch_size: int = 32
    diversity: float = 0.5
    max_alternatives: int = 3
    label_descriptions: Optional[dict[str, str]] = None
    description_weight: float = 3.0
    lsa_dims: int = 200
    lsa_weight: float = 0.5

    def __post_init__(self) -> None:
        check_fields(self)
        if self.method not in METHODS:
            raise ConfigError(
                f"The 'method' parameter must be one of {list(METHODS)}. Got {self.method!r} instead"
                f"{suggest(self.method, METHODS)}."
            )
        if self.task not in TASKS:
            raise ConfigError(
                f"The 'task' parameter must be one of {list(TASKS)}. Got {self.task!r} instead"
                f"{suggest(self.task, TASKS)}."
            )
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError("The 'model' parameter must be a model name or path, e.g. 'minilm'.")
        self.c_grid = tuple(self.c_grid)
        _int_in("seed", self.seed, 0, 2**32 - 1)
        _int_in("cv_folds", self.cv_folds, 2, 20, "use 5 (lowered automatically for small classes)")
        _int_in("self_training", self.self_training, 0, 10, "use 0 to turn it off")
        _int_in("setfit_epochs", self.setfit_epochs, 1, 100)
        _int_in("setfit_pairs_per_seed", self.setfit_pairs_per_seed, 2, 1000)
        _int_in("setfit_max_steps", self.setfit_max_steps, 1, 1_000_000)
        _int_in("setfit_batch_size", self.setfit_batch_size, 2, 4096)
        _int_in("setfit_max_length", self.setfit_max_length, 16, 8192)
        _int_in("max_tokens", self.max_tokens, 0, 1_048_576, "use 0 for the encoder's own limit")
        _int_in("batch_size", self.batch_size, 1, 4096)
        _int_in("max_alternatives", self.max_alternatives, 0, 1000)
        _int_in("lsa_dims", self.lsa_dims, 0, 4096, "use 0 to turn it off")
        if not _num(self.lsa_weight) or not 0 < self.lsa_weight <= 10:
            raise ConfigError(f"The 'lsa_weight' parameter must be a number in (0, 10]. Got {self.lsa_weight!r}.")
        if not self.c_grid or not all(_num(c) and c > 0 for c in self.c_grid):
            raise ConfigError(f"The 'c_grid' parameter must be a non-empty list of numbers > 0. Got {self.c_grid!r}.")
        if not _num(self.pseudo_share) or not 0 < self.pseudo_share <= 1:
            raise ConfigError(f"The 'pseudo_share' parameter must be a number in (0, 1]. Got {self.pseudo_share!r}.")
        if not _num(self.pseudo_weight) or not 0 < self.pseudo_weight <= 1:
            raise ConfigError(f"The 'pseudo_weight' parameter must be a number in (0, 1]. Got {self.pseudo_weight!r}.")
        if not _num(self.setfit_lr) or not 0 < self.setfit_lr < 1:
            raise ConfigError(f"The 'setfit_lr' parameter must be a number in (0, 1), e.g. 2e-5. Got {self.setfit_lr!r}.")
        if not _num(self.diversity) or not 0 <= self.diversity <= 1:
            raise ConfigError(
                f"The 'diversity' parameter must be a number in [0, 1]. Got {self.diversity!r} "
                "(0 = uncertainty only, 1 = diversity only; 0.5 mixes them)."
            )
        if self.label_descriptions is not None:
            if not isinstance(self.label_descriptions, dict):
                raise ConfigError("The 'label_descriptions' parameter must map each label to a non-empty "
                                  "description string, e.g. {\"ltd\": \"limitation of liability\"}.")
            bad = [k for k, v in self.label_descriptions.items()
                   if not (isinstance(k, str) and isinstance(v, str) and v.strip())]
            if bad:
                raise ConfigError(f"The 'label_descriptions' parameter must map each label to a non-empty "
                                  f"description string; the description of {bad[0]!r} is not one, e.g. "
                                  "{\"ltd\": \"limitation of liability\"}.")
            self.label_descriptions = dict(self.label_descriptions) or None
        if not _num(self.description_weight) or not 0 < self.description_weight <= 100:
            raise ConfigError(f"The 'description_weight' parameter must be a number in (0, 100]. "
                              f"Got {self.description_weight!r}.")
        if 0 < self.max_tokens < 8:
            raise ConfigError(f"The 'max_tokens' parameter must be 0 or >= 8. Got {self.max_tokens}.")


def _int_in(name: str, value, lo: int, hi: int, hint: str = "") -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ConfigError(
            f"The {name!r} parameter must be an int in [{lo}, {hi}]. Got {value!r} instead"
            f"{'; ' + hint if hint else ''}."
        )


def _num(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
