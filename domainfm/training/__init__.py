"""The training engine shared by ``pretrain`` and ``finetune`` (``transformers.Trainer`` with
seeded micro-batches, the stage's loss and evaluation, durable checkpoints and exact resume).
Importing this package loads torch and transformers."""

from domainfm.training.checkpoints import (
    CHECKPOINTS,
    CheckpointError,
    list_checkpoints,
    output_action,
    prepare_output,
    read_state,
)
from domainfm.training.engine import (
    SeedDropout,
    StageTrainer,
    peak_memory,
    precision_flags,
    tensorboard_callback,
    training_arguments,
)

__all__ = sorted([
    "CHECKPOINTS", "CheckpointError", "SeedDropout", "StageTrainer", "list_checkpoints", "output_action",
    "peak_memory", "precision_flags", "prepare_output", "read_state", "tensorboard_callback",
    "training_arguments",
])
