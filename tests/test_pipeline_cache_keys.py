"""``domainfm run``: what a cached stage must still match (the surrogate key, the vault, the run
folder it sits in), and the paths a pipeline may not name because the run writes them.

Made-up notes only; the real import/deid/chunk stages run on five of them, the label stage is a
fake through the registry, so the file runs in seconds.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from domainfm import pipeline as pl
from domainfm.errors import ConfigError
from domainfm.stages import REGISTRY, StageResult

NOTES = [
    "Patient Zorblax Quintavius seen on 03/14/2021 at Boston General. Phone 617-555-0199.",
    "Mr. Quintavius reports chest pain for two days. Follow up with Dr. Hesperus Wobblethorne.",
    "Quilvena Marblecoat, 71, discharged home on 12/01/2020 in stable condition.",
    "MEDICATIONS: metformin 500 mg twice daily. Call 617-555-0142 with questions.",
    "ASSESSMENT: stable. Brannoc Thrandle to return in two weeks.",
]
KEY_ENV = "DOMAINFM_VAULT_KEY"
SECRET_A = "zorblax-test-secret-aaaaaaaaaaaaaaaaaaaaaaaaaaaa"
SECRET_B = "zorblax-test-secret-bbbbbbbbbbbbbbbbbbbbbbbbbbbb"


@pytest.fixture()
def pipeline(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    notes = tmp_path / "notes.jsonl"
    notes.write_text("".join(json.dumps({"id": f"z{i}", "text": t}) + "\n" for i, t in enumerate(NOTES)),
                     encoding="utf-8")
    return {
        "run_dir": str(tmp_path / "run"),
        "seed": 13,
        "import": {"format": "jsonl", "src": str(notes)},
        "deid": {"profile": "clinical"},
        "chunk": {"tokenizer": "minilm", "max_tokens": 64, "overlap": 8},
    }


def statuses(result, *names):
    found = {s.name: s.status for s in result.stages}
    return [found[n] for n in names]


def _surrogate_key(run_dir: Path) -> str:
    return json.loads((run_dir / "deid" / "corpus.manifest.json").read_text())["surrogate_key"]


def test_a_vault_key_set_after_a_seeded_run_reruns_deid(pipeline, tmp_path, monkeypatch):
    run = tmp_path / "run"
    pl.run_pipeline(pipeline)
    assert "seed 13" in _surrogate_key(run)
    monkeypatch.setenv(KEY_ENV, SECRET_A)  # the run now asks for a secret: seed-13 surrogates must not be kept
    assert statuses(pl.run_pipeline(pipeline), "import", "deid") == ["cached", "ran"]
    assert _surrogate_key(run) == f"from ${KEY_ENV}"
    assert statuses(pl.run_pipeline(pipeline), "deid", "chunk") == ["cached", "cached"]
    # the cache key tells secrets apart without holding them
    for written in (run / "deid" / "stage.json", run / "run.json"):
        assert SECRET_A not in written.read_text()


def test_another_vault_key_reruns_deid_and_no_key_reruns_it_too(pipeline, tmp_path, monkeypatch):
    unseeded = {**pipeline, "seed": None}
    monkeypatch.setenv(KEY_ENV, SECRET_A)
    pl.run_pipeline(unseeded)
    first = (tmp_path / "run" / "deid" / "corpus.jsonl").read_text()
    assert statuses(pl.run_pipeline(unseeded), "deid") == ["cached"]
    monkeypatch.setenv(KEY_ENV, SECRET_B)
    assert statuses(pl.run_pipeline(unseeded), "deid", "chunk") == ["ran", "ran"]
    assert (tmp_path / "run" / "deid" / "corpus.jsonl").read_text() != first
    monkeypatch.delenv(KEY_ENV)  # a random secret for this run: SECRET_B's surrogates are not its output
    assert statuses(pl.run_pipeline(unseeded), "deid") == ["ran"]
    assert "random" in _surrogate_key(tmp_path / "run")


@pytest.mark.parametrize("vault", ["run/chunk/chunks.jsonl", "run/run.json", "run/.lock", "run/deid/vault.db",
                                   "run/vault.db"])
def test_a_vault_inside_the_run_dir_is_refused_before_anything_is_written(pipeline, tmp_path, monkeypatch, vault):
    monkeypatch.setenv(KEY_ENV, SECRET_A)
    with pytest.raises(ConfigError, match="'deid.vault' .* is inside the pipeline's run_dir"):
        pl.run_pipeline({**pipeline, "seed": None, "deid": {"vault": str(tmp_path / vault)}})
    assert not (tmp_path / "run").exists()


def test_a_deleted_vault_reruns_deid_and_the_output_can_be_restored_again(pipeline, tmp_path, monkeypatch):
    from domainfm.deid.runner import reidentify_file

    monkeypatch.setenv(KEY_ENV, SECRET_A)
    vault = tmp_path / "vaults" / "run.vault"
    keyed = {**pipeline, "seed": None, "deid": {"vault": str(vault)}}
    pl.run_pipeline(keyed)
    assert statuses(pl.run_pipeline(keyed), "deid") == ["cached"]
    vault.unlink()
    assert statuses(pl.run_pipeline(keyed), "deid", "chunk") == ["ran", "cached"]  # same key: same surrogates
    restored = reidentify_file(tmp_path / "run" / "deid" / "corpus.jsonl", tmp_path / "restored.jsonl", vault)
    assert restored.counts["written"] == len(NOTES)
    assert "Zorblax Quintavius" in (tmp_path / "restored.jsonl").read_text()


@pytest.mark.parametrize("src", ["run/run.json", "run/.lock"])
def test_an_import_source_the_runner_writes_is_refused(pipeline, tmp_path, src):
    pl.run_pipeline(pipeline, until_stage="import")
    (tmp_path / src).write_bytes((tmp_path / "notes.jsonl").read_bytes())
    with pytest.raises(ConfigError, match=f"'import.src' .* is {Path(src).name}, which the run writes"):
        pl.run_pipeline(pipeline, {"import.src": str(tmp_path / src)})
    assert (tmp_path / src).read_bytes() == (tmp_path / "notes.jsonl").read_bytes()


@pytest.mark.parametrize("src", ["run", "."])
def test_an_import_folder_holding_the_run_dir_is_refused_before_anything_is_written(pipeline, tmp_path, src):
    notes = tmp_path / "run"
    notes.mkdir()
    (notes / "a.txt").write_text("Zorblax Quintavius called from 617-555-0199.\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="'import.src' .* (is|holds) the pipeline's run_dir"):
        pl.run_pipeline(pipeline, {"import.format": "textdir", "import.src": str(tmp_path / src)})
    assert sorted(p.name for p in notes.iterdir()) == ["a.txt"]


def test_a_copied_run_folder_checks_and_lists_its_own_outputs(pipeline, tmp_path):
    pl.run_pipeline(pipeline)
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "run", copy)
    (copy / "deid" / "corpus.jsonl").unlink()
    result = pl.run_pipeline(pipeline, {"run_dir": str(copy)})
    assert statuses(result, "import", "deid", "chunk") == ["cached", "ran", "cached"]
    assert (copy / "deid" / "corpus.jsonl").is_file()
    listed = [o for s in json.loads((copy / "run.json").read_text())["stages"] for o in s["outputs"]]
    assert listed and all(Path(o).is_relative_to(copy) for o in listed), listed


@pytest.mark.parametrize("id_format", ["n{}{}", "n{0}{1}", "n{x}", "n{", "n}{}", "n{!z}"])
def test_a_meta_join_id_format_without_exactly_one_placeholder_is_refused(pipeline, tmp_path, id_format):
    table = tmp_path / "attrs.csv"
    table.write_text("note,sex\n0,female\n", encoding="utf-8")
    join = {"src": str(table), "key_col": "note", "columns": {"sex": "sex"}, "id_format": id_format}
    with pytest.raises(ConfigError, match="'import.meta_join.id_format' must contain exactly one '{}'"):
        pl.pipeline_from_dict({**pipeline, "import": {**pipeline["import"], "meta_join": join}})
    ok = {**join, "id_format": "{{z}}{}"}  # doubled braces are literal ones
    assert pl.pipeline_from_dict({**pipeline, "import": {**pipeline["import"], "meta_join": ok}})


@pytest.mark.parametrize("section", ["deid", "deid_eval"])
def test_a_seed_inside_the_deid_section_is_refused_with_directions(section):
    base = {"import": {"src": "x.jsonl"}, "deid": {}}
    if section == "deid_eval":
        base = {"import": {"src": "x.jsonl"}, "finetune": {"task": "ner"}}
    with pytest.raises(ConfigError, match=f"'{section}.seed' .* top-level 'seed'"):
        pl.pipeline_from_dict({**base, section: {"seed": 5}})


def test_a_rerun_removes_the_outputs_of_its_earlier_configuration_only(pipeline, tmp_path, monkeypatch):
    def fake_label(config, inputs, out, context):
        out.write_text("{}\n")
        exports = [out.with_suffix(f".{kind}") for kind in config.exports]
        for path in exports:
            path.write_text("made up\n")
        return StageResult([out, *exports], {"written": 1})

    monkeypatch.setitem(REGISTRY, "label", dataclasses.replace(REGISTRY["label"], run=fake_label))
    label = tmp_path / "run" / "label"
    pl.run_pipeline({**pipeline, "label": {"exports": ["csv", "labelstudio"]}})
    (label / "my-notes.txt").write_text("kept\n")  # not the stage's: never removed
    pl.run_pipeline({**pipeline, "label": {"exports": ["labelstudio"]}})
    assert sorted(p.name for p in label.iterdir()) == ["my-notes.txt", "stage.json", "suggestions.jsonl",
                                                       "suggestions.labelstudio"]
    recorded = json.loads((label / "stage.json").read_text())["outputs"]
    assert recorded == ["suggestions.jsonl", "suggestions.labelstudio"]


@pytest.mark.parametrize("key", ["labeled", "pool"])
@pytest.mark.parametrize("path, message", [
    ("run/run.json", "is run.json, which the run writes"),
    ("run/.lock", "is .lock, which the run writes"),
    ("run/label/suggestions.jsonl", "is inside a stage folder of the pipeline's run_dir"),
    ("run/deid/corpus.jsonl", "is inside a stage folder of the pipeline's run_dir"),
    (".", "is a folder that holds the pipeline's run_dir"),
])
def test_a_label_file_the_runner_writes_is_refused_before_anything_is_written(pipeline, tmp_path, key, path,
                                                                                message):
    with pytest.raises(ConfigError, match=f"'label.{key}' .* {message}"):
        pl.run_pipeline({**pipeline, "label": {key: str(tmp_path / path)}})
    assert not (tmp_path / "run").exists()
    elsewhere = tmp_path / "seeds" / "pool.jsonl"  # beside the run folder is fine, and an input of the stage
    assert elsewhere in pl.pipeline_from_dict({**pipeline, "label": {key: str(elsewhere)}}).inputs["label"]
