"""PHI spans from a token-classification model trained on your own annotated notes.

Rules generalise across hospitals but miss what only a site's notes show (its ward names, its
way of writing names); a model trained with ``domainfm finetune`` (task ``ner``) on annotated
notes of that site learns those. :class:`LearnedPhiTagger` runs such a model and hands its spans
to :class:`domainfm.deid.engine.PhiDetector`, which adds them to the rule detections (a union:
recall first). Where a learned span overlaps a rule detection, the rule's label wins (rules tell
a doctor from a patient, which the surrogates use); the learned span can still widen it.

The model's entity names are mapped onto the canonical PHI labels: canonical names (``NAME``,
``DATE``, ``LOCATION``...) as they are, a dataset's own names through its table in
:mod:`domainfm.deid.labels` (PhysioNet ``HCPName`` -> ``DOCTOR``, TAB ``PERSON`` -> ``NAME``...).

Example:
    >>> tagger = LearnedPhiTagger("runs/deid-ner")           # doctest: +SKIP
    >>> tagger.detect(["Seen on THORNBURY 4 by Dr. Okafor."])  # doctest: +SKIP
    [[Detection(start=8, end=15, label='LOCATION', score=0.97, recognizer='learned_ner'), ...]]
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from domainfm.errors import ConfigError

LEARNED = "learned_ner"


def canonical_for(name: str) -> str | None:
    """The canonical PHI label of a model's entity name; ``None`` for a label that is not PHI.

    Raises:
        ConfigError: when no label table knows the name.
    """
    from domainfm.deid.labels import CANONICAL, DATASET_LABELS

    if name in CANONICAL:
        return name
    for table in DATASET_LABELS.values():
        if name in table:
            return table[name]
    known = sorted(CANONICAL)
    raise ConfigError(
        f"the learned PHI model has entity label {name!r}, which is no PHI label: train it on canonical "
        f"labels ({', '.join(known[:8])}...) or on a dataset's own labels (PhysioNet HCPName, TAB PERSON...)"
    )


class LearnedPhiTagger:
    """A ``domainfm finetune`` NER model folder, as a PHI detector.

    Args:
        model_dir: the folder (``domainfm_task.json`` with ``"task": "ner"``).
        batch_size: sequences per forward pass.
        device: ``cpu``, ``cuda``...; default: a GPU when there is one.
    """

    def __init__(self, model_dir: str | os.PathLike, *, batch_size: int = 32, device: str | None = None):
        from domainfm.finetune.predict import load_task_model

        self.model_dir = Path(model_dir)
        self.task_model = load_task_model(self.model_dir, task="ner", device=device)
        self.batch_size = batch_size
        self.labels = {name: canonical_for(name) for name in self.task_model.label_map.labels}

    def detect(self, texts: Sequence[str]):
        """Detections per text (input coordinates), in order; blank texts get none."""
        from domainfm.corpus.document import Document
        from domainfm.deid.engine import Detection
        from domainfm.finetune.predict import predict_outputs

        found: list[list] = [[] for _ in texts]
        todo = [i for i, t in enumerate(texts) if t.strip()]
        if not todo:
            return found
        docs = [Document(f"text-{i}", texts[i]) for i in todo]
        outputs = predict_outputs(self.task_model, docs, batch_size=self.batch_size)
        for i, spans in zip(todo, outputs):
            found[i] = [Detection(s.start, s.end, label, float(s.attrs.get("score", 1.0)), LEARNED)
                        for s in spans if (label := self.labels.get(s.label)) is not None]
        return found
