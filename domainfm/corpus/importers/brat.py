"""``brat``: brat standoff annotations (``doc.txt`` + ``doc.ann``).

Text-bound annotations (``T``) become spans; a discontinuous annotation becomes one span per
fragment sharing ``attrs.brat_id``. Attributes (``A``/``M``) and annotator notes (``#``) are
attached to their span; relations, events, normalisations and the attributes of events and
relations are kept in ``meta.brat`` so nothing in the file is dropped. Hidden files and
folders are skipped and counted. Two annotations of one
label listed twice or crossing are merged into their union (``attrs.merged_from``, both brat
ids in ``attrs.merged_attrs``; counted as repaired), not the document rejected. Offsets that
count a ``\r\n`` line end as one character (brat itself counts so; so does a ``.txt`` given
``\r\n`` line ends after it was annotated), recognised by annotation texts found only there and
then applied to the whole ``.ann``, are mapped onto the file as written (``attrs.repaired``). A
second value of one attribute, or a second note, stays in ``meta.brat``. A byte-order mark is
no part of a document: one before a ``.ann``'s first line is ignored, and one before a
``.txt`` is dropped from the text. brat reads the ``.txt`` as UTF-8 with the mark as its first
character, so offsets that count it move back by one; offsets that do not (a mark an editor
added after annotating), recognised by annotation texts as above, already fit the text and are
kept as they are (no span changed, so none is marked repaired).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from domainfm.corpus.document import Document, Span, merge_crossing_spans
from domainfm.corpus.importers.base import Sourced, register, visible
from domainfm.corpus.io import Rejected
from domainfm.errors import CorpusError, RecordError


@dataclass
class BratOptions:
    """Args:
    require_ann: reject a ``.txt`` without a ``.ann`` beside it (default: import it unannotated).
    """

    require_ann: bool = False


@register("brat", BratOptions, "brat standoff: a folder of .txt + .ann pairs")
def read_brat(src: Path, options: BratOptions) -> Iterator[Document | Rejected]:
    if not src.is_dir():
        raise CorpusError(f"{src}: not a folder (brat reads a folder of .txt/.ann pairs)")
    texts, skipped = visible(sorted(src.rglob("*.txt")), src)
    yield from skipped
    for txt in texts:
        rel = txt.relative_to(src)
        doc_id = rel.with_suffix("").as_posix()
        ann = txt.with_suffix(".ann")
        try:
            text = _read(txt, doc_id)
            # a byte-order mark (Windows editors write one) is no part of the document
            bom = text.startswith(_BOM)
            text = text.removeprefix(_BOM)
            if not ann.is_file():
                if options.require_ann:
                    raise RecordError("no .ann file beside the .txt", record_id=doc_id, location=rel.as_posix())
                spans, other = [], []
            else:
                spans, other = _parse_ann(_read(ann, doc_id).removeprefix(_BOM), text, doc_id,
                                          ann.relative_to(src).as_posix(), bom)
            meta = {"source_path": rel.as_posix()}
            if other:
                meta["brat"] = other
            doc = Document(doc_id, text, meta, spans=spans)
            doc.validate(location=rel.as_posix())
            yield Sourced(doc, rel.as_posix())  # a duplicate-id reject names the file
        except RecordError as err:
            yield Rejected.from_error(err)
    # annotations whose text is missing are data too: they are counted as rejects, not skipped
    with_text = {t.with_suffix(".ann") for t in texts}
    for ann in visible(sorted(src.rglob("*.ann")), src)[0]:  # a hidden one was counted with its .txt
        if ann not in with_text:
            rel = ann.relative_to(src)
            yield Rejected.from_error(RecordError("no .txt file beside the .ann: its annotations have no text",
                                                  record_id=rel.with_suffix("").as_posix(), location=rel.as_posix()))


def _read(path: Path, doc_id: str) -> str:
    try:
        # newline="" keeps \r\n as two characters: brat offsets count them.
        with open(path, encoding="utf-8", newline="") as fh:
            return fh.read()
    except UnicodeDecodeError as exc:
        raise RecordError(f"{path.name} is not valid UTF-8 (byte {exc.start})", record_id=doc_id) from None
    except OSError as exc:  # a broken link, a file without read permission, a folder named x.txt
        raise RecordError(f"{path.name} cannot be read ({_os_reason(path, exc)})", record_id=doc_id) from None


def _os_reason(path: Path, exc: OSError) -> str:
    if path.is_symlink() and not path.exists():
        return "a broken symbolic link: the file it points to does not exist"
    return type(exc).__name__


def _parse_ann(content: str, text: str, doc_id: str, where: str,
               bom: bool) -> tuple[list[Span], list[dict]]:
    """The spans and the other annotations of a ``.ann`` on ``text`` (its ``.txt`` without the
    byte-order mark, which ``bom`` says it began with)."""
    fragments: dict[str, list[Span]] = {}
    other: list[dict] = []
    attributes: list[tuple[int, str, str, str | bool, dict]] = []
    notes: list[tuple[int, str, str]] = []
    relations: list[tuple[int, dict]] = []
    plain, line_ends = _without_cr(text) if "\r\n" in text else (None, [])
    # brat reads the .txt as utf-8, not utf-8-sig: its offsets count a byte-order mark as the first
    # character. One added after annotating (an editor's save) is not counted by the offsets, which
    # then fit the text as they are: an encoding artefact was dropped, no span was repaired.
    shift = 1 if bom and _counts_bom(content, text, plain) else 0
    counted_without_cr = plain is not None and _counts_without_cr(content, text, plain, shift)
    # "\n" only: str.splitlines() also splits at a form feed or U+2028, which annotated text
    # may hold, and the line's text field would then no longer match the .txt
    for number, line in enumerate(content.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        location = f"{where}:{number}"
        fields = line.split("\t")
        ann_id = fields[0]
        # the text field is the rest of the line: annotated text may hold a TAB
        rest = "\t".join(fields[2:]) if len(fields) > 2 else None
        try:
            if ann_id.startswith("T"):
                shown = _named(ann_id, "this T line")
                if ann_id in fragments:
                    raise RecordError(f"{shown} is given twice (each text-bound annotation needs its own id)",
                                      record_id=doc_id, location=location)
                kind, _, ranges = fields[1].partition(" ")
                if not kind.strip():
                    raise RecordError(f"{shown} has no label (expected e.g. 'T1<TAB>Label START END<TAB>text')",
                                      record_id=doc_id, location=location)
                pieces = []
                for part in ranges.split(";"):
                    start, end = (int(x) for x in part.split())
                    pieces.append((start - shift, end - shift))
                repaired = {}
                if plain is not None and _matches(plain, pieces, rest) and (
                        counted_without_cr or not _matches(text, pieces, rest)):
                    # the offsets count each \r\n line end as one character: brat itself does
                    # (nlplab/brat#853), as does a .txt that got \r\n line ends after it was
                    # annotated (git's autocrlf on Windows, an editor)
                    mapped = [(_with_cr(s, line_ends), _with_cr(e, line_ends)) for s, e in pieces]
                    if mapped != pieces:
                        pieces = mapped
                        repaired = {"repaired": "offsets counted \\r\\n line ends as one character"}
                if any(not (0 <= s < e <= len(text)) for s, e in pieces):
                    raise RecordError(f"{shown} has offsets outside the text", record_id=doc_id, location=location)
                if rest is not None and " ".join(text[s:e] for s, e in pieces) != rest:
                    raise RecordError(f"{shown}: its text differs from the .txt at its offsets",
                                      record_id=doc_id, location=location)
                fragments[ann_id] = [
                    Span(s, e, kind, {"brat_id": ann_id, **({"fragment": i} if len(pieces) > 1 else {}), **repaired})
                    for i, (s, e) in enumerate(pieces)
                ]
            elif ann_id.startswith(("A", "M")):
                if len(fields[1].split()) < 2:
                    raise RecordError(f"{_named(ann_id, 'this A or M line')}: an attribute needs a name and a target "
                                      "(expected e.g. 'A1<TAB>Negated T1')", record_id=doc_id, location=location)
                name, target, *value = fields[1].split()
                line_as_read = {"id": ann_id, "annotation": fields[1]}
                attributes.append((number, target, name, value[0] if value else True, line_as_read))
            elif ann_id.startswith("#"):
                _, target = fields[1].split()[:2]
                notes.append((number, target, rest or ""))
            elif ann_id[:1] in ("R", "E", "N", "*"):
                other.append({"id": ann_id, "annotation": fields[1], **({"text": rest} if rest is not None else {})})
                if ann_id.startswith("R"):
                    relations.append((number, other[-1]))
            else:
                raise RecordError("line does not start with a brat annotation id (T1, A1, M1, R1, E1, N1, #1 or *) "
                                  "and a TAB", record_id=doc_id, location=location)
        except (IndexError, ValueError):
            raise RecordError(
                "malformed line (expected e.g. 'T1<TAB>Label START END<TAB>text')",
                record_id=doc_id, location=location,
            ) from None
    events = {o["id"] for o in other if o["id"].startswith("E")}
    known = set(fragments) | events
    for number, relation in relations:
        for arg in relation["annotation"].split()[1:]:
            target = arg.partition(":")[2]
            if target not in known:
                what = (f"links {target!r}, which no T or E line of this file defines" if _ID.fullmatch(target)
                        else "has an argument that is not a T or E id (expected e.g. 'R1<TAB>Rel Arg1:T1 Arg2:T2')")
                raise RecordError(f"{_named(relation['id'], 'this R line')} {what}", record_id=doc_id,
                                  location=f"{where}:{number}")
    # an attribute of an event or a relation stays beside it in meta.brat, as the line was written
    annotated = events | {o["id"] for o in other if o["id"].startswith("R")}
    for number, target, name, value, line_as_read in attributes:
        if target in fragments and name not in fragments[target][0].attrs:
            fragments[target] = [Span(s.start, s.end, s.label, {**s.attrs, name: value}) for s in fragments[target]]
        elif target in fragments and fragments[target][0].attrs[name] == value:
            continue  # the same attribute given twice: nothing to keep
        elif target in fragments or target in annotated:
            # a second value of one attribute (two annotators' files concatenated), or a name the
            # importer uses itself (brat_id, fragment, note): setting it would replace a value
            # without a trace, so the line stays in meta.brat as it was written
            other.append(line_as_read)
        else:
            what = (f"refers to {target!r}, which no T, E or R line of this file defines" if _ID.fullmatch(target)
                    else "has a target that is not an annotation id (expected e.g. 'A1<TAB>Negated T1')")
            raise RecordError(f"attribute {what}", record_id=doc_id, location=f"{where}:{number}")
    for number, target, note in notes:
        if target in fragments and "note" not in fragments[target][0].attrs:
            fragments[target] = [Span(s.start, s.end, s.label, {**s.attrs, "note": note}) for s in fragments[target]]
        elif target in fragments and fragments[target][0].attrs["note"] == note:
            continue
        else:  # a note on another kind of annotation, or a second note on one: it would replace the first
            other.append({"id": f"#{number}", "annotation": f"AnnotatorNotes {target}", "text": note})
    # a same-label annotation listed twice or crossing another (two annotators' versions
    # concatenated) is merged into their union, counted as repaired; both brat ids stay in
    # attrs (merged_attrs)
    spans = merge_crossing_spans(span for group in fragments.values() for span in group)
    return spans, other


def _matches(text: str, pieces: list[tuple[int, int]], written: str | None) -> bool:
    """Whether the fragments lie in ``text`` and, when the line gives its text, hold it."""
    if any(not (0 <= s < e <= len(text)) for s, e in pieces):
        return False
    return written is None or " ".join(text[s:e] for s, e in pieces) == written


def _t_lines(content: str) -> Iterator[tuple[list[tuple[int, int]], str]]:
    """The fragments and the text of each T line of a ``.ann`` that gives its text, as written;
    a malformed line is left to the parser, which rejects it with its reason."""
    for line in content.split("\n"):
        fields = line.removesuffix("\r").split("\t")
        if not fields[0].startswith("T") or len(fields) < 3:
            continue
        try:
            pieces = [(int(a), int(b)) for a, b in (p.split() for p in fields[1].partition(" ")[2].split(";"))]
        except ValueError:
            continue
        yield pieces, "\t".join(fields[2:])


def _counts_bom(content: str, text: str, plain: str | None) -> bool:
    """Whether the offsets of a .ann count the byte-order mark its .txt began with (``text`` is
    without it), as brat's own do: yes unless some T line's text is found only without counting
    it and none only by counting it. Decided once for the file, as :func:`_counts_without_cr`."""
    found_only = set()
    for pieces, written in _t_lines(content):
        shifted = [(s - 1, e - 1) for s, e in pieces]
        counted, not_counted = (
            _matches(text, p, written) or (plain is not None and _matches(plain, p, written))
            for p in (shifted, pieces)
        )
        if counted != not_counted:
            found_only.add("counted" if counted else "not_counted")
    return found_only != {"not_counted"}


def _counts_without_cr(content: str, text: str, plain: str, shift: int = 0) -> bool:
    """Whether the .ann counts each ``\r\n`` of the .txt as one character: some T line's text
    is found only that way and none only as the file is written. Decided once for the file,
    since a line whose text is found both ways (a word repeated as many characters on as there
    are line ends before it) would otherwise stay on the wrong occurrence, and a line without
    its text could not tell at all."""
    found_only = set()
    for pieces, written in _t_lines(content):
        pieces = [(s - shift, e - shift) for s, e in pieces]  # a byte-order mark the offsets count
        as_written, without_cr = _matches(text, pieces, written), _matches(plain, pieces, written)
        if as_written != without_cr:
            found_only.add("without_cr" if without_cr else "as_written")
    return found_only == {"without_cr"}


def _without_cr(text: str) -> tuple[str, list[int]]:
    """``text`` with ``\r\n`` as ``\n``, and where in it each of those line ends is, to map
    its offsets back."""
    plain = text.replace("\r\n", "\n")
    ends, at = [], 0
    for piece in text.split("\r\n")[:-1]:
        at += len(piece)
        ends.append(at)
        at += 1
    return plain, ends


def _with_cr(offset: int, ends: list[int]) -> int:
    """An offset in the text without ``\r`` as an offset in the text as written: one more for
    each ``\r\n`` line end before it."""
    return offset + bisect.bisect_left(ends, offset)


_BOM = "\ufeff"

# the shape of a brat annotation id; any other token of a line may be document text (a .txt
# saved over its .ann) and is never quoted in a message, which reaches the console and manifest
_ID = re.compile(r"[TAMREN#]\d+|\*")


def _named(token: str, otherwise: str) -> str:
    """``token`` when it is shaped like a brat id, else ``otherwise``."""
    return token if _ID.fullmatch(token) else otherwise
