"""Few-shot span suggestions: tagging, decoding, ranking units (fast) and the whole command on
the embedded encoder (slow)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from domainfm.corpus.document import Document, Span
from domainfm.corpus.io import write_documents
from domainfm.errors import ConfigError
from domainfm.label.active import rank_scores, uncertainty
from domainfm.label.span_config import SpanLabelConfig
from domainfm.label.spans import _Chunk, _merge_chunk_spans, decode, tag_names, word_tags


def _chunk(text: str) -> _Chunk:
    starts, ends, pos = [], [], 0
    for w in text.split(" "):
        starts.append(pos)
        ends.append(pos + len(w))
        pos += len(w) + 1
    return _Chunk(0, np.array(starts), np.array(ends), np.arange(len(starts)), None, len(starts))


def test_word_tags_and_decode_round_trip():
    text = "no sign of breast cancer or asthma"
    c = _chunk(text)
    spans = [Span(11, 24, "Disease"), Span(28, 34, "Disease")]
    tags = word_tags(c, spans, {"Disease": 0})
    assert tag_names(["Disease"]) == ["O", "B-Disease", "I-Disease"]
    assert tags.tolist() == [0, 0, 0, 1, 2, 0, 1]
    probs = np.eye(3)[tags] * 0.8 + 0.2 / 3
    found = decode(c, probs, ["Disease"])
    assert [(s, e, lab) for s, e, lab, _ in found] == [(11, 24, "Disease"), (28, 34, "Disease")]
    assert all(0 < conf <= 1 for *_, conf in found)


def test_merge_of_overlapping_chunk_spans_keeps_the_more_confident():
    merged = _merge_chunk_spans([(0, 5, "A", 0.6), (0, 5, "A", 0.9), (3, 8, "B", 0.7), (10, 12, "A", 0.5)])
    assert merged == [(0, 5, "A", 0.9), (10, 12, "A", 0.5)]


def test_rank_scores_puts_uncertain_first_and_skips_near_duplicates():
    u = np.array([0.9, 0.89, 0.1, 0.5])
    emb = np.array([[1, 0], [1, 0], [0, 1], [0.7, 0.7]], dtype=float)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    ranks = rank_scores(u, emb, diversity=0.5)
    assert ranks[0] == 1 and ranks[1] > 2  # the duplicate of item 0 waits
    assert ranks.tolist() == rank_scores(u, emb, diversity=0.5).tolist()
    assert np.allclose(uncertainty(np.stack([1 - u / 2, u / 2], 1)), u)


def test_span_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="'calibration_folds'.*0 \\(off\\) or >= 2"):
        SpanLabelConfig(calibration_folds=1)
    with pytest.raises(ConfigError, match="'deid_prior'"):
        SpanLabelConfig(deid_prior="maybe")
    with pytest.raises(ConfigError, match="'min_steps'.*'max_steps'"):
        SpanLabelConfig(min_steps=10, max_steps=5)


NOTES = [
    ("Patient has diabetes and asthma.", ["diabetes", "asthma"]),
    ("No asthma. Known migraine.", ["asthma", "migraine"]),
    ("Diabetes controlled, migraine resolved.", ["Diabetes", "migraine"]),
    ("Seen for asthma and eczema.", ["asthma", "eczema"]),
    ("Eczema flare; diabetes stable.", ["Eczema", "diabetes"]),
    ("Migraine with aura, no diabetes.", ["Migraine", "diabetes"]),
]


def _docs():
    out = []
    for i, (text, words) in enumerate(NOTES):
        out.append(Document(f"d{i}", text, spans=[Span(text.index(w), text.index(w) + len(w), "Disease") for w in words]))
    return out


@pytest.mark.slow
def test_label_task_ner_command_writes_suggestions_exports_and_manifest(tmp_path, cli):
    docs = _docs()
    write_documents(tmp_path / "seeds.jsonl", docs[:4])
    pool = [Document(d.id, d.text) for d in docs[4:]] + [Document("empty", "   ")]
    write_documents(tmp_path / "pool.jsonl", pool)
    result = cli("label", "--task", "ner", "--labeled", tmp_path / "seeds.jsonl", "--pool", tmp_path / "pool.jsonl",
                 "-o", tmp_path / "out.jsonl", "--export", "labelstudio", "--export", "prodigy")
    assert result.exit_code == 0, result.output
    assert "read 3 = written 2 + rejected 1" in result.output
    records = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert sorted(r["meta"]["rank"] for r in records) == [1, 2]
    for r in records:
        for s in r["meta"]["suggestion"]["spans"]:
            assert 0 <= s["confidence"] <= 1 and s["source"] == "model"
            assert r["text"][s["start"]:s["end"]].strip() == r["text"][s["start"]:s["end"]]
    tasks = json.loads((tmp_path / "out.labelstudio.json").read_text())
    assert [t["meta"]["rank"] for t in tasks] == [1, 2]
    assert "<Label value=\"Disease\"/>" in (tmp_path / "out.labelstudio.json.config.xml").read_text()
    manifest = json.loads((tmp_path / "out.manifest.json").read_text())
    assert manifest["summary"]["labels"] == ["Disease"] and manifest["summary"]["calibration"]["folds"] == 4  # the probe's
    # the exported suggestions come back in with the importer: same spans
    from domainfm.corpus.importing import import_corpus

    back = import_corpus("labelstudio", tmp_path / "out.labelstudio.json", tmp_path / "back.jsonl",
                         {"use_predictions": True})
    assert back.counts.written == 2
    bad = cli("label", "--task", "ner", "--labeled", tmp_path / "seeds.jsonl", "-o", tmp_path / "x.jsonl")
    assert bad.exit_code == 2 and "--task ner needs --pool" in bad.output


def _pattern_docs(n: int, offset: int = 0) -> list[Document]:
    """'fever' and 'cough' are always the span, whatever words come around them: learnable by
    any working tagger, invisible to an untrained one."""
    fillers = ["the patient", "arm pain", "chest", "notice", "court", "agreement", "party", "state"]
    docs = []
    for i in range(offset, offset + n):
        a, b = fillers[i % len(fillers)], fillers[(3 * i + 1) % len(fillers)]
        word = "fever" if i % 2 else "cough"
        text = f"{a} with {word} and {b}"
        start = text.index(word)
        docs.append(Document(f"d{i}", text, spans=[Span(start, start + len(word), "Disease")]))
    return docs


@pytest.mark.slow  # 60 training steps: about a minute on a loaded 2-core machine
def test_finetune_method_learns_a_trivial_span_pattern(tiny_model_dir):
    from domainfm.label.spans import suggest_spans

    seeds, pool = _pattern_docs(12), _pattern_docs(6, offset=40)
    cfg = SpanLabelConfig(method="finetune", encoder=str(tiny_model_dir), max_tokens=32, overlap=4, epochs=40,
                          min_steps=60, max_steps=60, batch_size=4, finetune_lr=5e-3, lora_r=4,
                          calibration_folds=0, deid_prior="off")  # one training: keeps the test short
    result = suggest_spans(seeds, [Document(d.id, d.text) for d in pool], cfg)
    gold = {(d.id, s.start, s.end) for d in pool for s in d.spans}
    found = {(d.id, s.start, s.end) for d, spans in zip(result.docs, result.spans) for s in spans}
    assert len(gold & found) >= 4, (gold, found)  # an untrained head finds none of them
    assert result.summary["method"] == "finetune" and result.summary["steps"] == 60
    assert sorted(result.ranks) == list(range(1, len(pool) + 1))
    assert all(0 <= s.attrs["confidence"] <= 1 for spans in result.spans for s in spans)
