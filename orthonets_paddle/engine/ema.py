"""EMA weights as PaddleClas keeps them (``EMA: {decay: 0.9999}``).

A copy of the model whose every floating-point state-dict entry follows
``ema = decay * ema + (1 - decay) * w`` after each optimizer step: parameters and the
BatchNorm running mean/variance alike (PaddleClas's and timm's rule, so the averaged
weights come with statistics that moved with them). It is computed as
``ema + (1 - decay) * (w - ema)`` (``paddle.lerp``), the same value, so entries that
training never changes (the fixed filter banks, frozen BN statistics) stay bit-identical
instead of drifting by rounding.
"""
from __future__ import annotations

import copy
from typing import Any, Dict

import paddle

__all__ = ["ModelEMA", "DEFAULT_DECAY"]

DEFAULT_DECAY = 0.9999  # PaddleClas's


class ModelEMA:
    """The EMA copy of ``model`` (taken now: make it after loading pretrained weights),
    following ``model`` at each ``update()``.

    Args:
        model: the model being trained (not its DataParallel wrapper).
        decay: weight of the old average per update, in [0, 1).

    Attributes:
        module: the averaged model, in eval mode; evaluate and save it like any model.
        best_acc, best_epoch: its best validation accuracy and 0-based epoch (-1: none yet).
    """

    def __init__(self, model: paddle.nn.Layer, decay: float = DEFAULT_DECAY):
        self.source, self.module = model, copy.deepcopy(model)
        self.module.eval()
        for p in self.module.parameters():
            p.stop_gradient = True  # never trained, only averaged
        self.decay = float(decay)
        self.best_acc, self.best_epoch = -1.0, -1

    @paddle.no_grad()
    def update(self) -> None:
        """One EMA step towards the model's current weights (call after optimizer.step())."""
        now = self.source.state_dict()
        for name, avg in self.module.state_dict().items():
            w = now[name]
            if avg.is_floating_point():
                # float16 parameters (AMP O2) are averaged into the float32 copy
                paddle.assign(paddle.lerp(avg, w.astype(avg.dtype), 1.0 - self.decay), output=avg)
            else:
                paddle.assign(w, output=avg)

    def state(self) -> Dict[str, Any]:
        """What a checkpoint's ``.pdstates`` keeps besides the weights file."""
        return {"decay": self.decay, "best_acc": self.best_acc, "best_epoch": self.best_epoch}

    def restore(self, weights: Dict[str, Any], state: Dict[str, Any]) -> None:
        """Resume: the saved averaged weights and best accuracy, exactly."""
        self.module.set_state_dict(weights)
        self.best_acc = float(state.get("best_acc", -1.0))
        self.best_epoch = int(state.get("best_epoch", -1))
