"""OrthoNet (arXiv 2311.03071) as a PaddleDetection backbone, with PaddleDetection's
ResNet conventions (``return_idx`` 0 = res2, ``freeze_at``, ``freeze_norm``, ``norm_type``,
``lr_mult_list``, ``out_shape``).

Parameter names are the classification model's under ``backbone.body.``, so
PaddleDetection's ``pretrain_weights`` (matched by suffix) loads a classification
``.pdparams`` of this package, leaving out only ``fc``.
"""
from __future__ import annotations

from numbers import Integral
from typing import List, Sequence, Union

import paddle.nn as nn
from paddle.regularizer import L2Decay
from ppdet.core.workspace import register, serializable
from ppdet.modeling.shape_spec import ShapeSpec

from ..models import build_model

__all__ = ["OrthoNet", "NORM_TYPES"]

# PaddleDetection's names; 'frozen_bn' is the same as freeze_norm=True.
NORM_TYPES = ("bn", "sync_bn", "frozen_bn")
_BN_TYPES = (nn.BatchNorm2D, nn.SyncBatchNorm)


@register
@serializable
class OrthoNet(nn.Layer):
    """OrthoNet / OrthoNet-MOD (and FcaNet, SE-ResNet, ResNet) backbone.

    Args:
        depth (int): 18, 34, 50, 101 or 152.
        squeeze (str|None): attention filter bank: ``ortho`` (OrthoNet), ``dct``
            (FcaNet), ``avg`` (SENet), ``random``, or None (plain ResNet).
        position (str): ``post`` (OrthoNet) or ``mod`` (OrthoNet-MOD, depth >= 50).
        input_size (int): the classification input size the filter banks are made
            for (256 for the authors' OrthoNets, as their mmdetection backbone);
            detection inputs of any size are pooled to the filter size.
        width (int): base channels (64 is the standard ResNet; smaller for tests).
        reduction (int): excitation reduction ratio.
        seed (int): seed of the random filter banks (pretrained weights bring theirs).
        norm_type (str): ``bn``, ``sync_bn`` or ``frozen_bn`` (shared with the
            global ``norm_type`` key, as PaddleDetection's ResNet).
        norm_decay (float): L2 weight decay of the norm layers' scale and shift.
        freeze_norm (bool): norm layers use their running statistics and their
            scale and shift are not trained (PaddleDetection's default).
        freeze_at (int): the stem and stages ``0..freeze_at`` are frozen
            (0 = res2 as in PaddleDetection; -1 freezes nothing).
        return_idx (list[int]): stages whose maps are returned (0 = res2, stride 4).
        lr_mult_list (list[float]): learning-rate multipliers of the four stages.
    """

    __shared__ = ["norm_type"]

    def __init__(self, depth: int = 50, squeeze: Union[str, None] = "ortho",
                 position: str = "post", input_size: int = 256, width: int = 64,
                 reduction: int = 16, seed: int = 0, norm_type: str = "bn",
                 norm_decay: float = 0.0, freeze_norm: bool = True, freeze_at: int = 0,
                 return_idx: Sequence[int] = (0, 1, 2, 3),
                 lr_mult_list: Sequence[float] = (1.0, 1.0, 1.0, 1.0)):
        super().__init__()
        # depth, squeeze and position are checked by build_model
        if norm_type not in NORM_TYPES:
            raise ValueError(f"OrthoNet backbone: unknown norm_type {norm_type!r}; valid: "
                             f"{', '.join(NORM_TYPES)}")
        return_idx = [return_idx] if isinstance(return_idx, Integral) else list(return_idx)
        if not return_idx or any(i not in (0, 1, 2, 3) for i in return_idx) \
                or return_idx != sorted(set(return_idx)):
            raise ValueError("OrthoNet backbone: return_idx must be increasing stage numbers "
                             f"among 0, 1, 2, 3 (0 = res2), got {return_idx!r}")
        if len(lr_mult_list) != 4:
            raise ValueError(f"OrthoNet backbone: lr_mult_list needs 4 values (one per stage), "
                             f"got {list(lr_mult_list)!r}")
        if not isinstance(freeze_at, Integral) or not -1 <= freeze_at <= 3:
            raise ValueError(f"OrthoNet backbone: freeze_at must be -1 (nothing) or a stage "
                             f"0-3 (0 = res2), got {freeze_at!r}")
        frozen = freeze_norm or norm_type == "frozen_bn"
        norm = "frozen_bn" if frozen else norm_type
        try:
            self.body = build_model(f"resnet{depth}", squeeze=squeeze, position=position,
                                    input_size=input_size, width=width, reduction=reduction,
                                    seed=seed, norm=norm, features_only=True,
                                    out_indices=tuple(return_idx))
        except ValueError as exc:
            raise ValueError(f"OrthoNet backbone: {exc}") from None
        self.depth, self.squeeze, self.position = depth, squeeze, position
        self.norm_type, self.freeze_norm, self.freeze_at = norm_type, frozen, freeze_at
        self.return_idx = return_idx

        # stages after the last returned one never run: drop them, so no parameter is
        # left without a gradient
        stages = [getattr(self.body, f"layer{i + 1}") for i in range(max(return_idx) + 1)]
        for i in range(len(stages), 4):
            setattr(self.body, f"layer{i + 1}", None)
        for stage, mult in zip(stages, lr_mult_list):
            for p in stage.parameters():
                p.optimize_attr["learning_rate"] = float(mult)
        for layer in self.body.sublayers():
            if isinstance(layer, _BN_TYPES):
                for p in (layer.weight, layer.bias):
                    p.regularizer = L2Decay(norm_decay)
                    if frozen:
                        p.stop_gradient = True
        if freeze_at >= 0:
            for layer in [self.body.conv1, self.body.bn1] + stages[:freeze_at + 1]:
                for p in layer.parameters():
                    p.stop_gradient = True

    @property
    def out_shape(self) -> List[ShapeSpec]:
        """Channels and strides of the returned maps, in ``return_idx`` order."""
        return [ShapeSpec(channels=f["num_chs"], stride=f["reduction"])
                for f in self.body.feature_info]

    def forward(self, inputs):
        return self.body(inputs["image"])
