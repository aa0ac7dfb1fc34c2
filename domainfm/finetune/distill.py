"""Knowledge distillation (``distill:`` in a task file): a smaller student learns from a trained
teacher's softened outputs as well as from the gold labels.

A deeper model finds more, a shallower one runs faster (README, de-identification: the 6-layer
de-id tagger against the 2-layer one). Trained on hard labels alone, the student sees "this token
is B-NAME"; the teacher's scores also say how name-like the token's neighbours are, which is what
a small model is short of. The teacher scores every training sequence once, before the first
step (augmented copies included, the same token ids the student reads), and each step adds

    weight * T^2 * KL(softmax(teacher / T) || softmax(student / T))

to ``(1 - weight) *`` the gold labels' loss (Hinton et al., 2015); multi-label heads compare
sigmoids instead. ``ner`` compares the tags of the labelled sub-tokens only (every sub-token of
the text: :func:`~domainfm.finetune.data.bio_labels` leaves out special tokens and padding alone),
the positions the gold loss reads too.

The teacher is a ``domainfm finetune`` output of the same task: same labels in the same order and
the same tokenizer vocabulary, or the run stops before training with an error that says which.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from domainfm.config import check_fields
from domainfm.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np


@dataclass
class DistillConfig:
    """Learn from a trained teacher's outputs too (off unless ``teacher`` is set).

    Args:
        teacher: a ``domainfm finetune`` output folder (full model or LoRA adapter) of the same
            task, labels and tokenizer, e.g. a deeper model trained by the same recipe.
        weight: share of the loss that comes from the teacher (0 < weight <= 1); the rest comes
            from the gold labels.
        temperature: softens both sides' scores before they are compared (>= 1 shows more of
            the teacher's second choices); the teacher's term is scaled by its square.
    """

    teacher: str | None = None
    weight: float = 0.5
    temperature: float = 2.0

    def __post_init__(self):
        check_fields(self, "distill")
        if self.teacher is not None and not self.teacher.strip():
            raise ConfigError(f"distill.teacher must be a domainfm finetune output folder, got {self.teacher!r}")
        if not 0 < self.weight <= 1:
            raise ConfigError(f"distill.weight must be in (0, 1] (the teacher's share of the loss), got {self.weight!r}")
        if self.temperature <= 0:
            raise ConfigError(f"distill.temperature must be > 0 (e.g. 2.0), got {self.temperature!r}")

    @property
    def enabled(self) -> bool:
        return self.teacher is not None


def teacher_scores(cfg: DistillConfig, task: str, labels: Sequence[str], tokenizer, features, *, pad_id: int,
                   batch_size: int) -> tuple[list["np.ndarray"], dict]:
    """The teacher's logits for every training feature (float16, feature order) and what the
    manifest records about the teacher. Errors name what does not match."""
    import numpy as np

    from domainfm.inference.predict import load_task_model, score_features

    folder = Path(cfg.teacher)
    if not folder.is_dir():
        raise ConfigError(f"distill.teacher: {folder} is not a folder; give a domainfm finetune output")
    teacher = load_task_model(folder)
    if teacher.task != task:
        raise ConfigError(f"distill.teacher: {folder} holds a {teacher.task!r} model; this task is {task!r}")
    if list(teacher.label_map.labels) != list(labels):
        raise ConfigError(f"distill.teacher: {folder} was trained on labels {list(teacher.label_map.labels)}, "
                          f"this task has {list(labels)}; train both with the same labels.names")
    if teacher.tokenizer.get_vocab() != tokenizer.get_vocab():
        raise ConfigError(f"distill.teacher: {folder} reads text with another tokenizer vocabulary than "
                          "model.name's; distil between models of one family (e.g. minilm and a "
                          "model.num_layers student of it)")
    logits = score_features(teacher.model, features, pad_id=pad_id, batch_size=batch_size)
    manifest = folder / "manifest.json"
    record = {"teacher": str(folder), "weight": cfg.weight, "temperature": cfg.temperature,
              "sequences_scored": len(logits),
              # the teacher's own provenance (its inputs, config and output hashes), chained
              "teacher_manifest_sha256": hashlib.sha256(manifest.read_bytes()).hexdigest()
              if manifest.is_file() else None}
    del teacher
    return [np.asarray(x, dtype=np.float16) for x in logits], record


def padded(scores: Sequence["np.ndarray"], width: int):
    """A batch's teacher logits as one tensor, token rows padded with zeros to ``width`` (ner)."""
    import numpy as np
    import torch

    if scores[0].ndim == 1:
        return torch.from_numpy(np.stack(scores).astype(np.float32))
    out = np.zeros((len(scores), width, scores[0].shape[-1]), dtype=np.float32)
    for i, s in enumerate(scores):
        out[i, : len(s)] = s
    return torch.from_numpy(out)


def mixed_loss(gold_loss, student_logits, teacher_logits, labels, task: str, cfg: DistillConfig):
    """``(1 - weight) * gold_loss + weight * T^2 * divergence(teacher, student)``."""
    import torch
    import torch.nn.functional as F

    from domainfm.finetune.data import IGNORE_INDEX

    t = float(cfg.temperature)
    student = student_logits.float() / t
    teacher = teacher_logits.to(student.device).float() / t
    if task == "multilabel":
        soft = F.binary_cross_entropy_with_logits(student, torch.sigmoid(teacher))
    else:
        if task == "ner":
            keep = labels != IGNORE_INDEX
            student, teacher = student[keep], teacher[keep]
        if student.numel() == 0:
            return gold_loss
        soft = F.kl_div(F.log_softmax(student, dim=-1), F.log_softmax(teacher, dim=-1), log_target=True,
                        reduction="batchmean")
    return (1 - cfg.weight) * gold_loss + cfg.weight * t * t * soft
