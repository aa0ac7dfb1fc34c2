"""``physionet``: the PhysioNet deid corpus (``id.text`` + ``id-phi.phrase``).

``id.text`` holds records ``START_OF_RECORD=<patient>||||<note>||||\\n<body>||||END_OF_RECORD``;
``id-phi.phrase`` lists gold PHI as ``<patient> <note> <start> <end> <type> <text>`` with
0-based offsets into the body. Every gold span's text is checked against the body; same-type
gold spans that cross, or a gold line listed twice, are merged into their union (counted as
``repaired_spans`` in the manifest). ``id.text`` is read as written: with ``\r\n`` line ends the
body keeps its ``\r`` characters, which the offsets count; a byte order mark is dropped. The
gold file is an input of the import (an output may not overwrite it; the manifest hashes it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from domainfm.corpus.document import Document, Span, merge_crossing_spans
from domainfm.corpus.importers.base import register
from domainfm.corpus.io import Rejected, strip_bom
from domainfm.errors import CorpusError, RecordError

# \r?\n: a file saved with Windows line ends; its body starts after the \r\n
_HEADER = re.compile(r"START_OF_RECORD=([^|\n]+)\|\|\|\|([^|\n]+)\|\|\|\|\r?\n")
_END = "||||END_OF_RECORD"


@dataclass
class PhysionetOptions:
    """Args:
    phi: gold annotation file; default ``id-phi.phrase`` beside ``id.text`` when present.
    """

    phi: str | None = None


def _phi_path(src: Path, options: PhysionetOptions) -> Path:
    """The gold file: ``--phi``, else ``id-phi.phrase`` beside ``id.text``."""
    text_path = src / "id.text" if src.is_dir() else src
    return Path(options.phi) if options.phi else text_path.with_name("id-phi.phrase")


def _gold_input(src: Path, options: PhysionetOptions) -> list[Path]:
    """The gold file is an input: an output named like it would overwrite the gold PHI."""
    phi_path = _phi_path(src, options)
    return [phi_path] if options.phi or phi_path.is_file() else []


@register("physionet", PhysionetOptions, "PhysioNet deid id.text (+ id-phi.phrase gold PHI)", inputs=_gold_input)
def read_physionet(src: Path, options: PhysionetOptions) -> Iterator[Document | Rejected]:
    text_path = src / "id.text" if src.is_dir() else src
    if not text_path.is_file():
        raise CorpusError(f"{src}: no id.text found (give the file or the folder holding it)")
    phi_path = _phi_path(src, options)
    if options.phi and not phi_path.is_file():
        raise CorpusError(f"{phi_path}: no such PHI file (option 'phi')")
    gold = _read_phrases(phi_path) if phi_path.is_file() else {}
    try:
        # bytes as written, \r\n kept: gold offsets count every character of the body. A byte
        # order mark only precedes the first record, so no offset moves with it.
        content = strip_bom(text_path.read_bytes()).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{text_path.name}: not valid UTF-8 (byte offset {exc.start})") from None

    pos = 0
    line, counted_to = 1, 0  # line numbers counted incrementally: recounting from 0 is quadratic

    def line_at(offset: int) -> int:
        nonlocal line, counted_to
        line += content.count("\n", counted_to, offset)
        counted_to = offset
        return line

    def between(start: int, stop: int, last: bool) -> Iterator[Rejected]:
        """Reject what lies between two records: a record whose header does not parse, or text
        outside any record. Skipping it would lose a note without a trace."""
        while True:
            while start < stop and content[start].isspace():
                start += 1
            if start >= stop:
                return
            if content.startswith("START_OF_RECORD=", start):
                end = content.find(_END, start, stop)
                end = stop if end < 0 else end + len(_END)
                reason = "record header is not 'START_OF_RECORD=<patient>||||<note>||||' on a line of its own"
            else:
                end = content.find("START_OF_RECORD=", start, stop)
                end = stop if end < 0 else end
                reason = ("text after the last record is not a START_OF_RECORD block" if last and end == stop
                          else "text between records is not a START_OF_RECORD block")
            yield Rejected(reason, location=f"{text_path.name}:{line_at(start)}",
                           raw=content[start:end].strip("\r\n"))
            start = end

    while True:
        match = _HEADER.search(content, pos)
        if not match:
            yield from between(pos, len(content), last=True)
            break
        yield from between(pos, match.start(), last=False)
        location = f"{text_path.name}:{line_at(match.start())}"
        patient, note = match.group(1).strip(), match.group(2).strip()
        doc_id = f"{patient}-{note}"
        body_start = match.end()
        end = content.find(_END, body_start)
        next_start = content.find("START_OF_RECORD=", body_start)
        if end < 0 or (0 <= next_start < end):
            stop = next_start if next_start >= 0 else len(content)
            # the record as read goes to the reject file, where it can be mended and imported again
            yield Rejected("record has no ||||END_OF_RECORD marker", location=location, record_id=doc_id,
                           raw=content[match.start():stop])
            pos = stop
            continue
        pos = end + len(_END)
        body = content[body_start:end]
        phrases = gold.pop((patient, note), [])
        try:
            spans = []
            for phrase_line, start, stop, kind, expected in phrases:
                if not (0 <= start < stop <= len(body)) or body[start:stop] != expected:
                    raise RecordError(
                        f"gold PHI at {phi_path.name}:{phrase_line} ({kind} [{start}:{stop}]) does not "
                        "match the note text at those offsets",
                        record_id=doc_id, location=location,
                    )
                spans.append(Span(start, stop, kind))
            meta = {"patient_id": patient, "note_id": note, "source": "physionet-deid"}
            # crossing gold spans of one type (two Location phrases sharing words) are merged into
            # their union rather than losing the note; the originals stay in attrs["merged_from"]
            doc = Document(doc_id, body, meta, spans=merge_crossing_spans(spans))
            doc.validate(location=location)
            yield doc
        except RecordError as err:
            yield Rejected.from_error(err, raw=content[match.start():pos])
    for (patient, note), phrases in sorted(gold.items()):
        yield Rejected(
            f"{len(phrases)} gold PHI line(s) name a record that id.text does not contain",
            location=f"{phi_path.name}:{phrases[0][0]}", record_id=f"{patient}-{note}",
        )


def _read_phrases(path: Path) -> dict[tuple[str, str], list[tuple[int, int, int, str, str]]]:
    gold: dict[tuple[str, str], list[tuple[int, int, int, str, str]]] = {}
    with open(path, "rb") as fh:
        for number, data in enumerate(fh, start=1):
            try:
                # Windows line ends and a byte order mark too
                line = (strip_bom(data) if number == 1 else data).decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise CorpusError(f"{path.name}:{number}: not valid UTF-8 (byte {exc.start} of the line)") from None
            if not line.strip():
                continue
            parts = line.split(" ", 5)
            if len(parts) < 6 or not parts[2].isdigit() or not parts[3].isdigit():
                raise CorpusError(
                    f"{path.name}:{number}: expected '<patient> <note> <start> <end> <type> <text>'"
                )
            patient, note, start, stop, kind, text = parts
            gold.setdefault((patient, note), []).append((number, int(start), int(stop), kind, text))
    return gold
