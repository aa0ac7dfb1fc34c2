"""``domainfm demo``: the pipeline on the shipped synthetic corpora, offline.

Steps: import the sample corpora (validated by the same importer users run) -> de-identify them
(surrogates; scored against the corpora's gold PHI) -> chunk the de-identified text for the
embedded MiniLM -> a short domain-adaptive pretraining run of MiniLM on the de-identified notes
-> a LoRA classifier (note type) fine-tuned from that DAPT model -> an audit report of that
classifier -> suggest labels for part of the clinical notes from 8 seeds per class. Every
step writes its output with a manifest under ``demo-output/``; the console shows counts and
scores only, never document text.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from domainfm.corpus import read_documents, summarize
from domainfm.corpus.importing import import_corpus
from domainfm.corpus.summary import print_summary

SAMPLE_CORPORA = {
    "clinical": Path("clinical") / "notes.jsonl",
    "legal": Path("legal") / "documents.jsonl",
}
# Which recognizer profile and gold label table each sample corpus uses.
PROFILES = {"clinical": ("clinical", "synthetic-clinical"), "legal": ("legal", "synthetic-legal")}
DEMO_SEED = 13


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


def run_demo(out: Path = Path("demo-output"), corpora: Path = Path("corpora"), console=None,
             steps: tuple[str, ...] = ("import", "deid", "chunk", "pretrain", "finetune", "audit", "label"),
             pretrain_steps: int = 20) -> dict:
    """Run the pipeline's stages on the sample corpora; returns (and saves) the demo summary."""
    from rich.console import Console

    console = console or Console()
    out = Path(out)
    results: dict = {"steps": {}}
    timings: dict[str, float] = {}

    def step(name: str):
        timings[name] = time.perf_counter()
        console.rule(f"[bold]{name}")

    imported = {}
    step("import")
    for name, src in ensure_sample_corpora(Path(corpora), console).items():
        target = out / "corpus" / f"{name}.jsonl"
        result = import_corpus("jsonl", src, target)
        c = result.counts
        console.print(f"{name}: read {c.read} = written {c.written} + rejected {c.rejected} -> {target}")
        summary = summarize(read_documents(target)).to_dict()
        print_summary(console, f"{name} corpus", summary)
        imported[name] = target
        results["steps"].setdefault("import", {})[name] = {"path": str(target), "counts": c.to_dict()}
    timings["import"] = time.perf_counter() - timings["import"]

    deidentified = {}
    if "deid" in steps:
        step("deid")
        results["steps"]["deid"] = {}
        for name, src in imported.items():
            deidentified[name], results["steps"]["deid"][name] = _deid(name, src, out, console)
        timings["deid"] = time.perf_counter() - timings["deid"]

    if "chunk" in steps and deidentified:
        step("chunk")
        results["steps"]["chunk"] = {}
        for name, src in deidentified.items():
            results["steps"]["chunk"][name] = _chunk(name, src, out, console)
        timings["chunk"] = time.perf_counter() - timings["chunk"]

    if "pretrain" in steps and "clinical" in deidentified:
        step("pretrain")
        from domainfm.pretrain import pretrain_demo

        # A short DAPT run on the de-identified notes: it passes the privacy gate because the
        # input's manifest says stage "deid".
        dapt = pretrain_demo([deidentified["clinical"]], out / "dapt", console=console,
                             **{"train.max_steps": pretrain_steps})
        results["steps"]["pretrain"] = {"out": str(dapt.out_dir), "steps": dapt.steps,
                                        "eval_before": dapt.metrics.get("eval_before"),
                                        "eval_after": dapt.metrics.get("eval_after")}
        timings["pretrain"] = time.perf_counter() - timings["pretrain"]

    if "finetune" in steps and "clinical" in deidentified:
        step("finetune")
        from domainfm.finetune import finetune_demo

        # The LoRA classifier starts from the DAPT model when the demo made one: the pipeline's
        # point is adapt first, then fine-tune.
        base = {"model.name": str(out / "dapt")} if "pretrain" in results["steps"] else {}
        model = finetune_demo(deidentified["clinical"], out / "classifier", console=console, **base)
        results["steps"]["finetune"] = {"out": str(model.out_dir), "base_model": base.get("model.name", "minilm"),
                                        "eval": model.metrics.get("eval")}
        timings["finetune"] = time.perf_counter() - timings["finetune"]

    if "audit" in steps and "finetune" in results["steps"]:
        step("audit")
        from domainfm.audit import AuditConfig, audit

        # The demo audits the classifier on the whole de-identified sample corpus (training notes
        # included: a demo of the report, not an estimate of generalisation).
        report = audit(out / "classifier", read_documents(deidentified["clinical"]), out / "audit",
                       AuditConfig(group_by=["meta.sex", "meta.age_band"], label_field="meta.note_type",
                                   explain=2, max_evals=60, n_bootstrap=200, seed=DEMO_SEED))
        console.print(f"audit report: {report.out_dir / 'index.html'}")
        results["steps"]["audit"] = {"out": str(report.out_dir)}
        timings["audit"] = time.perf_counter() - timings["audit"]

    if "label" in steps:
        step("label")
        from domainfm.label import run_label_demo

        source = deidentified.get("clinical", imported["clinical"])
        label = run_label_demo(source, out / "label", seeds_per_class=8, pool_size=120, seed=DEMO_SEED,
                               console=console)
        results["steps"]["label"] = {k: label[k] for k in ("out", "exports", "counts", "accuracy_vs_held_back")}
        timings["label"] = time.perf_counter() - timings["label"]

    results["seconds"] = {k: round(v, 1) for k, v in timings.items()}
    (out / "demo.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    console.rule()
    console.print(f"demo outputs in {out}/ (summary: {out / 'demo.json'}); seconds per step: {results['seconds']}")
    return results


def _deid(name: str, src: Path, out: Path, console) -> tuple[Path, dict]:
    from domainfm.deid import DeidConfig, deidentify_file
    from domainfm.deid.evaluate import evaluate_files

    profile, gold_labels = PROFILES[name]
    target = out / "deid" / f"{name}.jsonl"
    # An explicit seed makes the demo reproducible; real runs key surrogates with
    # $DOMAINFM_VAULT_KEY (or a random per-run secret).
    result = deidentify_file(src, target, DeidConfig(profile=profile), seed=DEMO_SEED)
    c = result.counts
    identifier_types = ["DIRECT", "QUASI"] if name == "legal" else None
    scores = evaluate_files(src, target, dataset=gold_labels, identifier_types=identifier_types)
    overlap = scores["any_overlap"]
    console.print(
        f"{name}: read {c.read} = written {c.written} + rejected {c.rejected}; {result.detections} PHI "
        f"replaced with surrogates; against the gold PHI: recall {overlap['recall']:.3f}, precision "
        f"{overlap['precision']:.3f} -> {target}"
    )
    return target, {"path": str(target), "counts": c.to_dict(), "detections": result.detections,
                    "any_overlap": overlap}


def _chunk(name: str, src: Path, out: Path, console) -> dict:
    from domainfm.chunk import ChunkConfig, chunk_file

    profile = PROFILES[name][0]
    target = out / "chunks" / f"{name}.jsonl"
    result = chunk_file(src, target, ChunkConfig(tokenizer="minilm", max_tokens=256, overlap=32, profile=profile))
    console.print(
        f"{name}: {result.counts.written} documents -> {result.chunks} chunks of at most 256 MiniLM "
        f"positions (largest {result.max_chunk_tokens}) -> {target}"
    )
    return {"path": str(target), "documents": result.counts.written, "chunks": result.chunks,
            "max_chunk_tokens": result.max_chunk_tokens}
