"""The labeling step of ``domainfm demo``: 8 seeds per class from the sample clinical notes,
suggestions for part of the rest, scored against the labels the demo held back."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

from domainfm.corpus.document import Document, Span
from domainfm.corpus.io import read_documents, write_documents
from domainfm.label.config import LabelConfig
from domainfm.label.runner import label_file


def run_label_demo(corpus: str | Path, out: str | Path, *, seeds_per_class: int = 8, pool_size: int = 120,
                   seed: int = 13, method: str = "embed", console=None) -> dict:
    """Draw ``seeds_per_class`` seeds per ``label`` from ``corpus``, suggest labels for
    ``pool_size`` other documents (their labels removed), write ``out/suggestions.jsonl`` with a
    Label Studio export, and return the run's summary plus the accuracy against the held-back
    labels. Prints counts and scores only, never document text.

    Example:
        >>> run_label_demo("corpora/clinical/notes.jsonl", "demo-output/label")  # doctest: +SKIP
    """
    out = Path(out)
    docs = [d for d in read_documents(corpus) if d.label]
    rng = random.Random(seed)
    by_label: dict[str, list[Document]] = defaultdict(list)
    for d in docs:
        by_label[d.label].append(d)
    seeds = [d for label in sorted(by_label) for d in rng.sample(by_label[label], min(seeds_per_class, len(by_label[label])))]
    seed_ids = {d.id for d in seeds}
    rest = [d for d in docs if d.id not in seed_ids]
    rng.shuffle(rest)
    pool = rest[:pool_size]
    gold = {d.id: d.label for d in pool}
    hidden = [Document(id=d.id, text=d.text, meta=d.meta) for d in pool]
    write_documents(out / "seeds.jsonl", seeds)
    write_documents(out / "pool.jsonl", hidden)
    run = label_file(out / "seeds.jsonl", out / "pool.jsonl", out / "suggestions.jsonl",
                     LabelConfig(method=method, seed=seed), exports=["labelstudio"])
    suggested = {r.id: r.meta["suggestion"]["label"] for r in read_documents(run.out)}
    accuracy = sum(suggested[i] == g for i, g in gold.items()) / max(1, len(gold))
    cv = run.summary["cross_validation"]
    if console is not None:
        console.print(
            f"[bold]label[/]: {len(seeds)} seeds ({seeds_per_class}/class) -> suggestions for {run.counts.written} "
            f"notes; accuracy vs held-back labels {accuracy:.2f} (cross-validated estimate "
            f"{cv.get('expected_accuracy', float('nan')):.2f}) -> {run.out}"
        )
    return {**_outputs(run), "accuracy_vs_held_back": round(accuracy, 4), "summary": run.summary}


SPAN_DEMO_LABELS = ("PATIENT", "DOCTOR", "DATE", "HOSPITAL")


def run_span_demo(corpus: str | Path, out: str | Path, *, n_seeds: int = 8, pool_size: int = 40, seed: int = 13,
                  labels: tuple[str, ...] = SPAN_DEMO_LABELS, console=None) -> dict:
    """The annotation loop on de-identified notes: ``n_seeds`` notes keep their PHI spans (the
    surrogates' positions, re-mapped by ``deid``) as the hand-marked seeds, ``pool_size`` others
    lose theirs; span suggestions and a Label Studio export are written to ``out`` and scored
    (exact entity F1) against the spans the demo held back. Counts and scores only are printed.

    Example:
        >>> run_span_demo("demo-output/clinical/deid/corpus.jsonl", "demo-output/clinical/label-spans")  # doctest: +SKIP
    """
    from domainfm.label.span_config import SpanLabelConfig
    from domainfm.label.span_runner import label_spans_file
    from domainfm.metrics import entity_metrics

    out = Path(out)
    keep = set(labels)
    docs = [d for d in read_documents(corpus) if any(s.label in keep for s in d.spans)]
    rng = random.Random(seed)
    rng.shuffle(docs)
    seeds = [_only(d, keep) for d in docs[:n_seeds]]
    pool = docs[n_seeds:n_seeds + pool_size]
    gold = {d.id: [s for s in d.spans if s.label in keep] for d in pool}
    write_documents(out / "seeds.jsonl", seeds)
    write_documents(out / "pool.jsonl", [Document(id=d.id, text=d.text, meta=d.meta) for d in pool])
    run = label_spans_file(out / "seeds.jsonl", out / "pool.jsonl", out / "suggestions.jsonl",
                           SpanLabelConfig(seed=seed), exports=["labelstudio"])
    suggested = {r.id: r.meta["suggestion"]["spans"] for r in read_documents(run.out)}
    predicted = [[Span(s["start"], s["end"], s["label"]) for s in suggested.get(i, [])] for i in gold]
    scores = entity_metrics(list(gold.values()), predicted, labels=list(labels))
    if console is not None:
        console.print(
            f"[bold]span suggestions[/]: {len(seeds)} annotated notes -> {run.counts.written} notes pre-annotated "
            f"({', '.join(labels)}); entity F1 vs held-back spans {_score(scores['f1'])} (P "
            f"{_score(scores['precision'])} / R {_score(scores['recall'])}) -> "
            f"{run.exports[0] if run.exports else run.out}"
        )
    return {**_outputs(run), "entity_f1_vs_held_back": scores["f1"], "precision": scores["precision"],
            "recall": scores["recall"]}


def _score(value: float | None) -> str:
    """A score as the demo prints it; None (e.g. precision when nothing was suggested) was not measured."""
    return "n/a" if value is None else f"{value:.2f}"


def _only(doc: Document, labels: set[str]) -> Document:
    return Document(id=doc.id, text=doc.text, meta=doc.meta, spans=[s for s in doc.spans if s.label in labels])


def _outputs(run) -> dict:
    return {"out": str(run.out), "exports": [str(p) for p in run.exports], "manifest": str(run.manifest),
            "counts": run.counts.to_dict()}
