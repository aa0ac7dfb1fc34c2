"""Every ``domainfm`` command line in the README is checked against the CLI: the command exists,
every option it shows is one the command accepts (or a dotted override of its config), every
task file it names exists and loads, and the demo-based example runs where the demo puts its
files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _command_lines() -> list[str]:
    lines = []
    in_block = False
    for line in README.splitlines():
        if line.startswith("```"):
            in_block = not in_block
            continue
        if in_block and line.startswith("domainfm "):
            lines.append(line.split("  #")[0].strip())
    lines += [m.group(1) for m in re.finditer(r"`(domainfm [^`]+)`", README)]
    return sorted(set(lines))


COMMAND_LINES = _command_lines()


def _click_command(name: str):
    import typer

    from domainfm.cli import app

    group = typer.main.get_command(app)
    return group.commands.get(name)


def test_the_readme_shows_every_command():
    from domainfm.cli import app

    import typer

    shown = {line.split()[1] for line in COMMAND_LINES if len(line.split()) > 1}
    assert set(typer.main.get_command(app).commands) <= shown | {"--help"}


@pytest.mark.parametrize("line", COMMAND_LINES)
def test_readme_command_line_matches_the_cli(line):
    from domainfm.config import load_config
    from domainfm.finetune import TaskConfig
    from domainfm.pipeline import load_pipeline
    from domainfm.pretrain import PretrainConfig

    words = line.replace("[", " ").replace("]", " ").split()
    name = words[1]
    if name == "--help":
        return
    for alternative in name.split("|"):
        command = _click_command(alternative)
        assert command is not None, f"{line}: no command {alternative!r}"
        if hasattr(command, "commands") and len(words) > 2 and words[2] in command.commands:
            command = command.commands[words[2]]  # a sub-command: 'domainfm label serve ...'
        accepted = {opt for p in command.params for opt in p.opts + p.secondary_opts}
        extra_args = command.context_settings.get("allow_extra_args", False)
        for word in words[2:]:
            for option in word.split("|"):
                if not option.startswith("--"):
                    continue
                option = option.split("=")[0]
                if option in accepted:
                    continue
                assert extra_args, f"{line}: {alternative} has no option {option}"
                dotted = option[2:]
                if alternative in ("pretrain", "finetune") and dotted.count(".") == 1 and "." in dotted:
                    section, key = dotted.split(".")
                    cls = PretrainConfig if alternative == "pretrain" else TaskConfig
                    fields = {f.name: f for f in cls.__dataclass_fields__.values()}
                    if section in fields and isinstance(fields[section].default_factory, type):
                        assert key in fields[section].default_factory.__dataclass_fields__, f"{line}: {option}"
    for task in re.findall(r"tasks/[\w.-]+\.yaml", line):
        path = ROOT / task
        assert path.is_file(), f"{line}: {task} does not exist"
        if name == "pretrain":
            load_config(PretrainConfig, path)
        elif name == "finetune":
            load_config(TaskConfig, path)
        elif name == "run":
            load_pipeline(path)


def test_the_pretrain_example_reads_what_the_demo_writes(tmp_path, monkeypatch, cli, tiny_mlm_folder):
    """``domainfm pretrain tasks/pretrain-demo.yaml -o runs/dapt``: before the demo ran, one
    error line says the file is missing (not a manifest); after it, the line trains."""
    from domainfm.config import load_config
    from domainfm.corpus.io import write_documents
    from domainfm.corpus.document import Document
    from domainfm.deid.config import DeidConfig
    from domainfm.deid.runner import deidentify_file
    from domainfm.pipeline import load_pipeline
    from domainfm.pretrain import PretrainConfig

    line = next(line for line in COMMAND_LINES if line.startswith("domainfm pretrain tasks/pretrain-demo.yaml"))
    args = line.replace("[", " [").split(" [")[0].split()[1:]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "pretrain-demo.yaml").write_text((ROOT / "tasks" / "pretrain-demo.yaml").read_text())
    missing = cli(*args)
    assert missing.exit_code == 2, missing.output
    assert "no such file" in missing.output and "domainfm demo" in missing.output and "manifest" not in missing.output

    # where `domainfm demo` puts the de-identified clinical notes (its run_dir is demo-output/clinical)
    demo = load_pipeline(ROOT / "tasks" / "demo-clinical.yaml", {"run_dir": "demo-output/clinical"})
    deid_out = demo.output("deid")
    cfg = load_config(PretrainConfig, ROOT / "tasks" / "pretrain-demo.yaml")
    assert [Path(p) for p in cfg.data.paths] == [deid_out]
    notes = tmp_path / "notes.jsonl"
    write_documents(notes, [Document(f"n{i}", f"Seen by Dr. Lee on 7/{i + 1}/2020 for chest pain and cough.")
                            for i in range(40)])
    deidentify_file(notes, deid_out, DeidConfig(operator="tag"), seed=1)
    ran = cli(*args, "--model.name", tiny_mlm_folder, "--train.max_steps", "1", "--masking.seq_len", "32",
              "--train.batch_size", "2", "--data.max_eval_blocks", "2")
    assert ran.exit_code == 0, ran.output
    assert "Loading weights" not in ran.output and "Writing model shards" not in ran.output  # no tqdm bars
    manifest = json.loads((tmp_path / "runs" / "dapt" / "manifest.json").read_text())
    assert manifest["privacy_gate"]["decision"] == "passed"


@pytest.fixture(scope="module")
def tiny_mlm_folder(tmp_path_factory, tiny_tokenizer, tiny_bert_config):
    import torch
    from transformers import BertForMaskedLM

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("readme-mlm")
    BertForMaskedLM(tiny_bert_config).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.slow
@pytest.mark.timeout(1500)  # the walkthrough's own limit below: minutes alone, far more beside other jobs
def test_the_ten_minute_walkthrough_runs_as_written(tmp_path):
    """The walkthrough block is run by bash as it stands (only its output folder moved to tmp):
    every command must succeed, the vault must restore the exact originals, and the files the
    text tells the reader to open must exist."""
    import os
    import subprocess
    import sys

    section = README.split("## A ten-minute walkthrough", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    assert "W=walk;" in block
    out = tmp_path / "walk"
    script = "set -euo pipefail\n" + block.replace("W=walk;", f"W={out};")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / "audit" / "index.html").is_file()
    restored = [json.loads(line)["text"] for line in (out / "restored.jsonl").open()]
    originals = [json.loads(line)["text"] for line in (ROOT / "corpora/clinical/notes.jsonl").open()]
    assert restored == originals
    recall = json.loads((out / "deid-eval.json").read_text())["any_overlap"]["recall"]
    assert recall >= 0.9
    for name in ("chunks.manifest.json", "suggestions.labelstudio.json", "classifier/manifest.json"):
        assert (out / name).is_file(), name
