"""Which engine computes de-identification and chunking: ``--engine`` on the command line, a
top-level ``engine:`` in a pipeline file. The engine changes where the work runs, never its
output, so it is not part of a pipeline stage's cache key (like ``launch:``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from domainfm.config import check_fields, suggest
from domainfm.errors import ConfigError

ENGINES = ("local", "spark", "ray")
DEFAULT_MASTER = "local[2]"


@dataclass
class EngineConfig:
    """Args:
    name: ``local`` (this process, with ``deid.workers`` detection processes), ``spark`` or ``ray``.
    master: Spark's master URL: ``local[N]``, ``local[N,F]`` (F-1 retries of a failed task),
        ``spark://host:7077``, ``yarn``... (Databricks: use the DataFrame API on the cluster's session).
    partitions: Spark partitions / Ray groups (default: from the cores).
    workers: Ray actors: exactly this many, 1 included (default, None: one per core of the Ray
        cluster).
    ray_address: a running Ray cluster (default: start a local Ray).

    Example:
        >>> EngineConfig("spark", master="local[4]").name
        'spark'
    """

    name: Literal["local", "spark", "ray"] = "local"
    master: str = DEFAULT_MASTER
    partitions: int | None = None
    workers: int | None = None
    ray_address: str | None = None

    def __post_init__(self) -> None:
        check_fields(self, "engine")
        if self.name not in ENGINES:
            raise ConfigError(f"engine.name must be one of {list(ENGINES)}, got {self.name!r}"
                              f"{suggest(str(self.name), ENGINES)}")
        if self.partitions is not None and (isinstance(self.partitions, bool) or not isinstance(self.partitions, int)
                                            or self.partitions < 1):
            raise ConfigError(f"engine.partitions must be an int >= 1 or null, got {self.partitions!r}")
        if self.workers is not None and (isinstance(self.workers, bool) or not isinstance(self.workers, int)
                                         or self.workers < 1):
            raise ConfigError(f"engine.workers must be an int >= 1, or null for one Ray actor per core, "
                              f"got {self.workers!r}")
        if not isinstance(self.master, str) or not self.master.strip():
            raise ConfigError("engine.master must be a Spark master URL such as 'local[2]'")
        # an option of the other engine would be ignored without a word: '--engine spark --workers 8'
        # ran on Spark's default two cores (and '--workers 1', once the default, passed unnoticed)
        if self.name == "spark" and self.workers is not None:
            raise ConfigError(f"engine.workers (--workers) sets Ray's actors; Spark's cores come from engine.master "
                              f"(--master 'local[{self.workers}]' on this machine), got workers={self.workers}")
        if self.name == "spark" and self.ray_address is not None:
            raise ConfigError("engine.ray_address (--ray-address) is Ray's; Spark connects with engine.master "
                              "(--master spark://HOST:7077)")
        if self.name == "ray" and self.master != DEFAULT_MASTER:
            raise ConfigError(f"engine.master (--master) is Spark's; Ray takes engine.workers (--workers) and "
                              f"engine.ray_address (--ray-address), got master={self.master!r}")

    @property
    def distributed(self) -> bool:
        return self.name != "local"
