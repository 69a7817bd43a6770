"""Training loop, evaluation, checkpoints, losses, optimizers and logging."""
from .checkpoint import CheckpointError, RunFolderError, load_checkpoint, load_states, save_checkpoint
from .losses import LabelSmoothingCrossEntropy, build_loss
from .optim import build_lr, build_optimizer
from .trainer import NonFiniteLossError, evaluate, train, train_one_epoch
from ..models import build_model_from_config  # the trainer's model builder, one import away

__all__ = ["CheckpointError", "RunFolderError", "load_checkpoint", "load_states", "save_checkpoint",
           "LabelSmoothingCrossEntropy", "build_loss", "build_lr", "build_optimizer",
           "NonFiniteLossError", "build_model_from_config", "evaluate", "train", "train_one_epoch"]
