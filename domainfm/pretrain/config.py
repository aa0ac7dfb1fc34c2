"""Settings of domain-adaptive pretraining: one dataclass per YAML section.

A task file looks like ``tasks/pretrain-demo.yaml``::

    model: {name: minilm}
    data: {paths: [demo-output/clinical/deid/corpus.jsonl], eval_fraction: 0.1}
    masking: {seq_len: 128, mlm_probability: 0.15, whole_word_mask: true}
    train: {max_steps: 60, batch_size: 16, lr: 1e-4, checkpoint_every: 20}
    lora: {enabled: false, r: 8, lora_alpha: 16}

and every field can be overridden on the command line (``--train.lr 3e-4``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from domainfm.config import check_document_fields, check_fields, check_train_section
from domainfm.errors import ConfigError
from domainfm.lora import LoraSection as SharedLoraSection
from domainfm.privacy_audit.config import CanaryConfig


@dataclass
class ModelConfig:
    """Which checkpoint to adapt.

    Args:
        name: hub id, local ``save_pretrained`` folder, or an embedded name (``minilm``).
        tokenizer: tokenizer to use when it is not stored with the model (default: ``name``).
        objective: ``mlm`` (encoders), ``causal`` (decoders) or ``auto`` (read from the model
            config: a decoder-only architecture gets ``causal``, everything else ``mlm``).
    """

    name: str = "minilm"
    tokenizer: str | None = None
    objective: Literal["auto", "mlm", "causal"] = "auto"

    def __post_init__(self):
        check_fields(self, "model")


@dataclass
class DataConfig:
    """De-identified documents or chunks (domainfm JSONL) and how to hold text out.

    Args:
        paths: JSONL files written by ``domainfm deid`` or ``domainfm chunk``.
        text_field: ``text`` or a ``meta.<key>`` holding the text.
        eval_fraction: share of split groups (patients or documents) held out for evaluation.
        split_key: ``auto`` (``meta.patient_id`` when a document has one, else its id), ``id``,
            or ``meta.<key>``. All documents with the same key land on the same side.
        max_documents: read at most this many documents (0 = all); for quick runs.
        max_eval_blocks: evaluate on at most this many held-out blocks (0 = all).
    """

    paths: list[Path] = field(default_factory=list)
    text_field: str = "text"
    eval_fraction: float = 0.1
    split_key: str = "auto"
    max_documents: int = 0
    max_eval_blocks: int = 0

    def __post_init__(self):
        check_fields(self, "data")
        check_document_fields(self, limits=("max_documents", "max_eval_blocks"))


@dataclass
class MaskingConfig:
    """Sequence packing and the masking recipe.

    Args:
        seq_len: tokens per training sequence (separators and special tokens included).
        packing: concatenate documents with separators into full blocks (no padding). When
            false, each document is split into sequences of at most ``seq_len`` and a batch is
            padded to its longest sequence.
        mlm_probability: share of tokens (or words) selected for prediction (``mlm`` only).
        whole_word_mask: select whole words (all their sub-word tokens) instead of tokens.
        mask_replace_prob: share of selected tokens replaced by the mask token.
        random_replace_prob: share of selected tokens replaced by a random token.
    """

    seq_len: int = 128
    packing: bool = True
    mlm_probability: float = 0.15
    whole_word_mask: bool = False
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1

    def __post_init__(self):
        check_fields(self, "masking")
        if not 8 <= self.seq_len <= 65536:
            raise ConfigError(f"masking.seq_len must be an int in [8, 65536], got {self.seq_len}")
        if not 0.0 < self.mlm_probability < 1.0:
            raise ConfigError(f"masking.mlm_probability must be in (0, 1), got {self.mlm_probability}")
        if self.mask_replace_prob < 0 or self.random_replace_prob < 0 or (
            self.mask_replace_prob + self.random_replace_prob > 1.0
        ):
            raise ConfigError(
                "masking.mask_replace_prob + masking.random_replace_prob must lie in [0, 1], got "
                f"{self.mask_replace_prob} + {self.random_replace_prob}"
            )


@dataclass
class TrainConfig:
    """Optimisation, checkpoints and logging.

    Args:
        lr: peak learning rate (AdamW), linear warm-up then linear decay to 0.
        epochs: passes over the training blocks (ignored when ``max_steps`` > 0).
        max_steps: optimizer steps to run (0 = derive from ``epochs``).
        batch_size: sequences per device per micro-batch.
        batch_tokens: when > 0, the micro-batch holds ``batch_tokens // seq_len`` sequences
            instead (a token budget, so changing ``seq_len`` keeps the step size).
        grad_accum: micro-batches per optimizer step.
        warmup_ratio: share of the steps spent warming up.
        weight_decay: AdamW weight decay (not applied to biases and LayerNorm weights).
        max_grad_norm: gradient clipping (0 = off).
        seed: seeds the split-independent parts: data order, masks, dropout, new weights.
        checkpoint_every: write a resumable checkpoint every N optimizer steps (0 = never).
        keep_checkpoints: how many complete checkpoints to keep.
        eval_every: evaluate every N steps as well as before and after (0 = only then).
        log_every: log loss, learning rate and tokens/s every N steps.
        precision: ``auto`` = bf16 on a GPU that has it, fp16 on other GPUs, fp32 on CPU.
        report_to: ``tensorboard`` also writes event files under ``<out>/runs`` (needs the
            ``tensorboard`` package).
    """

    lr: float = 5e-5
    epochs: float = 1.0
    max_steps: int = 0
    batch_size: int = 16
    batch_tokens: int = 0
    grad_accum: int = 1
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    seed: int = 13
    checkpoint_every: int = 0
    keep_checkpoints: int = 2
    eval_every: int = 0
    log_every: int = 10
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    report_to: Literal["none", "tensorboard"] = "none"

    def __post_init__(self):
        check_fields(self, "train")
        check_train_section(self, at_least_one=("batch_size", "grad_accum", "keep_checkpoints", "log_every"),
                            zero_means_off=("batch_tokens", "checkpoint_every", "eval_every"))


@dataclass
class LoraSection(SharedLoraSection):
    """LoRA-DAPT: train low-rank adapters instead of all weights. The fields are
    ``peft.LoraConfig``'s (the same section as finetune's), plus ``enabled``.

    The saved model has the adapters merged in, so it loads with plain transformers; the
    adapter alone is saved too, under ``<out>/adapter``. The keys of earlier releases,
    ``alpha`` and ``dropout``, are still read (with a deprecation message).

    Args:
        enabled: train adapters instead of the full model.
        lora_dropout: dropout on the adapter input (0.05 here: DAPT sees far more tokens than a
            task fine-tune).
    """

    RENAMED: ClassVar[dict[str, str]] = {"alpha": "lora_alpha", "dropout": "lora_dropout"}

    enabled: bool = False
    lora_dropout: float = 0.05


@dataclass
class PretrainConfig:
    """Everything ``domainfm pretrain`` reads from its task file.

    Args:
        canaries: seeded made-up secrets inserted into the training stream, for the privacy
            audit (:class:`~domainfm.privacy_audit.config.CanaryConfig`; off by default).
        allow_identified_data: train on input that no ``domainfm deid`` manifest vouches for.
            Recorded in the output manifest. The CLI flag ``--allow-identified-data`` sets it.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    lora: LoraSection = field(default_factory=LoraSection)
    canaries: CanaryConfig = field(default_factory=CanaryConfig)
    allow_identified_data: bool = False

    def __post_init__(self):
        check_fields(self, nested=True)
        if self.train.batch_tokens and self.train.batch_tokens < self.masking.seq_len:
            raise ConfigError(
                f"train.batch_tokens ({self.train.batch_tokens}) must be >= masking.seq_len "
                f"({self.masking.seq_len}) or 0"
            )

    @property
    def sequences_per_batch(self) -> int:
        """Sequences per device per micro-batch (from ``batch_tokens`` when it is set)."""
        if self.train.batch_tokens:
            return max(1, self.train.batch_tokens // self.masking.seq_len)
        return self.train.batch_size
