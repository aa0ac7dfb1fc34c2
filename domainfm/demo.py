"""``domainfm demo``: the pipeline on the shipped synthetic corpora, offline.

At this stage the demo imports the sample corpora (validating every record through the same
importer users run) and prints a summary of each. Each stage adds its step here.
"""

from __future__ import annotations

import json
from pathlib import Path

from domainfm.corpus import read_documents, summarize
from domainfm.corpus.importing import import_corpus
from domainfm.corpus.summary import print_summary

SAMPLE_CORPORA = {
    "clinical": Path("clinical") / "notes.jsonl",
    "legal": Path("legal") / "documents.jsonl",
}


def ensure_sample_corpora(corpora: Path, console=None) -> dict[str, Path]:
    """Return the sample corpus files, generating them (seeded) when the folder lacks them.

    An installed package has no ``corpora/`` folder beside it, so the demo must still work.
    """
    paths = {name: corpora / rel for name, rel in SAMPLE_CORPORA.items()}
    if not all(p.is_file() for p in paths.values()):
        from domainfm.synth import write_sample_corpora

        if console is not None:
            console.print(f"no sample corpora in {corpora}; generating them (seed 13)")
        write_sample_corpora(corpora)
    return paths


def run_demo(out: Path = Path("demo-output"), corpora: Path = Path("corpora"), console=None) -> dict:
    """Run every stage that exists on the sample corpora; returns the demo's summary."""
    from rich.console import Console

    console = console or Console()
    out = Path(out)
    results: dict = {"corpora": {}}
    for name, src in ensure_sample_corpora(Path(corpora), console).items():
        target = out / "corpus" / f"{name}.jsonl"
        imported = import_corpus("jsonl", src, target)
        c = imported.counts
        console.print(f"[bold]{name}[/]: read {c.read} = written {c.written} + rejected {c.rejected} -> {target}")
        summary = summarize(read_documents(target)).to_dict()
        print_summary(console, f"{name} corpus", summary)
        results["corpora"][name] = {"path": str(target), "counts": c.to_dict(), "summary": summary}
    (out / "demo.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    console.print(f"demo outputs in {out}/ (summary: {out / 'demo.json'})")
    return results
