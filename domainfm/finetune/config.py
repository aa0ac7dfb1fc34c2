"""Settings of a fine-tuning task: one dataclass per YAML section of ``tasks/*.yaml``.

A task file looks like ``tasks/demo-clinical-classify.yaml``::

    task: classification              # classification | multilabel | ner
    model: {name: minilm, max_length: 128}
    data: {train: corpora/clinical/notes.jsonl, eval_fraction: 0.2, split_key: auto}
    lora: {r: 8, lora_alpha: 16, target_modules: [query, value]}
    train: {lr: 1e-3, epochs: 2, batch_size: 16}

and every field can be overridden on the command line (``--train.lr 3e-4``). The ``lora``
section's field names are ``peft.LoraConfig``'s own, so ``LoraSection.to_peft()`` passes them
straight through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from domainfm.config import check_document_fields, check_fields, check_train_section, suggest
from domainfm.errors import ConfigError
from domainfm.finetune.augment import AugmentConfig
from domainfm.finetune.distill import DistillConfig
from domainfm.lora import LoraSection
from domainfm.privacy_audit.config import CanaryConfig

TASK_TYPES = ("classification", "multilabel", "ner")
DEFAULT_METRIC = {"classification": "macro_f1", "multilabel": "micro_f1", "ner": "f1"}
NER_DECODINGS = ("words", "tokens")
METRICS = {
    "classification": ("macro_f1", "micro_f1", "weighted_f1", "accuracy"),
    "multilabel": ("micro_f1", "macro_f1", "samples_f1", "subset_accuracy"),
    "ner": ("f1", "macro_f1", "precision", "recall"),
}


@dataclass
class ModelSection:
    """The base model and how much text one sequence holds.

    Args:
        name: hub id, local ``save_pretrained`` folder (e.g. a ``domainfm pretrain`` output),
            or an embedded name (``minilm``).
        tokenizer: tokenizer to use when it is not stored with the model (default: ``name``).
            It must be a fast tokenizer (character offsets).
        max_length: model positions per sequence, special tokens included; longer documents
            are chunked or truncated (``long_documents.strategy``).
        pooling: sequence vector of a classification / multilabel head: ``cls`` (the
            architecture's own [CLS] pooler head; what plain transformers loads after ``--merge``)
            or ``mean`` (masked mean of the token states, how sentence encoders such as MiniLM
            were trained; BERT-style encoders only, no ``--merge``). See
            :mod:`domainfm.inference.pooling`. Ignored for ``ner``.
        ner_decoding: how ``ner`` tag scores become spans: ``words`` (each word -- a
            pre-tokenizer word of the fast tokenizer -- takes the tag of its first sub-token,
            and the most probable tag sequence that obeys BIO, no ``I-X`` without ``B-X``
            before it, is found by Viterbi; spans always cover whole words) or ``tokens``
            (per-token argmax, read leniently as conlleval does; spans can end inside a word).
            Decoding only: it can be changed on a trained model (``domainfm_task.json``).
        num_layers: keep only the first N transformer layers of the base model (0: all). A
            shallower model runs proportionally faster (a 2-layer MiniLM does a third of the
            work), which is what a model run beside other detectors on CPU needs; the saved
            config says N, so plain transformers reloads it as it is.
    """

    name: str = "minilm"
    tokenizer: str | None = None
    max_length: int = 256
    pooling: Literal["cls", "mean"] = "cls"
    ner_decoding: Literal["words", "tokens"] = "words"
    num_layers: int = 0

    def __post_init__(self):
        check_fields(self, "model")
        if not 8 <= self.max_length <= 65536:
            raise ConfigError(f"model.max_length must be an int in [8, 65536], got {self.max_length}")
        if self.pooling not in ("cls", "mean"):
            raise ConfigError(f"model.pooling must be 'cls' or 'mean', got {self.pooling!r}")
        if self.ner_decoding not in NER_DECODINGS:
            raise ConfigError(f"model.ner_decoding must be one of {', '.join(NER_DECODINGS)}, got {self.ner_decoding!r}")
        if isinstance(self.num_layers, bool) or not isinstance(self.num_layers, int) or self.num_layers < 0:
            raise ConfigError(f"model.num_layers must be an int >= 0 (0 keeps every layer), got {self.num_layers!r}")


@dataclass
class PrepareStep:
    """Turn a source dataset into domainfm JSONL before training (skipped when ``out`` exists).

    Args:
        format: an importer of ``domainfm import`` (``csv``, ``conll``, ``textdir``...) or a
            finetune preparer (``mtsamples``, ``unfair-tos``, ``cuad-types``; see
            :mod:`domainfm.finetune.prepare`).
        src: source file or folder (relative paths are read from the working directory).
        out: JSONL file to write; a task's ``data.train``/``data.eval`` then points at it.
        options: the importer's or preparer's options.
    """

    format: str
    src: str
    out: str
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        check_fields(self, "data.prepare")


@dataclass
class DataSection:
    """Where the documents come from and which fields hold text and labels.

    Args:
        train: JSONL of training documents (the import stage's format).
        eval: JSONL of evaluation documents; without it ``eval_fraction`` of the training
            groups are held out.
        prepare: import steps that write ``train``/``eval`` from the original dataset files.
        text_field: ``text`` or ``meta.<key>``.
        label_field: ``label``/``labels``/``spans`` by default for the task type; or
            ``meta.<key>`` (classification: a string; multilabel: a list of strings).
        eval_fraction: share of split groups held out when ``eval`` is not given.
        split_key: ``auto`` (``meta.patient_id`` when every document has one, else the id),
            ``id`` or ``meta.<key>``: documents sharing a key stay on the same side.
        max_train_documents: read at most this many training documents (0 = all).
        max_eval_documents: evaluate on at most this many documents (0 = all).
        allow_identifier_labels: train on a ``label_field`` whose key de-identification treats
            as PHI (``meta.patient_name``, ``meta.mrn``); refused by default, because its
            values become the model's classes and are written into the model folder, its
            metrics and every later report.
        eval_is_training: the evaluation documents are training documents on purpose (a fit
            measure, such as the labeler's span model trained on all its seeds); refused by
            default, since scores on training data say nothing about new documents. The metrics
            record it (``eval_source``).
    """

    train: str | None = None
    eval: str | None = None
    prepare: list[PrepareStep] = field(default_factory=list)
    text_field: str = "text"
    label_field: str | None = None
    eval_fraction: float = 0.15
    split_key: str = "auto"
    max_train_documents: int = 0
    max_eval_documents: int = 0
    allow_identifier_labels: bool = False
    eval_is_training: bool = False

    def __post_init__(self):
        check_fields(self, "data")
        if self.train is None:
            raise ConfigError("data.train is required: a JSONL file of training documents")
        from domainfm.deid.meta import identifier_field

        if self.label_field and (kind := identifier_field(self.label_field)) and not self.allow_identifier_labels:
            raise ConfigError(f"data.label_field {self.label_field!r} is a field de-identification treats as PHI "
                              f"({kind}): its values would become the model's classes, written into the model "
                              "folder and every report; pick the label field, or set "
                              "data.allow_identifier_labels: true if these values are not identifiers")
        check_document_fields(self, limits=("max_train_documents", "max_eval_documents"), zero_means="all")


@dataclass
class LabelsSection:
    """The label set.

    Args:
        names: the labels (classes, tags or entity types), in this order; inferred (sorted)
            from the training documents when null. For ``ner`` only spans with these labels
            are learned (the others are counted in the metrics' data section).
        min_examples: a class with fewer training examples is an error (one example cannot be
            both learned and checked).
        map: ``ner`` only: rename the documents' span labels before anything else reads them,
            ``{source label: trained label or null}`` (null drops the span; labels left out stay
            as they are), e.g. ``{HCPName: NAME, PTName: NAME, Phone: null}``.
    """

    names: list[str] | None = None
    min_examples: int = 2
    map: dict[str, str | None] | None = None

    def __post_init__(self):
        check_fields(self, "labels")
        if self.names is not None:
            if not self.names:
                raise ConfigError("labels.names must list at least one label, or be null to infer them")
            dupes = sorted({n for n in self.names if self.names.count(n) > 1})
            if dupes:
                raise ConfigError(f"labels.names lists {dupes} more than once")
        if self.min_examples < 1:
            raise ConfigError(f"labels.min_examples must be >= 1, got {self.min_examples}")
        for source, target in (self.map or {}).items():
            if target is not None and (not isinstance(target, str) or not target.strip()):
                raise ConfigError(f"labels.map: {source!r} must map to a label name or null, got {target!r}")


@dataclass
class LongDocumentsSection:
    """Documents longer than ``model.max_length``.

    Args:
        strategy: ``chunk``: split with :mod:`domainfm.chunk` (token-exact, sections kept),
            train on every chunk (labels inherited, spans projected) and aggregate chunk
            logits back to the document; ``truncate``: keep the first ``max_length`` tokens
            (spans beyond are counted as truncated).
        overlap: tokens a chunk repeats from the previous one.
        aggregate: how chunk logits become document logits: ``mean`` (weighted by chunk
            length) or ``max`` (a label any chunk shows).
        profile: the chunker's sectionizer (``clinical``, ``legal``, ``generic``).
    """

    strategy: Literal["chunk", "truncate"] = "chunk"
    overlap: int = 32
    aggregate: Literal["mean", "max"] = "mean"
    profile: Literal["clinical", "legal", "generic"] = "generic"

    def __post_init__(self):
        check_fields(self, "long_documents")
        if self.overlap < 0:
            raise ConfigError(f"long_documents.overlap must be >= 0, got {self.overlap}")


@dataclass
class TrainSection:
    """Optimisation, evaluation, early stopping and checkpoints.

    Args:
        full_finetune: train every weight instead of LoRA adapters (for comparison).
        lr: peak learning rate (AdamW), linear warm-up then linear decay.
        epochs: passes over the training sequences.
        max_steps: stop after this many optimizer steps (0 = ``epochs`` decide).
        batch_size: sequences per micro-batch (per process).
        grad_accum: micro-batches per optimizer step.
        eval_batch_size: sequences per batch at evaluation and prediction.
        warmup_ratio: share of the steps spent warming up.
        weight_decay: AdamW weight decay (not on biases and LayerNorm weights).
        max_grad_norm: gradient clipping (0 = off).
        class_weights: ``balanced`` weighs each class (ner: each tag) by ``n / (k * count)``
            and, for multilabel, each label's positives by ``negatives / positives`` (clipped to
            [1, 100]) against imbalance; ``none`` does not.
        metric: the eval metric for model selection and early stopping (default per task:
            macro_f1, micro_f1, entity f1).
        eval_every: also evaluate every N optimizer steps (0 = at the end of each epoch only).
        early_stopping_patience: stop after this many evaluations without improvement
            (0 = never); the best evaluated weights are the ones saved.
        checkpoint: write a resumable checkpoint at every evaluation (``--resume``).
        seed: seeds the split, the head's initialisation, data order and dropout.
        precision: ``auto`` = bf16 on a GPU that has it, fp32 on CPU.
    """

    full_finetune: bool = False
    lr: float = 5e-4
    epochs: float = 3.0
    max_steps: int = 0
    batch_size: int = 16
    grad_accum: int = 1
    eval_batch_size: int = 64
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    class_weights: Literal["none", "balanced"] = "none"
    metric: str | None = None
    eval_every: int = 0
    early_stopping_patience: int = 0
    checkpoint: bool = True
    seed: int = 13
    precision: Literal["auto", "fp32", "bf16"] = "auto"

    def __post_init__(self):
        check_fields(self, "train")
        check_train_section(self, at_least_one=("batch_size", "grad_accum", "eval_batch_size"),
                            zero_means_off=("eval_every", "early_stopping_patience"))


@dataclass
class TaskConfig:
    """Everything ``domainfm finetune`` reads from a task file.

    Example:
        >>> cfg = TaskConfig(task="classification", data=DataSection(train="notes.jsonl"))
        >>> cfg.metric
        'macro_f1'
    """

    task: Literal["classification", "multilabel", "ner"] = "classification"
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=lambda: DataSection(train=""))
    labels: LabelsSection = field(default_factory=LabelsSection)
    lora: LoraSection = field(default_factory=LoraSection)
    long_documents: LongDocumentsSection = field(default_factory=LongDocumentsSection)
    train: TrainSection = field(default_factory=TrainSection)
    # Train on data no ``domainfm deid`` manifest vouches for (public corpora, synthetic notes, a
    # de-identification model's annotated notes); the choice is recorded in the manifest.
    allow_identified_data: bool = False
    # Seeded made-up secrets added to the training documents for ``domainfm audit-privacy``
    # (classification and multi-label; recorded in the manifest only).
    canaries: CanaryConfig = field(default_factory=CanaryConfig)
    # ``ner``: extra training copies whose names/places are replaced by surrogates, so the model
    # learns contexts rather than one site's names (:mod:`domainfm.finetune.augment`).
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # A trained teacher whose softened outputs the model learns from too
    # (:mod:`domainfm.finetune.distill`; a shallower student of a deeper model).
    distill: DistillConfig = field(default_factory=DistillConfig)

    def __post_init__(self):
        check_fields(self, nested=True)  # sections changed after they were built, too
        if self.canaries.enabled and self.task == "ner":
            raise ConfigError("canaries.enabled applies to classification and multilabel tasks; the privacy audit "
                              "has no exposure measure for ner models yet (audit the DAPT model instead)")
        if not self.data.train:
            raise ConfigError("data.train is required: a JSONL file of training documents")
        if self.train.metric is not None and self.train.metric not in METRICS[self.task]:
            raise ConfigError(
                f"train.metric {self.train.metric!r} does not apply to task {self.task!r}"
                f"{suggest(self.train.metric, METRICS[self.task])}; choose one of {list(METRICS[self.task])}"
            )
        field_name = self.label_field
        if self.task == "ner" and field_name != "spans":
            raise ConfigError(f"data.label_field for task 'ner' must be 'spans', got {field_name!r}")
        allowed = {"classification": "label", "multilabel": "labels", "ner": "spans"}[self.task]
        if field_name != allowed and not field_name.startswith("meta."):
            raise ConfigError(f"data.label_field {field_name!r} does not fit task {self.task!r}: use "
                              f"{allowed!r} or 'meta.<key>'")
        if self.augment.copies and self.task != "ner":
            raise ConfigError(f"augment.copies replaces entity strings (task 'ner'); task {self.task!r} has no spans: "
                              "set augment.copies: 0")
        if self.augment.copies and self.labels.names is not None:
            unknown = [x for x in self.augment.labels if x not in self.labels.names]
            if unknown:
                raise ConfigError(f"augment.labels {unknown} are not in labels.names {self.labels.names}: "
                                  "name trained labels (after labels.map)")
        if self.labels.map and self.task != "ner":
            raise ConfigError(f"labels.map renames span labels (task 'ner'); task {self.task!r} has none")
        if self.long_documents.strategy == "chunk" and self.long_documents.overlap >= self.model.max_length // 2:
            raise ConfigError(
                f"long_documents.overlap ({self.long_documents.overlap}) must be below half of "
                f"model.max_length ({self.model.max_length}); try {self.model.max_length // 8}"
            )

    @property
    def metric(self) -> str:
        return self.train.metric or DEFAULT_METRIC[self.task]

    @property
    def label_field(self) -> str:
        return self.data.label_field or {"classification": "label", "multilabel": "labels", "ner": "spans"}[self.task]
