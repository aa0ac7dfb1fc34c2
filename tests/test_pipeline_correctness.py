"""``domainfm run``: the cache is right. A stage runs again exactly when something it reads
changed (its section, an upstream output's content, an input file's content, the files it wrote),
is kept when nothing did, and a resumed stage continues only what was started under its own key.

Made-up notes only; the real import and chunk stages run on five of them, the training, privacy,
audit and fine-tuning stages are fakes through the registry, so the file runs in seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from domainfm import pipeline as pl
from domainfm.errors import DomainFMError
from domainfm.stages import REGISTRY, StageResult
from conftest import swap_stage

NOTES = [
    "Patient Zorblax Quintavius seen for chest pain on exertion.",
    "Follow up with Dr. Hesperus Wobblethorne in two weeks.",
    "Quilvena Marblecoat discharged home in stable condition.",
    "MEDICATIONS: metformin 500 mg twice daily.",
    "ASSESSMENT: stable angina, continue aspirin.",
]


def _write_notes(path: Path, texts=NOTES) -> None:
    path.write_text("".join(json.dumps({"id": f"z{i}", "text": t, "label": "ab"[i % 2]}) + "\n"
                            for i, t in enumerate(texts)), encoding="utf-8")


def statuses(result, *names):
    found = {s.name: s.status for s in result.stages}
    return [found[n] for n in names]


@pytest.fixture()
def notes(tmp_path):
    path = tmp_path / "notes.jsonl"
    _write_notes(path)
    return path


@pytest.fixture()
def pipeline(tmp_path, notes):
    return {
        "run_dir": str(tmp_path / "run"),
        "seed": 13,
        "import": {"format": "jsonl", "src": str(notes)},
        "chunk": {"tokenizer": "minilm", "max_tokens": 64, "overlap": 8},
    }


def _folder_stage(config, inputs, out, context):
    """A training stage's stand-in: a model folder written from its first input."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "weights.bin").write_bytes(hashlib.sha256(Path(inputs[0]).read_bytes()).digest())
    return StageResult([out])


# --------------------------------------------------------------------- what keeps the cache


def test_touching_reordering_and_overrides_as_strings_keep_every_stage_cached(pipeline, notes):
    pl.run_pipeline(pipeline)
    later = notes.stat().st_mtime + 1000
    os.utime(notes, (later, later))  # a newer mtime, the same bytes
    reordered = {"chunk": {"overlap": 8, "max_tokens": 64, "tokenizer": "minilm"},
                 **{k: v for k, v in reversed(pipeline.items()) if k != "chunk"}}
    for config, overrides in ((pipeline, None), (reordered, None), (pipeline, {"chunk.max_tokens": "64"})):
        assert statuses(pl.run_pipeline(config, overrides), "import", "chunk") == ["cached", "cached"]


def test_an_upstream_stage_that_reruns_to_the_same_bytes_keeps_the_downstream_cached(pipeline, tmp_path):
    pl.run_pipeline(pipeline)
    before = (tmp_path / "run" / "import" / "corpus.jsonl").read_bytes()
    # the importer's default written out: another section, the same corpus
    result = pl.run_pipeline(pipeline, {"import.options": {"text_key": "text"}})
    assert statuses(result, "import", "chunk") == ["ran", "cached"]
    assert (tmp_path / "run" / "import" / "corpus.jsonl").read_bytes() == before


def test_a_stage_that_fails_midway_is_run_again_and_the_stages_before_it_are_kept(pipeline, monkeypatch, tmp_path):
    real_chunk = REGISTRY["chunk"].runner()
    chunks = tmp_path / "run" / "chunk" / "chunks.jsonl"

    def half_written(config, inputs, out, context):
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text('{"id": "z0#0", "text": "Patient"}\n')  # a killed writer's first line
        raise RuntimeError("killed")

    swap_stage(monkeypatch, "chunk", half_written)
    with pytest.raises(DomainFMError, match="stage 'chunk' failed"):
        pl.run_pipeline(pipeline)
    swap_stage(monkeypatch, "chunk", real_chunk)
    result = pl.run_pipeline(pipeline)
    assert statuses(result, "import", "chunk") == ["cached", "ran"]
    assert len(chunks.read_text().splitlines()) >= len(NOTES)


# --------------------------------------------------------- a cached stage's files are its own


@pytest.mark.parametrize("stage, file, edit", [
    ("import", "corpus.jsonl", lambda text: text.replace("chest pain", "CHEST PAIN")),
    ("import", "corpus.manifest.json", lambda text: text.replace('"jsonl"', '"csv"')),
    ("chunk", "chunks.jsonl", lambda text: ""),
])
def test_a_cached_output_edited_or_cut_since_is_made_again(pipeline, tmp_path, stage, file, edit):
    """Only the outputs' presence was checked: an edited corpus stayed 'cached' and the chunker
    ran on the edit; an emptied chunk file was reused as the chunks."""
    pl.run_pipeline(pipeline)
    path = tmp_path / "run" / stage / file
    original = path.read_text(encoding="utf-8")
    edited = edit(original)
    path.write_text(edited, encoding="utf-8")
    result = pl.run_pipeline(pipeline)
    # the stage is made again, identical: the stage after it reads the same bytes and stays cached
    expected = {"import": ["ran", "cached"], "chunk": ["cached", "ran"]}[stage]
    assert statuses(result, "import", "chunk") == expected
    remade = path.read_text(encoding="utf-8")
    assert remade != edited
    if file.endswith(".jsonl"):  # a manifest differs in its time of writing
        assert remade == original
    assert statuses(pl.run_pipeline(pipeline), "import", "chunk") == ["cached", "cached"]


def test_a_cached_model_folder_with_an_edited_file_is_trained_again(pipeline, monkeypatch, tmp_path):
    swap_stage(monkeypatch, "pretrain", _folder_stage)
    config = {**pipeline, "pretrain": {"train": {"max_steps": 1}}}
    pl.run_pipeline(config)
    weights = tmp_path / "run" / "pretrain" / "model" / "weights.bin"
    original = weights.read_bytes()
    weights.write_bytes(b"\0" * len(original))
    assert statuses(pl.run_pipeline(config), "pretrain") == ["ran"]
    assert weights.read_bytes() == original
    # a file added to the folder since (a stray checkpoint copy) is not what the stage wrote either
    (weights.parent / "extra.bin").write_bytes(b"x")
    assert statuses(pl.run_pipeline(config), "pretrain") == ["ran"]


def test_a_moved_run_folder_still_verifies_its_own_outputs(pipeline, tmp_path):
    pl.run_pipeline(pipeline)
    moved = tmp_path / "moved"
    shutil.move(tmp_path / "run", moved)
    config = {**pipeline, "run_dir": str(moved)}
    assert statuses(pl.run_pipeline(config), "import", "chunk") == ["cached", "cached"]
    (moved / "chunk" / "chunks.jsonl").write_text("", encoding="utf-8")
    assert statuses(pl.run_pipeline(config), "import", "chunk") == ["cached", "ran"]


# ------------------------------------------------- what a stage reads outside its wired input


@pytest.fixture()
def audited(pipeline, monkeypatch):
    """pretrain -> privacy -> finetune -> audit, all fakes; the audit quotes the privacy report
    in its model card, as the real stage does."""
    def privacy(config, inputs, out, context):
        out.write_text(json.dumps({"n_bootstrap": config.n_bootstrap}), encoding="utf-8")
        return StageResult([out])

    def audit(config, inputs, out, context):
        out.write_text("<p>" + context.outputs["privacy"].read_text(encoding="utf-8"), encoding="utf-8")
        return StageResult([out])

    for name, run in (("pretrain", _folder_stage), ("finetune", _folder_stage), ("privacy", privacy),
                      ("audit", audit)):
        swap_stage(monkeypatch, name, run)
    return {**pipeline, "pretrain": {"train": {"max_steps": 1}}, "privacy": {},
            "finetune": {"data": {"label_field": "label"}}, "audit": {}}


def test_the_audit_reruns_when_the_privacy_report_its_model_card_quotes_changes(audited, tmp_path):
    """The audit read run_dir/privacy/report.json for its model card and cards without it being one
    of its inputs: a re-run privacy audit left the card quoting the old numbers."""
    pl.run_pipeline(audited)
    result = pl.run_pipeline(audited, {"privacy.n_bootstrap": 50})
    assert statuses(result, "pretrain", "privacy", "finetune", "audit") == ["cached", "ran", "cached", "ran"]
    assert '"n_bootstrap": 50' in (tmp_path / "run" / "audit" / "index.html").read_text()
    assert statuses(pl.run_pipeline(audited, {"privacy.n_bootstrap": 50}), "audit") == ["cached"]


def test_the_reports_the_audit_cards_quote_are_its_inputs(tmp_path):
    wired = pl.pipeline_from_dict({
        "run_dir": str(tmp_path / "r"), "import": {"src": "x.jsonl"},
        "finetune": {"task": "ner"}, "deid_eval": {}, "audit": {},
    })
    assert tmp_path / "r" / "deid_eval" / "report.json" in wired.inputs["audit"]
    alone = pl.pipeline_from_dict({"run_dir": str(tmp_path / "r"), "import": {"src": "x.jsonl"},
                                   "finetune": {"data": {"label_field": "label"}}, "audit": {}})
    assert not any("report.json" in str(p) for p in alone.inputs["audit"])


@pytest.fixture()
def prepared(pipeline, monkeypatch, tmp_path):
    """A fine-tuning section whose ``data.prepare`` step writes its evaluation file, with a fake
    training stage that runs the real preparation."""
    def finetune(config, inputs, out, context):
        from domainfm.finetune.inputs import prepare_data

        prepare_data(config)
        return _folder_stage(config, [config.data.eval], out, context)

    swap_stage(monkeypatch, "finetune", finetune)
    source = tmp_path / "eval_source.jsonl"
    _write_notes(source, ["Eval note one.", "Eval note two."])
    out = tmp_path / "prepared" / "eval.jsonl"
    out.parent.mkdir()
    return {**pipeline, "finetune": {"data": {"label_field": "label", "eval": str(out), "prepare": [
        {"format": "jsonl", "src": str(source), "out": str(out)}]}}}


def test_a_file_fine_tuning_prepares_does_not_make_it_train_once_more(prepared, tmp_path):
    """The prepared file was hashed into the key once it existed: the run after the first one
    trained again, for nothing."""
    pl.run_pipeline(prepared)
    assert statuses(pl.run_pipeline(prepared), "finetune") == ["cached"]
    out = tmp_path / "prepared" / "eval.jsonl"
    out.write_text(out.read_text().replace("one", "uno"), encoding="utf-8")  # edited by hand: trained on
    assert statuses(pl.run_pipeline(prepared), "finetune") == ["ran"]
    assert statuses(pl.run_pipeline(prepared), "finetune") == ["cached"]
    out.unlink()  # gone: prepared and trained again
    assert statuses(pl.run_pipeline(prepared), "finetune") == ["ran"]
    assert out.is_file()


# ------------------------------------------------------------------------------- resuming


def test_a_stage_that_failed_under_a_new_key_never_resumes_the_old_keys_output(pipeline, monkeypatch, notes,
                                                                               tmp_path):
    """A training stage continues the newest checkpoint in its folder when told to resume. After a
    finished run, a run on changed data that failed before it touched the folder left the old
    run's checkpoints there; the next run resumed them and recorded a model trained on the old
    data as the new data's."""
    from domainfm.training.launch import output_mode

    fail = []

    def training(config, inputs, out, context):
        data = hashlib.sha256(Path(inputs[0]).read_bytes()).hexdigest()
        checkpoints = out / "checkpoints"
        mode = output_mode(out, context.resume, lambda o: sorted(checkpoints.glob("*")) if checkpoints.is_dir() else [])
        if fail:
            raise RuntimeError("killed while reading the corpus")  # before the folder is touched
        if mode.get("resume"):
            trained_on = (checkpoints / "step-1").read_text()
        else:
            shutil.rmtree(out, ignore_errors=True)
            checkpoints.mkdir(parents=True)
            (checkpoints / "step-1").write_text(data)
            trained_on = data
        (out / "trained_on.txt").write_text(trained_on)
        return StageResult([out])

    swap_stage(monkeypatch, "pretrain", training)
    config = {**pipeline, "pretrain": {"train": {"max_steps": 1}}}
    pl.run_pipeline(config)
    _write_notes(notes, NOTES + ["A sixth note."])
    fail.append(True)
    with pytest.raises(DomainFMError, match="stage 'pretrain' failed"):
        pl.run_pipeline(config)
    fail.clear()
    assert statuses(pl.run_pipeline(config), "import", "pretrain") == ["cached", "ran"]
    corpus = (tmp_path / "run" / "import" / "corpus.jsonl").read_bytes()
    assert (tmp_path / "run" / "pretrain" / "model" / "trained_on.txt").read_text() == \
        hashlib.sha256(corpus).hexdigest()


def test_a_stage_killed_under_its_own_key_still_resumes_its_checkpoints(pipeline, monkeypatch, notes, tmp_path):
    """The other side: checkpoints written under this key are continued, not thrown away."""
    seen = []

    def training(config, inputs, out, context):
        seen.append((context.resume, (out / "step-1").exists()))
        out.mkdir(parents=True, exist_ok=True)
        (out / "step-1").write_text("checkpoint")
        if len(seen) == 2:
            raise RuntimeError("killed after its first checkpoint")
        return StageResult([out])

    swap_stage(monkeypatch, "pretrain", training)
    config = {**pipeline, "pretrain": {"train": {"max_steps": 1}}}
    pl.run_pipeline(config)
    _write_notes(notes, NOTES + ["A sixth note."])
    with pytest.raises(DomainFMError):
        pl.run_pipeline(config)
    pl.run_pipeline(config)
    assert seen == [(False, False), (False, False), (True, True)]


def test_from_reruns_that_stage_and_later_ones_and_until_stops(pipeline):
    pl.run_pipeline(pipeline)
    assert statuses(pl.run_pipeline(pipeline, from_stage="chunk"), "import", "chunk") == ["cached", "ran"]
    assert statuses(pl.run_pipeline(pipeline, until_stage="import", from_stage="import"),
                    "import", "chunk") == ["ran", "skipped"]
    assert statuses(pl.run_pipeline(pipeline), "import", "chunk") == ["cached", "cached"]
