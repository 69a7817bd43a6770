"""The training path of a block's attention: ``relu(att(x) + identity)`` in one op
(``models/resnet.py::_attend_add_relu`` uses it whenever dygraph records gradients).

Plain autograd keeps the block's pre-attention map ``x`` alive for backward (the squeeze
conv and the rescale both save it): one extra feature map per block, about +12% peak
memory for an OrthoNet-18 training step. Here the squeeze saves only its filters, and the
fused ``relu(x * g + identity)`` saves its output ``r``, the gate ``g`` and the residual,
which the network keeps anyway. The gradient of the excitation logit ``z`` needs
``sum_hw grad * x * g = sum_hw grad * (r - identity)`` where the ReLU passes gradient, so
``x`` is never recovered and nothing is divided by ``g``. The one loss of accuracy is
float32 cancellation in ``r - identity`` when ``|x * g|`` is far below ``|identity|``:
the error of that sum is at most a few ulps of ``sum_hw |grad| (|r| + |identity|)``
(tests/test_attention.py checks that bound with gates of 1e-4 and 1 - 1e-4).
"""
from __future__ import annotations

from typing import Optional

import paddle
import paddle.nn.functional as F
from paddle.autograd import PyLayer

from .attention import squeeze_gemm

__all__ = ["attend_add_relu", "relu_grad", "relu_grad_public"]


def relu_grad_public(out: paddle.Tensor, grad: paddle.Tensor) -> paddle.Tensor:
    """``grad`` where ``out > 0``, else 0 (public ops only)."""
    return grad * (out > 0).astype(grad.dtype)


def _relu_grad_private(out: paddle.Tensor, grad: paddle.Tensor) -> paddle.Tensor:
    return paddle._C_ops.relu_grad(out, grad)  # Paddle's kernel: ~4x faster on CPU


def _pick_relu_grad():
    """The private kernel if this Paddle has it and it agrees with the public ops."""
    try:
        out = paddle.to_tensor([[-1.0, 0.0, 2.0]])
        grad = paddle.to_tensor([[3.0, 4.0, 5.0]])
        if bool((_relu_grad_private(out, grad) == relu_grad_public(out, grad)).all()):
            return _relu_grad_private
    except Exception:  # missing or changed private API: fall back, never fail
        pass
    return relu_grad_public


relu_grad = _pick_relu_grad()


def _dot(a: paddle.Tensor, b: paddle.Tensor) -> paddle.Tensor:
    """``sum_hw a * b`` -> ``[b, c]``: batched dot products, no product temporary. ``b`` as
    ``[.., 1, hw]`` with transpose_y: on CPU 3-20x faster than ``b`` as ``[.., hw, 1]`` and,
    except on 4x4 maps, 1.7-5x faster than multiply-and-sum (docs/PERFORMANCE.md)."""
    _, c, h, w = a.shape
    return paddle.matmul(a.reshape([-1, c, 1, h * w]), b.reshape([-1, c, 1, h * w]),
                         transpose_y=True).reshape([-1, c])


def _scale(x: paddle.Tensor, g: paddle.Tensor) -> paddle.Tensor:
    """``x * g[:, :, None, None]`` as a batched outer product (1.7x faster in dygraph)."""
    _, c, h, w = x.shape
    return paddle.matmul(g.reshape([-1, c, 1, 1]), x.reshape([-1, c, 1, h * w])).reshape([-1, c, h, w])


class _Squeeze(PyLayer):
    """``s[b, c] = sum_hw K[c] x[b, c]``; backward keeps only ``K``."""

    @staticmethod
    def forward(ctx, x, bank):
        # A plain reference, not save_for_backward: a folded bank is a temporary whose
        # storage save_for_backward did not keep (measured: wrong gradients at 40 px).
        ctx.bank = bank
        return squeeze_gemm(x, bank)

    @staticmethod
    def backward(ctx, grad):
        bank = ctx.bank
        c, h, w = bank.shape
        gx = paddle.matmul(grad.reshape([-1, c, 1, 1]), bank.reshape([c, 1, h * w]))
        return gx.reshape([-1, c, h, w]), None


class _GateAddReLU(PyLayer):
    """``relu(x * sigmoid(z) + identity)``; backward keeps the output, not ``x``."""

    @staticmethod
    def forward(ctx, x, z, identity=None):
        g = F.sigmoid(z)
        out = _scale(x, g)
        out = F.relu(out if identity is None else out + identity)
        ctx.save_for_backward(out, g, identity)
        return out

    @staticmethod
    def backward(ctx, grad):
        out, g, identity = ctx.saved_tensor()
        grad = relu_grad(out, grad)
        # Where grad != 0, x * g = out - identity; d sigmoid / dz = g (1 - g).
        xg = _dot(grad, out) if identity is None else _dot(grad, out) - _dot(grad, identity)
        grad_z = xg * (1.0 - g)
        grad_x = _scale(grad, g)
        return (grad_x, grad_z) if identity is None else (grad_x, grad_z, grad)


def attend_add_relu(att, x: paddle.Tensor, identity: Optional[paddle.Tensor] = None) -> paddle.Tensor:
    """``relu(att(x) + identity)`` (``relu(att(x))`` without identity) with the lean
    backward. Same values as the plain ops; ``att``'s forward hooks are not called."""
    s = _Squeeze.apply(x, att.bank_for(x.shape[2], x.shape[3]))
    z = att.excite(s)
    return _GateAddReLU.apply(x, z) if identity is None else _GateAddReLU.apply(x, z, identity)
