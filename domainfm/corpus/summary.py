"""Corpus statistics that are safe to print: counts and lengths, never document text."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from statistics import median
from typing import Any, Iterable

from domainfm.corpus.document import Document


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
