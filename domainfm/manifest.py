"""Provenance saved beside every output: resolved config, versions, input hashes, counts.

A ``manifest.json`` lets anyone answer "what produced this file, from what, with which
settings?" months later, and lets the pipeline skip a stage whose inputs did not change.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

from domainfm.config import to_dict

# Versions recorded in every manifest; read from package metadata, so nothing heavy is imported.
TRACKED_PACKAGES = (
    "domainfm", "torch", "transformers", "peft", "spacy", "scikit-learn", "shap",
    "presidio-analyzer", "presidio-anonymizer", "langchain-text-splitters", "sentence-transformers",
    "faker",
)


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
    for file in sorted(p for p in path.rglob("*") if p.is_file() and keep(p.relative_to(path))):
        digest.update(file.relative_to(path).as_posix().encode("utf-8") + b"\0")
        digest.update(sha256_file(file).encode("ascii") + b"\n")
        n_files += 1
        n_bytes += file.stat().st_size
    return digest, n_files, n_bytes


def describe_input(path: str | os.PathLike) -> dict[str, Any]:
    """Hash a file, or a folder as the sorted list of (relative path, file hash)."""
    path = Path(path)
    if path.is_file():
        return {"path": str(path), "kind": "file", "bytes": path.stat().st_size, "sha256": sha256_file(path)}
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
) -> Path:
    """Write the manifest for ``output`` and return its path."""
    from domainfm import __version__

    manifest = {
        "stage": stage,
        "domainfm_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": to_dict(config),
        "inputs": [describe_input(p) for p in inputs],
        "outputs": [describe_input(p) for p in outputs if Path(p).exists()],
        "counts": counts or {},
        "environment": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "packages": package_versions(),
            "domainfm_code": code_fingerprint(),
        },
        **(extra or {}),
    }
    path = manifest_path_for(output)
    write_json_atomic(path, manifest)
    return path


def write_json_atomic(path: str | os.PathLike, obj: Any, **dumps: Any) -> None:
    """Write JSON under a temporary name and rename it into place: readers never see half a
    file (:func:`domainfm.corpus.io.atomic_file`)."""
    from domainfm.corpus.io import write_text_atomic

    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, **dumps) + "\n")

