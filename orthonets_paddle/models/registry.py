"""Model registry: one small registered function per model name (models/*.py)."""
from __future__ import annotations

import fnmatch
import re
import sys
from typing import Any, Callable, Dict, List, Sequence, Union

import paddle.nn as nn

from ..utils.hints import did_you_mean

__all__ = ["model_channels", "register_model", "build_model", "create_model", "is_model",
           "build_model_from_config", "list_models", "get_pretrained_cfg", "model_entrypoint",
           "MODEL_ENTRYPOINTS"]

MODEL_ENTRYPOINTS: Dict[str, Callable[..., nn.Layer]] = {}
# Names that are not registered on purpose, with the name to use instead.
_NOT_REGISTERED = {
    f"orthonet_mod_{d}": (f"orthonet{d}", "BasicBlock has no mod position, so OrthoNet-MOD-"
                          f"{d} is OrthoNet-{d}") for d in (18, 34)}


def register_model(fn: Callable[..., nn.Layer]) -> Callable[..., nn.Layer]:
    """Register a model function under its own name. Its module's ``default_cfgs`` dict
    must hold the model's ``pretrained_cfg`` fields under the same name."""
    cfgs = getattr(sys.modules[fn.__module__], "default_cfgs", {})
    if fn.__name__ not in cfgs:
        raise ValueError(f"{fn.__module__}.default_cfgs has no entry for {fn.__name__}")
    MODEL_ENTRYPOINTS[fn.__name__] = fn
    return fn


def list_models(filter: Union[str, Sequence[str]] = "",
                exclude_filters: Union[str, Sequence[str]] = ()) -> List[str]:
    """Registered model names, as timm's ``list_models``: ``filter`` is a shell-style
    pattern (``'orthonet*'``, ``'*50'``) or a list of them; a pattern without wildcards
    matches names that contain it (``'18'``). ``exclude_filters`` removes matches."""
    def matches(name: str, patterns) -> bool:
        patterns = [patterns] if isinstance(patterns, str) else list(patterns)
        return any(fnmatch.fnmatchcase(name, p) if any(c in p for c in "*?[") else p in name
                   for p in patterns)
    names = [n for n in MODEL_ENTRYPOINTS if matches(n, filter)]
    return [n for n in names if not exclude_filters or not matches(n, exclude_filters)]


def model_entrypoint(name: str) -> Callable[..., nn.Layer]:
    """The registered function of ``name``; a clear error for unknown names."""
    if name in MODEL_ENTRYPOINTS:
        return MODEL_ENTRYPOINTS[name]
    if name in _NOT_REGISTERED:
        use, why = _NOT_REGISTERED[name]
        raise ValueError(f"{name} is not registered: {why}; use {use!r}")
    raise ValueError(f"unknown model {name!r}; {did_you_mean(name, MODEL_ENTRYPOINTS)}"
                     f"registered models: {', '.join(MODEL_ENTRYPOINTS)}")


def get_pretrained_cfg(name: str) -> Dict[str, Any]:
    """The model's metadata, timm's fields (input_size ``(c, h, w)``, mean, std, num_classes,
    classifier, first_conv, crop_pct, interpolation, pool_size, url: empty without published
    weights) plus sha256 and paper. A model built with other options carries its own copy
    as ``model.pretrained_cfg``."""
    fn = model_entrypoint(name)
    cfg = {"input_size": (3, 224, 224), "mean": (0.485, 0.456, 0.406),
           "std": (0.229, 0.224, 0.225), "num_classes": 1000, "classifier": "fc", "url": "",
           "sha256": "", "paper": "", "crop_pct": 0.875, "interpolation": "bilinear",
           "first_conv": "conv1"}
    cfg.update(sys.modules[fn.__module__].default_cfgs[name])
    cfg.setdefault("pool_size", tuple(-(-s // 32) for s in cfg["input_size"][1:]))
    return cfg


def build_model(name: str, num_classes: int = 1000, **options) -> nn.Layer:
    """Build a registered model by name, e.g. ``build_model('orthonet18', 10, stem='cifar')``
    (``num_classes=0``: no classifier, the pooled features)."""
    return model_entrypoint(name)(num_classes=num_classes, **options)


def create_model(model_name: str, pretrained: Union[bool, str] = False, num_classes: int = 1000,
                 **kwargs) -> nn.Layer:
    """timm's name for ``build_model``: ``create_model('orthonet50', pretrained=True,
    num_classes=0, in_chans=1, global_pool='max', drop_path_rate=0.1)``."""
    return build_model(model_name, num_classes=num_classes, pretrained=pretrained, **kwargs)


def is_model(name: str) -> bool:
    """Whether ``name`` is registered (timm's ``is_model``)."""
    return name in MODEL_ENTRYPOINTS


def build_model_from_config(arch: Dict[str, Any]) -> nn.Layer:
    """``Arch`` section -> model (``class_num`` is ``num_classes``; the rest are
    ``ResNet`` options such as ``stem``, ``width``, ``squeeze``, ``position``)."""
    opts = {k: v for k, v in arch.items() if k not in ("name", "class_num")}
    try:
        return build_model(arch["name"], num_classes=arch["class_num"], **opts)
    except ValueError as exc:
        raise ValueError(_dotted(str(exc), arch)) from None


def _dotted(msg: str, arch: Dict[str, Any]) -> str:
    """Name the config key in a model error: ``unknown squeeze`` -> ``Arch.squeeze: unknown
    squeeze`` (``num_classes`` is ``Arch.class_num`` there)."""
    keys = {"num_classes": "class_num", "in_channels": "in_chans" if "in_chans" in arch
            else "in_channels", **{k: k for k in arch}}
    found = [(m.start(), key) for key in keys if key != "name"
             for m in [re.search(rf"\b{re.escape(key)}\b", msg)] if m]
    if not found:
        return msg if arch.get("name", "") not in msg else f"Arch.name: {msg}"
    return f"Arch.{keys[min(found)[1]]}: {msg}"


def model_channels(arch: Dict[str, Any]) -> int:
    """The input channels of the model an ``Arch`` section builds (3 when not set)."""
    return int(arch.get("in_channels") or arch.get("in_chans") or 3)
