"""Corpus statistics that are safe to print: counts and lengths, never document text."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from statistics import median
from typing import Any, Iterable, Mapping

from domainfm.corpus.document import Document


def label_counts(counts: Mapping[str, int], most: int = 12) -> str:
    """``a=3, b=4`` for a message, or only counts when the values look like identifiers rather
    than classes (more than ``most`` values, at least half of them on one document: a label
    field that points at an id or a name by mistake must not print those values)."""
    singletons = sum(1 for n in counts.values() if n == 1)
    if len(counts) > most and 2 * singletons >= len(counts):
        return (f"{len(counts)} distinct values, {singletons} of them on one document only (not shown: a field "
                "this varied may hold identifiers; check the label field)")
    return ", ".join(f"{label}={n}" for label, n in sorted(counts.items())) or "none"


@dataclass
class CorpusSummary:
    documents: int = 0
    characters: int = 0
    lengths: list[int] = field(default_factory=list, repr=False)
    labels: Counter = field(default_factory=Counter)
    multi_labels: Counter = field(default_factory=Counter)
    span_labels: Counter = field(default_factory=Counter)
    meta_keys: Counter = field(default_factory=Counter)

    def add(self, doc: Document) -> None:
        self.documents += 1
        self.characters += len(doc.text)
        self.lengths.append(len(doc.text))
        if doc.label is not None:
            self.labels[doc.label] += 1
        for label in doc.labels or ():
            self.multi_labels[label] += 1
        for span in doc.spans:
            self.span_labels[span.label] += 1
        self.meta_keys.update(doc.meta.keys())

    def to_dict(self) -> dict[str, Any]:
        return {
            "documents": self.documents,
            "characters": self.characters,
            "chars_per_doc": {
                "min": min(self.lengths, default=0),
                "median": median(self.lengths) if self.lengths else 0,
                "max": max(self.lengths, default=0),
            },
            "labels": dict(self.labels.most_common()),
            "multi_labels": dict(self.multi_labels.most_common()),
            "spans": sum(self.span_labels.values()),
            "span_labels": dict(self.span_labels.most_common()),
            "meta_keys": sorted(self.meta_keys),
        }


def summarize(docs: Iterable[Document]) -> CorpusSummary:
    summary = CorpusSummary()
    for doc in docs:
        summary.add(doc)
    return summary


def print_summary(console, title: str, s: dict) -> None:
    """A rich table of :meth:`CorpusSummary.to_dict` output."""
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    lengths = s["chars_per_doc"]
    table.add_row("documents", str(s["documents"]))
    table.add_row("characters", f"{s['characters']:,} (per doc min {lengths['min']:,} / median "
                  f"{int(lengths['median']):,} / max {lengths['max']:,})")

    def top(counter: dict, n: int = 8) -> str:
        items = list(counter.items())
        shown = ", ".join(f"{k} {v}" for k, v in items[:n])
        return shown + (f", ... ({len(items)} in all)" if len(items) > n else "") if items else "-"

    table.add_row("label", top(s["labels"]))
    table.add_row("labels", top(s["multi_labels"]))
    table.add_row("spans", f"{s['spans']:,}: " + top(s["span_labels"], 12))
    table.add_row("meta keys", ", ".join(s["meta_keys"]) or "-")
    if s.get("invalid_records"):
        table.add_row("invalid records", str(s["invalid_records"]))
    console.print(table)
