"""Provenance: the manifest names config, versions and input hashes, and changes with input."""

from __future__ import annotations

import json

from domainfm.manifest import describe_input, manifest_path_for, relocate, write_manifest


def test_manifest_beside_file_and_folder(tmp_path):
    out_file = tmp_path / "corpus.jsonl"
    out_file.write_text("{}\n")
    assert manifest_path_for(out_file) == tmp_path / "corpus.manifest.json"
    folder = tmp_path / "model"
    folder.mkdir()
    assert manifest_path_for(folder) == folder / "manifest.json"


def test_folder_hash_changes_with_content_and_names(tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "a.txt").write_text("one")
    first = describe_input(folder)
    (folder / "a.txt").write_text("two")
    second = describe_input(folder)
    (folder / "a.txt").rename(folder / "b.txt")
    third = describe_input(folder)
    assert len({first["sha256"], second["sha256"], third["sha256"]}) == 3
    assert first["files"] == 1 and first["kind"] == "folder"


def test_write_manifest_contents(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("x\n")
    out = tmp_path / "out.jsonl"
    out.write_text("y\n")
    path = write_manifest(out, stage="import", config={"format": "jsonl"}, inputs=[src], outputs=[out],
                          counts={"read": 1})
    manifest = json.loads(path.read_text())
    assert manifest["stage"] == "import" and manifest["config"] == {"format": "jsonl"}
    assert manifest["inputs"][0]["sha256"] == __import__("hashlib").sha256(b"x\n").hexdigest()
    assert manifest["environment"]["packages"]["torch"]


def test_paths_inside_the_run_folder_are_recorded_relative_to_the_manifest_too(tmp_path):
    run = tmp_path / "run"
    for name in ("deid/corpus.jsonl", "chunk/chunks.jsonl"):
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text("{}\n")
    corpus = tmp_path / "notes.jsonl"  # beside the run folder, not in it
    corpus.write_text("{}\n")
    path = write_manifest(run / "chunk" / "chunks.jsonl", stage="chunk", config={},
                          inputs=[run / "deid" / "corpus.jsonl", corpus], outputs=[run / "chunk" / "chunks.jsonl"])
    manifest = json.loads(path.read_text())
    inside, outside = manifest["inputs"]
    assert inside["path"] == str(run / "deid" / "corpus.jsonl") and inside["relative"] == "../deid/corpus.jsonl"
    assert outside["path"] == str(corpus) and "relative" not in outside
    assert manifest["outputs"][0]["relative"] == "chunks.jsonl"


def test_relocate_moves_paths_inside_the_run_folder_only(tmp_path):
    was, now = tmp_path / "old" / "run" / "finetune" / "model", tmp_path / "new" / "run" / "finetune" / "model"
    moved = relocate(tmp_path / "old" / "run" / "pretrain" / "model", was, now)
    assert moved == tmp_path / "new" / "run" / "pretrain" / "model"
    assert relocate(tmp_path / "old" / "base", was, now) is None
    assert relocate("/old/base", "/old/model", "/new/model") is None  # the run folder would be the drive's root
