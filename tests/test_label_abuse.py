"""``domainfm label`` used carelessly: malformed seeds and pools through the Python API, a pool
that is the seed file, blank or unannotated span seeds, one annotated seed among many. Each
gets one clear error naming the record or file (never its text), or counts that reconcile.

Made-up data only; the document label math runs on test_label's fake encoder, the span tagger
on the tiny BERT built from config (seconds, offline).
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from domainfm.corpus.document import Document, Span
from domainfm.errors import ConfigError, CorpusError, DomainFMError, RecordError
from domainfm.label import LabelConfig, check_labels, label_file, suggest_labels
from domainfm.label.assist import prepare_seeds
from domainfm.label.span_config import SpanLabelConfig
from domainfm.label.span_runner import label_spans_file
from domainfm.label.spans import suggest_spans, train_span_model
from test_label import FAST, FakeEncoder, _corpus

SECRET = "Zorblax Quintavius MRN 88123456"


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_api_refuses_non_documents_and_reads_a_generator_pool_once():
    seeds = _corpus(4, seed=1)
    pool = [Document(f"p{i}", d.text) for i, d in enumerate(_corpus(2, seed=2))]
    with pytest.raises(ConfigError, match="pool_docs must be Document objects"):
        suggest_labels(seeds, [{"id": "a", "text": SECRET}], LabelConfig(**FAST), encoder=FakeEncoder())
    with pytest.raises(ConfigError, match="labeled_docs must be Document objects"):
        check_labels([{"id": "a", "text": SECRET, "label": "x"}], LabelConfig(**FAST), encoder=FakeEncoder())
    # a generator used to fail after all the work (len() of it in the summary)
    result = suggest_labels(iter(seeds), (d for d in pool), LabelConfig(**FAST), encoder=FakeEncoder())
    assert result.summary["pool"]["read"] == len(pool) == len(result.suggestions)
    assert check_labels(iter(seeds), LabelConfig(**FAST), encoder=FakeEncoder()).summary["labeled"] == len(seeds)


@pytest.mark.parametrize("spans, needle", [
    ([Span(0, 999, "X")], "must satisfy 0 <= start < end <= len"),
    ([Span(-3, 4, "X")], "must satisfy 0 <= start < end <= len"),
    ([Span(0, 10, "X"), Span(5, 15, "X")], "cross each other"),
])
def test_span_api_refuses_seed_spans_past_the_text_or_crossing_naming_the_record(spans, needle):
    """suggest_spans took these and trained wrong tags in silence (no file reader to check them)."""
    seeds = [Document("seed-7", f"{SECRET} has flurbitis", spans=spans)]
    with pytest.raises(RecordError, match=needle) as err:
        suggest_spans(seeds, [Document("p", "flurbitis again")], SpanLabelConfig())
    assert "seed-7" in str(err.value) and "Zorblax" not in str(err.value)
    with pytest.raises(ConfigError, match="pool must be Document objects"):
        suggest_spans([Document("s", "flurbitis", spans=[Span(0, 9, "X")])], [{"id": "p", "text": SECRET}])


def test_a_blank_single_label_is_no_label_and_a_label_on_every_multi_seed_is_explained():
    seeds = _corpus(2, seed=1) + [Document("blank", "heart stent", label="   ")]
    prepared = prepare_seeds(seeds, LabelConfig(**FAST))
    assert "   " not in prepared.classes and prepared.skipped == {"no 'label'": 1}
    same = [Document(f"m{i}", d.text, labels=["x"]) for i, d in enumerate(_corpus(2, seed=1))]
    with pytest.raises(DomainFMError, match="not on every seed.*x=6"):
        prepare_seeds(same, LabelConfig(**FAST))


def test_a_pool_that_is_the_seed_file_is_refused_before_any_work(tmp_path):
    seeds = _write(tmp_path / "seeds.jsonl", [d.to_dict() for d in _corpus(2, seed=1)])
    (tmp_path / "link.jsonl").symlink_to(seeds)
    for pool in (seeds, tmp_path / "." / "seeds.jsonl", tmp_path / "link.jsonl"):
        with pytest.raises(CorpusError, match="is the --labeled file.*--check"):
            label_file(seeds, pool, tmp_path / "out.jsonl", LabelConfig(**FAST))
        with pytest.raises(CorpusError, match="is the --labeled file: the seeds would be suggested their own spans"):
            label_spans_file(seeds, pool, tmp_path / "out.jsonl")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.jsonl", "seeds.jsonl"]


def test_blank_span_seeds_are_rejected_and_counted_and_no_spans_at_all_names_the_file(tmp_path, monkeypatch):
    """A blank seed was counted as used although the tagger never trained on it."""
    from domainfm.label import spans

    trained_on = []

    def fake_suggest(seeds, pool, cfg, on_stage=None):
        trained_on.extend(d.id for d in seeds)
        return SimpleNamespace(rejected=[], records=lambda: [d.to_dict() for d in pool], docs=pool, labels=["X"],
                               spans=[[] for _ in pool], ranks=list(range(1, len(pool) + 1)),
                               scores=[0.0 for _ in pool],
                               summary={"labels": ["X"], "seed_documents": len(seeds), "seed_spans": 1,
                                        "suggested_spans": 0, "calibration": {}})

    monkeypatch.setattr(spans, "suggest_spans", fake_suggest)
    seeds = _write(tmp_path / "seeds.jsonl", [
        {"id": "s1", "text": "Dr Lee has flurbitis", "spans": [{"start": 11, "end": 20, "label": "X"}]},
        {"id": "s2", "text": " \r\n\t ", "spans": []},
        {"id": "s3", "text": "nothing to mark"}])
    pool = _write(tmp_path / "pool.jsonl", [{"id": "p1", "text": SECRET}])
    run = label_spans_file(seeds, pool, tmp_path / "out.jsonl")
    assert trained_on == ["s1", "s3"]
    assert (run.seeds.read, run.seeds.written, run.seeds.rejected) == (3, 2, 1)
    rejected = [json.loads(line) for line in run.rejects.read_text().splitlines()]
    assert [(r["id"], r["reason"]) for r in rejected] == [("s2", "seed: empty text (not used to train)")]
    assert json.loads(run.manifest.read_text())["counts"]["seeds"] == {
        "read": 3, "used": 2, "rejected": 1, "reconciles": True, "reject_reasons": {"empty text": 1}}

    unmarked = _write(tmp_path / "unmarked.jsonl", [{"id": "u1", "text": SECRET}, {"id": "u2", "text": " "}])
    with pytest.raises(DomainFMError, match=r"unmarked.jsonl: 2 records, 0 invalid, 1 blank, 0 with spans") as err:
        label_spans_file(unmarked, pool, tmp_path / "o2.jsonl")
    assert "Zorblax" not in str(err.value) and not (tmp_path / "o2.jsonl").exists()


def test_one_annotated_seed_among_plain_ones_trains_and_leaves_the_spanless_folds_out(tiny_model_dir):
    """The calibration fold that held the one annotated seed out had no span to learn from and
    stopped the whole run ("spans cover no word"); it is left out of the calibration instead."""
    text = "the patient with flurbitis and cough"
    start = text.index("flurbitis")
    seeds = [Document("s0", text, spans=[Span(start, start + 9, "Disease")])]
    seeds += [Document(f"s{i}", f"plain note number {i} about the weather") for i in range(1, 4)]
    cfg = SpanLabelConfig(encoder=str(tiny_model_dir), max_tokens=32, overlap=4, span_heads=False,
                          seed_lexicon=False, abbreviations=False, deid_prior="off", calibration_folds=2,
                          calibration_repeats=1)
    model = train_span_model(seeds, cfg)
    assert model.summary["calibration"]["folds_left_out"] == 1
    assert model.summary["seed_documents"] == 4


def test_a_misspelt_shipped_dictionary_is_named_with_the_likely_one(tmp_path):
    from domainfm.label.dictionaries import load_dictionary

    load_dictionary.cache_clear()
    with pytest.raises(DomainFMError, match=r"'diseasess' no such file \(did you mean 'diseases'\?\); give"):
        load_dictionary("diseasess")
    with pytest.raises(DomainFMError, match=r"no such file; give 'diseases'"):  # a path: no guess
        load_dictionary(str(tmp_path / "diseasess"))


@pytest.mark.parametrize("args, flags", [
    (("--task", "ner", "--lsa-dims", "0", "--method", "setfit"), "--method, --lsa-dims apply to document labels"),
    (("--dictionary", "diseases"), "--dictionary applies to span suggestions (--task ner)"),
])
def test_an_option_of_the_other_task_is_named_not_ignored(tmp_path, cli, args, flags):
    """`--task ner --method setfit` ran the span probe as if the option had not been given."""
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text('{"id": "a", "text": "Seen today.", "label": "x"}\n')
    result = cli("label", "--labeled", seeds, "--pool", seeds, "-o", tmp_path / "o.jsonl", *args)
    assert result.exit_code == 2 and flags in " ".join(result.output.split()), result.output
    assert not (tmp_path / "o.jsonl").exists()
