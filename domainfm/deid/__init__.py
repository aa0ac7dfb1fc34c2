"""De-identification: detect PHI/PII, replace it, and measure how well that was done.

- Detection: :class:`PhiDetector` / :func:`detect` with a :class:`DeidConfig` (presidio-analyzer
  + the packaged spaCy pipeline + clinical/legal recognizers).
- Transformation: :func:`apply_operator` (``tag`` / ``redact`` / ``surrogate``), consistent
  :class:`SurrogateGenerator`, the encrypted :class:`Vault` and :func:`reidentify`.
- Whole files: :func:`deidentify_file` (what ``domainfm deid`` runs) and :func:`deidentify`.
- Evaluation against gold spans: :mod:`domainfm.deid.evaluate`.
"""

from domainfm.deid.config import DeidConfig
from domainfm.deid.detection import Detection
from domainfm.deid.engine import PhiDetector, detect
from domainfm.deid.runner import DeidResult, deidentify, deidentify_file, reidentify_file
from domainfm.deid.surrogates import SurrogateGenerator
from domainfm.deid.transform import TransformedRecord, apply_operator, reidentify
from domainfm.deid.vault import Vault

__all__ = [
    "DeidConfig", "DeidResult", "Detection", "PhiDetector", "SurrogateGenerator", "TransformedRecord",
    "Vault", "apply_operator", "deidentify", "deidentify_file", "detect", "reidentify", "reidentify_file",
]
