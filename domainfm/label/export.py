"""Suggestions in the formats annotation tools import.

- **Label Studio**: a JSON list of tasks ``{"data": {...}, "meta": {...}, "predictions": [...]}``;
  each prediction carries ``model_version``, ``score`` and a ``result`` list of ``choices``
  regions (``from_name``/``to_name`` must match the labeling config, see
  :func:`labelstudio_config`). Imported predictions show as pre-annotations.
- **Prodigy**: JSONL tasks in the ``choice`` interface format used by ``textcat.manual``:
  ``{"text", "options": [{"id", "text"}], "accept": [...], "meta": {...}}`` (pre-selected
  options); ``style="binary"`` writes the ``classification`` format ``{"text", "label", "meta"}``
  instead (accept / reject one suggested label per task).
- **CSV**: one row per document for a spreadsheet review. The ``labels`` (multi-label) and
  ``alternatives`` (``label:score``) cells join their items with ``|``, which a spreadsheet shows
  as it is and ``domainfm import csv --labels-col labels`` splits on; a label that itself holds
  ``|`` would read as two, so such a label is refused (:func:`check_csv_labels`) naming it, and
  ``labelstudio`` and ``prodigy``, which keep labels as lists, still take it. No cell starts a
  formula (:func:`spreadsheet_safe`).

Exports list the pool in active-learning order (``rank`` 1 first).
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence
from xml.sax.saxutils import quoteattr

from domainfm.config import suggest
from domainfm.corpus.document import Document
from domainfm.corpus.importers.prodigy import SUGGESTED_BY
from domainfm.errors import ConfigError

EXPORT_FORMATS = ("labelstudio", "prodigy", "csv")
CSV_COLUMNS = ("id", "rank", "label", "confidence", "labels", "alternatives", "text")
CSV_LABEL_SEPARATOR = "|"


def _ordered(docs: Sequence[Document], suggestions: Sequence) -> list[tuple[Document, object]]:
    if len(docs) != len(suggestions):
        raise ConfigError(f"got {len(suggestions)} suggestions for {len(docs)} documents")
    return sorted(zip(docs, suggestions), key=lambda pair: pair[1].rank)


def labelstudio_config(classes: Iterable[str], *, multilabel: bool = False, from_name: str = "label",
                       to_name: str = "text") -> str:
    """The Label Studio labeling config (XML) that the exported predictions refer to."""
    choice = "multiple" if multilabel else "single"
    options = "\n".join(f"    <Choice value={quoteattr(c)}/>" for c in classes)
    return (
        f"<View>\n  <Text name={quoteattr(to_name)} value=\"$text\"/>\n"
        f"  <Choices name={quoteattr(from_name)} toName={quoteattr(to_name)} choice=\"{choice}\">\n"
        f"{options}\n  </Choices>\n</View>\n"
    )


def to_labelstudio(docs: Sequence[Document], suggestions: Sequence, *, model_version: str,
                   from_name: str = "label", to_name: str = "text") -> list[dict]:
    """Label Studio import tasks with the suggestions as ``predictions``."""
    return list(_labelstudio_tasks(docs, suggestions, model_version=model_version, from_name=from_name,
                                   to_name=to_name))


def _labelstudio_tasks(docs: Sequence[Document], suggestions: Sequence, *, model_version: str,
                       from_name: str = "label", to_name: str = "text") -> Iterator[dict]:
    for doc, s in _ordered(docs, suggestions):
        chosen = list(s.labels) if s.labels is not None else [s.label]
        yield {
            "data": {to_name: doc.text, "doc_id": doc.id},
            "meta": {"rank": s.rank},
            "predictions": [{
                "model_version": model_version,
                "score": round(float(s.confidence), 4),
                "result": [{
                    "id": f"{doc.id}-suggestion",
                    "from_name": from_name,
                    "to_name": to_name,
                    "type": "choices",
                    "value": {"choices": chosen},
                }],
            }],
        }


def to_prodigy(docs: Sequence[Document], suggestions: Sequence, classes: Sequence[str], *,
               multilabel: bool = False, style: str = "choice") -> list[dict]:
    """Prodigy tasks (``choice`` with pre-selected options, or ``binary`` accept/reject)."""
    if style not in ("choice", "binary"):
        raise ConfigError(f"prodigy style must be 'choice' or 'binary', got {style!r}{suggest(style, ['choice', 'binary'])}")
    return list(_prodigy_tasks(docs, suggestions, classes, multilabel=multilabel, style=style))


def _prodigy_tasks(docs: Sequence[Document], suggestions: Sequence, classes: Sequence[str], *,
                   multilabel: bool, style: str) -> Iterator[dict]:
    for doc, s in _ordered(docs, suggestions):
        meta = {"id": doc.id, "rank": s.rank, "score": round(float(s.confidence), 4), SUGGESTED_BY: "domainfm"}
        if style == "binary":
            yield {"text": doc.text, "label": s.label, "meta": meta}
            continue
        task = {
            "text": doc.text,
            "options": [{"id": c, "text": c} for c in classes],
            "accept": list(s.labels) if s.labels is not None else [s.label],
            "meta": meta,
        }
        if multilabel:
            task["config"] = {"choice_style": "multiple"}
        yield task


# A cell a spreadsheet would read as a formula ('=HYPERLINK(...)', '+1+cmd|...'): OWASP's CSV
# injection advice is to start it with an apostrophe, which spreadsheets show as text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


_PLAIN_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")


def spreadsheet_safe(value: Any) -> Any:
    """``value`` with an apostrophe before it when a spreadsheet would run it as a formula. A
    signed number ("-5", an id) runs nothing and is left as it is, so it still matches the
    JSONL's."""
    if not isinstance(value, str) or not value.startswith(_FORMULA_START) or _PLAIN_NUMBER.fullmatch(value):
        return value
    return "'" + value


def check_csv_labels(labels: Iterable[str], what: str = "the CSV export") -> None:
    """Refuse a label holding the CSV's separator ``|``: in the ``labels`` and ``alternatives``
    cells it would read as two labels.

    Raises:
        ConfigError: naming the first such label and the fixes.
    """
    for label in labels:
        if CSV_LABEL_SEPARATOR in label:
            raise ConfigError(
                f"{what}: the label {label!r} holds {CSV_LABEL_SEPARATOR!r}, which separates the labels in the "
                "CSV's labels and alternatives cells, so it would read as several labels; rename the label in the "
                "seeds (e.g. with '/'), or export labelstudio or prodigy, which keep labels as lists")


def csv_rows(docs: Sequence[Document], suggestions: Sequence) -> list[dict]:
    """The review spreadsheet's rows, best first; text cells never start a formula.

    Raises:
        ConfigError: a suggested or alternative label holds ``|`` (:func:`check_csv_labels`).
    """
    ordered = _ordered(docs, suggestions)
    _check_row_labels(ordered)
    return list(_csv_rows(ordered))


def _check_row_labels(ordered: list[tuple[Document, object]]) -> None:
    check_csv_labels(sorted({label for _, s in ordered
                             for label in [s.label, *(s.labels or ()), *(a["label"] for a in s.alternatives)]}))


def _csv_rows(ordered: list[tuple[Document, object]]) -> Iterator[dict]:
    """:func:`csv_rows` of the labels checked, one at a time."""
    for doc, s in ordered:
        row = {
            "id": doc.id, "rank": s.rank, "label": s.label, "confidence": f"{s.confidence:.4f}",
            "labels": CSV_LABEL_SEPARATOR.join(s.labels) if s.labels is not None else "",
            "alternatives": CSV_LABEL_SEPARATOR.join(f"{a['label']}:{a['score']:.4f}" for a in s.alternatives),
            "text": doc.text,
        }
        yield {k: spreadsheet_safe(v) for k, v in row.items()}


def export_path_for(out: str | os.PathLike, kind: str) -> Path:
    """``suggestions.jsonl`` -> ``suggestions.labelstudio.json`` / ``.prodigy.jsonl`` / ``.csv``."""
    out = Path(out)
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.stem
    suffix = {"labelstudio": ".labelstudio.json", "prodigy": ".prodigy.jsonl", "csv": ".csv"}[kind]
    return out.with_name(stem + suffix)


def write_export(kind: str, path: str | os.PathLike, docs: Sequence[Document], suggestions: Sequence, *,
                 classes: Sequence[str], multilabel: bool, model_version: str) -> Path:
    """Write one export atomically (a temporary file renamed into place); returns the path.

    For Label Studio the labeling config is written beside it (``<path>.config.xml``).
    """
    if kind not in EXPORT_FORMATS:
        raise ConfigError(f"unknown export format {kind!r}{suggest(kind, EXPORT_FORMATS)}; "
                          f"choose one of {', '.join(EXPORT_FORMATS)}")
    from domainfm.corpus.io import atomic_file, write_text_atomic

    path = Path(path)
    # one task or row at a time: the pool is in memory already, a second copy of it as tasks is not
    rows = None
    if kind == "csv":
        ordered = _ordered(docs, suggestions)
        _check_row_labels(ordered)  # a refused label writes no file
        rows = _csv_rows(ordered)
    with atomic_file(path, newline="" if kind == "csv" else "\n") as fh:
        if kind == "labelstudio":
            _dump_list(_labelstudio_tasks(docs, suggestions, model_version=model_version), fh)
            fh.write("\n")
        elif kind == "prodigy":
            for task in _prodigy_tasks(docs, suggestions, classes, multilabel=multilabel, style="choice"):
                fh.write(json.dumps(task, ensure_ascii=False) + "\n")
        else:
            writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    if kind == "labelstudio":
        write_text_atomic(path.with_name(path.name + ".config.xml"), labelstudio_config(classes, multilabel=multilabel))
    return path


def _dump_list(items: Iterable[Any], fh) -> None:
    """``json.dump(list(items), fh, ensure_ascii=False, indent=1)``, written one item at a time
    (a line break inside a string is written escaped, so every line break is the layout's)."""
    fh.write("[")
    first = True
    for item in items:
        fh.write(("\n " if first else ",\n ") + json.dumps(item, ensure_ascii=False, indent=1).replace("\n", "\n "))
        first = False
    fh.write("]" if first else "\n]")


# ---------------------------------------------------------------------------------------- spans

def labelstudio_span_config(labels: Iterable[str], *, from_name: str = "label", to_name: str = "text") -> str:
    """The Label Studio labeling config (XML) for span annotation with ``labels``."""
    options = "\n".join(f"    <Label value={quoteattr(lab)}/>" for lab in labels)
    return (
        f"<View>\n  <Labels name={quoteattr(from_name)} toName={quoteattr(to_name)}>\n{options}\n  </Labels>\n"
        f"  <Text name={quoteattr(to_name)} value=\"$text\"/>\n</View>\n"
    )


def span_regions(doc: Document, spans: Sequence, *, from_name: str = "label", to_name: str = "text") -> list[dict]:
    """Label Studio ``labels`` regions of ``spans`` (code-point offsets, as current Label Studio
    stores them); a span's ``attrs.confidence`` becomes the region's ``score``."""
    regions = []
    for i, s in enumerate(spans):
        region = {
            "id": f"r{i}",  # region ids need only be unique within one annotation
            "from_name": from_name, "to_name": to_name, "type": "labels",
            "value": {"start": s.start, "end": s.end, "text": doc.text[s.start:s.end], "labels": [s.label]},
        }
        if "confidence" in s.attrs:
            region["score"] = round(float(s.attrs["confidence"]), 4)
        regions.append(region)
    return regions


def spans_to_labelstudio(docs: Sequence[Document], *, predicted: Sequence[Sequence] | None = None,
                         ranks: Sequence[int] | None = None, scores: Sequence[float] | None = None,
                         model_version: str = "domainfm", as_annotations: bool = False) -> list[dict]:
    """Label Studio import tasks for span annotation, in ``ranks`` order when given.

    ``predicted`` (spans per document) become ``predictions`` (pre-annotations); with
    ``as_annotations`` the documents' own spans are written as a finished annotation instead
    (moving gold data between projects, and the export -> import round trip)."""
    return list(_span_labelstudio_tasks(docs, predicted=predicted, ranks=ranks, scores=scores,
                                        model_version=model_version, as_annotations=as_annotations))


def _span_labelstudio_tasks(docs, *, predicted, ranks, scores, model_version, as_annotations) -> Iterator[dict]:
    order = sorted(range(len(docs)), key=lambda i: ranks[i]) if ranks is not None else range(len(docs))
    for i in order:
        doc = docs[i]
        task: dict = {"data": {"text": doc.text, "doc_id": doc.id}}
        if ranks is not None:
            task["meta"] = {"rank": int(ranks[i])}
        if as_annotations:
            task["annotations"] = [{"result": span_regions(doc, doc.spans), "was_cancelled": False}]
        if predicted is not None:
            task["predictions"] = [{
                "model_version": model_version,
                "score": round(float(scores[i]), 4) if scores is not None else None,
                "result": span_regions(doc, predicted[i]),
            }]
        yield task


def spans_to_prodigy(docs: Sequence[Document], *, predicted: Sequence[Sequence] | None = None,
                     ranks: Sequence[int] | None = None, scores: Sequence[float] | None = None) -> list[dict]:
    """Prodigy ``ner.manual`` tasks: pre-highlighted ``spans`` and ``meta.id`` (read back by
    ``domainfm import prodigy``). Predictions are marked ``meta.suggested_by``, so importing the
    file before anyone answered it does not turn them into gold; the documents' own spans (no
    ``predicted``) are annotations and are written as accepted answers."""
    return list(_span_prodigy_tasks(docs, predicted=predicted, ranks=ranks, scores=scores))


def _span_prodigy_tasks(docs, *, predicted, ranks, scores) -> Iterator[dict]:
    order = sorted(range(len(docs)), key=lambda i: ranks[i]) if ranks is not None else range(len(docs))
    for i in order:
        doc = docs[i]
        spans = predicted[i] if predicted is not None else doc.spans
        meta: dict = {"id": doc.id}
        if predicted is not None:
            meta[SUGGESTED_BY] = "domainfm"
        if ranks is not None:
            meta["rank"] = int(ranks[i])
        if scores is not None:
            meta["score"] = round(float(scores[i]), 4)
        yield {
            "text": doc.text,
            "spans": [{"start": s.start, "end": s.end, "label": s.label,
                       **({"score": round(float(s.attrs["confidence"]), 4)} if "confidence" in s.attrs else {})}
                      for s in spans],
            "meta": meta,
            **({} if predicted is not None else {"answer": "accept"}),
        }


def write_span_export(kind: str, path: str | os.PathLike, docs: Sequence[Document], *, labels: Sequence[str],
                      predicted: Sequence[Sequence] | None = None, ranks: Sequence[int] | None = None,
                      scores: Sequence[float] | None = None, model_version: str = "domainfm",
                      as_annotations: bool = False) -> Path:
    """Write a span export (``labelstudio`` with its ``.config.xml``, or ``prodigy``) atomically."""
    if kind not in ("labelstudio", "prodigy"):
        raise ConfigError(f"span exports are labelstudio or prodigy, got {kind!r}"
                          f"{suggest(kind, ['labelstudio', 'prodigy'])}")
    from domainfm.corpus.io import atomic_file, write_text_atomic

    path = Path(path)
    with atomic_file(path) as fh:  # a task at a time, as the document exports are written
        if kind == "labelstudio":
            _dump_list(_span_labelstudio_tasks(docs, predicted=predicted, ranks=ranks, scores=scores,
                                               model_version=model_version, as_annotations=as_annotations), fh)
            fh.write("\n")
        else:
            for task in _span_prodigy_tasks(docs, predicted=predicted, ranks=ranks, scores=scores):
                fh.write(json.dumps(task, ensure_ascii=False) + "\n")
    if kind == "labelstudio":
        write_text_atomic(path.with_name(path.name + ".config.xml"), labelstudio_span_config(labels))
    return path
