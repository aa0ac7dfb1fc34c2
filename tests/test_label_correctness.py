"""Labeling assistant correctness: the numbers and orders it reports checked against hand
computations on made-up data (calibration, confident learning, ranking), span offsets after
chunking, the de-id prior, and exports that come back through the importers unchanged.

Document methods run on a fake encoder (hashed words); span tests on crafted word chunks, with
the tiny BERT of ``conftest.py`` only where the chunker and tokenizer themselves are the subject.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from domainfm.corpus.document import Document, Span
from domainfm.label import LabelConfig, suggest_labels
from domainfm.label.span_config import SpanLabelConfig
from domainfm.label.span_tagger import WordChunk
from test_label import FakeEncoder, _corpus

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _pool(n_per: int, seed: int, noise: float = 1.5) -> list[Document]:
    return [Document(f"p{i}", d.text) for i, d in enumerate(_corpus(n_per, seed=seed, noise=noise))]


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


# ------------------------------------------------------------------ document suggestions

def test_document_confidences_match_a_hand_fitted_temperature_on_out_of_fold_seeds():
    """One C, no self-training, no LSA: the out-of-fold logits of plain sklearn folds, a
    temperature by brute-force search of the smoothed NLL, the ECE by the right-closed bins,
    and the pool's probabilities from the head fitted on all seeds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    seeds, pool = _corpus(6, seed=1, noise=1.5), _pool(5, seed=2)
    cfg = LabelConfig(c_grid=(4.0,), cv_folds=3, self_training=0, lsa_dims=0, seed=5)
    result = suggest_labels(seeds, pool, cfg, encoder=FakeEncoder())
    classes = sorted({d.label for d in seeds})
    assert result.classes == classes
    Y = np.array([classes.index(d.label) for d in seeds])
    X = FakeEncoder().encode([d.text for d in seeds]).astype(np.float64)
    oof = np.zeros((len(Y), len(classes)))
    for train, test in StratifiedKFold(3, shuffle=True, random_state=5).split(X, Y):
        oof[test] = LogisticRegression(C=4.0, max_iter=3000, random_state=5).fit(X[train], Y[train]).decision_function(X[test])
    eps = 1 / (len(Y) + 1)  # the documented smoothing of the temperature's targets
    target = np.full(oof.shape, eps / len(classes))
    target[np.arange(len(Y)), Y] += 1 - eps
    grid = np.exp(np.linspace(np.log(0.02), np.log(50), 20001))
    T = grid[np.argmin([-(target * np.log(_softmax(oof / t))).sum(1).mean() for t in grid])]
    cv = result.summary["cross_validation"]
    assert cv["temperature"] == pytest.approx(T, rel=1e-3)
    P = _softmax(oof / T)
    conf, right = P.max(1), P.argmax(1) == Y
    ece = 0.0
    for b in range(10):
        inside = (conf > b / 10) & (conf <= (b + 1) / 10) if b else conf <= 0.1
        if inside.any():
            ece += abs(right[inside].mean() - conf[inside].mean()) * inside.sum() / len(conf)
    assert cv["expected_ece"] == pytest.approx(ece, abs=1e-4)
    assert cv["expected_accuracy"] == pytest.approx(right.mean(), abs=1e-4)
    Xp = FakeEncoder().encode([d.text for d in pool]).astype(np.float64)
    final = LogisticRegression(C=4.0, max_iter=3000, random_state=5).fit(X, Y)
    assert np.allclose(result.probabilities, _softmax(final.decision_function(Xp) / T), atol=1e-4)
    # probabilities sum to 1, and each suggestion reads them in the class order given
    assert np.allclose(result.probabilities.sum(1), 1.0, atol=1e-5)
    for s, p in zip(result.suggestions, result.probabilities):
        assert s.label == classes[int(p.argmax())] and s.confidence == pytest.approx(p.max())
        listed = [s.confidence] + [a["score"] for a in s.alternatives]
        assert listed == sorted(listed, reverse=True)
        assert [a["label"] for a in s.alternatives] == [classes[j] for j in np.argsort(-p, kind="stable")[1:]]


def test_the_suggesting_head_self_trains_as_its_calibration_folds_did():
    """The temperature is fitted on folds that self-train ranking pseudo-labels by the head's raw
    softmax; the head that makes the suggestions must self-train the same way, or the
    calibration describes another model (ranking by the calibrated softmax picked other
    pseudo-labels: up to 0.58 apart in probability on this pool)."""
    from domainfm.label.methods import _decision, fit_self_trained

    seeds, pool = _corpus(6, seed=0), _pool(30, seed=10, noise=0.5)
    cfg = LabelConfig(c_grid=(8.0,), cv_folds=3, lsa_dims=0)
    result = suggest_labels(seeds, pool, cfg, encoder=FakeEncoder())
    T = result.summary["cross_validation"]["temperature"]
    assert abs(T - 1.0) > 0.05  # else the test could not tell the two apart
    classes = result.classes
    X = FakeEncoder().encode([d.text for d in seeds])
    P = FakeEncoder().encode([d.text for d in pool])
    Y = np.array([classes.index(d.label) for d in seeds])
    # what a calibration fold runs, here on all seeds (temperature left at its default)
    models = fit_self_trained(X, Y, P, C=8.0, multilabel=False, n_classes=len(classes), cfg=cfg)
    # (the summary's temperature is rounded to 4 places)
    assert np.allclose(result.probabilities, _softmax(_decision(models[0], P) / T), atol=1e-4)


# ------------------------------------------------------------------ confident learning

def test_confident_learning_matches_a_hand_computation():
    """Per-class thresholds are the mean self-confidence of the items given that class
    (0.5333, 0.7, 0.55); the confident label is the likeliest class at or above its threshold."""
    from domainfm.label.check import confident_joint, find_label_issues

    probs = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1],  # given 0; item 2 looks like 1
                      [0.1, 0.8, 0.1], [0.3, 0.6, 0.1],                    # given 1; item 4 under every threshold
                      [0.1, 0.2, 0.7], [0.5, 0.1, 0.4]])                   # given 2; item 6 under every threshold
    given = np.array([0, 0, 0, 1, 1, 2, 2])
    joint, thresholds, confident = confident_joint(probs, given)
    assert thresholds == pytest.approx([1.6 / 3, 0.7, 0.55])
    assert confident.tolist() == [0, 0, 1, 1, -1, 2, -1]  # 0.7 >= 0.7: the threshold itself counts
    assert joint.tolist() == [[2, 1, 0], [0, 1, 0], [0, 0, 1]]
    flags = find_label_issues(probs, given, ["a", "b", "c"])
    assert [(f.index, f.given, f.suggested, round(f.margin, 6)) for f in flags] == [(2, "a", "b", 0.5)]


# ------------------------------------------------------------------ active learning order

def test_rank_is_uncertain_first_then_novel_and_ties_go_to_the_earlier_document():
    from domainfm.label.active import rank_pool

    probs = np.array([[0.6, 0.4], [0.6, 0.4], [0.6, 0.4], [0.9, 0.1]])  # three tied uncertainties
    emb = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    # first the earliest of the most uncertain (0, u 0.8); then 0.5 * u + 0.5 * novelty: doc 1
    # (a copy of 0) 0.4 + 0, doc 2 0.4 + 0.5, doc 3 0.1 + 0.5; then both left copy a ranked
    # document (novelty 0): 0.4 against 0.1
    assert rank_pool(probs, emb, diversity=0.5).tolist() == [1, 3, 2, 4]
    assert rank_pool(probs, emb, diversity=0.0).tolist() == [1, 2, 3, 4]  # stable among ties


# ------------------------------------------------------------------ span chunks and merging

def _words(text: str, first: int, last: int, doc: int = 0) -> WordChunk:
    """A chunk holding words ``first..last`` of ``text`` (split on spaces), document offsets."""
    spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)][first:last + 1]
    return WordChunk(doc, np.array([s for s, _ in spans]), np.array([e for _, e in spans]),
                     np.arange(len(spans)), None, len(spans))


def _tags(*rows) -> np.ndarray:
    """Log-probabilities over O, B-D, I-D: 'O', 'B' or 'I' with probability p."""
    out = []
    for tag, p in rows:
        row = np.full(3, (1 - p) / 2)
        row["OBI".index(tag)] = p
        out.append(row)
    return np.log(np.array(out))


TEXT = "history of acute renal failure noted today"  # words 0..6; the entity is words 2-4


def _merged(chunks, logits):
    from domainfm.label.spans import _spans_from_logits

    found, _ = _spans_from_logits(chunks, logits, ["D"], 1.0, lambda raw: raw, 1)
    return [(TEXT[s:e], round(c, 3)) for s, e, _, c in found[0]]


def test_a_view_cut_by_a_chunk_start_does_not_replace_the_whole_view():
    """The second chunk starts inside the entity ("renal failure ..."): it sees a piece of it,
    however sure of that piece it is; the first chunk saw it whole."""
    first = _words(TEXT, 0, 5)
    second = _words(TEXT, 3, 6)
    a = _tags(("O", .9), ("O", .9), ("B", .6), ("I", .6), ("I", .6), ("O", .9))
    b = _tags(("B", .95), ("I", .95), ("O", .9), ("O", .9))
    assert _merged([first, second], [a, b]) == [("acute renal failure", 0.6)]
    # the same at the other edge: the first chunk ends inside it
    a = _tags(("O", .9), ("O", .9), ("B", .95), ("I", .95))
    b = _tags(("O", .9), ("B", .6), ("I", .6), ("I", .6), ("O", .9), ("O", .9))
    assert _merged([_words(TEXT, 0, 3), _words(TEXT, 1, 6)], [a, b]) == [("acute renal failure", 0.6)]


def test_two_cut_views_of_one_entity_are_joined():
    """Each chunk holds one end of the entity: neither view is whole, together they are."""
    a = _tags(("O", .9), ("O", .9), ("B", .8), ("I", .8))     # "acute renal" at the first chunk's end
    b = _tags(("B", .6), ("I", .6), ("O", .9), ("O", .9))     # "renal failure" at the second's start
    (joined,) = _merged([_words(TEXT, 0, 3), _words(TEXT, 3, 6)], [a, b])
    assert joined[0] == "acute renal failure"
    # views of whole chunks keep the documented rule: the more confident one wins
    assert _merged([_words(TEXT, 0, 6)] * 2, [_tags(*[("O", .9)] * 2, ("B", .8), ("I", .8), *[("O", .9)] * 3),
                                               _tags(*[("O", .9)] * 3, ("B", .7), ("I", .7), *[("O", .9)] * 2)]) \
        == [("acute renal", 0.8)]


def test_chunk_words_are_whole_words_of_the_document(tiny_model_dir):
    """The chunker may cut inside a long word when the window holds no better place (this tiny
    vocabulary spells unknown words letter by letter); the tagger then read "cute" of "acute"
    as a word, and a span could start in the middle of one."""
    from domainfm.label.span_tagger import SpanTagger

    tagger = SpanTagger(SpanLabelConfig(encoder=str(tiny_model_dir), max_tokens=16, overlap=4))
    text = ("the patient with chest pain and acute renal failure was seen in clinic today with fever "
            "and cough and history of diabetes and heart disease")
    chunks, bad = tagger.featurize([Document("x", text)])
    assert not bad and len(chunks) > 3
    whole = {(m.start(), m.end()) for m in re.finditer(r"\w+|[^\w\s]", text)}
    seen = set()
    for c in chunks:
        pairs = list(zip(c.word_start.tolist(), c.word_end.tolist()))
        assert set(pairs) <= whole, [text[s:e] for s, e in pairs if (s, e) not in whole]
        assert c.words == [text[s:e] for s, e in pairs]
        seen |= set(pairs)
    assert seen == whole  # and every word is read in some chunk


# ------------------------------------------------------------------ de-id prior

class _FakeDetector:
    """Stands in for the de-id detectors: fixed spans per text."""

    found: dict[str, list[Span]] = {}

    def __init__(self, cfg):
        pass

    def detect_texts(self, texts):
        return [list(self.found.get(t, [])) for t in texts]


def test_deid_prior_confidence_is_the_detectors_precision_on_the_seeds(monkeypatch):
    import domainfm.deid.engine as engine
    from domainfm.label.spans import _deid_prior

    seeds = [Document("s1", "Seen 01/02/2020 and 03/04/2020.", spans=[Span(5, 15, "DATE"), Span(20, 30, "DATE")]),
             Document("s2", "Call 555 1234 on Monday.", spans=[Span(17, 23, "DATE")])]
    pool = [Document("p1", "Back 05/06/2021 with Dr Ames.")]
    _FakeDetector.found = {
        seeds[0].text: [Span(5, 15, "DATE"), Span(20, 30, "DATE")],    # 2 exact hits
        seeds[1].text: [Span(5, 13, "DATE"), Span(17, 23, "DATE"), Span(5, 13, "PHONE")],  # 1 hit, 1 miss
        pool[0].text: [Span(5, 15, "DATE"), Span(24, 28, "DOCTOR"), Span(16, 20, "DATE")],
    }
    monkeypatch.setattr(engine, "PhiDetector", _FakeDetector)
    prior = _deid_prior(["DATE", "Disease"], pool, seeds, SpanLabelConfig(deid_prior="auto"))
    assert prior.precision == {"DATE": pytest.approx((3 + 1) / (4 + 2))}  # (hits + 1) / (found + 2)
    model = [Span(16, 24, "Disease", {"confidence": 0.7, "source": "model"})]  # overlaps the second date
    out = prior.combine(0, model)
    # the date no suggestion overlaps is added; the one under a model span and the DOCTOR
    # (not a label of the task) are not
    assert sorted((s.start, s.end, s.label, s.attrs.get("source")) for s in out) == [
        (5, 15, "DATE", "deid"), (16, 24, "Disease", "model")]
    assert [s.attrs["confidence"] for s in out if s.label == "DATE"] == [round(4 / 6, 4)]


def test_deid_prior_spans_obey_min_confidence(monkeypatch):
    """``min_confidence`` leaves out every suggested span under it, the prior's too."""
    import domainfm.deid.engine as engine
    from domainfm.label import spans as spans_module

    seeds = [Document("s1", "Seen 01/02/2020 today.", spans=[Span(5, 15, "DATE")])]
    pool = [Document("p1", "Back 05/06/2021 today.")]
    _FakeDetector.found = {seeds[0].text: [Span(0, 4, "DATE"), Span(16, 21, "DATE")],  # 0 of 2 right: 0.25
                           pool[0].text: [Span(5, 15, "DATE")]}
    monkeypatch.setattr(engine, "PhiDetector", _FakeDetector)

    class Model:  # what predict_spans reads of a trained probe that found nothing
        labels, temperature, shift, lexicon, heads, edges, summary = ["DATE"], 1.0, 0.0, None, None, None, {}

        class calibration:
            @staticmethod
            def confidence(raw, source):
                return raw

        class tagger:
            cfg = SpanLabelConfig(deid_prior="on")

            @staticmethod
            def featurize(docs):
                return [_words(d.text, 0, 2, doc=i) for i, d in enumerate(docs)], []

            @staticmethod
            def score(head, chunks):
                return [np.log(np.full((3, 3), [0.98, 0.01, 0.01])) for _ in chunks], [np.ones(2) for _ in chunks]

        head = None

    low = spans_module.predict_spans(Model, pool, SpanLabelConfig(deid_prior="on", min_confidence=0.5), seeds=seeds)
    assert low.spans == [[]]
    kept = spans_module.predict_spans(Model, pool, SpanLabelConfig(deid_prior="on", min_confidence=0.2), seeds=seeds)
    assert [(s.start, s.end, s.attrs["confidence"]) for s in kept.spans[0]] == [(5, 15, 0.25)]


# ------------------------------------------------------------------ the pool

def test_a_seed_in_the_span_pool_is_neither_suggested_nor_ranked(tiny_model_dir):
    """As for document labels: a pool document with a seed's id and text is already labelled,
    and must not take a place in the annotation queue."""
    from domainfm.label.spans import suggest_spans
    from test_label_spans import _pattern_docs

    seeds = _pattern_docs(6)
    pool = [Document(d.id, d.text) for d in _pattern_docs(3, offset=20)] + [seeds[0]]
    cfg = SpanLabelConfig(encoder=str(tiny_model_dir), max_tokens=32, overlap=4, calibration_folds=0,
                          span_heads=False, deid_prior="off")
    result = suggest_spans(seeds, pool, cfg)
    assert [d.id for d in result.docs] == ["d20", "d21", "d22"]
    assert sorted(result.ranks) == [1, 2, 3]
    assert [(d.id, reason.split(" (")[0]) for d, reason in result.rejected] == [("d0", "already labelled")]


def test_a_pool_document_with_a_seeds_id_and_another_text_is_an_id_collision(tiny_model_dir):
    """The document path refused it; the span path suggested for it, and its export and a later
    import would have merged two documents under one id."""
    from domainfm.label.spans import suggest_spans
    from test_label_spans import _pattern_docs

    seeds = _pattern_docs(6)
    other = Document(seeds[1].id, seeds[1].text + " More text.")
    pool = [Document(d.id, d.text) for d in _pattern_docs(2, offset=20)] + [other]
    cfg = SpanLabelConfig(encoder=str(tiny_model_dir), max_tokens=32, overlap=4, calibration_folds=0,
                          span_heads=False, deid_prior="off")
    result = suggest_spans(seeds, pool, cfg)
    assert [d.id for d in result.docs] == ["d20", "d21"]
    assert [reason.split(" (")[0] for _, reason in result.rejected] == ["id collision with a seed"]
    assert "seed 2 has this id" in result.rejected[0][1] and seeds[1].id not in result.rejected[0][1]
    assert result.summary["id_collisions"] == 1


# ------------------------------------------------------------------ exports and round trips

SPAN_DOCS = [
    Document("n1", "Pt 😀 has asthma\r\nand acute renal failure.", spans=[]),
    Document("n2", "No fever; cough × 2 days.", spans=[]),
]
SUGGESTED = [
    [Span(9, 15, "Disease", {"confidence": 0.8123, "source": "model"}),   # after an astral character
     Span(21, 40, "Disease", {"confidence": 0.41, "source": "lexicon"}),  # after a CRLF
     Span(27, 32, "Organ", {"confidence": 0.3, "source": "model"})],  # another label may overlap
    [Span(3, 8, "Disease", {"confidence": 0.6, "source": "model"}), Span(10, 15, "Disease", {"confidence": 0.7})],
]


@pytest.mark.parametrize("kind", ["labelstudio", "prodigy"])
def test_span_exports_carry_the_suggestions_exactly_and_import_back_the_same(kind, tmp_path):
    import json

    from domainfm.corpus import read_documents
    from domainfm.corpus.importing import import_corpus
    from domainfm.label.export import export_path_for, write_span_export

    path = write_span_export(kind, export_path_for(tmp_path / "s.jsonl", kind), SPAN_DOCS,
                             labels=["Disease", "Organ"], predicted=SUGGESTED, ranks=[2, 1], scores=[0.4, 0.9])
    raw = json.loads(path.read_text(encoding="utf-8")) if kind == "labelstudio" else \
        [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    assert [t["data"]["doc_id"] if kind == "labelstudio" else t["meta"]["id"] for t in raw] == ["n2", "n1"]  # rank order
    for task, doc, spans in zip(raw, SPAN_DOCS[::-1], SUGGESTED[::-1]):
        if kind == "labelstudio":
            regions = task["predictions"][0]["result"]
            got = [(r["value"]["start"], r["value"]["end"], r["value"]["labels"], r["value"]["text"], r.get("score"))
                   for r in regions]
        else:
            got = [(x["start"], x["end"], [x["label"]], doc.text[x["start"]:x["end"]], x.get("score"))
                   for x in task["spans"]]
        assert got == [(s.start, s.end, [s.label], doc.text[s.start:s.end], s.attrs.get("confidence")) for s in spans]
    result = import_corpus(kind, path, tmp_path / "back.jsonl", {"use_predictions": True})
    back = {d.id: d for d in read_documents(result.out)}
    for doc, spans in zip(SPAN_DOCS, SUGGESTED):
        assert back[doc.id].text == doc.text
        assert sorted(s.key for s in back[doc.id].spans) == sorted(s.key for s in spans)


def test_document_exports_carry_label_confidence_and_rank_exactly(tmp_path):
    import csv
    import json

    from domainfm.label.export import export_path_for, write_export

    seeds, pool = _corpus(6, seed=1), _pool(2, seed=2)
    result = suggest_labels(seeds, pool, LabelConfig(c_grid=(4.0,), cv_folds=3, lsa_dims=0), encoder=FakeEncoder())
    by_id = {s.doc_id: s for s in result.suggestions}
    written = {kind: write_export(kind, export_path_for(tmp_path / "s.jsonl", kind), result.docs, result.suggestions,
                                  classes=result.classes, multilabel=False, model_version="t")
               for kind in ("labelstudio", "prodigy", "csv")}
    tasks = json.loads(written["labelstudio"].read_text())
    assert [t["meta"]["rank"] for t in tasks] == list(range(1, len(pool) + 1))
    for t in tasks:
        s = by_id[t["data"]["doc_id"]]
        assert t["predictions"][0]["result"][0]["value"]["choices"] == [s.label]
        assert t["predictions"][0]["score"] == round(s.confidence, 4)
    for line in written["prodigy"].read_text().splitlines():
        task = json.loads(line)
        s = by_id[task["meta"]["id"]]
        assert task["accept"] == [s.label] and task["meta"]["rank"] == s.rank
    with open(written["csv"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["rank"]) for r in rows] == list(range(1, len(pool) + 1))
    for r in rows:
        s = by_id[r["id"]]
        assert (r["label"], float(r["confidence"])) == (s.label, round(s.confidence, 4))
        assert r["alternatives"] == "|".join(f"{a['label']}:{a['score']:.4f}" for a in s.alternatives)


def test_seed_features_are_not_reused_for_other_texts_of_the_same_ids_and_lengths(tiny_model_dir, monkeypatch):
    """The seeds' features were cached by their ids and text lengths: a served project's task
    edited in place (same id, same length, other words) trained on the old words' features."""
    from domainfm.label import spans
    from domainfm.label.span_tagger import SpanTagger
    from test_label_spans import _pattern_docs

    featurized = []
    original = SpanTagger.featurize

    def spy(self, docs, *args, **kwargs):
        featurized.append([d.text for d in docs])
        return original(self, docs, *args, **kwargs)

    monkeypatch.setattr(SpanTagger, "featurize", spy)
    spans._FEATURE_CACHE.clear()
    cfg = SpanLabelConfig(encoder=str(tiny_model_dir), max_tokens=32, overlap=4, calibration_folds=0,
                          span_heads=False, deid_prior="off")
    seeds = _pattern_docs(4)
    spans.train_span_model(seeds, cfg)
    edited = [Document(d.id, d.text.upper(), spans=list(d.spans)) for d in seeds]  # same ids and lengths
    spans.train_span_model(edited, cfg)
    assert featurized[-1] == [d.text for d in edited]
