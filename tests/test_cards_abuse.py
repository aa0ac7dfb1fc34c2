"""Reviewer's cards under abuse (a demanding user and a regulator's reviewer): a hand-edited,
truncated or stale report.json is refused naming the key or file and the fix; NaN/inf never
reaches a card; the cards claim no test the audit did not run; every Markdown row names the file
its number is in; a privacy audit of another model says so; a re-run writes the same cards."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_cards import KeywordScorer, _audit, _model_folder, _value_jsons, check_numbers

from domainfm.audit.cards import write_cards
from domainfm.audit.cards.evidence import lookup
from domainfm.errors import ConfigError


def _strict_json(text: str):
    """JSON as RFC 8259 has it: NaN and Infinity are not numbers there."""
    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def audit_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("abuse") / "rep"
    _audit(out)
    return out


def _copied_report(src: Path, dest: Path, edit) -> Path:
    """A folder holding only an edited copy of ``src``'s report.json (no audit manifest to check
    it against: the demo's case)."""
    dest.mkdir()
    report = json.loads((src / "report.json").read_text())
    edit(report)
    (dest / "report.json").write_text(json.dumps(report))
    return dest


def _set(path: str, value):
    def edit(report):
        *parents, key = path.split("/")
        lookup(report, parents)[key] = value
    return edit


@pytest.mark.parametrize("path, value, named", [
    ("performance/by_attribute", [], "'performance.by_attribute' must be an object, got list"),
    ("performance/by_attribute", None, "'performance.by_attribute' must be an object, got NoneType"),
    ("model/labels", None, "'model.labels' must be a list"),
    ("model/labels", ["cardio", 3], "'model.labels.1' must be text"),
    ("performance/by_attribute/meta.sex/groups/female", 0.5, "'performance.by_attribute.meta.sex.groups.female' must"),
    ("data/attributes", ["meta.sex"], "'data.attributes' must be an object"),
    ("summary", "all good", "'summary' must be a list"),
    ("warnings", "abc", "'warnings' must be a list"),
    ("privacy/identifying_groups", ["meta.sex"], "'privacy.identifying_groups' must be an object"),
    ("calibration", 0.1, "'calibration' must be an object"),
    ("robustness", ["gender"], "'robustness' must be an object"),
])
def test_a_mistyped_report_section_is_refused_naming_the_key(audit_dir, tmp_path, path, value, named):
    folder = _copied_report(audit_dir, tmp_path / "copy", _set(path, value))
    with pytest.raises(ConfigError, match=f"report.json: {named}.*run 'domainfm audit' again"):
        write_cards(folder, "all", out_dir=tmp_path / "cards")
    assert not (tmp_path / "cards").exists() or not any((tmp_path / "cards").iterdir())


def test_a_lone_surrogate_in_the_report_is_refused_not_a_traceback(audit_dir, tmp_path):
    folder = tmp_path / "copy"
    folder.mkdir()
    text = (audit_dir / "report.json").read_text().replace('"female"', '"fem\\ud800ale"')  # half a UTF-16 pair
    (folder / "report.json").write_text(text)
    with pytest.raises(ConfigError, match=r"report.json holds a lone UTF-16 surrogate.*run 'domainfm audit' again"):
        write_cards(folder, "all")
    assert sorted(p.name for p in folder.iterdir()) == ["report.json"]


def test_a_report_without_vetted_group_values_is_refused(audit_dir, tmp_path):
    """The cards print group values; a report from before the audit checked them for identifiers
    cannot vouch for them."""
    folder = _copied_report(audit_dir, tmp_path / "old", lambda r: r["privacy"].pop("identifying_groups"))
    with pytest.raises(ConfigError, match="has no 'privacy.identifying_groups'.*run 'domainfm audit' again"):
        write_cards(folder, "all")


def test_a_report_edited_after_the_audit_is_refused(audit_dir, tmp_path):
    folder = tmp_path / "rep"
    shutil.copytree(audit_dir, folder)
    report = json.loads((folder / "report.json").read_text())
    report["performance"]["overall"]["accuracy"] = 0.99  # a better number by hand
    (folder / "report.json").write_text(json.dumps(report))
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(ConfigError, match=r"report.json is not the report the audit wrote \(.*manifest.json records "
                                          r"another sha256.*run 'domainfm audit' again"):
        write_cards(folder, "all")
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written


def test_non_finite_numbers_are_not_measured_and_every_card_is_strict_json(audit_dir, tmp_path):
    def edit(report):
        overall = report["performance"]["overall"]
        overall["accuracy"] = float("nan")
        overall["ci"]["macro_f1"] = [float("-inf"), float("inf")]
        overall["n"] = float("nan")
    folder = _copied_report(audit_dir, tmp_path / "nan", edit)
    write_cards(folder, "all")
    annex = _strict_json((folder / "annex_iv.json").read_text())
    _strict_json((folder / "cards.json").read_text())
    results = {label: vj for label, vj in _value_jsons((folder / "chai_model_card.xml").read_bytes())}
    for vj in results.values():
        _strict_json(json.dumps(vj, allow_nan=False))
    assert "overall accuracy" not in results  # not measured, rather than a NaN
    assert "ci" not in results["overall macro-F1"] and "n" not in results["overall macro-F1"]
    rows = [m["label"] for s in annex["sections"] for m in s["metrics"]]
    assert "overall accuracy" not in rows and "overall macro-F1" in rows
    for name in ("annex_iv.md", "fda_model_card.md"):
        text = (folder / name).read_text()
        assert "| nan |" not in text and "| inf" not in text and "overall accuracy |" not in text


def test_cards_claim_only_the_tests_that_were_run(tmp_path):
    """No intervals without bootstrap resamples, no counterfactual test without a flip rate, no
    held-out test when the audit read the training documents, no de-id or memorisation metric
    that was not given."""
    from domainfm.audit import AuditConfig, audit
    from domainfm.corpus.document import Document

    docs = [Document(id=f"d{i}", text=("heart pain" if i % 3 else "seizure") + f" in note {i}.",
                     label="cardio" if i % 2 else "neuro", meta={"sex": "female" if i % 4 < 2 else "male"})
            for i in range(24)]
    audit(KeywordScorer(), docs, tmp_path / "rep", AuditConfig(group_by=["meta.sex"], n_bootstrap=0, counterfactuals=[],
                                                               min_group_size=3))
    write_cards(tmp_path / "rep", "all", audit_scope="all")
    from lxml import etree

    from domainfm.audit.cards import chai

    root = etree.fromstring((tmp_path / "rep" / "chai_model_card.xml").read_bytes())
    ns = {"mc": chai.NS}
    tests = [t.text for t in root.iterfind(".//mc:TestType", ns)]
    assert tests and not any("held-out" in t or "counterfactual" in t for t in tests), tests
    assert all(t.startswith("Retrospective in-sample evaluation") for t in tests[:2])
    assert "counterfactual" not in root.findtext(".//mc:BiasMitigationApproaches", namespaces=ns)
    validation = root.findtext(".//mc:ValidationProcessAndJustification", namespaces=ns)
    assert "bootstrap" not in validation and "confidence intervals: not measured" in validation
    assert "Held-out" not in validation and "in-sample" in validation
    bias = root.findtext(".//mc:KnownBiasesOrEthicalConsiderations", namespaces=ns)
    assert "bootstrap" not in bias and "confidence intervals: not measured" in bias
    annex = _strict_json((tmp_path / "rep" / "annex_iv.json").read_text())
    fields = {f["name"]: f["text"] for s in annex["sections"] for f in s["fields"]}
    assert "Robustness: calibration error." in fields["Choice of metrics"]
    assert "Privacy: not measured." in fields["Choice of metrics"]
    assert "counterfactual" not in fields["Choice of metrics"]
    write_cards(tmp_path / "rep", "chai")  # a stand-alone audit: nobody recorded whether the documents were held out
    root = etree.fromstring((tmp_path / "rep" / "chai_model_card.xml").read_bytes())
    assert "whether they were held out from training is not recorded" in root.findtext(".//mc:TestType", namespaces=ns)


def _privacy_report(path: Path, model: Path | None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "stage": "audit-privacy", **({"model": {"path": str(model)}} if model else {}),
        "statement": "highest canary exposure 2.10 of 8.00 bits", "exposure": {"max_exposure": 2.1},
        "membership": {"strongest": "loss", "attacks": {"loss": {"auc": 0.52, "auc_ci": [0.44, 0.6]}}},
        "regurgitation": {"beyond_chance": 0}, "gate": {"passed": True, "checks": []}}))
    return path


def test_markdown_rows_name_the_file_their_number_is_in(audit_dir, tmp_path):
    """A pipeline's audit, privacy audit and de-id evaluation are all report.json: a row citing
    'report.json#/exposure/max_exposure' would send a reviewer to the audit's report."""
    privacy = _privacy_report(tmp_path / "privacy" / "report.json", None)
    out = tmp_path / "cards"
    write_cards(audit_dir, "annex-iv,fda", out_dir=out, privacy_audit=privacy)
    rows = [line for line in (out / "fda_model_card.md").read_text().splitlines()
            if line.startswith("| highest canary exposure")]
    assert len(rows) == 1 and "`report.json#" not in rows[0]
    cited = rows[0].rsplit("`", 2)[-2].split("#")[0]
    assert Path(cited).resolve() == privacy.resolve()
    audit_rows = [line for line in (out / "annex_iv.md").read_text().splitlines()
                  if line.startswith("| overall accuracy")]
    assert Path(audit_rows[0].rsplit("`", 2)[-2].split("#")[0]).resolve() == (audit_dir / "report.json").resolve()


def test_a_privacy_audit_of_another_model_says_which(tmp_path):
    """The pipeline's privacy stage audits the pretrained base model: its memorisation results
    must not read as the classifier's own."""
    base = _model_folder(tmp_path / "dapt", "the pretrained base model")
    model = _model_folder(tmp_path / "model", "the classifier")
    (model / "domainfm_task.json").write_text(json.dumps({"base_model": {"name": str(base)}}))
    _audit(tmp_path / "rep", model_dir=model)
    of_base = _privacy_report(tmp_path / "pa_base.json", base)
    result = write_cards(tmp_path / "rep", "chai,fda", out_dir=tmp_path / "c1", privacy_audit=of_base)
    labels = dict(_value_jsons((tmp_path / "c1" / "chai_model_card.xml").read_bytes()))
    assert "membership-inference AUC (loss attack), base model" in labels
    assert "membership-inference AUC (loss attack)" not in labels
    fda = (tmp_path / "c1" / "fda_model_card.md").read_text()
    assert "audit-privacy) of the base model it was fine-tuned from (dapt)" in fda
    assert result.warnings == []
    assert check_numbers(tmp_path / "c1", {"report.json": tmp_path / "rep" / "report.json",
                                           "pa_base.json": of_base}) > 10
    of_self = _privacy_report(tmp_path / "pa_self.json", model)
    write_cards(tmp_path / "rep", "chai", out_dir=tmp_path / "c1", privacy_audit=of_self)
    assert "membership-inference AUC (loss attack)" in dict(
        _value_jsons((tmp_path / "c1" / "chai_model_card.xml").read_bytes()))
    other = _privacy_report(tmp_path / "pa_other.json", tmp_path / "unrelated")
    result = write_cards(tmp_path / "rep", "chai", out_dir=tmp_path / "c1", privacy_audit=other)
    assert "membership-inference AUC (loss attack), another model" in dict(
        _value_jsons((tmp_path / "c1" / "chai_model_card.xml").read_bytes()))
    assert any("audited another model (unrelated)" in w for w in result.warnings)


def test_writing_the_cards_twice_gives_the_same_files(audit_dir, tmp_path):
    """Idempotent: only the manifest's timestamp differs."""
    out = tmp_path / "cards"
    write_cards(audit_dir, "all", out_dir=out)
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    write_cards(audit_dir, "all", out_dir=out)
    second = {p.name: p.read_bytes() for p in out.iterdir()}
    assert first.keys() == second.keys()
    assert [n for n in first if first[n] != second[n]] in ([], ["cards.manifest.json"])
    a, b = (json.loads(d["cards.manifest.json"]) for d in (first, second))
    a.pop("created"), b.pop("created")
    assert a == b
    assert not [p for p in out.iterdir() if p.suffix == ".tmp"]
