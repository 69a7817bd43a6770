"""Losses in PaddleClas's ``Loss.Train`` / ``Loss.Eval`` form: a list of weighted losses."""
from __future__ import annotations

import inspect
from typing import Any, List, Optional, Sequence

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..utils.hints import lookup

__all__ = ["CELoss", "LabelSmoothingCrossEntropy", "CombinedLoss", "LOSSES", "build_loss",
           "loss_params"]


class CELoss(nn.Layer):
    """PaddleClas's batch-mean cross-entropy on hard ``[B]`` or soft ``[B, K]`` labels;
    ``epsilon`` in [0, 1) smooths the target to ``(1 - epsilon) * target + epsilon / K``."""

    def __init__(self, epsilon: Optional[float] = None):
        super().__init__()
        if epsilon is not None and (isinstance(epsilon, bool) or not isinstance(epsilon, (int, float))
                                    or not 0.0 <= float(epsilon) < 1.0):
            raise ValueError(f"CELoss.epsilon must be in [0, 1), got {epsilon}")
        self.epsilon = float(epsilon or 0.0)

    def forward(self, logits: paddle.Tensor, label: paddle.Tensor) -> paddle.Tensor:
        k = logits.shape[-1]
        logits = logits.astype("float32")  # the loss in float32 under AMP too
        if label.ndim == 2 and label.shape[-1] == k and k > 1:
            target = label.astype("float32")  # soft labels
        else:
            target = F.one_hot(label.reshape([-1]).astype("int64"), k)
        if self.epsilon:
            target = target * (1.0 - self.epsilon) + self.epsilon / k
        return -(target * F.log_softmax(logits, axis=-1)).sum(axis=-1).mean()


class LabelSmoothingCrossEntropy(CELoss):
    """The seed notebook's loss: ``CELoss`` with ``epsilon`` 0.1 by default."""

    def __init__(self, epsilon: float = 0.1):
        super().__init__(epsilon)


LOSSES = {"CELoss": CELoss}


def loss_params(name: str) -> List[str]:
    """Valid keys of loss ``name`` in a ``Loss.Train`` entry (``weight`` is every loss's):
    its constructor's parameters, which the config layer checks."""
    params = inspect.signature(lookup(LOSSES, name, "loss").__init__).parameters
    return ["weight", *[p for p in params if p != "self"]]


class CombinedLoss(nn.Layer):
    """``sum_i weight_i * loss_i(logits, label)`` over a ``Loss.Train`` list."""

    def __init__(self, losses: Sequence[nn.Layer], weights: Sequence[float]):
        super().__init__()
        self.losses = nn.LayerList(list(losses))
        self.weights = [float(w) for w in weights]

    def forward(self, logits: paddle.Tensor, label: paddle.Tensor) -> paddle.Tensor:
        return sum(loss(logits, label) * w for loss, w in zip(self.losses, self.weights))


def build_loss(cfg: Any) -> nn.Layer:
    """A ``Loss.Train`` / ``Loss.Eval`` list such as ``[{CELoss: {weight: 1.0, epsilon: 0.1}}]``
    -> one loss layer. None or an empty list gives plain ``CELoss``.

    Raises:
        ValueError: unknown loss (naming the valid ones), or a bad value.
    """
    if not cfg:
        return CombinedLoss([CELoss()], [1.0])
    if isinstance(cfg, dict):
        raise ValueError("Loss must be PaddleClas's lists, e.g. Loss: {Train: [{CELoss: {weight: "
                         "1.0, epsilon: 0.1}}], Eval: [{CELoss: {weight: 1.0}}]}; build_loss takes "
                         "one of the lists")
    losses, weights = [], []
    for entry in cfg:
        name, params = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
        params = dict(params or {})
        weights.append(float(params.pop("weight", 1.0)))
        losses.append(lookup(LOSSES, name, "loss")(**params))
    return CombinedLoss(losses, weights)

