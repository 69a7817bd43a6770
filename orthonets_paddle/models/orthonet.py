"""OrthoNets: Orthogonal Channel Attention Networks, Salman, Parks, Swan and Gauch,
IEEE BigData 2023, arXiv:2311.03071 (https://arxiv.org/abs/2311.03071).

OrthoNet: channel attention whose squeeze is a fixed bank of orthonormal filters
(``ortho``: Gram-Schmidt over uniform random vectors), after the block's last BN. The
authors train at 256 px, so the filters are 64/32/16/8.

OrthoNet-MOD moves the attention inside the Bottleneck: after the 3x3 conv's BN, before
its ReLU, on ``planes`` channels (4x fewer than the block's output). Only 50/101/152
are registered: a BasicBlock has no narrow middle conv, so OrthoNet-MOD-18/34 would be
OrthoNet-18/34 (``build_model('orthonet_mod_18')`` says so).
"""
from __future__ import annotations

from .registry import register_model
from .resnet import ResNet, create_resnet

__all__ = ["orthonet18", "orthonet34", "orthonet50", "orthonet101", "orthonet152",
           "orthonet_mod_50", "orthonet_mod_101", "orthonet_mod_152"]

_PAPER = "OrthoNets: Orthogonal Channel Attention Networks, arXiv:2311.03071"
default_cfgs = {name: dict(input_size=(3, 256, 256), paper=_PAPER) for name in __all__}


@register_model
def orthonet18(pretrained=False, **kwargs) -> ResNet:
    """OrthoNet-18 (BasicBlock, 2-2-2-2), orthogonal squeeze."""
    return create_resnet("orthonet18", 18, pretrained, **{"squeeze": "ortho", **kwargs})


@register_model
def orthonet34(pretrained=False, **kwargs) -> ResNet:
    """OrthoNet-34 (BasicBlock, 3-4-6-3), orthogonal squeeze."""
    return create_resnet("orthonet34", 34, pretrained, **{"squeeze": "ortho", **kwargs})


@register_model
def orthonet50(pretrained=False, **kwargs) -> ResNet:
    """OrthoNet-50 (Bottleneck, 3-4-6-3), orthogonal squeeze."""
    return create_resnet("orthonet50", 50, pretrained, **{"squeeze": "ortho", **kwargs})


@register_model
def orthonet101(pretrained=False, **kwargs) -> ResNet:
    """OrthoNet-101 (Bottleneck, 3-4-23-3), orthogonal squeeze."""
    return create_resnet("orthonet101", 101, pretrained, **{"squeeze": "ortho", **kwargs})


@register_model
def orthonet152(pretrained=False, **kwargs) -> ResNet:
    """OrthoNet-152 (Bottleneck, 3-8-36-3), orthogonal squeeze."""
    return create_resnet("orthonet152", 152, pretrained, **{"squeeze": "ortho", **kwargs})


@register_model
def orthonet_mod_50(pretrained=False, **kwargs) -> ResNet:
    """OrthoNet-MOD-50 (Bottleneck, 3-4-6-3), orthogonal squeeze at the mod position."""
    return create_resnet("orthonet_mod_50", 50, pretrained,
                         **{"squeeze": "ortho", "position": "mod", **kwargs})


@register_model
def orthonet_mod_101(pretrained=False, **kwargs) -> ResNet:
    """OrthoNet-MOD-101 (Bottleneck, 3-4-23-3), orthogonal squeeze at the mod position."""
    return create_resnet("orthonet_mod_101", 101, pretrained,
                         **{"squeeze": "ortho", "position": "mod", **kwargs})


@register_model
def orthonet_mod_152(pretrained=False, **kwargs) -> ResNet:
    """OrthoNet-MOD-152 (Bottleneck, 3-8-36-3), orthogonal squeeze at the mod position."""
    return create_resnet("orthonet_mod_152", 152, pretrained,
                         **{"squeeze": "ortho", "position": "mod", **kwargs})
