"""De-identification of documents longer than spaCy takes at once: overlapping windows whose
detections map back to document offsets, with names propagated across windows."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domainfm.corpus.document import Document
from domainfm.deid import windows
from domainfm.deid.detection import Detection
from domainfm.deid.windows import Windowed, detect_windowed, plan_windows


@given(length=st.integers(1, 5000), size=st.integers(20, 800), data=st.data())
def test_windows_cover_the_text_and_own_every_character_once(length, size, data):
    overlap = data.draw(st.integers(0, size // 2 - 1))
    text = data.draw(st.text(alphabet="ab \n.", min_size=length, max_size=length))
    plan = plan_windows(length, size=size, overlap=overlap, text=text)
    assert plan[0].start == 0 and plan[-1].end == length
    assert all(w.end - w.start <= size for w in plan)
    assert plan[0].own_start == 0 and plan[-1].own_end == length
    for before, after in zip(plan, plan[1:]):
        assert before.own_end == after.own_start  # owned parts tile the text
        assert after.start <= before.end  # windows overlap (or touch)
        assert before.start < after.start  # progress
    for w in plan:
        assert w.start <= w.own_start <= w.own_end <= w.end


CAPITALISED = re.compile(r"[A-Z][a-z]+")


def _fake_detect(docs):
    """A stand-in detector: every capitalised word is a NAME (context-free, so windowing must
    give exactly what the whole text gives)."""
    for doc in docs:
        yield doc, [Detection(m.start(), m.end(), "NAME", 0.9, "fake") for m in CAPITALISED.finditer(doc.text)]


@settings(max_examples=60, deadline=None)
@given(words=st.lists(st.sampled_from(["Lee", "Okafor", "knee", "pain", "\n", "\n\n", "was", "Marta.", "x"]),
                      min_size=0, max_size=400),
       size=st.integers(40, 300))
def test_windowed_detection_equals_whole_text_detection(words, size):
    docs = [Document("short", "Seen by Lee."), Document("long", " ".join(words)), Document("after", "Okafor")]
    whole = [(d.id, found) for d, found in _fake_detect(docs)]
    windowed = [(d.id, found) for d, found in detect_windowed(_fake_detect, docs, size=size, overlap=size // 4)]
    assert [i for i, _ in windowed] == ["short", "long", "after"]
    assert windowed == whole


def test_windowed_gives_back_the_same_document_objects_in_order():
    docs = [Document(f"d{i}", "Ann " * (i * 30)) for i in range(5)]
    w = Windowed(size=50, overlap=10)
    pieces = list(w.split(docs))
    assert len(pieces) > len(docs) and max(len(p.text) for p in pieces) <= 50
    out = list(w.join(_fake_detect(pieces)))
    assert [d for d, _ in out] == docs and all(len(found) == d.text.count("Ann") for d, found in out)


def test_a_long_note_is_deidentified_with_offsets_and_names_across_windows(tmp_path, monkeypatch):
    from domainfm.deid.config import DeidConfig
    from domainfm.deid.runner import deidentify_file

    monkeypatch.setattr(windows, "WINDOW_CHARS", 2_000)
    monkeypatch.setattr(windows, "OVERLAP_CHARS", 200)
    filler = "The knee was examined and the pain is better with rest today. "
    paragraphs = ["Daughter Marguerite Okonkwo called about the visit on 03/04/2021."]
    paragraphs += [filler * 3 + ("Okonkwo was stable." if i % 4 == 3 else "") for i in range(40)]
    text = "\n\n".join(paragraphs)
    assert len(text) > 3 * windows.WINDOW_CHARS
    src = tmp_path / "long.jsonl"
    src.write_text(json.dumps({"id": "long", "text": text}) + "\n" + json.dumps({"id": "b", "text": "ok"}) + "\n")
    result = deidentify_file(src, tmp_path / "out.jsonl", DeidConfig(operator="tag"), seed=1)
    assert result.counts.to_dict()["read"] == 2 and result.counts.written == 2
    record = json.loads((tmp_path / "out.jsonl").read_text().splitlines()[0])
    assert "Okonkwo" not in record["text"] and "Marguerite" not in record["text"]
    found = {text[s["start"]:s["end"]] for s in record["phi_spans"]}  # input coordinates
    assert {"Okonkwo", "03/04/2021"} <= found or "Marguerite Okonkwo" in found
    surnames = [s for s in record["phi_spans"] if text[s["start"]:s["end"]] == "Okonkwo"]
    assert len(surnames) >= text.count("Okonkwo was stable")  # found again far beyond the first window
    # the same ranges replaced as by one pass over the whole note (cuts fall between paragraphs; a
    # label may differ where a recognizer used context from another window)
    monkeypatch.setattr(windows, "WINDOW_CHARS", 100_000)
    deidentify_file(src, tmp_path / "whole.jsonl", DeidConfig(operator="tag"), seed=1)
    whole = json.loads((tmp_path / "whole.jsonl").read_text().splitlines()[0])
    key = lambda s: (s["start"], s["end"])  # noqa: E731
    assert sorted(map(key, record["phi_spans"])) == sorted(map(key, whole["phi_spans"]))


@pytest.mark.slow
def test_a_document_over_a_million_characters_is_deidentified_not_rejected(tmp_path):
    from domainfm.deid.config import DeidConfig
    from domainfm.deid.runner import deidentify_file

    text = "\n\n".join(("Okonkwo was stable. " if i % 300 == 0 else "") + "the knee pain is better today. " * 4
                       for i in range(9_000))
    text = "Daughter Marguerite Okonkwo called.\n\n" + text
    assert len(text) > 1_000_000
    src = tmp_path / "huge.jsonl"
    src.write_text(json.dumps({"id": "huge", "text": text}) + "\n")
    result = deidentify_file(src, tmp_path / "out.jsonl", DeidConfig(operator="tag"), seed=1)
    assert result.counts.written == 1 and result.counts.rejected == 0
    assert "Okonkwo" not in json.loads((tmp_path / "out.jsonl").read_text())["text"]
