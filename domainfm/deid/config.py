"""Settings of the ``deid`` stage: which PHI to find, with which recognizers, and how to replace it.

Detection reads ``profile``, ``recognizers``, ``spacy_model``, ``score_threshold``,
``entities``/``exclude_entities``, ``batch_size`` and ``workers``. The transformation half reads
``operator``, ``vault`` and ``seed``; they are declared and validated here so a single task file
configures the whole stage.

Example:
    >>> DeidConfig(profile="legal", score_threshold=0.5).batch_size
    32
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from domainfm.config import check_fields, suggest
from domainfm.deid.labels import validate_entities
from domainfm.errors import ConfigError


@dataclass
class DeidConfig:
    """Args:
    profile: ``clinical`` (HIPAA Safe Harbor identifiers in notes) or ``legal`` (parties, judges,
        counsel, case numbers and quasi identifiers in judgments, as TAB defines them).
    recognizers: name of the recognizer set in the registry; ``None`` uses the profile's set.
    spacy_model: spaCy pipeline (``default`` is the packaged en_core_web_sm; never downloaded).
    score_threshold: detections scoring below it are dropped, in [0, 1]. Recall comes first:
        the default keeps every detection a recognizer was willing to make.
    entities: canonical labels or coarse types to report (``None``: all).
    exclude_entities: canonical labels or coarse types never to report.
    batch_size: texts per ``nlp.pipe`` batch.
    workers: processes for ``nlp.pipe`` (1 keeps everything in this process).
    seed: recorded in the manifest's config only: surrogates are keyed by
        ``$DOMAINFM_VAULT_KEY``, else by the seed given to the run (``deid --seed``, a
        pipeline's top-level ``seed``; :func:`domainfm.deid.runner.surrogate_secret`).
        A pipeline refuses ``deid.seed`` for that reason.
    operator: ``surrogate`` (realistic fakes), ``redact`` (remove) or ``tag`` (``[PATIENT]``).
    vault: path of the encrypted re-identification vault, or ``None`` for no vault.
    ner_model: a token-classification model whose spans are added to the rule detections (see
        :mod:`domainfm.deid.learned`): a ``domainfm finetune`` NER folder, a Hugging Face
        ``save_pretrained`` folder or a Hub id; ``None``: rules only.
    ner_threshold: minimum score of the learned model's spans, in [0, 1]; ``None``: ``score_threshold``.
    meta: what to do with ``meta`` fields, by key: ``keep``, ``drop``, ``deid`` (free text,
        de-identified like the note) or a PHI label (``NAME``, ``DATE``, ``MRN``...: the whole
        value is replaced). Known PHI-bearing keys (``patient_name``, ``dob``, ``phone``,
        ``comment``...) are de-identified without being listed; see :mod:`domainfm.deid.meta`.
    meta_default: the action for keys neither listed nor known (``keep``, ``drop`` or ``deid``).
    ner_label_map: how the model's entity types map onto canonical PHI labels: a shipped map's
        name (``i2b2``, ``obi``, ``stanford``, ``conll``, ``ontonotes``) consulted first, or
        ``{TYPE: LABEL}`` (``null`` ignores the type); types it leaves out are looked up in the
        shipped maps, and a type none knows is an error (:mod:`domainfm.deid.tagger_labels`).
    ner_quantize: ``int8``: the model's Linear layers dynamically quantised to int8 (CPU only;
        ignored on a GPU); ``none``: as saved; ``auto``: int8 on CPU, as saved on a GPU.
    ner_shape_checks: keep a learned span that no rule found only if its shape fits its label
        (:mod:`domainfm.deid.learned_vetting`: a DATE is a date and cuts no number, a NAME or
        LOCATION cuts no word and, outside ALL-CAPS notes, is not a lower-case dictionary word or
        typo); ``False`` adds every learned span above ``ner_threshold``.
    pseudonymize_ids: replace each record's ``id`` in the output by a keyed pseudonym
        (``doc-`` + 20 hex digits of an HMAC under the vault's key): record ids are often
        record or accession numbers, which Safe Harbor counts as identifiers. The same id gets
        the same pseudonym in every run under the same key, so outputs still join; the vault
        keeps the way back (``domainfm reidentify`` restores the original ids). Needs ``vault``.
    """

    profile: Literal["clinical", "legal"] = "clinical"
    recognizers: str | None = None
    spacy_model: str = "default"
    score_threshold: float = 0.3
    entities: list[str] | None = None
    exclude_entities: list[str] = field(default_factory=list)
    batch_size: int = 32
    workers: int = 1
    seed: int = 0
    operator: Literal["surrogate", "redact", "tag"] = "surrogate"
    vault: str | None = None
    ner_model: str | None = None
    ner_threshold: float | None = None
    meta: dict[str, str] = field(default_factory=dict)
    meta_default: str = "keep"
    ner_label_map: str | dict[str, str | None] | None = None
    ner_quantize: Literal["none", "int8", "auto"] = "none"
    pseudonymize_ids: bool = False
    ner_shape_checks: bool = True

    def __post_init__(self) -> None:
        check_fields(self)
        if self.profile not in ("clinical", "legal"):
            raise ConfigError(
                f"config field 'profile' must be one of ['clinical', 'legal'], got {self.profile!r}"
                f"{suggest(str(self.profile), ['clinical', 'legal'])}"
            )
        if self.operator not in ("surrogate", "redact", "tag"):
            raise ConfigError(
                f"config field 'operator' must be one of ['surrogate', 'redact', 'tag'], got "
                f"{self.operator!r}{suggest(str(self.operator), ['surrogate', 'redact', 'tag'])}"
            )
        if isinstance(self.score_threshold, bool) or not isinstance(self.score_threshold, (int, float)) \
                or not 0.0 <= float(self.score_threshold) <= 1.0:
            raise ConfigError(
                f"The 'score_threshold' parameter must be a float in [0, 1]. Got {self.score_threshold!r} instead."
            )
        self.score_threshold = float(self.score_threshold)
        if self.ner_threshold is not None:
            if isinstance(self.ner_threshold, bool) or not isinstance(self.ner_threshold, (int, float)) \
                    or not 0.0 <= float(self.ner_threshold) <= 1.0:
                raise ConfigError(
                    f"config field 'ner_threshold' must be a number in [0, 1] or null (= score_threshold), "
                    f"got {self.ner_threshold!r}"
                )
            self.ner_threshold = float(self.ner_threshold)
        if not isinstance(self.ner_shape_checks, bool):
            raise ConfigError(f"config field 'ner_shape_checks' must be true or false, got {self.ner_shape_checks!r}")
        for name, low, high in (("batch_size", 1, 100_000), ("workers", 1, 256)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(
                    f"The {name!r} parameter must be an int in [{low}, {high}]. Got {value!r} instead."
                )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"The 'seed' parameter must be an int. Got {self.seed!r} instead.")
        validate_entities(self.entities, "entities")
        validate_entities(self.exclude_entities, "exclude_entities")
        if self.entities is not None and not self.entities:
            raise ConfigError("config field 'entities' is an empty list: give labels, or null for all")
        if self.vault is not None and (not isinstance(self.vault, str) or not self.vault.strip()):
            raise ConfigError("config field 'vault' must be a file path or null, got an empty value")
        if not isinstance(self.pseudonymize_ids, bool):
            raise ConfigError(f"config field 'pseudonymize_ids' must be true or false, got {self.pseudonymize_ids!r}")
        if self.pseudonymize_ids and self.vault is None:
            raise ConfigError("config field 'pseudonymize_ids' needs a vault: the pseudonyms are keyed by it and it "
                              "keeps the way back to the original ids (set vault: PATH, with $DOMAINFM_VAULT_KEY)")
        if self.vault is not None and self.operator != "surrogate":
            raise ConfigError(
                f"config field 'vault' is set but operator is {self.operator!r}: only the 'surrogate' "
                "operator keeps a re-identification vault (set vault: null, or operator: surrogate)"
            )
        if self.ner_model is not None:
            from domainfm.deid.learned import model_kind

            try:
                if not isinstance(self.ner_model, str):
                    raise ConfigError(f"got {self.ner_model!r}")
                model_kind(self.ner_model)
            except ConfigError as exc:
                raise ConfigError(
                    f"config field 'ner_model' must be a token-classification model ('domainfm finetune' folder with "
                    f"task ner, 'save_pretrained' folder or Hub id), or null for rules only: {exc}"
                ) from None
        if not isinstance(self.meta, dict):
            raise ConfigError(f"config field 'meta' must be a mapping of meta keys to actions, got {self.meta!r}")
        self.meta_policy  # checks every action and meta_default, naming the key

        from domainfm.deid.tagger_labels import check_label_map

        check_label_map(self.ner_label_map)
        if self.ner_quantize not in ("none", "int8", "auto"):
            raise ConfigError(f"config field 'ner_quantize' must be one of ['none', 'int8', 'auto'], got "
                              f"{self.ner_quantize!r}{suggest(str(self.ner_quantize), ['none', 'int8', 'auto'])}")
        if self.recognizers is not None:
            from domainfm.deid.recognizers import available_sets

            if self.recognizers not in available_sets():
                raise ConfigError(
                    f"unknown recognizer set {self.recognizers!r}{suggest(self.recognizers, available_sets())}; "
                    f"available: {', '.join(available_sets())}"
                )

    @property
    def meta_policy(self):
        from domainfm.deid.meta import MetaPolicy

        return MetaPolicy(self.meta, self.meta_default)

    @property
    def recognizer_set(self) -> str:
        return self.recognizers or self.profile
