"""``conll``: IOB2-tagged tokens (``token<TAB>tag``, blank line between sentences).

Tokens are joined with single spaces and sentences with newlines, so every entity becomes an
exact character span. Documents are split at ``-DOCSTART-`` lines, or every
``sentences_per_doc`` sentences when the file has none.

A stray ``I-X`` (after ``O`` or another type) is an IOB2 slip that annotation tools and format
conversions make; it is repaired, not the whole document dropped: it starts an ``X`` entity, as
conlleval reads it, and the span says so in ``attrs["repaired"]`` (counted as ``repaired_spans``
in the manifest). Only for a type the file's ``B-`` tags use: an ``I-`` of a type no ``B-`` tag
has is more likely a swapped column (a token read as the tag) and rejects the document.

BIOES (``S-`` single, ``E-`` end) and BILOU (``U-`` unit, ``L-`` last) files read as they are
written, in every scheme: their tags say where each entity starts and ends, so an ``E-``/``L-``
continues an entity like ``I-`` and then closes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal

from domainfm.corpus.document import Document, Span
from domainfm.corpus.importers.base import Sourced, register, visible
from domainfm.corpus.io import Rejected, refuse_unreadable_text, strip_bom
from domainfm.errors import ConfigError, CorpusError, RecordError


@dataclass
class ConllOptions:
    """Args:
    sentences_per_doc: sentences grouped into one document when there is no ``-DOCSTART-``.
    scheme: ``iob2`` repairs an ``I-X`` that does not continue an ``X`` entity into an entity
        start when ``X`` is a type of the file (counted, see above); ``iob1`` reads every such
        tag as an entity start (that scheme's rule, not a repair); ``iob2-strict`` rejects the
        document instead.
    """

    sentences_per_doc: int = 10
    scheme: Literal["iob2", "iob1", "iob2-strict"] = "iob2"

    def __post_init__(self):
        if self.sentences_per_doc < 1:
            raise ConfigError(
                f"'sentences_per_doc' must be >= 1, got {self.sentences_per_doc}"
            )


@register("conll", ConllOptions, "CoNLL / IOB2 token-per-line files (a file or a folder of them)")
def read_conll(src: Path, options: ConllOptions) -> Iterator[Document | Rejected]:
    if src.is_dir():
        files, skipped = visible(sorted(p for p in src.rglob("*") if p.is_file()
                                        and p.suffix in (".tsv", ".conll", ".iob", ".txt", ".bio")), src)
        yield from skipped
        if not files:
            raise CorpusError(f"{src}: no .tsv/.conll/.iob/.bio/.txt files")
    elif src.is_file():
        refuse_unreadable_text(src)
        files = [src]
    else:
        raise CorpusError(f"{src}: no such file or folder")
    for path in files:
        yield from _read_file(path, options, prefix=path.stem if len(files) == 1 else path.relative_to(src).with_suffix("").as_posix())


def _read_file(path: Path, options: ConllOptions, prefix: str) -> Iterator[Document | Rejected]:
    doc_index = 0
    sentences: list[list[tuple[str, str, int, int]]] = []
    sentence: list[tuple[str, str, int, int]] = []  # (token, tag, line number, column of the tag)
    first_line = 1
    split_by_docstart, entity_types = _scan(path)
    lines_read: list[str] = []  # the document's lines as read, for its reject record

    def flush():
        nonlocal doc_index, sentences, lines_read
        if not sentences:
            return None
        doc_id = f"{prefix}-{doc_index:05d}"
        doc_index += 1
        location = f"{path.name}:{first_line}"
        raw = "\n".join(lines_read).strip("\n")
        lines_read = []
        try:
            item = Sourced(_build(doc_id, sentences, options, path.name, entity_types), location, raw)
        except RecordError as err:
            err.location = err.location or location
            item = Rejected.from_error(err, raw=raw)
        sentences = []
        return item

    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if number == 1:
                raw = strip_bom(raw)
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                # Marked here, rejected with its line number when the document is built.
                lines_read.append(raw.decode("utf-8", "backslashreplace").rstrip("\r\n"))
                sentence.append(("\ufffd", "__BAD_UTF8__", number, 0))
                continue
            if line.startswith("-DOCSTART-"):
                if sentence:
                    sentences.append(sentence)
                    sentence = []
                item = flush()
                if item is not None:
                    yield item
                lines_read = []
                first_line = number + 1
                continue
            lines_read.append(line)
            if not line.strip():
                if sentence:
                    sentences.append(sentence)
                    sentence = []
                    if len(sentences) >= options.sentences_per_doc and not split_by_docstart:
                        item = flush()
                        if item is not None:
                            yield item
                        first_line = number + 1
                continue
            fields = _fields(line)
            if len(fields) < 2:
                sentence.append((fields[0] if fields else "", "__NO_TAG__", number, 0))
            else:
                sentence.append((fields[0], fields[-1], number, len(fields)))
    if sentence:
        sentences.append(sentence)
    item = flush()
    if item is not None:
        yield item


def _scan(path: Path) -> tuple[bool, set[str]]:
    """Whether the file has ``-DOCSTART-`` lines, and the entity types its ``B-`` tags use
    (types an error may name: an unknown tag may be a token, i.e. PHI, and is never quoted)."""
    has_docstart, types = False, set()
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, start=1):
            if number == 1:
                line = strip_bom(line)
            if line.startswith(b"-DOCSTART-"):
                has_docstart = True
                continue
            fields = _fields(line.decode("utf-8", "replace").rstrip("\r\n"))
            if len(fields) >= 2 and fields[-1][:2] in ("B-", "S-", "U-"):
                types.add(fields[-1][2:])
    return has_docstart, types


_ASCII_SPACE = re.compile(r"[ \t\x0b\x0c]+")


def _fields(line: str) -> list[str]:
    """A line's columns: split at TABs when it has one, else at runs of ASCII blanks. Never at
    Unicode spaces, which str.split() also takes: a no-break space inside a token ("10 000")
    would cut the token short and lose the rest of it."""
    if "\t" in line:
        fields = line.split("\t")
        # a TAB at the line's end (a spreadsheet or pandas export) adds an empty last column, which
        # would be read as the tag; blanks after the tag are no column, as they are between spaces
        while len(fields) > 1 and not _ASCII_SPACE.sub("", fields[-1]):
            fields.pop()
        return fields
    return [field for field in _ASCII_SPACE.split(line) if field]


def _build(doc_id: str, sentences, options: ConllOptions, filename: str, entity_types: set[str]) -> Document:
    pieces: list[str] = []
    spans: list[Span] = []
    offset = 0
    for s_index, sentence in enumerate(sentences):
        if s_index:
            pieces.append("\n")
            offset += 1
        current: list = []  # [label, start, end]
        for t_index, (token, tag, number, column) in enumerate(sentence):
            where = f"{filename}:{number}"
            if tag == "__BAD_UTF8__":
                raise RecordError("line is not valid UTF-8", record_id=doc_id, location=where)
            if tag == "__NO_TAG__":
                raise RecordError("expected 'token<TAB>tag' (2 or more columns)", record_id=doc_id, location=where)
            if not token:
                raise RecordError("empty token", record_id=doc_id, location=where)
            if t_index:
                pieces.append(" ")
                offset += 1
            start, end = offset, offset + len(token)
            pieces.append(token)
            offset = end
            prefix, _, kind = tag.partition("-")
            if tag == "O":
                current = _close(current, spans)
            elif prefix in ("B", "S", "U") and kind:
                current = _close(current, spans)
                current = [kind, start, end]
                if prefix != "B":  # a one-token entity (BIOES S-, BILOU U-)
                    current = _close(current, spans)
            elif prefix in ("I", "E", "L") and kind:
                if current and current[0] == kind:
                    current[2] = end
                elif options.scheme == "iob1":
                    current = _close(current, spans)
                    current = [kind, start, end]
                elif options.scheme == "iob2" and kind in entity_types:
                    current = _close(current, spans)
                    current = [kind, start, end, {"repaired": f"started by an {prefix}- tag at {where} (IOB2 expects B-)"}]
                else:
                    kind_named = f"a {kind!r} entity" if kind in entity_types else "an entity of its type"
                    why = ("no B-, S- or U- tag of the file has its type: a swapped column?" if options.scheme == "iob2"
                           else "IOB2: use --scheme iob2 to repair it or iob1 to read it as an entity start")
                    raise RecordError(f"{prefix}- tag does not continue {kind_named} (column {column}; {why})",
                                      record_id=doc_id, location=where)
                if prefix in ("E", "L"):  # the entity's last token (BIOES E-, BILOU L-)
                    current = _close(current, spans)
            else:
                raise RecordError(
                    f"tag is not O or B-/I-TYPE (IOB), S-/E-TYPE (BIOES), U-/L-TYPE (BILOU) (column {column}, "
                    "the last; is the tag the last column?)",
                    record_id=doc_id, location=where,
                )
        _close(current, spans)
    meta = {"source_file": filename, "n_sentences": len(sentences)}
    doc = Document(doc_id, "".join(pieces), meta, spans=spans)
    doc.validate()
    return doc


def _close(current: list, spans: list[Span]) -> list:
    if current:
        spans.append(Span(current[1], current[2], current[0], dict(current[3]) if len(current) > 3 else {}))
    return []
