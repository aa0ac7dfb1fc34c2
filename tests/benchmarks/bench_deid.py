"""Benchmark PHI detection against a vanilla presidio AnalyzerEngine, side by side.

Prints one JSON object. Per dataset: our any-overlap recall/precision/F1/F2 (type-agnostic,
see domainfm.deid.evaluate) and the vanilla engine's on the same texts, both engines' chars per
second and the speed ratio. Timing alternates the two engines over the same chunks of texts so
load on a shared machine hits both alike. ``ours`` is the detector alone (``PhiDetector``);
``ours_propagated`` adds the name propagation that ``domainfm deid`` runs after it (a name found
once is flagged wherever it recurs in the note and in the same patient's later notes), timed
with it, so ``speed_ratio_propagated`` is the whole detection step of ``domainfm deid``.

    python tests/benchmarks/bench_deid.py [--limit N] [--data ../shared/data] [--sets physionet,tab,synth,aci,corpus]
                                          [--split A|B|all] [--folds K] [--sealed 3,4] [--ner-model DIR ...]
                                          [--ner-quantize none,int8] [--ner-shape-checks on,off]
                                          [--hand-lists leave-fold-out|as-written] [--ner-threshold F]
                                          [--fold-model 3=DIR --fold-model 4=DIR]

The protocol (what a number may be called). PhysioNet's development notes are cut into ``--folds``
patient-disjoint folds (SHA-1 of the patient id modulo K, so a patient's notes stay together).
Misses may be read on the other folds only; the ``--sealed`` folds are scored but never read, and
a rule change counts only if it helps the sealed folds too. Every fold of this development part
was read in earlier rounds (before folds existed), so even sealed-fold numbers are *development*
numbers: the last independent measurement on unseen patients was far lower (recall 0.885 where
half B said 0.968). Three checks no rule was written against sit beside them:

* ``fresh_strings``: the sealed folds again, with every gold name and place replaced by a seeded
  pseudo-word of the same shape (case, length, word count; "ZORBLAX QUINTAVIUS"), so no name or
  place list can know it: what the rules find from context alone. Dates, phones and ids stay.
  A word keeps its pseudo-word in all of its patient's notes (``--fresh-mapping patient``), as a
  real name does. Recall, precision and leakage are averaged over ``--fresh-seeds`` draws (the
  other scores are the first draw's), with 90% intervals from resampling the sealed folds'
  patients (``patient_bootstrap_90``).
* leave-fold-out hand lists (``--hand-lists leave-fold-out``, the default): fresh strings replace
  the PHI, not the words around it, and the rules' hand-typed lists were written reading every
  fold, so they know each sealed fold's rare words (a typo, a unit's abbreviation) and block the
  false positives a new site's own rare words would cause. Each sealed fold is therefore scored
  with the listed words only its notes have, rarer than Zipf 3, taken out (``hand_lists.py``);
  ``split_credit`` does the same for the rules and the model's shape checks.
* cross-source sets: ACI-Bench names (``aci``), Presidio's synthetic sentences (``synth``), TAB
  judgments (``tab``) and the project's own generated clinical corpus (``corpus``).
* ``leakage``: the share of gold PHI strings (>= 3 characters) still found verbatim in the
  ``--operator surrogate`` output (rules + propagation + surrogates, as ``domainfm deid`` writes).
* ``split_credit`` (with ``--ner-model`` trained on the other folds): rules + model on the sealed
  folds with each part credited only where it has not seen the strings. The rules' detections
  come from the fresh-string texts (their lists were written reading every fold), mapped back
  onto the real notes; the model's come from the real notes (it never saw these patients, as it
  will not have seen a site's next patients). Propagation and scores then run on the real notes.
  The real-string rules + model score credits the rules with strings they were written on; the
  fresh-string one denies the model the staff and places a site's notes share.
* ``fold_models`` (``--fold-model 3=DIR --fold-model 4=DIR``): the split credit again, with each
  sealed fold tagged by a model trained on every other fold. The recipe trains on all of
  ``../shared`` but its held-out share (about 1,000 notes), a model trained on the read folds
  alone on about 630: this is the estimate closest to the model the targets measure.

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
                    quantize: str = "none", folds: int = 5, sealed: list[int] = (), fresh_seeds: int = 5,
                    shape_checks: bool = True, rules=None, fresh_mapping: str = "patient",
                    without: dict | None = None) -> dict:
    """Rules + the learned model (``DeidConfig.ner_model``, ``ner_quantize``), the model's spans
    alone, and speed: timed against the vanilla engine on the same chunks, alternating, like the
    rules alone. With ``sealed`` folds: rules + model + propagation per fold and on the sealed
    folds with fresh strings (untimed), the unseen estimate when the model was trained on the
    other folds only (``train_deid_ner.py --train-folds``), and the split-credit estimate
    (:func:`_split_credit_scores`; ``rules`` is the rules-only detector; ``without`` as in
    :func:`_fresh_scores`)."""
    from dataclasses import replace

    import torch

    from domainfm.deid import PhiDetector
    from domainfm.deid.engine import visible_text
    from domainfm.deid.learned import LEARNED, tag_once

    detector = PhiDetector(replace(config, ner_model=ner_model, ner_quantize=quantize, ner_shape_checks=shape_checks))
    detector.detect_text("warm up")
    # the model's own spans and time, recorded as the detector calls it (no second pass)
    model_spans: dict[str, list] = {}
    model_seconds = [0.0]
    detect_batch = detector.learned.detect

    def recorded(texts):
        t0 = time.perf_counter()
        out = detect_batch(texts)
        model_seconds[0] += time.perf_counter() - t0
        model_spans.update(zip(texts, out))
        return out

    detector.learned.detect = recorded
    found, propagated, _, cps, cps_prop, cps_theirs = _run_side_by_side(docs, detector, vanilla)
    # the split credit reads the real notes again: from the timed pass's spans, not a second tagging
    detector.learned.detect = tag_once(detect_batch, model_spans)
    alone = {doc.id: [(s.start, s.end, s.label) for s in model_spans.get(visible_text(doc.text)[0], [])]
             for doc in docs}
    cps_alone = sum(len(d.text) for d in docs) / model_seconds[0]
    return {"model": ner_model, "device": detector.learned.device, "quantize": quantize, "shape_checks": shape_checks,
            "int8": detector.learned.quantized, "torch_threads": torch.get_num_threads(),
            "model_alone_chars_per_s": round(cps_alone),
            "rules_and_model": _scores(docs, found, dataset, "canonical"),
            "rules_and_model_propagated": _scores(docs, propagated, dataset, "canonical"),
            "model_alone": _scores(docs, alone, dataset, "canonical"),
            "spans_from_the_model": sum(d.recognizer == LEARNED for v in found.values() for d in v),
            "chars_per_s": round(cps), "vanilla_chars_per_s": round(cps_theirs),
            "speed_ratio": round(cps / cps_theirs, 2), "speed_ratio_propagated": round(cps_prop / cps_theirs, 2),
            "slowdown_vs_rules": round(cps_rules / cps, 2),
            **({"folds": _fold_scores(docs, propagated, dataset, folds, list(sealed)),
                "fresh_strings": _fresh_scores(docs, detector, dataset, folds, list(sealed), fresh_seeds,
                                               fresh_mapping, without),
                **({"split_credit": _split_credit_scores(docs, rules, detector, dataset, folds, list(sealed),
                                                          fresh_seeds, fresh_mapping, without)}
                   if rules is not None else {})}
               if sealed else {})}


def _fold_scores(docs, propagated, dataset: str, folds: int, sealed: list[int]) -> dict:
    """Scores (detector + propagation) and leakage per patient fold, and over the sealed folds."""
    by_fold: dict = {}
    for doc in docs:
        by_fold.setdefault(patient_fold(str(doc.meta.get("patient_id", doc.id)), folds), []).append(doc)
    out = {}
    for fold, part in sorted(by_fold.items()):
        scores = _scores(part, propagated, dataset, "canonical")
        out[str(fold)] = {"docs": len(part), "read": fold not in sealed, **scores,
                          "leakage": _leakage(part, propagated, dataset)["rate"]}
    part = [d for f in sealed for d in by_fold.get(f, [])]
    if part:
        out["sealed"] = {"folds": sealed, "docs": len(part), **_scores(part, propagated, dataset, "canonical"),
                         "leakage": _leakage(part, propagated, dataset)["rate"]}
    return out


def _fresh_scores(docs, detector, dataset: str, folds: int, sealed: list[int], seeds: int = 5,
                  mapping: str = "patient", without: dict | None = None) -> dict:
    """The sealed folds with pseudo-word names and places (``fresh_strings``), detector +
    propagation, untimed; one draw of pseudo-words per seed, scores of the first draw, the mean
    and range of recall, precision and leakage over all draws, and patient-bootstrap intervals.
    ``without``: per sealed fold, the words taken out of the hand lists while it is scored
    (:func:`hand_lists.fold_only_words`); None scores with the lists as written."""
    part = [d for d in docs if patient_fold(str(d.meta.get("patient_id", d.id)), folds) in sealed]
    draws = [fresh_strings(part, seed=seed, mapping=mapping) for seed in range(13, 13 + seeds)]
    found_per_draw = [{} for _ in draws]
    for fold, block in _fold_blocks(sealed, without):
        with block:
            det = _remade(detector, without)
            for found, fresh in zip(found_per_draw, draws):
                found.update(_propagated(det, _in_fold(fresh, folds, fold)))
    return {**_over_draws(list(zip(draws, found_per_draw)), dataset, sealed), "mapping": mapping,
            "hand_lists": _hand_lists_note(without)}


def _over_draws(scored: list, dataset: str, sealed: list[int]) -> dict:
    """Scores of the first ``(documents, found)`` draw, the mean of recall, precision and leakage
    over all draws with their per-draw values, and patient-bootstrap intervals."""
    recalls, precisions, leaks, first = [], [], [], None
    # each draw's surrogate output is written once: for leakage here and in the intervals
    outputs = [_surrogate_outputs(docs, found) for docs, found in scored]
    for (docs, found), written in zip(scored, outputs):
        scores = _scores(docs, found, dataset, "canonical")
        leakage = _leakage(docs, found, dataset, outputs=written)
        recalls.append(scores["recall"])
        precisions.append(scores["precision"])
        leaks.append(leakage["rate"])
        if first is None:
            first = {"folds": sealed, "docs": len(docs), **scores, "leakage": leakage}
    return {**first, "recall_mean_over_seeds": round(sum(recalls) / len(recalls), 4), "recall_per_seed": recalls,
            "precision_mean_over_seeds": round(sum(precisions) / len(precisions), 4),
            "leakage_mean_over_seeds": round(sum(leaks) / len(leaks), 4), "leakage_per_seed": leaks,
            "patient_bootstrap_90": patient_intervals(scored, dataset, outputs)}


def _fold_blocks(sealed: list[int], without: dict | None):
    """``(fold, context)`` pairs: each sealed fold with its words out of the hand lists, or all
    sealed folds at once (fold None) with the lists as written."""
    from contextlib import nullcontext

    from hand_lists import hand_lists_without

    if without is None:
        return [(None, nullcontext())]
    return [(fold, hand_lists_without(without.get(fold, ()))) for fold in sealed]


def _remade(detector, without: dict | None):
    """The detector itself with the lists as written; else a new one with its configuration (or
    ``detector`` is that ``DeidConfig``), made inside the hand-list block (a recognizer may copy a
    list when it is made)."""
    from domainfm.deid import PhiDetector

    if without is None:
        return detector
    det = PhiDetector(getattr(detector, "config", detector))
    det.detect_text("warm up")
    return det


def _in_fold(docs: list, folds: int, fold: int | None) -> list:
    return docs if fold is None else [d for d in docs if patient_fold(str(d.meta.get("patient_id", d.id)), folds) == fold]


def _propagated(detector, docs: list) -> dict:
    from domainfm.deid.propagate import propagate_names

    return {doc.id: dets for doc, dets in propagate_names(detector.detect(docs))}


def _hand_lists_note(without: dict | None) -> dict:
    if without is None:
        return {"protocol": "as written (every fold was read while they were written)"}
    return {"protocol": "leave-fold-out: each sealed fold scored without the hand-list words only its notes have "
                        "(rarer than Zipf 3); see tests/benchmarks/hand_lists.py",
            "words_taken_out_per_fold": {str(k): len(v) for k, v in sorted(without.items())}}


def patient_intervals(draws: list, dataset: str, outputs: list | None = None, resamples: int = 2000,
                      seed: int = 0) -> dict:
    """90% intervals of recall, precision and leakage with patients resampled (the unit the folds
    are cut by; ``domainfm.deid.evaluate.bootstrap_intervals``): per patient the counts of all
    draws ``(documents, found)`` are summed first. ``outputs``: each draw's surrogate output
    when already written. How far another set of patients of the same site may land."""
    from domainfm.deid.evaluate import bootstrap_intervals, unit_counts

    summed: dict[str, list[int]] = {}
    for n, (docs, found) in enumerate(draws):
        written = outputs[n] if outputs is not None else _surrogate_outputs(docs, found)
        counts = unit_counts(docs, found, output_texts=written, dataset=dataset, unit="patient")
        for patient, row in counts.items():
            summed[patient] = [a + b for a, b in zip(summed.get(patient, [0] * len(row)), row)]
    return {"unit": "patient", **bootstrap_intervals(summed, resamples=resamples, seed=seed)}


def patient_half(patient_id: str) -> str:
    """``"A"`` or ``"B"``: a fixed half per patient (SHA-1 of the id, even or odd)."""
    return "AB"[int(hashlib.sha1(patient_id.encode("utf-8")).hexdigest(), 16) % 2]


def patient_fold(patient_id: str, folds: int) -> int:
    """A fixed fold in ``range(folds)`` per patient (SHA-1 of the id modulo ``folds``)."""
    return int(hashlib.sha1(patient_id.encode("utf-8")).hexdigest(), 16) % folds


_SYLLABLES = ("ba", "bre", "cu", "da", "dro", "fen", "gla", "ho", "jix", "ka", "lo", "mur", "na", "pe",
              "quin", "ra", "sto", "ta", "ux", "vel", "wo", "xa", "yor", "za", "zor", "blax", "tav", "ius")


def fresh_strings(docs: list, seed: int = 13, moves: dict | None = None, mapping: str = "patient") -> list:
    """The documents with every gold name and place replaced by a seeded pseudo-word of the same
    shape (ALL CAPS, Title or lower case, about the same length, the same number of words), spans
    moved to match; generic words inside a name ("Hospital", "St.", "of") and numbers stay. No
    list can know these strings: recall on them is recall from context. Needs the English
    lexicon loaded (build a ``PhiDetector`` first). ``moves``, when given, receives per document
    id the replaced stretches as ``(start, end, fresh_start, fresh_end)``, for :func:`to_original`.

    ``mapping="patient"`` (the protocol since the tenth session) gives a word the same pseudo-word
    in every note of its patient, as a real name is the same string wherever it recurs (name
    propagation can then work as on real notes), and never a pseudo-word that occurs in that
    patient's notes ("dro" inside "hydro" would read as leaked though replaced). ``"mention"``:
    a new draw for every mention, with no such check (the protocol before)."""
    import random

    from domainfm.corpus import Document, Span
    from domainfm.deid.labels import coarse, to_canonical

    from domainfm.deid.recognizers import vocab

    if mapping not in ("patient", "mention"):
        raise ValueError(f"mapping must be 'patient' or 'mention', got {mapping!r}")
    rng = random.Random(seed)
    generic = vocab.stop_words() | vocab.FACILITY_HEADS | vocab.FACILITY_MODIFIERS
    names = vocab.all_names()
    drawn: dict[tuple[str, str], str] = {}
    notes_of: dict[str, list[str]] = {}
    for doc in docs if mapping == "patient" else ():
        notes_of.setdefault(str(doc.meta.get("patient_id", doc.id)), []).append(doc.text.lower())
    # a patient's notes, lower-cased and joined once: where a draw must not occur
    patient_text = {scope: "\n" + "\n".join(notes) for scope, notes in notes_of.items()}

    def pseudo(word: str, scope: str, text: str) -> str:
        low = word.lower().strip(".,")
        # digits and the generic words of a name stay ("Hospital", "St.", "of", "4"): only what a
        # list could know is replaced
        if not any(c.isalpha() for c in word) or low in generic or (vocab.in_lexicon(low) and low not in names):
            return word
        out = drawn.get((scope, low)) if mapping == "patient" else None
        if out is None:
            for _ in range(50):
                out = ""
                while len(out) < max(3, len(word) - 1):
                    out += rng.choice(_SYLLABLES)
                out = out[:max(3, len(word))]
                if mapping == "mention" or out not in text:
                    break
            if mapping == "patient":
                drawn[(scope, low)] = out
        if word.isupper():
            return out.upper()
        return out.capitalize() if word[:1].isupper() else out

    fresh = []
    for doc in docs:
        scope = str(doc.meta.get("patient_id", doc.id))
        text = patient_text[scope] if mapping == "patient" else ""
        pieces, spans, cursor, shift = [], [], 0, 0
        for span in sorted(doc.spans, key=lambda x: (x.start, -x.end)):
            if span.start < cursor:  # nested or crossing gold span: keep it where it is
                continue
            canonical = to_canonical(span.label, "physionet")
            original = doc.text[span.start:span.end]
            if canonical is not None and coarse(canonical) in ("NAME", "LOCATION"):
                new = " ".join(pseudo(w, scope, text) for w in original.split(" "))
            else:
                new = original
            pieces.append(doc.text[cursor:span.start])
            start = span.start + shift
            if moves is not None:
                moves.setdefault(doc.id, []).append((span.start, span.end, start, start + len(new)))
            pieces.append(new)
            shift += len(new) - len(original)
            spans.append(Span(start, start + len(new), span.label))
            cursor = span.end
        pieces.append(doc.text[cursor:])
        fresh.append(Document(doc.id, "".join(pieces), dict(doc.meta), spans=spans))
    return fresh


def to_original(pos: int, moved: list, end: bool = False) -> int:
    """A position in a :func:`fresh_strings` text mapped back onto the original text: shifted past
    the replaced stretches before it; inside a replaced stretch, the same distance from its start
    (an ``end`` position at most its end), since the pseudo-word keeps the words' shape."""
    shift = 0
    for start, stop, fresh_start, fresh_stop in moved:
        if pos < fresh_start or (end and pos == fresh_start):
            break
        if pos <= fresh_stop:
            return min(start + (pos - fresh_start), stop) if pos < fresh_stop else stop
        shift = fresh_stop - stop
    return pos - shift


def _split_credit_scores(docs, rules, detector, dataset: str, folds: int, sealed: list[int], seeds: int = 5,
                         mapping: str = "patient", without: dict | None = None, model_alone: dict | None = None) -> dict:
    """The sealed folds credited to each part where it has not seen the strings: what the rules
    find with fresh strings (their lists were written reading every fold, so only the pseudo-word
    texts show what they find from context), mapped back onto the real notes, together with what
    the model alone finds on the real notes (it was trained on other patients: these strings are
    as new to it as an unseen patient's; staff and places shared across patients are shared at
    the site too); then propagation and scores on the real notes. Rules' draws and ``without``
    as in :func:`_fresh_scores`. ``detector`` may be a dict of one ``DeidConfig`` per sealed fold
    (each naming the model trained on every other fold, :func:`_fold_model_scores`; the detector is
    made once, in the fold's hand-list block); ``model_alone``, when given, receives the model's
    own spans per document."""
    from dataclasses import replace

    from domainfm.deid.detection import merge_detections
    from domainfm.deid.propagate import propagate_names

    part = [d for d in docs if patient_fold(str(d.meta.get("patient_id", d.id)), folds) in sealed]
    draws = []
    for seed in range(13, 13 + seeds):
        moves: dict = {}
        draws.append((fresh_strings(part, seed=seed, moves=moves, mapping=mapping), moves))
    found_per_draw = [{} for _ in draws]
    for fold, block in _fold_blocks(sealed, without):
        with block:
            det = _remade(rules, without)
            real = _in_fold(part, folds, fold)
            # the model's spans pass shape checks whose cue lists are hand lists too
            model_detector = detector[fold] if isinstance(detector, dict) else detector
            learned = {doc.id: dets for doc, dets in _remade(model_detector, without).detect_learned(real)}
            if model_alone is not None:
                model_alone.update(learned)
            for found, (fresh, moves) in zip(found_per_draw, draws):
                from_rules = {}
                for doc, dets in det.detect(_in_fold(fresh, folds, fold)):
                    moved = moves.get(doc.id, [])
                    from_rules[doc.id] = [replace(d, start=to_original(d.start, moved),
                                                  end=to_original(d.end, moved, end=True)) for d in dets]
                combined = ((doc, merge_detections(doc.text, [d for d in from_rules[doc.id] + learned[doc.id]
                                                              if d.end > d.start]))
                            for doc in real)
                found.update({doc.id: dets for doc, dets in propagate_names(combined)})
    return {**_over_draws([(part, found) for found in found_per_draw], dataset, sealed), "mapping": mapping,
            "hand_lists": _hand_lists_note(without)}


def _fold_model_scores(docs, config, fold_models: dict[int, str], dataset: str, folds: int, sealed: list[int],
                       rules, quantize: str = "none", seeds: int = 5, mapping: str = "patient",
                       without: dict | None = None) -> dict:
    """Split credit with each sealed fold tagged by its own model, trained on every other fold
    (``train_deid_ner.py --train-folds``): the recipe trains on all of a site's annotated notes
    but a held-out share, so a model trained on the read folds alone sees fewer notes than the
    model the targets measure. Each fold's words stay out of the hand lists as in
    :func:`_split_credit_scores`; the model's spans alone are scored on the real notes too."""
    from dataclasses import replace

    if without is None:
        raise SystemExit("--fold-model needs --hand-lists leave-fold-out (each fold is scored in its own block)")
    missing = sorted(set(sealed) - set(fold_models))
    if missing:
        raise SystemExit(f"--fold-model: no model for sealed fold(s) {missing}; give FOLD=DIR for each of {sealed}")
    configs = {fold: replace(config, ner_model=fold_models[fold], ner_quantize=quantize) for fold in sealed}
    part = [d for d in docs if patient_fold(str(d.meta.get("patient_id", d.id)), folds) in sealed]
    alone: dict = {}
    split = _split_credit_scores(docs, rules, configs, dataset, folds, sealed, seeds, mapping, without, alone)
    return {"models": {str(fold): fold_models[fold] for fold in sealed}, "quantize": quantize,
            "split_credit": split,
            "model_alone": _scores(part, {k: [(d.start, d.end, d.label) for d in v] for k, v in alone.items()},
                                   dataset, "canonical")}


def _leakage(docs, detections, dataset: str, gold_filter=None, outputs: dict | None = None) -> dict:
    """Leakage of the ``surrogate`` output written from these detections (``domainfm deid``'s
    transformation, with a fixed benchmark key; ``outputs`` when already written)."""
    from domainfm.deid.evaluate import leakage

    written = outputs if outputs is not None else _surrogate_outputs(docs, detections)
    report = leakage(docs, written, dataset=dataset, gold_filter=gold_filter)
    return {k: report[k] for k in ("gold_strings", "leaked", "rate", "per_type")}


def _surrogate_outputs(docs, detections) -> dict[str, str]:
    from domainfm.deid.surrogates import SurrogateGenerator
    from domainfm.deid.transform import apply_operator

    gen = SurrogateGenerator(b"benchmark-secret-not-for-production-use!")
    return {doc.id: apply_operator(doc, detections.get(doc.id, []), "surrogate", gen).text for doc in docs}


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
    elif name == "corpus":  # the project's own generated notes (corpora/clinical)
        docs = [d for d in read_documents(ROOT / "corpora" / "clinical" / "notes.jsonl") if d.spans]
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
    parser.add_argument("--folds", type=int, default=5, help="PhysioNet patient-disjoint folds (protocol above)")
    parser.add_argument("--sealed", default="3,4",
                        help="folds whose misses are never read (comma-separated; empty: no fold scores, for "
                             "speed runs)")
    parser.add_argument("--fresh-seeds", type=int, default=5, help="pseudo-word draws for fresh_strings (mean reported)")
    parser.add_argument("--fresh-mapping", choices=("patient", "mention"), default="patient",
                        help="fresh_strings: one pseudo-word per word and patient, never one found in the patient's "
                             "notes (the protocol), or a new draw per mention (the protocol before the tenth session)")
    parser.add_argument("--hand-lists", choices=("leave-fold-out", "as-written"), default="leave-fold-out",
                        help="fresh_strings and split_credit: score each sealed fold without the hand-list words only "
                             "its notes have (the protocol since the fourteenth session; hand_lists.py), or with the "
                             "lists as written")
    parser.add_argument("--ner-model", action="append", default=[],
                        help="also score the PhysioNet notes with this learned NER model added to the rules "
                             "(DeidConfig.ner_model; train it on the other half, see the README); repeatable")
    parser.add_argument("--ner-threshold", type=float, default=None,
                        help="DeidConfig.ner_threshold for --ner-model (choose it on the model's own held-out "
                             "patients, never on the sealed folds)")
    parser.add_argument("--ner-shape-checks", default="on",
                        help="comma-separated on/off variants of DeidConfig.ner_shape_checks to run each --ner-model with")
    parser.add_argument("--ner-quantize", default="none",
                        help="comma-separated DeidConfig.ner_quantize variants to run each --ner-model with, "
                             "each timed against the vanilla engine in this run, e.g. none,int8")
    parser.add_argument("--fold-model", action="append", default=[], metavar="FOLD=DIR",
                        help="split credit with each sealed fold tagged by its own model, trained on every other fold "
                             "(train_deid_ner.py --train-folds), the closest to the recipe's training size; one per "
                             "sealed fold, run with the first --ner-quantize variant")
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
    settings = {"physionet": ("physionet", DeidConfig(profile="clinical", ner_threshold=args.ner_threshold)),
                "tab": ("tab", DeidConfig(profile="legal")),
                "synth": ("presidio-synth", DeidConfig(profile="clinical", recognizers="generic")),
                "aci_train": ("canonical", DeidConfig(profile="clinical")),
                "aci_valid": ("canonical", DeidConfig(profile="clinical")),
                "corpus": ("synthetic-clinical", DeidConfig(profile="clinical"))}
    sealed = sorted({int(f) for f in args.sealed.split(",") if f.strip()})
    result: dict = {"spacy_model": model, "matching": "any-overlap, type-agnostic; precision per predicted span",
                    "limit": args.limit, "physionet_split": args.split,
                    "protocol": {"folds": args.folds, "sealed_folds": sealed,
                                 "note": "every PhysioNet fold was read in earlier rounds: fold numbers are development "
                                         "numbers; fresh_strings and the other sets are the checks no rule was written on"},
                    "datasets": {}}
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
            flt = identifier_filter(["DIRECT"]) if name == "tab" else None
            if not name.startswith("aci"):
                entry["leakage"] = _leakage(docs, propagated, dataset, flt)
            without = None
            if name == "physionet" and args.hand_lists == "leave-fold-out":
                from hand_lists import fold_only_words

                by_fold: dict = {}
                for doc in docs:
                    by_fold.setdefault(patient_fold(str(doc.meta.get("patient_id", doc.id)), args.folds),
                                       []).append(doc.text)
                without = fold_only_words(by_fold, sealed)
            if name == "physionet" and sealed:  # --sealed '': speed and whole-set scores only
                entry["folds"] = _fold_scores(docs, propagated, dataset, args.folds, sealed)
                entry["fresh_strings"] = _fresh_scores(docs, detector, dataset, args.folds, sealed, args.fresh_seeds,
                                                       args.fresh_mapping, without)
            if args.ner_model and name == "physionet":
                entry["learned"] = [_learned_scores(docs, config, m, dataset, vanilla, cps_ours, q,
                                                    args.folds, sealed if args.split == "all" else [],
                                                    args.fresh_seeds, checks == "on", rules=detector,
                                                    fresh_mapping=args.fresh_mapping, without=without)
                                    for m in args.ner_model for q in args.ner_quantize.split(",")
                                    for checks in args.ner_shape_checks.split(",")]
            if args.fold_model and name == "physionet" and sealed:
                fold_models = {}
                for item in args.fold_model:
                    fold, _, path = item.partition("=")
                    if not fold.strip().isdigit() or not path:
                        raise SystemExit(f"--fold-model {item!r}: expected FOLD=DIR, e.g. 3=runs/deid-ner-f0124")
                    fold_models[int(fold)] = path
                entry["fold_models"] = _fold_model_scores(docs, config, fold_models, dataset, args.folds, sealed,
                                                          detector, args.ner_quantize.split(",")[0],
                                                          args.fresh_seeds, args.fresh_mapping, without)
            result["datasets"][name] = entry
    result["overall_speed_ratio"] = round(total_theirs / total_ours, 2) if total_ours else None
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
