"""PaddleDetection 2.6 on Paddle 3.3 with numpy >= 2.4.

Paddle converts a one-element tensor to a Python number (``int(t)``, ``float(t)``,
``range(t)``) with ``int(np.array(t))``; numpy 2.4 refuses that for a 1-D array
("only 0-dimensional arrays can be converted to Python scalars"). Paddle 3 mostly
returns 0-D tensors, but PaddleDetection 2.6 (the last release) still makes shape-[1]
ones, e.g. the batch size in its RPN head. Paddle's own contract is "one element can
be converted" (it asserts numel == 1), so the patch below keeps that contract and
only reads the element as a 0-D array. It is applied when importing
``orthonets_paddle.det`` and only if this Paddle/numpy pair needs it.
"""
from __future__ import annotations

import functools

import numpy as np
import paddle

__all__ = ["needs_scalar_patch", "patch_scalar_conversions", "patch_concat_0d", "apply"]


def needs_scalar_patch() -> bool:
    """True if ``int()`` of a shape-[1] tensor fails here."""
    try:
        int(paddle.to_tensor([1]))
    except TypeError:
        return True
    return False


def _element(var) -> np.ndarray:
    numel = int(np.prod(var.shape))
    if numel != 1:
        raise TypeError(f"only a one-element tensor converts to a Python number, got shape {list(var.shape)}")
    if var.dtype in (paddle.bfloat16,):
        var = var.astype("float32")
    return np.asarray(var).reshape(())


def patch_scalar_conversions() -> bool:
    """Make ``int``/``float``/``__index__`` of one-element tensors work again.

    Returns:
        True if the patch was applied (it is applied at most once, and not at all
        where Paddle already converts shape-[1] tensors).
    """
    if not needs_scalar_patch():
        return False
    tensor = type(paddle.to_tensor([1]))
    tensor.__int__ = lambda var: int(_element(var))
    tensor.__index__ = lambda var: int(_element(var))
    tensor.__float__ = lambda var: float(_element(var))
    return True


def patch_concat_0d() -> bool:
    """``paddle.concat`` of 0-D tensors: Paddle 3 raises (no axis to join on); Paddle 2.4,
    which PaddleDetection 2.6 was written for, had shape-[1] tensors there (e.g.
    ``paddle.shape(x)[0]``). Joining them as shape-[1] tensors gives its old result and
    changes no call that works on Paddle 3."""
    if getattr(paddle.concat, "_orthonets_0d", False):
        return False
    try:
        paddle.concat([paddle.to_tensor(1), paddle.to_tensor(2)])
        return False  # this Paddle joins 0-D tensors itself
    except ValueError:
        pass
    original = paddle.concat

    def as_1d(x):
        if isinstance(x, (list, tuple)) and any(
                isinstance(t, paddle.Tensor) and t.ndim == 0 for t in x):
            return [t.reshape([1]) if isinstance(t, paddle.Tensor) and t.ndim == 0 else t for t in x]
        return x

    @functools.wraps(original)
    def concat(*args, **kwargs):
        # the tensors come first, or by name (Paddle's ``x`` or its alias ``tensors``)
        if args:
            args = (as_1d(args[0]),) + args[1:]
        for key in ("x", "tensors"):
            if key in kwargs:
                kwargs[key] = as_1d(kwargs[key])
        return original(*args, **kwargs)

    concat._orthonets_0d = True
    paddle.concat = concat
    return True


def apply() -> None:
    """All patches PaddleDetection 2.6 needs on this Paddle (each at most once)."""
    patch_scalar_conversions()
    patch_concat_0d()
