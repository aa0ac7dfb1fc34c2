"""``jsonl``: validate and normalise JSONL that is close to the domainfm format.

Records may name their text/id/label fields differently; fields the document model does not
know are kept under ``meta`` rather than dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from domainfm.corpus.document import DOCUMENT_KEYS, Document
from domainfm.corpus.importers.base import Sourced, register
from domainfm.corpus.io import Rejected, iter_jsonl_lines
from domainfm.errors import RecordError


@dataclass
class JsonlOptions:
    """Args:
    text_key: field holding the document text.
    id_key: field holding the id; integers become strings (as in every stage).
    label_key: field holding the single label (optional).
    generate_ids: give records without an id the id ``<file stem>-<line>``.
    """

    text_key: str = "text"
    id_key: str = "id"
    label_key: str = "label"
    generate_ids: bool = False


@register("jsonl", JsonlOptions, "JSONL, one JSON object per line (validated and normalised)")
def read_jsonl(src: Path, options: JsonlOptions) -> Iterator[Document | Rejected]:
    renames = {options.text_key: "text", options.id_key: "id", options.label_key: "label"}
    for number, line, obj in iter_jsonl_lines(src):
        if isinstance(obj, Rejected):
            yield obj
            continue
        location = f"{src.name}:{number}"
        try:
            if not isinstance(obj, dict):
                raise RecordError(f"expected a JSON object, got {type(obj).__name__}", location=location)
            record = {renames.get(k, k): v for k, v in obj.items()}
            if record.get("id") is None and options.generate_ids:
                record["id"] = f"{src.stem}-{number}"
            if record.get("id") is None:
                raise RecordError(
                    f"no {options.id_key!r} field (set --id-key, or --generate-ids to number lines)",
                    location=location,
                )
            extra = {k: record.pop(k) for k in list(record) if k not in DOCUMENT_KEYS}
            if extra:
                meta = record.get("meta")
                record["meta"] = {**extra, **meta} if isinstance(meta, dict) else {**extra, "meta": meta}
            yield Sourced(Document.from_dict(record, location=location), location, line)
        except RecordError as err:
            yield Rejected.from_error(err, raw=line)
