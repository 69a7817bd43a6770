"""PaddleClas-style model names (``ResNet50``, ``SE_ResNet50``) for this package's models.

PaddleClas configs name their backbone ``Arch.name: ResNet50``; the same config runs here
with our family under that name. Names PaddleClas has and we do not (the ``_vd`` variants:
deep stem and average-pool downsampling) are not mapped: the registry then names the
nearest of ours.
"""
from __future__ import annotations

import re
from typing import Optional

__all__ = ["paddleclas_alias", "paddleclas_variant"]

# PaddleClas prefix -> our prefix; depths are the ResNet family's.
_PREFIXES = {"ResNet": "resnet", "SE_ResNet": "se_resnet", "OrthoNet": "orthonet",
             "OrthoNet_MOD_": "orthonet_mod_", "OrthoNet_MOD": "orthonet_mod_",
             "FcaNet": "fcanet"}
_PATTERN = re.compile(r"^(SE_ResNet|ResNet|OrthoNet_MOD_?|OrthoNet|FcaNet)(18|34|50|101|152)$")


def paddleclas_alias(name: str) -> Optional[str]:
    """Our model name for a PaddleClas-style ``name`` (``SE_ResNet50`` -> ``se_resnet50``),
    or None when ``name`` is not of that form."""
    m = _PATTERN.match(str(name))
    return None if m is None else _PREFIXES[m.group(1)] + m.group(2)


_VARIANT = re.compile(r"^(SE_ResNet|ResNet)(18|34|50|101|152)(_vd|_vc|_vb)$")


def paddleclas_variant(name: str) -> Optional[str]:
    """For a PaddleClas ResNet variant we do not build (``SE_ResNet50_vd``), the nearest of
    ours (``se_resnet50``); None otherwise."""
    m = _VARIANT.match(str(name))
    return None if m is None else _PREFIXES[m.group(1)] + m.group(2)
