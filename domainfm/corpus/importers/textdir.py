"""``textdir``: one document per ``.txt`` file; id is the relative path without extension.
Hidden files and folders (``.ipynb_checkpoints/``, ``.git/``) are skipped and counted."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Iterator

from domainfm.corpus.document import Document
from domainfm.corpus.importers.base import Sourced, register, visible
from domainfm.corpus.io import Rejected
from domainfm.errors import ConfigError, CorpusError, RecordError


@dataclass
class TextdirOptions:
    """Args:
    pattern: glob of files to read, relative to the folder (no absolute path, no ``..``).
    label_from_dir: use each file's parent folder name as its label (``class/doc.txt``).
    """

    pattern: str = "**/*.txt"
    label_from_dir: bool = False

    def __post_init__(self):
        pattern = self.pattern
        if not isinstance(pattern, str) or not pattern.strip():
            raise ConfigError(f"'pattern' must be a non-empty glob such as '**/*.txt', got {pattern!r}")
        if PurePosixPath(pattern).is_absolute() or PureWindowsPath(pattern).anchor:
            raise ConfigError(
                f"'pattern' must be relative to the source folder (e.g. '**/*.txt'), got the absolute {pattern!r}"
            )
        if ".." in PureWindowsPath(pattern).parts:
            raise ConfigError(
                f"'pattern' may not contain '..' (it would read files outside the source folder), got {pattern!r}"
            )


@register("textdir", TextdirOptions, "a folder of .txt files, one document per file")
def read_textdir(src: Path, options: TextdirOptions) -> Iterator[Document | Rejected]:
    if not src.is_dir():
        raise CorpusError(f"{src}: not a folder (textdir reads a folder of .txt files)")
    try:
        # a broken link matched by the pattern is a file the user meant to import: it is rejected
        # with its reason below, not skipped
        paths = sorted(p for p in src.glob(options.pattern) if p.is_file() or (p.is_symlink() and not p.exists()))
    except ValueError as exc:  # pathlib's "'**' can only be an entire path component"
        raise ConfigError(f"'pattern' {options.pattern!r} is not a valid glob ({exc})") from None
    if not any(part.startswith(".") for part in PurePosixPath(options.pattern).parts):
        paths, skipped = visible(paths, src)  # a pattern that names a hidden folder reads it
        yield from skipped
    for path in paths:
        rel = path.relative_to(src)
        doc_id = rel.with_suffix("").as_posix()
        try:
            try:
                data = path.read_bytes()
            except OSError as exc:
                reason = ("a broken symbolic link: the file it points to does not exist"
                          if path.is_symlink() and not path.exists() else type(exc).__name__)
                raise RecordError(f"file cannot be read ({reason})", record_id=doc_id,
                                  location=rel.as_posix()) from None
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
            # the location names the file in a duplicate-id reject: a.txt and a.md share the id "a"
            yield Sourced(doc, rel.as_posix())
        except RecordError as err:
            yield Rejected.from_error(err)
