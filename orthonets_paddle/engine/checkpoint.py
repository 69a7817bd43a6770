"""Atomic checkpoints with the seed's file names, and resuming."""
from __future__ import annotations

import os
import pickle
from typing import Any, Dict, Optional

import paddle

from ..utils.io import atomic_write

__all__ = ["atomic_save", "save_checkpoint", "optimizer_state", "load_optimizer_state", "resolve_checkpoint", "load_checkpoint",
           "load_states", "CheckpointError"]


class CheckpointError(RuntimeError):
    """A resume checkpoint is missing or unreadable."""


def _pickle(obj: Any, path: str) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=4)


def atomic_save(obj: Any, path: str, writer=None) -> None:
    """``paddle.save`` (or ``writer(obj, path)``) through ``utils.io.atomic_write``."""
    atomic_write(path, lambda tmp: (writer or paddle.save)(obj, tmp))


def _rename(state: Dict[str, Any], mapping: Dict[str, str]) -> Dict[str, Any]:
    out = {}
    for key, value in state.items():
        for old, new in mapping.items():
            if isinstance(key, str) and key.startswith(old + "_"):
                key = new + key[len(old):]
                break
        out[key] = value
    return out


def optimizer_state(model: paddle.nn.Layer, optimizer) -> Dict[str, Any]:
    """The optimizer's state keyed by structured parameter names (``layer1.0.conv1.weight``)
    instead of Paddle's global counters (``conv2d_80.w_0``), which differ between
    processes: the saved state then loads into any freshly built copy of the model."""
    names = {p.name: n for n, p in model.named_parameters()}
    state = optimizer.state_dict()
    if "master_weights" in state:
        state["master_weights"] = {names.get(k, k): v for k, v in state["master_weights"].items()}
    return _rename(state, names)


def load_optimizer_state(model: paddle.nn.Layer, optimizer, state: Dict[str, Any]) -> None:
    """Inverse of ``optimizer_state``."""
    names = {n: p.name for n, p in model.named_parameters()}
    state = dict(state)
    if "master_weights" in state:
        state["master_weights"] = {names.get(k, k): v for k, v in state["master_weights"].items()}
    # Longest first so 'layer1.0.conv1.weight' is not matched by a shorter name's prefix.
    optimizer.set_state_dict(_rename(state, dict(sorted(names.items(), key=lambda kv: -len(kv[0])))))


def save_checkpoint(prefix: str, model: paddle.nn.Layer, optimizer=None,
                    states: Optional[Dict[str, Any]] = None) -> None:
    """Write ``prefix.pdparams`` (+ ``.pdopt``, ``.pdstates``). The states file is
    written last, so a resume reads it only when the weights before it are complete."""
    atomic_save(model.state_dict(), prefix + ".pdparams")
    if optimizer is not None:
        atomic_save(optimizer_state(model, optimizer), prefix + ".pdopt")
    if states is not None:
        # Plain pickle: RNG states hold arrays (uint32) that paddle.save cannot store.
        atomic_save(states, prefix + ".pdstates", writer=_pickle)


def load_states(path: str) -> Dict[str, Any]:
    """Read a ``.pdstates`` file (epoch, best metric, scheduler, RNG states, records)."""
    with open(path, "rb") as f:
        return pickle.load(f)


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
            out[key] = (load_states if key == "states" else paddle.load)(prefix + suffix)
        except Exception as exc:
            raise CheckpointError(f"cannot read {prefix + suffix} ({type(exc).__name__}: {exc}); "
                                  "it may be truncated: resume from an epoch_N checkpoint "
                                  "instead") from None
    return out
