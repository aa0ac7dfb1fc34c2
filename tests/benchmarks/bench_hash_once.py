"""How many times one run reads each file for its sha256, and what share of the run that takes.

Two runs on generated, made-up notes, with the sha256 reader (``domainfm.manifest.sha256_file``)
wrapped to count and time its readings per file:

- ``domainfm run`` of ``import`` and ``chunk`` on a JSONL corpus of ``--pipeline-mb`` MB, then the
  same run again (every stage cached: its outputs are checked and the next stage's key read);
- a tiny-model pretraining run (a 2-layer BERT built from a config, its tokenizer trained in
  memory) on a corpus of ``--train-mb`` MB with a deid manifest beside it, then ``--resume`` of the
  finished run (its data checked, the run handed back).

Every version of domainfm has ``sha256_file``: run this with ``PYTHONPATH=<another checkout>`` for
that checkout's numbers. Prints one JSON object.

Usage: python tests/benchmarks/bench_hash_once.py [--pipeline-mb 300] [--train-mb 20] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
try:
    import domainfm  # noqa: F401  (an installed or PYTHONPATH checkout is measured as it is)
except ImportError:
    sys.path.insert(0, str(ROOT))

WORDS = ("patient", "denies", "chest", "pain", "fever", "cough", "aspirin", "heparin", "follow", "up", "clinic",
         "history", "hypertension", "diabetes", "plan", "agreement", "party", "terminate", "notice", "court")


class Readings:
    """Counts and times each reading of a file for its sha256, by path relative to the work folder."""

    def __init__(self, folder: Path) -> None:
        import domainfm.manifest as manifest

        self.folder, self.real = folder.resolve(), manifest.sha256_file
        self.count: dict[str, int] = defaultdict(int)
        self.seconds = 0.0
        self.bytes = 0
        manifest.sha256_file = self.read

    def read(self, path, *args, **kwargs) -> str:
        t0 = time.perf_counter()
        digest = self.real(path, *args, **kwargs)
        self.seconds += time.perf_counter() - t0
        resolved = Path(path).resolve()
        self.bytes += resolved.stat().st_size
        if resolved.is_relative_to(self.folder):  # domainfm's own files (its code fingerprint) aside
            self.count[resolved.relative_to(self.folder).as_posix()] += 1
        return digest

    def measure(self, run) -> dict:
        self.count.clear()
        self.seconds, self.bytes = 0.0, 0
        t0 = time.perf_counter()
        run()
        wall = time.perf_counter() - t0
        return {"seconds": round(wall, 2), "hashing_seconds": round(self.seconds, 2),
                "hashing_share": round(self.seconds / wall, 3), "bytes_hashed": self.bytes,
                "readings_per_file": dict(sorted(self.count.items()))}


def write_notes(path: Path, megabytes: float, seed: int = 0) -> Path:
    """Made-up notes, three per patient, until the file holds ``megabytes`` MB."""
    rng = random.Random(seed)
    target, written, i = int(megabytes * 1e6), 0, 0
    with open(path, "w", encoding="utf-8") as fh:
        while written < target:
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 400))) + "."
            line = json.dumps({"id": f"note-{i}", "text": text, "meta": {"patient_id": f"p{i // 3}"}}) + "\n"
            fh.write(line)
            written, i = written + len(line), i + 1
    return path


def tiny_model(folder: Path) -> Path:
    """A 2-layer, 32-wide BERT masked LM and a WordPiece tokenizer over ``WORDS``, saved as a folder."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {t: i for i, t in enumerate(specials + list(WORDS) + ["."])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
                                                       special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                        cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=37, max_position_embeddings=128)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline-mb", type=float, default=300.0)
    parser.add_argument("--train-mb", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true", help="30 MB and 2 MB")
    args = parser.parse_args()
    if args.quick:
        args.pipeline_mb, args.train_mb = 30.0, 2.0
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import torch

    from domainfm.config import from_dict
    from domainfm.manifest import write_manifest
    from domainfm.pipeline import run_pipeline
    from domainfm.pretrain import PretrainConfig, pretrain

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="bench-hash-once-") as tmp:
        work = Path(tmp)
        model = tiny_model(work / "tiny-bert")
        readings = Readings(work)
        result: dict = {"domainfm": domainfm.__file__, "cpu_count": os.cpu_count()}
        # written first, as training data is written well before a run reads it
        (work / "deid").mkdir()
        corpus = write_notes(work / "deid" / "notes.jsonl", args.train_mb, seed=1)
        write_manifest(corpus, stage="deid", config={}, outputs=[corpus])  # the privacy gate reads it back

        src = write_notes(work / "notes.jsonl", args.pipeline_mb)
        pipeline = {"run_dir": str(work / "run"), "seed": 13, "import": {"format": "jsonl", "src": str(src)},
                    "chunk": {"tokenizer": str(model), "max_tokens": 128, "overlap": 16}}
        result["pipeline"] = {"corpus_mb": round(src.stat().st_size / 1e6, 1), "stages": ["import", "chunk"],
                              "first_run": readings.measure(lambda: run_pipeline(pipeline)),
                              "cached_run": readings.measure(lambda: run_pipeline(pipeline))}

        cfg = from_dict(PretrainConfig, {
            "model": {"name": str(model)}, "data": {"paths": [str(corpus)], "eval_fraction": 0.05},
            "masking": {"seq_len": 64}, "train": {"max_steps": 4, "batch_size": 8, "warmup_ratio": 0.0}})
        result["pretrain"] = {"corpus_mb": round(corpus.stat().st_size / 1e6, 1), "model": "BERT 2x32",
                              "run": readings.measure(lambda: pretrain(cfg, work / "dapt")),
                              "resume_of_finished_run": readings.measure(
                                  lambda: pretrain(cfg, work / "dapt", resume=True))}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
