"""``domainfm run`` with a ``privacy:`` section: import -> deid (with a vault) -> pretrain -> privacy,
end to end on made-up notes.

Until the privacy section was a dataclass again, ``privacy.vault`` (which the runner copies from
``deid.vault``) was refused as an unknown key, so a pipeline with a deid vault and a privacy
section never loaded, and no test ran that combination. Here every stage is the real one: a
tiny BERT masked LM built from a config with a tokenizer built in memory (nothing downloaded),
trained for a few steps with patients held out, then audited; the audit probes the vault's
originals and never writes or prints one.
"""

from __future__ import annotations

import io
import json
import random
import re

import pytest
from conftest import wordpiece_tokenizer

from domainfm import pipeline as pl

KEY_ENV = "DOMAINFM_VAULT_KEY"
SECRET = "zorblax-privacy-test-secret-cccccccccccccccccccccc"  # 40+ characters, made up
# Made-up patients and their doctors: names no surrogate generator or dictionary holds, each
# patient with several notes.
PATIENTS = [
    ("Zorblax Quintavius", "Hesperus Vantablick"),
    ("Quilvena Marblecoat", "Hesperus Vantablick"),
    ("Brannoc Thrandlewick", "Ildreth Moonquaffle"),
    ("Hesperine Wobblethorne", "Ildreth Moonquaffle"),
    ("Oswinder Plumtrassle", "Hesperus Vantablick"),
    ("Tamsirel Grubbenfeld", "Corvane Pibblestraw"),
    ("Yorvane Kettlebrisk", "Corvane Pibblestraw"),
    ("Phelidra Snorkwhistle", "Ildreth Moonquaffle"),
]
TEMPLATES = [
    "Patient {full} seen on 03/{day:02d}/2021 for chest pain radiating to the left arm. Phone 617-555-01{day:02d}.",
    "Mr. {last} reports shortness of breath for two days. Follow up with Dr. {doctor}.",
    "{full}, 71, discharged home on 12/{day:02d}/2020 in stable condition. Call 617-555-02{day:02d} with questions.",
]


def _notes() -> list[dict]:
    rng = random.Random(7)
    notes = []
    for p, (full, doctor) in enumerate(PATIENTS):
        for t, template in enumerate(TEMPLATES):
            day = rng.randint(1, 28)
            text = template.format(full=full, last=full.split()[-1], doctor=doctor, day=day)
            notes.append({"id": f"p{p}-n{t}", "text": text,
                          "meta": {"patient_id": f"patient-{p}"}})
    return notes


def _original_names() -> set[str]:
    return {part for names in PATIENTS for name in names for part in name.split()}


# tiny models run fastest on one thread (conftest.one_torch_thread)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture()
def tiny_mlm(tmp_path):
    """An untrained 2-layer BERT masked LM built from a config, with a WordPiece tokenizer over the
    templates' words: names, the originals' and the surrogates' alike, are spelled out letter by
    letter (the model folder holds no original name, not even in its vocabulary)."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    words = [template.format(full="", last="", doctor="", day=1) for template in TEMPLATES]
    tokenizer = wordpiece_tokenizer(words, alphabet="abcdefghijklmnopqrstuvwxyz0123456789()-/,.':#")
    torch.manual_seed(0)
    folder = tmp_path / "tiny-mlm"
    BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=37, max_position_embeddings=128)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_privacy_stage_probes_the_deid_vault_and_writes_no_original(tmp_path, monkeypatch, tiny_mlm):
    from rich.console import Console

    monkeypatch.setenv(KEY_ENV, SECRET)
    notes = tmp_path / "notes.jsonl"
    notes.write_text("".join(json.dumps(n) + "\n" for n in _notes()), encoding="utf-8")
    run = tmp_path / "run"
    vault = tmp_path / "vaults" / "run.vault"
    pipeline = {
        "run_dir": str(run),
        "seed": None,  # surrogates from $DOMAINFM_VAULT_KEY, as in a real run with a vault
        "import": {"format": "jsonl", "src": str(notes)},
        "deid": {"profile": "clinical", "vault": str(vault)},
        "pretrain": {"model": {"name": str(tiny_mlm)},
                     "data": {"eval_fraction": 0.25},  # whole patients held out: the non-members
                     "masking": {"seq_len": 64, "packing": False},
                     "train": {"max_steps": 3, "batch_size": 4, "lr": 1e-3, "seed": 5, "log_every": 1}},
        "privacy": {"n_candidates": 9, "regurgitation_candidates": 9, "n_bootstrap": 20, "max_documents": 12,
                    "max_probes": 40, "max_tokens": 64, "mask_passes": 1, "batch_size": 8,
                    # no canaries and a few steps: exposure and MIA are not what this test gates on
                    "gate": {"max_exposure": None, "max_mia_auc": None, "max_regurgitated": 1000}},
    }
    cfg = pl.pipeline_from_dict(pipeline)
    assert cfg.stages["privacy"].vault == vault  # wired from deid.vault
    assert vault in cfg.inputs["privacy"]

    out = io.StringIO()
    result = pl.run_pipeline(pipeline, console=Console(file=out, width=200, color_system=None))
    statuses = {s.name: s.status for s in result.stages}
    assert [statuses[s] for s in ("import", "deid", "pretrain", "privacy")] == ["ran"] * 4, statuses
    assert vault.is_file()

    report = json.loads((run / "privacy" / "report.json").read_text())
    regurgitation = report["regurgitation"]
    assert regurgitation["source"] == "originals from the vault", regurgitation
    # the vault holds every training note's originals; some were scored in their contexts
    assert regurgitation["records_in_vault"] == regurgitation["records"] == report["data"]["train_documents"] > 0
    assert regurgitation["scored"] > 0, regurgitation
    assert report["data"]["members_scored"] > 0 and report["data"]["nonmembers_scored"] > 0, report["data"]
    assert result.stage("privacy").counts == {"members": report["data"]["members_scored"],
                                              "nonmembers": report["data"]["nonmembers_scored"]}

    assert_no_original_name(run, out.getvalue())

    # The default gate stops the run by its numbers (no canaries: exposure not measured), and
    # only the privacy stage runs again: the model and the corpus are cached.
    out = io.StringIO()
    default_gate = {**pipeline, "privacy": {k: v for k, v in pipeline["privacy"].items() if k != "gate"}}
    with pytest.raises(pl.PipelineError, match="stage 'privacy' failed: privacy gate failed: .*max_exposure not "
                                               r"measured .*set privacy\.gate\.max_exposure to null") as failed:
        pl.run_pipeline(default_gate, console=Console(file=out, width=200, color_system=None))
    summary = json.loads((run / "run.json").read_text())
    assert {s["name"]: s["status"] for s in summary["stages"]} == {
        "import": "cached", "deid": "cached", "chunk": "skipped", "pretrain": "cached", "privacy": "failed",
        "finetune": "skipped", "deid_eval": "skipped", "audit": "skipped", "label": "skipped"}
    assert re.search(r"Privacy audit (FAILED|INCONCLUSIVE)", (run / "privacy" / "summary.md").read_text())
    assert_no_original_name(run, out.getvalue() + str(failed.value))


def assert_no_original_name(run, console: str) -> None:
    """No original name in the console output nor in any file the run wrote past the import (the
    identified corpus it reads in); the vault, which holds them encrypted, is outside the run."""
    written = {"console": console.encode()}
    written.update({str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
                    if p.is_file() and p.relative_to(run).parts[0] != "import"})
    assert any(where.startswith("privacy/") for where in written)
    for name in _original_names():
        for where, data in written.items():
            assert name.lower().encode() not in data.lower(), (name, where)
