"""What keeps a patient's notes on one side of a train/evaluation split.

Every stage that holds documents out (pretraining's evaluation blocks and membership-inference
sets, fine-tuning's evaluation set, the privacy audit) groups documents by one key:
``split_key`` ``auto`` (a document's ``meta.patient_id`` when it has one, else its id), ``id``, or
``meta.<key>``. How the groups are then divided differs on purpose: pretraining streams, so a
group's side is :func:`stable_fraction` of its name (known without seeing the rest of the
corpus, unchanged when the corpus grows); fine-tuning stratifies groups by label
(scikit-learn's ``StratifiedGroupKFold``) so every class is on both sides where it can be.
"""

from __future__ import annotations

import hashlib

from domainfm.config import suggest
from domainfm.corpus.document import Document
from domainfm.errors import RecordError


def missing(value: object) -> bool:
    """No value for a grouping key: None, an empty or blank string, or NaN (how pandas writes a
    missing cell: as a key it would pool every such note into one patient)."""
    return (value is None or (isinstance(value, str) and not value.strip())
            or (isinstance(value, float) and value != value))


def has_patient(doc: Document) -> bool:
    """The document names its patient (``meta.patient_id`` with a value, see :func:`missing`)."""
    return not missing(doc.meta.get("patient_id"))


def group_of(doc: Document, split_key: str) -> tuple[str, str]:
    """``(kind, value)`` of the key that decides a document's side.

    Raises:
        RecordError: ``meta.<key>`` is missing or empty, naming the record and the fields it has.
    """
    if split_key == "auto":
        return ("patient_id", str(doc.meta["patient_id"])) if has_patient(doc) else ("id", doc.id)
    if split_key == "id":
        return "id", doc.id
    key = split_key[len("meta."):]
    value = doc.meta.get(key)
    if missing(value):
        raise RecordError(f"data.split_key is {split_key!r} but meta.{key} has no value here"
                          f"{suggest(key, doc.meta)}; this record's meta fields: {sorted(doc.meta)}",
                          record_id=doc.id)
    return key, str(value)


def stable_fraction(value: str) -> float:
    """A number in [0, 1) from a string: the same on every run, machine and Python version."""
    digest = hashlib.sha256(value.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64
