"""Config loading: YAML + dotted overrides -> validated dataclasses; errors name the fix."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import yaml

from domainfm.config import from_dict, load_config, parse_overrides, save_config, to_dict
from domainfm.errors import ConfigError


@dataclass
class Train:
    lr: float = 1e-4
    epochs: int = 3
    fp16: bool = False

    def __post_init__(self):
        if self.lr <= 0:
            raise ConfigError(f"'train.lr' must be > 0, got {self.lr} (try 3e-4)")


@dataclass
class Task:
    name: str
    profile: Literal["clinical", "legal"] = "clinical"
    train: Train = field(default_factory=Train)
    out: Path = Path("runs/x")
    tags: list[str] = field(default_factory=list)
    seed: int | None = None


def test_yaml_plus_dotted_overrides(tmp_path):
    path = tmp_path / "task.yaml"
    path.write_text("name: demo\ntrain:\n  lr: 1e-5\n  epochs: 2\n")
    cfg = load_config(Task, path, parse_overrides(["--train.lr", "3e-4", "--train.fp16=true", "--tags", "[a, b]"]))
    assert cfg.train.lr == pytest.approx(3e-4) and cfg.train.epochs == 2 and cfg.train.fp16 is True
    assert cfg.tags == ["a", "b"] and cfg.profile == "clinical" and cfg.out == Path("runs/x")


@pytest.mark.parametrize(
    "data, message",
    [
        ({"name": "x", "trian": {}}, "unknown config key 'trian' (did you mean 'train'?)"),
        ({"name": "x", "train": {"lr_rate": 1}}, "unknown config key 'train.lr_rate' (did you mean 'lr'?)"),
        ({"name": "x", "profile": "clinic"}, "must be one of ['clinical', 'legal'], got 'clinic' (did you mean 'clinical'?)"),
        ({"name": "x", "train": {"epochs": "many"}}, "config field 'train.epochs' must be an integer, got 'many'"),
        ({"name": "x", "train": {"lr": "fast"}}, "config field 'train.lr' must be a number"),
        ({"name": "x", "train": {"fp16": "maybe"}}, "'train.fp16' must be true or false"),
        ({"name": "x", "train": {"lr": -1}}, "'train.lr' must be > 0, got -1.0 (try 3e-4)"),
        ({"name": "x", "train": [1]}, "config section 'train.' must be a mapping"),
        ({"name": "x", "tags": "a"}, "config field 'tags' must be a list"),
        ({}, "missing required config key(s): name"),
    ],
)
def test_errors_name_the_field_and_the_fix(data, message):
    with pytest.raises(ConfigError) as info:
        from_dict(Task, data)
    assert message in str(info.value)


def test_save_and_reload_round_trip(tmp_path):
    cfg = from_dict(Task, {"name": "n", "train": {"lr": 0.5}, "tags": ["t"], "seed": 3})
    path = save_config(cfg, tmp_path / "resolved.yaml")
    assert yaml.safe_load(path.read_text())["out"] == "runs/x"
    assert load_config(Task, path) == cfg
    assert to_dict(load_config(Task, path)) == to_dict(cfg)


@pytest.mark.parametrize("args, message", [
    (["train.lr", "1"], "expected an override like '--section.key VALUE'"),
    (["--train.lr"], "override '--train.lr' has no value"),
    (["--train.lr", "1", "--train.lr=2"], "override '--train.lr' is given twice"),
])
def test_bad_override_syntax(args, message):
    with pytest.raises(ConfigError, match=message):
        parse_overrides(args)


def test_bad_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ntrain:\n  lr: [1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: not valid YAML"):
        load_config(Task, path)


def test_a_key_given_twice_is_refused_with_its_line(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("name: x\ntrain:\n  lr: 0.1\n  lr: 0.2\n")
    with pytest.raises(ConfigError, match=r"twice.yaml:4: not valid YAML \(key 'lr' is given twice in one mapping\)"):
        load_config(Task, path)
    merged = tmp_path / "merged.yaml"
    merged.write_text("base: &b {lr: 0.1}\nname: x\ntrain:\n  <<: *b\n  lr: 0.2\n")
    from domainfm.config import read_yaml

    assert read_yaml(merged)["train"] == {"lr": 0.2}  # a merge key may be overridden: not a duplicate
