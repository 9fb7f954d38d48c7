"""Training: the `Trainer` loop, atomic checkpoints with exact resume, checkpoint averaging,
learning-rate schedules, and DDP through torchrun."""

from .checkpoint import average_checkpoints, load_checkpoint, rng_state, save_checkpoint, seed_everything, set_rng_state
from .distributed import (
    DistributedContext,
    barrier,
    cleanup,
    current_context,
    init_distributed,
    leave_together,
    rank_device,
)
from .lr_schedule import cosine_schedule, noam_factor, noam_schedule
from .trainer import LATEST_CHECKPOINT, Trainer, TrainerConfig

__all__ = [
    "LATEST_CHECKPOINT", "DistributedContext", "Trainer", "TrainerConfig", "average_checkpoints", "barrier",
    "cleanup", "cosine_schedule", "current_context", "init_distributed", "leave_together", "rank_device", "load_checkpoint", "noam_factor", "noam_schedule", "rng_state",
    "save_checkpoint", "seed_everything", "set_rng_state",
]
