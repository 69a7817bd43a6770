"""The ResNet family and its registered models (one function per model name)."""
from .pretrained import WeightsError, load_model, load_pretrained
from .registry import (build_model, build_model_from_config, create_model, get_pretrained_cfg,
                       is_model, list_models, register_model)
from .resnet import (DEPTHS, BasicBlock, Bottleneck, ResNet, create_resnet, resnet18, resnet34, resnet50, resnet101,
                     resnet152)
from .senet import se_resnet18, se_resnet34, se_resnet50, se_resnet101, se_resnet152
from .fcanet import fcanet18, fcanet34, fcanet50, fcanet101, fcanet152
from .orthonet import (orthonet18, orthonet34, orthonet50, orthonet101, orthonet152,
                       orthonet_mod_50, orthonet_mod_101, orthonet_mod_152)

__all__ = ["ResNet", "BasicBlock", "Bottleneck", "DEPTHS", "create_resnet", "build_model", "create_model", "is_model",
           "build_model_from_config",
           "get_pretrained_cfg", "list_models", "register_model", "load_model", "load_pretrained",
           "WeightsError",
           "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
           "se_resnet18", "se_resnet34", "se_resnet50", "se_resnet101", "se_resnet152",
           "fcanet18", "fcanet34", "fcanet50", "fcanet101", "fcanet152",
           "orthonet18", "orthonet34", "orthonet50", "orthonet101", "orthonet152",
           "orthonet_mod_50", "orthonet_mod_101", "orthonet_mod_152"]
