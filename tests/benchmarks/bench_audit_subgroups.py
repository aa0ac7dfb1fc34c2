"""Real subgroups for the audit: prepare MTSamples (gender / age band) and ACI-Bench (patient
gender / age) as labelled domainfm JSONL under runs/data/, and print the group sizes as JSON.

MTSamples (../shared/data/mtsamples): the 8-specialty subset of ``tasks/mtsamples-specialty.yaml``
(notes de-duplicated by transcription, the same reader as that task's ``data.prepare``), joined on
the first ``note_id`` with ``mtsamples_demographics_heuristic.csv`` from the shared data folder:
``meta.gender`` = its ``gender_combined`` column (explicit phrases, else pronoun counts),
``meta.age`` = ``age_regex``; both were **derived by regex from the transcription text**
(heuristic, not ground truth). A stable hash of the document id puts 70% into
``mtsamples-audit-train.jsonl`` (for a specialty model) and 30% into ``mtsamples-audit.jsonl``
(the audited part, never trained on).

ACI-Bench (../shared/data/aci-bench, train + valid): the clinical note of each encounter,
``meta.gender`` / ``meta.age`` from the structured ``patient_gender`` / ``patient_age``
metadata. ACI-Bench has no class label; the classifier that makes sense is the MTSamples
specialty model (clinical notes in, specialty out), with the gold specialty mapped from the
chief complaint (``cc``) by :data:`CC_SPECIALTY` below (keyword rules, first match wins;
complaints such as "annual exam" or "abnormal labs" map to no specialty and stay unlabelled,
which the audit reports and leaves out).

Usage:
    python tests/benchmarks/bench_audit_subgroups.py     # writes runs/data/*.jsonl, prints JSON
Then (commands in the audit README notes):
    domainfm finetune tasks/mtsamples-specialty.yaml -o runs/mtsamples-audit-model \\
        --data.train runs/data/mtsamples-audit-train.jsonl ...
    domainfm audit runs/mtsamples-audit-model runs/data/mtsamples-audit.jsonl -o /tmp/... \\
        --group-by meta.gender,meta.age_band --data-note "..."
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("DOMAINFM_SHARED_DATA", ROOT.parent / "shared" / "data"))
OUT = ROOT / "runs" / "data"
SPECIALTIES = ["Cardiovascular / Pulmonary", "Gastroenterology", "Neurology", "Obstetrics / Gynecology",
               "Orthopedic", "Urology", "ENT - Otolaryngology", "Ophthalmology"]

#: chief complaint (lower-cased) -> MTSamples specialty; first matching rule wins
CC_SPECIALTY: list[tuple[str, str]] = [
    (r"carcinoma|melanoma|ovarian|breast|mammoplasty|pregnan|pelvic", "Obstetrics / Gynecology"),
    (r"urinat|kidney stone|hypogonad|prostat", "Urology"),
    (r"sore throat|sinus|ear\b|hoarse", "ENT - Otolaryngology"),
    (r"eye|vision", "Ophthalmology"),
    (r"headache|migraine|seizure|numbness|stroke", "Neurology"),
    (r"abdominal|diarrh|hepatitis|swallow|reflux|nausea", "Gastroenterology"),
    (r"chest pain|heart|stemi|hypertension|shortness of breath|dyspnea|asthma|lung|cough|smoking", "Cardiovascular / Pulmonary"),
    (r"back|knee|shoulder|elbow|ankle|hip|wrist|hand|finger|toe|foot|arm|leg|joint|injury", "Orthopedic"),
]

MTS_NOTE = ("meta.gender and meta.age (hence meta.age_band) were derived by regex from the transcription "
            "text (shared mtsamples_demographics_heuristic.csv: explicit gender phrases, else pronoun counts; "
            "age mentions) - heuristic, not ground truth; notes without a match form the group 'unknown'.")
ACI_NOTE = ("meta.gender and meta.age are ACI-Bench's structured patient metadata (simulated encounters). Gold "
            "specialty mapped from the chief complaint (cc) by keyword rules (tests/benchmarks/"
            "bench_audit_subgroups.py, CC_SPECIALTY); complaints without a rule are unlabelled and left out.")


def _in_audit_part(doc_id: str) -> bool:
    return int(hashlib.sha256(doc_id.encode("utf-8")).hexdigest()[:8], 16) % 10 < 3


def prepare_mtsamples() -> dict:
    from domainfm.corpus.document import Document
    from domainfm.corpus.io import write_documents
    from domainfm.corpus.importers.datasets import MtsamplesOptions, read_mtsamples

    csv.field_size_limit(sys.maxsize)
    with open(DATA / "mtsamples" / "mtsamples_demographics_heuristic.csv", newline="", encoding="utf-8") as fh:
        demo = {r["note_id"]: r for r in csv.DictReader(fh)}
    train, audit = [], []
    for doc in read_mtsamples(DATA / "mtsamples" / "mtsamples.csv", MtsamplesOptions(specialties=SPECIALTIES)):
        if not isinstance(doc, Document):
            continue
        row = demo.get(doc.meta["note_ids"][0], {})
        meta = dict(doc.meta)
        if row.get("gender_combined"):
            meta["gender"] = row["gender_combined"]
        if row.get("age_regex"):
            meta["age"] = float(row["age_regex"])
        doc.meta = meta
        (audit if _in_audit_part(doc.id) else train).append(doc)
    OUT.mkdir(parents=True, exist_ok=True)
    write_documents(OUT / "mtsamples-audit-train.jsonl", train)
    write_documents(OUT / "mtsamples-audit.jsonl", audit)
    return {"train": len(train), "audit": len(audit),
            "audit_gender": dict(Counter(d.meta.get("gender", "unknown") for d in audit)),
            "audit_with_age": sum("age" in d.meta for d in audit), "note": MTS_NOTE}


def cc_specialty(cc: str) -> str | None:
    cc = cc.lower()
    for pattern, specialty in CC_SPECIALTY:
        if re.search(pattern, cc):
            return specialty
    return None


def prepare_aci() -> dict:
    from domainfm.corpus.document import Document
    from domainfm.corpus.io import write_documents

    csv.field_size_limit(sys.maxsize)
    docs = []
    for part in ("train", "valid"):
        with open(DATA / "aci-bench" / f"{part}_metadata.csv", newline="", encoding="utf-8") as fh:
            meta_rows = {r["encounter_id"]: r for r in csv.DictReader(fh)}
        with open(DATA / "aci-bench" / f"{part}.csv", newline="", encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                m = meta_rows.get(r["encounter_id"], {})
                meta = {"part": part, "dataset": r.get("dataset", "")}
                if (m.get("patient_gender") or "").strip():
                    meta["gender"] = m["patient_gender"].strip().lower()
                age = (m.get("patient_age") or "").strip()
                if re.fullmatch(r"\d+(\.\d+)?", age):
                    meta["age"] = float(age)
                elif re.fullmatch(r"\d+-month", age):  # "22-month": an infant
                    meta["age"] = int(age.split("-")[0]) / 12
                docs.append(Document(f"aci-{part}-{r['encounter_id']}", r["note"], meta,
                                     cc_specialty(m.get("cc", ""))))
    write_documents(OUT / "aci-bench-audit.jsonl", docs)
    return {"documents": len(docs), "labelled": sum(d.label is not None for d in docs),
            "labels": dict(Counter(d.label for d in docs if d.label)),
            "gender": dict(Counter(d.meta.get("gender", "unknown") for d in docs)), "note": ACI_NOTE}


def main() -> int:
    if not (DATA / "mtsamples").is_dir():
        print(json.dumps({"skipped": f"{DATA} not found"}))
        return 0
    print(json.dumps({"mtsamples": prepare_mtsamples(), "aci_bench": prepare_aci()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
