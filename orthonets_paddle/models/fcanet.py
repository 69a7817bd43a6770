"""FcaNet: Frequency Channel Attention Networks, Qin, Zhang, Wu and Li, arXiv:2012.11879
(https://arxiv.org/abs/2012.11879).

FcaNets: channel attention whose squeeze is 2-D DCT filters at FcaNet's 16 "top"
frequencies (``dct`` filter bank, ``freq_sel='top16'``), after the block's last BN;
published at 224 px, so the filters are 56/28/14/7.
"""
from __future__ import annotations

from .registry import register_model
from .resnet import ResNet, create_resnet

__all__ = ["fcanet18", "fcanet34", "fcanet50", "fcanet101", "fcanet152"]

_PAPER = "FcaNet: Frequency Channel Attention Networks, arXiv:2012.11879"
default_cfgs = {name: dict(input_size=(3, 224, 224), paper=_PAPER) for name in __all__}


@register_model
def fcanet18(pretrained=False, **kwargs) -> ResNet:
    """FcaNet-18 (BasicBlock, 2-2-2-2), DCT top16 squeeze."""
    return create_resnet("fcanet18", 18, pretrained, **{"squeeze": "dct", **kwargs})


@register_model
def fcanet34(pretrained=False, **kwargs) -> ResNet:
    """FcaNet-34 (BasicBlock, 3-4-6-3), DCT top16 squeeze."""
    return create_resnet("fcanet34", 34, pretrained, **{"squeeze": "dct", **kwargs})


@register_model
def fcanet50(pretrained=False, **kwargs) -> ResNet:
    """FcaNet-50 (Bottleneck, 3-4-6-3), DCT top16 squeeze."""
    return create_resnet("fcanet50", 50, pretrained, **{"squeeze": "dct", **kwargs})


@register_model
def fcanet101(pretrained=False, **kwargs) -> ResNet:
    """FcaNet-101 (Bottleneck, 3-4-23-3), DCT top16 squeeze."""
    return create_resnet("fcanet101", 101, pretrained, **{"squeeze": "dct", **kwargs})


@register_model
def fcanet152(pretrained=False, **kwargs) -> ResNet:
    """FcaNet-152 (Bottleneck, 3-8-36-3), DCT top16 squeeze."""
    return create_resnet("fcanet152", 152, pretrained, **{"squeeze": "dct", **kwargs})
