"""Files the package ships (package data), found the same way from a checkout and a wheel.

The demo's task files live in ``domainfm/tasks/`` (the checkout's ``tasks/demo-*.yaml`` and
``tasks/pretrain-demo.yaml`` are links to them) and the audit's templates in
``domainfm/audit/templates/``: a ``pip install`` carries both, so nothing reads the source tree.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from domainfm.errors import ConfigError


def packaged_task(name: str) -> Path:
    """The path of a shipped task file, e.g. ``packaged_task("demo-clinical.yaml")``."""
    path = Path(str(resources.files("domainfm") / "tasks" / name))
    if not path.is_file():
        available = sorted(p.name for p in Path(str(resources.files("domainfm") / "tasks")).glob("*.yaml"))
        raise ConfigError(f"no shipped task file {name!r}; shipped: {', '.join(available)}")
    return path


def read_packaged_task(name: str) -> dict[str, Any]:
    """A shipped task file as a mapping (comments dropped)."""
    from domainfm.config import read_yaml

    return read_yaml(packaged_task(name))


def template_dir(stage: str = "audit") -> Path:
    """The folder of a stage's jinja2 templates."""
    return Path(str(resources.files("domainfm") / stage / "templates"))
