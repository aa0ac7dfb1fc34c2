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
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from domainfm.corpus.document import Document
from domainfm.corpus.io import Counts, Rejected, RejectWriter, _AtomicLines, read_documents, rejects_path_for
from domainfm.deid.config import DeidConfig
from domainfm.errors import CorpusError
from domainfm.manifest import write_manifest

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
) -> Iterator:
    """De-identify a stream of documents; yields ``TransformedRecord`` or ``Rejected`` items.

    Example:
        >>> records = deidentify(read_documents("notes.jsonl"), DeidConfig(operator="tag"))  # doctest: +SKIP
    """
    from domainfm.deid.surrogates import SurrogateGenerator
    from domainfm.deid.transform import transform_documents

    surrogates = None
    if config.operator == "surrogate":
        surrogates = SurrogateGenerator(secret or secrets.token_bytes(32), vault)
    from domainfm.deid.propagate import propagate_names

    pairs = detect_parallel(docs, config) if config.workers > 1 else _detect_serial(docs, config)
    pairs = propagate_names(pairs)
    yield from transform_documents(pairs, config.operator, surrogates, vault=vault, counts=counts)


def _detect_serial(docs: Iterable[Document], config: DeidConfig):
    from domainfm.deid.engine import PhiDetector

    return PhiDetector(config).detect(docs)


# --- parallel detection: one detector per worker process, results in input order -------------

_WORKER_DETECTOR = None


def _init_worker(config: DeidConfig) -> None:
    global _WORKER_DETECTOR
    from dataclasses import replace

    from domainfm.deid.engine import PhiDetector

    if config.ner_model:  # the workers share the cores: one torch thread pool each would oversubscribe them
        import os

        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // config.workers))
    _WORKER_DETECTOR = PhiDetector(replace(config, workers=1))


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


class _CountingRejects:
    """Reject sink for invalid input lines: counts them and writes them to the reject file."""

    def __init__(self, writer: RejectWriter, counts: Counts, first: list[str]):
        self.writer, self.counts, self.first = writer, counts, first

    def write(self, item: Rejected) -> None:
        self.counts.read += 1
        self.counts.add_reject(item.reason)
        if len(self.first) < 5:
            self.first.append(item.describe())
        # Invalid input lines keep their raw text: the reject file is as sensitive as the input.
        self.writer.write(item)


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
    from domainfm.deid.transform import TransformedRecord

    in_path, out_path = Path(in_path), Path(out_path)
    if in_path.exists() and out_path.exists() and in_path.resolve() == out_path.resolve():
        raise CorpusError(f"{out_path}: the output would overwrite the input; choose another -o path")
    secret, key_source = surrogate_secret(config, seed)
    vault = None
    if config.vault is not None:
        from domainfm.deid.vault import Vault

        vault = Vault(config.vault, secret)
    input_counts, transform_counts = Counts(), Counts()
    first_rejects: list[str] = []
    by_label: dict[str, int] = {}
    reject_file = rejects_path_for(out_path)
    try:
        with _AtomicLines(out_path) as out, RejectWriter(reject_file) as rejects:
            sink = _CountingRejects(rejects, input_counts, first_rejects)
            docs = read_documents(in_path, rejects=sink)
            for item in deidentify(docs, config, secret=secret, vault=vault, counts=transform_counts):
                if isinstance(item, TransformedRecord):
                    out.write_obj(item.to_dict())
                    for span in item.phi_spans:
                        label = span["label"] if isinstance(span, dict) else span.label
                        by_label[label] = by_label.get(label, 0) + 1
                else:
                    if len(first_rejects) < 5:
                        first_rejects.append(item.describe())
                    rejects.write(item)
                if on_progress is not None and transform_counts.read % 50 == 0:
                    on_progress(input_counts.merge(transform_counts))
    finally:
        if vault is not None:
            vault.close()
    counts = input_counts.merge(transform_counts)
    assert counts.reconciles, counts
    manifest = write_manifest(
        out_path, stage="deid", config=config, inputs=[in_path],
        outputs=[out_path] + ([reject_file] if counts.rejected else []),
        counts={**counts.to_dict(), "detections": sum(by_label.values()), "detections_by_label": by_label},
        extra={"surrogate_key": key_source},
    )
    return DeidResult(out_path, reject_file if counts.rejected else None, manifest, counts,
                      sum(by_label.values()), dict(sorted(by_label.items(), key=lambda kv: -kv[1])),
                      key_source, first_rejects)


def reidentify_file(in_path: str | os.PathLike, out_path: str | os.PathLike, vault_path: str | os.PathLike) -> int:
    """``domainfm reidentify``: restore the original text of ``deid`` output (authorised users).

    Needs the vault written by ``deid --vault`` and its key in ``DOMAINFM_VAULT_KEY``.
    Returns the number of records restored.
    """
    from domainfm.corpus.io import iter_jsonl_objects
    from domainfm.deid.transform import reidentify
    from domainfm.deid.vault import Vault
    from domainfm.errors import RecordError

    vault_path = Path(vault_path)
    if not vault_path.is_file():
        raise CorpusError(f"{vault_path}: no such vault (written by 'domainfm deid --vault PATH')")

    def records():
        for number, obj in iter_jsonl_objects(in_path):
            if isinstance(obj, Rejected):
                raise RecordError(obj.reason, location=obj.location)
            yield obj

    n = 0
    with Vault.from_env(vault_path, KEY_ENV) as vault, _AtomicLines(out_path) as out:
        for record in reidentify(records(), vault):
            out.write_obj(record)
            n += 1
    write_manifest(out_path, stage="reidentify", config={"vault": str(vault_path)}, inputs=[in_path],
                   outputs=[out_path], counts={"restored": n})
    return n
