"""``domainfm run``: wiring, cache keys, --from/--until, failure and resume, run.json, CLI.

Real import/deid/chunk stages run on a 5-document corpus written here; the slow stages are
absent or replaced by fakes through the stage registry (``domainfm.stages.REGISTRY``), so the
file runs in seconds.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from domainfm import pipeline as pl
from domainfm.errors import ConfigError, DomainFMError
from domainfm.corpus import stage as _import_stage
from domainfm.stages import REGISTRY, StageResult
from conftest import swap_stage

ROOT = Path(__file__).resolve().parents[1]
NOTES = [
    "CHIEF COMPLAINT: chest pain. Patient John Smith, seen on 03/04/2021 at Mercy Hospital.",
    "HISTORY OF PRESENT ILLNESS: 67 year old woman with hypertension. Call 555-123-4567.",
    "ASSESSMENT AND PLAN: 1. NSTEMI - aspirin, heparin. Follow up with Dr. Alice Jones.",
    "MEDICATIONS: metformin 500 mg twice daily. The patient denies fever or cough.",
    "DISCHARGE SUMMARY: discharged home on 12/01/2020 in stable condition.",
]


def _chunk_recording_resume(monkeypatch, real_chunk) -> list[bool]:
    """Run the real chunk stage from now on, recording whether each call was told to resume."""
    seen: list[bool] = []
    swap_stage(monkeypatch, "chunk", lambda config, inputs, out, context: seen.append(context.resume)
          or real_chunk(config, inputs, out, context))
    return seen


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
                               "privacy": "skipped", "finetune": "skipped", "deid_eval": "skipped", "audit": "skipped",
                               "label": "skipped"}
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


def test_changing_the_seed_reruns_what_reads_it(pipeline, tmp_path):
    pl.run_pipeline(pipeline)
    first = (tmp_path / "run" / "deid" / "corpus.jsonl").read_text()
    for seed in (99, None):  # seed: null is the real-runs setting: surrogates from a secret, not seed 13
        result = pl.run_pipeline(pipeline, {"seed": seed})
        assert [statuses(result)[s] for s in ("import", "deid", "chunk")] == ["ran"] * 3
        manifest = json.loads((tmp_path / "run" / "deid" / "corpus.manifest.json").read_text())
        assert ("seed 99" in manifest["surrogate_key"]) == (seed == 99)
        assert (tmp_path / "run" / "deid" / "corpus.jsonl").read_text() != first


def test_an_edited_folder_a_section_names_reruns_its_stage(pipeline, tmp_path):
    from transformers import AutoTokenizer

    from domainfm.models import resolve_model

    tokenizer = tmp_path / "tok"
    AutoTokenizer.from_pretrained(resolve_model("minilm")).save_pretrained(tokenizer)
    overrides = {"chunk.tokenizer": str(tokenizer)}
    pl.run_pipeline(pipeline, overrides)
    assert statuses(pl.run_pipeline(pipeline, overrides))["chunk"] == "cached"
    config = tokenizer / "tokenizer_config.json"
    config.write_text(config.read_text().replace('"model_max_length"', '"padding_side": "right", "model_max_length"'))
    result = pl.run_pipeline(pipeline, overrides)
    assert [statuses(result)[s] for s in ("import", "deid", "chunk")] == ["cached", "cached", "ran"]
    # a vault the deid section writes is not one of its inputs: it changes with every run
    (tmp_path / "v.db").write_bytes(b"")
    wired = pl.pipeline_from_dict({**pipeline, "deid": {"vault": str(tmp_path / "v.db")}})
    assert wired.inputs["deid"] == [tmp_path / "run" / "import" / "corpus.jsonl"]


def test_the_gold_file_beside_a_physionet_source_is_an_input_of_the_import(pipeline, tmp_path):
    """`import.src: id.text` reads id-phi.phrase beside it without naming it: an edited gold file
    must re-run the import, as an edited source does."""
    notes = tmp_path / "pn"
    notes.mkdir()
    (notes / "id.text").write_text("START_OF_RECORD=1||||1||||\nSeen by Dr. Zorblax.\n||||END_OF_RECORD\n")
    (notes / "id-phi.phrase").write_text("1 1 12 19 HCPName Zorblax\n")
    wired = pl.pipeline_from_dict({**pipeline, "import": {"format": "physionet", "src": str(notes / "id.text")}})
    assert wired.inputs["import"] == [notes / "id.text", notes / "id-phi.phrase"]
    folder = pl.pipeline_from_dict({**pipeline, "import": {"format": "physionet", "src": str(notes)}})
    assert folder.inputs["import"] == [notes]  # hashed with its folder already


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


def test_a_stop_request_ends_the_run_before_the_next_stage_and_the_rerun_resumes(pipeline, monkeypatch):
    """``domainfm run`` passes the CLI's check for a termination a finaliser swallowed: the run
    stops at the next stage boundary or progress update instead of writing every stage."""
    real_import = REGISTRY["import"].runner()
    stop = []
    swap_stage(monkeypatch, "import", lambda config, inputs, out, context: (
        real_import(config, inputs, out, context), stop.append(True))[0])

    def check_stop():
        if stop:
            raise SystemExit(143)

    with pytest.raises(SystemExit):
        pl.run_pipeline(pipeline, check_stop=check_stop)
    run_dir = Path(pipeline["run_dir"])
    assert json.loads((run_dir / "import" / "stage.json").read_text())["status"] == "done"
    assert not (run_dir / "deid" / "stage.json").exists()
    stop.clear()
    rerun = statuses(pl.run_pipeline(pipeline))
    assert [rerun[s] for s in ("import", "deid", "chunk")] == ["cached", "ran", "ran"]


def test_a_stage_warning_reaches_the_run_console_and_stage_json(pipeline, corpus):
    """deid's warning that ids still hold an identifier of their text was printed by ``domainfm
    deid`` only; ``domainfm run`` showed nothing."""
    from io import StringIO

    from rich.console import Console

    rows = [json.loads(line) for line in corpus.read_text().splitlines()]
    rows[0].update(id="MRN-88123456", text=rows[0]["text"] + " MRN 88123456.")
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    shown = StringIO()
    pl.run_pipeline(pipeline, until_stage="deid", console=Console(file=shown, width=200))
    record = json.loads((Path(pipeline["run_dir"]) / "deid" / "stage.json").read_text())
    assert record["warnings"] == ["identifiers found in the text are still outside it: id in 1 record "
                                  "(--pseudonymize-ids)"]
    assert "deid: warning: identifiers found in the text are still outside it" in shown.getvalue()
    assert "88123456" not in shown.getvalue() and "88123456" not in json.dumps(record)


def test_a_failure_reason_that_looks_like_console_markup_is_printed_as_written(pipeline, tmp_path):
    """The summary table read a failed stage's reason as rich markup: an input named "[/red]"
    raised MarkupError instead of the run's error."""
    from io import StringIO

    from rich.console import Console

    pipeline["import"]["src"] = str(tmp_path / "[/red]" / "notes.jsonl")
    shown = StringIO()
    with pytest.raises(DomainFMError, match="failed"):
        pl.run_pipeline(pipeline, console=Console(file=shown, width=300))
    assert "[/red]" in shown.getvalue()


def test_failing_stage_is_recorded_and_the_rerun_resumes_from_it(pipeline, monkeypatch, tmp_path):
    real_chunk = REGISTRY["chunk"].runner()
    calls = []

    def broken(config, inputs, out, context):
        calls.append(context.resume)
        raise ConfigError("tokenizer exploded")

    swap_stage(monkeypatch, "chunk", broken)
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

    seen = _chunk_recording_resume(monkeypatch, real_chunk)
    result = pl.run_pipeline(pipeline)
    assert [statuses(result)[s] for s in ("import", "deid", "chunk")] == ["cached", "cached", "ran"]
    assert seen == [True]


def test_unexpected_error_is_one_line_with_a_traceback_file(pipeline, monkeypatch, tmp_path):
    def bug(config, inputs, out, context):
        raise ZeroDivisionError("division by zero")

    swap_stage(monkeypatch, "deid", bug)
    with pytest.raises(DomainFMError, match="ZeroDivisionError"):
        pl.run_pipeline(pipeline)
    assert "Traceback" in (tmp_path / "run" / "deid" / "error.log").read_text()


def test_downstream_stage_consumes_upstream_output_through_the_registry(pipeline, monkeypatch):
    seen = {}

    def fake_label(config, inputs, out, context):
        seen["inputs"] = inputs
        out.write_text("{}\n")
        return StageResult([out], {"written": 1}, {"expected_accuracy": 1.0})

    swap_stage(monkeypatch, "label", fake_label)
    result = pl.run_pipeline({**pipeline, "label": {"exports": ["labelstudio"]}})
    assert statuses(result)["label"] == "ran"
    assert seen["inputs"][0].as_posix().endswith("run/deid/corpus.jsonl")
    again = pl.run_pipeline({**pipeline, "label": {"exports": ["prodigy"]}})
    assert [statuses(again)[s] for s in ("import", "deid", "chunk", "label")] == ["cached"] * 3 + ["ran"]


def test_label_stage_suggests_labels_for_the_documents_without_one(tmp_path):
    """The seeds are the documents that carry a label, the pool the ones that do not (a real pool:
    nothing is hidden or scored); the old evaluation keys are refused with directions."""
    from domainfm.corpus import read_documents

    topics = {"cardio": "chest pain troponin angiogram stent", "renal": "creatinine dialysis kidney nephrology"}
    rows = []
    for i in range(16):
        topic = "cardio" if i % 2 else "renal"
        rows.append({"id": f"d{i}", "text": f"Note {i}: {topics[topic]} follow-up.", **({"label": topic} if i < 10 else {})})
    notes = tmp_path / "notes.jsonl"
    notes.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    run = pl.run_pipeline({"run_dir": str(tmp_path / "run"), "seed": 13, "import": {"format": "jsonl", "src": str(notes)},
                           "label": {"exports": ["labelstudio"]}})
    label = next(s for s in run.stages if s.name == "label")
    assert label.status == "ran" and label.counts == {"read": 6, "written": 6, "rejected": 0}
    suggested = {d.id: d.meta["suggestion"]["label"] for d in read_documents(tmp_path / "run" / "label" / "suggestions.jsonl")}
    assert set(suggested) == {f"d{i}" for i in range(10, 16)}
    assert (tmp_path / "run" / "label" / "suggestions.labelstudio.json").is_file()
    with pytest.raises(ConfigError, match="'label.seeds_per_class' is retired: the label stage now suggests labels for a real pool"):
        pl.pipeline_from_dict({"import": {"src": "x"}, "label": {"seeds_per_class": 8}})
    labelled_only = tmp_path / "labelled.jsonl"
    labelled_only.write_text("".join(json.dumps(r) + "\n" for r in rows[:10]), encoding="utf-8")
    with pytest.raises(DomainFMError, match="nothing to suggest for; give label.pool"):
        pl.run_pipeline({"run_dir": str(tmp_path / "run2"), "import": {"format": "jsonl", "src": str(labelled_only)},
                         "label": {}})


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


def test_an_import_source_inside_the_run_dir_is_refused(pipeline, tmp_path):
    pl.run_pipeline(pipeline)
    for src in ("run/deid/corpus.jsonl", "run/import/corpus.jsonl"):
        with pytest.raises(ConfigError, match="'import.src' .* is inside a stage folder of the pipeline's run_dir"):
            pl.run_pipeline(pipeline, {"import.src": str(tmp_path / src)})
    (tmp_path / "run" / "notes.jsonl").write_bytes((tmp_path / "notes.jsonl").read_bytes())  # beside them is fine
    assert pl.run_pipeline(pipeline, {"import.src": str(tmp_path / "run" / "notes.jsonl")}).ok


def test_run_dir_must_be_a_path():
    with pytest.raises(ConfigError, match="'run_dir' must be a folder path \\(a string\\), got an integer"):
        pl.pipeline_from_dict({"run_dir": 5, "import": {"src": "x"}})


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
    assert list(clinical.stages) == ["import", "deid", "chunk", "pretrain", "finetune", "audit"]
    legal = pl.load_pipeline(ROOT / "tasks" / "demo-legal.yaml")
    assert list(legal.stages) == ["import", "deid", "chunk"]
    from domainfm.config import read_yaml
    from domainfm.demo import PIPELINE_FILES, demo_pipeline
    from domainfm.resources import packaged_task

    for name, file in PIPELINE_FILES.items():  # the checkout's tasks/ file is the packaged one
        assert (ROOT / "tasks" / file).resolve() == packaged_task(file).resolve(), file
        assert demo_pipeline(name) == read_yaml(packaged_task(file))
    for name in ("mtsamples-pipeline.yaml", "unfair-tos-pipeline.yaml"):
        real = pl.load_pipeline(ROOT / "tasks" / name)
        assert {"import", "deid", "finetune", "audit"} <= set(real.stages), name


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
    holder = ("import sys, time\nfrom domainfm.corpus.io import OutputLock\n"
              "with OutputLock(sys.argv[1], lock_file=sys.argv[2]):\n    print('LOCKED', flush=True)\n    time.sleep(60)\n")
    sleeper = subprocess.Popen([sys.executable, "-c", holder, str(run), str(run / pl.LOCK_FILE)],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert sleeper.stdout.readline().strip() == "LOCKED"
        with pytest.raises(DomainFMError, match="being written by another 'domainfm run'"):
            pl.run_pipeline(pipeline, until_stage="import")
    finally:
        sleeper.kill()  # SIGKILL: the lock file stays behind, the kernel frees the lock
        sleeper.wait()
    assert (run / pl.LOCK_FILE).exists()
    result = pl.run_pipeline(pipeline, until_stage="import")  # the holder is gone: lock taken over
    assert statuses(result)["import"] == "ran"
    assert not (run / pl.LOCK_FILE).exists()


def test_a_killed_stage_resumes_and_training_stages_resume_only_from_checkpoints(pipeline, monkeypatch, tmp_path):
    pl.run_pipeline(pipeline)
    record_file = tmp_path / "run" / "chunk" / "stage.json"
    record = json.loads(record_file.read_text())
    record_file.write_text(json.dumps({**record, "status": "running"}))  # what a kill leaves behind
    seen = []
    swap_stage(monkeypatch, "chunk", lambda config, inputs, out, context: seen.append(context.resume) or StageResult([out]))
    result = pl.run_pipeline(pipeline)
    assert statuses(result)["chunk"] == "ran" and seen == [True]

    from domainfm.training.launch import output_mode

    out = tmp_path / "model"
    assert output_mode(out, True, lambda path: []) == {"overwrite": False}
    out.mkdir()
    (out / "pretrain.yaml").write_text("{}")
    assert output_mode(out, True, lambda path: []) == {"overwrite": True}
    assert output_mode(out, True, lambda path: [(10, out / "checkpoints" / "checkpoint-10")]) == {"resume": True}
    # config or inputs changed (no resume): the old checkpoints belong to another run
    assert output_mode(out, False, lambda path: [(10, out)]) == {"overwrite": True}


# ------------------------------------------------------------------ audit stage, tiny finetune

# Made-up notes: two note types, with sex and age for the audit's groups (one note lacks both:
# the explicit "unknown" group).
CARDIO = ["chest pain on exertion, troponin negative", "palpitations and atrial fibrillation on ECG",
          "shortness of breath, reduced ejection fraction", "hypertension follow up, amlodipine"]
ORTHO = ["knee pain after a fall, x-ray shows no fracture", "lower back pain radiating to the leg",
         "shoulder stiffness, rotator cuff tear on MRI", "ankle sprain, weight bearing as tolerated"]


@pytest.fixture()
def labelled(tmp_path):
    path = tmp_path / "labelled.jsonl"
    rows = []
    for i in range(40):
        kind, texts = ("cardiology", CARDIO) if i % 2 else ("orthopedics", ORTHO)
        meta = {} if i == 0 else {"sex": "female" if i % 4 < 2 else "male", "age": 20 + (i * 7) % 70}
        rows.append({"id": f"d{i}", "text": f"Note {i}: {texts[i % 4]}.", "label": kind, "meta": meta})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture()
def audited(tmp_path, labelled, tiny_model_dir):
    return {
        "run_dir": str(tmp_path / "run"),
        "seed": 13,
        "import": {"format": "jsonl", "src": str(labelled)},
        "finetune": {
            "model": {"name": str(tiny_model_dir), "max_length": 32},
            "data": {"eval_fraction": 0.5},
            "lora": {"r": 4, "lora_alpha": 8, "target_modules": ["query", "value"]},
            "long_documents": {"strategy": "truncate"},
            "train": {"lr": 5e-3, "max_steps": 2, "batch_size": 8, "checkpoint": False},
            "allow_identified_data": True,
        },
        "audit": {"group_by": ["meta.sex", "meta.age_band"], "n_bootstrap": 20, "counterfactuals": [],
                  "min_group_size": 5},
    }


def test_audit_stage_reports_on_the_held_out_split_and_reruns_alone(audited, tmp_path):
    first = pl.run_pipeline(audited)
    assert [statuses(first)[s] for s in ("import", "finetune", "audit")] == ["ran"] * 3
    out = tmp_path / "run" / "audit"
    for name in ("index.html", "report.json", "model_card.md"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    held_out = first.stage("finetune").counts["eval_documents"]
    assert 0 < held_out < 40
    assert report["data"]["n_documents"] == held_out == first.stage("audit").counts["documents"]
    metrics = first.stage("audit").metrics
    assert metrics["accuracy"] == pytest.approx(report["performance"]["overall"]["accuracy"], abs=1e-4)
    assert "accuracy_gap_sex" in metrics and "ece" in metrics
    summary = json.loads((tmp_path / "run" / "run.json").read_text())
    assert next(s for s in summary["stages"] if s["name"] == "audit")["metrics"] == metrics

    again = pl.run_pipeline(audited, {"audit.n_bootstrap": 30})
    assert statuses(again) == {"import": "cached", "deid": "skipped", "chunk": "skipped", "pretrain": "skipped",
                               "privacy": "skipped", "finetune": "cached", "deid_eval": "skipped", "audit": "ran", "label": "skipped"}
    assert json.loads((out / "report.json").read_text())["config"]["n_bootstrap"] == 30
    in_sample = pl.run_pipeline(audited, {"audit.data": "all"})
    assert in_sample.stage("audit").counts["documents"] == 40
    groups = json.loads((out / "report.json").read_text())["data"]["attributes"]["meta.sex"]["groups"]
    assert groups["unknown"] == 1  # d0 has no sex: an explicit group, not dropped
    assert pl.run_pipeline(audited, {"audit.data": "all"}).stage("audit").status == "cached"


@pytest.mark.slow
def test_training_stages_under_a_launcher_match_the_in_process_run(audited, tmp_path):
    """``launch:`` runs finetune as ``<launch> -m domainfm finetune CONFIG -o OUT`` (here plain
    python: one process; ``accelerate launch --num_processes N`` in production)."""
    import sys

    in_process = pl.run_pipeline(audited, until_stage="finetune")
    launched = pl.run_pipeline({**audited, "run_dir": str(tmp_path / "launched"), "launch": [sys.executable]},
                               until_stage="finetune")
    assert launched.stage("finetune").status == "ran"
    assert launched.stage("finetune").metrics == in_process.stage("finetune").metrics  # same seed, same model
    assert launched.stage("finetune").counts == in_process.stage("finetune").counts
    command = (tmp_path / "launched" / "finetune" / "command.txt").read_text()
    assert command.startswith(sys.executable) and "-m domainfm finetune" in command
    with pytest.raises(ConfigError, match="'launch' must be a command"):
        pl.pipeline_from_dict({**audited, "launch": []})
    assert pl.pipeline_from_dict({**audited, "launch": "accelerate launch --num_processes 2"}).launch == [
        "accelerate", "launch", "--num_processes", "2"]


def test_audit_section_errors(audited):
    with pytest.raises(ConfigError, match="add a 'finetune' section"):
        pl.pipeline_from_dict({k: v for k, v in audited.items() if k != "finetune"})
    with pytest.raises(ConfigError, match="did you mean 'n_bootstrap'"):
        pl.pipeline_from_dict({**audited, "audit": {"n_bootstrapp": 10}})
    with pytest.raises(ConfigError, match="n_bootstrap"):
        pl.pipeline_from_dict({**audited, "audit": {"n_bootstrap": -1}})
    with pytest.raises(ConfigError, match="'audit.data' must be one of"):
        pl.pipeline_from_dict({**audited, "audit": {"data": "test"}})
    cfg = pl.pipeline_from_dict(audited)
    assert [p.name for p in cfg.inputs["audit"]] == ["model", "corpus.jsonl"]


def test_import_joins_attributes_and_caps_documents(tmp_path, labelled):
    table = tmp_path / "attrs.csv"
    table.write_text("note,gender,age\n1,female,34\n2,,71.0\n99,male,50\n", encoding="utf-8")
    run = {"run_dir": str(tmp_path / "run"),
           "import": {"format": "jsonl", "src": str(labelled), "max_documents": 3,
                      "meta_join": {"src": str(table), "key_col": "note", "id_format": "d{}",
                                    "columns": {"gender": "sex", "age": "age"}}}}
    result = pl.run_pipeline(run)
    counts = result.stage("import").counts
    assert {k: counts[k] for k in ("read", "written", "rejected", "kept")} == {"read": 40, "written": 40,
                                                                           "rejected": 0, "kept": 3}
    docs = [json.loads(line) for line in (tmp_path / "run" / "import" / "corpus.jsonl").read_text().splitlines()]
    ids = [int(d["id"][1:]) for d in docs]
    assert ids == sorted(ids) and ids != [0, 1, 2]  # a seeded sample in input order, not the first three
    assert _import_stage._sample(range(40), 3, 13) == _import_stage._sample(range(40), 3, 13) != _import_stage._sample(range(40), 3, 14)

    everything = {**run, "import": {**run["import"], "max_documents": None}}
    full = pl.run_pipeline(everything)
    assert full.stage("import").counts["with_joined_meta"] == 2
    docs = [json.loads(line) for line in (tmp_path / "run" / "import" / "corpus.jsonl").read_text().splitlines()]
    assert docs[0]["meta"] == {} and docs[1]["meta"]["sex"] == "female" and docs[1]["meta"]["age"] == 34
    assert docs[2]["meta"]["age"] == 71 and docs[2]["meta"]["sex"] == "male"  # empty cell keeps the old value
    manifest = json.loads((tmp_path / "run" / "import" / "corpus.manifest.json").read_text())
    assert manifest["counts"]["kept"] == 40 and len(manifest["inputs"]) == 2
    with table.open("a", encoding="utf-8") as fh:
        fh.write("3,female,40\n4,male,NaN\n")
    assert pl.run_pipeline(everything).stage("import").status == "ran"  # the table is an input of the stage
    docs = [json.loads(line) for line in (tmp_path / "run" / "import" / "corpus.jsonl").read_text().splitlines()]
    assert docs[4]["meta"]["age"] == "NaN"  # kept as written: NaN is not a JSON number
    bad = {**run["import"], "meta_join": {**run["import"]["meta_join"], "key_col": "nte"}}
    with pytest.raises(DomainFMError, match="no column 'nte'.*did you mean 'note'"):
        pl.run_pipeline({**run, "import": bad})


# ------------------------------------------------------------------------------------ the demo


def test_demo_runs_the_shipped_pipelines_and_copies_the_audit_report(tmp_path, monkeypatch):
    """Small generated corpora, the real import, fakes for the other stages (tested above); the
    fake de-identification finds exactly the gold PHI, so the demo's gold scoring must say 1.0."""
    from rich.console import Console

    from domainfm.demo import run_demo
    from domainfm.synth import write_sample_corpora

    write_sample_corpora(tmp_path / "corpora", seed=13, n_clinical=16, n_legal=6)
    ran = []

    def fake(name, config, inputs, out, context):
        ran.append(name)
        target = out.parent if name == "audit" else out
        if name == "deid":
            rows = [json.loads(line) for line in inputs[0].read_text().splitlines()]
            found = [[{**span, "label": "NAME"} for span in r["spans"]] for r in rows]  # a canonical label
            out.write_text("".join(json.dumps({**r, "phi_spans": f}) + "\n" for r, f in zip(rows, found)))
            return StageResult([out], {"written": len(rows)})
        if name in ("pretrain", "finetune"):
            target.mkdir(parents=True, exist_ok=True)
            (target / "weights.bin").write_text(name)
            return StageResult([target], {"steps": 1})
        if name == "audit":
            report = {"summary": [{"text": "Overall accuracy is 50.0% on 4 documents."}]}
            (target / "report.json").write_text(json.dumps(report))
            for name in ("index.html", "model_card.md"):
                (target / name).write_text(name)
            (target / "manifest.json").write_text(json.dumps({"stage": "audit"}))  # as every audit writes one
            return StageResult([target / "index.html"], {"documents": 4}, {"accuracy": 0.5})
        target.write_text("{}\n")
        return StageResult([target], {"written": 1})

    for stage in ("deid", "chunk", "pretrain", "finetune", "audit"):
        swap_stage(monkeypatch, stage, functools.partial(fake, stage))
    drawn = []

    def fake_label_demo(corpus, out, *, seeds_per_class, pool_size, seed, console):
        drawn.append((Path(corpus).parent.parent.name, seeds_per_class, pool_size))
        return {"out": str(out), "exports": [], "counts": {"written": pool_size}, "accuracy_vs_held_back": 1.0}

    import domainfm.label

    monkeypatch.setattr(domainfm.label, "run_label_demo", fake_label_demo)
    console = Console(record=True, width=120)
    summary = run_demo(out=tmp_path / "out", corpora=tmp_path / "corpora", console=console,
                       report_dir=tmp_path / "reports" / "demo")
    assert ran == ["deid", "chunk", "pretrain", "finetune", "audit", "deid", "chunk"]
    assert drawn == [("clinical", 8, 120), ("legal", 4, 40)]  # the evaluation draw runs on the deid output
    clinical, legal = summary["pipelines"]["clinical"], summary["pipelines"]["legal"]
    assert list(clinical["stages"]) == ["import", "deid", "chunk", "pretrain", "finetune", "audit"]
    assert list(legal["stages"]) == ["import", "deid", "chunk"]
    assert clinical["label"]["accuracy_vs_held_back"] == 1.0
    assert clinical["stages"]["import"]["counts"]["written"] == 16
    assert clinical["deid_vs_gold"]["any_overlap"]["recall"] == 1.0
    assert legal["deid_vs_gold"]["any_overlap"]["recall"] == 1.0
    for name in ("index.html", "report.json", "model_card.md"):
        assert (tmp_path / "reports" / "demo" / name).is_file()
    assert json.loads((tmp_path / "out" / "demo.json").read_text()) == summary
    shown = console.export_text()
    assert "Overall accuracy is 50.0%" in shown and str(tmp_path / "reports" / "demo" / "index.html") in shown
    corpus = [json.loads(line) for line in (tmp_path / "corpora" / "clinical" / "notes.jsonl").read_text().splitlines()]
    assert not any(doc["text"][:40] in shown for doc in corpus)  # counts and scores, no document text

    again = run_demo(out=tmp_path / "out", corpora=tmp_path / "corpora", console=Console(record=True),
                     report_dir=None)
    assert {s["status"] for p in again["pipelines"].values() for s in p["stages"].values()} == {"cached"}
    assert len(ran) == 7


def test_site_recipe_trains_scores_rules_vs_model_on_held_out_patients_and_the_model_deidentifies(
        tmp_path, clinical_corpus, tiny_model_dir, cli):
    """tasks/deid-site.yaml as shipped, on 16 synthetic annotated notes with a tiny model: import ->
    finetune (labels mapped, patients split) -> deid_eval (rules vs rules + model on the held-out
    patients, every gold type) -> the model works with `domainfm deid --ner-model`."""
    from domainfm.config import read_yaml
    from domainfm.corpus import read_documents, write_documents

    notes = tmp_path / "site.jsonl"
    write_documents(notes, list(read_documents(clinical_corpus))[:16])
    recipe = read_yaml(ROOT / "tasks" / "deid-site.yaml")
    overrides = {"run_dir": str(tmp_path / "run"), "import.format": "jsonl", "import.src": str(notes),
                 "finetune.model.name": str(tiny_model_dir), "finetune.model.max_length": 64,
                 "finetune.long_documents.overlap": 8, "finetune.data.eval_fraction": 0.3,
                 "finetune.labels.map": {"PATIENT": "NAME", "DOCTOR": "NAME", "RELATIVE": "NAME",
                                         "DATE": "DATE", "HOSPITAL": "LOCATION", "CITY": "LOCATION"},
                 "finetune.train.max_steps": 2, "finetune.train.batch_size": 8,
                 "deid_eval.dataset": "synthetic-clinical"}
    result = pl.run_pipeline(recipe, overrides)
    assert statuses(result)["deid_eval"] == "ran" and statuses(result)["deid"] == "skipped"
    report = json.loads((tmp_path / "run" / "deid_eval" / "report.json").read_text())
    model = tmp_path / "run" / "finetune" / "model"
    info = json.loads((model / "domainfm_task.json").read_text())
    assert info["labels"] == ["NAME", "DATE", "LOCATION"]
    assert 0 < report["held_out"]["documents"] == result.stage("deid_eval").counts["documents"] < 16
    assert report["held_out"]["split_key"] == "meta.patient_id"
    assert 0 < report["held_out"]["patients"] < len({d.meta["patient_id"] for d in read_documents(notes)})
    for name in ("rules", "rules_and_model"):
        # scored against every gold type of the held-out notes (phones, MRNs...), not only the trained ones
        assert report[name]["gold"] > 0 and "PHONE" in report[name]["recall_by_type"]
        assert 0 <= report[name]["recall"] <= 1
        spread = report[name]["interval_90"]  # resampling the held-out patients
        assert spread["unit"] == "patient" and spread["units"] == report["held_out"]["patients"]
        assert spread["recall"][0] <= report[name]["recall"] <= spread["recall"][1]
    assert report["rules_and_model"]["recall"] >= report["rules"]["recall"]  # a union: never fewer spans
    assert result.stage("deid_eval").metrics["recall_rules"] == round(report["rules"]["recall"], 4)
    assert str(model) in report["use"] and "--ner-quantize auto" in report["use"]  # the recipe's setting
    # the learned-span floors scored on the held-out patients (exactness: test_deid_learned.py)
    rows = report["rules_and_model_by_threshold"]
    assert [r["ner_threshold"] for r in rows] == [0.3, 0.5, 0.7, 0.8, 0.9]
    best = report["recommended_ner_threshold"]
    # a higher floor loses recall with the rules or for the model alone (the model's own spans)
    assert all(r["recall"] < rows[0]["recall"] or r["model_alone_recall"] < rows[0]["model_alone_recall"]
               for r in rows if r["ner_threshold"] > best)
    assert 0 <= report["model_alone_recall"] <= 1
    assert (f"--ner-threshold {best:g}" in report["use"]) == (best != 0.3)
    # unchanged: cached; the model is what `domainfm deid --ner-model` takes
    assert statuses(pl.run_pipeline(recipe, overrides))["deid_eval"] == "cached"
    out = cli("deid", notes, "-o", tmp_path / "deid.jsonl", "--ner-model", model, "--operator", "tag")
    assert out.exit_code == 0, out.output


def test_site_recipe_errors():
    base = {"run_dir": "r", "import": {"src": "x.jsonl"}, "finetune": {"task": "ner"}, "deid_eval": {}}
    assert pl.pipeline_from_dict(base).inputs["deid_eval"] == [Path("r/finetune/model"), Path("r/import/corpus.jsonl")]
    with pytest.raises(ConfigError, match="'deid_eval.ner_model' is set by the pipeline"):
        pl.pipeline_from_dict({**base, "deid_eval": {"ner_model": "m"}})
    with pytest.raises(ConfigError, match="needs a 'finetune' section.*and no 'deid' section"):
        pl.pipeline_from_dict({**base, "deid": {}})
    with pytest.raises(ConfigError, match="needs a NER model"):
        pl.pipeline_from_dict({**base, "finetune": {"task": "classification"}})
    with pytest.raises(ConfigError, match="unknown label dataset 'physionett'"):
        pl.pipeline_from_dict({**base, "deid_eval": {"dataset": "physionett"}})
    with pytest.raises(ConfigError, match="labels.map renames span labels"):
        pl.pipeline_from_dict({**base, "finetune": {"task": "classification", "labels": {"map": {"a": "b"}}}})
    site = pl.load_pipeline(ROOT / "tasks" / "deid-site.yaml", {"import.src": "elsewhere"})
    assert list(site.stages) == ["import", "finetune", "deid_eval"] and str(site.stages["import"].src) == "elsewhere"


def test_a_code_or_library_change_reruns_a_finished_stage(pipeline, monkeypatch):
    # The version string stays the same through development: a cached de-id result computed by
    # older rules must not be reused once the code that computes it has changed.
    import domainfm.manifest as manifest

    pl.run_pipeline(pipeline)
    assert [statuses(pl.run_pipeline(pipeline))[s] for s in ("import", "deid", "chunk")] == ["cached"] * 3
    monkeypatch.setattr(manifest, "code_fingerprint", lambda: "0" * 64)
    result = pl.run_pipeline(pipeline)
    assert [statuses(result)[s] for s in ("import", "deid", "chunk")] == ["ran"] * 3
    record = json.loads((Path(pipeline["run_dir"]) / "deid" / "stage.json").read_text())
    assert record["code"] == "0" * 64
    assert [statuses(pl.run_pipeline(pipeline))[s] for s in ("import", "deid", "chunk")] == ["cached"] * 3


def test_source_fingerprint_follows_files_and_versions_but_not_bytecode(tmp_path):
    from domainfm.manifest import code_fingerprint, source_fingerprint

    (tmp_path / "rules.py").write_text("SCORE = 0.45\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "rules.cpython-311.pyc").write_bytes(b"\0")
    before = source_fingerprint(tmp_path, {"spacy": "3.8.18"})
    (tmp_path / "__pycache__" / "rules.cpython-311.pyc").write_bytes(b"\1")
    assert source_fingerprint(tmp_path, {"spacy": "3.8.18"}) == before
    assert source_fingerprint(tmp_path, {"spacy": "3.8.19"}) != before
    (tmp_path / "rules.py").write_text("SCORE = 0.5\n")
    assert source_fingerprint(tmp_path, {"spacy": "3.8.18"}) != before
    assert len(code_fingerprint()) == 64


def test_a_failed_stage_still_resumes_after_a_code_change(pipeline, monkeypatch):
    # The usual fix for a crash is new code; its checkpoints stay usable, so the failed stage resumes.
    import domainfm.manifest as manifest

    real_chunk = REGISTRY["chunk"].runner()
    swap_stage(monkeypatch, "chunk", lambda config, inputs, out, context: (_ for _ in ()).throw(ConfigError("crash")))
    with pytest.raises(DomainFMError):
        pl.run_pipeline(pipeline)
    monkeypatch.setattr(manifest, "code_fingerprint", lambda: "1" * 64)
    seen = _chunk_recording_resume(monkeypatch, real_chunk)
    result = pl.run_pipeline(pipeline)
    assert [statuses(result)[s] for s in ("import", "deid", "chunk")] == ["ran", "ran", "ran"]
    assert seen == [True]
