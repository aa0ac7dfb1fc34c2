"""domainfm: adapt foundation models to clinical and legal text, privately.

The stages (import, deid, chunk, pretrain, finetune, audit, label) each expose an importable
function that the ``domainfm`` command line wraps.
"""

__version__ = "0.1.0"

from domainfm.corpus import Document, Span, import_corpus, read_documents, write_documents  # noqa: E402
from domainfm.errors import ConfigError, CorpusError, DomainFMError, RecordError  # noqa: E402

__all__ = [
    "ConfigError",
    "CorpusError",
    "Document",
    "DomainFMError",
    "RecordError",
    "Span",
    "__version__",
    "import_corpus",
    "read_documents",
    "write_documents",
]
