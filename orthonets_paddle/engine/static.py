"""``Global.to_static: true``: train the model as a traced static program (PaddleClas's key).

PaddleClas wraps its model with ``paddle.jit.to_static`` when the key is set; so does this.
The conversion traces the same layers, so the values are dygraph's up to float32 rounding
(tests/test_static.py).
"""
from __future__ import annotations

import paddle

__all__ = ["apply_to_static"]


def apply_to_static(model: paddle.nn.Layer, enabled: bool) -> paddle.nn.Layer:
    """``model`` with its forward converted by ``paddle.jit.to_static`` when ``enabled``.

    ``full_graph=True``: a graph break would silently fall back to dygraph for part of the
    model, so an unconvertible model fails at its first batch instead. Parameters, buffers
    and ``state_dict`` are the model's own: checkpoints load either way."""
    if not isinstance(enabled, bool):
        raise TypeError(f"Global.to_static must be true or false, got {enabled!r}")
    if not enabled:
        return model
    return paddle.jit.to_static(model, full_graph=True)
