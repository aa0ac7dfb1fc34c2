"""Few-shot span suggestions: tagging, decoding, ranking units (fast) and the whole command on
the embedded encoder (slow)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from domainfm.corpus.document import Document, Span
from domainfm.corpus.io import write_documents
from domainfm.errors import ConfigError
from domainfm.label.active import rank_scores, uncertainty
from domainfm.label.span_config import SpanLabelConfig
from domainfm.label.span_tagger import WordChunk
from domainfm.label.spans import _merge_chunk_spans, decode, one_layer, overlapped_spans, tag_names, word_tags
from test_label_correctness import _tags, _words


def _chunk(text: str) -> WordChunk:
    starts, ends, pos = [], [], 0
    for w in text.split(" "):
        starts.append(pos)
        ends.append(pos + len(w))
        pos += len(w) + 1
    return WordChunk(0, np.array(starts), np.array(ends), np.arange(len(starts)), None, len(starts))


def test_word_tags_and_decode_round_trip():
    text = "no sign of breast cancer or asthma"
    c = _chunk(text)
    spans = [Span(11, 24, "Disease"), Span(28, 34, "Disease")]
    tags = word_tags(c, spans, {"Disease": 0})
    assert tag_names(["Disease"]) == ["O", "B-Disease", "I-Disease"]
    assert tags.tolist() == [0, 0, 0, 1, 2, 0, 1]
    probs = np.eye(3)[tags] * 0.8 + 0.2 / 3
    found = decode(c, probs, ["Disease"])
    assert [(s, e, lab) for s, e, lab, _ in found] == [(11, 24, "Disease"), (28, 34, "Disease")]
    assert all(0 < conf <= 1 for *_, conf in found)


def test_overlapping_seed_spans_train_one_layer_the_outer_span_in_any_listed_order():
    text = "Kelvane toxicity and Zorbel syndrome seen"
    c = _chunk(text)
    drug, problem = Span(0, 7, "Drug"), Span(0, 16, "Problem")  # a drug inside a longer problem
    crossing, disease = Span(21, 36, "Problem"), Span(28, 41, "Disease")  # two layers that cross
    index = {"Drug": 0, "Problem": 1, "Disease": 2}
    spans = [drug, problem, crossing, disease]
    assert one_layer(spans, index) == one_layer(spans[::-1], index) == [problem, crossing]
    assert one_layer(spans, ["Drug", "Disease"]) == [drug, disease]  # only the labels the tagger learns
    # the tags no longer depend on which of two overlapping spans the file listed last
    assert word_tags(c, spans, index).tolist() == word_tags(c, spans[::-1], index).tolist() == [3, 4, 0, 3, 4, 0]
    apart = [Span(0, 7, "Drug"), Span(8, 16, "Problem")]
    assert one_layer(apart, index) == apart
    seeds = [Document("a", text, spans=spans), Document("b", text, spans=[problem])]
    assert overlapped_spans(seeds, ["Drug", "Problem", "Disease"]) == 2
    assert overlapped_spans(seeds, ["Drug", "Disease"]) == 0  # only the labels the tagger learns


def test_decoding_obeys_bio_so_a_stray_inside_tag_does_not_start_a_cut_span():
    c = _chunk("acute renal failure today")
    # per word argmax: O, I, I, O -- read alone, a span would start at "renal" and cut "acute"
    probs = np.array([[0.5, 0.45, 0.05], [0.1, 0.2, 0.7], [0.1, 0.1, 0.8], [0.9, 0.05, 0.05]])
    assert [(s, e) for s, e, _, _ in decode(c, probs, ["Disease"])] == [(0, 19)]


def test_a_word_is_read_as_the_mean_of_its_sub_words_beside_its_neighbours():
    import torch

    from domainfm.label.span_tagger import SpanTagger

    # [CLS] ad ##reno ##leuko ill [SEP]: word 0 has pieces 1..3, word 1 is piece 4
    hidden = torch.tensor([[9.0, 9.0], [1.0, 0.0], [2.0, 3.0], [3.0, 6.0], [5.0, 5.0], [9.0, 9.0]])
    c = WordChunk(0, np.array([0, 16]), np.array([15, 19]), np.array([1, 4]), hidden, 6, np.array([3, 4]))
    (x,) = SpanTagger.word_features([c])
    assert x.tolist() == [[2.0, 3.0, 0.0, 0.0, 5.0, 5.0], [5.0, 5.0, 2.0, 3.0, 0.0, 0.0]]


@pytest.mark.parametrize("text, kept", [
    ("oral cleft ,", "oral cleft"),          # trailing punctuation
    ("the disease", "disease"),              # leading function word
    ("odontoma and", "odontoma"),
    ("disease of the", "disease"),           # several, from the end
    ("colon or lung cancer", "colon or lung cancer"),  # inside: untouched
    ("( G6PD )", "( G6PD )"),                # a bracket whose partner is inside stays
    ("deficiency (", "deficiency"),          # one whose partner is not goes
    ("ALL", "ALL"),                          # ALL CAPS: an acronym, never a function word
    ("A - T", "A - T"),                      # a single capital stays
    ("The", None), (" , .", None),           # nothing left: no span
])
def test_span_edges_are_content_words(text, kept):
    from domainfm.label.span_edges import trim_span

    cut = trim_span(text, 0, len(text))
    assert (None if cut is None else text[cut[0]:cut[1]]) == kept


def test_trimmed_spans_that_coincide_keep_the_higher_score():
    from domainfm.label.span_edges import trimmed

    text = "the asthma , and more"
    assert trimmed(text, [(0, 10, "D", 0.4), (4, 12, "D", 0.9), (13, 16, "D", 0.5)]) == [(4, 10, "D", 0.9)]


@pytest.mark.parametrize("text, start, end, widened", [
    ("an X - linked disorder", 3, 4, "X - linked"),                 # spaced hyphen (pre-tokenised text)
    ("Tay-Sachs disease", 4, 17, "Tay-Sachs disease"),               # a piece cut on the left
    ("alpha - beta - gamma deficiency", 15, 31, "alpha - beta - gamma deficiency"),  # piece by piece
    ("Glucose 6 - phosphate", 12, 21, "6 - phosphate"),
    ("asthma - the first sign", 0, 6, "asthma"),                    # a dash before a function word
    ("asthma , and more", 0, 6, "asthma"),                           # no hyphen: untouched
])
def test_span_edges_take_in_the_hyphenated_compound_they_cut(text, start, end, widened):
    from domainfm.label.span_edges import snap_compound

    s, e = snap_compound(text, start, end)
    assert text[s:e] == widened


def test_compound_edges_join_spans_of_one_label_that_meet():
    from domainfm.label.span_edges import compound_edges

    text = "X - linked disorder ; Glucose 6 - phosphate deficiency ; gout , asthma"
    spans = [(0, 1, "D", 0.4), (4, 19, "D", 0.8), (22, 29, "D", 0.6), (34, 54, "D", 0.8),
             (57, 61, "D", 0.9), (64, 70, "D", 0.5)]
    assert [(text[s:e], round(c, 2)) for s, e, _, c in compound_edges(text, spans)] == [
        ("X - linked disorder", 0.6), ("Glucose 6 - phosphate deficiency", 0.7), ("gout", 0.9), ("asthma", 0.5)]
    # another label's span is never joined to it, nor widened into
    assert compound_edges("X - linked", [(0, 1, "A", 0.5), (4, 10, "B", 0.7)]) == [
        (0, 1, "A", 0.5), (4, 10, "B", 0.7)]


_LONG_LINE = "x" * 40 + " "  # at least WRAPPED_LINE characters before the line break: hard-wrapped


@pytest.mark.parametrize("text, words, joined", [
    ("heart failure", ("heart", "failure"), True),                         # whitespace: one entity
    ("fever\ncough", ("fever", "cough"), False),                            # a list, one per line
    ("Meds:\naspirin\r\nheparin\n", ("aspirin", "heparin"), False),       # a short line ending in \r\n
    (_LONG_LINE + "heart\nfailure", ("heart", "failure"), True),            # hard-wrapped text runs on
    (_LONG_LINE + "heart  \n  failure", ("heart", "failure"), True),
    (_LONG_LINE + "fever\n\ncough", ("fever", "cough"), False),             # never across a blank line
    (_LONG_LINE + "fever\n \r\ncough", ("fever", "cough"), False),
])
def test_compound_edges_join_across_a_line_break_only_where_text_is_hard_wrapped(text, words, joined):
    from domainfm.chunk.reassemble import WRAPPED_LINE
    from domainfm.label.span_edges import compound_edges

    assert len(_LONG_LINE) > WRAPPED_LINE  # the long-line cases must stay long if the threshold moves
    first = text.index(words[0])
    second = text.index(words[1], first + len(words[0]))
    spans = [(first, first + len(words[0]), "D", 0.4), (second, second + len(words[1]), "D", 0.8)]
    got = [text[s:e] for s, e, _, _ in compound_edges(text, spans)]
    assert got == ([text[spans[0][0]:spans[1][1]]] if joined else list(words))


def test_spelling_features_share_columns_across_words_with_a_suffix():
    from domainfm.label.span_tagger import spelling_features

    x = spelling_features(["nephritis", "arthritis", "Nephritis", "BRCA1", ""], 1024)
    assert x.shape == (5, 1024) and set(np.unique(x)) <= {0.0, 1.0}
    shared = (x[0] * x[1]).sum()
    assert shared >= 3  # "is", "tis", "itis" (suffixes); the prefixes and shapes differ
    assert (x[0] * x[2]).sum() == x[0].sum() - 1  # case changes only the shape column
    assert x[3].sum() >= 1 and x[4].sum() == 1  # an empty word still has a shape
    assert (spelling_features(["nephritis"], 1024) == x[:1]).all()  # the same columns every time


def test_word_features_append_the_spelling_columns():
    import torch

    from domainfm.label.span_tagger import SpanTagger

    hidden = torch.tensor([[9.0, 9.0], [1.0, 0.0], [5.0, 5.0], [9.0, 9.0]])
    c = WordChunk(0, np.array([0, 6]), np.array([5, 10]), np.array([1, 2]), hidden, 4, np.array([1, 2]), ["colitis", "ill"])
    (plain,) = SpanTagger.word_features([c])
    (spelled,) = SpanTagger.word_features([c], 64)
    assert spelled.shape == (2, 6 + 64) and (spelled[:, :6] == plain).all()


def test_merge_of_overlapping_chunk_spans_keeps_the_more_confident():
    merged = _merge_chunk_spans([(0, 5, "A", 0.6), (0, 5, "A", 0.9), (3, 8, "B", 0.7), (10, 12, "A", 0.5)])
    assert merged == [(0, 5, "A", 0.9), (10, 12, "A", 0.5)]


# the same views of one document "d" from two chunks, as ((start, end, label, score) per chunk,
# at_cut flags): the labeler chooses one layer, project_spans unions (see both docstrings)
_VIEWS = {
    "duplicate": ([[(12, 15, "A", .6)], [(12, 15, "A", .9)]], (False, False)),
    "other label": ([[(12, 16, "A", .9)], [(14, 18, "B", .7)]], (False, False)),
    "whole views disagree": ([[(12, 16, "A", .9)], [(13, 18, "A", .7)]], (False, False)),
    "cut pieces overlap": ([[(15, 20, "A", .8)], [(10, 17, "A", .6)]], (True, True)),
}


@pytest.mark.parametrize("case, labeler, union", [
    ("duplicate", [(12, 15, "A", .9)], [(12, 15, "A", .6)]),  # project_spans keeps a view's score, not the best
    ("other label", [(12, 16, "A", .9)], [(12, 16, "A", .9), (14, 18, "B", .7)]),
    ("whole views disagree", [(12, 16, "A", .9)], [(12, 18, "A", .9)]),
    ("cut pieces overlap", [(10, 20, "A", .7)], [(10, 20, "A", .6)]),  # same extent; mean score vs one view's
])
def test_labeler_join_chooses_where_project_spans_unions(case, labeler, union):
    """Guards the documented difference: the two joins must not be swapped for one another."""
    from domainfm.chunk import Chunk, project_spans

    per_chunk, cut = _VIEWS[case]
    chunks = [Chunk(f"d#{i}", "d", s, e, "x" * (e - s), 0, "") for i, (s, e) in enumerate([(0, 20), (10, 30)])]
    flags = [f for views, flag in zip(per_chunk, cut) for f in [flag] * len(views)]
    assert _merge_chunk_spans([v for views in per_chunk for v in views], flags) == labeler
    local = [[Span(s - c.start, e - c.start, lab, {"score": p}) for s, e, lab, p in views]
             for c, views in zip(chunks, per_chunk)]
    assert [(x.start, x.end, x.label, x.attrs["score"]) for x in project_spans(chunks, local)["d"]] == union


def test_rank_scores_puts_uncertain_first_and_skips_near_duplicates():
    u = np.array([0.9, 0.89, 0.1, 0.5])
    emb = np.array([[1, 0], [1, 0], [0, 1], [0.7, 0.7]], dtype=float)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    ranks = rank_scores(u, emb, diversity=0.5)
    assert ranks[0] == 1 and ranks[1] > 2  # the duplicate of item 0 waits
    assert ranks.tolist() == rank_scores(u, emb, diversity=0.5).tolist()
    assert np.allclose(uncertainty(np.stack([1 - u / 2, u / 2], 1)), u)


def _seed(text: str, *marked: str, label: str = "Disease") -> Document:
    spans, at = [], 0
    for m in marked:
        i = text.index(m, at)
        spans.append(Span(i, i + len(m), label))
        at = i + len(m)
    return Document(f"s{abs(hash(text)) % 10_000}", text, spans=spans)


def test_seed_lexicon_matches_whole_words_in_any_case_but_acronyms_only_as_written():
    from domainfm.label.lexicon import SeedLexicon

    lex = SeedLexicon.from_documents([_seed("Breast cancer and AT in the family.", "Breast cancer", "AT"),
                                      _seed("A case of non-Hodgkin lymphoma.", "non-Hodgkin lymphoma")])
    text = "breast cancer at home; AT carriers; breast cancers; non - Hodgkin lymphoma"
    found = [text[s:e] for s, e, _, _ in lex.find(text)]
    assert found == ["breast cancer", "AT", "non - Hodgkin lymphoma"]  # not "at", not inside "cancers"
    assert lex.summary == {"entries": 3, "dropped_inconsistent": 0, "min_share": 0.5}


def test_seed_lexicon_drops_strings_the_seeds_mostly_leave_unmarked_and_takes_the_majority_label():
    from domainfm.label.lexicon import SeedLexicon

    seeds = [_seed("Mild fever with cold hands; cold, then cold again.", "cold"),  # marked once, left twice
             _seed("Lyme disease here.", "Lyme disease", label="Infection"),
             _seed("Lyme disease again.", "Lyme disease", label="Infection"),
             _seed("Lyme disease once more.", "Lyme disease")]
    lex = SeedLexicon.from_documents(seeds)
    assert lex.find("a cold morning") == []
    assert [lab for *_, lab, _ in lex.find("Lyme disease")] == ["Infection"]
    assert lex.summary["dropped_inconsistent"] == 1
    # only the labels asked for vote: "Lyme disease" as Disease is marked in 1 of its 3 places
    assert SeedLexicon.from_documents(seeds, labels=["Disease"]).find("Lyme disease") == []


def test_seed_lexicon_replaces_the_model_spans_it_contains_and_defers_to_longer_ones():
    from domainfm.label.lexicon import SeedLexicon

    lex = SeedLexicon.from_documents([_seed("History of breast cancer and asthma.", "breast cancer", "asthma")])
    text = "breast cancer, severe asthma, asthma attack, eczema"
    asthma_attack = text.index("asthma attack")
    model = [(7, 13, "Disease", 0.6),  # "cancer", cut out of a known name
             (text.index("severe"), text.index("severe") + 13, "Disease", 0.7),  # "severe asthma": longer
             (asthma_attack, asthma_attack + 6, "Disease", 0.4),  # "asthma", equal to an entry
             (text.index("eczema"), len(text), "Disease", 0.3)]  # the model alone
    combined = {text[s:e]: (round(c, 2), src) for s, e, _, c, src in lex.combine(text, model)}
    assert combined == {"breast cancer": (1.0, "lexicon"), "severe asthma": (0.7, "model"),
                        "asthma": (0.4, "model+lexicon"), "eczema": (0.3, "model")}


def test_span_calibration_reads_each_source_from_out_of_fold_spans():
    from domainfm.label.span_calibration import SpanCalibration

    rng = np.random.default_rng(0)
    rows = [("model", float(r), bool(rng.random() < r)) for r in rng.uniform(0.05, 0.95, 200)]
    rows += [("model+lexicon", 0.5, bool(i % 10 != 0)) for i in range(60)]  # confirmed: right 90%
    rows += [("lexicon", 1.0, i < 6) for i in range(8)]
    cal, summary = SpanCalibration.fit(rows)
    assert cal.confidence(0.5, "model+lexicon") > cal.confidence(0.5, "model") + 0.1
    assert cal.confidence(0.9, "model") > cal.confidence(0.1, "model")
    # (hits + 2 p) / (found + 2), p the pooled precision of the string-matched spans (60 of 68 right)
    matched = (54 + 6) / 68
    assert cal.confidence(1.0, "lexicon") == pytest.approx((6 + 2 * matched) / 10)
    assert summary["sources"]["lexicon"] == {"oof_spans": 8, "oof_documents": 8, "oof_precision": 0.75}
    # no out-of-fold lexicon spans: the pooled precision (here of all spans, none string-matched)
    only_model = SpanCalibration.fit(rows[:200])[0]
    assert only_model.confidence(0.8, "lexicon") == pytest.approx(np.mean([ok for *_, ok in rows[:200]]))
    # no out-of-fold spans at all: the entry's share on the seeds stands
    assert SpanCalibration.fit([])[0].confidence(0.8, "lexicon") == 0.8
    # carried short forms: their own out-of-fold precision, or without any, the long form's map
    with_short = SpanCalibration.fit(rows + [("abbreviation", 0.9, i < 2) for i in range(8)])[0]
    assert with_short.confidence(0.9, "abbreviation") == pytest.approx((2 + 2 * (62 / 76)) / 10)
    assert cal.confidence(0.9, "abbreviation") == cal.confidence(0.9, "model")


def test_span_calibration_map_leans_on_the_temperature_when_out_of_fold_spans_are_few():
    from domainfm.label.span_calibration import SpanCalibration

    # six spans, all right: a free fit would call every span certain; the prior keeps the map
    # near the temperature-scaled score, moved up a little
    few, _ = SpanCalibration.fit([("model", r, True) for r in (0.3, 0.5, 0.6, 0.7, 0.8, 0.9)])
    assert 0.3 < few.confidence(0.3, "model") < 0.6
    assert few.confidence(0.9, "model") > few.confidence(0.3, "model")
    # many spans whose raw score says nothing: the map goes flat at their precision
    rng = np.random.default_rng(3)
    flat, _ = SpanCalibration.fit([("model", float(r), bool(rng.random() < 0.6)) for r in rng.uniform(0.05, 0.95, 4000)])
    assert flat.confidence(0.1, "model") == pytest.approx(flat.confidence(0.9, "model"), abs=0.06)
    assert flat.confidence(0.5, "model") == pytest.approx(0.6, abs=0.03)


def test_span_calibration_counts_repeated_short_forms_by_document():
    from domainfm.label.span_calibration import SpanCalibration

    rng = np.random.default_rng(1)
    rows = [("model", float(r), bool(rng.random() < r), f"d{i % 8}") for i, r in enumerate(rng.uniform(0.05, 0.95, 100))]
    rows += [("model+lexicon", 0.8, i % 2 == 0, f"d{i % 8}") for i in range(19)]  # right 10 of 19
    # 21 carried short forms, all right, but from 3 seed documents: 3 pieces of evidence, not 21
    short = [("abbreviation", 0.9, True, f"d{i % 3}") for i in range(21)]
    cal, summary = SpanCalibration.fit(rows + short)
    matched = (10 + 21) / 40  # the string-matched spans' pooled precision
    assert cal.confidence(0.9, "abbreviation") == pytest.approx((3 * 1.0 + 2 * matched) / (3 + 2))
    assert summary["sources"]["abbreviation"] == {"oof_spans": 21, "oof_documents": 3, "oof_precision": 1.0}
    # one row a document: (hits + 2 p) / (found + 2)
    spread = [("abbreviation", 0.9, True, f"e{i}") for i in range(21)]
    assert SpanCalibration.fit(rows + spread)[0].confidence(0.9, "abbreviation") == pytest.approx((21 + 2 * matched) / 23)


def test_span_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="'calibration_folds'.*0 \\(off\\) or >= 2"):
        SpanLabelConfig(calibration_folds=1)
    with pytest.raises(ConfigError, match="'deid_prior'"):
        SpanLabelConfig(deid_prior="maybe")
    with pytest.raises(ConfigError, match="'min_steps'.*'max_steps'"):
        SpanLabelConfig(min_steps=10, max_steps=5)
    with pytest.raises(ConfigError, match="'seed_lexicon' parameter must be true or false"):
        SpanLabelConfig(seed_lexicon="yes")
    with pytest.raises(ConfigError, match="'calibration_repeats'.*\\[1, 20\\]"):
        SpanLabelConfig(calibration_repeats=0)
    assert (SpanLabelConfig().repeats, SpanLabelConfig(method="finetune").repeats) == (3, 1)
    with pytest.raises(ConfigError, match="'probe_layers'.*layer numbers >= 1"):
        SpanLabelConfig(probe_layers=[0, 1])
    assert SpanLabelConfig(probe_layers=[3, 4]).probe_layers == (3, 4)  # YAML lists become tuples
    with pytest.raises(ConfigError, match="'decision_shift'.*\\[-5, 5\\] or unset"):
        SpanLabelConfig(decision_shift=9)
    with pytest.raises(ConfigError, match="'decision_shift'"):
        SpanLabelConfig(decision_shift="high")


def test_decision_shift_is_chosen_on_out_of_fold_seeds_and_moves_the_decoding(tiny_model_dir):
    from domainfm.label.spans import DECISION_SHIFTS, predict_spans, train_span_model

    seeds, pool = _pattern_docs(16), [Document(d.id, d.text) for d in _pattern_docs(8, offset=16)]
    base = dict(encoder=str(tiny_model_dir), max_tokens=32, overlap=4, span_heads=False, seed_lexicon=False,
                abbreviations=False, deid_prior="off")
    chosen = train_span_model(seeds, SpanLabelConfig(**base))
    cal = chosen.summary["calibration"]
    assert cal["decision_shift"] == chosen.shift and chosen.shift in DECISION_SHIFTS
    assert set(cal["oof_f1_by_shift"]) == {str(x) for x in DECISION_SHIFTS}
    assert cal["oof_f1_by_shift"][str(chosen.shift)] == max(cal["oof_f1_by_shift"].values())

    fixed = SpanLabelConfig(**base, decision_shift=1.0)
    model = train_span_model(seeds, fixed)
    assert model.shift == 1.0 and list(model.summary["calibration"]["oof_f1_by_shift"]) == ["1.0"]
    assert len(predict_spans(model, pool, fixed).spans) == len(pool)


def test_decision_shift_trades_doubtful_spans_for_none():
    from domainfm.label.spans import _spans_from_logits

    c = _chunk("mild renal failure today")
    # "renal failure" is a span at 0.6 against 0.4: kept as it is, gone with a shift of 1 towards O
    logits = np.log(np.array([[0.9, 0.05, 0.05], [0.4, 0.55, 0.05], [0.4, 0.05, 0.55], [0.9, 0.05, 0.05]]))

    def spans(shift):
        found, _ = _spans_from_logits([c], [logits], ["Disease"], 1.0, lambda raw: raw, 1, shift)
        return [(s, e) for s, e, _, _ in found[0]]

    assert spans(0.0) == [(5, 18)] and spans(1.0) == [] and spans(-3.0)[0][0] == 0  # "mild" joins


def test_probe_reads_the_chosen_layers_and_runs_none_above_them(tiny_model_dir):
    import torch
    from transformers import AutoModel, AutoTokenizer

    from domainfm.errors import DomainFMError
    from domainfm.label.span_tagger import SpanTagger

    middle = SpanTagger(SpanLabelConfig(encoder=str(tiny_model_dir), max_tokens=32, overlap=4))
    assert middle.probe_layers == (1, 2)  # the middle of a 2-layer encoder
    first = SpanTagger(SpanLabelConfig(encoder=str(tiny_model_dir), max_tokens=32, overlap=4, probe_layers=[1]))
    assert len(first.encoder.encoder.layer) == 1  # the layer above is never run
    (chunk,), _ = first.featurize([Document("d", "fever and cough")])
    full = AutoModel.from_pretrained(tiny_model_dir).eval()
    enc = AutoTokenizer.from_pretrained(tiny_model_dir)("fever and cough", return_tensors="pt")
    with torch.no_grad():
        expected = full(**enc, output_hidden_states=True).hidden_states[1][0]
    assert torch.allclose(chunk.hidden, expected, atol=1e-5)
    with pytest.raises(DomainFMError, match="has 2 layers; give numbers from 1 to 2"):
        SpanTagger(SpanLabelConfig(encoder=str(tiny_model_dir), probe_layers=[3]))


NOTES = [
    ("Patient has diabetes and asthma.", ["diabetes", "asthma"]),
    ("No asthma. Known migraine.", ["asthma", "migraine"]),
    ("Diabetes controlled, migraine resolved.", ["Diabetes", "migraine"]),
    ("Seen for asthma and eczema.", ["asthma", "eczema"]),
    ("Eczema flare; diabetes stable.", ["Eczema", "diabetes"]),
    ("Migraine with aura, no diabetes.", ["Migraine", "diabetes"]),
]


def _docs():
    out = []
    for i, (text, words) in enumerate(NOTES):
        out.append(Document(f"d{i}", text, spans=[Span(text.index(w), text.index(w) + len(w), "Disease") for w in words]))
    return out


@pytest.mark.slow
def test_label_task_ner_command_writes_suggestions_exports_and_manifest(tmp_path, cli):
    docs = _docs()
    write_documents(tmp_path / "seeds.jsonl", docs[:4])
    pool = [Document(d.id, d.text) for d in docs[4:]] + [Document("empty", "   ")]
    write_documents(tmp_path / "pool.jsonl", pool)
    result = cli("label", "--task", "ner", "--labeled", tmp_path / "seeds.jsonl", "--pool", tmp_path / "pool.jsonl",
                 "-o", tmp_path / "out.jsonl", "--export", "labelstudio", "--export", "prodigy")
    assert result.exit_code == 0, result.output
    assert "read 3 = written 2 + rejected 1" in result.output
    records = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert sorted(r["meta"]["rank"] for r in records) == [1, 2]
    for r in records:
        for s in r["meta"]["suggestion"]["spans"]:
            assert 0 <= s["confidence"] <= 1 and s["source"] in ("model", "lexicon", "model+lexicon")
            assert r["text"][s["start"]:s["end"]].strip() == r["text"][s["start"]:s["end"]]
    tasks = json.loads((tmp_path / "out.labelstudio.json").read_text())
    assert [t["meta"]["rank"] for t in tasks] == [1, 2]
    # the prediction score is the document's certainty (as `label serve` gives it), so sorting by
    # score in Label Studio shows the least certain first
    uncertainty = {r["id"]: r["meta"]["suggestion"]["uncertainty"] for r in records}
    for t in tasks:
        assert t["predictions"][0]["score"] == pytest.approx(1 - uncertainty[t["data"]["doc_id"]], abs=1e-3)
    assert "<Label value=\"Disease\"/>" in (tmp_path / "out.labelstudio.json.config.xml").read_text()
    manifest = json.loads((tmp_path / "out.manifest.json").read_text())
    assert manifest["summary"]["labels"] == ["Disease"] and manifest["summary"]["calibration"]["folds"] == 4  # the probe's
    assert manifest["summary"]["seed_lexicon"]["entries"] == 4  # counts only: no seed string in the manifest
    assert "eczema" not in (tmp_path / "out.manifest.json").read_text().lower()
    # the exported suggestions come back in with the importer: same spans
    from domainfm.corpus.importing import import_corpus

    back = import_corpus("labelstudio", tmp_path / "out.labelstudio.json", tmp_path / "back.jsonl",
                         {"use_predictions": True})
    assert back.counts.written == 2
    bad = cli("label", "--task", "ner", "--labeled", tmp_path / "seeds.jsonl", "-o", tmp_path / "x.jsonl")
    assert bad.exit_code == 2 and "--task ner needs --pool" in bad.output


def _pattern_docs(n: int, offset: int = 0) -> list[Document]:
    """'fever' and 'cough' are always the span, whatever words come around them: learnable by
    any working tagger, invisible to an untrained one."""
    fillers = ["the patient", "arm pain", "chest", "notice", "court", "agreement", "party", "state"]
    docs = []
    for i in range(offset, offset + n):
        a, b = fillers[i % len(fillers)], fillers[(3 * i + 1) % len(fillers)]
        word = "fever" if i % 2 else "cough"
        text = f"{a} with {word} and {b}"
        start = text.index(word)
        docs.append(Document(f"d{i}", text, spans=[Span(start, start + len(word), "Disease")]))
    return docs


@pytest.mark.slow  # 60 training steps: about a minute on a loaded 2-core machine
def test_finetune_method_learns_a_trivial_span_pattern(tiny_model_dir):
    from domainfm.label.spans import suggest_spans

    seeds, pool = _pattern_docs(12), _pattern_docs(6, offset=40)
    cfg = SpanLabelConfig(method="finetune", encoder=str(tiny_model_dir), max_tokens=32, overlap=4, epochs=40,
                          min_steps=60, max_steps=60, batch_size=4, finetune_lr=5e-3, lora_r=4,
                          calibration_folds=0, deid_prior="off",  # one training: keeps the test short
                          seed_lexicon=False)  # the seeds' own strings would find every span without a model
    result = suggest_spans(seeds, [Document(d.id, d.text) for d in pool], cfg)
    gold = {(d.id, s.start, s.end) for d in pool for s in d.spans}
    found = {(d.id, s.start, s.end) for d, spans in zip(result.docs, result.spans) for s in spans}
    assert len(gold & found) >= 4, (gold, found)  # an untrained head finds none of them
    assert result.summary["method"] == "finetune" and result.summary["steps"] == 60
    assert sorted(result.ranks) == list(range(1, len(pool) + 1))
    assert all(0 <= s.attrs["confidence"] <= 1 for spans in result.spans for s in spans)


# ------------------------------------------------------------------ entities cut where chunks do not overlap

# probabilities of O, B-D, I-D per word; a chunk's first word cannot be I, so a word of the
# entity starting one is read as B
_DISEASE_WORDS = {"cancer": (.05, .9, .05), "of": (.1, .1, .8), "the": (.1, .1, .8), "breast": (.1, .3, .6),
                  "fever": (.1, .8, .1), "cough": (.15, .7, .15)}


def _word_rule_model(cfg: SpanLabelConfig):
    """The labeler's model with the real tiny encoder and chunker, its learned head swapped for a
    fixed rule per word, so whether a span comes back whole depends on the chunks and their
    merge alone."""
    from domainfm.label.span_calibration import SpanCalibration
    from domainfm.label.span_tagger import SpanTagger
    from domainfm.label.spans import _Fitted

    class WordRuleTagger(SpanTagger):
        def score(self, head, chunks):
            return ([np.log(np.array([_DISEASE_WORDS.get(w, (.9, .05, .05)) for w in c.words])) for c in chunks],
                    [np.zeros(4) for _ in chunks])

    return _Fitted(WordRuleTagger(cfg), None, ["D"], 1.0, SpanCalibration(), {})


def test_an_entity_cut_where_chunks_do_not_overlap_comes_back_whole(tiny_model_dir):
    """With ``overlap: 0`` the chunker cuts this note inside "cancer of the | breast" (16 tokens
    a chunk): no word is in both chunks, so the two views never overlap. Each piece alone loses
    its function words at the edge ("cancer", "breast"), and what then lies between them is not
    whitespace, so nothing later joined them: two wrong suggestions instead of one."""
    from domainfm.label.spans import predict_spans

    cfg = SpanLabelConfig(encoder=str(tiny_model_dir), max_tokens=16, overlap=0, deid_prior="off",
                          abbreviations=False, seed_lexicon=False, span_heads=False)
    model = _word_rule_model(cfg)
    doc = Document("n1", "the patient has cancer of the breast and fever today in clinic with cough")
    chunks, _ = model.tagger.featurize([doc])
    assert chunks[0].words[-1] == "the" and chunks[1].words[0] == "breast"  # the cut this test is about
    (spans,) = predict_spans(model, [doc], cfg).spans
    assert [doc.text[s.start:s.end] for s in spans] == ["cancer of the breast", "fever", "cough"]
    assert spans[0].attrs["source"] == "model"


@pytest.mark.parametrize("text, texts, merged", [
    # the two pieces, each at the cut: joined, with the mean of their confidences
    ("history of acute renal failure noted", True, [("acute renal failure", 0.7)]),
    # without the texts (chunks that overlap: see _texts_to_join) they stay pieces, as before
    ("history of acute renal failure noted", False, [("acute renal", 0.8), ("failure", 0.6)]),
    # one entity per short line, cut at its line break: two entities
    ("history of acute renal\nfailure noted", True, [("acute renal", 0.8), ("failure", 0.6)]),
    # a hard-wrapped line (40 characters or more) runs on, as project_spans reads it
    ("the history of this patient: acute renal\nfailure noted", True, [("acute renal\nfailure", 0.7)]),
])
def test_pieces_at_a_cut_between_chunks_that_do_not_overlap(text, texts, merged):
    from domainfm.label.spans import _spans_from_logits

    n = len(text.split())
    a = _tags(*[("O", .9)] * (n - 4), ("B", .8), ("I", .8))  # ... "acute renal" ends the first chunk
    b = _tags(("B", .6), ("O", .9))                          # "failure" starts the second
    found, _ = _spans_from_logits([_words(text, 0, n - 3), _words(text, n - 2, n - 1)], [a, b], ["D"], 1.0,
                                  lambda raw: raw, 1, texts=[text] if texts else None)
    assert [(text[s:e], round(c, 3)) for s, e, _, c in found[0]] == merged
