"""A run stopped at any moment (Ctrl-C, a kill, an error midway) leaves nothing that a later run or
reader takes for finished: a Ctrl-C that a finaliser swallowed still stops the command, and a
de-identification run's vault holds no entries for records that no output holds."""

from __future__ import annotations

import gc
import json
import os
import signal
import sqlite3

import pytest

from domainfm.corpus import io
from domainfm.deid.config import DeidConfig
from domainfm.deid.runner import deidentify_file

KEY = "interrupted-runs-vault-key-0123456789abcdef"


@pytest.fixture()
def default_ctrl_c():
    """Python's own SIGINT handler, as a command started from a terminal has it."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


# ------------------------------------------------------------------------------------ Ctrl-C

@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the dropped KeyboardInterrupt
def test_a_ctrl_c_swallowed_by_a_finaliser_stops_the_command_at_the_next_progress_update(default_ctrl_c, capsys):
    from rich.console import Console

    from domainfm import cli as cli_module

    class Finalised:
        def __del__(self):  # Ctrl-C arriving here (a regex finaliser while deid loads): "Exception ignored"
            signal.raise_signal(signal.SIGINT)

    progressed = []

    @cli_module._user_errors
    def command():
        Finalised()
        gc.collect()
        with cli_module._progress(Console(file=open(os.devnull, "w")), "de-identifying") as update:
            update(50)
            progressed.append(50)  # the run went on to write its whole output

    with pytest.raises(KeyboardInterrupt):
        command()
    assert progressed == []
    assert capsys.readouterr().err.startswith("interrupted")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back when the command ends


def test_an_ignored_ctrl_c_stays_ignored(default_ctrl_c):
    """A background job (``nohup``, ``&`` in a script) ignores SIGINT: a command keeps it so."""
    from domainfm import cli as cli_module

    seen = []

    @cli_module._user_errors
    def command():
        seen.append(signal.getsignal(signal.SIGINT))

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    command()
    assert seen == [signal.SIG_IGN] and signal.getsignal(signal.SIGINT) is signal.SIG_IGN


# -------------------------------------------------------------------------- deid --vault

def _notes(path, n: int):
    rows = [{"id": f"n{i}", "text": f"Call 555-201-{1000 + i} about the visit on 7/{1 + i % 28}/2020."}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _committed_documents(vault) -> int:
    """Documents another connection sees in the vault: what a SIGKILL at this moment would leave."""
    db = sqlite3.connect(vault)
    try:
        return db.execute("SELECT count(*) FROM documents").fetchone()[0]
    finally:
        db.close()


def test_a_deid_vault_holds_nothing_of_a_run_until_its_output_is_complete(tmp_path, monkeypatch):
    monkeypatch.setenv("DOMAINFM_VAULT_KEY", KEY)
    src, out, vault = _notes(tmp_path / "in.jsonl", 220), tmp_path / "out.jsonl", tmp_path / "vault.db"
    seen = []
    write_obj = io.JsonlWriter.write_obj

    def watching(self, obj):
        write_obj(self, obj)
        if self.path == out and len(seen) % 20 == 0:  # the vault had 500+ writes by the last checks
            seen.append(_committed_documents(vault))
        elif self.path == out:
            seen.append(None)

    monkeypatch.setattr(io.JsonlWriter, "write_obj", watching)
    result = deidentify_file(src, out, DeidConfig(vault=str(vault)))
    assert result.counts.written == 220 and not out.with_name(out.name + ".lock").exists()
    assert {n for n in seen if n is not None} == {0}
    assert _committed_documents(vault) == 220


@pytest.mark.parametrize("stop", [KeyboardInterrupt, RuntimeError])
def test_a_deid_run_stopped_midway_leaves_no_vault_entries_and_the_rerun_matches(tmp_path, monkeypatch, stop):
    monkeypatch.setenv("DOMAINFM_VAULT_KEY", KEY)
    src = _notes(tmp_path / "in.jsonl", 6)
    clean_out, clean_vault = tmp_path / "clean.jsonl", tmp_path / "clean.db"
    deidentify_file(src, clean_out, DeidConfig(vault=str(clean_vault)))

    out, vault = tmp_path / "out.jsonl", tmp_path / "vault.db"
    write_obj = io.JsonlWriter.write_obj
    written = []

    def failing(self, obj):
        if self.path == out and len(written) == 3:
            raise stop("stopped midway")
        write_obj(self, obj)
        written.append(obj)

    monkeypatch.setattr(io.JsonlWriter, "write_obj", failing)
    with pytest.raises(stop):
        deidentify_file(src, out, DeidConfig(vault=str(vault)))
    monkeypatch.setattr(io.JsonlWriter, "write_obj", write_obj)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["clean.db", "clean.jsonl",
                                                                             "clean.manifest.json", "in.jsonl",
                                                                             "vault.db"]
    assert _committed_documents(vault) == 0  # the three records written were never an output

    deidentify_file(src, out, DeidConfig(vault=str(vault)))
    assert out.read_bytes() == clean_out.read_bytes()  # the same surrogates as an uninterrupted run
    assert _committed_documents(vault) == 6


# ------------------------------------------------------------------------------- deid-eval

def _gold_and_prediction(tmp_path):
    text = "Seen by Dr. Lee on 7/22/2020 in Boston."
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps({"id": "d1", "text": text, "spans": [
        {"start": 12, "end": 15, "label": "DOCTOR"}, {"start": 19, "end": 28, "label": "DATE"}]}) + "\n")
    pred = tmp_path / "pred.jsonl"
    pred.write_text(json.dumps({"id": "d1", "text": "Seen by Dr. [DOCTOR] on 7/22/2020 in Boston.", "phi_spans": [
        {"start": 12, "end": 15, "label": "DOCTOR"}]}) + "\n")
    return gold, pred


def test_deid_eval_writes_its_misses_only_once_the_scores_are_complete(tmp_path, monkeypatch):
    from domainfm.deid import evaluate as evaluation

    gold, pred = _gold_and_prediction(tmp_path)
    misses = tmp_path / "misses.jsonl"

    def stopped(*args, **kwargs):  # a Ctrl-C or an error while the intervals are drawn
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluation, "bootstrap_intervals", stopped)
    with pytest.raises(KeyboardInterrupt):
        evaluation.evaluate_files(gold, pred, misses_path=misses, intervals=True)
    assert not misses.exists()  # beside the metrics of an earlier run, it would be taken for theirs
    monkeypatch.undo()
    evaluation.evaluate_files(gold, pred, misses_path=misses, intervals=True)
    assert [json.loads(line)["kind"] for line in misses.read_text().splitlines()] == ["miss"]


def test_deid_eval_removes_the_temporary_files_a_killed_run_left(cli, tmp_path):
    import subprocess
    import sys

    gold, pred = _gold_and_prediction(tmp_path)
    dead_pid = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                                  capture_output=True, text=True).stdout)
    # a SIGKILL while --misses-text was written: the temporary file holds note text
    left = [tmp_path / f"m.json.{dead_pid}.0123abcd.tmp", tmp_path / f"misses.jsonl.{dead_pid}.0123abcd.tmp"]
    for path in left:
        path.write_text('{"text": "Lee"')
    result = cli("deid-eval", gold, pred, "-o", tmp_path / "m.json", "--misses", tmp_path / "misses.jsonl",
                 "--misses-text")
    assert result.exit_code == 0, result.output
    assert not any(path.exists() for path in left)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gold.jsonl", "m.json", "m.manifest.json", "misses.jsonl",
                                                           "pred.jsonl"]
