"""``domainfm run``: what a cached stage must still match (the surrogate key, the vault, the run
folder it sits in), and the paths a pipeline may not name because the run writes them.

Made-up notes only; the real import/deid/chunk stages run on five of them, the label stage is a
fake through the registry, so the file runs in seconds.
"""

from __future__ import annotations

import dataclasses
import json
import re
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


def test_a_copied_run_folder_reuses_its_stages_without_the_original(pipeline, tmp_path, monkeypatch):
    import domainfm.manifest

    def fake_pretrain(config, inputs, out, context):  # its config names the deid output: a wired path
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text("{}\n")
        return StageResult([out], {"steps": 1})

    monkeypatch.setitem(REGISTRY, "pretrain", dataclasses.replace(REGISTRY["pretrain"], run=fake_pretrain))
    wired = {**pipeline, "pretrain": {}}
    pl.run_pipeline(wired)
    original, copy = tmp_path / "run", tmp_path / "elsewhere" / "run"
    shutil.copytree(original, copy)
    original.rename(tmp_path / "gone")  # whatever still reads the original path now misses it
    described = []
    describe = domainfm.manifest.describe_input
    monkeypatch.setattr(domainfm.manifest, "describe_input", lambda p: described.append(Path(p)) or describe(p))

    result = pl.run_pipeline(wired, {"run_dir": str(copy)})
    assert statuses(result, "import", "deid", "chunk", "pretrain") == ["cached"] * 4
    assert described and not [p for p in described if p.resolve().is_relative_to(original)], described
    recorded = {name: json.loads((copy / name / "stage.json").read_text()) for name in ("import", "deid", "chunk")}
    assert [i["path"] for i in recorded["deid"]["inputs"]] == ["import/corpus.jsonl"]  # the run folder's own
    assert [i["path"] for i in recorded["chunk"]["inputs"]] == ["deid/corpus.jsonl"]
    assert recorded["import"]["inputs"][0]["path"] == str(tmp_path / "notes.jsonl")  # outside it: absolute
    assert all(str(original) not in json.dumps(r["inputs"]) for r in recorded.values())


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


@pytest.mark.parametrize("key, value", [("vault", "v.vault"), ("operator", "redact"), ("pseudonymize_ids", True),
                                        ("meta", {"note": "deid"}), ("meta_default", "drop")])
def test_deid_keys_the_scoring_stage_never_reads_are_refused(key, value):
    """deid_eval inherits DeidConfig but only detects: a vault or an operator there did nothing."""
    base = {"import": {"src": "x.jsonl"}, "finetune": {"task": "ner"}}
    with pytest.raises(ConfigError, match=f"'deid_eval.{key}' is not used: .*writes no de-identified text"):
        pl.pipeline_from_dict({**base, "deid_eval": {key: value}})
    assert pl.pipeline_from_dict({**base, "deid_eval": {"ner_threshold": 0.7}})


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


# --------------------------------------------------------------------------------------------
# Every path a section names, checked against what the run writes


# the sections a stage needs beside its own for the pipeline to load
NEEDS = {"privacy": {"pretrain": {}}, "audit": {"finetune": {}}, "deid_eval": {"finetune": {"task": "ner"}}}
# every key of a section that names a file or folder the stage reads (a model or tokenizer key
# takes a shipped name or a Hub id too); pipeline.INPUT_KEYS must cover them (tested below)
NAMED_KEYS = [
    ("import", "src"), ("import", "meta_join.src"), ("import", "options.phi"),
    ("deid", "vault"), ("deid", "spacy_model"), ("deid", "ner_model"),
    ("chunk", "tokenizer"),
    ("pretrain", "model.name"), ("pretrain", "model.tokenizer"),
    ("privacy", "holdout"), ("privacy", "vault"), ("privacy", "planted"), ("privacy", "base_model"),
    ("finetune", "model.name"), ("finetune", "model.tokenizer"), ("finetune", "data.eval"),
    ("finetune", "data.prepare[].src"), ("finetune", "data.prepare[].out"), ("finetune", "distill.teacher"),
    ("deid_eval", "spacy_model"),
    ("audit", "cards_config"), ("audit", "chai_schema"),
    ("label", "labeled"), ("label", "pool"), ("label", "model"),
]
# where a named path collides with the run: the path under tmp_path, and what the error says
COLLISIONS = [
    ("run/deid/corpus.jsonl", "is inside a stage folder of the pipeline's run_dir"),
    ("run/pretrain/model", "is inside a stage folder of the pipeline's run_dir"),
    ("run/run.json", "is run.json, which the run writes"),
    ("run/.lock", "is .lock, which the run writes"),
    (".", "is a folder that holds the pipeline's run_dir"),
]


def _naming(tmp_path: Path, stage: str, key: str, value: str) -> dict:
    """A pipeline whose ``stage`` section sets ``key`` (dotted; ``a[].b``: in one list item) to ``value``."""
    pipeline = {"run_dir": str(tmp_path / "run"), "seed": None,
                "import": {"format": "jsonl", "src": str(tmp_path / "notes.jsonl")}, **NEEDS.get(stage, {})}
    section = pipeline.setdefault(stage, {})
    filled = {"meta_join": {"key_col": "id", "columns": {"sex": "sex"}},
              "data.prepare[]": {"format": "jsonl", "src": str(tmp_path / "raw.jsonl"),
                                 "out": str(tmp_path / "prepared.jsonl")}}
    *parents, leaf = key.split(".")
    node = section
    for i, part in enumerate(parents):
        prefix = ".".join(parents[: i + 1])
        if part.endswith("[]"):
            node[part[:-2]] = [dict(filled[prefix])]
            node = node[part[:-2]][0]
        else:
            node = node.setdefault(part, dict(filled.get(prefix, {})))
    node[leaf] = value
    if (stage, key) == ("import", "options.phi"):
        section["format"] = "physionet"
    return pipeline


@pytest.fixture()
def no_stage_runs(monkeypatch):
    """Every registered stage replaced by one that fails the test: the refusal must come first."""
    def ran(config, inputs, out, context):
        raise AssertionError(f"a stage ran and wrote {out}")

    for name in REGISTRY:
        monkeypatch.setitem(REGISTRY, name, dataclasses.replace(REGISTRY[name], run=ran))


@pytest.mark.parametrize("stage, key", NAMED_KEYS, ids=[f"{s}.{k}" for s, k in NAMED_KEYS])
@pytest.mark.parametrize("path, message", COLLISIONS, ids=[p for p, _ in COLLISIONS])
def test_every_path_a_section_names_is_refused_where_the_run_writes(tmp_path, no_stage_runs, stage, key, path,
                                                                     message):
    if key == "vault" and path != ".":  # a vault is kept out of the whole run folder
        message = "is inside the pipeline's run_dir .*: keep the vault, .* outside the run folder"
    name = f"{stage}.{key}".replace("[]", "[0]")
    with pytest.raises(ConfigError, match=f"config field '{re.escape(name)}' .* {message}"):
        pl.run_pipeline(_naming(tmp_path, stage, key, str(tmp_path / path)))
    assert not (tmp_path / "run").exists()


def test_a_path_holding_a_nul_character_is_refused_by_its_key(tmp_path):
    with pytest.raises(ConfigError, match="'privacy.holdout' must be a path"):
        pl.pipeline_from_dict(_naming(tmp_path, "privacy", "holdout", "held\x00out.jsonl"))


def test_paths_beside_the_run_folder_are_read_and_hashed_as_the_stage_inputs(tmp_path):
    elsewhere = tmp_path / "inputs"
    elsewhere.mkdir()
    for name in ("holdout.jsonl", "eval.jsonl", "schema.json"):
        (elsewhere / name).write_text("{}\n", encoding="utf-8")
    cfg = pl.pipeline_from_dict({
        "run_dir": str(tmp_path / "run"), "import": {"src": str(tmp_path / "notes.jsonl")}, "deid": {},
        "pretrain": {}, "privacy": {"holdout": str(elsewhere / "holdout.jsonl")},
        "finetune": {"data": {"eval": str(elsewhere / "eval.jsonl")}},
        "audit": {"chai_schema": str(elsewhere / "schema.json")},
    })
    assert elsewhere / "holdout.jsonl" in cfg.inputs["privacy"]
    assert {elsewhere / "eval.jsonl", elsewhere / "schema.json"} <= set(cfg.inputs["audit"])
    # what the pipeline wires into a stage folder is not the pipeline file's naming
    assert cfg.stages["finetune"].model.name == str(tmp_path / "run" / "pretrain" / "model")


def _fields(cls: type, prefix: str = ""):
    """(dotted key, type) of every field of a config class, nested sections (``a.b``) and lists
    of sections (``a[].b``) included."""
    from typing import get_args, get_origin, get_type_hints

    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        yield prefix + f.name, hint
        if get_origin(hint) is list:
            if dataclasses.is_dataclass(get_args(hint)[0]):
                yield from _fields(get_args(hint)[0], f"{prefix}{f.name}[].")
            continue
        for option in (hint, *get_args(hint)):
            if isinstance(option, type) and dataclasses.is_dataclass(option):
                yield from _fields(option, f"{prefix}{f.name}.")


# inputs the pipeline wires (a section setting one is refused), and keys no pipeline stage reads
WIRED = {"pretrain.data.paths", "finetune.data.train", "deid_eval.ner_model"}
NOT_READ = {"deid_eval.vault"}  # the deid_eval stage scores detection and writes no vault
PATH_LIKE = re.compile(r"(^|_)(src|out|paths?|file|dir|folder|model|tokenizer|teacher|vault|schema|config|"
                       r"holdout|planted|labeled|pool|eval|train)$")


def test_the_input_key_table_covers_every_path_field_of_the_registered_sections():
    from pathlib import PurePath
    from typing import get_args

    from domainfm.corpus.importers import IMPORTERS

    named = {f"{s}.{k}" for s, keys in pl.INPUT_KEYS.items() for k in keys} | set(pl.VAULT_KEYS)
    assert named == {f"{s}.{k}" for s, k in NAMED_KEYS}
    known = set()
    for stage, spec in REGISTRY.items():
        for dotted, hint in _fields(spec.config_class()):
            key = f"{stage}.{dotted}"
            known.add(key)
            leaf = dotted.rpartition(".")[2]
            is_path = any(isinstance(t, type) and issubclass(t, PurePath) for t in (hint, *get_args(hint))) or any(
                isinstance(t, type) and issubclass(t, PurePath) for a in get_args(hint) for t in get_args(a))
            if is_path or (PATH_LIKE.search(leaf) and str in (hint, *get_args(hint))):
                assert key in named | WIRED | NOT_READ, f"{key} names a path: add it to pipeline.INPUT_KEYS"
    known |= {f"import.options.{dotted}" for imp in IMPORTERS.values() for dotted, _ in _fields(imp.options_cls)}
    assert named <= known, named - known  # the table names real keys
