"""A learned PHI model next to the rules: its spans are added (union), rule labels win where they
overlap, its labels map onto the canonical ones, and bad model folders are clear config errors.

The models are tiny NER models trained for one step by ``domainfm finetune``, then given a
classifier that always answers one way (silent: every word O; loud: every word a PATIENT), so
what the detector must do with their spans is known exactly."""

from __future__ import annotations

import json

import pytest

from domainfm.corpus import Document, Span, read_documents, write_documents
from domainfm.deid import DeidConfig, PhiDetector
from domainfm.deid.learned import LEARNED, canonical_for
from domainfm.errors import ConfigError

TEXTS = [
    "Seen by Dr. Lee on 7/22 at Thornbury ward.",
    "Pt resting comfortably, no complaints overnight.",
    "   ",
]


def _train_tiny_ner(folder, clinical_corpus, tiny_model_dir, labels, merge=True):
    from domainfm.config import load_config
    from domainfm.finetune import finetune
    from domainfm.finetune.config import TaskConfig

    train = folder.parent / f"{folder.name}-train.jsonl"
    write_documents(train, list(read_documents(clinical_corpus))[:12])
    cfg = load_config(TaskConfig, overrides={
        "task": "ner", "model.name": str(tiny_model_dir), "model.max_length": 64,
        "data.train": str(train), "data.eval_fraction": 0.25, "labels.names": labels,
        "lora.r": 4, "lora.lora_alpha": 8, "lora.target_modules": ["query", "value"],
        "long_documents.overlap": 8, "long_documents.profile": "clinical",
        "train.max_steps": 1, "train.batch_size": 4, "train.eval_every": 1,
        "allow_identified_data": True})  # a PHI model learns from identified notes
    finetune(cfg, folder, merge=merge)
    return folder


def _answer_always(folder, tag: str):
    """Rewrite the saved classifier so that every token gets ``tag`` (scores ~ 0.99)."""
    import torch
    from transformers import AutoModelForTokenClassification

    model = AutoModelForTokenClassification.from_pretrained(folder)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.fill_(-5.0)
        model.classifier.bias[model.config.label2id[tag]] = 5.0
        if tag.startswith("B-"):  # every word starts a span: I- stays possible but lower
            model.classifier.bias[model.config.label2id["I-" + tag[2:]]] = 0.0
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def learned_models(tmp_path_factory, clinical_corpus, tiny_model_dir):
    root = tmp_path_factory.mktemp("learned")
    silent = _answer_always(_train_tiny_ner(root / "silent", clinical_corpus, tiny_model_dir, ["PATIENT"]), "O")
    loud = _answer_always(_train_tiny_ner(root / "loud", clinical_corpus, tiny_model_dir, ["PATIENT"]), "B-PATIENT")
    return silent, loud


@pytest.fixture(scope="module")
def rules_only():
    return PhiDetector(DeidConfig(profile="clinical"))


def test_a_silent_model_changes_nothing(learned_models, rules_only):
    silent, _ = learned_models
    with_model = PhiDetector(DeidConfig(profile="clinical", ner_model=str(silent)))
    assert list(with_model.detect_texts(TEXTS)) == list(rules_only.detect_texts(TEXTS))


def test_learned_spans_are_added_and_rule_labels_win(learned_models, rules_only):
    _, loud = learned_models
    detector = PhiDetector(DeidConfig(profile="clinical", ner_model=str(loud), ner_shape_checks=False))
    found = list(detector.detect_texts(TEXTS))
    rules = list(rules_only.detect_texts(TEXTS))
    assert found[2] == [] == rules[2]  # blank text: nothing from either
    for text, spans, rule_spans in zip(TEXTS, found, rules):
        assert all(0 <= d.start < d.end <= len(text) for d in spans)
        assert all(a.end <= b.start for a, b in zip(spans, spans[1:]))  # merged: no overlaps
        # every word is covered: the loud model tags them all
        for word_start, word in ((i, w) for i, w in _words(text)):
            assert any(d.start <= word_start < d.end for d in spans), word
        # where a rule found something, its label (DOCTOR, DATE...) is kept, not the model's PATIENT
        for r in rule_spans:
            over = [d for d in spans if d.start < r.end and r.start < d.end]
            assert over and over[0].label == r.label and over[0].recognizer != LEARNED
    assert any(d.recognizer == LEARNED and d.label == "PATIENT" for d in found[1])


def test_shape_checks_drop_learned_names_a_dictionary_explains(learned_models, rules_only):
    # The loud model calls every word a PATIENT. With the shape checks (the default) a learned
    # span no rule found stays only if it can be a name: in this mixed-case note the capitalised
    # words stay, the lower-case English ones and their typos go; rule spans are untouched.
    _, loud = learned_models
    text = "Pt Zorvack was resting comfortabley, recieved meds."
    checked = PhiDetector(DeidConfig(profile="clinical", ner_model=str(loud))).detect_text(text)
    learned = {text[d.start:d.end] for d in checked if d.recognizer == LEARNED}
    assert learned >= {"Pt"} and not learned & {"was", "resting", "comfortabley", "recieved", "meds"}
    assert any(d.start <= text.index("Zorvack") < d.end for d in checked)
    unchecked = PhiDetector(DeidConfig(profile="clinical", ner_model=str(loud), ner_shape_checks=False))
    everything = {text[d.start:d.end] for d in unchecked.detect_text(text) if d.recognizer == LEARNED}
    assert {"resting", "recieved"} <= everything
    # ALL-CAPS notes say nothing by case: there the lower-case test does not apply
    shout = "PT WAS RESTING."
    assert any(d.recognizer == LEARNED for d in
               PhiDetector(DeidConfig(profile="clinical", ner_model=str(loud))).detect_text(shout))
    with pytest.raises(ConfigError, match="'ner_shape_checks' must be true or false"):
        DeidConfig(ner_shape_checks="yes")


def test_detect_learned_gives_the_model_spans_alone_vetted_as_detect_keeps_them(learned_models):
    # the model's own contribution, without the rules: every word of the loud model, less what
    # the shape checks drop, all marked as learned; the rules' DATE is not among them
    _, loud = learned_models
    text = "Pt Zorvack was resting comfortabley on 7/22."
    detector = PhiDetector(DeidConfig(profile="clinical", ner_model=str(loud)))
    (doc, alone), = detector.detect_learned([Document("n1", text)])
    assert doc.id == "n1" and alone and all(d.recognizer == LEARNED for d in alone)
    words = {text[d.start:d.end] for d in alone}
    assert "Zorvack" in " ".join(words) and not words & {"was", "resting", "comfortabley"}
    assert not any(d.label == "DATE" for d in alone)
    # the same spans detect() adds where no rule found anything
    both = detector.detect_text(text)
    assert {(d.start, d.end) for d in both if d.recognizer == LEARNED} <= {(d.start, d.end) for d in alone}
    with pytest.raises(ValueError, match="needs a detector built with DeidConfig.ner_model"):
        next(PhiDetector(DeidConfig(profile="clinical")).detect_learned([Document("n2", text)]))


def test_tag_once_tags_each_distinct_text_once_and_answers_repeats_from_memory():
    from domainfm.deid.learned import tag_once

    calls = []

    def detect(texts):
        calls.append(list(texts))
        return [[len(t)] for t in texts]

    tagged = tag_once(detect, {"known": ["from before"]})
    assert tagged(["a", "bb", "a", "known"]) == [[1], [2], [1], ["from before"]]
    assert tagged(["bb", "ccc"]) == [[2], [3]]
    assert calls == [["a", "bb"], ["ccc"]]  # "a" once, "known" never, "bb" not again


def test_threshold_and_entity_filters_apply_to_learned_spans(learned_models):
    _, loud = learned_models
    strict = PhiDetector(DeidConfig(profile="clinical", ner_model=str(loud), exclude_entities=["NAME"]))
    assert not any(d.recognizer == LEARNED for d in strict.detect_text(TEXTS[1]))
    # the loud model's spans score ~0.99: a higher floor for learned spans alone drops them all
    high = PhiDetector(DeidConfig(profile="clinical", ner_model=str(loud), ner_threshold=0.999))
    assert not any(d.recognizer == LEARNED for d in high.detect_text(TEXTS[1]))
    low = PhiDetector(DeidConfig(profile="clinical", ner_model=str(loud), score_threshold=0.999, ner_threshold=0.5))
    assert any(d.recognizer == LEARNED for d in low.detect_text(TEXTS[1]))
    with pytest.raises(ConfigError, match="'ner_threshold' must be a number in"):
        DeidConfig(ner_threshold=1.5)


def _words(text):
    import re

    return [(m.start(), m.group()) for m in re.finditer(r"[A-Za-z0-9]+", text)]


def test_label_mapping():
    assert canonical_for("NAME") == "NAME" and canonical_for("DATE") == "DATE"
    assert canonical_for("HCPName") == "DOCTOR"  # PhysioNet's own labels
    assert canonical_for("LOC") == "LOCATION"    # TAB's
    assert canonical_for("TITLE") is None        # not PHI (Presidio's synthetic set)
    with pytest.raises(ConfigError, match="'Disease' maps to no PHI label"):
        canonical_for("Disease")


def test_bad_model_folders_are_config_errors(tmp_path, learned_models):
    with pytest.raises(ConfigError, match="'ner_model' must be a token-classification model.*does not exist"):
        DeidConfig(ner_model=str(tmp_path / "missing"))
    # a NER model whose entities are not PHI labels
    _, loud = learned_models
    info = json.loads((loud / "domainfm_task.json").read_text())
    odd = tmp_path / "odd"
    odd.mkdir()
    for f in loud.iterdir():
        if f.is_file():
            (odd / f.name).write_bytes(f.read_bytes())
    (odd / "domainfm_task.json").write_text(json.dumps({**info, "labels": ["Disease"]}))
    with pytest.raises(ConfigError, match="no PHI label"):
        PhiDetector(DeidConfig(ner_model=str(odd)))
    # a model of another task type is refused when the config is read, before any model loads
    (odd / "domainfm_task.json").write_text(json.dumps({**info, "task": "classification"}))
    with pytest.raises(ConfigError, match="'ner_model'.*holds a 'classification' model, but a 'ner' model"):
        DeidConfig(ner_model=str(odd))


def test_cli_deid_with_a_learned_model(learned_models, tmp_path, cli):
    _, loud = learned_models
    write_documents(tmp_path / "in.jsonl", [Document(f"n{i}", t) for i, t in enumerate(TEXTS)])
    result = cli("deid", tmp_path / "in.jsonl", "-o", tmp_path / "out.jsonl", "--operator", "tag",
                 "--ner-model", loud)
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    # shape checks on by default: "Pt" (capitalised) is tagged, the English "resting" is not
    assert "resting" in out[1]["text"] and out[1]["text"].startswith("[PATIENT]")
    result = cli("deid", tmp_path / "in.jsonl", "-o", tmp_path / "all.jsonl", "--operator", "tag",
                 "--ner-model", loud, "--no-ner-shape-checks")
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    assert "resting" not in out[1]["text"] and "[PATIENT]" in out[1]["text"]
    manifest = json.loads((tmp_path / "out.manifest.json").read_text())
    assert str(loud) in json.dumps(manifest)
    bad = cli("deid", tmp_path / "in.jsonl", "-o", tmp_path / "x.jsonl", "--ner-model", tmp_path)
    assert bad.exit_code == 2 and "ner_model" in bad.output


def test_an_unmerged_lora_folder_is_merged_once_and_can_be_quantised(tmp_path, clinical_corpus, tiny_model_dir):
    from domainfm.deid.learned import LearnedPhiTagger

    folder = _train_tiny_ner(tmp_path / "adapter", clinical_corpus, tiny_model_dir, ["PATIENT"], merge=False)
    assert not (folder / "config.json").exists() and (folder / "adapter").is_dir()
    full = LearnedPhiTagger(folder, device="cpu")
    small = LearnedPhiTagger(folder, device="cpu", quantize="int8")
    assert not hasattr(full._tagger.model, "peft_config") and small.quantized
    found = full.detect(TEXTS)
    assert len(found) == len(TEXTS) and len(small.detect(TEXTS)) == len(TEXTS) and found[2] == []


def test_threshold_sweep_rows_are_what_a_detector_with_that_floor_finds(learned_models):
    from domainfm.deid.eval_stage import threshold_sweep

    _, loud = learned_models  # its spans score ~0.99: floors below keep them, 0.999 drops them
    docs = [Document(f"n{i}", text) for i, text in enumerate(TEXTS)]
    config = DeidConfig(profile="clinical", ner_model=str(loud))

    def spans(detected):
        return {"spans": [[(d.start, d.end, d.label, d.recognizer) for d in found] for _, found in detected]}

    rows = threshold_sweep(config, docs, [0.3, 0.9, 0.999], spans)
    assert [r["ner_threshold"] for r in rows] == [0.3, 0.9, 0.999]
    for row in rows:
        direct = PhiDetector(DeidConfig(profile="clinical", ner_model=str(loud), ner_threshold=row["ner_threshold"]))
        assert row["spans"] == spans(direct.detect(docs))["spans"]
    learned = [sum(r == LEARNED for found in row["spans"] for *_, r in found) for row in rows]
    assert learned[0] == learned[1] > 0 == learned[2]
    assert all("model_alone_recall" not in row for row in rows)  # no gold named: nothing to score
    # with the gold's label table, each floor also scores the model's own spans
    text = TEXTS[0]
    gold = [Document("g", text, spans=[Span(text.index("Lee"), text.index("Lee") + 3, "DOCTOR")])]
    rows = threshold_sweep(config, gold, [0.3, 0.999], spans, "canonical")
    assert rows[0]["model_alone_recall"] == 1.0 and rows[1]["model_alone_recall"] == 0.0
