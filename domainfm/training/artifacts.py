"""What a training run leaves in its model folder, saved so that two runs give the same bytes.

Two runs of one config on the same data, with the same seed, on the same kind of machine and
number of torch threads, write byte-identical model artifacts: weights, ``config.json``,
tokenizer files, the LoRA adapter (``adapter_config.json`` and its weights), ``domainfm_task.json``
and ``split.json``. What a run cannot repeat is kept apart and named:

- the measurement files (:data:`MEASUREMENT_FILES`): times, throughput and memory, next to the
  eval scores (which repeat) in ``metrics.json``, and tokens/s on every line of ``train_log.jsonl``;
- the manifest's ``run`` section (:data:`domainfm.manifest.RUN_SECTION`): when it was written, how
  long the run took, and the measurement files' hashes. :func:`domainfm.manifest.without_run`
  leaves what two such runs must agree on.

Paths are recorded as the run named them (the manifest's outputs, a checkpoint's output folder):
runs written to two different folders differ there too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

#: Files of a model folder that record a run's measurements (wall-clock times, tokens/s, peak
#: memory): their bytes differ between two otherwise identical runs, so the manifest lists them
#: in its run section rather than among the model's outputs.
MEASUREMENT_FILES = frozenset({"metrics.json", "train_log.jsonl"})


@contextlib.contextmanager
def sorted_adapter_config(model) -> Iterator[None]:
    """While the block runs, every set-valued field of a peft model's adapter configs is a sorted
    list (restored after).

    peft keeps ``target_modules`` as a set and writes it to ``adapter_config.json`` in set order,
    which follows Python's per-process string hashing (``PYTHONHASHSEED``): the same run saved
    ``["query", "value"]`` in one process and ``["value", "query"]`` in the next. Saved inside
    this block the list is sorted, the same in every process. A model without adapters is left
    as it is.
    """
    configs = getattr(model, "peft_config", None)
    changed: list[tuple[Any, str, Any]] = []
    if isinstance(configs, dict):
        for config in configs.values():
            if not dataclasses.is_dataclass(config):
                continue
            for field in dataclasses.fields(config):
                value = getattr(config, field.name, None)
                if isinstance(value, (set, frozenset)):
                    changed.append((config, field.name, value))
                    setattr(config, field.name, sorted(value, key=str))
    try:
        yield
    finally:
        for config, name, value in changed:
            setattr(config, name, value)


def save_adapter(model, folder: str | os.PathLike) -> None:
    """``model.save_pretrained(folder)`` of a peft model, its ``adapter_config.json`` the same
    bytes in every process (:func:`sorted_adapter_config`)."""
    with sorted_adapter_config(model):
        model.save_pretrained(folder)


def split_outputs(paths: Iterable[str | os.PathLike]) -> tuple[list[Path], list[Path]]:
    """A model folder's files as ``(artifacts, measurements)``: the measurement files
    (:data:`MEASUREMENT_FILES`, at any depth) apart from everything else, each in the given order."""
    artifacts: list[Path] = []
    measurements: list[Path] = []
    for path in map(Path, paths):
        (measurements if path.name in MEASUREMENT_FILES else artifacts).append(path)
    return artifacts, measurements


def compute_record() -> dict[str, Any]:
    """Where the numbers were computed, which decides their last bits: the device type, the
    number of torch threads (a float sum is added up in another order on 1 thread than on 2, so
    weights trained on a CPU with another thread count differ in their last bits) and whether
    torch's deterministic algorithms were on (on a GPU, some kernels add in a varying order
    unless they are)."""
    import torch

    return {"device": "cuda" if torch.cuda.is_available() else "cpu", "torch_threads": torch.get_num_threads(),
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled()}
