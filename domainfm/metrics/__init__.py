"""Metrics shared by every stage: task scores (classification, multi-label, entity spans) and
calibration (softmax, temperature, ECE). One implementation each; the stages import from here."""

from domainfm.metrics.calibration import (
    apply_temperature,
    at_temperature_bound,
    expected_calibration_error,
    fit_temperature,
    fit_temperature_to_probs,
    reliability,
    sigmoid,
    softmax,
    top_class_reliability,
)
from domainfm.metrics.tasks import classification_metrics, entity_metrics, macro_f1, multilabel_metrics

__all__ = [
    "apply_temperature", "at_temperature_bound", "classification_metrics", "entity_metrics", "expected_calibration_error",
    "fit_temperature", "fit_temperature_to_probs", "macro_f1", "multilabel_metrics", "reliability", "sigmoid",
    "softmax", "top_class_reliability",
]
