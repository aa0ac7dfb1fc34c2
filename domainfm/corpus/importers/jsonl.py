"""``jsonl``: validate and normalise JSONL that is close to the domainfm format.

Records may name their text/id/label fields differently; fields the document model does not
know are kept under ``meta`` rather than dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from domainfm.corpus.document import DOCUMENT_KEYS, Document, describe_type
from domainfm.corpus.importers.base import Sourced, register
from domainfm.corpus.io import Rejected, iter_jsonl_lines
from domainfm.errors import ConfigError, RecordError


_FLAGS = {"text": "--text-key", "id": "--id-key", "label": "--label-key"}


@dataclass
class JsonlOptions:
    """Args:
    text_key: field holding the document text.
    id_key: field holding the id; integers become strings (as in every stage).
    label_key: field holding the single label (optional).
    generate_ids: give records without an id the id ``<file stem>-<line>``.

    A record that also has the standard field a key replaces (``text`` beside ``--text-key
    note``) is rejected: which of the two holds the text cannot be told.
    """

    text_key: str = "text"
    id_key: str = "id"
    label_key: str = "label"
    generate_ids: bool = False

    def __post_init__(self):
        keys = {"text": self.text_key, "id": self.id_key, "label": self.label_key}
        for role, key in keys.items():
            if not isinstance(key, str) or not key:
                raise ConfigError(f"'{role}_key' must be a non-empty field name, got {key!r}")
            if key != role and key in DOCUMENT_KEYS:
                raise ConfigError(
                    f"'{role}_key' may not be {key!r}: that is the document's own {key!r} field"
                )
        if len(set(keys.values())) < len(keys):
            raise ConfigError(
                f"'text_key', 'id_key' and 'label_key' must name different fields, got "
                f"{self.text_key!r}, {self.id_key!r} and {self.label_key!r}"
            )


@register("jsonl", JsonlOptions, "JSONL, one JSON object per line (validated and normalised)")
def read_jsonl(src: Path, options: JsonlOptions) -> Iterator[Document | Rejected]:
    keys = {"text": options.text_key, "id": options.id_key, "label": options.label_key}
    renames = {key: role for role, key in keys.items()}
    for number, line, obj in iter_jsonl_lines(src):
        if isinstance(obj, Rejected):
            yield obj
            continue
        location = f"{src.name}:{number}"
        try:
            if not isinstance(obj, dict):
                raise RecordError(f"expected a JSON object, got {type(obj).__name__}", location=location)
            for role, key in keys.items():
                if key != role and role in obj:
                    # without this one of the two values would silently win
                    raise RecordError(
                        f"has a {role!r} field but the {role} is read from {key!r} ({_FLAGS[role]}); "
                        f"rename or remove one",
                        location=location,
                    )
            record = {renames.get(k, k): v for k, v in obj.items()}
            if record.get("id") is None and options.generate_ids:
                record["id"] = f"{src.stem}-{number}"
            if record.get("id") is None:
                raise RecordError(
                    f"no {options.id_key!r} field (set --id-key, or --generate-ids to number lines)",
                    location=location,
                )
            if "text" not in record:
                raise RecordError(f"no {options.text_key!r} field for the text (set --text-key)", location=location)
            if not isinstance(record["text"], str):
                raise RecordError(
                    f"field {options.text_key!r} (the text) must be a string, got {describe_type(record['text'])}",
                    location=location,
                )
            meta = record.get("meta")
            if meta is not None and not isinstance(meta, dict):
                raise RecordError(f"field 'meta' must be an object, got {describe_type(meta)}", location=location)
            extra = {k: record.pop(k) for k in list(record) if k not in DOCUMENT_KEYS}
            if extra:
                both = sorted(set(extra) & set(meta or {}))
                if both:
                    raise RecordError(
                        f"field(s) {both} are both top-level and in 'meta'; rename one so neither value is lost",
                        location=location,
                    )
                record["meta"] = {**extra, **(meta or {})}
            yield Sourced(Document.from_dict(record, location=location), location, line)
        except RecordError as err:
            if err.record_id is None:  # the reject file names the record whenever its id is readable
                candidate = obj.get(options.id_key) if isinstance(obj, dict) else None
                if (isinstance(candidate, str) and candidate.strip()) or (
                        isinstance(candidate, int) and not isinstance(candidate, bool)):
                    err.record_id = str(candidate)
            yield Rejected.from_error(err, raw=line)
