"""Provenance: the manifest names config, versions and input hashes, and changes with input."""

from __future__ import annotations

import json

from domainfm.manifest import describe_input, manifest_path_for, write_manifest


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
