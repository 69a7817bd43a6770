"""PaddleDetection 2.6 (written for Paddle 2.4) on Paddle 3.3 with numpy >= 2.4.

Two Paddle 2.4 behaviours it relies on are restored, each only where this Paddle lacks it:
``int``/``float``/``index`` of a shape-[1] tensor (Paddle goes through ``int(np.array(t))``,
which numpy 2.4 refuses for 1-D arrays; e.g. the batch size in its RPN head), and
``paddle.concat`` of 0-D tensors (Paddle 2.4's ``paddle.shape(x)[0]`` was shape [1]).
"""
from __future__ import annotations

import functools

import paddle

__all__ = ["apply"]


def _number(var):
    if var.size != 1:  # Paddle's own contract: only one element converts
        raise TypeError(f"only a one-element tensor converts to a Python number, "
                        f"got shape {list(var.shape)}")
    return var.item()


def _as_1d(x):
    if isinstance(x, (list, tuple)):
        return [t.reshape([1]) if isinstance(t, paddle.Tensor) and t.ndim == 0 else t for t in x]
    return x


def apply() -> None:
    """Apply the patches this Paddle needs (each at most once)."""
    try:
        int(paddle.to_tensor([1]))
    except TypeError:
        tensor = paddle.Tensor
        tensor.__int__ = tensor.__index__ = lambda var: int(_number(var))
        tensor.__float__ = lambda var: float(_number(var))
    try:
        paddle.concat([paddle.to_tensor(1), paddle.to_tensor(2)])
    except ValueError:
        original = paddle.concat

        @functools.wraps(original)
        def concat(*args, **kwargs):
            # the tensors come first, or by name (``x`` or its alias ``tensors``)
            args = (_as_1d(args[0]),) + args[1:] if args else args
            kwargs.update({k: _as_1d(kwargs[k]) for k in ("x", "tensors") if k in kwargs})
            return original(*args, **kwargs)

        paddle.concat = concat
