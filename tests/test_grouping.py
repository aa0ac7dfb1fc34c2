"""One grouping key for every split: a patient's notes stay on one side in pretraining and fine-tuning."""

import pytest

from domainfm.corpus import Document
from domainfm.corpus.grouping import group_of, has_patient
from domainfm.errors import RecordError


def test_auto_groups_by_patient_when_named_else_by_id():
    assert group_of(Document("n1", "x", meta={"patient_id": 7}), "auto") == ("patient_id", "7")
    assert group_of(Document("n2", "x", meta={"patient_id": ""}), "auto") == ("id", "n2")
    assert group_of(Document("n3", "x", meta={"site": "A"}), "meta.site") == ("site", "A")


def test_a_missing_group_field_names_the_record_and_suggests_the_key():
    with pytest.raises(RecordError) as err:
        group_of(Document("n9", "x", meta={"patient": "p1"}), "meta.patient_id")
    assert "n9" in str(err.value) and "'patient'" in str(err.value)


def test_pretrain_and_finetune_keep_each_patient_on_one_side():
    from domainfm.finetune.data import split_documents as finetune_split

    docs = [Document(f"d{i}", "note", label="a" if i % 2 else "b", meta={"patient_id": f"p{i % 10}"})
            for i in range(60)]
    train, held, info = finetune_split(docs, eval_fraction=0.2, split_key="auto", seed=3, task="classification",
                                       label_field="label")
    assert info["split_key"] == "meta.patient_id"
    assert {d.meta["patient_id"] for d in train}.isdisjoint({d.meta["patient_id"] for d in held})
    # one document without a patient: the whole split falls back to document ids
    mixed = docs + [Document("lone", "note", label="a")]
    assert finetune_split(mixed, eval_fraction=0.2, split_key="auto", seed=3, task="classification",
                          label_field="label")[2]["split_key"] == "id"


@pytest.mark.parametrize("value", [None, "", "   ", float("nan")])
def test_a_blank_or_nan_patient_id_names_no_patient_anywhere(value):
    # one rule for every stage that groups by patient (splits, deid-eval and audit intervals):
    # a pandas NaN or a blank cell as a key would pool every such note into one "patient"
    from domainfm.audit.metrics import resampling_units
    from domainfm.deid.evaluate import resampling_unit

    doc = Document("n1", "text", meta={"patient_id": value})
    other = Document("n2", "text", meta={"patient_id": "p7"})
    assert not has_patient(doc) and group_of(doc, "auto") == ("id", "n1")
    assert resampling_unit([doc, other]) == "document"
    assert resampling_units([doc, other])[1]["with_patient_id"] == 1
    with pytest.raises(RecordError, match="meta.patient_id has no value"):
        group_of(doc, "meta.patient_id")
