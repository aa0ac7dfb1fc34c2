"""domainfm never opens a network connection: not on import, not in the demo, not when
loading the embedded default models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ROOT, run_offline


def attempts(output: str) -> str:
    return output.strip().splitlines()[-1]


def demo_code(tmp_path, steps=None) -> str:
    return (
        "import domainfm, domainfm.cli\n"
        "from domainfm.demo import run_demo\n"
        f"run_demo(out={str(tmp_path / 'demo')!r}, corpora={str(ROOT / 'corpora')!r}"
        + (f", steps={steps!r}" if steps else "") + ")\n"
    )


@pytest.mark.slow
def test_import_and_demo_open_no_connection(tmp_path):
    """The demo's data stages (the model stages load the embedded models tested below)."""
    result = run_offline(demo_code(tmp_path, ("import", "deid", "chunk")), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert attempts(result.stdout) == "NETWORK_ATTEMPTS=0 []"
    assert (tmp_path / "demo" / "demo.json").is_file()


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the whole demo: about 5 minutes alone, much longer beside other jobs
def test_full_demo_opens_no_connection(tmp_path):
    result = run_offline(demo_code(tmp_path), cwd=tmp_path, timeout=1800)
    assert result.returncode == 0, result.stderr[-2000:]
    assert attempts(result.stdout) == "NETWORK_ATTEMPTS=0 []"
    spans = json.loads((tmp_path / "demo" / "demo.json").read_text())["pipelines"]["clinical"]["label_spans"]
    assert spans["counts"]["reconciles"] and spans["counts"]["written"] == 40
    assert Path(spans["exports"][0]).is_file() and spans["entity_f1_vs_held_back"] > 0.2


@pytest.mark.slow
def test_embedded_models_load_offline(tmp_path):
    code = (
        "from domainfm.models import load_spacy, load_tokenizer, resolve_model\n"
        "from transformers import AutoModel\n"
        "import torch\n"
        "tok = load_tokenizer('minilm')\n"
        "model = AutoModel.from_pretrained(resolve_model('minilm'))\n"
        "with torch.no_grad():\n"
        "    out = model(**tok(['Chest pain since 7/22.'], return_tensors='pt'))\n"
        "assert out.last_hidden_state.shape[-1] == 384\n"
        "from sentence_transformers import SentenceTransformer\n"
        "assert SentenceTransformer(resolve_model('minilm')).encode(['chest pain']).shape == (1, 384)\n"
        "nlp = load_spacy('default')\n"
        "assert [e.label_ for e in nlp('John Smith flew to Boston on Monday.').ents]\n"
        "print('loaded')\n"
    )
    result = run_offline(code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "loaded" in result.stdout
    assert attempts(result.stdout) == "NETWORK_ATTEMPTS=0 []"
