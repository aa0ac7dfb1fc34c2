"""``domainfm run``: errors a pipeline user acts on. An import that writes no document stops the
run (counts and the reject file, no record text), and errors a stage shares with its command name
the pipeline's keys (``chunk.overlap``, ``run_dir``), not the command's flags.

Made-up notes only; the real import and chunk stages run on four of them, in seconds.
"""

from __future__ import annotations

import json

import pytest

from domainfm import pipeline as pl
from domainfm.errors import ConfigError, DomainFMError

NOTES = [
    "Zorblax Quintavius seen on 03/14/2021 for chest pain.",
    "Quilvena Marblecoat reports knee pain after a fall.",
    "Brannoc Thrandle follow-up: metformin 500 mg daily.",
    "Hesperus Wobblethorne discharged home in stable condition.",
]


@pytest.fixture()
def notes(tmp_path):
    path = tmp_path / "notes.jsonl"
    path.write_text("".join(json.dumps({"id": f"z{i}", "text": t}) + "\n" for i, t in enumerate(NOTES)),
                    encoding="utf-8")
    return path


@pytest.fixture()
def pipeline(tmp_path, notes):
    return {"run_dir": str(tmp_path / "run"), "seed": 13, "import": {"format": "jsonl", "src": str(notes)},
            "chunk": {"tokenizer": "minilm", "max_tokens": 64, "overlap": 8}}


@pytest.mark.parametrize("case, counts, why", [
    ("every record rejected", "read 4 = written 0 + rejected 4",
     "reasons: has a 'text' field but the text is read from 'body': 4"),
    ("an empty source", "read 0 = written 0 + rejected 0", "its input holds none"),
])
def test_an_import_that_writes_no_document_stops_the_run(cli, pipeline, tmp_path, case, counts, why):
    import yaml

    if case == "an empty source":
        (tmp_path / "empty.jsonl").write_text("")
        pipeline["import"]["src"] = str(tmp_path / "empty.jsonl")
    else:
        pipeline["import"]["options"] = {"text_key": "body"}  # the notes hold 'text'
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(pipeline))
    result = cli("run", path)
    assert result.exit_code == 2, result.output
    error = result.output[result.output.index("error: "):]
    assert error.startswith("error: stage 'import' failed: wrote no records") and counts in error and why in error
    rejects = tmp_path / "run" / "import" / "corpus.rejects.jsonl"
    assert (str(rejects) in " ".join(error.split())) == (case == "every record rejected")
    assert not any(name in result.output for note in NOTES for name in note.split()[:2])  # no record text
    summary = json.loads((tmp_path / "run" / "run.json").read_text())
    stages = {s["name"]: s for s in summary["stages"]}
    assert summary["ok"] is False and stages["chunk"]["status"] == "not run"
    assert stages["import"]["status"] == "failed" and stages["import"]["counts"]["written"] == 0
    assert not (tmp_path / "run" / "chunk").exists()
    record = json.loads((tmp_path / "run" / "import" / "stage.json").read_text())
    assert record["status"] == "failed" and counts in record["error"]
    # a rejected record is kept, with its reason, for the user to fix the source or the options
    if case == "every record rejected":
        assert len(rejects.read_text().splitlines()) == 4
        fixed = pl.run_pipeline(pipeline, {"import.options": {}})
        assert fixed.ok and fixed.stage("import").counts["written"] == 4


def test_the_import_command_keeps_its_output_and_warns_when_it_writes_no_document(cli, notes, tmp_path):
    """Alone, an import is a conversion: the empty corpus, the rejects and exit 0, with a warning."""
    result = cli("import", "jsonl", notes, "-o", tmp_path / "out.jsonl", "--text-key", "body")
    assert result.exit_code == 0, result.output
    assert "read 4 = written 0 + rejected 4" in result.output
    assert "warning: no document was written: every record was rejected" in result.output
    assert (tmp_path / "out.jsonl").read_text() == "" and (tmp_path / "out.rejects.jsonl").is_file()
    fine = cli("import", "jsonl", notes, "-o", tmp_path / "fine.jsonl")
    assert fine.exit_code == 0 and "warning" not in fine.output


def test_errors_of_a_section_name_its_pipeline_keys(pipeline):
    with pytest.raises(ConfigError) as caught:
        pl.pipeline_from_dict({**pipeline, "chunk": {"max_tokens": 64, "overlap": 100}})
    assert str(caught.value) == ("'chunk.overlap' (100) must be smaller than 'chunk.max_tokens' (64); "
                                 "try chunk.overlap: 8")
    with pytest.raises(ConfigError, match="config field 'deid.ner_label_map': unknown label map 'bogus'"):
        pl.pipeline_from_dict({**pipeline, "deid": {"ner_label_map": "bogus"}})
    with pytest.raises(ConfigError, match="The 'audit.batch_size' parameter must be an int >= 1"):
        pl.pipeline_from_dict({**pipeline, "finetune": {}, "audit": {"batch_size": 0}})
    # a message that names its keys already is left as it is (its suggestion included)
    with pytest.raises(ConfigError, match=r"unknown config key 'chunk.max_tokenz' \(did you mean 'max_tokens'\?\)"):
        pl.pipeline_from_dict({**pipeline, "chunk": {"max_tokenz": 64}})


def test_a_stage_failing_in_a_shared_check_names_the_pipeline_key(pipeline, tmp_path):
    with pytest.raises(DomainFMError) as caught:  # the tokenizer's limit is known once the stage loads it
        pl.run_pipeline(pipeline, {"chunk.max_tokens": 1000})
    message = str(caught.value)
    assert message.startswith("stage 'chunk' failed: 'chunk.max_tokens' (1000) exceeds the model's maximum")
    assert "Try chunk.max_tokens: 512" in message and "--" not in message.split(" (re-run")[0]
    (tmp_path / "run" / "chunk" / "chunks.jsonl").mkdir()  # a folder where the stage writes its file
    with pytest.raises(DomainFMError) as caught:
        pl.run_pipeline(pipeline, {"chunk.max_tokens": 64})
    message = str(caught.value)
    assert "chunks.jsonl: is a folder; the run writes a file there: move it away or choose another run_dir" in message
    assert " -o " not in message


@pytest.mark.parametrize("stage, message, expected", [
    ("import", "notes.jsonl: the output would overwrite the input; choose another -o path",
     "notes.jsonl: the output would overwrite the input; choose another run_dir"),
    ("import", "out: is a file; -o takes a folder here",
     "out: is a file; the run writes a folder there: move it away or choose another run_dir"),
    ("pretrain", "could not write checkpoint-20 (No space left on device); the last complete checkpoint "
                 "(checkpoint-10) is intact: free disk space and rerun with --resume",
     "could not write checkpoint-20 (No space left on device); the last complete checkpoint "
     "(checkpoint-10) is intact: free disk space and re-run the same command (the stage resumes from it)"),
    ("finetune", "--batch-size 0 is too small", "finetune.train.batch_size: 0 is too small"),
    ("deid", "Spark could not start (X); --engine spark needs Java 17",
     "Spark could not start (X); engine: spark needs Java 17"),
    ("chunk", "cannot reach Ray; check --ray-address / engine.ray_address",
     "cannot reach Ray; check engine.ray_address"),
    ("audit", "no group field: set --group-by to some of them",
     "no group field: set audit.group_by to some of them"),
    ("deid", "--vault: is a folder", "deid.vault: is a folder"),
    # a command to run keeps its flags; a flag the section has no setting for is left as written
    ("deid", "no such vault (written by 'domainfm deid --vault PATH')",
     "no such vault (written by 'domainfm deid --vault PATH')"),
    ("privacy", "--train: no documents", "--train: no documents"),
])
def test_command_flags_become_pipeline_keys(stage, message, expected):
    assert pl.pipeline_message(message, stage) == expected
