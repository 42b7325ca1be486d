"""Data of the measurement layer: in-memory datasets, format-checked loaders, fixed batches, augmentation."""

from __future__ import annotations

from .cifar import load_cifar
from .dataset import ArrayDataset
from .errors import DatasetFormatError, DatasetNotFoundError, UnsafePickleError, default_data_root
from .idx import read_idx
from .imagenet import load_imagenet32, load_imagenet_folder
from .mnist import load_fashion_mnist, load_mnist
from .png import decode_png, read_png
from .registry import LOADERS, load_dataset
from .safe_pickle import RestrictedUnpickler, restricted_loads
from .subsets import batch_indices
from .synthetic import class_means, gaussian_mixture
from .transforms import CHANNEL_STATS, random_crop_flip

__all__ = [
    "CHANNEL_STATS",
    "LOADERS",
    "ArrayDataset",
    "DatasetFormatError",
    "DatasetNotFoundError",
    "RestrictedUnpickler",
    "UnsafePickleError",
    "batch_indices",
    "class_means",
    "decode_png",
    "default_data_root",
    "gaussian_mixture",
    "load_cifar",
    "load_dataset",
    "load_fashion_mnist",
    "load_imagenet32",
    "load_imagenet_folder",
    "load_mnist",
    "random_crop_flip",
    "read_idx",
    "read_png",
    "restricted_loads",
]
