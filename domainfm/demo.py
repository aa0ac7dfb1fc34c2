"""``domainfm demo``: the shipped pipelines on the synthetic sample corpora, offline.

The demo is ``domainfm run`` on ``tasks/demo-clinical.yaml`` (import -> deid -> chunk -> a short
DAPT run of MiniLM -> a LoRA note-type classifier from the DAPT model -> an audit of that
classifier on its held-out notes) and ``tasks/demo-legal.yaml`` (import -> deid -> chunk), with
each run directory under ``demo-output/`` and the corpora from ``corpora/`` (generated, seeded,
when missing). On top of the pipelines it scores the de-identification against the corpora's
gold PHI, evaluates label suggestions (seeds drawn from the de-identified documents, the rest
labelled with their labels hidden and scored: :func:`domainfm.label.run_label_demo`), shows the
annotation loop's first step (PHI span pre-annotations for de-identified notes from 8 annotated
ones, exported for Label Studio and scored: :func:`domainfm.label.run_span_demo`) and copies
the clinical audit report to ``reports/demo/``. The console shows counts and scores only, never document text. Because it
is a pipeline run, a second ``domainfm demo`` reuses every unchanged stage, and a killed demo
resumes (the DAPT run from its last checkpoint).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

SAMPLE_CORPORA = {
    "clinical": Path("clinical") / "notes.jsonl",
    "legal": Path("legal") / "documents.jsonl",
}
# Which gold label table each sample corpus uses; the legal gold keeps TAB's identifier types.
GOLD = {"clinical": ("synthetic-clinical", None), "legal": ("synthetic-legal", ["DIRECT", "QUASI"])}
DEMO_SEED = 13
PIPELINE_FILES = {"clinical": "demo-clinical.yaml", "legal": "demo-legal.yaml"}
REPORT_FILES = ("index.html", "report.json", "model_card.md", "manifest.json")  # the manifest vouches for the copy
# The label-suggestion evaluation after each pipeline: (seeds per class, pool size)
LABEL_DRAWS = {"clinical": (8, 120), "legal": (4, 40)}


def ensure_sample_corpora(corpora: Path, console=None) -> dict[str, Path]:
    """Return the sample corpus files, generating them (seeded) when the folder lacks them.

    An installed package has no ``corpora/`` folder beside it, so the demo must still work.
    """
    paths = {name: corpora / rel for name, rel in SAMPLE_CORPORA.items()}
    if not all(p.is_file() for p in paths.values()):
        from domainfm.synth import write_sample_corpora

        if console is not None:
            console.print(f"no sample corpora in {corpora}; generating them (seed {DEMO_SEED})")
        write_sample_corpora(corpora, seed=DEMO_SEED)
    return paths


def demo_pipeline(name: str) -> dict[str, Any]:
    """The shipped pipeline ``tasks/demo-<name>.yaml`` as a mapping.

    A ``tasks/`` folder in the working directory wins (a user may edit the demo there); otherwise
    the copy shipped inside the package (``domainfm/tasks/``) is read, so a wheel install works.
    """
    from domainfm.config import read_yaml
    from domainfm.resources import packaged_task

    local = Path("tasks") / PIPELINE_FILES[name]
    return read_yaml(local if local.is_file() else packaged_task(PIPELINE_FILES[name]))


def run_demo(out: Path = Path("demo-output"), corpora: Path = Path("corpora"), console=None,
             steps: tuple[str, ...] | None = None, report_dir: Path | None = Path("reports/demo")) -> dict:
    """Run the demo pipelines; returns (and saves as ``out/demo.json``) the demo summary.

    Args:
        out: the run directories go to ``out/clinical/`` and ``out/legal/``.
        corpora: the sample corpora folder (generated when missing).
        steps: run the stages up to the last of these (default: every stage).
        report_dir: where the clinical audit report is copied (None: not copied).
    """
    from rich.console import Console

    from domainfm.corpus import read_documents, summarize
    from domainfm.corpus.summary import print_summary
    from domainfm.pipeline import STAGE_ORDER, run_pipeline

    console = console or Console()
    out, corpora = Path(out), Path(corpora)
    until = max(steps, key=STAGE_ORDER.index) if steps else None
    started = time.perf_counter()
    summary: dict[str, Any] = {"pipelines": {}}
    for name, src in ensure_sample_corpora(corpora, console).items():
        console.rule(f"[bold]{name} pipeline ({PIPELINE_FILES[name]})")
        overrides = {"run_dir": str(out / name), "import.src": str(src), "seed": DEMO_SEED}
        pipeline = demo_pipeline(name)
        if (pipeline.get("audit") or {}).get("cards"):
            from importlib.util import find_spec

            from domainfm.audit.cards.config import DEMO_CARDS_CONFIG

            if find_spec("lxml") is None:  # a plain wheel install: the demo still runs, and says what it left out
                overrides["audit.cards"] = []
                console.print("reviewer's cards skipped: pip install 'domainfm[cards]' adds lxml, which validates "
                              "the CHAI card")
            else:
                overrides["audit.cards_config"] = str(DEMO_CARDS_CONFIG)
        result = run_pipeline(pipeline, overrides, until_stage=until, console=console)
        record: dict[str, Any] = {"run": str(result.summary_path), "seconds": round(result.seconds, 1),
                                  "stages": {s.name: {"status": s.status, "seconds": round(s.seconds, 1),
                                                      "counts": s.counts, "metrics": s.metrics}
                                             for s in result.stages if s.status in ("ran", "cached")}}
        imported = out / name / "import" / "corpus.jsonl"
        print_summary(console, f"{name} corpus", summarize(read_documents(imported)).to_dict())
        deidentified = out / name / "deid" / "corpus.jsonl"
        deid_scores = out / name / "deid_vs_gold.json"
        if "deid" in record["stages"]:
            record["deid_vs_gold"] = _score_deid(name, imported, deidentified, console, deid_scores)
        if until is None or until == "label":
            from domainfm.label import run_label_demo

            seeds_per_class, pool_size = LABEL_DRAWS[name]
            console.rule(f"[bold]{name} label suggestions")
            labelled = run_label_demo(deidentified, out / name / "label", seeds_per_class=seeds_per_class,
                                      pool_size=pool_size, seed=DEMO_SEED, console=console)
            record["label"] = {k: labelled[k] for k in ("out", "exports", "counts", "accuracy_vs_held_back")}
            if name == "clinical":  # the annotation loop's first step: PHI pre-annotations on de-identified notes
                from domainfm.label import run_span_demo

                console.rule("[bold]clinical span suggestions (the annotation loop)")
                record["label_spans"] = run_span_demo(deidentified, out / name / "label-spans", seed=DEMO_SEED,
                                                      console=console)
        audit_dir = out / name / "audit"
        if "audit" in record["stages"]:
            record["audit"] = _show_audit(audit_dir, console)
            if report_dir is not None and name == "clinical":
                report_dir = Path(report_dir)
                report_dir.mkdir(parents=True, exist_ok=True)
                for file in REPORT_FILES:
                    shutil.copyfile(audit_dir / file, report_dir / file)
                record["report_copy"] = str(report_dir)
                console.print(f"audit report copied to {report_dir / 'index.html'}")
                if (audit_dir / "cards.json").is_file():
                    # from the copy: the cards name the report.json committed beside them, not a
                    # demo-output/ file a fresh clone does not have
                    record["cards"] = _write_demo_cards(report_dir, report_dir, deid_scores, console)
        summary["pipelines"][name] = record
    summary["seconds"] = round(time.perf_counter() - started, 1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "demo.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    console.rule()
    console.print(f"demo finished in {summary['seconds']:.0f} s; outputs in {out}/ (summary {out / 'demo.json'})")
    for line in _what_to_open(out, summary, report_dir):
        console.print(f"  {line}")
    return summary


def _write_demo_cards(audit_dir: Path, report_dir: Path, deid_scores: Path, console) -> dict:
    """The pipeline wrote the cards beside the audit; the copies in ``report_dir`` (written from
    the report copied there, ``audit_dir``) also carry the de-identification recall of the
    training data against the corpus's gold PHI, which the demo measures after the pipeline."""
    from domainfm.audit.cards import write_cards
    from domainfm.audit.cards.config import DEMO_CARDS_CONFIG

    deid_eval = None
    if deid_scores.is_file():  # rates and counts only, no text: copied so reports/demo is self-contained
        deid_eval = report_dir / deid_scores.name
        shutil.copyfile(deid_scores, deid_eval)
    result = write_cards(audit_dir, "all", out_dir=report_dir, cards_config=DEMO_CARDS_CONFIG,
                         deid_eval=deid_eval, audit_scope="eval")
    console.print(f"cards (CHAI XML, EU AI Act Annex IV, FDA-style) written to {report_dir}")
    return {name: card["completeness"] for name, card in result.summary["cards"].items()}


def _score_deid(name: str, gold: Path, deidentified: Path, console, save: Path | None = None) -> dict:
    from domainfm.deid.evaluate import evaluate_files
    from domainfm.manifest import write_json_atomic

    labels, identifier_types = GOLD[name]
    scores = evaluate_files(gold, deidentified, dataset=labels, identifier_types=identifier_types)
    if save is not None:  # counts and rates only (no misses listed): evidence for the cards
        write_json_atomic(save, scores)
    overlap = scores["any_overlap"]
    console.print(f"{name} de-identification against the gold PHI: recall {overlap['recall']:.3f}, "
                  f"precision {overlap['precision']:.3f}")
    return {"any_overlap": overlap}


def _show_audit(audit_dir: Path, console) -> dict:
    report = json.loads((audit_dir / "report.json").read_text(encoding="utf-8"))
    findings = [f.get("text", "") for f in report.get("summary", [])]
    console.print("audit findings:")
    for text in findings:
        console.print(f"- {text}")
    return {"out": str(audit_dir), "findings": findings}


def _what_to_open(out: Path, summary: dict, report_dir: Path | None) -> list[str]:
    lines = []
    clinical = summary["pipelines"].get("clinical", {}).get("stages", {})
    if "audit" in clinical:
        where = report_dir / "index.html" if report_dir is not None else out / "clinical" / "audit" / "index.html"
        lines.append(f"audit report: {where}")
    if "label" in summary["pipelines"].get("clinical", {}):
        lines.append(f"label suggestions (Label Studio): {out / 'clinical' / 'label' / 'suggestions.labelstudio.json'}")
    if "label_spans" in summary["pipelines"].get("clinical", {}):
        lines.append(f"PHI span pre-annotations (Label Studio): {summary['pipelines']['clinical']['label_spans']['exports'][0]}")
    for name in summary["pipelines"]:
        lines.append(f"{name} run summary: {out / name / 'run.json'}")
    return lines
