"""The ``label`` stage: label suggestions for a real pool (the documents without a label, or
``label.pool``), seeded by the labeled ones, under the stage contract."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from domainfm.config import suggest
from domainfm.errors import ConfigError
from domainfm.stages import StageContext, StageResult, record_counts


@dataclass
class LabelSection:
    """Label suggestions for a real pool (``domainfm label`` inside a pipeline).

    Args:
        labeled: JSONL of labeled seed documents (a ``label`` or ``labels`` each); default: the
            stage's documents that carry a label.
        pool: JSONL of the documents to suggest labels for; default: the stage's documents
            without a label.
        method: ``embed`` (frozen encoder + calibrated LR) or ``setfit``.
        model: the sentence encoder (``minilm``, a folder, a hub id, or a ``domainfm pretrain``
            output).
        exports: annotation-tool files written beside the suggestions (``labelstudio``,
            ``prodigy``, ``csv``).

    Which documents carry a label follows the task the documents' fields give (``auto``: the
    field most of them use; :func:`~domainfm.label.assist.multilabel_task`). Multi-label:
    ``labels: []`` is a label, "none of the labels applies" (a Label Studio multi-choice task
    answered with no choice and a Prodigy ``choice_style: multiple`` task accepted with none are
    imported so), and that document is a seed, a negative for every label; a missing or null
    ``labels`` is unlabelled. Single-label: a blank ``label`` is none.

    The evaluation harness that hides the labels of labeled documents and scores the
    suggestions against them is ``domainfm.label.run_label_demo`` (run by ``domainfm demo``).
    """

    labeled: Path | None = None
    pool: Path | None = None
    method: Literal["embed", "setfit"] = "embed"
    model: str = "minilm"
    exports: list[str] = field(default_factory=lambda: ["labelstudio"])

    #: keys of the evaluation harness the label section used to run, refused with directions
    #: (``domainfm.pipeline`` reads ``REFUSED_KEYS`` before the unknown-key check)
    REFUSED_KEYS: ClassVar[dict[str, str]] = dict.fromkeys(
        ("seeds_per_class", "pool_size"),
        "is retired: the label stage now suggests labels for a real pool (the documents without a label, or label.pool) "
        "seeded by label.labeled (default: the documents with one); the evaluation draw it used to make is "
        "domainfm.label.run_label_demo, run by 'domainfm demo'; remove it")

    def __post_init__(self) -> None:
        from domainfm.label.export import EXPORT_FORMATS

        for kind in self.exports:
            if kind not in EXPORT_FORMATS:
                raise ConfigError(f"label.exports: unknown format {kind!r}{suggest(kind, EXPORT_FORMATS)}; "
                                  f"choose from {list(EXPORT_FORMATS)}")



def run(config: LabelSection, inputs: list[Path], out: Path, context: StageContext | None = None) -> StageResult:
    """Suggest labels into ``out``: the seeds are ``config.labeled`` (default: the documents of
    ``inputs[0]`` with a label, ``labels: []`` included), the pool ``config.pool`` (default:
    those without one)."""
    from domainfm.corpus import read_documents, write_documents
    from domainfm.label import LabelConfig, label_file
    from domainfm.label.assist import is_labelled, multilabel_task

    context = context or StageContext()
    cfg, out_dir = config, out.parent
    labeled, pool = cfg.labeled, cfg.pool
    label_cfg = LabelConfig(method=cfg.method, model=cfg.model, seed=13 if context.seed is None else context.seed)
    if labeled is None or pool is None:
        # one pass over the stage's documents: those with a label seed, the others are the pool
        docs = list(read_documents(inputs[0]))
        multilabel = multilabel_task(docs, label_cfg.task)
        has_label = [is_labelled(d, multilabel) for d in docs]
        if labeled is None:
            labeled = out_dir / "seeds.jsonl"
            write_documents(labeled, [d for d, y in zip(docs, has_label) if y])
        if pool is None:
            pool = out_dir / "pool.jsonl"
            unlabeled = [d for d, y in zip(docs, has_label) if not y]
            if not unlabeled:
                negatives = sum(1 for d in docs if multilabel and d.labels == [])
                said = (f", {negatives} of them with 'labels': [] (none of the labels applies)" if negatives
                        else "")
                raise ConfigError(f"label: every one of the {len(docs)} documents of {inputs[0].name} carries a "
                                  f"label{said}, so there is nothing to suggest for; give label.pool (documents "
                                  "to label)")
            write_documents(pool, unlabeled)
    run = label_file(labeled, pool, out, label_cfg, exports=list(cfg.exports))
    return result_of(run)


def result_of(run, *, check: bool = False) -> StageResult:
    """The StageResult of a :func:`~domainfm.label.label_file` run (``domainfm label`` prints it)."""
    s = run.summary
    cv = s.get("cross_validation", {})
    metrics = {k: round(cv[k], 4) for k in ("expected_accuracy", "expected_micro_f1", "expected_macro_f1",
                                            "expected_ece") if k in cv}
    seeds = ", ".join(f"{k}={v}" for k, v in s["seeds_per_class"].items())
    notes = [f"{s['task']}-label, {len(s['classes'])} labels; seeds per label: {seeds}"]
    notes += seed_notes(run)
    if s["labels_left_out"]:
        from domainfm.corpus.summary import label_counts

        notes.append(f"left out (fewer than 2 seeds, or on every seed): {label_counts(s['labels_left_out'])}")
    if s.get("descriptions_unused"):
        notes.append(f"label descriptions not used (no label of these names among the seeds' labels): "
                     f"{', '.join(s['descriptions_unused'])}")
    expected = cv.get("expected_accuracy", cv.get("expected_micro_f1"))
    name = "accuracy" if "expected_accuracy" in cv else "micro-F1"
    notes.append(f"expected {name} (cross-validated on the seeds, {cv['folds']} folds): {expected:.2f}; "
                 f"macro-F1 {cv['expected_macro_f1']:.2f}; calibration error {cv['expected_ece']:.2f}")
    if check:
        notes.append(f"flagged {s['flagged']} of {s['checked']} labeled documents as likely label errors "
                     f"(meta.label_check in {run.out})")
        if s["not_checked"]:
            why = ", ".join(f"{reason}: {n}" for reason, n in Counter(s["not_checked"]).most_common())
            notes.append(f"not checked: {why} (in {run.rejects})")
    notes += [f"export: {path}" for path in run.exports]
    return StageResult([run.out, run.manifest, *run.exports], record_counts(run.counts), metrics,
                       manifest=run.manifest, rejects=run.rejects, first_rejects=run.first_rejects, notes=notes,
                       warnings=[] if check else pool_warnings(s["pool"], run.rejects))


def pool_warnings(pool: dict, rejects: Path | None) -> list[str]:
    """Counts of the pool documents that repeat a seed (never their ids: ids can be record numbers)."""
    out = []
    if pool["already_labelled"]:
        n = pool["already_labelled"]
        out.append(f"{n} pool document{' is a seed' if n == 1 else 's are seeds'} already (same id and text): left "
                   f"out of the pool, neither suggested nor ranked; rejected as 'already labelled' in {rejects}")
    if pool["id_collisions"]:
        n = pool["id_collisions"]
        out.append(f"{n} pool document{' has the id of a seed' if n == 1 else 's have the ids of seeds'} but another "
                   f"text: rejected as 'id collision with a seed' in {rejects} (each names the seed's line); give "
                   "each document an id of its own")
    return out


def seed_notes(run) -> list[str]:
    """The seed line for the console when seed records were rejected (counts and reasons only)."""
    seeds = run.seeds
    if seeds is None or not seeds.rejected:
        return []
    why = ", ".join(f"{reason}: {n}" for reason, n in seeds.reasons.items())
    return [f"seeds: read {seeds.read} = used {seeds.written} + rejected {seeds.rejected} ({why}; "
            f"in {run.rejects}, reasons starting 'seed:')"]


def span_result_of(run) -> StageResult:
    """The StageResult of a :func:`~domainfm.label.span_runner.label_spans_file` run."""
    s = run.summary
    notes = [f"labels: {', '.join(s['labels'])}; {s['seed_documents']} seed documents with {s['seed_spans']} "
             f"spans; {s['suggested_spans']} spans suggested"] + seed_notes(run)
    if s.get("seed_spans_overlapped"):
        n = s["seed_spans_overlapped"]
        notes.append(f"seed spans left out of training: {n}, each overlapping a longer one (the tagger reads one "
                     "layer: the longer, outer span)")
    cal = s["calibration"]
    if cal.get("folds"):
        precision = cal.get("oof_span_precision")
        temperature = f"temperature {cal['temperature']:.2f}, " if "temperature" in cal else ""  # finetune: Platt only
        notes.append(f"calibrated on {cal['folds']} seed folds: {temperature}"
                     f"{cal['oof_spans']} held-out spans"
                     + (f", {precision:.0%} exactly right" if precision is not None else ""))
    if s.get("deid_prior"):
        notes.append(f"de-id prior for: {', '.join(s['deid_prior']['labels'])}")
    notes += [f"export: {path}" for path in run.exports]
    return StageResult([run.out, run.manifest, *run.exports], record_counts(run.counts), {},
                       manifest=run.manifest, rejects=run.rejects, first_rejects=run.first_rejects, notes=notes)
