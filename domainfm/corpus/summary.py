"""Corpus statistics that are safe to print: counts and lengths, never document text."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from statistics import median
from typing import Any, Iterable, Mapping

from domainfm.corpus.document import Document


def looks_like_identifiers(counts: Mapping[str, int], most: int = 12) -> bool:
    """Whether values counted per document look like identifiers rather than classes: more than
    ``most`` values, at least half of them on one document only (a label field that points at
    an id or a name by mistake, meta keys that are phone numbers)."""
    singletons = sum(1 for n in counts.values() if n == 1)
    return len(counts) > most and 2 * singletons >= len(counts)


def withheld(counts: Mapping[str, int]) -> dict[str, int]:
    """What is said instead of values that look like identifiers: how many, and how many once."""
    return {"distinct": len(counts), "on_one_document": sum(1 for n in counts.values() if n == 1)}


def label_counts(counts: Mapping[str, int], most: int = 12) -> str:
    """``a=3, b=4`` for a message, or only counts when the values look like identifiers
    (:func:`looks_like_identifiers`): they must not be printed."""
    if looks_like_identifiers(counts, most):
        w = withheld(counts)
        return (f"{w['distinct']} distinct values, {w['on_one_document']} of them on one document only (not shown: "
                "a field this varied may hold identifiers; check the label field)")
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
        """Counts and lengths; label values, span labels and meta keys that look like identifiers
        (:func:`looks_like_identifiers`) are replaced by ``None`` and counted under ``withheld``."""
        counters = {"labels": self.labels, "multi_labels": self.multi_labels, "span_labels": self.span_labels,
                    "meta_keys": self.meta_keys}
        hidden = {name: withheld(c) for name, c in counters.items() if looks_like_identifiers(c)}
        out = {
            "documents": self.documents,
            "characters": self.characters,
            "chars_per_doc": {
                "min": min(self.lengths, default=0),
                "median": median(self.lengths) if self.lengths else 0,
                "max": max(self.lengths, default=0),
            },
            "labels": None if "labels" in hidden else dict(self.labels.most_common()),
            "multi_labels": None if "multi_labels" in hidden else dict(self.multi_labels.most_common()),
            "spans": sum(self.span_labels.values()),
            "span_labels": None if "span_labels" in hidden else dict(self.span_labels.most_common()),
            "meta_keys": None if "meta_keys" in hidden else sorted(self.meta_keys),
        }
        if hidden:
            out["withheld"] = hidden
        return out


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

    hidden = s.get("withheld", {})

    def top(name: str, n: int = 8) -> str:
        if name in hidden:
            return (f"{hidden[name]['distinct']} distinct, {hidden[name]['on_one_document']} on one document only "
                    "(not shown: they may be identifiers)")
        items = list(s[name].items())
        shown = ", ".join(f"{k} {v}" for k, v in items[:n])
        return shown + (f", ... ({len(items)} in all)" if len(items) > n else "") if items else "-"

    table.add_row("label", top("labels"))
    table.add_row("labels", top("multi_labels"))
    table.add_row("spans", f"{s['spans']:,}: " + top("span_labels", 12))
    table.add_row("meta keys", top("meta_keys") if "meta_keys" in hidden else ", ".join(s["meta_keys"]) or "-")
    if s.get("invalid_records"):
        table.add_row("invalid records", str(s["invalid_records"]))
    console.print(table)
