"""The CLI's progress rendering of a DAPT run and the demo's DAPT step."""

from __future__ import annotations

import contextlib
from typing import Any

from domainfm.pretrain.config import PretrainConfig
from domainfm.pretrain.train import PretrainResult, pretrain


@contextlib.contextmanager
def console_reporter(console):
    """An ``on_event`` callback that draws a rich progress bar (tokens/s, loss, ETA) on a
    terminal and prints plain log lines elsewhere."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("pretrain"), BarColumn(), TextColumn("step {task.completed}/{task.total}"),
        TextColumn("{task.fields[tps]} tok/s"), TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=console, transient=True, disable=not console.is_terminal,
    )
    task = None

    def on_event(event: dict[str, Any]) -> None:
        nonlocal task
        kind = event["kind"]
        if kind == "info":
            progress.console.print(event["message"])
        elif kind == "eval":
            progress.console.print(f"eval ({event['when']}, step {event['step']}): loss {event['loss']:.4f}, "
                                   f"perplexity {event['perplexity']:.2f} on {event['sequences']} held-out sequences")
        elif kind == "step":
            fields = {"tps": f"{event['tokens_per_s']:.0f}" if event.get("tokens_per_s") else "-",
                      "loss": f"{event['loss']:.3f}" if event.get("loss") is not None else "-"}
            if task is None:
                task = progress.add_task("pretrain", total=event["total_steps"], **fields)
            progress.update(task, completed=event["step"], **fields)
        elif kind == "log" and not console.is_terminal:
            console.print(f"step {event['step']}: loss {event['loss']:.4f}, lr {event['lr']:.2e}, "
                          f"{event['tokens_per_s']:.0f} tokens/s")

    with progress:
        yield on_event


def demo_config(paths, **overrides: Any) -> PretrainConfig:
    """The short CPU DAPT step of ``domainfm demo``, ``tasks/pretrain-demo.yaml`` as shipped in the
    package: embedded MiniLM, packed 128-token blocks, whole-word masking, 40 steps of 16
    sequences; ``paths`` replaces the file's ``data.paths``."""
    from domainfm.config import apply_overrides, from_dict
    from domainfm.resources import read_packaged_task

    data = read_packaged_task("pretrain-demo.yaml")
    data["data"]["paths"] = [str(p) for p in paths]
    return from_dict(PretrainConfig, apply_overrides(data, overrides))


def pretrain_demo(paths, out_dir, *, console=None, allow_identified_data: bool = False,
                  **overrides: Any) -> PretrainResult:
    """Run the demo's DAPT step on de-identified sample corpora and print a short summary.

    Args:
        paths: de-identified JSONL files (the demo's deid outputs).
        out_dir: where the adapted model goes (replaced when it holds an earlier run).
        console: a rich console for progress (default: none).
        overrides: dotted config overrides, e.g. ``**{"train.max_steps": 10}``.
    """
    cfg = demo_config(paths, **overrides)
    reporter = console_reporter(console) if console is not None else contextlib.nullcontext(None)
    with reporter as on_event:
        result = pretrain(cfg, out_dir, overwrite=True, allow_identified_data=allow_identified_data,
                          on_event=on_event)
    if console is not None:
        before, after = result.metrics["eval_before"], result.metrics["eval_after"]
        if before and after:
            console.print(f"DAPT: held-out perplexity {before['perplexity']:.1f} -> {after['perplexity']:.1f} "
                          f"({result.steps} steps, {result.metrics['train']['tokens_per_s']:.0f} tokens/s) "
                          f"-> {result.out_dir}")
    return result
