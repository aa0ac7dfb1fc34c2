"""Every stage of the registry (``domainfm.stages.REGISTRY``) keeps the stage contract:

1. its registered config class survives a YAML round trip;
2. a bad parameter is a ``ConfigError`` naming the field (unknown keys suggest the right one);
3. ``run(config, inputs, out, context)`` returns a :class:`StageResult` whose counts reconcile
   (``read = written + rejected``) and whose outputs exist;
4. the same seed gives the same output, byte for byte (provenance files aside).

Each stage runs through the registry, as ``domainfm run`` calls it, on a few sample notes and
the tiny models of ``conftest.py``. ``privacy`` and ``deid_eval`` need a pretrained or NER
model and a gold-annotated corpus: their runs are covered end to end by the slow tier of
``test_pipeline.py``; here they get the config checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from domainfm.config import from_dict, load_config, save_config
from domainfm.corpus import read_documents, write_documents
from domainfm.errors import ConfigError
from domainfm.stages import REGISTRY, StageContext, StageResult
from test_conformance import _digest  # one notion of "the same output" for both batteries


@dataclass
class Case:
    data: Callable[[dict], dict]  # a valid, non-default section as a mapping
    bad: tuple[dict, str]  # an invalid override and the text its error must contain
    inputs: Callable[[dict], list[Path]] | None = None  # None: config checks only (see the docstring)
    stages: Callable[[dict], dict[str, Any]] = lambda ctx: {}  # noqa: E731  other sections the stage reads


def _finetune_data(ctx: dict) -> dict:
    return {"task": "classification", "model": {"name": str(ctx["model"]), "max_length": 32},
            "data": {"train": str(ctx["notes"]), "label_field": "meta.note_type", "eval_fraction": 0.3},
            "long_documents": {"strategy": "truncate"}, "labels": {"min_examples": 1},
            "lora": {"r": 2, "lora_alpha": 4, "target_modules": ["query", "value"]},
            "train": {"max_steps": 3, "batch_size": 4, "seed": 3, "checkpoint": False},
            "allow_identified_data": True}


def _pretrain_data(ctx: dict) -> dict:
    return {"model": {"name": str(ctx["mlm"])}, "data": {"paths": [str(ctx["notes"])], "eval_fraction": 0.2},
            "masking": {"seq_len": 32}, "train": {"max_steps": 3, "batch_size": 4, "lr": 1e-3, "seed": 3},
            "allow_identified_data": True}


CASES: dict[str, Case] = {
    "import": Case(lambda ctx: {"src": str(ctx["notes"]), "format": "jsonl", "max_documents": 10},
                   ({"max_documents": 0}, "import.max_documents"), lambda ctx: [ctx["notes"]]),
    "deid": Case(lambda ctx: {"operator": "surrogate", "profile": "clinical", "score_threshold": 0.4},
                 ({"operator": "shred"}, "operator"), lambda ctx: [ctx["notes"]]),
    "chunk": Case(lambda ctx: {"tokenizer": str(ctx["model"]), "max_tokens": 32, "overlap": 4, "profile": "clinical"},
                  ({"overlap": 40}, "overlap"), lambda ctx: [ctx["notes"]]),
    "pretrain": Case(_pretrain_data, ({"train": {"lr": 0}}, "train.lr"), lambda ctx: [ctx["notes"]]),
    "privacy": Case(lambda ctx: {"n_candidates": 31, "seed": 2}, ({"n_candidates": 0}, "n_candidates")),
    "finetune": Case(_finetune_data, ({"task": "regression"}, "task"), lambda ctx: [ctx["notes"]]),
    "deid_eval": Case(lambda ctx: {"dataset": "physionet", "max_documents": 4}, ({"dataset": "nope"}, "nope")),
    "audit": Case(lambda ctx: {"group_by": ["meta.sex"], "n_bootstrap": 20, "min_group_size": 2,
                               "counterfactuals": [], "data": "all"},
                  ({"n_bootstrap": -1}, "n_bootstrap"), lambda ctx: [ctx["finetuned"]()],
                  lambda ctx: {"finetune": from_dict(REGISTRY["finetune"].config_class(), _finetune_data(ctx))}),
    "label": Case(lambda ctx: {"method": "embed", "model": str(ctx["model"]), "exports": ["csv"]},
                  ({"method": "magic"}, "method"),
                  lambda ctx: [ctx["mixed"]]),
}


def test_every_registered_stage_has_a_case():
    assert list(CASES) == list(REGISTRY)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, clinical_corpus, tiny_model_dir, tiny_bert_config, tiny_tokenizer) -> dict:
    import torch
    from transformers import BertForMaskedLM

    root = tmp_path_factory.mktemp("contract")
    docs = list(read_documents(clinical_corpus))[:24]
    notes = root / "notes.jsonl"
    write_documents(notes, docs)
    mixed = root / "mixed.jsonl"  # the label stage: labeled seeds and an unlabeled pool
    for i, doc in enumerate(docs):
        doc.label, doc.labels = (doc.meta.get("note_type"), None) if i < 16 else (None, None)
    write_documents(mixed, docs)
    torch.manual_seed(0)
    mlm = root / "mlm"
    BertForMaskedLM(tiny_bert_config).save_pretrained(mlm)
    tiny_tokenizer.save_pretrained(mlm)
    return {"notes": notes, "mixed": mixed, "model": tiny_model_dir, "mlm": mlm, "root": root}


@pytest.fixture(scope="module")
def finetuned(ctx) -> Path:
    """A tiny fine-tuned classifier for the audit, trained through the registry."""
    out = ctx["root"] / "finetune" / "model"
    REGISTRY["finetune"].runner()(_config("finetune", ctx), [ctx["notes"]], out, StageContext(seed=3))
    return out


def _config(name: str, ctx: dict):
    return from_dict(REGISTRY[name].config_class(), CASES[name].data(ctx), prefix=f"{name}.")


@pytest.mark.parametrize("name", list(REGISTRY))
def test_config_round_trips_and_bad_parameters_name_the_field(name, ctx, tmp_path):
    cls = REGISTRY[name].config_class()
    cfg = _config(name, ctx)
    assert load_config(cls, save_config(cfg, tmp_path / "config.yaml")) == cfg
    override, field = CASES[name].bad
    data = CASES[name].data(ctx)
    for key, value in override.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        from_dict(cls, data, prefix=f"{name}.")
    with pytest.raises(ConfigError, match="unknown config key 'seeed'"):
        from_dict(cls, {**CASES[name].data(ctx), "seeed": 1})


# Training twice takes tens of seconds on CPU: the training stages (and the audit, which needs a
# trained model) run in the slow tier; test_conformance.py checks the same-seed output of the
# training functions themselves in the default tier.
SLOW_RUNS = {"pretrain", "finetune", "audit"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_RUNS else n
                                  for n, c in CASES.items() if c.inputs is not None])
def test_run_reconciles_and_the_same_seed_gives_the_same_output(name, ctx, request, tmp_path):
    spec, case = REGISTRY[name], CASES[name]
    ctx = {**ctx, "finetuned": lambda: request.getfixturevalue("finetuned")}
    results = []
    for side in ("a", "b"):
        out = tmp_path / side / name / spec.output
        out.parent.mkdir(parents=True)
        context = StageContext(seed=7, stages=case.stages(ctx), outputs={})
        results.append(spec.runner()(_config(name, ctx), case.inputs(ctx), out, context))
    first = results[0]
    assert isinstance(first, StageResult)
    assert first.out == tmp_path / "a" / name / spec.output
    assert all(Path(p).exists() for p in first.outputs)
    assert first.reconciles()
    if first.read is not None:
        assert first.read > 0 and first.written > 0
    assert first.counts == results[1].counts and first.metrics == results[1].metrics
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")


def test_counts_that_do_not_add_up_are_caught():
    assert not StageResult([Path("x")], {"read": 3, "written": 1, "rejected": 1}).reconciles()
    assert StageResult([Path("x")], {"read": 3, "written": 2, "rejected": 1}).reconciles()
