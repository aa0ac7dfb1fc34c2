"""``domainfm label``: read seeds and pool, write suggestions + rejects + exports + manifest."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from domainfm.config import as_config
from domainfm.corpus.document import Document
from domainfm.corpus.io import (Counts, OutputLock, Rejected, RejectWriter, JsonlWriter, check_output_path,
                                read_located_documents, rejects_path_for)
from domainfm.errors import ConfigError, CorpusError, DomainFMError
from domainfm.label.assist import Seeds, check_labels, is_labelled, prepare_seeds, suggest_labels
from domainfm.label.config import LabelConfig
from domainfm.label.export import check_csv_labels, export_path_for, write_export
from domainfm.manifest import write_manifest


@dataclass
class LabelRun:
    """Paths and counts of one ``domainfm label`` run."""

    out: Path
    rejects: Path | None
    manifest: Path
    counts: Counts
    summary: dict
    exports: list[Path] = field(default_factory=list)
    first_rejects: list[str] = field(default_factory=list)
    seeds: Counts | None = None  # seed records: read = used (``written``) + rejected


@dataclass
class _RunConfig:
    """Saved in the manifest: the label config plus the run's files."""

    labeled: str
    pool: str | None
    out: str
    check: bool
    exports: list[str]
    label: LabelConfig


def _read(path: Path, counts: Counts | None, rejects: list[Rejected], locations: dict[str, str] | None = None):
    docs = []
    for location, doc in read_located_documents(path, rejects=rejects):
        docs.append(doc)
        if locations is not None:
            locations[doc.id] = location
    if counts is not None:
        counts.read += len(docs) + len(rejects)
    return docs


def check_label_outputs(out: Path, exports: Sequence[str], inputs: Sequence[Path]) -> None:
    """Refuse, before any work, an output that is one of the files the run reads: ``out``, its
    reject file, and each export with Label Studio's config beside it (``-o sugg.jsonl --export
    csv`` writes ``sugg.csv``, which may be the seed file)."""
    paths = [out, rejects_path_for(out)]
    for kind in exports:
        export = export_path_for(out, kind)
        paths.append(export)
        if kind == "labelstudio":
            paths.append(export.with_name(export.name + ".config.xml"))
    for path in paths:
        check_output_path(path, inputs=inputs)


def check_pool_is_not_seeds(labeled: Path, pool: Path, *, spans: bool = False) -> None:
    """Refuse a pool that is the seed file itself: every seed would come back suggested its own
    label (or spans), a run that looks fine and labels nothing new."""
    try:
        same = labeled.resolve() == pool.resolve() or (labeled.is_file() and pool.is_file()
                                                       and os.path.samefile(labeled, pool))
    except OSError:  # a missing file is the reader's error to give, with its own message
        return
    if same:
        hint = "" if spans else " (or --check to check the labeled set)"
        raise CorpusError(f"--pool {pool.name} is the --labeled file: the seeds would be suggested their own "
                          f"{'spans' if spans else 'labels'}; give the documents to label as --pool{hint}")


SEED_TAG = "seed: "  # reject reasons of seed records start with it (pool rejects do not)


@dataclass
class SeedFile:
    """The seed file as read: its documents with their ``file:line``, and its invalid records."""

    path: Path
    located: list[tuple[str, Document]]
    invalid: list[Rejected]

    @classmethod
    def read(cls, path: Path) -> SeedFile:
        invalid: list[Rejected] = []
        return cls(path, list(read_located_documents(path, rejects=invalid)), invalid)

    @property
    def docs(self) -> list[Document]:
        return [d for _, d in self.located]

    def account(self, unused: dict[int, str] | None = None) -> tuple[Counts, list[Rejected]]:
        """Seed counts (``written`` = used) and the tagged reject records: the invalid records,
        then the documents ``unused`` names (``id(document) -> why``)."""
        counts, rejects, unused = Counts(read=len(self.located) + len(self.invalid)), [], unused or {}
        for item in self.invalid:
            counts.add_reject(item.reason)
            rejects.append(Rejected(SEED_TAG + item.reason, item.location, item.record_id, item.raw))
        for location, doc in self.located:
            why = unused.get(id(doc))
            if why is None:
                counts.written += 1
                continue
            counts.add_reject(why)
            rejects.append(Rejected(f"{SEED_TAG}{why} (not used to train)", location, doc.id,
                                    json.dumps(doc.to_dict(), ensure_ascii=False)))
        return counts, rejects

    def describe_spans(self) -> str:
        """Counts only, for an error about span seeds: records, invalid, blank, with spans."""
        docs = self.docs
        return (f"{self.path.name}: {len(self.located) + len(self.invalid)} records, {len(self.invalid)} invalid, "
                f"{sum(1 for d in docs if not d.text.strip())} blank, {sum(1 for d in docs if d.spans)} with spans")

    def describe(self) -> str:
        """Counts only, for an error about the seeds: how many records, invalid, unlabelled
        (neither a ``label`` nor a ``labels`` list: ``labels: []`` is a label, see
        :func:`~domainfm.label.assist.is_labelled`)."""
        unlabelled = sum(1 for d in self.docs if not (is_labelled(d, False) or is_labelled(d, True)))
        return (f"{self.path.name}: {len(self.located) + len(self.invalid)} records, {len(self.invalid)} invalid, "
                f"{unlabelled} without a label")


def _prepared_seeds(seeds: SeedFile, cfg: LabelConfig) -> Seeds:
    """:func:`prepare_seeds` of the seed file; a seed set that cannot train raises, naming the
    counts."""
    try:
        return prepare_seeds(seeds.docs, cfg)
    except DomainFMError as err:
        raise DomainFMError(f"{err} ({seeds.describe()})") from None


def label_file(labeled: str | os.PathLike, pool: str | os.PathLike | None, out: str | os.PathLike,
               config: LabelConfig | None = None, *, exports: list[str] = (), check: bool = False,
               on_stage: Callable[[str], None] | None = None, read_also: Sequence[str | os.PathLike] = ()) -> LabelRun:
    """Suggest labels for the pool file (or, with ``check``, flag label errors in the labeled
    file) and write ``out`` atomically with ``<out>.rejects.jsonl`` and a manifest beside it.

    Counts are over the documents written to ``out`` (the pool, or the labeled set for a check):
    ``read == written + rejected``. Seed records that cannot be used (invalid, without a label,
    of a label with fewer than 2 seeds) go to the same reject file with reasons starting
    ``seed:``, and ``LabelRun.seeds`` (``counts.seeds`` in the manifest) reconciles them:
    ``read == used + rejected``. Pool records :func:`~domainfm.label.suggest_labels` rejects
    (empty, no letter or digit, ``already labelled``, ``id collision with a seed``) are pool
    rejects; their reasons name the seed's ``file:line``, never an id. With ``check``, each
    labeled record not checked is rejected with its own reason (``not checked: empty text``...).

    ``read_also``: other files the run read (``--label-descriptions``): never written over, and
    hashed in the manifest.
    """
    cfg = as_config(config, LabelConfig)
    labeled, out = Path(labeled), Path(out)
    source = labeled if check else Path(pool) if pool is not None else None
    if source is None:
        raise CorpusError("give --pool POOL.jsonl (documents to label), or --check to check the labeled set")
    if check and exports:
        raise ConfigError("--export writes a pool's suggestions for annotation; --check flags the labeled set "
                          "and has none to export: drop --export, or run the pool without --check")
    read_also = [Path(p) for p in read_also]
    if not check:
        check_pool_is_not_seeds(labeled, source)
    check_label_outputs(out, exports, [labeled, source, *read_also])
    with OutputLock(out):
        counts = Counts()
        bad: list[Rejected] = []
        seed_counts, seed_rejects = None, []
        where: dict[str, str] = {}  # id -> file:line of the documents written or rejected
        if check:
            docs = _read(labeled, counts, bad, where)
            result = check_labels(docs, cfg, on_stage=on_stage)
            by_id = {f["id"]: f for f in result.flags}
            skipped = {d.id: why for d, why in result.skipped}  # the reader refused duplicate ids
            records, reasons = [], []
            for d in docs:
                if d.id in skipped:
                    reasons.append(Rejected(f"not checked: {skipped[d.id]}", location=where.get(d.id), record_id=d.id,
                                            raw=json.dumps(d.to_dict(), ensure_ascii=False)))
                    continue
                flag = by_id.get(d.id)
                record = d.to_dict()
                record["meta"] = {**d.meta, "label_check": {"flagged": flag is not None, **(flag or {})}}
                record["meta"]["label_check"].pop("id", None)
                records.append(record)
            summary = result.summary
        else:
            seeds = SeedFile.read(labeled)
            prepared = _prepared_seeds(seeds, cfg)
            if "csv" in exports:  # before the work, not after it
                check_csv_labels(prepared.classes, "--export csv")
            seed_counts, seed_rejects = seeds.account({id(d): why for d, why in prepared.left_out})
            docs = _read(source, counts, bad, where)
            result = suggest_labels(seeds.docs, docs, cfg, on_stage=on_stage,
                                    seed_locations=[location for location, _ in seeds.located])
            records = result.iter_records()
            reasons = [Rejected(reason, location=where.get(d.id), record_id=d.id,
                                raw=json.dumps(d.to_dict(), ensure_ascii=False))
                       for d, reason in result.rejected]
            summary = result.summary
            summary["seed_records_invalid"] = len(seeds.invalid)
        rejects_file, first = write_outputs(out, records, bad + reasons, counts, seed_rejects)
        any_rejects = bool(counts.rejected or seed_rejects)
        written_exports = [write_export(kind, export_path_for(out, kind), result.docs, result.suggestions,
                                        classes=result.classes, multilabel=result.multilabel,
                                        model_version=f"domainfm-{cfg.method}-{summary['model']}")
                           for kind in exports]
        run_cfg = _RunConfig(str(labeled), None if pool is None else str(pool), str(out), check, list(exports), cfg)
        inputs = [labeled] + ([Path(pool)] if pool is not None and not check else []) + read_also
        manifest = write_manifest(
            out, stage="label", config=run_cfg, inputs=inputs,
            outputs=[out] + ([rejects_file] if any_rejects else []) + written_exports,
            counts=with_seed_counts(counts, seed_counts),
            extra={"summary": {k: v for k, v in summary.items() if k not in _TIMINGS}},
            # durations differ between two runs of one config: in the run section, so the rest is equal
            run={k: summary[k] for k in _TIMINGS if k in summary},
        )
        return LabelRun(out, rejects_file if any_rejects else None, manifest, counts, summary,
                        written_exports, first, seed_counts)


# the summary's durations (documents: seconds; spans: train and predict seconds)
_TIMINGS = ("seconds", "train_seconds", "predict_seconds")


def with_seed_counts(counts: Counts, seeds: Counts | None) -> dict:
    """The manifest's counts: the written documents', plus ``seeds`` (``used`` for written)."""
    out = counts.to_dict()
    if seeds is not None:
        seed = seeds.to_dict()
        out["seeds"] = {"read": seed["read"], "used": seed["written"],
                        **{k: v for k, v in seed.items() if k not in ("read", "written")}}
    return out


def write_outputs(out: Path, records: Iterable[dict], rejected: list[Rejected], counts: Counts,
                  seed_rejected: Iterable[Rejected] = ()) -> tuple[Path, list[str]]:
    """Write ``records`` to ``out`` and ``rejected`` to its reject file (both atomically), count
    them, and return the reject file with the first five reasons for the console.
    ``seed_rejected`` go to the same reject file first; the caller counts them (seed counts)."""
    rejects_file = rejects_path_for(out)
    first: list[str] = []
    with JsonlWriter(out) as writer, RejectWriter(rejects_file) as rejects_out:
        for item in seed_rejected:
            rejects_out.write(item)
        for record in records:
            writer.write_obj(record)
            counts.written += 1
        for item in rejected:
            rejects_out.write(item)
            counts.add_reject(item.reason)
            if len(first) < 5:
                # the file:line names the record; an id can be a medical record number
                first.append(item.describe(show_id=False))
    assert counts.reconciles, counts
    return rejects_file, first
