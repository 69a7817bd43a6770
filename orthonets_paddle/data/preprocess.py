"""Evaluation preprocessing from a model's ``pretrained_cfg``, as timm's
``resolve_data_config`` / ``create_transform``, built on ``paddle.vision.transforms``: the
shorter side resized to ``floor(size / crop_pct)``, then a centre crop of ``size``, so any
image gives the model the ``input_size`` it was exported at.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Sequence

__all__ = ["DATA_CFG_KEYS", "INTERPOLATIONS", "resolve_data_config", "transform_ops",
           "create_transform", "normalize_of"]

DATA_CFG_KEYS = ("input_size", "interpolation", "mean", "std", "crop_pct")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "box", "lanczos", "hamming")  # PIL's
_DEFAULTS = {"input_size": (3, 224, 224), "interpolation": "bilinear",
             "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "crop_pct": 0.875}


def resolve_data_config(args: Optional[Dict[str, Any]] = None, model: Any = None,
                        pretrained_cfg: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The eval data settings of a model: explicit settings over its ``pretrained_cfg``
    over the defaults.

    Args:
        args: explicit settings (``None`` values are ignored), e.g. ``{"input_size":
            (1, 28, 28), "mean": [0.286], "std": [0.353]}``; ``input_size`` may be an int.
        model: a model with ``pretrained_cfg`` (used when ``pretrained_cfg`` is None).
        pretrained_cfg: the model's metadata (``get_pretrained_cfg`` or ``model.pretrained_cfg``).

    Returns:
        ``{"input_size": (c, h, w), "interpolation", "mean", "std", "crop_pct"}``.

    Raises:
        ValueError: a setting is out of range (the message names it and the fix).
    """
    if pretrained_cfg is None and model is not None:
        pretrained_cfg = getattr(model, "pretrained_cfg", None)
    out = dict(_DEFAULTS)
    for source in (pretrained_cfg or {}, args or {}):
        out.update({k: source[k] for k in DATA_CFG_KEYS if source.get(k) is not None})
    size = out["input_size"]
    if isinstance(size, int) and not isinstance(size, bool):
        chans = (pretrained_cfg or {}).get("input_size", _DEFAULTS["input_size"])[0]
        size = (chans, size, size)
    if (not isinstance(size, (list, tuple)) or len(size) != 3
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in size)):
        raise ValueError(f"input_size must be (channels, height, width) of positive integers, "
                         f"got {size!r}; e.g. Global.image_shape=[3, 224, 224]")
    out["input_size"] = tuple(size)
    if out["interpolation"] not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {out['interpolation']!r}; valid: "
                         f"{', '.join(INTERPOLATIONS)}")
    crop = out["crop_pct"]
    if isinstance(crop, bool) or not isinstance(crop, (int, float)) or not 0 < crop <= 1:
        raise ValueError(f"crop_pct must be in (0, 1], got {crop!r} (1.0: no crop margin)")
    chans = out["input_size"][0]
    for key in ("mean", "std"):
        val = out[key]
        val = [float(val)] if isinstance(val, (int, float)) else [float(v) for v in val]
        if len(val) == 1 and chans > 1:
            val = val * chans
        if len(val) != chans:
            raise ValueError(f"{key} has {len(val)} values but input_size {out['input_size']} "
                             f"has {chans} channel(s); give one {key} per channel")
        out[key] = tuple(val)
    return out


def transform_ops(data_cfg: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The op list (``Infer.transforms`` syntax) of ``data_cfg``: Resize the shorter side
    to ``floor(size / crop_pct)``, CenterCrop ``[h, w]``, ToTensor, Normalize."""
    _, h, w = data_cfg["input_size"]
    pct = data_cfg["crop_pct"]
    resize = math.floor(h / pct) if h == w else [math.floor(h / pct), math.floor(w / pct)]
    return [{"Resize": {"size": resize, "interpolation": data_cfg["interpolation"]}},
            {"CenterCrop": {"size": [h, w]}},
            {"ToTensor": {}},
            {"Normalize": {"mean": list(data_cfg["mean"]), "std": list(data_cfg["std"])}}]


def create_transform(data_cfg: Dict[str, Any]) -> Callable:
    """The eval pipeline of ``data_cfg`` (from ``resolve_data_config``) for PIL images."""
    from .transforms import build_transforms
    return build_transforms(transform_ops(data_cfg), backend="pil")


def normalize_of(ops: Optional[Sequence[Any]]) -> Dict[str, Any]:
    """``{"mean", "std"}`` of the first ``Normalize`` (0-1 scale) or ``NormalizeImage``
    (PaddleClas: mean/std on the 0-1 scale with ``scale: 1/255``) in a config op list;
    empty when there is none."""
    for entry in ops or ():
        if not isinstance(entry, dict) or len(entry) != 1:
            continue
        (name, params), = entry.items()
        params = params or {}
        if name in ("Normalize", "NormalizeImage") and "mean" in params and "std" in params:
            mean, std = params["mean"], params["std"]
            mean = [mean] if isinstance(mean, (int, float)) else list(mean)
            std = [std] if isinstance(std, (int, float)) else list(std)
            if name == "Normalize" and max(map(abs, mean + std)) > 1.5:  # 0-255 values
                mean, std = [m / 255 for m in mean], [s / 255 for s in std]
            return {"mean": tuple(mean), "std": tuple(std)}
    return {}
