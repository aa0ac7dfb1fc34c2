"""Reviewer's cards, correctness: what a card states about the model, its lineage and its results
equals what the source files record (made-up lineage, hand-written manifests, a keyword scorer)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from domainfm.audit.cards import chai, write_cards
from domainfm.audit.cards.evidence import lookup


class KeywordScorer:
    labels = ["cardio", "neuro"]

    def predict_proba(self, texts):
        return np.array([[0.8, 0.2] if "heart" in t else [0.3, 0.7] for t in texts])


def _docs(n: int = 24) -> list:
    from domainfm.corpus.document import Document

    return [Document(id=f"d{i}", text=("heart pain" if i % 3 else "seizure") + f" in note {i}.",
                     label="cardio" if i % 2 else "neuro", meta={"sex": "female" if i % 4 < 2 else "male"})
            for i in range(n)]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _lineage(root: Path, *, gate: dict | None = None, manifest: bool = True) -> Path:
    """A fine-tuned model folder (LoRA on a domainfm pretrain output) as the stages record it:
    16 training and 8 evaluation documents, 10 steps run (max_steps) where the config also says
    3 epochs, the best macro-F1 at step 4."""
    from domainfm.finetune.split import record_split
    from domainfm.manifest import model_identity, write_manifest

    pre = root / "pre"
    pre.mkdir(parents=True)
    (pre / "notes.jsonl").write_text('{"id": "r1", "text": "note"}\n')
    write_manifest(pre, stage="pretrain", config={"model": {"name": "minilm"}, "train": {"max_steps": 20}},
                   inputs=[pre / "notes.jsonl"], outputs=[pre / "notes.jsonl"],
                   extra={"steps": 20, **({"privacy_gate": gate} if gate is not None else {})})
    model = root / "model"
    model.mkdir()
    docs = _docs()
    record_split(model, docs[:16], docs[16:], {"split_key": "meta.patient_id"}, seed=13)
    (model / "domainfm_task.json").write_text(json.dumps({
        "task": "classification", "labels": ["cardio", "neuro"], "method": "lora", "max_length": 64,
        "base_model": {"name": "pre", "resolved": str(pre), "identity": model_identity(pre)},
        "text_field": "text", "label_field": "label", "domainfm_version": "0.1.0"}))
    (model / "metrics.json").write_text(json.dumps({
        "task": "classification", "metric": "macro_f1", "best_step": 4,
        "train": {"steps": 10, "planned_steps": 10, "epochs": 5.0},
        "data": {"split_key": "meta.patient_id", "eval_source": "0.33 of notes.jsonl"}}))
    if manifest:
        config = {"task": "classification", "data": {"eval_fraction": 0.33, "split_key": "auto"},
                  "lora": {"r": 4, "lora_alpha": 8, "target_modules": ["query"]},
                  "train": {"lr": 0.003, "epochs": 3.0, "max_steps": 10, "batch_size": 8, "seed": 13,
                            "class_weights": "none", "metric": None}}
        write_manifest(model, stage="finetune", config=config, outputs=[model / "domainfm_task.json"],
                       counts={"train_documents": 16, "eval_documents": 8}, extra={"steps": 10})
    return model


def _audit(out: Path, model: Path | None, docs=None) -> dict:
    from domainfm.audit import AuditConfig, audit

    cfg = AuditConfig(group_by=["meta.sex"], n_bootstrap=20, counterfactuals=[], min_group_size=3)
    return audit(KeywordScorer(), docs if docs is not None else _docs(), out, cfg, model_dir=model).report


def _results(xml: bytes) -> dict[str, dict]:
    from lxml import etree

    ns = {"mc": chai.NS}
    return {r.findtext("mc:Label", namespaces=ns): json.loads(r.findtext("mc:ValueJson", namespaces=ns))
            for r in etree.fromstring(xml).iterfind(".//mc:MetricResult", ns)}


def _fields(path: Path) -> dict[str, dict]:
    return {f["name"]: f for s in json.loads(path.read_text())["sections"] for f in s["fields"]}


def _privacy(path: Path, model: Path, regurgitation: dict) -> Path:
    path.write_text(json.dumps({"statement": "made-up privacy audit", "model": {"path": str(model)},
                                "gate": {"passed": False, "checks": []}, "regurgitation": regurgitation}))
    return path


def test_usefulness_goal_claims_no_held_out_test_for_an_in_sample_audit(tmp_path):
    """The CHAI Usefulness goal named "held-out documents" whatever the audit read; an audit of
    training documents is in-sample (data.training_overlap), and the card claims only that."""
    model = _lineage(tmp_path)
    report = _audit(tmp_path / "rep", model)
    assert report["data"]["training_overlap"]["in_training"] == 16
    write_cards(tmp_path / "rep", "chai")
    xml = (tmp_path / "rep" / "chai_model_card.xml").read_text()
    assert "Correct output on held-out" not in xml
    assert "in-sample" in xml


def test_regurgitation_with_no_probe_scored_is_not_measured(tmp_path):
    """The privacy audit writes beyond_chance 0 when it scored no probe (0 of 0); its gate calls
    that "not measured", and a card must not show it as a measured 0."""
    model = _lineage(tmp_path)
    _audit(tmp_path / "rep", model)
    nothing = _privacy(tmp_path / "none.json", model, {"probes": 5, "scored": 0, "regurgitated": 0,
                                                       "beyond_chance": 0})
    write_cards(tmp_path / "rep", "chai", out_dir=tmp_path / "c0", privacy_audit=nothing)
    assert not [k for k in _results((tmp_path / "c0" / "chai_model_card.xml").read_bytes()) if "regurgitated" in k]
    scored = _privacy(tmp_path / "some.json", model, {"probes": 5, "scored": 5, "regurgitated": 3,
                                                      "beyond_chance": 1})
    write_cards(tmp_path / "rep", "chai", out_dir=tmp_path / "c1", privacy_audit=scored)
    result = _results((tmp_path / "c1" / "chai_model_card.xml").read_bytes())[
        "identifiers regurgitated beyond chance"]
    assert result["value"] == 1 and result["n"] == 5


@pytest.mark.parametrize("gate, claim", [
    (None, "for 20 steps on 1 input file(s)."),
    ({"allow_identified_data": False, "decision": "passed",
      "inputs": [{"path": "notes.jsonl", "deidentified": True, "evidence": "stage deid"}]},
     "for 20 steps on 1 de-identified input file(s)."),
    ({"allow_identified_data": True, "decision": "overridden",
      "inputs": [{"path": "notes.jsonl", "deidentified": False, "evidence": "no manifest"}]},
     "for 20 steps on 1 input file(s), 1 of them not traced to domainfm deid (allow_identified_data)."),
])
def test_pretraining_inputs_are_called_de_identified_only_as_its_gate_recorded(tmp_path, gate, claim):
    model = _lineage(tmp_path, gate=gate)
    _audit(tmp_path / "rep", model)
    write_cards(tmp_path / "rep", "fda")
    text = (tmp_path / "rep" / "fda_model_card.md").read_text()
    assert claim in text
    if gate is None or gate["decision"] == "overridden":
        assert "de-identified input" not in text


def test_design_choices_state_the_checkpoint_metric_and_the_steps_run(tmp_path):
    """Fine-tuning keeps the best checkpoint by train.metric (the task's default when unset) and
    max_steps overrides epochs: metrics.json records both; the config alone says neither."""
    model = _lineage(tmp_path)
    _audit(tmp_path / "rep", model)
    write_cards(tmp_path / "rep", "annex-iv")
    design = _fields(tmp_path / "rep" / "annex_iv.json")["Design choices: what the system optimises (2(b))"]
    assert "the last step" not in design["text"] and "3.0 epochs" not in design["text"]
    assert "10 steps (5.0 epochs)" in design["text"]
    assert "checkpoint chosen by the best macro_f1 on fine-tuning's evaluation documents (step 4)" in design["text"]
    assert "finetune_metrics" in design["sources"]


def test_held_out_split_states_the_recorded_split_key(tmp_path):
    """The config's split_key 'auto' is resolved by fine-tuning; a reviewer needs the key it used
    (patient-disjoint or not), which metrics.json records."""
    model = _lineage(tmp_path)
    _audit(tmp_path / "rep", model)
    write_cards(tmp_path / "rep", "annex-iv")
    prep = _fields(tmp_path / "rep" / "annex_iv.json")[
        "Preparation: annotation, labelling, cleaning, de-identification (10(2)(c))"]
    assert "split key meta.patient_id" in prep["text"] and "split key auto" not in prep["text"]


def test_temperature_scaling_is_compared_on_the_same_documents(tmp_path):
    """The cards showed ECE over every document beside ECE after scaling on the part not used to
    fit the temperature; the ECE before scaling on that same part is the number to compare."""
    _audit(tmp_path / "rep", None)
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    write_cards(tmp_path / "rep", "chai,annex-iv")
    results = _results((tmp_path / "rep" / "chai_model_card.xml").read_bytes())
    before = [vj for label, vj in results.items() if label.startswith("ECE before temperature scaling")]
    assert len(before) == 1
    assert before[0]["source"]["path"] == ["calibration", "temperature", "before", "ece"]
    assert before[0]["value"] == lookup(report, before[0]["source"]["path"])
    assert before[0]["n"] == report["calibration"]["temperature"]["n_test"]
    after = next(vj for label, vj in results.items() if label.startswith("ECE after temperature scaling"))
    assert after["n"] == before[0]["n"]


def test_lora_settings_cite_the_file_they_are_read_from(tmp_path):
    """r, alpha and the target modules are read from the model manifest's config; with no
    finetune.yaml beside the model the field cited only domainfm_task.json, which holds none."""
    model = _lineage(tmp_path)
    assert not (model / "finetune.yaml").exists()
    _audit(tmp_path / "rep", model)
    write_cards(tmp_path / "rep", "annex-iv")
    methods = _fields(tmp_path / "rep" / "annex_iv.json")["Methods and pre-trained systems used (2(a))"]
    assert "r=4, alpha=8" in methods["text"] and "model_manifest" in methods["sources"]


def test_release_version_names_the_file_its_hash_is_of(tmp_path):
    """A model folder fingerprinted by its domainfm_task.json (no manifest.json): the default
    version is that file's hash, and the card must not call it the manifest's."""
    model = _lineage(tmp_path, manifest=False)
    _audit(tmp_path / "rep", model)
    write_cards(tmp_path / "rep", "fda")
    text = (tmp_path / "rep" / "fda_model_card.md").read_text()
    digest = _sha(model / "domainfm_task.json")[:16]
    assert f"domainfm_task.json sha256 {digest}" in text and "model manifest sha256" not in text
