"""Explanation speed and agreement: domainfm's explainer vs shap's default explainer; prints JSON.

Both explain the same 512-token clinical chunks (MTSamples transcriptions from
../shared/data/mtsamples when present, else the synthetic corpora/clinical/notes.jsonl; each
chunk is the first 510 word pieces of a note, so 512 model positions with [CLS]/[SEP]) with the
same model and the same ``max_evals``, in one process (baseline document 0, then ours on all
documents, then the baseline on the rest, so that load changes hit both):

- baseline: shap's default, exactly as a user writes it::

      pipe = transformers.pipeline("text-classification", model=model, tokenizer=tok, top_k=None)
      shap.Explainer(pipe)([text], max_evals=max_evals)

  (a Partition explainer over shap's Text masker; the pipeline scores one text per forward
  pass, its default ``batch_size``).
- ours: :func:`domainfm.audit.explain.explain_texts` over a :class:`TaskModelScorer` of the same
  model, all documents in one call as the audit does (batched, length-sorted, inference mode,
  ``parallel`` chunks sharing forward passes; see that module); per document = total / n.

The model is the embedded MiniLM with a **freshly initialised** classification head (seed 0, 5
labels) unless ``--model-dir`` names a ``domainfm finetune`` folder (a LoRA adapter is merged
first; the same merged model serves both explainers). Speed does not depend on the head; the
agreement measure does not need a trained model, but a trained one is the more telling test.

Agreement: per document, the predicted class ``c`` is the model's argmax on the chunk; each
explainer's top-10 tokens are the 10 token segments of shap's Text masker (identified by their
character span in the chunk; whitespace-only segments and [CLS]/[SEP] excluded) with the largest
``|shap value for c|`` (rounded to 1e-8; ties broken by position); overlap = |top10_ours ∩ top10_default| / 10,
averaged over documents.

Usage:
    python tests/benchmarks/bench_audit_explain.py [--docs 5] [--max-evals 100] [--batch-size 32]
        [--model-dir runs/medical-abstracts]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("DOMAINFM_SHARED_DATA", ROOT.parent / "shared" / "data"))
CHUNK_PIECES = 510


def load_texts(n: int, tokenizer) -> tuple[str, list[str]]:
    """``n`` chunk texts of exactly 510 word pieces (the longest notes first, deterministic)."""
    src = DATA / "mtsamples" / "mtsamples.csv"
    if src.is_file():
        csv.field_size_limit(sys.maxsize)
        with open(src, newline="", encoding="utf-8") as fh:
            notes = list(dict.fromkeys(r["transcription"].strip() for r in csv.DictReader(fh) if r["transcription"]))
        source = "mtsamples"
    else:
        from domainfm.corpus import read_documents

        notes = [d.text for d in read_documents(ROOT / "corpora" / "clinical" / "notes.jsonl")]
        source = "corpora/clinical/notes.jsonl (synthetic)"
    rng = np.random.default_rng(0)
    out = []
    for i in rng.permutation(len(notes)):
        enc = tokenizer(notes[i], add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        if len(enc["input_ids"]) < CHUNK_PIECES:
            continue
        out.append(notes[i][: enc["offset_mapping"][CHUNK_PIECES - 1][1]])
        if len(out) == n:
            break
    return source, out


def build_model(model_dir: str | None):
    """(TaskModel with max_length 512, description) sharing one plain transformers model."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from domainfm.finetune.config import LongDocumentsSection
    from domainfm.finetune.data import LabelMap
    from domainfm.inference.predict import TaskModel, load_task_model
    from domainfm.models import resolve_model

    if model_dir:
        tm = load_task_model(model_dir, task="classification", device="cpu")
        model = tm.model.merge_and_unload() if hasattr(tm.model, "merge_and_unload") else tm.model
        tm = TaskModel(model.eval(), tm.tokenizer, "classification", tm.label_map, 512, tm.long_documents)
        return tm, f"fine-tuned classifier from {model_dir}"
    src = resolve_model("minilm")
    labels = [f"class_{i}" for i in range(5)]
    torch.manual_seed(0)
    import transformers

    transformers.logging.set_verbosity_error()
    model = AutoModelForSequenceClassification.from_pretrained(
        src, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})
    tm = TaskModel(model.eval(), AutoTokenizer.from_pretrained(src), "classification",
                   LabelMap("classification", labels), 512,
                   LongDocumentsSection(strategy="chunk", profile="clinical"))
    return tm, "embedded MiniLM (all-MiniLM-L6-v2) + freshly initialised classification head (seed 0, 5 labels)"


def segment_values(segments, values) -> list[tuple[int, int, np.ndarray]]:
    """shap Text-masker segments (they concatenate to the text) -> (start, end, values) of the
    non-blank ones, in the same coordinates as :class:`Explanation.tokens`."""
    out, pos = [], 0
    for seg, val in zip(segments, values):
        seg = str(seg)
        stripped = seg.strip()
        if stripped:
            lead = len(seg) - len(seg.lstrip())
            out.append((pos + lead, pos + lead + len(stripped), np.asarray(val, dtype=float)))
        pos += len(seg)
    return out


def top_k(tokens, c: int, k: int = 10) -> set[tuple[int, int]]:
    # with a small budget whole clusters of tokens share one value: compare |values| rounded to
    # 1e-8 so that float noise between two runs of the same computation does not break the tie
    ranked = sorted(range(len(tokens)), key=lambda i: (-round(abs(float(tokens[i][2][c])), 8), i))
    return {tokens[i][:2] for i in ranked[:k]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=5)
    ap.add_argument("--max-evals", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--parallel", type=int, default=8, help="chunks explained at once by ours")
    ap.add_argument("--model-dir", default=None)
    args = ap.parse_args(argv)

    import shap
    import torch
    import transformers

    from domainfm.audit.explain import _chunks, explain_texts
    from domainfm.audit.scorer import TaskModelScorer

    tm, model_desc = build_model(args.model_dir)
    source, texts = load_texts(args.docs, tm.tokenizer)
    scorer = TaskModelScorer(tm, batch_size=args.batch_size)
    pipe = transformers.pipeline("text-classification", model=tm.model, tokenizer=tm.tokenizer, top_k=None,
                                 device="cpu")
    default = shap.Explainer(pipe)
    labels = list(scorer.labels)
    # warm-up (first-call allocations, lazy imports) on a short text, for both
    default(["warm up text"], max_evals=20)
    explain_texts(scorer, [("w", "warm up text")], max_evals=20)

    # ours explains all documents in one call (its chunks share forward passes: ``parallel``);
    # per document = that time / n. The baseline explains one document per call, as shap does.
    # Order: baseline doc 0, ours (all), baseline docs 1.. (so load drift hits both).
    default_out, default_s = {}, {}

    def run_default(i):
        t0 = time.perf_counter()
        default_out[i] = default([texts[i]], max_evals=args.max_evals, silent=True)
        default_s[i] = time.perf_counter() - t0

    run_default(0)
    t0 = time.perf_counter()
    ours = explain_texts(scorer, [(f"doc{i}", t) for i, t in enumerate(texts)], max_evals=args.max_evals,
                         batch_size=args.batch_size, parallel=args.parallel)
    ours_total = time.perf_counter() - t0
    for i in range(1, len(texts)):
        run_default(i)
        print(json.dumps({"doc": i, "default_s": round(default_s[i], 2)}), file=sys.stderr, flush=True)

    rows = []
    for i, text in enumerate(texts):
        sv, ex = default_out[i], ours[i]
        n_tokens = len(tm.tokenizer(text, verbose=False)["input_ids"])
        c = int(np.argmax(scorer.predict_proba([text])[0]))
        # shap's pipeline wrapper orders outputs by label id, as our scorer does
        assert list(sv.output_names) == labels, (sv.output_names, labels)
        base_tokens = segment_values(sv.data[0], sv.values[0])
        overlap = len(top_k(base_tokens, c) & top_k(ex.tokens, c)) / 10
        rows.append({"doc": i, "tokens": n_tokens, "chunks": len(_chunks(scorer, f"doc{i}", text)),
                     "default_s": round(default_s[i], 2), "top10_overlap": overlap,
                     "max_abs_value_diff": float(np.max(np.abs(np.array([v for *_, v in base_tokens])
                                                               - np.array([v for *_, v in ex.tokens]))))
                     if len(base_tokens) == len(ex.tokens) else None})

    d = float(np.mean([r["default_s"] for r in rows]))
    o = ours_total / len(rows)
    print(json.dumps({
        "benchmark": "audit explanation speed and top-10 agreement vs shap.Explainer(transformers pipeline)",
        "data": source, "n_docs": len(rows), "tokens_per_doc": [r["tokens"] for r in rows],
        "model": model_desc, "max_evals": args.max_evals, "batch_size": args.batch_size, "parallel": args.parallel,
        "ours_s_total": round(ours_total, 2),
        "torch_threads": torch.get_num_threads(),
        "default_s_per_doc": round(d, 2), "ours_s_per_doc": round(o, 2), "speedup": round(d / o, 2),
        "mean_top10_overlap": round(float(np.mean([r["top10_overlap"] for r in rows])), 3),
        "min_top10_overlap": min(r["top10_overlap"] for r in rows),
        "targets": {"speedup": 3.0, "mean_top10_overlap": 0.8},
        "per_doc": rows,
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
