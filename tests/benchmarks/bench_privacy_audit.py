"""Privacy audit of a real DAPT run: MiniLM on de-identified MTSamples with canaries.

Data: MTSamples deduplicated by transcription, a seeded sample of ``--train-docs`` +
``--holdout-docs`` notes, de-identified by ``domainfm deid`` (clinical profile, surrogates) with
a vault under a random key kept in the work folder. The first ``--train-docs`` notes are the DAPT
corpus; the rest are the held-out notes (never trained on) for membership inference.

For 1 and 3 epochs: DAPT of the embedded MiniLM (new tied MLM head) with canaries repeated
1/4/16/64 times (3 formats, 12 canaries), then ``audit_privacy`` with the vault: exposure per
repeat count, membership-inference AUC / TPR at 1% FPR with bootstrap CIs, the regurgitation scan
of the vault's originals, and the audit's wall time against the training time it audits (the
baseline of the ratio). One thread for both. Prints one JSON object (numbers only: no secret and
no text).

The audit scores a fixed sample (``--mia-documents`` members and as many non-members, up to 100
probed originals of each side, 12 canaries), so its cost does not grow with the training corpus
while training's does: ``--train-docs`` sets how much DAPT it audits.

Usage: python tests/benchmarks/bench_privacy_audit.py [--work DIR] [--train-docs 100] [--holdout-docs 100] [--mia-documents 100]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
MODEL = os.environ.get("DOMAINFM_BENCH_MODEL", "minilm")


def prepare(work: Path, n: int) -> Path:
    """Sample ``n`` unique MTSamples notes and de-identify them with a vault (cached in ``work``)."""
    sys.path.insert(0, str(ROOT))
    from domainfm.corpus import Document, write_documents
    from domainfm.deid.config import DeidConfig
    from domainfm.deid.runner import deidentify_file

    out = work / "deid.jsonl"
    key_file = work / "vault.key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(32))
    os.environ["DOMAINFM_VAULT_KEY"] = key_file.read_text().strip()
    if out.is_file() and sum(1 for _ in out.open()) >= n:
        return out
    src = DATA / "mtsamples" / "mtsamples.csv"
    if not src.is_file():
        sys.exit(f"MTSamples not found at {src}")
    seen, docs = set(), []
    with open(src, encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            text = (row.get("transcription") or "").strip()
            if text and text not in seen:
                seen.add(text)
                docs.append(Document(id=f"mts-{row['note_id']}", text=text))
    random.Random(13).shuffle(docs)
    write_documents(work / "raw.jsonl", docs[:n])
    deidentify_file(work / "raw.jsonl", out, DeidConfig(profile="clinical", vault=str(work / "deid.vault")))
    return out


def split(deid: Path, work: Path, n_train: int, n_holdout: int) -> tuple[Path, Path]:
    from domainfm.corpus import read_documents, write_documents

    docs = list(read_documents(deid))
    train, holdout = work / "train.jsonl", work / "holdout.jsonl"
    write_documents(train, docs[:n_train])
    write_documents(holdout, docs[n_train:n_train + n_holdout])
    return train, holdout


def train_model(train: Path, out: Path, epochs: int, reuse: bool) -> dict:
    from domainfm.config import from_dict
    from domainfm.pretrain import PretrainConfig, pretrain

    if reuse and (out / "metrics.json").is_file():
        return json.loads((out / "metrics.json").read_text())
    cfg = from_dict(PretrainConfig, {
        "model": {"name": MODEL},
        "data": {"paths": [str(train)], "eval_fraction": 0.0},
        "masking": {"seq_len": 128},
        "train": {"epochs": epochs, "batch_size": 16, "lr": 1e-4, "warmup_ratio": 0.06, "log_every": 10,
                  "precision": "fp32"},
        "canaries": {"enabled": True},
        # a subset of the deid output (its own manifest does not trace to deid)
        "allow_identified_data": True,
    })
    return pretrain(cfg, out, overwrite=True).metrics


def audit(model: Path, train: Path, holdout: Path, vault: Path, out: Path, mia_documents: int) -> dict:
    from domainfm.privacy_audit import PrivacyAuditConfig, audit_privacy

    cfg = PrivacyAuditConfig(n_candidates=255, max_tokens=128, mask_passes=1, max_probes=100,
                             context_chars=50, regurgitation_candidates=19, max_documents=mia_documents)
    return audit_privacy(model, train, holdout, out, cfg, vault=vault).report


def compare(runs: dict, before: dict) -> None:
    """Add an earlier run's audit share of training and the ratio now / then to each run."""
    for name, run in runs.items():
        if name in before:
            then = before[name]["audit_share_of_training"]
            run["audit_share_before"] = {"share": then, "timing": before[name]["audit_timing"],
                                         "now_over_before": round(run["audit_share_of_training"] / then, 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default="/tmp/privacy-bench")
    parser.add_argument("--train-docs", type=int, default=100)
    parser.add_argument("--holdout-docs", type=int, default=100)
    parser.add_argument("--epochs", default="1,3")
    parser.add_argument("--mia-documents", type=int, default=100,
                        help="members and non-members scored by membership inference, each (a seeded sample): the "
                             "audit's cost is set by this, not by the size of the training corpus")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reuse", action="store_true", help="reuse trained models found in --work")
    parser.add_argument("--compare-to", type=Path, default=None,
                        help="an earlier output of this benchmark: adds its audit time shares and the ratio "
                             "now / then per run (the share is a same-run ratio, so runs under different "
                             "load compare)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    deid = prepare(work, args.train_docs + args.holdout_docs)
    train, holdout = split(deid, work, args.train_docs, args.holdout_docs)
    runs = {}
    for epochs in (int(e) for e in args.epochs.split(",")):
        model = work / f"dapt-{epochs}ep"
        metrics = train_model(train, model, epochs, args.reuse)
        report = audit(model, train, holdout, work / "deid.vault", work / f"audit-{epochs}ep",
                       args.mia_documents)
        mia = report["membership"]
        reg = report["regurgitation"]
        runs[f"{epochs}_epochs"] = {
            "steps": metrics["train"]["steps"],
            "train_tokens": metrics["train"]["tokens_this_run"],
            "train_seconds": metrics["train"]["train_seconds"],
            "exposure_by_repeats": report["exposure"]["by_repeats"],
            "max_possible_exposure": report["exposure"]["max_possible"],
            "mia": {name: {k: a[k] for k in ("auc", "auc_ci", "tpr_at_1pct_fpr", "tpr_at_1pct_fpr_ci")}
                    for name, a in mia["attacks"].items()},
            "mia_documents": {"members": mia["members"], "nonmembers": mia["nonmembers"]},
            "regurgitation": {k: reg.get(k) for k in ("originals", "probes", "scored", "regurgitated",
                                                      "expected_by_chance", "chance_99th_percentile",
                                                      "reference_regurgitated", "target_only", "reference_only",
                                                      "sign_test_99th_percentile", "held_out",
                                                      "held_out_99th_percentile", "beyond_chance", "calibration",
                                                      "by_label") if k in reg},
            "gate": {c["check"]: c["status"] for c in report["gate"]["checks"]},
            "audit_timing": report["timing"],
            "audit_share_of_training": report["timing"]["share_of_training"],
        }
    if args.compare_to is not None:
        compare(runs, json.loads(args.compare_to.read_text())["runs"])
    print(json.dumps({
        "benchmark": "privacy_audit",
        "data": f"MTSamples (deduplicated), seeded sample: {args.train_docs} train + {args.holdout_docs} held-out "
                "notes, de-identified with domainfm deid (clinical, surrogates, vault)",
        "model": "minilm (all-MiniLM-L6-v2 encoder, new MLM head tied to the embeddings), seq_len 128, "
                 "16 sequences per step, lr 1e-4, fp32",
        "canaries": "3 formats (mrn, phone, name_date) x repeats 1/4/16/64; 255 reference secrets each",
        "audit": f"MIA on the first 128 tokens of up to {args.mia_documents} + {args.mia_documents} notes, one 15% "
                 "masking pass; regurgitation: up to 100 "
                 "originals, 19 same-type alternatives, 50 characters of context each side",
        "device": f"cpu ({os.cpu_count()} cores), {args.threads} thread(s)",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "runs": runs,
    }, indent=2))


if __name__ == "__main__":
    main()
