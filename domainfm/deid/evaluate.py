"""Score PHI detections against gold spans: entity level (any-overlap and exact), character
level, overall and per type, plus a list of misses for error analysis.

Headline numbers are **type-agnostic**: a gold PHI span counts as found when any prediction
overlaps it, whatever its label (a name tagged LOCATION is still hidden by de-identification).
Typed numbers per coarse type (see :mod:`domainfm.deid.labels`) are reported beside them.

Precision counts predicted spans: a prediction is correct when it overlaps a (kept) gold span.
Gold spans can be filtered first, e.g. TAB's DIRECT identifiers only (:func:`identifier_filter`);
a prediction overlapping only a filtered-out span then counts as a false positive.

Misses are listed by document id, offsets and gold type. Their text is included only when
``include_text=True`` and is then written to the ``misses_path`` file, never returned in the
summary or printed: the gold text is PHI.

Example:
    >>> gold = [Document("d", "Seen by Dr Lee on 7/22.", spans=[Span(11, 14, "HCPName"), Span(18, 22, "Date")])]
    >>> report = evaluate(gold, {"d": [(11, 14, "DOCTOR")]}, dataset="physionet")
    >>> report.summary()["any_overlap"]["recall"]
    0.5
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from array import array
from contextlib import closing
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Mapping

from domainfm.config import suggest
from domainfm.corpus.document import Document, Span, describe_type
from domainfm.corpus.grouping import has_patient
from domainfm.deid.labels import coarse, to_canonical
from domainfm.errors import ConfigError, CorpusError

MATCHING_NOTE = ("headline scores are type-agnostic: a gold PHI span found under another label "
                 "still counts as found; per_type holds typed scores")

GoldFilter = Callable[[Span], bool]

#: the values of a gold span's ``attrs.identifier_type`` (TAB's annotation levels)
IDENTIFIER_TYPES = ("DIRECT", "QUASI", "NO_MASK")


def identifier_filter(levels: Iterable[str] = ("DIRECT",)) -> GoldFilter:
    """Keep gold spans whose ``attrs.identifier_type`` is in ``levels`` (TAB: DIRECT, QUASI).

    Raises:
        ConfigError: a level is not one of :data:`IDENTIFIER_TYPES`, or none is given.
    """
    wanted = {str(level).strip().upper() for level in levels}
    for level in sorted(wanted):
        if level not in IDENTIFIER_TYPES:
            raise ConfigError(f"unknown identifier type {level!r}{suggest(level, IDENTIFIER_TYPES)}; the gold spans' "
                              f"attrs.identifier_type is one of {', '.join(IDENTIFIER_TYPES)}")
    if not wanted:
        raise ConfigError(f"no identifier type given; choose from {', '.join(IDENTIFIER_TYPES)}")
    return lambda span: str(span.attrs.get("identifier_type", "")).upper() in wanted


@dataclass(frozen=True, slots=True)
class _Item:
    start: int
    end: int
    type: str  # coarse type


@dataclass
class EvalReport:
    """Counts behind the scores; :meth:`summary` gives the JSON-ready numbers."""

    n_docs: int = 0
    gold: int = 0
    pred: int = 0
    overlap_gold_found: int = 0
    overlap_pred_correct: int = 0
    exact_gold_found: int = 0
    exact_pred_correct: int = 0
    char_gold: int = 0
    char_pred: int = 0
    char_overlap: int = 0
    per_type: dict[str, dict[str, int]] = field(default_factory=dict)
    misses: list[dict[str, Any]] = field(default_factory=list)
    false_positives: list[dict[str, Any]] = field(default_factory=list)

    def _type(self, name: str) -> dict[str, int]:
        return self.per_type.setdefault(name, {"gold": 0, "found_any_label": 0, "found_same_type": 0,
                                               "pred": 0, "pred_correct_same_type": 0})

    def summary(self) -> dict[str, Any]:
        per_type = {}
        for name, c in sorted(self.per_type.items()):
            per_type[name] = {
                "gold": c["gold"], "pred": c["pred"],
                "recall_any_label": _ratio(c["found_any_label"], c["gold"]),
                "recall": _ratio(c["found_same_type"], c["gold"]),
                "precision": _ratio(c["pred_correct_same_type"], c["pred"]),
            }
        return {
            "matching": MATCHING_NOTE,
            "docs": self.n_docs, "gold": self.gold, "pred": self.pred,
            "any_overlap": _scores(self.overlap_pred_correct, self.pred, self.overlap_gold_found, self.gold),
            "exact": _scores(self.exact_pred_correct, self.pred, self.exact_gold_found, self.gold),
            "char": _scores(self.char_overlap, self.char_pred, self.char_overlap, self.char_gold),
            "per_type": per_type,
            "misses": len(self.misses),
            "false_positives": len(self.false_positives),
        }


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _fbeta(p: float | None, r: float | None, beta: float) -> float | None:
    if p is None or r is None:
        return None
    if p == 0 and r == 0:
        return 0.0
    b2 = beta * beta
    return round((1 + b2) * p * r / (b2 * p + r), 4)


def _scores(pred_ok: int, pred: int, gold_found: int, gold: int) -> dict[str, float | None]:
    # F from the exact ratios: from the rounded ones it is off in the fourth decimal (0.2501 for 0.25)
    p = pred_ok / pred if pred else None
    r = gold_found / gold if gold else None
    return {"precision": _ratio(pred_ok, pred), "recall": _ratio(gold_found, gold),
            "f1": _fbeta(p, r, 1.0), "f2": _fbeta(p, r, 2.0)}


def _as_item(span: Any, dataset: str, length: int, where: Callable[[], str], role: str) -> _Item | None:
    """``span`` (of a text of ``length`` characters) as an item of its coarse type, ``None`` when
    its label is not PHI. ``where()`` names the span in errors; ``role`` is ``gold`` or
    ``prediction`` (each has its own label table).

    Raises:
        CorpusError: no integer ``start``/``end``, or not ``0 <= start < end <= length``.
        ConfigError: a label that ``dataset``'s table does not know.
    """
    if isinstance(span, Mapping):
        start, end, label = span.get("start"), span.get("end"), span.get("label", "ID")
    elif isinstance(span, (tuple, list)) and len(span) >= 2:
        start, end, label = span[0], span[1], span[2] if len(span) > 2 else "ID"
    else:  # Span, Detection
        start, end, label = getattr(span, "start", None), getattr(span, "end", None), getattr(span, "label", "ID")
    if not all(isinstance(x, Integral) and not isinstance(x, bool) for x in (start, end)):
        raise CorpusError(f"{where()}: a span needs integer start and end (a Span, a Detection, a "
                          f"{{start, end, label}} dict or a (start, end, label) tuple), got {describe_type(span)}")
    if not 0 <= start < end <= length:
        raise CorpusError(f"{where()}: [{start}:{end}] is not a span of the document's {length} characters "
                          "(0 <= start < end <= len(text)): are these spans of this document's text?")
    try:
        canonical = to_canonical(label, dataset)
    except ConfigError as exc:
        fix = ("name the gold spans' label table as dataset (--dataset)" if role == "gold" else
               "a prediction's label must be a canonical one, as 'domainfm deid' writes them")
        raise ConfigError(f"{where()}: {exc}; {fix}") from None
    if canonical is None:
        return None
    return _Item(int(start), int(end), coarse(canonical))


def _overlaps(a: _Item, b: _Item) -> bool:
    return a.start < b.end and b.start < a.end


def evaluate(
    gold_docs: Iterable[Document],
    predicted: Mapping[str, Iterable[Any]],
    *,
    dataset: str = "canonical",
    pred_dataset: str = "canonical",
    gold_filter: GoldFilter | None = None,
    misses_path: str | os.PathLike | None = None,
    include_text: bool = False,
    keep_lists: bool = True,
) -> EvalReport:
    """Compare predictions with the gold spans of ``gold_docs``.

    Args:
        gold_docs: documents whose ``spans`` are the gold PHI.
        predicted: ``{doc_id: spans}``; spans are Detections, Spans, ``{start, end, label}`` dicts
            or ``(start, end, label)`` tuples. A gold document without an entry has no predictions.
        dataset: label table of the gold spans (``physionet``, ``tab``, ``presidio-synth``...).
        pred_dataset: label table of the predictions (``canonical`` for domainfm, ``presidio``).
        gold_filter: keep only gold spans it accepts (e.g. :func:`identifier_filter`).
        misses_path: write misses and false positives here as JSONL (offsets and types; the span
            text only with ``include_text``).
        include_text: add the missed/false-positive text to the ``misses_path`` records. Never
            printed; the file is as sensitive as the gold data.

    Raises:
        CorpusError: a gold span or prediction that is not a span of its document's text, naming
            the document's id and the span's index.
        ConfigError: a label its label table does not know (``dataset``, ``pred_dataset``).
    """
    _check_misses_options(misses_path, include_text)
    report = EvalReport()
    texts: dict[str, str] = {}
    for doc in gold_docs:
        report.n_docs += 1
        gold = _items(doc, doc.spans, dataset, "gold", gold_filter)
        pred = _items(doc, predicted.get(doc.id, ()), pred_dataset, "prediction")
        if include_text:
            texts[doc.id] = doc.text
        _score_doc(report, doc.id, gold, pred, _keep_in(report) if keep_lists or misses_path is not None else None)
    if misses_path is not None:
        _write_misses(report, Path(misses_path), texts if include_text else None)
    return report


def _items(doc: Document, spans: Iterable[Any], dataset: str, role: str,
           keep: GoldFilter | None = None) -> list[_Item]:
    """The PHI items of ``spans`` of ``doc`` that ``keep`` accepts, each checked (:func:`_as_item`)."""
    field_name = "spans" if role == "gold" else "predictions"
    items = []
    for i, span in enumerate(spans):
        if keep is None or keep(span):
            item = _as_item(span, dataset, len(doc.text), lambda: f"id={doc.id!r}: {field_name}[{i}]", role)
            if item is not None:
                items.append(item)
    return items


def _check_misses_options(misses_path, include_text: bool) -> None:
    if include_text and misses_path is None:
        raise ConfigError("--misses-text (include_text) needs --misses FILE (misses_path): the missed text is "
                          "only ever written to that file, never printed")


def _keep_in(report: EvalReport) -> Callable[[str, dict[str, Any]], None]:
    """A :func:`_score_doc` ``note`` that lists each miss and false positive in ``report``."""
    return lambda kind, row: (report.misses if kind == "miss" else report.false_positives).append(row)


def _score_doc(report: EvalReport, doc_id: str, gold: list[_Item], pred: list[_Item],
               note: Callable[[str, dict[str, Any]], None] | None) -> None:
    """Add one document's counts to ``report``; ``note(kind, row)`` (when given) gets each miss
    (``kind`` ``"miss"``, in the order of the gold spans' starts) and then each false positive
    (``"false_positive"``, in the predictions' order)."""
    report.gold += len(gold)
    report.pred += len(pred)
    gold_sorted = sorted(gold, key=lambda g: g.start)
    for g in gold_sorted:
        counts = report._type(g.type)
        counts["gold"] += 1
        hits = [p for p in pred if _overlaps(g, p)]
        if hits:
            report.overlap_gold_found += 1
            counts["found_any_label"] += 1
            if any(p.type == g.type for p in hits):
                counts["found_same_type"] += 1
        elif note is not None:
            note("miss", {"id": doc_id, "start": g.start, "end": g.end, "type": g.type})
        if any(p.start == g.start and p.end == g.end for p in pred):
            report.exact_gold_found += 1
    gold_keys = {(g.start, g.end) for g in gold}
    for p in pred:
        counts = report._type(p.type)
        counts["pred"] += 1
        hits = [g for g in gold if _overlaps(g, p)]
        if hits:
            report.overlap_pred_correct += 1
            if any(g.type == p.type for g in hits):
                counts["pred_correct_same_type"] += 1
        elif note is not None:
            note("false_positive", {"id": doc_id, "start": p.start, "end": p.end, "type": p.type})
        if (p.start, p.end) in gold_keys:
            report.exact_pred_correct += 1
    gold_chars = _chars(gold)
    pred_chars = _chars(pred)
    report.char_gold += len(gold_chars)
    report.char_pred += len(pred_chars)
    report.char_overlap += len(gold_chars & pred_chars)


def _chars(items: list[_Item]) -> set[int]:
    out: set[int] = set()
    for item in items:
        out.update(range(item.start, item.end))
    return out


def _write_misses(report: EvalReport, path: Path, texts: dict[str, str] | None) -> None:
    from domainfm.corpus.io import JsonlWriter

    with JsonlWriter(path) as out:
        for kind, rows in (("miss", report.misses), ("false_positive", report.false_positives)):
            for row in rows:
                out.write_obj(_miss_record(kind, row, texts[row["id"]] if texts is not None else None))


def _miss_record(kind: str, row: dict[str, Any], text: str | None) -> dict[str, Any]:
    """The misses-file line of a miss or false positive; with its document's ``text``, the span's
    text and 40 characters of context either side."""
    record = {"kind": kind, **row}
    if text is not None:
        record["text"] = text[row["start"]:row["end"]]
        record["context"] = text[max(0, row["start"] - 40):row["end"] + 40]
    return record


LEAK_MIN_CHARS = 3


def leakage(gold_docs: Iterable[Document], output_texts: Mapping[str, str], *, dataset: str = "canonical",
            gold_filter: GoldFilter | None = None, min_chars: int = LEAK_MIN_CHARS) -> dict[str, Any]:
    """Share of gold PHI strings that survive verbatim in the de-identified output.

    Recall counts spans a detector touched; leakage counts what a reader of the output can still
    see: a gold string (at least ``min_chars`` characters after stripping) that occurs anywhere in
    its document's output text, case-sensitive, counts as leaked. Each gold span is one string (a
    name annotated in three places counts three times, all leaked while any copy is left), and
    only its own document's output is searched. A name replaced in one place and not in another,
    an unannotated repeat of a found name, and a surrogate that equals or contains the original
    ("Lee" -> "Leeson") all leak; a span only partly replaced ("Ridgeview Hospital" ->
    "Ridgeview Medical") does not, as the string is no longer there whole. Documents with no
    output text are skipped (and counted). Only counts are returned, never text.

    Example:
        >>> gold = [Document("d", "Seen by Dr Okafor.", spans=[Span(11, 17, "HCPName")])]
        >>> leakage(gold, {"d": "Seen by Dr Okafor."}, dataset="physionet")["rate"]
        1.0
    """
    tally = _LeakTally(dataset, gold_filter, min_chars)
    for doc in gold_docs:
        tally.add(doc, output_texts.get(doc.id))
    return tally.summary()


class _LeakTally:
    """The running counts of :func:`leakage`, one document at a time."""

    def __init__(self, dataset: str, gold_filter: GoldFilter | None, min_chars: int):
        self.dataset, self.gold_filter, self.min_chars = dataset, gold_filter, min_chars
        self.total = self.leaked = self.missing_output = 0
        self.per_type: dict[str, list[int]] = {}

    def add(self, doc: Document, out: str | None) -> tuple[int, int]:
        """Count ``doc``'s gold strings against its output text ``out`` (``None``: it has none);
        returns the document's ``(leaked, gold strings)``."""
        if out is None:
            self.missing_output += 1
            return 0, 0
        total = leaked = 0
        for i, span in enumerate(doc.spans):
            if self.gold_filter is not None and not self.gold_filter(span):
                continue
            item = _as_item(span, self.dataset, len(doc.text), lambda: f"id={doc.id!r}: spans[{i}]", "gold")
            original = doc.text[span.start:span.end].strip()
            if item is None or len(original) < self.min_chars:
                continue
            total += 1
            counts = self.per_type.setdefault(item.type, [0, 0])
            counts[0] += 1
            if original in out:
                leaked += 1
                counts[1] += 1
        self.total += total
        self.leaked += leaked
        return leaked, total

    def summary(self) -> dict[str, Any]:
        return {"definition": f"gold PHI strings of >= {self.min_chars} characters found verbatim (case-sensitive) "
                              "in the document's output text",
                "gold_strings": self.total, "leaked": self.leaked, "rate": _ratio(self.leaked, self.total),
                "per_type": {k: {"gold_strings": v[0], "leaked": v[1], "rate": _ratio(v[1], v[0])}
                             for k, v in sorted(self.per_type.items())},
                "documents_without_output": self.missing_output}


def read_predictions(path: str | os.PathLike) -> dict[str, list[dict[str, Any]]]:
    """``{doc_id: phi_spans}`` from a ``deid`` output JSONL (``phi_spans`` at the top level of
    each record, or under ``meta``), in input coordinates."""
    return read_deid_output(path)[0]


def read_deid_output(path: str | os.PathLike
                     ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str], dict[str, str]]:
    """``({doc_id: phi_spans}, {doc_id: output text}, {doc_id: file:line})`` from a ``deid``
    output JSONL; the locations name the record in later errors.

    Raises:
        CorpusError: naming ``file:line`` and the field, for a record that is not a deid output
            record, a repeated id, or a span that is not ``0 <= start < end``.
    """
    out: dict[str, list[dict[str, Any]]] = {}
    texts: dict[str, str] = {}
    where_of: dict[str, str] = {}
    for number, doc_id, spans, obj in _deid_records(path, where_of.get):
        out[doc_id] = spans
        where_of[doc_id] = f"{Path(path).name}:{number}"
        if isinstance(obj.get("text"), str):
            texts[doc_id] = obj["text"]
    return out, texts, where_of


def _deid_records(path: str | os.PathLike, earlier: Callable[[str], str | None]
                  ) -> Iterator[tuple[int, str, list[dict[str, Any]], dict[str, Any]]]:
    """The records of a ``deid`` output JSONL as ``(line number, id, phi_spans, record)``, each
    checked as :func:`read_deid_output` describes; ``earlier(id)`` is the ``file:line`` of an
    earlier record with that id, if any (the caller notes each record before reading the next)."""
    from domainfm.corpus.io import Rejected, iter_jsonl_objects

    for number, obj in iter_jsonl_objects(path):
        where = f"{Path(path).name}:{number}"
        if isinstance(obj, Rejected):
            raise CorpusError(f"{where}: {obj.reason}")
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
            raise CorpusError(f"{where}: expected an object with a string 'id'")
        doc_id = obj["id"]
        if (before := earlier(doc_id)) is not None:
            raise CorpusError(f"{where}: id={doc_id!r}: duplicate id (already on {before})")
        spans = _phi_spans(obj)
        if not isinstance(spans, list):
            raise CorpusError(f"{where}: id={doc_id!r}: no 'phi_spans' list (is this a deid output file?)")
        for i, span in enumerate(spans):
            if not isinstance(span, dict) or not all(type(span.get(k)) is int for k in ("start", "end")):
                raise CorpusError(f"{where}: id={doc_id!r}: phi_spans[{i}] needs integer 'start' and 'end'")
            if not 0 <= span["start"] < span["end"]:
                raise CorpusError(f"{where}: id={doc_id!r}: phi_spans[{i}] [{span['start']}:{span['end']}] is not a "
                                  "span: 'start' must be >= 0 and 'end' greater than 'start'")
            if "label" in span and (not isinstance(span["label"], str) or not span["label"].strip()):
                raise CorpusError(f"{where}: id={doc_id!r}: phi_spans[{i}] 'label' must be a label name such as "
                                  f"'PATIENT', got {describe_type(span['label'])}")
        yield number, doc_id, spans, obj


def _phi_spans(record: dict[str, Any]) -> Any:
    """A deid output record's ``phi_spans``: at its top level, or under ``meta``."""
    spans = record.get("phi_spans")
    if spans is None and isinstance(record.get("meta"), dict):
        spans = record["meta"].get("phi_spans")
    return spans


@dataclass(frozen=True, slots=True)
class _Entry:
    """Where a deid output record is: its line's byte offset and number, and the offset of the
    record whose ``text`` is its output text (-1: none; another record only when the vault reads
    two ids back as one)."""

    offset: int
    line: int
    text_offset: int


def _index_deid_output(path: str | os.PathLike) -> dict[str, _Entry]:
    """``{doc_id: _Entry}`` of a ``deid`` output JSONL, every record checked as
    :func:`read_deid_output` checks it (same errors, same order) without keeping its spans or text."""
    name = Path(path).name
    index: dict[str, _Entry] = {}
    with closing(_line_offsets(path)) as offsets:
        for number, doc_id, _, obj in _deid_records(path, lambda k: f"{name}:{index[k].line}" if k in index else None):
            offset = next(at for line, at in offsets if line == number)
            index[doc_id] = _Entry(offset, number, offset if isinstance(obj.get("text"), str) else -1)
    return index


def _line_offsets(path: str | os.PathLike) -> Iterator[tuple[int, int]]:
    """``(line number, byte offset)`` of each line, split as :func:`~domainfm.corpus.io.iter_jsonl_lines` splits."""
    with open(path, "rb") as fh:
        offset = 0
        for number, raw in enumerate(fh, start=1):
            yield number, offset
            offset += len(raw)


def _read_record(fh: BinaryIO, offset: int) -> dict[str, Any]:
    """The (already checked) deid output record on the line at ``offset`` of ``fh``."""
    from domainfm.corpus.io import strip_bom

    fh.seek(offset)
    raw = fh.readline()
    return json.loads((strip_bom(raw) if offset == 0 else raw).decode("utf-8"))


def _read_back_ids(index: dict[str, _Entry], vault) -> dict[str, _Entry]:
    """``index`` under the ids ``vault`` reads its pseudonyms back as. When two records come to one
    id, the later record's spans and line count, and the later of their output texts, as separate
    dicts of spans, texts and lines keep them."""
    from domainfm.deid.vault import is_pseudonym

    out: dict[str, _Entry] = {}
    for key, entry in index.items():
        original = (vault.original_id(key) if is_pseudonym(key) else None) or key
        if entry.text_offset < 0 and original in out:
            entry = _Entry(entry.offset, entry.line, out[original].text_offset)
        out[original] = entry
    return out


# ---------------------------------------------------------------------- intervals

INTERVAL_LEVEL = 0.9


def resampling_unit(docs: Iterable[Document]) -> str:
    """``"patient"`` when every document has ``meta.patient_id`` (a patient's notes share names,
    so they are not independent draws), else ``"document"``."""
    docs = list(docs)
    return "patient" if docs and all(has_patient(d) for d in docs) else "document"


def unit_counts(gold_docs: Iterable[Document], predicted: Mapping[str, Iterable[Any]], *,
                output_texts: Mapping[str, str] | None = None, dataset: str = "canonical",
                pred_dataset: str = "canonical", gold_filter: GoldFilter | None = None,
                unit: str | None = None) -> dict[str, list[int]]:
    """Per patient (or document, see :func:`resampling_unit`): ``[gold found, gold, predictions
    right, predictions, gold strings leaked, gold strings]``, any-overlap as :func:`evaluate`
    counts them, leakage as :func:`leakage` does (zeros without ``output_texts``). Counts only."""
    docs = list(gold_docs)
    unit = unit or resampling_unit(docs)
    groups: dict[str, list[Document]] = {}
    for doc in docs:
        # a document without a patient is its own unit, never pooled with others under "None"
        key = str(doc.meta["patient_id"]) if unit == "patient" and has_patient(doc) else f"document:{doc.id}"
        groups.setdefault(key, []).append(doc)
    out = {}
    for key, mine in groups.items():
        report = evaluate(mine, predicted, dataset=dataset, pred_dataset=pred_dataset, gold_filter=gold_filter,
                          keep_lists=False)
        leaked = (leakage(mine, output_texts, dataset=dataset, gold_filter=gold_filter)
                  if output_texts is not None else {"leaked": 0, "gold_strings": 0})
        out[key] = [report.overlap_gold_found, report.gold, report.overlap_pred_correct, report.pred,
                    leaked["leaked"], leaked["gold_strings"]]
    return out


# unit draws per block of resamples in bootstrap_intervals (about 50 MB of counts at a time)
_RESAMPLE_CELLS = 1_000_000


def bootstrap_intervals(counts: Mapping[str, Iterable[float]], *, level: float = INTERVAL_LEVEL,
                        resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Percentile intervals of recall, precision and leakage with the units of
    :func:`unit_counts` drawn with replacement: how far another sample of patients like these
    may land. Rows of several runs over the same units may be summed first. A draw in which a
    ratio has no value (no gold span, prediction or gold string among the drawn units) is left
    out of that ratio's interval."""
    import numpy as np

    if not 0 < level < 1:
        raise ConfigError(f"level must be in (0, 1), e.g. 0.9; got {level!r}")
    out: dict[str, Any] = {"level": level, "units": len(counts), "resamples": resamples}
    if not counts:
        return {**out, "recall": None, "precision": None, "leakage": None}
    table = np.array([list(row) for row in counts.values()], dtype=float)
    rng, n = np.random.default_rng(seed), len(table)
    # a few resamples at a time: all at once is resamples x units x 6 numbers (2 GB for 20,000
    # units). Drawn in order from one generator, the draws are the ones one call would give.
    step = max(1, _RESAMPLE_CELLS // n)
    sums = np.vstack([table[rng.integers(0, n, size=(min(step, resamples - lo), n))].sum(axis=1)
                      for lo in range(0, resamples, step)])
    tail = 100 * (1 - level) / 2
    for name, (hit, total) in {"recall": (0, 1), "precision": (2, 3), "leakage": (4, 5)}.items():
        # a draw of units without a gold span (or a prediction, or a gold string) has no ratio:
        # left out, as counting it 0 would drag the lower bound to 0
        defined = sums[:, total] > 0
        if not defined.any():
            out[name] = None
            continue
        ratio = sums[defined, hit] / sums[defined, total]
        out[name] = [round(float(np.percentile(ratio, tail)), 4), round(float(np.percentile(ratio, 100 - tail)), 4)]
    return out


def evaluate_files(
    gold_jsonl: str | os.PathLike,
    pred_jsonl: str | os.PathLike,
    *,
    dataset: str = "canonical",
    identifier_types: Iterable[str] | None = None,
    misses_path: str | os.PathLike | None = None,
    include_text: bool = False,
    vault=None,
    intervals: bool = False,
) -> dict[str, Any]:
    """Evaluate a ``deid`` output file against a gold domainfm JSONL; returns the summary.

    Args:
        gold_jsonl: documents with gold spans (e.g. from ``domainfm import physionet``).
        pred_jsonl: ``deid`` output whose records carry ``phi_spans`` in input coordinates.
        dataset: label table of the gold spans.
        identifier_types: keep only gold spans with these ``attrs.identifier_type`` (TAB).
        misses_path, include_text: see :func:`evaluate`.
        vault: the :class:`~domainfm.deid.vault.Vault` of a ``deid --pseudonymize-ids`` run: its
            records' pseudonyms are read back as the gold ids.
        intervals: add 90% bootstrap intervals of recall, precision and leakage, resampling
            patients (``meta.patient_id``) or else documents (:func:`bootstrap_intervals`).

    Raises:
        CorpusError: a prediction record or span is invalid, a span ends past its gold text, or no
            prediction id is a gold id (the files are not of the same documents).
        ConfigError: an unknown identifier type, ``include_text`` without ``misses_path``, or a
            gold label outside ``dataset``'s table or a prediction label that is not canonical
            (naming ``file:line`` and the span).

    Memory: the prediction file is indexed (id -> line) and the gold file read once, each
    document's prediction read back from its line; what is kept is the ids, the running totals
    and, with ``intervals``, a row of counts per document. Misses go to temporary files as found.
    Every check still covers the whole of both files before the next one's error is raised.
    """
    from domainfm.corpus.io import read_located_documents

    _check_misses_options(misses_path, include_text)
    gold_filter = identifier_filter(identifier_types) if identifier_types is not None else None
    index = _index_deid_output(pred_jsonl)
    if vault is not None:
        index = _read_back_ids(index, vault)
    # read back through the vault, an id is the original the pseudonym hid: messages locate it by line only
    scores = _FileScores(index, dataset, gold_filter, Path(gold_jsonl).name, Path(pred_jsonl).name,
                         show_ids=vault is None, intervals=intervals)
    with open(pred_jsonl, "rb") as records, _MissParts(misses_path, include_text) as misses:
        for location, doc in read_located_documents(gold_jsonl):
            scores.add(location, doc, records, misses)
        scores.raise_first_error()
        summary = scores.summary(misses.counts)
        if intervals:
            unit, counts = scores.units()
            summary["intervals"] = {"unit": unit, **bootstrap_intervals(counts)}
        misses.commit()  # last: a run stopped while scoring leaves no misses without their metrics
    return summary


def evaluate_to_files(
    gold_jsonl: str | os.PathLike,
    pred_jsonl: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    misses_path: str | os.PathLike | None = None,
    include_text: bool = False,
    dataset: str = "canonical",
    identifier_types: Iterable[str] | None = None,
    vault_path: str | os.PathLike | None = None,
    intervals: bool = False,
) -> dict[str, Any]:
    """``domainfm deid-eval``: :func:`evaluate_files`, with the metrics JSON written to ``out``
    and a manifest beside the outputs; returns the summary.

    Each output is checked first (not an input, not a folder), then held under an
    :class:`~domainfm.corpus.io.OutputLock` until it is written, so a second run on the same
    file is refused instead of interleaving with this one, and what a killed run left for it is
    removed (with ``include_text`` such files hold note text). ``vault_path``: the vault of a
    ``deid --pseudonymize-ids`` run (key in ``$DOMAINFM_VAULT_KEY``), whose pseudonyms are
    read back as the gold ids. The other arguments are :func:`evaluate_files`'.

    Raises:
        ConfigError: ``out`` and ``misses_path`` are one file, or as :func:`evaluate_files`.
        OutputError: an output is an input, a folder, or being written by another run.
    """
    from contextlib import ExitStack

    from domainfm.corpus.io import OutputLock, check_output_path, write_text_atomic
    from domainfm.manifest import write_manifest

    outputs = [Path(p) for p in (out, misses_path) if p is not None]
    for path in outputs:
        check_output_path(path, inputs=[gold_jsonl, pred_jsonl])
    if len(outputs) == 2 and outputs[0].resolve() == outputs[1].resolve():
        raise ConfigError(f"{out}: -o and --misses name the same file (the metrics would replace the misses); "
                          "give each its own path")
    types = list(identifier_types) if identifier_types is not None else None
    with ExitStack() as stack:
        for path in outputs:
            stack.enter_context(OutputLock(path))
        vault = None
        if vault_path is not None:
            from domainfm.deid.vault import Vault

            vault = stack.enter_context(Vault.open_existing(vault_path))
        summary = evaluate_files(gold_jsonl, pred_jsonl, dataset=dataset, identifier_types=types,
                                 misses_path=misses_path, include_text=include_text, vault=vault,
                                 intervals=intervals)
        if out is not None:
            write_text_atomic(out, json.dumps(summary, indent=2) + "\n")
        if outputs:
            settings = {"dataset": dataset, "identifier_types": types, "misses_text": include_text,
                        "vault": str(vault_path) if vault_path is not None else None, "intervals": intervals}
            write_manifest(outputs[0], stage="deid-eval", config=settings, inputs=[gold_jsonl, pred_jsonl],
                           outputs=outputs)
    return summary


class _FileScores:
    """The one pass of :func:`evaluate_files` over the gold file.

    It keeps the running totals, a row of :func:`unit_counts` per document (with ``intervals``)
    and the first error each check finds. Scoring stops at the first error, reading goes on: a
    bad gold record later in the file is still raised first (as when the whole file was read
    before any check), and :meth:`raise_first_error` raises the rest in the order the checks
    always ran, each over all documents: no id matches, a prediction that is not of its gold
    document, ``identifier_types`` without typed gold, an unknown label.
    """

    def __init__(self, index: dict[str, _Entry], dataset: str, gold_filter: GoldFilter | None, gold_name: str,
                 pred_name: str, *, show_ids: bool, intervals: bool):
        self.index, self.dataset, self.gold_filter = index, dataset, gold_filter
        self.gold_name, self.pred_name, self.show_ids = gold_name, pred_name, show_ids
        self.report = EvalReport()
        self.leaks = _LeakTally(dataset, gold_filter, LEAK_MIN_CHARS)
        self.matched = 0
        self.typed = False  # a gold span has attrs.identifier_type
        self.belongs_error: str | None = None
        self.label_error: Exception | None = None
        # 6 counts per document; summed per patient while every document has one
        self.rows = array("q") if intervals else None
        self.patients: dict[str, list[int]] | None = {} if intervals else None

    def add(self, location: str, doc: Document, records: BinaryIO, misses: _MissParts) -> None:
        """Check and score ``doc`` (read at ``location``), its prediction read from ``records``."""
        self.report.n_docs += 1
        entry = self.index.get(doc.id)
        self.matched += entry is not None
        self.typed = self.typed or any("identifier_type" in s.attrs for s in doc.spans)
        if self.belongs_error is not None:
            return
        spans, out = _prediction(entry, records)
        where = f"{self.pred_name}:{entry.line}" if entry is not None else ""
        named = f" id={doc.id!r}:" if self.show_ids else ""
        self.belongs_error = _belonging_error(doc, spans, out, where, named, self.gold_name)
        if self.belongs_error is None and self.label_error is None:
            try:
                _check_doc_labels(location, doc, spans, where, named, self.dataset, self.gold_filter)
            except (ConfigError, CorpusError) as exc:
                self.label_error = exc
        if self.belongs_error is None and self.label_error is None:
            self._score(doc, spans, out, misses)

    def _score(self, doc: Document, spans: list[dict[str, Any]], out: str | None, misses: _MissParts) -> None:
        r = self.report
        before = (r.overlap_gold_found, r.gold, r.overlap_pred_correct, r.pred)
        gold = _items(doc, doc.spans, self.dataset, "gold", self.gold_filter)
        pred = _items(doc, spans, "canonical", "prediction")
        _score_doc(r, doc.id, gold, pred, lambda kind, row: misses.add(kind, row, doc.text))
        leaked, strings = self.leaks.add(doc, out)
        if self.rows is None:
            return
        row = (r.overlap_gold_found - before[0], r.gold - before[1], r.overlap_pred_correct - before[2],
               r.pred - before[3], leaked, strings)
        self.rows.extend(row)
        if self.patients is not None and has_patient(doc):
            total = self.patients.setdefault(str(doc.meta["patient_id"]), [0] * len(row))
            total[:] = [a + b for a, b in zip(total, row)]
        else:
            self.patients = None

    def raise_first_error(self) -> None:
        if self.report.n_docs and not self.matched:
            from domainfm.deid.vault import is_pseudonym

            pseudonyms = self.index and all(is_pseudonym(k) for k in self.index)
            raise CorpusError(f"none of the {len(self.index)} records of {self.pred_name} has the id of one of the "
                              f"{self.report.n_docs} documents of {self.gold_name}: the predictions are not of these "
                              "documents "
                              + ("(their ids are 'deid --pseudonymize-ids' pseudonyms: give its --vault, with "
                                 "$DOMAINFM_VAULT_KEY, to read them back)" if pseudonyms else
                                 f"(give the 'domainfm deid' output of {self.gold_name})"))
        if self.belongs_error is not None:
            raise CorpusError(self.belongs_error)
        if self.gold_filter is not None and not self.typed:
            raise ConfigError(f"--identifier-types keeps gold spans by attrs.identifier_type (TAB), and no gold span "
                              f"of {self.gold_name} has one; leave it out for this dataset")
        if self.label_error is not None:
            raise self.label_error

    def summary(self, misses: Mapping[str, int]) -> dict[str, Any]:
        summary = self.report.summary()
        summary["misses"], summary["false_positives"] = misses["miss"], misses["false_positive"]
        summary["leakage"] = self.leaks.summary()
        summary["unmatched_prediction_ids"] = len(self.index) - self.matched  # gold ids are unique
        return summary

    def units(self) -> tuple[str, dict[str, Any]]:
        """:func:`resampling_unit` and :func:`unit_counts` of the documents read (the keys of the
        document rows are their positions: only the rows' order and values are drawn from)."""
        if self.report.n_docs and self.patients is not None:
            return "patient", self.patients
        rows = self.rows
        return "document", {f"document:{i}": rows[6 * i:6 * i + 6] for i in range(len(rows) // 6)}


def _prediction(entry: _Entry | None, records: BinaryIO) -> tuple[list[dict[str, Any]], str | None]:
    """The ``phi_spans`` and output text of ``entry``'s record (none for a document without one)."""
    if entry is None:
        return [], None
    record = _read_record(records, entry.offset)
    if entry.text_offset < 0:
        return _phi_spans(record), None
    text_record = record if entry.text_offset == entry.offset else _read_record(records, entry.text_offset)
    return _phi_spans(record), text_record["text"]


def _belonging_error(doc: Document, spans: list[dict[str, Any]], out: str | None, where: str, named: str,
                     gold_name: str) -> str | None:
    """Why the prediction (read at ``where``) is not of gold document ``doc``, or ``None``: a span
    ends past its text, or the output text is not its text outside the spans (leakage is read from
    it). ``named``: the id to name beside ``where`` (empty when ids are not shown)."""
    for i, span in enumerate(spans):
        if span["end"] > len(doc.text):
            return (f"{where}:{named} phi_spans[{i}] [{span['start']}:{span['end']}] ends past the gold document's "
                    f"text ({len(doc.text)} characters): are these predictions of {gold_name}?")
    if out is not None and not keeps_text_outside(doc.text, spans, out):
        return (f"{where}:{named} the record's text is not the gold document's text with its phi_spans replaced "
                f"(another document under this id, or a text edited since de-identification): are these "
                f"predictions of {gold_name}? Leakage would be read from the wrong text")
    return None


def _check_doc_labels(location: str, doc: Document, spans: list[dict[str, Any]], where: str, named: str,
                      dataset: str, gold_filter: GoldFilter | None) -> None:
    """Every scored gold span's label is in ``dataset``'s table and every prediction's is
    canonical, or the error names the record by ``file:line`` (and ``named``, its id)."""
    for i, span in enumerate(doc.spans):
        if gold_filter is None or gold_filter(span):
            _as_item(span, dataset, len(doc.text), lambda: f"{location}:{named} spans[{i}]", "gold")
    for i, span in enumerate(spans):
        _as_item(span, "canonical", len(doc.text), lambda: f"{where}:{named} phi_spans[{i}]", "prediction")


class _MissParts:
    """The misses and false positives of :func:`evaluate_files`, counted and, with a ``path``,
    written as they are found to two anonymous temporary files: they may hold note text, and
    such a file has no name and is gone with the process, even a killed one. :meth:`commit`
    joins them into ``path``, misses first, as :func:`evaluate` writes them."""

    KINDS = ("miss", "false_positive")

    def __init__(self, path: str | os.PathLike | None, include_text: bool):
        self.path = None if path is None else Path(path)
        self.include_text = include_text
        self.counts = dict.fromkeys(self.KINDS, 0)
        self._parts: dict[str, Any] = {}

    def __enter__(self) -> _MissParts:
        if self.path is not None:
            self._parts = {kind: tempfile.TemporaryFile("w+", encoding="utf-8", newline="\n") for kind in self.KINDS}
        return self

    def add(self, kind: str, row: dict[str, Any], text: str) -> None:
        """Count a miss or false positive (``kind``) and write it; ``text``: its document's text."""
        from domainfm.corpus.io import write_json_line

        self.counts[kind] += 1
        if self._parts:
            write_json_line(self._parts[kind], _miss_record(kind, row, text if self.include_text else None))

    def commit(self) -> None:
        """Write ``path`` (a folder or an unwritable path fails here, after every data check)."""
        from domainfm.corpus.io import atomic_file

        if self.path is None:
            return
        with atomic_file(self.path) as out:
            for kind in self.KINDS:
                self._parts[kind].seek(0)
                shutil.copyfileobj(self._parts[kind], out)

    def __exit__(self, *exc: Any) -> bool:
        for part in self._parts.values():
            part.close()
        return False


def keeps_text_outside(text: str, spans: Iterable[Mapping[str, Any]], out: str) -> bool:
    """Whether ``out`` is ``text`` with only the regions of ``spans`` replaced (by anything): the
    text between the regions appears in ``out`` in order, the first part as its start and the
    last as its end. Leftmost matching finds an alignment whenever one exists."""
    regions: list[list[int]] = []
    for start, end in sorted((s["start"], s["end"]) for s in spans):
        if regions and start <= regions[-1][1]:
            regions[-1][1] = max(regions[-1][1], end)
        else:
            regions.append([start, end])
    if not regions:
        return out == text
    kept = [text[:regions[0][0]]] + [text[a[1]:b[0]] for a, b in zip(regions, regions[1:])] + [text[regions[-1][1]:]]
    if not out.startswith(kept[0]):
        return False
    cursor = len(kept[0])
    for piece in kept[1:-1]:
        found = out.find(piece, cursor)
        if found < 0:
            return False
        cursor = found + len(piece)
    return len(out) - len(kept[-1]) >= cursor and out.endswith(kept[-1])
