"""``domainfm run PIPELINE.yaml``: the stages end to end, cached and resumable.

A pipeline file has ``run_dir``, ``seed`` and one optional section per stage of the registry
(:data:`domainfm.stages.REGISTRY`), each read into that stage's registered config class
(``deid`` -> :class:`~domainfm.deid.DeidConfig`, ``audit`` ->
:class:`~domainfm.audit.stage.AuditSection`, ...). A missing or null section skips the stage.
Inputs are wired automatically: each stage reads the previous stage's output under
``run_dir/<stage>/``, so pipeline files never name intermediate paths: a path a section does name
(:data:`INPUT_KEYS`) inside a stage folder, on ``run.json`` or ``.lock``, or around ``run_dir`` is
refused before anything is written. The runner knows no
stage's internals: it calls each registered ``run(config, inputs, out, context)`` and records
the :class:`~domainfm.stages.StageResult`. The audit reads the fine-tuned model and, by
default, the documents fine-tuning recorded as held out for evaluation.

Every stage writes ``run_dir/<stage>/stage.json``: a cache key (sha256 of the stage name, its
resolved config with the paths inside ``run_dir`` relative to it, the hashes of its input files,
the stage's identity (deid: the source and a fingerprint of its surrogate key) and the domainfm
version), the fingerprint of the code that ran it (:func:`~domainfm.manifest.code_fingerprint`:
domainfm's files and the libraries' versions), its status, time, counts, key metrics, inputs
(hashes; paths inside ``run_dir`` relative to it) and outputs (relative to the stage folder, with
their sha256), so a copied or moved run folder keeps its cache and names its own files. A stage whose
key and code are unchanged, whose last run finished and whose files are all still there as it wrote
them is skipped; a stage that failed or was killed runs again (pretrain and finetune continue from
their last checkpoint under the same key, also after a code change, since a checkpoint outlives the
code that wrote it; a finished stage is never reused by other code).
The run ends with a summary table and ``run_dir/run.json``.

Example:
    >>> result = run_pipeline("tasks/demo-legal.yaml", {"chunk.max_tokens": 128})  # doctest: +SKIP
    >>> [(s.name, s.status) for s in result.stages]  # doctest: +SKIP
    [('import', 'ran'), ('deid', 'ran'), ('chunk', 'ran'), ('pretrain', 'skipped'), ...]
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

from domainfm.config import apply_overrides, from_dict, read_yaml, suggest, to_dict
from domainfm.corpus.document import describe_type
from domainfm.corpus.io import OutputLock
from domainfm.errors import ConfigError, DomainFMError
from domainfm.manifest import hashing_once, write_json_atomic
from domainfm.stages import REGISTRY, StageContext, StageResult

# Stages in the order they run (the registry's order).
STAGE_ORDER = tuple(REGISTRY)
# The primary output of each stage, relative to run_dir/<stage>/; the next stage reads it.
OUTPUTS = {name: spec.output for name, spec in REGISTRY.items()}
STAGE_FILE = "stage.json"
RUN_FILE = "run.json"
LOCK_FILE = ".lock"


class PipelineError(DomainFMError):
    """A stage of ``domainfm run`` failed; the run directory records where to resume."""


# ---------------------------------------------------------------------------------------------
# Config


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


def _build_section(name: str, data: Any, prefix: str) -> Any:
    """A stage's section -> its registered config class (errors name ``<stage>.<field>``)."""
    cls = REGISTRY[name].config_class()
    check = getattr(cls, "check_section", None)  # a class may check more before its fields are read
    try:
        # keys a section refuses with directions (retired, or inherited and never read), before
        # the unknown-key check would only say they are unknown
        refused = [k for k in getattr(cls, "REFUSED_KEYS", {}) if isinstance(data, Mapping) and k in data]
        if refused:
            also = f" (and {', '.join(prefix + k for k in refused[1:])})" if refused[1:] else ""
            raise ConfigError(f"config field '{prefix}{refused[0]}'{also} {cls.REFUSED_KEYS[refused[0]]}")
        if check is not None:
            check(data, prefix)
        return from_dict(cls, data, prefix=prefix)
    except ConfigError as exc:
        fmt = data.get("format", "jsonl") if name == "import" and isinstance(data, Mapping) else None
        message = pipeline_message(str(exc), name, fmt, config_error=True)
        if message == str(exc):
            raise
        raise ConfigError(message) from None


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
    run_dir = data.get("run_dir") or "runs/pipeline"
    if not isinstance(run_dir, (str, Path)):
        raise ConfigError(f"config field 'run_dir' must be a folder path (a string), got {describe_type(run_dir)}; "
                          "e.g. run_dir: runs/pipeline")
    run_dir = Path(run_dir)
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
    _refuse_written_inputs(raw, run_dir)  # as the pipeline file names them, before any is wired
    for section in ("deid", "deid_eval"):
        if "seed" in raw.get(section, {}):
            # DeidConfig.seed feeds nothing: a second seed beside the run's would only look like it did
            raise ConfigError(f"config field '{section}.seed' is not used by a pipeline: the run's top-level 'seed' "
                              f"seeds the surrogates (null, with $DOMAINFM_VAULT_KEY set, for real runs); "
                              f"remove '{section}.seed'")
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
        # they are the finetune section's data files. The model card and the cards also quote the
        # privacy audit and the de-identification scores: a re-run of either changes the audit's output.
        inputs["audit"] = [out("finetune")] + [out(stage) for stage in ("privacy", "deid_eval") if stage in raw]
    if "label" in raw:
        inputs["label"] = [documents]
        for key in ("labeled", "pool"):
            if raw["label"].get(key):
                inputs["label"].append(Path(str(raw["label"][key])))
    stages = {name: _build_section(name, raw[name], f"{name}.") for name in STAGE_ORDER if name in raw}
    if engine is not None and engine.distributed and "deid" in stages and stages["deid"].workers != 1:
        # the engine computes deid on its own cores: the local detection processes would be ignored
        raise ConfigError(f"deid.workers ({stages['deid'].workers}) sets this process's detection processes; with "
                          f"engine {engine.name} the work runs on the engine's cores (engine.master for spark, "
                          "engine.workers for ray): leave deid.workers out")
    if "privacy" in stages:
        extra = [getattr(stages["privacy"], k) for k in ("holdout", "vault", "planted")]
        inputs["privacy"] += [Path(str(p)) for p in extra if p is not None]
    if stages["import"].meta_join is not None:
        inputs["import"].append(stages["import"].meta_join.src)  # an edited table re-runs the import
    from domainfm.corpus.importing import extra_inputs

    # an edited gold file beside the source (PhysioNet's id-phi.phrase) re-runs the import too
    inputs["import"] += extra_inputs(stages["import"].format, stages["import"].src, stages["import"].options)
    if "deid_eval" in stages and stages["finetune"].task != "ner":
        raise ConfigError(f"the 'deid_eval' section needs a NER model: set finetune.task to 'ner' "
                          f"(it is {stages['finetune'].task!r})")
    if "audit" in stages:
        data = stages["finetune"].data
        inputs["audit"] += [Path(str(data.train))] + ([Path(str(data.eval))] if data.eval else [])
        # an edited cards.yaml or schema re-runs the audit stage (it writes the cards)
        inputs["audit"] += [Path(p) for p in (stages["audit"].cards_config, stages["audit"].chai_schema) if p]
    for name, stage in stages.items():  # a tokenizer, model or data folder a section names is an input too
        # what the stage writes itself is no input, under whichever key the section names it again
        # (a prepared file that is also finetune.data.eval)
        known = {p.resolve() for p in inputs.get(name, []) + _written_files(name, stage)}
        for path in _named_paths(to_dict(stage)):
            if path.resolve() not in known:
                known.add(path.resolve())
                inputs.setdefault(name, []).append(path)
    return PipelineConfig(run_dir=run_dir, seed=seed, stages=stages, inputs=inputs, launch=launch, engine=engine)


def _is_within(path: Path, folder: Path) -> bool:
    """``path`` is ``folder`` or inside it (after resolving links and ``..``)."""
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


# Config keys naming a file or folder a stage reads, dotted within its section (``[]``: each item
# of a list), as a pipeline file may set them. None may be something the run writes
# (:func:`_refuse_written_inputs`). Keys naming a model or tokenizer also take a shipped name
# (``minilm``) or a Hub id, which never resolve into a run folder. The inputs the pipeline wires
# (``pretrain.data.paths``, ``finetune.data.train``, ``deid_eval.ner_model``) are refused when set.
INPUT_KEYS: dict[str, tuple[str, ...]] = {
    "import": ("src", "meta_join.src", "options.phi"),
    "deid": ("spacy_model", "ner_model"),
    "chunk": ("tokenizer",),
    "pretrain": ("model.name", "model.tokenizer"),
    "privacy": ("holdout", "vault", "planted", "base_model"),
    "finetune": ("model.name", "model.tokenizer", "data.eval", "data.prepare[].src", "data.prepare[].out",
                 "distill.teacher"),
    "deid_eval": ("spacy_model",),
    "audit": ("cards_config", "chai_schema"),
    "label": ("labeled", "pool", "model"),
}
# keys naming a re-identification vault: kept out of the whole run folder, not only its stage folders
VAULT_KEYS = ("deid.vault", "privacy.vault")


def _named_values(section: Any, dotted: str, prefix: str):
    """``(pipeline key, value)`` for each value at ``dotted`` in a raw section (none where a part is
    missing or not a mapping; ``a[].b`` yields ``a[0].b``, ``a[1].b``, ...)."""
    head, _, rest = dotted.partition(".")
    if not isinstance(section, Mapping) or head.removesuffix("[]") not in section:
        return
    value = section[head.removesuffix("[]")]
    if head.endswith("[]"):
        items = enumerate(value) if isinstance(value, (list, tuple)) else ()
        for i, item in items:
            key = f"{prefix}{head[:-2]}[{i}]"
            yield from _named_values(item, rest, f"{key}.") if rest else [(key, item)]
    elif rest:
        yield from _named_values(value, rest, f"{prefix}{head}.")
    else:
        yield f"{prefix}{head}", value


def _refuse_written_inputs(raw: Mapping[str, Any], run_dir: Path) -> None:
    """Every path the sections name (:data:`INPUT_KEYS`, :data:`VAULT_KEYS`) checked against what
    the run writes, before anything is written; the error names the pipeline key."""
    keys = [(stage, key) for stage, names in INPUT_KEYS.items() for key in names]
    keys += [(stage, key) for stage, _, key in (v.partition(".") for v in VAULT_KEYS) if (stage, key) not in keys]
    for stage, key in keys:
        for name, value in _named_values(raw.get(stage), key, f"{stage}."):
            if not isinstance(value, (str, Path)) or not str(value).strip():
                continue  # another type: from_dict names it
            if "\x00" in str(value):
                raise ConfigError(f"config field '{name}' must be a path, got a string holding a NUL character")
            if f"{stage}.{key}" in VAULT_KEYS and _is_within(Path(value), run_dir):
                # the run writes and replaces files there (a stage's output named like the vault would
                # be written over it), and a run folder is what gets copied and shared as
                # de-identified output
                raise ConfigError(f"config field '{name}' ({value}) is inside the pipeline's run_dir ({run_dir}): "
                                  f"keep the vault, the way back to the original text, outside the run folder")
            _refuse_written_input(name, value, run_dir)


def _refuse_written_input(key: str, value: Any, run_dir: Path) -> None:
    """A file the pipeline reads may not be one the run writes: it would be overwritten (and the
    stage that reads it never cached), nor a folder holding run_dir (the run would write into it).
    Checked before anything is written."""
    path = Path(str(value))
    if path.resolve() in {(run_dir / name).resolve() for name in (RUN_FILE, LOCK_FILE)}:
        raise ConfigError(f"config field '{key}' ({value}) is {path.name}, which the run writes in its run_dir "
                          f"({run_dir}): copy it elsewhere or choose another run_dir")
    if any(_is_within(path, run_dir / stage) for stage in STAGE_ORDER):
        raise ConfigError(f"config field '{key}' ({value}) is inside a stage folder of the pipeline's run_dir "
                          f"({run_dir}), which the run writes: copy it elsewhere or choose another run_dir")
    if _is_within(run_dir, path):
        what = "is the pipeline's run_dir" if path.resolve() == run_dir.resolve() else \
            f"is a folder that holds the pipeline's run_dir ({run_dir})"
        raise ConfigError(f"config field '{key}' ({value}) {what}, and the run would write into its input: "
                          f"choose a run_dir outside it")


# ---------------------------------------------------------------------------------------------
# Errors in the pipeline's words
#
# A stage shares its checks with its command, whose errors name command-line flags (``try
# --overlap 8``, ``choose another -o path``). In a pipeline the same error names the section's key
# (``chunk.overlap``): a flag ``--x-y`` is the setting ``x_y`` of the failing stage's section
# (nested ones too, where the name is unique), the run's own flags are its ``engine`` keys, and
# what ``-o`` and ``--resume`` do there the run does through ``run_dir`` and its own resuming.

RUN_FLAGS = {"--engine": "engine:", "--master": "engine.master", "--ray-address": "engine.ray_address",
             "--partitions": "engine.partitions"}
_RUN_PHRASES = (
    (re.compile(r"choose another -o path"), "choose another run_dir"),
    (re.compile(r"-o takes a file path here(?: \(e\.g\. [^)]*\))?"),
     "the run writes a file there: move it away or choose another run_dir"),
    (re.compile(r"-o takes a folder here"), "the run writes a folder there: move it away or choose another run_dir"),
    (re.compile(r"rerun with --resume"), "re-run the same command (the stage resumes from it)"),
)
_FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)(?: (-?\d+(?:\.\d+)?)(?!\w|\.\d))?")
_QUOTED_NAME = re.compile(r"'([a-z_][a-z0-9_]*)'")
# a command to run (``'domainfm deid --vault PATH'``) keeps its flags
_COMMAND = re.compile(r"('domainfm [^']*'|`domainfm [^`]*`)")
_SAME_KEY_TWICE = re.compile(r"\b([a-z_][\w.]*) / \1\b")


def section_keys(name: str, format: str | None = None) -> dict[str, str]:
    """Setting name -> its pipeline key for stage ``name``'s section (``overlap`` ->
    ``chunk.overlap``, ``batch_size`` -> ``finetune.train.batch_size``), nested sections included;
    a name found twice (``model.name``, ``data.name``) maps to neither. ``format``: the import's
    importer, whose options are ``import.options.<name>``."""
    from typing import get_args, get_type_hints

    found: dict[str, list[str]] = {}

    def walk(cls: type, prefix: str) -> None:
        try:
            hints = get_type_hints(cls)
        except Exception:  # an annotation that does not resolve: its fields are still named
            hints = {}
        for f in dataclasses.fields(cls):
            if not f.init or f.name.startswith("_"):
                continue
            found.setdefault(f.name, []).append(prefix + f.name)
            hint = hints.get(f.name)
            for option in (hint, *get_args(hint)):
                if isinstance(option, type) and dataclasses.is_dataclass(option):
                    walk(option, f"{prefix}{f.name}.")

    walk(REGISTRY[name].config_class(), f"{name}.")
    if format is not None:
        from domainfm.corpus.importers import IMPORTERS

        if isinstance(format, str) and format in IMPORTERS:
            walk(IMPORTERS[format].options_cls, f"{name}.options.")
    return {leaf: keys[0] for leaf, keys in found.items() if len(keys) == 1}


def pipeline_message(message: str, name: str, format: str | None = None, *, config_error: bool = False) -> str:
    """``message``, an error of stage ``name``, with the pipeline's keys for the command's flags.

    A config error that names none of the section's keys also gets them for the settings it
    quotes (``'max_tokens'`` -> ``'chunk.max_tokens'``). Commands quoted in the message keep their
    flags.

    Example:
        >>> pipeline_message("'overlap' (70) must be smaller than 'max_tokens' (64); try --overlap 8",
        ...                  "chunk", config_error=True)
        "'chunk.overlap' (70) must be smaller than 'chunk.max_tokens' (64); try chunk.overlap: 8"
    """
    keys = section_keys(name, format)
    flags = {"--" + leaf.replace("_", "-"): key for leaf, key in keys.items()}
    flags.update(RUN_FLAGS)
    quoted = config_error and not re.search(rf"(?<![\w/.-]){re.escape(name)}\.\w", message)

    def flag(match: re.Match) -> str:
        key = flags.get(match.group(1))
        if key is None:
            return match.group(0)
        value = match.group(2)
        if value is None:
            return key
        return f"{key} {value}" if key.endswith(":") else f"{key}: {value}"

    def words(text: str) -> str:
        for pattern, replacement in _RUN_PHRASES:
            text = pattern.sub(replacement, text)
        text = _FLAG.sub(flag, text)
        if quoted:
            text = _QUOTED_NAME.sub(lambda m: f"'{keys[m.group(1)]}'" if m.group(1) in keys else m.group(0), text)
        return _SAME_KEY_TWICE.sub(r"\1", text)

    parts = _COMMAND.split(message)
    return "".join(part if i % 2 else words(part) for i, part in enumerate(parts))


# config keys (dotted, as in :data:`INPUT_KEYS`) naming files a stage writes outside its folder:
# never hashed as its inputs (the key would change once the stage has written them: fine-tuning
# ran twice for a file its data.prepare wrote), but a finished stage whose file is gone runs again
# (a deleted vault is recreated, a deleted prepared file prepared again)
WRITTEN_PATHS = {"deid": ("vault",), "finetune": ("data.prepare[].out",)}


def _named_paths(config: Any) -> list[Path]:
    """Existing files and folders a stage's resolved config names (a tokenizer folder, a model, an
    evaluation file): hashed with its inputs, so an edited one re-runs the stage."""
    if isinstance(config, Mapping):
        return [p for v in config.values() for p in _named_paths(v)]
    if isinstance(config, (list, tuple)):
        return [p for v in config for p in _named_paths(v)]
    if isinstance(config, str) and config.strip() not in ("", ".", "..") and "\n" not in config:
        try:
            path = Path(config)
            return [path] if path.exists() else []
        except (OSError, ValueError):  # not a path at all (too long, a NUL)
            return []
    return []


def load_pipeline(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> PipelineConfig:
    """Read a pipeline YAML file (optional), apply dotted overrides, validate and wire it."""
    data = read_yaml(path) if path is not None else {}
    if overrides:
        data = apply_overrides(data, overrides)
    return pipeline_from_dict(data)


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


def stage_key(name: str, config: Any, inputs: list[Path], seed: int | None = None, *, run_dir: Path,
              identity: Mapping[str, Any] | None = None, described: list[dict[str, Any]] | None = None) -> str:
    """sha256 of the stage name, its resolved config (the paths inside ``run_dir`` relative to it,
    so a copied or moved run folder keeps its keys), its input hashes, the run's seed (stages read
    it through their context: de-identification's surrogates, import and label sampling), the
    stage's ``identity`` (:meth:`~domainfm.stages.StageSpec.identity`: the source and fingerprint of
    the surrogate key) and the domainfm version. ``described``: the inputs'
    :func:`~domainfm.manifest.describe_input`, when the caller has them."""
    from domainfm import __version__
    from domainfm.manifest import describe_input

    if described is None:
        described = [describe_input(p) for p in inputs]
    payload = {
        "stage": name,
        "config": _portable(to_dict(config), run_dir),
        "seed": seed,
        "inputs": [d.get("sha256", "missing") for d in described],
        "domainfm": __version__,
    }
    if identity is not None:  # absent for stages without one: their keys stay as they were
        payload["identity"] = dict(identity)
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def _inside_run(value: str, run_dir: Path) -> str | None:
    """``value``, a path inside ``run_dir``, relative to it (``deid/corpus.jsonl``); None for a
    path outside it, or a string that is no path."""
    try:
        resolved, folder = Path(value).resolve(), run_dir.resolve()
    except (OSError, ValueError):  # not a path at all (a NUL, too long)
        return None
    if resolved == folder:
        return "."
    return resolved.relative_to(folder).as_posix() if folder in resolved.parents else None


def _portable(config: Any, run_dir: Path) -> Any:
    """A resolved config with the paths the pipeline wired into ``run_dir`` (``pretrain.data.paths``,
    ``finetune.model.name``...) written relative to it: the cache key of a stage in a copied run
    folder is the key it had where it ran. Only strings with a path separator are read as paths: a
    wired one always has one (``<stage>/<file>``)."""
    if isinstance(config, Mapping):
        return {k: _portable(v, run_dir) for k, v in config.items()}
    if isinstance(config, list):
        return [_portable(v, run_dir) for v in config]
    if isinstance(config, str) and ("/" in config or "\\" in config):
        inside = _inside_run(config, run_dir)
        return config if inside is None else f"$run_dir/{inside}"
    return config


def _recorded_input(path: Path, described: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """How ``stage.json`` records an input described by :func:`~domainfm.manifest.describe_input`
    (its hash, size, kind): its path relative to the run folder when inside it (the previous
    stage's output), so a copied run folder names its own files, never the original's; absolute
    otherwise (the corpus, a tokenizer folder)."""
    return {**described, "path": _inside_run(str(path), run_dir) or str(Path(path).absolute())}


def _recorded_path(path: str | Path, out_dir: Path) -> str:
    """How ``stage.json`` records an output: relative to the stage folder when inside it, so a
    copied or moved run folder checks and lists its own files; absolute otherwise."""
    resolved = Path(path).resolve()
    try:
        return resolved.relative_to(out_dir.resolve()).as_posix()
    except ValueError:
        return str(resolved)


def _recorded_outputs(recorded: list[str], out_dir: Path) -> list[Path]:
    """Outputs as ``stage.json`` records them, where this run_dir has them (an absolute path stays)."""
    return [out_dir / p for p in recorded if isinstance(p, str)] if isinstance(recorded, list) else []


def _written_files(name: str, config: Any, *, read_back: bool = False) -> list[Path]:
    """The files the stage's config names as written by it (:data:`WRITTEN_PATHS`). ``read_back``:
    only those it then reads as its data (a prepared file), whose content a cached run must still
    have; a vault is a store that other runs may add to, so only its presence is checked."""
    resolved = to_dict(config)
    return [Path(str(value)) for key in WRITTEN_PATHS.get(name, ())
            if not (read_back and f"{name}.{key}" in VAULT_KEYS)
            for _, value in _named_values(resolved, key, "") if value]


def _changed_files(previous: Mapping[str, Any], out_dir: Path, read_back: list[Path]) -> list[Path]:
    """The files a finished run recorded (its outputs where this run_dir has them, and ``read_back``:
    data files it wrote elsewhere) whose content is not the sha256 it recorded, or that it recorded
    no sha256 for (a ``stage.json`` written before outputs were hashed)."""
    from domainfm.manifest import describe_input

    hashes = previous.get("sha256") if isinstance(previous.get("sha256"), dict) else {}
    outputs = previous.get("outputs") if isinstance(previous.get("outputs"), list) else []
    recorded = [p for p in outputs if isinstance(p, str)] + [_recorded_path(p, out_dir) for p in read_back]
    return [out_dir / p for p in recorded
            if not hashes.get(p) or describe_input(out_dir / p).get("sha256") != hashes[p]]


def _remove_earlier_outputs(earlier: list[str], out_dir: Path, outputs: list[Path]) -> None:
    """Remove the files the stage's last finished run recorded that this run did not write again
    (the export an earlier config asked for), so its folder holds one configuration's outputs. Only
    plain files inside the stage folder: a vault or anything kept elsewhere is never touched."""
    kept = {Path(p).resolve() for p in outputs}
    folder = out_dir.resolve()
    for path in _recorded_outputs(earlier, out_dir):
        resolved = path.resolve()
        if folder in resolved.parents and resolved not in kept and path.is_file() and not path.is_symlink():
            path.unlink()


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
    check_stop: Callable[[], None] | None = None,
) -> RunResult:
    """Run a pipeline's stages in order, skipping those whose cache key is unchanged.

    Args:
        config: a pipeline YAML path, a mapping, or a :class:`PipelineConfig`.
        overrides: dotted overrides (``{"chunk.max_tokens": 128}``); not with a PipelineConfig.
        from_stage: re-run this stage and every later one even when cached.
        until_stage: stop after this stage (later stages are ``skipped``).
        console: a rich console for progress and the summary table (default: silent).
        check_stop: called before each stage and at the progress updates of the stages that
            stream records; it raises to stop the run (the CLI's re-raise of a termination a
            finaliser swallowed).

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
    # lock left by a killed run is free again (the kernel drops it with the process). Each file is
    # hashed once in the run, by whichever of the stage, its manifest and the runner comes first.
    with OutputLock(pcfg.run_dir, lock_file=pcfg.run_dir / LOCK_FILE, what="another 'domainfm run'"), \
            hashing_once():
        return _run_locked(pcfg, from_stage, until_stage, console, check_stop or (lambda: None))


def _run_locked(pcfg: PipelineConfig, from_stage: str | None, until_stage: str | None, console,
                check_stop: Callable[[], None]) -> RunResult:
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
        check_stop()
        record = _run_stage(pcfg, name, forced=forced, console=console, check_stop=check_stop)
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


def _run_stage(pcfg: PipelineConfig, name: str, *, forced: bool, console,
               check_stop: Callable[[], None] = lambda: None) -> StageRecord:
    from rich.markup import escape

    from domainfm import __version__
    from domainfm.manifest import code_fingerprint, describe_input

    out_dir = pcfg.out_dir(name)
    config, inputs = pcfg.stages[name], pcfg.inputs.get(name, [])
    described = [describe_input(p) for p in inputs]  # one reading for the key and the record: they agree
    key = stage_key(name, config, inputs, pcfg.seed, run_dir=pcfg.run_dir,
                    identity=REGISTRY[name].identity(config, pcfg.seed), described=described)
    code = code_fingerprint()
    stage_file = out_dir / STAGE_FILE
    previous = _read_stage(stage_file) or {}
    recorded = _recorded_outputs(previous.get("outputs", []), out_dir)
    # a finished stage is reused only with every file it wrote still there: its outputs where this
    # run_dir has them (not where a copied folder's original had them), and a vault it keeps elsewhere
    missing = [p for p in recorded + _written_files(name, config) if not p.exists()]
    finished_same_key = not forced and previous.get("status") == "done" and previous.get("key") == key
    changed: list[Path] = []
    if finished_same_key and not missing and previous.get("code") == code:
        # ... and holding what it wrote: an edited or cut output would be passed on as this stage's
        changed = _changed_files(previous, out_dir, _written_files(name, config, read_back=True))
        if not changed:
            if console is not None:
                console.print(f"[bold]{name}[/]: cached (inputs, config and code unchanged)")
            return StageRecord(name, "cached", previous.get("seconds", 0.0), previous.get("counts", {}),
                               previous.get("metrics", {}), [str(p) for p in recorded], key)
    if finished_same_key and missing and console is not None:
        console.print(f"[bold]{name}[/]: {escape(str(missing[0]))}, written by its last run, is gone; running again")
    elif changed and console is not None:
        console.print(f"[bold]{name}[/]: {escape(str(changed[0]))} has changed since its last run wrote it "
                      f"(sha256 differs); running again")
    elif finished_same_key and console is not None:
        console.print(f"[bold]{name}[/]: domainfm's code or its libraries changed since the cached run; running again")

    # An interrupted or failed run of the same stage, inputs and config continues from its checkpoints.
    resume = bool(previous) and previous.get("key") == key and previous.get("status") != "done" and not forced
    # what the last finished run wrote, kept through a failed or killed run, removed once one finishes
    earlier = previous.get("outputs") or previous.get("earlier_outputs") or []
    primary = pcfg.output(name)
    if (previous.get("key") != key or changed) and _recorded_path(primary, out_dir) in earlier \
            and primary.is_dir() and not primary.is_symlink():
        # The output folder a finished run wrote under another key (or one changed since) holds
        # its checkpoints: a training stage that fails before it replaces the folder would leave
        # them for the next run to resume as this key's (a model of the old data recorded as the
        # new data's). Removed before this attempt is recorded, so a kill midway leaves the old key
        # to remove the rest. A file output holds nothing to resume, and anything else there is
        # not the stage's: the stage names it.
        shutil.rmtree(primary)
    if console is not None:
        console.rule(f"[bold]{name}" + (" (resuming)" if resume else ""))
    base = {"stage": name, "key": key, "code": code, "domainfm_version": __version__, "config": to_dict(config),
            "inputs": [_recorded_input(p, d, pcfg.run_dir) for p, d in zip(inputs, described)]}
    if earlier:
        base["earlier_outputs"] = earlier
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "error.log").unlink(missing_ok=True)
    _write_json(stage_file, {**base, "status": "running", "started": _now()})
    context = StageContext(seed=pcfg.seed, resume=resume, console=console, launch=pcfg.launch, engine=pcfg.engine,
                           stages=pcfg.stages, on_progress=lambda counts: check_stop(),
                           outputs={stage: pcfg.output(stage) for stage in pcfg.stages})
    t0 = time.perf_counter()
    fmt = getattr(config, "format", None) if name == "import" else None
    try:
        produced: StageResult = REGISTRY[name].runner()(config, list(inputs), pcfg.output(name), context)
    except Exception as exc:  # recorded, then reported as one line; the traceback goes to error.log
        seconds = time.perf_counter() - t0
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, DomainFMError):
            reason = pipeline_message(reason, name, fmt, config_error=isinstance(exc, ConfigError))
        else:
            (out_dir / "error.log").write_text(traceback.format_exc(), encoding="utf-8")
            reason = f"{type(exc).__name__}: {reason} (traceback in {out_dir / 'error.log'})"
        _write_json(stage_file, {**base, "status": "failed", "error": reason, "seconds": round(seconds, 2),
                                 "finished": _now()})
        return StageRecord(name, "failed", seconds, key=key, reason=reason)
    seconds = time.perf_counter() - t0
    empty = _wrote_nothing(produced)
    if empty is not None:  # the next stages would run on nothing, or fail far from the cause
        reason = pipeline_message(empty, name, fmt)
        _write_json(stage_file, {**base, "status": "failed", "error": reason, "seconds": round(seconds, 2),
                                 "counts": produced.counts, "finished": _now()})
        return StageRecord(name, "failed", seconds, produced.counts, key=key, reason=reason)
    _remove_earlier_outputs(base.pop("earlier_outputs", []), out_dir, produced.outputs)
    # a stage's warnings (counts and field names, never record text) would otherwise reach only
    # the command's console: deid's identifiers left outside the text, say
    warnings = produced.warnings
    if console is not None:
        for warning in warnings:
            console.print(f"[bold]{name}[/]: warning: {escape(warning)}")  # meta keys are data
    written = [_recorded_path(p, out_dir) for p in produced.outputs]
    # what a cached run must still hold: its outputs, and the data files it wrote elsewhere and read
    hashed = written + [_recorded_path(p, out_dir) for p in _written_files(name, config, read_back=True)]
    _write_json(stage_file, {**base, "status": "done", "seconds": round(seconds, 2), "outputs": written,
                             "sha256": {p: describe_input(out_dir / p).get("sha256") for p in hashed},
                             "counts": produced.counts, "metrics": produced.metrics,
                             **({"warnings": warnings} if warnings else {}), "finished": _now()})
    return StageRecord(name, "ran", seconds, produced.counts, produced.metrics, [str(p) for p in produced.outputs], key)


def _wrote_nothing(result: StageResult) -> str | None:
    """Why a stage that reads records and wrote none stops the run (None: it wrote some, or it
    counts none): its counts, reject reasons and reject file, never a record's text or id."""
    if result.read is None or result.written:
        return None
    counts = f"read {result.read} = written {result.written or 0} + rejected {result.rejected or 0}"
    if not result.read:
        return (f"wrote no records: its input holds none ({counts}; an empty file, a header only, or a pattern "
                f"that matches no file?), so the stages after it would have nothing to work on")
    top = sorted(result.reject_reasons.items(), key=lambda kv: -kv[1])[:3]
    reasons = "; reasons: " + ", ".join(f"{why}: {n}" for why, n in top) if top else ""
    where = f"; each rejected record and its reason are in {result.rejects}" if result.rejects else ""
    return f"wrote no records: every record it read was rejected ({counts}{reasons}){where}"


def _fmt(values: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in values.items() if v is not None)


def print_summary(console, result: RunResult) -> None:
    """The run's summary as a rich table: stage, status, seconds, counts, key metrics."""
    from rich.markup import escape
    from rich.table import Table

    styles = {"ran": "green", "cached": "cyan", "failed": "bold red", "skipped": "dim", "not run": "dim"}
    table = Table(title=f"domainfm run: {escape(str(result.run_dir))}")
    for column in ("stage", "status", "seconds", "counts", "key metrics"):
        table.add_column(column, justify="right" if column == "seconds" else "left")
    for s in result.stages:
        detail = _fmt(s.metrics) if s.status != "failed" else (s.reason or "")
        table.add_row(s.name, f"[{styles.get(s.status, '')}]{s.status}[/]",
                      f"{s.seconds:.1f}" if s.status in ("ran", "cached", "failed") else "",
                      _fmt(s.counts), escape(detail))  # a failure's reason may quote labels: "[/red]" is data
    console.print(table)
    console.print(f"total {result.seconds:.1f} s; summary: {result.summary_path}", markup=False)
