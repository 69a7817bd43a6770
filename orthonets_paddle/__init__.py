"""orthonets-paddle: OrthoNets (orthogonal channel attention) in PaddlePaddle."""
from .utils import threads as _threads  # noqa: F401  (first: reads OMP_NUM_THREADS before paddle sets it)
from .layers import ChannelAttention, create_attention
from .models import MODEL_FACTORIES, BasicBlock, Bottleneck, ResNet, build_model, list_models
from .models.pretrained import load_pretrained

globals().update(MODEL_FACTORIES)

__version__ = "0.1.0"
__all__ = ["ChannelAttention", "create_attention", "ResNet", "BasicBlock", "Bottleneck",
           "build_model", "list_models", "load_pretrained", *MODEL_FACTORIES]
