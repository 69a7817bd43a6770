"""Image pipelines from config lists: ``paddle.vision.transforms`` as it is, or PaddleClas's ops.

A list holding any op only PaddleClas has (``clas_ops.CLAS_OPS``) is a PaddleClas pipeline:
there ``ColorJitter``/``RandomRotation`` mean PaddleClas's versions, and an image still HWC
at the end is transposed to CHW as PaddleClas's dataset does. Random draws are the
libraries' own, so a seeded run draws what the seed's or PaddleClas's pipeline draws.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import paddle.vision.transforms as T

from ..utils.hints import did_you_mean
from .clas_ops import CLAS_OPS, CLAS_OVERRIDES, CLAS_UNSUPPORTED

__all__ = ["TRANSFORMS", "BACKENDS", "Compose", "ToTensor", "build_transforms",
           "transform_params", "is_clas_pipeline"]

BACKENDS = ("cv2", "pil")  # the image types Paddle's transforms dispatch on
# Errors that ``type(err)(message)`` rebuilds (an OSError's errno would be lost).
_REBUILDABLE = (ValueError, TypeError, IndexError, KeyError, AssertionError, ZeroDivisionError,
                AttributeError, RuntimeError)


class ToTensor(T.ToTensor):
    """Paddle's ``ToTensor`` values as a numpy array (collate makes one tensor per batch)."""

    def _apply_image(self, img: Any) -> np.ndarray:
        arr = np.asarray(img)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if self.data_format == "CHW":
            arr = arr.transpose((2, 0, 1))
        if arr.dtype == np.uint8:
            return arr.astype(np.float32) / np.float32(255.0)
        return np.ascontiguousarray(arr)


TRANSFORMS: Dict[str, type] = {
    **{n: getattr(T, n) for n in T.__all__ if isinstance(getattr(T, n), type)
       and issubclass(getattr(T, n), T.BaseTransform) and n != "BaseTransform"},
    "ToTensor": ToTensor, **CLAS_OPS}


def _check_normalize(op: T.Normalize, img: Any) -> None:
    # Paddle broadcasts 3 means over a 1-channel image into 3 channels; refuse that instead.
    shape = getattr(img, "shape", None)
    if shape is None or len(shape) != 3:
        return
    c = int(shape[0] if op.data_format == "CHW" else shape[-1])
    if len(op.mean) not in (1, c) or len(op.std) not in (1, c):
        raise ValueError(f"Normalize has {len(op.mean)} mean / {len(op.std)} std values but the "
                         f"image has {c} channel(s); give {c} values, e.g. mean: "
                         f"{[0.5] * c}")


class Compose:
    """Apply ops in order (Paddle's ``Compose`` without its stack print); ``chw_at_end``:
    transpose an HWC result to CHW (PaddleClas's dataset step)."""

    def __init__(self, ops: Sequence[Callable], chw_at_end: bool = False):
        self.ops, self.chw_at_end = list(ops), chw_at_end

    def __call__(self, img: Any) -> Any:
        for i, op in enumerate(self.ops):
            if isinstance(op, T.Normalize):
                _check_normalize(op, img)
            try:
                img = op(img)
            except Exception as err:  # noqa: BLE001  name the op: the config has a list of them
                if type(err) not in _REBUILDABLE:
                    raise
                raise type(err)(f"transform_ops[{i}] {type(op).__name__}: {err}") from err
        if self.chw_at_end:
            img = np.asarray(img).transpose((2, 0, 1))
        return img

    def __repr__(self) -> str:
        names = ", ".join(type(op).__name__ for op in self.ops)
        return f"Compose([{names}]{', then HWC->CHW' if self.chw_at_end else ''})"


def _parse_entry(entry: Any) -> Tuple[str, dict]:
    if isinstance(entry, str):
        return entry, {}
    if isinstance(entry, dict) and len(entry) == 1:
        name, params = next(iter(entry.items()))
        params = {} if params is None else params
        if not isinstance(params, dict):
            raise ValueError(f"transform {name!r}: parameters must be a mapping like "
                             f"{{size: 32}}, got a {type(params).__name__}")
        return str(name), params
    raise ValueError(f"each transform_ops entry must be an op name or a one-key mapping "
                     f"'- OpName: {{param: value}}', got a {type(entry).__name__}")


def _names(ops: Optional[Sequence[Any]]) -> List[str]:
    if not ops:
        return []
    if not isinstance(ops, (list, tuple)):
        raise ValueError(f"transform_ops must be a list of ops, got {type(ops).__name__}")
    return [_parse_entry(e)[0] for e in ops]


def is_clas_pipeline(ops: Optional[Sequence[Any]]) -> bool:
    """True when the list holds an op only PaddleClas has (see the module docstring)."""
    return any(name in CLAS_OPS for name in _names(ops))


def _lookup(name: str, clas: bool) -> type:
    if clas and name in CLAS_OVERRIDES:
        return CLAS_OVERRIDES[name]
    if clas and name in CLAS_UNSUPPORTED:
        raise ValueError(f"transform {name}: PaddleClas's own {name} differs from "
                         f"paddle.vision.transforms.{name} and is not implemented here; remove "
                         f"it, or use a pipeline of paddle.vision.transforms names only")
    if name not in TRANSFORMS:
        raise ValueError(f"unknown transform {name!r}; {did_you_mean(name, TRANSFORMS)}valid "
                         f"transforms: {sorted(TRANSFORMS)}")
    return TRANSFORMS[name]


def transform_params(name: str, clas: Optional[bool] = None) -> List[str]:
    """Valid keywords of transform ``name`` as a Paddle op (``clas=False``), in a PaddleClas
    pipeline (True), or either (None: the union); ValueError for an unknown name."""
    if clas is None:
        names = transform_params(name, False)
        extra = transform_params(name, True) if name in CLAS_OVERRIDES else []
        return names + [p for p in extra if p not in names]
    params = inspect.signature(_lookup(name, clas).__init__).parameters
    return [p for p, v in params.items() if p not in ("self", "keys")
            and v.kind not in (v.VAR_POSITIONAL, v.VAR_KEYWORD)]


def _check_mean_std(name: str, op: Any) -> None:
    # a zero std divides by zero: inf/NaN inputs, which trained "fine" (issue 20's re-probe)
    for key in ("mean", "std"):
        try:
            values = np.asarray(getattr(op, key), dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise ValueError(f"transform {name}: {key} must be numbers, got "
                             f"{getattr(op, key)!r}") from None
        if not np.isfinite(values).all() or (key == "std" and (values <= 0).any()):
            want = "positive numbers" if key == "std" else "finite numbers"
            raise ValueError(f"transform {name}: {key} must be {want}, got {values.tolist()}; "
                             f"e.g. {key}: [0.5, 0.5, 0.5]")


def build_transforms(ops: Optional[Sequence[Any]], backend: Optional[str] = None
                     ) -> Optional[Compose]:
    """A ``Compose`` from a list such as ``[{"RandomCrop": {"size": 32}}, "ToTensor"]``, or
    None for an empty one; ``backend`` is only checked (the image type picks Paddle's
    functions). ValueError names the nearest op or the valid parameters."""
    if backend not in (None, *BACKENDS):
        raise ValueError(f"unknown transform backend {backend!r}; valid: {list(BACKENDS)}")
    names = _names(ops)
    if not names:
        return None
    clas = is_clas_pipeline(ops)
    built, layout = [], "hwc"
    for entry in ops:
        name, params = _parse_entry(entry)
        cls = _lookup(name, clas)
        valid = transform_params(name, clas)
        for key in params:
            if key not in valid:
                raise ValueError(f"transform {name}: unknown parameter {key!r}; "
                                 f"{did_you_mean(key, valid)}valid parameters of {name}: {valid}")
        try:
            op = cls(**params)
        except (TypeError, ValueError, AssertionError) as err:
            raise ValueError(f"transform {name}: {err}; valid parameters of {name}: "
                             f"{valid}") from None
        if isinstance(op, T.Normalize) or name == "NormalizeImage":
            _check_mean_std(name, op)
        built.append(op)
        if getattr(op, "layout", None):
            layout = op.layout
        elif isinstance(op, (T.ToTensor, T.Transpose)):
            layout = "chw" if getattr(op, "data_format", "CHW") == "CHW" else "hwc"
    return Compose(built, chw_at_end=clas and layout == "hwc")

