"""Reviewer's cards (issue 21): the CHAI applied model card validates against the CHAI v0.2 schema
(the standard's own copy when ../shared is there), a broken card does not, every number in every
card equals the one in its source file, cards.yaml is validated, and no card carries PHI-like text."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

from domainfm.audit.cards import CARD_NAMES, DeployerFields, load_deployer_fields, parse_cards, write_cards
from domainfm.audit.cards import chai
from domainfm.audit.cards.evidence import lookup
from domainfm.errors import ConfigError, DomainFMError

STANDARD = ROOT.parent / "shared" / "standards" / "chai-applied-model-card-v0.2"
DEMO = ROOT / "reports" / "demo"
MD_ROW = re.compile(r"^\| (?P<label>.+?) \| (?P<value>[^|]+) \| (?P<ci>[^|]+) \| .* \| `(?P<file>[^#`]+)#(?P<ptr>[^`]+)` \|$")


@pytest.fixture(scope="session")
def standard_schema() -> Path:
    """The CHAI schema as published (../shared/standards); skipped when absent."""
    path = STANDARD / "schema.xsd"
    if not path.is_file():
        pytest.skip(f"CHAI standard not available at {STANDARD}")
    return path


def _pointer_keys(ptr: str) -> list[str]:
    ptr = ptr.replace("\\|", "|")  # a table cell escapes the '|' of an intersection group (GFM)
    return [p.replace("~1", "/").replace("~0", "~") for p in ptr.split("/")[1:]]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _value_jsons(xml: bytes) -> list[tuple[str, dict]]:
    from lxml import etree

    root = etree.fromstring(xml)
    ns = {"mc": chai.NS}
    return [(r.findtext("mc:Label", namespaces=ns), json.loads(r.findtext("mc:ValueJson", namespaces=ns)))
            for r in root.iterfind(".//mc:MetricResult", ns)]


def check_numbers(out: Path, sources: dict[str, Path]) -> int:
    """Every number in every card equals the one at its stated path in its source file; returns
    how many were checked. ``sources``: file name -> path."""
    docs = {name: json.loads(p.read_text(encoding="utf-8")) for name, p in sources.items()}
    checked = 0

    def check_value_json(vj: dict) -> None:
        nonlocal checked
        src = vj["source"]
        doc = docs[src["file"]]
        assert src["sha256"] == _sha(sources[src["file"]])
        assert vj["value"] == lookup(doc, src["path"]), src
        if "ci" in vj:
            assert [vj["ci"]["lower"], vj["ci"]["upper"]] == lookup(doc, src["ci_path"]), src
        checked += 1

    if (out / "chai_model_card.xml").is_file():
        results = _value_jsons((out / "chai_model_card.xml").read_bytes())
        assert results
        for label, vj in results:
            if vj["kind"] != "not-measured":
                check_value_json(vj)
    if (out / "annex_iv.json").is_file():
        for section in json.loads((out / "annex_iv.json").read_text())["sections"]:
            for vj in section["metrics"]:
                check_value_json(vj)
    for md in ("annex_iv.md", "fda_model_card.md"):
        if not (out / md).is_file():
            continue
        for line in (out / md).read_text().splitlines():
            m = MD_ROW.match(line)
            if not m:
                continue
            name = Path(m["file"]).name  # the file as the appendix names it (a path when not in the cwd's tree)
            assert Path(m["file"]).resolve() == sources[name].resolve() or "/" not in m["file"], line
            value = lookup(docs[name], _pointer_keys(m["ptr"]))
            shown = "yes" if value is True else "no" if value is False else (
                str(value) if isinstance(value, int) else f"{value:.3f}")
            assert m["value"].strip() == shown, line
            checked += 1
    return checked


# ------------------------------------------------------------------ schema and the demo model


def test_shipped_schema_is_the_standard_and_stub_resolves_offline(standard_schema):
    assert chai.CHAI_SCHEMA.read_bytes() == standard_schema.read_bytes()
    assert "Coalition for Health AI" in (chai.SCHEMA_DIR / "CHAI-LICENSE.txt").read_text()
    chai.load_schema(standard_schema)  # the xmldsig import resolves without a network


def test_demo_model_cards_are_schema_valid_and_equal_the_report(tmp_path, standard_schema):
    out = tmp_path / "cards"
    result = write_cards(DEMO, "all", out_dir=out, cards_config=ROOT / "domainfm/audit/cards/demo-cards.yaml")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["chai_model_card.xml", "annex_iv.md", "annex_iv.json", "fda_model_card.md", "cards.json",
         "cards.manifest.json"])
    chai.validate((out / "chai_model_card.xml").read_bytes(), standard_schema)
    assert check_numbers(out, {"report.json": DEMO / "report.json"}) > 30
    summary = result.summary
    assert set(summary["cards"]) == set(CARD_NAMES)
    for card in summary["cards"].values():
        c = card["completeness"]
        assert c["evidence"] > 0 and c["deployer"] > 0 and c["missing"] > 0
        assert c["total"] == c["evidence"] + c["config"] + c["deployer"] + c["missing"]
    roles = {s["role"]: s for s in summary["sources"]}
    assert roles["audit_report"]["sha256"] == _sha(DEMO / "report.json")
    appendix = (out / "fda_model_card.md").read_text()
    assert roles["audit_report"]["sha256"] in appendix and "## Appendix: source files" in appendix


def test_committed_demo_cards_are_valid(standard_schema):
    """``make demo`` wrote reports/demo/ with all three cards; they match its report.json."""
    chai.validate((DEMO / "chai_model_card.xml").read_bytes(), standard_schema)
    assert check_numbers(DEMO, {"report.json": DEMO / "report.json",
                                "deid_vs_gold.json": DEMO / "deid_vs_gold.json"}) > 30


def test_broken_card_fails_validation(tmp_path, standard_schema):
    from lxml import etree

    write_cards(DEMO, "chai", out_dir=tmp_path)
    xml = (tmp_path / "chai_model_card.xml").read_bytes()
    root = etree.fromstring(xml)
    ns = {"mc": chai.NS}
    root.remove(root.find("mc:KeyMetrics", ns))  # a required element
    broken = etree.tostring(root)
    with pytest.raises(chai.CardValidationError, match="KeyMetrics"):
        chai.validate(broken, standard_schema)
    with pytest.raises(chai.CardValidationError):
        chai.validate(broken)  # the shipped copy agrees
    empty_results = etree.fromstring(xml)
    for results in empty_results.iterfind(".//mc:Results", ns):
        for r in list(results):
            results.remove(r)  # Results needs at least one MetricResult
    with pytest.raises(chai.CardValidationError, match="MetricResult"):
        chai.validate(etree.tostring(empty_results), standard_schema)
    with pytest.raises(chai.CardValidationError, match="well-formed"):
        chai.validate(b"<AppliedModelCard", standard_schema)


# ------------------------------------------------------------------ a tiny model through the pipeline


CARDIO = ["chest pain on exertion, troponin negative", "palpitations and atrial fibrillation on ECG"]
ORTHO = ["knee pain after a fall, x-ray shows no fracture", "lower back pain radiating to the leg"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_model_dir):
    """import -> deid -> finetune (tiny BERT, 2 steps) -> audit with all cards and a cards.yaml."""
    from domainfm import pipeline as pl

    tmp = tmp_path_factory.mktemp("cards")
    rows = []
    for i in range(40):
        kind, texts = ("cardiology", CARDIO) if i % 2 else ("orthopedics", ORTHO)
        meta = {"sex": "female" if i % 4 < 2 else "male", "age": 20 + (i * 7) % 70}
        rows.append({"id": f"d{i}", "text": f"Note {i}: {texts[i % 2]}.", "label": kind, "meta": meta})
    (tmp / "notes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp / "cards.yaml").write_text("developer: Example Health AI Lab\ndeveloper_contact: ai-governance@example.org\n"
                                    "release_stage: pilot\nrelease_date: 2026-01-15\n"
                                    "intended_use: Route outpatient notes to a specialty queue.\n")
    config = {
        "run_dir": str(tmp / "run"), "seed": 13,
        "import": {"format": "jsonl", "src": str(tmp / "notes.jsonl")},
        "deid": {"profile": "clinical"},
        "finetune": {"model": {"name": str(tiny_model_dir), "max_length": 32}, "data": {"eval_fraction": 0.5},
                     "lora": {"r": 4, "lora_alpha": 8, "target_modules": ["query", "value"]},
                     "long_documents": {"strategy": "truncate"},
                     "train": {"lr": 5e-3, "max_steps": 2, "batch_size": 8, "checkpoint": False}},
        "audit": {"group_by": ["meta.sex", "meta.age_band"], "n_bootstrap": 30, "counterfactuals": ["gender"],
                  "min_group_size": 5, "cards": ["all"], "cards_config": str(tmp / "cards.yaml")},
    }
    result = pl.run_pipeline(config)
    return tmp, result


def test_an_audit_of_training_documents_is_called_in_sample_by_the_models_recorded_split(tiny_run, tmp_path):
    """Only the pipeline told the cards whether the audited documents were held out; a
    'domainfm audit' of the documents fine-tuning trained on read as held-out evidence."""
    from domainfm.audit import AuditConfig, audit
    from domainfm.corpus import read_documents, write_documents
    from domainfm.finetune.split import read_split

    tmp, _ = tiny_run
    model = tmp / "run" / "finetune" / "model"
    docs = list(read_documents(next((tmp / "run" / "deid").glob("*.jsonl"))))
    split = read_split(model)
    sides = {side: [d for d in docs if split.side(d) == side] for side in ("train", "eval")}
    cfg = AuditConfig(group_by=["meta.sex"], n_bootstrap=0, counterfactuals=[], min_group_size=2)
    for name, chosen, overlap, independence in (
            ("all", docs, {"in_training": len(sides["train"]), "in_evaluation": len(sides["eval"]), "unseen": 0},
             "not an independent test"),
            ("held_out", sides["eval"], {"in_training": 0, "in_evaluation": len(sides["eval"]), "unseen": 0},
             "the ones fine-tuning held out")):
        data = tmp_path / f"{name}.jsonl"
        write_documents(data, chosen)
        result = audit(model, read_documents(data), tmp_path / name, cfg, data_files=[data])
        assert {k: result.report["data"]["training_overlap"][k] for k in overlap} == overlap
        assert any("in the model's training data" in w for w in result.report["warnings"]) == (name == "all")
        write_cards(tmp_path / name, "fda", out_dir=tmp_path / f"{name}_cards")
        assert independence in (tmp_path / f"{name}_cards" / "fda_model_card.md").read_text()


def test_tiny_model_cards_from_the_pipeline(tiny_run, standard_schema):
    tmp, result = tiny_run
    out = tmp / "run" / "audit"
    assert result.stage("audit").status == "ran"
    for name in ("chai_model_card.xml", "annex_iv.md", "annex_iv.json", "fda_model_card.md", "cards.json"):
        assert (out / name).is_file(), name
    chai.validate((out / "chai_model_card.xml").read_bytes(), standard_schema)
    assert check_numbers(out, {"report.json": out / "report.json"}) > 20
    summary = json.loads((out / "cards.json").read_text())
    roles = {s["role"] for s in summary["sources"]}
    # the lineage: the model's task info, manifest and config, and the de-identified training data
    assert {"audit_report", "model_manifest", "task_info", "finetune_config", "training_data_0_manifest",
            "cards_config"} <= roles
    annex = json.loads((out / "annex_iv.json").read_text())
    fields = {f["name"]: f for s in annex["sections"] for f in s["fields"]}
    assert fields["Provider (1(a))"]["origin"] == "deployer"
    assert "de-identified by domainfm deid" in fields[
        "Preparation: annotation, labelling, cleaning, de-identification (10(2)(c))"]["text"]
    assert fields["Risk management system (5, Art. 9)"]["origin"] == "missing"
    assert "ai-governance@example.org" in (out / "chai_model_card.xml").read_text()  # the declared contact
    counts = result.stage("audit").counts
    assert counts["card_chai_open_fields"] == summary["cards"]["chai"]["completeness"]["missing"]


def test_fairness_results_carry_gap_intervals(tiny_run):
    tmp, _ = tiny_run
    out = tmp / "run" / "audit"
    report = json.loads((out / "report.json").read_text())
    fairness = [vj for label, vj in _value_jsons((out / "chai_model_card.xml").read_bytes())
                if "gap across" in label]
    assert fairness and all("ci" in vj for vj in fairness)
    gaps = report["performance"]["by_attribute"]["meta.sex"]["gaps"]["all_groups"]
    assert set(gaps["ci"]) == {"accuracy_difference", "demographic_parity_difference", "equalized_odds_difference"}


def test_deid_eval_and_privacy_audit_feed_the_safety_metrics(tiny_run, tmp_path, clinical_corpus):
    from domainfm.corpus.io import read_documents
    from domainfm.deid.evaluate import evaluate_files

    tmp, _ = tiny_run
    audit_dir = tmp / "run" / "audit"
    gold = tmp_path / "gold.jsonl"
    pred = tmp_path / "pred.jsonl"
    docs = list(read_documents(clinical_corpus))[:8]
    gold.write_text("".join(json.dumps(d.to_dict()) + "\n" for d in docs))
    # a de-identifier that finds every gold span but the first of each document
    pred.write_text("".join(json.dumps({**d.to_dict(), "phi_spans": [
        {"start": s.start, "end": s.end, "label": "NAME"} for s in d.spans[1:]]}) + "\n" for d in docs))
    deid = tmp_path / "deid_eval.json"
    deid.write_text(json.dumps(evaluate_files(gold, pred, dataset="synthetic-clinical")))
    privacy = tmp_path / "privacy.json"
    privacy.write_text(json.dumps({
        "statement": "highest canary exposure 2.10 of 8.00 bits", "exposure": {"max_exposure": 2.1},
        "membership": {"strongest": "loss", "attacks": {"loss": {"auc": 0.52, "auc_ci": [0.44, 0.6]}}},
        "regurgitation": {"beyond_chance": 0}, "gate": {"passed": True, "checks": []}}))
    out = tmp_path / "cards"
    write_cards(audit_dir, "chai,annex-iv,fda", out_dir=out, deid_eval=deid, privacy_audit=privacy)
    results = dict(_value_jsons((out / "chai_model_card.xml").read_bytes()))
    recall = results["de-identification recall on the training data's gold PHI (any overlap)"]
    assert recall["value"] == json.loads(deid.read_text())["any_overlap"]["recall"] < 1.0
    assert results["membership-inference AUC (loss attack)"]["ci"] == {"level": 0.95, "lower": 0.44, "upper": 0.6}
    assert check_numbers(out, {"report.json": audit_dir / "report.json", "deid_eval.json": deid,
                               "privacy.json": privacy}) > 20
    assert "release gate passed" in (out / "fda_model_card.md").read_text()


# ------------------------------------------------------------------ deployer fields, names, PHI


def test_card_names():
    assert parse_cards("all") == list(CARD_NAMES)
    assert parse_cards(["fda", "chai,annex-iv"]) == ["chai", "annex-iv", "fda"]
    assert parse_cards(None) == []
    with pytest.raises(ConfigError, match="unknown card 'anex-iv'.*annex-iv"):
        parse_cards("chai,anex-iv")


@pytest.mark.parametrize("text, message", [
    ("intended_uses: triage\n", r"unknown config key 'intended_uses'.*intended_use"),
    ("release_date: 15/01/2026\n", r"'release_date' must be an ISO date YYYY-MM-DD"),
    ("release_date: 2026-1-5\n", r"'release_date' must be an ISO date"),
    ('release_date: "2025-13-45"\n', r"'release_date' must be an ISO date"),
    ('developer_contact: "-"\n', r"'developer_contact' must be one e-mail address, phone number or web address"),
    ("developer: ''\n", r"'developer' must be non-empty text"),
    ("ehr_compatibility: Epic\n", r"ehr_compatibility"),
    ("intended_use: call 555-123-4567 for access\n", r"'intended_use' matches the PHI patterns \['phone'\]"),
    ("developer: [a, b]\n", r"developer"),
])
def test_cards_yaml_errors_name_the_field(tmp_path, text, message):
    path = tmp_path / "cards.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_deployer_fields(path)


def test_cards_yaml_accepted_forms(tmp_path):
    path = tmp_path / "cards.yaml"
    path.write_text("cards:\n  developer: Lab\n  developer_contact: lab@example.org\n  ehr_compatibility: [Epic]\n")
    fields = load_deployer_fields(path)
    assert fields.developer == "Lab" and fields.ehr_compatibility == ["Epic"]
    assert load_deployer_fields(None) == DeployerFields()


def test_cards_yaml_fill_the_card(tmp_path):
    out = tmp_path / "cards"
    full = {f: "stated" for f in DeployerFields.__dataclass_fields__ if f not in ("ehr_compatibility", "release_date")}
    full["release_date"] = "2026-02-01"
    full["developer_contact"] = "cards@example.org"
    full["ehr_compatibility"] = ["Epic"]
    result = write_cards(DEMO, "all", out_dir=out, deployer=DeployerFields(**full))
    chai.validate((out / "chai_model_card.xml").read_bytes())
    assert result.summary["cards"]["chai"]["completeness"]["missing"] == 0
    assert result.summary["cards"]["fda"]["completeness"]["missing"] <= 2  # lineage the demo report lacks
    bare = write_cards(DEMO, "all", out_dir=tmp_path / "bare").summary
    for name in CARD_NAMES:
        assert bare["cards"][name]["completeness"]["missing"] > result.summary["cards"][name]["completeness"]["missing"]
    assert "To be completed by the deployer" in (tmp_path / "bare" / "annex_iv.md").read_text()


def test_written_cards_pass_the_phi_scan_and_phi_in_evidence_stops_them(tmp_path):
    from domainfm.audit.privacy import scan_phi

    out = tmp_path / "ok"
    write_cards(DEMO, "all", out_dir=out)
    for path in out.iterdir():
        assert scan_phi(path.read_text()) == {}, path.name
    audit = tmp_path / "audit"
    audit.mkdir()
    report = json.loads((DEMO / "report.json").read_text())
    report["data"]["note"] = "groups from MRN: 12345678 lookups"  # evidence that quotes an identifier
    (audit / "report.json").write_text(json.dumps(report))
    with pytest.raises(DomainFMError, match="PHI-like text.*mrn"):
        write_cards(audit, "all", out_dir=tmp_path / "refused")
    assert not (tmp_path / "refused").exists() or not any((tmp_path / "refused").iterdir())


def test_not_an_audit_folder_and_bad_evidence_files(tmp_path):
    with pytest.raises(ConfigError, match="report.json does not exist.* is not an audit folder; run 'domainfm audit'"):
        write_cards(tmp_path, "all")
    (tmp_path / "report.json").write_text('{"model": {"labels": ["a"]')  # a report cut short
    with pytest.raises(ConfigError, match="report.json is not readable JSON"):
        write_cards(tmp_path, "all")
    (tmp_path / "report.json").unlink()
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    with pytest.raises(ConfigError, match="not a 'domainfm audit-privacy' report"):
        write_cards(DEMO, "fda", out_dir=tmp_path / "o", privacy_audit=bad)
    with pytest.raises(ConfigError, match="CHAI schema .* does not exist"):
        write_cards(DEMO, "chai", out_dir=tmp_path / "o", chai_schema=tmp_path / "missing.xsd")


def test_cli_audit_cards_and_fail_fast(tmp_path, cli):
    audit_dir = tmp_path / "audit"
    audit_dir.mkdir()
    shutil.copyfile(DEMO / "report.json", audit_dir / "report.json")
    (tmp_path / "cards.yaml").write_text("developer: Lab\n")
    result = cli("audit-cards", audit_dir, "--card", "chai", "--card", "fda", "--cards-config", tmp_path / "cards.yaml")
    assert result.exit_code == 0, result.output
    assert (audit_dir / "chai_model_card.xml").is_file() and (audit_dir / "fda_model_card.md").is_file()
    assert not (audit_dir / "annex_iv.md").exists()
    assert "to be completed by the deployer" in result.output
    (tmp_path / "bad.yaml").write_text("release_date: tomorrow\n")
    result = cli("audit", audit_dir, tmp_path / "none.jsonl", "-o", tmp_path / "out", "--card", "all",
                 "--cards-config", tmp_path / "bad.yaml")
    assert result.exit_code == 2 and "release_date" in result.output  # before any model is loaded
    result = cli("audit", audit_dir, tmp_path / "none.jsonl", "-o", tmp_path / "out", "--card", "chia")
    assert result.exit_code == 2 and "unknown card 'chia'" in result.output


def test_pipeline_validates_the_cards_section(tmp_path):
    from domainfm import pipeline as pl

    base = {"run_dir": str(tmp_path), "import": {"format": "jsonl", "src": str(tmp_path / "x.jsonl")},
            "finetune": {"model": {"name": "minilm"}}, "audit": {"cards": ["all"]}}
    assert pl.pipeline_from_dict(base).stages["audit"].cards == list(CARD_NAMES)
    with pytest.raises(ConfigError, match="audit.cards: unknown card 'fdaa'"):
        pl.pipeline_from_dict({**base, "audit": {"cards": ["fdaa"]}})
    with pytest.raises(ConfigError, match="names no card"):
        pl.pipeline_from_dict({**base, "audit": {"cards_config": str(tmp_path / "c.yaml")}})
    (tmp_path / "c.yaml").write_text("release_stage: 3\nrelease_date: May\n")
    with pytest.raises(ConfigError, match="release_date"):
        pl.pipeline_from_dict({**base, "audit": {"cards": ["fda"], "cards_config": str(tmp_path / "c.yaml")}})


# ------------------------------------------------------------------ the gaps' intervals


def test_gap_intervals_of_the_identity_resample_are_the_gaps(monkeypatch):
    """With every resample equal to the data, the interval collapses onto fairness_gaps' numbers."""
    from domainfm.audit.metrics import fairness_gaps, gap_cis, group_metrics

    rng = np.random.default_rng(0)
    labels = ["a", "b", "c"]
    y_true, y_pred = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    names = np.array(rng.choice(["F", "M", "X"], 200), dtype=object)
    groups = {g: group_metrics(y_true[names == g], y_pred[names == g], labels) for g in ("F", "M", "X")}
    for g in groups.values():
        g["n"] = int(g["n"])
    gaps = fairness_gaps(groups, labels, "b", 1)["all_groups"]

    class Identity:
        def integers(self, lo, hi, size):
            return np.tile(np.arange(hi), (size[0], 1))

    ci = gap_cis(y_true, y_pred, names, ["F", "M", "X"], 1, n_boot=5, rng=Identity())
    assert ci["accuracy_difference"] == pytest.approx([gaps["accuracy_difference"]] * 2)
    for key in ("demographic_parity_difference", "equalized_odds_difference"):
        assert ci[key] == pytest.approx([gaps["positive_class"][key]] * 2)
    real = gap_cis(y_true, y_pred, names, ["F", "M", "X"], 1, n_boot=200, rng=np.random.default_rng(1))
    assert real["accuracy_difference"][0] <= real["accuracy_difference"][1]
    assert gap_cis(y_true, y_pred, names, ["F"], 1, n_boot=10, rng=rng)["accuracy_difference"] is None


def test_ner_audit_cards(tmp_path):
    """A NER audit: entity F1 for usefulness, per-group entity F1 and the F1 gap for fairness."""
    from domainfm.audit import AuditConfig
    from domainfm.audit.ner import run_ner_audit
    from domainfm.audit.report import write_report
    from domainfm.audit.summary import findings
    from domainfm.corpus.document import Document, Span

    docs = [Document(id=f"n{i}", text="Seen by Dr Lee on Monday with Ann.", meta={"sex": "F" if i % 2 else "M"},
                     spans=[Span(11, 14, "DOCTOR"), Span(30, 33, "PATIENT")]) for i in range(30)]

    def predict(ds):
        return [[Span(11, 14, "DOCTOR")] + ([Span(30, 33, "PATIENT")] if int(d.id[1:]) % 2 == 0 else []) for d in ds]

    report = run_ner_audit(predict, ["DOCTOR", "PATIENT"], docs,
                           AuditConfig(group_by=["meta.sex"], n_bootstrap=30, min_group_size=5), "fake")
    report["privacy"].update(statement="unknown", audit_data_deidentified=False)
    report["summary"] = findings(report)
    write_report(report, tmp_path / "ner")
    write_cards(tmp_path / "ner", "all")
    chai.validate((tmp_path / "ner" / "chai_model_card.xml").read_bytes())
    labels = dict(_value_jsons((tmp_path / "ner" / "chai_model_card.xml").read_bytes()))
    assert "overall entity micro-F1" in labels and "F1 gap across meta.sex, groups of adequate size" in labels
    assert check_numbers(tmp_path / "ner", {"report.json": tmp_path / "ner" / "report.json"}) > 5


def test_cli_audit_writes_cards_after_the_audit(tiny_run, tmp_path, cli):
    tmp, _ = tiny_run
    model = tmp / "run" / "finetune" / "model"
    out = tmp_path / "report"
    privacy = tmp_path / "privacy.json"
    privacy.write_text(json.dumps({"statement": "membership-inference AUC 0.51", "gate": {"passed": True},
                                   "membership": {"strongest": "loss", "attacks": {"loss": {"auc": 0.51}}}}))
    result = cli("audit", model, tmp / "run" / "deid" / "corpus.jsonl", "-o", out, "--group-by", "meta.sex",
                 "--bootstrap", 20, "--counterfactuals", "", "--min-group-size", 5, "--card", "chai,fda",
                 "--cards-config", tmp / "cards.yaml", "--privacy-audit", privacy)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["privacy"]["memorization"] == {"statement": "membership-inference AUC 0.51", "passed": True}
    assert dict(_value_jsons((out / "chai_model_card.xml").read_bytes()))[
        "membership-inference AUC (loss attack)"]["value"] == 0.51
    assert "chai: chai_model_card.xml" in result.output and "fda: fda_model_card.md" in result.output
    chai.validate((out / "chai_model_card.xml").read_bytes())
    assert not (out / "annex_iv.md").exists()
    assert check_numbers(out, {"report.json": out / "report.json", "privacy.json": privacy}) > 10
    manifest = json.loads((out / "cards.manifest.json").read_text())
    assert manifest["stage"] == "audit-cards" and manifest["config"]["cards"] == ["chai", "fda"]


# ------------------------------------------------------------------ tester's findings (cards)


class KeywordScorer:
    labels = ["cardio", "neuro"]

    def predict_proba(self, texts):
        return np.array([[0.8, 0.2] if "heart" in t else [0.3, 0.7] for t in texts])


def _audit(out: Path, meta=lambda i: {}, n=24, group_by=("meta.sex", "meta.age_band"), **kwargs):
    """A small audit of KeywordScorer, written to ``out`` (its report.json, no cards)."""
    from domainfm.audit import AuditConfig, audit
    from domainfm.corpus.document import Document

    docs = [Document(id=f"d{i}", text=("heart pain" if i % 3 else "seizure") + f" in note {i}.",
                     label="cardio" if i % 2 else "neuro",
                     meta={"sex": "female" if i % 4 < 2 else "male", "age": 10 + 7 * i, **meta(i)}) for i in range(n)]
    cfg = AuditConfig(group_by=list(group_by), n_bootstrap=20, counterfactuals=[], min_group_size=3)
    return audit(KeywordScorer(), docs, out, cfg, **kwargs)


def _model_folder(path: Path, text: str) -> Path:
    path.mkdir(parents=True)
    (path / "manifest.json").write_text(json.dumps({"stage": "finetune", "note": text}))
    return path


def test_the_pretraining_lineage_is_the_base_model_fine_tuning_read_from_any_directory(tmp_path, monkeypatch):
    from domainfm.manifest import model_identity

    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    base = here / "pre"
    base.mkdir(parents=True)
    (base / "manifest.json").write_text(json.dumps({"stage": "pretrain", "steps": 7, "config": {}}))
    decoy = elsewhere / "pre"  # another pretrain output at the same relative path
    decoy.mkdir(parents=True)
    (decoy / "manifest.json").write_text(json.dumps({"stage": "pretrain", "steps": 99, "config": {}}))
    model = _model_folder(here / "ft", "the audited model")
    # fine-tuning recorded the base as given on its command line (relative) and by its identity
    (model / "domainfm_task.json").write_text(json.dumps(
        {"task": "classification", "base_model": {"name": "pre", "resolved": "pre", "identity": model_identity(base)}}))
    monkeypatch.chdir(here)
    _audit(here / "rep", model_dir="ft")
    monkeypatch.chdir(elsewhere)
    result = write_cards(here / "rep", "fda", out_dir=tmp_path / "cards")
    sources = {s["role"]: s["sha256"] for s in result.summary["sources"]}
    assert sources["pretrain_manifest"] == _sha(base / "manifest.json")


def test_cards_describe_the_audited_model_from_any_directory(tmp_path, monkeypatch):
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    model = _model_folder(here / "model", "the audited model")
    _model_folder(elsewhere / "model", "another model at the same relative path")
    monkeypatch.chdir(here)
    _audit(here / "rep", model_dir="model")  # given relative, as on the command line
    monkeypatch.chdir(elsewhere)
    result = write_cards(here / "rep", "fda", out_dir=tmp_path / "cards")
    assert {s["role"]: s["sha256"] for s in result.summary["sources"]}["model_manifest"] == _sha(model / "manifest.json")
    assert result.warnings == []
    (model / "manifest.json").write_text('{"stage": "finetune", "note": "retrained"}')
    result = write_cards(here / "rep", "fda", out_dir=tmp_path / "cards")
    assert "model_manifest" not in {s["role"] for s in result.summary["sources"]}
    assert "has changed since it was recorded" in result.warnings[0] and result.summary["warnings"] == result.warnings
    report = json.loads((here / "rep" / "report.json").read_text())
    for key in ("path", "fingerprint"):  # a report from before the fingerprint: nothing to check it by
        del report["model"][key]
    report["model"]["source"] = "model"
    (here / "rep" / "report.json").write_text(json.dumps(report))
    from domainfm.manifest import write_manifest

    write_manifest(here / "rep", stage="audit", config={}, outputs=[here / "rep" / "report.json"])  # as it wrote it
    result = write_cards(here / "rep", "fda", out_dir=tmp_path / "cards")
    assert "model_manifest" not in {s["role"] for s in result.summary["sources"]}
    assert "no fingerprint" in result.warnings[0]
    assert "lineage is not verifiable" in (tmp_path / "cards" / "fda_model_card.md").read_text()


def test_cards_out_folder_is_the_report_a_new_folder_or_its_own_earlier_cards(tmp_path, cli):
    from domainfm.errors import OutputError

    _audit(tmp_path / "rep1")
    _audit(tmp_path / "repI", group_by=("meta.sex",))
    write_cards(tmp_path / "repI", "all")
    before = {p.name: p.read_bytes() for p in (tmp_path / "repI").iterdir()}
    with pytest.raises(OutputError, match="holds a 'domainfm audit' output"):
        write_cards(tmp_path / "rep1", "all", out_dir=tmp_path / "repI")
    assert {p.name: p.read_bytes() for p in (tmp_path / "repI").iterdir()} == before
    model = _model_folder(tmp_path / "model_copy", "a model")
    (model / "domainfm_task.json").write_text("{}")
    with pytest.raises(OutputError, match="holds a 'domainfm finetune' output"):
        write_cards(tmp_path / "rep1", "all", out_dir=model)
    result = cli("audit-cards", tmp_path / "rep1", "-o", model)
    assert result.exit_code == 2 and "choose another -o folder" in result.output
    write_cards(tmp_path / "rep1", "all", out_dir=tmp_path / "cards")  # new folder
    write_cards(tmp_path / "rep1", "fda", out_dir=tmp_path / "cards")  # its own earlier cards
    with pytest.raises(OutputError, match="holds the cards of another audit"):
        write_cards(tmp_path / "repI", "all", out_dir=tmp_path / "cards")
    write_cards(tmp_path / "rep1", "chai")  # beside the report


def test_markdown_cards_escape_every_cell_and_raw_html(tmp_path):
    from markdown_it import MarkdownIt

    odd = {0: "<img src=x onerror=alert(1)>", 1: "two\nlines", 2: "a & b"}
    _audit(tmp_path / "rep", meta=lambda i: {"ward": odd.get(i % 4, "plain")},
           group_by=("meta.sex", "meta.age_band", "meta.ward"))
    write_cards(tmp_path / "rep", "annex-iv,fda")
    md = MarkdownIt().enable("table")
    for name in ("annex_iv.md", "fda_model_card.md"):
        text = (tmp_path / "rep" / name).read_text()
        assert "&lt;img src=x onerror=alert(1)&gt;" in text  # as text; in a code span it is literal anyway
        assert "<img" not in md.render(text)
        tokens, rows, cells = md.parse(text), 0, []
        for i, t in enumerate(tokens):
            if t.type == "tr_open":
                cells = []
            elif t.type == "inline" and tokens[i - 1].type == "td_open":
                cells.append(t)
            elif t.type == "tr_close" and len(cells) == 6:
                rows += 1
                code = [c for c in cells[5].children if c.type == "code_inline"]
                assert len(code) == 1 and code[0].content.count("#") == 1, cells[5].content
        assert rows > 20
        intersection = [line for line in text.splitlines() if "meta.sex x meta.age_band=" in line]
        assert intersection and all(line.count(" | ") == 5 for line in intersection)  # 6 cells
        assert "meta.ward=two lines |" in text  # a newline in a value does not end the row


def test_control_characters_in_group_values_and_cards_yaml(tmp_path):
    _audit(tmp_path / "rep", meta=lambda i: {"ward": "east\x01wing" if i % 2 else "west"},
           group_by=("meta.sex", "meta.ward"))
    write_cards(tmp_path / "rep", "all")  # the CHAI card validates before it is written
    assert "east\ufffdwing" in (tmp_path / "rep" / "chai_model_card.xml").read_text()
    assert "east\ufffdwing" in (tmp_path / "rep" / "fda_model_card.md").read_text()
    path = tmp_path / "cards.yaml"
    path.write_text('developer: "Acme\\x01Labs"\n')
    with pytest.raises(ConfigError, match="'developer' contains a control character"):
        load_deployer_fields(path)


def test_one_group_attribute_is_not_comparable_in_the_cards(tmp_path):
    _audit(tmp_path / "rep", meta=lambda i: {"site": "north"}, group_by=("meta.sex", "meta.site"))
    write_cards(tmp_path / "rep", "all")
    fda = (tmp_path / "rep" / "fda_model_card.md").read_text()
    assert "gap across meta.site" not in fda and "meta.site: not comparable: one group" in fda
    assert "gap across meta.sex" in fda
    labels = dict(_value_jsons((tmp_path / "rep" / "chai_model_card.xml").read_bytes()))
    assert not [label for label in labels if "across meta.site" in label]


def test_card_says_how_many_documents_were_given_and_unlabelled(tmp_path):
    from domainfm.audit import AuditConfig, audit
    from domainfm.corpus.document import Document

    docs = [Document(id=f"d{i}", text="heart" if i % 2 else "seizure", label=None if i < 3 else
                     ("cardio" if i % 2 else "neuro"), meta={"sex": "female" if i % 2 else "male"}) for i in range(9)]
    audit(KeywordScorer(), docs, tmp_path / "rep", AuditConfig(group_by=["meta.sex"], n_bootstrap=10,
                                                               counterfactuals=[], min_group_size=2))
    write_cards(tmp_path / "rep", "fda")
    fda = (tmp_path / "rep" / "fda_model_card.md").read_text()
    assert "The audit was given 9 documents" in fda and "3 had no gold label" in fda
    assert "The audit used 6 labelled documents" in fda


def test_a_partial_report_names_the_missing_key(tmp_path):
    (tmp_path / "report.json").write_text('{"performance": {}, "model": {}}')
    with pytest.raises(ConfigError, match=r"has no 'data': it is not an audit report.json, or one from another"):
        write_cards(tmp_path, "all", out_dir=tmp_path / "cards")


def test_developer_contact_is_an_address_and_exempts_only_itself(tmp_path):
    from domainfm.audit.cards import _scan

    for contact in ("-", "-/", "Zorblax Quintavius", "123-45-6789"):
        with pytest.raises(ConfigError, match="'developer_contact' must be one e-mail address, phone number or web"):
            DeployerFields(developer_contact=contact)
    for contact in ("ai-governance@example.org", "+1 555-867-5309", "https://example.org/ai"):
        DeployerFields(developer_contact=contact)
    deployer = DeployerFields(developer_contact="+1 555-867-5309")
    assert _scan({"x.md": "Contact: +1 555-867-5309."}, deployer) == {}
    assert _scan({"x.md": "Contact: +1 555-867-5309; patient 555-123-4567, 123-45-6789"}, deployer) == {
        "x.md:phone": 1, "x.md:ssn": 1}


def test_phi_in_the_privacy_audit_is_named_in_the_refusal(tmp_path):
    _audit(tmp_path / "rep")
    pa = tmp_path / "pa.json"
    pa.write_text(json.dumps({"gate": {"passed": True}, "statement": "checked on 03/14/2024 for Zorblax"}))
    with pytest.raises(DomainFMError, match=r"nothing was written \(it comes from --privacy-audit .*pa.json"):
        write_cards(tmp_path / "rep", "fda", privacy_audit=pa)


def test_training_data_lineage_is_the_data_the_model_recorded(tmp_path, monkeypatch):
    """A relative training-input path is read from the current folder: a manifest there that did
    not write the recorded input (by hash) is not the model's training data."""
    here = tmp_path / "here"
    model = _model_folder(here / "model", "x")
    (here / "train.jsonl").write_text('{"id": "t1", "text": "x"}\n')
    from domainfm.manifest import sha256_file, write_manifest

    write_manifest(here / "train.jsonl", stage="deid", config={"profile": "clinical"}, outputs=[here / "train.jsonl"])
    (model / "manifest.json").write_text(json.dumps({"stage": "finetune", "inputs": [
        {"path": "train.jsonl", "sha256": sha256_file(here / "train.jsonl")}]}))
    monkeypatch.chdir(here)
    _audit(here / "rep", model_dir=model)
    roles = {s["role"] for s in write_cards(here / "rep", "fda", out_dir=tmp_path / "c1").summary["sources"]}
    assert "training_data_0_manifest" in roles
    other = tmp_path / "other"
    other.mkdir()
    (other / "train.jsonl").write_text('{"id": "o1", "text": "another corpus"}\n')
    write_manifest(other / "train.jsonl", stage="import", config={}, outputs=[other / "train.jsonl"])
    monkeypatch.chdir(other)
    roles = {s["role"] for s in write_cards(here / "rep", "fda", out_dir=tmp_path / "c2").summary["sources"]}
    assert "training_data_0_manifest" not in roles and "model_manifest" in roles
