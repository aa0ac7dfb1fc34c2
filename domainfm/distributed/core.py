"""The engine-neutral core: de-identify or chunk one partition of documents, as a pure function.

An engine (Spark, Ray) hands a worker the documents of one partition; the worker returns plain
rows. Nothing here knows the engine, so every engine gives the same output:

* **records** (``kind="record"``): the output document as JSON, with its input ``order``;
* **rejects** (``kind="reject"``): the reason, the record's id and location and the raw record
  (the reject file is as sensitive as the input; the reason never quotes text);
* **vault rows** (``kind="vault"``): digests and AES-GCM ciphertext only, already encrypted for
  the target vault file (the worker's scratch vault shares its salt), merged by the driver.

Why the output equals one process's: surrogates and date shifts are pure functions of (key,
patient scope, PHI kind, original). What depends on order is kept inside a patient: name
propagation carries a name to the patient's later notes, and a surrogate that collides with
another original of the same patient is re-drawn. The engines therefore partition by patient
scope (``scope_for``: ``meta.patient_id``, else the document id) and keep input order within a
partition, which is exactly what one process sees of each patient.

The detector (spaCy, the recognizers, an optional learned model) is built once per worker
process and reused across partitions and batches (:func:`detector_for`); it is never shipped
from the driver, so engines that cannot broadcast (Spark Connect) work the same.
"""

from __future__ import annotations

import datetime
import decimal
import json
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Collection, Iterable, Iterator

from domainfm.corpus.document import Document
from domainfm.corpus.io import Counts
from domainfm.deid.config import DeidConfig
from domainfm.errors import RecordError

DUPLICATE_ID = "duplicate id (already used by an earlier record)"  # the reason one process gives

# Payloads are JSON with non-ASCII escaped: a lone surrogate ("\\ud800") is valid there and
# survives Arrow, which takes only valid UTF-8.
RECORD, REJECT, VAULT, DOCUMENT = "record", "reject", "vault", "document"
OUTSIDE_TEXT = "_identifiers_outside_text"  # a deid record payload's key for the driver, never written
# The row every partition function returns; engines turn it into their own schema.
ROW_FIELDS = ("kind", "order", "seq", "location", "record_id", "payload", "vault_table", "c1", "c2", "c3", "c4", "c5")

_DETECTORS: dict[str, Any] = {}


@dataclass(frozen=True)
class DeidJob:
    """What every worker of one distributed de-identification needs (picklable, small).

    Args:
        config: the de-identification settings (``workers`` and ``vault`` are the engine's
            business and are ignored here).
        secret: the surrogate key, chosen once by the driver (:func:`domainfm.deid.runner.surrogate_secret`).
        vault_header: the target vault's salt and key check, or None without a vault.
    """

    config: DeidConfig
    secret: bytes
    vault_header: tuple[bytes, bytes] | None = None

    def worker_config(self) -> DeidConfig:
        # the worker's vault is a staging file of the job's, so its config names none; ids are
        # pseudonymised here with that staging vault (same salt and key: the same pseudonyms)
        return replace(self.config, workers=1, vault=None, pseudonymize_ids=False)


def _config_key(config) -> str:
    from domainfm.config import to_dict

    return json.dumps(to_dict(config), sort_keys=True, default=str)


def detector_for(config: DeidConfig):
    """This process's detector for ``config``, built on first use (one per worker process)."""
    key = _config_key(config)
    detector = _DETECTORS.get(key)
    if detector is None:
        from domainfm.deid.engine import PhiDetector

        detector = _DETECTORS[key] = PhiDetector(config)
    return detector


def _row(kind: str, order: int, seq: int = 0, **values: Any) -> dict[str, Any]:
    row = dict.fromkeys(ROW_FIELDS)
    row.update(kind=kind, order=order, seq=seq, **values)
    return row


def _reject_row(order: int, location: str | None, record_id: str | None, reason: str, raw: str | None) -> dict:
    return _row(REJECT, order, location=location, record_id=record_id,
                payload=json.dumps({"reason": reason, "raw": raw}, ensure_ascii=True))


def parse_input(rows: Iterable[dict[str, Any]]) -> Iterator[tuple[int, str | None, Document | dict]]:
    """``(order, location, Document)`` for each input row ``{"order", "location", "doc"}`` whose
    ``doc`` (the document as JSON) is valid, else ``(order, location, reject row)``."""
    for row in rows:
        yield _parsed(row)


def _parsed(row: dict[str, Any]) -> tuple[int, str | None, Document | dict]:
    order, location, raw = int(row["order"]), row.get("location"), row["doc"]
    # pandas reads a missing location (the DataFrame API has none) as NaN: a reject row
    # carrying it made Arrow fail the whole task ("Cannot convert ChunkedArray")
    location = location if isinstance(location, str) else None
    try:
        obj = json.loads(raw)
        return order, location, Document.from_dict(obj, location=location)
    except RecordError as err:
        return order, location, _reject_row(order, location, err.record_id, err.reason, raw)
    except (TypeError, ValueError):
        return order, location, _reject_row(order, location, None, "not a JSON document record", raw)


class _Intake:
    """A partition's input rows as a stream of valid documents for a stage; invalid rows wait in
    ``rejects`` (reject rows) and ``where`` maps a document id to its (order, location, record
    as read) until the stage's result for it comes back.

    A repeated id is rejected as one process rejects it. The file jobs catch duplicates on the
    driver; the DataFrame API has no driver read, and two rows of one id and patient (a table
    loaded twice) land in one partition, where the second would overwrite the first's entry in
    ``where`` and the stage would fail on a missing key.

    A row's ``reject_reason`` (the DataFrame API's rows with binary data or NaN in ``meta``, see
    :func:`meta_not_json`) rejects a valid document whose id is new, as the file jobs' driver
    rejects it after the same checks."""

    def __init__(self, rows: Iterable[dict[str, Any]]):
        self.rows = rows
        self.where: dict[str, tuple[int, str | None, str]] = {}
        self.rejects: list[dict] = []
        self.seen: set[str] = set()

    def documents(self) -> Iterator[Document]:
        for row in self.rows:
            order, location, item = _parsed(row)
            if isinstance(item, dict):
                self.rejects.append(item)
                continue
            # the record as one process writes it to the reject file (non-ASCII as is): the reject
            # row's payload escapes it for Arrow
            raw = json.dumps(item.to_dict(), ensure_ascii=False)
            if item.id in self.seen:
                self.rejects.append(_reject_row(order, location, item.id, DUPLICATE_ID, raw))
                continue
            reason = row.get("reject_reason")
            if isinstance(reason, str):  # pandas reads a missing one as None or NaN
                self.rejects.append(_reject_row(order, location, item.id, reason, raw))
                continue
            self.seen.add(item.id)
            self.where[item.id] = (order, location, raw)
            yield item


def deidentify_partition(rows: Iterable[dict[str, Any]], job: DeidJob) -> Iterator[dict[str, Any]]:
    """De-identify one partition (rows in input order, whole patients); yields output rows.

    The rows of one partition are consumed lazily, so a partition of any size streams; the
    scratch vault (when the job has one) is read out after the last document.
    """
    from domainfm.deid.runner import deidentify
    from domainfm.deid.transform import TransformedRecord, output_record

    config = job.worker_config()
    intake = _Intake(rows)
    where, pending_rejects = intake.where, intake.rejects

    with tempfile.TemporaryDirectory(prefix="domainfm-vault-") as scratch:
        vault = None
        if job.vault_header is not None:
            from domainfm.deid.vault import Vault

            vault = Vault.staging(Path(scratch) / "staging.vault", job.secret, job.vault_header)
        try:
            for item in deidentify(intake.documents(), config, secret=job.secret, vault=vault, counts=Counts(),
                                   detector=detector_for(config)):
                yield from pending_rejects
                pending_rejects.clear()
                if isinstance(item, TransformedRecord):
                    order, location, _ = where.pop(item.id)
                    payload = output_record(item, vault, job.config.pseudonymize_ids)
                    # field names for the driver's counts (write_records takes them out); the worker's
                    # config leaves ids alone, the job's may pseudonymise them
                    outside = [f for f in item.outside_text if f != "id" or not job.config.pseudonymize_ids]
                    if outside:
                        payload[OUTSIDE_TEXT] = outside
                    yield _row(RECORD, order, record_id=item.id, payload=json.dumps(payload, ensure_ascii=True))
                else:
                    order, location, raw = where.pop(item.record_id, (-1, item.location, item.raw))
                    yield _reject_row(order, item.location or location, item.record_id, item.reason,
                                      item.raw or raw)
            yield from pending_rejects
            if vault is not None:
                for table, columns in vault.rows():
                    values = dict(zip(("c1", "c2", "c3", "c4", "c5"), columns))
                    yield _row(VAULT, -1, vault_table=table, **values)
        finally:
            if vault is not None:
                vault.close()


def chunk_partition(rows: Iterable[dict[str, Any]], config) -> Iterator[dict[str, Any]]:
    """Chunk one partition (any partitioning: chunking reads one document at a time). Yields a
    ``record`` row per chunk, then a ``document`` row per chunked document (its chunk count,
    largest chunk and spans outside chunks: documents, not chunks, are what counts reconcile),
    and reject rows."""
    intake = _Intake(rows)
    for result in _chunker_for(config).iter_documents(intake.documents(), reject_empty=True):
        yield from intake.rejects
        intake.rejects.clear()
        order, location, raw = intake.where.pop(result.doc.id)
        if result.error is not None:
            yield _reject_row(order, result.error.location or location, result.doc.id, result.error.reason, raw)
            continue
        for seq, chunk in enumerate(result.chunks):  # (order, seq): the chunks of a document in their order
            yield _row(RECORD, order, seq=seq, record_id=result.doc.id,
                       payload=json.dumps(chunk.to_dict(), ensure_ascii=True))
        yield _row(DOCUMENT, order, record_id=result.doc.id, payload=json.dumps({
            "chunks": len(result.chunks), "max_chunk_tokens": max((c.n_tokens for c in result.chunks), default=0),
            "spans_outside_chunks": result.spans_outside}))
    yield from intake.rejects


_CHUNKERS: dict[str, Any] = {}


def _chunker_for(config):
    from domainfm.chunk.splitter import Chunker

    key = _config_key(config)
    if key not in _CHUNKERS:
        _CHUNKERS[key] = Chunker(config)
    return _CHUNKERS[key]


def input_rows(docs: Iterable[tuple[str, Document]], start: int = 0) -> Iterator[dict[str, Any]]:
    """Rows for an engine from ``(location, Document)`` pairs (e.g. ``read_located_documents``):
    input order, location, patient scope (the partitioning key) and the document as JSON."""
    from domainfm.deid.surrogates import scope_for

    for order, (location, doc) in enumerate(docs, start):
        yield {"order": order, "location": location, "scope": scope_for(doc.id, doc.meta),
               "doc": json.dumps(doc.to_dict(), ensure_ascii=True)}


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


DOCUMENT_COLUMNS = ("id", "text", "meta", "label", "labels", "spans", "phi_spans")


def record_from_columns(columns: dict[str, Any], patient_col: str | None = None,
                        extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A document record from a table row: ``meta``, ``labels``, ``spans`` and ``phi_spans`` may
    be JSON text (as domainfm writes Parquet) or already objects; any other column goes to
    ``meta`` (as ``domainfm import csv`` does), ``patient_col`` as ``meta.patient_id``. Values
    that do not parse are left for :meth:`Document.from_dict` to reject with the field named.
    Dates, times and decimals (a data lake's ``note_date`` timestamp) become their ISO or
    decimal text, as a CSV export writes them: JSON has no such types.

    ``extra``: columns that go to ``meta`` whatever their name. The DataFrame API's ``id_col``
    and ``text_col`` may name other columns than ``id`` and ``text``; a table's own ``id`` or
    ``text`` column is then data like any other, not the note's id or text."""
    record: dict[str, Any] = {"id": columns.get("id"), "text": columns.get("text")}
    for key in ("meta", "label", "labels", "spans", "phi_spans"):
        value = columns.get(key)
        if key != "label" and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        if hasattr(value, "tolist"):  # numpy arrays from pandas
            value = value.tolist()
        if value is not None or key in ("label", "labels"):
            record[key] = value
    meta = record.get("meta")
    record["meta"] = meta = {} if meta is None else _as_json_value(meta)
    if isinstance(meta, dict):
        # a table's "location" (the ward), "order" or "scope" column is data: only the engine's
        # own rows carry fields of those names, and they never come through here
        others = [(key, value) for key, value in columns.items() if key not in DOCUMENT_COLUMNS]
        for key, value in others + list((extra or {}).items()):
            value = value.item() if hasattr(value, "item") else value
            meta["patient_id" if key == patient_col else key] = _as_json_value(value)
    if isinstance(record["id"], int) and not isinstance(record["id"], bool):
        record["id"] = str(record["id"])
    return record


def meta_not_json(meta: dict[str, Any], columns: Collection[str] = ()) -> str | None:
    """Why ``meta`` cannot be written as JSON (binary data, NaN), else None: the reason a row
    is rejected with, by the file jobs on the driver and by the DataFrame API in the workers.

    Args:
        meta: the document's ``meta``.
        columns: the ``meta`` keys that are table columns, named as ``column 'scan'`` (a column
            name is schema); another key of ``meta`` may be data, so it is not quoted.
    """
    for key, value in meta.items():
        try:
            json.dumps(value, allow_nan=False)
        except ValueError:
            what = "NaN or infinity"
        except TypeError:  # a list or struct column: its own type would not say what is wrong
            what = "a value JSON cannot hold" if isinstance(value, (dict, list)) else \
                f"a value of type {type(value).__name__}"
        else:
            continue
        where = f"column {key!r}" if key in columns else "field 'meta'"
        return f"{where} holds {what}, which a document's meta cannot hold as JSON; convert or drop it"
    return None


def _as_json_value(value: Any) -> Any:
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dict):
        return {key: _as_json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_json_value(item) for item in value]
    return value


def bucket_of(scope: str, buckets: int) -> int:
    """A stable bucket for a patient scope (the same in every process, unlike ``hash``)."""
    import zlib

    return zlib.crc32(scope.encode("utf-8", errors="surrogatepass")) % buckets
