"""Chunk documents to fit a model: token-exact, structure-aware, mapped back character for character.

Example:
    >>> from domainfm.chunk import ChunkConfig, chunk_documents
    >>> cfg = ChunkConfig(tokenizer="minilm", max_tokens=512, overlap=64, profile="legal")
    >>> chunks = list(chunk_documents(docs, cfg))  # doctest: +SKIP
    >>> all(c.text == doc.text[c.start:c.end] and c.n_tokens <= 512 for c in chunks)  # doctest: +SKIP
    True
"""

from domainfm.chunk.config import ChunkConfig
from domainfm.chunk.reassemble import (
    aggregate_predictions,
    merge_char_attributions,
    merge_token_attributions,
    project_spans,
)
from domainfm.chunk.runner import ChunkResult, chunk_file
from domainfm.chunk.sections import SECTIONIZERS, Heading, Section, get_sectionizer, register_sectionizer, sectionize
from domainfm.chunk.splitter import Chunk, Chunker, chunk_documents, load_chunk_tokenizer

__all__ = [
    "SECTIONIZERS",
    "Chunk",
    "ChunkConfig",
    "ChunkResult",
    "Chunker",
    "Heading",
    "Section",
    "aggregate_predictions",
    "chunk_documents",
    "chunk_file",
    "get_sectionizer",
    "load_chunk_tokenizer",
    "merge_char_attributions",
    "merge_token_attributions",
    "project_spans",
    "register_sectionizer",
    "sectionize",
]
