"""How a training stage runs inside ``domainfm run``: fresh, resumed, or as a launched subprocess."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from domainfm.config import to_dict
from domainfm.errors import DomainFMError


class LaunchError(DomainFMError):
    """A training stage run under ``launch:`` exited with an error."""


def output_mode(out: Path, resume: bool, list_checkpoints: Callable) -> dict[str, bool]:
    """``{"resume": True}`` when the stage resumes and ``out`` has checkpoints, else whether an
    earlier output is to be overwritten."""
    if resume and list_checkpoints(out):
        return {"resume": True}
    return {"overwrite": out.is_dir() and any(out.iterdir())}


def launched(config: Any, out: Path, launch: list[str], command: str, mode: dict[str, bool], extra: list[str],
             console=None) -> tuple[dict, dict]:
    """Run a training stage as ``<launch> -m domainfm <command> CONFIG -o OUT`` (e.g. under
    ``accelerate launch`` on several GPUs); returns its ``metrics.json`` and ``manifest.json``."""
    import shlex
    import subprocess

    import yaml

    config_file = out.parent / f"{command}.stage.yaml"  # the resolved stage config, inputs wired
    config_file.write_text(yaml.safe_dump(to_dict(config), sort_keys=False), encoding="utf-8")
    argv = [*launch, "-m", "domainfm", command, str(config_file), "-o", str(out), *extra]
    argv += ["--resume"] if mode.get("resume") else (["--overwrite"] if mode.get("overwrite") else [])
    (out.parent / "command.txt").write_text(shlex.join(argv) + "\n", encoding="utf-8")
    if console is not None:
        console.print(f"launching: {shlex.join(argv)}")
    code = subprocess.run(argv).returncode
    if code != 0:
        raise LaunchError(f"'{shlex.join(argv)}' exited with code {code} (its output is above)")
    read = lambda name: json.loads((out / name).read_text(encoding="utf-8"))  # noqa: E731
    return read("metrics.json"), read("manifest.json")
