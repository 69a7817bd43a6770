"""Atomic checkpoints with the seed's file names, and resuming."""
from __future__ import annotations

import os
from typing import Any, Dict, Optional

import paddle

__all__ = ["atomic_save", "save_checkpoint", "resolve_checkpoint", "load_checkpoint",
           "CheckpointError"]


class CheckpointError(RuntimeError):
    """A resume checkpoint is missing or unreadable."""


def atomic_save(obj: Any, path: str) -> None:
    """``paddle.save`` to a temporary file, then rename: a crash never leaves a
    half-written file in place of a good one."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        paddle.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_checkpoint(prefix: str, model: paddle.nn.Layer, optimizer=None,
                    states: Optional[Dict[str, Any]] = None) -> None:
    """Write ``prefix.pdparams`` (+ ``.pdopt``, ``.pdstates``). The states file is
    written last, so a resume reads it only when the weights before it are complete."""
    atomic_save(model.state_dict(), prefix + ".pdparams")
    if optimizer is not None:
        atomic_save(optimizer.state_dict(), prefix + ".pdopt")
    if states is not None:
        atomic_save(states, prefix + ".pdstates")


def resolve_checkpoint(path: str) -> str:
    """``Global.checkpoints`` may be an output directory (uses its ``latest``) or a
    prefix such as ``output/run/epoch_10`` (``.pdparams`` suffix optional)."""
    path = str(path)
    if os.path.isdir(path):
        path = os.path.join(path, "latest")
    for suffix in (".pdparams", ".pdstates", ".pdopt"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
    needed = [path + s for s in (".pdparams", ".pdopt", ".pdstates")]
    missing = [p for p in needed if not os.path.isfile(p)]
    if missing:
        raise CheckpointError(
            f"cannot resume from {path}: missing {', '.join(missing)}. Global.checkpoints takes a "
            "run's output directory (resumes from its latest.*) or a checkpoint prefix such as "
            "output/run/epoch_10; to start from weights only, use Global.pretrained_model")
    return path


def load_checkpoint(path: str) -> Dict[str, Any]:
    """Read a resume checkpoint: ``{'model', 'optimizer', 'states', 'prefix'}``."""
    prefix = resolve_checkpoint(path)
    out = {"prefix": prefix}
    for key, suffix in (("model", ".pdparams"), ("optimizer", ".pdopt"), ("states", ".pdstates")):
        try:
            out[key] = paddle.load(prefix + suffix)
        except Exception as exc:
            raise CheckpointError(f"cannot read {prefix + suffix} ({type(exc).__name__}: {exc}); "
                                  "it may be truncated: resume from an epoch_N checkpoint "
                                  "instead") from None
    return out
