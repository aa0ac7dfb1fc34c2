"""Run de-identification over a JSONL corpus: detect, transform, write, reconcile.

``deidentify_file`` is what ``domainfm deid`` calls. It streams the input, runs detection in
batches (in ``workers`` processes when asked: each worker builds its detector once), applies the
operator in this process (the vault has one writer), and writes the output, a reject file and a
manifest whose ``stage`` is ``deid`` — the mark later stages check before training on the text.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
from collections import deque
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from domainfm.config import as_config
from domainfm.corpus.document import Document, document_stream
from domainfm.corpus.io import (Counts, CountingRejects, OutputLock, Rejected, RejectWriter, JsonlWriter, check_output_path,
                                not_a_file, read_located_documents, rejects_path_for)
from domainfm.deid.config import DeidConfig
from domainfm.errors import ConfigError, CorpusError, OutputError
from domainfm.manifest import manifest_path_for, write_manifest

if TYPE_CHECKING:
    from domainfm.stages import StageResult

KEY_ENV = "DOMAINFM_VAULT_KEY"


@dataclass
class DeidResult:
    out: Path
    rejects: Path | None
    manifest: Path
    counts: Counts
    detections: int
    detections_by_label: dict[str, int]
    surrogate_key: str
    first_rejects: list[str]
    # output field -> records whose field still holds an identifier found in their text
    # (domainfm.deid.outside_text; field names, never values)
    outside_text: dict[str, int] = field(default_factory=dict)


def surrogate_secret(config: DeidConfig, seed: int | None = None) -> tuple[bytes, str]:
    """The secret that keys surrogates and date shifts, and how it was chosen (for the manifest).

    ``DOMAINFM_VAULT_KEY`` gives the same surrogates across runs (and is required with a vault).
    Without it, an explicit ``seed`` gives reproducible surrogates — anyone who knows the seed
    can test guesses, so that is for demos and tests only — and otherwise a fresh random secret
    is used, consistent within the run only.
    """
    from domainfm.deid.vault import secret_from_env

    if config.vault is not None or os.environ.get(KEY_ENV):
        return secret_from_env(KEY_ENV), f"from ${KEY_ENV}"
    if seed is not None:
        return hashlib.sha256(f"domainfm-demo-seed:{seed}".encode()).digest(), (
            f"derived from seed {seed}: reproducible by anyone who knows the seed (demos and tests only)"
        )
    return secrets.token_bytes(32), f"random for this run (set ${KEY_ENV} for consistency across runs)"


def deidentify(
    docs: Iterable[Document],
    config: DeidConfig,
    *,
    secret: bytes | None = None,
    vault=None,
    counts: Counts | None = None,
    detector=None,
) -> Iterator:
    """De-identify a stream of documents; yields ``TransformedRecord`` or ``Rejected`` items.

    ``detector`` is a ready :class:`~domainfm.deid.engine.PhiDetector` built from ``config``
    (an engine's worker reuses one across batches); by default one is built here.

    Example:
        >>> records = deidentify(read_documents("notes.jsonl"), DeidConfig(operator="tag"))  # doctest: +SKIP
    """
    from domainfm.deid.outside_text import fields_holding
    from domainfm.deid.propagate import NamePropagator
    from domainfm.deid.surrogates import SurrogateGenerator
    from domainfm.deid.transform import TransformedRecord, transform_documents

    config = as_config(config, DeidConfig)
    docs = document_stream(docs)
    surrogates = None
    if config.operator == "surrogate":
        surrogates = SurrogateGenerator(secret or secrets.token_bytes(32), vault)
    from domainfm.deid.windows import detect_windowed

    detectors: list = []  # built once, here or on first use by a meta value
    if config.workers > 1:
        detect = lambda part: detect_parallel(part, config)  # noqa: E731
    else:
        detectors.append(detector or _detector(config))
        detect = detectors[0].detect
    # Documents over spaCy's limit are detected in overlapping windows (deid/windows.py).
    pairs = detect_windowed(detect, docs)
    propagator = NamePropagator()
    pairs = ((doc, propagator(doc, list(found))) for doc, found in pairs)
    policy = config.meta_policy
    for record in transform_documents(pairs, config.operator, surrogates, vault=vault, counts=counts):
        if isinstance(record, TransformedRecord):
            if record.meta:
                record.meta = _deidentify_meta(record, policy, config, surrogates, propagator, detectors)
            record.outside_text = fields_holding(record, record.identifiers, ids_replaced=config.pseudonymize_ids)
            record.identifiers = frozenset()
        yield record


def _detector(config: DeidConfig):
    from domainfm.deid.engine import PhiDetector

    return PhiDetector(config)


def _deidentify_meta(record, policy, config: DeidConfig, surrogates, propagator, detectors: list) -> dict:
    """``record.meta`` with :class:`~domainfm.deid.meta.MetaPolicy` applied: whole values replaced
    as their label, free text de-identified like the note (with the names the note revealed)."""
    from domainfm.deid.operators import redact_text, tag_for
    from domainfm.deid.surrogates import scope_for
    from domainfm.deid.transform import apply_operator

    scope = scope_for(record.id, record.meta)

    def replace(value: str, action: str) -> str:
        if action != "deid":
            if config.operator == "surrogate":
                return surrogates.surrogate(value, action, scope, note_year=record.note_year,
                                            day_first=record.day_first)
            return tag_for(action) if config.operator == "tag" else redact_text(value)
        if not detectors:
            detectors.append(_detector(_one_worker(config)))
        doc = Document(record.id, value, meta=record.meta)
        found = propagator(doc, detectors[0].detect_text(value))
        return apply_operator(doc, found, config.operator, surrogates, record=False).text

    return policy.apply(record.meta, replace)


def _one_worker(config: DeidConfig) -> DeidConfig:
    from dataclasses import replace

    return replace(config, workers=1)


# --- parallel detection: one detector per worker process, results in input order -------------

_WORKER_DETECTOR = None


def _init_worker(config: DeidConfig) -> None:
    global _WORKER_DETECTOR

    if config.ner_model:  # the workers share the cores: one torch thread pool each would oversubscribe them
        import os

        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // config.workers))
    _WORKER_DETECTOR = _detector(_one_worker(config))


def _detect_batch(texts: list[str]):
    return list(_WORKER_DETECTOR.detect_texts(texts))


def detect_parallel(docs: Iterable[Document], config: DeidConfig) -> Iterator[tuple[Document, list]]:
    """Detection in ``config.workers`` processes. At most ``2 * workers`` batches are in flight,
    so memory stays bounded on corpora of any size, and results come back in input order."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # "spawn": forking a process that already loaded torch/spaCy threads is not safe.
    context = multiprocessing.get_context("spawn")
    batch_size = config.batch_size
    with ProcessPoolExecutor(config.workers, mp_context=context, initializer=_init_worker,
                             initargs=(config,)) as pool:
        pending: deque = deque()
        batch: list[Document] = []

        def drain(limit: int):
            while len(pending) > limit:
                docs_in_batch, future = pending.popleft()
                yield from zip(docs_in_batch, future.result())

        for doc in docs:
            batch.append(doc)
            if len(batch) >= batch_size:
                pending.append((batch, pool.submit(_detect_batch, [d.text for d in batch])))
                batch = []
                yield from drain(2 * config.workers)
        if batch:
            pending.append((batch, pool.submit(_detect_batch, [d.text for d in batch])))
        yield from drain(0)


def run_vault(stack: ExitStack, path: str | os.PathLike | None, secret: bytes):
    """The vault a ``deid`` run writes (one process or an engine), held by ``stack``; None without one.

    One writer per vault: a second run would interleave its mappings with this one's. One
    transaction for the run, committed when the last record is through and before the output is
    renamed into place (an engine's: by its merge): a killed run leaves no entries for records
    that no output holds."""
    if path is None:
        return None
    from domainfm.deid.vault import Vault

    stack.enter_context(OutputLock(path, what="another 'domainfm deid' run (the vault)"))
    return stack.enter_context(Vault(path, secret, commit_every=0))


def check_vault_path(vault: str | os.PathLike | None, in_path: Path, out_path: Path) -> None:
    """A ``--vault`` is neither the input nor a file the run writes: one named like the output, its
    manifest or its reject file would be overwritten (or deleted, a reject file with no rejects)."""
    if vault is not None:
        check_output_path(vault, inputs=[in_path, out_path, rejects_path_for(out_path), manifest_path_for(out_path)])


def deidentify_file(
    in_path: str | os.PathLike,
    out_path: str | os.PathLike,
    config: DeidConfig,
    *,
    seed: int | None = None,
    on_progress: Callable[[Counts], None] | None = None,
) -> DeidResult:
    """``domainfm deid``: de-identify a domainfm JSONL file.

    Output records keep ``id``/``meta``/labels, carry the transformed ``text``, the re-mapped
    annotation ``spans`` and ``phi_spans`` (``start, end, label, score`` in input coordinates,
    no PHI text). ``read == written + rejected`` always holds.
    """
    in_path, out_path = Path(in_path), Path(out_path)
    if not in_path.is_file():  # before the vault is created: a typo left an empty vault behind
        raise CorpusError(f"{in_path}: {not_a_file(in_path)}")
    reject_file = rejects_path_for(out_path)
    check_output_path(out_path, inputs=[in_path])
    check_output_path(reject_file, inputs=[in_path])
    check_vault_path(config.vault, in_path, out_path)
    secret, key_source = surrogate_secret(config, seed)
    with ExitStack() as stack:
        stack.enter_context(OutputLock(out_path))
        vault = run_vault(stack, config.vault, secret)
        return _deidentify_locked(in_path, out_path, reject_file, config, secret, key_source, vault, on_progress)


def _deidentify_locked(in_path: Path, out_path: Path, reject_file: Path, config: DeidConfig, secret: bytes,
                       key_source: str, vault, on_progress) -> DeidResult:
    import json

    from domainfm.deid.transform import TransformedRecord, output_record

    input_counts, transform_counts = Counts(), Counts()
    first_rejects: list[str] = []
    by_label: dict[str, int] = {}
    outside: dict[str, int] = {}
    # Documents handed to detection, in order, until their result comes back: a record rejected
    # while transforming keeps its file:line and the record as read (the reject file promises both).
    in_flight: deque = deque()

    def docs(sink):
        for location, doc in read_located_documents(in_path, rejects=sink):
            in_flight.append((location, doc))
            yield doc

    try:
        with JsonlWriter(out_path) as out, RejectWriter(reject_file) as rejects:
            # ids a run pseudonymises are identifiers: the console names a reject by file:line only
            show_ids = not config.pseudonymize_ids
            sink = CountingRejects(rejects, input_counts, first_rejects, show_ids=show_ids)
            for item in deidentify(docs(sink), config, secret=secret, vault=vault, counts=transform_counts):
                record_id = item.id if isinstance(item, TransformedRecord) else item.record_id
                while in_flight and in_flight[0][1].id != record_id:
                    in_flight.popleft()
                location, doc = in_flight.popleft() if in_flight else (None, None)
                if isinstance(item, TransformedRecord):
                    out.write_obj(output_record(item, vault, config.pseudonymize_ids))
                    for name in item.outside_text:
                        outside[name] = outside.get(name, 0) + 1
                    for span in item.phi_spans:
                        label = span["label"] if isinstance(span, dict) else span.label
                        by_label[label] = by_label.get(label, 0) + 1
                else:
                    item.location = item.location or location
                    if item.raw is None and doc is not None:
                        item.raw = json.dumps(doc.to_dict(), ensure_ascii=False)
                    if len(first_rejects) < 5:
                        first_rejects.append(item.describe(show_id=show_ids))
                    rejects.write(item)
                if on_progress is not None and transform_counts.read % 50 == 0:
                    on_progress(input_counts.merge(transform_counts))
    except sqlite3.Error as exc:
        raise OutputError(f"{config.vault}: the vault could not be written ({type(exc).__name__}); "
                          "nothing was written, re-run when the vault is free") from None
    counts = input_counts.merge(transform_counts)
    assert counts.reconciles, counts
    by_label = by_count(by_label)
    manifest = write_manifest(
        out_path, stage="deid", config=config, inputs=[in_path],
        outputs=[out_path] + ([reject_file] if counts.rejected else []),
        counts={**counts.to_dict(), "detections": sum(by_label.values()), "detections_by_label": by_label,
                "identifiers_outside_text": by_count(outside)},
        extra={"surrogate_key": key_source},
    )
    return DeidResult(out_path, reject_file if counts.rejected else None, manifest, counts,
                      sum(by_label.values()), by_label, key_source, first_rejects, by_count(outside))


def by_count(by_label: dict[str, int]) -> dict[str, int]:
    """Detections per label, most first and ties by name: one order for the console and the
    manifest, whichever engine counted them."""
    return dict(sorted(by_label.items(), key=lambda kv: (-kv[1], kv[0])))


def reidentify_file(in_path: str | os.PathLike, out_path: str | os.PathLike, vault_path: str | os.PathLike) -> StageResult:
    """``domainfm reidentify``: restore the original text of ``deid`` output (authorised users).

    Needs the vault written by ``deid --vault`` and its key in ``DOMAINFM_VAULT_KEY``. A record
    that cannot be restored (broken line, no entry in this vault, text edited since) goes to
    ``<out>.rejects.jsonl`` with the reason; a wrong key or a broken vault stops the run.
    Returns what the command prints: the counts (``read == written + rejected``) and the files.
    """
    from domainfm.corpus.io import iter_jsonl_lines
    from domainfm.deid.transform import reidentify
    from domainfm.stages import StageResult
    from domainfm.deid.vault import Vault
    from domainfm.errors import RecordError

    vault_path, out_path = Path(vault_path), Path(out_path)
    check_output_path(out_path, inputs=[in_path, vault_path])
    reject_file = rejects_path_for(out_path)
    check_output_path(reject_file, inputs=[in_path, vault_path])
    counts, first = Counts(), []
    with OutputLock(out_path):
        try:
            with Vault.open_existing(vault_path, KEY_ENV) as vault, JsonlWriter(out_path) as out, \
                    RejectWriter(reject_file) as reject_writer:
                rejects = CountingRejects(reject_writer, counts, first)
                first_line_of: dict[str, int] = {}  # a record restored twice would give the output two documents of one id
                for number, line, obj in iter_jsonl_lines(in_path):
                    location = f"{Path(in_path).name}:{number}"
                    if isinstance(obj, Rejected):
                        rejects.write(obj)
                        continue
                    record_id = obj.get("id") if isinstance(obj, dict) else None
                    if isinstance(record_id, (str, int)) and not isinstance(record_id, bool):
                        earlier = first_line_of.setdefault(str(record_id), number)
                        if earlier != number:
                            rejects.write(Rejected(f"duplicate id (already used by the record on line {earlier})",
                                                   location=location, record_id=str(record_id), raw=line))
                            continue
                    try:
                        (record,) = reidentify([obj], vault)
                    except RecordError as err:
                        err.location = err.location or location
                        rejects.write(Rejected.from_error(err, raw=line))
                        continue
                    counts.read += 1
                    out.write_obj(record)
                    counts.written += 1
        except sqlite3.Error as exc:  # a damaged file, or one another run holds: nothing is written
            if "locked" in str(exc):  # sqlite's own words for a writer that held it past the timeout
                raise ConfigError(f"{vault_path}: the vault is locked by another run (a 'domainfm deid' writing "
                                  "it?); nothing was written, re-run when that run has finished") from None
            raise ConfigError(f"{vault_path}: the vault could not be read ({type(exc).__name__}); "
                              "nothing was written") from None
        manifest = write_manifest(out_path, stage="reidentify", config={"vault": str(vault_path)},
                                  inputs=[in_path], outputs=[out_path] + ([reject_file] if counts.rejected else []),
                                  counts={**counts.to_dict(), "restored": counts.written})
    return StageResult([out_path], counts.to_dict(), manifest=manifest,
                       rejects=reject_file if counts.rejected else None, first_rejects=first)
