"""Privacy checks: was the training data de-identified, and does the report quote PHI?"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

#: Patterns of direct identifiers searched in every report before it is written, and masked
#: (same length, ``*``) in any document text the report quotes.
PHI_PATTERNS: dict[str, re.Pattern] = {
    "ssn": re.compile(r"\b\d{3}-\d{2}-\d{4}\b"),
    "phone": re.compile(r"(?<![\w.])\(?\d{3}\)?[-. ]\d{3}[-. ]\d{4}\b"),
    "email": re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b"),
    "mrn": re.compile(r"\bMRN\s*[:#]?\s*\w*\d{4,}\w*", re.I),
    "date": re.compile(r"\b\d{1,2}/\d{1,2}/\d{2,4}\b|\b\d{1,2}-[A-Z][a-z]{2}-\d{4}\b"),
}


def mask_phi(text: str) -> str:
    """Replace PHI-like matches by ``*`` of the same length (offsets stay valid)."""
    for pattern in PHI_PATTERNS.values():
        text = pattern.sub(lambda m: "*" * len(m.group(0)), text)
    return text


def data_trace(paths: list[str | Path] | None) -> dict[str, Any]:
    """Whether every file the audited documents were read from traces back to ``domainfm deid``
    by the pretraining privacy gate's rule (a ``deid`` manifest whose recorded output hash is the
    file's, possibly through ``chunk``): ``{"deidentified": bool, "evidence": [...]}``. Documents
    given without their files cannot be traced."""
    if not paths:
        return {"deidentified": False, "evidence": ["the documents were given without the files they came from"]}
    from domainfm.manifest import check_deidentified

    checks = check_deidentified(paths)
    return {"deidentified": all(c.deidentified for c in checks),
            "evidence": [f"{Path(c.path).name}: {c.evidence}" for c in checks]}


def mask_identifiers(texts: dict[str, str], tokens: dict[str, list[tuple[int, int]]] | None = None, *,
                     profile: str = "clinical") -> tuple[dict[str, str], int]:
    """``texts`` with what ``domainfm deid``'s rules detect and what the PHI patterns match
    (:func:`mask_phi`) masked by ``*`` (same length, so offsets stay valid); returns the masked
    texts and how many spans the rules found.

    The detection is the deid stage's own: the recognizers of ``profile``, long texts in
    windows, and a name found once masked wherever it recurs in the text. Any word no dictionary
    explains (not English, clinical, a drug or a stop word: :func:`domainfm.deid.recognizers.vocab.explained`)
    is masked too, since a lower-case name the rules miss is written in such words. A token of
    ``tokens[key]`` (character offsets) that overlaps a masked span is masked whole, so a
    highlighted token never shows part of a name.
    """
    from domainfm.corpus.document import Document
    from domainfm.deid.propagate import propagate_names
    from domainfm.deid.windows import detect_windowed

    detector = _detector(profile)
    docs = [Document(id=f"t{i}", text=text) for i, text in enumerate(texts.values())]
    # every document comes back once, in input order
    found = [detections for _, detections in propagate_names(detect_windowed(detector.detect, docs))]
    out, n_spans = {}, 0
    for (key, text), detections in zip(texts.items(), found):
        spans = [(d.start, d.end) for d in detections]
        n_spans += len(spans)
        spans += _unexplained_words(text)
        spans += [(s, e) for s, e in (tokens or {}).get(key, []) if any(s < de and ds < e for ds, de in spans)]
        chars = list(mask_phi(text))  # both masks, each found on the text as written
        for s, e in spans:
            chars[s:e] = "*" * (e - s)
        out[key] = "".join(chars)
    return out, n_spans


def mask_ids(ids: list[str], *, profile: str = "clinical") -> dict[str, str]:
    """How a report shows record ids: a ``deid --pseudonymize-ids`` pseudonym as it is; any other
    id masked as :func:`mask_identifiers` masks text, and every run of 5 or more digits too.

    ``deid`` keeps record ids unless asked to pseudonymise them, and an id is often a record
    number, an accession number or a file name with a patient's name in it
    ("Okonkwo-8830412-2"), so an id is not de-identified because the text is.
    """
    from domainfm.deid.vault import is_pseudonym

    # read with its separators as spaces ("Zorblax_Quintavius/MRN_4417293": a file name), same length
    other = {i: _ID_SEPARATORS.sub(" ", i) for i in ids if not is_pseudonym(i)}
    masked, _ = mask_identifiers(other, profile=profile) if other else ({}, 0)
    out = {}
    for i in ids:
        if i not in masked:
            out[i] = i
            continue
        shown = "".join("*" if m == "*" else c for c, m in zip(i, masked[i]))
        out[i] = _ID_NUMBER.sub(lambda m: "*" * len(m.group(0)), shown)
    return out


#: A run of digits as long as a ZIP code or longer, in a record id: the shape of a record,
#: accession or phone number.
_ID_NUMBER = re.compile(r"\d{5,}")
_ID_SEPARATORS = re.compile(r"[_/\\.:#]")
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")


def _unexplained_words(text: str) -> list[tuple[int, int]]:
    """Offsets of the words of ``text`` that no dictionary explains ("zorblax", "quintavius")."""
    from domainfm.deid.recognizers.vocab import explained

    return [m.span() for m in _WORD.finditer(text) if not explained(m.group().lower())]


#: An attribute singles people out, rather than grouping them, when it has at least
#: ``SINGLING_OUT_VALUES`` values and half of the documents fall in groups of fewer than
#: ``SINGLING_OUT_SIZE`` documents (a patient's name, an MRN, a date of birth).
SINGLING_OUT_VALUES = 10
SINGLING_OUT_SIZE = 5
#: Coarse de-id types whose presence in group values makes the attribute identifying. States and
#: countries are left out: Safe Harbor keeps them, and a state is an ordinary group.
_IDENTIFYING_TYPES = frozenset({"NAME", "DATE", "PHONE", "EMAIL", "URL", "IP", "ID", "LOCATION"})
_KEPT_PLACES = frozenset({"STATE", "COUNTRY"})


def identifying_groups(group_names: dict[str, Any], *, unknown: str = "unknown",
                       profile: str = "clinical") -> dict[str, str]:
    """Of the audit's group attributes (attribute -> each document's group), those whose values
    would put identifiers into the report and cards, each with why (counts only: no value is
    quoted). An attribute is identifying when

    - the de-id rules of ``profile`` find a name, date, place, contact or record number in at
      least half of its values (the values read alone: "Sarah Lee", "MRN 1234567",
      "03/04/1950"; a state, an age band or "Guamanian or Chamorro" are not), or
    - its groups single out people (:data:`SINGLING_OUT_VALUES`, :data:`SINGLING_OUT_SIZE`),
      whatever the values look like, or
    - its key is one de-identification treats as PHI (``meta.patient_name``, ``meta.mrn``:
      :func:`domainfm.deid.meta.identifier_field`): a few patients' fresh names pass both tests
      above, and their names would head the report's tables.

    The report's own scan (:data:`PHI_PATTERNS`) runs on every written file as well; it does not
    know names, which is why group values are read here, before anything is scored.
    """
    from collections import Counter

    from domainfm.corpus.document import Document
    from domainfm.deid.labels import coarse
    from domainfm.deid.meta import identifier_field

    out: dict[str, str] = {}
    for attr, names in group_names.items():
        sizes = Counter(str(v) for v in names if v != unknown)
        if not sizes:
            continue
        grouped = sum(sizes.values())
        in_small = sum(n for n in sizes.values() if n < SINGLING_OUT_SIZE)
        if len(sizes) >= SINGLING_OUT_VALUES and 2 * in_small >= grouped:
            out[attr] = (f"it has {len(sizes)} values and {in_small} of the {grouped} documents are in groups of fewer "
                         f"than {SINGLING_OUT_SIZE}: it singles people out rather than grouping them")
            continue
        values = sorted(sizes)
        found = _detector(profile).detect([Document(id=f"v{i}", text=v) for i, v in enumerate(values)])
        hits = sum(1 for _, detections in found
                   if any(coarse(d.label) in _IDENTIFYING_TYPES and d.label not in _KEPT_PLACES for d in detections))
        if hits and 2 * hits >= len(values):
            out[attr] = (f"the de-id rules find names, dates, places, contacts or record numbers in {hits} of its "
                         f"{len(values)} values")
        elif kind := identifier_field(attr):
            out[attr] = (f"its key is one de-identification treats as PHI ({kind}), whatever its {len(values)} "
                         "values look like")
    return out


@lru_cache(maxsize=2)
def _detector(profile: str):
    """One detector per profile and process: building it (spaCy and presidio) takes seconds."""
    from domainfm.deid.config import DeidConfig
    from domainfm.deid.engine import PhiDetector

    return PhiDetector(DeidConfig(profile=profile))


def scan_phi(text: str) -> dict[str, int]:
    """Number of matches per PHI pattern (only patterns that match)."""
    hits = {name: len(p.findall(text)) for name, p in PHI_PATTERNS.items()}
    return {k: v for k, v in hits.items() if v}


def _stage_of(path: Path) -> str | None:
    from domainfm.manifest import manifest_path_for

    candidates = [manifest_path_for(path)]
    if path.is_dir():
        candidates.append(path / "manifest.json")
    for manifest in candidates:
        try:
            return json.loads(manifest.read_text(encoding="utf-8")).get("stage")
        except (OSError, ValueError, AttributeError):
            continue
    return None


def _has_phi_spans(path: Path) -> bool | None:
    try:
        with path.open(encoding="utf-8") as fh:
            first = json.loads(fh.readline() or "null")
    except (OSError, ValueError):
        return None
    return isinstance(first, dict) and first.get("phi_spans") is not None


def training_deid_status(model_dir: str | Path | None, docs: list[Any],
                         trace: dict[str, Any] | None = None) -> dict[str, Any]:
    """Whether the model's training data manifest shows a ``deid`` stage (or records carrying
    ``phi_spans``), and whether the audited documents were de-identified: their files trace back
    to ``domainfm deid`` (``trace``, from :func:`data_trace`)."""
    trace = trace or data_trace(None)
    out: dict[str, Any] = {"training_data": [], "training_deidentified": None,
                           "audit_data_deidentified": bool(docs) and trace["deidentified"],
                           "audit_data_evidence": trace["evidence"]}
    if model_dir is None:
        out["statement"] = "unknown: the model was not given as a folder with a manifest"
        return out
    try:
        manifest = json.loads((Path(model_dir) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        out["statement"] = "unknown: the model folder has no readable manifest.json"
        return out
    for item in manifest.get("inputs", []):
        if isinstance(item, dict):
            out["training_data"].append(_training_input(item))
    found = [t["deidentified"] for t in out["training_data"]]
    if not found:
        out["statement"] = "unknown: the model manifest lists no training data"
    elif False in found:
        out["training_deidentified"] = False
        out["statement"] = "NOT shown: the training data manifest does not show a de-identification stage"
    elif None in found:
        out["statement"] = (f"unknown: {found.count(None)} of the {len(found)} training files are no longer as the model's "
                            "manifest recorded them (moved or changed since training)")
    else:
        out["training_deidentified"] = True
        out["statement"] = "the training data manifest shows de-identification (domainfm deid)"
    return out


def _training_input(item: dict[str, Any]) -> dict[str, Any]:
    """One training input of a model manifest: is the file at its recorded path still the one the
    model was trained on (its recorded hash), and does that file trace back to ``domainfm deid``
    (:func:`domainfm.manifest.check_deidentified`, or records carrying ``phi_spans``)? A relative
    path is read from the current folder, so the hash decides whether it is the same data;
    ``deidentified`` is None when it cannot be told."""
    from domainfm.manifest import check_deidentified, describe_input

    path = Path(str(item.get("path", "")))
    entry: dict[str, Any] = {"path": path.name, "stage": None, "deidentified": None}
    now = describe_input(path)
    if now["kind"] == "missing":
        entry["evidence"] = "not found where the model's manifest recorded it"
        return entry
    if item.get("sha256") and now["sha256"] != item["sha256"]:
        entry["evidence"] = "the file there is not the one the model was trained on (hash differs)"
        return entry
    traced = check_deidentified([path])[0]
    entry.update(stage=_stage_of(path), deidentified=traced.deidentified or bool(_has_phi_spans(path)),
                 evidence=traced.evidence)
    return entry
