"""Benchmark the chunker against LangChain's token splitter on real contracts and notes.

Prints one JSON object. Datasets (read from ``<repo>/../shared/data``; the benchmark prints
``{"skipped": reason}`` when they are absent):

- CUAD contracts (all ``full_contract_txt/*.txt``), MiniLM tokenizer, max 512 / overlap 64:
  domainfm (``profile=legal``) and ``RecursiveCharacterTextSplitter.from_huggingface_tokenizer(
  tokenizer, chunk_size=512, chunk_overlap=64, add_start_index=True)`` side by side in one run:
  % of chunks over 512 model positions (counted *with* special tokens), % of chunks whose
  offsets are wrong (``start == -1`` or ``text != source[start:start + len(text)]``), share of
  non-whitespace characters inside at least one chunk (for LangChain, only chunks with a correct
  offset can be placed), characters per second and the speed ratio.
- ContractNLI dev: % of evidence spans (whitespace-trimmed, at most ``max_tokens - 2`` tokens)
  that lie wholly inside at least one chunk.
- MTSamples (deduplicated by transcription), ``profile=clinical``: % of chunks that start at a
  boundary. A chunk start counts as a boundary when it is (a) the first non-whitespace character
  of the note, (b) the first character after a line break (only whitespace in between), (c) right
  after sentence-ending punctuation ``.!?`` (optionally followed by closing quotes/brackets and
  by the ``,`` that glues MTSamples sections together) plus whitespace or that glue comma, or
  (d) the start of a heading found by the clinical sectionizer.

Usage: ``python tests/benchmarks/bench_chunk.py [--limit N]`` (N documents per dataset).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("DOMAINFM_SHARED_DATA", ROOT.parent / "shared" / "data"))
MAX_TOKENS, OVERLAP = 512, 64
_WHITESPACE = np.array([c for c in range(0x3000 + 1) if chr(c).isspace()], dtype=np.uint32)
_BOUNDARY_BEFORE = re.compile(r"(?:[.!?][\"'”’)\]]*,?|\n)\s*$|[.!?][\"'”’)\]]*,$")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="documents per dataset (quick run)")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(json.dumps({"benchmark": "chunk", "skipped": f"shared data not found at {DATA}"}))
        return 0
    from domainfm.models import load_tokenizer

    tokenizer = load_tokenizer("minilm")
    report = {"benchmark": "chunk", "data": str(DATA), "tokenizer": "minilm", "max_tokens": MAX_TOKENS,
              "overlap": OVERLAP, "limit": args.limit}
    report["cuad"] = bench_cuad(tokenizer, args.limit)
    report["contract_nli"] = bench_contract_nli(tokenizer, args.limit)
    report["mtsamples"] = bench_mtsamples(tokenizer, args.limit)
    report["targets"] = targets(report)
    print(json.dumps(report, indent=2))
    return 0


# ----------------------------------------------------------------------------- the two chunkers

def ours(tokenizer, texts: list[str], profile: str):
    """[(doc index, start, end, text, n_tokens)], seconds."""
    from domainfm.chunk import ChunkConfig, Chunker
    from domainfm.corpus import Document

    chunker = Chunker(ChunkConfig(tokenizer="minilm", max_tokens=MAX_TOKENS, overlap=OVERLAP, profile=profile), tokenizer)
    docs = [Document(id=str(i), text=t) for i, t in enumerate(texts)]
    t0 = time.perf_counter()
    out = []
    for result in chunker.iter_documents(docs):
        if result.error is not None:
            raise result.error
        out.extend((int(c.doc_id), c.start, c.end, c.text, c.n_tokens) for c in result.chunks)
    return out, time.perf_counter() - t0


def langchain(tokenizer, texts: list[str]):
    """[(doc index, start_index, start_index + len, text)], seconds."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter.from_huggingface_tokenizer(
        tokenizer, chunk_size=MAX_TOKENS, chunk_overlap=OVERLAP, add_start_index=True)
    t0 = time.perf_counter()
    docs = splitter.create_documents(texts, metadatas=[{"doc": i} for i in range(len(texts))])
    seconds = time.perf_counter() - t0
    out = [(d.metadata["doc"], d.metadata["start_index"], d.metadata["start_index"] + len(d.page_content),
            d.page_content) for d in docs]
    return out, seconds


# ------------------------------------------------------------------------------------ metrics

def positions(tokenizer, texts: list[str]) -> list[int]:
    counts = []
    for i in range(0, len(texts), 256):
        ids = tokenizer(texts[i:i + 256], add_special_tokens=True, return_attention_mask=False,
                        return_token_type_ids=False, verbose=False)["input_ids"]
        counts.extend(len(x) for x in ids)
    return counts


def exact(texts: list[str], chunks) -> list[bool]:
    return [s >= 0 and texts[d][s:e] == t for d, s, e, t, *_ in chunks]


def coverage(texts: list[str], chunks, ok: list[bool]) -> dict:
    """Share of non-whitespace characters inside at least one correctly placed chunk."""
    by_doc: dict[int, list[tuple[int, int]]] = {}
    for (d, s, e, *_), good in zip(chunks, ok):
        if good:
            by_doc.setdefault(d, []).append((s, e))
    total = missed = docs_complete = 0
    for d, text in enumerate(texts):
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        content = ~np.isin(codes, _WHITESPACE)
        diff = np.zeros(len(text) + 1, dtype=np.int32)
        for s, e in by_doc.get(d, []):
            diff[s] += 1
            diff[e] -= 1
        covered = np.cumsum(diff[:-1]) > 0
        n_content, n_missed = int(content.sum()), int((content & ~covered).sum())
        total += n_content
        missed += n_missed
        docs_complete += n_missed == 0
    return {"non_whitespace_chars": total, "uncovered": missed,
            "coverage_pct": round(100 * (1 - missed / max(1, total)), 4),
            "documents_fully_covered_pct": round(100 * docs_complete / max(1, len(texts)), 2)}


def summarize(tokenizer, texts, chunks, seconds) -> dict:
    n = len(chunks)
    pos = positions(tokenizer, [c[3] for c in chunks])
    ok = exact(texts, chunks)
    chars = sum(map(len, texts))
    return {
        "chunks": n,
        "seconds": round(seconds, 2),
        "chars_per_second": round(chars / seconds),
        "over_limit_pct": round(100 * sum(p > MAX_TOKENS for p in pos) / max(1, n), 3),
        "max_positions": max(pos, default=0),
        "start_minus_one_pct": round(100 * sum(c[1] < 0 for c in chunks) / max(1, n), 3),
        "offset_mismatch_pct": round(100 * sum(not x for x in ok) / max(1, n), 3),
        **coverage(texts, chunks, ok),
    }


# ----------------------------------------------------------------------------------- datasets

def bench_cuad(tokenizer, limit):
    files = sorted((DATA / "cuad" / "full_contract_txt").glob("*.txt"))[:limit]
    texts = [f.read_text(encoding="utf-8") for f in files]
    lc_chunks, lc_seconds = langchain(tokenizer, texts)
    our_chunks, our_seconds = ours(tokenizer, texts, "legal")
    result = {"documents": len(texts), "characters": sum(map(len, texts)),
              "domainfm": summarize(tokenizer, texts, our_chunks, our_seconds),
              "langchain": summarize(tokenizer, texts, lc_chunks, lc_seconds)}
    ours_n = [c[4] for c in our_chunks]
    result["domainfm"]["n_tokens_matches_recount"] = ours_n == positions(tokenizer, [c[3] for c in our_chunks])
    result["speedup"] = round(result["domainfm"]["chars_per_second"] / result["langchain"]["chars_per_second"], 2)
    return result


def bench_contract_nli(tokenizer, limit):
    data = json.loads((DATA / "contract-nli" / "dev.json").read_text(encoding="utf-8"))
    documents = data["documents"][:limit]
    texts = [d["text"] for d in documents]
    evidence = []  # (doc index, start, end) whitespace-trimmed
    for i, doc in enumerate(documents):
        used = set()
        for annotation_set in doc["annotation_sets"]:
            for annotation in annotation_set["annotations"].values():
                used.update(annotation.get("spans", []))
        for k in sorted(used):
            s, e = doc["spans"][k]
            segment = texts[i][s:e]
            s += len(segment) - len(segment.lstrip())
            e = s + len(segment.strip())
            if s < e:
                evidence.append((i, s, e))
    budget = MAX_TOKENS - tokenizer.num_special_tokens_to_add()
    lengths = [len(x) for x in tokenizer([texts[d][s:e] for d, s, e in evidence], add_special_tokens=False,
                                         return_attention_mask=False, return_token_type_ids=False,
                                         verbose=False)["input_ids"]]
    fitting = [span for span, n in zip(evidence, lengths) if n <= budget]
    result = {"documents": len(texts), "evidence_spans": len(evidence), "spans_within_budget": len(fitting)}
    for name, (chunks, _) in (("domainfm", ours(tokenizer, texts, "legal")), ("langchain", langchain(tokenizer, texts))):
        ok = exact(texts, chunks)
        by_doc: dict[int, list[tuple[int, int]]] = {}
        for (d, s, e, *_), good in zip(chunks, ok):
            if good:
                by_doc.setdefault(d, []).append((s, e))
        inside = sum(any(cs <= s and e <= ce for cs, ce in by_doc.get(d, [])) for d, s, e in fitting)
        result[name] = {"chunks": len(chunks), "contained": inside,
                        "contained_pct": round(100 * inside / max(1, len(fitting)), 3)}
    return result


def bench_mtsamples(tokenizer, limit):
    from domainfm.chunk import sectionize

    csv.field_size_limit(sys.maxsize)
    with open(DATA / "mtsamples" / "mtsamples.csv", encoding="utf-8", newline="") as fh:
        seen, texts = set(), []
        for row in csv.DictReader(fh):
            text = (row.get("transcription") or "").strip()
            if text and text not in seen:
                seen.add(text)
                texts.append(text)
    texts = texts[:limit]
    headings = [{s.start for s in sectionize(t, "clinical")} for t in texts]
    result = {"notes": len(texts), "boundary_definition": (
        "start of text | after a line break | after .!? (+closing quotes/brackets, +MTSamples ',' glue) "
        "and whitespace or that comma | at a heading found by the clinical sectionizer")}
    for name, (chunks, _) in (("domainfm", ours(tokenizer, texts, "clinical")), ("langchain", langchain(tokenizer, texts))):
        ok = exact(texts, chunks)
        placed = [(c[0], c[1]) for c, good in zip(chunks, ok) if good]
        # Checked in this order, so "heading_only" counts the starts that only our own
        # sectionizer vouches for (no line break or sentence end right before them).
        kinds = {"start": 0, "line_or_sentence": 0, "heading_only": 0, "other": 0}
        for d, s in placed:
            text = texts[d]
            if not text[:s].strip():
                kinds["start"] += 1
            elif _BOUNDARY_BEFORE.search(text, max(0, s - 64), s):
                kinds["line_or_sentence"] += 1
            elif s in headings[d]:
                kinds["heading_only"] += 1
            else:
                kinds["other"] += 1
        n = len(placed)
        result[name] = {"chunks": len(chunks), "placeable_chunks": n, "starts": kinds,
                        "boundary_start_pct": round(100 * (n - kinds["other"]) / max(1, n), 3),
                        "over_limit_pct": round(100 * sum(p > MAX_TOKENS for p in positions(
                            tokenizer, [c[3] for c in chunks])) / max(1, len(chunks)), 3)}
    return result


def targets(report) -> dict:
    cuad, nli, mts = report["cuad"], report["contract_nli"], report["mtsamples"]
    return {
        "cuad_zero_over_limit": cuad["domainfm"]["over_limit_pct"] == 0,
        "cuad_all_offsets_exact": cuad["domainfm"]["offset_mismatch_pct"] == 0,
        "cuad_full_non_whitespace_coverage": cuad["domainfm"]["uncovered"] == 0,
        "cuad_speedup_at_least_2x": cuad["speedup"] >= 2,
        "contract_nli_containment_at_least_99pct": nli["domainfm"]["contained_pct"] >= 99,
        "mtsamples_boundary_starts_at_least_95pct": mts["domainfm"]["boundary_start_pct"] >= 95,
    }


if __name__ == "__main__":
    sys.exit(main())
