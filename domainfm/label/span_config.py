"""What ``domainfm label --task ner`` runs with; saved in the output's manifest."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from domainfm.config import check_fields, suggest
from domainfm.errors import ConfigError

PRIORS = ("auto", "on", "off")
METHODS = ("finetune", "probe")


@dataclass
class SpanLabelConfig:
    """Settings of few-shot span suggestion (see :mod:`domainfm.label.spans`).

    Args:
        method: ``probe`` (the default) keeps the encoder frozen and fits a word tagger on its
            vectors (seconds on a CPU); ``finetune`` trains LoRA adapters and a
            token-classification head on the seeds through ``domainfm finetune``'s NER path
            (:mod:`domainfm.label.span_finetune`; minutes on a CPU; see the README).
        encoder: the token encoder: an embedded name (``minilm``), a ``domainfm pretrain``
            output folder (domain-adapted encoder) or any ``save_pretrained`` BERT-style folder.
        train_layers: top encoder layers fine-tuned; the layers below stay frozen, their output
            is computed once and cached (strong regularisation for a handful of documents, and
            most of the CPU time saved). 0 (the default, measured: see the README) freezes the
            whole encoder: each word is tagged by a multinomial logistic regression on its vector
            (``probe_layers``) beside its neighbours' (seconds on a CPU).
        probe_layers: the encoder layers (1 = the first layer above the embeddings) whose word
            vectors the probe reads, side by side. Unset: the two middle layers (3 and 4 of
            MiniLM's 6; n/2 and n/2 + 1 of n). Middle layers carry more of a word's own identity
            than the top ones, which a sentence encoder's training pulls towards the sentence
            (NCBI, seeds and scoring both from train abstracts, never devel, 3 draws: entity
            F1 0.465 / 0.569 at 8 / 32 seeds with layers 5-6, 0.502 / 0.603 with 3-4). Layers
            above the highest one read are not run.
        c: inverse L2 strength of that logistic regression (smaller = stronger regularisation).
        spelling_dims: columns of each word's hashed spelling (suffixes, prefixes, shape) that
            the logistic regression reads beside the encoder vectors (0 turns them off; the
            probe only). "-itis" in one seed then counts in every word that ends so.
        dictionaries: ``probe`` only: term dictionaries whose matches the probe reads beside the
            encoder, two columns per dictionary per word ("a match starts here", "inside a
            match"; :mod:`domainfm.label.dictionaries`): ``diseases`` (MeSH), ``drugs``, or a
            text file with one term per line. The seeds teach how far each is trusted. A model
            span that lies inside a longer dictionary name is widened to it, for the labels whose
            seed spans agree with the dictionary's edges (:mod:`domainfm.label.dictionary_edges`).
        dictionary_scale: the value of a dictionary column where it is set. The probe is
            L2-regularised over about 2,200 columns; at 1 a dictionary barely moves it, larger
            lets it lean on a dictionary with small weights (NCBI tuning split, MeSH diseases, 3
            draws, entity F1 at 8 / 32 seeds: scale 1 0.570 / 0.664, 3 0.600 / 0.690, 6 0.635 /
            0.706, 12 0.649 / 0.706, 24 0.643 / 0.709, 48 0.653 / 0.708; without 0.562 / 0.655).
        max_iter: L-BFGS iterations of that logistic regression.
        epochs: passes over the seed chunks (bounded by ``min_steps``/``max_steps``).
        min_steps: optimiser steps at least, so 4 seed documents still train.
        max_steps: optimiser steps at most, which bounds the CPU time for many seeds.
        lr: learning rate of the fine-tuned layers; the head uses ``10 * lr``.
        weight_decay: AdamW weight decay (regularisation towards small weights).
        dropout: dropout on the features fed to the head.
        batch_size: chunks per optimiser step.
        max_tokens: encoder positions per chunk; longer documents are cut by ``domainfm chunk``
            (sentence boundaries first) with ``overlap`` tokens repeated.
        overlap: tokens a chunk repeats from the previous one.
        calibration_folds: the seeds are split into this many folds; a model per fold scores the
            held-out seeds, and those out-of-fold scores fit the temperature (word tags) and the
            span-confidence map. 0 turns calibration off (raw confidences). Unset: 4 for the
            probe (a fold is a logistic regression; on NCBI 4 folds lowered the worst span ECE
            of 4 draws against 2), 2 for ``finetune`` (a fold is a fine-tune, and 4 folds were
            not better: ECE 0.110 / 0.108 -> 0.055 / 0.126 on two draws of 32 seeds).
        calibration_repeats: the fold split is drawn this many times and every split's
            out-of-fold spans fit the calibration, so it does not hang on which seeds happened
            to be held out together. Unset: 3 for the probe (12 logistic regressions; NCBI, 4
            draws: worst span ECE 0.167 -> 0.156 at 8 seeds, 0.066 -> 0.060 at 32, and lower on
            every draw), 1 for ``finetune`` (each repeat costs ``calibration_folds`` fine-tunes).
        deid_prior: ``auto`` uses the de-id detectors' spans as a prior for labels that are PHI
            labels (``PATIENT``, ``DATE``... see :mod:`domainfm.deid.labels`); ``on`` requires it,
            ``off`` never runs the detectors.
        deid_profile: recognizer profile of the prior (``clinical`` or ``legal``).
        diversity: weight of diversity against uncertainty in the annotation order (0 = uncertainty).
        min_confidence: suggested spans below this calibrated confidence are left out.
        seed: random seed (initialisation, batch order, folds).
        finetune_lr: ``finetune`` only: learning rate of the LoRA adapters and the head.
        lora_r: ``finetune`` only: LoRA rank (alpha = 2 r) on query/key/value/dense.
        class_weights: ``finetune`` only: ``balanced`` (default) weighs each BIO tag by
            ``n / (k * count)``: a few seeds are mostly ``O`` words, and unweighted the short
            fine-tune sometimes never leaves the all-``O`` start (it fitted its own seeds to
            entity F1 0.10 on one NCBI draw of 8 abstracts, 0.97 balanced); or ``none``.
        seed_lexicon: also suggest the strings the seeds annotate where they occur again
            (:mod:`domainfm.label.lexicon`; a match replaces the model spans it contains),
            calibrated on out-of-fold seeds like the model's spans. ``False`` leaves the model alone.
        abbreviations: a suggested long form also marks the short form the text defines after it
            ("Duchenne muscular dystrophy (DMD)"), there and where it recurs in the document
            (:mod:`domainfm.label.abbreviations`; Schwartz & Hearst's definitions), calibrated by
            their out-of-fold precision. ``False`` turns it off.
        span_heads: ``probe`` only: a model span whose last word's part of speech ends fewer than
            5% of the seeds' spans of its label (a disease ending in an adjective, "hereditary")
            is left out (:mod:`domainfm.label.span_heads`; labels with under 20 seed spans get no
            rule). ``False`` keeps every span.
        decision_shift: ``probe`` only: log-odds added to the no-span tag before decoding;
            positive gives fewer, surer spans, negative more. Unset: chosen among 0, 0.5 and 1 by
            the entity F1 of the calibration folds' out-of-fold spans (with more seeds the
            probe finds more spans than are right, and a shift trades them for precision).
    """

    method: Literal["finetune", "probe"] = "probe"

    encoder: str = "minilm"
    train_layers: int = 0
    probe_layers: Optional[tuple[int, ...]] = None
    c: float = 0.5
    spelling_dims: int = 1024
    dictionaries: tuple[str, ...] = ()
    dictionary_scale: float = 12.0
    max_iter: int = 300
    epochs: int = 12
    min_steps: int = 60
    max_steps: int = 240
    lr: float = 1e-4
    weight_decay: float = 0.05
    dropout: float = 0.2
    batch_size: int = 8
    max_tokens: int = 256
    overlap: int = 32
    calibration_folds: Optional[int] = None
    calibration_repeats: Optional[int] = None
    deid_prior: Literal["auto", "on", "off"] = "auto"
    deid_profile: Literal["clinical", "legal"] = "clinical"
    diversity: float = 0.3
    min_confidence: float = 0.0
    seed: int = 13
    finetune_lr: float = 2e-3
    lora_r: int = 16
    class_weights: Literal["none", "balanced"] = "balanced"
    seed_lexicon: bool = True
    abbreviations: bool = True
    span_heads: bool = True
    decision_shift: Optional[float] = None

    def __post_init__(self) -> None:
        check_fields(self, skip=("probe_layers", "dictionaries", "seed_lexicon", "abbreviations", "span_heads"))
        if self.method not in METHODS:
            raise ConfigError(f"The 'method' parameter must be one of {list(METHODS)}. Got {self.method!r}"
                              f"{suggest(str(self.method), METHODS)}.")
        _int_in("lora_r", self.lora_r, 1, 512, "e.g. 16")
        for flag in ("seed_lexicon", "abbreviations", "span_heads"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f"The {flag!r} parameter must be true or false. Got {getattr(self, flag)!r}.")
        if self.class_weights not in ("none", "balanced"):
            raise ConfigError(f"The 'class_weights' parameter must be 'none' or 'balanced'. Got {self.class_weights!r}.")
        if not isinstance(self.encoder, str) or not self.encoder.strip():
            raise ConfigError("The 'encoder' parameter must be a model name or folder, e.g. 'minilm' or runs/pretrain.")
        _int_in("train_layers", self.train_layers, 0, 48, "use 0 to train the head alone")
        if self.probe_layers is not None:
            if isinstance(self.probe_layers, int) and not isinstance(self.probe_layers, bool):
                self.probe_layers = (self.probe_layers,)
            if (not isinstance(self.probe_layers, (list, tuple)) or not self.probe_layers
                    or any(not isinstance(x, int) or isinstance(x, bool) or x < 1 for x in self.probe_layers)):
                raise ConfigError(f"The 'probe_layers' parameter must be a list of encoder layer numbers >= 1 "
                                  f"(e.g. [3, 4]), or unset for the two middle layers. Got {self.probe_layers!r}.")
            self.probe_layers = tuple(self.probe_layers)
        if isinstance(self.dictionaries, str):
            self.dictionaries = (self.dictionaries,)
        if (not isinstance(self.dictionaries, (list, tuple))
                or any(not isinstance(x, str) or not x.strip() for x in self.dictionaries)):
            raise ConfigError(f"The 'dictionaries' parameter must be a list of dictionary names ('diseases', 'drugs') "
                              f"or term files. Got {self.dictionaries!r}.")
        self.dictionaries = tuple(self.dictionaries)
        if self.dictionaries and self.method != "probe":
            raise ConfigError("The 'dictionaries' parameter works with method 'probe' only; remove it or use "
                              "--span-method probe.")
        if (not isinstance(self.dictionary_scale, (int, float)) or isinstance(self.dictionary_scale, bool)
                or not 0 < self.dictionary_scale <= 100):
            raise ConfigError(f"The 'dictionary_scale' parameter must be a number in (0, 100] (e.g. 1). "
                              f"Got {self.dictionary_scale!r}.")
        _int_in("max_iter", self.max_iter, 10, 100_000)
        _int_in("spelling_dims", self.spelling_dims, 0, 1 << 20, "e.g. 1024, or 0 to turn spelling features off")
        if not isinstance(self.c, (int, float)) or isinstance(self.c, bool) or self.c <= 0:
            raise ConfigError(f"The 'c' parameter must be a number > 0 (e.g. 0.5). Got {self.c!r}.")
        _int_in("epochs", self.epochs, 1, 1000)
        _int_in("min_steps", self.min_steps, 1, 1_000_000)
        _int_in("max_steps", self.max_steps, 1, 1_000_000)
        if self.min_steps > self.max_steps:
            raise ConfigError(f"'min_steps' ({self.min_steps}) must not exceed 'max_steps' ({self.max_steps}).")
        _int_in("batch_size", self.batch_size, 1, 4096)
        _int_in("max_tokens", self.max_tokens, 16, 8192, "use the encoder's limit or less, e.g. 256")
        _int_in("overlap", self.overlap, 0, self.max_tokens // 2, f"try {self.max_tokens // 8}")
        if self.calibration_folds is not None:
            _int_in("calibration_folds", self.calibration_folds, 0, 10, "use 0 to turn calibration off")
            if self.calibration_folds == 1:
                raise ConfigError("The 'calibration_folds' parameter must be 0 (off) or >= 2; got 1.")
        if self.calibration_repeats is not None:
            _int_in("calibration_repeats", self.calibration_repeats, 1, 20, "e.g. 3")
        _int_in("seed", self.seed, 0, 2**32 - 1)
        for name, lo, hi in (("lr", 0.0, 1.0), ("finetune_lr", 0.0, 1.0), ("weight_decay", -1e-12, 10.0), ("dropout", -1e-12, 0.9),
                             ("diversity", -1e-12, 1.0), ("min_confidence", -1e-12, 1.0)):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not lo < value <= hi:
                raise ConfigError(f"The {name!r} parameter must be a number in ({max(lo, 0)}, {hi}]. Got {value!r}.")
        if self.decision_shift is not None and (not isinstance(self.decision_shift, (int, float))
                                                 or isinstance(self.decision_shift, bool)
                                                 or not -5.0 <= self.decision_shift <= 5.0):
            raise ConfigError(f"The 'decision_shift' parameter must be a number in [-5, 5] or unset. "
                              f"Got {self.decision_shift!r}.")
        if self.deid_prior not in PRIORS:
            raise ConfigError(f"The 'deid_prior' parameter must be one of {list(PRIORS)}. Got {self.deid_prior!r}"
                              f"{suggest(str(self.deid_prior), PRIORS)}.")
        if self.deid_profile not in ("clinical", "legal"):
            raise ConfigError(f"The 'deid_profile' parameter must be 'clinical' or 'legal'. Got {self.deid_profile!r}"
                              f"{suggest(str(self.deid_profile), ['clinical', 'legal'])}.")


    @property
    def folds(self) -> int:
        """``calibration_folds``, or the method's default when it is unset (see above)."""
        if self.calibration_folds is not None:
            return self.calibration_folds
        return 4 if self.method == "probe" else 2

    @property
    def repeats(self) -> int:
        """``calibration_repeats``, or the method's default when it is unset (see above)."""
        if self.calibration_repeats is not None:
            return self.calibration_repeats
        return 3 if self.method == "probe" else 1

def _int_in(name: str, value, lo: int, hi: int, hint: str = "") -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ConfigError(f"The {name!r} parameter must be an int in [{lo}, {hi}]. Got {value!r} instead"
                          f"{'; ' + hint if hint else ''}.")
