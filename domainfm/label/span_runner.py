"""``domainfm label --task ner``: read span seeds and a pool, write span suggestions + rejects +
exports + manifest."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from domainfm.corpus.io import Counts, OutputLock, Rejected, read_located_documents
from domainfm.label.export import export_path_for, write_span_export
from domainfm.errors import DomainFMError
from domainfm.label.runner import (LabelRun, SeedFile, check_label_outputs, check_pool_is_not_seeds, with_seed_counts,
                                   write_outputs)
from domainfm.label.span_config import SpanLabelConfig
from domainfm.manifest import write_manifest

SPAN_EXPORTS = ("labelstudio", "prodigy")


@dataclass
class _SpanRunConfig:
    """Saved in the manifest: the span config plus the run's files."""

    labeled: str
    pool: str
    out: str
    exports: list[str]
    spans: SpanLabelConfig


def label_spans_file(labeled: str | os.PathLike, pool: str | os.PathLike, out: str | os.PathLike,
                     config: SpanLabelConfig | None = None, *, exports: list[str] = (),
                     on_stage: Callable[[str], None] | None = None) -> LabelRun:
    """Suggest spans for the pool from span-annotated seeds; ``read == written + rejected`` over
    the pool. Exports list the pool in annotation order with the suggestions as pre-annotations.
    Invalid seed records go to the same reject file (reasons starting ``seed:``) and
    ``LabelRun.seeds`` reconciles the seeds: ``read == used + rejected``."""
    from domainfm.label.spans import suggest_spans

    cfg = config or SpanLabelConfig()
    labeled, pool, out = Path(labeled), Path(pool), Path(out)
    check_pool_is_not_seeds(labeled, pool, spans=True)
    # a dictionary given as a file is read too (`-o terms.txt --dictionary terms.txt`)
    check_label_outputs(out, exports, [labeled, pool, *(Path(d) for d in cfg.dictionaries if Path(d).is_file())])
    with OutputLock(out):
        counts = Counts()
        bad: list[Rejected] = []
        seed_file = SeedFile.read(labeled)
        # the tagger trains on no blank seed: each is counted as rejected, so used = what trained
        blank = {id(d): "empty text" for d in seed_file.docs if not d.text.strip()}
        seeds = [d for d in seed_file.docs if id(d) not in blank]
        if not any(d.spans for d in seeds):
            raise DomainFMError(f"no seed document has spans ({seed_file.describe_spans()}); give --labeled "
                                "documents annotated with spans (e.g. from 'domainfm import labelstudio')")
        seed_counts, seed_rejects = seed_file.account(blank)
        where: dict[str, str] = {}
        docs = []
        for location, d in read_located_documents(pool, rejects=bad):
            docs.append(d)
            where[d.id] = location
        counts.read = len(docs) + len(bad)
        result = suggest_spans(seeds, docs, cfg, on_stage=on_stage)
        reasons = [Rejected(reason, location=where.get(d.id), record_id=d.id,
                            raw=json.dumps(d.to_dict(), ensure_ascii=False)) for d, reason in result.rejected]
        rejects_file, first = write_outputs(out, result.records(), bad + reasons, counts, seed_rejects)
        any_rejects = bool(counts.rejected or seed_rejects)
        written = []
        for kind in exports:
            written.append(write_span_export(kind, export_path_for(out, kind), result.docs, labels=result.labels,
                                             predicted=result.spans, ranks=result.ranks, scores=result.scores,
                                             model_version=f"domainfm-spans-{Path(cfg.encoder).name}"))
        summary = {**result.summary, "task": "ner", "seed_records_invalid": len(seed_file.invalid)}
        manifest = write_manifest(
            out, stage="label", config=_SpanRunConfig(str(labeled), str(pool), str(out), list(exports), cfg),
            inputs=[labeled, pool], outputs=[out] + ([rejects_file] if any_rejects else []) + written,
            counts=with_seed_counts(counts, seed_counts), extra={"summary": summary},
        )
        return LabelRun(out, rejects_file if any_rejects else None, manifest, counts, summary, written, first,
                        seed_counts)
