"""The stage contract and the one registry of stages.

Every stage is a function ``run(config, inputs, out, context=None) -> StageResult`` in its own
subpackage (``domainfm/<package>/stage.py``), a thin layer over that package's importable
functions, plus a config dataclass. :data:`REGISTRY` names them, in run order, and says where each
stage's primary output lives under ``run_dir/<stage>/``. ``domainfm run`` (:mod:`domainfm.pipeline`)
is a generic runner over this registry, and the CLI prints every stage's :class:`StageResult`
with one printer. Specs name their modules as strings so that importing the registry stays
light (torch, transformers and spaCy load only when a stage runs).

Example:
    >>> from domainfm.stages import REGISTRY
    >>> REGISTRY["chunk"].config_class().__name__
    'ChunkConfig'
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


@dataclass
class StageResult:
    """What a stage did: record counts (``read = written + rejected`` where the stage reads
    records), other counts, key metrics, and the files it wrote (the primary output first).

    Attributes:
        outputs: files and folders written, the primary output first.
        counts: ``read``, ``written``, ``rejected`` and ``repaired`` when the stage counts records,
            then the stage's own counts (``chunks``, ``steps``...). Recorded in ``stage.json``.
        metrics: key metrics for the run summary.
        manifest: the provenance manifest beside the output (None when the output is a folder
            holding its own ``manifest.json``).
        rejects: the reject file (None when nothing was rejected) and its first reasons (no text).
        notes: extra lines for the CLI (counts only, never document text).
        warnings: what the user should act on (counts and field names, never document text):
            printed as ``warning:`` lines by the CLI, and by ``domainfm run``, which also keeps
            them in the stage's ``stage.json``.
        detail: text the CLI appends to the count line (e.g. ``" documents; 40 chunks"``).
        reject_reasons: rejected records per reason (:attr:`~domainfm.corpus.io.Counts.reasons`:
            no text, no ids); ``domainfm run`` names them when a stage rejects every record.
    """

    outputs: list[Path]
    counts: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    manifest: Path | None = None
    rejects: Path | None = None
    first_rejects: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    detail: str = ""
    reject_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return Path(self.outputs[0])

    read = property(lambda self: self.counts.get("read"), doc="records read (None: the stage counts none)")
    written = property(lambda self: self.counts.get("written"), doc="records written")
    rejected = property(lambda self: self.counts.get("rejected"), doc="records rejected (to the reject file)")
    repaired = property(lambda self: self.counts.get("repaired"), doc="records repaired instead of rejected")

    def reconciles(self) -> bool:
        """``read = written + rejected`` (true for stages that do not count records)."""
        if self.read is None:
            return True
        return self.read == (self.written or 0) + (self.rejected or 0)


def record_counts(counts, **extra: Any) -> dict[str, Any]:
    """``read``/``written``/``rejected`` of a :class:`~domainfm.corpus.io.Counts`, then ``extra``."""
    return {"read": counts.read, "written": counts.written, "rejected": counts.rejected, **extra}


@dataclass
class StageContext:
    """Run settings a stage may use beside its config, inputs and output (all optional, so a
    stage runs alone with ``context=None``).

    Attributes:
        seed: the run's seed (surrogates, sampling, labeling); None for a random secret.
        resume: an interrupted run of the same stage, inputs and config continues from its
            checkpoints.
        console: a rich console for progress lines (None: silent).
        launch: run training stages under this launcher as a subprocess
            (e.g. ``accelerate launch --num_processes 8``).
        stages: the configs of the run's other stages (the audit reads the finetune section).
        outputs: the primary outputs of the run's stages (the audit's cards read earlier reports).
        on_progress: called with running counts by stages that stream records.
        engine: the :class:`~domainfm.distributed.config.EngineConfig` that computes ``deid`` and
            ``chunk`` on Spark or Ray (None or ``local``: this process); it changes where the
            work runs, never the output.
        on_stage: called with a short line as a distributed job moves on (reading, writing...).
    """

    seed: int | None = None
    resume: bool = False
    console: Any = None
    launch: list[str] | None = None
    stages: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Path] = field(default_factory=dict)
    on_progress: Callable | None = None
    engine: Any = None
    on_stage: Callable[[str], None] | None = None

    def distributed_engine(self):
        """The engine to hand a distributed job, or None to run in this process (it starts on
        first use, after the job has checked its input)."""
        if self.engine is None or not self.engine.distributed:
            return None
        from domainfm.distributed.jobs import make_engine

        return make_engine(self.engine)


StageRunner = Callable[..., StageResult]


@dataclass
class StageSpec:
    """One registered stage: its config class and run function (``"module:name"`` strings, or
    the objects themselves) and its primary output's name under ``run_dir/<stage>/``.

    ``cache_identity`` (optional), called as ``(config, seed)``, returns what else the stage's
    output depends on outside its config and inputs (the deid stage: where its surrogate key
    comes from), JSON-able and never a secret itself; the runner hashes it into the cache key.
    """

    name: str
    config: str | type
    run: str | StageRunner
    output: str
    cache_identity: str | Callable[[Any, int | None], dict[str, Any]] | None = None

    def config_class(self) -> type:
        return _resolve(self.config)

    def runner(self) -> StageRunner:
        return _resolve(self.run)

    def identity(self, config: Any, seed: int | None) -> dict[str, Any] | None:
        """The stage's ``cache_identity`` for this config and seed (None: it has none)."""
        return None if self.cache_identity is None else _resolve(self.cache_identity)(config, seed)


def _resolve(target):
    if not isinstance(target, str):
        return target
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


# The stages in the order they run. A pipeline section ``<name>:`` is read into the config class.
REGISTRY: dict[str, StageSpec] = {spec.name: spec for spec in (
    StageSpec("import", "domainfm.corpus.stage:ImportSection", "domainfm.corpus.stage:run", "corpus.jsonl"),
    StageSpec("deid", "domainfm.deid.config:DeidConfig", "domainfm.deid.stage:run", "corpus.jsonl",
              cache_identity="domainfm.deid.stage:surrogate_key_identity"),
    StageSpec("chunk", "domainfm.chunk.config:ChunkConfig", "domainfm.chunk.stage:run", "chunks.jsonl"),
    StageSpec("pretrain", "domainfm.pretrain.config:PretrainConfig", "domainfm.pretrain.stage:run", "model"),
    StageSpec("privacy", "domainfm.privacy_audit.stage:PrivacySection", "domainfm.privacy_audit.stage:run",
              "report.json"),
    StageSpec("finetune", "domainfm.finetune.config:TaskConfig", "domainfm.finetune.stage:run", "model"),
    StageSpec("deid_eval", "domainfm.deid.eval_stage:DeidEvalSection", "domainfm.deid.eval_stage:run",
              "report.json"),
    StageSpec("audit", "domainfm.audit.stage:AuditSection", "domainfm.audit.stage:run", "index.html"),
    StageSpec("label", "domainfm.label.stage:LabelSection", "domainfm.label.stage:run", "suggestions.jsonl"),
)}
