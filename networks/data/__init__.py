"""Data of the measurement layer: in-memory datasets, format-checked loaders, fixed batches, augmentation."""

from __future__ import annotations

from .archive import read_tar_members
from .cifar import load_cifar
from .dataset import ArrayDataset
from .errors import DatasetFormatError, DatasetNotFoundError, UnsafePickleError, default_data_root
from .idx import read_idx
from .imagenet import load_imagenet32, load_imagenet_folder
from .limits import MAX_ARCHIVE_BYTES, MAX_ARRAY_BYTES, MAX_FILE_BYTES, MAX_IMAGE_PIXELS
from .mnist import load_fashion_mnist, load_mnist
from .npz import read_npz_arrays
from .png import decode_png, open_image, read_png
from .registry import LOADERS, load_dataset
from .safe_pickle import RestrictedUnpickler, restricted_loads, scan_opcodes
from .subsets import batch_indices
from .synthetic import class_means, gaussian_mixture
from .transforms import CHANNEL_STATS, random_crop_flip

__all__ = [
    "CHANNEL_STATS",
    "LOADERS",
    "MAX_ARCHIVE_BYTES",
    "MAX_ARRAY_BYTES",
    "MAX_FILE_BYTES",
    "MAX_IMAGE_PIXELS",
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
    "open_image",
    "random_crop_flip",
    "read_idx",
    "read_npz_arrays",
    "read_png",
    "read_tar_members",
    "restricted_loads",
    "scan_opcodes",
]
