"""Shared fixtures: tiny models built from config, spaCy pipelines, sample corpora, real data.

Nothing here downloads anything: the tokenizer is built in memory and the model is built
from a config, so every test runs offline in seconds.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DOMAINFM_SHARED_DATA", ROOT.parent / "shared" / "data"))

TINY_TEXTS = [
    "CHIEF COMPLAINT: chest pain radiating to the left arm.",
    "HISTORY OF PRESENT ILLNESS: 67 year old woman with hypertension and diabetes.",
    "ASSESSMENT AND PLAN: 1. NSTEMI - aspirin, heparin, cardiology consult.",
    "The patient denies fever, cough or shortness of breath. Allergies: NKDA.",
    "ARTICLE 7 - TERMINATION. 7.2 Either party may terminate this Agreement on notice.",
    "The Court holds that there has been a violation of Article 8 of the Convention.",
    "This Agreement shall be governed by the laws of the State of New York.",
]


BERT_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def perfect_tagger_logits(features, labels) -> list:
    """What a perfect tagger would output for NER features: the gold tag of every token far above
    the others (-100 positions read as "O"), so decoding tests see only the decoding."""
    import numpy as np

    from domainfm.finetune.data import IGNORE_INDEX

    out = []
    for f in features:
        tags = np.array([t if t != IGNORE_INDEX else 0 for t in f.label])
        scores = np.full((len(tags), len(labels.tags)), -6.0)
        scores[np.arange(len(tags)), tags] = 6.0
        out.append(scores)
    return out


def wordpiece_tokenizer(texts, alphabet: str = "", whole_words: bool = True):
    """A lower-casing BERT WordPiece tokenizer whose vocabulary is built, not trained.

    ``tokenizers``' WordPiece trainer breaks count ties in hash-map order, so the same texts give
    a different vocabulary in every interpreter (huggingface/tokenizers#1794), and a test's tiny
    model then trains differently from run to run. Here the vocabulary is the special tokens,
    every character seen (plus ``alphabet``) both word-initial and as a ``##`` continuation, and,
    sorted, every word without a digit: each such word is one token, anything else is spelled out
    (digits always one token each). Same texts, same ids, in any process.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertTokenizerFast

    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words = {w for text in texts for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))}
    chars = sorted(set("".join(words)) | set(alphabet))
    whole = sorted(w for w in words if len(w) > 1 and not any(c.isdigit() for c in w)) if whole_words else []
    vocab = {}
    for token in BERT_SPECIAL_TOKENS + chars + [f"##{c}" for c in chars] + whole:
        vocab.setdefault(token, len(vocab))
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                             cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def byte_level_bpe(texts, special_tokens: list[str]):
    """A GPT-2 style byte-level BPE ``tokenizers.Tokenizer`` whose merges are built, not trained.

    The BPE trainer has the WordPiece trainer's hash-order ties (see ``wordpiece_tokenizer``).
    Here the vocabulary is the special tokens, the 256 byte symbols and, for every word without a
    digit (sorted), its left-to-right prefixes, each one merge: the words of ``texts`` come out
    whole or nearly so, digits always one token each.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    words = sorted({w for text in texts for w, _ in pre_tokenizer.pre_tokenize_str(text)})
    vocab: dict[str, int] = {}
    for token in list(special_tokens) + sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab.setdefault(token, len(vocab))
    merges = []
    for word in words:
        if any(c.isdigit() for c in word):
            continue
        piece = word[0]
        for char in word[1:]:
            if piece + char not in vocab:
                vocab[piece + char] = len(vocab)
                merges.append((piece, char))
            piece += char
    tok = Tokenizer(models.BPE(vocab, merges))
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    return tok


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A WordPiece tokenizer (BERT special tokens) over the words of a few sentences."""
    return wordpiece_tokenizer(TINY_TEXTS)


@pytest.fixture(scope="session")
def tiny_bert_config(tiny_tokenizer):
    from transformers import BertConfig

    return BertConfig(vocab_size=len(tiny_tokenizer), hidden_size=32, num_hidden_layers=2,
                      num_attention_heads=2, intermediate_size=37, max_position_embeddings=128)


@pytest.fixture()
def tiny_bert(tiny_bert_config):
    """A freshly initialised 2-layer BERT masked-LM (seeded)."""
    import torch
    from transformers import BertForMaskedLM

    torch.manual_seed(0)
    return BertForMaskedLM(tiny_bert_config)


@pytest.fixture(scope="session")
def blank_nlp():
    import spacy

    return spacy.blank("en")


@pytest.fixture(scope="session")
def packaged_nlp():
    from domainfm.models import load_spacy

    return load_spacy("default")


@pytest.fixture(scope="session")
def corpora_dir() -> Path:
    return ROOT / "corpora"


@pytest.fixture(scope="session")
def clinical_corpus(corpora_dir) -> Path:
    return corpora_dir / "clinical" / "notes.jsonl"


@pytest.fixture(scope="session")
def legal_corpus(corpora_dir) -> Path:
    return corpora_dir / "legal" / "documents.jsonl"


def pytest_collection_modifyitems(config, items):
    """A test that reads the real datasets belongs to the ``shared_data`` tier, marked or not."""
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared_data)


# nursing notes come mixed case, all capitals or all lower case; de-id shape tests run each case
NOTE_CASES = ("mixed", "upper", "lower")


def in_case(text: str, case: str) -> str:
    """``text`` as a note written in ``case`` (one of :data:`NOTE_CASES`)."""
    return {"mixed": text, "upper": text.upper(), "lower": text.lower()}[case]


def detected(detector, text: str, labels=None) -> list[tuple[str, str]]:
    """``(value, label)`` of each detection in ``text``, in order; only ``labels`` when given."""
    return [(text[d.start:d.end], d.label) for d in detector.detect_text(text) if labels is None or d.label in labels]


def detected_dates(detector, text: str) -> list[str]:
    return [value for value, _ in detected(detector, text, ("DATE",))]


@pytest.fixture(scope="session")
def clinical_detector():
    """The default clinical PHI detector, built once for the de-id shape tests that only read it."""
    from domainfm.deid import DeidConfig, PhiDetector

    detector = PhiDetector(DeidConfig(profile="clinical"))
    detector.detect_text("warm up")
    return detector


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests using it are skipped cleanly when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not available at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture()
def cli():
    """Invoke the typer app in-process: ``cli("import", "csv", ...)`` -> click Result."""
    from typer.testing import CliRunner

    from domainfm.cli import app

    def invoke(*args):
        return CliRunner().invoke(app, [str(a) for a in args])

    return invoke


NETWORK_GUARD = '''
import socket
ATTEMPTS = []
def _deny(*args, **kwargs):
    ATTEMPTS.append(repr(args[1:2] or args[:1])[:80])
    raise OSError("network access attempted during an offline test")
for _name in ("connect", "connect_ex"):
    setattr(socket.socket, _name, _deny)
socket.create_connection = _deny
socket.getaddrinfo = _deny
import atexit
atexit.register(lambda: print("NETWORK_ATTEMPTS=%d %s" % (len(ATTEMPTS), ATTEMPTS[:3])))
'''


def run_offline(code: str, cwd: Path | None = None, timeout: int = 300):
    """Run ``code`` in a fresh interpreter where any socket connection or DNS lookup fails and
    is counted; the output ends with ``NETWORK_ATTEMPTS=<n>``."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    return subprocess.run([sys.executable, "-c", NETWORK_GUARD + code], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer, tiny_bert_config):
    """A tiny BERT encoder + tokenizer saved like any hub model."""
    import torch
    from transformers import BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    BertModel(tiny_bert_config).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread (and do not fight other test runs for cores); a
    module asks for it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def import_into(fmt, src, tmp_path, **options):
    """``domainfm import`` of ``src`` into ``tmp_path``: the documents, the reject records and
    the result; the counts must reconcile."""
    import json

    from domainfm.corpus import read_documents
    from domainfm.corpus.importing import import_corpus

    result = import_corpus(fmt, src, tmp_path / f"{fmt}.jsonl", options)
    assert result.counts.reconciles
    rejects = [json.loads(x) for x in result.rejects.read_text().splitlines()] if result.rejects else []
    return list(read_documents(result.out)), rejects, result


def span_keys(doc):
    """A document's spans as sorted ``(start, end, label)``."""
    return sorted((s.start, s.end, s.label) for s in doc.spans)


def swap_stage(monkeypatch, name: str, run) -> None:
    """Replace a registered pipeline stage's run function for one test (``domainfm run`` tests)."""
    import dataclasses

    from domainfm.stages import REGISTRY

    monkeypatch.setitem(REGISTRY, name, dataclasses.replace(REGISTRY[name], run=run))
