"""``textdir``: one document per ``.txt`` file; id is the relative path without extension."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from domainfm.corpus.document import Document
from domainfm.corpus.importers.base import register
from domainfm.corpus.io import Rejected
from domainfm.errors import CorpusError, RecordError


@dataclass
class TextdirOptions:
    """Args:
    pattern: glob of files to read, relative to the folder.
    label_from_dir: use each file's parent folder name as its label (``class/doc.txt``).
    """

    pattern: str = "**/*.txt"
    label_from_dir: bool = False


@register("textdir", TextdirOptions, "a folder of .txt files, one document per file")
def read_textdir(src: Path, options: TextdirOptions) -> Iterator[Document | Rejected]:
    if not src.is_dir():
        raise CorpusError(f"{src}: not a folder (textdir reads a folder of .txt files)")
    for path in sorted(p for p in src.glob(options.pattern) if p.is_file()):
        rel = path.relative_to(src)
        doc_id = rel.with_suffix("").as_posix()
        try:
            data = path.read_bytes()
            try:
                # newline-preserving decode: offsets must match the file as written.
                text = data.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise RecordError(
                    f"file is not valid UTF-8 (bad byte at offset {exc.start})",
                    record_id=doc_id, location=rel.as_posix(),
                ) from None
            label = rel.parent.name if options.label_from_dir and rel.parent.name else None
            doc = Document(doc_id, text, {"source_path": rel.as_posix()}, label)
            doc.validate(location=rel.as_posix())
            yield doc
        except RecordError as err:
            yield Rejected.from_error(err)
