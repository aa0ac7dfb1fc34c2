"""De-identify and chunk on Ray, with the output one ``domainfm deid`` process writes.

``pip install 'domainfm[ray]'``. The partition functions of :mod:`domainfm.distributed.core`
run in a pool of actors (:class:`ray.util.ActorPool`): each actor builds its detector (and learned
PHI model, on a GPU when ``num_gpus`` is given) once and keeps it for every group of rows it is
handed. De-identification groups the rows by a stable bucket of the patient scope, and each group
is processed in input order, so every patient is seen whole and in order, as one process sees
them. ``domainfm deid|chunk --engine ray`` starts a local Ray (``ray.init``) unless one is running
or ``--ray-address`` names a cluster.

The driver's memory is bounded by a group, not by the corpus (Spark streams too): the staged
input is split into one file per group on the driver's disk; a group is read only when an
actor is free for it, so at most one group per actor is in flight; each group's result rows come
back sorted by input position and are written to a file of their own before another group is
read. The output is a streaming merge of those files (:class:`RayOutputs`). A group holds about
``group_rows`` documents: a larger corpus gets more groups, unless ``buckets`` fixes their number.
"""

from __future__ import annotations

import heapq
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from domainfm.distributed.core import (ROW_FIELDS, VAULT, DeidJob, bucket_of, chunk_partition, cpu_count,
                                       deidentify_partition)
from domainfm.errors import ConfigError

_GROUP_ROWS = 10_000  # documents per group by default: the driver holds about one; more groups, more files
_OPEN_FILES = 128  # group files written, or result files merged, at once (passes beyond that)
_RESULT_ROWS = 64  # rows per record batch of a result file: what a merge holds of each file
_READ_ROWS = 1_000  # staged rows the driver reads at a time (a staged row group)


def _ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--engine ray needs Ray: pip install 'domainfm[ray]'") from None
    return ray


def _result_schema():
    import pyarrow as pa

    types = {"order": pa.int64(), "seq": pa.int64(), **{f"c{i}": pa.binary() for i in range(1, 6)}}
    return pa.schema([(name, types.get(name, pa.string())) for name in ROW_FIELDS])


class _PartitionActor:
    """One actor: the job's settings, and (lazily, once per process) its detector or chunker."""

    def __init__(self, kind: str, payload: Any):
        self.kind, self.payload = kind, payload

    def run(self, group: int, rows):
        """One group's staged rows (an Arrow table) -> ``(group, result rows)``, the rows sorted by
        ``(order, seq)``; the sort is stable, so rows of ``order`` -1 (vault rows) keep the order
        the partition function gave them."""
        import pyarrow as pa

        def documents():
            for batch in rows.sort_by("order").to_batches(_READ_ROWS):
                yield from batch.to_pylist()

        process = deidentify_partition if self.kind == "deid" else chunk_partition
        out = pa.Table.from_pylist(list(process(documents(), self.payload)), schema=_result_schema())
        return group, out.sort_by([("order", "ascending"), ("seq", "ascending")])


def _position(row: dict[str, Any]) -> tuple[int, int]:
    return row["order"], row["seq"]


# The driver's scratch files are Arrow IPC: written and read a record batch at a time, with no
# encoder state per open file (a Parquet writer's buffers, times a hundred open groups, were
# tens of MB), and read from an OS file, not memory-mapped, so only the batch in hand is resident.

def _file_rows(path: Path, kind: str | None = None) -> Iterator[dict[str, Any]]:
    """The rows of one result file (those of ``kind``), in file order, a record batch at a time."""
    import pyarrow as pa
    import pyarrow.compute as pc

    with pa.OSFile(str(path)) as source:
        reader = pa.ipc.open_file(source)
        for i in range(reader.num_record_batches):
            batch = reader.get_batch(i)
            if kind is not None:
                batch = batch.filter(pc.equal(batch.column("kind"), kind))
            yield from batch.to_pylist()


def _write_table(path: Path, table) -> Path:
    """Sorted result rows to one file, ``_RESULT_ROWS`` to a record batch."""
    import pyarrow as pa

    with pa.ipc.new_file(str(path), table.schema) as writer:
        writer.write_table(table, max_chunksize=_RESULT_ROWS)
    return path


def _write_rows(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    import pyarrow as pa

    schema, chunk = _result_schema(), []
    with pa.ipc.new_file(str(path), schema) as writer:
        for row in rows:
            chunk.append(row)
            if len(chunk) == _RESULT_ROWS:
                writer.write_batch(pa.RecordBatch.from_pylist(chunk, schema=schema))
                chunk = []
        if chunk:
            writer.write_batch(pa.RecordBatch.from_pylist(chunk, schema=schema))
    return path


def _merge_runs(files: list[Path]) -> list[Path]:
    """At most ``_OPEN_FILES`` sorted files for the final merge: consecutive files merged into one
    per pass. ``heapq.merge`` puts ties (``order`` -1) in the order of its inputs, so merging
    consecutive runs keeps the order that one merge of every file gives."""
    level = 0
    while len(files) > _OPEN_FILES:
        merged = []
        for start in range(0, len(files), _OPEN_FILES):
            runs = files[start:start + _OPEN_FILES]
            path = runs[0].with_name(f"merged-{level}-{start // _OPEN_FILES:05d}.arrow")
            merged.append(_write_rows(path, heapq.merge(*(_file_rows(run) for run in runs), key=_position)))
            for run in runs:
                run.unlink()
        files, level = merged, level + 1
    return files


class RayOutputs:
    """The result rows: sorted files (one per group), read back in input order by a k-way merge
    that holds one record batch of each file, as Spark's task files are read."""

    def __init__(self, files: list[Path]):
        self.files = files

    def ordered(self, kind: str) -> Iterator[dict[str, Any]]:
        # ties (order -1) in group order: the same every run
        return heapq.merge(*(_file_rows(path, kind) for path in self.files), key=_position)

    def vault_rows(self) -> Iterator[tuple[str, tuple[bytes, ...]]]:
        for path in self.files:
            for row in _file_rows(path, VAULT):
                yield row["vault_table"], tuple(row[f"c{i}"] for i in range(1, 6) if row[f"c{i}"] is not None)


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
    1 included, or one per core of the Ray cluster with None.

    Args:
        num_gpus: GPUs per actor (a learned PHI model on GPUs).
        buckets: exactly this many groups of rows (``--partitions``); by default 4 per actor, or
            more where a group would hold over ``group_rows`` documents.
        group_rows: documents per group (on average) when ``buckets`` is not given. The driver
            holds about one group's rows at a time and merges one result file per group.
        address: a Ray cluster (``HOST:PORT``, ``ray://HOST:PORT`` or ``auto``).
    """

    name = "ray"

    def __init__(self, actors: int | None = None, *, num_gpus: float = 0, buckets: int | None = None,
                 address: str | None = None, group_rows: int = _GROUP_ROWS):
        if actors is not None and (isinstance(actors, bool) or not isinstance(actors, int) or actors < 1):
            # 0 read as "unset" would start one actor per core where the caller asked for none
            raise ConfigError(f"RayEngine(actors=...) must be an int >= 1, or None for one actor per core of "
                              f"the Ray cluster. Got {actors!r}.")
        if isinstance(group_rows, bool) or not isinstance(group_rows, int) or group_rows < 1:
            raise ConfigError(f"RayEngine(group_rows=...) must be an int >= 1 (documents per group). "
                              f"Got {group_rows!r}.")
        # Ray starts on first use (:meth:`_start`), once the job has checked its input: a typo in
        # a path is said before seconds of start-up
        self._requested, self._address, self._buckets = actors, address, buckets
        self.num_gpus, self.group_rows = num_gpus, group_rows
        self.actors: int | None = None
        self.buckets: int | None = None
        self.groups: int | None = None  # of the last job

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
        self.actors = self._requested if self._requested is not None else \
            max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.buckets = self._buckets or 4 * self.actors
        return ray

    def _run(self, staged: Path, kind: str, payload: Any, work: Path) -> RayOutputs:
        import pyarrow.parquet as pq
        from ray.util import ActorPool

        ray = self._start()
        documents = sum(pq.ParquetFile(file).metadata.num_rows for file in staged.glob("*.parquet"))
        self.groups = self._buckets or max(self.buckets, -(-documents // self.group_rows))
        inputs, results = work / "groups", work / "results"
        present = _split_into_groups(staged, inputs, kind, self.groups)
        results.mkdir()
        options = {"num_cpus": 1, **({"num_gpus": self.num_gpus} if self.num_gpus else {})}
        actor = ray.remote(_PartitionActor).options(**options)
        actors = [actor.remote(kind, payload) for _ in range(min(self.actors, len(present)))]
        pool, files = ActorPool(actors), {}

        def take():  # a finished group: its result written, its input removed
            group, table = pool.get_next_unordered()
            files[group] = self._write_result(results, group, table)
            (inputs / str(group)).unlink()

        try:
            # An actor is free again only once its result was taken and written, and a group is
            # read only when an actor is free for it: at most one group per actor in flight.
            for group in present:
                if not pool.has_free():
                    take()
                pool.submit(lambda handle, g: handle.run.remote(g, self._group_input(inputs, g)), group)
            while pool.has_next():
                take()
        finally:
            for handle in actors:
                ray.kill(handle)
        return RayOutputs(_merge_runs([files[group] for group in sorted(files)]))

    def _group_input(self, inputs: Path, group: int):
        """One group's staged rows, read when an actor is free for them."""
        import pyarrow as pa

        with pa.OSFile(str(inputs / str(group))) as source:
            return pa.ipc.open_stream(source).read_all()

    def _write_result(self, results: Path, group: int, table) -> Path:
        """One group's result rows (sorted by the actor), written as they arrive."""
        return _write_table(results / f"part-{group:05d}.arrow", table)

    def deidentify(self, staged: Path, job: DeidJob, work: Path) -> RayOutputs:
        return self._run(staged, "deid", job, work)

    def chunk(self, staged: Path, config, work: Path) -> RayOutputs:
        return self._run(staged, "chunk", config, work)

    def describe(self) -> dict[str, Any]:
        ray = self._start()
        # "workers": what was asked (None: one actor per core), "actors": what ran
        return {"name": "ray", "ray": ray.__version__, "workers": self._requested, "actors": self.actors,
                "groups": self.groups or self.buckets, "num_gpus_per_actor": self.num_gpus}


def _split_into_groups(staged: Path, inputs: Path, kind: str, groups: int) -> list[int]:
    """The staged rows, a batch at a time, into one Arrow stream per group (``inputs/<group>``),
    in passes of ``_OPEN_FILES`` groups; returns the groups that got rows, in order.
    De-identification puts whole patients in a group; chunking reads one document at a time, so
    any grouping does."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    inputs.mkdir()
    present: list[int] = []
    for first in range(0, groups, _OPEN_FILES):
        writers: dict[int, Any] = {}
        try:
            for file in sorted(staged.glob("*.parquet")):
                for batch in pq.ParquetFile(file).iter_batches(batch_size=_READ_ROWS):
                    if kind == "deid":
                        ids = [bucket_of(scope, groups) for scope in batch.column("scope").to_pylist()]
                    else:
                        ids = [order % groups for order in batch.column("order").to_pylist()]
                    column = pa.array(ids, pa.int64())
                    for group in sorted({i for i in ids if first <= i < first + _OPEN_FILES}):
                        if group not in writers:
                            writers[group] = pa.ipc.new_stream(str(inputs / str(group)), batch.schema)
                        writers[group].write_batch(batch.filter(pc.equal(column, group)))
        finally:
            for writer in writers.values():
                writer.close()
        present += sorted(writers)
    return present


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
