"""``domainfm run``: wiring, cache keys, --from/--until, failure and resume, run.json, CLI.

Real import/deid/chunk stages run on a 5-document corpus written here; the slow stages are
absent or replaced by fakes through the ``STAGES`` registry, so the file runs in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domainfm import pipeline as pl
from domainfm.errors import ConfigError, DomainFMError

ROOT = Path(__file__).resolve().parents[1]
NOTES = [
    "CHIEF COMPLAINT: chest pain. Patient John Smith, seen on 03/04/2021 at Mercy Hospital.",
    "HISTORY OF PRESENT ILLNESS: 67 year old woman with hypertension. Call 555-123-4567.",
    "ASSESSMENT AND PLAN: 1. NSTEMI - aspirin, heparin. Follow up with Dr. Alice Jones.",
    "MEDICATIONS: metformin 500 mg twice daily. The patient denies fever or cough.",
    "DISCHARGE SUMMARY: discharged home on 12/01/2020 in stable condition.",
]


@pytest.fixture()
def corpus(tmp_path):
    path = tmp_path / "notes.jsonl"
    path.write_text("".join(json.dumps({"id": f"n{i}", "text": t, "label": "a" if i % 2 else "b"}) + "\n"
                            for i, t in enumerate(NOTES)), encoding="utf-8")
    return path


@pytest.fixture()
def pipeline(tmp_path, corpus):
    return {
        "run_dir": str(tmp_path / "run"),
        "seed": 13,
        "import": {"format": "jsonl", "src": str(corpus)},
        "deid": {"profile": "clinical"},
        "chunk": {"tokenizer": "minilm", "max_tokens": 64, "overlap": 8, "profile": "clinical"},
    }


def statuses(result):
    return {s.name: s.status for s in result.stages}


def test_first_run_runs_then_caches_and_writes_run_json(pipeline, tmp_path):
    first = pl.run_pipeline(pipeline)
    assert statuses(first) == {"import": "ran", "deid": "ran", "chunk": "ran", "pretrain": "skipped",
                               "finetune": "skipped", "label": "skipped"}
    run = tmp_path / "run"
    for stage, output in (("import", "corpus.jsonl"), ("deid", "corpus.jsonl"), ("chunk", "chunks.jsonl")):
        assert (run / stage / output).is_file()
        assert (run / stage / output.replace(".jsonl", ".manifest.json")).is_file()
        record = json.loads((run / stage / "stage.json").read_text())
        assert record["status"] == "done" and len(record["key"]) == 64
    assert first.stage("import").counts == {"read": 5, "written": 5, "rejected": 0}
    assert first.stage("chunk").counts["chunks"] >= 5
    assert first.stage("deid").metrics["detections"] > 0
    # The chunk stage reads the de-identified text, not the imported one.
    chunk_manifest = json.loads((run / "chunk" / "chunks.manifest.json").read_text())
    assert chunk_manifest["inputs"][0]["path"].endswith("deid/corpus.jsonl")

    summary = json.loads((run / "run.json").read_text())
    assert summary["ok"] is True
    assert [s["name"] for s in summary["stages"]] == list(pl.STAGE_ORDER)
    assert summary["stages"][0]["counts"]["written"] == 5 and "seconds" in summary["stages"][0]
    assert summary["config"]["stages"]["chunk"]["max_tokens"] == 64

    second = pl.run_pipeline(pipeline)
    assert [statuses(second)[s] for s in ("import", "deid", "chunk")] == ["cached"] * 3


def test_changing_only_chunk_config_reruns_only_chunk(pipeline):
    pl.run_pipeline(pipeline)
    result = pl.run_pipeline(pipeline, {"chunk.max_tokens": 32})
    assert [statuses(result)[s] for s in ("import", "deid", "chunk")] == ["cached", "cached", "ran"]


def test_changing_the_input_reruns_everything_downstream(pipeline, corpus):
    pl.run_pipeline(pipeline)
    with corpus.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": "n5", "text": "PLAN: discharge on 01/02/2022."}) + "\n")
    result = pl.run_pipeline(pipeline)
    assert [statuses(result)[s] for s in ("import", "deid", "chunk")] == ["ran"] * 3
    assert result.stage("import").counts["written"] == 6


def test_from_and_until(pipeline):
    first = pl.run_pipeline(pipeline, until_stage="deid")
    assert [statuses(first)[s] for s in ("import", "deid", "chunk")] == ["ran", "ran", "skipped"]
    second = pl.run_pipeline(pipeline, from_stage="deid")
    assert [statuses(second)[s] for s in ("import", "deid", "chunk")] == ["cached", "ran", "ran"]
    with pytest.raises(ConfigError, match="did you mean 'chunk'"):
        pl.run_pipeline(pipeline, from_stage="chunck")


def test_failing_stage_is_recorded_and_the_rerun_resumes_from_it(pipeline, monkeypatch, tmp_path):
    real_chunk = pl.STAGES["chunk"]
    calls = []

    def broken(ctx):
        calls.append(ctx.resume)
        raise ConfigError("tokenizer exploded")

    monkeypatch.setitem(pl.STAGES, "chunk", broken)
    with pytest.raises(DomainFMError, match="stage 'chunk' failed: tokenizer exploded"):
        pl.run_pipeline(pipeline)
    record = json.loads((tmp_path / "run" / "chunk" / "stage.json").read_text())
    assert record["status"] == "failed" and record["error"] == "tokenizer exploded"
    summary = json.loads((tmp_path / "run" / "run.json").read_text())
    assert summary["ok"] is False
    assert [s["status"] for s in summary["stages"][:3]] == ["ran", "ran", "failed"]

    with pytest.raises(DomainFMError):
        pl.run_pipeline(pipeline)
    assert calls == [False, True]  # the second run resumes the failed stage (same key)

    seen = []
    monkeypatch.setitem(pl.STAGES, "chunk", lambda ctx: seen.append(ctx.resume) or real_chunk(ctx))
    result = pl.run_pipeline(pipeline)
    assert [statuses(result)[s] for s in ("import", "deid", "chunk")] == ["cached", "cached", "ran"]
    assert seen == [True]


def test_unexpected_error_is_one_line_with_a_traceback_file(pipeline, monkeypatch, tmp_path):
    def bug(ctx):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setitem(pl.STAGES, "deid", bug)
    with pytest.raises(DomainFMError, match="ZeroDivisionError"):
        pl.run_pipeline(pipeline)
    assert "Traceback" in (tmp_path / "run" / "deid" / "error.log").read_text()


def test_downstream_stage_consumes_upstream_output_through_the_registry(pipeline, monkeypatch):
    seen = {}

    def fake_label(ctx):
        seen["inputs"] = ctx.inputs
        ctx.output.write_text("{}\n")
        return pl.StageOutput([ctx.output], {"written": 1}, {"accuracy_vs_held_back": 1.0})

    monkeypatch.setitem(pl.STAGES, "label", fake_label)
    result = pl.run_pipeline({**pipeline, "label": {"seeds_per_class": 2, "pool_size": 3}})
    assert statuses(result)["label"] == "ran"
    assert seen["inputs"][0].as_posix().endswith("run/deid/corpus.jsonl")
    again = pl.run_pipeline({**pipeline, "label": {"seeds_per_class": 2, "pool_size": 4}})
    assert [statuses(again)[s] for s in ("import", "deid", "chunk", "label")] == ["cached"] * 3 + ["ran"]


def test_training_sections_are_wired():
    cfg = pl.pipeline_from_dict({
        "run_dir": "r", "import": {"src": "x.jsonl"}, "deid": {},
        "pretrain": {"train": {"max_steps": 2}},
        "finetune": {"data": {"label_field": "label"}},
    })
    assert [str(p) for p in cfg.stages["pretrain"].data.paths] == ["r/deid/corpus.jsonl"]
    assert cfg.stages["finetune"].data.train == "r/deid/corpus.jsonl"
    assert cfg.stages["finetune"].model.name == "r/pretrain/model"
    assert cfg.stages["pretrain"].train.seed == 13
    with pytest.raises(ConfigError, match="'finetune.data.train' is set by the pipeline"):
        pl.pipeline_from_dict({"import": {"src": "x"}, "finetune": {"data": {"train": "y.jsonl"}}})


@pytest.mark.parametrize("overrides, message", [
    ({"chunk.max_tokenz": 12}, "unknown config key 'chunk.max_tokenz' (did you mean 'max_tokens'?)"),
    ({"chunck": {"max_tokens": 12}}, "unknown config key 'chunck' (did you mean 'chunk'?)"),
    ({"deid.profile": "legl"}, "did you mean 'legal'"),
    ({"import.format": "jsnl"}, "jsnl"),
])
def test_bad_keys_are_named_with_a_suggestion(pipeline, overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        pl.run_pipeline(pipeline, overrides)


def test_shipped_pipelines_validate():
    clinical = pl.load_pipeline(ROOT / "tasks" / "demo-clinical.yaml")
    assert list(clinical.stages) == ["import", "deid", "chunk", "pretrain", "finetune", "label"]
    legal = pl.load_pipeline(ROOT / "tasks" / "demo-legal.yaml")
    assert list(legal.stages) == ["import", "deid", "chunk", "label"]


def test_cli_run(cli, pipeline, tmp_path):
    import yaml

    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(pipeline))
    result = cli("run", path, "--until", "deid")
    assert result.exit_code == 0, result.output
    assert "import" in result.output and "ran" in result.output
    again = cli("run", path, "--chunk.max_tokens", "48")
    assert again.exit_code == 0, again.output
    summary = json.loads((tmp_path / "run" / "run.json").read_text())
    assert [s["status"] for s in summary["stages"][:3]] == ["cached", "cached", "ran"]
    bad = cli("run", path, "--chunk.max_tokenz", "48")
    assert bad.exit_code == 2 and "did you mean 'max_tokens'" in bad.output


def test_a_second_concurrent_run_is_refused_and_a_stale_lock_is_taken_over(pipeline, tmp_path):
    import subprocess
    import sys

    run = tmp_path / "run"
    run.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (run / pl.LOCK_FILE).write_text(str(sleeper.pid))
        with pytest.raises(DomainFMError, match="in use by another 'domainfm run'"):
            pl.run_pipeline(pipeline, until_stage="import")
    finally:
        sleeper.kill()
        sleeper.wait()
    result = pl.run_pipeline(pipeline, until_stage="import")  # the holder is gone: lock taken over
    assert statuses(result)["import"] == "ran"
    assert not (run / pl.LOCK_FILE).exists()


def test_a_killed_stage_resumes_and_training_stages_resume_only_from_checkpoints(pipeline, monkeypatch, tmp_path):
    pl.run_pipeline(pipeline)
    record_file = tmp_path / "run" / "chunk" / "stage.json"
    record = json.loads(record_file.read_text())
    record_file.write_text(json.dumps({**record, "status": "running"}))  # what a kill leaves behind
    seen = []
    monkeypatch.setitem(pl.STAGES, "chunk", lambda ctx: seen.append(ctx.resume) or pl.StageOutput([ctx.output]))
    result = pl.run_pipeline(pipeline)
    assert statuses(result)["chunk"] == "ran" and seen == [True]

    out = tmp_path / "model"
    ctx = pl.StageContext("pretrain", None, [], tmp_path, out, 13, resume=True)
    assert pl._output_mode(ctx, lambda path: []) == {"overwrite": False}
    out.mkdir()
    (out / "pretrain.yaml").write_text("{}")
    assert pl._output_mode(ctx, lambda path: []) == {"overwrite": True}
    assert pl._output_mode(ctx, lambda path: [(10, out / "checkpoints" / "checkpoint-10")]) == {"resume": True}
    ctx.resume = False  # config or inputs changed: the old checkpoints belong to another run
    assert pl._output_mode(ctx, lambda path: [(10, out)]) == {"overwrite": True}
