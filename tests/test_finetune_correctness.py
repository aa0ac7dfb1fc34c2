"""Fine-tuning and inference give the *right* answers: gold spans survive tags and windows
exactly, chunk scores pool as documented, a saved model predicts the same in plain transformers /
peft as in domainfm, and ``metrics.json`` agrees with scikit-learn (or a count by hand) on the same
predictions.

Every text here is made up; the models are 2-layer, 32-wide BERTs built from a config over a
vocabulary of these texts (``conftest.wordpiece_tokenizer``), so each test runs in seconds.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from domainfm.config import load_config
from domainfm.corpus import Document, Span, write_documents
from domainfm.finetune import TaskConfig, finetune, load_task_model, predict
from domainfm.finetune.config import LongDocumentsSection
from domainfm.finetune.data import IGNORE_INDEX, LabelMap, encode_documents
from domainfm.finetune.train import load_task_data
from domainfm.inference.predict import document_outputs

from conftest import byte_level_bpe, perfect_tagger_logits, wordpiece_tokenizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DRUGS = ("aspirin", "heparin", "warfarin")
PLACES = ("boston", "leeds")
FILLER = "the patient was given and seen in clinic for chest pain after a fall at home on monday".split()


def _ner_documents(n: int = 24, seed: int = 0) -> list[Document]:
    """Made-up notes whose spans include two-word entities, adjacent entities of one label
    ("aspirin heparin" as two DRUG spans), entities at the very start and end of the text and
    entities followed by punctuation."""
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(n):
        words: list[tuple[str, str | None, bool]] = []  # word, label, starts a new entity
        for _ in range(int(rng.integers(6, 40))):
            r = rng.random()
            if r < 0.15:
                words.append((str(rng.choice(DRUGS)), "DRUG", True))
                if rng.random() < 0.4:  # an adjacent, separate entity of the same label
                    words.append((str(rng.choice(DRUGS)), "DRUG", True))
            elif r < 0.25:
                words.append((str(rng.choice(PLACES)), "PLACE", True))
                if rng.random() < 0.5:  # a two-word entity: one span
                    words.append(("general", "PLACE", False))
            else:
                words.append((str(rng.choice(FILLER)), None, False))
        if i % 3 == 0:
            words.insert(0, ("warfarin", "DRUG", True))  # an entity at offset 0
        if i % 4 == 0:
            words.append(("leeds", "PLACE", True))  # ... and one that ends the text
        text, spans = "", []
        for word, label, new in words:
            if text:
                text += "; " if rng.random() < 0.1 else " "
            start = len(text)
            text += word
            if label is None:
                continue
            if not new and spans and spans[-1][2] == label and text[spans[-1][1]:start] == " ":
                spans[-1] = (spans[-1][0], len(text), label)
            else:
                spans.append((start, len(text), label))
        docs.append(Document(f"n{i}", text, {"patient_id": f"p{i}"}, spans=[Span(*s) for s in spans]))
    return docs


def _keys(spans) -> list[tuple[int, int, str]]:
    return sorted((s.start, s.end, s.label) for s in spans)


# --------------------------------------------------------------- NER: spans -> tags -> spans


def test_word_pieces_get_b_on_the_first_and_i_on_every_later_piece():
    # "aspirin heparin" is two DRUG entities side by side; every word is spelled out in pieces
    text = "aspirin heparin in leeds general"
    doc = Document("a", text, spans=[Span(0, 7, "DRUG"), Span(8, 15, "DRUG"), Span(19, 32, "PLACE")])
    tok = wordpiece_tokenizer([text], whole_words=False)
    labels = LabelMap("ner", ["DRUG", "PLACE"])
    enc = encode_documents([doc], task="ner", tokenizer=tok, max_length=64, long_documents=LongDocumentsSection(
        strategy="truncate"), label_map=labels, label_field="spans")
    f = enc.features[0]
    tags = [labels.id2label[t] if t != IGNORE_INDEX else None for t in f.label]
    by_char = {}
    for (start, end), tag in zip(f.offsets, tags):
        if end > start:
            by_char[start] = tag
    assert tags[0] is None and tags[-1] is None  # [CLS] and [SEP] are ignored by the loss
    assert [by_char[i] for i in range(0, 7)] == ["B-DRUG"] + ["I-DRUG"] * 6
    assert by_char[8] == "B-DRUG"  # the second drug starts its own entity, not I-DRUG
    assert by_char[16] == "O" and by_char[19] == "B-PLACE" and by_char[25] == "I-PLACE"  # across the space


@pytest.mark.parametrize("decoding", ["words", "tokens"])
@pytest.mark.parametrize("strategy, max_length, overlap", [("truncate", 400, 0), ("chunk", 24, 4), ("chunk", 36, 2)])
def test_gold_spans_come_back_exactly_from_their_own_tags(decoding, strategy, max_length, overlap):
    """Spans -> BIO tags of every window -> the tags as a perfect model's scores -> spans in
    document coordinates must be the gold spans, windows, overlaps and edges included."""
    docs = _ner_documents()
    tok = wordpiece_tokenizer([d.text for d in docs], whole_words=False)  # many pieces per word
    labels = LabelMap("ner", ["DRUG", "PLACE"])
    enc = encode_documents(docs, task="ner", tokenizer=tok, max_length=max_length,
                           long_documents=LongDocumentsSection(strategy=strategy, overlap=overlap),
                           label_map=labels, label_field="spans")
    if strategy == "chunk":
        assert enc.stats["long_documents"] > len(docs) // 2  # windows really cut these notes
        assert enc.stats["spans_cut_by_chunks"] > 0  # ... through entities too
    else:
        assert enc.stats.get("truncated_documents", 0) == 0
    found = document_outputs("ner", labels, docs, enc.features, perfect_tagger_logits(enc.features, labels),
                             ner_decoding=decoding, texts=[d.text for d in docs])
    for doc, spans in zip(docs, found):
        assert _keys(spans) == _keys(doc.spans), doc.id


def test_word_spans_keep_the_words_of_a_byte_level_tokenizer():
    """Word-level decoding reads the tokenizer's own words. A GPT-2 style pre-tokenizer makes
    "COVID" and "19" two words; widening every span to the letters and digits around it turned
    a correct "COVID" into "COVID19" (and "mg" into "5mg"), so no such span could ever match."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    text = "Give 5mg aspirin and a COVID19 test in Leeds today."
    raw = byte_level_bpe([text], ["<s>", "</s>", "<pad>"])
    raw.post_processor = processors.RobertaProcessing(("</s>", raw.token_to_id("</s>")),
                                                      ("<s>", raw.token_to_id("<s>")), trim_offsets=True)
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    doc = Document("a", text, spans=[Span(6, 8, "UNIT"), Span(23, 28, "DISEASE"), Span(39, 44, "PLACE")])
    labels = LabelMap("ner", ["DISEASE", "PLACE", "UNIT"])
    for strategy in ("truncate", "chunk"):
        enc = encode_documents([doc], task="ner", tokenizer=tok, max_length=64, label_map=labels,
                               long_documents=LongDocumentsSection(strategy=strategy, overlap=4), label_field="spans")
        found = document_outputs("ner", labels, [doc], enc.features, perfect_tagger_logits(enc.features, labels),
                                 ner_decoding="words", texts=[text])[0]
        assert _keys(found) == _keys(doc.spans), strategy


def test_a_span_a_chunk_edge_cuts_inside_a_word_is_still_widened_to_the_word():
    # The chunker cuts "hypokalemiahypokalemia" (no better place within 16 tokens); only the
    # chunk that starts inside it tags it: the span grows to the whole word, as documented.
    text = "seen today; hypokalemiahypokalemia noted"
    tok = wordpiece_tokenizer([text], whole_words=False)
    labels = LabelMap("ner", ["X"])
    enc = encode_documents([Document("a", text)], task="ner", tokenizer=tok, max_length=16, label_map=labels,
                           long_documents=LongDocumentsSection(strategy="chunk", overlap=0), label_field="spans",
                           with_labels=False)
    word = (12, 34)
    inside = [f for f in enc.features if word[0] < f.offset < word[1]]
    assert inside, [(f.offset, f.length) for f in enc.features]
    logits = []
    for f in enc.features:
        scores = np.zeros((len(f.input_ids), 3))
        scores[:, 0] = 5.0
        if f is inside[0]:
            in_word = [k for k, (s, e) in enumerate(f.offsets) if e > s and f.offset + e <= word[1]]
            scores[in_word[0], 1] = scores[in_word[1:], 2] = 10.0
        logits.append(scores)
    found = document_outputs("ner", labels, [Document("a", text)], enc.features, logits, texts=[text])[0]
    assert _keys(found) == [(*word, "X")]


# ------------------------------------------------------------- long documents: classification


@pytest.mark.parametrize("how", ["mean", "max"])
def test_chunk_logits_pool_per_document_weighted_by_chunk_length(how):
    texts = [" ".join(FILLER) + ". " + " ".join(reversed(FILLER)) + ".", "chest pain at home."]
    docs = [Document(f"d{i}", t) for i, t in enumerate(texts)]
    tok = wordpiece_tokenizer(texts)
    labels = LabelMap("classification", ["a", "b", "c"])
    enc = encode_documents(docs, task="classification", tokenizer=tok, max_length=16, label_map=labels,
                           long_documents=LongDocumentsSection(strategy="chunk", overlap=3, aggregate=how),
                           label_field="label", with_labels=False)
    rng = np.random.default_rng(0)
    logits = [rng.normal(size=3) * 3 for _ in enc.features]
    out = document_outputs("classification", labels, docs, enc.features, logits, aggregate=how)
    for i, probs in enumerate(out):
        rows = [(f.length, lg) for f, lg in zip(enc.features, logits) if f.doc_index == i]
        stacked = np.array([lg for _, lg in rows])
        weights = np.array([n for n, _ in rows], dtype=float)
        pooled = stacked.max(0) if how == "max" else (weights[:, None] * stacked).sum(0) / weights.sum()
        expected = np.exp(pooled - pooled.max()) / np.exp(pooled - pooled.max()).sum()
        np.testing.assert_allclose(probs, expected, rtol=1e-5)
    assert sum(f.doc_index == 0 for f in enc.features) > 2  # the first note really is chunked


# ----------------------------------------------------------------------- trained tiny models


@pytest.fixture(scope="module")
def made_up(tmp_path_factory):
    """Made-up notes for all three tasks and a tiny BERT whose vocabulary covers them."""
    import torch
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("made-up")
    rng = np.random.default_rng(1)
    cue = {"zeta": "chest", "alpha": "fall", "mid": "clinic"}
    docs = []
    for i, doc in enumerate(_ner_documents(36, seed=1)):
        label = ("zeta", "alpha", "mid")[i % 3]
        text = f"{doc.text} {cue[label]}"
        tags = sorted({label} | {t for t in ("zeta", "alpha", "mid") if rng.random() < 0.3})
        docs.append(Document(doc.id, text, doc.meta, label=label, labels=tags, spans=doc.spans))
    write_documents(folder / "notes.jsonl", docs)
    tok = wordpiece_tokenizer([d.text for d in docs])
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=37, max_position_embeddings=128)).save_pretrained(folder / "base")
    tok.save_pretrained(folder / "base")
    return folder


def _cfg(folder, task, **overrides) -> TaskConfig:
    settings = {
        "task": task, "model.name": str(folder / "base"), "model.max_length": 48,
        "data.train": str(folder / "notes.jsonl"), "data.eval_fraction": 0.25,
        "lora.r": 4, "lora.lora_alpha": 8, "lora.target_modules": ["query", "value"],
        "long_documents.strategy": "chunk", "long_documents.overlap": 4,
        "train.lr": 3e-2, "train.max_steps": 12, "train.batch_size": 8, "train.eval_every": 4,
        "allow_identified_data": True,
    }
    return load_config(TaskConfig, overrides={**settings, **overrides})


def test_a_lora_model_of_the_first_layers_reloads_at_that_depth(made_up, tmp_path):
    """``model.num_layers`` with LoRA (no --merge): the adapter was trained on the base's first
    layer only, so loading it must cut the base to one layer again; loaded onto both layers it
    predicted with a layer the training never ran through."""
    import torch
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    cfg = _cfg(made_up, "classification", **{"model.num_layers": 1, "train.max_steps": 4,
                                             "long_documents.strategy": "truncate"})
    result = finetune(cfg, tmp_path / "m")
    tm = load_task_model(tmp_path / "m")
    assert tm.model.config.num_hidden_layers == 1
    _, held, _, _ = load_task_data(cfg)
    scores = [r["pred"]["scores"] for r in predict(tm, held)]

    # the same model by hand: plain transformers at the recorded depth, the adapter on top
    labels = result.metrics["labels"]
    config = AutoConfig.from_pretrained(made_up / "base", num_labels=len(labels), num_hidden_layers=1,
                                        id2label=dict(enumerate(labels)), label2id={x: i for i, x in enumerate(labels)})
    model = PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(made_up / "base", config=config),
                                      tmp_path / "m" / "adapter").eval()
    tok = AutoTokenizer.from_pretrained(tmp_path / "m")
    with torch.no_grad():
        for doc, got in zip(held, scores):
            probs = model(**tok(doc.text, truncation=True, max_length=48, return_tensors="pt")).logits.softmax(-1)[0]
            assert [got[x] for x in labels] == pytest.approx(probs.tolist(), abs=1e-4)
    assert json.loads((tmp_path / "m" / "domainfm_task.json").read_text())["num_layers"] == 1


def test_plain_transformers_and_peft_predict_what_domainfm_predicts(made_up, tmp_path):
    """Labels in a given, unsorted order keep it from the task file to ``id2label`` and the
    predictions; the merged model (plain transformers) and the adapter (peft) score as
    domainfm does, and the 0.5 threshold picks the same labels."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    names = ["zeta", "alpha", "mid"]
    cfg = _cfg(made_up, "multilabel", **{"labels.names": names, "long_documents.strategy": "truncate",
                                         "train.max_steps": 4})
    finetune(cfg, tmp_path / "m", merge=True)
    info = json.loads((tmp_path / "m" / "domainfm_task.json").read_text())
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert info["labels"] == names and [info["id2label"][str(i)] for i in range(3)] == names
    assert [config["id2label"][str(i)] for i in range(3)] == names
    assert config["problem_type"] == "multi_label_classification"

    _, held, _, _ = load_task_data(cfg)
    records = predict(tmp_path / "m", held)
    tok = AutoTokenizer.from_pretrained(tmp_path / "m")
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "m").eval()
    base = AutoModelForSequenceClassification.from_pretrained(
        made_up / "base", num_labels=3, id2label=dict(enumerate(names)), label2id={x: i for i, x in enumerate(names)})
    adapter = PeftModel.from_pretrained(base, tmp_path / "m" / "adapter").eval()
    with torch.no_grad():
        for doc, rec in zip(held, records):
            batch = tok(doc.text, truncation=True, max_length=48, return_tensors="pt")
            for model in (merged, adapter):
                probs = torch.sigmoid(model(**batch).logits)[0].tolist()
                assert list(rec["pred"]["scores"]) == names
                assert list(rec["pred"]["scores"].values()) == pytest.approx(probs, abs=1e-4)
            assert rec["pred"]["labels"] == [x for x in names if rec["pred"]["scores"][x] >= 0.5]


@pytest.mark.parametrize("task", ["classification", "multilabel", "ner"])
def test_metrics_json_matches_an_independent_computation(made_up, tmp_path, task):
    """metrics.json's evaluation = scikit-learn (or a count of exact spans) on what the saved
    model predicts for the held-out notes, through chunked windows; it is the best evaluation."""
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    names = ["zeta", "alpha", "mid"]
    cfg = _cfg(made_up, task, **({} if task == "ner" else {"labels.names": names}))
    result = finetune(cfg, tmp_path / "m")
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["eval"] == result.metrics["eval"]
    assert metrics["eval"][cfg.metric] == max(h[cfg.metric] for h in metrics["history"])
    _, held, _, _ = load_task_data(cfg)
    records = predict(tmp_path / "m", held)
    ev = metrics["eval"]
    if task == "classification":
        gold, pred = [d.label for d in held], [r["pred"]["label"] for r in records]
        assert ev["accuracy"] == pytest.approx(accuracy_score(gold, pred), abs=1e-4)
        assert ev["macro_f1"] == pytest.approx(f1_score(gold, pred, labels=names, average="macro",
                                                        zero_division=0), abs=1e-4)
        assert ev["confusion_matrix"]["labels"] == names
        assert np.trace(ev["confusion_matrix"]["matrix"]) == sum(g == p for g, p in zip(gold, pred))
    elif task == "multilabel":
        gold = np.array([[x in d.labels for x in names] for d in held], dtype=int)
        pred = np.array([[x in r["pred"]["labels"] for x in names] for r in records], dtype=int)
        assert ev["micro_f1"] == pytest.approx(f1_score(gold, pred, average="micro", zero_division=0), abs=1e-4)
        assert ev["macro_f1"] == pytest.approx(f1_score(gold, pred, average="macro", zero_division=0), abs=1e-4)
        p, r, f, s = precision_recall_fscore_support(gold, pred, zero_division=0)
        assert [ev["per_class"][x]["f1"] for x in names] == pytest.approx(f.tolist(), abs=1e-4)
        assert [ev["per_class"][x]["support"] for x in names] == s.tolist()
    else:
        gold = {(d.id, s.start, s.end, s.label) for d in held for s in d.spans}
        pred = {(r["id"], s["start"], s["end"], s["label"]) for r in records for s in r["pred_spans"]}
        assert pred, "the tiny tagger should find something in 12 steps"
        tp = len(gold & pred)
        precision, recall = tp / len(pred), tp / len(gold)
        f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
        assert (ev["precision"], ev["recall"], ev["f1"]) == pytest.approx((precision, recall, f1), abs=1e-4)
        assert (ev["gold_entities"], ev["predicted_entities"]) == (len(gold), len(pred))


def test_the_stage_result_counts_the_held_out_documents_of_a_ner_run(tmp_path):
    # entity scores count entities, not documents: the count comes from the data section
    from domainfm.finetune.stage import summarize

    raw = {"eval": {"f1": 0.5, "precision": 0.5, "recall": 0.5, "gold_entities": 9},
           "data": {"train_documents": 30, "eval_documents": 7}}
    assert summarize(tmp_path, raw, 12, None).counts["eval_documents"] == 7
    raw = {"eval": {"n": 7, "accuracy": 1.0, "macro_f1": 1.0}, "data": {"eval_documents": 7}}
    assert summarize(tmp_path, raw, 12, None).counts["eval_documents"] == 7
