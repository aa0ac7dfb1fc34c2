"""The conformance battery every stage passes, like scikit-learn's ``check_estimator``:

1. its config survives a YAML round trip (``save_config`` -> ``load_config`` gives an equal config);
2. a bad parameter is a ``ConfigError`` that names the field (unknown keys suggest the right one);
3. the same seed gives the same output, byte for byte (provenance files aside);
4. the output follows the documented schema and has a manifest with the stage and input hashes.

Runs on the tiny models of ``conftest.py`` and a few sample notes, in seconds per stage.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from domainfm.config import from_dict, load_config, save_config
from domainfm.corpus import Document, read_documents, write_documents
from domainfm.errors import ConfigError


@dataclass
class Stage:
    name: str
    config_class: type
    data: Callable[[dict], dict]  # a valid, non-default config as a mapping
    bad: tuple[dict, str]  # an invalid override and the text its error must contain
    run: Callable[[Any, dict, Path], Path] | None = None  # runs the stage, returns its main output
    check_output: Callable[[Path], None] | None = None


def _deid_run(cfg, ctx, out: Path) -> Path:
    from domainfm.deid import deidentify_file

    return deidentify_file(ctx["notes"], out / "deid.jsonl", cfg, seed=7).out


def _chunk_run(cfg, ctx, out: Path) -> Path:
    from domainfm.chunk.runner import chunk_file

    return chunk_file(ctx["notes"], out / "chunks.jsonl", cfg).out


def _pretrain_run(cfg, ctx, out: Path) -> Path:
    from domainfm.pretrain import pretrain

    return pretrain(cfg, out / "dapt", allow_identified_data=True).out_dir / "metrics.json"


def _finetune_run(cfg, ctx, out: Path) -> Path:
    from domainfm.finetune import finetune

    return finetune(cfg, out / "model").out_dir / "metrics.json"


def _documents_out(path: Path) -> None:
    rejects: list = []
    docs = list(read_documents(path, rejects=rejects))
    assert docs and not rejects
    assert all(isinstance(d, Document) for d in docs)


def _chunks_out(path: Path) -> None:
    from domainfm.chunk.splitter import Chunk

    chunks = [Chunk.from_dict(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()]
    assert chunks and all(0 <= c.start < c.end and c.n_tokens <= 32 for c in chunks)


def _metrics_out(path: Path) -> None:
    metrics = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(metrics, dict) and metrics


def _stages() -> list[Stage]:
    from domainfm.audit import AuditConfig
    from domainfm.chunk.config import ChunkConfig
    from domainfm.deid import DeidConfig
    from domainfm.finetune import TaskConfig
    from domainfm.label import LabelConfig
    from domainfm.pretrain import PretrainConfig
    from domainfm.privacy_audit import PrivacyAuditConfig

    return [
        Stage("deid", DeidConfig, lambda ctx: {"operator": "surrogate", "profile": "clinical", "score_threshold": 0.4},
              ({"operator": "shred"}, "operator"), _deid_run, _documents_out),
        Stage("chunk", ChunkConfig, lambda ctx: {"tokenizer": str(ctx["model"]), "max_tokens": 32, "overlap": 4,
                                                 "profile": "clinical"},
              ({"overlap": 40}, "overlap"), _chunk_run, _chunks_out),
        Stage("pretrain", PretrainConfig,
              lambda ctx: {"model": {"name": str(ctx["mlm"])}, "data": {"paths": [str(ctx["notes"])], "eval_fraction": 0.2},
                           "masking": {"seq_len": 32}, "train": {"max_steps": 3, "batch_size": 4, "lr": 1e-3, "seed": 3}},
              ({"train": {"lr": 0}}, "train.lr"), _pretrain_run, _metrics_out),
        Stage("finetune", TaskConfig,
              lambda ctx: {"task": "classification", "model": {"name": str(ctx["model"]), "max_length": 32},
                           "data": {"train": str(ctx["notes"]), "label_field": "meta.note_type", "eval_fraction": 0.3},
                           "long_documents": {"strategy": "truncate"}, "labels": {"min_examples": 1},
                           "lora": {"r": 2, "lora_alpha": 4, "target_modules": ["query", "value"]},
                           "train": {"max_steps": 3, "batch_size": 4, "seed": 3, "checkpoint": False},
                           "allow_identified_data": True},
              ({"task": "regression"}, "task"), _finetune_run, _metrics_out),
        Stage("audit", AuditConfig, lambda ctx: {"group_by": ["meta.sex"], "n_bootstrap": 50, "min_group_size": 5},
              ({"n_bootstrap": -1}, "n_bootstrap")),
        Stage("label", LabelConfig, lambda ctx: {"method": "embed", "seed": 5, "cv_folds": 3},
              ({"method": "magic"}, "method")),
        Stage("audit-privacy", PrivacyAuditConfig, lambda ctx: {"n_candidates": 31, "seed": 2},
              ({"n_candidates": 0}, "n_candidates")),
    ]


STAGES = {s.name: s for s in _stages()}


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, clinical_corpus, tiny_model_dir, tiny_bert_config, tiny_tokenizer) -> dict:
    import torch
    from transformers import BertForMaskedLM

    root = tmp_path_factory.mktemp("conformance")
    notes = root / "notes.jsonl"
    write_documents(notes, list(read_documents(clinical_corpus))[:24])
    torch.manual_seed(0)
    mlm = root / "mlm"
    BertForMaskedLM(tiny_bert_config).save_pretrained(mlm)
    tiny_tokenizer.save_pretrained(mlm)
    return {"notes": notes, "model": tiny_model_dir, "mlm": mlm}


def _config(stage: Stage, ctx: dict):
    return from_dict(stage.config_class, stage.data(ctx))


@pytest.mark.parametrize("name", list(STAGES))
def test_config_round_trips_through_yaml(name, ctx, tmp_path):
    stage = STAGES[name]
    cfg = _config(stage, ctx)
    assert load_config(stage.config_class, save_config(cfg, tmp_path / "config.yaml")) == cfg


@pytest.mark.parametrize("name", list(STAGES))
def test_bad_parameters_name_the_field(name, ctx):
    stage = STAGES[name]
    override, field = stage.bad
    data = stage.data(ctx)
    for key, value in override.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        from_dict(stage.config_class, data)
    with pytest.raises(ConfigError, match="unknown config key 'seeed'"):
        from_dict(stage.config_class, {**stage.data(ctx), "seeed": 1})


def _digest(folder: Path) -> dict[str, str]:
    """Hashes of a stage's outputs; provenance (times, versions, host), checkpoints and the HTML
    report (it embeds the time) aside."""
    skip = {"stage.json", "train_log.jsonl", "cards.json"}
    out = {}
    for path in sorted(folder.rglob("*")):
        if (path.is_file() and path.name not in skip and not path.name.endswith("manifest.json")
                and "checkpoints" not in path.parts and path.suffix != ".html"):
            data = path.read_bytes()
            if path.suffix == ".json":  # wall-clock fields differ between runs
                data = json.dumps(_without_timings(json.loads(data)), sort_keys=True).encode()
            out[str(path.relative_to(folder))] = hashlib.sha256(data).hexdigest()
    return out


def _without_timings(value):
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items()
                if not any(t in k for t in ("seconds", "per_s", "_s", "memory", "rss", "time", "generated",
                                            "created", "version", "host"))}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


@pytest.mark.parametrize("name", [n for n, s in STAGES.items() if s.run is not None])
def test_same_seed_same_output_and_schema(name, ctx, tmp_path):
    stage = STAGES[name]
    cfg = _config(stage, ctx)
    first = stage.run(cfg, ctx, tmp_path / "a")
    second = stage.run(cfg, ctx, tmp_path / "b")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    stage.check_output(first)
    manifest = json.loads(next(p for p in sorted((tmp_path / "a").rglob("*manifest.json"))).read_text())
    assert manifest["stage"] == name
    assert manifest["inputs"] and all(len(i.get("sha256", "")) == 64 for i in manifest["inputs"])
    assert second.name == first.name
