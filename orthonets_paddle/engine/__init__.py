"""Training loop, evaluation, checkpoints, losses, optimizers and logging."""
from .checkpoint import CheckpointError, atomic_save, load_checkpoint, load_states, save_checkpoint
from .losses import LabelSmoothingCrossEntropy, build_loss
from .optim import EpochSchedule, build_optimizer
from .trainer import NonFiniteLossError, evaluate, train, train_one_epoch

__all__ = ["CheckpointError", "atomic_save", "load_checkpoint", "load_states", "save_checkpoint",
           "LabelSmoothingCrossEntropy", "build_loss", "EpochSchedule", "build_optimizer",
           "NonFiniteLossError", "evaluate", "train", "train_one_epoch"]
