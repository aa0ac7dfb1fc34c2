"""Which model an audit describes: the folder's absolute path and a fingerprint of its
provenance, recorded in ``report.json``, so that cards written later (from any working
directory) describe that model and no other."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: The file whose sha256 identifies a model folder: its manifest (which hashes every weight file
#: the run wrote), else the task info of a folder assembled by hand.
FINGERPRINT_FILES = ("manifest.json", "domainfm_task.json")


def model_identity(model_dir: str | os.PathLike | None) -> dict[str, Any]:
    """``{"path": absolute folder, "fingerprint": {"file", "sha256"} or None}`` (both None when
    the model was not given as a folder)."""
    if model_dir is None:
        return {"path": None, "fingerprint": None}
    from domainfm.manifest import sha256_file

    folder = Path(model_dir).resolve()
    for name in FINGERPRINT_FILES:
        if (folder / name).is_file():
            return {"path": str(folder), "fingerprint": {"file": name, "sha256": sha256_file(folder / name)}}
    return {"path": str(folder), "fingerprint": None}


def verify_model(model: dict[str, Any]) -> tuple[Path | None, str | None]:
    """The model folder an audit report's ``model`` section recorded, checked against its
    fingerprint: ``(folder, None)``, or ``(None, why it cannot be verified)``."""
    from domainfm.manifest import sha256_file

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
        return None, f"{target} has changed since the audit (sha256 differs): the folder now holds another model"
    return Path(path), None
