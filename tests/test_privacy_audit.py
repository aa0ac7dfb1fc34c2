"""Model privacy audit on tiny models built from config: canaries in the pretrain stream and in
the manifest only, exposure, membership inference, the regurgitation scan (vault and planted),
the release gate, the CLI and the planted-identifier check (no secret in any log, report or
error message)."""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import byte_level_bpe, wordpiece_tokenizer

from domainfm.config import from_dict
from domainfm.corpus import Document, Span, write_documents
from domainfm.errors import ConfigError, OutputError
from domainfm.pretrain import PretrainConfig
from domainfm.privacy_audit import CanaryConfig, PrivacyAuditConfig, PrivacyGateConfig
from domainfm.privacy_audit.canaries import make_canaries
from domainfm.privacy_audit.membership import roc_auc, tpr_at_fpr
from domainfm.privacy_audit.regurgitation import chance_quantile

KEY = "k" * 40
SYLLABLES = ("ba", "ko", "ri", "mu", "te", "sa", "lo", "ni", "pe", "du", "ga", "fi", "zo", "ve", "ha", "cu")
N_CANDIDATES = 99  # max exposure log2(100) = 6.64
REPEATS = [1, 4, 16]


# tiny models run fastest on one thread (conftest.one_torch_thread)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _words(rng: random.Random, n: int) -> list[str]:
    return ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))) for _ in range(n)]


def _corpus(seed: int, n: int, prefix: str) -> list[Document]:
    """Made-up notes: random words from a fixed made-up vocabulary (each note is unique), with
    a planted record number (span ``MRN``) in the middle, after a rare word."""
    rng = random.Random(seed)
    vocab = _words(random.Random(0), 300)
    docs = []
    for i in range(n):
        words = [rng.choice(vocab) for _ in range(16)]
        owner = "".join(rng.choice(SYLLABLES) for _ in range(4))  # a rare word: the identifier's own context
        body = " ".join(words[:8]) + f" {owner} "
        planted = str(rng.randint(1_000_000, 9_999_999))
        docs.append(Document(f"{prefix}{i}", body + planted + " " + " ".join(words[8:]) + ".",
                             meta={"patient_id": f"{prefix}{i}"},
                             spans=[Span(len(body), len(body) + len(planted), "MRN")]))
    return docs


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tokenizer and an untrained 2-layer BERT masked LM, plus three disjoint note sets."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    root = tmp_path_factory.mktemp("privacy")
    train, holdout, other = _corpus(1, 16, "t"), _corpus(2, 16, "h"), _corpus(3, 16, "o")
    canary_texts = [c.text for c in make_canaries(CanaryConfig(enabled=True, per_repeat=3), 99)]
    # digits stay single characters, so every number of n digits has n tokens (like reference
    # secrets and alternatives, which the tokenizer never saw either)
    tokenizer = wordpiece_tokenizer([d.text for d in train + holdout + other] + canary_texts,
                                    alphabet="abcdefghijklmnopqrstuvwxyz0123456789()-/,.'")
    torch.manual_seed(0)
    base = root / "base"
    BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=128, max_position_embeddings=128)).save_pretrained(base)
    tokenizer.save_pretrained(base)
    paths = {}
    for name, docs in (("train", train), ("holdout", holdout), ("other", other)):
        paths[name] = root / f"{name}.jsonl"
        write_documents(paths[name], docs)
    return {"root": root, "base": base, **paths}


def _pretrain_config(world, data: Path, canaries: bool, epochs: int = 40) -> PretrainConfig:
    return from_dict(PretrainConfig, {
        "model": {"name": str(world["base"])},
        "data": {"paths": [str(data)], "eval_fraction": 0.0},
        "masking": {"seq_len": 64, "mlm_probability": 0.3, "packing": False},
        "train": {"epochs": epochs, "batch_size": 4, "lr": 3e-3, "warmup_ratio": 0.05, "seed": 5, "log_every": 20},
        "canaries": {"enabled": canaries, "repeats": REPEATS},
        "allow_identified_data": True,
    })


@pytest.fixture(scope="module")
def trained(world):
    """Trained for many epochs on 16 notes with canaries repeated 1/4/16/64 times."""
    from domainfm.pretrain import pretrain

    return pretrain(_pretrain_config(world, world["train"], True), world["root"] / "trained")


@pytest.fixture(scope="module")
def control(world):
    """The same architecture trained on 16 other notes and no canaries."""
    from domainfm.pretrain import pretrain

    return pretrain(_pretrain_config(world, world["other"], False), world["root"] / "control")


def assert_no_membership_evidence(attack: dict) -> None:
    """A control model (never trained on either side) must show no membership: the lower end of
    its AUC interval at or below chance. One-sided on purpose: a control's AUC is chance only up
    to how its errors happen to fall on the two sets, and a two-sided 95% check failed CI about
    one run in twenty on an AUC significantly *below* 0.5, which leaks nothing."""
    assert attack["auc_ci"][0] <= 0.5, attack


def _audit_config(**gate) -> PrivacyAuditConfig:
    return PrivacyAuditConfig(n_candidates=N_CANDIDATES, regurgitation_candidates=9, n_bootstrap=300,
                              mask_passes=7, gate=PrivacyGateConfig(**gate))


# --------------------------------------------------------------------------------------------
# Canaries in the training stream


def test_canaries_are_seeded_distinct_and_shaped():
    cfg = CanaryConfig(enabled=True)
    a, b = make_canaries(cfg, 1), make_canaries(cfg, 1)
    assert a == b and make_canaries(cfg, 2) != a
    assert len(a) == 12 and sorted({c.repeats for c in a}) == [1, 4, 16, 64]
    assert len({c.secret for c in a}) == 12 and len({c.prefix for c in a}) == 12
    for c in a:
        s, e = c.span
        assert c.text[s:e] == c.secret
        assert re.fullmatch({"mrn": r"\d{7}", "phone": r"\(\d{3}\) \d{3}-\d{4}",
                             "name_date": r"[A-Z][a-z]+ [A-Z][a-z]+, born \d\d/\d\d/\d{4}"}[c.format], c.secret)


@pytest.mark.parametrize("section, message", [
    ({"repeats": [0]}, "canaries.repeats"),
    ({"formats": ["ssn"]}, "canaries.formats"),
    ({"per_repeat": 0}, "canaries.per_repeat"),
])
def test_bad_canary_settings_are_named(section, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(CanaryConfig, section)


def test_bad_audit_settings_are_named():
    with pytest.raises(ConfigError, match="n_candidates"):
        PrivacyAuditConfig(n_candidates=3)
    with pytest.raises(ConfigError, match="max_mia_auc"):
        PrivacyGateConfig(max_mia_auc=1.5)


def test_canaries_are_in_the_stream_and_the_manifest_only(world, trained):
    from domainfm.pretrain.data import build_corpus
    from transformers import AutoTokenizer

    manifest = json.loads((trained.out_dir / "manifest.json").read_text())
    recorded = manifest["canaries"]
    assert len(recorded) == 9 and sum(c["repeats"] for c in recorded) == 21 * 3
    assert trained.metrics["data"]["canary_insertions"] == 63
    assert trained.metrics["data"]["train_documents"] == 16
    # every copy is in the packed training stream
    tokenizer = AutoTokenizer.from_pretrained(world["base"])
    corpus = build_corpus(_pretrain_config(world, world["train"], True), tokenizer, "mlm")
    stream = tokenizer.decode(np.concatenate([ids[1:] for ids in corpus.train.ids]).tolist())  # without [CLS]
    for c in recorded:
        found = stream.replace(" ", "").count(c["secret"].lower().replace(" ", ""))
        assert c["repeats"] - 1 <= found <= c["repeats"]  # the last, partial block is dropped
    # ... and nowhere else in the output folder
    for path in trained.out_dir.rglob("*"):
        if path.is_file() and path.name != "manifest.json" and path.suffix in (".json", ".jsonl", ".yaml", ".txt"):
            text = path.read_text(errors="replace")
            assert not any(c["secret"] in text for c in recorded), path.name


# --------------------------------------------------------------------------------------------
# Metrics


def test_auc_and_tpr_at_fpr_match_definitions():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1, 1, 300), rng.normal(0, 1, 200)
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert roc_auc(pos, neg) == pytest.approx(pairs)
    assert roc_auc(np.ones(5), np.ones(5)) == 0.5
    assert roc_auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    neg = np.arange(100.0)  # threshold: the 2nd highest negative (1 of 100 above it may pass)
    assert tpr_at_fpr(np.array([97.5, 98.5, 99.5, 50.0]), neg) == 0.5


def test_chance_quantile_is_the_poisson_binomial_quantile():
    assert chance_quantile([0.5] * 10, 0.5) == 5
    from scipy.stats import binom

    assert chance_quantile([0.05] * 200) == int(binom.ppf(0.99, 200, 0.05))


# --------------------------------------------------------------------------------------------
# The audit: trained vs never trained


def test_memorising_model_is_flagged(world, trained, tmp_path):
    from domainfm.privacy_audit import audit_privacy

    result = audit_privacy(trained.out_dir, world["train"], world["holdout"], tmp_path / "report",
                           _audit_config(max_exposure=5.0, max_mia_auc=0.6))
    report = result.report
    top = math.log2(N_CANDIDATES + 1)
    heavy = [c for c in report["exposure"]["canaries"] if c["repeats"] == max(REPEATS)]
    assert len(heavy) == 3 and all(c["exposure"] >= top - 1.0 for c in heavy), heavy  # first or second of 100
    assert report["exposure"]["max_possible"] == pytest.approx(top, abs=1e-3)
    mia = report["membership"]
    assert mia["attacks"]["loss"]["auc"] > 0.9 and mia["attacks"]["reference"]["auc"] > 0.9
    assert mia["attacks"]["reference"]["auc_ci"][0] > 0.75
    assert not result.passed
    failed = {c["check"] for c in report["gate"]["checks"] if c["status"] == "failed"}
    assert failed == {"max_exposure", "max_mia_auc"}
    assert result.statement.startswith("Privacy audit FAILED")
    assert (tmp_path / "report" / "summary.md").read_text().startswith("# Privacy audit")


def test_model_never_trained_on_them_is_not_flagged(world, trained, control, tmp_path):
    from domainfm.privacy_audit import audit_privacy

    canaries = json.loads((trained.out_dir / "manifest.json").read_text())["canaries"]
    # no vault or planted identifiers here: regurgitation is switched off, or the gate could not pass
    result = audit_privacy(control.out_dir, world["train"], world["holdout"], tmp_path / "report",
                           _audit_config(max_exposure=None, max_mia_auc=0.75, max_regurgitated=None),
                           canaries=canaries)
    report = result.report
    exposures = [c["exposure"] for c in report["exposure"]["canaries"]]
    assert np.mean(exposures) < 3.0  # chance: about 1.4
    for attack in report["membership"]["attacks"].values():
        assert_no_membership_evidence(attack)
    assert result.passed, report["gate"]


# --------------------------------------------------------------------------------------------
# Regurgitation


def test_planted_identifiers_are_regurgitated_by_the_trained_model_only(world, trained, control):
    from domainfm.privacy_audit import audit_privacy

    flagged = audit_privacy(trained.out_dir, world["train"], world["holdout"], None, _audit_config(),
                            planted=world["train"]).report["regurgitation"]
    assert flagged["source"] == "planted identifiers" and flagged["probes"] == 16
    assert flagged["scored"] >= 12 and flagged["regurgitated"] >= 0.5 * flagged["scored"]  # chance: 1 in 10
    # the base model (random weights here) ranks them first about as often as chance; the sign test
    # over the probes only one of the two ranks first is what the gate reads
    assert flagged["target_only"] - flagged["reference_only"] >= 5, flagged
    assert flagged["beyond_chance"] == max(0, flagged["target_only"] - flagged["sign_test_99th_percentile"])
    assert flagged["by_label"]["MRN"]["regurgitated"] == flagged["regurgitated"]
    clean = audit_privacy(control.out_dir, world["train"], world["holdout"], None, _audit_config(),
                          planted=world["train"], canaries=[]).report
    assert clean["regurgitation"]["beyond_chance"] == 0 and clean["regurgitation"]["target_only"] <= 3
    assert clean["regurgitation"]["regurgitated"] <= clean["regurgitation"]["chance_99th_percentile"]
    assert "note" in clean["exposure"]


class _PrefersReal:
    """A stand-in scorer that prefers every real identifier (as any LM prefers a real town to a
    made-up one), with ``memorised`` ones ranked first by a wider margin."""

    def __init__(self, real: set[str], memorised: set[str] = frozenset()):
        self.real, self.memorised = real, memorised

    def span_token_counts(self, texts, spans):
        return np.ones(len(texts), dtype=int)

    def span_logprobs(self, texts, spans):
        values = [t[a:b] for t, (a, b) in zip(texts, spans)]
        # an identifier it neither knows nor memorised lands mid-field among the alternatives
        # ("Fakeplace<k>" scores -(k + 1)); scored by value, not by row, since the scan batches
        # every probe's candidates into one call
        return np.array([2.0 if v in self.memorised else 1.0 if v in self.real
                         else -float(v[len("Fakeplace"):]) - 1 if v.startswith("Fakeplace") else -4.5
                         for v in values])


def test_regurgitation_is_calibrated_against_the_base_model():
    """Real identifiers outrank made-up alternatives for any model: uniform chance would call that
    memorisation, the base model's ranking does not."""
    from domainfm.privacy_audit.regurgitation import Probe, regurgitation_scan

    probes = [Probe(f"seen in Townville{i} today", 8, 8 + len(f"Townville{i}"), "CITY") for i in range(30)]
    real = {p.value for p in probes}
    alternatives = lambda probe, n: [f"Fakeplace{k}" for k in range(n)]  # noqa: E731
    kwargs = dict(n_candidates=9, max_probes=100, seed=1, alternatives=alternatives)
    uncalibrated = regurgitation_scan(_PrefersReal(real), probes, **kwargs)
    assert uncalibrated["regurgitated"] == 30 and uncalibrated["beyond_chance"] > 20
    assert "uniform chance" in uncalibrated["calibration"]
    same = regurgitation_scan(_PrefersReal(real), probes, reference=_PrefersReal(real), **kwargs)
    assert same["reference_regurgitated"] == 30 and same["target_only"] == 0 and same["beyond_chance"] == 0
    # a model that memorised 20 of them, against a base that knows none of them
    memorised = {p.value for p in probes[:20]}
    flagged = regurgitation_scan(_PrefersReal(set(), memorised), probes, reference=_PrefersReal(set()), **kwargs)
    assert flagged["regurgitated"] == 20 and flagged["target_only"] == 20 and flagged["reference_only"] == 0
    assert flagged["beyond_chance"] == 20 - flagged["sign_test_99th_percentile"] > 0


def test_vault_probes_put_each_original_back_with_its_type(tmp_path, monkeypatch):
    from domainfm.deid.surrogates import SurrogateGenerator
    from domainfm.deid.transform import apply_operator
    from domainfm.deid.vault import Vault
    from domainfm.privacy_audit.regurgitation import probes_from_vault

    monkeypatch.setenv("DOMAINFM_VAULT_KEY", KEY)
    text = "Seen by Dr. Ambrose Vance on 03/14/2021 in clinic; call 555-201-3344 later."
    doc = Document("n1", text)
    dets = [(text.index(v), text.index(v) + len(v), label, 1.0)
            for v, label in (("Ambrose Vance", "DOCTOR"), ("03/14/2021", "DATE"), ("555-201-3344", "PHONE"))]
    with Vault(tmp_path / "v.db", KEY.encode()) as vault:
        record = apply_operator(doc, dets, "surrogate", SurrogateGenerator(KEY.encode(), vault), vault=vault).to_dict()
        edited = {**record, "id": "n1", "text": record["text"] + " "}
        unknown = {**record, "id": "n2"}
        probes, counts = probes_from_vault([record, edited, unknown], vault, context_chars=10)
        # a label that is no PHI type could be anything (a name): never carried into the report
        relabelled = {**record, "phi_spans": [{**p, "label": "Wombat Thornquist"} for p in record["phi_spans"]]}
        assert {p.label for p in probes_from_vault([relabelled], vault, context_chars=10)[0]} == {"UNKNOWN"}
    assert counts == {"records": 3, "records_in_vault": 1, "records_changed": 1, "originals": 3}
    assert [(p.label, p.value) for p in probes] == [("DOCTOR", "Ambrose Vance"), ("DATE", "03/14/2021"),
                                                    ("PHONE", "555-201-3344")]
    assert "Ambrose" not in record["text"]  # the context around each original stays de-identified
    assert all(len(p.text) <= len(p.value) + 20 for p in probes)


# --------------------------------------------------------------------------------------------
# CLI, gate and the planted-identifier check


def _secrets(world, trained) -> list[str]:
    from domainfm.corpus import read_documents

    canaries = json.loads((trained.out_dir / "manifest.json").read_text())["canaries"]
    planted = [d.text[s.start:s.end] for d in read_documents(world["train"]) for s in d.spans]
    return [c["secret"] for c in canaries] + planted


def test_cli_fails_the_gate_with_numbers_and_never_shows_a_secret(cli, world, trained, tmp_path):
    out = tmp_path / "report"
    result = cli("audit-privacy", trained.out_dir, "--train", world["train"], "--holdout", world["holdout"],
                 "--planted", world["train"], "-o", out, "--n_candidates", N_CANDIDATES,
                 "--regurgitation_candidates", 9, "--mask_passes", 7, "--gate.max_mia_auc", 0.6)
    assert result.exit_code == 1, result.output
    assert "Privacy audit FAILED" in result.output
    error = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(error) == 1
    assert re.search(r"max_exposure 9\.000 cannot be exceeded with 99 reference secrets \(at most 6\.644 bits\)",
                     error[0])  # the default threshold needs more candidates than the 99 given here
    assert re.search(r"membership-inference AUC [01]\.\d{3} > max_mia_auc 0\.600", error[0])
    # regurgitation beyond the base model is a sign test over 16 probes here: named when it fails
    assert "max_regurgitated" not in error[0] or re.search(
        r"identifiers ranked first beyond their baseline \(held-out originals, else the base model, else chance\) "
        r"\d+ > max_regurgitated 0", error[0])
    texts = {"console": result.output}
    files = list(out.iterdir()) + [p for p in trained.out_dir.rglob("*") if p.name != "manifest.json"]
    for path in files:
        if path.is_file() and path.suffix in (".json", ".jsonl", ".md", ".yaml", ".txt"):
            texts[str(path)] = path.read_text(errors="replace")
    assert str(out / "manifest.json") in texts
    from domainfm.audit.privacy import scan_phi

    assert not scan_phi(texts[str(out / "report.json")]) and not scan_phi(texts[str(out / "summary.md")])
    for secret in _secrets(world, trained):
        for where, text in texts.items():
            assert secret not in text, f"a secret appears in {where}"
    # user errors: one line, exit 2, no secret
    both = cli("audit-privacy", trained.out_dir, "--train", world["train"], "--holdout", world["holdout"],
               "--planted", world["train"], "--vault", tmp_path / "v.db", "-o", tmp_path / "x")
    assert both.exit_code == 2 and both.output.startswith("error: give either a vault")
    same = cli("audit-privacy", trained.out_dir, "--train", world["train"], "--holdout", world["train"], "-o",
               tmp_path / "y")
    assert same.exit_code == 2 and "held-out set must be disjoint" in same.output
    assert not any(secret in both.output + same.output for secret in _secrets(world, trained))


def test_pretrain_cli_output_never_shows_a_canary(cli, world, tmp_path):
    import yaml

    from domainfm.config import to_dict

    cfg = to_dict(_pretrain_config(world, world["train"], True, epochs=1))
    (tmp_path / "task.yaml").write_text(yaml.safe_dump(cfg))
    result = cli("pretrain", tmp_path / "task.yaml", "-o", tmp_path / "m")
    assert result.exit_code == 0, result.output
    assert "9 canaries inserted 63 times" in result.output
    canaries = json.loads((tmp_path / "m" / "manifest.json").read_text())["canaries"]
    logs = result.output + (tmp_path / "m" / "train_log.jsonl").read_text() + (tmp_path / "m" / "metrics.json").read_text()
    assert not any(c["secret"] in logs or c["prefix"] in logs for c in canaries)


def test_pipeline_privacy_stage_fails_the_run_and_stops_finetuning(world, tmp_path):
    from domainfm import pipeline as pl
    from domainfm.corpus import read_documents
    from domainfm.errors import DomainFMError

    both = tmp_path / "notes.jsonl"
    write_documents(both, list(read_documents(world["train"])) + list(read_documents(world["holdout"])))
    pretrain = to_pipeline(_pretrain_config(world, both, True))
    pretrain["data"] = {"eval_fraction": 0.5}
    data = {"run_dir": str(tmp_path / "run"), "import": {"format": "jsonl", "src": str(both)},
            "pretrain": pretrain,
            "privacy": {"n_candidates": N_CANDIDATES, "mask_passes": 7, "n_bootstrap": 200,
                        "gate": {"max_mia_auc": 0.6, "max_exposure": None}},
            "finetune": {"task": "classification", "model": {"name": str(world["base"])}}}
    with pytest.raises(DomainFMError, match=r"stage 'privacy' failed: privacy gate failed: membership-inference "
                                            r"AUC [01]\.\d{3} > max_mia_auc 0\.600"):
        pl.run_pipeline(pl.pipeline_from_dict(data))
    record = json.loads((tmp_path / "run" / "privacy" / "stage.json").read_text())
    assert record["status"] == "failed"
    report = json.loads((tmp_path / "run" / "privacy" / "report.json").read_text())
    members, nonmembers = report["data"]["train_documents"], report["data"]["holdout_documents"]
    assert members + nonmembers == 32 and min(members, nonmembers) >= 8
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert {s["name"]: s["status"] for s in run["stages"]}["finetune"] == "not run"


@pytest.mark.parametrize("section, expected", [
    ({}, {"vault": "notes.vault"}),
    ({"planted": "planted.jsonl"}, {"planted": "planted.jsonl"}),
    ({"holdout": "held.jsonl", "vault": "other.vault"}, {"holdout": "held.jsonl", "vault": "other.vault"}),
])
def test_the_privacy_section_takes_its_files_and_the_deid_vault(tmp_path, section, expected):
    """``privacy.holdout``/``vault``/``planted`` are keys of the section (they were refused as
    unknown, so a pipeline with a ``deid.vault`` and a ``privacy`` section did not load), the
    deid vault is probed unless planted identifiers are given, and each file is a stage input."""
    from domainfm import pipeline as pl

    vault = tmp_path / "vault"
    config = pl.pipeline_from_dict({
        "run_dir": str(tmp_path / "run"), "import": {"format": "jsonl", "src": "notes.jsonl"},
        "deid": {"vault": str(vault / "notes.vault")}, "pretrain": {"train": {"max_steps": 2}},
        "privacy": {k: str(vault / v) for k, v in section.items()}})
    privacy = config.stages["privacy"]
    for key in ("holdout", "vault", "planted"):
        want = vault / expected[key] if key in expected else None
        assert getattr(privacy, key) == want, key
    assert set(config.inputs["privacy"][2:]) == {vault / v for v in expected.values()}


def to_pipeline(cfg) -> dict:
    from domainfm.config import to_dict

    data = to_dict(cfg)
    data.pop("data")
    return data


# --------------------------------------------------------------------------------------------
# Fine-tuned classifiers: canaries tied to a label, the task loss as the membership signal

CLASSIFIER_CANARIES = {"enabled": True, "formats": ["mrn"], "repeats": [16], "per_repeat": 12, "seed": 3}
# Ten labels: a held-out note's random label is guessed right 1 time in 10, so membership shows.
CLASSES = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]


def _labelled(path: Path, out: Path, seed: int) -> Path:
    """The notes with random labels: only memorising them lowers the training loss."""
    from domainfm.corpus import read_documents

    docs = list(read_documents(path))
    labels = [CLASSES[i % len(CLASSES)] for i in range(len(docs))]  # every class present, in random order
    random.Random(seed).shuffle(labels)
    docs = [Document(d.id, d.text, meta=d.meta, label=label) for d, label in zip(docs, labels)]
    write_documents(out, docs)
    return out


def _finetune_classifier(world, train: Path, evaluation: Path, out: Path, canaries: bool):
    from domainfm.finetune import TaskConfig, finetune

    cfg = from_dict(TaskConfig, {
        "task": "classification",
        "model": {"name": str(world["base"]), "max_length": 64},
        "data": {"train": str(train), "eval": str(evaluation)},
        "labels": {"names": CLASSES, "min_examples": 1},
        "long_documents": {"strategy": "truncate"},
        "train": {"full_finetune": True, "lr": 3e-3, "epochs": 80, "batch_size": 8, "warmup_ratio": 0.05,
                  "seed": 5, "checkpoint": False, "eval_every": 0},
        "canaries": {**CLASSIFIER_CANARIES, "enabled": canaries},
        "allow_identified_data": True,
    })
    return finetune(cfg, out)


@pytest.fixture(scope="module")
def classifiers(world):
    root = world["root"]
    train = _labelled(world["train"], root / "train-labelled.jsonl", 1)
    holdout = _labelled(world["holdout"], root / "holdout-labelled.jsonl", 2)
    other = _labelled(world["other"], root / "other-labelled.jsonl", 3)
    # eval_every 0: the last (most memorised) weights are kept whatever the evaluation file says;
    # finetune refuses an evaluation file that is the training one
    trained = _finetune_classifier(world, train, holdout, root / "classifier", True)
    control = _finetune_classifier(world, other, holdout, root / "classifier-control", False)
    return {"train": train, "holdout": holdout, "trained": trained, "control": control}


def test_a_memorising_classifier_is_flagged_and_its_control_is_not(classifiers, tmp_path):
    from domainfm.privacy_audit import audit_privacy

    manifest = json.loads((classifiers["trained"].out_dir / "manifest.json").read_text())
    canaries = manifest["canaries"]
    assert len(canaries) == 12 and {c["label"] for c in canaries} <= set(CLASSES)
    cfg = _audit_config(max_exposure=4.5, max_mia_auc=0.75)
    flagged = audit_privacy(classifiers["trained"].out_dir, classifiers["train"], classifiers["holdout"],
                            tmp_path / "trained", cfg)
    report = flagged.report
    assert report["model"]["objective"] == "task:classification"
    exposures = [c["exposure"] for c in report["exposure"]["canaries"]]
    # chance is about 1.4 bits of 6.64; a classifier needs only the digits that separate canaries
    # sharing a sentence, so it ranks its canaries high but rarely first (an MLM must predict them all)
    assert np.mean(exposures) > 3.0 and max(exposures) > 4.5, exposures
    loss = report["membership"]["attacks"]["loss"]
    # Above the gate, with evidence (AUC 0.984 here). Until the tokenizers were built instead of
    # trained, the vocabulary changed from one interpreter to the next (huggingface/tokenizers#1794)
    # and so did this seeded run: 1.0 / 0.957 / 0.984 / 0.891; now it is the same in every process.
    assert loss["auc"] > 0.75 and loss["auc_ci"][0] > 0.5, loss
    assert "reference" not in report["membership"]["attacks"]
    assert not flagged.passed
    clean = audit_privacy(classifiers["control"].out_dir, classifiers["train"], classifiers["holdout"],
                          tmp_path / "control",  # a classifier's regurgitation is never measured: switched off
                          _audit_config(max_exposure=None, max_mia_auc=0.75, max_regurgitated=None),
                          canaries=canaries)
    assert np.mean([c["exposure"] for c in clean.report["exposure"]["canaries"]]) < 2.0
    assert_no_membership_evidence(clean.report["membership"]["attacks"]["loss"])
    assert clean.passed, clean.report["gate"]
    for out in (tmp_path / "trained", tmp_path / "control"):
        text = (out / "report.json").read_text() + (out / "summary.md").read_text()
        assert not any(c["secret"] in text for c in canaries)


def test_canaries_are_refused_for_ner_tasks():
    from domainfm.finetune import TaskConfig

    with pytest.raises(ConfigError, match="canaries.enabled applies to classification and multilabel"):
        from_dict(TaskConfig, {"task": "ner", "data": {"train": "x.jsonl", "label_field": "spans"},
                               "canaries": {"enabled": True}})


# --------------------------------------------------------------------------------------------
# Causal language models: the secret's log-likelihood given its prefix


@pytest.fixture(scope="module")
def gpt2_base(world):
    """A 2-layer GPT-2 whose byte-level BPE tokenizer was built from the notes and canary
    sentences (each digit stays one token, as for the MLM)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from domainfm.corpus import read_documents

    texts = [d.text for name in ("train", "holdout", "other") for d in read_documents(world[name])]
    texts += [c.text for c in make_canaries(CanaryConfig(enabled=True, per_repeat=3), 99)]
    tok = byte_level_bpe(texts, ["<|endoftext|>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    torch.manual_seed(0)
    folder = world["root"] / "gpt2-base"
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=64, n_layer=2, n_head=2, n_positions=128,
                               bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _causal_config(world, base: Path, data: Path, canaries: bool) -> PretrainConfig:
    return from_dict(PretrainConfig, {
        "model": {"name": str(base), "objective": "causal"},
        "data": {"paths": [str(data)], "eval_fraction": 0.0},
        "masking": {"seq_len": 64, "packing": False},
        "train": {"epochs": 40, "batch_size": 4, "lr": 3e-3, "warmup_ratio": 0.05, "seed": 5, "log_every": 50},
        "canaries": {"enabled": canaries, "repeats": REPEATS},
        "allow_identified_data": True,
    })


def test_a_memorising_causal_lm_is_flagged_and_its_control_is_not(world, gpt2_base, tmp_path):
    from domainfm.pretrain import pretrain
    from domainfm.privacy_audit import audit_privacy

    trained = pretrain(_causal_config(world, gpt2_base, world["train"], True), tmp_path / "trained")
    control = pretrain(_causal_config(world, gpt2_base, world["other"], False), tmp_path / "control")
    flagged = audit_privacy(trained.out_dir, world["train"], world["holdout"], tmp_path / "report",
                            _audit_config(max_exposure=5.0, max_mia_auc=0.6))
    report = flagged.report
    assert report["model"]["objective"] == "causal"
    top = math.log2(N_CANDIDATES + 1)
    heavy = [c["exposure"] for c in report["exposure"]["canaries"] if c["repeats"] == max(REPEATS)]
    assert np.mean(heavy) >= top - 1.5, heavy
    loss = report["membership"]["attacks"]["loss"]
    assert loss["auc"] > 0.75 and loss["auc_ci"][0] > 0.5, loss  # 0.852 (0.69-0.97) with 16 + 16 notes
    assert not flagged.passed
    canaries = json.loads((trained.out_dir / "manifest.json").read_text())["canaries"]
    clean = audit_privacy(control.out_dir, world["train"], world["holdout"], tmp_path / "control-report",
                          _audit_config(max_exposure=None, max_mia_auc=0.75), canaries=canaries)
    assert np.mean([c["exposure"] for c in clean.report["exposure"]["canaries"]]) < 3.0
    assert_no_membership_evidence(clean.report["membership"]["attacks"]["loss"])


def test_regurgitation_of_training_originals_is_judged_against_held_out_originals():
    """A model that ranks real identifiers first in notes it never saw (it learned the language
    and the town names) is not memorising; one that does so only for its training notes is."""
    from domainfm.privacy_audit.regurgitation import Probe, calibrate_with_holdout, regurgitation_scan

    def probes(prefix):
        return [Probe(f"seen in {prefix}ville{i} today", 8, 8 + len(f"{prefix}ville{i}"), "CITY") for i in range(30)]

    train, held = probes("Train"), probes("Held")
    kwargs = dict(n_candidates=9, max_probes=100, seed=1, alternatives=lambda probe, n: [f"Fakeplace{k}" for k in range(n)])
    fluent = _PrefersReal({p.value for p in train + held})
    calibrated = calibrate_with_holdout(regurgitation_scan(fluent, train, **kwargs), regurgitation_scan(fluent, held, **kwargs))
    assert calibrated["regurgitated"] == 30 and calibrated["held_out"]["regurgitated"] == 30
    assert calibrated["beyond_chance"] == 0 and "held-out originals" in calibrated["calibration"]
    memorising = _PrefersReal(set(), {p.value for p in train})
    flagged = calibrate_with_holdout(regurgitation_scan(memorising, train, **kwargs),
                                     regurgitation_scan(memorising, held, **kwargs))
    assert flagged["held_out"]["regurgitated"] == 0 and flagged["beyond_chance"] >= 25


def test_an_audit_with_nothing_to_measure_or_into_another_report_is_refused(tmp_path, cli):
    from domainfm.corpus import Document, write_documents
    from domainfm.privacy_audit import audit_privacy

    model = tmp_path / "model"  # never loaded: every check comes first
    model.mkdir()
    train, holdout, empty = tmp_path / "train.jsonl", tmp_path / "holdout.jsonl", tmp_path / "empty.jsonl"
    write_documents(train, [Document("t1", "Seen for chest pain."), Document("t2", "Knee pain, stable.")])
    write_documents(empty, [Document("e1", "   ")])
    with pytest.raises(ConfigError, match="--holdout: no held-out document with text"):
        audit_privacy(model, train, empty)
    with pytest.raises(ConfigError, match="--train: no training document with text"):
        audit_privacy(model, empty, train)
    write_documents(holdout, [Document("h1", "Seen for chest pain.")])  # a training text under a new id
    with pytest.raises(ConfigError, match="every held-out text is also a training text"):
        audit_privacy(model, train, holdout)
    report = tmp_path / "report"
    report.mkdir()
    (report / "manifest.json").write_text(json.dumps({"stage": "audit"}))
    (report / "index.html").write_text("<html></html>")
    with pytest.raises(OutputError, match="holds a 'domainfm audit' report"):
        audit_privacy(model, train, holdout, report)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("x")
    result = cli("audit", model, train, "-o", tmp_path / "notes")
    assert result.exit_code == 2 and "holds other files" in result.output


# --------------------------------------------------------------------------------------------
# Nothing measured is no pass; user mistakes are named, never quoted (fast: the untrained base
# model, which has no manifest, is the audited model)


def _fast_config(**gate) -> PrivacyAuditConfig:
    return PrivacyAuditConfig(n_candidates=N_CANDIDATES, regurgitation_candidates=9, n_bootstrap=0, mask_passes=1,
                              gate=PrivacyGateConfig(**gate))


def test_a_threshold_with_nothing_measured_is_not_a_pass(world):
    from domainfm.privacy_audit import audit_privacy, gate_message

    # the base model has no manifest, so no canaries: exposure is not measured
    result = audit_privacy(world["base"], world["train"], world["holdout"], None,
                           _fast_config(max_mia_auc=1.0, max_regurgitated=None))
    status = {c["check"]: c["status"] for c in result.report["gate"]["checks"]}
    assert status == {"max_exposure": "not measured", "max_mia_auc": "passed", "max_regurgitated": "not checked"}
    assert not result.passed
    assert result.statement.startswith("Privacy audit INCONCLUSIVE")
    assert "max_exposure not measured (the model's manifest records no canaries" in gate_message(result.report)
    # switched off on purpose, the same audit passes
    assert audit_privacy(world["base"], world["train"], world["holdout"], None,
                         _fast_config(max_exposure=None, max_mia_auc=1.0, max_regurgitated=None)).passed


def test_planted_probes_that_cannot_be_scored_are_counted_and_do_not_pass(world, tmp_path, monkeypatch, cli):
    from domainfm.privacy_audit import regurgitation

    # every alternative is much longer than a planted 7-digit number, so none has its token count
    monkeypatch.setattr(regurgitation, "surrogate_alternatives",
                        lambda seed: lambda probe, n: [f"{k:09d}{'7' * 30}" for k in range(n)])
    out = tmp_path / "report"
    result = cli("audit-privacy", world["base"], "--train", world["train"], "--holdout", world["holdout"],
                 "--planted", world["train"], "-o", out, "--n_candidates", N_CANDIDATES, "--mask_passes", 1,
                 "--n_bootstrap", 0, "--gate.max_mia_auc", 1.0, "--gate.max_exposure", "null")
    assert result.exit_code == 1, result.output
    assert "Privacy audit INCONCLUSIVE" in result.output and "max_regurgitated not measured" in result.output
    assert "0 of 0" not in result.output
    reg = json.loads((out / "report.json").read_text())["regurgitation"]
    assert reg["probes"] == 16 and reg["scored"] == 0
    assert reg["skipped"] == {"no_token_covers_the_identifier": 0, "too_few_alternatives_with_its_token_count": 16,
                              "identifier_also_in_its_context": 0}
    assert "too few alternatives with its token count" in (out / "summary.md").read_text()


def test_regurgitation_scan_counts_every_skipped_probe_with_its_reason():
    from domainfm.privacy_audit.regurgitation import Probe, regurgitation_scan

    class Lengths(_PrefersReal):
        def span_token_counts(self, texts, spans):  # a token per character; "cut" lies beyond truncation
            return np.array([0 if t[a:b] == "cut" else b - a for t, (a, b) in zip(texts, spans)])

    probes = [Probe("in cut now", 3, 6, "CITY"), Probe("in Townville now", 3, 12, "CITY"),
              Probe("in Bo now", 3, 5, "CITY")]
    result = regurgitation_scan(Lengths({"Townville", "Bo"}), probes, n_candidates=9, max_probes=10, seed=1,
                                alternatives=lambda probe, n: [f"Fakeplac{k}" for k in range(n)])
    assert result["scored"] == 1  # Townville: "Fakeplac<k>" has its 9 characters
    assert result["skipped"] == {"no_token_covers_the_identifier": 1, "too_few_alternatives_with_its_token_count": 1,
                                 "identifier_also_in_its_context": 0}
    assert result["probes"] == result["scored"] + sum(result["skipped"].values())


def test_a_vault_from_another_deid_run_is_refused(world, tmp_path, monkeypatch):
    from domainfm.deid.surrogates import SurrogateGenerator
    from domainfm.deid.transform import apply_operator
    from domainfm.deid.vault import Vault
    from domainfm.privacy_audit import audit_privacy

    monkeypatch.setenv("DOMAINFM_VAULT_KEY", KEY)
    text = "Zorblax Quintavius called from 617-555-0199."
    dets = [(0, 18, "PATIENT", 1.0), (31, 43, "PHONE", 1.0)]
    with Vault(tmp_path / "v.db", KEY.encode()) as vault:  # it holds another note, none of --train
        apply_operator(Document("elsewhere-1", text), dets, "surrogate", SurrogateGenerator(KEY.encode(), vault),
                       vault=vault)
    with pytest.raises(ConfigError, match=r"--vault: holds none of the 16 training documents"):
        audit_privacy(world["base"], world["train"], world["holdout"], None, _fast_config(), vault=tmp_path / "v.db")


@pytest.mark.parametrize("gate, field", [
    ({"max_exposure": float("nan")}, "gate.max_exposure"),
    ({"max_exposure": float("inf")}, "gate.max_exposure"),
    ({"max_mia_auc": float("nan")}, "gate.max_mia_auc"),
    ({"max_regurgitated": float("nan")}, "gate.max_regurgitated"),
    ({"max_regurgitated": True}, "gate.max_regurgitated"),
])
def test_gate_thresholds_must_be_finite_numbers_in_range(gate, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        PrivacyGateConfig(**gate)


def test_a_nan_threshold_or_negative_seed_on_the_command_line_is_a_named_error(cli, tmp_path):
    model = tmp_path / "model"  # never loaded: the config is checked first
    model.mkdir()
    train, holdout = tmp_path / "train.jsonl", tmp_path / "holdout.jsonl"
    write_documents(train, [Document("t1", "Seen for chest pain.")])
    write_documents(holdout, [Document("h1", "Knee pain, stable.")])
    for override, field in ((("--gate.max_exposure", "nan"), "gate.max_exposure"), (("--seed", "-1"), "'seed'")):
        result = cli("audit-privacy", model, "--train", train, "--holdout", holdout, "-o", tmp_path / "r", *override)
        assert result.exit_code == 2 and result.output.startswith("error: ") and field in result.output, result.output
        assert "Traceback" not in result.output
    with pytest.raises(ConfigError, match="'seed'"):
        PrivacyAuditConfig(seed=-1)


def test_an_id_on_both_sides_is_located_never_quoted(tmp_path):
    from domainfm.privacy_audit import audit_privacy

    model = tmp_path / "model"
    model.mkdir()
    shared = "Zorblax Quintavius 617-555-0199"
    train, holdout = tmp_path / "train.jsonl", tmp_path / "holdout.jsonl"
    write_documents(train, [Document("t1", "Seen for chest pain."), Document(shared, "Knee pain, stable.")])
    write_documents(holdout, [Document(shared, "Follow-up in two weeks.")])
    located = r"1 document id\(s\) are in both .*train\.jsonl:2 and holdout\.jsonl:1"
    with pytest.raises(ConfigError, match=located) as err:
        audit_privacy(model, train, holdout)
    assert "Zorblax" not in str(err.value) and "555" not in str(err.value)


def test_planted_labels_that_are_no_phi_type_are_refused_by_count(world, tmp_path):
    from domainfm.corpus import read_documents
    from domainfm.privacy_audit import audit_privacy

    docs = list(read_documents(world["train"]))
    relabelled = [Document(d.id, d.text, spans=[Span(s.start, s.end, "Wombat Thornquist") for s in d.spans])
                  for d in docs[:3]] + docs[3:]
    planted = tmp_path / "planted.jsonl"
    write_documents(planted, relabelled)
    with pytest.raises(ConfigError, match=r"--planted: 3 span\(s\) have a label that is not a PHI type") as err:
        audit_privacy(world["base"], world["train"], world["holdout"], None, _fast_config(), planted=planted)
    assert "Wombat" not in str(err.value)


def test_a_second_audit_into_the_same_folder_is_refused_while_the_first_runs(world, tmp_path, cli):
    import os
    import signal
    import subprocess
    import sys

    out = tmp_path / "report"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom domainfm.corpus.io import OutputLock\n"
         "with OutputLock(sys.argv[1]):\n    print('LOCKED', flush=True)\n    time.sleep(60)\n", str(out)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "LOCKED"
        result = cli("audit-privacy", world["base"], "--train", world["train"], "--holdout", world["holdout"],
                     "-o", out, "--mask_passes", 1, "--n_bootstrap", 0)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert result.exit_code == 2 and "is being written by another domainfm run" in result.output, result.output
    assert not (out / "report.json").exists()


def test_documents_without_text_are_counted_and_the_model_is_a_hashed_input(world, tmp_path, cli):
    from domainfm.corpus import read_documents

    train = tmp_path / "train.jsonl"
    write_documents(train, list(read_documents(world["train"])) + [Document(f"b{i}", " \n ") for i in range(5)])
    out = tmp_path / "report"
    result = cli("audit-privacy", world["base"], "--train", train, "--holdout", world["holdout"], "-o", out,
                 "--mask_passes", 1, "--n_bootstrap", 0, "--gate.max_exposure", "null", "--gate.max_mia_auc", 1.0,
                 "--gate.max_regurgitated", "null")
    assert result.exit_code == 0, result.output
    assert "left out 5 training documents without text" in result.output
    data = json.loads((out / "report.json").read_text())["data"]
    assert data["train_documents"] == 16 and data["train_documents_left_out_without_text"] == 5
    assert data["holdout_documents_left_out_without_text"] == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["train_documents_left_out_without_text"] == 5
    model = [i for i in manifest["inputs"] if i["path"] == str(world["base"])]
    assert len(model) == 1 and model[0]["kind"] == "folder" and len(model[0]["sha256"]) == 64


@pytest.mark.parametrize("manifest, field", [
    ({"seed": "some text"}, "seed"),
    ({"base_model": "x"}, "base_model"),
    ({"config": {"model": ["x"]}}, "config.model"),
    ({"canaries": "x"}, "canaries"),
])
def test_a_malformed_model_manifest_names_the_file_and_field(tmp_path, manifest, field):
    from domainfm.privacy_audit import audit_privacy

    model = tmp_path / "model"
    model.mkdir()
    (model / "manifest.json").write_text(json.dumps(manifest))
    train, holdout = tmp_path / "train.jsonl", tmp_path / "holdout.jsonl"
    write_documents(train, [Document("t1", "Seen for chest pain.")])
    write_documents(holdout, [Document("h1", "Knee pain, stable.")])
    with pytest.raises(ConfigError, match=rf"manifest\.json: field '{re.escape(field)}' must be") as err:
        audit_privacy(model, train, holdout)
    assert "some text" not in str(err.value)


# --------------------------------------------------------------------------------------------
# Held-out documents of training patients, and classifier documents the model cannot score:
# left out of the non-member side and counted (read = used + left out, by reason), never named


def _with_patients(docs, patients) -> list[Document]:
    return [Document(d.id, d.text, meta={**d.meta, "patient_id": p}, label=d.label, spans=d.spans)
            for d, p in zip(docs, patients)]


def _reconciles(data: dict) -> None:
    for side in ("train", "holdout"):
        left_out = sum(v for k, v in data.items() if k.startswith(f"{side}_documents_left_out_"))
        assert data[f"{side}_documents_read"] == data[f"{side}_documents"] + left_out, (side, data)


def test_held_out_documents_of_training_patients_are_left_out_counted_and_never_named(world, tmp_path, cli):
    from domainfm.corpus import read_documents

    # made-up patient ids, distinctive enough to be searched for in every output
    patients = [f"Quintavius-Zorblax-{i:03d}" for i in range(16)]
    train_docs = _with_patients(read_documents(world["train"]), patients)
    held = list(read_documents(world["holdout"]))
    # three held-out notes (new ids, new texts) of two patients who also have training notes
    shared = _with_patients(held[:3], [patients[0], patients[0], patients[5]])
    train, holdout = tmp_path / "train.jsonl", tmp_path / "holdout.jsonl"
    write_documents(train, train_docs)
    write_documents(holdout, shared + _with_patients(held[3:], [f"Ostrogoth-Vimble-{i}" for i in range(13)]))
    args = ("audit-privacy", world["base"], "--train", train, "--holdout", holdout, "--mask_passes", 1,
            "--n_bootstrap", 0, "--gate.max_exposure", "null", "--gate.max_mia_auc", 1.0,
            "--gate.max_regurgitated", "null")
    result = cli(*args, "-o", tmp_path / "report")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    data, check = report["data"], report["data"]["group_check"]
    assert check["checked"] and check["split_key"] == "meta.patient_id" and check["source"] == "auto"
    assert check["holdout_documents_sharing_a_training_group"] == 3 and check["shared_groups"] == 2
    assert data["holdout_documents_read"] == 16 and data["holdout_documents_left_out_sharing_a_training_group"] == 3
    assert data["holdout_documents"] == data["nonmembers_scored"] == 13
    _reconciles(data)
    warning = "3 held-out document(s) of 2 meta.patient_id value(s) that also have training documents"
    summary = (tmp_path / "report" / "summary.md").read_text()
    console = " ".join(result.output.split())  # the console wraps long lines
    assert warning in console and any(warning in w for w in report["warnings"]) and warning in summary
    assert "keep_shared_groups: true keeps them" in console
    # kept on request: measured on all 16, with the warning and the statement saying what that means
    kept = cli(*args, "--keep_shared_groups", "true", "-o", tmp_path / "kept")
    assert kept.exit_code == 0, kept.output
    report_kept = json.loads((tmp_path / "kept" / "report.json").read_text())
    assert report_kept["data"]["nonmembers_scored"] == 16
    assert report_kept["data"]["holdout_documents_left_out_sharing_a_training_group"] == 0
    console = " ".join(kept.output.split())
    assert "kept as non-members (keep_shared_groups)" in console
    assert "3 held-out documents share a meta.patient_id with training documents and were kept" in console
    texts = {"console": result.output + kept.output}
    for out in (tmp_path / "report", tmp_path / "kept"):
        texts.update({p.name + str(out): p.read_text() for p in out.iterdir() if p.suffix in (".json", ".md")})
    for where, text in texts.items():
        assert "Zorblax" not in text and "Vimble" not in text, where


def _holdout_case(train_meta, holdout_meta, **cfg):
    from domainfm.privacy_audit.runner import _audit_documents

    train = [Document(f"t{i}", f"Seen for knee pain, visit {i}.", meta=m) for i, m in enumerate(train_meta)]
    holdout = [Document(f"h{i}", f"Follow-up for cough, visit {i}.", meta=m) for i, m in enumerate(holdout_meta)]
    recorded = cfg.pop("recorded", (None, None))
    return _audit_documents(train, holdout, PrivacyAuditConfig(**cfg), recorded)


@pytest.mark.parametrize("train_meta, holdout_meta, cfg, key, shared, note", [
    # auto: the patient id where both sides carry one
    ([{"patient_id": 1}, {"patient_id": 2}], [{"patient_id": "1"}, {"patient_id": 3}], {}, "meta.patient_id", 1, None),
    # auto: the key the model's training split recorded comes first
    ([{"subject": "a", "patient_id": 1}], [{"subject": "a", "patient_id": 2}, {"subject": "b"}],
     {"recorded": ("meta.subject", "the model's split record")}, "meta.subject", 1, None),
    ([{"case": "a"}], [{"case": "a"}, {"case": "b"}], {"split_key": "meta.case"}, "meta.case", 1, None),
    # no key on both sides: recorded as not checked, with the counts
    ([{}, {}], [{}, {}], {}, None, 0, "meta.patient_id is on 0 of 2 training and 0 of 2 held-out documents"),
    ([{"patient_id": 1}], [{}], {}, None, 0, "meta.patient_id is on 1 of 1 training and 0 of 1 held-out"),
    ([{"patient_id": 1}], [{"patient_id": 1}, {}], {"split_key": "id"}, None, 0, "split_key is 'id'"),
])
def test_the_held_out_group_check_picks_its_key_or_says_why_not(train_meta, holdout_meta, cfg, key, shared, note):
    _, kept, data, warnings = _holdout_case(train_meta, holdout_meta, **cfg)
    check = data["group_check"]
    assert check["split_key"] == key and check["checked"] == (key is not None)
    assert data["holdout_documents_left_out_sharing_a_training_group"] == shared == len(holdout_meta) - len(kept)
    if note:
        assert note in check["note"] and any(note in w and w.startswith("held-out documents not checked")
                                             for w in warnings)


def test_a_held_out_group_check_that_cannot_be_made_as_asked_is_a_named_error():
    with pytest.raises(ConfigError, match=r"split_key is 'meta.patientid', but meta.patientid is on 0 of 1 training"
                                          r".*did you mean 'meta.patient_id'"):
        _holdout_case([{"patient_id": 1}], [{"patient_id": 2}], split_key="meta.patientid")
    with pytest.raises(ConfigError, match=r"all 2 held-out documents belong to a meta.patient_id that also has "
                                          r"training documents.*keep_shared_groups: true"):
        _holdout_case([{"patient_id": 1}], [{"patient_id": 1}, {"patient_id": 1}])
    assert len(_holdout_case([{"patient_id": 1}], [{"patient_id": 1}], keep_shared_groups=True)[1]) == 1
    for bad, field in (({"split_key": "patient_id"}, "'split_key'"), ({"keep_shared_groups": "yes"},
                                                                      "'keep_shared_groups'")):
        with pytest.raises(ConfigError, match=field):
            PrivacyAuditConfig(**bad)


@pytest.fixture(scope="module")
def quick_classifier(world):
    """A classifier fine-tuned for one epoch: enough to be scored, not to memorise."""
    from domainfm.finetune import TaskConfig, finetune

    root = world["root"]
    train = _labelled(world["train"], root / "quick-train.jsonl", 1)
    holdout = _labelled(world["holdout"], root / "quick-holdout.jsonl", 2)
    cfg = from_dict(TaskConfig, {
        "task": "classification", "model": {"name": str(world["base"]), "max_length": 64},
        "data": {"train": str(train), "eval": str(holdout)}, "labels": {"names": CLASSES, "min_examples": 1},
        "long_documents": {"strategy": "truncate"},
        "train": {"full_finetune": True, "epochs": 1, "batch_size": 8, "seed": 5, "checkpoint": False,
                  "eval_every": 0},
        "allow_identified_data": True,
    })
    return finetune(cfg, root / "quick-classifier").out_dir, train


def test_classifier_documents_it_cannot_score_are_counted_and_their_labels_never_shown(world, quick_classifier,
                                                                                       tmp_path, cli):
    from domainfm.corpus import read_documents

    model, train = quick_classifier
    held = list(read_documents(_labelled(world["holdout"], tmp_path / "labelled.jsonl", 2)))
    # gold labels the model never had, shaped like identifiers (a label field pointing at names by
    # mistake): 13 distinct ones, each once, are withheld by the label_counts policy
    names = [f"Wombat Thornquist {i}" for i in range(13)]
    held = [Document(d.id, d.text, meta=d.meta, label=names[i]) if i < 13 else d for i, d in enumerate(held)]
    held[13] = Document(held[13].id, held[13].text, meta=held[13].meta)  # no gold label at all
    holdout = tmp_path / "holdout.jsonl"
    write_documents(holdout, held)
    out = tmp_path / "report"
    result = cli("audit-privacy", model, "--train", train, "--holdout", holdout, "-o", out, "--n_bootstrap", 0,
                 "--gate.max_exposure", "null", "--gate.max_mia_auc", 1.0, "--gate.max_regurgitated", "null")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    data = report["data"]
    assert data["holdout_documents_left_out_label_unknown_to_model"] == 13
    assert data["holdout_documents_left_out_without_label"] == 1
    assert data["train_documents_left_out_label_unknown_to_model"] == 0
    assert data["train_documents_left_out_without_label"] == 0
    assert data["holdout_documents"] == data["nonmembers_scored"] == report["membership"]["nonmembers"] == 2
    _reconciles(data)
    warning = ("left out of membership inference: 0 training and 1 held-out document(s) with no gold label; "
               "0 training and 13 held-out document(s) with a gold label the model does not know (13 distinct) "
               "in field 'label'")
    console = " ".join(result.output.split())  # the console wraps long lines
    assert warning in console and warning in report["warnings"]
    assert "not shown: a field this varied may hold identifiers" in console
    text = result.output + (out / "report.json").read_text() + (out / "summary.md").read_text()
    assert "Wombat" not in text and "Thornquist" not in text


def test_summary_wording_for_no_shared_patients_and_a_training_run_of_seconds():
    from domainfm.privacy_audit.runner import _audit_time, _documents_section

    data = {"train_documents_read": 4, "train_documents": 4, "holdout_documents_read": 3, "holdout_documents": 3,
            "members_scored": 4, "nonmembers_scored": 3,
            "group_check": {"checked": True, "split_key": "meta.patient_id", "source": "meta",
                            "holdout_documents_sharing_a_training_group": 0, "shared_groups": 0,
                            "holdout_documents_without_key": 1}}
    text = "\n".join(_documents_section(data))
    assert "0 held-out documents of 0 values" not in text
    assert "no held-out document shares a value with the training documents" in text
    assert "1 held-out document has no value to check" in text
    data["group_check"].update(holdout_documents_sharing_a_training_group=2, shared_groups=1,
                               holdout_documents_without_key=0)
    text = "\n".join(_documents_section(data))
    assert "2 held-out documents belong to 1 value that also has training documents" in text
    assert "every held-out document has a value to check" in text
    # an audit longer than a training run of 0.4 s: a multiple, never "775.0% of the 0 s"
    line = _audit_time({"total_seconds": 3.1, "share_of_training": 7.75, "audited_training_seconds": 0.4})
    assert line == "Audit time 3.1 s (7.8 times the 0.4 s of training it audits)."
    line = _audit_time({"total_seconds": 30.0, "share_of_training": 0.075, "audited_training_seconds": 400.0})
    assert line == "Audit time 30.0 s (7.5% of the 400 s of training it audits)."
