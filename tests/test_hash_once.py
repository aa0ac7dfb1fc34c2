"""Each file is hashed once per run (:func:`domainfm.manifest.hashing_once`), and a digest is
never handed back for a file that changed since it was read.

The hashing function is wrapped to count its readings per file. The files here are tiny and
written a moment before they are read, so most tests set ``HASH_BYTES_PER_S`` to 1 byte/s: every
file then counts as one that takes longer to hash again than to wait for its timestamps to
settle (as a file of hundreds of MB does), and the runs keep each digest.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path

import pytest

import domainfm.manifest as manifest
from domainfm import pipeline as pl
from domainfm.manifest import describe_input, hashing_once, sha256_file, write_manifest

import test_pretrain
from conftest import TINY_TEXTS, swap_stage

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NOTES = [
    "CHIEF COMPLAINT: chest pain. Patient Jane Roe, seen on 03/04/2021 at General Hospital.",
    "HISTORY OF PRESENT ILLNESS: 58 year old man with hypertension. Call 555-010-2345.",
    "ASSESSMENT AND PLAN: aspirin, heparin. Follow up with Dr. Sam Poe.",
]


@pytest.fixture()
def readings(monkeypatch) -> Counter:
    """Counts each reading of a file's bytes for its sha256, by resolved path."""
    counted: Counter = Counter()
    real = manifest.sha256_file

    def counting(path, *args, **kwargs):
        counted[Path(path).resolve()] += 1
        return real(path, *args, **kwargs)

    monkeypatch.setattr(manifest, "sha256_file", counting)
    return counted


@pytest.fixture()
def wait_to_keep(monkeypatch):
    monkeypatch.setattr(manifest, "HASH_BYTES_PER_S", 1)


def _rewrite_in_place(path: Path, text: str) -> None:
    """New content of the same size in the same inode, its mtime set back to what it was: only
    the ctime (which no one can set) tells the change."""
    before = path.stat()
    assert len(text.encode()) == before.st_size
    with open(path, "r+b") as fh:
        fh.write(text.encode())
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


# ----------------------------------------------------------------------------------- pipeline


@pytest.fixture()
def pipeline(tmp_path):
    src = tmp_path / "notes.jsonl"
    src.write_text("".join(json.dumps({"id": f"n{i}", "text": t}) + "\n" for i, t in enumerate(NOTES)),
                   encoding="utf-8")
    return {"run_dir": str(tmp_path / "run"), "seed": 13, "import": {"format": "jsonl", "src": str(src)},
            "deid": {"profile": "clinical"},
            "chunk": {"tokenizer": "minilm", "max_tokens": 64, "overlap": 8, "profile": "clinical"}}


def test_a_pipeline_run_reads_each_file_once_and_records_what_is_there(pipeline, tmp_path, readings,
                                                                        wait_to_keep):
    pl.run_pipeline(pipeline)
    run = tmp_path / "run"
    # the imported and the de-identified corpus were hashed by their stage's manifest, the
    # pipeline's record, and the next stage's key, record and manifest: five readings each before
    assert {p: n for p, n in readings.items() if n > 1} == {}
    assert readings[(run / "deid" / "corpus.jsonl").resolve()] == 1
    assert readings[(tmp_path / "notes.jsonl").resolve()] == 1
    # what was recorded is what the files hold
    for stage, output in (("import", "corpus.jsonl"), ("deid", "corpus.jsonl"), ("chunk", "chunks.jsonl")):
        record = json.loads((run / stage / "stage.json").read_text())
        assert record["sha256"][output] == hashlib.sha256((run / stage / output).read_bytes()).hexdigest()
        written = json.loads(manifest.manifest_path_for(run / stage / output).read_text())
        for entry in written["inputs"] + written["outputs"]:
            assert entry["sha256"] == hashlib.sha256(Path(entry["path"]).read_bytes()).hexdigest()


def test_an_output_rewritten_during_the_run_is_read_again(pipeline, tmp_path, monkeypatch, readings, wait_to_keep):
    from domainfm.chunk import stage as chunk_stage

    deidentified = tmp_path / "run" / "deid" / "corpus.jsonl"

    def chunk_after_an_edit(config, inputs, out, context):
        text = deidentified.read_text(encoding="utf-8")
        _rewrite_in_place(deidentified, text.replace("n0", "n9", 1))
        return chunk_stage.run(config, inputs, out, context)

    swap_stage(monkeypatch, "chunk", chunk_after_an_edit)
    pl.run_pipeline(pipeline)
    now = sha256_file(deidentified)
    chunk_manifest = json.loads((tmp_path / "run" / "chunk" / "chunks.manifest.json").read_text())
    assert chunk_manifest["inputs"][0]["sha256"] == now
    deid_record = json.loads((tmp_path / "run" / "deid" / "stage.json").read_text())
    assert deid_record["sha256"]["corpus.jsonl"] != now  # what the deid stage wrote; the chunk key had it too
    assert readings[deidentified.resolve()] == 2


def test_a_cached_rerun_reads_each_output_once(pipeline, tmp_path, readings, wait_to_keep):
    pl.run_pipeline(pipeline)
    readings.clear()
    result = pl.run_pipeline(pipeline)
    assert [s.status for s in result.stages[:3]] == ["cached"] * 3
    # checking a cached stage's outputs and keying the next stage on them share one reading
    assert {p: n for p, n in readings.items() if n > 1} == {}
    assert readings[(tmp_path / "run" / "import" / "corpus.jsonl").resolve()] == 1


# ----------------------------------------------------------------------------------- training


tiny_mlm_dir = test_pretrain.tiny_mlm_dir  # the fixture, shared


def _deidentified_corpus(path: Path, n: int = 60) -> Path:
    """Made-up notes, three per patient, with a deid manifest that vouches for them."""
    docs = [{"id": f"note-{i}", "text": f"{TINY_TEXTS[i % len(TINY_TEXTS)]} {TINY_TEXTS[(i * 3) % len(TINY_TEXTS)]}",
             "label": "cardio" if i % 2 else "legal", "meta": {"patient_id": f"p{i // 3}"}} for i in range(n)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    write_manifest(path, stage="deid", config={}, outputs=[path])
    return path


def _pretrain_config(model_dir: Path, corpus: Path):
    from domainfm.config import from_dict
    from domainfm.pretrain import PretrainConfig

    return from_dict(PretrainConfig, {
        "model": {"name": str(model_dir)}, "data": {"paths": [str(corpus)], "eval_fraction": 0.15},
        "masking": {"seq_len": 32}, "train": {"max_steps": 2, "batch_size": 4, "lr": 1e-3, "warmup_ratio": 0.0}})


def test_a_pretrain_run_and_its_resume_read_the_data_once(tmp_path, tiny_mlm_dir, readings, wait_to_keep):
    from domainfm.pretrain import pretrain

    corpus = _deidentified_corpus(tmp_path / "deid" / "notes.jsonl").resolve()
    cfg = _pretrain_config(tiny_mlm_dir, corpus)
    readings.clear()
    first = pretrain(cfg, tmp_path / "out")
    # the privacy gate, the digests checkpoints record and the manifest: three readings before
    assert readings[corpus] == 1
    assert json.loads(first.manifest.read_text())["inputs"][0]["sha256"] == sha256_file(corpus)

    readings.clear()
    pretrain(cfg, tmp_path / "out", resume=True)  # a finished run, handed back after its data is checked
    assert readings[corpus] == 1  # the privacy gate and the finished run's check


def test_data_rewritten_during_training_is_recorded_as_it_is_now(tmp_path, tiny_mlm_dir, wait_to_keep):
    from domainfm.pretrain import pretrain

    corpus = _deidentified_corpus(tmp_path / "deid" / "notes.jsonl")
    cfg = _pretrain_config(tiny_mlm_dir, corpus)
    read_at_start = sha256_file(corpus)
    edited = []

    def edit_once(event):
        if event["kind"] == "step" and not edited:
            _rewrite_in_place(corpus, corpus.read_text(encoding="utf-8").replace("note-0", "note-X", 1))
            edited.append(True)

    result = pretrain(cfg, tmp_path / "out", on_event=edit_once)
    assert edited
    recorded = json.loads(result.manifest.read_text())["inputs"][0]["sha256"]
    assert recorded == sha256_file(corpus) != read_at_start


def test_a_finetune_run_reads_its_data_once(tmp_path, tiny_model_dir, readings, wait_to_keep):
    from domainfm.config import load_config
    from domainfm.finetune import TaskConfig, finetune

    corpus = _deidentified_corpus(tmp_path / "deid" / "notes.jsonl").resolve()
    cfg = load_config(TaskConfig, overrides={
        "task": "classification", "model.name": str(tiny_model_dir), "model.max_length": 64,
        "data.train": str(corpus), "data.eval_fraction": 0.25, "lora.r": 2, "lora.lora_alpha": 4,
        "lora.target_modules": ["query", "value"], "long_documents.strategy": "truncate", "train.max_steps": 2,
        "train.batch_size": 8})
    readings.clear()
    result = finetune(cfg, tmp_path / "out")
    # the checkpoints' digests, the privacy gate and the manifest: three readings before
    assert readings[corpus] == 1
    assert json.loads(result.manifest.read_text())["inputs"][0]["sha256"] == sha256_file(corpus)


# ------------------------------------------------------------------------------- FileDigests


def test_a_file_changed_in_place_with_its_mtime_set_back_is_read_again(tmp_path, readings, wait_to_keep):
    path = tmp_path / "data.jsonl"
    path.write_text('{"id": "a"}\n', encoding="utf-8")
    with hashing_once():
        first = describe_input(path)["sha256"]
        assert describe_input(path)["sha256"] == first and readings[path.resolve()] == 1
        _rewrite_in_place(path, '{"id": "b"}\n')
        assert describe_input(path)["sha256"] == sha256_file(path) != first


def test_a_file_replaced_under_its_name_is_read_again(tmp_path, wait_to_keep):
    path, replacement = tmp_path / "data.jsonl", tmp_path / "data.jsonl.tmp"
    path.write_text('{"id": "a"}\n', encoding="utf-8")
    with hashing_once():
        first = describe_input(path)["sha256"]
        replacement.write_text('{"id": "b"}\n', encoding="utf-8")
        os.utime(replacement, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns))
        os.replace(replacement, path)  # how domainfm writes its outputs: a new file renamed into place
        assert describe_input(path)["sha256"] == sha256_file(path) != first


def test_a_file_that_has_not_settled_is_not_kept_when_hashing_it_again_is_cheaper(tmp_path, monkeypatch, readings):
    # a later write within the timestamp step could leave its stat as it is
    monkeypatch.setattr(manifest, "SETTLE_NS", 3600 * 10**9)
    path = tmp_path / "data.jsonl"
    path.write_text('{"id": "a"}\n', encoding="utf-8")
    with hashing_once():
        describe_input(path)
        describe_input(path)
    assert readings[path.resolve()] == 2


def test_outside_a_run_every_call_reads_the_file(tmp_path, readings, wait_to_keep):
    path = tmp_path / "data.jsonl"
    path.write_text('{"id": "a"}\n', encoding="utf-8")
    with hashing_once():
        describe_input(path)
    describe_input(path)
    describe_input(path)
    assert readings[path.resolve()] == 3


def test_a_run_inside_another_shares_its_digests(tmp_path, readings, wait_to_keep):
    path = tmp_path / "data.jsonl"
    path.write_text('{"id": "a"}\n', encoding="utf-8")
    with hashing_once() as outer:
        describe_input(path)
        with hashing_once() as inner:
            describe_input(path)
    assert inner is outer and readings[path.resolve()] == 1
