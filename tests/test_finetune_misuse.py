"""Fine-tuning, predict and evaluate used carelessly: documents given twice under one id, a
model folder whose label lists disagree, an evaluation file that is the training file, spans
cut by chunk edges, and a resumed run that finds no checkpoint."""

from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest
import yaml

from domainfm.config import ConfigError, load_config
from domainfm.corpus import Document, Span, write_documents
from domainfm.errors import RecordError
from domainfm.finetune import TaskConfig, finetune, load_task_model, predict
from domainfm.finetune.config import LongDocumentsSection
from domainfm.finetune.data import LabelMap, encode_documents
from domainfm.inference.predict import document_outputs

from conftest import TINY_TEXTS

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _made_up(n: int = 24, seed: int = 0) -> list[Document]:
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        label = ("left", "right")[i % 2]
        text = " ".join(rng.choice(TINY_TEXTS) for _ in range(rng.randint(1, 3)))
        docs.append(Document(f"doc-{i}", text, {"patient_id": f"p{i}"}, label=label))
    return docs


@pytest.fixture()
def train_file(tmp_path):
    path = tmp_path / "train.jsonl"
    write_documents(path, _made_up())
    return path


def _cfg(train, model_dir, **overrides) -> TaskConfig:
    settings = {
        "task": "classification", "model.name": str(model_dir), "model.max_length": 32,
        "data.train": str(train), "data.eval_fraction": 0.25,
        "lora.r": 4, "lora.lora_alpha": 8, "lora.target_modules": ["query", "value"],
        "long_documents.strategy": "chunk", "long_documents.overlap": 4,
        "train.lr": 5e-3, "train.max_steps": 2, "train.batch_size": 8, "train.eval_every": 2,
        "allow_identified_data": True,
    }
    return load_config(TaskConfig, overrides={**settings, **overrides})


class Stop(Exception):
    pass


# ------------------------------------------------------------------- two documents, one id


def test_chunk_predictions_are_pooled_per_document_not_per_id(tiny_tokenizer):
    """The Python API takes documents as they come; two under one id must keep their own scores."""
    docs = [Document("same", TINY_TEXTS[0] + " " + TINY_TEXTS[1]), Document("same", TINY_TEXTS[4])]
    long_documents = LongDocumentsSection(strategy="chunk", overlap=4)
    labels = LabelMap("classification", ["left", "right"])
    enc = encode_documents(docs, task="classification", tokenizer=tiny_tokenizer, max_length=16,
                           long_documents=long_documents, label_map=labels, label_field="label", with_labels=False)
    assert len(enc.features) > 2  # the first document is chunked
    logits = [np.array([4.0, -4.0]) if f.doc_index == 0 else np.array([-4.0, 4.0]) for f in enc.features]
    first, second = document_outputs("classification", labels, docs, enc.features, logits)
    assert first[0] > 0.99 and second[1] > 0.99

    tags = LabelMap("ner", ["X"])
    enc = encode_documents(docs, task="ner", tokenizer=tiny_tokenizer, max_length=16, long_documents=long_documents,
                           label_map=tags, label_field="spans", with_labels=False)
    logits = []
    for f in enc.features:
        scores = np.zeros((len(f.input_ids), 3))
        scores[:, 0] = 5.0  # O everywhere ...
        if f.doc_index == 1 and f.offset == 0:
            scores[1, 1] = 10.0  # ... but the second document's first word is an X
        logits.append(scores)
    found = document_outputs("ner", tags, docs, enc.features, logits, texts=[d.text for d in docs])
    assert found[0] == [] and [(s.start, s.label) for s in found[1]] == [(0, "X")]


# ----------------------------------------------------------------- label lists that disagree


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir):
    folder = tmp_path_factory.mktemp("trained")
    write_documents(folder / "train.jsonl", _made_up())
    finetune(_cfg(folder / "train.jsonl", tiny_model_dir), folder / "model", merge=True)
    return folder / "model"


def _edit_task_file(src, dst, **changes):
    shutil.copytree(src, dst)
    path = dst / "domainfm_task.json"
    info = json.loads(path.read_text())
    info.update(changes)
    path.write_text(json.dumps(info))
    return dst


def test_a_task_file_whose_labels_were_reordered_is_refused(trained, tmp_path):
    folder = _edit_task_file(trained, tmp_path / "m", labels=["right", "left"])
    with pytest.raises(ConfigError, match=r"domainfm_task.json: 'labels' and 'id2label' disagree"):
        predict(folder, [Document("a", TINY_TEXTS[0])])
    # labels, id2label and label2id all edited: the merged model's own config.json still disagrees
    two = LabelMap("classification", ["right", "left"])
    folder = _edit_task_file(trained, tmp_path / "m2", labels=two.labels, label2id=two.label2id,
                             id2label={str(k): v for k, v in two.id2label.items()})
    with pytest.raises(ConfigError, match=r"its labels differ from those in .*config.json"):
        predict(folder, [Document("a", TINY_TEXTS[0])])


def test_a_head_trained_on_another_label_set_is_refused(trained, tmp_path):
    three = LabelMap("classification", ["left", "middle", "right"])
    maps = {"labels": three.labels, "id2label": {str(k): v for k, v in three.id2label.items()},
            "label2id": three.label2id}
    adapter_only = _edit_task_file(trained, tmp_path / "adapter", **maps)
    for name in ("config.json", "model.safetensors"):
        (adapter_only / name).unlink()
    with pytest.raises(ConfigError, match=r"its 3 outputs \(labels\) do not fit the adapter's head"):
        load_task_model(adapter_only)
    merged = _edit_task_file(trained, tmp_path / "merged", **maps)  # the merged config.json has 2 outputs
    with pytest.raises(ConfigError, match=r"lists 3 outputs but the model in .* has 2"):
        predict(merged, [Document("a", TINY_TEXTS[0])])


# --------------------------------------------------------------------------- evaluation data


def test_the_training_file_as_evaluation_file_is_refused(tmp_path, train_file, tiny_model_dir):
    with pytest.raises(ConfigError, match="data.eval is the training file"):
        finetune(_cfg(train_file, tiny_model_dir, **{"data.eval": str(train_file)}), tmp_path / "m")
    overlap = tmp_path / "eval.jsonl"
    docs = _made_up()
    write_documents(overlap, [Document("new-1", "The patient denies fever.", label="left"), docs[3]])
    with pytest.raises(RecordError, match=r"doc-3.*also in the training data"):
        finetune(_cfg(train_file, tiny_model_dir, **{"data.eval": str(overlap)}), tmp_path / "m")
    assert not (tmp_path / "m").exists()
    # on purpose (the labeler's span model, trained on every seed, reports its fit): said, and recorded
    fit = finetune(_cfg(train_file, tiny_model_dir, **{"data.eval": str(train_file), "data.eval_is_training": True,
                                                       "train.max_steps": 1}), tmp_path / "fit")
    assert fit.metrics["data"]["eval_source"].endswith("(training documents: a fit measure)")


# ----------------------------------------------------------------------------- ner chunking


def test_spans_no_chunk_holds_whole_are_counted(tiny_tokenizer):
    text = TINY_TEXTS[1] + " " + TINY_TEXTS[3]
    second = len(TINY_TEXTS[1]) + 1
    doc = Document("d", text, spans=[Span(0, len(TINY_TEXTS[1]), "LONG"), Span(second, second + 3, "SHORT")])
    enc = encode_documents([doc], task="ner", tokenizer=tiny_tokenizer, max_length=12,
                           long_documents=LongDocumentsSection(strategy="chunk", overlap=2),
                           label_map=LabelMap("ner", ["LONG", "SHORT"]), label_field="spans")
    assert enc.stats["chunks"] > 1
    assert enc.stats["spans_cut_by_chunks"] == 1  # LONG, learned only in pieces; SHORT fits one chunk
    assert enc.stats["spans_between_chunks"] == 0


# --------------------------------------------------------------------------------- resuming


def test_a_resume_that_finds_no_checkpoint_saves_the_config_it_trains_with(tmp_path, train_file, tiny_model_dir):
    def stop(event):
        if event["kind"] == "step" and event["step"] == 1:
            raise Stop

    with pytest.raises(Stop):  # killed before the first checkpoint (step 2)
        finetune(_cfg(train_file, tiny_model_dir), tmp_path / "m", on_event=stop)
    result = finetune(_cfg(train_file, tiny_model_dir, **{"train.lr": 1e-2}), tmp_path / "m", resume=True)
    assert result.resumed_from is None
    saved = yaml.safe_load((tmp_path / "m" / "finetune.yaml").read_text())
    assert saved["train"]["lr"] == 1e-2  # the config the model was trained with, not the killed run's


def test_resuming_a_run_that_finished_without_checkpoints_hands_it_back_untrained(tmp_path, train_file,
                                                                                   tiny_model_dir, monkeypatch):
    from domainfm.training import StageTrainer

    out = tmp_path / "m"
    finetune(_cfg(train_file, tiny_model_dir, **{"train.checkpoint": False}), out)
    assert not (out / "checkpoints").exists()
    saved = {name: (out / name).read_bytes() for name in ("metrics.json", "manifest.json",
                                                          "adapter/adapter_model.safetensors")}
    monkeypatch.setattr(StageTrainer, "train", lambda *a, **k: pytest.fail("a finished run was trained again"))
    events = []
    # checkpoint and eval_batch_size may change on a resume: they change no trained number
    again = finetune(_cfg(train_file, tiny_model_dir, **{"train.eval_batch_size": 4}), out, resume=True,
                     on_event=events.append)
    assert again.metrics == json.loads(saved["metrics.json"]) and again.steps == 2 and again.resumed_from is None
    assert any("holds a finished run of this config" in e.get("message", "") for e in events)
    assert {name: (out / name).read_bytes() for name in saved} == saved

    with pytest.raises(ConfigError, match=r"cannot resume .*m: it holds a finished run of another config "
                                          r"\(train\.lr: 0\.005 -> 0\.01\); pass --overwrite"):
        finetune(_cfg(train_file, tiny_model_dir, **{"train.lr": 1e-2}), out, resume=True)
    with pytest.raises(ConfigError, match="saved without a merged model; pass --overwrite to train again with --merge"):
        finetune(_cfg(train_file, tiny_model_dir), out, resume=True, merge=True)
    write_documents(train_file, _made_up(seed=1))
    with pytest.raises(ConfigError, match=r"its input .*train\.jsonl changed since; pass --overwrite"):
        finetune(_cfg(train_file, tiny_model_dir), out, resume=True)
    assert {name: (out / name).read_bytes() for name in saved} == saved


def test_a_resume_of_a_run_killed_while_saving_trains_again(tmp_path, train_file, tiny_model_dir):
    out = tmp_path / "m"
    finetune(_cfg(train_file, tiny_model_dir, **{"train.checkpoint": False}), out)
    weights = out / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # cut: the manifest's size no longer matches
    result = finetune(_cfg(train_file, tiny_model_dir), out, resume=True)
    assert result.resumed_from is None and weights.stat().st_size > 100


def test_a_lora_finetune_output_as_the_base_model_is_named_with_its_base(tmp_path, train_file, tiny_model_dir):
    from domainfm.errors import ModelResolutionError

    first = tmp_path / "first"
    finetune(_cfg(train_file, tiny_model_dir), first)
    with pytest.raises(ModelResolutionError, match=rf"model.name \({first}\) is a LoRA adapter .*give its base model "
                                                   rf"'{tiny_model_dir}' instead, or a merged model: .*--merge"):
        finetune(_cfg(train_file, first), tmp_path / "second")
    assert not (tmp_path / "second").exists()
