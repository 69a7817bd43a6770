"""Model registry: every model is a name for a configuration of ``ResNet``."""
from __future__ import annotations

import difflib
from typing import Any, Callable, Dict, List, Optional

from .resnet import BasicBlock, Bottleneck, ResNet

__all__ = ["build_model", "build_model_from_config", "list_models", "register_model", "MODEL_FACTORIES"]

MODEL_FACTORIES: Dict[str, Callable[..., ResNet]] = {}

_DEPTHS = {
    18: (BasicBlock, [2, 2, 2, 2]),
    34: (BasicBlock, [3, 4, 6, 3]),
    50: (Bottleneck, [3, 4, 6, 3]),
    101: (Bottleneck, [3, 4, 23, 3]),
    152: (Bottleneck, [3, 8, 36, 3]),
}

# family -> (name pattern, ResNet options, default ImageNet-stem input size, paper)
_FAMILIES = {
    "resnet": ("resnet{d}", {}, 224, "ResNet (arXiv 1512.03385)"),
    "se_resnet": ("se_resnet{d}", {"squeeze": "avg"}, 224,
                  "SE-ResNet (arXiv 1709.01507), excitation without biases"),
    "fcanet": ("fcanet{d}", {"squeeze": "dct"}, 224, "FcaNet (arXiv 2012.11879), DCT top16"),
    "orthonet": ("orthonet{d}", {"squeeze": "ortho"}, 256, "OrthoNet (arXiv 2311.03071)"),
    "orthonet_mod": ("orthonet_mod_{d}", {"squeeze": "ortho", "position": "mod"}, 256,
                     "OrthoNet-MOD (arXiv 2311.03071)"),
}


def register_model(name: str, fn: Callable[..., ResNet]) -> Callable[..., ResNet]:
    MODEL_FACTORIES[name] = fn
    return fn


def _make_factory(name: str, depth: int, family_opts: dict, default_size: int, paper: str):
    block, layers = _DEPTHS[depth]

    def factory(num_classes: int = 1000, pretrained: Optional[str] = None, *,
                n_classes: Optional[int] = None, **options) -> ResNet:
        if n_classes is not None:  # the seed notebook's / authors' keyword
            num_classes = n_classes
        opts = dict(family_opts)
        opts.update(options)
        if opts.get("input_size") is None:
            opts["input_size"] = 32 if opts.get("stem") == "cifar" else default_size
        model = ResNet(block, layers, num_classes=num_classes, **opts)
        model.arch = name
        if pretrained:
            from .pretrained import load_pretrained
            load_pretrained(model, pretrained)
        return model

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = (f"{paper}, depth {depth}.\n\n"
                       f"Args:\n    num_classes (int): classifier outputs (``n_classes`` also accepted).\n"
                       f"    pretrained (str): optional weights path or URL.\n"
                       f"    **options: ``ResNet`` options (stem, input_size, width, in_channels, ...);\n"
                       f"        input_size defaults to 32 for stem='cifar', else {default_size}.")
    return factory


for _family, (_pattern, _opts, _size, _paper) in _FAMILIES.items():
    for _depth in _DEPTHS:
        _name = _pattern.format(d=_depth)
        register_model(_name, _make_factory(_name, _depth, _opts, _size, _paper))


def list_models(pattern: str = "") -> List[str]:
    """Registered model names, optionally only those containing ``pattern``."""
    return [n for n in MODEL_FACTORIES if pattern in n]


def build_model(name: str, num_classes: int = 1000, **options) -> ResNet:
    """Build a registered model by name, e.g. ``build_model('orthonet18', 10, stem='cifar')``."""
    try:
        factory = MODEL_FACTORIES[name]
    except KeyError:
        near = difflib.get_close_matches(name, MODEL_FACTORIES, n=3)
        hint = f" Did you mean {', '.join(near)}?" if near else ""
        raise ValueError(f"unknown model {name!r}.{hint} Valid: {', '.join(MODEL_FACTORIES)}") from None
    return factory(num_classes, **options)


def build_model_from_config(arch: Dict[str, Any]) -> ResNet:
    """``Arch`` section -> model (``class_num`` is ``num_classes``; the rest are
    ``ResNet`` options such as ``stem``, ``width``, ``squeeze``)."""
    opts = {k: v for k, v in arch.items() if k not in ("name", "class_num")}
    return build_model(arch["name"], num_classes=arch["class_num"], **opts)
