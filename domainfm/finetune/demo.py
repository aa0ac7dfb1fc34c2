"""The CLI's progress lines of a fine-tune and the demo's note-type classifier."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from domainfm.finetune.config import TaskConfig
from domainfm.finetune.train import FinetuneResult, finetune


def _score(value: float | None) -> str:
    """An eval score as a progress line shows it; None is a score with nothing to measure."""
    return "n/a (not measured)" if value is None else f"{value:.4f}"


def console_reporter(console):
    """An ``on_event`` callback printing progress lines (steps every 10%, evaluations, info)."""
    state = {"last": -1}

    def on_event(event: dict[str, Any]) -> None:
        kind = event["kind"]
        if kind == "info":
            console.print(event["message"])
        elif kind == "eval":
            console.print(f"eval at step {event['step']}: {event['metric']} {_score(event['value'])} "
                          f"(best {_score(event['best'])})")
        elif kind == "step" and event.get("loss") is not None:
            tenth = int(10 * event["step"] / max(event["total_steps"], 1))
            if tenth != state["last"]:
                state["last"] = tenth
                console.print(f"step {event['step']}/{event['total_steps']}: loss {event['loss']:.4f}")

    return on_event


def demo_config(corpus: str | os.PathLike, **overrides: Any) -> TaskConfig:
    """The demo task, ``tasks/demo-clinical-classify.yaml`` as shipped in the package: a LoRA
    classifier of the note type (``meta.note_type``) of the sample clinical notes on the embedded
    MiniLM, 2 epochs, about 2 minutes on 2 CPU cores. ``corpus`` is the notes JSONL (e.g. the
    demo's de-identified output) and replaces the file's ``data.train``."""
    from domainfm.config import apply_overrides, from_dict
    from domainfm.resources import read_packaged_task

    data = read_packaged_task("demo-clinical-classify.yaml")
    data.pop("allow_identified_data", None)  # the file trains on the synthetic corpus; the demo on its deid output
    data["data"]["train"] = str(corpus)
    return from_dict(TaskConfig, apply_overrides(data, overrides))


def finetune_demo(corpus: str | os.PathLike, out_dir: str | os.PathLike, *, console=None,
                  **overrides: Any) -> FinetuneResult:
    """Fine-tune the demo's LoRA note-type classifier on the (de-identified) sample clinical notes.

    Args:
        corpus: the clinical notes JSONL (``corpora/clinical/notes.jsonl`` or its deid output).
        out_dir: model folder (replaced when it holds an earlier run).
        console: a rich console for progress lines (default: silent).
        overrides: dotted config overrides, e.g. ``**{"train.epochs": 1}``.

    Example:
        >>> result = finetune_demo("demo-output/clinical/deid/corpus.jsonl", "demo-output/classifier")  # doctest: +SKIP
        >>> result.metrics["eval"]["macro_f1"]  # doctest: +SKIP
    """
    cfg = demo_config(corpus, **overrides)
    out = Path(out_dir)
    result = finetune(cfg, out, overwrite=out.exists() and any(out.iterdir()) if out.is_dir() else False,
                      on_event=console_reporter(console) if console is not None else None)
    if console is not None:
        ev = result.metrics["eval"]
        console.print(f"classifier: macro-F1 {ev['macro_f1']:.3f}, accuracy {ev['accuracy']:.3f} on "
                      f"{ev['n']} held-out notes ({result.metrics['train']['train_seconds']:.0f} s training) "
                      f"-> {result.out_dir}")
    return result
