"""The de-identification vault: encryption at rest, HMAC lookups, keys, re-identification."""

from __future__ import annotations

import os
import stat

import pytest

from domainfm.corpus import Document, Span
from domainfm.deid.surrogates import SurrogateGenerator
from domainfm.deid.transform import apply_operator, reidentify, transform_documents
from domainfm.deid.vault import Vault, VaultKeyError
from domainfm.errors import ConfigError, RecordError

KEY = b"vault-test-key-0123456789abcdefghijklmnop"
SECRET = b"surrogate-secret-0123456789abcdef"

PLANTED = {"name": "Zebulon Quartermaine", "mrn": "MRN-8675309", "city": "Xylophonia",
           "date": "03/14/2015", "patient": "PATIENT-ID-77731", "doc": "NOTE-ID-55512"}


def planted_doc() -> tuple[Document, list]:
    text = (f"{PLANTED['name']} ({PLANTED['mrn']}) from {PLANTED['city']} admitted {PLANTED['date']}. "
            f"Mr. Quartermaine is stable.")

    def at(s: str, label: str, nth: int = 0):
        start = text.index(s) if nth == 0 else text.index(s, text.index(s) + 1)
        return (start, start + len(s), label, 0.9)

    dets = [at(PLANTED["name"], "PATIENT"), at(PLANTED["mrn"], "MRN"), at(PLANTED["city"], "CITY"),
            at(PLANTED["date"], "DATE"), at("Mr. Quartermaine", "PATIENT")]
    doc = Document(PLANTED["doc"], text, {"patient_id": PLANTED["patient"]},
                   spans=[Span(0, 20, "PATIENT"), Span(8, 20, "SURNAME"),
                          Span(text.index("stable"), len(text) - 1, "STATUS")])
    return doc, dets


def test_raw_file_reveals_no_originals_surrogates_or_ids(tmp_path):
    path = tmp_path / "deid.vault"
    doc, dets = planted_doc()
    with Vault(path, KEY) as vault:
        rec = apply_operator(doc, dets, "surrogate", SurrogateGenerator(SECRET, vault))
    surrogate_tokens = [t for t in rec.text.replace("(", " ").replace(")", " ").split()
                        if t not in doc.text.split() and len(t) >= 4]
    assert surrogate_tokens  # the surrogates exist, and must not be readable in the file
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    for value in list(PLANTED.values()) + ["Quartermaine", "Zebulon", "PATIENT", "MRN", "CITY"] + surrogate_tokens:
        for encoded in (value.encode("utf-8"), value.encode("utf-16-le")):
            assert encoded not in raw, value
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_vault_keeps_surrogates_across_runs_and_secrets(tmp_path):
    path = tmp_path / "v.db"
    doc, dets = planted_doc()
    with Vault(path, KEY) as vault:
        first = apply_operator(doc, dets, "surrogate", SurrogateGenerator(SECRET, vault)).text
        offset = SurrogateGenerator(SECRET, vault).date_offset(f"patient:{PLANTED['patient']}")
    with Vault(path, KEY) as vault:
        # A different generator secret: the stored mapping and date shift still win.
        gen = SurrogateGenerator(b"some-other-secret-abcdefghijklmn", vault)
        assert apply_operator(doc, dets, "surrogate", gen).text == first
        assert gen.date_offset(f"patient:{PLANTED['patient']}") == offset
        assert vault.get_shift(f"patient:{PLANTED['patient']}") == offset


def test_reverse_lookup_and_collision_avoidance(tmp_path):
    with Vault(tmp_path / "v.db", KEY) as vault:
        gen = SurrogateGenerator(SECRET, vault)
        scope = "patient:1"
        fake = gen.surrogate("Quartermaine", "NAME", scope)
        assert vault.lookup_original(scope, "NAME_PART", fake.casefold()) == "Quartermaine"
        assert vault.lookup_original("patient:2", "NAME_PART", fake.casefold()) is None
        names = [f"Name{chr(97 + i)}{chr(97 + j)}" for i in range(20) for j in range(10)]
        fakes = [gen.surrogate(n, "NAME", scope) for n in names]
        assert len(set(fakes)) == len(fakes)  # no two originals share a surrogate in one scope


def test_wrong_key_is_a_clear_error(tmp_path):
    path = tmp_path / "v.db"
    doc, dets = planted_doc()
    with Vault(path, KEY) as vault:
        apply_operator(doc, dets, "tag", vault=vault)
    with pytest.raises(VaultKeyError, match="does not match"):
        Vault(path, b"x" * 40)


def test_tampered_entry_fails_authentication(tmp_path):
    import sqlite3

    path = tmp_path / "v.db"
    with Vault(path, KEY) as vault:
        vault.put_shift("patient:1", 400)
    db = sqlite3.connect(path)
    blob = bytearray(db.execute("SELECT value FROM shifts").fetchone()[0])
    blob[-1] ^= 1
    db.execute("UPDATE shifts SET value = ?", (bytes(blob),))
    db.commit()
    db.close()
    with Vault(path, KEY) as vault, pytest.raises(VaultKeyError, match="failed authentication"):
        vault.get_shift("patient:1")


def test_from_env(monkeypatch, tmp_path):
    monkeypatch.delenv("DOMAINFM_VAULT_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"DOMAINFM_VAULT_KEY is not set.*secrets.token_urlsafe\(32\)"):
        Vault.from_env(tmp_path / "v.db")
    monkeypatch.setenv("DOMAINFM_VAULT_KEY", "hunter2-secret")
    with pytest.raises(ConfigError, match="too short.*at least 32 characters") as info:
        Vault.from_env(tmp_path / "v.db")
    assert "hunter2" not in str(info.value)
    monkeypatch.setenv("DOMAINFM_VAULT_KEY", "s" * 43)
    with Vault.from_env(tmp_path / "v.db") as vault:
        vault.put_shift("patient:x", 5)
    with Vault.from_env(tmp_path / "v.db") as vault:
        assert vault.get_shift("patient:x") == 5
    with pytest.raises(VaultKeyError):
        Vault(tmp_path / "w.db", b"too-short")


def test_not_a_vault_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"this is not sqlite at all " * 100)
    with pytest.raises(ConfigError, match="not a domainfm vault"):
        Vault(path, KEY)


def test_another_database_or_an_empty_file_is_refused_and_left_unchanged(tmp_path):
    import sqlite3

    app = tmp_path / "app.db"
    with sqlite3.connect(app) as db:
        db.execute("CREATE TABLE users (name TEXT)")
    before = app.read_bytes()
    for must_exist in (False, True):  # deid --vault as much as reidentify
        with pytest.raises(ConfigError, match="not a domainfm vault .*'meta' table"):
            Vault(app, KEY, must_exist=must_exist)
    assert app.read_bytes() == before
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(ConfigError, match="not a domainfm vault \\(an empty file\\)"):
        Vault(empty, KEY, must_exist=True)
    assert empty.stat().st_size == 0
    with Vault(empty, KEY) as vault:  # a writer may be given a new, empty file
        vault.put_shift("patient:1", 3)
    with sqlite3.connect(empty) as db:
        db.execute("DROP TABLE documents")
        db.execute("CREATE TABLE documents (doc_h BLOB, other BLOB)")
    with pytest.raises(ConfigError, match="another layout of the 'documents' table"):
        Vault(empty, KEY)


@pytest.mark.parametrize("value", [b"\x00\x11\x22\x33", "text", 7])
def test_a_cut_or_retyped_entry_is_a_vault_error_not_a_crash(tmp_path, value):
    import sqlite3

    path = tmp_path / "v.db"
    doc, dets = planted_doc()
    with Vault(path, KEY) as vault:
        rec = apply_operator(doc, dets, "surrogate", SurrogateGenerator(SECRET, vault))
    with sqlite3.connect(path) as db:
        db.execute("UPDATE documents SET value = ?", (value,))
    with Vault(path, KEY) as vault, pytest.raises(VaultKeyError, match="failed authentication"):
        list(reidentify([rec], vault))


def test_a_vault_keeps_the_first_document_of_an_id_and_rejects_another_text(tmp_path):
    path = tmp_path / "v.db"
    doc, dets = planted_doc()
    with Vault(path, KEY) as vault:
        first = apply_operator(doc, dets, "surrogate", SurrogateGenerator(SECRET, vault))
    with Vault(path, KEY) as vault:  # the same document again (a re-run) may replace its entry
        again = apply_operator(doc, dets, "tag", vault=vault)
        assert list(reidentify([again], vault))[0]["text"] == doc.text
        first = apply_operator(doc, dets, "surrogate", SurrogateGenerator(SECRET, vault))
        other = Document(doc.id, "Seen by Dr. Quillon Farthingale today.", {"patient_id": "p9"})
        out = list(transform_documents([(other, [(12, 30, "DOCTOR", 0.9)])], "surrogate",
                                       SurrogateGenerator(SECRET, vault), vault=vault))
        assert len(out) == 1 and "already holds another document" in out[0].reason
        assert out[0].record_id == doc.id and "Farthingale" not in out[0].reason
        assert list(reidentify([first], vault))[0]["text"] == doc.text  # the first is still restorable


@pytest.mark.parametrize("operator", ["surrogate", "redact", "tag"])
def test_reidentify_is_exact_for_every_operator(tmp_path, operator):
    doc, dets = planted_doc()
    docs = [doc, Document("plain", "no phi here", spans=[Span(0, 2, "X")]), Document("empty", "")]
    with Vault(tmp_path / "v.db", KEY) as vault:
        gen = SurrogateGenerator(SECRET, vault)
        out = [r.to_dict() for r in transform_documents([(d, dets if d is doc else []) for d in docs],
                                                        operator, gen)]
        assert PLANTED["name"] not in out[0]["text"]
    with Vault(tmp_path / "v.db", KEY) as vault:
        assert list(reidentify(out, vault)) == [d.to_dict() for d in docs]


def test_reidentify_maps_spans_added_after_deid(tmp_path):
    doc, dets = planted_doc()
    with Vault(tmp_path / "v.db", KEY) as vault:
        rec = apply_operator(doc, dets, "tag", vault=vault).to_dict()
        start = rec["text"].index("stable")
        rec["spans"] = [{"start": start, "end": start + 6, "label": "NEW", "attrs": {}},
                        {"start": 0, "end": 9, "label": "WHO", "attrs": {}}]
        back = next(reidentify([rec], vault))
    assert back["text"] == doc.text
    new = next(s for s in back["spans"] if s["label"] == "NEW")
    assert doc.text[new["start"]:new["end"]] == "stable"
    who = next(s for s in back["spans"] if s["label"] == "WHO")
    assert doc.text[who["start"]:who["end"]] == PLANTED["name"]


def test_reidentify_refuses_unknown_or_edited_records(tmp_path):
    doc, dets = planted_doc()
    with Vault(tmp_path / "v.db", KEY) as vault:
        rec = apply_operator(doc, dets, "tag", vault=vault).to_dict()
        with pytest.raises(RecordError, match="no de-identification entry"):
            list(reidentify([{**rec, "id": "other"}], vault))
        with pytest.raises(RecordError, match="not the text this vault de-identified") as info:
            list(reidentify([{**rec, "text": rec["text"] + "!"}], vault))
        assert PLANTED["name"] not in str(info.value)
    with pytest.raises(VaultKeyError):
        list(reidentify([rec], Vault(tmp_path / "v.db", b"y" * 40)))


def test_generator_from_env(monkeypatch):
    monkeypatch.setenv("DOMAINFM_VAULT_KEY", "g" * 40)
    a = SurrogateGenerator.from_env()
    assert a.surrogate("Maria Garcia", "NAME", "doc:1") == SurrogateGenerator(b"g" * 40).surrogate(
        "Maria Garcia", "NAME", "doc:1")
    monkeypatch.delenv("DOMAINFM_VAULT_KEY")
    with pytest.raises(VaultKeyError, match="not set"):
        SurrogateGenerator.from_env()


@pytest.mark.parametrize("offset", [-772, 400])
def test_a_date_without_a_year_takes_each_notes_year_and_restores_exactly(tmp_path, offset):
    # "3/5" in a note of 2019 and in one of 2020: one patient, one shift, two different days
    from datetime import date, timedelta

    notes = [Document(f"y-{year}", f"Seen 01/15/{year}; recheck 3/5.", {"patient_id": "py"}) for year in (2019, 2020)]
    dets = [(5, 15, "DATE", 0.9), (25, 28, "DATE", 0.9)]
    expected = []
    for year in (2019, 2020):
        full, yearless = (date(year, 1, 15) + timedelta(days=offset)), (date(year, 3, 5) + timedelta(days=offset))
        expected.append(f"{full:%m/%d/%Y}; recheck {yearless.month}/{yearless.day}.")
    for run in range(2):  # a second run reads the stored shift and writes the same text
        with Vault(tmp_path / "v.db", KEY) as vault:
            if run == 0:
                vault.put_shift("patient:py", offset)
            gen = SurrogateGenerator(SECRET, vault)
            out = [r.to_dict() for r in transform_documents([(n, dets) for n in notes], "surrogate", gen)]
            assert [r["text"] for r in out] == ["Seen " + e for e in expected]
            assert list(reidentify(out, vault)) == [n.to_dict() for n in notes]


def test_an_initial_keeps_the_letter_of_its_given_name_across_runs(tmp_path):
    with Vault(tmp_path / "v.db", KEY) as vault:
        full = SurrogateGenerator(SECRET, vault).surrogate("Zebulon Quartermaine", "PATIENT", "patient:1")
        initial = SurrogateGenerator(SECRET, vault).surrogate("Q. Zebulon", "PATIENT", "patient:2")
    with Vault(tmp_path / "v.db", KEY) as vault:
        gen = SurrogateGenerator(SECRET, vault)
        assert gen.surrogate("Z. Quartermaine", "PATIENT", "patient:1") == f"{full[0]}. {full.split()[1]}"
        given, surname = gen.surrogate("Quincy Zebulon", "PATIENT", "patient:2").split()
        assert given[0] == initial[0] and surname == initial.split()[1]
