"""Optimizers and epoch-based learning-rate schedules (stepped every iteration)."""
from __future__ import annotations

import math
from typing import List, Sequence

import paddle
from paddle.optimizer.lr import LRScheduler

__all__ = ["EpochSchedule", "build_optimizer", "build_lr", "OPTIMIZERS", "SCHEDULES",
           "optimizer_params", "lr_params"]

SCHEDULES = ("MultiStepDecay", "Cosine", "Constant")
_LR_KEYS = ("name", "learning_rate", "milestones", "gamma", "eta_min", "warmup_epoch",
            "warmup_start_lr")
_LR_KEYS_BY_NAME = {
    "MultiStepDecay": {"milestones", "gamma"},
    "Cosine": {"eta_min"},
    "Constant": set(),
}


class EpochSchedule(LRScheduler):
    """A schedule defined on (fractional) epochs, stepped once per iteration.

    ``MultiStepDecay`` changes only at epoch boundaries (the seed's per-epoch
    stepping); ``Cosine`` follows the authors' per-iteration cosine after a
    linear warm-up of ``warmup_epoch`` epochs. Its state is one integer
    (``last_epoch`` = iterations done), so resuming restores it exactly.
    """

    def __init__(self, name: str, learning_rate: float, iters_per_epoch: int, epochs: int,
                 milestones: Sequence[int] = (), gamma: float = 0.1, eta_min: float = 0.0,
                 warmup_epoch: float = 0, warmup_start_lr: float = 0.0):
        if name not in SCHEDULES:
            raise ValueError(f"unknown Optimizer.lr.name {name!r}; valid: {', '.join(SCHEDULES)}")
        if iters_per_epoch < 1:
            raise ValueError("the training loader yields no batches; lower batch_size")
        self.name = name
        self.iters_per_epoch = iters_per_epoch
        self.epochs = epochs
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = gamma
        self.eta_min = eta_min
        self.warmup_epoch = warmup_epoch
        self.warmup_start_lr = warmup_start_lr
        super().__init__(learning_rate=learning_rate, last_epoch=-1)

    def get_lr(self) -> float:
        step = max(self.last_epoch, 0)
        warm = self.warmup_epoch * self.iters_per_epoch
        if step < warm:
            return self.warmup_start_lr + (self.base_lr - self.warmup_start_lr) * step / warm
        if self.name == "MultiStepDecay":
            epoch = step // self.iters_per_epoch
            return self.base_lr * self.gamma ** sum(epoch >= m for m in self.milestones)
        if self.name == "Cosine":
            total = max(self.epochs * self.iters_per_epoch - warm, 1)
            t = min((step - warm) / total, 1.0)
            return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * t)) / 2
        return self.base_lr


def lr_params(name: str) -> List[str]:
    if name not in _LR_KEYS_BY_NAME:
        raise ValueError(f"unknown Optimizer.lr.name {name!r}; valid: {', '.join(SCHEDULES)}")
    return ["name", "learning_rate", "warmup_epoch", "warmup_start_lr",
            *sorted(_LR_KEYS_BY_NAME[name])]


OPTIMIZERS = {
    "Momentum": ("momentum", "weight_decay", "use_nesterov"),
    "SGD": ("weight_decay",),
    "AdamW": ("weight_decay", "beta1", "beta2", "epsilon"),
}


def optimizer_params(name: str) -> List[str]:
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown Optimizer.name {name!r}; valid: {', '.join(OPTIMIZERS)}")
    return ["name", "lr", *OPTIMIZERS[name]]


def build_lr(cfg: dict, iters_per_epoch: int, epochs: int) -> EpochSchedule:
    cfg = dict(cfg)
    return EpochSchedule(cfg.pop("name", "Constant"), iters_per_epoch=iters_per_epoch,
                         epochs=epochs, **cfg)


def build_optimizer(cfg: dict, parameters, iters_per_epoch: int, epochs: int):
    """``Optimizer`` config section -> (optimizer, schedule)."""
    cfg = dict(cfg)
    name = cfg.pop("name", "Momentum")
    optimizer_params(name)
    lr = build_lr(cfg.pop("lr"), iters_per_epoch, epochs)
    wd = cfg.pop("weight_decay", 0.0) or 0.0
    if name == "Momentum":
        # Float weight_decay in Paddle is L2 regularisation, like torch SGD's.
        opt = paddle.optimizer.Momentum(lr, momentum=cfg.pop("momentum", 0.9),
                                        use_nesterov=cfg.pop("use_nesterov", False),
                                        parameters=parameters, weight_decay=wd)
    elif name == "SGD":
        opt = paddle.optimizer.SGD(lr, parameters=parameters, weight_decay=wd)
    else:
        opt = paddle.optimizer.AdamW(lr, parameters=parameters, weight_decay=wd, **cfg)
    return opt, lr
