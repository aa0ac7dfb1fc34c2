"""``domainfm deid`` end to end: output schema, rejects, manifest, workers, vault round trip,
and no PHI on the console."""

from __future__ import annotations

import json
import re

import pytest

from domainfm.deid import DeidConfig, deidentify_file

NOTE = ("CHIEF COMPLAINT: chest pain.\nPt Johanna Vandersloot seen 7/22/2019 by Dr. Okonkwo at "
        "Mercy Hospital. Call 410-555-0199. MRN 88123456.\nDAUGHTER MARY CALLED.")
PLANTED = ["Johanna", "Vandersloot", "Okonkwo", "410-555-0199", "88123456"]


@pytest.fixture()
def corpus(tmp_path):
    path = tmp_path / "notes.jsonl"
    lines = [
        {"id": "n1", "text": NOTE, "meta": {"patient_id": "p1"}, "label": "cardiology",
         "spans": [{"start": 17, "end": 27, "label": "SYMPTOM", "attrs": {}}]},
        {"id": "n2", "text": "   ", "meta": {"patient_id": "p1"}},
        {"id": "n3", "text": "Seen again by Dr. Okonkwo.\x07\x00 Vandersloot stable.", "meta": {"patient_id": "p1"}},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n{broken\n")
    return path


def read(path):
    return [json.loads(line) for line in open(path)]


def test_tag_output_schema_rejects_and_manifest(corpus, tmp_path):
    out = tmp_path / "out.jsonl"
    result = deidentify_file(corpus, out, DeidConfig(operator="tag"))
    c = result.counts
    assert (c.read, c.written, c.rejected) == (4, 3, 1) and c.reconciles
    records = read(out)
    assert [r["id"] for r in records] == ["n1", "n2", "n3"]
    first = records[0]
    assert set(first) >= {"id", "text", "meta", "label", "labels", "spans", "phi_spans"}
    assert first["meta"] == {"patient_id": "p1"} and first["label"] == "cardiology"
    for name in PLANTED:
        assert name not in first["text"]
    assert "[DATE]" in first["text"]
    # phi_spans are input offsets with no text; annotation spans follow the new text.
    for span in first["phi_spans"]:
        assert set(span) == {"start", "end", "label", "score"}
        assert 0 <= span["start"] < span["end"] <= len(NOTE)
    assert first["text"][first["spans"][0]["start"]:first["spans"][0]["end"]] == "chest pain"
    assert records[1]["text"] == "   " and records[1]["phi_spans"] == []
    rejects = read(result.rejects)
    assert rejects[0]["location"] == "notes.jsonl:4" and "broken JSON" in rejects[0]["reason"]
    manifest = json.loads(result.manifest.read_text())
    assert manifest["stage"] == "deid" and manifest["config"]["operator"] == "tag"
    assert manifest["counts"]["reconciles"]


def test_surrogates_are_consistent_for_a_patient_and_reproducible_with_seed(corpus, tmp_path, monkeypatch):
    monkeypatch.delenv("DOMAINFM_VAULT_KEY", raising=False)
    a = deidentify_file(corpus, tmp_path / "a.jsonl", DeidConfig(), seed=7)
    b = deidentify_file(corpus, tmp_path / "b.jsonl", DeidConfig(), seed=7)
    assert "seed 7" in a.surrogate_key
    ra, rb = read(a.out), read(b.out)
    assert [r["text"] for r in ra] == [r["text"] for r in rb]
    for name in PLANTED:
        assert all(name not in r["text"] for r in ra)
    # the doctor's surrogate in note 1 is reused in note 3 (same patient)
    n1, n3 = ra[0], ra[2]
    doctor = next(s for s in n1["phi_spans"] if NOTE[s["start"]:s["end"]] == "Okonkwo")
    del doctor
    surname_in_n3 = n3["text"].split("Dr. ")[1].split(".")[0]
    assert surname_in_n3 in n1["text"]


def test_workers_give_the_same_output(corpus, tmp_path):
    one = deidentify_file(corpus, tmp_path / "one.jsonl", DeidConfig(operator="tag"))
    two = deidentify_file(corpus, tmp_path / "two.jsonl", DeidConfig(operator="tag", workers=2, batch_size=1))
    assert read(one.out) == read(two.out)


def test_cli_deid_vault_and_reidentify_round_trip(cli, corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("DOMAINFM_VAULT_KEY", "k" * 40)
    out, vault, back = tmp_path / "d.jsonl", tmp_path / "d.vault", tmp_path / "back.jsonl"
    result = cli("deid", corpus, "-o", out, "--vault", vault)
    assert result.exit_code == 0, result.output
    assert "read 4 = written 3 + rejected 1" in result.stderr
    for name in PLANTED:
        assert name not in result.output
        assert name.encode() not in vault.read_bytes()
    result = cli("reidentify", out, "-o", back, "--vault", vault)
    assert result.exit_code == 0, result.output
    originals = [json.loads(x) for x in corpus.read_text().splitlines()[:3]]
    assert [r["text"] for r in read(back)] == [o["text"] for o in originals]


def test_reidentify_rejects_records_it_cannot_restore_and_restores_the_rest(cli, corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("DOMAINFM_VAULT_KEY", "k" * 40)
    out, vault = tmp_path / "d.jsonl", tmp_path / "d.vault"
    assert cli("deid", corpus, "-o", out, "--vault", vault).exit_code == 0
    records = read(out)
    edited = {**records[1], "text": records[1]["text"] + " edited"}
    stranger = {"id": "not-in-vault", "text": "anything"}
    lines = [json.dumps(records[0]), json.dumps(edited), json.dumps(stranger), '{"id": "x", "text": "broken',
             json.dumps(records[2])]
    (tmp_path / "mixed.jsonl").write_text("\n".join(lines) + "\n")
    result = cli("reidentify", tmp_path / "mixed.jsonl", "-o", tmp_path / "back.jsonl", "--vault", vault)
    assert result.exit_code == 0, result.output
    assert "read 5 = written 2 + rejected 3" in result.output
    originals = [json.loads(x) for x in corpus.read_text().splitlines()[:3]]
    assert [r["text"] for r in read(tmp_path / "back.jsonl")] == [originals[0]["text"], originals[2]["text"]]
    rejects = read(tmp_path / "back.rejects.jsonl")
    assert [r["location"] for r in rejects] == ["mixed.jsonl:2", "mixed.jsonl:3", "mixed.jsonl:4"]
    assert "not the text this vault de-identified" in rejects[0]["reason"]
    assert "no de-identification entry" in rejects[1]["reason"] and "broken JSON" in rejects[2]["reason"]
    assert rejects[0]["raw"] == lines[1]  # the record as read, to repair
    for name in PLANTED:
        assert name not in result.output
    manifest = json.loads((tmp_path / "back.manifest.json").read_text())
    assert manifest["counts"]["restored"] == 2 and manifest["counts"]["rejected"] == 3


def test_a_run_that_pseudonymizes_ids_names_rejects_by_location_only(cli, tmp_path, monkeypatch):
    """Ids a user asks to pseudonymise are identifiers (an MRN in the id): the console names a
    rejected record by file:line, never by its raw id."""
    monkeypatch.setenv("DOMAINFM_VAULT_KEY", "k" * 40)
    src = tmp_path / "ids.jsonl"
    src.write_text(json.dumps({"id": "MRN88413060-Zorblax", "text": 7}) + "\n"
                   + json.dumps({"id": "MRN88413061-Quintavius", "text": "Seen today."}) + "\n")
    result = cli("deid", src, "-o", tmp_path / "out.jsonl", "--vault", tmp_path / "v.db", "--pseudonymize-ids")
    assert result.exit_code == 0, result.output
    assert "ids.jsonl:1" in result.output and "MRN88413060" not in result.output
    plain = cli("deid", src, "-o", tmp_path / "plain.jsonl")  # without pseudonyms the id helps find it
    assert "MRN88413060" in plain.output


def test_pseudonymized_ids_are_keyed_stable_and_restored_by_reidentify(cli, corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("DOMAINFM_VAULT_KEY", "k" * 40)
    # record ids long enough that finding one in the encrypted vault is no chance match (a 2-byte
    # id such as "n3" turns up in a few kilobytes of ciphertext now and then)
    lines = corpus.read_text().splitlines()
    rows = [json.loads(x) for x in lines[:3]]
    for row in rows:
        row["id"] = f"accession-{row['id']}-40917"
    corpus = tmp_path / "long_ids.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n".join(lines[3:]) + "\n", encoding="utf-8")
    originals = rows[:3]
    vault = tmp_path / "d.vault"
    runs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.jsonl"
        result = cli("deid", corpus, "-o", out, "--vault", vault, "--pseudonymize-ids")
        assert result.exit_code == 0, result.output
        runs.append([r["id"] for r in read(out)])
    ids = runs[0]
    assert ids == runs[1] and len(set(ids)) == 3  # the same pseudonyms in every run with this vault
    assert all(re.fullmatch(r"doc-[0-9a-f]{20}", i) for i in ids)
    assert not {o["id"] for o in originals} & set(ids)
    for o in originals:
        assert o["id"].encode() not in vault.read_bytes()
    # another key gives other pseudonyms: nobody without the key can compute them
    monkeypatch.setenv("DOMAINFM_VAULT_KEY", "z" * 40)
    assert cli("deid", corpus, "-o", tmp_path / "c.jsonl", "--vault", tmp_path / "other.vault",
               "--pseudonymize-ids").exit_code == 0
    assert not set(ids) & {r["id"] for r in read(tmp_path / "c.jsonl")}
    monkeypatch.setenv("DOMAINFM_VAULT_KEY", "k" * 40)
    result = cli("reidentify", tmp_path / "a.jsonl", "-o", tmp_path / "back.jsonl", "--vault", vault)
    assert result.exit_code == 0, result.output
    assert [(r["id"], r["text"]) for r in read(tmp_path / "back.jsonl")] == [(o["id"], o["text"]) for o in originals]
    result = cli("deid", corpus, "-o", tmp_path / "x.jsonl", "--pseudonymize-ids")
    assert result.exit_code == 2 and "'pseudonymize_ids' needs a vault" in result.stderr
    # deid-eval reads the pseudonyms back through the vault, and says so when it is not given
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps({"id": o["id"], "text": o["text"], "spans": []}) + "\n" for o in originals))
    result = cli("deid-eval", gold, tmp_path / "a.jsonl")
    assert result.exit_code == 2 and "'deid --pseudonymize-ids' pseudonyms: give its --vault" in result.stderr
    result = cli("deid-eval", gold, tmp_path / "a.jsonl", "--vault", vault, "-o", tmp_path / "m.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "m.json").read_text())["unmatched_prediction_ids"] == 0
    # an error about a record read back through the vault locates it by line, never by the original id
    edited = read(tmp_path / "a.jsonl")
    edited[0]["text"] += " edited"
    (tmp_path / "edited.jsonl").write_text("".join(json.dumps(r) + "\n" for r in edited))
    result = cli("deid-eval", gold, tmp_path / "edited.jsonl", "--vault", vault)
    assert result.exit_code == 2 and "edited.jsonl:1: the record's text is not" in result.stderr, result.output
    assert not any(o["id"] in result.output for o in originals)
    for command in (("deid-eval", gold, tmp_path / "a.jsonl"), ("reidentify", tmp_path / "a.jsonl", "-o", tmp_path / "r.jsonl")):
        result = cli(*command, "--vault", tmp_path / "missing.vault")
        assert result.exit_code == 2 and "no such vault" in result.stderr
        assert not (tmp_path / "missing.vault").exists()  # never a new empty vault


def test_cli_vault_without_key_is_a_one_line_error(cli, corpus, tmp_path, monkeypatch):
    monkeypatch.delenv("DOMAINFM_VAULT_KEY", raising=False)
    result = cli("deid", corpus, "-o", tmp_path / "o.jsonl", "--vault", tmp_path / "v.vault")
    assert result.exit_code == 2 and "DOMAINFM_VAULT_KEY" in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_cli_deid_eval(cli, tmp_path):
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps({"id": "a", "text": "Seen by Dr. Okonkwo on 7/22.",
                                "spans": [{"start": 12, "end": 19, "label": "DOCTOR"},
                                          {"start": 23, "end": 27, "label": "DATE"}]}) + "\n")
    pred = tmp_path / "pred.jsonl"
    deidentify_file(gold, pred, DeidConfig(operator="tag"))
    result = cli("deid-eval", gold, pred, "-o", tmp_path / "m.json")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "m.json").read_text())
    assert summary["any_overlap"]["recall"] == 1.0
    assert summary["leakage"] == {**summary["leakage"], "gold_strings": 2, "leaked": 0, "rate": 0.0}
    assert "Okonkwo" not in result.output


def test_cli_deid_meta_option(cli, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "a", "text": "Seen today.", "meta": {"bed": "seen by Dr. Okonkwo", "site": "x"}}) + "\n")
    result = cli("deid", src, "-o", tmp_path / "o.jsonl", "--operator", "tag", "--meta", "bed=deid",
                 "--meta", "site=drop")
    assert result.exit_code == 0, result.output
    assert read(tmp_path / "o.jsonl")[0]["meta"] == {"bed": "seen by Dr. [DOCTOR]"}
    result = cli("deid", src, "-o", tmp_path / "p.jsonl", "--meta", "bed")
    assert result.exit_code == 2 and "--meta expects KEY=VALUE" in result.stderr


def test_meta_fields_follow_the_policy(tmp_path):
    # a name in meta is replaced with the same surrogate as in the text, a date of birth moves by
    # the patient's shift, free text is de-identified with the names the note revealed, listed
    # keys are dropped or kept, and unknown keys are kept
    from domainfm.corpus import Document, read_documents, write_documents

    src = tmp_path / "notes.jsonl"
    write_documents(src, [Document("n1", "Mr. Quintavius seen today. Zorblax reports feeling better.", meta={
        "patient_id": "p1", "patient_name": "Zorblax Quintavius", "DOB": "3/4/1950",
        "comment": "called Zorblax at home", "ward_code": "7B", "pager": 4471, "nested": {"email": "zq@example.org"}})])
    config = DeidConfig(operator="surrogate", meta={"ward_code": "drop"})
    deidentify_file(src, tmp_path / "out.jsonl", config, seed=1)
    record = next(read_documents(tmp_path / "out.jsonl"))
    meta = record.meta
    assert "ward_code" not in meta and meta["patient_id"] == "p1"
    kept = json.dumps({k: meta[k] for k in ("patient_name", "DOB", "comment", "pager", "nested")})
    assert not [s for s in ("Zorblax", "Quintavius", "3/4/1950", "4471", "zq@example.org") if s in kept], kept
    first, last = meta["patient_name"].split()
    assert last in record.text and first in record.text and first in meta["comment"]  # one surrogate everywhere
    assert meta["DOB"] != "3/4/1950" and meta["DOB"].count("/") == 2

    tagged = tmp_path / "tag.jsonl"
    deidentify_file(src, tagged, DeidConfig(operator="tag", meta_default="drop", meta={"patient_id": "keep"}), seed=1)
    meta = next(read_documents(tagged)).meta
    assert meta["patient_name"] == "[NAME]" and meta["comment"] == "called [NAME] at home"
    assert "ward_code" not in meta and meta["patient_id"] == "p1"


def test_a_value_under_a_phi_key_is_phi_at_any_depth(tmp_path):
    # objects under a PHI key, and objects inside lists, were kept when their own keys were unknown
    from domainfm.corpus import Document, read_documents, write_documents

    src = tmp_path / "notes.jsonl"
    write_documents(src, [Document("n1", "Seen today.", meta={
        "patient_id": "p1", "patient_name": {"first": "Zorblax", "last": "Quintavius"},
        "next_of_kin": [{"given": "Zorblax"}], "mrn": {"value": "8675309"},
        "contacts": [{"name": "Zorblax Quintavius", "phone": "555-867-5309", "role": "son"}],
        "site": {"ward": "7B"}})])
    deidentify_file(src, tmp_path / "tag.jsonl", DeidConfig(operator="tag"), seed=1)
    meta = next(read_documents(tmp_path / "tag.jsonl")).meta
    assert meta["patient_name"] == {"first": "[NAME]", "last": "[NAME]"}
    assert meta["next_of_kin"] == [{"given": "[NAME]"}] and meta["mrn"] == {"value": "[MRN]"}
    assert meta["contacts"] == [{"name": "[NAME]", "phone": "[PHONE]", "role": "son"}]
    assert meta["site"] == {"ward": "7B"} and meta["patient_id"] == "p1"  # unknown keys under kept keys stay
    deidentify_file(src, tmp_path / "sur.jsonl", DeidConfig(operator="surrogate"), seed=1)
    text = (tmp_path / "sur.jsonl").read_text()
    assert not [s for s in ("Zorblax", "Quintavius", "8675309", "867-5309") if s in text]


@pytest.mark.parametrize("kwargs,match", [
    ({"meta": {"dob": "shred"}}, "meta.dob"),
    ({"meta_default": "erase"}, "meta_default"),
    ({"meta": ["dob"]}, "'meta' must be a mapping"),
])
def test_meta_policy_errors_name_the_key(kwargs, match):
    from domainfm.errors import ConfigError

    with pytest.raises(ConfigError, match=match):
        DeidConfig(**kwargs)


def test_outputs_never_replace_an_inputs_manifest_and_reidentify_rejects_repeated_ids(cli, corpus, tmp_path,
                                                                                      monkeypatch):
    """reidentify -o d.manifest.json put the restored notes (names, MRNs) where the de-identified
    file's provenance was; a record given twice was restored twice under one id."""
    monkeypatch.setenv("DOMAINFM_VAULT_KEY", "k" * 40)
    out, vault = tmp_path / "d.jsonl", tmp_path / "d.vault"
    assert cli("deid", corpus, "-o", out, "--vault", vault).exit_code == 0
    manifest = tmp_path / "d.manifest.json"
    before = manifest.read_bytes()
    assert (tmp_path / "d.rejects.jsonl").is_file()  # the corpus's broken line
    for args in (("reidentify", out, "-o", manifest, "--vault", vault),
                 ("deid-eval", corpus, out, "-o", manifest),
                 ("reidentify", out, "-o", tmp_path / "d.rejects.jsonl", "--vault", vault)):
        result = cli(*args)
        assert result.exit_code == 2 and "would overwrite the manifest or reject file of the input d.jsonl" \
            in result.output, result.output
    assert manifest.read_bytes() == before
    result = cli("reidentify", out, "-o", ".", "--vault", vault)
    assert result.exit_code == 2 and "is a folder; -o takes a file path" in result.output
    assert "Traceback" not in result.output

    twice = tmp_path / "twice.jsonl"
    twice.write_text(out.read_text() + out.read_text().splitlines()[0] + "\n")
    result = cli("reidentify", twice, "-o", tmp_path / "back.jsonl", "--vault", vault)
    assert result.exit_code == 0 and "read 4 = written 3 + rejected 1" in result.output, result.output
    (reject,) = read(tmp_path / "back.rejects.jsonl")
    assert reject["location"] == "twice.jsonl:4" and "duplicate id (already used by the record on line 1)" \
        in reject["reason"]
    assert len({r["id"] for r in read(tmp_path / "back.jsonl")}) == 3


def test_a_patients_names_are_remembered_however_many_patients_come_between():
    """The memory kept the 10,000 most recent patients: a second visit after more patients than
    that left the bare surname in the note (and Ray's smaller groups replaced it)."""
    from domainfm.corpus.document import Document
    from domainfm.deid.detection import Detection
    from domainfm.deid.propagate import NamePropagator

    remember = NamePropagator()
    first = Document("a0", "Patient Zorblax Quintavius seen today.", meta={"patient_id": "PZ"})
    remember(first, [Detection(8, 26, "PATIENT", 0.85, "test")])
    for i in range(10_001):  # other patients, each with a name of their own
        other = Document(f"x{i}", "Seen by Dr. Velorin.", meta={"patient_id": f"Q{i}"})
        remember(other, [Detection(12, 19, "DOCTOR", 0.85, "test")])
    later = Document("a1", "Quintavius stable, Zorblax home.", meta={"patient_id": "PZ"})
    found = remember(later, [])
    assert sorted(later.text[d.start:d.end] for d in found) == ["Quintavius", "Zorblax"]


@pytest.mark.parametrize("later, expected", [
    ("Signed, J. Quintavius.", ["J. Quintavius"]),
    ("(J.Quintavius) aware", ["J.Quintavius"]),
    ("Plan: Quintavius home.", ["Quintavius"]),     # a colon before is no initial
    ("QJ. Quintavius", ["Quintavius"]),             # nor a word's last letters
])
def test_an_initial_before_a_recurring_name_goes_with_it(later, expected):
    """The propagated surname left its initial in clear: "John Quintavius ... J. Quintavius"
    came out as "Henry Li ... J. Li"."""
    from domainfm.corpus.document import Document
    from domainfm.deid.detection import Detection
    from domainfm.deid.propagate import NamePropagator

    remember = NamePropagator()
    remember(Document("a0", "John Quintavius seen.", meta={"patient_id": "PZ"}), [Detection(0, 15, "NAME", 0.5, "t")])
    doc = Document("a1", later, meta={"patient_id": "PZ"})
    assert [later[d.start:d.end] for d in remember(doc, [])] == expected


@pytest.mark.parametrize("later, expected", [
    ("Plan: Amelia to return.", ["Amelia"]),  # a listed name that is also a word (a medical term)
    ("AMELIA CALLED.", ["AMELIA"]),
    ("Amelia of the hands noted; amelia excluded.", ["Amelia"]),  # the word, in lower case, stays
])
def test_a_listed_name_that_is_also_a_word_propagates_where_it_is_capitalised(later, expected):
    """"Amelia Quillfeather" found in a patient's first note left "Amelia" in clear in the next:
    an English word was never propagated (so "Will" would not make every "will" PHI)."""
    from domainfm.corpus.document import Document
    from domainfm.deid.detection import Detection
    from domainfm.deid.propagate import NamePropagator

    remember = NamePropagator()
    first = Document("a0", "Pt Amelia Quillfeather seen.", meta={"patient_id": "PZ"})
    remember(first, [Detection(3, 22, "PATIENT", 0.85, "t")])
    doc = Document("a1", later, meta={"patient_id": "PZ"})
    assert [later[d.start:d.end] for d in remember(doc, [])] == expected


def test_detections_by_label_are_ordered_by_count_then_name(tmp_path):
    """One process listed tied labels in the order it met them, Spark and Ray by name."""
    src = tmp_path / "n.jsonl"
    src.write_text(json.dumps({"id": "a", "text": "Call 410-555-0199. Seen by Dr. Okonkwo."}) + "\n")
    result = deidentify_file(src, tmp_path / "o.jsonl", DeidConfig(profile="clinical"), seed=1)
    manifest = json.loads(result.manifest.read_text())
    assert list(manifest["counts"]["detections_by_label"]) == ["DOCTOR", "PHONE"]
    assert list(result.detections_by_label) == ["DOCTOR", "PHONE"]


def test_identifiers_left_outside_the_text_are_counted_by_field_and_named_with_their_fix(cli, tmp_path, monkeypatch):
    """The id, kept meta keys and labels are written as they came (documented), so a record id
    that is the note's MRN or a kept meta value with the doctor's name leaves that identifier in
    the output. The run says so by field name and option, never by value."""
    src = tmp_path / "notes.jsonl"
    rows = [{"id": "MRN-88123456", "text": NOTE, "meta": {"seen_by": "Okonkwo", "site": "north"}, "label": "cardiology"},
            {"id": "n2", "text": "Seen by Dr. Okonkwo today.", "meta": {"site": "north"}, "labels": ["Okonkwo"]},
            # a detected string glued to other digits, or shorter than four characters, is not looked for
            {"id": "MRN-881234567", "text": "MRN 88123456. Seen by Dr. Lee.", "meta": {"ward": "Lee"}}]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = deidentify_file(src, tmp_path / "out.jsonl", DeidConfig(operator="tag"))
    assert result.outside_text == {"id": 1, "labels": 1, "meta.seen_by": 1}
    manifest = (tmp_path / "out.manifest.json").read_text()
    assert json.loads(manifest)["counts"]["identifiers_outside_text"] == result.outside_text
    assert "Okonkwo" not in manifest and "88123456" not in manifest

    shown = cli("deid", src, "-o", tmp_path / "cli.jsonl", "--operator", "tag")
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert "--pseudonymize-ids" in text and "--meta seen_by=deid" in text and "labels are not de-identified" in text
    assert "Okonkwo" not in shown.output and "88123456" not in shown.output

    # the fixes the message names make it go away
    monkeypatch.setenv("DOMAINFM_VAULT_KEY", "k" * 40)
    fixed = deidentify_file(src, tmp_path / "fixed.jsonl", DeidConfig(
        vault=str(tmp_path / "v.db"), pseudonymize_ids=True, meta={"seen_by": "deid"}))
    assert fixed.outside_text == {"labels": 1}


def test_reidentify_of_a_vault_another_run_holds_says_it_is_locked(corpus, tmp_path, monkeypatch):
    import sqlite3

    import domainfm.deid.vault as vault_module
    from domainfm.deid.runner import reidentify_file
    from domainfm.errors import ConfigError

    monkeypatch.setenv("DOMAINFM_VAULT_KEY", "k" * 40)
    deidentify_file(corpus, tmp_path / "out.jsonl", DeidConfig(vault=str(tmp_path / "v.db")))
    connect = sqlite3.connect
    monkeypatch.setattr(vault_module.sqlite3, "connect", lambda path, timeout=5.0, **kw: connect(path, timeout=0.1, **kw))
    holder = connect(tmp_path / "v.db")
    holder.execute("BEGIN EXCLUSIVE")  # a deid run in the middle of writing it
    try:
        with pytest.raises(ConfigError, match="the vault is locked by another run"):
            reidentify_file(tmp_path / "out.jsonl", tmp_path / "back.jsonl", tmp_path / "v.db")
    finally:
        holder.rollback()
        holder.close()


def test_years_places_and_words_inside_labels_are_not_identifiers_left_outside(tmp_path):
    """The warning fired on every demo note: a year in the text ("asthma since 2019") inside a
    kept date, a town named in the text and in meta.site, an eponym ("Parkinson") inside the
    label "parkinson_disease"."""
    src = tmp_path / "notes.jsonl"
    text = "Asthma since 2019. Seen by Dr. Parkinson in Marsby. Follow up with Dr. Okonkwo."
    src.write_text(json.dumps({"id": "n1", "text": text, "labels": ["parkinson_disease", "okonkwo"],
                               "meta": {"visit": "2019-03-04", "site": "Marsby"}}) + "\n")
    result = deidentify_file(src, tmp_path / "out.jsonl", DeidConfig(operator="tag"))
    assert result.outside_text == {"labels": 1}  # "okonkwo" is a label that is a name, whole


def test_a_date_in_meta_is_read_like_the_notes_dates(tmp_path):
    # "3/5" in meta was shifted in the reference leap year 2000 while the same "3/5" in a 2019 note
    # was shifted in 2019: across a 29 February the two came out a day apart
    from domainfm.corpus import Document, read_documents, write_documents

    src, out = tmp_path / "notes.jsonl", tmp_path / "out.jsonl"
    write_documents(src, [Document(f"n{i}", "Admitted 01/15/2019. Seen again 3/5 in clinic.",
                                   meta={"patient_id": f"p{i}", "visit": "3/5"}) for i in range(40)])
    deidentify_file(src, out, DeidConfig(operator="surrogate", meta={"visit": "DATE"}), seed=3)
    records = list(read_documents(out))
    assert len(records) == 40
    for record in records:
        in_text = re.search(r"again (\S+) in clinic", record.text).group(1)
        assert record.meta["visit"] == in_text, record.id
    # day-first notes: "03/05" in meta is 3 May there too
    write_documents(src, [Document(f"d{i}", "Admitted 25/04/2019. Seen again 03/05 in clinic.",
                                   meta={"patient_id": f"q{i}", "visit": "03/05"}) for i in range(10)])
    deidentify_file(src, out, DeidConfig(operator="surrogate", meta={"visit": "DATE"}), seed=3)
    for record in read_documents(out):
        assert record.meta["visit"] == re.search(r"again (\S+) in clinic", record.text).group(1), record.id
