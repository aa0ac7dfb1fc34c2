"""Dataset cards for the synthetic corpora, rendered from statistics computed on the documents,
so a regenerated corpus always ships a card that is true for it."""

from __future__ import annotations

from collections import Counter
from typing import Any

from domainfm.corpus.document import Document


def corpus_stats(docs: list[Document]) -> dict[str, Any]:
    lengths = sorted(len(d.text) for d in docs) or [0]
    return {
        "documents": len(docs),
        "characters": sum(lengths),
        "length_min": lengths[0],
        "length_median": lengths[len(lengths) // 2],
        "length_max": lengths[-1],
        "labels": dict(Counter(d.label for d in docs).most_common()),
        "multi_labels": dict(Counter(x for d in docs for x in d.labels or []).most_common()),
        "span_labels": dict(Counter(s.label for d in docs for s in d.spans).most_common()),
        "spans": sum(len(d.spans) for d in docs),
    }


def bow_accuracy(docs: list[Document], group_key: str | None = None) -> dict[str, float] | None:
    """5-fold CV accuracy of TF-IDF + logistic regression on ``Document.label``.

    Returns ``{"stratified": acc}`` plus ``{"grouped": acc}`` when ``group_key`` names a meta
    field (folds that keep one patient's notes together, which removes the leakage of names and
    wording between a patient's notes). ``None`` when scikit-learn is missing or data too small.
    """
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import GroupKFold, StratifiedKFold, cross_val_score
        from sklearn.pipeline import make_pipeline
    except ImportError:
        return None
    texts = [d.text for d in docs]
    labels = [d.label for d in docs]
    if min(Counter(labels).values(), default=0) < 5:
        return None

    def model():
        return make_pipeline(TfidfVectorizer(sublinear_tf=True), LogisticRegression(max_iter=2000))

    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    result = {"stratified": float(cross_val_score(model(), texts, labels, cv=folds).mean())}
    if group_key:
        groups = [d.meta.get(group_key) for d in docs]
        result["grouped"] = float(cross_val_score(model(), texts, labels, cv=GroupKFold(5), groups=groups).mean())
    return result


def _table(counts: dict[str, int], header: str) -> str:
    rows = [f"| {header} | count |", "|---|---:|"] + [f"| {k} | {v} |" for k, v in counts.items()]
    return "\n".join(rows)


def render_card(kind: str, docs: list[Document], *, seed: int, file_name: str,
                accuracy: dict[str, float] | None) -> str:
    """Markdown card for the ``clinical`` or ``legal`` corpus."""
    s = corpus_stats(docs)
    if accuracy is None:
        acc = "not measured (scikit-learn unavailable or too few documents per label)."
    else:
        acc = f"{accuracy['stratified']:.1%} (stratified 5-fold CV, TF-IDF + logistic regression)"
        if "grouped" in accuracy:
            acc += (f"; {accuracy['grouped']:.1%} with patient-grouped 5-fold CV (a patient's notes never "
                    "split across train and test; the honest estimate)")
        acc += "."
    if kind == "clinical":
        what = (f"{s['documents']} synthetic clinical notes (admission H&Ps, progress notes, discharge summaries, "
                f"clinic visits, nursing notes) for {len({d.meta['patient_id'] for d in docs})} synthetic patients; "
                "several notes share `meta.patient_id` and the same fake identifiers, to test consistent surrogates.")
        spans = ("Gold PHI spans for every textual HIPAA Safe Harbor identifier kind, `attrs` "
                 "`{phi: true, category}`. Names exclude titles and credentials (`Dr. [Lee]`); AGE spans only for "
                 "ages over 89; DATE spans never cover a bare year.")
        label = ("`label` is the primary diagnosis group; `labels` are the problem tags mentioned in the note "
                 "(primary and secondary diagnoses, comorbidities). Symptoms overlap across groups, other groups' "
                 "diagnoses appear as comorbidities, history and differentials, and some notes only imply the "
                 "diagnosis, so the label is learnable but not trivially separable.")
        limits = ("- Template-based: sentence patterns repeat; a model can learn the templates.\n"
                  "- US-centric (US addresses, phone numbers, insurers, SSNs); English only.\n"
                  "- Biometric identifiers and full-face photographs are not textual and are not represented.\n"
                  "- Medical content is plausible but simplified and not clinically validated; do not use for care.")
    else:
        n_contracts = sum(d.meta["doc_type"] == "contract" for d in docs)
        what = (f"{s['documents']} synthetic legal documents: {n_contracts} contracts and "
                f"{s['documents'] - n_contracts} court judgments (ECHR, US district court, Indian High Court and "
                "England and Wales Court of Appeal styles).")
        spans = ("Entity spans in the Text Anonymization Benchmark scheme (PERSON, ORG, LOC, DATETIME, CODE, DEM, "
                 "QUANTITY, MISC) with `attrs` `{identifier_type: DIRECT|QUASI|NO_MASK, role}`; contracts also "
                 "have `CLAUSE` spans (`clause_type`, `number`) for articles and nested sub-clauses.")
        label = ("`label` is the contract type or the judgment's area of law; `labels` are the clause types "
                 "present (contracts) or the outcome tags (judgments). The document label is easy to learn "
                 "(types have distinct vocabularies); the corpus is meant for span and chunking tests.")
        limits = ("- Template-based with a small clause library; not legal advice, clauses are not vetted.\n"
                  "- Addresses and parties are US-style Faker values even in non-US courts.\n"
                  "- A few documents are long (~30k characters) to exercise chunking; most are 3-12k.")
    return f"""# Synthetic {kind} corpus

**Everything here is synthetic.** Generated by `domainfm.synth` (seed {seed}) with Faker and
templates; it contains no real patient, party or case data. Regenerate with
`domainfm synth -o corpora --seed {seed}` or `python corpora/generate.py --seed {seed}`.

## Contents
{what}

- File: `{file_name}` (domainfm JSONL, one document per line), manifest beside it.
- Characters: {s['characters']:,} (min {s['length_min']:,}, median {s['length_median']:,}, max {s['length_max']:,} per document).
- Spans: {s['spans']:,}. {spans}

## Labels
{label}

{_table(s['labels'], 'label')}

Bag-of-words accuracy of `label`: {acc}

## Span label counts
{_table(s['span_labels'], 'span label')}

## Multi-label tags
{_table(s['multi_labels'], 'tag')}

## Intended uses
Demos, unit and integration tests, and smoke tests of de-identification, NER, classification and
chunking. Not for estimating real-world performance, and not for training production models.

## Known limitations
{limits}
"""
