"""Model privacy audit on tiny models built from config: canaries in the pretrain stream and in
the manifest only, exposure, membership inference, the regurgitation scan (vault and planted),
the release gate, the CLI and the planted-identifier check (no secret in any log, report or
error message)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from domainfm.config import from_dict
from domainfm.corpus import Document, Span, write_documents
from domainfm.errors import ConfigError
from domainfm.pretrain import PretrainConfig
from domainfm.privacy_audit import CanaryConfig, PrivacyAuditConfig, PrivacyGateConfig
from domainfm.privacy_audit.canaries import make_canaries
from domainfm.privacy_audit.membership import roc_auc, tpr_at_fpr
from domainfm.privacy_audit.regurgitation import chance_quantile

KEY = "k" * 40
SYLLABLES = ("ba", "ko", "ri", "mu", "te", "sa", "lo", "ni", "pe", "du", "ga", "fi", "zo", "ve", "ha", "cu")
N_CANDIDATES = 99  # max exposure log2(100) = 6.64
REPEATS = [1, 4, 16]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _words(rng: random.Random, n: int) -> list[str]:
    return ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))) for _ in range(n)]


def _corpus(seed: int, n: int, prefix: str) -> list[Document]:
    """Made-up notes: random words from a fixed made-up vocabulary (each note is unique)."""
    rng = random.Random(seed)
    vocab = _words(random.Random(0), 300)
    return [Document(f"{prefix}{i}", " ".join(rng.choice(vocab) for _ in range(16)) + ".",
                     meta={"patient_id": f"{prefix}{i}"}) for i in range(n)]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tokenizer and an untrained 2-layer BERT masked LM, plus three disjoint note sets."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    root = tmp_path_factory.mktemp("privacy")
    train, holdout, other = _corpus(1, 16, "t"), _corpus(2, 16, "h"), _corpus(3, 16, "o")
    canary_texts = [c.text for c in make_canaries(CanaryConfig(enabled=True, per_repeat=3), 99)]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    alphabet = list("abcdefghijklmnopqrstuvwxyz0123456789()-/,.'")
    tok.train_from_iterator([d.text for d in train + holdout + other] + canary_texts,
                            trainers.WordPieceTrainer(vocab_size=1000, special_tokens=special, initial_alphabet=alphabet))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    tokenizer = BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                  sep_token="[SEP]", mask_token="[MASK]")
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
    import re

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
    result = audit_privacy(control.out_dir, world["train"], world["holdout"], tmp_path / "report",
                           _audit_config(max_exposure=None, max_mia_auc=0.75), canaries=canaries)
    report = result.report
    exposures = [c["exposure"] for c in report["exposure"]["canaries"]]
    assert np.mean(exposures) < 3.0  # chance: about 1.4
    for attack in report["membership"]["attacks"].values():
        lo, hi = attack["auc_ci"]
        assert lo <= 0.5 <= hi, attack
    assert result.passed, report["gate"]
