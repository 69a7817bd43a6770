"""Optimizers and learning-rate schedules, built from Paddle's own schedulers.

Every schedule is stepped once per training iteration (``scheduler.step()`` after
``optimizer.step()``), so its state is the iteration count and a resume restores it
exactly. Schedules defined on epochs are converted to iterations here:

- ``Piecewise`` (PaddleClas's): ``paddle.optimizer.lr.PiecewiseDecay`` with the
  ``decay_epochs`` boundaries in iterations and ``values`` (one more than the boundaries);
  ``values[0]`` is the starting rate (``learning_rate`` is ignored, as in PaddleClas).
- ``MultiStepDecay``: ``paddle.optimizer.lr.MultiStepDecay`` with milestones at
  ``epoch * iters_per_epoch``, so the rate changes only at epoch boundaries, exactly as
  the seed's per-epoch stepping (lr 0.1, x0.1 at epochs 30/60/90).
- ``Cosine``: ``paddle.optimizer.lr.CosineAnnealingDecay`` over the iterations after the
  warm-up (the authors' per-iteration half cosine down to ``eta_min``), evaluated in
  closed form.
- ``Constant``: ``paddle.optimizer.lr.LambdaDecay`` with factor 1.
- ``warmup_epoch > 0`` wraps any of them in ``paddle.optimizer.lr.LinearWarmup``: linear
  from ``warmup_start_lr`` to ``learning_rate`` over ``round(warmup_epoch *
  iters_per_epoch)`` iterations; the wrapped schedule then starts at its iteration 0.
"""
from __future__ import annotations

import math
from typing import List, Sequence

import paddle
from paddle.optimizer import lr as lr_sched

__all__ = ["build_optimizer", "build_lr", "OPTIMIZERS", "SCHEDULES", "optimizer_params",
           "lr_params"]

SCHEDULES = ("Piecewise", "MultiStepDecay", "Cosine", "Constant")
_LR_KEYS_BY_NAME = {
    "Piecewise": {"decay_epochs", "values"},
    "MultiStepDecay": {"milestones", "gamma"},
    "Cosine": {"eta_min"},
    "Constant": set(),
}


def lr_params(name: str) -> List[str]:
    """The ``Optimizer.lr`` keys schedule ``name`` accepts."""
    if name not in _LR_KEYS_BY_NAME:
        raise ValueError(f"unknown Optimizer.lr.name {name!r}; valid: {', '.join(SCHEDULES)}")
    return ["name", "learning_rate", "warmup_epoch", "warmup_start_lr",
            *sorted(_LR_KEYS_BY_NAME[name])]


OPTIMIZERS = {
    "Momentum": ("momentum", "use_nesterov", "multi_precision", "regularizer"),
    "SGD": ("multi_precision", "regularizer"),
    "AdamW": ("weight_decay", "beta1", "beta2", "epsilon", "multi_precision"),  # decoupled decay
}


def optimizer_params(name: str) -> List[str]:
    """The ``Optimizer`` keys optimizer ``name`` accepts."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown Optimizer.name {name!r}; valid: {', '.join(OPTIMIZERS)}")
    return ["name", "lr", *OPTIMIZERS[name]]


class _Cosine(lr_sched.CosineAnnealingDecay):
    """``paddle.optimizer.lr.CosineAnnealingDecay`` in its closed form at every step, held
    at ``eta_min`` after ``T_max``: Paddle's step-by-step update accumulates rounding and
    rises again after ``T_max``, and a resume with another ``T_max`` would continue the
    old curve from its saved rate."""

    def get_lr(self) -> float:
        t = min(max(self.last_epoch, 0), self.T_max) / self.T_max
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * t)) / 2

    _get_closed_form_lr = get_lr


def _after_warmup(name: str, learning_rate: float, iters_per_epoch: int, epochs: int, warm: int,
                  milestones: Sequence[int], gamma: float,
                  eta_min: float, decay_epochs: Sequence[int] = (),
                  values: Sequence[float] = ()) -> lr_sched.LRScheduler:
    """The schedule that runs once the warm-up is over; its iteration 0 is iteration
    ``warm`` of training (``LinearWarmup`` steps it with ``iteration - warm``)."""
    if name == "Piecewise":
        bounds = [int(e) for e in decay_epochs]
        if bounds != sorted(set(bounds)) or any(e < 1 for e in bounds):
            raise ValueError(f"Optimizer.lr.decay_epochs must be increasing positive epochs, got "
                             f"{list(decay_epochs)}")
        if len(values) != len(bounds) + 1:
            raise ValueError(f"Optimizer.lr.values needs one more value than decay_epochs "
                             f"({len(bounds)} boundaries -> {len(bounds) + 1} values), got "
                             f"{list(values)}")
        return lr_sched.PiecewiseDecay([e * iters_per_epoch - warm for e in bounds],
                                       [float(v) for v in values])
    if name == "MultiStepDecay":
        epochs_at = sorted(int(m) for m in milestones)
        if len(set(epochs_at)) != len(epochs_at) or any(m < 1 for m in epochs_at):
            raise ValueError(f"Optimizer.lr.milestones must be distinct positive epochs, got "
                             f"{list(milestones)}")
        if not 0.0 < gamma < 1.0:
            raise ValueError(f"Optimizer.lr.gamma must be in (0, 1), got {gamma}")
        # Epoch boundaries in iterations, counted from the end of the warm-up.
        return lr_sched.MultiStepDecay(learning_rate, [m * iters_per_epoch - warm
                                                       for m in epochs_at], gamma)
    if name == "Cosine":
        return _Cosine(learning_rate, max(epochs * iters_per_epoch - warm, 1), eta_min=float(eta_min))
    return lr_sched.LambdaDecay(learning_rate, lambda _: 1.0)


class _LinearWarmup(lr_sched.LinearWarmup):
    """``paddle.optimizer.lr.LinearWarmup`` whose ``set_state_dict`` does not warn about
    its own nested key (Paddle's checks the nested state against its base keys)."""

    def set_state_dict(self, state_dict) -> None:
        state = dict(state_dict)
        inner = state.pop("LinearWarmup_LR", None)
        lr_sched.LRScheduler.set_state_dict(self, state)
        if inner is not None:
            self.learning_rate.set_state_dict(inner)
        elif self.last_epoch >= self.warmup_steps:
            # A state saved without the nested schedule (older checkpoints): the nested
            # schedule's position follows from the iteration count.
            self.learning_rate.step(self.last_epoch - self.warmup_steps)


def build_lr(cfg: dict, iters_per_epoch: int, epochs: int) -> lr_sched.LRScheduler:
    """``Optimizer.lr`` section -> a Paddle scheduler stepped once per iteration.

    Args:
        cfg: ``{name, learning_rate, [milestones, gamma | eta_min], [warmup_epoch,
            warmup_start_lr]}``.
        iters_per_epoch: training iterations per epoch (``len(train_loader)``).
        epochs: total training epochs (the cosine ends at the last iteration).

    Raises:
        ValueError: unknown name or key, or values the schedule cannot use.
    """
    cfg = dict(cfg)
    name = cfg.pop("name", "Constant")
    for key in ("last_epoch", "verbose", "by_epoch"):  # PaddleClas's; config.py checks their values
        cfg.pop(key, None)
    unknown = set(cfg) - set(lr_params(name))
    if unknown:
        raise ValueError(f"Optimizer.lr: {name} does not take {', '.join(sorted(unknown))}; "
                         f"valid keys: {', '.join(lr_params(name))}")
    if iters_per_epoch < 1:
        raise ValueError("the training loader yields no batches; lower batch_size")
    if name == "Piecewise" and cfg.get("values"):
        cfg["learning_rate"] = cfg["values"][0]  # PaddleClas: the first value is the start
    base = float(cfg.get("learning_rate", 0.1))
    if base < 0:
        raise ValueError(f"Optimizer.lr.learning_rate must be >= 0, got {base}")
    warmup_epoch = float(cfg.get("warmup_epoch", 0) or 0)
    start = float(cfg.get("warmup_start_lr", 0.0) or 0.0)
    if warmup_epoch < 0:
        raise ValueError(f"Optimizer.lr.warmup_epoch must be >= 0, got {warmup_epoch}")
    warm = int(round(warmup_epoch * iters_per_epoch))
    after = _after_warmup(name, base, iters_per_epoch, epochs, warm, cfg.get("milestones", ()),
                          float(cfg.get("gamma", 0.1)), float(cfg.get("eta_min", 0.0)),
                          cfg.get("decay_epochs", ()), cfg.get("values", ()))
    if warm == 0:
        return after
    if not start < base:
        raise ValueError(f"Optimizer.lr.warmup_start_lr ({start}) must be below learning_rate "
                         f"({base}); or set warmup_epoch: 0")
    return _LinearWarmup(after, warmup_steps=warm, start_lr=start, end_lr=base)


def build_optimizer(cfg: dict, parameters, iters_per_epoch: int, epochs: int):
    """``Optimizer`` config section -> (optimizer, schedule).

    ``regularizer: {name: L2, coeff}`` is ``paddle.regularizer.L2Decay(coeff)`` (PaddleClas's
    meaning: L2 added to the gradient, as torch SGD's weight_decay); ``multi_precision`` keeps
    float32 master weights for float16 parameters (AMP O2).
    """
    cfg = dict(cfg)
    name = cfg.pop("name", "Momentum")
    optimizer_params(name)
    if name != "AdamW" and "weight_decay" in cfg:
        raise ValueError("Optimizer.weight_decay is now Optimizer.regularizer: {name: L2, coeff: "
                         f"{cfg['weight_decay']}}} (PaddleClas's schema)")
    lr = build_lr(cfg.pop("lr"), iters_per_epoch, epochs)
    reg = cfg.pop("regularizer", None) or {}
    if reg and reg.get("name", "L2") != "L2":
        raise ValueError(f"Optimizer.regularizer.name {reg.get('name')!r}: only L2 is supported")
    decay = paddle.regularizer.L2Decay(float(reg["coeff"])) if reg.get("coeff") else None
    multi = bool(cfg.pop("multi_precision", False))
    if name == "Momentum":
        opt = paddle.optimizer.Momentum(lr, momentum=cfg.pop("momentum", 0.9),
                                        use_nesterov=cfg.pop("use_nesterov", False),
                                        parameters=parameters, weight_decay=decay,
                                        multi_precision=multi)
    elif name == "SGD":
        opt = paddle.optimizer.SGD(lr, parameters=parameters, weight_decay=decay,
                                   multi_precision=multi)
    else:
        opt = paddle.optimizer.AdamW(lr, parameters=parameters, multi_precision=multi,
                                     weight_decay=cfg.pop("weight_decay", 0.01), **cfg)
    return opt, lr
