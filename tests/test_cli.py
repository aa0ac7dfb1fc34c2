"""The command line through typer's runner: thin commands, one-line errors, fast --help."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from domainfm import __version__


def test_help_lists_commands(cli):
    result = cli("--help")
    assert result.exit_code == 0
    for command in ("import", "summary", "synth", "models", "demo"):
        assert command in result.stdout


def test_version(cli):
    assert cli("--version").stdout.strip() == f"domainfm {__version__}"


def test_help_imports_no_heavy_library():
    """`domainfm --help` stays fast because torch/transformers/spaCy/presidio load lazily."""
    code = ("import sys; from domainfm.cli import app\n"
            "from typer.testing import CliRunner; CliRunner().invoke(app, ['--help'])\n"
            "heavy = [m for m in ('torch', 'transformers', 'spacy', 'presidio_analyzer', 'sklearn', 'faker')"
            " if m in sys.modules]\nprint(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_import_csv_reports_reconciled_counts_and_writes_manifest(cli, tmp_path):
    src = tmp_path / "n.csv"
    src.write_text("id,note,spec\na,Chest pain.,cardio\nb,too,many,cols\n")
    out = tmp_path / "out.jsonl"
    result = cli("import", "csv", src, "-o", out, "--text-col", "note", "--id-col", "id", "--label-col", "spec")
    assert result.exit_code == 0, result.output
    assert "read 2 = written 1 + rejected 1" in result.stderr
    assert "n.csv:3: row has 4 fields" in result.stderr
    manifest = json.loads((tmp_path / "out.manifest.json").read_text())
    assert manifest["config"]["options"]["text_col"] == "note"
    assert manifest["inputs"][0]["sha256"] and manifest["environment"]["packages"]["domainfm"] == __version__


def test_import_extra_dotted_options(cli, tmp_path):
    src = tmp_path / "n.tsv"
    src.write_text("body\nx\n")
    result = cli("import", "csv", src, "-o", tmp_path / "o.jsonl", "--text_col", "body", "--delimiter=tab")
    assert result.exit_code == 0, result.output


def test_option_for_another_format_is_a_one_line_error(cli, tmp_path):
    result = cli("import", "tab", tmp_path / "x.json", "-o", tmp_path / "o.jsonl", "--text-col", "x")
    assert result.exit_code == 2
    assert result.stderr.strip() == ("error: --text-col does not apply to format 'tab' "
                                     "(its options: --annotator)")


def test_user_errors_are_one_line_without_traceback(cli, tmp_path):
    result = cli("import", "jsonl", tmp_path / "missing.jsonl", "-o", tmp_path / "o.jsonl")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "no such file" in result.stderr
    assert "Traceback" not in result.output
    result = cli("import", "jsnl", tmp_path, "-o", tmp_path / "o.jsonl")
    assert "did you mean 'jsonl'" in result.stderr and result.exit_code == 2
    result = cli("label", "--task", "nerr", "--labeled", tmp_path / "s.jsonl", "-o", tmp_path / "o.jsonl")
    assert result.exit_code == 2 and "'ner'" in result.stderr and "did you mean 'ner'" in result.stderr


def test_summary_prints_counts_not_text(cli, tmp_path):
    secret = "Patient Johanna Vandersloot seen"
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"id": "a", "text": secret, "label": "x",
                                "spans": [{"start": 8, "end": 27, "label": "PATIENT"}]}) + "\n")
    result = cli("summary", path, "--json")
    summary = json.loads(result.stdout)
    assert summary["documents"] == 1 and summary["span_labels"] == {"PATIENT": 1}
    table = cli("summary", path)
    assert "Vandersloot" not in table.output and "PATIENT" in table.output



def test_summary_withholds_labels_and_meta_keys_that_look_like_identifiers(cli, tmp_path):
    """A label field or meta keys holding one name or phone number per document were printed."""
    names = ["Zorblax Quintavius", "Mirelda Vantrosk", "Quill Anders"]
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"id": str(i), "text": "note", "label": f"{names[i % 3]} {i}",
                                        "meta": {f"617-555-01{i:02d}": 1, "ward": "east"}}) + "\n" for i in range(20)))
    summary = json.loads(cli("summary", path, "--json").stdout)
    assert summary["labels"] is None and summary["meta_keys"] is None
    assert summary["withheld"] == {"labels": {"distinct": 20, "on_one_document": 20},
                                   "meta_keys": {"distinct": 21, "on_one_document": 20}}
    for result in (cli("summary", path), cli("summary", path, "--json")):
        assert not any(part in result.output for name in names for part in name.split())
        assert "617-555" not in result.output
    assert "20 distinct, 20 on one document only (not shown" in cli("summary", path).output


def test_python_dash_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "domainfm", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"domainfm {__version__}"


@pytest.mark.parametrize("args, message", [
    (["synth", "--clinical", "abc"], "Invalid value for '--clinical'"),
    (["synth", "--clinical", "-3"], "greater than or equal to 0"),
    (["synth", "--clinical", "100000000000"], "less than or equal to 1000000"),  # was a MemoryError traceback
    (["chunk", "--bogus"], "No such option: --bogus"),
    (["predict", "m", "d.jsonl", "-o", "p.jsonl", "--batch-size", "0"], "greater than or equal to 1"),
    (["evaluate", "m", "d.jsonl", "--batch-size", "-5"], "greater than or equal to 1"),
    (["deid"], "Missing argument 'src'"),
])
def test_command_line_mistakes_are_one_error_line(args, message, tmp_path):
    out = subprocess.run([sys.executable, "-m", "domainfm", *args], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("error: ") and message in out.stderr and len(out.stderr.splitlines()) == 1
    assert f"(see 'python -m domainfm {args[0]} --help')" in out.stderr and list(tmp_path.iterdir()) == []


def test_an_empty_input_is_imported_with_a_warning(cli, tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    result = cli("import", "jsonl", tmp_path / "empty.jsonl", "-o", tmp_path / "o.jsonl")
    assert result.exit_code == 0 and "read 0 = written 0 + rejected 0" in result.output
    assert "warning: the input held no records" in result.output
