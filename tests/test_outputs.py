"""Outputs are never shared, never half-written: unique temporary files renamed into place, an
advisory lock per output (a second writer is refused), output-path problems as one 'error:'
line, and SIGKILL mid-write leaving the previous output intact for every writing command."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from domainfm.corpus.io import (OutputLock, JsonlWriter, atomic_file, check_output_path, remove_stale_temps,
                                temp_path_for)
from domainfm.errors import CorpusError, OutputError

ROOT = Path(__file__).resolve().parents[1]


def _env(**extra) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", **extra}


NOTES = [
    {"id": "n1", "text": "Seen by Dr. Lee on 7/22/2020 for chest pain.", "label": "cardio"},
    {"id": "n2", "text": "Patient Marta Okafor reports knee pain.", "label": "ortho"},
    {"id": "n3", "text": "Follow-up: chest pain resolved, call 555-201-3344.", "label": "cardio"},
    {"id": "n4", "text": "Knee swelling after a fall; x-ray ordered.", "label": "ortho"},
    {"id": "n5", "text": "Chest tightness on exertion, stress test planned.", "label": "cardio"},
    {"id": "n6", "text": "Knee brace fitted, physio twice a week.", "label": "ortho"},
]

# Runs the CLI in a child process that stops at a chosen point: "lines:N" after the N-th JSONL
# line, "files:N" inside the N-th atomically written file; then prints STOPPED and either
# sleeps (to be SIGKILLed) or, with $RESUME_FILE, waits for that file and carries on.
HARNESS = r'''
import os, sys, time
from contextlib import contextmanager
from domainfm.corpus import io

mode, n = os.environ["STOP_AT"].split(":")
n, count = int(n), [0]

def stop():
    print("STOPPED", flush=True)
    resume = os.environ.get("RESUME_FILE")
    deadline = time.time() + 120
    while time.time() < deadline and not (resume and os.path.exists(resume)):
        time.sleep(0.05)

if mode == "lines":
    original = io.JsonlWriter.write_obj
    def write_obj(self, obj):
        original(self, obj)
        count[0] += 1
        if count[0] == n:
            self._fh.flush()
            stop()
    io.JsonlWriter.write_obj = write_obj
else:
    original_file = io.atomic_file
    @contextmanager
    def atomic_file(path, *args, **kwargs):
        with original_file(path, *args, **kwargs) as fh:
            count[0] += 1
            if count[0] == n:
                fh.write("half a file")
                fh.flush()
                stop()
            yield fh
    io.atomic_file = atomic_file
from domainfm.cli import app
app(sys.argv[1:], prog_name="domainfm")
'''


def _write(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _start(args, stop_at: str, resume: Path | None = None) -> subprocess.Popen:
    env = _env(STOP_AT=stop_at)
    if resume is not None:
        env["RESUME_FILE"] = str(resume)
    proc = subprocess.Popen([sys.executable, "-c", HARNESS, *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if line.strip() != "STOPPED":
        proc.kill()
        raise AssertionError(f"child did not reach its stop point: {line!r} {proc.communicate()[1][-2000:]}")
    return proc


def _leftovers(*folders: Path) -> list[str]:
    return sorted(p.name for f in folders for p in f.rglob("*") if p.name.endswith((".tmp", ".lock")))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------ the mechanism

def test_atomic_file_appears_only_complete_and_temporaries_are_unique(tmp_path):
    target = tmp_path / "out.jsonl"
    assert temp_path_for(target) != temp_path_for(target) and temp_path_for(target).parent == tmp_path
    with pytest.raises(RuntimeError):
        with atomic_file(target) as fh:
            fh.write("partial")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with atomic_file(target) as fh:
        fh.write("done\n")
    assert target.read_text() == "done\n" and [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_lines_that_are_not_valid_unicode_are_written_escaped(tmp_path):
    with JsonlWriter(tmp_path / "r.jsonl") as out:
        out.write_obj({"id": "\ud800", "raw": "x"})
    assert json.loads((tmp_path / "r.jsonl").read_text()) == {"id": "\ud800", "raw": "x"}


def test_a_held_output_is_refused_reentrant_and_free_again_after_release(tmp_path):
    out = tmp_path / "o.jsonl"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom domainfm.corpus.io import OutputLock\n"
         "with OutputLock(sys.argv[1]):\n    print('LOCKED', flush=True)\n    time.sleep(60)\n", str(out)],
        env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "LOCKED"
        with pytest.raises(OutputError, match=rf"o.jsonl is being written by another domainfm run \(pid {holder.pid}\)"):
            with OutputLock(out):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with OutputLock(out):
        with OutputLock(out):  # the same process may nest
            assert (tmp_path / "o.jsonl.lock").read_text() == str(os.getpid())
        assert (tmp_path / "o.jsonl.lock").exists()
    assert not (tmp_path / "o.jsonl.lock").exists()


def test_temporaries_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    out = tmp_path / "c.jsonl"
    stale = [tmp_path / f"c.jsonl.{dead_pid}.0123abcd.tmp", tmp_path / f"c.rejects.jsonl.{dead_pid}.0123abcd.tmp",
             tmp_path / f"c.manifest.json.{dead_pid}.0123abcd.tmp"]
    live = tmp_path / f"c.jsonl.{os.getpid()}.0123abcd.tmp"
    other = tmp_path / f"cc.jsonl.{dead_pid}.0123abcd.tmp"  # another output's: not ours to judge
    for p in stale + [live, other]:
        p.write_text("x")
    assert remove_stale_temps(out) == 3
    assert not any(p.exists() for p in stale) and live.exists() and other.exists()



def test_a_killed_engine_jobs_work_folder_is_removed_by_the_next_run_of_its_output(tmp_path):
    """A Spark/Ray deid killed mid-job left its staged input (the raw notes) beside the
    de-identified output under a fresh random name each time, and no later run removed it."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    out = tmp_path / "corpus.jsonl"
    stale = [tmp_path / f".corpus.jsonl.{int(dead.stdout)}.0123abcd.work", tmp_path / ".corpus.jsonl.89abcdef.work"]
    live = tmp_path / f".corpus.jsonl.{os.getpid()}.0123abcd.work"
    other = tmp_path / f".notes.jsonl.{int(dead.stdout)}.0123abcd.work"
    for folder in stale + [live, other]:
        (folder / "input").mkdir(parents=True)
        (folder / "input" / "part-00000.parquet").write_text("Patient Zorblax Quintavius")
    with OutputLock(out):
        assert not any(f.exists() for f in stale) and live.exists() and other.exists()


def test_output_paths_that_cannot_work_are_refused_up_front(tmp_path):
    src = _write(tmp_path / "in.jsonl", NOTES)
    with pytest.raises(CorpusError, match="would overwrite the input"):
        check_output_path(tmp_path / "sub" / ".." / "in.jsonl", inputs=[src])
    with pytest.raises(OutputError, match="is a folder"):
        check_output_path(tmp_path, inputs=[src])
    with pytest.raises(OutputError, match="is a file"):
        check_output_path(src, folder=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_an_error_line(cli, tmp_path):
    src = _write(tmp_path / "in.jsonl", NOTES)
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        for args in (("import", "jsonl", src, "-o", locked / "o.jsonl"), ("deid", src, "-o", locked / "o.jsonl")):
            result = cli(*args)
            assert result.exit_code == 2 and result.output.startswith("error: ") and "Traceback" not in result.output
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("command", [
    ("import", "jsonl", "{src}", "-o", "{out}"),
    ("deid", "{src}", "-o", "{out}", "--seed", "1"),
    ("chunk", "{src}", "-o", "{out}", "--tokenizer", "{tiny}", "--max-tokens", "32", "--overlap", "4"),
    ("deid", "{src}", "-o", "{tmp}/ok.jsonl", "--vault", "{out}"),
])
def test_output_path_problems_are_one_error_line_and_leave_nothing(cli, tmp_path, tiny_model_dir, command, monkeypatch):
    monkeypatch.setenv("DOMAINFM_VAULT_KEY", "k" * 40)
    src = _write(tmp_path / "in.jsonl", NOTES)
    folder = tmp_path / "existing"
    folder.mkdir()
    for out in (folder, Path("/proc/domainfm-test/o.jsonl"), src):
        args = [a.format(src=src, out=out, tiny=tiny_model_dir, tmp=tmp_path) for a in command]
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert result.output.startswith("error: ") and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1
    assert _leftovers(tmp_path) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["existing", "in.jsonl"]
    assert list(folder.iterdir()) == []


def test_chunk_and_predict_refuse_to_replace_their_input(cli, tmp_path, tiny_model_dir):
    src = _write(tmp_path / "in.jsonl", NOTES)
    before = src.read_bytes()
    result = cli("chunk", src, "-o", tmp_path / "." / "in.jsonl", "--tokenizer", tiny_model_dir)
    assert result.exit_code == 2 and "would overwrite the input" in result.output
    result = cli("predict", tiny_model_dir, src, "-o", src)
    assert result.exit_code == 2 and "would overwrite the input" in result.output
    assert src.read_bytes() == before


def test_an_input_or_vault_named_like_the_outputs_manifest_or_rejects_is_never_overwritten(cli, tmp_path,
                                                                                        tiny_model_dir, monkeypatch):
    monkeypatch.setenv("DOMAINFM_VAULT_KEY", "k" * 40)
    src = _write(tmp_path / "d.manifest.json", NOTES)  # the manifest 'chunk -o d.jsonl' would write
    before = src.read_bytes()
    result = cli("chunk", src, "-o", tmp_path / "d.jsonl", "--tokenizer", tiny_model_dir)
    assert result.exit_code == 2 and "manifest (d.manifest.json) would overwrite an input" in result.output
    assert src.read_bytes() == before and not (tmp_path / "d.jsonl").exists()
    notes = _write(tmp_path / "in.jsonl", NOTES)
    for vault in ("x.manifest.json", "x.rejects.jsonl"):  # a vault the run's own files would replace
        result = cli("deid", notes, "-o", tmp_path / "x.jsonl", "--vault", tmp_path / vault)
        assert result.exit_code == 2 and "would overwrite the input" in result.output, result.output
    assert cli("deid", notes, "-o", tmp_path / "y.jsonl", "--vault", tmp_path / "v.db").exit_code == 0
    kept = (tmp_path / "v.db").read_bytes()
    (tmp_path / "r.manifest.json").write_bytes(kept)  # a vault that happens to be named like reidentify's manifest
    result = cli("reidentify", tmp_path / "y.jsonl", "-o", tmp_path / "r.jsonl", "--vault", tmp_path / "r.manifest.json")
    assert result.exit_code == 2 and "manifest (r.manifest.json) would overwrite an input" in result.output
    assert (tmp_path / "r.manifest.json").read_bytes() == kept


def test_outputs_that_differ_after_the_last_dot_keep_their_own_manifests(tmp_path):
    from domainfm.manifest import manifest_path_for

    assert manifest_path_for(tmp_path / "c.v1") != manifest_path_for(tmp_path / "c.v2")
    assert manifest_path_for(tmp_path / "c.v1") == tmp_path / "c.v1.manifest.json"
    assert manifest_path_for(tmp_path / "corpus.jsonl") == tmp_path / "corpus.manifest.json"
    assert manifest_path_for(tmp_path / "cards.json") == tmp_path / "cards.manifest.json"


# --------------------------------------------------------------------- two processes, one output

def test_a_second_deid_on_the_same_output_or_vault_is_refused_and_the_first_is_intact(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("DOMAINFM_VAULT_KEY", "k" * 40)
    src = _write(tmp_path / "in.jsonl", NOTES * 1 + [{"id": "bad", "text": 3}])
    other = _write(tmp_path / "other.jsonl", [{**r, "id": r["id"] + "x"} for r in NOTES])
    out, vault, resume = tmp_path / "out.jsonl", tmp_path / "v.db", tmp_path / "go"
    first = _start(["deid", src, "-o", out, "--vault", vault], "lines:2", resume)
    try:
        same_out = cli("deid", other, "-o", out, "--seed", "1")
        same_vault = cli("deid", other, "-o", tmp_path / "o2.jsonl", "--vault", vault)
    finally:
        resume.write_text("")
        stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    for refused in (same_out, same_vault):
        assert refused.exit_code == 2 and "is being written by another" in refused.output, refused.output
        assert "Traceback" not in refused.output
    assert not (tmp_path / "o2.jsonl").exists()
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in lines] == [r["id"] for r in NOTES]
    manifest = json.loads((tmp_path / "out.manifest.json").read_text())
    assert manifest["counts"]["read"] == 7 and manifest["counts"]["written"] == 6 and manifest["counts"]["rejected"] == 1
    hashes = {Path(o["path"]).name: o["sha256"] for o in manifest["outputs"]}
    assert hashes["out.jsonl"] == _sha(out) and hashes["out.rejects.jsonl"] == _sha(tmp_path / "out.rejects.jsonl")
    assert _leftovers(tmp_path) == []
    restored = cli("reidentify", out, "-o", tmp_path / "back.jsonl", "--vault", vault)
    assert restored.exit_code == 0, restored.output
    assert [json.loads(x)["text"] for x in (tmp_path / "back.jsonl").read_text().splitlines()] == [r["text"] for r in NOTES]


# ------------------------------------------------------------------------ SIGKILL mid-write

def _kill_then_rerun(cli, tmp_path, first_args, second_args, outputs, stop_at):
    """Run ``first_args`` to completion, SIGKILL ``second_args`` at ``stop_at``: the first run's
    files must be byte-identical; then ``second_args`` runs to completion and leaves no
    temporary or lock file. Returns the rerun's result."""
    done = cli(*first_args)
    assert done.exit_code == 0, done.output
    before = {p: p.read_bytes() for p in outputs if p.is_file()}
    assert before, "the first run wrote nothing"
    proc = _start(second_args, stop_at)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert {p: p.read_bytes() for p in outputs if p.is_file()} == before
    rerun = cli(*second_args)
    assert rerun.exit_code == 0, rerun.output
    assert _leftovers(tmp_path) == []
    return rerun


@pytest.mark.slow
def test_sigkill_mid_write_deid_with_vault_and_chunk(cli, tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("DOMAINFM_VAULT_KEY", "v" * 40)
    a = _write(tmp_path / "a.jsonl", NOTES[:3])
    b = _write(tmp_path / "b.jsonl", NOTES + [{"id": "broken"}])
    out, vault = tmp_path / "d.jsonl", tmp_path / "vault.db"
    rerun = _kill_then_rerun(cli, tmp_path, ["deid", a, "-o", out, "--vault", vault],
                             ["deid", b, "-o", out, "--vault", vault],
                             [out, tmp_path / "d.manifest.json", vault], "lines:4")
    assert "read 7 = written 6 + rejected 1" in rerun.output
    back = cli("reidentify", out, "-o", tmp_path / "back.jsonl", "--vault", vault)
    assert back.exit_code == 0 and "read 6 = written 6 + rejected 0" in back.output  # the vault survived the kill

    chunks = tmp_path / "c.jsonl"
    args = ["--tokenizer", tiny_model_dir, "--max-tokens", "32", "--overlap", "4"]
    rerun = _kill_then_rerun(cli, tmp_path, ["chunk", a, "-o", chunks, *args], ["chunk", b, "-o", chunks, *args],
                             [chunks, tmp_path / "c.manifest.json"], "lines:3")
    assert "read 7 = written 6 + rejected 1" in rerun.output


@pytest.mark.slow
def test_sigkill_mid_write_label(cli, tmp_path, tiny_model_dir):
    seeds = _write(tmp_path / "seeds.jsonl", NOTES)
    pool_a = _write(tmp_path / "pa.jsonl", [{"id": f"p{i}", "text": f"chest pain {i}"} for i in range(3)])
    pool_b = _write(tmp_path / "pb.jsonl", [{"id": f"q{i}", "text": f"knee pain {i}"} for i in range(5)])
    out = tmp_path / "l.jsonl"
    args = ["--model", tiny_model_dir, "--lsa-dims", "0"]
    rerun = _kill_then_rerun(cli, tmp_path, ["label", "--labeled", seeds, "--pool", pool_a, "-o", out, *args],
                             ["label", "--labeled", seeds, "--pool", pool_b, "-o", out, *args],
                             [out, tmp_path / "l.manifest.json"], "lines:2")
    assert "read 5 = written 5 + rejected 0" in rerun.output


@pytest.mark.slow
def test_sigkill_mid_write_audit(cli, tmp_path, tiny_classifier_dir):
    rows = [{"id": f"a{i}", "text": f"chest pain note {i}", "label": "cardio" if i % 2 else "ortho",
             "meta": {"sex": "female" if i % 3 else "male"}} for i in range(12)]
    data_a = _write(tmp_path / "a.jsonl", rows)
    data_b = _write(tmp_path / "b.jsonl", rows[:10])
    report = tmp_path / "report"
    common = ["--group-by", "meta.sex", "--bootstrap", "20", "--counterfactuals", "", "--min-group-size", "2"]
    _kill_then_rerun(cli, tmp_path, ["audit", tiny_classifier_dir, data_a, "-o", report, *common],
                     ["audit", tiny_classifier_dir, data_b, "-o", report, *common],
                     [report / "report.json", report / "index.html", report / "model_card.md",
                      report / "manifest.json"], "files:2")
    assert json.loads((report / "report.json").read_text())["data"]["n_documents"] == 10


@pytest.fixture(scope="module")
def tiny_classifier_dir(tmp_path_factory, tiny_tokenizer, tiny_bert_config):
    """A 2-layer BERT classifier (cardio / ortho) saved as a 'domainfm finetune' full model."""
    import torch
    from transformers import BertForSequenceClassification

    labels = ["cardio", "ortho"]
    cfg = tiny_bert_config.__class__(**{**tiny_bert_config.to_dict(), "num_labels": 2,
                                        "id2label": dict(enumerate(labels)), "label2id": {l: i for i, l in enumerate(labels)}})
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny_clf")
    BertForSequenceClassification(cfg).save_pretrained(out)
    tiny_tokenizer.save_pretrained(out)
    (out / "domainfm_task.json").write_text(json.dumps({
        "task": "classification", "labels": labels, "method": "full", "merged": False,
        "base_model": {"name": "tiny", "resolved": str(out)}, "max_length": 64,
        "long_documents": {"strategy": "truncate"}, "text_field": "text", "label_field": "label"}))
    return out


def test_model_and_report_folders_take_one_writer(tmp_path):
    """pretrain, finetune and audit refuse a folder another process is writing, before they
    read or load anything."""
    from domainfm.audit import AuditConfig, audit
    from domainfm.config import from_dict
    from domainfm.finetune import TaskConfig, finetune
    from domainfm.pretrain import PretrainConfig, pretrain

    folder = tmp_path / "model"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom domainfm.corpus.io import OutputLock\n"
         "with OutputLock(sys.argv[1]):\n    print('LOCKED', flush=True)\n    time.sleep(60)\n", str(folder)],
        env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "LOCKED"
        runs = [lambda: pretrain(from_dict(PretrainConfig, {"data": {"paths": ["missing.jsonl"]}}), folder),
                lambda: finetune(from_dict(TaskConfig, {"data": {"train": "missing.jsonl"}}), folder),
                lambda: audit("missing-model", [], folder, AuditConfig())]
        for run in runs:
            with pytest.raises(OutputError, match="is being written by another domainfm run"):
                run()
    finally:
        holder.kill()
        holder.wait()
    assert not folder.exists()


def test_sigterm_mid_write_removes_the_temporary_files(cli, tmp_path):
    src = _write(tmp_path / "in.jsonl", NOTES)
    out = tmp_path / "o.jsonl"
    proc = _start(["import", "jsonl", src, "-o", out], "lines:2")
    assert any(p.name.startswith("o.jsonl.") and p.name.endswith(".tmp") for p in tmp_path.iterdir())
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    assert _leftovers(tmp_path) == [] and not out.exists()


def test_audit_output_path_problems_are_one_error_line(cli, tmp_path):
    src = _write(tmp_path / "in.jsonl", NOTES)
    for out in (src, tmp_path / "in.jsonl" / "sub", Path("/proc/domainfm-test/report")):
        result = cli("audit", tmp_path / "no-model", src, "-o", out)
        assert result.exit_code == 2 and result.output.startswith("error: ") and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


def test_reject_reasons_read_once_and_deid_eval_o_prints_one_line(cli, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "text": "Seen by Dr. Lee."}\n{"id": "b", "text": \n{"id": "c\x01"}\n')
    cli("import", "jsonl", src, "-o", tmp_path / "imp.jsonl")
    reasons = [json.loads(line)["reason"] for line in (tmp_path / "imp.rejects.jsonl").read_text().splitlines()]
    assert reasons == ["broken JSON (Expecting value at column 21)",
                       "broken JSON (Invalid control character at column 10)"]
    cli("deid", tmp_path / "imp.jsonl", "-o", tmp_path / "deid.jsonl", "--seed", "1")
    result = cli("deid-eval", tmp_path / "imp.jsonl", tmp_path / "deid.jsonl", "-o", tmp_path / "m.json")
    assert result.exit_code == 0 and len(result.output.strip().splitlines()) == 1, result.output
    assert "metrics: " in result.output and json.loads((tmp_path / "m.json").read_text())["docs"] == 1


# --------------------------------------------------------------------- model folders as inputs and outputs

def test_a_model_folder_is_never_written_into_and_never_holds_the_training_data(cli, tmp_path, tiny_classifier_dir):
    from domainfm.config import from_dict
    from domainfm.finetune import TaskConfig, finetune

    src = _write(tmp_path / "in.jsonl", [{"id": "a", "text": "Chest pain.", "label": "cardio"}])
    before = {p.name: p.read_bytes() for p in tiny_classifier_dir.iterdir() if p.is_file()}
    for args in (["predict", tiny_classifier_dir, src, "-o", tiny_classifier_dir / "domainfm_task.json"],
                 ["evaluate", tiny_classifier_dir, src, "-o", tiny_classifier_dir / "manifest.json"]):
        result = cli(*args)
        assert result.exit_code == 2 and "would be written inside the input folder" in result.output
    assert {p.name: p.read_bytes() for p in tiny_classifier_dir.iterdir() if p.is_file()} == before
    # --overwrite deletes the output folder: training data inside it would go with it
    out = tmp_path / "model"
    out.mkdir()
    train = _write(out / "train.jsonl", [{"id": "a", "text": "Chest pain.", "label": "cardio"}])
    for overwrite in (False, True):
        with pytest.raises(CorpusError, match=r"the output folder holds an input \(train.jsonl\)"):
            finetune(from_dict(TaskConfig, {"data": {"train": str(train)}}), out, overwrite=overwrite)
    assert train.is_file()


def test_a_damaged_model_folder_is_an_error_line_not_a_traceback_or_garbage(cli, tmp_path, tiny_classifier_dir):
    import shutil

    src = _write(tmp_path / "in.jsonl", [{"id": "a", "text": "Chest pain.", "label": "cardio"}])
    cut = tmp_path / "cut"
    shutil.copytree(tiny_classifier_dir, cut)
    weights = cut / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    result = cli("predict", cut, src, "-o", tmp_path / "p.jsonl")
    assert result.exit_code == 2 and result.output.startswith("error: cannot load the model in")
    no_tokenizer = tmp_path / "no-tokenizer"
    shutil.copytree(tiny_classifier_dir, no_tokenizer)
    for name in ("tokenizer.json", "vocab.txt"):
        (no_tokenizer / name).unlink(missing_ok=True)
    result = cli("predict", no_tokenizer, src, "-o", tmp_path / "p.jsonl")
    assert result.exit_code == 2 and "tokenizer.json or vocab.txt is missing or damaged" in result.output, result.output
    assert not (tmp_path / "p.jsonl").exists()


def test_a_folders_hash_follows_linked_subfolders_as_the_importers_do(tmp_path):
    """An edit under a symbolically linked subfolder of a textdir source left the folder's hash,
    and so a pipeline's cached import, unchanged."""
    from domainfm.manifest import describe_input

    src, elsewhere = tmp_path / "src", tmp_path / "elsewhere"
    (src / "local").mkdir(parents=True)
    elsewhere.mkdir()
    (src / "local" / "a.txt").write_text("Patient Zorblax Quintavius seen.")
    (elsewhere / "b.txt").write_text("Patient Quilvena Vexworth seen.")
    (src / "linked").symlink_to(elsewhere, target_is_directory=True)
    (elsewhere / "loop").symlink_to(elsewhere, target_is_directory=True)  # read once, not forever
    before = describe_input(src)
    assert before["files"] == 2
    (elsewhere / "b.txt").write_text("Patient Brannoc Crake seen.")
    assert describe_input(src)["sha256"] != before["sha256"]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the dropped SystemExit itself
def test_a_termination_swallowed_by_a_finaliser_stops_the_run_at_the_next_progress_update():
    import gc

    from rich.console import Console

    from domainfm import cli as cli_module

    class Finalised:
        def __del__(self):  # SIGTERM arriving here: Python prints "Exception ignored" and goes on
            cli_module._terminated(signal.SIGTERM, None)

    try:
        Finalised()
        gc.collect()  # the SystemExit raised in __del__ was dropped
        with cli_module._progress(Console(file=open(os.devnull, "w")), "de-identifying") as update:
            with pytest.raises(SystemExit) as stopped:
                update(50)
        assert stopped.value.code == 128 + signal.SIGTERM
    finally:
        cli_module._STOP_REQUESTED.clear()
