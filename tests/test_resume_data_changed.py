"""A resume whose training data changed since its checkpoint: the checkpoint is not continued (the
model would mix the two datasets) nor deleted: the run is refused, naming the checkpoint and the
changed file (never its text); ``--overwrite`` then trains from the beginning. A checkpoint
written before digests were recorded resumes as it always did.

Made-up notes only; a 2-layer BERT trains a few steps on one CPU thread.
"""

from __future__ import annotations

import json
import random

import pytest

from domainfm.corpus import Document, write_documents
from domainfm.errors import ConfigError
from domainfm.training.checkpoints import (
    INPUTS_KEY,
    STATE_FILE,
    commit_checkpoint,
    input_digests,
    latest_resumable,
    list_checkpoints,
)
import test_pretrain
from conftest import TINY_TEXTS
from test_pretrain import make_config, write_corpus

pytestmark = pytest.mark.usefixtures("one_torch_thread")
tiny_mlm_dir = test_pretrain.tiny_mlm_dir  # the fixture, shared


class Stop(Exception):
    pass


def _stop_at(step: int, seen: list | None = None):
    def on_event(event):
        if seen is not None:
            seen.append(event)
        if event["kind"] == "step" and event["step"] == step:
            raise Stop
    return on_event


# ------------------------------------------------------------------------------ the check itself


def _checkpoint(out, step: int, state: dict):
    folder = out / "checkpoints" / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    commit_checkpoint(folder, state)
    return folder


@pytest.mark.parametrize("recorded, resumes", [
    ("same", True),
    ("other", False),
    (None, True),  # written before digests were recorded: resumed as before, its data unchecked
])
def test_a_checkpoint_resumes_only_on_the_data_it_was_trained_on(tmp_path, recorded, resumes):
    data = tmp_path / "notes.jsonl"
    data.write_text('{"id": "a", "text": "first"}\n')
    trained_on = input_digests([data])
    config = {"data": {"paths": [str(data)]}}
    state = {"config": config}
    if recorded == "same":
        state[INPUTS_KEY] = list(trained_on.values())
    elif recorded == "other":
        state[INPUTS_KEY] = ["0" * 64]
    out = tmp_path / "out"
    _checkpoint(out, 2, state)
    if resumes:
        step, folder, _ = latest_resumable(out, config, set(), trained_on)
        assert (step, folder.name) == (2, "checkpoint-2")
    else:
        with pytest.raises(ConfigError, match=rf"cannot resume .*out: checkpoint-2 was trained on other data "
                                              rf"\({data} changed since\)"):
            latest_resumable(out, config, set(), trained_on)
    assert latest_resumable(out, config, set()) is not None  # a caller that gives no digests: config only


# ------------------------------------------------------------------------------------- pretrain


def test_pretrain_on_changed_data_is_refused_and_its_checkpoints_kept(tmp_path, tiny_mlm_dir):
    from domainfm.pretrain import pretrain

    corpus = write_corpus(tmp_path / "deid" / "notes.jsonl", n=30)
    cfg = make_config(tiny_mlm_dir, corpus, **{"train.max_steps": 4, "train.checkpoint_every": 2,
                                               "train.log_every": 1})
    with pytest.raises(Stop):  # checkpoint-2 written, trained on the first corpus
        pretrain(cfg, tmp_path / "out", on_event=_stop_at(3))
    first = json.loads((tmp_path / "out" / "checkpoints" / "checkpoint-2" / STATE_FILE).read_text())
    assert first[INPUTS_KEY] == list(input_digests(cfg.data.paths).values())

    write_corpus(corpus, n=30, seed=1)  # the user replaced the data file, same name
    with pytest.raises(ConfigError, match="checkpoint-2 was trained on other data") as refused:
        pretrain(cfg, tmp_path / "out", resume=True)
    assert str(corpus) in str(refused.value) and "--overwrite" in str(refused.value)
    assert not any(text.lower() in str(refused.value).lower() for text in TINY_TEXTS)  # no document text
    assert [step for step, _ in list_checkpoints(tmp_path / "out")] == [2]  # nothing deleted
    # --overwrite trains from the beginning on the new data: what a fresh run gives
    again = pretrain(cfg, tmp_path / "out", overwrite=True)
    fresh = pretrain(cfg, tmp_path / "fresh")
    assert again.resumed_from is None and again.steps == 4
    assert again.eval_loss_after == pytest.approx(fresh.eval_loss_after)


# ------------------------------------------------------------------------------------- finetune

_WORDS = {"cardiac": ["chest pain", "troponin rise", "atrial fibrillation", "heart failure"],
          "respiratory": ["cough", "wheeze", "pneumonia", "shortness of breath"]}


def _notes(path, seed: int):
    rng = random.Random(seed)
    docs = []
    for i in range(40):
        label = "cardiac" if i % 2 else "respiratory"
        text = f"Patient {i} seen with {rng.choice(_WORDS[label])} and {rng.choice(_WORDS[label])}."
        docs.append(Document(f"n{i}", text, {"patient_id": f"p{i}"}, label=label))
    write_documents(path, docs)
    return path


def _task(train, model_dir):
    from domainfm.config import load_config
    from domainfm.finetune import TaskConfig

    return load_config(TaskConfig, overrides={
        "task": "classification", "model.name": str(model_dir), "model.max_length": 32, "data.train": str(train),
        "data.eval_fraction": 0.25, "lora.r": 4, "lora.lora_alpha": 8, "lora.target_modules": ["query", "value"],
        "long_documents.strategy": "truncate", "train.lr": 5e-3, "train.max_steps": 4, "train.batch_size": 8,
        "train.eval_every": 2, "train.eval_batch_size": 32, "allow_identified_data": True})


def test_finetune_on_changed_data_is_refused(tmp_path, tiny_model_dir):
    from domainfm.finetune import finetune

    data = _notes(tmp_path / "notes.jsonl", seed=0)
    cfg = _task(data, tiny_model_dir)
    with pytest.raises(Stop):  # checkpoint-2 written, trained on the first notes
        finetune(cfg, tmp_path / "out", on_event=_stop_at(3))
    _notes(data, seed=1)  # edited in place: same labels, other notes
    with pytest.raises(ConfigError, match=rf"checkpoint-2 was trained on other data \({data} changed since\)"):
        finetune(cfg, tmp_path / "out", resume=True)
    assert [step for step, _ in list_checkpoints(tmp_path / "out")] == [2]
    _notes(data, seed=0)  # the data restored: the run continues its checkpoint
    assert finetune(cfg, tmp_path / "out", resume=True).resumed_from is not None
