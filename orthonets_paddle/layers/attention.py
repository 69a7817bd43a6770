"""Channel attention with a fixed filter bank: squeeze, excitation, rescale.

    s[b, c] = sum_hw K[c, h, w] * X[b, c, h, w]          squeeze (K: the filter bank)
    g[b, c] = sigmoid(W2 relu(W1 s[b]))                   excitation, no biases (OrthoNet,
                                                          FcaNet; SENet's has b1, b2)
    out     = X * g[:, :, None, None]                     rescale

OrthoNet, FcaNet and SENet are this layer with different banks (``filter_banks.py``).
``att(x)`` returns ``x * g`` in training and evaluation, like timm's SE module; the
block that owns it does the residual add and the ReLU.
"""
from __future__ import annotations

import functools
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .filter_banks import BankFn, get_filter_bank

__all__ = ["ChannelAttention", "create_attention", "pool_matrix", "squeeze_gemm", "squeeze_reference"]


def squeeze_reference(x: paddle.Tensor, bank: paddle.Tensor) -> paddle.Tensor:
    """The formula: ``s[b, c] = sum_hw K[c, h, w] * X[b, c, h, w]`` (tests' reference)."""
    return (x * bank.unsqueeze(0)).sum([2, 3])


def squeeze_gemm(x: paddle.Tensor, bank: paddle.Tensor, training: bool = False,
                 keepdim: bool = False) -> paddle.Tensor:
    """``squeeze_reference``, in the fastest form for where it runs.

    Dygraph, and traced for training (``to_static``, ``training=True``): one broadcast
    batched matmul ``[b, c, 1, hw] @ [c, 1, hw]^T`` (a GEMM; on CPU 2-20x faster than
    multiply-and-sum, more than the full-size depthwise conv, whose backward is slow). A
    traced inference program (export): a depthwise conv whose kernel is the whole filter
    (``groups=c``, ``[b, c, h, w] -> [b, c, 1, 1]``). Exported, it needs no full-size
    ``x * K`` temporary and no reshape of ``x``, and keeps ``x`` in the runtimes' blocked
    conv layout (oneDNN, ONNX Runtime's NCHWc): Paddle Inference 1.1-1.2x faster per model
    than multiply-and-sum, ONNX Runtime the same (docs/PERFORMANCE.md); ONNX Runtime's
    broadcast MatMul is 2-20x slower. GPU: not measured. ``[b, c]``, or ``[b, c, 1, 1]``
    with ``keepdim``."""
    c, h, w = bank.shape
    shape = [-1, c, 1, 1] if keepdim else [-1, c]
    if training or paddle.in_dynamic_mode():
        # K as [c, 1, hw] with transpose_y: 5-12x faster on CPU than K as [c, hw, 1].
        return paddle.matmul(x.reshape([-1, c, 1, h * w]), bank.reshape([c, 1, h * w]),
                             transpose_y=True).reshape(shape)
    s = F.conv2d(x, bank.unsqueeze(1), groups=c)
    return s if keepdim else s.reshape(shape)


def _linear_1x1(s: paddle.Tensor, layer: nn.Linear) -> paddle.Tensor:
    """``layer`` on ``[b, in, 1, 1]`` as the 1x1 conv with its weights (``[in, out]``)."""
    return F.conv2d(s, layer.weight.transpose([1, 0]).unsqueeze([2, 3]), bias=layer.bias)


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
        self._fold: Dict[Tuple[int, int], Tuple[paddle.Tensor, paddle.Tensor]] = {}

    def bank_for(self, h: int, w: int) -> paddle.Tensor:
        """The filters that squeeze an ``h x w`` map: ``K`` itself at the filter size,
        otherwise ``Ph^T K Pw`` with ``Ph``, ``Pw`` the adaptive-pooling matrices.

        Pooling is linear, so squeezing the pooled map with ``K`` equals squeezing the
        map with the folded filters: no pooling op (ONNX cannot express an enlarging
        adaptive pool, which 224-px inputs to 256-px models need)."""
        if (h, w) == self.size:
            return self.filters
        if self.global_average:
            return paddle.full([self.channels, h, w], 1.0 / (h * w), dtype="float32")
        if not paddle.in_dynamic_mode():  # traced once into the static program
            ph, pw = self._pool_matrices(h, w)
        else:  # the matrices are cached per size, not the product: K may be reloaded
            if (h, w) not in self._fold:
                self._fold[(h, w)] = self._pool_matrices(h, w)
            ph, pw = self._fold[(h, w)]
        return paddle.matmul(paddle.matmul(ph, self.filters, transpose_x=True), pw)

    def _pool_matrices(self, h: int, w: int) -> Tuple[paddle.Tensor, paddle.Tensor]:
        return (paddle.to_tensor(pool_matrix(h, self.size[0])),
                paddle.to_tensor(pool_matrix(w, self.size[1])))

    def excite(self, s: paddle.Tensor) -> paddle.Tensor:
        """Excitation logits ``W2 relu(W1 s)`` (plus biases when built with ``bias``):
        ``[b, c] -> [b, c]``, or ``[b, c, 1, 1] -> [b, c, 1, 1]`` as the same layers'
        1x1 convs (before the sigmoid)."""
        if len(s.shape) == 4:
            return _linear_1x1(F.relu(_linear_1x1(s, self.fc1)), self.fc2)
        return self.fc2(F.relu(self.fc1(s)))

    def excitation(self, x: paddle.Tensor, keepdim: bool = False) -> paddle.Tensor:
        """The per-channel gate in (0, 1): ``[b, c, h, w] -> [b, c]`` (``[b, c, 1, 1]``
        with ``keepdim``)."""
        h, w = x.shape[2], x.shape[3]
        if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
            bank = self.bank_for(h, w)
        else:  # H, W unknown until run time (a static graph with dynamic sizes, e.g. a
            # detector): pool explicitly; SENet's global mean is pooling to 1x1.
            x, bank = ((F.adaptive_avg_pool2d(x, 1), paddle.ones([self.channels, 1, 1]))
                       if self.global_average else (F.adaptive_avg_pool2d(x, self.size), self.filters))
        if self.training or paddle.in_dynamic_mode():
            gate = F.sigmoid(self.excite(squeeze_gemm(x, bank, self.training)))
            return gate.unsqueeze([2, 3]) if keepdim else gate
        # Traced for inference (export): squeeze and excitation stay [b, c, 1, 1], as convs
        # with no reshape between them; Paddle Inference pays per op at small batches
        # (b1: 0.86-0.87 of ResNet-18's speed against 0.79 with reshapes and matmuls).
        gate = F.sigmoid(self.excite(squeeze_gemm(x, bank, keepdim=True)))
        return gate if keepdim else gate.reshape([-1, self.channels])

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        """``x * gate``, gate ``[b, c, 1, 1]`` in (0, 1)."""
        return x * self.excitation(x, keepdim=True)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, size={self.size}, squeeze={self.squeeze}"


def create_attention(squeeze: Optional[str], **kwargs) -> Optional[Callable[..., nn.Layer]]:
    """A factory ``(channels, size) -> ChannelAttention`` for blocks, or None when off."""
    if squeeze in (None, "none"):
        return None
    get_filter_bank(squeeze)  # fail early with the list of valid names
    return functools.partial(ChannelAttention, squeeze=squeeze, **kwargs)
