"""The command line says the truth: its help matches what the options do and the defaults the
code uses, and an option that nothing would read is refused by name instead of ignored."""

from __future__ import annotations

import dataclasses
import json

import pytest
import typer.main

from domainfm import __version__
from domainfm.cli import _IMPORT_FLAGS, app


def _command(*path: str):
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return command


def _option_help(path: tuple[str, ...], name: str) -> str:
    return next(p.help for p in _command(*path).params if p.name == name)


def _every_command(command=None, path=()):
    command = command or typer.main.get_command(app)
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from _every_command(sub, (*path, name))


@pytest.mark.parametrize("path", list(_every_command()), ids=lambda p: " ".join(p) or "domainfm")
def test_every_command_has_help_and_exits_zero(cli, path):
    result = cli(*path, "--help")
    assert result.exit_code == 0 and "Usage:" in result.stdout


def test_version_is_the_package_version_and_exits_zero(cli):
    result = cli("--version")
    assert result.exit_code == 0 and result.stdout == f"domainfm {__version__}\n"


def test_root_help_does_not_cut_a_command_summary_at_an_abbreviation(cli):
    """Click's one-line summary ends at the first '. ': audit-cards read 'Write (or rewrite, e.g.'."""
    lines = [line for line in cli("--help").stdout.splitlines() if line.strip().startswith("audit-cards")]
    assert lines and not lines[0].rstrip().endswith("e.g.")
    assert "reviewer's cards" in lines[0]


def test_cli_defaults_are_the_config_defaults():
    from domainfm.audit import AuditConfig
    from domainfm.chunk import ChunkConfig
    from domainfm.deid.config import DeidConfig
    from domainfm.label import LabelConfig
    from domainfm.label.span_config import SpanLabelConfig

    def defaults(path):
        return {p.name: p.default for p in _command(*path).params}

    chunk, deid, audit = defaults(("chunk",)), defaults(("deid",)), defaults(("audit",))
    label, serve = defaults(("label",)), defaults(("label", "serve"))
    for field in dataclasses.fields(ChunkConfig):
        assert chunk[field.name] == field.default
    d = DeidConfig()
    assert (deid["profile"], deid["operator"], deid["workers"], deid["batch_size"], deid["threshold"],
            deid["meta_default"], deid["ner_quantize"], deid["ner_shape_checks"], deid["pseudonymize_ids"]) == (
        d.profile, d.operator, d.workers, d.batch_size, d.score_threshold, d.meta_default, d.ner_quantize,
        d.ner_shape_checks, d.pseudonymize_ids)
    a = AuditConfig()
    assert audit["group_by"].split(",") == a.group_by and audit["counterfactuals"].split(",") == a.counterfactuals
    assert (audit["explain"], audit["explain_sample"], audit["max_evals"], audit["bootstrap"], audit["min_group_size"],
            audit["seed"], audit["batch_size"]) == (a.explain, a.explain_sample, a.max_evals, a.n_bootstrap,
                                                    a.min_group_size, a.seed, a.batch_size)
    c = LabelConfig()
    assert (label["method"], label["model"], label["seed"], label["task"], label["lsa_dims"]) == (
        c.method, c.model, c.seed, c.task, c.lsa_dims)
    s = SpanLabelConfig()
    for options in (label, serve):
        assert (options["encoder"], options["deid_prior"], options["span_method"]) == (s.encoder, s.deid_prior, s.method)


def test_label_descriptions_help_gives_the_weight_the_code_uses():
    from domainfm.label import LabelConfig

    weight = LabelConfig().description_weight
    assert f"weighted as {weight:g} seeds" in _option_help(("label",), "label_descriptions")


# --- import: every format and every option a format takes is named in the help ---------------

def _importers():
    from domainfm.corpus.importers import get_importer
    from domainfm.corpus.importers.base import IMPORTERS

    get_importer("jsonl")  # the registry fills on import
    return IMPORTERS


def test_import_help_lists_every_registered_format():
    help_text = next(p.help for p in _command("import").params if p.name == "format")
    named = {name.strip() for name in help_text.split("|")}
    assert named == set(_importers())


@pytest.mark.parametrize("option", sorted(_IMPORT_FLAGS))
def test_import_option_help_names_every_format_that_takes_it(option):
    """--id-key said 'jsonl: ... (default 'id')' although labelstudio (default 'doc_id') and
    prodigy take it too; --text-col/--id-col said 'csv' only, mtsamples takes them."""
    takes = {name for name, importer in _importers().items()
             if option in {f.name for f in dataclasses.fields(importer.options_cls)}}
    help_text = _option_help(("import",), option)
    prefix = help_text.split(":")[0]
    assert takes and takes == set(prefix.split("/")), (option, help_text)
    for name in takes:  # a default that differs from the first format's is spelled out
        field = next(f for f in dataclasses.fields(_importers()[name].options_cls) if f.name == option)
        if isinstance(field.default, str) and field.default:
            assert field.default in help_text, (option, name, help_text)


def test_csv_id_without_id_col_is_what_the_help_says(cli, tmp_path):
    """The help said <file>-<row>; the id is the file stem and the line the row starts on (where a
    user looks for it, also when a quoted cell holds a line break)."""
    src = tmp_path / "notes.csv"
    src.write_text('text\n"first\nnote"\nsecond\n')
    out = tmp_path / "o.jsonl"
    assert cli("import", "csv", src, "-o", out).exit_code == 0
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["notes-2", "notes-4"]
    assert "<file stem>-<line its row starts on>" in _option_help(("import",), "id_col")


# --- options that nothing reads are refused by name -------------------------------------------

@pytest.mark.parametrize("command, args, named", [
    ("chunk", ["--workers", "4"], "--workers"),
    ("chunk", ["--master", "local[4]"], "--master"),
    ("chunk", ["--partitions", "8", "--ray-address", "head:6379"], "--partitions, --ray-address"),
    ("deid", ["--master", "local[4]"], "--master"),
    ("deid", ["--partitions", "8"], "--partitions"),
    ("deid", ["--ray-address", "head:6379"], "--ray-address"),
])
def test_engine_options_with_the_local_engine_are_refused(cli, tmp_path, command, args, named):
    """'chunk --workers 4' chunked in one process: only the other engine's options were refused."""
    result = cli(command, tmp_path / "missing.jsonl", "-o", tmp_path / "o.jsonl", *args)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {named} appl") and "--engine local" in result.stderr
    assert len(result.stderr.splitlines()) == 1 and list(tmp_path.iterdir()) == []


def test_deid_workers_without_an_engine_are_detection_processes(cli, tmp_path):
    result = cli("deid", tmp_path / "missing.jsonl", "-o", tmp_path / "o.jsonl", "--workers", "2")
    assert result.exit_code == 2 and "no such file" in result.stderr and "--workers" not in result.stderr


def test_engine_options_with_their_engine_are_not_refused_as_local(cli, tmp_path):
    result = cli("chunk", tmp_path / "missing.jsonl", "-o", tmp_path / "o.jsonl", "--engine", "spark",
                 "--workers", "4")
    assert result.exit_code == 2 and "sets Ray's actors" in result.stderr  # EngineConfig's own message


def test_setfit_refuses_lsa_dims_that_it_never_reads(cli, tmp_path):
    result = cli("label", "--labeled", tmp_path / "missing.jsonl", "-o", tmp_path / "o.jsonl",
                 "--method", "setfit", "--lsa-dims", "50")
    assert result.exit_code == 2 and result.stderr.startswith("error: --lsa-dims applies to --method embed")
    embed = cli("label", "--labeled", tmp_path / "missing.jsonl", "-o", tmp_path / "o.jsonl", "--lsa-dims", "50")
    assert embed.exit_code == 2 and "--lsa-dims" not in embed.stderr  # read by embed: only the missing file


# --- values out of range are a named error, never a traceback --------------------------------

@pytest.mark.parametrize("port", ["70000", "-1"])
def test_label_serve_port_out_of_range_is_a_named_error(cli, tmp_path, port):
    """The port went to socket.bind unchecked: OverflowError traceback, exit code 1."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "pool.jsonl").write_text(json.dumps({"id": "a", "text": "Seen today."}) + "\n")
    result = cli("label", "serve", "--project", project, "--allow-identified-data", "--port", port)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "Invalid value for '--port'" in result.output
    assert "127.0.0.1" not in _option_help(("label", "serve"), "port")  # --host sets the interface
