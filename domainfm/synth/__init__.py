"""Synthetic sample corpora: clinical notes with gold PHI spans, contracts and judgments with
TAB-style entity and clause spans. Deterministic per seed; no real personal data."""

from __future__ import annotations

from pathlib import Path

from domainfm.synth.clinical import generate_clinical
from domainfm.synth.legal import generate_legal

__all__ = ["generate_clinical", "generate_legal", "write_sample_corpora"]


def write_sample_corpora(out: str | Path, *, seed: int = 13, n_clinical: int = 320,
                         n_legal: int = 120) -> list[Path]:
    """Write ``out/clinical/notes.jsonl`` and ``out/legal/documents.jsonl`` with a manifest and a
    dataset card (``CARD.md``) each.

    Args:
        out: target folder (created if missing).
        seed: the same seed writes byte-identical JSONL files.
        n_clinical: number of clinical notes.
        n_legal: number of legal documents.

    Returns:
        The paths of the two JSONL files.
    """
    from domainfm.corpus.io import write_documents
    from domainfm.manifest import write_manifest
    from domainfm.synth.cards import bow_accuracy, corpus_stats, render_card

    out = Path(out)
    written = []
    sets = (
        ("clinical", "notes.jsonl", "domainfm.synth.clinical", generate_clinical(n_clinical, seed), "patient_id"),
        ("legal", "documents.jsonl", "domainfm.synth.legal", generate_legal(n_legal, seed), None),
    )
    for kind, file_name, generator, docs, group_key in sets:
        path = out / kind / file_name
        write_documents(path, docs)
        accuracy = bow_accuracy(docs, group_key)
        stats = corpus_stats(docs)
        write_manifest(
            path, stage="synth", config={"seed": seed, "n": len(docs), "generator": generator}, outputs=[path],
            counts={"documents": len(docs), "spans": stats["spans"], "labels": stats["labels"],
                    "span_labels": stats["span_labels"], "bow_accuracy": accuracy},
        )
        card = render_card(kind, docs, seed=seed, file_name=f"{kind}/{file_name}", accuracy=accuracy)
        (out / kind / "CARD.md").write_text(card, encoding="utf-8")
        written.append(path)
    return written
