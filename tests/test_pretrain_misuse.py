"""Pretraining used carelessly: resumed runs whose config or log would no longer describe the
model, blocks longer than the model, and a text field that no document has."""

from __future__ import annotations

import json

import pytest
import yaml

from domainfm.config import ConfigError
from domainfm.errors import CorpusError

from test_pretrain import make_config, tiny_mlm_dir, write_corpus  # noqa: F401 (tiny_mlm_dir: a fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture()
def corpus(tmp_path):
    return write_corpus(tmp_path / "deid" / "notes.jsonl", n=30)


class Stop(Exception):
    pass


def _stop_at(step: int):
    def on_event(event):
        if event["kind"] == "step" and event["step"] == step:
            raise Stop
    return on_event


def _logged_steps(out):
    return [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()]


def test_a_resume_that_finds_no_checkpoint_saves_the_config_it_trains_with(tmp_path, tiny_mlm_dir, corpus):
    from domainfm.pretrain import pretrain

    base = {"train.max_steps": 3, "train.checkpoint_every": 10, "train.log_every": 1}
    with pytest.raises(Stop):  # killed before its first checkpoint
        pretrain(make_config(tiny_mlm_dir, corpus, **base), tmp_path / "out", on_event=_stop_at(2))
    changed = make_config(tiny_mlm_dir, corpus, **base, **{"train.lr": 3e-3})
    result = pretrain(changed, tmp_path / "out", resume=True)
    assert result.resumed_from is None
    # the run started over with lr 3e-3: the saved config must not still say the first run's 1e-3
    assert yaml.safe_load((tmp_path / "out" / "pretrain.yaml").read_text())["train"]["lr"] == 3e-3
    assert _logged_steps(tmp_path / "out") == [1, 2, 3]  # not the killed run's lines, then these


def test_a_resumed_run_logs_each_step_once(tmp_path, tiny_mlm_dir, corpus):
    from domainfm.pretrain import pretrain

    cfg = make_config(tiny_mlm_dir, corpus, **{"train.max_steps": 5, "train.checkpoint_every": 2, "train.log_every": 1})
    with pytest.raises(Stop):  # steps 1-3 logged, checkpoint-2 written
        pretrain(cfg, tmp_path / "out", on_event=_stop_at(4))
    result = pretrain(cfg, tmp_path / "out", resume=True)
    assert result.resumed_from == 2
    assert _logged_steps(tmp_path / "out") == [1, 2, 3, 4, 5]


def test_blocks_longer_than_the_model_are_refused_before_training(tmp_path, tiny_mlm_dir, corpus):
    from domainfm.pretrain import pretrain

    cfg = make_config(tiny_mlm_dir, corpus, **{"masking.seq_len": 200})  # the tiny BERT has 128 positions
    with pytest.raises(ConfigError, match=r"masking.seq_len \(200\) exceeds the 128 positions of model .*"
                                          r"--masking.seq_len 128"):
        pretrain(cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_text_field_no_document_has_is_named(tmp_path, tiny_mlm_dir, corpus):
    from domainfm.pretrain import pretrain

    cfg = make_config(tiny_mlm_dir, corpus, **{"data.text_field": "meta.body"})
    with pytest.raises(CorpusError, match=r"30 of 30 documents have no string in data.text_field 'meta.body'"):
        pretrain(cfg, tmp_path / "out")


def test_resuming_a_run_that_finished_without_checkpoints_hands_it_back_untrained(tmp_path, tiny_mlm_dir, corpus,
                                                                                   monkeypatch):
    from domainfm.pretrain import pretrain
    from domainfm.training import StageTrainer, list_checkpoints

    out = tmp_path / "out"
    cfg = make_config(tiny_mlm_dir, corpus, **{"train.max_steps": 2, "train.checkpoint_every": 0})
    pretrain(cfg, out)
    assert not list_checkpoints(out)
    saved = {name: (out / name).read_bytes() for name in ("metrics.json", "manifest.json", "model.safetensors")}
    monkeypatch.setattr(StageTrainer, "train", lambda *a, **k: pytest.fail("a finished run was trained again"))
    events = []
    again = pretrain(make_config(tiny_mlm_dir, corpus, **{"train.max_steps": 2, "train.log_every": 1}), out,
                     resume=True, on_event=events.append)
    assert again.metrics == json.loads(saved["metrics.json"]) and again.steps == 2 and again.resumed_from is None
    assert any("holds a finished run of this config" in e.get("message", "") for e in events)
    with pytest.raises(ConfigError, match=r"finished run of another config \(train\.max_steps: 2 -> 3\); "
                                          r"pass --overwrite"):
        pretrain(make_config(tiny_mlm_dir, corpus, **{"train.max_steps": 3}), out, resume=True)
    assert {name: (out / name).read_bytes() for name in saved} == saved


def test_a_lora_adapter_as_the_model_is_named_with_its_base(tmp_path, tiny_mlm_dir, corpus):
    from domainfm.errors import ModelResolutionError
    from domainfm.pretrain import pretrain

    adapter = tmp_path / "lora"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tiny_mlm_dir)}))
    with pytest.raises(ModelResolutionError, match=rf"model.name \({adapter}\) is a LoRA adapter .*give its base "
                                                   rf"model '{tiny_mlm_dir}' instead"):
        pretrain(make_config(adapter, corpus), tmp_path / "out")
    assert not (tmp_path / "out").exists()
