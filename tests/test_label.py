"""Few-shot labeling assistant: calibration math, confident learning, ranking, exports, API, CLI.

The math runs on a fake encoder (hashed bag of words); the embedded MiniLM runs end to end on
tiny inputs only, so the file stays well under a minute.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import random

import numpy as np
import pytest

from domainfm.config import from_dict, to_dict
from domainfm.corpus.document import Document
from domainfm.errors import ConfigError, DomainFMError
from domainfm.label import LabelConfig, check_labels, label_file, suggest_labels, to_labelstudio, to_prodigy
from domainfm.label.active import near_duplicate_share, rank_pool, uncertainty
from domainfm.label.check import confident_joint, find_label_issues, find_multilabel_issues
from domainfm.label.export import csv_rows, labelstudio_config, write_export
from domainfm.label.methods import LSA, contrastive_pairs, label_anchors
from domainfm.metrics import expected_calibration_error, fit_temperature, softmax

# ------------------------------------------------------------------------------- fixtures

TOPICS = {
    "cardio": "heart chest angina troponin stent atrial murmur aorta".split(),
    "neuro": "seizure stroke migraine neuron cortex tremor aphasia gait".split(),
    "gastro": "liver colon ulcer bowel hepatic gastric pancreas reflux".split(),
}
FILLER = "patient presented with history of the and was seen in clinic today".split()


class FakeEncoder:
    """Hashed bag of words -> unit vector: deterministic, instant, topic-separable."""

    name = "fake"

    def __init__(self, dim: int = 64):
        self.dim = dim
        self.calls = 0

    def _word(self, word: str) -> np.ndarray:
        seed = int(hashlib.md5(word.encode()).hexdigest()[:8], 16)
        return np.random.default_rng(seed).standard_normal(self.dim)

    def encode(self, texts):
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for w in text.split():
                out[i] += self._word(w)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def _make_doc(i: int, label: str, rng: random.Random, noise: float = 0.5) -> Document:
    own = TOPICS[label]
    other = [w for k, ws in TOPICS.items() if k != label for w in ws]
    words = [rng.choice(own) for _ in range(6)] + [rng.choice(FILLER) for _ in range(6)]
    words += [rng.choice(other) for _ in range(int(6 * noise))]
    rng.shuffle(words)
    return Document(id=f"{label}-{i}", text=" ".join(words), label=label)


def _corpus(n_per: int, seed: int = 0, noise: float = 0.5) -> list[Document]:
    rng = random.Random(seed)
    return [_make_doc(i, label, rng, noise) for label in TOPICS for i in range(n_per)]


FAST = dict(c_grid=(1.0, 8.0), cv_folds=4)


@pytest.fixture()
def seeds_and_pool():
    seeds = _corpus(8, seed=1)
    pool = _corpus(30, seed=2)
    # ids of their own: a pool document under a seed's id is rejected as an id collision
    gold = {f"pool-{d.id}": d.label for d in pool}
    pool = [Document(id=f"pool-{d.id}", text=d.text) for d in pool]
    return seeds, pool, gold


# --------------------------------------------------------------------------------- config

@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"method": "setfitt"}, "did you mean 'setfit'"),
        ({"task": "multilabel"}, "'task'"),
        ({"diversity": 1.5}, "'diversity'"),
        ({"cv_folds": 1}, "'cv_folds'"),
        ({"c_grid": ()}, "'c_grid'"),
        ({"setfit_lr": 0}, "'setfit_lr'"),
        ({"pseudo_weight": 2.0}, "'pseudo_weight'"),
        ({"max_tokens": 3}, "'max_tokens'"),
        ({"label_descriptions": {"cardio": "  "}}, "the description of 'cardio' is not one"),
        ({"label_descriptions": ["cardio"]}, "'label_descriptions'"),
        ({"description_weight": 0}, "'description_weight'"),
        ({"lsa_dims": -1}, "'lsa_dims'"),
        ({"lsa_weight": 0}, "'lsa_weight'"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        LabelConfig(**kwargs)


def test_config_round_trips_through_dict():
    cfg = LabelConfig(method="setfit", seed=3, c_grid=(1.0, 4.0), label_descriptions={"ltd": "limitation of liability"})
    assert from_dict(LabelConfig, to_dict(cfg)) == cfg
    with pytest.raises(ConfigError, match="did you mean 'diversity'"):
        from_dict(LabelConfig, {"diversty": 0.3})


# ----------------------------------------------------------------------- calibration math

def test_fit_temperature_recovers_the_true_temperature():
    rng = np.random.default_rng(0)
    true_logits = rng.standard_normal((4000, 4)) * 2.0
    y = np.array([rng.choice(4, p=p) for p in softmax(true_logits)])
    for t in (0.5, 3.0):
        assert fit_temperature(true_logits * t, y) == pytest.approx(t, rel=0.15)


def test_a_few_seeds_all_right_do_not_make_every_suggestion_certain():
    from domainfm.label.config import LabelConfig
    from domainfm.label.methods import cross_validate

    # four seeds in two tight, far-apart clusters: the folds get every one right
    X = np.array([[1.0, 0.0], [0.98, 0.05], [0.0, 1.0], [0.05, 0.97]]) * 10
    Y = np.array([0, 0, 1, 1])
    logits = np.array([[9.0, -9.0], [8.0, -8.0], [-9.0, 9.0], [-8.0, 8.0]])
    assert softmax(logits / fit_temperature(logits, Y)).max() > 0.999  # unsmoothed: certain
    smoothed = softmax(logits / fit_temperature(logits, Y, smoothing=0.2)).max(1)
    assert 0.8 < smoothed.min() and smoothed.max() < 0.95
    cv = cross_validate(X, Y, None, multilabel=False, n_classes=2, cfg=LabelConfig(self_training=0, lsa_dims=0))
    assert (cv.probs.argmax(1) == Y).all() and cv.probs.max() < 0.95
    # many rows: the smoothing fades and the fit is the plain one
    rng = np.random.default_rng(0)
    many = rng.standard_normal((2000, 3)) * 2.0
    y = np.array([rng.choice(3, p=p) for p in softmax(many)])
    assert fit_temperature(many, y, smoothing=1 / 2001) == pytest.approx(fit_temperature(many, y), rel=0.02)


def test_expected_calibration_error():
    assert expected_calibration_error(np.array([0.9] * 10), np.array([1] * 9 + [0])) == pytest.approx(0.0)
    assert expected_calibration_error(np.array([1.0, 1.0]), np.array([0, 0])) == pytest.approx(1.0)


def test_contrastive_pairs_are_balanced_and_targets_match_labels():
    Y = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    pairs = contrastive_pairs(Y, multilabel=False, pairs_per_seed=4, seed=0)
    assert len(pairs) == 2 * 2 * len(Y)
    assert all((Y[i] == Y[j]) == (t == 1.0) and i != j for i, j, t in pairs)
    assert sum(t for *_, t in pairs) == len(pairs) / 2
    M = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 1], [0, 1, 1]])
    for i, j, t in contrastive_pairs(M, multilabel=True, pairs_per_seed=4, seed=0):
        inter, union = (M[i] & M[j]).sum(), (M[i] | M[j]).sum()
        assert t == pytest.approx(inter / union)


# ---------------------------------------------------------------------- confident learning

def test_confident_learning_flags_planted_errors_with_the_right_correction():
    rng = np.random.default_rng(0)
    n, k = 300, 3
    true = rng.integers(0, k, n)
    probs = np.full((n, k), 0.05)
    probs[np.arange(n), true] = 0.9
    probs += rng.uniform(0, 0.05, (n, k))
    probs /= probs.sum(1, keepdims=True)
    given = true.copy()
    flipped = rng.choice(n, 15, replace=False)
    given[flipped] = (true[flipped] + 1) % k
    flags = find_label_issues(probs, given, ["a", "b", "c"])
    assert {f.index for f in flags} == set(flipped.tolist())
    assert all(f.suggested == "abc"[true[f.index]] for f in flags)
    joint, thresholds, _ = confident_joint(probs, given)
    assert joint.sum() - np.trace(joint) == 15  # items under every threshold are not counted
    assert (thresholds > 0.7).all()


def test_multilabel_check_suggests_adding_or_removing_a_label():
    given = np.array([[1, 0]] * 10 + [[0, 1]] * 10)
    probs = np.where(given == 1, 0.9, 0.1).astype(float)
    given[0, 1] = 1  # a spurious second label
    flags = find_multilabel_issues(probs, given, ["x", "y"])
    assert [(f.index, f.given, f.suggested) for f in flags] == [(0, "+y", "-y")]


def test_a_given_label_that_is_the_models_first_choice_is_never_flagged():
    """Per-class thresholds can count a 0.49 for B as confident (B's seeds average 0.3) while A
    keeps 0.51: the given A is still the model's first choice, so it is no label error."""
    probs = np.array([[0.95, 0.05]] * 6 + [[0.51, 0.49]] + [[0.7, 0.3]] * 6)
    given = np.array([0] * 7 + [1] * 6)
    _, _, confident = confident_joint(probs, given)
    assert confident[6] == 1  # the confident joint alone counts it off the diagonal
    flags = find_label_issues(probs, given, ["A", "B"])
    assert 6 not in {f.index for f in flags}
    assert all(f.margin > 0 for f in flags)


# --------------------------------------------------------------------------------- ranking

def test_rank_mixes_uncertainty_with_diversity():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((1, 16))
    dupes = base + 0.01 * rng.standard_normal((10, 16))  # ten near-copies, all uncertain
    others = rng.standard_normal((10, 16))  # distinct, moderately uncertain
    X = np.vstack([dupes, others])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    probs = np.vstack([np.tile([0.5, 0.5], (10, 1)), np.tile([0.7, 0.3], (10, 1))])
    pure = rank_pool(probs, X, diversity=0.0)
    mixed = rank_pool(probs, X, diversity=0.5)
    for ranks in (pure, mixed):
        assert sorted(ranks.tolist()) == list(range(1, 21))
    assert set(np.argsort(pure)[:10]) == set(range(10))  # uncertainty only: the duplicates first
    assert ranks_of_top(mixed, 5) & set(range(10)) != set() and len(ranks_of_top(mixed, 5) & set(range(10))) == 1
    assert near_duplicate_share(mixed, X, top=5) == 0.0 < near_duplicate_share(pure, X, top=5)
    assert uncertainty(np.array([[0.5, 0.5], [1.0, 0.0]])).tolist() == [1.0, 0.0]


def ranks_of_top(ranks, k):
    return set(np.argsort(ranks)[:k].tolist())


# ----------------------------------------------------------------------- API (fake encoder)

def test_suggest_labels_end_to_end_with_fake_encoder(seeds_and_pool):
    seeds, pool, gold = seeds_and_pool
    pool = pool + [Document(id="empty", text="   ")]
    result = suggest_labels(seeds, pool, LabelConfig(**FAST), encoder=FakeEncoder())
    assert [d for d, _ in result.rejected][0].id == "empty"
    assert len(result.suggestions) == len(pool) - 1
    accuracy = np.mean([s.label == gold[s.doc_id] for s in result.suggestions])
    assert accuracy > 0.8
    assert sorted(s.rank for s in result.suggestions) == list(range(1, len(pool)))
    s = result.suggestions[0]
    assert 0 < s.confidence <= 1 and len(s.alternatives) == 2
    assert s.confidence >= s.alternatives[0]["score"] >= s.alternatives[1]["score"]
    cv = result.summary["cross_validation"]
    assert 0.5 < cv["expected_accuracy"] <= 1 and cv["temperature"] > 0
    record = result.records()[0]
    assert Document.from_dict(record).meta["suggestion"]["label"] == s.label  # still a valid document
    assert result.summary["pool"]["read"] == len(pool)


def test_label_anchors_one_row_per_described_label():
    enc = FakeEncoder()
    desc = {"neuro": "seizure stroke", "renal": "kidney"}  # "renal" is not a class: ignored
    vectors, targets, weight = label_anchors(enc, ["cardio", "neuro"], desc, multilabel=False, weight=2.0)
    assert targets.tolist() == [1] and weight == 2.0
    assert np.allclose(vectors, enc.encode(["seizure stroke"]))
    _, multi, _ = label_anchors(enc, ["cardio", "neuro"], desc, multilabel=True, weight=1.0)
    assert multi.tolist() == [[0, 1]]
    assert label_anchors(enc, ["cardio"], desc, multilabel=False, weight=1.0) is None
    assert label_anchors(enc, ["cardio"], None, multilabel=False, weight=1.0) is None


def test_label_descriptions_steer_the_head_when_seeds_are_few():
    """Two seeds per label drawn with heavy cross-topic noise; the description of each label
    (its topic words) moves the suggestions towards the right label, and the out-of-fold
    estimate still covers the seeds only."""
    seeds = _corpus(2, seed=11, noise=1.5)
    pool = _corpus(40, seed=12, noise=1.0)
    gold = {d.id: d.label for d in pool}
    pool = [Document(id=d.id, text=d.text) for d in pool]
    desc = {label: " ".join(words) for label, words in TOPICS.items()}
    cfg = dict(FAST, self_training=0)
    plain = suggest_labels(seeds, pool, LabelConfig(**cfg), encoder=FakeEncoder())
    described = suggest_labels(seeds, pool, LabelConfig(**cfg, label_descriptions=desc), encoder=FakeEncoder())

    def gold_probability(result):
        index = {c: i for i, c in enumerate(result.classes)}
        return np.mean([p[index[gold[d.id]]] for d, p in zip(result.docs, result.probabilities)])

    def accuracy(result):
        return np.mean([s.label == gold[s.doc_id] for s in result.suggestions])

    assert gold_probability(described) > gold_probability(plain) + 0.05
    assert accuracy(described) > accuracy(plain) + 0.05
    assert described.summary["cross_validation"]["folds"] == 2  # 2 seeds per label, anchors not held out


def test_lsa_is_fitted_without_labels_and_reaches_the_head(seeds_and_pool):
    seeds, pool, gold = seeds_and_pool
    texts = [d.text for d in seeds + pool]
    lsa = LSA(8, seed=0).fit(texts)
    vectors = lsa.transform(texts[:5])
    assert vectors.shape == (5, 8) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert lsa.transform([]).shape == (0, 8)
    assert LSA(8).fit(["the and of", "the of"]) is None  # stop words only: nothing to reduce
    desc = {label: " ".join(words) for label, words in TOPICS.items()}
    with_words = suggest_labels(seeds, pool, LabelConfig(**FAST, lsa_dims=8, label_descriptions=desc), encoder=FakeEncoder())
    without = suggest_labels(seeds, pool, LabelConfig(**FAST, lsa_dims=0, label_descriptions=desc), encoder=FakeEncoder())
    assert not np.allclose(with_words.probabilities, without.probabilities)
    assert np.mean([s.label == gold[s.doc_id] for s in with_words.suggestions]) > 0.8
    assert np.allclose(with_words.embeddings, without.embeddings)  # ranking keeps the sentence vectors


def test_same_seed_same_output(seeds_and_pool):
    seeds, pool, _ = seeds_and_pool
    a = suggest_labels(seeds, pool, LabelConfig(**FAST), encoder=FakeEncoder())
    b = suggest_labels(seeds, pool, LabelConfig(**FAST), encoder=FakeEncoder())
    assert [x.to_dict() for x in a.suggestions] == [x.to_dict() for x in b.suggestions]
    assert [x.rank for x in a.suggestions] == [x.rank for x in b.suggestions]


def test_label_with_one_seed_is_reported_not_fatal(seeds_and_pool):
    seeds, pool, _ = seeds_and_pool
    seeds = seeds + [Document(id="lonely", text="kidney renal nephron", label="nephro")]
    result = suggest_labels(seeds, pool, LabelConfig(**FAST), encoder=FakeEncoder())
    assert result.summary["labels_left_out"] == {"nephro": 1}
    assert "nephro" not in result.classes
    with pytest.raises(DomainFMError, match="at least 2 labels"):
        suggest_labels(seeds[:1] + seeds[-1:], pool, LabelConfig(**FAST), encoder=FakeEncoder())


def test_descriptions_of_labels_no_seed_has_are_reported(seeds_and_pool):
    seeds, pool, _ = seeds_and_pool
    desc = {seeds[0].label: "what it is", "cardiology": "heart"}
    result = suggest_labels(seeds, pool, LabelConfig(**FAST, label_descriptions=desc), encoder=FakeEncoder())
    assert result.summary["descriptions_unused"] == ["cardiology"]


def test_labels_that_look_like_identifiers_are_counted_not_printed(seeds_and_pool):
    from domainfm.corpus.summary import label_counts

    _, pool, _ = seeds_and_pool
    seeds = [Document(id=f"s{i}", text=f"note {i}", label=f"MRN-{1000 + i}") for i in range(20)]
    with pytest.raises(DomainFMError, match="20 distinct values, 20 of them on one document only") as err:
        suggest_labels(seeds, pool, LabelConfig(**FAST), encoder=FakeEncoder())
    assert "MRN" not in str(err.value)
    assert label_counts({"cardio": 3, "neuro": 1}) == "cardio=3, neuro=1"  # classes are still named


def test_auto_task_follows_the_field_most_seeds_use(seeds_and_pool):
    seeds, pool, _ = seeds_and_pool
    odd = Document(id="odd", text="kidney renal nephron", labels=["nephro", "renal"])
    result = suggest_labels(seeds + [odd], pool, LabelConfig(**FAST), encoder=FakeEncoder())
    assert not result.multilabel and result.summary["task"] == "single"  # one odd seed is left out
    assert result.summary["seeds_skipped"]


def test_multilabel_seeds(seeds_and_pool):
    seeds, pool, gold = seeds_and_pool
    multi = []
    for i, d in enumerate(seeds):
        labels = [d.label] + (["followup"] if i % 2 == 0 else [])
        text = d.text + (" followup revisit" if i % 2 == 0 else "")
        multi.append(Document(id=d.id, text=text, labels=labels))
    multi.append(Document(id="rare", text="x", labels=["rare"]))
    result = suggest_labels(multi, pool, LabelConfig(**FAST), encoder=FakeEncoder())
    assert result.multilabel and result.summary["task"] == "multi"
    assert result.summary["labels_left_out"] == {"rare": 1}
    assert all(s.labels is not None and all(0 <= a["score"] <= 1 for a in s.alternatives) for s in result.suggestions)
    hits = np.mean([gold[s.doc_id] == s.label for s in result.suggestions])
    assert hits > 0.6
    assert "expected_micro_f1" in result.summary["cross_validation"]


def test_a_blank_label_in_labels_is_no_class(seeds_and_pool):
    """A blank 'label' is no label in single-label mode; a blank entry in 'labels' must not
    become a class either (it reached the Label Studio config as <Choice value=""/>)."""
    seeds, pool, _ = seeds_and_pool
    multi = [Document(id=d.id, text=d.text, labels=[d.label] + ([""] if i < 3 else [])) for i, d in enumerate(seeds)]
    result = suggest_labels(multi, pool, LabelConfig(**FAST), encoder=FakeEncoder())
    assert result.multilabel and "" not in result.classes
    assert result.summary["seeds_skipped"] == {"a blank label in 'labels'": 3}


def test_check_labels_finds_planted_errors():
    docs = _corpus(20, seed=5, noise=0.3)
    flipped = {"cardio-0": "neuro", "neuro-1": "gastro", "gastro-2": "cardio"}
    docs = [Document(id=d.id, text=d.text, label=flipped.get(d.id, d.label)) for d in docs]
    result = check_labels(docs, LabelConfig(**FAST), encoder=FakeEncoder())
    found = {f["id"]: f["suggested"] for f in result.flags}
    for doc_id, wrong in flipped.items():
        assert found.get(doc_id) == doc_id.split("-")[0]
    assert len(result.flags) <= 6  # few false alarms
    assert result.summary["confident_joint"] is not None


# --------------------------------------------------------------------------------- exports

def _validate(instance, schema, path="$"):
    """A small JSON-schema subset (type, required, properties, items, enum, minItems)."""
    types = {"object": dict, "array": list, "string": str, "number": (int, float), "integer": int}
    if "type" in schema:
        assert isinstance(instance, types[schema["type"]]), f"{path}: expected {schema['type']}"
    if "enum" in schema:
        assert instance in schema["enum"], f"{path}: {instance!r} not in {schema['enum']}"
    for key in schema.get("required", []):
        assert key in instance, f"{path}: missing {key!r}"
    for key, sub in schema.get("properties", {}).items():
        if key in instance:
            _validate(instance[key], sub, f"{path}.{key}")
    if "items" in schema:
        assert len(instance) >= schema.get("minItems", 0), f"{path}: too few items"
        for i, item in enumerate(instance):
            _validate(item, schema["items"], f"{path}[{i}]")
    if schema.get("additionalProperties") is False:
        extra = set(instance) - set(schema.get("properties", {}))
        assert not extra, f"{path}: unexpected keys {extra}"


# Label Studio "Import pre-annotated data": task = {data, predictions[{model_version, score,
# result[{from_name, to_name, type, value}]}]}; choices regions carry value.choices.
LABELSTUDIO_TASKS = {
    "type": "array", "items": {
        "type": "object", "required": ["data", "predictions"],
        "properties": {
            "data": {"type": "object", "required": ["text"]},
            "meta": {"type": "object"},
            "predictions": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["result"],
                "properties": {
                    "model_version": {"type": "string"}, "score": {"type": "number"},
                    "result": {"type": "array", "minItems": 1, "items": {
                        "type": "object", "required": ["from_name", "to_name", "type", "value"],
                        "properties": {
                            "id": {"type": "string"}, "from_name": {"type": "string"},
                            "to_name": {"type": "string"}, "type": {"enum": ["choices"]},
                            "value": {"type": "object", "required": ["choices"], "properties": {
                                "choices": {"type": "array", "minItems": 1, "items": {"type": "string"}}}},
                        },
                    }},
                },
            }},
        },
    },
}
# Prodigy textcat "choice" tasks: text, options[{id, text}], accept[ids], meta.
PRODIGY_CHOICE = {
    "type": "object", "required": ["text", "options", "accept"],
    "properties": {
        "text": {"type": "string"}, "meta": {"type": "object"},
        "options": {"type": "array", "minItems": 2, "items": {
            "type": "object", "required": ["id", "text"],
            "properties": {"id": {"type": "string"}, "text": {"type": "string"}}}},
        "accept": {"type": "array", "items": {"type": "string"}},
        "config": {"type": "object", "properties": {"choice_style": {"enum": ["single", "multiple"]}}},
    },
    "additionalProperties": False,
}
PRODIGY_BINARY = {
    "type": "object", "required": ["text", "label"],
    "properties": {"text": {"type": "string"}, "label": {"type": "string"}, "meta": {"type": "object"}},
    "additionalProperties": False,
}


def test_exports_match_the_documented_formats(seeds_and_pool, tmp_path):
    seeds, pool, _ = seeds_and_pool
    result = suggest_labels(seeds, pool[:12], LabelConfig(**FAST), encoder=FakeEncoder())
    tasks = to_labelstudio(result.docs, result.suggestions, model_version="v1")
    _validate(tasks, LABELSTUDIO_TASKS)
    assert [t["meta"]["rank"] for t in tasks] == sorted(t["meta"]["rank"] for t in tasks)
    config = labelstudio_config(result.classes)
    choices = {r["value"]["choices"][0] for t in tasks for r in t["predictions"][0]["result"]}
    assert choices <= set(result.classes) and '<Choices name="label" toName="text"' in config
    for task in to_prodigy(result.docs, result.suggestions, result.classes):
        _validate(task, PRODIGY_CHOICE)
        assert set(task["accept"]) <= {o["id"] for o in task["options"]}
    for task in to_prodigy(result.docs, result.suggestions, result.classes, style="binary"):
        _validate(task, PRODIGY_BINARY)
    path = write_export("csv", tmp_path / "s.csv", result.docs, result.suggestions, classes=result.classes,
                        multilabel=False, model_version="v1")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 12 and rows[0]["rank"] == "1" and rows == csv_rows(result.docs, result.suggestions) or \
        [r["id"] for r in rows] == [r["id"] for r in csv_rows(result.docs, result.suggestions)]
    with pytest.raises(ConfigError, match="did you mean 'prodigy'"):
        write_export("prodigi", tmp_path / "x", result.docs, result.suggestions, classes=result.classes,
                     multilabel=False, model_version="v1")
    # a pool text or id a spreadsheet would run as a formula is written as text
    hostile = [dataclasses.replace(d, id="=1+2" if i == 0 else "-17" if i == 1 else d.id,
                                   text=f"=cmd|' /C calc'!A0 {d.text}" if i == 0 else f"- {d.text}")
               for i, d in enumerate(result.docs)]
    path = write_export("csv", tmp_path / "h.csv", hostile, result.suggestions, classes=result.classes,
                        multilabel=False, model_version="v1")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    cells = [v for row in rows for v in row.values()]
    assert "'=1+2" in cells and not any(c.startswith(("=", "+", "-", "@")) and c != "-17" for c in cells)
    assert sum(c.startswith("'- ") for c in cells) == len(hostile) - 1
    # a signed number runs nothing: an id such as "-17" still matches the JSONL's
    assert "-17" in [row["id"] for row in rows]


# ------------------------------------------------------------- seed file: rejects and counts

def _write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def test_bad_and_unlabelled_seeds_are_rejected_counted_and_reported(seeds_and_pool, tmp_path, monkeypatch):
    """Seed records are read like the pool: invalid ones and ones that cannot train go to the
    reject file tagged 'seed:', and the seed counts reconcile (read = used + rejected)."""
    from domainfm.label import assist
    from domainfm.label.stage import result_of

    monkeypatch.setattr(assist, "get_encoder", lambda cfg: FakeEncoder())
    seeds, pool, _ = seeds_and_pool
    lines = [json.dumps(d.to_dict()) for d in seeds]
    lines += [json.dumps({"id": "nolab", "text": "Zorblax heart stent"}),
              json.dumps({"id": "intlab", "text": "Zorblax liver", "label": 5}),
              json.dumps({"id": seeds[0].id, "text": "Zorblax again", "label": "cardio"}),
              "{broken Zorblax",
              json.dumps({"id": "lonely", "text": "kidney renal", "label": "nephro"})]
    _write_lines(tmp_path / "seeds.jsonl", lines)
    _write_lines(tmp_path / "pool.jsonl", [json.dumps(d.to_dict()) for d in pool[:10]])
    run = label_file(tmp_path / "seeds.jsonl", tmp_path / "pool.jsonl", tmp_path / "out.jsonl", LabelConfig(**FAST))
    assert (run.counts.read, run.counts.written, run.counts.rejected) == (10, 10, 0)  # the pool's counts
    assert (run.seeds.read, run.seeds.written, run.seeds.rejected) == (len(seeds) + 5, len(seeds), 5)
    rejected = [json.loads(line) for line in run.rejects.read_text().splitlines()]
    assert all(r["reason"].startswith("seed: ") for r in rejected)
    by_id = {r["id"]: r for r in rejected}
    assert "no 'label'" in by_id["nolab"]["reason"] and by_id["nolab"]["location"] == f"seeds.jsonl:{len(seeds) + 1}"
    assert "'label'" in by_id["intlab"]["reason"]
    assert "duplicate id" in by_id[seeds[0].id]["reason"]
    assert "fewer than 2 seeds" in by_id["lonely"]["reason"]
    assert any(r["id"] is None and "broken JSON" in r["reason"] for r in rejected)
    counts = json.loads(run.manifest.read_text())["counts"]
    assert counts["seeds"]["read"] == counts["seeds"]["used"] + counts["seeds"]["rejected"] == len(seeds) + 5
    assert counts["seeds"]["reject_reasons"]["no 'label'"] == 1 and counts["reconciles"]
    notes = "\n".join(result_of(run).notes)
    assert f"seeds: read {len(seeds) + 5} = used {len(seeds)} + rejected 5" in notes and "no 'label': 1" in notes
    assert "Zorblax" not in notes
    # seeds that cannot train at all: the error says how many were invalid or unlabelled
    _write_lines(tmp_path / "nolab.jsonl", [json.dumps({"id": "a", "text": "heart"}), "{broken"])
    with pytest.raises(DomainFMError, match="nolab.jsonl: 2 records, 1 invalid, 1 without a label"):
        label_file(tmp_path / "nolab.jsonl", tmp_path / "pool.jsonl", tmp_path / "o2.jsonl", LabelConfig(**FAST))


def test_no_output_export_or_config_is_written_over_an_input(seeds_and_pool, tmp_path):
    """`-o sugg.jsonl --export csv` writes sugg.csv, which may be the seed file; Label Studio's
    config beside its export, and a --label-descriptions or --dictionary file, are inputs too.
    Each is refused before any work, and nothing is written."""
    from domainfm.label.span_config import SpanLabelConfig
    from domainfm.label.span_runner import label_spans_file

    seeds, pool, _ = seeds_and_pool
    folder = tmp_path / "ex"
    folder.mkdir()
    _write_lines(folder / "sugg.csv", [json.dumps(d.to_dict()) for d in seeds])
    _write_lines(folder / "sugg.prodigy.jsonl", [json.dumps(d.to_dict()) for d in pool[:5]])
    _write_lines(folder / "pool.jsonl", [json.dumps(d.to_dict()) for d in pool[:5]])
    (folder / "desc.json").write_text('{"cardio": "the heart"}')
    (folder / "terms.txt").write_text("angina\n")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    cases = [
        lambda: label_file(folder / "sugg.csv", folder / "pool.jsonl", folder / "sugg.jsonl", exports=["csv"]),
        lambda: label_file(folder / "sugg.csv", folder / "sugg.prodigy.jsonl", folder / "sugg.jsonl", exports=["prodigy"]),
        lambda: label_file(folder / "sugg.csv", folder / "pool.jsonl", folder / "desc.json",
                           read_also=[folder / "desc.json"]),
        lambda: label_file(folder / "sugg.csv", folder / "pool.jsonl", folder / "terms.jsonl", exports=["labelstudio"],
                           read_also=[folder / "terms.labelstudio.json.config.xml"]),
        lambda: label_spans_file(folder / "sugg.csv", folder / "pool.jsonl", folder / "terms.txt",
                                 SpanLabelConfig(dictionaries=(str(folder / "terms.txt"),))),
    ]
    for case in cases:
        with pytest.raises(DomainFMError, match="input"):
            case()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    with pytest.raises(ConfigError, match="--check .* none to export"):
        label_file(folder / "sugg.csv", None, folder / "checked.jsonl", exports=["csv"], check=True)


def test_span_seed_records_that_are_invalid_are_rejected_and_counted(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from domainfm.label import spans
    from domainfm.label.span_runner import label_spans_file
    from domainfm.label.stage import span_result_of

    def fake_suggest(seeds, pool, cfg, on_stage=None):
        return SimpleNamespace(rejected=[], records=lambda: [d.to_dict() for d in pool], docs=pool, labels=["X"],
                               spans=[[] for _ in pool], ranks=list(range(len(pool))), scores=[[] for _ in pool],
                               summary={"labels": ["X"], "seed_documents": len(seeds), "seed_spans": 1,
                                        "suggested_spans": 0, "calibration": {}})

    monkeypatch.setattr(spans, "suggest_spans", fake_suggest)
    _write_lines(tmp_path / "seeds.jsonl", [
        json.dumps({"id": "s1", "text": "Dr Lee", "spans": [{"start": 3, "end": 6, "label": "X"}]}),
        json.dumps({"id": "s2", "text": "Dr Lee", "spans": [{"start": 3, "end": 99, "label": "X"}]}),
        "not json"])
    _write_lines(tmp_path / "pool.jsonl", [json.dumps({"id": "p1", "text": "Dr Roe"})])
    run = label_spans_file(tmp_path / "seeds.jsonl", tmp_path / "pool.jsonl", tmp_path / "out.jsonl")
    assert (run.seeds.read, run.seeds.written, run.seeds.rejected) == (3, 1, 2)
    assert run.counts.reconciles and run.counts.rejected == 0
    rejected = [json.loads(line) for line in run.rejects.read_text().splitlines()]
    assert [r["location"] for r in rejected] == ["seeds.jsonl:2", "seeds.jsonl:3"]
    assert all(r["reason"].startswith("seed: ") for r in rejected)
    assert json.loads(run.manifest.read_text())["counts"]["seeds"]["used"] == 1
    assert any(line.startswith("seeds: read 3 = used 1 + rejected 2") for line in span_result_of(run).notes)


# ------------------------------------------------------------------ real MiniLM, tiny inputs

@pytest.fixture(autouse=True)
def _one_torch_thread(request):
    """On a shared 2-core machine one torch thread is faster than two fighting for cores."""
    if "clinical_corpus" not in request.fixturenames:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _tiny_clinical(path, n_per_class, skip=0):
    from domainfm.corpus import read_documents

    by = {}
    for d in read_documents(path):
        by.setdefault(d.label, []).append(d)
    out = []
    for label in sorted(by):
        for d in by[label][skip:skip + n_per_class]:
            # The chief complaint and the start of the HPI carry the topic; short = fast.
            start = d.text.find("CHIEF COMPLAINT")
            out.append(Document(id=d.id, text=d.text[max(0, start):max(0, start) + 400], label=d.label))
    return out


def test_file_run_with_minilm_writes_outputs_rejects_and_manifest(clinical_corpus, tmp_path):
    from domainfm.corpus import read_documents, write_documents

    seeds = _tiny_clinical(clinical_corpus, 3)
    pool = [Document(id=d.id, text=d.text) for d in _tiny_clinical(clinical_corpus, 2, skip=5)]
    pool.append(Document(id="blank", text=""))
    write_documents(tmp_path / "seeds.jsonl", seeds)
    write_documents(tmp_path / "pool.jsonl", pool)
    run = label_file(tmp_path / "seeds.jsonl", tmp_path / "pool.jsonl", tmp_path / "out.jsonl",
                     LabelConfig(cv_folds=3, c_grid=(4.0,)), exports=["labelstudio", "prodigy", "csv"])
    assert run.counts.read == len(pool) and run.counts.reconciles and run.counts.rejected == 1
    out = list(read_documents(run.out))
    assert len(out) == len(pool) - 1 and all("suggestion" in d.meta and "rank" in d.meta for d in out)
    rejected = [json.loads(line) for line in run.rejects.read_text().splitlines()]
    assert rejected[0]["id"] == "blank" and "empty" in rejected[0]["reason"]
    manifest = json.loads(run.manifest.read_text())
    assert manifest["stage"] == "label" and manifest["counts"]["reconciles"]
    assert manifest["summary"]["cross_validation"]["folds"] == 3
    assert {p.suffix for p in run.exports} == {".json", ".jsonl", ".csv"}
    _validate(json.loads(run.exports[0].read_text()), LABELSTUDIO_TASKS)


def test_cli_label_and_check(cli, clinical_corpus, tmp_path):
    from domainfm.corpus import write_documents

    seeds = _tiny_clinical(clinical_corpus, 3)
    pool = [Document(id=d.id, text=d.text) for d in _tiny_clinical(clinical_corpus, 1, skip=5)]
    write_documents(tmp_path / "seeds.jsonl", seeds)
    write_documents(tmp_path / "pool.jsonl", pool)
    (tmp_path / "desc.json").write_text(json.dumps({d.label: d.label.replace("_", " ") for d in seeds}))
    res = cli("label", "--labeled", tmp_path / "seeds.jsonl", "--pool", tmp_path / "pool.jsonl",
              "-o", tmp_path / "out.jsonl", "--export", "prodigy", "--seed", 3,
              "--label-descriptions", tmp_path / "desc.json")
    assert res.exit_code == 0, res.output
    manifest = json.loads((tmp_path / "out.manifest.json").read_text())
    assert manifest["config"]["label"]["label_descriptions"] == json.loads((tmp_path / "desc.json").read_text())
    assert "read 6 = written 6 + rejected 0" in res.output
    assert all(d.text[:30] not in res.output for d in seeds + pool)  # no document text on the console
    assert (tmp_path / "out.prodigy.jsonl").is_file()
    res = cli("label", "--labeled", tmp_path / "seeds.jsonl", "-o", tmp_path / "check.jsonl", "--check")
    assert res.exit_code == 0, res.output
    assert "flagged" in res.output
    res = cli("label", "--labeled", tmp_path / "seeds.jsonl", "--pool", tmp_path / "pool.jsonl",
              "-o", tmp_path / "o.jsonl", "--method", "setfitt")
    assert res.exit_code == 2 and "did you mean 'setfit'" in res.output
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "empty.json").write_text('{"x": ""}')
    for name, needle in (("bad.json", "--label-descriptions"), ("empty.json", "'label_descriptions'")):
        res = cli("label", "--labeled", tmp_path / "seeds.jsonl", "--pool", tmp_path / "pool.jsonl",
                  "-o", tmp_path / "o.jsonl", "--label-descriptions", tmp_path / name)
        assert res.exit_code == 2 and needle in res.output and "Traceback" not in res.output


def test_setfit_tunes_the_encoder_for_a_few_steps(tiny_bert_config, tiny_tokenizer, tmp_path):
    """The SetFit path end to end on a 2-layer BERT built from config (seconds, offline)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import BertModel

    from domainfm.label import SentenceEncoder

    torch.manual_seed(0)
    BertModel(tiny_bert_config).save_pretrained(tmp_path / "tiny")
    tiny_tokenizer.save_pretrained(tmp_path / "tiny")
    model = SentenceTransformer(str(tmp_path / "tiny"), device="cpu")
    model.max_seq_length = 64
    encoder = SentenceEncoder(model, name="tiny")
    seeds = [Document(id=f"s{i}", text=text, label=label) for i, (text, label) in enumerate([
        ("chest pain radiating to the left arm", "clin"), ("aspirin heparin cardiology consult", "clin"),
        ("patient denies fever cough or shortness of breath", "clin"),
        ("either party may terminate this agreement on notice", "legal"),
        ("governed by the laws of the state of new york", "legal"),
        ("the court holds that there has been a violation", "legal")])]
    pool = [Document(id="p1", text="woman with hypertension and diabetes"),
            Document(id="p2", text="article 7 termination of the agreement")]
    cfg = LabelConfig(method="setfit", setfit_max_steps=4, setfit_batch_size=4, setfit_pairs_per_seed=4,
                      c_grid=(4.0,), self_training=0)
    before = encoder.encode([d.text for d in pool])
    result = suggest_labels(seeds, pool, cfg, encoder=encoder)
    assert result.summary["model"] == "tiny+setfit"
    assert len(result.suggestions) == 2 and result.summary["cross_validation"]["folds"] == 2
    assert not np.allclose(result.embeddings, before, atol=1e-5)  # the encoder was tuned...
    assert np.allclose(encoder.encode([d.text for d in pool]), before)  # ...on a copy
    check = check_labels(seeds, cfg, encoder=encoder)
    assert check.summary["checked"] == 6
    # With self-training, each calibration fold embeds the pool with its own tuned encoder and
    # self-trains like the final head (a plain fold head left the suggestions overconfident).
    from domainfm.label import methods

    stages, pools = [], []
    real = methods.fit_self_trained

    def spy(X, Y, X_pool, **kw):
        pools.append(None if X_pool is None else len(X_pool))
        return real(X, Y, X_pool, **kw)

    methods.fit_self_trained = spy
    try:
        suggest_labels(seeds, pool, LabelConfig(method="setfit", setfit_max_steps=2, setfit_batch_size=4,
                                                setfit_pairs_per_seed=4, c_grid=(4.0,), self_training=2),
                       encoder=encoder, on_stage=stages.append)
    finally:
        methods.fit_self_trained = real
    assert stages.count("embedding the pool with the fold's encoder") == 2
    # calibration folds: the pool plus that fold's held-out seeds; the final head: the pool
    assert pools and all(n is not None for n in pools) and pools[-1] == 2 and max(pools) == 2 + 3
    # The frozen vectors persist between runs (text hashes only, no text in the file).
    encoder.save_cache(tmp_path / "vectors.npz")
    fresh = SentenceEncoder(model, name="tiny")
    assert fresh.load_cache(tmp_path / "vectors.npz") == len(encoder._cache) > 0
    fresh.model = None  # a cache hit must not reach the model
    assert np.allclose(fresh.encode([d.text for d in pool]), before)
    with pytest.raises(DomainFMError, match="embeddings of encoder"):
        SentenceEncoder(model, name="other").load_cache(tmp_path / "vectors.npz")


def test_two_runs_of_one_config_write_manifests_equal_outside_their_run_section(seeds_and_pool, tmp_path, monkeypatch):
    # the summary's seconds sat at the top of the manifest: two identical runs always differed there
    from domainfm.label import assist

    monkeypatch.setattr(assist, "get_encoder", lambda cfg: FakeEncoder())
    seeds, pool, _ = seeds_and_pool
    _write_lines(tmp_path / "seeds.jsonl", [json.dumps(d.to_dict()) for d in seeds])
    _write_lines(tmp_path / "pool.jsonl", [json.dumps(d.to_dict()) for d in pool[:10]])
    manifests = []
    for _ in range(2):
        run = label_file(tmp_path / "seeds.jsonl", tmp_path / "pool.jsonl", tmp_path / "out.jsonl", LabelConfig(**FAST))
        manifests.append(json.loads(run.manifest.read_text()))
    assert "seconds" in manifests[0]["run"] and "seconds" not in manifests[0]["summary"]
    assert "created" not in manifests[0]
    assert {k: v for k, v in manifests[0].items() if k != "run"} == {k: v for k, v in manifests[1].items() if k != "run"}
