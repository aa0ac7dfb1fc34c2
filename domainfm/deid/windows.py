"""Detection in overlapping windows, for documents longer than spaCy takes at once.

spaCy refuses a text over ``nlp.max_length`` (1,000,000 characters; error E088), and one such
document would otherwise stop a whole ``deid`` run. A long document is cut into windows of at
most ``WINDOW_CHARS`` characters that overlap by ``OVERLAP_CHARS``, each cut at a paragraph,
line or word break. Every window is detected like a document of its own; its detections are
shifted back to document offsets, and each window keeps only the detections that start in the
part it owns (the first half of an overlap belongs to the window before, the second half to the
window after), so a name cut by a window edge is found whole by the neighbouring window, and no
detection is counted twice. Name propagation then runs on the whole document, so a name found
in one window is replaced wherever it recurs in the others.

Example:
    >>> windows = plan_windows(12, size=8, overlap=2)
    >>> [(w.start, w.end) for w in windows]
    [(0, 8), (6, 12)]
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Iterator

from domainfm.corpus.document import Document

# Well under spaCy's 1,000,000: the parser's memory grows with the text, and a window this size
# costs the same per character as an ordinary long note.
WINDOW_CHARS = 100_000
OVERLAP_CHARS = 2_000
_BREAKS = ("\n\n", "\n", ". ", " ")


@dataclass(frozen=True, slots=True)
class Window:
    """``text[start:end]`` is detected; detections starting in ``[own_start, own_end)`` are kept."""

    start: int
    end: int
    own_start: int
    own_end: int


def plan_windows(length: int, *, size: int = WINDOW_CHARS, overlap: int = OVERLAP_CHARS,
                 text: str | None = None) -> list[Window]:
    """Windows covering ``length`` characters; with ``text``, cuts move back to a break.

    Raises:
        ValueError: ``overlap`` is not smaller than half of ``size``.
    """
    if not 0 <= overlap < size // 2:
        raise ValueError(f"overlap ({overlap}) must be >= 0 and under half the window size ({size})")
    if length <= size:
        return [Window(0, length, 0, length)]
    cuts: list[tuple[int, int]] = []
    start = 0
    while True:
        end = min(start + size, length)
        if end < length and text is not None:
            end = _break_before(text, start + size // 2, end)
        cuts.append((start, end))
        if end >= length:
            break
        start = end - overlap
    windows = []
    for i, (start, end) in enumerate(cuts):
        own_start = 0 if i == 0 else (cuts[i - 1][1] + start) // 2
        own_end = length if i == len(cuts) - 1 else (end + cuts[i + 1][0]) // 2
        windows.append(Window(start, end, own_start, own_end))
    return windows


def _break_before(text: str, lowest: int, end: int) -> int:
    """The last paragraph, line, sentence or word break in ``text[lowest:end]`` (cut after it),
    or ``end`` when the stretch has none."""
    for mark in _BREAKS:
        at = text.rfind(mark, lowest, end)
        if at > lowest:
            return at + len(mark)
    return end


class Windowed:
    """Splits long documents into window documents before detection and joins the results.

    Use :meth:`split` on the document stream given to a detector and :meth:`join` on the
    ``(document, detections)`` stream it returns; documents come back whole and in order.
    Detection must keep the input order (it does, serial or in worker processes).
    """

    def __init__(self, *, size: int | None = None, overlap: int | None = None):
        self.size = WINDOW_CHARS if size is None else size
        self.overlap = OVERLAP_CHARS if overlap is None else overlap
        self._plans: deque[tuple[Document, list[Window] | None]] = deque()

    def split(self, docs: Iterable[Document]) -> Iterator[Document]:
        for doc in docs:
            if len(doc.text) <= self.size:
                self._plans.append((doc, None))
                yield doc
                continue
            windows = plan_windows(len(doc.text), size=self.size, overlap=self.overlap, text=doc.text)
            self._plans.append((doc, windows))
            for w in windows:
                yield Document(id=doc.id, text=doc.text[w.start:w.end], meta=doc.meta)

    def join(self, pairs: Iterable[tuple[Document, list]]) -> Iterator[tuple[Document, list]]:
        from domainfm.deid.detection import merge_detections

        pairs = iter(pairs)
        for _, found in pairs:
            doc, windows = self._plans.popleft()
            if windows is None:
                yield doc, found
                continue
            detections = []
            for i, w in enumerate(windows):
                if i:
                    _, found = next(pairs)
                detections += [replace(d, start=d.start + w.start, end=d.end + w.start) for d in found
                               if w.own_start <= d.start + w.start < w.own_end]
            yield doc, merge_detections(doc.text, detections)


def detect_windowed(detect: Callable[[Iterable[Document]], Iterable[tuple[Document, list]]],
                    docs: Iterable[Document], *, size: int | None = None,
                    overlap: int | None = None) -> Iterator[tuple[Document, list]]:
    """Run ``detect`` (a document stream -> ``(document, detections)`` stream) with long
    documents cut into windows (default sizes: ``WINDOW_CHARS``, ``OVERLAP_CHARS``); yields every
    input document once, whole, with its detections."""
    windowed = Windowed(size=size, overlap=overlap)
    yield from windowed.join(detect(windowed.split(docs)))
