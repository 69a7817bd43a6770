"""Losses: the seed notebook's label-smoothing cross-entropy."""
from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

__all__ = ["LabelSmoothingCrossEntropy", "LOSSES", "build_loss"]


class LabelSmoothingCrossEntropy(nn.Layer):
    """Cross-entropy against ``(1 - epsilon) * one_hot + epsilon / K``.

    The seed's formula: ``mean_b( -sum_k target[b, k] * log_softmax(logits)[b, k] )``.
    ``epsilon=0`` is plain cross-entropy.
    """

    def __init__(self, epsilon: float = 0.1):
        super().__init__()
        if not 0.0 <= epsilon < 1.0:
            raise ValueError(f"Loss.epsilon must be in [0, 1), got {epsilon}")
        self.epsilon = float(epsilon)

    def forward(self, logits: paddle.Tensor, label: paddle.Tensor) -> paddle.Tensor:
        k = logits.shape[-1]
        log_probs = F.log_softmax(logits, axis=-1)
        target = F.one_hot(label.reshape([-1]).astype("int64"), k)
        target = target * (1.0 - self.epsilon) + self.epsilon / k
        return -(target * log_probs).sum(axis=-1).mean()


LOSSES = {"CELoss": LabelSmoothingCrossEntropy, "LabelSmoothingCE": LabelSmoothingCrossEntropy}


def build_loss(cfg: dict) -> nn.Layer:
    """``{name: CELoss, epsilon: 0.1}`` -> loss layer."""
    cfg = dict(cfg or {"name": "CELoss"})
    name = cfg.pop("name", "CELoss")
    if name not in LOSSES:
        raise ValueError(f"unknown Loss.name {name!r}; valid: {', '.join(LOSSES)}")
    return LOSSES[name](**cfg)
