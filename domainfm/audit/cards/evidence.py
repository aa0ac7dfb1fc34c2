"""What the cards are filled from: the audit's ``report.json`` and the lineage files around it
(manifests, the model's task info and fine-tuning config, the training data's de-identification
manifest, a de-id evaluation and a privacy audit when given), each with its path and sha256.

Every number a card shows is a :class:`Metric` that names the path of its value (and of its
confidence interval) inside ``report.json`` or another source file, so a reviewer, and the tests,
can check the card against the file it came from. Every text field is a :class:`Filled` value
that says whether it came from evidence, from a config, from the deployer's ``cards.yaml``, or is
left to the deployer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

from domainfm.errors import ConfigError

Origin = Literal["evidence", "config", "deployer", "missing"]
ORIGINS: tuple[Origin, ...] = ("evidence", "config", "deployer", "missing")
TO_COMPLETE = "To be completed by the deployer"


@dataclass
class Source:
    """One file a card was filled from."""

    role: str
    path: str
    sha256: str
    what: str


@dataclass
class Filled:
    """A card field's text and where it came from (``missing``: left to the deployer)."""

    text: str
    origin: Origin
    sources: list[str] = field(default_factory=list)  # Source roles

    @classmethod
    def missing(cls, what: str, hint: str | None = None) -> "Filled":
        note = f" ({hint})" if hint else ""
        return cls(f"{TO_COMPLETE}: {what}{note}.", "missing")


@dataclass
class Metric:
    """One number from a source file: ``path`` (keys from the file's root) locates the value,
    ``ci_path`` its 95% interval ``[lower, upper]`` when there is one."""

    group: Literal["usefulness", "fairness", "safety"]
    label: str
    value: float | int | bool | None
    unit: str
    source: str  # Source role (audit_report, deid_eval, privacy_audit)
    path: tuple[str, ...]
    ci: list[float] | None = None
    ci_path: tuple[str, ...] | None = None
    n: int | None = None
    note: str | None = None

    def value_json(self, sources: dict[str, "Source"] | None = None) -> dict[str, Any]:
        """CHAI ``ValueJson`` content: the value, its interval and unit, and where both live
        (the source file's name and sha256, and the keys from its root)."""
        out: dict[str, Any] = {"kind": "single", "value": self.value, "unit": self.unit}
        if self.ci is not None:
            out["ci"] = {"level": 0.95, "lower": self.ci[0], "upper": self.ci[1]}
        if self.n is not None:
            out["n"] = self.n
        src = (sources or {}).get(self.source)
        out["source"] = {"file": Path(src.path).name if src else self.source, "role": self.source,
                         "sha256": src.sha256 if src else None, "path": list(self.path)}
        if self.ci_path is not None and self.ci is not None:
            out["source"]["ci_path"] = list(self.ci_path)
        return out


def lookup(obj: Any, path: Sequence[str]) -> Any:
    """The value at ``path`` (mapping keys, or list indexes as digit strings); None if absent."""
    for key in path:
        if isinstance(obj, dict):
            obj = obj.get(key)
        elif isinstance(obj, list) and str(key).isdigit() and int(key) < len(obj):
            obj = obj[int(key)]
        else:
            return None
    return obj


def _finite(value: Any) -> bool:
    import math

    return isinstance(value, (int, float)) and math.isfinite(value)


def fmt(value: Any) -> str:
    """How a card writes a number (the JSON ``ValueJson`` keeps full precision)."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _shown(path: Path) -> str:
    """A path as the card shows it: relative to the working directory when inside it (a card
    committed beside a run names the files the same way on every machine), else as given."""
    import os

    try:
        rel = Path(os.path.relpath(path.resolve(), Path.cwd().resolve()))
    except ValueError:
        return str(path)
    return str(path) if rel.parts[:1] == ("..",) else rel.as_posix()


def _read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def check_privacy_audit(report: Any, where: str) -> dict[str, Any]:
    """``report`` when it is a ``domainfm audit-privacy`` report (an object with a ``gate``
    object: the release decision the cards and the model card state).

    Raises:
        ConfigError: naming ``where`` (the option and file, or the argument).
    """
    if not isinstance(report, dict) or not isinstance(report.get("gate"), dict):
        raise ConfigError(f"{where}: not a 'domainfm audit-privacy' report.json (it has no 'gate' object)")
    return report


def load_privacy_audit(path: str | Path) -> dict[str, Any]:
    """Read and check ``--privacy-audit`` (:func:`check_privacy_audit`) before any work is done."""
    report = _read_json(Path(path))
    if report is None:
        raise ConfigError(f"--privacy-audit {path}: not a readable JSON file (a 'domainfm audit-privacy' "
                          "report.json)")
    return check_privacy_audit(report, f"--privacy-audit {path}")


def load_deid_eval(path: str | Path) -> dict[str, Any]:
    """Read and check ``--deid-eval``: a JSON object (``domainfm deid-eval -o`` metrics or the
    pipeline's ``deid_eval`` report)."""
    data = _read_json(Path(path))
    if not isinstance(data, dict):
        raise ConfigError(f"--deid-eval {path}: not a readable JSON object (a 'domainfm deid-eval -o' metrics file "
                          "or a pipeline deid_eval report.json)")
    return data


#: What every audit report.json holds; a file without one of them is not an audit report, or
#: was written by a domainfm version whose report had another shape (one from before the audit
#: vetted its group values for identifiers, which the cards print, lacks the last).
REPORT_KEYS = (("model",), ("data",), ("performance",), ("model", "labels"), ("performance", "overall"),
               ("performance", "by_attribute"), ("privacy",), ("privacy", "identifying_groups"))
#: The type the cards read each key as, checked where the key is present ('*': every entry of
#: the mapping or list above it), so a hand-edited or truncated report is refused naming the key
#: instead of failing half-way through a card.
REPORT_SHAPE: dict[tuple[str, ...], type] = {
    ("model",): dict, ("model", "labels"): list, ("model", "labels", "*"): str,
    ("data",): dict, ("data", "attributes"): dict, ("data", "attributes", "*"): dict,
    ("data", "attributes", "*", "groups"): dict, ("data", "attributes", "*", "small_groups"): list,
    ("data", "label_distribution"): dict,
    ("performance",): dict, ("performance", "overall"): dict, ("performance", "by_attribute"): dict,
    ("performance", "by_attribute", "*"): dict, ("performance", "by_attribute", "*", "groups"): dict,
    ("performance", "by_attribute", "*", "groups", "*"): dict, ("performance", "by_attribute", "*", "gaps"): dict,
    ("privacy",): dict, ("privacy", "identifying_groups"): dict,
    ("calibration",): dict, ("robustness",): dict, ("robustness", "*"): dict, ("explanations",): dict,
    ("definitions",): dict, ("config",): dict, ("summary",): list, ("summary", "*"): dict,
    ("warnings",): list, ("warnings", "*"): str,
}
_TYPE_NAMES = {dict: "an object", list: "a list", str: "text"}


def _entries(report: Any, path: tuple[str, ...]) -> Iterable[tuple[list[str], Any]]:
    """``(keys, value)`` of every present key matching ``path`` (``*`` expanded)."""
    found: list[tuple[list[str], Any]] = [([], report)]
    for key in path:
        step = []
        for keys, obj in found:
            if key == "*":
                items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
                step += [([*keys, str(k)], v) for k, v in items]
            elif isinstance(obj, dict) and key in obj:
                step.append(([*keys, key], obj[key]))
        found = step
    return found


def check_report(report: Any, path: Path) -> dict[str, Any]:
    """``report`` when it has the shape the cards read (:data:`REPORT_KEYS`, :data:`REPORT_SHAPE`).

    Raises:
        ConfigError: naming the file and the first missing or mistyped key.
    """
    if report is None:
        what = "does not exist" if not path.is_file() else "is not readable JSON (truncated, or not a report)"
        raise ConfigError(f"{path} {what}: the cards are filled from the report.json 'domainfm audit' writes, so "
                          f"{path.parent} is not an audit folder; run 'domainfm audit' first, or give the folder it "
                          "wrote")
    if not isinstance(report, dict):
        raise ConfigError(f"{path} is not an audit report.json (run 'domainfm audit' first; the cards are filled "
                          "from its numbers)")
    for key in REPORT_KEYS:
        parent = lookup(report, key[:-1]) if len(key) > 1 else report
        if not isinstance(parent, dict) or key[-1] not in parent:
            raise ConfigError(f"{path} has no '{'.'.join(key)}': it is not an audit report.json, or one from another "
                              "domainfm version (run 'domainfm audit' again to write the cards from it)")
    try:  # JSON may escape half a UTF-16 pair ("\ud800"); no card file can encode it
        json.dumps(report, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"{path} holds a lone UTF-16 surrogate escape (e.g. \\ud800), which 'domainfm audit' never "
                          "writes and no card can encode: the file was edited; run 'domainfm audit' again") from None
    for shape, kind in REPORT_SHAPE.items():
        for keys, value in _entries(report, shape):
            if not isinstance(value, kind):
                raise ConfigError(f"{path}: '{'.'.join(keys)}' must be {_TYPE_NAMES[kind]}, got "
                                  f"{type(value).__name__}: the file is not the report 'domainfm audit' wrote (edited "
                                  "or from another version); run 'domainfm audit' again to write the cards from it")
    return report


def _recorded_scope(report: dict[str, Any]) -> str | None:
    """``all``, ``eval`` or ``unseen`` by the audited documents' sides of the model's recorded
    split (``data.training_overlap``); None when the report has none."""
    overlap = (report.get("data") or {}).get("training_overlap")
    if not isinstance(overlap, dict) or not all(isinstance(overlap.get(k), int)
                                                for k in ("in_training", "in_evaluation", "unseen")):
        return None
    if overlap["in_training"]:
        return "all"
    return "unseen" if overlap["unseen"] else "eval"


def check_manifest(report_path: Path, manifest_path: Path) -> None:
    """Refuse a report.json that its audit folder's manifest does not list among the audit's
    outputs (by sha256): edited after the audit, or copied in from another run, its numbers are
    not the audit's. A folder without an audit manifest (a copied report) has nothing to check.

    Raises:
        ConfigError: naming both files and the fix.
    """
    from domainfm.manifest import sha256_file

    manifest = _read_json(manifest_path)
    audit_manifest = isinstance(manifest, dict) and manifest.get("stage") == "audit"
    if audit_manifest and not _wrote(manifest, sha256_file(report_path)):
        raise ConfigError(f"{report_path} is not the report the audit wrote ({manifest_path} records another sha256 "
                          "for it: it was edited, or copied in from another run); a card must carry the audit's own "
                          "numbers: run 'domainfm audit' again, or restore the report.json it wrote")


def _wrote(manifest: dict[str, Any], sha256: Any) -> bool:
    """Whether a stage manifest lists an output with this hash."""
    outputs = manifest.get("outputs") or []
    return bool(sha256) and any(isinstance(o, dict) and o.get("sha256") == sha256 for o in outputs)


def _gap_scope(section: dict[str, Any]) -> tuple[str, str] | None:
    """Where an attribute's gaps are read: the groups of adequate size when two or more, else
    all groups when two or more, else ``None`` (one group: not comparable)."""
    for scope in ("reliable_groups", "all_groups"):
        if len(lookup(section, ("gaps", scope, "groups")) or []) >= 2:
            return "gaps", scope
    return None


class Evidence:
    """The audit report and every lineage file found around it.

    Args:
        audit_dir: the folder ``domainfm audit`` wrote (``report.json``, ``manifest.json``).
        deid_eval: a ``domainfm deid-eval -o`` metrics file, or the pipeline's ``deid_eval``
            report (rules vs rules and model), scoring the de-identification of the training data.
        privacy_audit: a ``domainfm audit-privacy`` ``report.json``.
        cards_config: the deployer's ``cards.yaml`` (hashed into the appendix).
        audit_scope: which documents the audit read, when known (the pipeline's ``audit.data``):
            ``eval`` (held out by fine-tuning) or ``all`` (training documents included); by
            default what the report's ``data.training_overlap`` says (the model's recorded split:
            ``unseen`` when no audited document was on either side of it).
    """

    def __init__(self, audit_dir: str | Path, *, deid_eval: str | Path | None = None,
                 privacy_audit: str | Path | None = None, cards_config: str | Path | None = None,
                 audit_scope: str | None = None):
        from domainfm.manifest import sha256_file

        self.audit_scope = audit_scope
        self._metrics: list[Metric] | None = None
        self._sha = sha256_file
        self.sources: dict[str, Source] = {}
        self.audit_dir = Path(audit_dir)
        report_path = self.audit_dir / "report.json"
        self.report: dict[str, Any] = check_report(_read_json(report_path), report_path)
        self.audit_scope = audit_scope or _recorded_scope(self.report)
        check_manifest(report_path, self.audit_dir / "manifest.json")
        #: what the cards could not verify and say so (also printed as warnings)
        self.warnings: list[str] = []
        self._add("audit_report", report_path, "audit results (report.json)")
        self._add("audit_manifest", self.audit_dir / "manifest.json", "audit manifest")
        self.model_dir, self.unverified_model = self._model_folder()
        self.task_info = self._json("task_info", self.model_dir / "domainfm_task.json" if self.model_dir else None,
                                    "model task info (domainfm_task.json)")
        self.model_manifest = self._json("model_manifest", self.model_dir / "manifest.json" if self.model_dir else None,
                                         "model manifest (fine-tuning run)")
        self.finetune_config = (self.model_manifest or {}).get("config") if self.model_manifest else None
        if self.model_dir is not None:
            self._add("finetune_config", self.model_dir / "finetune.yaml", "fine-tuning config")
            self.finetune_metrics = self._json("finetune_metrics", self.model_dir / "metrics.json",
                                               "fine-tuning evaluation metrics")
        else:
            self.finetune_metrics = None
        self.training_data = self._training_data()
        self.pretrain_manifest = self._pretrain_manifest()
        self.deid_eval = None
        if deid_eval is not None:
            self.deid_eval = load_deid_eval(deid_eval)
            self._add("deid_eval", Path(deid_eval), "de-identification evaluation")
        self.privacy = None
        self.privacy_path = privacy_audit
        if privacy_audit is not None:
            self.privacy = load_privacy_audit(privacy_audit)
            self._add("privacy_audit", Path(privacy_audit), "privacy audit (domainfm audit-privacy)")
            subject, kind = self.privacy_subject()
            if kind == "another model":
                self.warnings.append(f"--privacy-audit {privacy_audit} audited {subject}; the cards say so beside its "
                                     "results")
        if cards_config is not None:
            self._add("cards_config", Path(cards_config), "deployer fields (cards.yaml)")

    # -- files ------------------------------------------------------------------------------

    def _model_folder(self) -> tuple[Path | None, str | None]:
        """The audited model's folder, when the report's fingerprint proves it still holds that
        model; otherwise ``(None, why)``: the cards then read no lineage from it (and say so)
        rather than describe whatever model sits at that path now."""
        from domainfm.manifest import verify_model

        model = self.report["model"]
        folder, why = verify_model(model)
        if folder is not None or not model.get("path", model.get("source")):  # found, or audited as an object
            return folder, None
        self.warnings.append(f"model lineage not verifiable: {why}; the cards carry the audit's numbers only")
        return None, why

    def _add(self, role: str, path: Path, what: str) -> bool:
        if not path.is_file():
            return False
        self.sources[role] = Source(role, _shown(path), self._sha(path), what)
        return True

    def _json(self, role: str, path: Path | None, what: str) -> Any | None:
        if path is None or not self._add(role, path, what):
            return None
        return _read_json(path)

    def _training_data(self) -> list[dict[str, Any]]:
        """The model's training inputs (from its manifest) with the stage that wrote each."""
        out = []
        for i, item in enumerate((self.model_manifest or {}).get("inputs", [])):
            path = Path(item.get("path", ""))
            entry = {"name": path.name, "sha256": item.get("sha256"), "bytes": item.get("bytes"), "stage": None,
                     "counts": {}, "config": None}
            from domainfm.manifest import manifest_path_for

            manifest_file = manifest_path_for(path)
            manifest = _read_json(manifest_file) if manifest_file.is_file() else None
            # a relative input path is read from here, not from where fine-tuning ran: only a
            # manifest that records this input's hash among its outputs describes this data
            if isinstance(manifest, dict) and _wrote(manifest, item.get("sha256")):
                self._add(f"training_data_{i}_manifest", manifest_file, f"manifest of training input {path.name}")
                entry.update(stage=manifest.get("stage"), counts=manifest.get("counts") or {},
                             config=manifest.get("config"), role=f"training_data_{i}_manifest")
            out.append(entry)
        return out

    def _pretrain_manifest(self) -> dict[str, Any] | None:
        """The domain-adapted base model's manifest when fine-tuning started from a ``domainfm
        pretrain`` output."""
        base = self.base_model_folder()
        if not base:
            return None
        manifest = self._json("pretrain_manifest", Path(base) / "manifest.json", "base model manifest (pretraining)")
        return manifest if isinstance(manifest, dict) and manifest.get("stage") == "pretrain" else None

    # -- facts ------------------------------------------------------------------------------

    @property
    def task(self) -> str:
        return self.report["model"].get("task", "classification")

    @property
    def model_name(self) -> str:
        source = self.report["model"].get("path") or self.report["model"].get("source")
        return Path(str(source)).name if source else "the audited model"

    def phi_origins(self) -> list[str]:
        """The given evidence files whose text the cards quote and that match the PHI patterns
        (named in the refusal, so the user knows which file to fix)."""
        from domainfm.audit.privacy import scan_phi

        origins = []
        if isinstance(self.privacy, dict):
            quoted = [self.privacy.get("statement"), lookup(self.privacy, ("membership", "strongest"))]
            if any(isinstance(q, str) and scan_phi(q) for q in quoted):
                origins.append(f"--privacy-audit {self.privacy_path} (its 'statement')")
        return origins

    def privacy_subject(self) -> tuple[str, str | None]:
        """Which model the ``--privacy-audit`` report audited: ``(as the cards name it, kind)``,
        kind ``this model``, ``base model`` (the pipeline's privacy stage audits the pretrained
        model the classifier was fine-tuned from), ``another model`` or None (not named)."""
        audited = lookup(self.privacy, ("model", "path"))
        if not isinstance(audited, str) or not audited:
            return "a model its report does not name", None

        def same(other: Any) -> bool:
            return isinstance(other, str) and Path(audited).resolve() == Path(other).resolve()

        name = Path(audited).name
        if same(self.report["model"].get("path")):
            return "this model", "this model"
        if same(self.base_model_folder()):
            return f"the base model it was fine-tuned from ({name})", "base model"
        return f"another model ({name}), neither this model nor its recorded base model", "another model"

    def base_model(self) -> str | None:
        return ((self.task_info or {}).get("base_model") or {}).get("name")

    def base_model_folder(self) -> str | None:
        """Where the base model is: the absolute folder fine-tuning recorded, when its fingerprint
        still matches (the same from any working folder); else the name as given (older models,
        a hub id), read from where the cards run."""
        from domainfm.manifest import verify_model

        identity = ((self.task_info or {}).get("base_model") or {}).get("identity")
        if isinstance(identity, dict):
            folder, _ = verify_model(identity)
            if folder is not None:
                return str(folder)
        return self.base_model()

    def deidentified(self) -> bool | None:
        return (self.report.get("privacy") or {}).get("training_deidentified")

    # -- numbers ----------------------------------------------------------------------------

    def _m(self, group, label, path, unit, *, ci_path=None, n=None, note=None, source="audit_report") -> Metric | None:
        doc = {"audit_report": self.report, "deid_eval": self.deid_eval, "privacy_audit": self.privacy}[source]
        value = lookup(doc, path)
        if not _finite(value):  # NaN or inf is no measurement (the audit writes null), and not JSON
            return None
        ci = lookup(doc, ci_path) if ci_path else None
        ci = ci if isinstance(ci, list) and len(ci) == 2 and all(_finite(c) for c in ci) else None
        n = n if isinstance(n, int) and not isinstance(n, bool) and n >= 0 else None
        return Metric(group, label, value, unit, source, tuple(path), ci, tuple(ci_path) if ci_path else None, n, note)

    def metrics(self) -> list[Metric]:
        """Every number the cards report, grouped as CHAI's key metrics (computed once)."""
        if self._metrics is None:
            self._metrics = [m for m in (*self.usefulness(), *self.fairness(), *self.safety()) if m is not None]
        return list(self._metrics)

    def usefulness(self) -> Iterable[Metric | None]:
        ov = ("performance", "overall")
        n = lookup(self.report, (*ov, "n"))
        if self.task == "ner":
            for key, unit in (("f1", "entity micro-F1"), ("precision", "entity precision"), ("recall", "entity recall")):
                yield self._m("usefulness", f"overall {unit}", (*ov, key), unit, ci_path=(*ov, "ci", key), n=n)
            return
        yield self._m("usefulness", "overall accuracy", (*ov, "accuracy"), "accuracy", ci_path=(*ov, "ci", "accuracy"), n=n)
        yield self._m("usefulness", "overall macro-F1", (*ov, "macro_f1"), "macro-F1", ci_path=(*ov, "ci", "macro_f1"), n=n)
        for label in self.report["model"].get("labels", []):
            pc = (*ov, "per_class", label)
            support = lookup(self.report, (*pc, "support"))
            yield self._m("usefulness", f"F1 of class {label}", (*pc, "f1"), "F1", n=support)

    def fairness(self) -> Iterable[Metric | None]:
        perf = self.report["performance"]
        for attr, section in perf.get("by_attribute", {}).items():
            base = ("performance", "by_attribute", attr)
            for name, group in section.get("groups", {}).items():
                key = "f1" if self.task == "ner" else "accuracy"
                small = " (small group)" if group.get("small") else ""
                yield self._m("fairness", f"{key} of group {attr}={name}{small}", (*base, "groups", name, key), key,
                              ci_path=(*base, "groups", name, "ci", key), n=group.get("n"))
            gaps = _gap_scope(section)
            if gaps is None:  # one group: nothing to compare (see not_comparable)
                continue
            scope = "groups of adequate size" if gaps[1] == "reliable_groups" else "all groups (some small)"
            if self.task == "ner":
                yield self._m("fairness", f"F1 gap across {attr}, {scope}", (*base, *gaps, "f1_difference"),
                              "F1 difference (max - min)")
                continue
            yield self._m("fairness", f"accuracy gap across {attr}, {scope}", (*base, *gaps, "accuracy_difference"),
                          "accuracy difference (max - min)", ci_path=(*base, *gaps, "ci", "accuracy_difference"))
            pos = perf.get("positive_class")
            yield self._m("fairness", f"demographic parity difference for {pos} across {attr}, {scope}",
                          (*base, *gaps, "positive_class", "demographic_parity_difference"),
                          "selection-rate difference (max - min)",
                          ci_path=(*base, *gaps, "ci", "demographic_parity_difference"))
            yield self._m("fairness", f"equalized odds difference for {pos} across {attr}, {scope}",
                          (*base, *gaps, "positive_class", "equalized_odds_difference"),
                          "max of TPR and FPR differences",
                          ci_path=(*base, *gaps, "ci", "equalized_odds_difference"))

    def not_comparable(self) -> dict[str, list[str]]:
        """Attribute -> its groups, for the attributes with fewer than two groups (no gap)."""
        return {attr: sorted(section.get("groups") or {})
                for attr, section in (self.report["performance"].get("by_attribute") or {}).items()
                if _gap_scope(section) is None}

    def not_measured(self) -> dict[str, dict[str, int | None]]:
        """Attribute -> {group: documents} for the groups whose metric the audit could not measure
        (an NER group with no gold and no predicted entity has F1 ``null``): the cards list them
        as "n/a" with their count rather than leave them out without a word."""
        key = "f1" if self.task == "ner" else "accuracy"
        out = {}
        for attr, section in (self.report["performance"].get("by_attribute") or {}).items():
            groups = {g: m.get("n") for g, m in (section.get("groups") or {}).items()
                      if isinstance(m, dict) and key in m and m[key] is None}
            if groups:
                out[attr] = groups
        return out

    def safety(self) -> Iterable[Metric | None]:
        cal = ("calibration",)
        yield self._m("safety", "expected calibration error", (*cal, "overall", "ece"), "ECE (top-class, equal-width bins)",
                      n=lookup(self.report, (*cal, "overall", "n")))
        # MCE is one bin's gap: its n is that bin's predictions, which says how much noise it holds
        yield self._m("safety", "maximum calibration error", (*cal, "overall", "mce"),
                      "MCE (largest bin gap; n: predictions in that bin)",
                      n=lookup(self.report, (*cal, "overall", "mce_n")))
        # before and after on the same documents (those not used to fit the temperature): the
        # overall ECE above covers every document and is not what scaling changed
        n_test = lookup(self.report, (*cal, "temperature", "n_test"))
        for when in ("before", "after"):
            yield self._m("safety", f"ECE {when} temperature scaling (held-out part)",
                          (*cal, "temperature", when, "ece"), "ECE", n=n_test)
        for name in (self.report.get("robustness") or {}):
            rob = ("robustness", name)
            what = {"gender": "gendered words", "names": "first names", "race": "race descriptors"}.get(name, name)
            yield self._m("safety", f"prediction flip rate when swapping {what}", (*rob, "flip_rate"),
                          "share of changed documents whose prediction flips",
                          n=lookup(self.report, (*rob, "n_changed")))
        yield from self._deid_metrics()
        yield from self._privacy_metrics()

    def _deid_metrics(self) -> Iterable[Metric | None]:
        if not isinstance(self.deid_eval, dict):
            return
        if "any_overlap" in self.deid_eval:  # domainfm deid-eval -o
            for key in ("recall", "precision"):
                yield self._m("safety", f"de-identification {key} on the training data's gold PHI (any overlap)",
                              ("any_overlap", key), key, n=self.deid_eval.get("gold") if key == "recall" else None,
                              source="deid_eval")
            yield self._m("safety", "PHI leakage rate of the de-identified text", ("leakage", "rate"), "share",
                          source="deid_eval")
        for variant in ("rules", "rules_and_model"):  # the pipeline's deid_eval stage
            if isinstance(self.deid_eval.get(variant), dict):
                yield self._m("safety", f"de-identification recall ({variant.replace('_', ' ')}), held-out patients",
                              (variant, "recall"), "recall (any overlap)", n=self.deid_eval[variant].get("gold"),
                              source="deid_eval")

    def _privacy_metrics(self) -> Iterable[Metric | None]:
        if not isinstance(self.privacy, dict):
            return
        p = self.privacy
        kind = self.privacy_subject()[1]
        of = f", {kind}" if kind in ("base model", "another model") else ""  # not this model's own result
        yield self._m("safety", f"highest canary exposure (bits){of}", ("exposure", "max_exposure"), "bits",
                      source="privacy_audit")
        strongest = lookup(p, ("membership", "strongest"))
        if strongest:
            att = ("membership", "attacks", strongest)
            yield self._m("safety", f"membership-inference AUC ({strongest} attack){of}", (*att, "auc"), "AUC",
                          ci_path=(*att, "auc_ci"), source="privacy_audit")
        scored = lookup(p, ("regurgitation", "scored"))
        if isinstance(scored, int) and not isinstance(scored, bool) and scored > 0:
            # with no probe scored, beyond_chance is 0 of 0: the audit's gate calls it not measured
            yield self._m("safety", f"identifiers regurgitated beyond chance{of}", ("regurgitation", "beyond_chance"),
                          "count", n=scored, source="privacy_audit")
