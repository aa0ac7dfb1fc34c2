"""Inter-annotator agreement of imported annotations, and how several annotators' work becomes
one document.

Annotation tools (Label Studio, Prodigy) export one record per annotator and task. An importer
keeps every annotator's version in ``meta.annotations`` (``[{"annotator", "spans", "label",
"labels"}]``) and resolves them into the document's own ``spans``/``label``:

- ``majority`` (default): a span (exact start, end, label) or choice is kept when more than half
  of the annotators marked it; a tie on a single label keeps none (``label`` stays null and the
  document says so in ``meta.annotation_conflicts``). Kept spans list their ``annotators``. When
  some annotators chose several options (``labels``), one annotator's single choice counts as a
  list of one.
- ``union``: every span any annotator marked (same-label spans that cross are merged).
- ``first``: the first annotator's version alone (in export order).

A version a reviewer marked as the reference (Label Studio's ground truth) is taken as it is
instead, by the importer; the agreement is still over every annotator's version.

Agreement is reported over the documents with two or more annotators:

- spans: pairwise F1 between annotators (exact match of start, end and label), micro-averaged
  over all annotator pairs of all documents; F1 is symmetric, so no annotator is "gold";
- choices: Cohen's kappa of each annotator pair over the documents both labelled, and their
  mean (Light's kappa when there are more than two annotators).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Sequence

from domainfm.config import suggest
from domainfm.corpus.document import Document, Span, merge_crossing_spans
from domainfm.errors import ConfigError

RESOLVE = ("majority", "union", "first")


def check_resolve(value: str) -> None:
    if value not in RESOLVE:
        raise ConfigError(f"The 'resolve' parameter must be one of {list(RESOLVE)}. Got {value!r} instead"
                          f"{suggest(value, RESOLVE)}.")


@dataclass
class Annotation:
    """One annotator's version of one task."""

    annotator: str
    spans: list[Span] = field(default_factory=list)
    label: str | None = None
    labels: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"annotator": self.annotator, "spans": [s.to_dict() for s in self.spans],
                "label": self.label, "labels": self.labels}

    @property
    def choices(self) -> tuple[str, ...] | None:
        if self.labels is not None:
            return tuple(sorted(self.labels))
        return None if self.label is None else (self.label,)


def latest_per_annotator(annotations: Sequence[Annotation], tasks: Sequence[Any] | None = None,
                         keep: int | None = None) -> tuple[list[Annotation], int]:
    """Each annotator's last version (in export order), and how many earlier ones it replaced: an
    annotator who submitted a task twice is one annotator, not two who agree with each other.
    With ``tasks`` (one question's key per version, e.g. Prodigy's ``_task_hash``), the last
    version per annotator and question: one annotator's answers to different questions all stay.
    With ``keep`` (an index), that version is its annotator's one even when a later one follows:
    a reviewer's ground truth is what the document holds, so it is what the agreement compares."""
    keys = [(a.annotator, None if tasks is None else tasks[i]) for i, a in enumerate(annotations)]
    last = {key: i for i, key in enumerate(keys)}
    if keep is not None:
        last[keys[keep]] = keep
    kept = [a for i, a in enumerate(annotations) if last[keys[i]] == i]
    return kept, len(annotations) - len(kept)


def free_key(meta: dict[str, Any], name: str) -> str:
    """``name``, or ``name_import`` (``name_import_2``, ...) when the record's own data already uses
    it: what an importer adds never replaces a field of the user's data."""
    if name not in meta:
        return name
    key, n = f"{name}_import", 2
    while key in meta:
        key, n = f"{name}_import_{n}", n + 1
    return key


def resolve(annotations: Sequence[Annotation], how: str = "majority") -> tuple[list[Span], str | None,
                                                                            list[str] | None, list[str]]:
    """The document's spans, label and labels from several annotators, plus a list of the
    conflicts left unresolved (PHI-free descriptions, no text)."""
    if not annotations:
        return [], None, None, []
    if how == "first" or len(annotations) == 1:
        a = annotations[0]
        return merge_crossing_spans(a.spans), a.label, a.labels, []
    if any(a.labels is not None for a in annotations):
        # one annotator ticked one option of a multiple-choice question, another several
        # (``auto`` reads the first as a label): all are votes on one list of labels, or each
        # part's majority would be taken alone and a choice of one annotator in three kept
        annotations = [Annotation(a.annotator, a.spans, None, [a.label])
                       if a.labels is None and a.label is not None else a for a in annotations]
    n = len(annotations)
    conflicts: list[str] = []
    votes: dict[tuple[int, int, str], list[str]] = {}
    for a in annotations:
        for s in a.spans:
            who = votes.setdefault(s.key, [])
            if a.annotator not in who:
                who.append(a.annotator)
    if how == "union":
        spans = [Span(s, e, lab, {"annotators": who}) for (s, e, lab), who in votes.items()]
    else:
        spans = [Span(s, e, lab, {"annotators": who}) for (s, e, lab), who in votes.items() if 2 * len(who) > n]
        outvoted = sum(1 for who in votes.values() if 2 * len(who) <= n)
        if outvoted:
            conflicts.append(f"{outvoted} span(s) marked by half of the annotators or fewer")
    spans = merge_crossing_spans(spans)
    label = labels = None
    singles = [a.label for a in annotations if a.label is not None]
    if singles:
        ranked = Counter(singles).most_common()
        top, count = ranked[0]
        runner_up = ranked[1][1] if len(ranked) > 1 else 0
        # majority: more than half; union: the most frequent choice unless two tie for first
        if 2 * count > len(singles) or (how == "union" and count > runner_up):
            label = top
        else:
            conflicts.append(f"no majority among {len(singles)} single-label choices")
    multis = [a.labels for a in annotations if a.labels is not None]
    if multis:
        tally = Counter(x for ls in multis for x in set(ls))
        if how == "union":
            labels = sorted(tally)
        else:
            labels = sorted(x for x, c in tally.items() if 2 * c > len(multis))
    return spans, label, labels, conflicts


def _span_f1(a: Sequence[Span], b: Sequence[Span]) -> tuple[int, int, int]:
    """(matches, |a|, |b|) for exact (start, end, label) matches."""
    ka, kb = {s.key for s in a}, {s.key for s in b}
    return len(ka & kb), len(ka), len(kb)


def cohen_kappa(x: Sequence, y: Sequence) -> float | None:
    """Cohen's kappa of two raters over the same items (None when chance agreement is 1)."""
    n = len(x)
    if n == 0:
        return None
    po = sum(1 for a, b in zip(x, y) if a == b) / n
    cx, cy = Counter(x), Counter(y)
    pe = sum(cx[k] * cy.get(k, 0) for k in cx) / (n * n)
    if pe >= 1.0:
        return None
    return (po - pe) / (1.0 - pe)


class AgreementTally:
    """Accumulates agreement over the imported documents (fed one document at a time)."""

    def __init__(self) -> None:
        self.documents = 0
        self.multi = 0
        self.annotators: set[str] = set()
        self.match = self.n_a = self.n_b = 0
        self.choices: dict[tuple[str, str], list[tuple[Any, Any]]] = {}
        self.conflicts = 0

    def add(self, annotations: Sequence[Annotation], conflicts: Sequence[str] = ()) -> None:
        self.documents += 1
        self.annotators.update(a.annotator for a in annotations)
        if conflicts:
            self.conflicts += 1
        if len(annotations) < 2:
            return
        self.multi += 1
        for a, b in combinations(annotations, 2):
            m, na, nb = _span_f1(a.spans, b.spans)
            self.match += m
            self.n_a += na
            self.n_b += nb
            ca, cb = a.choices, b.choices
            if ca is not None and cb is not None:
                pair = tuple(sorted((a.annotator, b.annotator)))
                votes = (ca, cb) if pair == (a.annotator, b.annotator) else (cb, ca)
                self.choices.setdefault(pair, []).append(votes)

    def report(self) -> dict[str, Any] | None:
        """The manifest's ``agreement`` section; None when no document had two annotators."""
        if self.multi == 0:
            return None
        out: dict[str, Any] = {
            "documents_with_several_annotators": self.multi,
            "annotators": len(self.annotators),
            "documents_with_unresolved_conflicts": self.conflicts,
        }
        if self.n_a + self.n_b:
            out["span_pairwise_f1"] = round(2 * self.match / (self.n_a + self.n_b), 4)
            out["span_pairs_compared"] = {"matched": self.match, "spans": self.n_a + self.n_b}
        kappas = {}
        for (ra, rb), votes in sorted(self.choices.items()):
            k = cohen_kappa([v[0] for v in votes], [v[1] for v in votes])
            kappas[f"{ra} | {rb}"] = {"kappa": None if k is None else round(k, 4), "documents": len(votes)}
        if kappas:
            out["choice_cohen_kappa"] = kappas
            valid = [v["kappa"] for v in kappas.values() if v["kappa"] is not None]
            out["choice_mean_pairwise_kappa"] = round(sum(valid) / len(valid), 4) if valid else None
        return out


def annotated_document(doc_id: str, text: str, meta: dict[str, Any], versions: Sequence[Annotation],
                       resolved: tuple, location: str | None) -> Document:
    """The document an annotation tool's task becomes: the resolved spans and labels, and, when
    several annotators worked on it, every version (``meta.annotations``) and what they disagreed
    on (``meta.annotation_conflicts``); validated, so an error names the record's location."""
    spans, label, labels, conflicts = resolved
    if len(versions) > 1:
        meta[free_key(meta, "annotations")] = [v.to_dict() for v in versions]
        if conflicts:
            meta[free_key(meta, "annotation_conflicts")] = conflicts
    doc = Document(doc_id, text, meta, label=label, labels=labels, spans=spans)
    doc.validate(location=location)
    return doc
