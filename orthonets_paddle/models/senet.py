"""Squeeze-and-Excitation Networks, Hu, Shen, Albanie, Sun and Wu, arXiv:1709.01507
(https://arxiv.org/abs/1709.01507).

SE-ResNets: channel attention whose squeeze is global average pooling (the ``avg``
filter bank, constant ``1 / (h*w)``), after the block's last BN, and whose excitation has
biases on both FC layers, as in Hu et al.'s SENet (``excitation_bias=False`` drops them:
then it is OrthoNet's layer with the ``avg`` bank, the ``squeeze=avg`` ablation variant).
"""
from __future__ import annotations

from .registry import register_model
from .resnet import ResNet, create_resnet

__all__ = ["se_resnet18", "se_resnet34", "se_resnet50", "se_resnet101", "se_resnet152"]

_PAPER = "Squeeze-and-Excitation Networks, arXiv:1709.01507"
default_cfgs = {name: dict(input_size=(3, 224, 224), paper=_PAPER) for name in __all__}


@register_model
def se_resnet18(pretrained=False, **kwargs) -> ResNet:
    """SE-ResNet-18 (BasicBlock, 2-2-2-2), global-average-pooling squeeze, excitation biases."""
    return create_resnet("se_resnet18", 18, pretrained, **{"squeeze": "avg", "excitation_bias": True, **kwargs})


@register_model
def se_resnet34(pretrained=False, **kwargs) -> ResNet:
    """SE-ResNet-34 (BasicBlock, 3-4-6-3), global-average-pooling squeeze, excitation biases."""
    return create_resnet("se_resnet34", 34, pretrained, **{"squeeze": "avg", "excitation_bias": True, **kwargs})


@register_model
def se_resnet50(pretrained=False, **kwargs) -> ResNet:
    """SE-ResNet-50 (Bottleneck, 3-4-6-3), global-average-pooling squeeze, excitation biases."""
    return create_resnet("se_resnet50", 50, pretrained, **{"squeeze": "avg", "excitation_bias": True, **kwargs})


@register_model
def se_resnet101(pretrained=False, **kwargs) -> ResNet:
    """SE-ResNet-101 (Bottleneck, 3-4-23-3), global-average-pooling squeeze, excitation biases."""
    return create_resnet("se_resnet101", 101, pretrained, **{"squeeze": "avg", "excitation_bias": True, **kwargs})


@register_model
def se_resnet152(pretrained=False, **kwargs) -> ResNet:
    """SE-ResNet-152 (Bottleneck, 3-8-36-3), global-average-pooling squeeze, excitation biases."""
    return create_resnet("se_resnet152", 152, pretrained, **{"squeeze": "avg", "excitation_bias": True, **kwargs})
