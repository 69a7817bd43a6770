"""The ResNet family and its registry; one factory function per model name."""
from .registry import MODEL_FACTORIES, build_model, list_models, register_model
from .resnet import BasicBlock, Bottleneck, ResNet

globals().update(MODEL_FACTORIES)

__all__ = ["ResNet", "BasicBlock", "Bottleneck", "build_model", "list_models",
           "register_model", *MODEL_FACTORIES]
