"""Independent PyTorch references of the authors' architectures, for tests only.

Written from a description of the published models (not from their code):
OrthoNet and OrthoNet-MOD (Salman et al., arXiv 2311.03071; ``model/OrthoNet.py``
and ``model/OrthoNet_MOD.py``), FcaNet (Qin et al., arXiv 2012.11879, torchvision
ResNet naming), SE-ResNet (senet.pytorch's ``se.fc`` naming) and plain ResNet.
Module and buffer names reproduce the authors' state-dict keys, so a reference's
``state_dict()`` is what their checkpoints hold; the tests convert it and compare
logits with the Paddle models.
"""
from __future__ import annotations

import functools
from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["torch_orthonet", "torch_orthonet_mod", "torch_fcanet", "torch_se_resnet",
           "torch_resnet", "TorchResNet",
           "ORTHONET_FILTER_SIZES", "FCANET_DCT_SIZES"]

# Stage feature-map sizes the filters are made for: OrthoNets train at 256x256,
# FcaNet's DCT sizes are keyed by ``planes`` for 224x224.
ORTHONET_FILTER_SIZES = {64: 64, 128: 32, 256: 16, 512: 8}
FCANET_DCT_SIZES = {64: 56, 128: 28, 256: 14, 512: 7}

_DEPTHS = {18: ("basic", [2, 2, 2, 2]), 34: ("basic", [3, 4, 6, 3]),
           50: ("bottleneck", [3, 4, 6, 3]), 101: ("bottleneck", [3, 4, 23, 3]),
           152: ("bottleneck", [3, 8, 36, 3])}


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


def _unit_filters(c: int, h: int, w: int) -> torch.Tensor:
    # Unit-norm filters keep the squeeze O(activation) so the sigmoid is not
    # saturated and the attention actually matters in the comparison.
    bank = torch.randn(c, h * w)
    return (bank / bank.norm(dim=1, keepdim=True)).reshape(c, h, w)


def _excitation(c: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(c, hidden, bias=False), nn.ReLU(inplace=True),
                         nn.Linear(hidden, c, bias=False), nn.Sigmoid())


# ----------------------------------------------------------------------------- OrthoNet
class FCA(nn.Module):
    """Holds the fixed filter bank as buffer ``constant_filter`` [c, h, w]."""

    def __init__(self, channels: int, size: int):
        super().__init__()
        self.register_buffer("constant_filter", _unit_filters(channels, size, size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.constant_filter * x).sum(dim=(2, 3))


class _OrthoAttentionMixin:
    """The squeeze-excitation-rescale shared by the OrthoNet blocks."""

    def _attend(self, out: torch.Tensor) -> torch.Tensor:
        size = tuple(self.F_C_A.constant_filter.shape[1:])
        # Pool only for the squeeze; the rescale applies to the full map.
        pooled = out if tuple(out.shape[2:]) == size else F.adaptive_avg_pool2d(out, size)
        b, c = out.shape[:2]
        e = self._excitation(self.F_C_A(pooled)).view(b, c, 1, 1)
        return e * out


class OrthoBasicBlock(nn.Module, _OrthoAttentionMixin):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int, downsample: Optional[nn.Module],
                 size: int):
        super().__init__()
        self._process = nn.Sequential(_conv3x3(inplanes, planes, stride), nn.BatchNorm2d(planes),
                                      nn.ReLU(inplace=True), _conv3x3(planes, planes),
                                      nn.BatchNorm2d(planes))
        self.downsample = downsample
        self._excitation = _excitation(planes, round(planes / 16))
        self.F_C_A = FCA(planes, size)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self._attend(self._process(x))
        out += residual
        return self.relu(out)


class OrthoBottleneck(nn.Module, _OrthoAttentionMixin):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int, downsample: Optional[nn.Module],
                 size: int):
        super().__init__()
        out_c = planes * 4
        self._process = nn.Sequential(
            _conv1x1(inplanes, planes), nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
            _conv3x3(planes, planes, stride), nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
            _conv1x1(planes, out_c), nn.BatchNorm2d(out_c))
        self.downsample = downsample
        self._excitation = _excitation(out_c, round(out_c / 16))
        self.F_C_A = FCA(out_c, size)
        self.relu = nn.ReLU(inplace=True)

    forward = OrthoBasicBlock.forward  # attention after the last BN, before the residual add


class OrthoModBottleneck(nn.Module, _OrthoAttentionMixin):
    """OrthoNet-MOD: attention on ``planes`` channels between the 3x3 and the 1x1."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int, downsample: Optional[nn.Module],
                 size: int):
        super().__init__()
        self._preprocess = nn.Sequential(
            _conv1x1(inplanes, planes), nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
            _conv3x3(planes, planes, stride), nn.BatchNorm2d(planes))
        self._excitation = _excitation(planes, round(planes / 16))
        self.F_C_A = FCA(planes, size)
        self._scale = nn.Sequential(nn.ReLU(inplace=True), _conv1x1(planes, planes * 4),
                                    nn.BatchNorm2d(planes * 4))
        self.downsample = downsample
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self._scale(self._attend(self._preprocess(x)))
        out += residual
        return self.relu(out)


# ----------------------------------------------------------------------------- FcaNet, SE
class DCTLayer(nn.Module):
    """Holds the DCT bank as buffer ``weight`` [c, h, w] (key ``att.dct_layer.weight``)."""

    def __init__(self, channels: int, h: int, w: int):
        super().__init__()
        self.register_buffer("weight", _unit_filters(channels, h, w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.weight).sum(dim=(2, 3))


class MultiSpectralAttention(nn.Module):
    """FcaNet's attention: ``dct_layer`` squeeze, ``fc`` excitation (c // 16)."""

    def __init__(self, channels: int, size: int, reduction: int = 16):
        super().__init__()
        self.size = (size, size)
        self.dct_layer = DCTLayer(channels, size, size)
        self.fc = _excitation(channels, channels // reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        pooled = x if tuple(x.shape[2:]) == self.size else F.adaptive_avg_pool2d(x, self.size)
        return x * self.fc(self.dct_layer(pooled)).view(b, c, 1, 1)


class SELayer(nn.Module):
    """SENet's attention as senet.pytorch names it: GAP squeeze, ``fc`` excitation."""

    def __init__(self, channels: int, size: int = 0, reduction: int = 16):
        super().__init__()
        self.fc = _excitation(channels, channels // reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        return x * self.fc(x.mean(dim=(2, 3))).view(b, c, 1, 1)


# attention kind -> (attribute name in the block, module)
_TV_ATTENTION = {"dct": ("att", MultiSpectralAttention), "se": ("se", SELayer)}


class _TVBlock(nn.Module):
    """torchvision block names, optional attention after the last BN."""

    def _init_attention(self, attention: Optional[str], channels: int, size: int) -> None:
        self._att_name = None
        if attention:
            self._att_name, cls = _TV_ATTENTION[attention]
            setattr(self, self._att_name, cls(channels, size))

    def _attend(self, out: torch.Tensor) -> torch.Tensor:
        return out if self._att_name is None else getattr(self, self._att_name)(out)


class TVBasicBlock(_TVBlock):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int, downsample: Optional[nn.Module],
                 size: int, attention: Optional[str] = None):
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self._init_attention(attention, planes, size)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self._attend(self.bn2(self.conv2(out)))
        out += residual
        return self.relu(out)


class TVBottleneck(_TVBlock):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int, downsample: Optional[nn.Module],
                 size: int, attention: Optional[str] = None):
        super().__init__()
        self.conv1 = _conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * 4)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self._init_attention(attention, planes * 4, size)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self._attend(self.bn3(self.conv3(out)))
        out += residual
        return self.relu(out)


# ----------------------------------------------------------------------------- ResNet
class TorchResNet(nn.Module):
    """ImageNet ResNet (7x7/2 conv, max pool, 4 stages, GAP, fc) over any block.

    Args:
        block: a block class above (or a partial of one with ``expansion`` set).
        layers: blocks per stage.
        sizes: ``planes -> filter size`` of the attention in that stage.
        num_classes: classifier outputs.
    """

    def __init__(self, block: Callable[..., nn.Module], layers: Sequence[int], sizes: dict,
                 num_classes: int = 1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0], 1, sizes[64])
        self.layer2 = self._make_layer(block, 128, layers[1], 2, sizes[128])
        self.layer3 = self._make_layer(block, 256, layers[2], 2, sizes[256])
        self.layer4 = self._make_layer(block, 512, layers[3], 2, sizes[512])
        # The authors use AvgPool2d(8), identical to this at 256x256 input.
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * block.expansion, num_classes)

    def _make_layer(self, block, planes: int, blocks: int, stride: int, size: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(_conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        out: List[nn.Module] = [block(self.inplanes, planes, stride, downsample, size)]
        self.inplanes = planes * block.expansion
        out += [block(self.inplanes, planes, 1, None, size) for _ in range(1, blocks)]
        return nn.Sequential(*out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _depth(depth: int) -> Tuple[str, List[int]]:
    if depth not in _DEPTHS:
        raise ValueError(f"unknown depth {depth}; valid: {', '.join(map(str, _DEPTHS))}")
    return _DEPTHS[depth]


def torch_orthonet(depth: int, num_classes: int = 1000) -> TorchResNet:
    """The authors' OrthoNet (``model/OrthoNet.py``) at their 256x256 filter sizes."""
    kind, layers = _depth(depth)
    block = OrthoBasicBlock if kind == "basic" else OrthoBottleneck
    return TorchResNet(block, layers, ORTHONET_FILTER_SIZES, num_classes)


def torch_orthonet_mod(depth: int, num_classes: int = 1000) -> TorchResNet:
    """The authors' OrthoNet-MOD (``model/OrthoNet_MOD.py``); Bottleneck depths only."""
    kind, layers = _depth(depth)
    if kind != "bottleneck":
        raise ValueError(f"OrthoNet-MOD exists for depths 50, 101, 152, not {depth}")
    return TorchResNet(OrthoModBottleneck, layers, ORTHONET_FILTER_SIZES, num_classes)


def _torchvision_style(depth: int, attention: Optional[str], num_classes: int) -> TorchResNet:
    kind, layers = _depth(depth)
    block = TVBasicBlock if kind == "basic" else TVBottleneck
    block_fn = functools.partial(block, attention=attention)
    block_fn.expansion = block.expansion
    return TorchResNet(block_fn, layers, FCANET_DCT_SIZES, num_classes)


def torch_fcanet(depth: int, num_classes: int = 1000) -> TorchResNet:
    """FcaNet with torchvision ResNet names and DCT sizes for 224x224."""
    return _torchvision_style(depth, "dct", num_classes)


def torch_se_resnet(depth: int, num_classes: int = 1000) -> TorchResNet:
    """SE-ResNet with torchvision names and senet.pytorch's ``se.fc`` (no biases)."""
    return _torchvision_style(depth, "se", num_classes)


def torch_resnet(depth: int, num_classes: int = 1000) -> TorchResNet:
    """Plain torchvision-style ResNet."""
    return _torchvision_style(depth, None, num_classes)
