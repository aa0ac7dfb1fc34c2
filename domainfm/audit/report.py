"""Render the audit: ``index.html`` (self-contained, plots as base64 PNG), ``report.json`` and
``model_card.md`` from jinja2 templates in ``domainfm/audit/templates/`` (package data) (HTML autoescaped)."""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path
from typing import Any

from markupsafe import Markup

from domainfm.errors import DomainFMError

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"  # package data
HTML_TEMPLATE = "audit_report.html.j2"
CARD_TEMPLATE = "model_card.md.j2"


def clean(obj: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN/inf to None."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def fmt_number(value: Any) -> str | None:
    """How a number is written in the HTML and model card (``report.json`` keeps full precision)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.3f}"
    return None


def _num(value: Any) -> Markup:
    text = fmt_number(value)
    return Markup('<span class="num">{}</span>').format(text) if text is not None else Markup("n/a")


def _plain(value: Any) -> str:
    text = fmt_number(value)
    return text if text is not None else "n/a"


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def plots(report: dict[str, Any]) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, Any] = {"groups": {}}
    metric = "f1" if report["model"].get("task") == "ner" else "accuracy"
    for attr, section in report["performance"]["by_attribute"].items():
        groups = section["groups"]
        names = list(groups)
        # a group not measured (an NER group with no gold and no predicted entity: F1 None) gets no
        # bar, and says so in its label, rather than a bar at 0 that reads as the worst group
        acc = [groups[g][metric] if groups[g][metric] is not None else 0.0 for g in names]
        ci = [(groups[g]["ci"][metric] or [a, a]) if groups[g][metric] is not None else [a, a]
              for g, a in zip(names, acc)]
        # a percentile interval need not contain the point estimate: clip the bars at 0
        lo = [max(0.0, a - c[0]) for c, a in zip(ci, acc)]
        hi = [max(0.0, c[1] - a) for c, a in zip(ci, acc)]
        fig, ax = plt.subplots(figsize=(6, 0.35 * len(names) + 1.2))
        ax.barh(range(len(names)), acc, xerr=[lo, hi], color=["#d9822b" if groups[g]["small"] else "#3b6ea5" for g in names])
        # group names are data: "$...$" in one would be parsed as mathtext ("$5-$10" in italics, and
        # "$\\x$" an error after the whole audit ran)
        shown = [f"{g} (n={groups[g]['n']}{'' if groups[g][metric] is not None else ', n/a'})" for g in names]
        ax.set_yticks(range(len(names)), shown, fontsize=8, parse_math=False)
        ax.set_xlim(0, 1)
        ax.set_xlabel(f"{metric} (95% bootstrap CI; orange: small group)")
        out["groups"][attr] = _png(fig)
    cal = report.get("calibration", {})
    if cal.get("overall", {}).get("bins") is not None and cal.get("overall", {}).get("ece") is not None:
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
        series = [("all documents", cal["overall"])]
        temp = cal.get("temperature", {})
        if temp.get("fitted"):
            series += [("held-out, before T", temp["before"]), ("held-out, after T", temp["after"])]
        for name, c in series:
            ax.plot([b["confidence"] for b in c["bins"]], [b["accuracy"] for b in c["bins"]], "o-", label=name)
        ax.set_xlabel("confidence")
        ax.set_ylabel("accuracy")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
        out["reliability"] = _png(fig)
    return out


def _shade(value: float | None, scale: float) -> str:
    if value is None or scale <= 0:
        return ""
    a = min(1.0, abs(value) / scale) * 0.8
    return f"background: rgba(214,39,40,{a:.2f})" if value > 0 else f"background: rgba(31,119,180,{a:.2f})"


def incomparable(gaps: dict[str, Any]) -> str:
    """" (not comparable: one group)" for a gap scope with fewer than two groups, else ""."""
    if gaps.get("comparable", True):
        return ""
    return " (not comparable: one group)" if len(gaps.get("groups") or []) == 1 else " (not comparable: no group)"


def _environment(template_dir: Path):
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(loader=FileSystemLoader(str(template_dir)), undefined=StrictUndefined,
                      autoescape=select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=True))
    env.filters["num"] = _num
    env.filters["pct"] = lambda v: "n/a" if v is None else f"{100 * v:.1f}%"
    env.filters["shade"] = _shade
    env.filters["incomparable"] = incomparable
    return env


def render(report: dict[str, Any], template_dir: str | Path | None = None) -> tuple[str, str]:
    """``(html, model_card_markdown)`` for a report."""
    folder = Path(template_dir) if template_dir else TEMPLATE_DIR
    env = _environment(folder)
    html = env.get_template(HTML_TEMPLATE).render(r=report, plots=plots(report))
    card_env = _environment(folder)
    card_env.autoescape = False
    card_env.filters["num"] = _plain
    # values from the data (labels, group names) are escaped; the user's own --data-note is
    # Markdown and stays as written
    from domainfm.audit.cards.document import md_cell, md_text

    card_env.filters["text"] = md_text
    card_env.filters["cell"] = md_cell
    card = card_env.get_template(CARD_TEMPLATE).render(r=report)
    return html, card


def write_report(report: dict[str, Any], out_dir: str | Path, template_dir: str | Path | None = None) -> dict[str, Path]:
    """Scan for PHI patterns, then write ``report.json``, ``index.html``, ``model_card.md`` and
    a manifest.

    Raises:
        DomainFMError: a rendered file still matches a PHI pattern (nothing is written).
    """
    from domainfm.audit.privacy import PHI_PATTERNS, scan_phi
    from domainfm.manifest import write_manifest

    report = clean(report)
    report["privacy"]["report_scan"] = {"patterns": sorted(PHI_PATTERNS), "hits": {}}
    text_json = json.dumps(report, indent=2, ensure_ascii=False)
    html, card = render(report, template_dir)
    # pure ASCII: non-ASCII document text becomes character references, so the page shows the
    # same whatever encoding a viewer assumes
    html = html.encode("ascii", "xmlcharrefreplace").decode("ascii")
    hits: dict[str, int] = {}
    for name, text in (("report.json", text_json), ("index.html", html), ("model_card.md", card)):
        for pattern, n in scan_phi(text).items():
            hits[f"{name}:{pattern}"] = n
    if hits:
        raise DomainFMError(f"the report would contain PHI-like text {hits}; nothing was written "
                            "(de-identify the documents or run without --explain)")
    from contextlib import ExitStack

    from domainfm.corpus.io import atomic_file, check_output_path

    out = check_output_path(out_dir, folder=True)
    paths = {"json": out / "report.json", "html": out / "index.html", "card": out / "model_card.md"}
    # All three are written in full before any is renamed into place: a run killed while writing
    # leaves the previous report whole, never half old and half new.
    with ExitStack() as stack:
        for key, text in (("json", text_json + "\n"), ("html", html), ("card", card)):
            stack.enter_context(atomic_file(paths[key])).write(text)
    write_manifest(out, stage="audit", config=report["config"], outputs=list(paths.values()),
                   counts={"documents": report["data"]["n_documents"]})
    return paths
