"""orthonets-paddle: OrthoNets (orthogonal channel attention) in PaddlePaddle."""
from .utils import threads as _threads  # noqa: F401  (first: reads OMP_NUM_THREADS before paddle sets it)
from .layers import ChannelAttention, create_attention
from .models import *  # noqa: F401,F403  (the registered model functions, build_model, ...)
from .models import __all__ as _models_all

__version__ = "0.1.0"
__all__ = ["ChannelAttention", "create_attention", *_models_all]
