"""DAPT throughput against the plain transformers recipe, and held-out perplexity on MTSamples.

Same model (embedded MiniLM, new tied MLM head), same training documents, same sequence length,
same batch size in sequences and the same number of optimizer steps, side by side in one run:

- baseline: ``transformers.Trainer`` + ``DataCollatorForLanguageModeling``, one sequence per
  document (truncated and padded to max length), MLM logits over the full vocabulary at every
  position;
- ours: ``domainfm.pretrain`` - packed blocks (no padding) and MLM logits only at the masked
  positions.

Throughput counts REAL (non-padding) tokens per second of training-loop time for both. Each
phase runs in its own process so its peak RSS is its own. A third phase trains ours for longer
and reports held-out perplexity before/after (a bounded number of steps on CPU, said in the
JSON). Data: MTSamples deduplicated by transcription when ``../shared/data`` exists, else the
sample clinical corpus. Prints one JSON object.

Usage: python tests/benchmarks/bench_pretrain.py [--quick]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
SEQ_LEN = 128
BATCH = 16
LR = 1e-4
MODEL = os.environ.get("DOMAINFM_BENCH_MODEL", "minilm")  # a local copy of MiniLM on machines without the package


def prepare_corpus(folder: Path) -> tuple[Path, str]:
    """MTSamples deduplicated by transcription (or the sample corpus) as domainfm JSONL."""
    sys.path.insert(0, str(ROOT))
    from domainfm.corpus import Document, write_documents

    src = DATA / "mtsamples" / "mtsamples.csv"
    out = folder / "corpus.jsonl"
    if os.environ.get("DOMAINFM_BENCH_CORPUS"):  # an already prepared JSONL (machines without ../shared)
        return Path(os.environ["DOMAINFM_BENCH_CORPUS"]), "mtsamples (deduplicated, prepared JSONL)"
    if src.is_file():
        seen, docs = set(), []
        with open(src, encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                text = (row.get("transcription") or "").strip()
                if text and text not in seen:
                    seen.add(text)
                    docs.append(Document(id=f"mts-{row['note_id']}", text=text,
                                         meta={"specialty": row["medical_specialty"].strip()}))
        write_documents(out, docs)
        return out, f"mtsamples (deduplicated: {len(docs)} notes)"
    sample = ROOT / "corpora" / "clinical" / "notes.jsonl"
    if not sample.is_file():
        from domainfm.synth import write_sample_corpora

        write_sample_corpora(folder / "corpora")
        sample = folder / "corpora" / "clinical" / "notes.jsonl"
    return sample, "sample clinical corpus (../shared/data absent)"


def config(corpus: Path, steps: int, whole_word: bool = False, max_eval_blocks: int = 0):
    from domainfm.config import from_dict
    from domainfm.pretrain import PretrainConfig

    return from_dict(PretrainConfig, {
        "model": {"name": MODEL},
        "data": {"paths": [str(corpus)], "eval_fraction": 0.1, "max_eval_blocks": max_eval_blocks},
        "masking": {"seq_len": SEQ_LEN, "whole_word_mask": whole_word},
        # fp32 like the baseline Trainer's default, so the comparison is about the recipe only
        "train": {"max_steps": steps, "batch_size": BATCH, "lr": LR, "warmup_ratio": 0.06, "log_every": 10,
                  "precision": "fp32"},
        "allow_identified_data": True,
    })


def phase_ours(corpus: Path, steps: int, out: Path, whole_word: bool, eval_blocks: int) -> dict:
    from domainfm.pretrain import pretrain

    result = pretrain(config(corpus, steps, whole_word, eval_blocks), out, overwrite=True)
    m = result.metrics
    return {
        "steps": m["train"]["steps"],
        "real_tokens": m["train"]["tokens_this_run"],
        "train_loop_seconds": m["train"]["compute_seconds"],
        "tokens_per_s": m["train"]["tokens_per_s"],
        "tokens_per_cpu_s": round(m["train"]["tokens_this_run"] / max(m["train"]["cpu_seconds"], 1e-9), 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "padding_fraction": 0.0,
        "eval_before": m["eval_before"],
        "eval_after": m["eval_after"],
        "epochs": m["train"]["epochs"],
        "data": m["data"],
        "peak_rss_mb": m["peak_rss_mb"],
    }


def phase_baseline(corpus: Path, steps: int, out: Path) -> dict:
    """transformers Trainer + DataCollatorForLanguageModeling, padded to max length."""
    import resource

    import torch
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainerCallback, TrainingArguments

    from domainfm.corpus import read_documents
    from domainfm.pretrain import ModelConfig, load_model
    from domainfm.corpus.grouping import group_of, stable_fraction

    cfg = config(corpus, steps)
    loaded = load_model(ModelConfig(name=MODEL), seed=13)  # the same new tied head
    tok = loaded.tokenizer
    # the same training documents as ours (same split), one truncated+padded sequence each
    texts = [d.text for d in read_documents(corpus) if d.text.strip()
             and stable_fraction(":".join(group_of(d, "auto"))) >= cfg.data.eval_fraction]
    enc = tok(texts, truncation=True, max_length=SEQ_LEN, padding="max_length")
    dataset = [{"input_ids": i, "attention_mask": a} for i, a in zip(enc["input_ids"], enc["attention_mask"])]
    collator = DataCollatorForLanguageModeling(tok, mlm=True, mlm_probability=0.15, seed=13)
    counted = {"real": 0, "all": 0}

    def counting_collator(features):
        batch = collator(features)
        counted["real"] += int(batch["attention_mask"].sum())
        counted["all"] += int(batch["attention_mask"].numel())
        return batch

    clock = {}

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            clock["start"], clock["cpu_start"] = time.perf_counter(), time.process_time()

        def on_train_end(self, args, state, control, **kwargs):
            clock["end"], clock["cpu_end"] = time.perf_counter(), time.process_time()
            clock["steps"] = state.global_step

    args = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=BATCH, max_steps=steps, learning_rate=LR,
        warmup_steps=0.06, weight_decay=0.01, seed=13, report_to="none", save_strategy="no",
        logging_steps=10, use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = Trainer(model=loaded.model, args=args, train_dataset=dataset, data_collator=counting_collator,
                      callbacks=[Clock()])
    trainer.train()
    seconds = clock["end"] - clock["start"]
    return {
        "steps": clock["steps"],
        "real_tokens": counted["real"],
        "train_loop_seconds": round(seconds, 2),
        "tokens_per_s": round(counted["real"] / seconds, 1),
        "tokens_per_cpu_s": round(counted["real"] / (clock["cpu_end"] - clock["cpu_start"]), 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "padding_fraction": round(1 - counted["real"] / max(counted["all"], 1), 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def run_phase(name: str, corpus: Path, steps: int, work: Path, threads: int, **kw) -> dict:
    """Run one phase in a fresh interpreter (its own peak memory), return its JSON."""
    cmd = [sys.executable, __file__, "--phase", name, "--corpus", str(corpus), "--steps", str(steps),
           "--work", str(work), "--threads", str(threads)]
    for key, value in kw.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"phase {name} failed:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["phase_wall_seconds"] = round(time.perf_counter() - t0, 1)
    return result


def main(quick: bool, threads: int) -> dict:
    import torch

    steps = 6 if quick else 30
    dapt_steps = 20 if quick else 120
    eval_blocks = 48 if quick else 256  # held-out blocks evaluated (a fixed sample of the held-out notes)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        corpus, source = prepare_corpus(work)
        t0 = time.perf_counter()
        baseline = run_phase("baseline", corpus, steps, work / "baseline", threads)
        ours = run_phase("ours", corpus, steps, work / "ours", threads, whole_word=0, eval_blocks=8)
        dapt = run_phase("ours", corpus, dapt_steps, work / "dapt", threads, whole_word=1, eval_blocks=eval_blocks)
    ours_summary = {k: v for k, v in ours.items() if k not in ("eval_before", "eval_after", "data", "epochs")}
    return {
        "benchmark": "pretrain",
        "data": source,
        "model": "minilm (all-MiniLM-L6-v2 encoder, new MLM head tied to the embeddings)",
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)",
        "precision": "fp32 (both)",
        "torch_threads": threads or torch.get_num_threads(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "seq_len": SEQ_LEN,
        "batch_sequences": BATCH,
        "throughput": {
            "steps": steps,
            "baseline_trainer_padded_full_vocab": baseline,
            "ours_packed_masked_positions": ours_summary,
            "speedup_real_tokens_per_s": round(ours["tokens_per_s"] / baseline["tokens_per_s"], 2),
            "speedup_real_tokens_per_cpu_s": round(ours["tokens_per_cpu_s"] / baseline["tokens_per_cpu_s"], 2),
        },
        "held_out_perplexity": {
            "steps": dapt_steps,
            "epochs_trained": dapt["epochs"],
            "note": (f"bounded run: {dapt_steps} steps ({dapt['epochs']} of an epoch) on CPU; one full epoch is "
                     "tasks/pretrain-mtsamples.yaml" if dapt["epochs"] < 1 else "one epoch or more"),
            "whole_word_mask": True,
            "eval_sequences": dapt["eval_before"]["sequences"],
            "before": dapt["eval_before"],
            "after": dapt["eval_after"],
            "drops": dapt["eval_after"]["perplexity"] < dapt["eval_before"]["perplexity"],
            "tokens_per_s": dapt["tokens_per_s"],
            "peak_rss_mb": dapt["peak_rss_mb"],
            "split": {k: dapt["data"][k] for k in ("train_documents", "eval_documents", "train_sequences",
                                                   "eval_sequences", "split_key")},
        },
        "quick": quick,
        "total_seconds": round(time.perf_counter() - t0, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps of each phase")
    parser.add_argument("--phase", choices=["baseline", "ours"])
    parser.add_argument("--corpus", type=Path)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--whole-word", type=int, default=0)
    parser.add_argument("--eval-blocks", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per phase (default 1: on a shared 2-core machine more threads "
                             "mostly measure contention; 0 = torch's default)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.phase and args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.phase == "baseline":
        print(json.dumps(phase_baseline(args.corpus, args.steps, args.work)))
    elif args.phase == "ours":
        print(json.dumps(phase_ours(args.corpus, args.steps, args.work, bool(args.whole_word), args.eval_blocks)))
    else:
        print(json.dumps(main(args.quick, args.threads), indent=2))
