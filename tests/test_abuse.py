"""Abuse battery: hostile JSONL and CSV fed to every command.

Hypothesis writes files of broken JSON, wrong types, lone surrogates, control and zero-width
characters, a BOM, CRLF line ends, huge and empty texts, duplicate ids, NaN and crossing spans.
Every command must then either write or reject every record (``read = written + rejected``,
with the reject file holding one line per rejected record, its location and the raw line), or
stop with one ``error:`` line and exit 2 — never exit 1, never a traceback — and leave no
temporary or lock file behind.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domainfm.deid import windows

SEEDS = [{"id": f"s{i}", "text": f"{'chest pain angina' if i % 2 else 'knee fracture cast'} {i}",
          "label": "cardio" if i % 2 else "ortho", "meta": {"sex": "female" if i % 3 else "male"}} for i in range(8)]
NASTY_TEXTS = ["", " ", "\u200b\u200d\u2060", "bell\x07 nul\x00 esc\x1b", "bom\ufeffinside", "line\r\nbreak\rmac",
               "Dr. Lee seen 7/22/2020", "\U0001F600 emoji", "x" * 12_000, "tab\tseparated\tvalues", "\ud800 lone",
               "\udfff", "Marta Okafor, MRN 1234567"]

ids = st.one_of(st.sampled_from(["a", "b", "a", "c"]), st.integers(-5, 5), st.none(), st.booleans(),
                st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4), st.lists(st.integers(), max_size=2))
texts = st.one_of(st.sampled_from(NASTY_TEXTS), st.text(max_size=60), st.integers(), st.none())
spans = st.lists(st.fixed_dictionaries({"start": st.integers(-1, 30), "end": st.integers(-1, 30),
                                        "label": st.sampled_from(["X", "NAME", ""])}), max_size=3)
records = st.fixed_dictionaries(
    {"id": ids, "text": texts},
    optional={"meta": st.one_of(st.dictionaries(st.sampled_from(["sex", "age", "v"]),
                                                st.one_of(st.integers(), st.floats(allow_nan=True), st.text(max_size=5))),
                                st.integers()),
              "spans": spans, "label": st.one_of(st.sampled_from(["cardio", "ortho", "nope"]), st.integers()),
              "surprise": st.just(1)})


def _truncated(record) -> bytes:
    line = json.dumps(record)
    return line[: max(1, len(line) // 2)].encode()


lines = st.one_of(
    records.map(lambda r: json.dumps(r).encode()),  # lone surrogates as \ud800 escapes
    records.map(lambda r: json.dumps(r, ensure_ascii=False).encode("utf-8", "surrogatepass")),  # invalid UTF-8
    records.map(_truncated),
    st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")),
    st.sampled_from([b"[1, 2]", b"null", b'"text"', b"{}", b"   ", b'{"id": "n", "text": "x", "meta": {"v": NaN}}',
                     b'{"id": "deep", "text": ' + b"[" * 3000 + b"]" * 3000 + b"}"]),
)
files = st.tuples(st.lists(lines, max_size=10), st.booleans(), st.booleans())


def _render(parts) -> bytes:
    body, bom, crlf = parts
    data = (b"\r\n" if crlf else b"\n").join(body) + (b"\n" if body else b"")
    return (b"\xef\xbb\xbf" if bom else b"") + data


def _records_in(data: bytes) -> int:
    """Non-blank lines: what every reader counts as a record."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return sum(1 for line in data.split(b"\n") if line.strip())


def _check_clean(result, folder: Path, label: str) -> None:
    assert result.exit_code in (0, 2), f"{label}: exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    assert "Traceback" not in result.output, label
    if result.exit_code == 2:
        errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and result.output.rstrip().endswith(errors[0]), (label, result.output)
    left = sorted(p.name for p in folder.rglob("*") if p.name.endswith((".tmp", ".lock")))
    assert left == [], (label, left)


def _jsonl_lines(path: Path) -> list[str]:
    """Lines as JSONL defines them (``\\n`` only: U+0085 or U+2028 inside a string is text)."""
    return [line for line in path.read_text(encoding="utf-8").split("\n") if line]


def _check_reconciled(result, out: Path, expected_read: int | None, label: str, *, lines_are_records=True):
    """After exit 0: the manifest's counts reconcile, match the files, and every reject line
    has its reason, location and raw record."""
    assert result.exit_code == 0, (label, result.output)
    stem = out.name[: -len(".jsonl")]
    counts = json.loads((out.parent / f"{stem}.manifest.json").read_text())["counts"]
    assert counts["read"] == counts["written"] + counts["rejected"], (label, counts)
    if expected_read is not None:
        assert counts["read"] == expected_read, (label, counts, expected_read)
    if lines_are_records:
        assert len(_jsonl_lines(out)) == counts["written"], label
    rejects = out.parent / f"{stem}.rejects.jsonl"
    rows = [json.loads(line) for line in _jsonl_lines(rejects)] if rejects.exists() else []
    assert len(rows) == counts["rejected"], (label, counts)
    for row in rows:
        assert row["reason"] and row["raw"] is not None and row["location"], (label, row)


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory, tiny_tokenizer, tiny_bert_config):
    import torch
    from transformers import BertForSequenceClassification

    labels = ["cardio", "ortho"]
    cfg = tiny_bert_config.__class__(**{**tiny_bert_config.to_dict(), "num_labels": 2,
                                        "id2label": dict(enumerate(labels)), "label2id": {l: i for i, l in enumerate(labels)}})
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("abuse_clf")
    BertForSequenceClassification(cfg).save_pretrained(out)
    tiny_tokenizer.save_pretrained(out)
    (out / "domainfm_task.json").write_text(json.dumps({
        "task": "classification", "labels": labels, "method": "full", "merged": False,
        "base_model": {"name": "tiny", "resolved": str(out)}, "max_length": 32,
        "long_documents": {"strategy": "truncate"}, "text_field": "text", "label_field": "label"}))
    return out


@pytest.fixture()
def small_windows(monkeypatch):
    """Long texts of the battery go through windowed detection too."""
    monkeypatch.setattr(windows, "WINDOW_CHARS", 4_000)
    monkeypatch.setattr(windows, "OVERLAP_CHARS", 400)


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(parts=files)
def test_hostile_jsonl_through_every_command(parts, cli, tiny_model_dir, tiny_classifier, small_windows, monkeypatch):
    monkeypatch.setenv("DOMAINFM_VAULT_KEY", "battery-" * 5)
    data = _render(parts)
    n = _records_in(data)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "in.jsonl"
        src.write_bytes(data)
        (tmp / "seeds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in SEEDS))
        tok = ["--tokenizer", tiny_model_dir, "--max-tokens", "32", "--overlap", "4"]
        reconciled = {
            "import": (["import", "jsonl", src, "-o", tmp / "imp.jsonl"], tmp / "imp.jsonl", True),
            "deid": (["deid", src, "-o", tmp / "deid.jsonl", "--seed", "1", "--vault", tmp / "v.db"],
                     tmp / "deid.jsonl", True),
            "chunk": (["chunk", src, "-o", tmp / "ch.jsonl", *tok], tmp / "ch.jsonl", False),
            "predict": (["predict", tiny_classifier, src, "-o", tmp / "pred.jsonl"], tmp / "pred.jsonl", True),
            "label": (["label", "--labeled", tmp / "seeds.jsonl", "--pool", src, "-o", tmp / "lab.jsonl",
                       "--model", tiny_model_dir, "--lsa-dims", "0"], tmp / "lab.jsonl", True),
        }
        for name, (args, out, lines_are_records) in reconciled.items():
            result = cli(*args)
            _check_clean(result, tmp, name)
            if name == "label" and result.exit_code == 2:
                continue  # a pool with no valid document is refused as a whole
            _check_reconciled(result, out, n, name, lines_are_records=lines_are_records)
        if (tmp / "deid.jsonl").exists():
            back = cli("reidentify", tmp / "deid.jsonl", "-o", tmp / "back.jsonl", "--vault", tmp / "v.db")
            _check_clean(back, tmp, "reidentify")
            assert back.exit_code == 0, back.output
        strict = {
            "summary": ["summary", src],
            "evaluate": ["evaluate", tiny_classifier, src, "-o", tmp / "eval.json"],
            "audit": ["audit", tiny_classifier, src, "-o", tmp / "audit", "--group-by", "meta.sex",
                      "--bootstrap", "10", "--counterfactuals", "", "--min-group-size", "1"],
            "deid-eval": ["deid-eval", src, tmp / "imp.jsonl", "-o", tmp / "deval.json"],
        }
        for name, args in strict.items():
            result = cli(*args)
            _check_clean(result, tmp, name)


csv_cells = st.one_of(st.sampled_from(NASTY_TEXTS[:9] + ["", "a,b", 'quote " inside', "multi\nline", "s1"]),
                      st.text(max_size=20))
csv_rows = st.lists(st.lists(csv_cells, min_size=0, max_size=4), max_size=8)


def _render_csv(rows, bom: bool, crlf: bool, garbage: bytes) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n" if crlf else "\n")
    writer.writerow(["id", "text", "label"])
    for row in rows:
        writer.writerow(row)
    data = buffer.getvalue().encode("utf-8", "surrogatepass") + garbage
    return (b"\xef\xbb\xbf" if bom else b"") + data


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(rows=csv_rows, bom=st.booleans(), crlf=st.booleans(), garbage=st.sampled_from([b"", b"\xff\xfe,x,y\n", b'"open']))
def test_hostile_csv_is_imported_or_rejected_row_by_row(rows, bom, crlf, garbage, cli):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "in.csv"
        src.write_bytes(_render_csv(rows, bom, crlf, garbage))
        out = tmp / "out.jsonl"
        result = cli("import", "csv", src, "-o", out, "--id-col", "id", "--label-col", "label")
        _check_clean(result, tmp, "import csv")
        _check_reconciled(result, out, None, "import csv")


def test_hostile_input_to_training_commands_is_an_error_line(cli, tmp_path, tiny_model_dir):
    """pretrain and finetune read a validated corpus: the first bad record (or the privacy
    gate) stops them with one error line naming its location, and no output is written."""
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"id": "a", "text": "fine"}\n{"id": "a", "text": "\\ud800"}\nnot json\n')
    task = tmp_path / "ft.yaml"
    task.write_text(f"task: classification\nmodel: {{name: {tiny_model_dir}}}\ndata: {{train: {src}}}\n"
                    "allow_identified_data: true\n")
    pre = tmp_path / "pre.yaml"
    pre.write_text(f"model: {{name: {tiny_model_dir}}}\ndata: {{paths: [{src}]}}\ntrain: {{max_steps: 1}}\n")
    for args in (["finetune", task, "-o", tmp_path / "ft"], ["pretrain", pre, "-o", tmp_path / "pt"],
                 ["pretrain", pre, "-o", tmp_path / "pt", "--allow-identified-data"]):
        result = cli(*args)
        _check_clean(result, tmp_path, args[0])
        assert result.exit_code == 2, result.output
        assert not (tmp_path / "ft" / "manifest.json").exists() and not (tmp_path / "pt" / "manifest.json").exists()


def test_an_internal_error_rejects_the_record_with_its_location_and_raw_record(tmp_path, monkeypatch, caplog):
    from domainfm.deid import transform
    from domainfm.deid.config import DeidConfig
    from domainfm.deid.runner import deidentify_file

    original = transform.apply_operator

    def flaky(doc, *args, **kwargs):
        if doc.id.startswith("bad"):
            raise ValueError("a bug")
        return original(doc, *args, **kwargs)

    monkeypatch.setattr(transform, "apply_operator", flaky)
    rows = [{"id": f"{'bad' if i % 3 == 0 else 'ok'}{i}", "text": f"Seen by Dr. Lee on visit {i}."} for i in range(9)]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with caplog.at_level("ERROR", logger="domainfm.deid"):
        result = deidentify_file(src, tmp_path / "out.jsonl", DeidConfig(operator="tag"), seed=1)
    assert (result.counts.read, result.counts.written, result.counts.rejected) == (9, 6, 3)
    rejects = [json.loads(x) for x in (tmp_path / "out.rejects.jsonl").read_text().splitlines()]
    assert [r["location"] for r in rejects] == ["in.jsonl:1", "in.jsonl:4", "in.jsonl:7"]
    assert all(json.loads(r["raw"])["text"] == rows[int(r["id"][3:])]["text"] for r in rejects)
    assert all(r["reason"] == "internal error (ValueError) while de-identifying" for r in rejects)
    assert len([r for r in caplog.records if "internal error" in r.getMessage()]) == 1  # not one line per record
    assert not any(r["id"] in m.getMessage() for r in rejects for m in caplog.records)  # ids may be record numbers


def test_predict_on_an_empty_file_writes_an_empty_output(cli, tmp_path, tiny_classifier):
    (tmp_path / "empty.jsonl").write_text("")
    result = cli("predict", tiny_classifier, tmp_path / "empty.jsonl", "-o", tmp_path / "pred.jsonl")
    assert result.exit_code == 0 and "read 0 = written 0 + rejected 0" in result.output, result.output
    assert (tmp_path / "pred.jsonl").read_text() == ""


def test_the_console_says_how_many_more_rejects_the_file_holds(cli, tmp_path):
    (tmp_path / "in.jsonl").write_text("".join(f"broken {i}\n" for i in range(8)) + '{"id": "a", "text": "x"}\n')
    result = cli("import", "jsonl", tmp_path / "in.jsonl", "-o", tmp_path / "o.jsonl")
    assert result.exit_code == 0 and "read 9 = written 1 + rejected 8" in result.output
    assert "... and 3 more in" in result.output


def test_a_pipeline_on_hostile_input_reconciles_every_stage(cli, tmp_path, tiny_model_dir):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'\xef\xbb\xbf{"id": "a", "text": "Seen by Dr. Lee."}\r\n{"id": "a", "text": "dup"}\r\n'
                    b'{"id": "b", "text": "\\ud800"}\r\nnot json\r\n{"id": 7, "text": "bell\\u0007 Okafor"}\r\n\xff\xfe\r\n')
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(f"run_dir: {tmp_path / 'run'}\nimport: {{format: jsonl, src: {src}}}\n"
                        "deid: {profile: clinical, operator: tag}\n"
                        f"chunk: {{tokenizer: {tiny_model_dir}, max_tokens: 32, overlap: 4}}\n")
    result = cli("run", pipeline)
    _check_clean(result, tmp_path, "run")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "run.json").read_text())
    counts = {s["name"]: s["counts"] for s in summary["stages"] if s["status"] == "ran"}
    assert {k: counts["import"][k] for k in ("read", "written", "rejected")} == {"read": 6, "written": 2, "rejected": 4}
    for stage, name in (("deid", "corpus"), ("chunk", "chunks")):
        stage_counts = json.loads((tmp_path / "run" / stage / f"{name}.manifest.json").read_text())["counts"]
        assert stage_counts["read"] == 2 and stage_counts["reconciles"], (stage, stage_counts)
