"""Few-shot labeling assistant: suggest calibrated labels for a pool from a few seeds, rank the
pool for annotation (uncertain and diverse first), check a labeled set for likely errors, and
export pre-annotations for Label Studio, Prodigy or a spreadsheet.

Example:
    >>> from domainfm.label import LabelConfig, suggest_labels
    >>> result = suggest_labels(seeds, pool, LabelConfig(method="embed"))  # doctest: +SKIP
    >>> result.summary["cross_validation"]["expected_accuracy"]  # doctest: +SKIP
    0.78
"""

from domainfm.label.assist import CheckResult, LabelResult, Suggestion, check_labels, suggest_labels
from domainfm.label.config import LabelConfig
from domainfm.label.demo import run_label_demo, run_span_demo
from domainfm.label.encoders import Encoder, SentenceEncoder
from domainfm.label.export import labelstudio_config, to_labelstudio, to_prodigy, write_export
from domainfm.label.runner import LabelRun, label_file

__all__ = [
    "CheckResult",
    "Encoder",
    "LabelConfig",
    "LabelResult",
    "LabelRun",
    "SentenceEncoder",
    "Suggestion",
    "check_labels",
    "label_file",
    "labelstudio_config",
    "run_label_demo",
    "run_span_demo",
    "suggest_labels",
    "to_labelstudio",
    "to_prodigy",
    "write_export",
]
