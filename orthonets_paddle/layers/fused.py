"""Memory-lean training path of the attention: custom backward passes that keep no
feature map the plain ResNet would not keep.

Plain autograd keeps the block's pre-attention map ``x`` alive for backward (both the
squeeze matmul and the rescale multiply save it): one extra feature map per block, about
+12% peak memory for OrthoNet-18 training. Here the squeeze saves only its filters, and the
rescale + residual add + ReLU saves its output ``r``, the excitation ``e`` and the residual,
which the network keeps anyway; where ``r > 0``, ``x = (r - identity) / e``, and where
``r == 0`` the ReLU blocks every gradient, so ``x`` is never needed there.
"""
from __future__ import annotations

from typing import Optional

import paddle
import paddle.nn.functional as F
from paddle.autograd import PyLayer

__all__ = ["squeeze_lean", "rescale_add_relu_lean"]


class _Squeeze(PyLayer):
    @staticmethod
    def forward(ctx, x, bank):
        c, hw = bank.shape[0], bank.shape[1] * bank.shape[2]
        ctx.save_for_backward(bank)
        s = paddle.matmul(x.reshape([-1, c, 1, hw]), bank.reshape([c, hw, 1]))
        return s.reshape([-1, c])

    @staticmethod
    def backward(ctx, grad):
        (bank,) = ctx.saved_tensor()
        return grad.unsqueeze([2, 3]) * bank, None


class _ScaleAddReLU(PyLayer):
    @staticmethod
    def forward(ctx, x, e, identity):
        out = x * e.unsqueeze([2, 3])
        if identity is not None:
            out = out + identity
        out = F.relu(out)
        ctx.save_for_backward(out, e, identity)
        return out

    @staticmethod
    def backward(ctx, grad):
        out, e, identity = ctx.saved_tensor()
        grad = grad * (out > 0).astype(grad.dtype)
        e4 = e.unsqueeze([2, 3])
        pre = out if identity is None else out - identity
        # e is a sigmoid, > 0 unless it underflowed; there sigmoid' = 0 cancels the term.
        x = pre / paddle.where(e4 > 0, e4, paddle.ones_like(e4))
        grad_e = (grad * x).sum(axis=[2, 3])
        if identity is None:
            return grad * e4, grad_e
        return grad * e4, grad_e, grad


def squeeze_lean(x: paddle.Tensor, bank: paddle.Tensor) -> paddle.Tensor:
    """``[b, c, h, w] x [c, h, w] -> [b, c]``; its backward keeps only ``bank``."""
    return _Squeeze.apply(x, bank)


def rescale_add_relu_lean(x: paddle.Tensor, e: paddle.Tensor,
                          identity: Optional[paddle.Tensor]) -> paddle.Tensor:
    """``relu(x * e[:, :, None, None] + identity)`` (no add when identity is None)."""
    if identity is None:
        return _ScaleAddReLU.apply(x, e, None)
    return _ScaleAddReLU.apply(x, e, identity)
