"""Deep Residual Learning for Image Recognition, He, Zhang, Ren and Sun, arXiv:1512.03385
(https://arxiv.org/abs/1512.03385): the family every model here configures, channel attention
(OrthoNet, FcaNet, SENet) in its blocks. Layer names follow ``paddle.vision.models.ResNet``.
"""
from __future__ import annotations

import functools
import inspect
import math
from typing import Any, Callable, Dict, Optional, Sequence, Type, Union

import paddle
import paddle.nn as nn

from ..layers import create_attention
from ..layers.filter_banks import FILTER_BANKS, get_filter_bank, make_banks
from ..utils.hints import did_you_mean
from .registry import get_pretrained_cfg, register_model

__all__ = ["ResNet", "BasicBlock", "Bottleneck", "STEMS", "POSITIONS", "NORMS", "DEPTHS", "GLOBAL_POOLS",
           "FeatureInfo", "DropPath", "create_resnet", "pretrained_cfg_for", "arch_options",
           "resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]

STEMS = ("imagenet", "cifar")
POSITIONS = ("post", "mod")
# frozen_bn: running statistics in training too (the output does not depend on the
# batch; detection's usual setting). sync_bn: statistics across GPUs.
_NORM_LAYERS = {"bn": nn.BatchNorm2D, "sync_bn": nn.SyncBatchNorm,
                "frozen_bn": functools.partial(nn.BatchNorm2D, use_global_stats=True)}
NORMS = ("bn", "frozen_bn", "sync_bn")
GLOBAL_POOLS = ("avg", "max", "avgmax", "catavgmax", "")


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv2D:
    # He init with fan_out, as the authors' and torchvision's ResNets use.
    init = nn.initializer.KaimingNormal(fan_in=k * k * cout)
    return nn.Conv2D(cin, cout, k, stride=stride, padding=k // 2, bias_attr=False,
                     weight_attr=paddle.ParamAttr(initializer=init))


class BasicBlock(nn.Layer):
    """Two 3x3 convs; attention after the second BN, before the residual add. No ``mod``
    position (no narrow middle conv: MOD-18/34 would equal 18/34), so ``ResNet`` refuses it."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Layer] = None, attn: Optional[Callable] = None,
                 size: int = 7, position: str = "post", norm: Callable = nn.BatchNorm2D,
                 drop_path: float = 0.0):
        super().__init__()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else None
        self.conv1 = _conv(inplanes, planes, 3, stride)
        self.bn1 = norm(planes)
        self.relu = nn.ReLU()
        self.conv2 = _conv(planes, planes, 3)
        self.bn2 = norm(planes)
        self.att = attn(planes, size) if attn else None
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.att is not None:
            out = self.att(out)
        return self.relu((out if self.drop_path is None else self.drop_path(out)) + identity)


class Bottleneck(nn.Layer):
    """1x1-3x3-1x1 with stride on the 3x3; attention ``post`` (on the 4x
    expanded output, before the add) or ``mod`` (on ``planes`` channels after
    the 3x3's BN, before its ReLU: OrthoNet-MOD)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Layer] = None, attn: Optional[Callable] = None,
                 size: int = 7, position: str = "post", norm: Callable = nn.BatchNorm2D,
                 drop_path: float = 0.0):
        super().__init__()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else None
        self.conv1 = _conv(inplanes, planes, 1)
        self.bn1 = norm(planes)
        self.conv2 = _conv(planes, planes, 3, stride)
        self.bn2 = norm(planes)
        self.conv3 = _conv(planes, planes * 4, 1)
        self.bn3 = norm(planes * 4)
        self.relu = nn.ReLU()
        self.position = position
        att_channels = planes if position == "mod" else planes * 4
        self.att = attn(att_channels, size) if attn else None
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        mod = self.att is not None and self.position == "mod"
        out = self.relu(self.att(out) if mod else out)
        out = self.bn3(self.conv3(out))
        if self.att is not None and not mod:
            out = self.att(out)
        return self.relu((out if self.drop_path is None else self.drop_path(out)) + identity)


class DropPath(nn.Layer):
    """Stochastic depth (Huang et al., arXiv:1603.09382): in training, zero a sample's
    residual branch with probability ``p`` and scale the kept ones by ``1 / (1 - p)``;
    the identity in eval mode (so export sees no op)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = float(p)

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = paddle.floor(keep + paddle.rand([x.shape[0]] + [1] * (x.ndim - 1), dtype=x.dtype))
        return x / keep * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _choice(name: str, value, valid: Sequence) -> None:
    if value not in valid:
        shown = ", ".join(repr(v) if v == "" else str(v) for v in valid)
        raise ValueError(f"unknown {name} {value!r}; valid: {shown}")


def _check_head(num_classes: int, global_pool: str) -> None:
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 0:
        raise ValueError(f"num_classes must be a positive integer (or 0: no classifier), "
                         f"got {num_classes!r}")
    _choice("global_pool", global_pool, GLOBAL_POOLS)
    if global_pool == "" and num_classes:
        raise ValueError("global_pool='' returns the unpooled feature map, which has no "
                         "classifier; use num_classes=0 with it, or global_pool='avg'")


class ResNet(nn.Layer):
    """The ResNet family every model here is a configuration of.

    Args:
        block, layers: ``BasicBlock`` or ``Bottleneck``, and blocks per stage (``[2, 2, 2, 2]``).
        num_classes: classifier outputs; 0 builds none (``forward`` returns the pooled
            features ``[b, num_features]``, timm's convention).
        squeeze: attention filter bank (``ortho``, ``dct``, ``avg``, ``random``), or None /
            ``'none'`` for a plain ResNet; ``freq_sel`` picks the DCT frequencies.
        position: ``post`` or ``mod`` (after the 3x3 of a Bottleneck).
        stem: ``imagenet`` (7x7/2 conv + max pool) or ``cifar`` (3x3/1 conv).
        input_size: resolution the filter sizes are made for (others still run, pooled).
        width, in_channels: base channels (64: the standard ResNet) and image channels.
        reduction, excitation_bias: the excitation's ratio and FC biases (SENet's; OrthoNet
            and FcaNet have none).
        seed: seed of the random filter banks; block ``i`` uses ``seed + i``.
        norm: ``bn``, ``frozen_bn`` (running statistics also in training) or ``sync_bn``.
        features_only, out_indices: ``forward`` returns the feature maps of those stages
            (0-3), no pooling or classifier; ``feature_info`` describes them.
        global_pool: ``avg``, ``max``, ``avgmax`` (their mean), ``catavgmax`` (both,
            concatenated) or ``''`` (the feature map; needs ``num_classes=0``), as timm.
        drop_rate: dropout on the pooled features, before the classifier.
        drop_path_rate: stochastic depth of the last block; block ``i`` of ``n`` uses
            ``drop_path_rate * i / (n - 1)`` (timm's linear rule).
    """

    def __init__(self, block: Type[nn.Layer], layers: Sequence[int], num_classes: int = 1000,
                 squeeze: Optional[str] = None, position: str = "post", stem: str = "imagenet",
                 input_size: int = 224, width: int = 64, in_channels: int = 3,
                 reduction: int = 16, excitation_bias: bool = False, seed: int = 0,
                 freq_sel: str = "top16", norm: str = "bn",
                 features_only: bool = False, out_indices: Sequence[int] = (0, 1, 2, 3),
                 global_pool: str = "avg", drop_rate: float = 0.0, drop_path_rate: float = 0.0):
        super().__init__()
        if squeeze == "none":  # the config spelling of "no attention"
            squeeze = None
        if squeeze is not None and squeeze not in FILTER_BANKS:
            raise ValueError(f"unknown squeeze {squeeze!r}; {did_you_mean(str(squeeze), FILTER_BANKS)}"
                             f"valid: none (a plain ResNet), {', '.join(FILTER_BANKS)}")
        _choice("stem", stem, STEMS)
        _choice("attention position", position, POSITIONS)
        _choice("norm", norm, NORMS)
        if position == "mod" and block is not Bottleneck:
            # Accepting it would silently train the post model under a mod label.
            raise ValueError("position 'mod' needs Bottleneck blocks (depth 50, 101, 152): a "
                             "BasicBlock has no narrow middle conv, so OrthoNet-MOD-18/34 equal "
                             "OrthoNet-18/34; use position='post'")
        out_indices = tuple(out_indices)
        if not out_indices or any(i not in (0, 1, 2, 3) for i in out_indices):
            raise ValueError(f"out_indices must be stage numbers among 0, 1, 2, 3, got {out_indices!r}")
        _check_head(num_classes, global_pool)
        for key, val in (("input_size", input_size), ("width", width), ("in_channels", in_channels)):
            if not isinstance(val, int) or isinstance(val, bool) or val < 1:
                raise ValueError(f"{key} must be a positive integer, got {val!r}")
        for key, val in (("drop_rate", drop_rate), ("drop_path_rate", drop_path_rate)):
            if isinstance(val, bool) or not isinstance(val, (int, float)) or not 0 <= val < 1:
                raise ValueError(f"{key} must be a probability in [0, 1), got {val!r}")
        self.global_pool, self.drop_rate, self.num_classes = global_pool, float(drop_rate), num_classes
        self.input_size, self.squeeze, self.position = input_size, squeeze, position
        self.stem, self.norm, self.features_only, self.out_indices = stem, norm, features_only, out_indices
        self._norm_layer = norm_layer = _NORM_LAYERS[norm]
        if stem == "imagenet":
            self.conv1 = _conv(in_channels, width, 7, 2)
            self.maxpool = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)
            size = math.ceil(math.ceil(input_size / 2) / 2)
        else:
            self.conv1 = _conv(in_channels, width, 3, 1)
            self.maxpool = None
            size = input_size
        self.bn1 = norm_layer(width)
        self.relu = nn.ReLU()

        sizes = [size]
        for _ in layers[1:]:
            sizes.append(math.ceil(sizes[-1] / 2))
        # Per block k (over all stages): its attention, with its own bank(c, h, w, seed + k),
        # and its drop-path rate.
        mod = block is Bottleneck and position == "mod"
        specs = [(width * 2 ** i * (1 if mod else block.expansion), sizes[i])
                 for i, n in enumerate(layers) for _ in range(n)]
        attn = create_attention(squeeze, reduction=reduction, bias=bool(excitation_bias))
        banks = make_banks(get_filter_bank(squeeze, freq_sel), [
            (c, s, s, seed + k) for k, (c, s) in enumerate(specs)]) if attn else specs
        attns = [functools.partial(attn, seed=seed + k, bank=bank) if attn else None
                 for k, bank in enumerate(banks)]
        rates = [drop_path_rate * k / max(len(specs) - 1, 1) for k in range(len(specs))]
        self.inplanes, stages = width, []
        for i, (n, stage_size) in enumerate(zip(layers, sizes)):
            first = sum(layers[:i])
            stages.append(self._make_layer(block, width * 2 ** i, 1 if i == 0 else 2, stage_size,
                                           attns[first:first + n], rates[first:first + n]))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        stem_reduction = 4 if stem == "imagenet" else 1
        self.feature_info = FeatureInfo(
            {"num_chs": width * 2 ** i * block.expansion, "reduction": stem_reduction * 2 ** i,
             "module": f"layer{i + 1}"} for i in range(4))
        self.num_features = self.inplanes * (2 if global_pool == "catavgmax" else 1)
        self.avgpool = nn.AdaptiveAvgPool2D(1)  # the name paddle.vision's ResNet uses
        self.maxpool_head = nn.AdaptiveMaxPool2D(1) if "max" in global_pool else None
        self.head_drop = nn.Dropout(self.drop_rate) if self.drop_rate > 0 else None
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else None
        if features_only:
            self.feature_info = FeatureInfo(self.feature_info[i] for i in out_indices)
            self.fc = None  # no classifier: its weights are not part of a backbone

    def _make_layer(self, block, planes, stride, size, attns, rates):
        cout, downsample, out = planes * block.expansion, None, []
        if stride != 1 or self.inplanes != cout:
            downsample = nn.Sequential(_conv(self.inplanes, cout, 1, stride), self._norm_layer(cout))
        for j, (attn, rate) in enumerate(zip(attns, rates)):
            out.append(block(self.inplanes, planes, stride if j == 0 else 1,
                             downsample if j == 0 else None, attn, size, self.position,
                             self._norm_layer, rate))
            self.inplanes = cout
        return nn.Sequential(*out)

    def _stem(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        return x if self.maxpool is None else self.maxpool(x)

    def forward_features(self, x):
        """The last stage's feature map ``[b, num_features, h/32, w/32]`` (h/8 with the cifar stem)."""
        x = self._stem(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x, pre_logits: bool = False):
        """Global pooling (``global_pool``), dropout and the classifier (``pre_logits``:
        the pooled features)."""
        pool = self.global_pool
        if pool == "":
            return x
        if pool == "avg":
            x = self.avgpool(x)
        elif pool == "max":
            x = self.maxpool_head(x)
        elif pool == "avgmax":
            x = 0.5 * (self.avgpool(x) + self.maxpool_head(x))
        else:  # catavgmax
            x = paddle.concat([self.avgpool(x), self.maxpool_head(x)], axis=1)
        x = paddle.flatten(x, 1)
        if self.head_drop is not None:
            x = self.head_drop(x)
        return x if pre_logits or self.fc is None else self.fc(x)

    def get_classifier(self) -> nn.Layer:
        """The classifier layer (``nn.Identity`` when there is none, as timm returns)."""
        return self.fc if self.fc is not None else nn.Identity()

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """A new, freshly initialised classifier with ``num_classes`` outputs (0: none,
        ``forward`` returns the pooled features); ``global_pool`` changes the pooling."""
        _check_head(num_classes, self.global_pool if global_pool is None else global_pool)
        if global_pool is not None:
            width = self.num_features // (2 if self.global_pool == "catavgmax" else 1)
            self.global_pool = global_pool
            self.num_features = width * (2 if global_pool == "catavgmax" else 1)
            self.maxpool_head = nn.AdaptiveMaxPool2D(1) if "max" in global_pool else None
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else None
        if getattr(self, "pretrained_cfg", None) is not None:
            self.pretrained_cfg["num_classes"] = num_classes

    def forward(self, x):
        if self.features_only:
            x, outs = self._stem(x), []
            for i, stage in enumerate((self.layer1, self.layer2, self.layer3, self.layer4)):
                x = stage(x)
                if i in self.out_indices:
                    outs.append(x)
                if i == max(self.out_indices):
                    break
            return outs
        return self.forward_head(self.forward_features(x))


class FeatureInfo(list):
    """``model.feature_info``: one dict per stage (``num_chs``, ``reduction``, ``module``)
    with timm's accessors (``idx`` None: all stages)."""

    def _get(self, key: str, idx: Optional[int]):
        return [f[key] for f in self] if idx is None else self[idx][key]

    def channels(self, idx: Optional[int] = None):
        return self._get("num_chs", idx)

    def reduction(self, idx: Optional[int] = None):
        return self._get("reduction", idx)

    def module_name(self, idx: Optional[int] = None):
        return self._get("module", idx)


def arch_options() -> Dict[str, Any]:
    """The ``ResNet`` options a config's ``Arch`` section may set, with their defaults
    (``inspect.Parameter.empty`` where there is none); ``block``, ``layers`` and
    ``num_classes`` come from the model name and ``class_num`` instead."""
    params = inspect.signature(ResNet.__init__).parameters
    return {k: p.default for k, p in params.items()
            if k not in ("self", "block", "layers", "num_classes")}


# depth -> (block, blocks per stage) of the standard ResNets.
DEPTHS = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}
CIFAR_MEAN_STD = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # the seed notebook's normalisation


def pretrained_cfg_for(variant: str, num_classes: int = 1000, **options) -> Dict[str, Any]:
    """The ``pretrained_cfg`` that ``create_resnet(variant, ..., **options)`` attaches to its
    model, without building it (what inference preprocessing needs from an ``Arch``)."""
    cfg = dict(get_pretrained_cfg(variant))
    stem = options.get("stem", "imagenet")
    if stem == "cifar":
        # CIFAR images are used whole (no resize-and-crop margin).
        cfg.update(input_size=(3, 32, 32), mean=CIFAR_MEAN_STD[0], std=CIFAR_MEAN_STD[1],
                   crop_pct=1.0)
    side = options.get("input_size") or cfg["input_size"][-1]
    chans = options.get("in_channels", options.get("in_chans")) or 3
    ok = all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (side, chans))
    if ok and chans != len(cfg["mean"]):  # one mean/std per channel: their average for gray
        cfg.update(mean=(sum(cfg["mean"]) / len(cfg["mean"]),) * chans,
                   std=(sum(cfg["std"]) / len(cfg["std"]),) * chans)
    pool = 32 if stem == "imagenet" else 8
    cfg.update(input_size=(chans, side, side), num_classes=num_classes,
               pool_size=(math.ceil(side / pool),) * 2 if ok and not options.get("features_only")
               else None)  # bad sizes: ResNet's own check names them
    return cfg


def create_resnet(variant: str, depth: int, pretrained: Union[bool, str] = False, *,
                  num_classes: int = 1000, n_classes: Optional[int] = None,
                  **options) -> ResNet:
    """Build the registered model ``variant`` (a ResNet of ``depth`` in ``DEPTHS``) with
    its ``pretrained_cfg`` attached. ``pretrained``: False, True (the cfg's ``url``), or a
    weights path or URL; ``n_classes`` is the seed notebook's ``num_classes``; ``options``
    are ``ResNet``'s (``input_size`` defaults to 32 for ``stem='cifar'``, else the cfg's).
    """
    if not isinstance(pretrained, (bool, str)):
        raise TypeError(f"{variant}: pretrained must be True/False or a weights path, got "
                        f"{pretrained!r}; give the number of classes as num_classes={pretrained!r}")
    if n_classes is not None:
        num_classes = n_classes
    if "in_chans" in options:  # timm's name
        if options.get("in_channels", options["in_chans"]) != options["in_chans"]:
            raise ValueError(f"{variant}: in_chans={options['in_chans']} and in_channels="
                             f"{options['in_channels']} disagree; give one of them")
        options["in_channels"] = options.pop("in_chans")
    cfg = pretrained_cfg_for(variant, num_classes, **options)
    options["input_size"] = cfg["input_size"][-1]
    block, layers = DEPTHS[depth]
    model = ResNet(block, layers, num_classes=num_classes, **options)
    model.pretrained_cfg = cfg
    model.arch = variant
    if pretrained:
        from .pretrained import load_pretrained
        source = cfg.get("url") if pretrained is True else pretrained
        if not source:
            raise ValueError(f"{variant} has no published Paddle weights (pretrained_cfg url is "
                             "empty); convert the authors' PyTorch checkpoint with "
                             "tools/convert_torch_weights.py and pass pretrained=<its path>")
        load_pretrained(model, source)
    return model


# The plain ResNets (block and stages: DEPTHS).
_RESNET = "Deep Residual Learning for Image Recognition, arXiv:1512.03385"
default_cfgs = {f"resnet{d}": dict(input_size=(3, 224, 224), paper=_RESNET) for d in DEPTHS}


@register_model
def resnet18(pretrained=False, **kwargs) -> ResNet:
    return create_resnet("resnet18", 18, pretrained, **kwargs)


@register_model
def resnet34(pretrained=False, **kwargs) -> ResNet:
    return create_resnet("resnet34", 34, pretrained, **kwargs)


@register_model
def resnet50(pretrained=False, **kwargs) -> ResNet:
    return create_resnet("resnet50", 50, pretrained, **kwargs)


@register_model
def resnet101(pretrained=False, **kwargs) -> ResNet:
    return create_resnet("resnet101", 101, pretrained, **kwargs)


@register_model
def resnet152(pretrained=False, **kwargs) -> ResNet:
    return create_resnet("resnet152", 152, pretrained, **kwargs)
