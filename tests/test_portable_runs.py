"""A run folder copied or moved elsewhere works on its own: its chunks trace back to its own
de-identified file, its LoRA fine-tune loads the base model beside it, and its checkpoints resume
there; what lies outside the run folder is still read where it was recorded.

Made-up notes only; the import/deid/chunk stages run on five of them, and the fine-tunes train a
2-layer, 32-wide BERT built from a config for four steps, so the file runs in seconds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from domainfm import pipeline as pl
from domainfm.config import load_config
from domainfm.errors import ConfigError
from domainfm.corpus import Document, write_documents
from domainfm.finetune import TaskConfig, finetune, predict
from domainfm.inference.predict import adapter_base
from domainfm.manifest import check_deidentified
from domainfm.training.checkpoints import commit_checkpoint, latest_resumable
from test_pipeline_cache_keys import NOTES  # the same five made-up notes

pytestmark = pytest.mark.usefixtures("one_torch_thread")



def _moved_away(original: Path, copy: Path) -> None:
    """Copy ``original`` to ``copy``, then rename the original: what still reads it misses it."""
    shutil.copytree(original, copy)
    original.rename(original.with_name("gone"))


# ------------------------------------------------------------------ de-identification provenance


@pytest.fixture()
def chunked_run(tmp_path, monkeypatch) -> Path:
    monkeypatch.delenv("DOMAINFM_VAULT_KEY", raising=False)
    notes = tmp_path / "notes.jsonl"
    notes.write_text("".join(json.dumps({"id": f"z{i}", "text": t}) + "\n" for i, t in enumerate(NOTES)),
                     encoding="utf-8")
    run = tmp_path / "run"
    result = pl.run_pipeline({"run_dir": str(run), "seed": 13, "import": {"format": "jsonl", "src": str(notes)},
                              "deid": {"profile": "clinical"},
                              "chunk": {"tokenizer": "minilm", "max_tokens": 64, "overlap": 8}})
    assert result.ok
    return run


def test_a_copied_run_traces_its_chunks_to_its_own_deid_output(chunked_run, tmp_path):
    copy = tmp_path / "elsewhere" / "run"
    shutil.copytree(chunked_run, copy)
    # the original's de-identified file is now another one: a check that read it would fail
    (chunked_run / "deid" / "corpus.jsonl").write_text('{"id": "z0", "text": "made up"}\n', encoding="utf-8")
    (chunked_run / "deid" / "corpus.manifest.json").write_text('{"stage": "import"}\n', encoding="utf-8")
    (traced,) = check_deidentified([copy / "chunk" / "chunks.jsonl"])
    assert traced.deidentified, traced.evidence

    chunked_run.rename(tmp_path / "gone")
    (traced,) = check_deidentified([copy / "chunk" / "chunks.jsonl"])
    assert traced.deidentified, traced.evidence

    # the copy's own de-identified file, edited since chunking, vouches for nothing
    with open(copy / "deid" / "corpus.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": "extra", "text": "Seen by Dr. Zorblax Quintavius."}) + "\n")
    (traced,) = check_deidentified([copy / "chunk" / "chunks.jsonl"])
    assert not traced.deidentified
    assert f"not at {copy / 'deid' / 'corpus.jsonl'} or {chunked_run / 'deid' / 'corpus.jsonl'}" \
        in traced.evidence and "re-run 'domainfm chunk'" in traced.evidence


def test_a_chunk_manifest_recording_absolute_paths_only_is_still_traced(chunked_run):
    manifest_file = chunked_run / "chunk" / "chunks.manifest.json"
    manifest = json.loads(manifest_file.read_text())
    for entry in manifest["inputs"] + manifest["outputs"]:  # as written before paths were recorded relative too
        entry.pop("relative", None)
    manifest_file.write_text(json.dumps(manifest), encoding="utf-8")
    (traced,) = check_deidentified([chunked_run / "chunk" / "chunks.jsonl"])
    assert traced.deidentified, traced.evidence


# ---------------------------------------------------------------------- LoRA fine-tune and its base


LABELS = {"cardiology": "chest pain radiating to the left arm, troponin rising, cardiology consult",
          "endocrinology": "diabetes with high glucose, metformin and insulin, endocrine follow up"}


@pytest.fixture()
def labelled(tmp_path) -> Path:
    path = tmp_path / "run" / "data" / "notes.jsonl"
    path.parent.mkdir(parents=True)
    write_documents(path, [Document(f"{label[:4]}{i}", f"Note {i}: {text}.", {}, label=label)
                           for i in range(10) for label, text in LABELS.items()])
    return path


def _task(data: Path, base: Path, **overrides) -> TaskConfig:
    return load_config(TaskConfig, overrides={**overrides, 
        "task": "classification", "model.name": str(base), "model.max_length": 32, "data.train": str(data),
        "data.eval_fraction": 0.25, "lora.r": 4, "lora.lora_alpha": 8, "lora.target_modules": ["query", "value"],
        "train.lr": 5e-3, "train.max_steps": 4, "train.batch_size": 4, "train.eval_every": 2,
        "train.eval_batch_size": 16, "long_documents.strategy": "truncate", "allow_identified_data": True})


def _same_predictions(a: list[dict], b: list[dict]) -> bool:
    return [r["pred"]["label"] for r in a] == [r["pred"]["label"] for r in b] and all(
        np.allclose(list(x["pred"]["scores"].values()), list(y["pred"]["scores"].values()), atol=1e-6)
        for x, y in zip(a, b))


def test_a_copied_lora_finetune_predicts_with_the_base_model_inside_the_copy(tmp_path, labelled, tiny_model_dir):
    run, copy = tmp_path / "run", tmp_path / "elsewhere" / "run"
    shutil.copytree(tiny_model_dir, run / "pretrain" / "model")  # the run's own base (a pretrain output)
    # no checkpoint kept: resuming the finished run below hands it back as it is
    trained = finetune(_task(labelled, run / "pretrain" / "model", **{"train.checkpoint": False}),
                       run / "finetune" / "model")
    docs = [Document("q1", "Chest pain and troponin."), Document("q2", "Glucose high on metformin.")]
    expected = predict(run / "finetune" / "model", docs)

    shutil.copytree(run, copy)
    (run / "pretrain" / "model" / "model.safetensors").unlink()  # the original's base: loading it would fail
    assert _same_predictions(predict(copy / "finetune" / "model", docs), expected)
    run.rename(tmp_path / "gone")
    assert _same_predictions(predict(copy / "finetune" / "model", docs), expected)

    # resuming the finished run in the copy hands it back (its config names the copy's own files)
    again = finetune(_task(copy / "data" / "notes.jsonl", copy / "pretrain" / "model", **{"train.checkpoint": False}),
                     copy / "finetune" / "model", resume=True)
    assert again.resumed_from is None and again.metrics == json.loads(json.dumps(trained.metrics))


@pytest.mark.parametrize("recorded, expected", [
    ("{old}/run/pretrain/model", "{new}/run/pretrain/model"),  # inside the run folder: the copy's
    ("{old}/models/base", "{old}/models/base"),  # outside it: as recorded
    ("org/hub-model", "org/hub-model"),
])
def test_the_base_of_an_adapter_is_read_inside_its_run_folder_only(tmp_path, recorded, expected):
    old, new = tmp_path / "old", tmp_path / "new"
    for folder in (new / "run" / "pretrain" / "model", old / "models" / "base"):
        folder.mkdir(parents=True)
    adapter = new / "run" / "finetune" / "model"
    adapter.mkdir(parents=True)
    (adapter / "manifest.json").write_text(json.dumps({"stage": "finetune", "outputs": [
        {"path": str(old / "run" / "finetune" / "model" / "domainfm_task.json"), "relative": "domainfm_task.json"}]}))
    assert adapter_base(adapter, recorded.format(old=old)) == expected.format(old=old, new=new)
    (adapter / "manifest.json").unlink()  # nothing says where it was written: as recorded
    assert adapter_base(adapter, recorded.format(old=old)) == recorded.format(old=old)


# -------------------------------------------------------------------------------- checkpoints


def test_a_checkpoint_in_a_copied_run_folder_resumes(tmp_path, labelled, tiny_model_dir):
    run, copy = tmp_path / "run", tmp_path / "elsewhere" / "run"
    shutil.copytree(tiny_model_dir, run / "pretrain" / "model")
    whole = finetune(_task(labelled, run / "pretrain" / "model"), tmp_path / "whole")

    class Stop(Exception):
        pass

    def crash(event):
        if event["kind"] == "step" and event["step"] == 3:
            raise Stop

    with pytest.raises(Stop):
        finetune(_task(labelled, run / "pretrain" / "model"), run / "finetune" / "model", on_event=crash)
    _moved_away(run, copy)
    resumed = finetune(_task(copy / "data" / "notes.jsonl", copy / "pretrain" / "model"), copy / "finetune" / "model",
                       resume=True)
    assert resumed.resumed_from == 2
    assert resumed.metrics["eval"] == whole.metrics["eval"] and resumed.metrics["history"] == whole.metrics["history"]
    assert f"{run}/" not in (copy / "finetune" / "model" / "manifest.json").read_text()  # only the copy's paths


def test_a_moved_checkpoint_is_compared_and_pointed_at_where_it_lies_now(tmp_path):
    run, copy = tmp_path / "run", tmp_path / "elsewhere" / "run"
    checkpoint = run / "finetune" / "model" / "checkpoints" / "checkpoint-2"
    checkpoint.mkdir(parents=True)
    # transformers' own record of the best checkpoint, which a resumed run loads at its end
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": 2,
                                                               "best_model_checkpoint": str(checkpoint)}))
    outside = str(tmp_path / "notes.jsonl")
    commit_checkpoint(checkpoint, {"config": {"model": {"name": str(run / "pretrain" / "model")},
                                              "data": {"train": outside}}})
    _moved_away(run, copy)
    out = copy / "finetune" / "model"
    config = {"model": {"name": str(copy / "pretrain" / "model")}, "data": {"train": outside}}

    step, found, _ = latest_resumable(out, config, set())
    assert (step, found) == (2, out / "checkpoints" / "checkpoint-2")
    assert json.loads((found / "trainer_state.json").read_text())["best_model_checkpoint"] == str(found)
    # outside the run folder a path must match as it is; inside it, at the copy's same place
    with pytest.raises(ConfigError, match="different config .*data.train"):
        latest_resumable(out, {**config, "data": {"train": str(copy / "notes.jsonl")}}, set())
    with pytest.raises(ConfigError, match="different config .*model.name"):
        latest_resumable(out, {**config, "model": {"name": str(copy / "pretrain" / "other")}}, set())


def test_an_adapter_is_never_loaded_onto_a_base_retrained_since(tmp_path, labelled, tiny_model_dir):
    from domainfm.errors import ModelResolutionError

    base = tmp_path / "run" / "pretrain" / "model"
    shutil.copytree(tiny_model_dir, base)
    (base / "manifest.json").write_text(json.dumps({"stage": "pretrain", "steps": 10}))  # what pretrain writes
    out = tmp_path / "run" / "finetune" / "model"
    finetune(_task(labelled, base, **{"train.checkpoint": False}), out)
    info = json.loads((out / "domainfm_task.json").read_text())
    assert info["base_model"]["identity"]["path"] == str(base.resolve())
    docs = [Document("q1", "Chest pain and troponin.")]
    predict(out, docs)
    # pretrain ran again into the same folder: the adapter's weights belong to the old base
    (base / "manifest.json").write_text(json.dumps({"stage": "pretrain", "steps": 20}))
    with pytest.raises(ModelResolutionError, match="trained on another base model .*changed since it was recorded"):
        predict(out, docs)
