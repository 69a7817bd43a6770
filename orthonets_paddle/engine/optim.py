"""Optimizers and learning-rate schedules, built from Paddle's own schedulers.

Every schedule steps once per optimizer step, here called an iteration (its state is the
iteration count, so a resume restores it exactly; with ``Global.update_freq: N`` one
iteration is N batches, ``steps_per_epoch``); epoch-based ones (Piecewise, MultiStepDecay) get their boundaries in
iterations. ``warmup_epoch > 0`` wraps any schedule in ``LinearWarmup`` over
``round(warmup_epoch * iters_per_epoch)`` iterations; the wrapped one then starts at 0.
"""
from __future__ import annotations

import math
from typing import Dict, Sequence

import paddle
from paddle.optimizer import lr as lr_sched

from ..utils.hints import lookup
from ..utils.schema import builder_keys

__all__ = ["build_optimizer", "build_lr", "steps_per_epoch", "OPTIMIZERS", "SCHEDULES", "optimizer_params",
           "lr_params", "regularizer_params"]


# Each builder's keyword-only parameters are its config keys (utils.schema.builder_keys).
def _l2(*, name: str = "L2", coeff: float = 0.0):  # L2 on the gradient: torch SGD's weight_decay
    return paddle.regularizer.L2Decay(float(coeff)) if coeff else None


def _momentum(lr, parameters, *, momentum: float = 0.9, use_nesterov: bool = False,
              multi_precision: bool = False, regularizer: Dict = None):
    return paddle.optimizer.Momentum(lr, momentum=momentum, use_nesterov=use_nesterov,
                                     parameters=parameters, multi_precision=multi_precision,
                                     weight_decay=_l2(**(regularizer or {})))


def _sgd(lr, parameters, *, multi_precision: bool = False, regularizer: Dict = None):
    return paddle.optimizer.SGD(lr, parameters=parameters, multi_precision=multi_precision,
                                weight_decay=_l2(**(regularizer or {})))


def _adamw(lr, parameters, *, weight_decay: float = 0.01, beta1: float = 0.9,
           beta2: float = 0.999, epsilon: float = 1e-8, multi_precision: bool = False):
    """Decoupled weight decay (``weight_decay``, Paddle's default 0.01), not a regularizer."""
    return paddle.optimizer.AdamW(lr, beta1, beta2, epsilon, parameters=parameters,
                                  weight_decay=float(weight_decay), multi_precision=multi_precision)


OPTIMIZERS = {"Momentum": _momentum, "SGD": _sgd, "AdamW": _adamw}


def optimizer_params(name: str) -> Dict[str, bool]:
    """The ``Optimizer`` keys optimizer ``name`` accepts -> whether each is required."""
    return {"name": True, "lr": True, **builder_keys(lookup(OPTIMIZERS, name, "optimizer"))}


def regularizer_params() -> Dict[str, bool]:
    """The ``Optimizer.regularizer`` keys -> whether each is required."""
    return builder_keys(_l2)


class _Cosine(lr_sched.CosineAnnealingDecay):
    """Paddle's cosine in closed form, held at ``eta_min`` after ``T_max``: Paddle's stepwise
    update drifts, rises after ``T_max`` and resumes another ``T_max`` on the old curve."""

    def get_lr(self) -> float:
        t = min(max(self.last_epoch, 0), self.T_max) / self.T_max
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * t)) / 2

    _get_closed_form_lr = get_lr


# The schedules after the warm-up: their iteration 0 is training's iteration ``warm``.
def _piecewise(base, ipe, epochs, warm, *, decay_epochs: Sequence[int],
               values: Sequence[float]):
    bounds = [int(e) for e in decay_epochs]
    if bounds != sorted(set(bounds)) or any(e < 1 for e in bounds):
        raise ValueError(f"Optimizer.lr.decay_epochs must be increasing positive epochs, got "
                         f"{list(decay_epochs)}")
    if len(values) != len(bounds) + 1:
        raise ValueError(f"Optimizer.lr.values needs one more value than decay_epochs "
                         f"({len(bounds)} boundaries -> {len(bounds) + 1} values), got "
                         f"{list(values)}")
    return lr_sched.PiecewiseDecay([e * ipe - warm for e in bounds], [float(v) for v in values])


def _multistep(base, ipe, epochs, warm, *, milestones: Sequence[int] = (), gamma: float = 0.1):
    epochs_at = sorted(int(m) for m in milestones)
    if len(set(epochs_at)) != len(epochs_at) or any(m < 1 for m in epochs_at):
        raise ValueError(f"Optimizer.lr.milestones must be distinct positive epochs, got "
                         f"{list(milestones)}")
    if not 0.0 < gamma < 1.0:
        raise ValueError(f"Optimizer.lr.gamma must be in (0, 1), got {gamma}")
    # Epoch boundaries in iterations, counted from the end of the warm-up.
    return lr_sched.MultiStepDecay(base, [m * ipe - warm for m in epochs_at], gamma)


def _cosine(base, ipe, epochs, warm, *, eta_min: float = 0.0):
    return _Cosine(base, max(epochs * ipe - warm, 1), eta_min=float(eta_min))


def _constant(base, ipe, epochs, warm):
    return lr_sched.LambdaDecay(base, lambda _: 1.0)


SCHEDULES = {"Piecewise": _piecewise, "MultiStepDecay": _multistep, "Cosine": _cosine,
             "Constant": _constant}
_LR_KEYS = {"name": True, "learning_rate": False, "warmup_epoch": False,  # build_lr's own
            "warmup_start_lr": False}
# PaddleClas keys the config layer accepts only at their no-op values (engine.config._REFUSED)
_LR_NO_OPS = ("last_epoch", "verbose", "by_epoch")


def lr_params(name: str) -> Dict[str, bool]:
    """The ``Optimizer.lr`` keys schedule ``name`` accepts -> whether each is required."""
    return {**_LR_KEYS, **builder_keys(lookup(SCHEDULES, name, "schedule"))}


class _LinearWarmup(lr_sched.LinearWarmup):
    """Paddle's ``LinearWarmup``, without the warning about its own nested state key."""

    def set_state_dict(self, state_dict) -> None:
        state = dict(state_dict)
        inner = state.pop("LinearWarmup_LR", None)
        lr_sched.LRScheduler.set_state_dict(self, state)
        if inner is not None:
            self.learning_rate.set_state_dict(inner)
        elif self.last_epoch >= self.warmup_steps:
            # saved without the nested schedule: its position follows from the iteration
            self.learning_rate.step(self.last_epoch - self.warmup_steps)


def build_lr(cfg: dict, iters_per_epoch: int, epochs: int) -> lr_sched.LRScheduler:
    """``Optimizer.lr`` section (keys checked by ``engine.config``) -> a Paddle scheduler
    stepped once per iteration; ValueError for values the schedule cannot use."""
    params = {k: v for k, v in cfg.items() if k not in _LR_NO_OPS}
    name = params.pop("name", "Constant")
    schedule = lookup(SCHEDULES, name, "schedule (Optimizer.lr.name)")
    if iters_per_epoch < 1:
        raise ValueError("the training loader yields no batches; lower batch_size")
    base = float(params.pop("learning_rate", 0.1))
    if name == "Piecewise" and params.get("values"):
        base = float(params["values"][0])  # PaddleClas: the first value is the start
    warm = int(round(float(params.pop("warmup_epoch", 0) or 0) * iters_per_epoch))
    start = float(params.pop("warmup_start_lr", 0.0) or 0.0)
    after = schedule(base, iters_per_epoch, epochs, warm, **params)
    if warm == 0:
        return after
    if not start < base:
        raise ValueError(f"Optimizer.lr.warmup_start_lr ({start}) must be below learning_rate "
                         f"({base}); or set warmup_epoch: 0")
    return _LinearWarmup(after, warmup_steps=warm, start_lr=start, end_lr=base)


def steps_per_epoch(batches: int, update_freq: int = 1) -> int:
    """Optimizer steps in an epoch of ``batches`` batches, gradients accumulated over
    ``update_freq``: ``batches // update_freq``, as PaddleClas (the last ``batches %
    update_freq`` batches of each epoch are not drawn). ValueError if that is 0."""
    if batches < update_freq:
        raise ValueError(f"Global.update_freq is {update_freq} but the training loader yields "
                         f"{batches} batch(es) per epoch, so no optimizer step would run; lower "
                         "Global.update_freq or DataLoader.Train.sampler.batch_size")
    return batches // update_freq


def build_optimizer(cfg: dict, parameters, iters_per_epoch: int, epochs: int):
    """``Optimizer`` config section (keys checked by ``engine.config``) -> (optimizer, lr)."""
    params = dict(cfg)
    name = params.pop("name", "Momentum")
    lr = build_lr(params.pop("lr"), iters_per_epoch, epochs)
    return lookup(OPTIMIZERS, name, "optimizer (Optimizer.name)")(lr, parameters, **params), lr
