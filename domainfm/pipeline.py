"""``domainfm run PIPELINE.yaml``: the stages end to end, cached and resumable.

A pipeline file has ``run_dir``, ``seed`` and one optional section per stage, each mapping onto
that stage's own config (``deid`` -> :class:`~domainfm.deid.DeidConfig`, ``chunk`` ->
:class:`~domainfm.chunk.ChunkConfig`, ``pretrain`` -> :class:`~domainfm.pretrain.PretrainConfig`,
``finetune`` -> :class:`~domainfm.finetune.TaskConfig`, ``audit`` -> :class:`AuditSection` (an
:class:`~domainfm.audit.AuditConfig` plus which documents), ...). A missing or null section skips
the stage. Inputs are wired automatically: each stage reads the previous stage's output under
``run_dir/<stage>/``, so pipeline files never name intermediate paths. The audit reads the
fine-tuned model and, by default, the documents fine-tuning held out for evaluation.

Every stage writes ``run_dir/<stage>/stage.json``: a cache key (sha256 of the stage name, its
resolved config, the hashes of its input files and the domainfm version), its status, time,
counts and key metrics. A stage whose key is unchanged and whose last run finished is skipped;
a stage that failed or was killed runs again (pretrain and finetune continue from their last
checkpoint). The run ends with a summary table and ``run_dir/run.json``.

Example:
    >>> result = run_pipeline("tasks/demo-legal.yaml", {"label.pool_size": 20})  # doctest: +SKIP
    >>> [(s.name, s.status) for s in result.stages]  # doctest: +SKIP
    [('import', 'ran'), ('deid', 'ran'), ('chunk', 'ran'), ('pretrain', 'skipped'), ...]
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal, Mapping

from domainfm.audit.config import AuditConfig
from domainfm.deid.config import DeidConfig
from domainfm.config import apply_overrides, from_dict, read_yaml, suggest, to_dict
from domainfm.errors import ConfigError, DomainFMError
from domainfm.corpus.io import OutputLock
from domainfm.manifest import write_json_atomic
from domainfm.privacy_audit.config import PrivacyAuditConfig

# Stages in the order they run.
STAGE_ORDER = ("import", "deid", "chunk", "pretrain", "privacy", "finetune", "deid_eval", "audit", "label")
# The primary output of each stage, relative to run_dir/<stage>/; the next stage reads it.
OUTPUTS = {
    "import": "corpus.jsonl",
    "deid": "corpus.jsonl",
    "chunk": "chunks.jsonl",
    "pretrain": "model",
    "privacy": "report.json",
    "finetune": "model",
    "deid_eval": "report.json",
    "audit": "index.html",
    "label": "suggestions.jsonl",
}
STAGE_FILE = "stage.json"
RUN_FILE = "run.json"
LOCK_FILE = ".lock"


class PipelineError(DomainFMError):
    """A stage of ``domainfm run`` failed; the run directory records where to resume."""


# ---------------------------------------------------------------------------------------------
# Config


@dataclass
class MetaJoin:
    """Add per-document attributes (e.g. the audit's groups) from a CSV beside the corpus.

    Args:
        src: CSV file with one row per source record.
        key_col: the column that identifies the record.
        columns: CSV column -> ``meta`` key, e.g. ``{gender_combined: sex, age_regex: age}``.
            Numbers become numbers; empty cells are left out (the audit's ``unknown`` group).
        id_format: the document id made from ``key_col`` (``{}`` is the value), e.g.
            ``mtsamples-{}`` for the ``mtsamples`` preparer's ids.
    """

    src: Path
    key_col: str
    columns: dict[str, str]
    id_format: str = "{}"

    def __post_init__(self) -> None:
        if not self.columns:
            raise ConfigError("'import.meta_join.columns' must map at least one CSV column to a meta key")
        if "{}" not in self.id_format:
            raise ConfigError(f"'import.meta_join.id_format' must contain '{{}}' (the key value). "
                              f"Got {self.id_format!r} instead.")


@dataclass
class ImportSection:
    """Args:
    format: importer name (``jsonl``, ``csv``, ``textdir``, ...; see ``domainfm import --help``)
        or a dataset preparer of :mod:`domainfm.finetune.prepare` (``mtsamples``,
        ``unfair-tos``, ``cuad-types``), which also sets each document's label.
    src: source file or folder (relative paths resolve against the current directory).
    options: the importer's (or preparer's) own options, e.g. ``{text_key: body}``.
    meta_join: attributes joined from a CSV by document id (:class:`MetaJoin`).
    max_documents: keep a seeded random sample of N documents, in their input order (to size
        a run; sources are often sorted by label, so not simply the first N). Null keeps all.
    """

    src: Path
    format: str = "jsonl"
    options: dict[str, Any] = field(default_factory=dict)
    meta_join: MetaJoin | None = None
    max_documents: int | None = None

    def __post_init__(self) -> None:
        if self.max_documents is not None and self.max_documents < 1:
            raise ConfigError(f"The 'import.max_documents' parameter must be an int >= 1 or null. "
                              f"Got {self.max_documents!r} instead.")


@dataclass
class AuditSection(AuditConfig):
    """The ``audit:`` section: every :class:`~domainfm.audit.AuditConfig` key, plus which
    documents the fine-tuned model is audited on.

    Args:
        data: ``eval``: the documents fine-tuning held out (the same seeded split, recomputed);
            ``all``: every document fine-tuning read (training documents included: in-sample).
        max_documents: audit at most this many of them (null: all).
        cards: reviewer's cards to write beside the report: ``chai``, ``annex-iv``, ``fda`` or
            ``all`` (:mod:`domainfm.audit.cards`).
        cards_config: the deployer's ``cards.yaml`` (intended use, contact, release...).
        chai_schema: the CHAI v0.2 ``schema.xsd`` to validate against (null: the shipped copy).
    """

    data: Literal["eval", "all"] = "eval"
    max_documents: int | None = None
    cards: list[str] = field(default_factory=list)
    cards_config: str | None = None
    chai_schema: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_documents is not None and self.max_documents < 2:
            raise ConfigError(f"The 'audit.max_documents' parameter must be an int >= 2 or null. "
                              f"Got {self.max_documents!r} instead.")
        from domainfm.audit.cards.config import load_deployer_fields, parse_cards

        try:
            self.cards = parse_cards(self.cards)
        except ConfigError as exc:
            raise ConfigError(f"audit.cards: {exc}") from None
        if self.cards_config is not None:
            if not self.cards:
                raise ConfigError("audit.cards_config is set but audit.cards names no card: add e.g. 'cards: [all]'")
            load_deployer_fields(self.cards_config)  # its errors name the file and the field
        if self.chai_schema is not None and not Path(self.chai_schema).is_file():
            raise ConfigError(f"audit.chai_schema {self.chai_schema} does not exist (leave it out to use the shipped "
                              "CHAI v0.2 schema)")


@dataclass
class DeidEvalSection(DeidConfig):
    """The ``deid_eval:`` section: every :class:`~domainfm.deid.DeidConfig` key (the rules'
    settings and ``ner_threshold``, ``ner_label_map``, ``ner_quantize``), plus how to score.

    The stage de-identifies the documents fine-tuning held out (whole patients with
    ``data.split_key: auto``) twice, with the rules alone and with the rules plus the fine-tuned
    model (``ner_model``, wired by the pipeline), name propagation included as in
    ``domainfm deid``, and scores both against the documents' own gold spans (all PHI types,
    not only those the model learned).

    Args:
        dataset: label table of the gold spans (:mod:`domainfm.deid.labels`: ``physionet``,
            ``synthetic-clinical``, ``canonical``...).
        max_documents: score at most this many held-out documents (null: all).
    """

    dataset: str = "physionet"
    max_documents: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        from domainfm.deid.labels import dataset_table

        dataset_table(self.dataset)
        if self.max_documents is not None and self.max_documents < 1:
            raise ConfigError(f"The 'deid_eval.max_documents' parameter must be an int >= 1 or null. "
                              f"Got {self.max_documents!r} instead.")


class PrivacySection(PrivacyAuditConfig):
    """The ``privacy:`` section: every :class:`~domainfm.privacy_audit.PrivacyAuditConfig` key
    (``gate:`` thresholds included). It audits the pretrained model on pretraining's own split
    (the documents it trained on vs the patients it held out) and fails the run, with the
    numbers, when the model exceeds a gate threshold; fine-tuning does not start.

    Args:
        holdout: held-out documents to use instead of pretraining's held-out side.
        vault: the deid vault to probe (default: the deid section's ``vault``; its key in
            ``$DOMAINFM_VAULT_KEY``).
        planted: without a vault, a JSONL whose spans mark planted identifiers to probe.
    """

    holdout: Path | None = None
    vault: Path | None = None
    planted: Path | None = None


@dataclass
class LabelSection:
    """Label suggestions for a real pool (``domainfm label`` inside a pipeline).

    Args:
        labeled: JSONL of labeled seed documents (a ``label`` or ``labels`` each); default: the
            stage's documents that carry a label.
        pool: JSONL of the documents to suggest labels for; default: the stage's documents
            without a label.
        method: ``embed`` (frozen encoder + calibrated LR) or ``setfit``.
        model: the sentence encoder (``minilm``, a folder, a hub id, or a ``domainfm pretrain``
            output).
        exports: annotation-tool files written beside the suggestions (``labelstudio``,
            ``prodigy``, ``csv``).

    The evaluation harness that hides the labels of labeled documents and scores the
    suggestions against them is ``domainfm.label.run_label_demo`` (run by ``domainfm demo``).
    """

    labeled: Path | None = None
    pool: Path | None = None
    method: Literal["embed", "setfit"] = "embed"
    model: str = "minilm"
    exports: list[str] = field(default_factory=lambda: ["labelstudio"])

    #: keys of the evaluation harness the label section used to run
    HARNESS_KEYS: ClassVar[tuple[str, ...]] = ("seeds_per_class", "pool_size")

    def __post_init__(self) -> None:
        from domainfm.label.export import EXPORT_FORMATS

        for kind in self.exports:
            if kind not in EXPORT_FORMATS:
                raise ConfigError(f"label.exports: unknown format {kind!r}{suggest(kind, EXPORT_FORMATS)}; "
                                  f"choose from {list(EXPORT_FORMATS)}")


@dataclass
class PipelineConfig:
    """A resolved pipeline: where it runs and each present stage's own config (inputs wired).

    Attributes:
        run_dir: the run directory; stage ``s`` writes to ``run_dir/s/``.
        seed: seeds surrogates (reproducible de-identification: demos and tests only; ``null``
            for a random secret or ``$DOMAINFM_VAULT_KEY``), labeling, and the training
            stages' ``train.seed`` unless their section sets one.
        stages: stage name -> its config dataclass, in run order; absent stages are skipped.
        inputs: stage name -> the files it reads.
        launch: the launcher the training stages run under, as a subprocess, e.g.
            ``accelerate launch --num_processes 8`` (``-m domainfm pretrain|finetune ...`` is
            appended); None runs them in this process.
        engine: the :class:`~domainfm.distributed.config.EngineConfig` that computes ``deid``
            and ``chunk`` (``engine: spark`` or ``{name: ray, workers: 8}``); None: this process.
            Like ``launch``, not part of the cache key: every engine writes the same output.
    """

    run_dir: Path
    seed: int | None
    stages: dict[str, Any]
    inputs: dict[str, list[Path]]
    launch: list[str] | None = None
    engine: Any = None

    def out_dir(self, stage: str) -> Path:
        return self.run_dir / stage

    def output(self, stage: str) -> Path:
        return self.run_dir / stage / OUTPUTS[stage]

    def to_dict(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "seed": self.seed, "launch": self.launch,
                "engine": to_dict(self.engine) if self.engine is not None else None,
                "stages": {name: to_dict(cfg) for name, cfg in self.stages.items()}}


def _section_builders() -> dict[str, Callable[[dict, str], Any]]:
    def build_import(data, prefix):
        from domainfm.corpus.importers import get_importer

        section = from_dict(ImportSection, data, prefix=prefix)
        from_dict(get_importer(section.format).options_cls, section.options, prefix=f"{prefix}options.")
        return section

    def build_deid(data, prefix):
        from domainfm.deid import DeidConfig

        return from_dict(DeidConfig, data, prefix=prefix)

    def build_chunk(data, prefix):
        from domainfm.chunk import ChunkConfig

        return from_dict(ChunkConfig, data, prefix=prefix)

    def build_pretrain(data, prefix):
        from domainfm.pretrain import PretrainConfig

        return from_dict(PretrainConfig, data, prefix=prefix)

    def build_finetune(data, prefix):
        from domainfm.finetune import TaskConfig

        return from_dict(TaskConfig, data, prefix=prefix)

    def build_privacy(data, prefix):
        return from_dict(PrivacySection, data, prefix=prefix)

    def build_audit(data, prefix):
        return from_dict(AuditSection, data, prefix=prefix)

    def build_deid_eval(data, prefix):
        return from_dict(DeidEvalSection, data, prefix=prefix)

    def build_label(data, prefix):
        old = [k for k in LabelSection.HARNESS_KEYS if isinstance(data, dict) and k in data]
        if old:
            raise ConfigError(f"{prefix}{old[0]}: the label stage now suggests labels for a real pool (the documents "
                              "without a label, or label.pool) seeded by label.labeled (default: the documents with "
                              "one); the evaluation draw it used to make is domainfm.label.run_label_demo, run by "
                              f"'domainfm demo'. Remove {', '.join(prefix + k for k in old)}")
        return from_dict(LabelSection, data, prefix=prefix)

    return {"import": build_import, "deid": build_deid, "chunk": build_chunk, "pretrain": build_pretrain,
            "privacy": build_privacy, "finetune": build_finetune, "deid_eval": build_deid_eval, "audit": build_audit,
            "label": build_label}


def _set_default(data: dict, dotted: str, value: Any) -> None:
    node = data
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            return  # from_dict names the wrong type
    node.setdefault(last, value)


def _wired(section: str, data: dict, dotted: str, value: Any, source: str) -> None:
    node = data
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict) and node.get(last) not in (None, [], ""):
        raise ConfigError(f"'{section}.{dotted}' is set by the pipeline ({source}); remove it from the pipeline file")
    _set_default(data, dotted, value)


def pipeline_from_dict(data: Mapping[str, Any]) -> PipelineConfig:
    """Validate a pipeline mapping and wire each stage's inputs to the previous outputs."""
    import copy

    data = copy.deepcopy(dict(data))
    valid = ("run_dir", "seed", "launch", "engine", *STAGE_ORDER)
    for key in data:
        if key not in valid:
            raise ConfigError(f"unknown config key {key!r}{suggest(key, valid)}; valid keys: {', '.join(valid)}")
    run_dir = Path(str(data.get("run_dir") or "runs/pipeline"))
    seed = data.get("seed", 13)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ConfigError(f"config field 'seed' must be an integer or null, got {seed!r}")
    launch = data.get("launch")
    if isinstance(launch, str):
        import shlex

        launch = shlex.split(launch)
    if launch is not None and (not isinstance(launch, list) or not launch
                               or not all(isinstance(x, str) for x in launch)):
        raise ConfigError(f"config field 'launch' must be a command (e.g. 'accelerate launch --num_processes 8') "
                          f"or null, got {launch!r}")
    engine = data.get("engine")
    if engine is not None:
        from domainfm.distributed.config import EngineConfig

        engine = from_dict(EngineConfig, {"name": engine} if isinstance(engine, str) else engine, prefix="engine.")
    raw = {name: data.get(name) for name in STAGE_ORDER if data.get(name) is not None}
    for name, section in raw.items():
        if not isinstance(section, Mapping):
            raise ConfigError(f"config section {name!r} must be a mapping (or null to skip the stage), "
                              f"got {type(section).__name__}")
        raw[name] = dict(section)
    if "import" not in raw:
        raise ConfigError("a pipeline needs an 'import' section (format, src) that names its corpus")

    def out(stage: str) -> Path:
        return run_dir / stage / OUTPUTS[stage]

    documents = out("deid") if "deid" in raw else out("import")
    documents_source = "the deid output" if "deid" in raw else "the import output"
    inputs: dict[str, list[Path]] = {"import": [Path(str(raw["import"].get("src", "")))]}
    if "deid" in raw:
        inputs["deid"] = [out("import")]
    if "chunk" in raw:
        inputs["chunk"] = [documents]
    if "pretrain" in raw:
        _wired("pretrain", raw["pretrain"], "data.paths", [str(documents)], documents_source)
        if seed is not None:
            _set_default(raw["pretrain"], "train.seed", seed)
        inputs["pretrain"] = [documents]
    if "privacy" in raw:
        if "pretrain" not in raw:
            raise ConfigError("the 'privacy' section audits the pretrained model: add a 'pretrain' section "
                              "(or run 'domainfm audit-privacy MODEL --train ... --holdout ...')")
        inputs["privacy"] = [out("pretrain"), documents]
        vault = (raw.get("deid") or {}).get("vault")
        if vault and not raw["privacy"].get("planted"):
            _set_default(raw["privacy"], "vault", vault)
    if "finetune" in raw:
        _wired("finetune", raw["finetune"], "data.train", str(documents), documents_source)
        inputs["finetune"] = [documents]
        if "pretrain" in raw:
            # Adapt first, then fine-tune: the classifier starts from the DAPT model unless the
            # section names another base.
            _set_default(raw["finetune"], "model.name", str(out("pretrain")))
            inputs["finetune"].append(out("pretrain"))
        if seed is not None:
            _set_default(raw["finetune"], "train.seed", seed)
    if "deid_eval" in raw:
        if "finetune" not in raw or "deid" in raw:
            raise ConfigError("the 'deid_eval' section scores the rules with and without the fine-tuned PHI model on "
                              "the annotated notes fine-tuning held out: it needs a 'finetune' section (task: ner) "
                              "and no 'deid' section (fine-tuning must read the notes with their PHI and gold spans)")
        if raw["deid_eval"].get("ner_model") is not None:
            raise ConfigError("'deid_eval.ner_model' is set by the pipeline (the fine-tuned model); remove it "
                              "from the pipeline file")
        inputs["deid_eval"] = [out("finetune"), documents]
    if "audit" in raw:
        if "finetune" not in raw:
            raise ConfigError("the 'audit' section audits the fine-tuned model: add a 'finetune' section "
                              "(or run 'domainfm audit MODEL DATA' on a model trained elsewhere)")
        # The documents come from fine-tuning's own data (its held-out split by default), so
        # they are the finetune section's data files.
        inputs["audit"] = [out("finetune")]
    if "label" in raw:
        inputs["label"] = [documents]
        for key in ("labeled", "pool"):
            if isinstance(raw["label"], dict) and raw["label"].get(key):
                inputs["label"].append(Path(str(raw["label"][key])))
    builders = _section_builders()
    stages = {name: builders[name](raw[name], f"{name}.") for name in STAGE_ORDER if name in raw}
    if "privacy" in stages:
        extra = [getattr(stages["privacy"], k) for k in ("holdout", "vault", "planted")]
        inputs["privacy"] += [Path(str(p)) for p in extra if p is not None]
    if stages["import"].meta_join is not None:
        inputs["import"].append(stages["import"].meta_join.src)  # an edited table re-runs the import
    if "deid_eval" in stages and stages["finetune"].task != "ner":
        raise ConfigError(f"the 'deid_eval' section needs a NER model: set finetune.task to 'ner' "
                          f"(it is {stages['finetune'].task!r})")
    if "audit" in stages:
        data = stages["finetune"].data
        inputs["audit"] += [Path(str(data.train))] + ([Path(str(data.eval))] if data.eval else [])
        # an edited cards.yaml or schema re-runs the audit stage (it writes the cards)
        inputs["audit"] += [Path(p) for p in (stages["audit"].cards_config, stages["audit"].chai_schema) if p]
    return PipelineConfig(run_dir=run_dir, seed=seed, stages=stages, inputs=inputs, launch=launch, engine=engine)


def load_pipeline(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> PipelineConfig:
    """Read a pipeline YAML file (optional), apply dotted overrides, validate and wire it."""
    data = read_yaml(path) if path is not None else {}
    if overrides:
        data = apply_overrides(data, overrides)
    return pipeline_from_dict(data)


# ---------------------------------------------------------------------------------------------
# Stage runners: small functions the registry maps names to (tests swap in fakes).


@dataclass
class StageContext:
    """What a stage runner gets: its config, input files, output folder and run settings."""

    name: str
    config: Any
    inputs: list[Path]
    out_dir: Path
    output: Path
    seed: int | None
    resume: bool
    console: Any = None
    pipeline: PipelineConfig | None = None  # the whole run (the audit reads the finetune section)


@dataclass
class StageOutput:
    """What a stage runner returns: output paths (the primary one first), counts, key metrics."""

    outputs: list[Path]
    counts: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


def _run_import(ctx: StageContext) -> StageOutput:
    from domainfm.corpus.importing import import_corpus
    from domainfm.manifest import manifest_path_for

    cfg = ctx.config
    reshaped = cfg.meta_join is not None or cfg.max_documents is not None
    target = ctx.out_dir / "source.jsonl" if reshaped else ctx.output
    result = import_corpus(cfg.format, cfg.src, target, cfg.options)
    counts = {"read": result.counts.read, "written": result.counts.written, "rejected": result.counts.rejected}
    if not reshaped:
        return StageOutput([ctx.output, manifest_path_for(ctx.output)], counts)
    counts.update(_reshape(target, ctx.output, cfg, seed=13 if ctx.seed is None else ctx.seed))
    return StageOutput([ctx.output, manifest_path_for(ctx.output)], counts)


def _read_meta_table(join: MetaJoin) -> dict[str, dict[str, Any]]:
    import csv

    from domainfm.errors import CorpusError

    if not join.src.is_file():
        raise CorpusError(f"import.meta_join.src: {join.src}: no such file")
    table: dict[str, dict[str, Any]] = {}
    with open(join.src, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        for col in (join.key_col, *join.columns):
            if col not in header:
                raise CorpusError(f"{join.src.name}: no column {col!r}{suggest(col, header)}; columns are {header}")
        for row in reader:
            meta = {}
            for col, key in join.columns.items():
                value = (row[col] or "").strip()
                if not value:
                    continue
                try:
                    number = float(value)
                except ValueError:
                    number = None
                if number is None or number != number or number in (float("inf"), float("-inf")):
                    meta[key] = value  # text, or "nan"/"inf" kept as written (not JSON numbers)
                else:
                    meta[key] = int(number) if number.is_integer() else number
            table.setdefault(join.id_format.format(row[join.key_col]), meta)
    return table


def _sample(docs, n: int, seed: int) -> list:
    """A uniform sample of ``n`` items of a stream (reservoir sampling), in stream order."""
    import random

    rng = random.Random(seed)
    reservoir: list = []
    for i, doc in enumerate(docs):
        if i < n:
            reservoir.append((i, doc))
        else:
            j = rng.randint(0, i)
            if j < n:
                reservoir[j] = (i, doc)
    return [doc for _, doc in sorted(reservoir, key=lambda pair: pair[0])]


def _reshape(src: Path, out: Path, cfg: ImportSection, *, seed: int) -> dict[str, int]:
    """Join attributes and apply ``max_documents``: ``src`` (the importer's output) -> ``out``."""
    from domainfm.corpus import read_documents
    from domainfm.corpus.io import DocumentWriter
    from domainfm.manifest import write_manifest

    table = _read_meta_table(cfg.meta_join) if cfg.meta_join is not None else None
    docs = read_documents(src)
    if cfg.max_documents is not None:
        docs = _sample(docs, cfg.max_documents, seed)
    kept = joined = 0
    with DocumentWriter(out) as writer:
        for doc in docs:
            if table is not None and doc.id in table:
                doc.meta.update(table[doc.id])
                joined += 1
            writer.write(doc)
            kept += 1
    counts = {"kept": kept}
    if table is not None:
        counts["with_joined_meta"] = joined
    inputs = [src] + ([cfg.meta_join.src] if cfg.meta_join is not None else [])
    write_manifest(out, stage="import", config=cfg, inputs=inputs, outputs=[out], counts=counts)
    return counts


def _run_deid(ctx: StageContext) -> StageOutput:
    engine = _engine(ctx)
    if engine is not None:
        from domainfm.distributed.jobs import run_deid

        result = run_deid(ctx.inputs[0], ctx.output, ctx.config, engine, seed=ctx.seed)
    else:
        from domainfm.deid import deidentify_file

        result = deidentify_file(ctx.inputs[0], ctx.output, ctx.config, seed=ctx.seed)
    c = result.counts
    return StageOutput([result.out, result.manifest],
                       {"read": c.read, "written": c.written, "rejected": c.rejected},
                       {"detections": result.detections})


def _run_chunk(ctx: StageContext) -> StageOutput:
    engine = _engine(ctx)
    if engine is not None:
        from domainfm.distributed.jobs import run_chunk

        result = run_chunk(ctx.inputs[0], ctx.output, ctx.config, engine)
    else:
        from domainfm.chunk import chunk_file

        result = chunk_file(ctx.inputs[0], ctx.output, ctx.config)
    c = result.counts
    return StageOutput([result.out, result.manifest],
                       {"documents": c.written, "rejected": c.rejected, "chunks": result.chunks},
                       {"max_chunk_tokens": result.max_chunk_tokens})


def _engine(ctx: StageContext):
    """The pipeline's distributed engine for deid/chunk, or None to run in this process."""
    config = ctx.pipeline.engine if ctx.pipeline is not None else None
    if config is None or not config.distributed:
        return None
    from domainfm.distributed.jobs import make_engine

    return make_engine(config)


def _output_mode(ctx: StageContext, list_checkpoints) -> dict[str, bool]:
    out = ctx.output
    if ctx.resume and list_checkpoints(out):
        return {"resume": True}
    return {"overwrite": out.is_dir() and any(out.iterdir())}


def _launched(ctx: StageContext, command: str, mode: dict[str, bool], extra: list[str]) -> tuple[dict, dict]:
    """Run a training stage as ``<launch> -m domainfm <command> CONFIG -o OUT`` (e.g. under
    ``accelerate launch`` on several GPUs); returns its ``metrics.json`` and ``manifest.json``."""
    import shlex
    import subprocess

    import yaml

    config_file = ctx.out_dir / f"{command}.stage.yaml"  # the resolved stage config, inputs wired
    config_file.write_text(yaml.safe_dump(to_dict(ctx.config), sort_keys=False), encoding="utf-8")
    argv = [*ctx.pipeline.launch, "-m", "domainfm", command, str(config_file), "-o", str(ctx.output), *extra]
    argv += ["--resume"] if mode.get("resume") else (["--overwrite"] if mode.get("overwrite") else [])
    (ctx.out_dir / "command.txt").write_text(shlex.join(argv) + "\n", encoding="utf-8")
    if ctx.console is not None:
        ctx.console.print(f"launching: {shlex.join(argv)}")
    code = subprocess.run(argv).returncode
    if code != 0:
        raise PipelineError(f"'{shlex.join(argv)}' exited with code {code} (its output is above)")
    read = lambda name: json.loads((ctx.output / name).read_text(encoding="utf-8"))  # noqa: E731
    return read("metrics.json"), read("manifest.json")


def _run_pretrain(ctx: StageContext) -> StageOutput:
    import contextlib

    from domainfm.pretrain.train import list_checkpoints

    mode = _output_mode(ctx, list_checkpoints)
    if ctx.pipeline is not None and ctx.pipeline.launch:
        extra = ["--allow-identified-data"] if ctx.config.allow_identified_data else []
        raw, manifest = _launched(ctx, "pretrain", mode, extra)
        steps, resumed_from = manifest.get("steps"), manifest.get("resumed_from_step")
    else:
        from domainfm.pretrain import console_reporter, pretrain

        reporter = console_reporter(ctx.console) if ctx.console is not None else contextlib.nullcontext(None)
        with reporter as on_event:
            result = pretrain(ctx.config, ctx.output, allow_identified_data=ctx.config.allow_identified_data,
                              on_event=on_event, **mode)
        raw, steps, resumed_from = result.metrics, result.steps, result.resumed_from
    metrics: dict[str, Any] = {}
    before, after = raw.get("eval_before"), raw.get("eval_after")
    if before and after:
        metrics = {"perplexity_before": round(before["perplexity"], 2),
                   "perplexity_after": round(after["perplexity"], 2)}
    if resumed_from is not None:
        metrics["resumed_from_step"] = resumed_from
    return StageOutput([ctx.output], {"steps": steps}, metrics)


def _run_finetune(ctx: StageContext) -> StageOutput:
    from domainfm.training import list_checkpoints

    mode = _output_mode(ctx, list_checkpoints)
    if ctx.pipeline is not None and ctx.pipeline.launch:
        raw, manifest = _launched(ctx, "finetune", mode, [])
        steps, resumed_from = manifest.get("steps"), manifest.get("resumed_from_step")
    else:
        from domainfm.finetune import console_reporter, finetune

        on_event = console_reporter(ctx.console) if ctx.console is not None else None
        result = finetune(ctx.config, ctx.output, on_event=on_event, **mode)
        raw, steps, resumed_from = result.metrics, result.steps, result.resumed_from
    ev = raw.get("eval") or {}
    keys = ("macro_f1", "accuracy", "micro_f1", "f1")
    metrics = {k: round(ev[k], 4) for k in keys if isinstance(ev.get(k), (int, float))}
    if resumed_from is not None:
        metrics["resumed_from_step"] = resumed_from
    return StageOutput([ctx.output], {"steps": steps, "eval_documents": ev.get("n")}, metrics)


def _run_deid_eval(ctx: StageContext) -> StageOutput:
    from domainfm.corpus import read_documents
    from domainfm.deid import PhiDetector
    from domainfm.deid.evaluate import evaluate
    from domainfm.deid.propagate import propagate_names
    from domainfm.finetune.split import recorded_documents

    section = ctx.config
    task = ctx.pipeline.stages["finetune"]
    _, eval_docs, stats = recorded_documents(ctx.inputs[0], task)
    if not eval_docs:
        raise ConfigError("deid_eval scores the documents fine-tuning held out, and there are none: set "
                          "finetune.data.eval_fraction > 0 or finetune.data.eval")
    held = {d.id for d in eval_docs}
    # the gold as imported: every PHI type, not only the labels the model was trained on
    source = task.data.eval or task.data.train
    gold = [d for d in read_documents(source) if d.id in held]
    if section.max_documents is not None:
        gold = gold[: section.max_documents]
    base = DeidConfig(**{f.name: getattr(section, f.name) for f in dataclasses.fields(DeidConfig)})
    model = ctx.inputs[0]
    chars = sum(len(d.text) for d in gold)
    report: dict[str, Any] = {
        "held_out": {"documents": len(gold), "patients": len({str(d.meta.get("patient_id", d.id)) for d in gold}),
                     "split_key": stats.get("split_key"), "source": stats.get("eval_source")},
        "model": str(model),
        "note": "the held-out patients also chose fine-tuning's best checkpoint (train.metric at each "
                "evaluation), so rules_and_model is slightly optimistic; the rules never saw them",
        "matching": "any-overlap, type-agnostic; precision per predicted span; name propagation included",
    }
    for name, cfg in (("rules", base), ("rules_and_model", dataclasses.replace(base, ner_model=str(model)))):
        detector = PhiDetector(cfg)
        t0 = time.perf_counter()
        predicted = {doc.id: found for doc, found in propagate_names(detector.detect(gold))}
        seconds = time.perf_counter() - t0
        s = evaluate(gold, predicted, dataset=section.dataset, keep_lists=False).summary()
        report[name] = {"gold": s["gold"], "pred": s["pred"], **s["any_overlap"],
                        "recall_by_type": {k: v["recall_any_label"] for k, v in s["per_type"].items() if v["gold"]},
                        "chars_per_s": round(chars / seconds) if seconds > 0 else None}
    report["use"] = f"domainfm deid NOTES.jsonl -o OUT.jsonl --ner-model {model}"
    _write_json(ctx.output, report)
    if ctx.console is not None:
        for name in ("rules", "rules_and_model"):
            r = report[name]
            ctx.console.print(f"held-out patients, {name}: recall {r['recall']:.3f}, precision {r['precision']:.3f}")
        ctx.console.print(f"the model for 'domainfm deid --ner-model': {model}")
    metrics = {f"{key}_{name}": round(report[name][key], 4) for name in ("rules", "rules_and_model")
               for key in ("recall", "precision") if isinstance(report[name].get(key), (int, float))}
    return StageOutput([ctx.output], {"documents": len(gold), "patients": report["held_out"]["patients"]}, metrics)


def _run_audit(ctx: StageContext) -> StageOutput:
    from domainfm.audit import audit
    from domainfm.finetune.split import recorded_documents

    section = ctx.config
    task = ctx.pipeline.stages["finetune"]
    train_docs, eval_docs, _ = recorded_documents(ctx.inputs[0], task)  # the split finetune recorded
    if section.data == "eval":
        docs = eval_docs
        if not docs:
            raise ConfigError("audit.data is 'eval' but fine-tuning held out no documents: set "
                              "finetune.data.eval_fraction > 0, finetune.data.eval, or audit.data: all")
    else:
        docs = train_docs + eval_docs
    if section.max_documents is not None:
        docs = docs[: section.max_documents]
    cfg = AuditConfig(**{f.name: getattr(section, f.name) for f in dataclasses.fields(AuditConfig)})
    privacy_report = None
    if "privacy" in ctx.pipeline.stages:  # the model card states the memorisation audit of the DAPT model
        with contextlib.suppress(OSError, ValueError):
            privacy_report = json.loads(ctx.pipeline.output("privacy").read_text(encoding="utf-8"))
    result = audit(ctx.inputs[0], docs, ctx.out_dir, cfg, privacy_audit=privacy_report)
    report = result.report
    perf = report.get("performance", {})
    overall = perf.get("overall", {})
    metrics: dict[str, Any] = {k: round(v, 4) for k, v in overall.items()
                               if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "n"}
    ece = ((report.get("calibration") or {}).get("overall") or {}).get("ece")
    if isinstance(ece, (int, float)):
        metrics["ece"] = round(ece, 4)
    for attr, part in (perf.get("by_attribute") or {}).items():
        gap = ((part.get("gaps") or {}).get("all_groups") or {}).get("accuracy_difference")
        if " x " not in attr and isinstance(gap, (int, float)):
            metrics[f"accuracy_gap_{attr.rsplit('.', 1)[-1]}"] = round(gap, 4)
    counts = {"documents": len(docs), "data": section.data}
    outputs = [result.html, ctx.out_dir / "report.json", ctx.out_dir / "model_card.md"]
    if section.cards:
        from domainfm.audit.cards import write_cards

        evidence = {stage: ctx.pipeline.output(stage) for stage in ("privacy", "deid_eval")
                    if stage in ctx.pipeline.stages and ctx.pipeline.output(stage).is_file()}
        cards = write_cards(ctx.out_dir, section.cards, cards_config=section.cards_config,
                            chai_schema=section.chai_schema, privacy_audit=evidence.get("privacy"),
                            deid_eval=evidence.get("deid_eval"), audit_scope=section.data)
        outputs += cards.files
        for name, card in cards.summary["cards"].items():
            counts[f"card_{name}_open_fields"] = card["completeness"]["missing"]
    return StageOutput(outputs, counts, metrics)


def _run_privacy(ctx: StageContext) -> StageOutput:
    from domainfm.pretrain.data import split_documents
    from domainfm.privacy_audit import PrivacyGateError, audit_privacy, gate_message

    section = ctx.config
    train_docs, held_docs = split_documents(ctx.pipeline.stages["pretrain"].data)
    holdout = section.holdout if section.holdout is not None else held_docs
    if section.holdout is None and not held_docs:
        raise ConfigError("the privacy stage needs held-out documents: set pretrain.data.eval_fraction > 0 "
                          "or privacy.holdout")
    cfg = PrivacyAuditConfig(**{f.name: getattr(section, f.name) for f in dataclasses.fields(PrivacyAuditConfig)})
    on_event = (lambda message: ctx.console.print(message)) if ctx.console is not None else None
    result = audit_privacy(ctx.inputs[0], train_docs, holdout, ctx.out_dir, cfg, vault=section.vault,
                           planted=section.planted, on_event=on_event)
    report = result.report
    if not result.passed:
        raise PrivacyGateError(f"{gate_message(report)} (report: {ctx.out_dir / 'summary.md'})")
    metrics = {"max_exposure": (report.get("exposure") or {}).get("max_exposure"),
               "mia_auc": round(report["membership"]["auc"], 4) if report["membership"].get("auc") is not None
               else None,
               "regurgitated": (report.get("regurgitation") or {}).get("regurgitated")}
    counts = {"members": report["data"]["members_scored"], "nonmembers": report["data"]["nonmembers_scored"]}
    return StageOutput([ctx.out_dir / "report.json", ctx.out_dir / "summary.md"], counts, metrics)


def _run_label(ctx: StageContext) -> StageOutput:
    from domainfm.corpus import read_documents, write_documents
    from domainfm.label import LabelConfig, label_file

    cfg = ctx.config
    labeled, pool = cfg.labeled, cfg.pool
    if labeled is None or pool is None:
        # one pass over the stage's documents: those with a label seed, the others are the pool
        docs = list(read_documents(ctx.inputs[0]))
        has_label = [bool(d.label or d.labels) for d in docs]
        if labeled is None:
            labeled = ctx.out_dir / "seeds.jsonl"
            write_documents(labeled, [d for d, y in zip(docs, has_label) if y])
        if pool is None:
            pool = ctx.out_dir / "pool.jsonl"
            unlabeled = [d for d, y in zip(docs, has_label) if not y]
            if not unlabeled:
                raise ConfigError(f"label: every one of the {len(docs)} documents of {ctx.inputs[0].name} carries a "
                                  "label, so there is nothing to suggest for; give label.pool (documents to label)")
            write_documents(pool, unlabeled)
    run = label_file(labeled, pool, ctx.output, LabelConfig(method=cfg.method, model=cfg.model,
                                                          seed=13 if ctx.seed is None else ctx.seed),
                     exports=list(cfg.exports))
    cv = run.summary.get("cross_validation", {})
    metrics = {k: round(cv[k], 4) for k in ("expected_accuracy", "expected_micro_f1", "expected_macro_f1",
                                            "expected_ece") if k in cv}
    return StageOutput([run.out, run.manifest, *run.exports],
                       {"read": run.counts.read, "written": run.counts.written, "rejected": run.counts.rejected},
                       metrics)


StageRunner = Callable[[StageContext], StageOutput]
STAGES: dict[str, StageRunner] = {
    "import": _run_import,
    "deid": _run_deid,
    "chunk": _run_chunk,
    "pretrain": _run_pretrain,
    "privacy": _run_privacy,
    "finetune": _run_finetune,
    "deid_eval": _run_deid_eval,
    "audit": _run_audit,
    "label": _run_label,
}


# ---------------------------------------------------------------------------------------------
# Running


@dataclass
class StageRecord:
    """One stage of a run: ``status`` is ``ran``, ``cached``, ``skipped`` (no section, or past
    ``--until``), ``failed`` or ``not run`` (after a failure)."""

    name: str
    status: str
    seconds: float = 0.0
    counts: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    key: str | None = None
    reason: str | None = None


@dataclass
class RunResult:
    """What :func:`run_pipeline` did: one record per stage, in order, and ``run.json``'s path."""

    run_dir: Path
    stages: list[StageRecord]
    summary_path: Path
    seconds: float

    @property
    def ok(self) -> bool:
        return not any(s.status == "failed" for s in self.stages)

    def stage(self, name: str) -> StageRecord:
        return next(s for s in self.stages if s.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "ok": self.ok, "seconds": round(self.seconds, 2),
                "stages": [dataclasses.asdict(s) for s in self.stages]}


def stage_key(name: str, config: Any, inputs: list[Path]) -> str:
    """sha256 of the stage name, its resolved config, its input hashes and the domainfm version."""
    from domainfm import __version__
    from domainfm.manifest import describe_input

    payload = {
        "stage": name,
        "config": to_dict(config),
        "inputs": [describe_input(p).get("sha256", "missing") for p in inputs],
        "domainfm": __version__,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def _read_stage(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: Path, obj: Any) -> None:
    write_json_atomic(path, obj, default=str)


def _check_stage_name(option: str, name: str | None) -> None:
    if name is not None and name not in STAGE_ORDER:
        raise ConfigError(f"unknown stage {name!r} for {option}{suggest(name, STAGE_ORDER)}; "
                          f"stages: {', '.join(STAGE_ORDER)}")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_pipeline(
    config: PipelineConfig | str | Path | Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
    *,
    from_stage: str | None = None,
    until_stage: str | None = None,
    console=None,
) -> RunResult:
    """Run a pipeline's stages in order, skipping those whose cache key is unchanged.

    Args:
        config: a pipeline YAML path, a mapping, or a :class:`PipelineConfig`.
        overrides: dotted overrides (``{"chunk.max_tokens": 128}``); not with a PipelineConfig.
        from_stage: re-run this stage and every later one even when cached.
        until_stage: stop after this stage (later stages are ``skipped``).
        console: a rich console for progress and the summary table (default: silent).

    Returns:
        :class:`RunResult`; ``run_dir/run.json`` holds the same summary.

    Raises:
        PipelineError: a stage failed; it is recorded ``failed`` (with the reason) and the next
            run resumes from it.
    """
    _check_stage_name("--from", from_stage)
    _check_stage_name("--until", until_stage)
    if isinstance(config, PipelineConfig):
        if overrides:
            raise ConfigError("overrides apply to a pipeline file or mapping, not to a PipelineConfig")
        pcfg = config
    elif isinstance(config, Mapping):
        pcfg = pipeline_from_dict(apply_overrides(dict(config), overrides or {}))
    else:
        pcfg = load_pipeline(config, overrides)
    if from_stage and until_stage and STAGE_ORDER.index(from_stage) > STAGE_ORDER.index(until_stage):
        raise ConfigError(f"--from {from_stage} comes after --until {until_stage}")

    pcfg.run_dir.mkdir(parents=True, exist_ok=True)
    # One run per run directory: a second concurrent run would overwrite the first's outputs. A
    # lock left by a killed run is free again (the kernel drops it with the process).
    with OutputLock(pcfg.run_dir, lock_file=pcfg.run_dir / LOCK_FILE, what="another 'domainfm run'"):
        return _run_locked(pcfg, from_stage, until_stage, console)


def _run_locked(pcfg: PipelineConfig, from_stage: str | None, until_stage: str | None, console) -> RunResult:
    started = time.perf_counter()
    records: list[StageRecord] = []
    failure: tuple[str, str] | None = None
    for name in STAGE_ORDER:
        if name not in pcfg.stages:
            records.append(StageRecord(name, "skipped", reason="no section in the pipeline"))
            continue
        if until_stage and STAGE_ORDER.index(name) > STAGE_ORDER.index(until_stage):
            records.append(StageRecord(name, "skipped", reason=f"after --until {until_stage}"))
            continue
        if failure is not None:
            records.append(StageRecord(name, "not run", reason=f"{failure[0]} failed"))
            continue
        forced = from_stage is not None and STAGE_ORDER.index(name) >= STAGE_ORDER.index(from_stage)
        record = _run_stage(pcfg, name, forced=forced, console=console)
        records.append(record)
        if record.status == "failed":
            failure = (name, record.reason or "failed")

    result = RunResult(pcfg.run_dir, records, pcfg.run_dir / RUN_FILE, time.perf_counter() - started)
    _write_json(result.summary_path, {**result.to_dict(), "finished": _now(), "config": pcfg.to_dict()})
    if console is not None:
        print_summary(console, result)
    if failure is not None:
        raise PipelineError(f"stage {failure[0]!r} failed: {failure[1]} (re-run the same command to resume "
                            f"from it; details in {pcfg.run_dir / failure[0] / STAGE_FILE})")
    return result


def _run_stage(pcfg: PipelineConfig, name: str, *, forced: bool, console) -> StageRecord:
    from domainfm import __version__
    from domainfm.manifest import describe_input

    out_dir = pcfg.out_dir(name)
    config, inputs = pcfg.stages[name], pcfg.inputs.get(name, [])
    key = stage_key(name, config, inputs)
    stage_file = out_dir / STAGE_FILE
    previous = _read_stage(stage_file)
    if (not forced and previous is not None and previous.get("status") == "done" and previous.get("key") == key
            and all(Path(p).exists() for p in previous.get("outputs", []))):
        if console is not None:
            console.print(f"[bold]{name}[/]: cached (inputs and config unchanged)")
        return StageRecord(name, "cached", previous.get("seconds", 0.0), previous.get("counts", {}),
                           previous.get("metrics", {}), previous.get("outputs", []), key)

    # An interrupted or failed run of the same stage, inputs and config continues from its checkpoints.
    resume = previous is not None and previous.get("key") == key and previous.get("status") != "done" and not forced
    if console is not None:
        console.rule(f"[bold]{name}" + (" (resuming)" if resume else ""))
    base = {"stage": name, "key": key, "domainfm_version": __version__, "config": to_dict(config),
            "inputs": [describe_input(p) for p in inputs]}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "error.log").unlink(missing_ok=True)
    _write_json(stage_file, {**base, "status": "running", "started": _now()})
    ctx = StageContext(name, config, list(inputs), out_dir, pcfg.output(name), pcfg.seed, resume, console, pcfg)
    t0 = time.perf_counter()
    try:
        produced = STAGES[name](ctx)
    except Exception as exc:  # recorded, then reported as one line; the traceback goes to error.log
        seconds = time.perf_counter() - t0
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if not isinstance(exc, DomainFMError):
            (out_dir / "error.log").write_text(traceback.format_exc(), encoding="utf-8")
            reason = f"{type(exc).__name__}: {reason} (traceback in {out_dir / 'error.log'})"
        _write_json(stage_file, {**base, "status": "failed", "error": reason, "seconds": round(seconds, 2),
                                 "finished": _now()})
        return StageRecord(name, "failed", seconds, key=key, reason=reason)
    seconds = time.perf_counter() - t0
    outputs = [str(p) for p in produced.outputs]
    _write_json(stage_file, {**base, "status": "done", "seconds": round(seconds, 2), "outputs": outputs,
                             "counts": produced.counts, "metrics": produced.metrics, "finished": _now()})
    return StageRecord(name, "ran", seconds, produced.counts, produced.metrics, outputs, key)


def _fmt(values: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in values.items() if v is not None)


def print_summary(console, result: RunResult) -> None:
    """The run's summary as a rich table: stage, status, seconds, counts, key metrics."""
    from rich.table import Table

    styles = {"ran": "green", "cached": "cyan", "failed": "bold red", "skipped": "dim", "not run": "dim"}
    table = Table(title=f"domainfm run: {result.run_dir}")
    for column in ("stage", "status", "seconds", "counts", "key metrics"):
        table.add_column(column, justify="right" if column == "seconds" else "left")
    for s in result.stages:
        detail = _fmt(s.metrics) if s.status != "failed" else (s.reason or "")
        table.add_row(s.name, f"[{styles.get(s.status, '')}]{s.status}[/]",
                      f"{s.seconds:.1f}" if s.status in ("ran", "cached", "failed") else "",
                      _fmt(s.counts), detail)
    console.print(table)
    console.print(f"total {result.seconds:.1f} s; summary: {result.summary_path}")
