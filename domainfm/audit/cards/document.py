"""A card as data (titled sections of filled fields and metric tables), its completeness score,
and its Markdown rendering (``domainfm/audit/templates/card.md.j2``, package data)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from domainfm.audit.cards.evidence import ORIGINS, Evidence, Filled, Metric, fmt


@dataclass
class Section:
    key: str
    title: str
    fields: list[tuple[str, Filled]] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)

    def add(self, name: str, value: Filled | None, missing: str | None = None) -> "Section":
        """Add a field; ``None`` becomes "to be completed" (``missing`` says what)."""
        self.fields.append((name, value if value is not None else Filled.missing(missing or name.lower())))
        return self


@dataclass
class CardDocument:
    name: str
    title: str
    intro: str
    sections: list[Section]


def pointer(path: Iterable[str]) -> str:
    """RFC 6901 JSON pointer of a key path (``/`` and ``~`` escaped)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def completeness(filled: Iterable[Filled]) -> dict[str, Any]:
    """How many fields came from evidence, from configs, from the deployer, or are still open."""
    counts = {o: 0 for o in ORIGINS}
    for f in filled:
        counts[f.origin] += 1
    total = sum(counts.values())
    return {**counts, "total": total,
            "filled_fraction": round((total - counts["missing"]) / total, 4) if total else 0.0,
            "from_lineage_fraction": round((counts["evidence"] + counts["config"]) / total, 4) if total else 0.0}


def fields_of(doc: CardDocument) -> list[Filled]:
    return [f for s in doc.sections for _, f in s.fields]


def metric_row(m: Metric, ev: Evidence) -> dict[str, Any]:
    src = ev.sources.get(m.source)
    # the file as the appendix names it: a pipeline's audit, privacy audit and de-id evaluation
    # are all called report.json, so the bare name would send a reviewer to the wrong file
    return {"label": m.label, "value": m.value, "ci": m.ci, "unit": m.unit, "n": m.n,
            "file": src.path if src else m.source, "pointer": pointer(m.path),
            "value_json": m.value_json(ev.sources)}


def to_json(doc: CardDocument, ev: Evidence) -> dict[str, Any]:
    return {
        "card": doc.name, "title": doc.title, "intro": doc.intro,
        "sections": [{"key": s.key, "title": s.title,
                      "fields": [{"name": n, "text": f.text, "origin": f.origin, "sources": f.sources}
                                 for n, f in s.fields],
                      "metrics": [metric_row(m, ev)["value_json"] | {"label": m.label} for m in s.metrics]}
                     for s in doc.sections],
        "completeness": completeness(fields_of(doc)),
        "sources": [vars(s) for s in ev.sources.values()],
    }


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_NEWLINE = re.compile(r"\r\n|[\r\n]")


def _one_line(text: Any) -> str:
    """Newlines as spaces (a newline ends a table row or list item) and control characters as
    U+FFFD, as the XML card shows them."""
    return _CONTROL.sub("\ufffd", _NEWLINE.sub(" ", str(text)))


def md_text(text: Any) -> str:
    """Text from the data or the deployer, safe in Markdown: one line, and ``&``, ``<``, ``>``
    as entities, so a value such as ``<img onerror=...>`` is shown, never rendered as HTML."""
    return _one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def md_cell(text: Any) -> str:
    """:func:`md_text` for a table cell: ``|`` escaped (GFM), so a group named ``female | 0-17``
    stays in its cell."""
    return md_text(text).replace("|", "\\|")


def md_code(text: Any) -> str:
    """A code span for a table cell: literal (no entities needed), ``|`` escaped (GFM removes the
    backslash before the span is read), fenced by more backticks than the text holds."""
    text = _one_line(text).replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def render_markdown(doc: CardDocument, ev: Evidence, template_dir=None) -> str:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    from domainfm.resources import template_dir as stage_templates

    env = Environment(loader=FileSystemLoader(str(template_dir or stage_templates("audit"))),
                      undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.filters["num"] = fmt
    env.filters["text"] = md_text
    env.filters["cell"] = md_cell
    env.filters["code"] = md_code
    sections = [{"title": s.title, "fields": s.fields,
                 "metrics": [metric_row(m, ev) for m in s.metrics]} for s in doc.sections]
    return env.get_template("card.md.j2").render(
        doc=doc, sections=sections, completeness=completeness(fields_of(doc)), sources=list(ev.sources.values()))
