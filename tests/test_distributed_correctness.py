"""The engines' output equals one process's, checked exactly on made-up notes built to stress it:
patients with several notes each (a surname found in one note and left bare in the next, dates
to shift), PHI in ``meta``, empty texts, rejects, ids with tabs, quotes, slashes and emoji; and
the DataFrame API's reading of a table equals the file API's reading of the same rows.

``test_distributed`` checks the sample corpus; the cases here each once gave other output: a
table's ``location`` column vanished, a map column came as pairs (a ``meta`` map rejected every
row), timestamps and decimals took Spark's JSON form (and the session's time zone), and a table
with its own ``id`` and ``text`` columns beside ``id_col``/``text_col`` had the wrong text
de-identified."""

from __future__ import annotations

import datetime
import decimal
import json
from pathlib import Path

import pytest

from domainfm.deid.config import DeidConfig
from domainfm.deid.runner import deidentify_file, reidentify_file
from domainfm.distributed.core import record_from_columns
from test_distributed import _same_files, ray_local, spark, vault_key  # noqa: F401 (fixtures)

PATIENTS = [("P-001", "Amelia", "Quillfeather", "03/14/1961"), ("P/002 ü", "Jonas", "Vandersloot", "1958-07-02"),
            ("P-003", "Ngozi", "Okonkwo", "11/30/1975"), ("P-004", "Luca", "Marchetti", "02/02/1949"),
            ("P-005", "Hélène", "Delacroix", "1990-12-24")]


def _notes(path: Path) -> Path:
    """Three notes per patient, interleaved with notes of no patient, empty texts and rejects
    (broken JSON, a text that is a number, a span past the text, a repeated id)."""
    lines = []
    for p, (pid, first, last, dob) in enumerate(PATIENTS):
        lines.append({"id": f"{pid}#note 1", "meta": {
            "patient_id": pid, "patient_name": f"{first} {last}", "dob": dob, "note_type": "progress",
            "comment": f"Called {first} {last} at 617-555-01{p}{p}."},
            "text": f"Patient {first} {last} (DOB {dob}) seen by Dr. Farrow on 03/0{p + 1}/2021. MRN 4455{p}21. "
                    f"Lives in Springfield. Daughter Maria {last} visited."})
        lines.append({"id": f"{pid}\tnote\"2\"", "meta": {"patient_id": pid, "dob": dob},
                      "text": f"{last} stable. Follow-up 04/1{p}/2021 with Dr. Farrow. {last}'s wife called."})
    for p, (pid, first, last, _) in enumerate(PATIENTS):  # the third notes after every other patient's
        lines.append({"id": f"{pid}/n3-✓", "meta": {"patient_id": pid, "physician": "Dr. Farrow",
                                                    "remarks": f"{last} anxious"},
                      "text": f"Seen again on 5/{p + 2}/2021. {last} reports pain."})
    lines += [{"id": "solo 🙂", "text": "Mr. Bartholomew Zink seen 6/7/2020. Zink improving.", "meta": {}},
              {"id": "empty", "text": "", "meta": {"patient_id": "P-001"}},
              {"id": "blank", "text": "   \n  ", "meta": {"patient_id": "P-003"}},
              {"id": 42, "text": "Seen by Dr. Farrow 1/2/2020. Okonkwo.", "meta": {"patient_id": "P-003"}}]
    raw = [json.dumps(line, ensure_ascii=False) for line in lines]
    raw.insert(4, '{"id": "broken", "text": 7}')
    raw.insert(9, "{not json")
    raw.insert(12, json.dumps({"id": "badspan", "text": "Seen.", "spans": [{"start": 1, "end": 99, "label": "X"}]}))
    raw.append(raw[0])
    path.write_text("\n".join(raw) + "\n", encoding="utf-8")
    return path


def _engine(name: str, spark_session):
    if name == "spark":
        from domainfm.distributed.spark import SparkEngine

        return SparkEngine(session=spark_session, partitions=4)
    from domainfm.distributed.ray import RayEngine

    return RayEngine(2, buckets=4)


@pytest.mark.slow
@pytest.mark.parametrize("engine_name", ["spark", "ray"])
def test_the_engines_write_one_process_bytes_on_notes_built_to_differ(tmp_path, request, engine_name, vault_key):
    """Output, reject file, manifest counts and the restored notes are one process's, with the
    vault and with pseudonymised ids; the Parquet output holds the JSONL records as columns and
    reads back as the same documents."""
    import pyarrow.parquet as pq

    from domainfm.distributed.jobs import run_deid

    session = request.getfixturevalue("spark") if engine_name == "spark" else request.getfixturevalue("ray_local")
    engine = _engine(engine_name, session)
    src = _notes(tmp_path / "notes.jsonl")
    for name, options in {"plain": {}, "pseudo": {"pseudonymize_ids": True}}.items():
        one = deidentify_file(src, tmp_path / f"one-{name}.jsonl", DeidConfig(vault=str(tmp_path / f"one-{name}.db"),
                                                                              **options))
        dist = run_deid(src, tmp_path / f"dist-{name}.jsonl", DeidConfig(vault=str(tmp_path / f"dist-{name}.db"),
                                                                          **options), engine)
        for suffix in (".jsonl", ".rejects.jsonl"):
            assert _same_files(tmp_path / f"one-{name}{suffix}", tmp_path / f"dist-{name}{suffix}"), (name, suffix)
        assert json.loads(one.manifest.read_text())["counts"] == json.loads(dist.manifest.read_text())["counts"]
        assert dist.counts.rejected == 4 and dist.counts.written == 19
        for who in ("one", "dist"):
            reidentify_file(tmp_path / f"{who}-{name}.jsonl", tmp_path / f"{who}-{name}.back.jsonl",
                            tmp_path / f"{who}-{name}.db")
        assert _same_files(tmp_path / f"one-{name}.back.jsonl", tmp_path / f"dist-{name}.back.jsonl")
    # the surname of each patient's first note is gone from the later ones, whatever the partition
    output = (tmp_path / "dist-plain.jsonl").read_text(encoding="utf-8")
    assert not any(last in output for _, _, last, _ in PATIENTS)

    run_deid(src, tmp_path / "dist.parquet", DeidConfig(), engine, seed=3)
    deidentify_file(src, tmp_path / "one.jsonl", DeidConfig(), seed=3)
    expected = [json.loads(line) for line in (tmp_path / "one.jsonl").open(encoding="utf-8")]
    table = pq.read_table(tmp_path / "dist.parquet")
    assert table.schema.names == ["id", "text", "meta", "label", "labels", "spans", "phi_spans"]
    rows = table.to_pylist()
    assert [{**r, **{k: json.loads(r[k]) for k in ("meta", "spans", "phi_spans")}} for r in rows] == expected
    back = run_deid(tmp_path / "dist.parquet", tmp_path / "again.jsonl", DeidConfig(operator="tag"), engine)
    deidentify_file(tmp_path / "one.jsonl", tmp_path / "one-again.jsonl", DeidConfig(operator="tag"))
    assert back.counts.rejected == 0 and _same_files(tmp_path / "one-again.jsonl", tmp_path / "again.jsonl")


def test_table_columns_named_location_order_or_scope_stay_in_meta():
    """They were dropped without a word (names the engine's own rows once used): a ward in a
    ``location`` column, a lab ``order`` number."""
    record = record_from_columns({"id": "a", "text": "x", "location": "Ward 5B", "order": 3, "scope": "ICU",
                                  "mrn": "77"}, patient_col="mrn")
    assert record["meta"] == {"location": "Ward 5B", "order": 3, "scope": "ICU", "patient_id": "77"}


def test_a_tables_own_id_and_text_columns_are_meta_when_id_col_and_text_col_name_others():
    """``deidentify_dataframe(df, id_col="note_id", text_col="note")`` on a table that also has
    ``id`` and ``text`` columns de-identified the ``text`` column under the ``id`` column's value:
    the note itself was never read."""
    from domainfm.distributed.spark import _unpack

    packed = json.dumps({"_id": "n1", "_text": "Seen by Dr. Farrow.", "_x_id": "row-1", "_x_text": "summary",
                         "_x_mrn": "P1"})
    record = _unpack(packed, "mrn")
    assert (record["id"], record["text"]) == ("n1", "Seen by Dr. Farrow.")
    assert record["meta"] == {"id": "row-1", "text": "summary", "patient_id": "P1"}


@pytest.mark.slow
def test_a_parquet_map_column_is_an_object_in_meta(tmp_path):
    """pyarrow gives a map as a list of pairs: a ``meta`` map column (as Spark writes a table's
    ``map<string,string>``) rejected every row, and another map column reached ``meta`` as pairs
    where the DataFrame API gives an object."""
    pa = pytest.importorskip("pyarrow", reason="pip install 'domainfm[spark]' (.ci/run installs it)")
    import pyarrow.parquet as pq

    from domainfm.corpus.io import Counts, CountingRejects
    from domainfm.distributed.jobs import stage_input

    string_map = pa.map_(pa.string(), pa.string())
    pq.write_table(pa.table({"id": ["a", "b"], "text": ["Seen.", "Seen again."],
                             "meta": pa.array([[("patient_id", "P1")], [("patient_id", "P1"), ("ward", "5B")]],
                                              string_map),
                             "codes": pa.array([[("icd", "I10"), ("icd", "E11")], []], string_map)}),
                   tmp_path / "notes.parquet")
    rejects = []
    sent = stage_input(tmp_path / "notes.parquet", tmp_path / "staged",
                       CountingRejects(type("Kept", (list,), {"write": list.append})(), Counts(), rejects))
    staged = pq.read_table(tmp_path / "staged").to_pylist()
    assert sent == 2 and not rejects
    assert [json.loads(r["doc"])["meta"] for r in staged] == [{"patient_id": "P1", "codes": {"icd": "E11"}},
                                                              {"patient_id": "P1", "ward": "5B", "codes": {}}]
    assert [r["scope"] for r in staged] == ["patient:P1", "patient:P1"]


@pytest.mark.slow
def test_the_dataframe_api_reads_a_table_as_the_file_api_reads_its_parquet(tmp_path, spark, vault_key):
    """The same Parquet rows through ``deidentify_dataframe(spark.read.parquet(...))`` and through
    ``domainfm deid --engine spark`` give the same records: columns named ``location`` kept,
    timestamps as Python's ISO text in UTC (not Spark's JSON form in the session's time zone),
    naive timestamps as written, decimals as their exact text (not floats), maps as objects."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from domainfm.distributed.jobs import run_deid
    from domainfm.distributed.spark import SparkEngine, deidentify_dataframe

    pq.write_table(pa.table({
        "id": ["a", "b", "c"],
        "text": ["Patient Amelia Quillfeather seen by Dr. Farrow on 3/4/2021.", "Quillfeather stable.",
                 "Seen by Dr. Farrow."],
        "patient_id": ["P1", "P1", "P2"],
        "location": ["Ward 5B", "ICU", None],
        "order": [17, 18, 19],
        "admission_date": pa.array([datetime.datetime(2021, 3, 4, 10, 30)] * 3, pa.timestamp("us")),
        "signed_at": pa.array([datetime.datetime(2021, 3, 4, 10, 30, 0, 500000), None, None],
                              pa.timestamp("us", tz="UTC")),
        "charge": pa.array([decimal.Decimal("12.50"), decimal.Decimal("0.10"), None], pa.decimal128(10, 2)),
        "codes": pa.array([[("icd", "I10")], [], None], pa.map_(pa.string(), pa.string())),
    }), tmp_path / "notes.parquet")
    result = run_deid(tmp_path / "notes.parquet", tmp_path / "file.jsonl", DeidConfig(), SparkEngine(session=spark),
                      seed=5)
    expected = [json.loads(line) for line in (tmp_path / "file.jsonl").open(encoding="utf-8")]
    assert result.counts.written == 3 and "Quillfeather" not in (tmp_path / "file.jsonl").read_text()
    assert expected[0]["meta"]["location"] == "Ward 5B" and expected[0]["meta"]["charge"] == "12.50"
    assert expected[0]["meta"]["signed_at"] == "2021-03-04T10:30:00.500000+00:00"

    from domainfm.deid.runner import surrogate_secret

    secret, _ = surrogate_secret(DeidConfig(), 5)
    previous = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "America/New_York")  # a cluster's zone changes nothing
    try:
        rows = deidentify_dataframe(spark.read.parquet(str(tmp_path / "notes.parquet")), config=DeidConfig(),
                                    secret=secret, partitions=2).collect()
    finally:
        spark.conf.set("spark.sql.session.timeZone", previous)
    got = [json.loads(r["payload"]) for r in sorted(rows, key=lambda r: r["order"]) if r["kind"] == "record"]
    assert got == expected

    # a table whose own id and text columns are not the note's
    table = spark.createDataFrame([("n1", "Seen by Dr. Farrow.", "row-1", "summary", "P1")],
                                  "note_id string, note string, id string, text string, mrn string")
    rows = deidentify_dataframe(table, config=DeidConfig(operator="tag"), id_col="note_id", text_col="note",
                                patient_col="mrn").collect()
    (record,) = [json.loads(r["payload"]) for r in rows if r["kind"] == "record"]
    assert (record["id"], record["text"]) == ("n1", "Seen by Dr. [DOCTOR].")
    assert record["meta"] == {"id": "row-1", "text": "summary", "patient_id": "P1"}
