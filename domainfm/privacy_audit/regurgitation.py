"""Regurgitation scan: does the model prefer the real identifier in its context?

With the de-identification vault and its key, every original that ``domainfm deid`` replaced in
the training data is put back into its (otherwise de-identified) context and ranked, by the
model's fill-in (MLM) or continuation (causal LM) log-likelihood, against format-preserving fakes
of the same PHI type with the same number of tokens. Without a vault, identifiers the user planted
or annotated (document ``spans``) are ranked the same way. An identifier that also stands
elsewhere in its own context is not scored: a model can copy it from there.

An identifier is *regurgitated* when it ranks first. A model that learned nothing ranks it first
with probability ``1 / (candidates + 1)``, so the report gives the count expected by chance and
the count chance exceeds in only 1% of audits. Nothing here returns or prints an identifier.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np


@dataclass(frozen=True)
class Probe:
    """One identifier in context: ``text[start:end]`` is the identifier."""

    text: str
    start: int
    end: int
    label: str

    @property
    def value(self) -> str:
        return self.text[self.start:self.end]


def _window(text: str, start: int, end: int, chars: int) -> tuple[str, int, int]:
    """About ``chars`` characters each side, cut at white space (never inside a word)."""
    a, b = max(0, start - chars), min(len(text), end + chars)
    if a > 0:
        cut = [i for i in range(a, start) if text[i].isspace()]
        a = cut[0] + 1 if cut else start
    if b < len(text):
        cut = [i for i in range(end, b) if text[i].isspace()]
        b = cut[-1] if cut else end
    return text[a:b], start - a, end - a


def probes_from_spans(docs: Iterable, context_chars: int, labels: Sequence[str] | None = None) -> list[Probe]:
    """Probes for the annotated ``spans`` of documents (gold or planted identifiers)."""
    probes = []
    for doc in docs:
        for span in doc.spans:
            if labels and span.label not in labels:
                continue
            text, s, e = _window(doc.text, span.start, span.end, context_chars)
            probes.append(Probe(text, s, e, span.label))
    return probes


def probes_from_vault(records: Iterable[dict[str, Any]], vault, context_chars: int) -> tuple[list[Probe], dict[str, int]]:
    """Probes for the originals the vault holds for de-identified records.

    Each original goes back into its place in the record's text (the other replacements stay
    surrogates: the context the model was trained on). Its PHI type comes from the record's
    ``phi_spans``. Records the vault does not know, or whose text changed since
    de-identification, are counted and skipped.
    """
    probes: list[Probe] = []
    counts = {"records": 0, "records_in_vault": 0, "records_changed": 0, "originals": 0}
    for rec in records:
        counts["records"] += 1
        payload = vault.get_document(str(rec.get("id")))
        text = rec.get("text")
        if payload is None or not isinstance(text, str):
            continue
        if vault.text_digest(text) != payload.get("text_h"):
            counts["records_changed"] += 1
            continue
        counts["records_in_vault"] += 1
        phi = [p for p in rec.get("phi_spans") or [] if isinstance(p, dict)]
        for out_start, out_end, in_start, in_end, original in payload.get("edits", []):
            if not original.strip():
                continue
            label = _label_for(phi, in_start, in_end)
            restored = text[:out_start] + original + text[out_end:]
            window, s, e = _window(restored, out_start, out_start + len(original), context_chars)
            probes.append(Probe(window, s, e, label))
            counts["originals"] += 1
    return probes, counts


def _label_for(phi: list[dict[str, Any]], start: int, end: int) -> str:
    from domainfm.deid.labels import CANONICAL

    best, overlap = "UNKNOWN", 0
    for p in phi:
        o = min(end, int(p.get("end", 0))) - max(start, int(p.get("start", 0)))
        if o > overlap:
            best, overlap = str(p.get("label", "UNKNOWN")), o
    # the report names each probed type: a label that is no PHI type could be anything, a name included
    return best if best in CANONICAL else "UNKNOWN"


def chance_quantile(probabilities: Sequence[float], q: float = 0.99) -> int:
    """The ``q`` quantile of the number of successes of independent trials (Poisson-binomial)."""
    dist = np.ones(1)
    for p in probabilities:
        dist = np.convolve(dist, [1.0 - p, p])
    return int(np.searchsorted(np.cumsum(dist), q - 1e-12))


def surrogate_alternatives(seed: int) -> Callable[[Probe, int], list[str]]:
    """Alternatives made by the de-identification surrogate generator under a throwaway key:
    format-preserving fakes of the probe's PHI type (names, shifted dates, phone and record
    numbers with the same pattern...) that the model has never seen."""
    from domainfm.deid.surrogates import SurrogateGenerator

    gen = SurrogateGenerator(hashlib.sha256(f"domainfm-privacy-audit:{seed}".encode()).digest())

    def make(probe: Probe, n: int) -> list[str]:
        seen, out = {probe.value.casefold()}, []
        for k in range(n):
            value = gen.surrogate(probe.value, probe.label, f"privacy-audit:{k}")
            if value.casefold() not in seen:
                seen.add(value.casefold())
                out.append(value)
        return out

    return make


def regurgitation_scan(scorer, probes: Sequence[Probe], *, n_candidates: int, max_probes: int,
                       seed: int, min_candidates: int = 4,
                       alternatives: Callable[[Probe, int], list[str]] | None = None,
                       reference=None) -> dict[str, Any]:
    """Rank every probed identifier against same-type alternatives in its own context.

    Alternatives: by default :func:`surrogate_alternatives` (up to ``3 * n_candidates`` drawn),
    those with the identifier's number of tokens in this context, at most ``n_candidates``. A
    probe with fewer than ``min_candidates`` such alternatives, whose identifier no token covers
    (cut off by truncation), or whose identifier also stands elsewhere in its context
    (:func:`repeated_in_context`) is not scored; ``skipped`` counts each reason, so
    ``probes == scored + sum(skipped.values())``.

    A real identifier is often more probable than a made-up one for *any* language model (a real
    town, a date that agrees with the note's other dates), so "ranked first more often than 1 in
    ``n + 1``" overstates memorisation. With a ``reference`` scorer (the base model before
    training) every probe is ranked by both on the same alternatives, and what counts is the
    probes the trained model ranks first and the reference does not, beyond the 99th percentile
    of a fair coin over the discordant probes (a sign test). Without one, the uniform chance
    baseline is all there is, and the result says it is uncalibrated.
    """
    rng = random.Random(f"domainfm-regurgitation:{seed}")
    alternatives = alternatives or surrogate_alternatives(seed)
    chosen = list(probes)
    if len(chosen) > max_probes:
        chosen = rng.sample(chosen, max_probes)
    per_label: dict[str, dict[str, Any]] = defaultdict(lambda: {"probes": 0, "scored": 0, "regurgitated": 0,
                                                                "expected_by_chance": 0.0, "_p": [],
                                                                "reference_regurgitated": 0, "target_only": 0,
                                                                "reference_only": 0})
    # Build every probe's batch first, then score all of them in one batched pass per model: the
    # fill-in scorer encodes each distinct masked input once, so a probe and its alternatives cost
    # one row of a full batch instead of one single-row forward pass each (and tokenising is done
    # in two calls, not two per probe).
    n_toks = scorer.span_token_counts([p.text for p in chosen], [(p.start, p.end) for p in chosen]) \
        if chosen else []
    drafts: list[tuple[Probe, list[str], list[tuple[int, int]], int]] = []
    skipped = {"no_token_covers_the_identifier": 0, "too_few_alternatives_with_its_token_count": 0,
               "identifier_also_in_its_context": 0}
    all_texts: list[str] = []
    all_spans: list[tuple[int, int]] = []
    for probe, n_tok in zip(chosen, n_toks):
        per_label[probe.label]["probes"] += 1
        if not n_tok:
            skipped["no_token_covers_the_identifier"] += 1
            continue
        if repeated_in_context(probe):
            skipped["identifier_also_in_its_context"] += 1
            continue
        others = alternatives(probe, 3 * n_candidates)
        texts = [probe.text[:probe.start] + v + probe.text[probe.end:] for v in others]
        spans = [(probe.start, probe.start + len(v)) for v in others]
        drafts.append((probe, texts, spans, int(n_tok)))
        all_texts += texts
        all_spans += spans
    counts = scorer.span_token_counts(all_texts, all_spans) if all_texts else []
    batches: list[tuple[Probe, int, int]] = []  # probe, its rows [start, end) in the scoring batch
    score_texts: list[str] = []
    score_spans: list[tuple[int, int]] = []
    at = 0
    for probe, texts, spans, n_tok in drafts:
        mine = counts[at:at + len(texts)]
        at += len(texts)
        keep = [i for i, k in enumerate(mine) if k == n_tok][:n_candidates]
        if len(keep) < min_candidates:
            skipped["too_few_alternatives_with_its_token_count"] += 1
            continue
        start = len(score_texts)
        score_texts += [probe.text] + [texts[i] for i in keep]
        score_spans += [(probe.start, probe.end)] + [spans[i] for i in keep]
        batches.append((probe, start, len(score_texts)))
    target_scores = scorer.span_logprobs(score_texts, score_spans) if score_texts else np.zeros(0)
    reference_scores = reference.span_logprobs(score_texts, score_spans) \
        if reference is not None and score_texts else None
    for probe, a, b in batches:
        stats = per_label[probe.label]
        first = _ranked_first(target_scores[a:b])
        p = 1.0 / (b - a)
        stats["scored"] += 1
        stats["regurgitated"] += int(first)
        stats["expected_by_chance"] += p
        stats["_p"].append(p)
        if reference_scores is not None:
            by_reference = _ranked_first(reference_scores[a:b])
            stats["reference_regurgitated"] += int(by_reference)
            stats["target_only"] += int(first and not by_reference)
            stats["reference_only"] += int(by_reference and not first)
    all_p = [p for s in per_label.values() for p in s["_p"]]
    by_label = {}
    for label in sorted(per_label):
        s = per_label[label]
        by_label[label] = {"probes": s["probes"], "scored": s["scored"], "regurgitated": s["regurgitated"],
                           "expected_by_chance": round(s["expected_by_chance"], 2),
                           "chance_99th_percentile": chance_quantile(s["_p"])}
        if reference is not None:
            by_label[label].update({k: s[k] for k in ("reference_regurgitated", "target_only", "reference_only")})
    regurgitated = sum(s["regurgitated"] for s in by_label.values())
    q99 = chance_quantile(all_p)
    out = {
        "probes": len(chosen), "available": len(probes),
        "scored": sum(s["scored"] for s in by_label.values()),
        "skipped": skipped,
        "regurgitated": regurgitated,
        "expected_by_chance": round(sum(all_p), 2),
        "chance_99th_percentile": q99,
    }
    if reference is None:
        out.update(beyond_chance=max(0, regurgitated - q99), calibration="uniform chance (no reference model): "
                   "real identifiers can outrank made-up ones for any model, so this overstates memorisation")
    else:
        target_only = sum(s["target_only"] for s in per_label.values())
        reference_only = sum(s["reference_only"] for s in per_label.values())
        sign_q99 = chance_quantile([0.5] * (target_only + reference_only))
        out.update(reference_regurgitated=sum(s["reference_regurgitated"] for s in per_label.values()),
                   target_only=target_only, reference_only=reference_only, sign_test_99th_percentile=sign_q99,
                   beyond_chance=max(0, target_only - sign_q99),
                   calibration="against the reference (base) model on the same alternatives: probes only the "
                               "trained model ranks first, beyond a fair coin over the discordant probes")
    out["by_label"] = by_label
    return out


def repeated_in_context(probe: Probe) -> bool:
    """Whether the identifier also stands elsewhere in the probe's text, in any case and with any
    white space between its words (as an uncased tokenizer sees it), not inside a longer word.

    A model fills such a gap by copying what it reads next to it, with no memory of its training
    data, so ranking the original first there is no evidence of memorisation (a planted note
    that names its patient twice, or a second mention de-identification missed)."""
    words = probe.value.split()
    if not words:
        return False
    pattern = r"(?<!\w)" + r"\s+".join(map(re.escape, words)) + r"(?!\w)"
    # the probed occurrence itself is cut out (with a separator that is neither a word
    # character nor white space, so the text on either side cannot join into a match)
    context = probe.text[:probe.start] + "\x00" + probe.text[probe.end:]
    return re.search(pattern, context, flags=re.IGNORECASE) is not None


def _ranked_first(scores: np.ndarray) -> bool:
    """The first score beats every other one (a tie is not a win)."""
    return bool(len(scores) > 1 and np.all(scores[1:] < scores[0]))


#: held-out originals needed before their ranking is trusted as the baseline
MIN_HOLDOUT_SCORED = 20


def calibrate_with_holdout(trained: dict[str, Any], held_out: dict[str, Any]) -> dict[str, Any]:
    """Compare the regurgitation of training originals with the same model's on originals of
    held-out notes (same source, never trained on).

    A model that learned the language, the hospital's towns and its doctors' names ranks such
    identifiers first in notes it never saw, too; only what it does more often for the notes it
    trained on is memorisation. The baseline is the held-out rate; the count beyond the 99th
    percentile of the training count it predicts is what the gate reads.
    """
    from scipy.stats import betabinom

    n_h, r_h = held_out["scored"], held_out["regurgitated"]
    # The held-out rate is itself measured on n_h originals, so chance includes its sampling error:
    # the training count's predictive distribution given the held-out count (beta-binomial, Jeffreys
    # prior: never a rate of exactly 0) exceeds its 99th percentile in about 1% of audits of a model
    # that memorised nothing. A binomial at the point rate did so in 4% (80 held-out) to 14% (20).
    q99 = int(betabinom.ppf(0.99, trained["scored"], r_h + 0.5, n_h - r_h + 0.5))
    out = dict(trained)
    out.update(
        held_out={"probes": held_out["probes"], "scored": n_h, "regurgitated": r_h, "rate": round(r_h / n_h, 4)},
        held_out_99th_percentile=q99, beyond_chance=max(0, trained["regurgitated"] - q99),
        calibration=f"against held-out originals ({n_h} scored, ranked first {r_h} times): training originals "
                    "ranked first beyond the 99th percentile of the count the held-out rate predicts "
                    "(beta-binomial: the held-out rate's own sampling error included)")
    return out
