"""The audit's bootstrap resamples patients when the documents name them: a patient's notes are
not independent draws, and resampled one by one they gave intervals too narrow. Documents that
name no patient keep the document bootstrap, number for number, and the report says which unit
was resampled."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_audit import FAST, LABELS, FakeScorer, make_docs

from domainfm.audit import AuditConfig, audit, run_audit
from domainfm.audit.metrics import bootstrap_cis, gap_cis, resample_weights, resampling_units
from domainfm.corpus.document import Document, Span
from domainfm.errors import ConfigError

QUICK = dict(n_bootstrap=400, min_group_size=2, counterfactuals=[])


class ReadsItsLabel:
    """Predicts the label named by the note's last word: the data decides what is right."""

    labels = LABELS

    def predict_proba(self, texts):
        out = np.full((len(texts), len(LABELS)), 0.1)
        for i, text in enumerate(texts):
            out[i, LABELS.index(text.split()[-1])] = 0.8
        return out


def patient_notes(patients=24, notes=8, with_ids=True):
    """Every note of a patient is right, or every one is wrong (one patient in four, of either
    sex): the outcome is the patient's, so 192 notes hold 24 draws' worth of information."""
    docs = []
    for p in range(patients):
        gold = LABELS[p % 3]
        predicted = LABELS[(p + 1) % 3] if p % 8 < 2 else gold
        for j in range(notes):
            meta = {"sex": "FM"[p % 2]}
            if with_ids:
                meta["patient_id"] = f"pt{p}"
            docs.append(Document(id=f"pt{p}-n{j}", text=f"Follow-up note {j}: findings consistent with {predicted}",
                                 meta=meta, label=gold))
    return docs


def width(interval):
    return interval[1] - interval[0]


@pytest.fixture(scope="module")
def by_patient_and_by_document():
    docs = patient_notes()
    cfg = dict(group_by=["meta.sex"], **QUICK)
    return (run_audit(ReadsItsLabel(), docs, AuditConfig(**cfg)),
            run_audit(ReadsItsLabel(), docs, AuditConfig(bootstrap_unit="document", **cfg)))


def test_patients_whose_notes_agree_give_wider_intervals_than_their_notes(by_patient_and_by_document):
    patients, documents = by_patient_and_by_document
    assert patients["performance"]["overall"]["accuracy"] == documents["performance"]["overall"]["accuracy"] == 0.75
    by_p, by_d = patients["performance"]["overall"]["ci"], documents["performance"]["overall"]["ci"]
    # 24 patients, not 192 independent notes: about sqrt(8) times wider
    assert width(by_p["accuracy"]) > 2 * width(by_d["accuracy"])
    assert width(by_p["macro_f1"]) > 2 * width(by_d["macro_f1"])
    for sex in ("F", "M"):  # a group's interval draws the group's patients
        group_p = patients["performance"]["by_attribute"]["meta.sex"]["groups"][sex]["ci"]
        group_d = documents["performance"]["by_attribute"]["meta.sex"]["groups"][sex]["ci"]
        assert width(group_p["accuracy"]) > 2 * width(group_d["accuracy"])
    gap_p = patients["performance"]["by_attribute"]["meta.sex"]["gaps"]["all_groups"]["ci"]
    gap_d = documents["performance"]["by_attribute"]["meta.sex"]["gaps"]["all_groups"]["ci"]
    assert width(gap_p["accuracy_difference"]) > 1.5 * width(gap_d["accuracy_difference"])


def test_the_report_names_the_resampled_unit(by_patient_and_by_document):
    patients, documents = by_patient_and_by_document
    assert patients["performance"]["bootstrap"] == {
        "resampled": "patients (n=24; 192 documents)", "unit": "meta.patient_id", "n_units": 24,
        "n_documents": 192, "resamples": 400, "seed": 13}
    assert documents["performance"]["bootstrap"]["resampled"] == "documents (n=192)"
    assert patients["definitions"]["ci"].startswith("95% percentile bootstrap over patients (24 by meta.patient_id, "
                                                    "192 documents;")
    assert documents["definitions"]["ci"] == "95% percentile bootstrap over documents (400 resamples, seed 13)"
    assert patients["config"]["bootstrap_unit"] == "auto" and not patients["warnings"]


def test_the_html_and_model_card_say_patients_were_resampled(tmp_path):
    result = audit(ReadsItsLabel(), patient_notes(), tmp_path / "report",
                   AuditConfig(group_by=["meta.sex"], **{**QUICK, "n_bootstrap": 50}))
    html = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    card = (tmp_path / "report" / "model_card.md").read_text(encoding="utf-8")
    saved = json.loads((tmp_path / "report" / "report.json").read_text(encoding="utf-8"))
    assert "bootstrap over patients (24 by meta.patient_id, 192 documents" in html
    assert "bootstrap over patients (24 by meta.patient_id, 192 documents" in card
    assert saved["performance"]["bootstrap"] == result.report["performance"]["bootstrap"]
    assert "pt3" not in html and "pt3" not in card  # counts only: no patient id reaches the report
    assert not any("pt3" in json.dumps(v) for k, v in saved.items() if k != "explanations")


def _old_document_bootstrap(y_true, y_pred, positive, n_boot, rng):
    """The audit's intervals as they were before it resampled patients (documents, one index per
    document per resample), for the regression check."""
    n = len(y_true)
    if n < 2:
        return None
    idx = rng.integers(0, n, size=(n_boot, n))
    t, p = y_true[idx], y_pred[idx]
    tk, pk = t == positive, p == positive
    pos = tk.sum(1)
    samples = {"accuracy": (t == p).mean(1), "selection_rate": pk.mean(1),
               "tpr": np.divide((tk & pk).sum(1), pos, out=np.zeros(n_boot), where=pos > 0)}
    return {k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for k, v in samples.items()}


def test_without_patient_ids_the_intervals_are_the_document_bootstraps_of_before():
    docs = make_docs()
    cfg = AuditConfig(group_by=["meta.sex", "meta.age_band"], **FAST)
    report = run_audit(FakeScorer(), docs, cfg)
    perf = report["performance"]
    assert perf["bootstrap"] == {"resampled": "documents (n=90)", "unit": "document", "n_units": 90,
                                 "n_documents": 90, "with_patient_id": 0, "resamples": 50, "seed": 13}
    assert report["definitions"]["ci"] == "95% percentile bootstrap over documents (50 resamples, seed 13)"
    # the numbers the document bootstrap gave before (this data and seed, from the code before the change)
    assert perf["overall"]["ci"]["accuracy"] == pytest.approx([0.3630555555555556, 0.5666666666666667], rel=1e-12)
    assert perf["overall"]["ci"]["macro_f1"] == pytest.approx([0.32978306754221387, 0.5482577538335331], rel=1e-12)
    assert perf["by_attribute"]["meta.sex"]["groups"]["F"]["ci"]["tpr"] == pytest.approx(
        [0.5951680672268908, 0.9487012987012987], rel=1e-12)
    assert perf["by_attribute"]["meta.sex"]["gaps"]["all_groups"]["ci"]["equalized_odds_difference"] == pytest.approx(
        [0.6034615384615385, 0.9081168831168831], rel=1e-12)
    # and the same draws, replayed: the overall interval, then each group's in turn, from one stream
    y_true = np.array([LABELS.index(d.label) for d in docs])
    y_pred = FakeScorer().predict_proba([d.text for d in docs]).argmax(1)
    positive = LABELS.index(perf["positive_class"])
    rng = np.random.default_rng(cfg.seed)
    old = _old_document_bootstrap(y_true, y_pred, positive, cfg.n_bootstrap, rng)
    assert {k: perf["overall"]["ci"][k] for k in old} == old
    sex = np.array([d.meta.get("sex", "unknown") for d in docs])
    for group in sorted(set(sex)):
        old = _old_document_bootstrap(y_true[sex == group], y_pred[sex == group], positive, cfg.n_bootstrap, rng)
        assert {k: perf["by_attribute"]["meta.sex"]["groups"][group]["ci"][k] for k in old} == old


def test_document_is_the_same_as_auto_without_patient_ids():
    docs = make_docs(60, seed=4)
    auto = run_audit(FakeScorer(), docs, AuditConfig(group_by=["meta.sex"], **FAST))
    document = run_audit(FakeScorer(), docs, AuditConfig(group_by=["meta.sex"], bootstrap_unit="document", **FAST))
    for report in (auto, document):
        del report["config"], report["performance"]["bootstrap"]
    assert auto == document


def test_some_notes_without_a_patient_resample_documents_and_warn():
    docs = patient_notes(patients=6, notes=4)
    for doc in docs[:5]:
        doc.meta.pop("patient_id")
    report = run_audit(ReadsItsLabel(), docs, AuditConfig(group_by=["meta.sex"], **QUICK))
    assert report["performance"]["bootstrap"]["resampled"] == "documents (n=24)"
    assert report["performance"]["bootstrap"]["with_patient_id"] == 19
    assert any("19 of 24 documents name their patient" in w for w in report["warnings"])


def test_a_named_unit_field_every_document_must_have():
    docs = patient_notes(patients=6, notes=4)
    for doc in docs:
        doc.meta["encounter"] = doc.id[:-1]  # two notes share an encounter... or not
    docs[7].meta["encounter"] = float("nan")  # pandas' missing value is missing, not a unit called 'nan'
    with pytest.raises(ConfigError, match=r"bootstrap_unit is 'meta.encounter' but 1 of 24 documents have no value "
                                          r"there \(document\(s\) 8 of the audited data") as caught:
        run_audit(ReadsItsLabel(), docs, AuditConfig(group_by=["meta.sex"], bootstrap_unit="meta.encounter", **QUICK))
    assert "pt1" not in str(caught.value)  # positions, never the values or the ids
    docs[7].meta["encounter"] = "pt1-n"
    report = run_audit(ReadsItsLabel(), docs,
                       AuditConfig(group_by=["meta.sex"], bootstrap_unit="meta.encounter", **QUICK))
    assert report["performance"]["bootstrap"]["resampled"] == "meta.encounter units (n=6; 24 documents)"
    assert report["definitions"]["ci"].startswith("95% percentile bootstrap over meta.encounter units (6 by ")


@pytest.mark.parametrize("value, message", [
    ("patient_id", r"'bootstrap_unit' parameter must be 'auto', 'document' or 'meta.<key>'.*did you mean "
                   r"'meta.patient_id'"),
    ("documents", r"did you mean 'document'"),
    ("meta.", r"'bootstrap_unit' parameter"),
    (3, r"'bootstrap_unit' must be a string"),
])
def test_bad_bootstrap_unit_is_named(value, message):
    with pytest.raises(ConfigError, match=message):
        AuditConfig(bootstrap_unit=value)


def test_one_patient_has_no_interval_however_many_notes():
    docs = patient_notes(patients=5, notes=6)
    for doc in docs[:6]:
        doc.meta["site"] = "solo"  # one patient's six notes
    for doc in docs[6:]:
        doc.meta["site"] = "main"
    report = run_audit(ReadsItsLabel(), docs, AuditConfig(group_by=["meta.site"], **QUICK))
    groups = report["performance"]["by_attribute"]["meta.site"]["groups"]
    assert groups["solo"]["n"] == 6 and groups["solo"]["ci"]["accuracy"] is None
    assert groups["main"]["ci"]["accuracy"] is not None
    by_document = run_audit(ReadsItsLabel(), docs,
                            AuditConfig(group_by=["meta.site"], bootstrap_unit="document", **QUICK))
    assert by_document["performance"]["by_attribute"]["meta.site"]["groups"]["solo"]["ci"]["accuracy"] is not None


def test_the_same_seed_gives_the_same_intervals_and_each_stream_stays_its_own():
    docs = patient_notes()
    for i, doc in enumerate(docs):
        doc.meta["age"] = 30 + (i * 7) % 50
    cfg = dict(group_by=["meta.sex", "meta.age_band"], **QUICK)
    first = run_audit(ReadsItsLabel(), docs, AuditConfig(**cfg))
    assert run_audit(ReadsItsLabel(), docs, AuditConfig(**cfg))["performance"] == first["performance"]
    by_document = run_audit(ReadsItsLabel(), docs, AuditConfig(bootstrap_unit="document", **cfg))
    # the temperature's split draws from its own stream: the unit does not move it
    assert by_document["calibration"]["temperature"] == first["calibration"]["temperature"]
    # the gaps draw from theirs: fewer per-group intervals before them (no intersections) leave them as they were
    apart = run_audit(ReadsItsLabel(), docs, AuditConfig(**{**cfg, "group_by": ["meta.sex"]}))
    assert (apart["performance"]["by_attribute"]["meta.sex"]["gaps"]
            == first["performance"]["by_attribute"]["meta.sex"]["gaps"])


def test_gap_intervals_count_the_resamples_they_kept():
    # three groups, one of a single document: about 37% of resamples lack it
    y_true = np.array([0, 1] * 30 + [0])
    y_pred = np.array([0, 0] * 30 + [1])
    names = np.array(["a"] * 30 + ["b"] * 30 + ["c"], dtype=object)
    cis, resamples = gap_cis(y_true, y_pred, names, ["a", "b", "c"], 0, n_boot=2000, rng=np.random.default_rng(0),
                             return_resamples=True)
    assert resamples["of"] == 2000 and resamples["kept"] == 2000
    assert resamples["all_groups"] / 2000 == pytest.approx(1 - (1 - 1 / 61) ** 61, abs=0.03)
    assert all(ci is not None for ci in cis.values())
    # without return_resamples, the intervals alone (as callers of gap_cis had them), from the same draws
    assert gap_cis(y_true, y_pred, names, ["a", "b", "c"], 0, n_boot=2000, rng=np.random.default_rng(0)) == cis
    none, nothing = gap_cis(y_true, y_pred, names, ["a"], 0, n_boot=20, rng=np.random.default_rng(0),
                            return_resamples=True)
    assert nothing is None and set(none.values()) == {None}


def test_resample_weights_draw_whole_patients():
    units = np.array([2, 2, 0, 1, 1, 1, 0, 2])  # three patients of 3, 2 and 3 notes
    w = resample_weights(units, 8, 500, np.random.default_rng(1))
    for patient in (0, 1, 2):
        cols = w[:, units == patient]
        assert (cols == cols[:, :1]).all()  # a patient's notes come together
    drawn = np.stack([w[:, units == p][:, 0] for p in (0, 1, 2)], 1)
    assert (drawn.sum(1) == 3).all()  # three patients drawn per resample, with replacement
    assert (w.sum(1) == drawn @ np.array([2, 3, 3])).all()
    # without units, the document bootstrap's own draws
    plain = resample_weights(None, 8, 50, np.random.default_rng(5))
    idx = np.random.default_rng(5).integers(0, 8, size=(50, 8))
    assert (plain == np.stack([np.bincount(row, minlength=8) for row in idx])).all()


def test_bootstrap_cis_needs_two_units():
    y = np.array([0, 1, 0, 1])
    assert bootstrap_cis(y, y, 2, 0, n_boot=10, rng=np.random.default_rng(0), units=np.zeros(4))["accuracy"] is None
    assert bootstrap_cis(y, y, 2, 0, n_boot=10, rng=np.random.default_rng(0))["accuracy"] == [1.0, 1.0]


def test_resampling_units_of_documents_that_all_name_a_patient():
    docs = [Document(id=f"d{i}", text="x", meta={"patient_id": [17, "17", 4][i % 3]}) for i in range(6)]
    units, described = resampling_units(docs)
    assert described["resampled"] == "patients (n=2; 6 documents)"  # 17 and "17": one patient
    assert units.tolist() == [0, 0, 1, 0, 0, 1]
    assert resampling_units(docs, "document")[0] is None


TEXT = "Seen by Dr Lee on Monday with Ann."


def _ner_notes(with_ids=True):
    """20 patients of 6 notes; each patient's entities all found, or all missed (six patients,
    three at each site)."""
    docs = []
    for p in range(20):
        for j in range(6):
            meta = {"site": "AB"[p % 2], **({"patient_id": f"pt{p}"} if with_ids else {})}
            docs.append(Document(id=f"pt{p}-{j}", text=TEXT, meta=meta, spans=[Span(8, 14, "DOCTOR")]))

    def predict(ds):
        return [[] if int(d.id[2:].split("-")[0]) % 8 < 2 else [Span(8, 14, "DOCTOR")] for d in ds]

    return docs, predict


def test_ner_f1_interval_resamples_patients():
    from domainfm.audit.ner import run_ner_audit

    docs, predict = _ner_notes()
    cfg = dict(group_by=["meta.site"], **QUICK)
    patients = run_ner_audit(predict, ["DOCTOR"], docs, AuditConfig(**cfg), "fake")
    documents = run_ner_audit(predict, ["DOCTOR"], docs, AuditConfig(bootstrap_unit="document", **cfg), "fake")
    overall = [r["performance"]["overall"]["ci"]["f1"] for r in (patients, documents)]
    assert width(overall[0]) > 2 * width(overall[1])
    for site in "AB":
        assert (width(patients["performance"]["by_attribute"]["meta.site"]["groups"][site]["ci"]["f1"])
                > 2 * width(documents["performance"]["by_attribute"]["meta.site"]["groups"][site]["ci"]["f1"]))
    assert patients["performance"]["bootstrap"]["resampled"] == "patients (n=20; 120 documents)"
    assert patients["definitions"]["ci"].startswith("95% percentile bootstrap over patients (20 by meta.patient_id")
    assert documents["definitions"]["ci"] == "95% percentile bootstrap over documents (400 resamples, seed 13)"


def test_ner_without_patient_ids_keeps_the_document_bootstrap():
    from domainfm.audit.ner import _ci, _doc_counts, run_ner_audit

    docs, predict = _ner_notes(with_ids=False)
    cfg = AuditConfig(group_by=["meta.site"], **QUICK)
    report = run_ner_audit(predict, ["DOCTOR"], docs, cfg, "fake")
    assert report["performance"]["bootstrap"]["resampled"] == "documents (n=120)"
    counts = np.array([_doc_counts(d.spans, p) for d, p in zip(docs, predict(docs))])
    rng = np.random.default_rng(cfg.seed)
    sums = counts[rng.integers(0, len(counts), size=(cfg.n_bootstrap, len(counts)))].sum(1)
    f1 = 2 * sums[:, 0] / (sums[:, 1] + sums[:, 2])
    assert report["performance"]["overall"]["ci"]["f1"] == [float(np.percentile(f1, 2.5)),
                                                            float(np.percentile(f1, 97.5))]
    assert _ci(counts, cfg, np.random.default_rng(cfg.seed))[0] == report["performance"]["overall"]["ci"]["f1"]


def test_the_cli_takes_the_unit_and_names_a_bad_one_before_loading_anything(cli, tmp_path):
    result = cli("audit", tmp_path / "no-model", tmp_path / "no-data.jsonl", "-o", tmp_path / "out",
                 "--bootstrap-unit", "patient")
    assert result.exit_code == 2 and "'bootstrap_unit'" in result.output and "meta.patient_id" in result.output
    assert not (tmp_path / "out").exists()


def test_a_group_of_many_notes_from_few_patients_is_small():
    # 96 notes of 12 patients per sex: enough documents for min_group_size 20, too few patients.
    # The intervals draw patients, so the flag counts them too; documents alone called it reliable.
    docs = patient_notes()
    cfg = dict(group_by=["meta.sex"], n_bootstrap=50, counterfactuals=[], min_group_size=20)
    patients = run_audit(ReadsItsLabel(), docs, AuditConfig(**cfg))
    documents = run_audit(ReadsItsLabel(), docs, AuditConfig(bootstrap_unit="document", **cfg))
    by_p = patients["performance"]["by_attribute"]["meta.sex"]
    assert {g: (m["n"], m["units"], m["small"]) for g, m in by_p["groups"].items()} == {
        "F": (96, 12, True), "M": (96, 12, True)}
    assert by_p["gaps"]["reliable_groups"]["groups"] == []
    assert patients["data"]["attributes"]["meta.sex"]["small_groups"] == ["F", "M"]
    assert patients["data"]["attributes"]["meta.sex"]["group_units"] == {"F": 12, "M": 12}
    assert patients["data"]["small_group_rule"] == "fewer than 20 documents or 20 patients"
    # resampling documents, 96 of them are enough
    by_d = documents["performance"]["by_attribute"]["meta.sex"]
    assert not any(m["small"] for m in by_d["groups"].values()) and "units" not in by_d["groups"]["F"]
    assert by_d["gaps"]["reliable_groups"]["groups"] == ["F", "M"]
    assert documents["data"]["small_group_rule"] == "fewer than 20 documents"


def test_ner_groups_count_their_patients():
    from domainfm.audit.ner import run_ner_audit

    docs, predict = _ner_notes()
    report = run_ner_audit(predict, ["DOCTOR"], docs, AuditConfig(group_by=["meta.site"], n_bootstrap=20,
                                                                  counterfactuals=[], min_group_size=15), "fake")
    groups = report["performance"]["by_attribute"]["meta.site"]["groups"]
    assert all(m["n"] >= 15 and m["units"] < 15 and m["small"] for m in groups.values()), groups
    assert report["performance"]["by_attribute"]["meta.site"]["gaps"]["reliable_groups"]["groups"] == []
