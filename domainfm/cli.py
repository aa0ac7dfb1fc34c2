"""The ``domainfm`` command line: one thin command per stage over the Python API.

Heavy libraries (torch, transformers, spaCy, presidio) are imported inside the commands that
need them, so ``domainfm --help`` stays fast. User mistakes (:class:`DomainFMError`) print one
line and exit 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import functools
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, List, Optional, Sequence

import typer

from domainfm.errors import DomainFMError

app = typer.Typer(
    name="domainfm",
    help="Adapt foundation models to clinical and legal text, privately: "
    "import -> deid -> chunk -> pretrain -> finetune -> audit -> label.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# Which CLI flags belong to which importer option; used to say which flags a format accepts.
_IMPORT_FLAGS = {
    "text_col": "--text-col", "id_col": "--id-col", "label_col": "--label-col",
    "labels_col": "--labels-col", "labels_sep": "--labels-sep", "delimiter": "--delimiter",
    "text_key": "--text-key", "id_key": "--id-key", "label_key": "--label-key",
    "generate_ids": "--generate-ids", "pattern": "--pattern", "label_from_dir": "--label-from-dir",
    "phi": "--phi", "annotator": "--annotator", "require_ann": "--require-ann",
    "sentences_per_doc": "--sentences-per-doc", "scheme": "--scheme",
    "resolve": "--resolve", "choices": "--choices", "choices_from": "--choices-from",
    "use_predictions": "--use-predictions",
}


# File-system refusals the user can fix (permissions, a folder where a file is expected, a full
# or read-only disk): reported like a DomainFMError instead of a traceback.
_USER_OS_ERRORS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.EISDIR, errno.ENOTDIR, errno.ENOSPC,
                   errno.EDQUOT, errno.ENAMETOOLONG, errno.EEXIST, errno.ENOENT}


def _user_errors(command):
    """Turn a :class:`DomainFMError` (or a file-system refusal) into one line on stderr and exit
    code 2. SIGTERM unwinds like Ctrl-C, so temporary files are removed on the way out; Ctrl-C
    ends with one line, not typer's silent exit 130."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        _quiet_progress_bars()
        previous = _on_stop_signals()
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            typer.echo("interrupted: re-run the same command to start again (or to resume)", err=True)
            raise
        except DomainFMError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except OSError as exc:
            if exc.errno not in _USER_OS_ERRORS:
                raise
            where = f"{exc.filename}: " if exc.filename else ""
            typer.echo(f"error: {where}{exc.strerror or exc}", err=True)
            raise typer.Exit(2) from None
        finally:
            _STOP_REQUESTED.clear()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    return wrapper


def _quiet_progress_bars() -> None:
    """transformers' own tqdm bars ("Loading weights", "Writing model shards") would interleave
    with domainfm's progress output; they are off unless HF_HUB_DISABLE_PROGRESS_BARS says
    otherwise."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules and os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] not in ("0", "false", ""):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


# the signal a termination or a Ctrl-C asked for, until the command ends: Python drops an
# exception raised inside a __del__ or a garbage-collector callback ("Exception ignored in ..."),
# and a run whose SystemExit or KeyboardInterrupt was dropped so went on to write its whole output
# (a Ctrl-C landing in a regex finaliser while deid loads its recognizers); the next progress
# update stops it
_STOP_REQUESTED: list[int] = []


def _terminated(signum, frame):
    if not _STOP_REQUESTED:
        _STOP_REQUESTED.append(signum)
    _raise_stop(signum)


def _raise_stop(signum: int):
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


def _stop_if_requested() -> None:
    """Raise again the SystemExit or KeyboardInterrupt of a signal whose first one was swallowed."""
    if _STOP_REQUESTED:
        _raise_stop(_STOP_REQUESTED[0])


def _on_stop_signals() -> dict[int, Any]:
    """Record and raise on SIGTERM (SystemExit) and Ctrl-C (KeyboardInterrupt), main thread only;
    returns the handlers replaced. A SIGINT that is not Python's default is left as it is: ignored
    in a background job (``nohup``, ``&`` in a script), or a caller's own."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, _terminated)}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, _terminated)
    return previous


def _console(stderr: bool = True):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def _version_callback(value: bool):
    if value:
        from domainfm import __version__

        typer.echo(f"domainfm {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Print the version and exit."),
):
    """domainfm command line."""


@app.command("import", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@_user_errors
def import_command(
    ctx: typer.Context,
    format: str = typer.Argument(..., help="jsonl | csv | textdir | physionet | tab | brat | conll | labelstudio | prodigy "
                                "| mtsamples | cuad-types | unfair-tos"),
    src: Path = typer.Argument(..., help="Source file or folder."),
    out: Path = typer.Option(..., "-o", "--out", help="Output JSONL (rejects go to <out>.rejects.jsonl)."),
    text_col: Optional[str] = typer.Option(None, help="csv/mtsamples: column with the text (default 'text'; "
                                                       "mtsamples: 'transcription')."),
    id_col: Optional[str] = typer.Option(None, help="csv/mtsamples: column with the id (default: <file stem>-<line "
                                                     "its row starts on>; mtsamples: 'note_id')."),
    label_col: Optional[str] = typer.Option(None, help="csv: column with a single label."),
    labels_col: Optional[str] = typer.Option(None, help="csv: column with several labels."),
    labels_sep: Optional[str] = typer.Option(None, help="csv: separator inside --labels-col (default '|')."),
    delimiter: Optional[str] = typer.Option(None, help="csv: field separator (default ','; 'tab' for TSV)."),
    text_key: Optional[str] = typer.Option(None, help="jsonl/labelstudio: field with the text (default 'text')."),
    id_key: Optional[str] = typer.Option(None, help="jsonl/labelstudio/prodigy: field with the id (default 'id'; "
                                                     "labelstudio: 'doc_id' in data; prodigy: in meta)."),
    label_key: Optional[str] = typer.Option(None, help="jsonl: field with the label (default 'label')."),
    generate_ids: Optional[bool] = typer.Option(None, "--generate-ids", help="jsonl: number records without an id."),
    pattern: Optional[str] = typer.Option(None, help="textdir: glob of files (default '**/*.txt')."),
    label_from_dir: Optional[bool] = typer.Option(None, "--label-from-dir", help="textdir: parent folder name is the label."),
    phi: Optional[str] = typer.Option(None, help="physionet: gold PHI file (default id-phi.phrase beside id.text)."),
    annotator: Optional[str] = typer.Option(None, help="tab: first | all | an annotator name (original TAB JSON)."),
    require_ann: Optional[bool] = typer.Option(None, "--require-ann", help="brat: reject .txt files without .ann."),
    sentences_per_doc: Optional[int] = typer.Option(None, help="conll: sentences per document without -DOCSTART- (default 10)."),
    scheme: Optional[str] = typer.Option(None, help="conll: iob2 (default; a stray I- of a known type starts an entity, counted as repaired), iob1 or iob2-strict."),
    resolve: Optional[str] = typer.Option(None, help="labelstudio/prodigy: several annotators -> majority (default) | union | first."),
    choices: Optional[str] = typer.Option(None, help="labelstudio: auto (default) | single | multi."),
    choices_from: Optional[str] = typer.Option(
        None, help="labelstudio: the <Choices> control (from_name) whose choices are the label, when a project has several."),
    use_predictions: Optional[bool] = typer.Option(None, "--use-predictions", help="labelstudio/prodigy: import unannotated tasks from their prediction (prodigy: domainfm's unanswered suggestions)."),
):
    """Import a corpus into domainfm JSONL (validated; nothing is lost: bad records go to a
    reject file and the counts reconcile). Extra '--key value' pairs set importer options."""
    from domainfm.config import parse_overrides
    from domainfm.corpus.importers import get_importer
    from domainfm.corpus.stage import ImportSection, run
    from domainfm.stages import StageContext

    importer = get_importer(format)
    given = {k: v for k, v in locals().items() if k in _IMPORT_FLAGS and v is not None}
    given.update(parse_overrides(ctx.args))
    import dataclasses

    valid = {f.name for f in dataclasses.fields(importer.options_cls)}
    wrong = sorted(set(given) - valid)
    if wrong:
        accepted = ", ".join(_IMPORT_FLAGS.get(n, "--" + n) for n in sorted(valid)) or "none"
        raise DomainFMError(
            f"{', '.join(_IMPORT_FLAGS.get(w, '--' + w) for w in wrong)} does not apply to format "
            f"{format!r} (its options: {accepted})"
        )
    console = _console()
    with _progress(console, f"importing {format}") as update:
        result = run(ImportSection(src=src, format=format, options=given), [src], out,
                     StageContext(on_progress=lambda c: update(c.read)))
    _print_result(console, result)


def _print_result(console, result) -> None:
    """One printer of a :class:`~domainfm.stages.StageResult` for every stage command: the
    reconciling counts and the output, the stage's notes, the reject file with its first reasons
    (no text) and how many more it holds, and the manifest. Lines are not wrapped and paths are
    not read as markup, so they can be copied and parsed."""

    def say(line: str) -> None:
        console.print(line, markup=False, soft_wrap=True)

    if result.read is not None:
        say(f"read {result.read} = written {result.written} + rejected {result.rejected}{result.detail}"
            f"  ->  {result.out}")
        if result.repaired:
            say(f"repaired instead of rejected: {result.repaired} of the written records (each says how; the "
                "manifest counts them)")
        if result.read == 0:
            say("warning: the input held no records (an empty file, a header only, or a pattern that matches "
                "no file?)")
    for line in result.notes:
        say(line)
    for warning in result.warnings:
        say(f"warning: {warning}")
    if result.rejects:
        first = result.first_rejects
        say(f"rejected records (with reasons): {result.rejects}")
        for line in first:
            say(f"  {line}")
        if (result.rejected or 0) > len(first):
            say(f"  ... and {result.rejected - len(first)} more in {result.rejects}")
    if result.manifest is not None:
        say(f"manifest: {result.manifest}")
    elif result.read is None:  # a model folder: its metrics and manifest are inside
        say(f"model: {result.out}  (metrics.json, manifest.json beside it)")


class _progress:
    """A rich spinner with a document count; shows counts only, never document text."""

    def __init__(self, console, description: str):
        self.console, self.description = console, description

    def __enter__(self):
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed} records"),
            TimeElapsedColumn(), console=self.console, transient=True,
            disable=not self.console.is_terminal,
        )
        self._progress.__enter__()
        task = self._progress.add_task(self.description, total=None)

        def update(n: int) -> None:
            _stop_if_requested()
            self._progress.update(task, completed=n)
        return update

    def __exit__(self, *exc):
        return self._progress.__exit__(*exc)


@app.command("summary")
@_user_errors
def summary_command(
    corpus: Path = typer.Argument(..., help="domainfm JSONL file."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
):
    """Counts, lengths and label distributions of a corpus (never any document text)."""
    import json

    from domainfm.corpus import read_documents, summarize
    from domainfm.corpus.summary import print_summary

    rejects: list = []
    summary = summarize(read_documents(corpus, rejects=rejects)).to_dict()
    summary["invalid_records"] = len(rejects)
    if json_out:
        typer.echo(json.dumps(summary, indent=2))
        return
    print_summary(_console(stderr=False), corpus.name, summary)
    for item in rejects[:5]:
        _console().print(f"invalid: {item.describe()}")
    if len(rejects) > 5:
        _console().print(f"invalid: ... and {len(rejects) - 5} more")


# The options of --engine, shared by the commands that can run on Spark or Ray (deid, chunk).
ENGINE_OPTIONS = {
    "engine": typer.Option("local", help="local (this machine) | spark | ray: the same output, computed by that engine."),
    "master": typer.Option("local[2]", help="spark: the master URL (local[N], local[N,retries], spark://..., yarn)."),
    "partitions": typer.Option(None, help="spark: partitions; ray: groups (default: from the cores)."),
    "ray_address": typer.Option(None, "--ray-address", help="ray: a running cluster (default: start a local Ray)."),
}


def _engine_option(name: str, master: str, partitions: int | None, workers: int | None, ray_address: str | None):
    """``--engine`` and its options as an EngineConfig, or None for this process. The options
    are checked with any engine, so a typo is an error even where it would be unused.
    ``workers``: None unless given (one Ray actor per core; refused with Spark when given)."""
    from domainfm.distributed.config import EngineConfig

    config = EngineConfig(name, master, partitions, workers, ray_address)
    return None if name == "local" else config


def _refuse_unused_engine_options(ctx: typer.Context, engine: str, names: Sequence[str]) -> None:
    """EngineConfig refuses the other engine's options; with ``--engine local`` nothing reads these
    either, and 'chunk --workers 8' ran in one process without a word."""
    if engine != "local":
        return
    given = [name for name in names if ctx.get_parameter_source(name).name == "COMMANDLINE"]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        them = "it" if len(given) == 1 else "them"
        raise DomainFMError(f"{flags} {'applies' if len(given) == 1 else 'apply'} to --engine spark or ray; "
                            f"this run is --engine local, which reads {them} nowhere: add --engine or leave {them} out")


@app.command("chunk")
@_user_errors
def chunk_command(
    ctx: typer.Context,
    src: Path = typer.Argument(..., help="domainfm JSONL file of documents."),
    out: Path = typer.Option(..., "-o", "--out", help="Output JSONL of chunks (rejects go to <out>.rejects.jsonl)."),
    tokenizer: str = typer.Option("minilm", help="Model tokenizer: embedded name, save_pretrained folder or hub id."),
    max_tokens: int = typer.Option(512, help="Model positions per chunk, special tokens included."),
    overlap: int = typer.Option(64, help="Tokens repeated from the previous chunk (snapped to a sentence)."),
    profile: str = typer.Option("generic", help="Sectionizer: clinical | legal | generic."),
    engine: str = ENGINE_OPTIONS["engine"],
    master: str = ENGINE_OPTIONS["master"],
    partitions: Optional[int] = ENGINE_OPTIONS["partitions"],
    ray_address: Optional[str] = ENGINE_OPTIONS["ray_address"],
    workers: Optional[int] = typer.Option(None, help="ray: actors (default: one per core of the Ray cluster)."),
):
    """Split documents into chunks that fit the model, follow the document's sections and map
    back to the source character for character (spans projected, labels inherited)."""
    from domainfm.chunk import ChunkConfig
    from domainfm.chunk.stage import run
    from domainfm.stages import StageContext

    _refuse_unused_engine_options(ctx, engine, ("master", "partitions", "ray_address", "workers"))
    config = ChunkConfig(tokenizer=tokenizer, max_tokens=max_tokens, overlap=overlap, profile=profile)
    console = _console()
    engine_config = _engine_option(engine, master, partitions, workers, ray_address)
    if engine_config is not None:
        result = run(config, [src], out, StageContext(engine=engine_config, on_stage=lambda m: console.print(f"{engine}: {m}", markup=False)))
    else:
        with _progress(console, "chunking") as update:
            result = run(config, [src], out, StageContext(on_progress=lambda c: update(c.read)))
    _print_result(console, result)


@app.command("pretrain", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@_user_errors
def pretrain_command(
    ctx: typer.Context,
    config: Path = typer.Argument(..., help="Task file (YAML), e.g. tasks/pretrain-demo.yaml."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder: model + tokenizer, metrics.json, manifest.json."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last complete checkpoint in --out "
                                "(a finished run of the same config there is handed back untrained)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier pretrain output in --out."),
    allow_identified_data: bool = typer.Option(
        False, "--allow-identified-data",
        help="Train on input that 'domainfm deid' did not produce (recorded in the manifest)."),
):
    """Domain-adaptive pretraining (masked or causal LM) on de-identified JSONL. Extra
    '--section.key value' pairs override the task file (e.g. --train.max_steps 100). Runs
    unchanged under 'accelerate launch -m domainfm pretrain ...'."""
    from domainfm.config import load_config, parse_overrides
    from domainfm.pretrain import PretrainConfig, console_reporter, pretrain
    from domainfm.pretrain.stage import summarize

    cfg = load_config(PretrainConfig, config, parse_overrides(ctx.args))
    console = _console()
    with console_reporter(console) as on_event:
        result = pretrain(cfg, out, resume=resume, overwrite=overwrite,
                          allow_identified_data=allow_identified_data, on_event=on_event)
    if result.main_process:  # only the main process reports under 'accelerate launch'
        _print_result(_console(stderr=False), summarize(result.out_dir, result.metrics, result.steps,
                                                        result.resumed_from))


label_app = typer.Typer(help="Suggest labels or spans from a few seeds, check labels, or serve Label Studio.",
                        rich_markup_mode=None)
app.add_typer(label_app, name="label")


@label_app.callback(invoke_without_command=True)
@_user_errors
def label_command(
    ctx: typer.Context,
    labeled: Optional[Path] = typer.Option(None, "--labeled", help="domainfm JSONL of seed documents with 'label' (or 'labels'; 'spans' for --task ner)."),
    pool: Optional[Path] = typer.Option(None, "--pool", help="domainfm JSONL of documents to label."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Output JSONL (rejects go to <out>.rejects.jsonl)."),
    method: str = typer.Option("embed", help="embed (frozen encoder + calibrated LR) | setfit (contrastive fine-tuning first)."),
    model: str = typer.Option("minilm", help="Sentence encoder: embedded name, save_pretrained folder or hub id."),
    export: list[str] = typer.Option([], "--export", help="Also write labelstudio | prodigy | csv (repeatable)."),
    check: bool = typer.Option(False, "--check", help="Flag likely label errors in --labeled instead of labeling a pool."),
    seed: int = typer.Option(13, help="Random seed; the same seed gives the same output."),
    task: str = typer.Option("auto", help="single | multi | auto (multi when more seeds have 'labels' than 'label') | "
                                          "ner (suggest spans from span-annotated seeds)."),
    encoder: str = typer.Option("minilm", "--encoder", help="ner: token encoder: minilm, or a 'domainfm pretrain' output folder."),
    deid_prior: str = typer.Option("auto", "--deid-prior", help="ner: de-id detector spans as a prior for PHI labels: auto | on | off."),
    span_method: str = typer.Option("probe", "--span-method", help="ner: probe (frozen encoder, seconds) | finetune "
                                                                  "(LoRA token classifier via domainfm finetune, minutes on CPU)."),
    dictionary: list[str] = typer.Option([], "--dictionary", help="ner, probe: a term dictionary the probe reads "
                                         "(diseases | drugs | a text file, one term per line; repeatable)."),
    label_descriptions: Optional[Path] = typer.Option(
        None, "--label-descriptions",
        help='JSON object {label: short description}, e.g. {"ltd": "limitation of liability"}: '
             "each description is one extra training example of its label, weighted as 3 seeds."),
    lsa_dims: int = typer.Option(200, "--lsa-dims", help="embed: append this many TF-IDF/SVD word dimensions fitted on "
                                                         "seeds + pool, without labels (0 = sentence embeddings only)."),
):
    """Suggest labels (or with --task ner, spans) for a pool from a few labeled seeds (calibrated,
    ranked for annotation), or with --check flag likely label errors in a labeled set. Prints
    counts only, never text. 'domainfm label serve' runs the Label Studio ML backend."""
    if ctx.invoked_subcommand is not None:
        return
    if labeled is None or out is None:
        raise DomainFMError("give --labeled SEEDS.jsonl and -o OUT.jsonl (or 'domainfm label serve --project DIR')")
    # an option of the other kind of task was read by nothing: say so instead of running without it
    other = (("method", "model", "label_descriptions", "lsa_dims") if task == "ner"
             else ("encoder", "deid_prior", "span_method", "dictionary"))
    ignored = [name for name in other if ctx.get_parameter_source(name).name == "COMMANDLINE"]
    if ignored:
        flags = ", ".join("--" + name.replace("_", "-") for name in ignored)
        raise DomainFMError(f"{flags} {'applies' if len(ignored) == 1 else 'apply'} to "
                            f"{'document labels (--task single|multi|auto)' if task == 'ner' else 'span suggestions (--task ner)'}"
                            f", not to --task {task}; "
                            + ("span suggestions take --span-method, --encoder, --dictionary and --deid-prior"
                               if task == "ner" else "document labels take --method, --model, --label-descriptions "
                                                     "and --lsa-dims"))
    if task == "ner":
        _label_spans(labeled, pool, out, export, seed, encoder, deid_prior, check, span_method, dictionary)
        return
    # setfit fine-tunes the encoder and never builds the LSA features: the same silent no-op
    if method == "setfit" and ctx.get_parameter_source("lsa_dims").name == "COMMANDLINE":
        raise DomainFMError("--lsa-dims applies to --method embed; --method setfit fine-tunes the encoder and adds "
                            "no word features: leave --lsa-dims out or use --method embed")
    from domainfm.config import suggest
    from domainfm.label.config import TASKS

    if task not in TASKS:
        raise DomainFMError(f"--task must be one of {[*TASKS, 'ner']}. Got {task!r}{suggest(task, [*TASKS, 'ner'])}.")
    from domainfm.label import LabelConfig, label_file
    from domainfm.label.export import EXPORT_FORMATS

    for kind in export:
        if kind not in EXPORT_FORMATS:
            from domainfm.config import suggest

            raise DomainFMError(f"unknown --export {kind!r}{suggest(kind, EXPORT_FORMATS)}; "
                                f"choose from {', '.join(EXPORT_FORMATS)}")
    if check and pool is not None:
        raise DomainFMError("--check works on --labeled alone; run the pool without --check")
    descriptions = None
    if label_descriptions is not None:
        import json

        try:
            descriptions = json.loads(label_descriptions.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DomainFMError(f"--label-descriptions {label_descriptions}: cannot read a JSON object ({exc})") from None
    config = LabelConfig(method=method, model=model, seed=seed, task=task, label_descriptions=descriptions,
                         lsa_dims=lsa_dims)
    console = _console()
    with _progress(console, "labeling") as update:
        stages = iter(range(1, 100))
        run = label_file(labeled, pool, out, config, exports=export, check=check,
                         on_stage=lambda s: update(next(stages)),
                         read_also=[label_descriptions] if label_descriptions is not None else [])
    from domainfm.label.stage import result_of

    _print_result(console, result_of(run, check=check))


@label_app.command("serve")
@_user_errors
def label_serve_command(
    project: Path = typer.Option(..., "--project", help="Folder with pool.jsonl (from 'domainfm deid'), seeds.jsonl (optional)."),
    port: int = typer.Option(9090, "--port", min=0, max=65535,
                             help="Port to listen on (Label Studio's ML backend URL; 0: any free port)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (loopback by default)."),
    encoder: str = typer.Option("minilm", "--encoder", help="Token encoder: minilm, or a 'domainfm pretrain' output folder."),
    deid_prior: str = typer.Option("auto", "--deid-prior", help="De-id detector spans as a prior for PHI labels: auto | on | off."),
    span_method: str = typer.Option("probe", "--span-method", help="probe (frozen encoder, seconds) | finetune (LoRA "
                                                                  "token classifier via domainfm finetune, minutes on CPU)."),
    dictionary: list[str] = typer.Option([], "--dictionary", help="probe: a term dictionary the probe reads "
                                         "(diseases | drugs | a text file, one term per line; repeatable)."),
    allow_identified_data: bool = typer.Option(
        False, "--allow-identified-data",
        help="Serve text that does not trace back to 'domainfm deid' (recorded in <project>/backend.json)."),
):
    """Run a Label Studio ML backend: span pre-annotations from the current model (/predict),
    retraining on submitted annotations (/webhook, /train), annotation order (/rank)."""
    from domainfm.label.serve import Backend, serve
    from domainfm.label.span_config import SpanLabelConfig

    backend = Backend(project, SpanLabelConfig(encoder=encoder, deid_prior=deid_prior, method=span_method,
                                               dictionaries=tuple(dictionary)),
                      allow_identified_data=allow_identified_data)
    if backend.training_docs():
        backend.retrain()
    server = serve(backend, host, port)
    typer.echo(f"Label Studio ML backend on http://{host}:{server.server_address[1]}  ({backend.model_version}; "
               f"privacy: {backend.privacy['decision']}); Ctrl-C stops it")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _label_spans(labeled: Path, pool: Optional[Path], out: Path, export: list[str], seed: int, encoder: str,
                 deid_prior: str, check: bool, span_method: str = "probe", dictionary: Sequence[str] = ()) -> None:
    from domainfm.label.span_config import SpanLabelConfig
    from domainfm.label.span_runner import SPAN_EXPORTS, label_spans_file

    if check:
        raise DomainFMError("--check flags document-label errors; it does not apply to --task ner")
    if pool is None:
        raise DomainFMError("--task ner needs --pool POOL.jsonl (the documents to suggest spans for)")
    for kind in export:
        if kind not in SPAN_EXPORTS:
            raise DomainFMError(f"--export {kind!r} does not apply to --task ner; choose from {', '.join(SPAN_EXPORTS)}")
    cfg = SpanLabelConfig(encoder=encoder, deid_prior=deid_prior, seed=seed, method=span_method,
                          dictionaries=tuple(dictionary))
    console = _console()
    with _progress(console, "suggesting spans") as update:
        stages = iter(range(1, 100))
        run = label_spans_file(labeled, pool, out, cfg, exports=export, on_stage=lambda s: update(next(stages)))
    from domainfm.label.stage import span_result_of

    _print_result(console, span_result_of(run))


@app.command("finetune", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@_user_errors
def finetune_command(
    ctx: typer.Context,
    config: Path = typer.Argument(..., help="Task file (YAML), e.g. tasks/demo-clinical-classify.yaml."),
    out: Path = typer.Option(..., "-o", "--out", help="Model folder: adapter/model, tokenizer, metrics.json, manifest.json."),
    merge: bool = typer.Option(False, "--merge", help="LoRA: also save the adapter merged into the base model "
                               "(ner, or model.pooling cls: plain transformers has no mean-pooling classifier)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in --out "
                                "(a finished run of the same config there is handed back untrained)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier finetune output in --out."),
    allow_identified_data: bool = typer.Option(
        False, "--allow-identified-data",
        help="Train on input that 'domainfm deid' did not produce (recorded in the manifest)."),
):
    """Fine-tune a classification, multi-label or NER model (LoRA by default). Extra
    '--section.key value' pairs override the task file (e.g. --train.epochs 1). Runs unchanged
    under 'accelerate launch -m domainfm finetune ...'."""
    import json

    from domainfm.config import load_config, parse_overrides
    from domainfm.finetune import TaskConfig, console_reporter, finetune
    from domainfm.finetune.stage import summarize

    cfg = load_config(TaskConfig, config, parse_overrides(ctx.args))
    console = _console()
    result = finetune(cfg, out, resume=resume, overwrite=overwrite, merge=merge,
                      allow_identified_data=allow_identified_data, on_event=console_reporter(console))
    ev = result.metrics["eval"]
    keys = [k for k in ("accuracy", "macro_f1", "micro_f1", "f1", "precision", "recall") if k in ev]
    typer.echo(json.dumps({k: ev[k] for k in keys}))  # the evaluation as JSON on stdout, for scripts
    _print_result(_console(stderr=False), summarize(result.out_dir, result.metrics, result.steps,
                                                    result.resumed_from))


NER_DECODING_HELP = ("NER models: 'words' (one BIO-valid tag per word, Viterbi) or 'tokens' (per-token argmax); "
                     "default: the model's own (model.ner_decoding).")


@app.command("predict")
@_user_errors
def predict_command(
    model: Path = typer.Argument(..., help="Model folder written by 'domainfm finetune'."),
    src: Path = typer.Argument(..., help="domainfm JSONL documents (as 'domainfm import' writes them)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output JSONL: the documents with 'pred' or 'pred_spans'."),
    batch_size: int = typer.Option(64, min=1, help="Sequences per batch."),
    ner_decoding: Optional[str] = typer.Option(None, help=NER_DECODING_HELP),
):
    """Predict documents: 'pred' (label or labels, per-class scores) or 'pred_spans'."""
    from domainfm.inference.files import predict_file

    _print_result(_console(), predict_file(model, src, out, batch_size=batch_size, ner_decoding=ner_decoding))


@app.command("evaluate")
@_user_errors
def evaluate_command(
    model: Path = typer.Argument(..., help="Model folder written by 'domainfm finetune'."),
    src: Path = typer.Argument(..., help="Labelled domainfm JSONL documents."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Write the metrics as JSON here."),
    batch_size: int = typer.Option(64, min=1, help="Sequences per batch."),
    ner_decoding: Optional[str] = typer.Option(None, help=NER_DECODING_HELP),
):
    """Score a model on labelled documents: accuracy, macro/micro F1, per-class scores and
    confusion matrix, or entity-level F1 for NER. Prints the metrics as JSON."""
    import json

    from domainfm.corpus import read_documents
    from domainfm.inference import evaluate, load_task_model

    from domainfm.corpus.io import check_output_path, write_text_atomic

    if out is not None:
        check_output_path(out, inputs=[src, model])
    metrics = evaluate(load_task_model(model, ner_decoding=ner_decoding), read_documents(src), batch_size=batch_size)
    text = json.dumps(metrics, indent=2)
    if out is not None:
        from domainfm.manifest import write_manifest

        write_text_atomic(out, text + "\n")
        # provenance as every other output has it; also replaces whatever manifest described an
        # earlier file of this name
        write_manifest(out, stage="evaluate", config={"batch_size": batch_size, "ner_decoding": ner_decoding},
                       inputs=[model, src], outputs=[out])
    typer.echo(text)


def _key_values(items: list[str], option: str) -> dict[str, str]:
    """``["a=b", ...]`` -> ``{"a": "b"}``; a malformed item is a one-line error naming the option."""
    from domainfm.errors import ConfigError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"{option} expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


@app.command("deid")
@_user_errors
def deid_command(
    ctx: typer.Context,
    src: Path = typer.Argument(..., help="domainfm JSONL to de-identify (spark/ray: also a .parquet dataset)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output JSONL, or a .parquet folder with spark/ray (rejects go to <out>.rejects.jsonl)."),
    profile: str = typer.Option("clinical", help="clinical (HIPAA Safe Harbor) or legal (TAB direct + quasi identifiers)."),
    operator: str = typer.Option("surrogate", help="surrogate (realistic fakes) | redact | tag ([NAME], [DATE]...)."),
    vault: Optional[Path] = typer.Option(None, help="Encrypted re-identification vault (key in $DOMAINFM_VAULT_KEY)."),
    workers: int = typer.Option(
        1, help="Detection processes (ray: actors, default one per core of the Ray cluster; spark: refused)."),
    batch_size: int = typer.Option(32, min=1, help="Documents per spaCy batch."),
    seed: Optional[int] = typer.Option(None, help="Reproducible surrogates without a key (demos/tests only)."),
    threshold: float = typer.Option(0.3, help="Minimum detection score in [0, 1]."),
    ner_model: Optional[Path] = typer.Option(
        None, "--ner-model",
        help="A token-classification model whose spans are added to the rules': a 'domainfm finetune' NER "
             "folder, a Hugging Face save_pretrained folder or a Hub id."),
    ner_threshold: Optional[float] = typer.Option(
        None, "--ner-threshold", help="Minimum score of the learned model's spans (default: --threshold)."),
    meta: Optional[list[str]] = typer.Option(
        None, "--meta", help="KEY=ACTION for a meta field: keep, drop, deid (free text) or a PHI label such as NAME "
                             "or DATE (repeatable; known PHI keys such as patient_name, dob, comment are de-identified)."),
    meta_default: str = typer.Option("keep", "--meta-default", help="Action for other meta keys: keep, drop or deid."),
    ner_label_map: Optional[str] = typer.Option(
        None, "--ner-label-map",
        help="Model entity types -> PHI labels: a shipped map (i2b2, obi, stanford, conll, ontonotes), a JSON/YAML "
             "file, or TYPE=LABEL,TYPE=null."),
    ner_quantize: str = typer.Option(
        "none", "--ner-quantize", help="int8: dynamic int8 Linear layers on CPU; none; auto (int8 on CPU only)."),
    ner_shape_checks: bool = typer.Option(
        True, "--ner-shape-checks/--no-ner-shape-checks",
        help="Keep a learned span no rule found only if its shape fits its label (a DATE is a date...)."),
    pseudonymize_ids: bool = typer.Option(
        False, "--pseudonymize-ids",
        help="Write keyed pseudonyms (doc-...) instead of record ids; needs --vault, reidentify restores them."),
    engine: str = ENGINE_OPTIONS["engine"],
    master: str = ENGINE_OPTIONS["master"],
    partitions: Optional[int] = ENGINE_OPTIONS["partitions"],
    ray_address: Optional[str] = ENGINE_OPTIONS["ray_address"],
):
    """Detect PHI/PII and replace it; writes phi_spans (no PHI text) and a deid manifest."""
    from domainfm.deid.config import DeidConfig
    from domainfm.deid.stage import run
    from domainfm.deid.tagger_labels import parse_label_map_option
    from domainfm.stages import StageContext

    # --workers is read locally too: the detection processes. With an engine it is the engine's
    # (Ray's actors) when given, and unset otherwise: its default 1 is this process's, and read as
    # Ray's it would ask for one actor (or be refused with Spark)
    _refuse_unused_engine_options(ctx, engine, ("master", "partitions", "ray_address"))
    engine_workers = workers if ctx.get_parameter_source("workers").name == "COMMANDLINE" else None
    config = DeidConfig(profile=profile, operator=operator, vault=str(vault) if vault else None,
                        workers=workers if engine == "local" else 1, batch_size=batch_size, score_threshold=threshold,
                        seed=seed if seed is not None else 0, ner_model=str(ner_model) if ner_model else None,
                        ner_threshold=ner_threshold, meta=_key_values(meta or [], "--meta"), meta_default=meta_default,
                        ner_quantize=ner_quantize, pseudonymize_ids=pseudonymize_ids, ner_shape_checks=ner_shape_checks,
                        ner_label_map=parse_label_map_option(ner_label_map) if ner_label_map else None)
    console = _console()
    engine_config = _engine_option(engine, master, partitions, engine_workers, ray_address)
    if engine_config is not None:
        result = run(config, [src], out, StageContext(seed=seed, engine=engine_config,
                                                      on_stage=lambda m: console.print(f"{engine}: {m}", markup=False)))
    else:
        with _progress(console, f"de-identifying ({profile}, {operator})") as update:
            result = run(config, [src], out, StageContext(seed=seed, on_progress=lambda c: update(c.read)))
    _print_result(console, result)


@app.command("deid-eval")
@_user_errors
def deid_eval_command(
    gold: Path = typer.Argument(..., help="Documents with gold PHI spans (e.g. from 'domainfm import physionet')."),
    pred: Path = typer.Argument(..., help="'domainfm deid' output of the same documents."),
    dataset: str = typer.Option("canonical", help="Label table of the gold spans: physionet, tab, synthetic-clinical, ..."),
    identifier_types: Optional[str] = typer.Option(None, help="TAB: comma-separated identifier types to keep, e.g. DIRECT,QUASI."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Write the metrics JSON here."),
    misses: Optional[Path] = typer.Option(None, help="Write missed gold spans (ids and offsets) here."),
    misses_text: bool = typer.Option(False, "--misses-text", help="Include the missed text in --misses (sensitive)."),
    vault: Optional[Path] = typer.Option(
        None, help="The vault of a 'deid --pseudonymize-ids' run (key in $DOMAINFM_VAULT_KEY): reads its ids back."),
    intervals: bool = typer.Option(
        False, "--intervals", help="Add 90% bootstrap intervals of recall, precision and leakage, resampling "
                                   "patients (meta.patient_id) or else documents."),
):
    """Precision/recall/F1/F2 of de-identification against gold spans (overall and per type)."""
    import json

    from domainfm.deid.evaluate import evaluate_to_files

    types = [t.strip() for t in identifier_types.split(",")] if identifier_types else None
    summary = evaluate_to_files(gold, pred, out=out, misses_path=misses, include_text=misses_text, dataset=dataset,
                                identifier_types=types, vault_path=vault, intervals=intervals)
    # ids that do not match score as documents with nothing found: say so where it is seen
    unmatched = summary.get("unmatched_prediction_ids") or 0
    without = (summary.get("leakage") or {}).get("documents_without_output") or 0
    if unmatched or without:
        typer.echo(f"warning: {without} gold document(s) have no record in {pred.name} (scored as finding "
                   f"nothing) and {unmatched} record(s) of it match no gold id", err=True)
    if out is None:
        typer.echo(json.dumps(summary, indent=2))
        return
    overlap = summary.get("any_overlap") or {}
    scores = "  ".join(f"{k} {overlap[k]:.3f}" for k in ("precision", "recall", "f1", "f2")
                       if isinstance(overlap.get(k), (int, float)))
    leak = (summary.get("leakage") or {}).get("rate")
    leaked = f"  leakage {leak:.3f}" if isinstance(leak, (int, float)) else ""
    typer.echo(f"any-overlap {scores or 'n/a'}{leaked}  ({summary.get('docs')} documents)  metrics: {out}")
    spread = summary.get("intervals")
    if spread:
        parts = [f"{k} {v[0]:.3f}-{v[1]:.3f}" for k in ("recall", "precision", "leakage") if (v := spread.get(k))]
        typer.echo(f"{round(100 * spread['level'])}% intervals over {spread['units']} {spread['unit']}s: "
                   + ("  ".join(parts) or "n/a"))


@app.command("reidentify")
@_user_errors
def reidentify_command(
    src: Path = typer.Argument(..., help="'domainfm deid' output written with --vault."),
    out: Path = typer.Option(..., "-o", "--out", help="Output JSONL with the original text restored."),
    vault: Path = typer.Option(..., help="The vault written by 'domainfm deid --vault'."),
):
    """Restore original text for authorised users (needs the vault and $DOMAINFM_VAULT_KEY)."""
    from domainfm.deid.runner import reidentify_file

    _print_result(_console(), reidentify_file(src, out, vault))


@app.command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@_user_errors
def run_command(
    ctx: typer.Context,
    pipeline: Path = typer.Argument(..., help="Pipeline file (YAML), e.g. tasks/demo-clinical.yaml."),
    from_stage: Optional[str] = typer.Option(None, "--from", help="Re-run this stage and every later one, cached or not."),
    until_stage: Optional[str] = typer.Option(None, "--until", help="Stop after this stage."),
):
    """Run the pipeline end to end (import -> deid -> chunk -> pretrain -> finetune -> deid_eval -> audit -> label):
    each stage writes <run_dir>/<stage>/ with its manifest; unchanged stages are cached and a
    failed or killed run resumes. Extra '--section.key value' pairs override the pipeline file
    (e.g. --chunk.max_tokens 128)."""
    from domainfm.config import parse_overrides
    from domainfm.pipeline import run_pipeline

    run_pipeline(pipeline, parse_overrides(ctx.args), from_stage=from_stage, until_stage=until_stage,
                 console=_console(stderr=False), check_stop=_stop_if_requested)


@app.command("audit")
@_user_errors
def audit_command(
    model: Path = typer.Argument(..., help="Model folder written by 'domainfm finetune' (classification)."),
    src: Path = typer.Argument(..., help="Labelled domainfm JSONL documents to audit."),
    out: Path = typer.Option(..., "-o", "--out", help="Report folder: index.html, report.json, model_card.md."),
    group_by: str = typer.Option("meta.sex,meta.age_band,meta.race_ethnicity", "--group-by",
                                 help="Comma-separated dotted fields; meta.age_band is derived from meta.age."),
    explain: int = typer.Option(0, "--explain", help="Example documents explained with shap (0: none)."),
    explain_sample: int = typer.Option(0, "--explain-sample", help="Extra documents explained for the top tokens."),
    max_evals: int = typer.Option(200, "--max-evals", help="shap budget: model evaluations per chunk."),
    positive_class: Optional[str] = typer.Option(None, "--positive-class",
                                                 help="Class for the one-vs-rest fairness gaps (default: most frequent)."),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the confidence intervals."),
    bootstrap_unit: str = typer.Option("auto", "--bootstrap-unit",
                                       help="What a resample draws: auto (patients when every document has "
                                            "meta.patient_id, else documents), document, or meta.<key>."),
    min_group_size: int = typer.Option(30, "--min-group-size", help="Groups smaller than this are flagged."),
    counterfactuals: str = typer.Option("gender,names,race", "--counterfactuals",
                                        help="Invariance tests to run (comma-separated; '' for none)."),
    label_field: Optional[str] = typer.Option(None, "--label-field",
                                              help="Gold field (label or meta.<key>); default: the model's."),
    seed: int = typer.Option(13, "--seed", help="Seed for bootstrap, splits and example choice."),
    batch_size: int = typer.Option(32, "--batch-size", help="Texts (and shap masked samples) scored per model call."),
    data_note: Optional[str] = typer.Option(None, "--data-note",
                                            help="Free text for the report's data section, e.g. how the groups were derived."),
    allow_identifying_groups: str = typer.Option("", "--allow-identifying-groups",
                                                 help="Comma-separated --group-by fields whose values may be shown "
                                                      "although they look identifying (names, dates, tiny groups)."),
    card: Optional[List[str]] = typer.Option(None, "--card", help="Also write a reviewer's card: chai, annex-iv, fda or "
                                             "all (repeatable or comma-separated)."),
    cards_config: Optional[Path] = typer.Option(None, "--cards-config",
                                                help="cards.yaml: the deployer's fields (intended use, contact, release...)."),
    chai_schema: Optional[Path] = typer.Option(None, "--chai-schema",
                                               help="CHAI v0.2 schema.xsd to validate against (default: the shipped copy)."),
    deid_eval: Optional[Path] = typer.Option(None, "--deid-eval",
                                             help="De-id scores of the training data ('domainfm deid-eval -o' JSON) for the cards."),
    privacy_audit: Optional[Path] = typer.Option(None, "--privacy-audit",
                                                 help="'domainfm audit-privacy' report.json of this model (or its base)."),
):
    """Audit a classifier: performance and fairness per group, calibration, explanations,
    counterfactual robustness and privacy -> a self-contained HTML report, JSON and model card
    (and, with --card, the CHAI / EU AI Act Annex IV / FDA-style cards)."""
    from domainfm.audit import AuditConfig, audit
    from domainfm.audit.cards import load_deployer_fields, parse_cards
    from domainfm.audit.cards.evidence import load_deid_eval, load_privacy_audit
    from domainfm.corpus import read_documents
    from domainfm.errors import ConfigError

    # every input is checked before the audit runs: a bad one found after it wastes the run
    cards = parse_cards(card)
    card_only = [name for name, value in (("--cards-config", cards_config), ("--chai-schema", chai_schema),
                                          ("--deid-eval", deid_eval)) if value is not None]
    if card_only and not cards:
        verb, them = ("feeds", "it") if len(card_only) == 1 else ("feed", "them")
        raise ConfigError(f"{' and '.join(card_only)} {verb} only the reviewer's cards: add --card (e.g. --card all) "
                          f"or leave {them} out")
    deployer = load_deployer_fields(cards_config) if cards else None
    if cards and "chai" in cards:
        from domainfm.audit.cards.chai import load_schema

        load_schema(chai_schema)
    if deid_eval is not None:
        load_deid_eval(deid_eval)
    privacy_report = load_privacy_audit(privacy_audit) if privacy_audit is not None else None

    cfg = AuditConfig(group_by=[g.strip() for g in group_by.split(",") if g.strip()], explain=explain,
                      explain_sample=explain_sample, max_evals=max_evals, positive_class=positive_class,
                      n_bootstrap=bootstrap, bootstrap_unit=bootstrap_unit, min_group_size=min_group_size, seed=seed,
                      label_field=label_field, counterfactuals=[c.strip() for c in counterfactuals.split(",") if c.strip()],
                      batch_size=batch_size, data_note=data_note,
                      allow_identifying_groups=[g.strip() for g in allow_identifying_groups.split(",") if g.strip()])
    from domainfm.corpus.io import check_output_path

    check_output_path(out, inputs=[src, model], folder=True)
    result = audit(model, read_documents(src), out, cfg, privacy_audit=privacy_report, data_files=[src])
    for warning in result.report.get("warnings", []):
        _console().print(f"warning: {warning}", markup=False)  # group values and labels are data: "[/red]" is no markup
    console = _console(stderr=False)
    for finding in result.report["summary"]:
        console.print(f"- {finding['text']}", markup=False)
    console.print(f"report: {result.html} (report.json, model_card.md beside it)", markup=False)
    if cards:
        _write_cards(console, out, cards, deployer=deployer, cards_config=cards_config, deid_eval=deid_eval,
                     privacy_audit=privacy_audit, chai_schema=chai_schema)


def _write_cards(console, audit_dir: Path, cards, **kwargs) -> None:
    from domainfm.audit.cards import write_cards

    result = write_cards(audit_dir, cards, **kwargs)
    for warning in result.warnings:
        _console().print(f"warning: {warning}", markup=False)
    for name, card in result.summary["cards"].items():
        c = card["completeness"]
        console.print(f"{name}: {', '.join(card['files'])}: {c['evidence']} fields from evidence, {c['config']} from "
                      f"configs, {c['deployer']} from the deployer, {c['missing']} to be completed by the deployer",
                      markup=False)
    console.print(f"sources and completeness: {result.out_dir / 'cards.json'}", markup=False)


@app.command("audit-cards")
@_user_errors
def audit_cards_command(
    report: Path = typer.Argument(..., help="An audit folder (report.json from 'domainfm audit' or a pipeline run)."),
    card: List[str] = typer.Option(["all"], "--card", help="chai, annex-iv, fda or all (repeatable or comma-separated)."),
    cards_config: Optional[Path] = typer.Option(None, "--cards-config", help="cards.yaml: the deployer's fields."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Folder for the cards (default: the audit folder)."),
    chai_schema: Optional[Path] = typer.Option(None, "--chai-schema", help="CHAI v0.2 schema.xsd (default: shipped)."),
    deid_eval: Optional[Path] = typer.Option(None, "--deid-eval", help="'domainfm deid-eval -o' JSON of the training data."),
    privacy_audit: Optional[Path] = typer.Option(None, "--privacy-audit", help="'domainfm audit-privacy' report.json."),
):
    """Write the reviewer's cards of an existing audit without re-running it (or rewrite them,
    after filling cards.yaml for instance)."""
    _write_cards(_console(stderr=False), report, card, out_dir=out, cards_config=cards_config, deid_eval=deid_eval,
                 privacy_audit=privacy_audit, chai_schema=chai_schema)


@app.command("audit-privacy", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@_user_errors
def audit_privacy_command(
    ctx: typer.Context,
    model: Path = typer.Argument(..., help="Model folder written by 'domainfm pretrain' (MLM or causal LM) or "
                                 "'domainfm finetune' (classification or multilabel)."),
    train: Path = typer.Option(..., "--train", help="domainfm JSONL: the documents the model was trained on."),
    holdout: Path = typer.Option(..., "--holdout",
                                 help="domainfm JSONL: documents of the same distribution it never saw (patient-disjoint)."),
    out: Path = typer.Option(..., "-o", "--out", help="Report folder: report.json, summary.md, manifest.json."),
    vault: Optional[Path] = typer.Option(None, "--vault",
                                         help="The deid vault of the training data (key in $DOMAINFM_VAULT_KEY)."),
    planted: Optional[Path] = typer.Option(None, "--planted",
                                           help="Without a vault: JSONL whose spans mark gold or planted identifiers."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML of PrivacyAuditConfig settings (gate: ...)."),
):
    """Measure what a language model or classifier memorised: canary exposure, membership inference and
    regurgitation of the vault's originals, against the release gate. Extra '--key value' pairs
    override the config (e.g. --n_candidates 255 --gate.max_mia_auc 0.55). Exit code 1 when
    the gate fails."""
    from domainfm.config import load_config, parse_overrides
    from domainfm.privacy_audit import PrivacyAuditConfig, audit_privacy, gate_message

    cfg = load_config(PrivacyAuditConfig, config, parse_overrides(ctx.args))
    console = _console()
    result = audit_privacy(model, train, holdout, out, cfg, vault=vault, planted=planted,
                           on_event=lambda message: console.print(message, markup=False))
    typer.echo(result.statement)
    typer.echo(f"report: {out / 'summary.md'} (report.json, manifest.json beside it)")
    if not result.passed:
        typer.echo(f"error: {gate_message(result.report)}", err=True)
        raise typer.Exit(1)


# sample corpora are for demos and tests; a million documents is already hours of generation
MAX_SYNTH_DOCUMENTS = 1_000_000


@app.command("synth")
@_user_errors
def synth_command(
    out: Path = typer.Option(Path("corpora"), "-o", "--out", help="Folder for the corpora."),
    seed: int = typer.Option(13, help="Random seed; the same seed gives the same corpora."),
    clinical: int = typer.Option(320, min=0, max=MAX_SYNTH_DOCUMENTS, help="Number of clinical notes."),
    legal: int = typer.Option(120, min=0, max=MAX_SYNTH_DOCUMENTS, help="Number of legal documents."),
):
    """Write the synthetic sample corpora (clinical notes, contracts and judgments)."""
    from domainfm.synth import write_sample_corpora

    paths = write_sample_corpora(out, seed=seed, n_clinical=clinical, n_legal=legal)
    for path in paths:
        _console().print(f"wrote {path}")


@app.command("models")
@_user_errors
def models_command():
    """List the embedded offline models and where they are installed."""
    from domainfm.models import embedded_models

    for name, where in embedded_models().items():
        typer.echo(f"{name:16s} {where or 'NOT INSTALLED'}")


@app.command("demo")
@_user_errors
def demo_command(
    out: Path = typer.Option(Path("demo-output"), "-o", "--out", help="Where the demo writes its outputs."),
    corpora: Path = typer.Option(Path("corpora"), help="Sample corpora folder (generated if missing)."),
    report_dir: Path = typer.Option(Path("reports/demo"), "--report-dir",
                                    help="Where the clinical audit report (index.html, report.json, "
                                    "model_card.md) is copied."),
):
    """Run the shipped pipelines tasks/demo-clinical.yaml and tasks/demo-legal.yaml on the
    synthetic corpora with the embedded offline models (unchanged stages are reused)."""
    from domainfm.demo import run_demo

    console = _console(stderr=False)
    run_demo(out=out, corpora=corpora, console=console, report_dir=report_dir)


def main() -> None:
    """Console-script entry point (``domainfm`` and ``python -m domainfm``). A mistake on the
    command line (an unknown option, a value of the wrong type or out of range) is one ``error:``
    line and exit code 2, like every other user mistake, instead of Click's usage block."""
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as exc:  # Click's errors (typer vendors Click: its classes are private)
        if type(exc).__name__ == "NoArgsIsHelpError":  # a command given nothing: its help, as before
            exc.show()
        else:
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            typer.echo(f"error: {exc.format_message()}{hint}", err=True)
        code = exc.exit_code
    except typer.Abort:  # Ctrl-C while Click itself was still reading the arguments
        typer.echo("aborted", err=True)
        code = 130
    finally:
        _close_process_group()
    sys.exit(code if isinstance(code, int) else 0)


def _close_process_group() -> None:
    """Leave torch.distributed's process group before the interpreter exits. Under ``accelerate
    launch`` or torchrun, training joins one; left to the exit, its gloo threads are torn down
    unjoined and a rank can abort after a run that succeeded ("terminate called without an
    active exception", exit -6; seen once in a slow-tier run of the two-process test)."""
    torch = sys.modules.get("torch")  # never imported just for this
    if torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
