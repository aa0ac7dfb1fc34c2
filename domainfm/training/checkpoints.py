"""Checkpoint folders and output folders shared by the training stages.

A checkpoint is ``transformers.Trainer``'s own folder (weights, optimizer, scheduler, RNG state,
``trainer_state.json``) plus ``domainfm_state.json``, written last, after every file has been
fsync'd: a folder without it (a process killed mid-write, a full disk) is not a checkpoint. The
state records the digests of the data the run trains on (:func:`input_digests`): a checkpoint
trained on other data is never continued, nor deleted (``--resume`` is refused, naming it). So is
one trained under another objective (:func:`objective_record`): continuing it would optimise a
mixture of the two losses.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable

from domainfm.errors import ConfigError, DomainFMError

CHECKPOINTS = "checkpoints"
STATE_FILE = "domainfm_state.json"
INPUTS_KEY = "inputs_sha256"  # the state's digests of the training data, in the order of the inputs
OBJECTIVE_KEY = "objective"  # the state's record of the loss it was trained under (objective_record)

# The definition of a training step's loss, bumped whenever it changes: a checkpoint records the
# one it was trained under, and --resume under another is refused.
LOSS_VERSION = 2
LOSS_DEFINITIONS = {
    1: "a step's loss the mean of its micro-batches' means",
    2: "a step's loss the mean over every item of its micro-batches and processes; distillation's the mean of "
       "micro-batch means",
}
ITEM_MEAN, MICRO_BATCH_MEAN = "item mean", "micro-batch mean"  # how a step's loss is reduced


class CheckpointError(DomainFMError):
    """A checkpoint could not be written (disk full...); the previous one is intact."""


def list_checkpoints(out: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``<out>/checkpoints``, oldest first."""
    folder = Path(out) / CHECKPOINTS
    found = []
    if folder.is_dir():
        for path in folder.iterdir():
            match = re.fullmatch(r"checkpoint-(\d+)", path.name)
            if match and (path / STATE_FILE).is_file():
                found.append((int(match.group(1)), path))
    return sorted(found)


def read_state(checkpoint: Path) -> dict[str, Any]:
    return json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))


def input_digests(inputs: list[str | os.PathLike]) -> dict[str, str]:
    """``{input: sha256}`` of the files or folders a run trains on, in their order
    (:func:`domainfm.manifest.describe_input`; ``missing`` for one that is not there), to record
    in its checkpoints (``INPUTS_KEY``) and compare with theirs (:func:`latest_resumable`).

    Only the main process hashes; the others receive its digests, so every process compares the
    same digests with the same checkpoint and all continue it, or all start over.
    """
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    from domainfm.manifest import describe_input

    digests = ({str(p): describe_input(p).get("sha256", "missing") for p in inputs}
               if PartialState().is_main_process else None)
    return broadcast_object_list([digests])[0]


def objective_record(reduction: str, **defines: Any) -> dict[str, Any]:
    """What a checkpoint records of the objective it was trained under: :data:`LOSS_VERSION`,
    how a step's loss is reduced (:data:`ITEM_MEAN`, or :data:`MICRO_BATCH_MEAN` for
    distillation) and what else defines the loss outside the config (the objective a model type
    resolved to, class weights computed from the data, the teacher), as JSON values."""
    return {"loss_version": LOSS_VERSION, "reduction": reduction, **defines}


def _objective_mismatch(out: Path, checkpoint: Path, saved: dict[str, Any], objective: dict[str, Any]) -> str | None:
    """Why ``checkpoint`` cannot be continued under ``objective``, or None when it can.

    A checkpoint without a record was written before records were kept: by the current
    definition (2), or, before the item-weighted loss, by definition 1. Nothing in it tells the
    two apart, so it is continued only where they give the same loss: one micro-batch a step on
    one process (Trainer writes ``rng_state.pth`` for one process, ``rng_state_<rank>.pth`` for
    several), or distillation, whose loss stayed the mean of micro-batch means.
    """
    recorded = saved.get(OBJECTIVE_KEY)
    if recorded == objective:
        return None
    how = "use --overwrite to train from the beginning, or resume it with the domainfm version that wrote it"
    now = f"{LOSS_VERSION} ({LOSS_DEFINITIONS[LOSS_VERSION]})"
    if not isinstance(recorded, dict):
        accum = ((saved.get("config") or {}).get("train") or {}).get("grad_accum", 1)
        if objective.get("reduction") == MICRO_BATCH_MEAN or (accum == 1 and (checkpoint / "rng_state.pth").is_file()):
            return None
        why = f"with grad_accum {accum}" if accum != 1 else "on several processes (it has no rng_state.pth)"
        return (f"cannot resume {out}: {checkpoint.name} records no loss definition, and {why} an older "
                f"domainfm may have trained it under definition 1 ({LOSS_DEFINITIONS[1]}), where this one trains "
                f"under {now}; {how}")
    then = recorded.get("loss_version")
    if then != LOSS_VERSION:
        return (f"cannot resume {out}: {checkpoint.name} was trained under loss definition {then} "
                f"({LOSS_DEFINITIONS.get(then, 'unknown to this domainfm')}) and this domainfm trains under {now}; "
                f"continuing would mix the two objectives: {how} (one that trains under definition {then})")
    differ = sorted(k for k in recorded.keys() | objective.keys() if recorded.get(k) != objective.get(k))
    return (f"cannot resume {out}: {checkpoint.name} was trained under another objective ({', '.join(differ)} "
            "differ); continuing would mix the two: restore what it was trained with (the data, the teacher), "
            "or use --overwrite to train from the beginning")


def latest_resumable(out: Path, config: dict[str, Any], may_change: Any, inputs: dict[str, str] | None = None,
                     objective: dict[str, Any] | None = None) -> tuple[int, Path, dict[str, Any]] | None:
    """The newest complete checkpoint under ``out`` as ``(step, folder, saved state)``, or None
    when there is none. A checkpoint written under another config cannot be continued; one
    written in a folder since copied or moved to ``out`` is compared with its paths inside the
    run folder read from there (:func:`relocated_config`), and its trainer state is pointed at
    ``out``'s own best checkpoint.

    Nor is one trained on other data: ``inputs`` (:func:`input_digests` of the run's data) must
    match the digests the checkpoint recorded. That is refused, not answered by starting over:
    starting over would delete checkpoints that a data path pointed at the wrong file by mistake
    could cost hours to rebuild. A checkpoint written before digests were recorded is continued
    as before, its data unchecked: refusing it would throw away every interrupted run of an older
    version, and its config (and, for a fine-tune, its labels) is still checked.

    Nor one trained under another ``objective`` (:func:`objective_record`): another loss
    definition, reduction, class weights or teacher. Refused the same way, nothing deleted.

    Raises:
        ConfigError: the saved config differs from ``config`` in a field outside ``may_change``,
            the data differs from the checkpoint's (the message names the checkpoint and the
            inputs that changed, never their content), or the objective does.
    """
    from domainfm.config import config_differences

    found = list_checkpoints(out)
    if not found:
        return None
    step, checkpoint = found[-1]
    saved = read_state(checkpoint)
    was = saved.get("output")  # where it was written; a checkpoint without it is compared as it is
    recorded = relocated_config(saved["config"], config, was, out) if isinstance(was, str) else saved["config"]
    diffs = config_differences(recorded, config, may_change=may_change)
    if diffs:
        raise ConfigError(f"cannot resume {out} with a different config ({'; '.join(diffs[:5])})")
    recorded_inputs = saved.get(INPUTS_KEY)
    if inputs is not None and isinstance(recorded_inputs, list) and recorded_inputs != list(inputs.values()):
        changed = [path for (path, now), then in zip(inputs.items(), recorded_inputs) if now != then]
        raise ConfigError(f"cannot resume {out}: {checkpoint.name} was trained on other data "
                          f"({', '.join(changed) or 'the inputs'} changed since), and continuing it would mix "
                          "the two; restore that data to continue, or use --overwrite to train from the beginning")
    mismatch = _objective_mismatch(out, checkpoint, saved, objective) if objective is not None else None
    if mismatch:
        raise ConfigError(mismatch)
    if isinstance(was, str):
        _relocate_best_checkpoint(checkpoint, was, out)
    return step, checkpoint, saved


def relocated_config(saved: Any, current: Any, was: str | os.PathLike, now: str | os.PathLike) -> Any:
    """``saved``, a config recorded by a run whose output folder was at ``was``, with each path
    that lies at the same place relative to the output as ``current``'s does relative to ``now``
    replaced by ``current``'s: a run folder copied or moved with its inputs is the same run
    (:func:`domainfm.manifest.relocate`). Paths outside the run folder must match as they are."""
    from domainfm.manifest import relocate

    if isinstance(saved, dict) and isinstance(current, dict):
        return {k: relocated_config(v, current[k], was, now) if k in current else v for k, v in saved.items()}
    if isinstance(saved, list) and isinstance(current, list) and len(saved) == len(current):
        return [relocated_config(a, b, was, now) for a, b in zip(saved, current)]
    if isinstance(saved, str) and isinstance(current, str) and saved != current:
        moved = relocate(saved, was, now)
        if moved is not None and os.path.abspath(moved) == os.path.abspath(current):
            return current
    return saved


def _relocate_best_checkpoint(checkpoint: Path, was: str, out: Path) -> None:
    """Point the best-model path that ``transformers`` keeps in the checkpoint's trainer state at
    ``out``'s own checkpoint: left pointing into the folder it was written in (``was``), a resumed
    run that saves no further checkpoint would load the original's best model at its end, or,
    once that is gone, none (and keep its last one instead)."""
    path = checkpoint / "trainer_state.json"
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        best = state["best_model_checkpoint"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    if not isinstance(best, str) or not Path(os.path.abspath(best)).is_relative_to(was):
        return
    moved = Path(out) / Path(os.path.abspath(best)).relative_to(was)
    if moved.is_dir() and os.path.abspath(moved) != os.path.abspath(best):
        from domainfm.manifest import write_json_atomic

        write_json_atomic(path, {**state, "best_model_checkpoint": str(moved)})


def finished_run(out: Path, config: dict[str, Any], may_change: Any, *, stage: str,
                 inputs: list[Any]) -> tuple[dict[str, Any], dict[str, Any], int] | None:
    """The ``(metrics, manifest, steps)`` of a run of ``stage`` that finished in ``out`` under this
    config and these inputs and left no checkpoint, or None when ``out`` holds a checkpoint to
    continue from or no finished run (no manifest of the stage, or a file it lists is gone or
    cut: a run killed while saving). :func:`handed_back` says so to the user.

    A run finished without checkpoints (pruned, or never kept) has nothing to continue from;
    resuming it must not start it over silently, nor hand back a model of another config.

    Raises:
        ConfigError: the finished run's config differs outside ``may_change`` (the keys named), or
            an input file changed since it ran.
    """
    from domainfm.config import config_differences
    from domainfm.manifest import describe_input, recorded_outputs

    if list_checkpoints(out):
        return None
    try:
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("stage") != stage or not isinstance(metrics, dict):
        return None
    outputs = recorded_outputs(manifest)  # metrics.json among the run's measurements
    was = _written_in(outputs)
    if was is None or not _outputs_present(out, was, outputs):
        return None
    diffs = config_differences(relocated_config(manifest.get("config") or {}, config, was, out), config,
                               may_change=may_change)
    if diffs:
        raise ConfigError(f"cannot resume {out}: it holds a finished run of another config ({'; '.join(diffs[:5])}); "
                          "pass --overwrite to train again with this config, or choose another output folder")
    for recorded, current in zip(manifest.get("inputs") or [], inputs):
        if isinstance(recorded, dict) and recorded.get("sha256") != describe_input(current).get("sha256"):
            raise ConfigError(f"cannot resume {out}: it holds a finished run, and its input {current} changed since; "
                              "pass --overwrite to train again on it")
    return metrics, manifest, (metrics.get("train") or {}).get("steps", 0)


def handed_back(out: Path, steps: int) -> str:
    """What a resume that found a :func:`finished_run` tells the user."""
    return (f"{out} holds a finished run of this config and data ({steps} steps): nothing to resume, nothing "
            "trained; pass --overwrite to train again")


def _written_in(outputs: Any) -> Path | None:
    """The output folder as the run named it when it wrote the manifest's ``outputs`` (``runs/m``,
    maybe since moved): the folder of ``metrics.json``, which every training run writes at its
    top level; None when the manifest lists none."""
    if not isinstance(outputs, list):
        return None
    tops = [Path(o["path"]).parent for o in outputs
            if isinstance(o, dict) and isinstance(o.get("path"), str) and Path(o["path"]).name == "metrics.json"]
    return min(tops, key=lambda folder: len(folder.parts)) if tops else None


def _outputs_present(out: Path, was: Path, outputs: list[Any]) -> bool:
    """Every file a manifest lists is in ``out`` at its recorded size, read relative to the
    folder ``was`` the run wrote them in (:func:`_written_in`)."""
    for entry in outputs:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            continue
        try:
            path = out / Path(entry["path"]).relative_to(was)
        except ValueError:
            return False
        if not path.is_file() or path.stat().st_size != entry.get("bytes"):
            return False
    return True


def _fsync(path: Path, directory: bool = False) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def commit_checkpoint(folder: Path, state: dict[str, Any]) -> None:
    """Make ``folder`` durable, then mark it complete: fsync every file and the folder, write
    ``domainfm_state.json`` through a temporary file, rename it into place, fsync again.

    The state records the output folder the checkpoint was written in (``output``, absolute), so
    a run folder copied or moved since can still be resumed (:func:`latest_resumable`).
    """
    state = {**state, "output": os.path.abspath(folder.parent.parent)}  # <out>/checkpoints/checkpoint-N
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb+") as fh:
                os.fsync(fh.fileno())
    tmp = folder / (STATE_FILE + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(state, indent=2) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, folder / STATE_FILE)
    _fsync(folder)
    _fsync(folder.parent)


def checkpoint_failed(out: Path, step: int, exc: OSError) -> CheckpointError:
    complete = list_checkpoints(out)
    last = complete[-1][1].name if complete else "none"
    return CheckpointError(
        f"could not write checkpoint-{step} ({exc.strerror or exc}); the last complete checkpoint "
        f"({last}) is intact: free disk space and rerun with --resume"
    )


def output_action(out: Path, resume: bool, overwrite: bool, *, stage: str, config_name: str,
                  earlier_run: Callable[[Path], bool]) -> str:
    """``create``, ``resume`` or ``overwrite``: what a run may do with its output folder.

    ``earlier_run(out)`` says whether ``out`` holds this stage's output (never delete or resume
    in anything else).
    """
    if resume and overwrite:
        raise ConfigError("--resume continues the run in the output folder and --overwrite deletes it: give one")
    if not out.exists():
        return "create"
    if not out.is_dir():
        raise ConfigError(f"output {out} exists and is not a folder")
    if not any(out.iterdir()):
        return "create"
    if resume or overwrite:
        if not earlier_run(out):
            raise ConfigError(
                f"{out} is not the output of 'domainfm {stage}' (no {config_name}, {CHECKPOINTS}/ or "
                f"{stage} manifest); refusing to {'resume in' if resume else 'delete'} it"
            )
        return "resume" if resume else "overwrite"
    raise ConfigError(
        f"output folder {out} already exists: pass --overwrite to replace it or --resume to continue its run"
    )


def prepare_output(out: Path, action: str, main: bool) -> None:
    """Only once every check passed: clear an overwritten folder, create the folder."""
    if main:
        if action == "overwrite":
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
