"""Term dictionaries for the span probe: matching, sources, errors, and that the probe learns
from the seeds to use them (tiny encoder built from a config)."""

from __future__ import annotations

import pytest

from domainfm.corpus.document import Document, Span
from domainfm.errors import ConfigError, DomainFMError
from domainfm.label.dictionaries import dictionary_columns, load_dictionary
from domainfm.label.lexicon import words
from domainfm.label.span_config import SpanLabelConfig

# made-up conditions: no dictionary or dataset holds them, so only a term file can name them
TERMS = ["zorbitis", "quellar vantrosis", "plinx-related merodemia", "dravoma", "kestulosis", "ombrian fever",
         "tessalgia", "furnox palsy"]


@pytest.fixture()
def term_file(tmp_path):
    path = tmp_path / "site-terms.txt"
    path.write_text("# a site's own vocabulary\n" + "\n".join(TERMS) + "\nqv\n\n", encoding="utf-8")
    load_dictionary.cache_clear()
    return path


def test_matches_whole_words_longest_first_in_any_case(term_file):
    book = load_dictionary(str(term_file))
    assert book.name == "site-terms.txt" and len(book) == len(TERMS)  # "qv" is too short to be an entry
    text = "Quellar vantrosis, then Plinx-related merodemia; no zorbitisx and no quellar."
    found = [text[a:z] for a, z in book.find(text)]
    assert found == ["Quellar vantrosis", "Plinx-related merodemia"]
    spans = words(text)  # find() reports what matches() finds on the same words
    assert [(spans[i][0], spans[i + n - 1][1]) for i, n in book.matches([text[a:z] for a, z in spans])] == book.find(text)
    flags = book.flags(["plinx", "-", "related", "merodemia", "and", "dravoma"])
    assert flags.tolist() == [[1, 0], [0, 1], [0, 1], [0, 1], [0, 0], [1, 0]]
    # two matches side by side stay two matches: each start is marked
    assert book.flags(["dravoma", "dravoma"]).tolist() == [[1, 0], [1, 0]]


def test_entries_the_seeds_leave_unmarked_are_dropped_for_that_run(term_file):
    import numpy as np

    book = load_dictionary(str(term_file))
    # tags: 0 O, 1 B, 2 I. "dravoma" occurs three times, marked once; "tessalgia" twice, marked
    # both times; "zorbitis" once, unmarked (too little evidence to drop); "ombrian fever"
    # marked twice, but once only its first word (not exactly the entry)
    chunks = [(["dravoma", "and", "tessalgia"], np.array([1, 0, 1])),
              (["dravoma", "dravoma", "zorbitis"], np.array([0, 0, 0])),
              (["tessalgia", "ombrian", "fever"], np.array([1, 1, 0])),
              (["ombrian", "fever", "today"], np.array([1, 2, 0]))]
    kept = book.consistent_with(chunks)
    assert ("dravoma",) not in kept.entries and ("ombrian", "fever") in kept.entries
    assert {("tessalgia",), ("zorbitis",)} <= kept.entries and len(kept) == len(book) - 1
    assert book.consistent_with(chunks[:1]) is book  # nothing contradicted: the same dictionary


def test_probe_columns_are_two_per_dictionary_times_the_scale(term_file):
    book = load_dictionary(str(term_file))
    cols = dictionary_columns([book, book], ["tessalgia", "today"], 3.0)
    assert cols.tolist() == [[3, 0, 3, 0], [0, 0, 0, 0]]
    assert dictionary_columns([], ["a", "b"], 3.0).shape == (2, 0)


def test_shipped_dictionaries_load_from_their_packages():
    diseases = load_dictionary("diseases")
    assert len(diseases) > 50_000
    assert {("kwashiorkor",), ("pellagra",), ("beriberi",)} <= diseases.entries
    assert load_dictionary("drugs").flags(["took", "Tinidazole"]).tolist() == [[0, 0], [1, 0]]


def test_dictionary_errors_name_the_file_and_what_is_expected(tmp_path):
    load_dictionary.cache_clear()
    with pytest.raises(DomainFMError, match="no such file; give 'diseases' or 'drugs' or a text file"):
        load_dictionary(str(tmp_path / "disease"))
    with pytest.raises(DomainFMError, match="is a folder"):
        load_dictionary(str(tmp_path))
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("caf\xe9 fever\n".encode("latin-1"))
    with pytest.raises(DomainFMError, match="not UTF-8 text.*one term per line"):
        load_dictionary(str(latin))
    short = tmp_path / "short.txt"
    short.write_text("# only short ones\nab\nc\n", encoding="utf-8")
    with pytest.raises(DomainFMError, match="no term of 3 characters or more"):
        load_dictionary(str(short))


def test_dictionary_settings_are_checked():
    assert SpanLabelConfig(dictionaries="diseases").dictionaries == ("diseases",)
    assert SpanLabelConfig(dictionaries=["diseases", "drugs"]).dictionaries == ("diseases", "drugs")
    with pytest.raises(ConfigError, match="'dictionaries'.*method 'probe' only"):
        SpanLabelConfig(method="finetune", dictionaries=("diseases",))
    with pytest.raises(ConfigError, match="'dictionaries' parameter must be a list"):
        SpanLabelConfig(dictionaries=[3])
    with pytest.raises(ConfigError, match="'dictionary_scale'.*\\(0, 100\\]"):
        SpanLabelConfig(dictionary_scale=0)


SEED_TEMPLATES = ("{a} with {t} and {b}", "{t} seen in {a} and {b}", "{a} and {b} with {t}")
# places no seed shows a term in: the words around it teach the probe nothing there
POOL_TEMPLATES = ("{a}: {t}, {b}", "{b} {t} {a}")


def _notes(terms, first: int, templates=SEED_TEMPLATES) -> list[Document]:
    """Each term in one of several places, so where a word stands says little about it."""
    fillers = ["the patient", "arm pain", "chest", "notice", "court", "agreement", "party", "state"]
    docs = []
    for i, term in enumerate(terms):
        a, b = fillers[i % len(fillers)], fillers[(3 * i + 1) % len(fillers)]
        text = templates[i % len(templates)].format(a=a, b=b, t=term)
        start = text.index(term)
        docs.append(Document(f"n{first + i}", text, spans=[Span(start, start + len(term), "Disease")]))
    return docs


def test_the_probe_learns_from_the_seeds_to_trust_a_dictionary(term_file, tiny_model_dir):
    from domainfm.label.spans import predict_spans, train_span_model

    # the seeds mark four of the terms; the pool holds the four others, which no seed shows
    seeds = _notes(TERMS[:4] * 3, 0)
    pool = [Document(d.id, d.text) for d in _notes(TERMS[4:] * 2, 100, POOL_TEMPLATES)]
    gold = {(d.id, s.start, s.end) for d in _notes(TERMS[4:] * 2, 100, POOL_TEMPLATES) for s in d.spans}
    base = dict(encoder=str(tiny_model_dir), max_tokens=32, overlap=4, span_heads=False, seed_lexicon=False,
                abbreviations=False, deid_prior="off", spelling_dims=0, calibration_folds=0, decision_shift=0.0)

    def found(cfg):
        result = predict_spans(train_span_model(seeds, cfg), pool, cfg)
        return {(d.id, s.start, s.end) for d, spans in zip(result.docs, result.spans) for s in spans}

    with_book = found(SpanLabelConfig(**base, dictionaries=(str(term_file),), dictionary_scale=10.0))
    without = found(SpanLabelConfig(**base))
    assert with_book == gold
    assert len(without & gold) < len(gold) / 2


def test_label_command_takes_dictionaries_and_records_their_origin(tmp_path, cli, term_file, tiny_model_dir):
    import json

    from domainfm.corpus.io import write_documents

    write_documents(tmp_path / "seeds.jsonl", _notes(TERMS[:4] * 3, 0))
    write_documents(tmp_path / "pool.jsonl", [Document(d.id, d.text) for d in _notes(TERMS[4:], 100, POOL_TEMPLATES)])
    args = ("label", "--task", "ner", "--labeled", tmp_path / "seeds.jsonl", "--pool", tmp_path / "pool.jsonl",
            "--encoder", tiny_model_dir, "--deid-prior", "off")
    result = cli(*args, "-o", tmp_path / "out.jsonl", "--dictionary", term_file)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out.manifest.json").read_text())
    assert manifest["config"]["spans"]["dictionaries"] == [str(term_file)]
    (book,) = manifest["summary"]["dictionaries"]
    assert book["name"] == "site-terms.txt" and book["entries"] == len(TERMS) and book["origin"].startswith("sha256:")
    (edges,) = manifest["summary"]["dictionary_edges"]  # the seeds mark whole names: their edges are trusted
    assert edges["labels"]["Disease"]["widens"] and edges["labels"]["Disease"]["seed_spans_equal"] == 12
    assert "zorbitis" not in (tmp_path / "out.manifest.json").read_text()  # counts, not terms

    missing = cli(*args, "-o", tmp_path / "x.jsonl", "--dictionary", tmp_path / "nowhere.txt")
    assert missing.exit_code != 0 and "nowhere.txt' no such file" in missing.output
    assert "Traceback" not in missing.output
    tuned = cli(*args, "-o", tmp_path / "y.jsonl", "--dictionary", "diseases", "--span-method", "finetune")
    assert tuned.exit_code != 0 and "method 'probe' only" in tuned.output



def _doc(i: int, text: str, *marked: tuple[str, str]) -> Document:
    spans = []
    for surface, label in marked:
        start = text.index(surface)
        spans.append(Span(start, start + len(surface), label))
    return Document(f"d{i}", text, spans=spans)


def test_a_span_cut_short_inside_a_dictionary_name_takes_the_names_edges(term_file):
    from domainfm.label.dictionary_edges import MIN_AGREE, DictionaryEdges

    book = load_dictionary(str(term_file))
    # the seeds mark whole dictionary names as Disease (and once only part of one), and mark
    # Symptom spans inside names, which the rule must then never widen
    seeds = [_doc(i, f"Seen with {t} and {o}.", (t, "Disease"), (o.split()[0], "Symptom"))
             for i, (t, o) in enumerate(zip(TERMS[:4], ["ombrian fever", "ombrian fever", "furnox palsy",
                                                        "furnox palsy"]))]
    seeds.append(_doc(9, "Then quellar vantrosis again.", ("vantrosis", "Disease")))
    rule = DictionaryEdges.fit(seeds, ["Disease", "Symptom"], [book])
    (entry,) = rule.summary
    assert entry["dictionary"] == "site-terms.txt"
    summary = entry["labels"]
    assert summary["Disease"] == {"seed_spans_equal": 4, "seed_spans_inside": 1, "widens": True}
    assert summary["Symptom"] == {"seed_spans_equal": 0, "seed_spans_inside": 4, "widens": False}
    assert "zorbitis" not in str(rule.summary)  # counts, not terms

    text = "Quellar vantrosis; plinx-related merodemia and furnox palsy, zorbitis."
    at = {w: (text.index(w), text.index(w) + len(w)) for w in ("vantrosis", "plinx", "merodemia", "furnox",
                                                                 "zorbitis", "Quellar vantrosis")}
    spans = [(*at["vantrosis"], "Disease", 0.6), (*at["plinx"], "Disease", 0.4), (*at["merodemia"], "Disease", 0.7),
             (*at["furnox"], "Symptom", 0.5), (*at["zorbitis"], "Disease", 0.9)]
    widened = rule.widen(text, spans)
    name = text.index("plinx-related merodemia")
    assert widened == sorted([(*at["Quellar vantrosis"], "Disease", 0.6),  # widened to the name
                              (name, name + len("plinx-related merodemia"), "Disease", 0.7),  # two parts: one span
                              (*at["furnox"], "Symptom", 0.5),  # Symptom: the seeds never agreed
                              (*at["zorbitis"], "Disease", 0.9)])  # already the whole name
    # a span that crosses the name's edge, or one of another label inside it, keeps it as it is
    crossing = [(at["vantrosis"][0], at["vantrosis"][1] + 1, "Disease", 0.5)]
    assert rule.widen(text, crossing) == crossing
    mixed = [(*at["plinx"], "Disease", 0.4), (*at["merodemia"], "Symptom", 0.7)]
    assert rule.widen(text, mixed) == mixed
    # too few seeds agreeing, or no dictionary: no rule
    assert DictionaryEdges.fit(seeds[:MIN_AGREE - 1], ["Disease"], [book]) is None
    assert DictionaryEdges.fit(seeds, ["Disease"], []) is None
