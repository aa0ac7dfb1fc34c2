"""The ``deid_eval`` stage: the rules with and without the fine-tuned PHI model, scored on the
annotated notes fine-tuning held out (as the model folder recorded them)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from domainfm.deid.config import DeidConfig
from domainfm.errors import ConfigError
from domainfm.manifest import write_json_atomic
from domainfm.stages import StageContext, StageResult


@dataclass
class DeidEvalSection(DeidConfig):
    """The ``deid_eval:`` section: every :class:`~domainfm.deid.DeidConfig` key (the rules'
    settings and ``ner_threshold``, ``ner_label_map``, ``ner_quantize``), plus how to score.

    The stage de-identifies the documents fine-tuning held out (whole patients with
    ``data.split_key: auto``) twice, with the rules alone and with the rules plus the fine-tuned
    model (``ner_model``, wired by the pipeline), name propagation included as in
    ``domainfm deid``, and scores both against the documents' own gold spans (all PHI types,
    not only those the model learned).

    Args:
        dataset: label table of the gold spans (:mod:`domainfm.deid.labels`: ``physionet``,
            ``synthetic-clinical``, ``canonical``...).
        max_documents: score at most this many held-out documents (null: all).
        threshold_sweep: learned-span score floors (``ner_threshold``) also scored on the
            held-out patients; the report recommends the highest one that loses no recall there,
            neither with the rules nor for the model alone (recall first), and its ``use`` line
            passes it. ``[]``: no sweep.
    """

    dataset: str = "physionet"
    max_documents: int | None = None
    threshold_sweep: list[float] = field(default_factory=lambda: [0.5, 0.7, 0.8, 0.9])

    # DeidConfig keys the section inherits but never reads: it detects and replaces nothing, so a
    # vault or an operator set here would look as if the scored output had been written with it
    REFUSED_KEYS: ClassVar[dict[str, str]] = dict.fromkeys(
        ("vault", "operator", "pseudonymize_ids", "meta", "meta_default"),
        "is not used: deid_eval scores detection on the held-out notes and writes no de-identified text; remove "
        "it (the 'deid' section de-identifies)")

    def __post_init__(self) -> None:
        super().__post_init__()
        from domainfm.deid.labels import dataset_table

        dataset_table(self.dataset)
        if self.max_documents is not None and self.max_documents < 1:
            raise ConfigError(f"The 'deid_eval.max_documents' parameter must be an int >= 1 or null. "
                              f"Got {self.max_documents!r} instead.")
        bad = [t for t in self.threshold_sweep if not isinstance(t, (int, float)) or not 0 <= t <= 1]
        if bad:
            raise ConfigError(f"The 'deid_eval.threshold_sweep' parameter must list scores in [0, 1], e.g. "
                              f"[0.5, 0.7, 0.9]. Got {bad!r}.")


def run(config: DeidEvalSection, inputs: list[Path], out: Path, context: StageContext) -> StageResult:
    """Score the held-out notes of the fine-tuned model ``inputs[0]`` (``context.stages`` holds
    the finetune section); writes the report to ``out``."""
    from domainfm.corpus import read_documents
    from domainfm.deid import PhiDetector
    from domainfm.deid.evaluate import bootstrap_intervals, evaluate, resampling_unit, unit_counts
    from domainfm.deid.propagate import propagate_names
    from domainfm.finetune.split import recorded_documents

    section = config
    task = context.stages["finetune"]
    _, eval_docs, stats = recorded_documents(inputs[0], task)
    if not eval_docs:
        raise ConfigError("deid_eval scores the documents fine-tuning held out, and there are none: set "
                          "finetune.data.eval_fraction > 0 or finetune.data.eval")
    held = {d.id for d in eval_docs}
    # the gold as imported: every PHI type, not only the labels the model was trained on
    source = task.data.eval or task.data.train
    gold = [d for d in read_documents(source) if d.id in held]
    if section.max_documents is not None:
        gold = gold[: section.max_documents]
    # spans of labels that are not PHI (Presidio's TITLE) leave nothing to find: recall has no value
    if not evaluate(gold, {}, dataset=section.dataset, keep_lists=False).gold:
        raise ConfigError(f"deid_eval: the {len(gold)} held-out notes have no gold PHI spans, so there is no "
                          "recall to measure: import annotated notes (spans) or hold out other patients")
    base = DeidConfig(**{f.name: getattr(section, f.name) for f in dataclasses.fields(DeidConfig)})
    model = inputs[0]
    unit = resampling_unit(gold)
    chars = sum(len(d.text) for d in gold)
    report: dict[str, Any] = {
        "held_out": {"documents": len(gold), "patients": len({str(d.meta.get("patient_id", d.id)) for d in gold}),
                     "split_key": stats.get("split_key"), "source": stats.get("eval_source")},
        "model": str(model),
        "note": "the held-out patients also chose fine-tuning's best checkpoint (train.metric at each "
                "evaluation), so rules_and_model is slightly optimistic; the rules never saw them",
        "matching": "any-overlap, type-agnostic; precision per predicted span; name propagation included",
    }

    def scored(detected) -> dict[str, Any]:
        predicted = {doc.id: found for doc, found in propagate_names(detected)}
        s = evaluate(gold, predicted, dataset=section.dataset, keep_lists=False).summary()
        # a few dozen held-out patients: how far the next ones may land (resampling patients)
        spread = bootstrap_intervals(unit_counts(gold, predicted, dataset=section.dataset, unit=unit))
        return {"gold": s["gold"], "pred": s["pred"], **s["any_overlap"],
                "recall_by_type": {k: v["recall_any_label"] for k, v in s["per_type"].items() if v["gold"]},
                "interval_90": {"unit": unit, "units": spread["units"], "recall": spread["recall"],
                                "precision": spread["precision"]}}

    t0 = time.perf_counter()
    report["rules"] = scored(PhiDetector(base).detect(gold))
    report["rules"]["chars_per_s"] = round(chars / (time.perf_counter() - t0))
    floor = base.ner_threshold if base.ner_threshold is not None else base.score_threshold
    floors = [floor] + sorted({float(t) for t in section.threshold_sweep if t > floor})
    rows = threshold_sweep(dataclasses.replace(base, ner_model=str(model)), gold, floors, scored, section.dataset)
    report["rules_and_model"] = {k: v for k, v in rows[0].items()
                                 if k not in ("ner_threshold", "seconds", "model_alone_recall")}
    report["model_alone_recall"] = rows[0]["model_alone_recall"]
    report["rules_and_model"]["chars_per_s"] = round(chars / rows[0]["seconds"])  # the first floor: model included
    recommended = floor
    if len(rows) > 1:
        # The rules' name lists know many of the held-out strings, so rules + model rarely loses
        # recall at any floor there; on names no list holds only the model finds them (PhysioNet's
        # sealed folds: floor 0.9 kept every held-out span but cut the unseen estimate from 0.956
        # to 0.913). A floor is recommended only if the model alone keeps its recall too.
        recommended = max((r for r in rows if r["recall"] >= rows[0]["recall"]
                           and r["model_alone_recall"] >= rows[0]["model_alone_recall"]),
                          key=lambda r: r["ner_threshold"])["ner_threshold"]
        report["rules_and_model_by_threshold"] = [
            {k: r[k] for k in ("ner_threshold", "recall", "precision", "model_alone_recall")} for r in rows]
        report["recommended_ner_threshold"] = recommended
        report["recommended_because"] = ("the highest learned-span floor that loses no recall on the held-out "
                                         "patients, with the rules and with the model alone (they also chose the "
                                         "checkpoint: confirm on notes neither saw)")
    # the settings this stage scored with, so that deid runs the model as measured here
    report["use"] = (f"domainfm deid NOTES.jsonl -o OUT.jsonl --ner-model {model}"
                     + (f" --ner-quantize {base.ner_quantize}" if base.ner_quantize != "none" else "")
                     + (f" --ner-threshold {recommended:g}" if recommended != floor else ""))
    write_json_atomic(out, report, default=str)
    if context.console is not None:
        for name in ("rules", "rules_and_model"):
            r = report[name]
            # precision has no value where nothing was detected (a few short held-out notes)
            scores = ", ".join(f"{k} {r[k]:.3f}" if r[k] is not None else f"{k} n/a" for k in ("recall", "precision"))
            context.console.print(f"held-out patients, {name}: {scores}")
        context.console.print(f"the model for 'domainfm deid --ner-model': {model}")
    metrics = {f"{key}_{name}": round(report[name][key], 4) for name in ("rules", "rules_and_model")
               for key in ("recall", "precision") if isinstance(report[name].get(key), (int, float))}
    return StageResult([out], {"documents": len(gold), "patients": report["held_out"]["patients"]}, metrics)


def threshold_sweep(config: DeidConfig, docs: list, floors: list[float], score,
                    dataset: str | None = None) -> list[dict[str, Any]]:
    """Rules + the learned model (``config.ner_model``) at each learned-span floor
    (``ner_threshold``), each row ``{"ner_threshold": floor, "seconds": ..., **score(detections)}``
    where ``score`` receives ``(document, detections)`` pairs as ``PhiDetector.detect`` yields
    them. The model tags each note once, at the first floor (its spans are kept); later floors
    run only the rules and the merge, so every row is exactly what ``domainfm deid
    --ner-threshold floor`` detects, and the first row's seconds are rules + model. With the
    gold's ``dataset``, each row also has ``model_alone_recall``: the model's own spans at that
    floor against the gold of ``docs``."""
    from domainfm.deid import PhiDetector
    from domainfm.deid.learned import tag_once

    detector = PhiDetector(config)
    if detector.learned is not None:
        detector.learned.detect = tag_once(detector.learned.detect)
    rows = []
    for floor in floors:
        detector.config = dataclasses.replace(config, ner_threshold=floor)
        t0 = time.perf_counter()
        scores = score(detector.detect(docs))
        rows.append({"ner_threshold": floor, "seconds": time.perf_counter() - t0, **scores,
                     **({"model_alone_recall": _model_alone_recall(detector, docs, dataset)}
                        if dataset is not None else {})})
    return rows


def _model_alone_recall(detector, docs: list, dataset: str) -> float | None:
    """Any-overlap recall of the spans the model keeps alone at the detector's floor (the
    model's tags are cached by :func:`threshold_sweep`: no second tagging)."""
    from domainfm.deid.evaluate import evaluate

    alone = {doc.id: found for doc, found in detector.detect_learned(docs)}
    return evaluate(docs, alone, dataset=dataset, keep_lists=False).summary()["any_overlap"]["recall"]
