"""The ResNet family and its registry; one factory function per model name."""
from .pretrained import WeightsError, load_model, load_pretrained
from .registry import MODEL_FACTORIES, build_model, build_model_from_config, list_models, register_model
from .resnet import BasicBlock, Bottleneck, ResNet

globals().update(MODEL_FACTORIES)

__all__ = ["ResNet", "BasicBlock", "Bottleneck", "build_model", "build_model_from_config",
           "list_models", "register_model", "load_model", "load_pretrained", "WeightsError",
           *MODEL_FACTORIES]
