"""Benchmark whether each single-process stage streams: peak RSS of one command at two corpus sizes.

Prints one JSON object (and writes it with ``--out``). For each corpus size (``--sizes``: short
generated notes, about 150 characters, four per patient, with gold PHI spans and a ward label)
each command below runs as a fresh ``python -m domainfm ...`` child, and its peak RSS is read from
``os.wait4``'s resource usage of that child alone:

* ``baseline``: a child that imports the package (``domainfm.cli``) and runs a
  ``read_documents`` loop over the corpus, nothing else: what reading the input costs;
* ``import_jsonl``, ``import_csv``, ``import_textdir`` (one ``.txt`` file per note),
  ``import_labelstudio`` (a Label Studio JSON export, one annotation per task, its PHI as
  ``labels`` regions and the ward as a ``choices`` region);
* ``deid`` (one process, no ``--engine``; surrogates keyed by ``$DOMAINFM_VAULT_KEY``, no vault);
* ``chunk`` (the embedded ``minilm`` tokenizer);
* ``deid_eval`` (the gold notes against the ``deid`` output, ``--misses`` written);
* ``label_export`` (``label --export labelstudio --export prodigy --export csv``: 40 seeds, the
  corpus as the pool, a tiny 2-layer sentence encoder built here so that encoding is not the
  cost: the ranking and the model are whole-pool by design, the export is what is measured).

For every command: **peak_mb** per size, **growth_mb_per_1k_docs** (the peak's slope between the
smallest and the largest size), **growth_beyond_baseline_mb_per_1k_docs** (that slope minus the
baseline's) and **peak_over_baseline** (peak / the baseline's peak, per size). A command that
streams keeps its growth beyond the baseline near 0 (the ids it remembers to refuse duplicates
cost about 0.1-0.2 MB per 1,000 documents); one that holds the corpus grows by about as much as
the corpus takes in Python objects (``corpus_mb_per_1k_docs`` is the file's own size).

``--before FILE`` embeds an earlier run's JSON under ``"before"`` (e.g. measured before a fix);
``--src DIR`` measures the ``domainfm`` package in ``DIR`` (a copy of the tree before a change).

    OMP_NUM_THREADS=1 python tests/benchmarks/bench_stage_memory.py [--sizes 2000,20000]
        [--stages deid,chunk] [--out FILE] [--before FILE]

About 5 to 7 minutes on 2 shared cores with the defaults (``deid`` is most of it).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

STAGES = ("baseline", "import_jsonl", "import_csv", "import_textdir", "import_labelstudio", "deid", "chunk",
          "deid_eval", "label_export")
# made-up name parts and wards: no real person, no data set
_SYLLABLES = ["ka", "lo", "mir", "ten", "sa", "vor", "el", "dan", "ru", "bex", "ni", "tal", "or", "win", "qu", "fen"]
_WARDS = {"cardio": "cardiac step-down", "renal": "the renal clinic", "day": "the day unit", "general": "ward 7B"}
_WORDS = ("was seen on by Dr on Call to follow up in weeks Mr agreed born cardiac step - down the renal clinic "
          "day unit ward 7B").split()


def _name(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def make_notes(n: int, seed: int = 7):
    """``n`` made-up notes as domainfm records with gold PHI spans, a ward label and a patient."""
    rng = random.Random(seed)
    patients = [(f"P{i:06d}", _name(rng), _name(rng), rng.randint(1950, 2000)) for i in range(max(1, n // 4))]
    for i in range(n):
        pid, first, last, born = patients[rng.randrange(len(patients))]
        ward = rng.choice(sorted(_WARDS))
        parts = [(f"{first} {last}", "PATIENT"), (" (born ", None),
                 (f"{rng.randint(1, 12)}/{rng.randint(1, 28)}/{born}", "DATE"), (") was seen on ", None),
                 (f"{rng.randint(1, 12)}/{rng.randint(1, 28)}/2021", "DATE"), (" by Dr. ", None),
                 (_name(rng), "DOCTOR"), (f" on {_WARDS[ward]}. Call ", None),
                 (f"{rng.randint(200, 989)}-555-{rng.randint(1000, 9999)}", "PHONE"),
                 (f" to follow up in {rng.randint(1, 6)} weeks. Mr. ", None), (last, "PATIENT"), (" agreed.", None)]
        text, spans = "", []
        for piece, label in parts:
            if label is not None:
                spans.append({"start": len(text), "end": len(text) + len(piece), "label": label})
            text += piece
        yield {"id": f"n{i:07d}", "text": text, "label": ward, "meta": {"patient_id": pid}, "spans": spans}


def write_inputs(folder: Path, n: int) -> dict[str, Path]:
    """The corpus of ``n`` notes in every form the commands read."""
    folder.mkdir(parents=True)
    paths = {"notes": folder / "notes.jsonl", "pool": folder / "pool.jsonl", "csv": folder / "notes.csv",
             "textdir": folder / "texts", "labelstudio": folder / "export.json"}
    paths["textdir"].mkdir()
    with paths["notes"].open("w", encoding="utf-8") as notes, paths["pool"].open("w", encoding="utf-8") as pool, \
            paths["csv"].open("w", encoding="utf-8", newline="") as table, \
            paths["labelstudio"].open("w", encoding="utf-8") as export:
        rows = csv.writer(table)
        rows.writerow(["id", "text", "label", "patient_id"])
        export.write("[")
        for i, note in enumerate(make_notes(n)):
            notes.write(json.dumps(note) + "\n")
            pool.write(json.dumps({"id": note["id"], "text": note["text"], "meta": note["meta"]}) + "\n")
            rows.writerow([note["id"], note["text"], note["label"], note["meta"]["patient_id"]])
            (paths["textdir"] / f"{note['id']}.txt").write_text(note["text"], encoding="utf-8")
            regions = [{"id": f"r{j}", "from_name": "phi", "to_name": "text", "type": "labels",
                        "value": {**span, "text": note["text"][span["start"]:span["end"]], "labels": [span["label"]]}}
                       for j, span in enumerate(note["spans"])]
            for region in regions:
                del region["value"]["label"]
            regions.append({"id": "c", "from_name": "ward", "to_name": "text", "type": "choices",
                            "value": {"choices": [note["label"]]}})
            task = {"id": i + 1, "data": {"text": note["text"], "doc_id": note["id"], **note["meta"]},
                    "annotations": [{"id": i + 1, "completed_by": 1, "result": regions, "was_cancelled": False}]}
            export.write(("," if i else "") + "\n " + json.dumps(task))
        export.write("\n]\n")
    return paths


def write_seeds(path: Path) -> None:
    """40 labelled seeds, 10 per ward, from another seed than the pool's."""
    taken = dict.fromkeys(_WARDS, 0)
    with path.open("w", encoding="utf-8") as fh:
        for note in make_notes(400, seed=99):
            if taken[note["label"]] < 10:
                taken[note["label"]] += 1
                fh.write(json.dumps({"id": "seed-" + note["id"], "text": note["text"], "label": note["label"]}) + "\n")


def write_tiny_encoder(folder: Path) -> None:
    """A 2-layer BERT (hidden 32) with a word-piece vocabulary of the notes' words and single
    characters, saved like any hub model: sentence-transformers loads it with mean pooling."""
    import string

    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, BertTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = string.ascii_letters + string.digits + string.punctuation
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(
        specials + list(chars) + [f"##{c}" for c in chars] + _WORDS + _SYLLABLES))}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    BertTokenizerFast(tokenizer_object=tok, model_max_length=256).save_pretrained(folder)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=37, max_position_embeddings=256)).save_pretrained(folder)


_BASELINE = """
import sys
import domainfm.cli  # the package, as every command imports it
from domainfm.corpus import read_documents
n = sum(1 for _ in read_documents(sys.argv[1]))
print(n)
"""


def command(stage: str, inputs: dict[str, Path], out: Path, work: Path) -> list[str]:
    py = [sys.executable, "-m", "domainfm"]
    if stage == "baseline":
        return [sys.executable, "-c", _BASELINE, str(inputs["notes"])]
    if stage.startswith("import_"):
        fmt = stage[len("import_"):]
        src = inputs["notes" if fmt == "jsonl" else fmt]
        extra = {"csv": ["--id-col", "id", "--label-col", "label"], "labelstudio": ["--choices-from", "ward"]}
        return py + ["import", fmt, str(src), "-o", str(out / f"{stage}.jsonl"), *extra.get(fmt, [])]
    if stage == "deid":
        return py + ["deid", str(inputs["notes"]), "-o", str(out / "deid.jsonl")]
    if stage == "chunk":
        return py + ["chunk", str(inputs["notes"]), "-o", str(out / "chunks.jsonl")]
    if stage == "deid_eval":
        if not (out / "deid.jsonl").is_file():
            raise SystemExit("deid_eval scores the deid output: run it with the deid stage")
        return py + ["deid-eval", str(inputs["notes"]), str(out / "deid.jsonl"), "-o", str(out / "deid_eval.json"),
                     "--misses", str(out / "misses.jsonl")]
    if stage == "label_export":
        return py + ["label", "--labeled", str(work / "seeds.jsonl"), "--pool", str(inputs["pool"]),
                     "-o", str(out / "suggestions.jsonl"), "--model", str(work / "tiny-encoder"),
                     "--export", "labelstudio", "--export", "prodigy", "--export", "csv"]
    raise SystemExit(f"unknown stage {stage!r}; choose from {', '.join(STAGES)}")


def measure(argv: list[str], log: Path, src: Path) -> dict:
    """Run one child; its own peak RSS (``os.wait4``: this child only, not earlier ones)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(src)}
    start = time.perf_counter()
    with log.open("w") as fh:
        child = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=src)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(argv[2:5])} failed ({child.returncode}):\n{log.read_text()[-3000:]}")
    return {"peak_mb": round(usage.ru_maxrss / 1024, 1), "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,20000", help="notes per corpus, comma-separated")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"of {', '.join(STAGES)}")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--before", type=Path, help="an earlier run's JSON, kept under 'before'")
    parser.add_argument("--src", type=Path, default=ROOT,
                        help="the folder holding the domainfm package to measure (another copy of it, e.g. before a change)")
    parser.add_argument("--write-encoder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_encoder:
        write_tiny_encoder(args.write_encoder)
        return
    os.environ.setdefault("DOMAINFM_VAULT_KEY", "bench-stage-memory-" + "k" * 30)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    stages = [s for s in args.stages.split(",") if s]
    if "baseline" not in stages:
        stages.insert(0, "baseline")
    report: dict = {"machine": f"{os.cpu_count()} CPU cores (shared with other jobs)", "src": str(args.src),
                    "measure": "peak RSS of one fresh child process (os.wait4 ru_maxrss), per command and size",
                    "sizes": sizes, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_seeds(work / "seeds.jsonl")
        if "label_export" in stages:  # in a child: a child's peak starts at its parent's RSS (fork, then exec)
            subprocess.run([sys.executable, __file__, "--write-encoder", str(work / "tiny-encoder")], check=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
        for size in sizes:
            inputs = write_inputs(work / f"in-{size}", size)
            out = work / f"out-{size}"
            out.mkdir()
            runs = report["runs"][str(size)] = {
                "corpus_mb": round(inputs["notes"].stat().st_size / 2**20, 2)}
            for stage in stages:
                runs[stage] = measure(command(stage, inputs, out, work), work / f"{stage}-{size}.log", args.src.resolve())
                print(f"{size} {stage}: {runs[stage]}", file=sys.stderr, flush=True)
    small, large = str(sizes[0]), str(sizes[-1])
    if len(sizes) > 1:
        per_k = (sizes[-1] - sizes[0]) / 1000
        report["corpus_mb_per_1k_docs"] = round((report["runs"][large]["corpus_mb"]
                                                 - report["runs"][small]["corpus_mb"]) / per_k, 3)
        growth = {s: (report["runs"][large][s]["peak_mb"] - report["runs"][small][s]["peak_mb"]) / per_k
                  for s in stages}
        report["summary"] = {
            s: {"growth_mb_per_1k_docs": round(growth[s], 3),
                "growth_beyond_baseline_mb_per_1k_docs": round(growth[s] - growth["baseline"], 3),
                "peak_over_baseline": {size: round(report["runs"][size][s]["peak_mb"]
                                                   / report["runs"][size]["baseline"]["peak_mb"], 2)
                                       for size in report["runs"]}}
            for s in stages}
    if args.before is not None:
        report["before"] = json.loads(args.before.read_text(encoding="utf-8"))
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
