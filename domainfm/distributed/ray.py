"""De-identify and chunk on Ray Data, with the output one ``domainfm deid`` process writes.

``pip install 'domainfm[ray]'``. The partition functions of :mod:`domainfm.distributed.core`
run in a pool of actors (``map_batches`` with a callable class): each actor builds its detector
(and learned PHI model, on a GPU when ``num_gpus`` is given) once and keeps it for every group it
is handed. De-identification groups the rows by a stable bucket of the patient scope (one block
per group, ``map_batches(batch_size=None)``), and each group is processed in input order, so every patient is seen whole and in order, as one process
sees them. ``domainfm deid|chunk --engine ray`` starts a local Ray (``ray.init``) unless one is
running or ``--ray-address`` names a cluster.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator

from domainfm.distributed.core import (ROW_FIELDS, VAULT, DeidJob, bucket_of, chunk_partition, cpu_count,
                                       deidentify_partition)
from domainfm.errors import ConfigError


def _ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--engine ray needs Ray: pip install 'domainfm[ray]'") from None
    return ray


class _PartitionActor:
    """One actor: the job's settings, and (lazily, once per process) its detector or chunker."""

    def __init__(self, kind: str, payload: Any):
        self.kind, self.payload = kind, payload

    def __call__(self, group):
        import pandas as pd

        if group["group"].nunique() > 1:  # a block is one group by construction; never mix patients' orders
            raise RuntimeError("a Ray batch held more than one group")
        rows = group.sort_values("order", kind="stable").to_dict("records")
        if self.kind == "deid":
            out = deidentify_partition(rows, self.payload)
        else:
            out = chunk_partition(rows, self.payload)
        return pd.DataFrame(list(out), columns=list(ROW_FIELDS))


class RayOutputs:
    """The result rows, collected on the driver and sorted into input order."""

    def __init__(self, frame):
        self.frame = frame.sort_values(["order", "seq"], kind="stable")

    def ordered(self, kind: str) -> Iterator[dict[str, Any]]:
        yield from self.frame[self.frame["kind"] == kind].to_dict("records")

    def vault_rows(self) -> Iterator[tuple[str, tuple[bytes, ...]]]:
        rows = self.frame[self.frame["kind"] == VAULT]
        for row in rows[["vault_table", "c1", "c2", "c3", "c4", "c5"]].itertuples(index=False):
            yield row[0], tuple(bytes(v) for v in row[1:] if isinstance(v, (bytes, bytearray, memoryview)))


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast on a cluster address nobody listens at: ``ray.init`` would retry for minutes
    (and may rewrite the host) before it gives up with a traceback."""
    import socket

    if address == "auto":
        return  # RAY_ADDRESS or a local head: Ray finds it itself
    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"the Ray address must be HOST:PORT, ray://HOST:PORT or auto. Got {address!r}.")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc.__class__.__name__}); "
                          "check --ray-address / engine.ray_address, and that 'ray start --head' runs there") from None


class RayEngine:
    """Runs the partition functions in a Ray actor pool of ``actors`` actors: exactly that many,
    1 included, or one per core of the Ray cluster with None."""

    name = "ray"

    def __init__(self, actors: int | None = None, *, num_gpus: float = 0, buckets: int | None = None,
                 address: str | None = None):
        if actors is not None and (isinstance(actors, bool) or not isinstance(actors, int) or actors < 1):
            # 0 read as "unset" would start one actor per core where the caller asked for none
            raise ConfigError(f"RayEngine(actors=...) must be an int >= 1, or None for one actor per core of "
                              f"the Ray cluster. Got {actors!r}.")
        # Ray starts on first use (:meth:`_start`), once the job has checked its input: a typo in
        # a path is said before seconds of start-up
        self._requested, self._address, self._buckets = actors, address, buckets
        self.num_gpus = num_gpus
        self.actors: int | None = None
        self.buckets: int | None = None

    def _start(self):
        ray = _ray()
        if self.actors is not None:
            return ray
        if not ray.is_initialized():
            if self._address:
                _check_reachable(self._address)
                try:
                    ray.init(address=self._address, log_to_driver=False)
                except ConnectionError as exc:
                    raise ConfigError(f"cannot connect to the Ray cluster at {self._address} "
                                      f"({exc.__class__.__name__}); check --ray-address / engine.ray_address") from None
            else:
                ray.init(num_cpus=cpu_count() if self._requested is None else self._requested,
                         include_dashboard=False, log_to_driver=False, logging_level="WARNING")
        import logging

        # progress lines and per-operator INFO logs would flood the console (they carry no text)
        ray.data.DataContext.get_current().enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        self.actors = self._requested if self._requested is not None else \
            max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.buckets = self._buckets or 4 * self.actors
        return ray

    def _run(self, staged: Path, kind: str, payload: Any) -> RayOutputs:
        import pandas as pd
        import pyarrow.parquet as pq

        ray = self._start()
        table = pq.read_table(str(staged)).to_pandas()
        if kind == "deid":  # whole patients to one group
            table["group"] = [bucket_of(scope, self.buckets) for scope in table["scope"]]
        else:  # chunking reads one document at a time: any grouping
            table["group"] = table["order"] % self.buckets
        # One block per group, each handed whole to an actor (batch_size=None): grouping on the
        # driver instead of Dataset.groupby, whose shuffle tasks would wait for the CPUs the
        # actors hold.
        groups = [frame for _, frame in table.groupby("group", sort=True)]
        dataset = ray.data.from_pandas(groups) if groups else ray.data.from_pandas([table])
        results = dataset.map_batches(
            _PartitionActor, fn_constructor_args=(kind, payload), batch_format="pandas", batch_size=None,
            compute=ray.data.ActorPoolStrategy(size=self.actors), num_cpus=1, num_gpus=self.num_gpus or None)
        frames = list(results.iter_batches(batch_format="pandas", batch_size=None))
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(ROW_FIELDS))
        return RayOutputs(frame)

    def deidentify(self, staged: Path, job: DeidJob, work: Path) -> RayOutputs:
        return self._run(staged, "deid", job)

    def chunk(self, staged: Path, config, work: Path) -> RayOutputs:
        return self._run(staged, "chunk", config)

    def describe(self) -> dict[str, Any]:
        ray = self._start()
        # "workers": what was asked (None: one actor per core), "actors": what ran
        return {"name": "ray", "ray": ray.__version__, "workers": self._requested, "actors": self.actors,
                "groups": self.buckets, "num_gpus_per_actor": self.num_gpus}


def deidentify_with_ray(in_path: str | os.PathLike, out_path: str | os.PathLike, config, *, seed: int | None = None,
                        actors: int | None = None, num_gpus: float = 0, address: str | None = None,
                        on_stage: Callable[[str], None] | None = None):
    """``domainfm deid --engine ray``: see :func:`domainfm.distributed.jobs.run_deid`."""
    from domainfm.distributed.jobs import run_deid

    engine = RayEngine(actors, num_gpus=num_gpus, address=address)
    return run_deid(in_path, out_path, config, engine, seed=seed, on_stage=on_stage)


def chunk_with_ray(in_path: str | os.PathLike, out_path: str | os.PathLike, config, *, actors: int | None = None,
                   address: str | None = None, on_stage: Callable[[str], None] | None = None):
    """``domainfm chunk --engine ray``: see :func:`domainfm.distributed.jobs.run_chunk`."""
    from domainfm.distributed.jobs import run_chunk

    return run_chunk(in_path, out_path, config, RayEngine(actors, address=address), on_stage=on_stage)
