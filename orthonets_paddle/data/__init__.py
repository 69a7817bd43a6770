"""Datasets, transforms and data loaders (PaddleClas-style configs)."""
from .datasets import (DATASETS, Cifar10, Cifar100, DataFileError, FashionMNIST, ImageFolder,
                       Synthetic, build_dataset, dataset_params)
from .loader import (EpochBatchSampler, EpochSampler, SeededDistributedBatchSampler,
                     build_dataloader, check_loader_channels, loader_params,
                     set_epoch)
from .transforms import (BACKENDS, DEFAULT_BACKEND, TRANSFORMS, Compose, build_transforms,
                         measure_transform_throughput, transform_params)

__all__ = ["DATASETS", "Cifar10", "Cifar100", "DataFileError", "FashionMNIST", "ImageFolder",
           "Synthetic", "build_dataset", "dataset_params", "EpochBatchSampler", "EpochSampler",
           "SeededDistributedBatchSampler", "build_dataloader", "check_loader_channels", "loader_params", "set_epoch",
           "BACKENDS", "DEFAULT_BACKEND", "TRANSFORMS", "Compose", "build_transforms",
           "measure_transform_throughput", "transform_params"]
