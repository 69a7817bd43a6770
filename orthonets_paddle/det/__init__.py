"""PaddleDetection integration: importing this package registers the ``OrthoNet``
backbone in PaddleDetection's workspace, so a detection config can say
``backbone: OrthoNet``. Needs PaddleDetection (see :data:`INSTALL_HINT`); the rest
of orthonets_paddle never imports it.
"""
INSTALL_HINT = ('pip install -e ".[det]" && pip install --no-deps paddledet==2.6.0 '
                "(paddledet's own pins, numpy<1.24 and opencv-python<=4.6, would "
                "downgrade numpy; it runs on numpy 2 with the det extra's packages)")

try:
    import ppdet  # noqa: F401
except ImportError as exc:  # a clear message instead of a bare ModuleNotFoundError
    raise ImportError(f"orthonets_paddle.det needs PaddleDetection ({exc}); install it with: "
                      f"{INSTALL_HINT}") from exc

from . import compat  # noqa: E402

compat.apply()  # PaddleDetection 2.6 on Paddle 3 / numpy 2.4 (see compat.py)

from .backbone import NORM_TYPES, OrthoNet  # noqa: E402
from .train import (apply_overrides, check_coco_layout, load_det_config,  # noqa: E402
                    train_detector)

__all__ = ["OrthoNet", "NORM_TYPES", "INSTALL_HINT", "load_det_config",
           "apply_overrides", "check_coco_layout", "train_detector"]
