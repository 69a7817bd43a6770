"""PaddleClas's batch ops (``batch_transform_ops``): Mixup, Cutmix and OpSampler, as its
``batch_operators.py``: ``(CHW image, int label)`` samples in, mixed images and float32
``[class_num]`` soft labels out; ``class_num`` is ``Arch.class_num``, passed by the loader.
"""
from __future__ import annotations

import functools
import inspect
import random
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..utils.hints import did_you_mean

__all__ = ["BATCH_TRANSFORMS", "MixupOperator", "CutmixOperator", "OpSampler",
           "build_batch_transforms", "batch_transform_params"]

Sample = Tuple[Any, Any]


def _need_class_num(class_num: Optional[int], op: str) -> int:
    if not class_num or int(class_num) < 1:
        raise ValueError(f"{op} makes soft labels of Arch.class_num classes; set Arch.class_num "
                         f"in the config")
    return int(class_num)


class _BatchOp:
    def __init__(self, class_num: Optional[int], alpha: float):
        name = type(self).__name__
        if not alpha > 0:
            raise ValueError(f"{name}.alpha must be > 0, got {alpha!r}")
        self.class_num, self.alpha = _need_class_num(class_num, name), float(alpha)

    def _unpack(self, batch: List[Sample]) -> Tuple[np.ndarray, np.ndarray]:
        imgs = np.stack([np.asarray(s[0]) for s in batch])
        labels = np.asarray([np.asarray(s[1]).reshape(-1)[0] for s in batch], dtype=np.int64)
        if labels.size and (labels.min() < 0 or labels.max() >= self.class_num):
            raise ValueError(f"{type(self).__name__}: label {labels.max()} is outside "
                             f"[0, {self.class_num}) (Arch.class_num); set Arch.class_num to the "
                             f"dataset's class count")
        return imgs, labels

    def _mix_target(self, a: np.ndarray, b: np.ndarray, lam: float) -> np.ndarray:
        eye = np.eye(self.class_num, dtype=np.float32)
        return (eye[a] * lam + eye[b] * (1 - lam)).astype(np.float32)


class MixupOperator(_BatchOp):
    """Mixup (arXiv 1710.09412): ``lam * x + (1 - lam) * x[perm]`` (labels too), one
    ``lam ~ Beta(alpha, alpha)`` per batch."""

    def __init__(self, class_num: Optional[int] = None, alpha: float = 1.0):
        super().__init__(class_num, alpha)

    def __call__(self, batch: List[Sample]) -> List[Sample]:
        imgs, labels = self._unpack(batch)
        idx = np.random.permutation(len(batch))
        lam = np.random.beta(self.alpha, self.alpha)
        mixed = (lam * imgs + (1 - lam) * imgs[idx]).astype(np.float32)
        return list(zip(mixed, self._mix_target(labels, labels[idx], lam)))


class CutmixOperator(_BatchOp):
    """CutMix (arXiv 1905.04899): a box of sides ``int(side * sqrt(1 - lam))``, ``lam ~
    Beta(alpha, alpha)``, pasted from ``x[perm]``; the label weight is the kept area."""

    def __init__(self, class_num: Optional[int] = None, alpha: float = 0.2):
        super().__init__(class_num, alpha)

    def __call__(self, batch: List[Sample]) -> List[Sample]:
        imgs, labels = self._unpack(batch)
        if imgs.ndim != 4:
            raise ValueError("CutmixOperator needs CHW images (put ToTensor or NormalizeImage "
                             "in transform_ops)")
        idx = np.random.permutation(len(batch))
        lam = np.random.beta(self.alpha, self.alpha)
        w, h = imgs.shape[2:]
        cut_w, cut_h = int(w * np.sqrt(1. - lam)), int(h * np.sqrt(1. - lam))
        cx, cy = np.random.randint(w), np.random.randint(h)
        x1, x2 = np.clip([cx - cut_w // 2, cx + cut_w // 2], 0, w)
        y1, y2 = np.clip([cy - cut_h // 2, cy + cut_h // 2], 0, h)
        imgs[:, :, x1:x2, y1:y2] = imgs[idx, :, x1:x2, y1:y2]
        lam = 1 - (float(x2 - x1) * (y2 - y1) / (imgs.shape[-2] * imgs.shape[-1]))
        return list(zip(imgs, self._mix_target(labels, labels[idx], lam)))


class OpSampler:
    """One listed op per batch, each with its ``prob`` (``random.choices``); with ``1 -
    sum(prob)`` the batch is left as it is: ``{OpSampler: {MixupOperator: {alpha: 0.8, prob:
    0.5}, CutmixOperator: {alpha: 1.0, prob: 0.5}}}``."""

    def __init__(self, class_num: Optional[int] = None, **op_dict: Dict[str, Any]):
        class_num = _need_class_num(class_num, "OpSampler")
        self.ops: Dict[Optional[Callable], float] = {}
        for name, params in op_dict.items():
            if name not in _SAMPLED:
                raise ValueError(f"OpSampler: unknown op {name!r}; valid: {sorted(_SAMPLED)}")
            params = dict(params or {})
            prob = float(params.pop("prob", 0))
            self.ops[_build(name, params, class_num)] = prob
        total = sum(self.ops.values())
        if total > 1 + 1e-9:
            raise ValueError(f"OpSampler: the probs add up to {total}, more than 1; lower them")
        self.ops[None] = max(0.0, 1 - total)

    def __call__(self, batch: List[Sample]) -> List[Sample]:
        op = random.choices(list(self.ops), weights=list(self.ops.values()), k=1)[0]
        return op(batch) if op else batch


_SAMPLED = {"MixupOperator": MixupOperator, "CutmixOperator": CutmixOperator}
BATCH_TRANSFORMS: Dict[str, type] = {**_SAMPLED, "OpSampler": OpSampler}


def batch_transform_params(name: str) -> List[str]:
    """Valid config keys of batch op ``name`` (OpSampler's: op names); ValueError if
    unknown."""
    if name not in BATCH_TRANSFORMS:
        raise ValueError(f"unknown batch transform {name!r}; {did_you_mean(name, BATCH_TRANSFORMS)}"
                         f"valid: {sorted(BATCH_TRANSFORMS)}")
    if name == "OpSampler":
        return sorted(_SAMPLED)
    params = inspect.signature(BATCH_TRANSFORMS[name].__init__).parameters
    return [p for p in params if p not in ("self", "class_num")]


def _build(name: str, params: Dict[str, Any], class_num: Optional[int]) -> Callable:
    valid = batch_transform_params(name)
    if name != "OpSampler":
        for key in params:
            if key not in valid:
                raise ValueError(f"batch transform {name}: unknown parameter {key!r}; "
                                 f"{did_you_mean(key, valid)}valid parameters: {valid}")
    return BATCH_TRANSFORMS[name](class_num=class_num, **params)


def build_batch_transforms(ops: Optional[Sequence[Any]], class_num: Optional[int] = None
                           ) -> Optional[Callable[[List[Sample]], List[Sample]]]:
    """``batch_transform_ops`` (``[{Name: {params}}]``) -> one callable on a list of samples,
    or None for an empty list; ValueError for an unknown op or parameter, or no class_num."""
    if not ops:
        return None
    if not isinstance(ops, (list, tuple)):
        raise ValueError(f"batch_transform_ops must be a list, got {type(ops).__name__}")
    built = []
    for entry in ops:
        if not (isinstance(entry, dict) and len(entry) == 1):
            raise ValueError("each batch_transform_ops entry must be a one-key mapping like "
                             "'- MixupOperator: {alpha: 0.2}'")
        name, params = next(iter(entry.items()))
        if params is not None and not isinstance(params, dict):
            raise ValueError(f"batch transform {name}: parameters must be a mapping")
        built.append(_build(str(name), dict(params or {}), class_num))
    return lambda batch: functools.reduce(lambda b, op: op(b), built, batch)
