"""The domainfm chunker as a LangChain ``TextSplitter``, for LangChain users to drop in.

``DomainTextSplitter(ChunkConfig(max_tokens=256, overlap=32, profile="clinical"))`` splits at
section, paragraph and sentence boundaries and never overflows ``max_tokens`` model positions
(special tokens included). Unlike LangChain's own ``add_start_index``, which searches for each
chunk's text again (and can land on an earlier repeat of it), ``start_index`` here is the exact
offset the chunker computed: ``text[start_index:end_index] == page_content``, always.
"""

from __future__ import annotations

from typing import Any, Sequence

try:
    from langchain_core.documents import Document as LCDocument
    from langchain_text_splitters import TextSplitter
except ImportError as missing:  # an optional integration: the core package does not pull LangChain in
    raise ImportError("the LangChain splitter needs langchain-text-splitters: pip install 'domainfm[langchain]'") \
        from missing

from domainfm.chunk.config import ChunkConfig
from domainfm.chunk.splitter import Chunker
from domainfm.corpus.document import Document


class DomainTextSplitter(TextSplitter):
    """A LangChain text splitter backed by :class:`~domainfm.chunk.splitter.Chunker`.

    Args:
        config: the chunk settings (default ``ChunkConfig()``: MiniLM, 512 positions, 64 overlap).
        tokenizer: an already loaded fast tokenizer (default: ``config.tokenizer``).
        add_start_index: put ``start_index`` (and ``end_index``, ``n_tokens``, ``section``) in
            each chunk's metadata.

    Example:
        >>> splitter = DomainTextSplitter(ChunkConfig(max_tokens=128, overlap=16))  # doctest: +SKIP
        >>> docs = splitter.create_documents([note_text], [{"source": "note-1"}])  # doctest: +SKIP
    """

    def __init__(self, config: ChunkConfig | None = None, *, tokenizer: Any = None, add_start_index: bool = True):
        config = config or ChunkConfig()
        chunker = Chunker(config, tokenizer)
        super().__init__(chunk_size=config.max_tokens, chunk_overlap=config.overlap,
                         length_function=lambda text: chunker.count_tokens([text])[0],
                         add_start_index=add_start_index, strip_whitespace=False)
        self.chunker = chunker

    def split_text(self, text: str) -> list[str]:
        return [chunk.text for chunk in self._chunks(text)]

    def create_documents(self, texts: list[str], metadatas: list[dict[Any, Any]] | None = None) -> list[LCDocument]:
        if metadatas is not None and len(metadatas) != len(texts):
            raise ValueError(f"create_documents: {len(texts)} texts but {len(metadatas)} metadatas")
        out = []
        for i, text in enumerate(texts):
            for chunk in self._chunks(text):
                metadata = dict(metadatas[i]) if metadatas else {}
                if self._add_start_index:
                    metadata.update(start_index=chunk.start, end_index=chunk.end, n_tokens=chunk.n_tokens,
                                    section=chunk.section)
                out.append(LCDocument(page_content=chunk.text, metadata=metadata))
        return out

    def _chunks(self, text: str) -> Sequence:
        return self.chunker.chunk(Document(id="text", text=text))
