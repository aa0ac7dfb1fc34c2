"""A text builder that records gold span offsets while the text is being written.

Generators append literal pieces and entity pieces in order; each entity's offsets are taken
from the builder's running length at the moment it is appended. Offsets are therefore exact by
construction, and no generator ever searches the finished text for a string (which would find
the wrong occurrence of a common name or date).

Example:
    >>> b = TextBuilder()
    >>> _ = b.fmt("Seen by {doc} on {day}.", doc=["Dr. ", Ent("Lee", "DOCTOR")], day="Monday")
    >>> b.text, [(s.start, s.end, s.label) for s in b.spans]
    ('Seen by Dr. Lee on Monday.', [(12, 15, 'DOCTOR')])
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Any

from domainfm.corpus.document import Document, Span

_FORMATTER = string.Formatter()


@dataclass(frozen=True, slots=True)
class Ent:
    """A piece of text that becomes a gold span when appended.

    Args:
        text: the surface string written into the document.
        label: the span label (``"PATIENT"``, ``"PERSON"``...).
        attrs: span attributes, copied onto the span.
    """

    text: str
    label: str
    attrs: dict[str, Any] = field(default_factory=dict)


class TextBuilder:
    """Append-only text with spans recorded at append time.

    Args:
        upper: write every piece in upper case (terse all-caps nursing notes). Pieces whose
            upper-case form changes length are kept as written so offsets stay exact.
    """

    def __init__(self, *, upper: bool = False):
        self._parts: list[str] = []
        self._length = 0
        self._open: dict[int, tuple[int, str, dict[str, Any]]] = {}
        self._next_token = 0
        self.upper = upper
        self.spans: list[Span] = []

    def __len__(self) -> int:
        return self._length

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def add(self, piece: str) -> TextBuilder:
        """Append plain text (no span)."""
        if self.upper and len(piece.upper()) == len(piece):
            piece = piece.upper()
        self._parts.append(piece)
        self._length += len(piece)
        return self

    def ent(self, text: str, label: str, **attrs: Any) -> TextBuilder:
        """Append ``text`` and record it as a span labelled ``label``."""
        return self.put(Ent(text, label, attrs))

    def put(self, piece: str | Ent) -> TextBuilder:
        """Append a plain string or an :class:`Ent`; surrounding whitespace of an entity is
        written but left out of its span, so spans never start or end on a space."""
        if isinstance(piece, str):
            return self.add(piece)
        core = piece.text.strip()
        if not core:
            return self.add(piece.text)
        lead = piece.text[: len(piece.text) - len(piece.text.lstrip())]
        trail = piece.text[len(lead) + len(core):]
        self.add(lead)
        start = self._length
        self.add(core)
        self.spans.append(Span(start, self._length, piece.label, dict(piece.attrs)))
        return self.add(trail)

    def fmt(self, template: str, **values: Any) -> TextBuilder:
        """Append ``template`` with ``{name}`` fields filled from ``values``; fields given an
        :class:`Ent` become spans at their exact position, and a list or tuple of pieces is
        appended piece by piece (``["Dr. ", Ent("Lee", "DOCTOR")]``)."""
        for literal, name, spec, conversion in _FORMATTER.parse(template):
            if literal:
                self.add(literal)
            if name is None:
                continue
            value = values[name]
            if isinstance(value, Ent):
                self.put(value)
            elif isinstance(value, (list, tuple)):
                for piece in value:
                    self.put(piece)
            else:
                self.add(format(value, spec or ""))
        return self

    def line(self, template: str = "", **values: Any) -> TextBuilder:
        """:meth:`fmt` followed by a newline."""
        return self.fmt(template, **values).add("\n")

    def begin(self, label: str, **attrs: Any) -> int:
        """Open a span that covers everything appended until :meth:`end` (clauses, sections)."""
        token = self._next_token
        self._next_token += 1
        self._open[token] = (self._length, label, attrs)
        return token

    def end(self, token: int) -> None:
        """Close a span opened by :meth:`begin`, trimmed of surrounding whitespace."""
        start, label, attrs = self._open.pop(token)
        text = self.text
        end = self._length
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            self.spans.append(Span(start, end, label, dict(attrs)))

    def document(self, doc_id: str, **fields: Any) -> Document:
        """The finished :class:`Document`, spans sorted by position; validated before return."""
        if self._open:
            raise RuntimeError(f"{len(self._open)} span(s) opened with begin() were never closed")
        spans = sorted(self.spans, key=lambda s: (s.start, -s.end, s.label))
        doc = Document(id=doc_id, text=self.text, spans=spans, **fields)
        doc.validate()
        return doc
