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

__all__ = ["squeeze_lean", "rescale_add_relu_lean", "scale_channels"]


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
        c, h, w = bank.shape
        # An outer product as matmul: 5x faster than a broadcast multiply on CPU.
        gx = paddle.matmul(grad.reshape([-1, c, 1, 1]), bank.reshape([c, 1, h * w]))
        return gx.reshape([-1, c, h, w]), None


def _relu_grad(out: paddle.Tensor, grad: paddle.Tensor) -> paddle.Tensor:
    try:  # Paddle's own kernel: 4x faster than a select on CPU
        return paddle._C_ops.relu_grad(out, grad)
    except (AttributeError, TypeError):
        return grad * (out > 0).astype(grad.dtype)


def scale_channels(x: paddle.Tensor, e: paddle.Tensor) -> paddle.Tensor:
    """``x * e[:, :, None, None]`` as a batched outer product: ~1.7x faster than the
    broadcast multiply in dygraph on CPU. Static graphs keep the multiply (fusable)."""
    if not paddle.in_dynamic_mode():
        return x * e.unsqueeze([2, 3])
    n, c, h, w = x.shape
    return paddle.matmul(e.reshape([-1, c, 1, 1]), x.reshape([-1, c, 1, h * w])).reshape([-1, c, h, w])


def _dot(a: paddle.Tensor, b: paddle.Tensor) -> paddle.Tensor:
    """``sum_hw a * b`` -> ``[b, c]``, as a batched matmul (no product temporary)."""
    n, c, h, w = a.shape
    return paddle.matmul(a.reshape([-1, c, 1, h * w]), b.reshape([-1, c, h * w, 1])).reshape([-1, c])


class _ScaleAddReLU(PyLayer):
    @staticmethod
    def forward(ctx, x, e, identity):
        out = scale_channels(x, e)
        if identity is not None:
            out = out + identity
        out = F.relu(out)
        ctx.save_for_backward(out, e, identity)
        return out

    @staticmethod
    def backward(ctx, grad):
        out, e, identity = ctx.saved_tensor()
        grad = _relu_grad(out, grad)
        # Where out > 0, x * e = out - identity; elsewhere grad is 0. So
        # sum_hw(grad * x) = (sum(grad * out) - sum(grad * identity)) / e, as batched dot
        # products, dividing [b, c] rather than the feature map. e is a sigmoid, > 0 unless
        # it underflowed, where sigmoid' = 0 cancels the term anyway.
        b_c_dot = _dot(grad, out) if identity is None else _dot(grad, out) - _dot(grad, identity)
        grad_e = b_c_dot / paddle.where(e > 0, e, paddle.ones_like(e))
        grad_x = scale_channels(grad, e)
        if identity is None:
            return grad_x, grad_e
        return grad_x, grad_e, grad


def squeeze_lean(x: paddle.Tensor, bank: paddle.Tensor) -> paddle.Tensor:
    """``[b, c, h, w] x [c, h, w] -> [b, c]``; its backward keeps only ``bank``."""
    return _Squeeze.apply(x, bank)


def rescale_add_relu_lean(x: paddle.Tensor, e: paddle.Tensor,
                          identity: Optional[paddle.Tensor]) -> paddle.Tensor:
    """``relu(x * e[:, :, None, None] + identity)`` (no add when identity is None)."""
    if identity is None:
        return _ScaleAddReLU.apply(x, e, None)
    return _ScaleAddReLU.apply(x, e, identity)
