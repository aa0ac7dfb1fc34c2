"""Edges of the labeling loop: a pool document that is a seed already, a pool document with no
letters or digits, a label holding the CSV's separator, ``labels: []`` in the pipeline stage, and
the reason ``--check`` gives for each record it does not check.

Made-up data only; the label math runs on test_label's fake encoder (seconds, offline). Ids and
texts that look like record numbers must never reach a message, a note or a console line.
"""

from __future__ import annotations

import csv
import json

import pytest

from domainfm.corpus.document import Document
from domainfm.errors import ConfigError
from domainfm.label import LabelConfig, check_labels, label_file, suggest_labels
from domainfm.label.export import write_export
from domainfm.label.stage import LabelSection, result_of
from domainfm.label.stage import run as run_stage
from test_label import FAST, FakeEncoder, _corpus

SECRET_ID = "MRN-88123456"
SECRET_TEXT = "Zorblax Quintavius heart stent troponin"


@pytest.fixture()
def fake_encoder(monkeypatch):
    """label_file, the stage and the CLI embed with the fake encoder instead of MiniLM."""
    from domainfm.label import assist

    monkeypatch.setattr(assist, "get_encoder", lambda cfg: FakeEncoder())


def _write(path, docs):
    path.write_text("".join(json.dumps(d.to_dict() if isinstance(d, Document) else d) + "\n" for d in docs),
                    encoding="utf-8")
    return path


def _rejects(run) -> list[dict]:
    return [json.loads(line) for line in run.rejects.read_text(encoding="utf-8").splitlines()]


def _said(run, **kw) -> str:
    """Everything a label run puts on the console besides the counts line."""
    result = result_of(run, **kw)
    return "\n".join([*result.notes, *result.warnings, *result.first_rejects])


# ------------------------------------------------------------- a pool document that is a seed

def _seeds_and_overlapping_pool():
    seeds = _corpus(4, seed=1)
    seeds[0] = Document(SECRET_ID, SECRET_TEXT, label="cardio")
    fresh = [Document(f"p{i}", d.text) for i, d in enumerate(_corpus(2, seed=2))]
    pool = [fresh[0],
            Document(SECRET_ID, SECRET_TEXT),  # the seed again, without its label
            Document(seeds[1].id, "Zorblax liver colon ulcer"),  # another document under a seed's id
            *fresh[1:]]
    return seeds, pool, fresh


def test_a_pool_document_that_is_a_seed_is_left_out_and_an_id_collision_is_rejected(fake_encoder, tmp_path):
    """A pool document that was also a seed got a suggestion and could top the "annotate next"
    queue; another document under a seed's id was suggested too, and the two became one id."""
    seeds, pool, fresh = _seeds_and_overlapping_pool()
    _write(tmp_path / "seeds.jsonl", seeds)
    _write(tmp_path / "pool.jsonl", pool)
    run = label_file(tmp_path / "seeds.jsonl", tmp_path / "pool.jsonl", tmp_path / "out.jsonl", LabelConfig(**FAST))
    assert (run.counts.read, run.counts.written, run.counts.rejected) == (len(pool), len(fresh), 2)
    assert run.counts.reasons == {"already labelled": 1, "id collision with a seed": 1}
    written = [json.loads(line)["id"] for line in run.out.read_text().splitlines()]
    assert written == [d.id for d in fresh]
    by_location = {r["location"]: r["reason"] for r in _rejects(run)}
    assert by_location["pool.jsonl:2"].startswith("already labelled") and "seeds.jsonl:1" in by_location["pool.jsonl:2"]
    assert by_location["pool.jsonl:3"].startswith("id collision") and "seeds.jsonl:2" in by_location["pool.jsonl:3"]
    summary = json.loads(run.manifest.read_text())["summary"]
    assert summary["pool"]["already_labelled"] == 1 and summary["pool"]["id_collisions"] == 1
    warnings = " ".join(result_of(run).warnings)
    assert "1 pool document is a seed already" in warnings and "1 pool document has the id of a seed" in warnings
    said = _said(run) + " ".join(r for r in by_location.values())
    assert SECRET_ID not in said and "Zorblax" not in said and seeds[1].id not in said

    # the Python API leaves out and rejects the same documents, naming the seed's position
    api = suggest_labels(seeds, pool, LabelConfig(**FAST), encoder=FakeEncoder())
    assert [d.id for d in api.docs] == [d.id for d in fresh]
    reasons = [why for _, why in api.rejected]
    assert reasons[0].startswith("already labelled") and "labeled_docs[0]" in reasons[0]
    assert reasons[1].startswith("id collision") and "labeled_docs[1]" in reasons[1]
    assert api.summary["pool"]["already_labelled"] == 1 and api.summary["pool"]["id_collisions"] == 1


def test_the_cli_warns_about_pool_documents_that_are_seeds_without_naming_them(fake_encoder, cli, tmp_path):
    seeds, pool, fresh = _seeds_and_overlapping_pool()
    _write(tmp_path / "seeds.jsonl", seeds)
    _write(tmp_path / "pool.jsonl", pool)
    res = cli("label", "--labeled", tmp_path / "seeds.jsonl", "--pool", tmp_path / "pool.jsonl",
              "-o", tmp_path / "out.jsonl", "--lsa-dims", "0")
    output = " ".join(res.output.split())
    assert res.exit_code == 0, res.output
    assert f"read {len(pool)} = written {len(fresh)} + rejected 2" in output
    assert "warning: 1 pool document is a seed already" in output and "pool.jsonl:2" in output
    assert SECRET_ID not in output and "Zorblax" not in output and seeds[1].id not in output


def test_a_seed_without_a_label_is_no_reason_to_leave_its_pool_copy_out():
    """Only a labelled seed makes its pool copy "already labelled"; an unlabelled one is no label."""
    seeds = _corpus(3, seed=1) + [Document("u1", "heart and liver")]
    result = suggest_labels(seeds, [Document("u1", "heart and liver")], LabelConfig(**FAST), encoder=FakeEncoder())
    assert [d.id for d in result.docs] == ["u1"] and not result.rejected


# ------------------------------------------------------------- no letters or digits

@pytest.mark.parametrize("text", ["\U0001F600\U0001F600 !!! ...", " --- ** ", "\u00bf? \u2014 \u2764\ufe0f"])
def test_a_pool_document_without_letters_or_digits_gets_no_suggestion(fake_encoder, tmp_path, text):
    """Emoji and punctuation alone were given a label at 0.87 confidence."""
    seeds = _corpus(4, seed=1)
    pool = [Document("p1", seeds[0].text), Document("p2", text), Document("p3", "\u5fc3\u81d3 12"),
            Document("p4", "2024")]
    result = suggest_labels(seeds, pool, LabelConfig(**FAST), encoder=FakeEncoder())
    assert [d.id for d in result.docs] == ["p1", "p3", "p4"]  # CJK letters and digits are text
    assert [(d.id, why.split(" (")[0]) for d, why in result.rejected] == [("p2", "no letters or digits")]
    _write(tmp_path / "seeds.jsonl", seeds)
    _write(tmp_path / "pool.jsonl", pool)
    run = label_file(tmp_path / "seeds.jsonl", tmp_path / "pool.jsonl", tmp_path / "out.jsonl", LabelConfig(**FAST))
    assert (run.counts.read, run.counts.written, run.counts.rejected) == (4, 3, 1) and run.counts.reconciles
    assert [(r["location"], r["id"]) for r in _rejects(run)] == [("pool.jsonl:2", "p2")]


# ------------------------------------------------------------- the CSV's label separator

def _piped_seeds():
    return [Document(d.id, d.text, label="cardio|heart" if d.label == "cardio" else d.label)
            for d in _corpus(4, seed=1)]


def test_the_csv_export_refuses_a_label_holding_its_separator_before_any_work(fake_encoder, tmp_path):
    """'cardio|heart' and the labels 'cardio', 'heart' were one cell: the spreadsheet, and
    'domainfm import csv --labels-col labels', could not tell them apart."""
    seeds = _piped_seeds()
    pool = [Document(f"p{i}", d.text) for i, d in enumerate(_corpus(2, seed=2))]
    result = suggest_labels(seeds, pool, LabelConfig(**FAST), encoder=FakeEncoder())
    with pytest.raises(ConfigError, match=r"label 'cardio\|heart' holds '\|'.*rename the label.*labelstudio"):
        write_export("csv", tmp_path / "s.csv", result.docs, result.suggestions, classes=result.classes,
                     multilabel=False, model_version="v1")
    assert not (tmp_path / "s.csv").exists()
    # the other exports keep labels as lists: no separator to mistake
    write_export("prodigy", tmp_path / "s.prodigy.jsonl", result.docs, result.suggestions, classes=result.classes,
                 multilabel=False, model_version="v1")
    _write(tmp_path / "seeds.jsonl", seeds)
    _write(tmp_path / "pool.jsonl", pool)
    with pytest.raises(ConfigError, match=r"--export csv: the label 'cardio\|heart' holds '\|'"):
        label_file(tmp_path / "seeds.jsonl", tmp_path / "pool.jsonl", tmp_path / "out.jsonl", LabelConfig(**FAST),
                   exports=["csv"])
    assert not (tmp_path / "out.jsonl").exists()


def test_csv_labels_still_join_with_the_separator_and_never_start_a_formula(tmp_path):
    seeds = [Document(d.id, d.text, labels=[{"cardio": "=cmd", "neuro": "neuro", "gastro": "gastro"}[d.label]]
                      + (["+follow"] if i % 2 else [])) for i, d in enumerate(_corpus(4, seed=1))]
    pool = [Document(f"p{i}", d.text) for i, d in enumerate(_corpus(2, seed=2))]
    result = suggest_labels(seeds, pool, LabelConfig(**FAST), encoder=FakeEncoder())
    path = write_export("csv", tmp_path / "s.csv", result.docs, result.suggestions, classes=result.classes,
                        multilabel=True, model_version="v1")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    cells = [v for row in rows for v in row.values()]
    assert not any(c.startswith(("=", "+", "-", "@")) for c in cells)
    assert any(c.startswith("'=cmd") for c in cells)


# ------------------------------------------------------------- labels: [] in the pipeline stage

def _stage_input(tmp_path, rows):
    path = tmp_path / "corpus.jsonl"
    _write(path, rows)
    out = tmp_path / "label" / "suggestions.jsonl"
    out.parent.mkdir()
    return path, out


def _ids(path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


def test_the_stage_reads_an_empty_labels_list_as_a_labelled_negative(fake_encoder, tmp_path):
    """``labels: []`` (Label Studio's multi-choice task answered with no choice, Prodigy's
    ``choice_style: multiple`` accepted with none) says that none of the labels applies: a seed.
    The stage put it in the pool, where it was suggested a label it had been told it has not."""
    rows = []
    for i, d in enumerate(_corpus(4, seed=1)):
        if d.label == "gastro":
            rows.append({"id": d.id, "text": d.text, "labels": []})
        else:
            rows.append({"id": d.id, "text": d.text, "labels": [d.label]})
    pool = [{"id": f"p{i}", "text": d.text} for i, d in enumerate(_corpus(2, seed=2))]
    corpus, out = _stage_input(tmp_path, rows + pool)
    run_stage(LabelSection(exports=[]), [corpus], out)
    assert _ids(out.parent / "pool.jsonl") == [r["id"] for r in pool]
    assert _ids(out.parent / "seeds.jsonl") == [r["id"] for r in rows]
    manifest = json.loads(out.with_name("suggestions.manifest.json").read_text())
    assert manifest["counts"]["seeds"]["used"] == len(rows)  # the negatives trained too
    assert manifest["summary"]["task"] == "multi"


def test_the_stage_puts_a_blank_single_label_in_the_pool(fake_encoder, tmp_path):
    """A blank 'label' is no label (the seeds reject it): the document belongs in the pool."""
    rows = [d.to_dict() for d in _corpus(3, seed=1)]
    rows.append({"id": "blank", "text": "heart liver", "label": "  "})
    rows.append({"id": "none", "text": "stroke colon", "labels": []})  # no 'label' in a single-label set
    corpus, out = _stage_input(tmp_path, rows)
    run_stage(LabelSection(exports=[]), [corpus], out)
    assert _ids(out.parent / "pool.jsonl") == ["blank", "none"]


def test_a_stage_without_a_pool_explains_that_an_empty_labels_list_is_a_label(fake_encoder, tmp_path):
    rows = [{"id": d.id, "text": d.text, "labels": [d.label] if d.label != "gastro" else []}
            for d in _corpus(3, seed=1)]
    corpus, out = _stage_input(tmp_path, rows)
    with pytest.raises(ConfigError, match=r"3 of them with 'labels': \[\] \(none of the labels applies\)"):
        run_stage(LabelSection(exports=[]), [corpus], out)


# ------------------------------------------------------------- --check: why a record is not checked

def test_check_gives_each_record_it_skips_its_own_reason_and_counts_them(fake_encoder, tmp_path):
    docs = _corpus(4, seed=5) + [
        Document("e1", " \n ", label="cardio"),
        Document(SECRET_ID, SECRET_TEXT),
        Document("r1", "kidney renal", label="nephro"),
        Document("r2", "renal stone", label="  "),
    ]
    _write(tmp_path / "labeled.jsonl", docs)
    run = label_file(tmp_path / "labeled.jsonl", None, tmp_path / "checked.jsonl", LabelConfig(**FAST), check=True)
    by_location = {r["location"]: r["reason"] for r in _rejects(run)}
    n = len(docs) - 4
    assert by_location == {f"labeled.jsonl:{n + 1}": "not checked: empty text",
                           f"labeled.jsonl:{n + 2}": "not checked: no 'label'",
                           f"labeled.jsonl:{n + 3}": "not checked: label with fewer than 2 seeds",
                           f"labeled.jsonl:{n + 4}": "not checked: no 'label'"}
    assert run.counts.reasons == {"not checked: empty text": 1, "not checked: no 'label'": 2,
                                  "not checked: label with fewer than 2 seeds": 1}
    assert run.summary["not_checked"] == {"empty text": 1, "no 'label'": 2, "label with fewer than 2 seeds": 1}
    said = _said(run, check=True)
    assert "not checked: no 'label': 2, empty text: 1, label with fewer than 2 seeds: 1" in said
    assert SECRET_ID not in said and "Zorblax" not in said
    # the Python API names the same records and reasons
    api = check_labels(docs, LabelConfig(**FAST), encoder=FakeEncoder())
    assert [(d.id, why) for d, why in api.skipped] == [("e1", "empty text"), (SECRET_ID, "no 'label'"),
                                                      ("r2", "no 'label'"), ("r1", "label with fewer than 2 seeds")]


def test_a_multilabel_check_names_a_missing_labels_field():
    docs = [Document(d.id, d.text, labels=[d.label]) for d in _corpus(4, seed=5)]
    docs.append(Document("x", "heart liver", label="cardio"))
    result = check_labels(docs, LabelConfig(**FAST, task="multi"), encoder=FakeEncoder())
    assert result.summary["not_checked"] == {"no 'labels' field": 1}
    assert [(d.id, why) for d, why in result.skipped] == [("x", "no 'labels' field")]
