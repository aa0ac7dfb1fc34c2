"""No PHI in messages or reports: places a planted identifier reached where it should not.

Each case comes from a leak hunt over every command with made-up notes whose names, record
numbers and ids no rule or list can know ("Zorblax Quintavius", MRN 4417293).
"""

from __future__ import annotations

import pytest

from domainfm.corpus.document import Document
from domainfm.errors import ConfigError, RecordError

PLANTED = ("Zorblax", "Quintavius", "Mirelda", "Fennicott", "Thaddeus", "Vornquist", "Snargleby", "4417293",
           "8830412")


def _quotes_planted(text: str) -> list[str]:
    return [p for p in PLANTED if p.lower() in text.lower()]


def _notes(names: list[str]) -> list[Document]:
    return [Document(id=f"n{i}", text="Chest pain.", meta={"patient_name": name, "sex": "FM"[i % 2]})
            for i, name in enumerate(names)]


# ------------------------------------------------------------------------- finetune / evaluate


def test_unseen_label_of_an_identifier_field_is_not_quoted():
    # label_field pointed at meta.patient_name by mistake: the patient split holds out a patient,
    # whose name was then printed, with every training patient's name, to the console and to a
    # pipeline's stage.json and run.json
    from domainfm.finetune.data import LabelMap, check_known_labels

    label_map = LabelMap("classification", ["Mirelda Fennicott", "Zorblax Quintavius"])
    with pytest.raises(RecordError) as raised:
        check_known_labels(_notes(["Thaddeus Vornquist"]), label_map, "meta.patient_name")
    message = str(raised.value)
    assert _quotes_planted(message) == []
    assert "meta.patient_name" in message and "NAME" in message and "n0" in message
    # an ordinary label field still names the label and suggests the near one
    with pytest.raises(RecordError, match=r"'cardiologyy'.*'cardiology'"):
        check_known_labels([Document(id="d", text="x", label="cardiologyy")],
                           LabelMap("classification", ["cardiology", "neurology"]), "label")


def test_label_counts_of_an_identifier_field_are_not_quoted():
    from domainfm.finetune.data import build_label_map

    docs = _notes(["Zorblax Quintavius", "Zorblax Quintavius", "Mirelda Fennicott"])
    with pytest.raises(ConfigError) as raised:
        build_label_map("classification", docs, "meta.patient_name", None)
    assert "training example(s)" in str(raised.value) and _quotes_planted(str(raised.value)) == []
    with pytest.raises(ConfigError) as raised:
        build_label_map("classification", docs[:2], "meta.patient_name", None)
    assert "at least 2 classes" in str(raised.value) and _quotes_planted(str(raised.value)) == []


def test_identifier_field():
    from domainfm.deid.meta import identifier_field

    assert identifier_field("meta.patient_name") == "NAME"
    assert identifier_field("meta.MRN") == "MRN"
    assert identifier_field("meta.contacts.phone") == "PHONE"
    assert identifier_field("meta.next-of-kin") == "NAME"
    for ordinary in ("label", "labels", "meta.sex", "meta.age_band", "meta.note_type", "meta.comment", "patient_name"):
        assert identifier_field(ordinary) is None, ordinary


# ------------------------------------------------------------------------------------- audit


def test_audit_refuses_groups_whose_key_is_phi_whatever_the_values():
    # three patients with twelve notes each: no group singles anyone out, and fresh names read
    # alone are no name to the rules, so the names headed the report's tables and model card
    from domainfm.audit.privacy import identifying_groups

    names = ["Zorblax Quintavius", "Mirelda Fennicott", "Thaddeus Vornquist"] * 12
    flagged = identifying_groups({"meta.patient_name": names, "meta.sex": ["F", "M"] * 18})
    assert list(flagged) == ["meta.patient_name"]
    assert "NAME" in flagged["meta.patient_name"] and _quotes_planted(flagged["meta.patient_name"]) == []


def test_audit_masks_record_ids_of_deidentified_data():
    # deid keeps record ids unless told to pseudonymise them; the audit quoted the explained
    # examples' ids of de-identified data as they were ("Fennicott-8830412-28")
    from domainfm.audit.runner import _quoted

    pseudonym, file_name = "doc-21ff221916b538a7066e", "Snargleby_ward/Zorblax_Quintavius_MRN4417293_0"
    docs = [Document(id="Fennicott-8830412-28", text="Seen by Dr. Kidd Camacho."),
            Document(id="n15", text="Chest pain."), Document(id=pseudonym, text="Cough."),
            Document(id=file_name, text="Cough.")]  # a textdir import's id: the file's path
    texts, shown, masking = _quoted(None, docs, [0, 1, 2, 3], [], {"deidentified": True, "evidence": []})
    assert masking["deidentified_input"] is True
    assert _quotes_planted(" ".join(shown.values())) == []
    # keyed by position in docs (two documents may share an id)
    assert len(shown[0]) == len("Fennicott-8830412-28")
    assert shown[3].count("/") == 1 and len(shown[3]) == len(file_name)
    assert shown[1] == "n15" and shown[2] == pseudonym
    assert texts[1] == "Chest pain."  # de-identified text: PHI patterns only, as before


def test_a_label_field_that_holds_identifiers_is_refused_unless_allowed():
    from domainfm.errors import ConfigError
    from domainfm.finetune import DataSection

    with pytest.raises(ConfigError, match=r"data.label_field 'meta.mrn' is a field de-identification treats as PHI"):
        DataSection(train="notes.jsonl", label_field="meta.mrn")
    assert DataSection(train="notes.jsonl", label_field="meta.mrn", allow_identifier_labels=True).label_field == "meta.mrn"
    assert DataSection(train="notes.jsonl", label_field="meta.specialty").label_field == "meta.specialty"


def test_deid_of_a_missing_input_leaves_no_vault_behind(tmp_path, monkeypatch):
    from domainfm.deid import DeidConfig
    from domainfm.deid.runner import deidentify_file
    from domainfm.errors import CorpusError

    monkeypatch.setenv("DOMAINFM_VAULT_KEY", "k" * 32)
    vault = tmp_path / "v.vault"
    with pytest.raises(CorpusError, match="no such file"):
        deidentify_file(tmp_path / "typo.jsonl", tmp_path / "out.jsonl", DeidConfig(vault=str(vault)))
    assert not vault.exists() and not (tmp_path / "out.jsonl").exists()
