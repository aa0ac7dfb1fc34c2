"""Fine-tuning: config, data checks, BIO alignment, metrics, and end-to-end runs on a tiny BERT.

Every run here uses a 2-layer, 32-wide BERT saved from ``tiny_bert_config`` and the in-memory
tokenizer, so training, predicting and reloading take seconds on a CPU.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from domainfm.config import ConfigError, load_config, parse_overrides, save_config
from domainfm.corpus import Document, Span, read_documents, write_documents
from domainfm.errors import RecordError
from domainfm.finetune import (
    LoraSection,
    TaskConfig,
    classification_metrics,
    entity_metrics,
    evaluate,
    finetune,
    load_task_model,
    multilabel_metrics,
    predict,
)
from domainfm.finetune.data import bio_labels, build_label_map, decode_bio, decode_words, get_field
from domainfm.inference.predict import length_batches, padding_cap, read_task_info
from domainfm.finetune.train import load_task_data

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def notes(clinical_corpus):
    return list(read_documents(clinical_corpus))[:60]


@pytest.fixture(scope="session")
def notes_file(tmp_path_factory, notes):
    path = tmp_path_factory.mktemp("data") / "notes.jsonl"
    write_documents(path, notes)
    return path


def _cfg(train, model_dir, task="classification", **overrides) -> TaskConfig:
    data = {
        "task": task,
        "model": {"name": str(model_dir), "max_length": 64},
        "data": {"train": str(train), "eval_fraction": 0.25},
        "lora": {"r": 4, "lora_alpha": 8, "target_modules": ["query", "value"]},
        "long_documents": {"strategy": "truncate"},
        "train": {"lr": 5e-3, "max_steps": 4, "batch_size": 8, "eval_every": 2, "eval_batch_size": 32},
    }
    return load_config(TaskConfig, overrides={**_flatten(data), "allow_identified_data": True, **overrides})


def _flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


# --------------------------------------------------------------------------------------- config


def test_task_files_load():
    tasks = sorted((ROOT / "tasks").glob("*.yaml"))
    names = {p.name for p in tasks}
    for expected in ("demo-clinical-classify.yaml", "medical-abstracts.yaml", "mtsamples-specialty.yaml",
                     "unfair-tos.yaml", "ncbi-disease.yaml", "cuad-contract-type.yaml"):
        assert expected in names
    from domainfm.config import read_yaml

    for path in tasks:
        # pretrain task files and pipelines (they have a run_dir; test_pipeline validates them)
        if path.name.startswith("pretrain") or "run_dir" in read_yaml(path):
            continue
        cfg = load_config(TaskConfig, path)
        assert cfg.task in ("classification", "multilabel", "ner")


def test_config_round_trip_and_overrides(tmp_path):
    cfg = load_config(TaskConfig, ROOT / "tasks" / "demo-clinical-classify.yaml",
                      parse_overrides(["--train.lr", "3e-4", "--lora.r=4"]))
    assert cfg.train.lr == 3e-4 and cfg.lora.r == 4
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(TaskConfig, tmp_path / "c.yaml") == cfg


@pytest.mark.parametrize("overrides, message", [
    ({"train.lr_rate": 1e-3}, "did you mean 'lr'"),
    ({"lora.alpha": 16}, "lora_alpha"),
    ({"train.metric": "f1"}, "does not apply to task 'classification'"),
    ({"task": "regression"}, "must be one of"),
    ({"train.lr": 0}, "train.lr must be in (0, 1)"),
    ({"data.label_field": "labels"}, "does not fit task 'classification'"),
    ({"model.num_layers": -1}, "model.num_layers must be an int >= 0"),
    ({"augment.copies": 2}, "augment.copies replaces entity strings (task 'ner')"),
    ({"augment.copies": -1}, "augment.copies must be an int >= 0"),
    ({"task": "ner", "labels.names": ["DATE"], "augment.copies": 1}, "are not in labels.names"),
])
def test_bad_config_is_named(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(TaskConfig, overrides={"data.train": "x.jsonl", **overrides})


def test_lora_section_maps_onto_peft():
    from peft import LoraConfig

    peft_fields = {f.name for f in dataclasses.fields(LoraConfig)}
    ours = {f.name for f in dataclasses.fields(LoraSection)}
    assert ours <= peft_fields
    lc = LoraSection(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["query"]).to_peft("SEQ_CLS")
    assert (lc.r, lc.lora_alpha, lc.lora_dropout, set(lc.target_modules)) == (4, 8, 0.0, {"query"})


# ------------------------------------------------------------------------------- data + labels


@pytest.mark.parametrize("offsets, spans, expected", [
    ([(0, 0), (0, 4), (5, 9), (0, 0)], [Span(0, 9, "X")], [-100, 1, 2, -100]),  # two-token entity
    ([(0, 0), (0, 4), (5, 9), (10, 12), (0, 0)], [Span(5, 9, "X")], [-100, 0, 1, 0, -100]),
    ([(0, 0), (0, 2), (2, 4), (5, 9)], [Span(0, 4, "X"), Span(5, 9, "X")], [-100, 1, 2, 1]),  # word pieces
])
def test_bio_alignment(offsets, spans, expected):
    special = [1 if o == (0, 0) else 0 for o in offsets]
    tags, placed = bio_labels(offsets, spans, {"O": 0, "B-X": 1, "I-X": 2}, special_mask=special)
    assert tags == expected and placed == len(spans)
    id2label = {0: "O", 1: "B-X", 2: "I-X"}
    decoded = decode_bio(tags, np.ones(len(tags)), offsets, id2label)
    assert [(s.start, s.end, s.label) for s in decoded] == [s.key for s in spans]


WORD_TAGS = {0: "O", 1: "B-X", 2: "I-X", 3: "B-Y", 4: "I-Y"}


def _log_probs(rows):
    """Per-token log-probabilities with the given tag most likely (0.6, the rest sharing 0.4)."""
    out = np.full((len(rows), len(WORD_TAGS)), 0.4 / (len(WORD_TAGS) - 1))
    for i, tag in enumerate(rows):
        out[i, tag] = 0.6
    return np.log(out)


@pytest.mark.parametrize("token_tags, word_ids, expected", [
    # "I-X" after "O": the word-level BIO constraint starts the entity with B-X, it is not dropped
    ([0, 2, 2], [0, 1, 2], [(5, 17, "X")]),
    # the second piece of a word tagged O: the word takes its first piece's tag, span covers the word
    ([1, 0, 0], [0, 0, 1], [(0, 9, "X")]),
    # a word's first piece outside, later piece inside: the word stays outside
    ([0, 1, 0], [0, 0, 1], []),
    # special tokens (no word id) are skipped
    ([0, 1, 2, 0], [None, 0, 1, None], [(0, 9, "X")]),
])
def test_word_level_decoding_obeys_bio(token_tags, word_ids, expected):
    offsets = [(0, 4), (5, 9), (10, 17), (0, 0)][:len(token_tags)]
    if word_ids[0] is None:  # [CLS] w0 w1 [SEP]
        offsets = [(0, 0), (0, 4), (5, 9), (0, 0)]
    elif word_ids[:2] == [0, 0]:  # one word in two pieces, then a word
        offsets = [(0, 4), (4, 9), (10, 17)]
    spans = decode_words(_log_probs(token_tags), word_ids, offsets, WORD_TAGS)
    assert [(s.start, s.end, s.label) for s in spans] == expected
    assert all(0 < s.attrs["score"] <= 1 for s in spans)


def test_spans_cut_by_a_chunk_edge_are_widened_to_whole_words():
    from domainfm.inference.predict import _whole_words

    text = "no fever; hypokalemia noted"
    # a chunk starting inside "hypokalemia" saw only "kalemia"; another chunk saw the whole word
    spans = [Span(14, 21, "X", {"score": 0.7}), Span(10, 21, "X", {"score": 0.9}), Span(3, 8, "Y", {"score": 0.5})]
    out = _whole_words(text, spans)
    assert [(s.start, s.end, s.label) for s in out] == [(10, 21, "X"), (3, 8, "Y")]
    assert out[0].attrs["score"] == 0.9
    assert _whole_words(text, [Span(0, 2, "X", {})])[0].end == 2  # already whole: unchanged


def test_word_level_decoding_is_the_best_valid_path():
    # token argmax says O, I-X, I-X; the valid paths are O B-X I-X (first word unlikely as B-X)
    # or B-X I-X I-X: Viterbi must pick the more probable one, not patch tags one by one
    lp = np.log(np.array([[0.50, 0.45, 0.01, 0.02, 0.02],
                          [0.10, 0.30, 0.56, 0.02, 0.02],
                          [0.10, 0.05, 0.81, 0.02, 0.02]]))
    spans = decode_words(lp, [0, 1, 2], [(0, 4), (5, 9), (10, 17)], WORD_TAGS)
    # O B-X I-X: .50*.30*.81 = .1215 ; B-X I-X I-X: .45*.56*.81 = .2041 -> the whole run
    assert [(s.start, s.end, s.label) for s in spans] == [(0, 17, "X")]
    # "I-Y" right after an X entity cannot continue it; B-Y, the next best, starts a new entity
    lp = np.log(np.array([[0.1, 0.8, 0.04, 0.03, 0.03],
                          [0.05, 0.05, 0.05, 0.25, 0.60]]))
    spans = decode_words(lp, [0, 1], [(0, 4), (5, 9)], WORD_TAGS)
    assert [(s.start, s.end, s.label) for s in spans] == [(0, 4, "X"), (5, 9, "Y")]


def test_length_batches_cover_every_feature_once_and_cap_the_padding():
    rng = np.random.default_rng(7)
    for _ in range(200):
        lengths = [int(n) for n in rng.integers(1, 300, size=int(rng.integers(0, 80)))]
        batch_size, cap = int(rng.integers(1, 40)), float(rng.choice([0.1, 0.25, 1.0]))
        batches = length_batches(lengths, batch_size, cap)
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
        flat = [lengths[i] for b in batches for i in b]
        assert flat == sorted(lengths)  # batches are runs of the sorted order
        for b in batches:
            cells = len(b) * max(lengths[i] for i in b)
            assert len(b) <= batch_size
            assert len(b) == 1 or cells - sum(lengths[i] for i in b) <= cap * cells
        if cap == 1.0:  # rows only: full batches of batch_size but the last
            assert all(len(b) == batch_size for b in batches[:-1])
    # a short and a long window are not padded together on a CPU; on a GPU they are
    assert length_batches([20, 256], 32, padding_cap("cpu")) == [[0], [1]]
    assert length_batches([20, 256], 32, padding_cap("cuda:0")) == [[0, 1]]


@pytest.mark.parametrize("span, message", [
    (Span(1, 4, "X"), "does not align to token boundaries"),  # starts inside the first token
    (Span(4, 5, "X"), "covers no token"),  # the space between tokens
])
def test_misaligned_span_names_the_record(span, message):
    with pytest.raises(RecordError, match=message) as info:
        bio_labels([(0, 4), (5, 9)], [span], {"O": 0, "B-X": 1, "I-X": 2}, record_id="doc-7")
    assert "doc-7" in str(info.value)


def test_label_checks_name_the_record():
    docs = [Document(f"d{i}", "text", label=lab) for i, lab in enumerate(["a", "a", "b", "b", "c"])]
    with pytest.raises(ConfigError, match=r"label 'c' has 1 training example.*'d4'"):
        build_label_map("classification", docs, "label", None)
    with pytest.raises(RecordError, match=r"'c' .*not in labels.names"):
        build_label_map("classification", docs, "label", ["a", "b"])


def test_a_stratified_split_too_small_for_its_classes_is_named():
    """4 documents, 2 per class, eval_fraction 0.15: no class fills the 4 folds the split needs."""
    from domainfm.finetune.data import split_documents

    docs = [Document(f"d{i}", "text", label=lab) for i, lab in enumerate(["a", "a", "b", "b"])]
    with pytest.raises(ConfigError, match=r"data.eval_fraction 0.15 of 4 training documents.*4 folds.*a class with "
                                          r"at least 4 documents.*per class are a=2, b=2.*data.eval"):
        split_documents(docs, eval_fraction=0.15, split_key="auto", seed=0, task="classification", label_field="label")
    # half held out: 2 folds, which every class fills
    train, held, _ = split_documents(docs, eval_fraction=0.5, split_key="auto", seed=0, task="classification",
                                     label_field="label")
    assert sorted(d.label for d in held) == ["a", "b"] and len(train) == 2
    # more than half cannot be one of k folds: refused, not quietly held out as half
    with pytest.raises(ConfigError, match=r"data.eval_fraction 0.9: .*at most half.*<= 0.5.*data.eval"):
        split_documents(docs, eval_fraction=0.9, split_key="auto", seed=0, task="classification", label_field="label")


@pytest.mark.parametrize("content, message", [
    ("{bad", r"is not valid JSON \(Expecting property name .* at line 1 column 2\)"),
    ("[]", r"holds a list, not an object"),
    ("{}", r"'task' must be one of classification, multilabel, ner, but it is missing"),
    ('{"task": "classify", "labels": ["a"]}', r"'task' must be one of .*got \"classify\""),
    ('{"task": "classification", "labels": "a,b"}', r"'labels' must be a non-empty list"),
    ('{"task": "classification", "labels": []}', r"'labels' must be a non-empty list"),
    (b"\xff\xfe{", r"is not UTF-8 text"),
])
def test_a_damaged_task_file_is_named(tmp_path, content, message):
    (tmp_path / "m").mkdir()
    path = tmp_path / "m" / "domainfm_task.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ConfigError, match=rf"domainfm_task.json: .*{message}.*fine-tune again"):
        read_task_info(tmp_path / "m")


@pytest.mark.parametrize("info, message", [
    ({}, r"'max_length' must be a positive integer, but it is missing"),
    ({"max_length": "64"}, r"'max_length' must be a positive integer, got \"64\""),
    ({"max_length": 64}, r"'long_documents' must be an object, but it is missing"),
    ({"max_length": 64, "long_documents": {"strategy": "truncate", "stride": 3}}, r"unknown config key 'long_documents.stride'"),
    ({"max_length": 64, "long_documents": {"overlap": -1}}, r"long_documents.overlap must be >= 0"),
])
def test_load_task_model_names_a_missing_sequence_setting(tmp_path, info, message):
    from domainfm.inference import load_task_model

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "domainfm_task.json").write_text(json.dumps({"task": "classification", "labels": ["a", "b"],
                                                                   **info}))
    with pytest.raises(ConfigError, match=rf"domainfm_task.json: .*{message}"):
        load_task_model(tmp_path / "m")


def test_wrong_field_lists_existing_fields():
    doc = Document("n1", "text", meta={"specialty": "x"}, label="a")
    with pytest.raises(RecordError, match=r"'meta.speciality' does not exist.*did you mean 'specialty'.*"
                                          r"\['id', 'text', 'label', 'meta.specialty'\]"):
        get_field(doc, "meta.speciality")


# ------------------------------------------------------------------------------------- metrics


def test_classification_metrics_match_sklearn():
    from sklearn.metrics import f1_score

    y_true = ["a", "b", "c", "a", "b", "c", "a"]
    y_pred = ["a", "c", "c", "a", "b", "b", "b"]
    m = classification_metrics(y_true, y_pred, ["a", "b", "c"])
    assert m["macro_f1"] == round(f1_score(y_true, y_pred, average="macro"), 4)
    assert m["accuracy"] == round(4 / 7, 4)
    assert m["confusion_matrix"]["matrix"] == [[2, 1, 0], [0, 1, 1], [0, 1, 1]]
    assert m["per_class"]["a"] == {"precision": 1.0, "recall": 0.6667, "f1": 0.8, "support": 3}


def test_multilabel_metrics():
    m = multilabel_metrics(np.array([[1, 0], [1, 1]]), np.array([[1, 0], [0, 1]]), ["x", "y"])
    assert m["subset_accuracy"] == 0.5 and m["micro_f1"] == 0.8
    assert m["confusion_matrix"]["matrix"][0] == [[0, 0], [1, 1]]


def test_entity_metrics_exact_match_like_seqeval():
    gold = [[Span(0, 4, "D"), Span(10, 15, "D")], [Span(3, 8, "C")]]
    pred = [[Span(0, 4, "D"), Span(10, 14, "D")], [Span(3, 8, "C"), Span(20, 22, "D")]]
    m = entity_metrics(gold, pred)
    assert (m["precision"], m["recall"], m["f1"]) == (0.5, 0.6667, 0.5714)
    assert m["per_type"]["C"]["f1"] == 1.0
    seqeval = pytest.importorskip("seqeval.metrics")  # cross-check when seqeval is installed
    tags_gold = [["B-D", "I-D", "O", "B-D", "I-D"]]
    tags_pred = [["B-D", "I-D", "O", "B-D", "O"]]
    ours = entity_metrics([[Span(0, 2, "D"), Span(3, 5, "D")]], [[Span(0, 2, "D"), Span(3, 4, "D")]])
    assert ours["f1"] == round(seqeval.f1_score(tags_gold, tags_pred), 4)


def test_entity_metrics_agree_with_seqeval_on_random_tag_sequences():
    seqeval = pytest.importorskip("seqeval.metrics")
    from seqeval.metrics.sequence_labeling import get_entities

    rng = np.random.default_rng(0)
    tags = ["O", "O", "B-D", "I-D", "B-C", "I-C"]
    gold_tags = [[tags[i] for i in rng.integers(0, len(tags), rng.integers(1, 30))] for _ in range(40)]
    pred_tags = [[t if rng.random() < 0.7 else tags[rng.integers(0, len(tags))] for t in seq] for seq in gold_tags]

    def spans(seq):  # token i is character i: seqeval's entities become character spans
        return [Span(start, end + 1, label) for label, start, end in get_entities(seq)]

    ours = entity_metrics([spans(s) for s in gold_tags], [spans(s) for s in pred_tags], ["C", "D"])
    assert ours["f1"] == round(seqeval.f1_score(gold_tags, pred_tags), 4)
    assert ours["precision"] == round(seqeval.precision_score(gold_tags, pred_tags), 4)
    assert ours["recall"] == round(seqeval.recall_score(gold_tags, pred_tags), 4)
    report = seqeval.classification_report(gold_tags, pred_tags, output_dict=True)
    for label in ("C", "D"):
        assert ours["per_type"][label]["f1"] == round(report[label]["f1-score"], 4)


# --------------------------------------------------------------------------------- privacy gate


def test_finetune_refuses_text_that_never_went_through_deid(tmp_path, notes_file, tiny_model_dir):
    cfg = _cfg(notes_file, tiny_model_dir, allow_identified_data=False)
    with pytest.raises(ConfigError, match="was not produced by 'domainfm deid'.*--allow-identified-data"):
        finetune(cfg, tmp_path / "m")
    assert not (tmp_path / "m" / "manifest.json").exists()


# --------------------------------------------------------------------------------- end to end


def test_classification_end_to_end_reproducible_and_loadable(tmp_path, notes_file, notes, tiny_model_dir):
    cfg = _cfg(notes_file, tiny_model_dir, **{"model.pooling": "cls"})  # the head --merge can express
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = finetune(cfg, tmp_path / "a", merge=True)
    b = finetune(cfg, tmp_path / "b")
    assert a.metrics["eval"] == b.metrics["eval"]  # same seed and data -> same metrics
    # peft's read of a deprecated transformers attribute is not shown to users (nothing they can change)
    assert not [w for w in caught if "is_gradient_checkpointing" in str(w.message)]
    assert a.metrics["params"]["trainable"] < a.metrics["params"]["total"] / 5
    for name in ("domainfm_task.json", "finetune.yaml", "metrics.json", "manifest.json", "adapter/adapter_config.json",
                 "config.json", "tokenizer.json"):
        assert (tmp_path / "a" / name).is_file(), name
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["stage"] == "finetune"
    assert manifest["allow_identified_data"] is True and manifest["privacy_gate"]["decision"] == "overridden"
    # the merged model is a plain transformers model with the label maps in its config
    from transformers import AutoModelForSequenceClassification

    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "a")
    assert set(merged.config.label2id) == set(a.metrics["labels"])
    # adapter-only and merged folders predict the same
    records_a = predict(tmp_path / "a", notes[:6])
    records_b = predict(tmp_path / "b", notes[:6])
    for ra, rb in zip(records_a, records_b):
        assert ra["pred"]["label"] == rb["pred"]["label"]
        assert set(ra["pred"]["scores"]) == set(a.metrics["labels"])
        assert abs(sum(ra["pred"]["scores"].values()) - 1) < 1e-3
        assert np.allclose(list(ra["pred"]["scores"].values()), list(rb["pred"]["scores"].values()), atol=2e-3)
    metrics = evaluate(tmp_path / "b", notes[:10])
    assert metrics["n"] == 10 and 0 <= metrics["macro_f1"] <= 1


def test_resume_takes_the_same_steps(tmp_path, notes_file, tiny_model_dir):
    cfg = _cfg(notes_file, tiny_model_dir)
    whole = finetune(cfg, tmp_path / "whole")

    class Stop(Exception):
        pass

    def crash(event):
        if event["kind"] == "step" and event["step"] == 3:
            raise Stop

    with pytest.raises(Stop):
        finetune(cfg, tmp_path / "cut", on_event=crash)
    resumed = finetune(cfg, tmp_path / "cut", resume=True)
    assert resumed.resumed_from == 2
    assert resumed.metrics["eval"] == whole.metrics["eval"]
    assert resumed.metrics["history"] == whole.metrics["history"]
    with pytest.raises(ConfigError, match="different config"):
        finetune(_cfg(notes_file, tiny_model_dir, **{"train.lr": 1e-3}), tmp_path / "cut", resume=True)
    with pytest.raises(ConfigError, match="already exists"):
        finetune(cfg, tmp_path / "cut")
    # the same file, relabelled since: the checkpoint's output layer cannot take the new labels
    data = tmp_path / "data.jsonl"
    data.write_bytes(notes_file.read_bytes())
    with pytest.raises(Stop):
        finetune(_cfg(data, tiny_model_dir), tmp_path / "cut2", on_event=crash)
    write_documents(data, [Document(d.id, d.text, d.meta, label=f"{d.label}-new" if i % 2 else d.label)
                           for i, d in enumerate(read_documents(notes_file))])
    with pytest.raises(ConfigError, match=r"cannot resume .*cut2: checkpoint-\d+ was trained on other data"):
        finetune(_cfg(data, tiny_model_dir), tmp_path / "cut2", resume=True)
    # a checkpoint of an older version records no data digests: its labels are still checked
    from domainfm.training.checkpoints import INPUTS_KEY, STATE_FILE, list_checkpoints

    for _, folder in list_checkpoints(tmp_path / "cut2"):
        state = json.loads((folder / STATE_FILE).read_text())
        del state[INPUTS_KEY]
        (folder / STATE_FILE).write_text(json.dumps(state))
    with pytest.raises(ConfigError, match=r"cannot resume .*cut2: its checkpoint was trained on \d+ labels and the "
                                          r"data now gives \d+ \(differing: .*-new"):
        finetune(_cfg(data, tiny_model_dir), tmp_path / "cut2", resume=True)


def test_multilabel_and_full_finetune(tmp_path, notes_file, tiny_model_dir, notes):
    cfg = _cfg(notes_file, tiny_model_dir, "multilabel", **{"labels.names": ["copd", "diabetes", "hypertension"],
                                                             "train.full_finetune": True})
    # labels outside labels.names are an error (nothing is silently dropped) ...
    with pytest.raises(RecordError, match="not in labels.names"):
        finetune(cfg, tmp_path / "m")
    # ... so select the documents' labels explicitly through a meta field
    docs = [Document(d.id, d.text, {"tags": [x for x in d.labels if x in ("copd", "diabetes", "hypertension")],
                                    "patient_id": d.meta["patient_id"]}) for d in notes]
    write_documents(tmp_path / "ml.jsonl", docs)
    cfg = _cfg(tmp_path / "ml.jsonl", tiny_model_dir, "multilabel", **{"data.label_field": "meta.tags",
                                                                       "train.full_finetune": True,
                                                                       "train.class_weights": "balanced",
                                                                       "model.pooling": "mean"})
    result = finetune(cfg, tmp_path / "m")
    assert result.metrics["method"] == "full" and result.metrics["params"]["trainable_pct"] == 100.0
    assert not (tmp_path / "m" / "adapter").exists()
    assert json.loads((tmp_path / "m" / "config.json").read_text())["domainfm_pooling"] == "mean"
    _, held, _, _ = load_task_data(cfg)
    assert evaluate(tmp_path / "m", held) == result.metrics["eval"]  # reloads with its mean pooling
    rec = predict(tmp_path / "m", docs[:3])[0]
    assert set(rec["pred"]["scores"]) == {"copd", "diabetes", "hypertension"}
    assert set(rec["pred"]["labels"]) <= set(rec["pred"]["scores"])


def test_ner_long_documents_through_chunks(tmp_path, notes, tiny_model_dir):
    labels = ["DATE", "DOCTOR", "PATIENT"]
    write_documents(tmp_path / "ner.jsonl", notes[:40])
    cfg = _cfg(tmp_path / "ner.jsonl", tiny_model_dir, "ner", **{
        "labels.names": labels, "long_documents.strategy": "chunk", "long_documents.overlap": 8,
        "long_documents.profile": "clinical", "train.max_steps": 3, "train.eval_every": 3,
        "data.max_eval_documents": 4})
    result = finetune(cfg, tmp_path / "ner", merge=True)
    stats = result.metrics["data"]["train"]
    assert stats["chunks"] > stats["documents"]  # notes are longer than 64 positions
    assert stats["spans"] > 0 and stats["spans_other_labels"] > 0
    assert set(result.metrics["eval"]["per_type"]) == set(labels)
    tm = load_task_model(tmp_path / "ner", task="ner")
    records = predict(tm, notes[:2])
    for rec, doc in zip(records, notes[:2]):
        for span in rec["pred_spans"]:
            assert 0 <= span["start"] < span["end"] <= len(doc.text)  # document coordinates
            assert span["label"] in labels and 0 <= span["score"] <= 1
    assert tm.ner_decoding == "words" and read_task_info(tmp_path / "ner")["ner_decoding"] == "words"
    for rec, doc in zip(records, notes[:2]):  # word-level decoding: no span starts or ends inside a word
        for span in rec["pred_spans"]:
            assert not (span["start"] > 0 and doc.text[span["start"] - 1].isalnum() and doc.text[span["start"]].isalnum())
            assert not (span["end"] < len(doc.text) and doc.text[span["end"] - 1].isalnum() and doc.text[span["end"]].isalnum())
    by_tokens = load_task_model(tmp_path / "ner", ner_decoding="tokens")  # the per-token reading, same model
    scored = evaluate(by_tokens, notes[:4])
    assert scored["definition"].startswith("exact")
    # the notes' other span types are not scored (the model was not trained on them), and counted
    others = Counter(s.label for d in notes[:4] for s in d.spans if s.label not in labels)
    assert others and scored["gold_spans_not_scored"]["by_label"] == dict(sorted(others.items()))
    assert scored["gold_entities"] == sum(1 for d in notes[:4] for s in d.spans if s.label in labels)
    with pytest.raises(ConfigError, match="ner_decoding must be one of words, tokens"):
        load_task_model(tmp_path / "ner", ner_decoding="crf")
    from transformers import AutoModelForTokenClassification

    assert AutoModelForTokenClassification.from_pretrained(tmp_path / "ner").config.id2label[1] == "B-DATE"
    with pytest.raises(ConfigError, match="holds a 'ner' model, but a 'classification' model"):
        load_task_model(tmp_path / "ner", task="classification")


def test_num_layers_keeps_the_base_models_lower_layers(tmp_path, notes, tiny_model_dir):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForTokenClassification, BertModel

    write_documents(tmp_path / "ner.jsonl", notes[:20])
    cfg = _cfg(tmp_path / "ner.jsonl", tiny_model_dir, "ner", **{
        "labels.names": ["DATE", "DOCTOR"], "model.num_layers": 1, "train.full_finetune": True, "train.lr": 1e-12,
        "train.max_steps": 1, "train.eval_every": 1})
    finetune(cfg, tmp_path / "shallow")
    reloaded = AutoModelForTokenClassification.from_pretrained(tmp_path / "shallow")  # plain transformers
    assert reloaded.config.num_hidden_layers == 1 and len(reloaded.bert.encoder.layer) == 1
    base = BertModel.from_pretrained(tiny_model_dir)
    saved = load_file(tmp_path / "shallow" / "model.safetensors")
    name = "encoder.layer.0.attention.self.query.weight"
    assert torch.allclose(saved[f"bert.{name}"], base.state_dict()[name], atol=1e-6)  # started from the base's layer 0
    assert not any(k.startswith("bert.encoder.layer.1.") for k in saved)
    assert predict(tmp_path / "shallow", notes[:2])[0]["id"] == notes[0].id
    with pytest.raises(ConfigError, match="model.num_layers is 3, but .* has 2 layers; use 1 to 2"):
        finetune(_cfg(tmp_path / "ner.jsonl", tiny_model_dir, "ner", **{"labels.names": ["DATE"], "model.num_layers": 3}),
                 tmp_path / "deep")


def _masked_mean_probs(model_dir, adapter_dir, texts, label_map, max_length=64):
    """Class probabilities computed by hand, without domainfm's loader: plain transformers + peft,
    masked mean of the last hidden states, the trained classifier."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(adapter_dir.parent)
    base = AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=len(label_map), id2label=dict(enumerate(label_map)),
        label2id={l: i for i, l in enumerate(label_map)})
    model = PeftModel.from_pretrained(base, adapter_dir).eval()
    enc = tok(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    with torch.no_grad():
        inner = model.base_model.model
        hidden = inner.bert(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        mean_probs = inner.classifier((hidden * mask).sum(1) / mask.sum(1)).softmax(-1).numpy()
        cls_probs = model(**enc).logits.softmax(-1).numpy()  # plain transformers' [CLS] pooler head
    return mean_probs, cls_probs


def test_mean_pooling_saves_reloads_and_predicts_the_same(tmp_path, notes_file, notes, tiny_model_dir):
    import subprocess
    import sys

    cfg = _cfg(notes_file, tiny_model_dir, **{"model.pooling": "mean"})
    result = finetune(cfg, tmp_path / "m")
    info = json.loads((tmp_path / "m" / "domainfm_task.json").read_text())
    assert info["pooling"] == "mean"
    # the in-memory model's final evaluation == the reloaded folder's, on the same held-out docs
    _, held, _, _ = load_task_data(cfg)
    tm = load_task_model(tmp_path / "m")
    assert evaluate(tm, held) == result.metrics["eval"]
    # reloaded scores are the masked mean + classifier computed by hand, not the [CLS] head
    docs = notes[:8]
    scores = np.array([list(r["pred"]["scores"].values()) for r in predict(tm, docs)])
    mean_probs, cls_probs = _masked_mean_probs(tiny_model_dir, tmp_path / "m" / "adapter", [d.text for d in docs],
                                               info["labels"])
    assert np.allclose(scores, mean_probs, atol=1e-4)
    assert not np.allclose(scores, cls_probs, atol=1e-3)
    # padding does not leak into the mean: alone or in a padded batch, the same scores
    alone = np.array([list(predict(tm, [d], batch_size=1)[0]["pred"]["scores"].values()) for d in docs])
    assert np.allclose(alone, scores, atol=1e-4)
    # a fresh process predicts the same
    write_documents(tmp_path / "in.jsonl", docs)
    proc = subprocess.run([sys.executable, "-m", "domainfm", "predict", str(tmp_path / "m"), str(tmp_path / "in.jsonl"),
                           "-o", str(tmp_path / "out.jsonl")], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    fresh = [json.loads(x)["pred"] for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert np.allclose([list(p["scores"].values()) for p in fresh], scores, atol=1e-4)


def test_merge_refuses_mean_pooling_before_training(tmp_path, notes_file, tiny_model_dir):
    cfg = _cfg(notes_file, tiny_model_dir, **{"model.pooling": "mean"})
    with pytest.raises(ConfigError, match="--merge cannot express model.pooling 'mean'"):
        finetune(cfg, tmp_path / "m", merge=True)
    assert not (tmp_path / "m").exists()
    with pytest.raises(ConfigError, match="model.pooling.*must be one of"):
        _cfg(notes_file, tiny_model_dir, **{"model.pooling": "max"})
    with pytest.raises(ConfigError, match="model.ner_decoding.*must be one of"):
        _cfg(notes_file, tiny_model_dir, **{"model.ner_decoding": "crf"})


def test_mean_pooling_names_the_architecture_it_cannot_serve():
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    from domainfm.inference.pooling import apply_pooling

    model = DistilBertForSequenceClassification(DistilBertConfig(vocab_size=50, dim=16, n_layers=1, n_heads=2,
                                                                 hidden_dim=20))
    assert apply_pooling(model, "cls") is model
    with pytest.raises(ConfigError, match=r"needs a BERT-style encoder.*distilbert.*model.pooling: cls"):
        apply_pooling(model, "mean")


def test_folders_without_a_pooling_entry_load_with_the_cls_head(tmp_path, notes_file, notes, tiny_model_dir):
    """Model folders written before model.pooling existed hold a [CLS]-head classifier."""
    finetune(_cfg(notes_file, tiny_model_dir, **{"model.pooling": "cls"}), tmp_path / "c")
    before = predict(tmp_path / "c", notes[:4])
    path = tmp_path / "c" / "domainfm_task.json"
    info = json.loads(path.read_text())
    del info["pooling"]
    path.write_text(json.dumps(info))
    assert [r["pred"] for r in predict(tmp_path / "c", notes[:4])] == [r["pred"] for r in before]


# ---------------------------------------------------------------------------------- bad input


def test_bad_input_errors(tmp_path, notes, tiny_model_dir):
    base = notes[:30]
    write_documents(tmp_path / "ok.jsonl", base)
    # an empty text names the record and the field
    write_documents(tmp_path / "empty.jsonl", base[:-1] + [Document("blank-1", "   ", label="cardiology")])
    with pytest.raises(RecordError, match=r"blank-1.*field 'text' is empty"):
        finetune(_cfg(tmp_path / "empty.jsonl", tiny_model_dir), tmp_path / "o1")
    # a wrong label field lists the fields that exist
    with pytest.raises(RecordError, match=r"'meta.diagnosis' does not exist.*meta.patient_id"):
        finetune(_cfg(tmp_path / "ok.jsonl", tiny_model_dir, **{"data.label_field": "meta.diagnosis"}), tmp_path / "o2")
    # an eval label that training never saw
    evald = [Document("e1", base[0].text, label="oncology")]
    write_documents(tmp_path / "eval.jsonl", evald)
    with pytest.raises(RecordError, match=r"e1.*label 'oncology'.*never seen in training"):
        finetune(_cfg(tmp_path / "ok.jsonl", tiny_model_dir, **{"data.eval": str(tmp_path / "eval.jsonl")}),
                 tmp_path / "o3")
    # a model folder of another stage
    (tmp_path / "dapt").mkdir()
    (tmp_path / "dapt" / "manifest.json").write_text(json.dumps({"stage": "pretrain"}))
    with pytest.raises(ConfigError, match="is a 'pretrain' output, not a fine-tuned task model"):
        predict(tmp_path / "dapt", base[:1])
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_cli_finetune_predict_evaluate(tmp_path, cli, notes_file, notes, tiny_model_dir):
    task = tmp_path / "task.yaml"
    save_config(_cfg(notes_file, tiny_model_dir), task)
    model = tmp_path / "model"
    result = cli("finetune", task, "-o", model, "--train.max_steps", "2", "--train.eval_every", "2")
    assert result.exit_code == 0, result.output
    assert "macro_f1" in result.output
    write_documents(tmp_path / "in.jsonl", notes[:5])
    result = cli("predict", model, tmp_path / "in.jsonl", "-o", tmp_path / "out.jsonl")
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(lines) == 5 and all("pred" in x for x in lines)
    result = cli("evaluate", model, tmp_path / "in.jsonl", "-o", tmp_path / "m.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "m.json").read_text())["n"] == 5
    assert json.loads((tmp_path / "m.manifest.json").read_text())["stage"] == "evaluate"  # provenance, as predict's
    result = cli("evaluate", model, tmp_path / "in.jsonl", "--ner-decoding", "tokens")
    assert result.exit_code == 2 and "ner_decoding applies to ner models" in result.output
    result = cli("finetune", task, "-o", model)
    assert result.exit_code == 2 and "already exists" in result.output
    result = cli("finetune", task, "-o", tmp_path / "x", "--train.lr_rate", "1")
    assert result.exit_code == 2 and "did you mean 'lr'" in result.output


# ------------------------------------------------------------------------------- data.prepare


def test_prepare_steps_reconcile(tmp_path):
    from domainfm.finetune import PrepareStep, run_prepare

    src = tmp_path / "notes.csv"
    src.write_text(
        "note_id,medical_specialty,transcription\n"
        "1,Neurology,Headache for two days.\n"
        "2,Radiology,Headache for two days.\n"  # the same note cross-listed
        "3,Surgery,Appendectomy performed.\n"  # no specialty of the subset
        "4,Urology,Stone in the left ureter.\n"
        "5,Neurology,Stone in the left ureter.\n"  # two specialties of the subset
        "6,Urology,Hematuria workup.\n", encoding="utf-8")
    step = PrepareStep(format="mtsamples", src=str(src), out=str(tmp_path / "out.jsonl"),
                       options={"specialties": ["Neurology", "Urology"]})
    counts = run_prepare(step)
    assert counts["read"] == 4 and counts["written"] == 2 and counts["rejected"] == 2 and counts["reconciles"]
    docs = list(read_documents(tmp_path / "out.jsonl"))
    assert [d.label for d in docs] == ["Neurology", "Urology"]
    reasons = [json.loads(x)["reason"] for x in (tmp_path / "out.rejects.jsonl").read_text().splitlines()]
    assert any("not in the task's subset" in r for r in reasons) and any("ambiguous" in r for r in reasons)
    assert run_prepare(step) is None  # already prepared
    csv_step = PrepareStep(format="csv", src=str(src), out=str(tmp_path / "csv.jsonl"),
                           options={"text_col": "transcription", "label_col": "medical_specialty"})
    assert run_prepare(csv_step)["written"] == 6
    with pytest.raises(ConfigError, match="unknown format 'cvs'.*did you mean 'csv'"):
        run_prepare(PrepareStep(format="cvs", src=str(src), out=str(tmp_path / "x.jsonl")))


def test_a_prepared_file_is_made_again_when_its_source_changed(tmp_path):
    """The step was skipped whenever its output existed: an edited source (a corrected label) was
    never read again, and fine-tuning trained on the old file."""
    from domainfm.finetune import PrepareStep, run_prepare

    src = tmp_path / "notes.csv"
    src.write_text("text,label\nHeadache for two days.,neuro\nStone in the ureter.,uro\n", encoding="utf-8")
    step = PrepareStep(format="csv", src=str(src), out=str(tmp_path / "out.jsonl"), options={"label_col": "label"})
    assert run_prepare(step)["written"] == 2
    assert run_prepare(step) is None  # the same source: kept
    src.write_text("text,label\nHeadache for two days.,neuro\nStone in the ureter.,neuro\n", encoding="utf-8")
    assert run_prepare(step)["written"] == 2
    assert [d.label for d in read_documents(tmp_path / "out.jsonl")] == ["neuro", "neuro"]
    own = tmp_path / "own.jsonl"  # a file the user made (no import manifest) is theirs: kept
    own.write_text('{"id": "a", "text": "x", "label": "neuro"}\n', encoding="utf-8")
    assert run_prepare(PrepareStep(format="csv", src=str(src), out=str(own))) is None


def test_new_modules_of_a_base_without_them_are_saved_with_the_adapter():
    """A DAPT masked-LM output has no pooler: it is initialised fresh, so under LoRA it must be
    trained and saved with the adapter, or a reloaded model predicts differently."""
    from domainfm.finetune.train import new_modules

    missing = ["bert.pooler.dense.weight", "bert.pooler.dense.bias", "classifier.weight", "classifier.bias"]
    assert new_modules(missing, "bert") == ["classifier", "pooler"]
    assert new_modules([], "bert") == []


def test_labels_map_renames_and_drops_span_labels_before_training(tmp_path):
    from domainfm.config import load_config
    from domainfm.corpus import Document, Span, write_documents
    from domainfm.finetune.config import TaskConfig

    docs = [Document(f"d{i}", "Seen by Lee on 7/22, call 555-0100.", meta={"patient_id": f"p{i}"},
                     spans=[Span(8, 11, "HCPName"), Span(15, 19, "Date"), Span(26, 34, "Phone")]) for i in range(6)]
    write_documents(tmp_path / "t.jsonl", docs)
    cfg = load_config(TaskConfig, overrides={
        "task": "ner", "data.train": str(tmp_path / "t.jsonl"), "data.eval_fraction": 0.34,
        "labels.map": {"HCPName": "NAME", "Phone": None}})
    train, held, label_map, stats = load_task_data(cfg)
    assert label_map.labels == ["Date", "NAME"] and stats["label_counts"]
    for doc in train + held:
        assert [(s.start, s.end, s.label) for s in doc.spans] == [(8, 11, "NAME"), (15, 19, "Date")]
    with pytest.raises(ConfigError, match="labels.map renames span labels"):
        load_config(TaskConfig, overrides={"task": "classification", "data.train": "x.jsonl",
                                           "labels.map": {"a": "b"}})
    with pytest.raises(ConfigError, match="labels.map: 'a' must map to a label name or null"):
        load_config(TaskConfig, overrides={"task": "ner", "data.train": "x.jsonl", "labels.map": {"a": ""}})


def test_the_split_is_recorded_as_digests_and_read_back(tmp_path, notes_file, tiny_model_dir):
    """The audit and the de-id site evaluation read the documents finetune held out from
    ``split.json`` (salted digests: document ids never sit in the model folder)."""
    from domainfm.finetune.split import SPLIT_FILE, read_split, recorded_documents

    cfg = _cfg(notes_file, tiny_model_dir, **{"train.max_steps": 1})
    result = finetune(cfg, tmp_path / "model")
    record = (tmp_path / "model" / SPLIT_FILE).read_text(encoding="utf-8")
    train_docs, eval_docs, _, _ = load_task_data(cfg)
    assert not any(f'"{d.id}"' in record for d in train_docs + eval_docs)
    split = read_split(result.out_dir)
    assert {split.side(d) for d in eval_docs} == {"eval"} and {split.side(d) for d in train_docs} == {"train"}
    assert split.side(Document("never-seen", "x")) is None
    # an id guessed without its text tests nothing (ids such as MRNs can be enumerated)
    assert split.side(Document(eval_docs[0].id, eval_docs[0].text + " ")) is None
    got_train, got_eval, stats = recorded_documents(result.out_dir, cfg)
    assert [d.id for d in got_eval] == [d.id for d in eval_docs] and stats["recorded"]
    assert [d.id for d in got_train] == [d.id for d in train_docs]


def test_a_version_1_split_record_of_ids_alone_is_still_read(tmp_path):
    import hashlib

    from domainfm.finetune.split import SPLIT_FILE, read_split

    salt = "s1"
    digest = hashlib.sha256(f"{salt}\x00note-7".encode()).hexdigest()[:32]
    (tmp_path / SPLIT_FILE).write_text(json.dumps({"version": 1, "salt": salt, "train": [digest], "eval": []}))
    split = read_split(tmp_path)
    assert split.side(Document("note-7", "any text")) == "train" and split.side(Document("note-8", "t")) is None


def test_epochs_count_passes_over_the_data_with_gradient_accumulation(tmp_path, notes_file, tiny_model_dir):
    # each pass's steps were rounded up on their own: 6 batches a pass, accumulation 4, epochs 3
    # gave 2 steps (8 batches) a pass, 24 batches, 4 passes
    cfg = _cfg(notes_file, tiny_model_dir, **{"train.max_steps": 0, "train.eval_every": 0, "train.epochs": 3,
                                               "train.grad_accum": 4, "train.batch_size": 8})
    result = finetune(cfg, tmp_path / "m")
    train = result.metrics["train"]
    per_pass = train["steps_per_epoch"] * 4  # batches in one pass over the 45 training notes
    assert per_pass == 6
    assert train["steps"] == 5 and train["epochs"] == round(5 * 4 / 6, 3)  # ceil(3 * 6 / 4) steps, 3.33 passes
    # evaluated where a pass ends: batch 6 in step 2, 12 in step 3, 18 in step 5
    assert [h["step"] for h in result.metrics["history"]] == [2, 3, 5]
    assert [h["epoch"] for h in result.metrics["history"]] == [1.333, 2.0, 3.333]
