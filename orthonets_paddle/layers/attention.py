"""Channel attention with a pluggable, fixed filter bank.

squeeze (filter bank) -> excitation (FC-ReLU-FC-sigmoid, no biases) -> rescale.
OrthoNet, FcaNet and SENet are this layer with different banks (DESIGN.md).
"""
from __future__ import annotations

import functools
from typing import Callable, Optional, Sequence, Union

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .filter_banks import get_filter_bank
from .fused import rescale_add_relu_lean, scale_channels, squeeze_lean

__all__ = ["ChannelAttention", "create_attention"]


def _pool_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``[n_out, n_in]`` weights of 1-D adaptive average pooling (Paddle's bins)."""
    m = np.zeros((n_out, n_in), dtype=np.float32)
    for i in range(n_out):
        start, end = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        m[i, start:end] = 1.0 / (end - start)
    return m


def _pair(size: Union[int, Sequence[int]]) -> tuple:
    if isinstance(size, int):
        return (size, size)
    h, w = size
    return (int(h), int(w))


class ChannelAttention(nn.Layer):
    """Squeeze-excitation-rescale attention over ``channels`` channels.

    Args:
        channels: number of input (and output) channels.
        size: filter size ``h`` or ``(h, w)``; feature maps of another size are
            adaptive-average-pooled to it before the squeeze.
        squeeze: filter bank name: ``ortho``, ``dct``, ``avg`` or ``random``.
        reduction: the excitation's hidden width is ``round(channels / reduction)``.
        seed: seed of the random banks (``ortho``, ``random``).
        freq_sel: DCT frequency selection (``dct`` only), e.g. ``top16``.
        bank: a ready ``[channels, h, w]`` bank (e.g. built in parallel for a whole
            model); by default it is built from ``squeeze`` and ``seed``.
    """

    def __init__(self, channels: int, size: Union[int, Sequence[int]] = 7, squeeze: str = "ortho",
                 reduction: int = 16, seed: int = 0, freq_sel: str = "top16",
                 bank: Optional[np.ndarray] = None):
        super().__init__()
        bank_fn = get_filter_bank(squeeze)
        if reduction <= 0:
            raise ValueError(f"reduction must be positive, got {reduction}")
        self.channels = channels
        self.size = _pair(size)
        self.squeeze = squeeze
        hidden = max(1, int(round(channels / reduction)))
        self.fc1 = nn.Linear(channels, hidden, bias_attr=False)
        self.fc2 = nn.Linear(hidden, channels, bias_attr=False)
        if squeeze == "avg":
            # A constant 1/(h*w) bank is global average pooling; no buffer needed.
            self.filters = None
        else:
            if bank is None:
                kwargs = {"freq_sel": freq_sel} if squeeze == "dct" else {}
                bank = bank_fn(channels, *self.size, seed=seed, **kwargs)
            elif tuple(bank.shape) != (channels, *self.size):
                raise ValueError(f"bank shape {tuple(bank.shape)} does not fit channels={channels}, "
                                 f"size={self.size}")
            # Persistable buffer: saved with the model, not trained, not counted.
            self.register_buffer("filters", paddle.to_tensor(bank), persistable=True)

    def _lean(self, x: paddle.Tensor) -> bool:
        # The memory-lean backward (layers/fused.py) while training in dygraph, float32.
        return (not x.stop_gradient and paddle.in_dynamic_mode()
                and x.dtype == paddle.float32)

    def squeeze_features(self, x: paddle.Tensor) -> paddle.Tensor:
        """The squeeze alone: ``[b, c, h, w] -> [b, c]``."""
        if self.filters is None:
            return x.mean(axis=[2, 3])
        h, w = x.shape[2], x.shape[3]
        bank = self.filters
        if (h, w) != self.size:
            if not (isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0):
                # Size unknown until run time (a static graph with dynamic H, W).
                x, (h, w) = F.adaptive_avg_pool2d(x, self.size), self.size
            else:
                # Adaptive average pooling is linear, pooled = Ph x Pw^T, so squeezing the
                # pooled map with K equals squeezing x with Ph^T K Pw: no pooling op (which
                # ONNX cannot express when it enlarges), and a small [c, h, w] product.
                ph = paddle.to_tensor(_pool_matrix(h, self.size[0]))
                pw = paddle.to_tensor(_pool_matrix(w, self.size[1]))
                bank = paddle.matmul(paddle.matmul(ph, bank, transpose_x=True), pw)
        if self._lean(x):
            return squeeze_lean(x, bank)
        if not paddle.in_dynamic_mode():
            # Exported graphs: a depthwise conv with full-size kernels, which ONNX Runtime
            # and Paddle Inference run much faster than the batched matmul (measured 0.96
            # vs 0.87 of ResNet-18's throughput in ONNX Runtime).
            s = F.conv2d(x, bank.unsqueeze(1), groups=self.channels)
            return s.reshape([-1, self.channels])
        # A broadcast batched matmul [b, c, 1, hw] @ [c, hw, 1]: no full-size x * K
        # temporary, and 5x faster forward and backward than multiply-then-sum on CPU.
        s = paddle.matmul(x.reshape([-1, self.channels, 1, h * w]),
                          bank.reshape([self.channels, h * w, 1]))
        return s.reshape([-1, self.channels])

    def excitation(self, x: paddle.Tensor) -> paddle.Tensor:
        """Per-channel weights in (0, 1): ``[b, c, h, w] -> [b, c]``."""
        s = self.squeeze_features(x)
        return F.sigmoid(self.fc2(F.relu(self.fc1(s))))

    def forward(self, x: paddle.Tensor, identity: Optional[paddle.Tensor] = None,
                activate: bool = False) -> paddle.Tensor:
        """``x * excitation``; blocks call ``att(x, identity, activate=True)`` for
        ``relu(x * excitation + identity)``, the end of a residual block (``identity``
        None for OrthoNet-MOD). Same values as the plain ops; when training, a
        backward that keeps no extra feature map (layers/fused.py)."""
        e = self.excitation(x)
        if activate and self._lean(x):
            return rescale_add_relu_lean(x, e, identity)
        out = scale_channels(x, e)
        if identity is not None:
            out = out + identity
        return F.relu(out) if activate else out

    def extra_repr(self) -> str:
        return f"channels={self.channels}, size={self.size}, squeeze={self.squeeze}"


def create_attention(squeeze: Optional[str], **kwargs) -> Optional[Callable[..., nn.Layer]]:
    """A factory ``(channels, size) -> layer`` for blocks, or None when off."""
    if squeeze in (None, "none"):
        return None
    get_filter_bank(squeeze)  # fail early with the list of valid names
    return functools.partial(ChannelAttention, squeeze=squeeze, **kwargs)
