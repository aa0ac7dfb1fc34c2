"""Run the chunking stage on a file: chunks + rejects + manifest, with reconciled counts."""

from __future__ import annotations

import json
import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from domainfm.chunk.config import ChunkConfig
from domainfm.chunk.splitter import Chunk, Chunker
from domainfm.corpus.io import (Counts, CountingRejects, OutputLock, Rejected, RejectWriter, JsonlWriter, check_output_path,
                                read_located_documents, rejects_path_for)
from domainfm.manifest import write_manifest


class ChunkWriter(JsonlWriter):
    """Write chunks as JSONL; the file appears only once writing finished."""

    def __init__(self, path: str | os.PathLike):
        super().__init__(path)
        self.count = 0

    def write(self, chunk: Chunk) -> None:
        self.write_obj(chunk.to_dict())
        self.count += 1


@dataclass
class ChunkResult:
    """What :func:`chunk_file` did. ``counts`` are per *document*: read == written + rejected.

    ``empty_documents`` stays 0 (a blank document is rejected, not written) and is kept so that
    manifests keep their keys.
    """

    out: Path
    rejects: Path | None
    manifest: Path
    counts: Counts
    chunks: int = 0
    empty_documents: int = 0
    spans_outside_chunks: int = 0
    max_chunk_tokens: int = 0
    first_rejects: list[str] = field(default_factory=list)


def chunk_file(
    in_path: str | os.PathLike,
    out_path: str | os.PathLike,
    config: ChunkConfig,
    *,
    tokenizer=None,
    on_progress: Callable[[Counts], None] | None = None,
) -> ChunkResult:
    """Chunk the documents of a domainfm JSONL file into a JSONL file of chunks.

    Invalid input records, documents whose text is empty or only whitespace (``empty text:
    nothing to chunk``) and documents that cannot be chunked go to ``<out>.rejects.jsonl``, so
    every document written has at least one chunk. A manifest (``<out>.manifest.json``) records
    the config, input hash and counts.

    Example:
        >>> result = chunk_file("notes.jsonl", "chunks.jsonl", ChunkConfig(profile="clinical"))  # doctest: +SKIP
        >>> result.counts.reconciles
        True
    """
    in_path, out_path = Path(in_path), Path(out_path)
    check_output_path(out_path, inputs=[in_path])
    check_output_path(rejects_path_for(out_path), inputs=[in_path])
    chunker = Chunker(config, tokenizer)  # tokenizer and budget errors before any file is opened
    counts = Counts()
    result = ChunkResult(out_path, None, out_path, counts)
    rejects_file = rejects_path_for(out_path)

    with OutputLock(out_path):
        with ChunkWriter(out_path) as chunks_out, RejectWriter(rejects_file) as rejects_out:

            sink = CountingRejects(rejects_out, counts, result.first_rejects)
            reject = sink.write

            located = deque()  # (id, file:line) of the documents the chunker has been given

            def docs():
                for location, doc in read_located_documents(in_path, rejects=sink):
                    located.append((doc.id, location))
                    yield doc

            for doc_result in chunker.iter_documents(docs(), reject_empty=True):
                while located and located[0][0] != doc_result.doc.id:
                    located.popleft()
                location = located.popleft()[1] if located else None
                if doc_result.error is not None:
                    err = doc_result.error
                    raw = json.dumps(doc_result.doc.to_dict(), ensure_ascii=False)
                    reject(Rejected(err.reason, location=err.location or location, record_id=doc_result.doc.id,
                                    raw=raw))
                    continue
                counts.read += 1
                counts.written += 1
                for chunk in doc_result.chunks:
                    chunks_out.write(chunk)
                    result.max_chunk_tokens = max(result.max_chunk_tokens, chunk.n_tokens)
                result.spans_outside_chunks += doc_result.spans_outside
                if on_progress is not None and counts.read % 100 == 0:
                    on_progress(counts)
        if on_progress is not None:
            on_progress(counts)
        assert counts.reconciles, counts  # every record read is either chunked or rejected
        result.chunks = chunks_out.count
        result.rejects = rejects_file if counts.rejected else None
        manifest_counts = {
            **counts.to_dict(), "chunks": result.chunks, "empty_documents": result.empty_documents,
            "spans_outside_chunks": result.spans_outside_chunks, "max_chunk_tokens": result.max_chunk_tokens,
        }
        result.manifest = write_manifest(
            out_path, stage="chunk", config=config, inputs=[in_path],
            outputs=[out_path] + ([rejects_file] if counts.rejected else []), counts=manifest_counts,
        )
        return result
