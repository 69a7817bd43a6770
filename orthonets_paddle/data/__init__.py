"""Datasets, transforms and data loaders (PaddleClas-style configs)."""
from .batch_ops import BATCH_TRANSFORMS, batch_transform_params, build_batch_transforms
from .datasets import (DATASETS, Cifar10, Cifar100, DataFileError, FashionMNIST, ImageFolder,
                       ImageNetDataset, Synthetic, build_dataset, dataset_params)
from .loader import (SAMPLERS, EpochBatchSampler, build_dataloader, check_loader_channels, check_loader_samples,
                     loader_options, loader_params,
                     sampler_params, set_epoch)
from .transforms import (BACKENDS, TRANSFORMS, Compose, build_transforms, is_clas_pipeline,
                         transform_params)

__all__ = ["DATASETS", "Cifar10", "Cifar100", "DataFileError", "FashionMNIST", "ImageFolder",
           "ImageNetDataset", "Synthetic", "build_dataset", "dataset_params", "SAMPLERS",
           "EpochBatchSampler",
           "build_dataloader", "check_loader_channels", "check_loader_samples", "loader_options", "loader_params",
           "sampler_params", "set_epoch", "BACKENDS", "TRANSFORMS", "Compose",
           "build_transforms", "is_clas_pipeline",
           "transform_params", "BATCH_TRANSFORMS", "batch_transform_params",
           "build_batch_transforms"]
