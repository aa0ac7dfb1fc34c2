"""Document model, streaming JSONL IO and importers."""

from domainfm.corpus.document import Document, Span
from domainfm.corpus.importing import ImportConfig, ImportResult, import_corpus
from domainfm.corpus.io import (Counts, DocumentWriter, JsonlWriter, Rejected, RejectWriter, read_documents,
                                write_documents)
from domainfm.corpus.summary import CorpusSummary, summarize

__all__ = [
    "Counts", "CorpusSummary", "Document", "DocumentWriter", "ImportConfig", "ImportResult", "JsonlWriter",
    "RejectWriter", "Rejected", "Span", "import_corpus", "read_documents", "summarize",
    "write_documents",
]
