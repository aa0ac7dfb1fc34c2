"""Benchmark PHI detection against a vanilla presidio AnalyzerEngine, side by side.

Prints one JSON object. Per dataset: our any-overlap recall/precision/F1/F2 (type-agnostic,
see domainfm.deid.evaluate) and the vanilla engine's on the same texts, both engines' chars per
second and the speed ratio. Timing alternates the two engines over the same chunks of texts so
load on a shared machine hits both alike. ``ours`` is the detector alone (``PhiDetector``);
``ours_propagated`` adds the name propagation that ``domainfm deid`` runs after it (a name found
once is flagged wherever it recurs in the note and in the same patient's later notes), timed
with it, so ``speed_ratio_propagated`` is the whole detection step of ``domainfm deid``.

    python tests/benchmarks/bench_deid.py [--limit N] [--data ../shared/data] [--sets physionet,tab,synth,aci]
                                          [--split A|B|all] [--ner-model DIR ...] [--ner-quantize none,int8]

``--split`` keeps one half of the PhysioNet notes, chosen by patient (a hash of the patient id, so
every note of a patient falls in the same half): tune rules while reading misses of half A only,
then check on half B, whose misses were never read, that a change generalises.

``--ner-model DIR`` (repeatable) adds, per model, rules + that learned model (``DeidConfig.ner_model``)
on the PhysioNet notes: scores, the model's spans alone, and its speed against the vanilla
engine, timed alternating over the same chunks like the rules alone (on the GPU when the machine
has one). Train it on the other half (``train_deid_ner.py``). ``--ner-quantize none,int8`` runs
each model once per variant (``DeidConfig.ner_quantize``), all in this one run.

Datasets: PhysioNet nursing notes (clinical profile), TAB judgments (legal profile; DIRECT and
DIRECT+QUASI gold), ACI-Bench transcribed visits and their notes (``aci``: ``aci_train``, whose
misses were read while writing the dialogue rules, and ``aci_valid``, never read; clinical
profile; recall of the patient's names only), Presidio's synthetic sentences (``generic``
recognizer set: clinical plus all ages, countries, nationalities and non-US phone shapes; TITLE
spans are not counted as PHI).
The vanilla engine: default recognizers, the same spaCy pipeline, default threshold; its
tldextract is pointed at the bundled suffix list so it does not wait on the network either.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _vanilla_engine(model: str):
    import tldextract
    import tldextract.tldextract as tld_module
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    tld_module.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    provider = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": model}]})
    return AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])


def _run_side_by_side(docs, detector, vanilla, chunk: int = 20):
    from domainfm.deid.propagate import NamePropagator

    ours, propagated, theirs = {}, {}, {}
    propagator = NamePropagator()
    t_ours = t_prop = t_theirs = 0.0
    for i in range(0, len(docs), chunk):
        part = docs[i:i + chunk]
        t0 = time.perf_counter()
        for doc, found in detector.detect(part):
            ours[doc.id] = found
        t1 = time.perf_counter()
        for doc in part:  # in input order, as the runner does
            propagated[doc.id] = propagator(doc, list(ours[doc.id]))
        t2 = time.perf_counter()
        for doc in part:
            theirs[doc.id] = [(r.start, r.end, r.entity_type) for r in vanilla.analyze(doc.text, language="en")]
        t3 = time.perf_counter()
        t_ours += t1 - t0
        t_prop += t2 - t1
        t_theirs += t3 - t2
    chars = sum(len(d.text) for d in docs)
    return ours, propagated, theirs, chars / t_ours, chars / (t_ours + t_prop), chars / t_theirs


def _scores(docs, pred, dataset, pred_dataset, gold_filter=None):
    from domainfm.deid.evaluate import evaluate

    s = evaluate(docs, pred, dataset=dataset, pred_dataset=pred_dataset, gold_filter=gold_filter,
                 keep_lists=False).summary()
    return {"gold": s["gold"], "pred": s["pred"], **s["any_overlap"],
            "recall_by_type": {k: v["recall_any_label"] for k, v in s["per_type"].items() if v["gold"]}}


def _learned_scores(docs, config, ner_model: str, dataset: str, vanilla, cps_rules: float,
                    quantize: str = "none") -> dict:
    """Rules + the learned model (``DeidConfig.ner_model``, ``ner_quantize``), the model's spans
    alone, and speed: timed against the vanilla engine on the same chunks, alternating, like the
    rules alone."""
    from dataclasses import replace

    import torch

    from domainfm.deid import PhiDetector
    from domainfm.deid.engine import visible_text
    from domainfm.deid.learned import LEARNED

    detector = PhiDetector(replace(config, ner_model=ner_model, ner_quantize=quantize))
    detector.detect_text("warm up")
    # the model's own spans and time, recorded as the detector calls it (no second pass)
    model_spans: dict[str, list] = {}
    model_seconds = [0.0]
    detect_batch = detector.learned.detect

    def recorded(texts):
        t0 = time.perf_counter()
        out = detect_batch(texts)
        model_seconds[0] += time.perf_counter() - t0
        for text, spans in zip(texts, out):
            model_spans[text] = [(s.start, s.end, s.label) for s in spans]
        return out

    detector.learned.detect = recorded
    found, propagated, _, cps, cps_prop, cps_theirs = _run_side_by_side(docs, detector, vanilla)
    alone = {doc.id: model_spans.get(visible_text(doc.text), []) for doc in docs}
    cps_alone = sum(len(d.text) for d in docs) / model_seconds[0]
    return {"model": ner_model, "device": detector.learned.device, "quantize": quantize,
            "int8": detector.learned.quantized, "torch_threads": torch.get_num_threads(),
            "model_alone_chars_per_s": round(cps_alone),
            "rules_and_model": _scores(docs, found, dataset, "canonical"),
            "rules_and_model_propagated": _scores(docs, propagated, dataset, "canonical"),
            "model_alone": _scores(docs, alone, dataset, "canonical"),
            "spans_from_the_model": sum(d.recognizer == LEARNED for v in found.values() for d in v),
            "chars_per_s": round(cps), "vanilla_chars_per_s": round(cps_theirs),
            "speed_ratio": round(cps / cps_theirs, 2), "speed_ratio_propagated": round(cps_prop / cps_theirs, 2),
            "slowdown_vs_rules": round(cps_rules / cps, 2)}


def patient_half(patient_id: str) -> str:
    """``"A"`` or ``"B"``: a fixed half per patient (SHA-1 of the id, even or odd)."""
    return "AB"[int(hashlib.sha1(patient_id.encode("utf-8")).hexdigest(), 16) % 2]


def aci_patient_names(folder: Path, part: str) -> list:
    """ACI-Bench visits (``train`` or ``valid``): each dialogue and each note is a document whose
    gold spans are the patient's first and family names (from the metadata) wherever they occur
    as whole words, any case. Other PHI is not annotated there, so only recall means anything."""
    import csv
    import re

    from domainfm.corpus import Document, Span

    with open(folder / f"{part}_metadata.csv", newline="", encoding="utf-8") as f:
        names = {r["encounter_id"]: [n.strip() for n in (r["patient_firstname"], r["patient_familyname"]) if n.strip()]
                 for r in csv.DictReader(f)}
    docs = []
    with open(folder / f"{part}.csv", newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            eid = r["encounter_id"]
            for field in ("dialogue", "note"):
                text = r[field]
                spans = sorted({(m.start(), m.end()) for n in names.get(eid, ())
                                for m in re.finditer(rf"(?<![A-Za-z]){re.escape(n)}(?![A-Za-z])", text, flags=re.I)})
                docs.append(Document(f"{eid}-{field}", text, meta={"patient_id": eid},
                                     spans=[Span(a, b, "NAME") for a, b in spans]))
    return docs


def _load(name: str, data: Path, tmp: Path, limit: int | None, split: str = "all"):
    from domainfm.corpus import Document, Span, import_corpus, read_documents

    if name == "physionet":
        out = tmp / "physionet.jsonl"
        import_corpus("physionet", data / "physionet-deid", out)
        docs = list(read_documents(out))
        if split != "all":
            docs = [d for d in docs if patient_half(str(d.meta.get("patient_id", d.id))) == split]
    elif name.startswith("aci"):
        docs = aci_patient_names(data / "aci-bench", name.split("_", 1)[1])
    elif name == "tab":
        out = tmp / "tab.jsonl"
        import_corpus("tab", data / "tab-echr" / "entity_tab.jsonl", out)
        docs = list(read_documents(out))
    else:
        records = json.loads((data / "presidio-synth" / "data" / "synth_dataset_v2.json").read_text())
        docs = []
        for i, r in enumerate(records):
            spans = [Span(s["start_position"], s["end_position"], s["entity_type"]) for s in r["spans"]
                     if s["end_position"] > s["start_position"]]
            docs.append(Document(f"synth-{i}", r["full_text"], spans=spans))
    return docs[:limit] if limit else docs


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="documents per dataset (quick runs)")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--sets", default="physionet,tab,synth")
    parser.add_argument("--split", choices=("A", "B", "all"), default="all",
                        help="PhysioNet half by patient (A: for error analysis, B: held back)")
    parser.add_argument("--ner-model", action="append", default=[],
                        help="also score the PhysioNet notes with this learned NER model added to the rules "
                             "(DeidConfig.ner_model; train it on the other half, see the README); repeatable")
    parser.add_argument("--ner-quantize", default="none",
                        help="comma-separated DeidConfig.ner_quantize variants to run each --ner-model with, "
                             "each timed against the vanilla engine in this run, e.g. none,int8")
    args = parser.parse_args(argv)
    data = Path(args.data)
    if not data.is_dir():
        out = {"skipped": f"datasets not found at {data}"}
        print(json.dumps(out))
        return out

    from domainfm.deid import DeidConfig, PhiDetector
    from domainfm.deid.engine import quiet_presidio_logs
    from domainfm.deid.evaluate import identifier_filter
    from domainfm.models import resolve_spacy_model

    quiet_presidio_logs()
    model = resolve_spacy_model("default")
    vanilla = _vanilla_engine(model)
    vanilla.analyze("warm up 410-555-1234 jdoe@example.com", language="en")
    settings = {"physionet": ("physionet", DeidConfig(profile="clinical")),
                "tab": ("tab", DeidConfig(profile="legal")),
                "synth": ("presidio-synth", DeidConfig(profile="clinical", recognizers="generic")),
                "aci_train": ("canonical", DeidConfig(profile="clinical")),
                "aci_valid": ("canonical", DeidConfig(profile="clinical"))}
    result: dict = {"spacy_model": model, "matching": "any-overlap, type-agnostic; precision per predicted span",
                    "limit": args.limit, "physionet_split": args.split, "datasets": {}}
    total_ours = total_theirs = 0.0
    total_chars = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets.replace("aci", "aci_train,aci_valid").split(","):
            dataset, config = settings[name]
            docs = _load(name, data, Path(tmp), args.limit, args.split)
            detector = PhiDetector(config)
            detector.detect_text("warm up")
            ours, propagated, theirs, cps_ours, cps_prop, cps_theirs = _run_side_by_side(docs, detector, vanilla)
            chars = sum(len(d.text) for d in docs)
            total_chars += chars
            total_ours += chars / cps_ours
            total_theirs += chars / cps_theirs
            entry = {"docs": len(docs), "chars": chars, "recognizer_set": config.recognizer_set,
                     "chars_per_s": round(cps_ours), "chars_per_s_propagated": round(cps_prop),
                     "vanilla_chars_per_s": round(cps_theirs), "speed_ratio": round(cps_ours / cps_theirs, 2),
                     "speed_ratio_propagated": round(cps_prop / cps_theirs, 2)}
            if name == "tab":
                for key, levels in (("direct", ["DIRECT"]), ("direct_quasi", ["DIRECT", "QUASI"])):
                    flt = identifier_filter(levels)
                    entry[key] = {"ours": _scores(docs, ours, dataset, "canonical", flt),
                                  "ours_propagated": _scores(docs, propagated, dataset, "canonical", flt),
                                  "vanilla": _scores(docs, theirs, dataset, "presidio", flt)}
            else:
                entry["ours"] = _scores(docs, ours, dataset, "canonical")
                entry["ours_propagated"] = _scores(docs, propagated, dataset, "canonical")
                entry["vanilla"] = _scores(docs, theirs, dataset, "presidio")
            if name.startswith("aci"):  # only the patient's names are gold there: recall alone
                for key in ("ours", "ours_propagated", "vanilla"):
                    entry[key] = {k: entry[key][k] for k in ("gold", "recall")}
                entry["gold_is"] = "the patient's first and family names from the metadata, wherever they occur"
            if args.ner_model and name == "physionet":
                entry["learned"] = [_learned_scores(docs, config, m, dataset, vanilla, cps_ours, q)
                                    for m in args.ner_model for q in args.ner_quantize.split(",")]
            result["datasets"][name] = entry
    result["overall_speed_ratio"] = round(total_theirs / total_ours, 2) if total_ours else None
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
