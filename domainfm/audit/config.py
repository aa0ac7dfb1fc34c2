"""Audit settings: which groups, how many bootstrap samples, the shap budget, what to swap."""

from __future__ import annotations

from dataclasses import dataclass, field

from domainfm.config import check_fields, suggest
from domainfm.errors import ConfigError

#: Age bands derived from ``meta.age`` for the group ``meta.age_band`` (lower bound inclusive,
#: upper bound exclusive). Ages that are missing or not numbers fall in ``unknown``.
AGE_BANDS: tuple[tuple[str, float, float], ...] = (
    ("0-17", 0, 18),
    ("18-39", 18, 40),
    ("40-64", 40, 65),
    ("65-79", 65, 80),
    ("80+", 80, float("inf")),
)

UNKNOWN = "unknown"

#: The most bootstrap resamples: every resample holds an index per document (10,000 resamples of
#: 10,000 documents are 800 MB), and the 95% interval's third digit is stable long before this.
MAX_BOOTSTRAP = 10_000


@dataclass
class AuditConfig:
    """What the audit measures.

    Args:
        group_by: dotted document fields whose values define groups, e.g. ``meta.sex``.
            ``meta.age_band`` is derived from ``meta.age`` (see :data:`AGE_BANDS`). A document
            without the field falls in the explicit group ``unknown``.
        intersections: also report every pair of ``group_by`` attributes (``sex x age_band``).
        positive_class: the class whose one-vs-rest selection rate / TPR / FPR the fairness gaps
            headline; default: the most frequent gold label. Gaps are also given as the macro
            (mean) over all classes.
        min_group_size: groups with fewer documents, or (when the intervals resample patients,
            ``bootstrap_unit``) fewer patients, are flagged as small (their metrics and confidence
            intervals are unreliable); fairness gaps are reported over all groups (as fairlearn
            computes them) and over the groups that are not small.
        n_bootstrap: bootstrap resamples for the 95% percentile confidence intervals (at most
            :data:`MAX_BOOTSTRAP`).
        bootstrap_unit: what a bootstrap resample draws with replacement: ``auto``: patients
            (``meta.patient_id``), each with all its documents, when every audited document names
            its patient, else documents; ``document``; or ``meta.<key>``, a field every document
            has. A patient's notes are not independent draws: resampled one by one they give
            intervals that are too narrow. The report names the unit (``performance.bootstrap``).
        n_bins: equal-width confidence bins for ECE / MCE and the reliability diagram.
        calibration_split: fraction of the documents held out (seeded, stratified by label when
            every label has 2+ documents) to fit the temperature; ECE before/after temperature
            scaling is measured on the rest.
        explain: example documents explained with shap and shown highlighted (0: no
            explanations).
        explain_sample: documents explained (in addition to the examples) to aggregate the
            per-class top tokens.
        max_evals: shap budget: model evaluations per explained chunk (Partition explainer).
        counterfactuals: which invariance tests to run: ``gender``, ``names``, ``race``.
        label_field: the gold field (``label`` or ``meta.<key>``); default: the model's own
            label field (from ``domainfm_task.json``), else ``label``.
        seed: seed (an int >= 0) for bootstrap, the calibration split, example choice and name swaps.
        batch_size: texts scored per model call (also shap's masked samples per call).
        data_note: free text shown in the report's data section and the model card, e.g. where
            the group attributes come from ("gender and age band derived by regex from the note
            text; heuristic, not ground truth").
        allow_identifying_groups: ``group_by`` fields whose values may appear in the report even
            though they look identifying (names, dates, record numbers, or groups so small they
            single people out: :func:`domainfm.audit.privacy.identifying_groups`). Without it
            such a field stops the audit before anything is scored; with it the report records
            the field and why it was flagged.
    """

    group_by: list[str] = field(default_factory=lambda: ["meta.sex", "meta.age_band", "meta.race_ethnicity"])
    intersections: bool = True
    positive_class: str | None = None
    min_group_size: int = 30
    n_bootstrap: int = 1000
    bootstrap_unit: str = "auto"
    n_bins: int = 10
    calibration_split: float = 0.3
    explain: int = 0
    explain_sample: int = 0
    max_evals: int = 200
    counterfactuals: list[str] = field(default_factory=lambda: ["gender", "names", "race"])
    label_field: str | None = None
    seed: int = 13
    batch_size: int = 32
    data_note: str | None = None
    allow_identifying_groups: list[str] = field(default_factory=list)

    def __post_init__(self):
        check_fields(self)
        if not self.group_by:
            raise ConfigError("group_by must name at least one attribute, e.g. meta.sex")
        for name in self.group_by:
            if not isinstance(name, str) or not name.strip():
                raise ConfigError(f"group_by entries must be dotted field names, got {name!r}")
        repeated = sorted({n for n in self.group_by if self.group_by.count(n) > 1})
        if repeated:  # 'meta.sex x meta.sex' would be an intersection of a field with itself
            raise ConfigError(f"group_by names {repeated[0]!r} more than once: list each field once")
        if not isinstance(self.allow_identifying_groups, list):
            raise ConfigError("The 'allow_identifying_groups' parameter must be a list of group_by fields. "
                              f"Got {type(self.allow_identifying_groups).__name__} instead.")
        stray = [n for n in self.allow_identifying_groups if n not in self.group_by]
        if stray:
            raise ConfigError(f"allow_identifying_groups names {stray[0]!r}, which is not one of group_by "
                              f"{self.group_by}: list only fields the audit groups by")
        if not _is_int(self.n_bootstrap) or not 0 <= self.n_bootstrap <= MAX_BOOTSTRAP:
            raise ConfigError(f"The 'n_bootstrap' parameter must be an int in [0, {MAX_BOOTSTRAP}]. "
                              f"Got {self.n_bootstrap!r} instead.")
        if self.bootstrap_unit not in ("auto", "document") and not (
                self.bootstrap_unit.startswith("meta.") and self.bootstrap_unit[len("meta."):].strip()):
            raise ConfigError("The 'bootstrap_unit' parameter must be 'auto', 'document' or 'meta.<key>' (e.g. "
                              f"meta.patient_id). Got {self.bootstrap_unit!r} instead"
                              f"{suggest(self.bootstrap_unit, ['auto', 'document', 'meta.patient_id'])}.")
        if not _is_int(self.seed) or self.seed < 0:
            raise ConfigError(f"The 'seed' parameter must be an int >= 0. Got {self.seed!r} instead.")
        if not isinstance(self.n_bins, int) or self.n_bins < 2:
            raise ConfigError(f"The 'n_bins' parameter must be an int >= 2. Got {self.n_bins!r} instead.")
        if not 0.0 <= self.calibration_split < 1.0:
            raise ConfigError(f"The 'calibration_split' parameter must be in [0, 1). Got {self.calibration_split!r} instead.")
        if self.explain < 0 or self.explain_sample < 0:
            raise ConfigError("explain and explain_sample must be >= 0")
        if not isinstance(self.max_evals, int) or self.max_evals < 10:
            raise ConfigError(f"The 'max_evals' parameter must be an int >= 10. Got {self.max_evals!r} instead.")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"The 'batch_size' parameter must be an int >= 1. Got {self.batch_size!r} instead.")
        if self.data_note is not None and not isinstance(self.data_note, str):
            raise ConfigError(f"The 'data_note' parameter must be text. Got {type(self.data_note).__name__} instead.")
        if self.min_group_size < 1:
            raise ConfigError(f"The 'min_group_size' parameter must be >= 1. Got {self.min_group_size!r} instead.")
        from domainfm.audit.counterfactual import PERTURBATIONS

        unknown = [c for c in self.counterfactuals if c not in PERTURBATIONS]
        if unknown:
            raise ConfigError(f"unknown counterfactual test(s) {unknown}; available: {sorted(PERTURBATIONS)}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
