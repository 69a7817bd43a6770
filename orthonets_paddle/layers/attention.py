"""Channel attention with a fixed filter bank: squeeze, excitation, rescale.

    s[b, c] = sum_hw K[c, h, w] * X[b, c, h, w]          squeeze (K: the filter bank)
    g[b, c] = sigmoid(W2 relu(W1 s[b]))                   excitation, no biases (OrthoNet,
                                                          FcaNet; SENet's has b1, b2)
    out     = X * g[:, :, None, None]                     rescale

OrthoNet, FcaNet and SENet are this layer with different banks (``filter_banks.py``).
``att(x)`` returns ``x * g`` in every mode, like timm's SE module; the block that owns it
does the residual add and the ReLU.
"""
from __future__ import annotations

import functools
from typing import Callable, Optional, Sequence, Union

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .filter_banks import BankFn, get_filter_bank

__all__ = ["ChannelAttention", "create_attention", "pool_matrix", "squeeze"]


def squeeze(x: paddle.Tensor, bank: paddle.Tensor, training: bool = False) -> paddle.Tensor:
    """``s[b, c] = sum_hw K[c, h, w] * x[b, c, h, w]`` -> ``[b, c]``.

    One op, chosen by where it runs (measured on CPU, docs/PERFORMANCE.md): dygraph and
    traced training use a batched matmul ``[b, c, 1, hw] @ [c, 1, hw]^T`` (5-12x faster
    than multiply-and-sum, and the depthwise conv's backward is slow); a traced inference
    program (export) uses a depthwise conv whose kernel is the whole filter, which keeps
    ``x`` in the runtimes' blocked conv layout (ONNX Runtime runs the broadcast MatMul
    2-20x slower)."""
    c, h, w = bank.shape
    if training or paddle.in_dynamic_mode():
        s = paddle.matmul(x.reshape([-1, c, 1, h * w]), bank.reshape([c, 1, h * w]),
                          transpose_y=True)
    else:
        s = F.conv2d(x, bank.unsqueeze(1), groups=c)
    return s.reshape([-1, c])


@functools.lru_cache(maxsize=64)
def pool_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``[n_out, n_in]`` weights of 1-D adaptive average pooling (Paddle's bins)."""
    m = np.zeros((n_out, n_in), dtype=np.float32)
    for i in range(n_out):
        start, end = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        m[i, start:end] = 1.0 / (end - start)
    return m


class ChannelAttention(nn.Layer):
    """Squeeze-excitation-rescale attention over ``channels`` channels.

    Args:
        channels: number of input (and output) channels.
        size: filter size ``h`` or ``(h, w)``; a feature map of another size is
            adaptive-average-pooled to it before the squeeze (folded into the filters).
        squeeze: filter bank: a name (``ortho``, ``dct``, ``avg``, ``random``) or a
            function ``bank(c, h, w, seed) -> [c, h, w]``.
        reduction: the excitation's hidden width is ``round(channels / reduction)``.
        seed: seed of the random banks.
        bank: a ready ``[channels, h, w]`` bank (a model builds all of its banks at
            once); by default it is ``squeeze(channels, h, w, seed)``.
        bias: biases on both excitation layers, ``sigmoid(W2 relu(W1 s + b1) + b2)``, as
            in Hu et al.'s SENet; OrthoNet and FcaNet have none.
    """

    def __init__(self, channels: int, size: Union[int, Sequence[int]] = 7,
                 squeeze: Union[str, BankFn] = "ortho", reduction: int = 16, seed: int = 0,
                 bank: Optional[np.ndarray] = None, bias: bool = False):
        super().__init__()
        bank_fn = get_filter_bank(squeeze) if isinstance(squeeze, str) else squeeze
        if reduction <= 0:
            raise ValueError(f"reduction must be positive, got {reduction}")
        self.channels = channels
        self.size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.squeeze = squeeze if isinstance(squeeze, str) else getattr(squeeze, "__name__", "custom")
        hidden = max(1, int(round(channels / reduction)))
        self.fc1 = nn.Linear(channels, hidden, bias_attr=None if bias else False)
        self.fc2 = nn.Linear(hidden, channels, bias_attr=None if bias else False)
        if bank is None:
            bank = bank_fn(channels, *self.size, seed)
        if tuple(bank.shape) != (channels, *self.size):
            raise ValueError(f"bank shape {tuple(bank.shape)} does not fit channels={channels}, "
                             f"size={self.size}")
        # SENet's constant bank is global average pooling at any size: not saved (its
        # checkpoints have no filters), and built for the map's own size, not folded.
        self.global_average = self.squeeze == "avg"
        # Persistable buffer: saved with the model (reloads bit-identical), not trained.
        self.register_buffer("filters", paddle.to_tensor(np.asarray(bank, np.float32)),
                             persistable=not self.global_average)

    def bank_for(self, h: int, w: int) -> paddle.Tensor:
        """The filters that squeeze an ``h x w`` map: ``K`` at the filter size, otherwise
        ``Ph^T K Pw`` with ``Ph``, ``Pw`` the adaptive-pooling matrices. Pooling is linear,
        so this equals pooling first; ONNX cannot express the enlarging adaptive pool that
        224-px inputs to 256-px models need, a matmul it can."""
        if (h, w) == self.size:
            return self.filters
        if self.global_average:
            return paddle.full([self.channels, h, w], 1.0 / (h * w), dtype="float32")
        ph = paddle.to_tensor(pool_matrix(h, self.size[0]))
        pw = paddle.to_tensor(pool_matrix(w, self.size[1]))
        return paddle.matmul(paddle.matmul(ph, self.filters, transpose_x=True), pw)

    def excitation(self, x: paddle.Tensor) -> paddle.Tensor:
        """The per-channel gate ``[b, c]`` in (0, 1) for a map ``[b, c, h, w]``."""
        h, w = x.shape[2], x.shape[3]
        if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
            bank = self.bank_for(h, w)
        elif self.global_average:  # H, W unknown until run time (a detector's static
            x, bank = F.adaptive_avg_pool2d(x, 1), paddle.ones([self.channels, 1, 1])
        else:  # graph): pool explicitly, which is what the fold computes
            x, bank = F.adaptive_avg_pool2d(x, self.size), self.filters
        s = squeeze(x, bank, self.training)
        return F.sigmoid(self.fc2(F.relu(self.fc1(s))))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        """``x * gate``, gate ``[b, c, 1, 1]`` in (0, 1)."""
        return x * self.excitation(x).unsqueeze([2, 3])

    def extra_repr(self) -> str:
        return f"channels={self.channels}, size={self.size}, squeeze={self.squeeze}"


def create_attention(squeeze: Optional[str], **kwargs) -> Optional[Callable[..., nn.Layer]]:
    """A factory ``(channels, size) -> ChannelAttention`` for blocks, or None when off."""
    if squeeze in (None, "none"):
        return None
    get_filter_bank(squeeze)  # fail early with the list of valid names
    return functools.partial(ChannelAttention, squeeze=squeeze, **kwargs)
