"""Which documents a fine-tuned model trained on and which it was evaluated on, recorded beside
the model so that later stages (the audit, the de-id site evaluation) use exactly that split
instead of recomputing it.

``split.json`` holds SHA-256 digests of each document's id *and text*, not the ids: the model
folder is what leaves the building, and document ids can carry identifiers (an MRN, a case
number). A reader with the training data recomputes the digests and matches them. The text is
in the digest because ids alone can be enumerated: seven-digit MRNs are ten million guesses, so
a digest of the id (salted or not, with the salt beside it) tells anyone which MRNs were
trained on. Nobody without the document's text can test a guess.

Version 1 files (digests of ids alone, written before) are still read.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from domainfm.errors import ConfigError
from domainfm.manifest import write_json_atomic

SPLIT_FILE = "split.json"


def split_digest(salt: str, doc_id: str, text: str | None) -> str:
    """A document's digest in ``split.json``; ``text`` None: a version 1 record's digest of the id alone."""
    material = f"{salt}\x00{doc_id}" if text is None else f"{salt}\x00{doc_id}\x00{text}"
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:32]


def split_salt(seed: int) -> str:
    """The salt of a run's ``split.json``. It is stored in the file (a reader needs it), so it
    protects nothing by being random; it is derived from the run's seed so that the same run
    writes the same file. The secret that keeps the digests from being tested is the text."""
    return hashlib.sha256(f"domainfm-split:{seed}".encode()).hexdigest()[:32]


def record_split(out: str | os.PathLike, train_docs: Sequence[Any], eval_docs: Sequence[Any],
                 stats: dict[str, Any] | None = None, *, seed: int = 0) -> Path:
    """Write ``out/split.json``: digests of the training and evaluation documents (id and text)."""
    salt = split_salt(seed)
    return write_split(out, salt, (split_digest(salt, d.id, d.text) for d in train_docs),
                       (split_digest(salt, d.id, d.text) for d in eval_docs), stats)


def write_split(out: str | os.PathLike, salt: str, train: Iterable[str], eval: Iterable[str],
                stats: dict[str, Any] | None = None) -> Path:
    """Write ``out/split.json`` from digests already taken (:func:`split_digest` with ``salt``):
    a caller that streams its documents once sorts them into both sides in that one pass."""
    stats = stats or {}
    payload = {
        "version": 2,
        "ids": "sha256(salt NUL id NUL text), first 32 hex digits",
        "salt": salt,
        "split_key": stats.get("split_key"),
        "eval_source": stats.get("eval_source"),
        "train": sorted(train),
        "eval": sorted(eval),
    }
    path = Path(out) / SPLIT_FILE
    write_json_atomic(path, payload)
    return path


@dataclass(frozen=True)
class RecordedSplit:
    salt: str
    train: frozenset[str]
    eval: frozenset[str]
    split_key: str | None
    eval_source: str | None
    version: int = 2

    def side(self, doc) -> str | None:
        """``"train"``, ``"eval"`` or None for a document (id and text) the model never saw."""
        digest = split_digest(self.salt, doc.id, doc.text if self.version >= 2 else None)
        return "train" if digest in self.train else "eval" if digest in self.eval else None


def read_split(model_dir: str | os.PathLike) -> RecordedSplit | None:
    """The split recorded in a model folder, or None for folders written before it was recorded."""
    import json

    path = Path(model_dir) / SPLIT_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return RecordedSplit(str(data["salt"]), frozenset(data["train"]), frozenset(data["eval"]),
                             data.get("split_key"), data.get("eval_source"), int(data.get("version", 1)))
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a split record written by domainfm finetune ({exc})") from None


def recorded_documents(model_dir: str | os.PathLike, cfg) -> tuple[list, list, dict[str, Any]]:
    """The training and evaluation documents of a fine-tuned model, as it recorded them.

    Reads the task's data files (``cfg`` is its :class:`~domainfm.finetune.config.TaskConfig`)
    and keeps the documents on each side of the recorded split. A folder without a record (written
    by an earlier release) falls back to recomputing the split from the config, which gives the
    same sides for the same data and seed.
    """
    from domainfm.finetune.data import load_documents
    from domainfm.finetune.inputs import load_task_data, rename_spans

    split = read_split(model_dir)
    if split is None:
        train_docs, eval_docs, _, stats = load_task_data(cfg)
        return train_docs, eval_docs, {**stats, "recorded": False}
    d = cfg.data
    docs = rename_spans(load_documents(d.train), cfg.labels.map)
    if d.eval:
        docs += rename_spans(load_documents(d.eval), cfg.labels.map)
    sides: dict[str | None, list] = {"train": [], "eval": [], None: []}
    for doc in docs:
        sides[split.side(doc)].append(doc)
    if len(sides["train"]) != len(split.train) or len(sides["eval"]) != len(split.eval):
        raise ConfigError(
            f"{model_dir}: the task's data files no longer hold the documents (ids and texts) the model recorded "
            f"({len(sides['train'])} of {len(split.train)} training and {len(sides['eval'])} of {len(split.eval)} "
            "evaluation documents found); re-run finetune on the current data")
    stats = {"split_key": split.split_key, "eval_source": split.eval_source, "recorded": True,
             "train_documents": len(sides["train"]), "eval_documents": len(sides["eval"])}
    return sides["train"], sides["eval"], stats
