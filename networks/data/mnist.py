"""MNIST and Fashion-MNIST from IDX files (the Debian package ``dataset-fashion-mnist`` for the latter)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .dataset import ArrayDataset
from .errors import DatasetFormatError, DatasetNotFoundError
from .idx import read_idx
from .transforms import images_to_tensor

FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")
MNIST_ROOT = Path("/usr/share/datasets/mnist")
IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801

_HOW_TO_INSTALL = {
    "fashion-mnist": "install it with `apt-get install -y dataset-fashion-mnist` (Debian/Ubuntu; files go to "
    f"{FASHION_MNIST_ROOT}/) or pass root=<folder holding the four *-ubyte.gz files>",
    "mnist": f"put train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
    f"t10k-labels-idx1-ubyte.gz (the original MNIST IDX files) in {MNIST_ROOT}/ or pass root=<that folder>",
}


def _find(root: Path, stem: str, name: str) -> Path:
    for candidate in (root / f"{stem}.gz", root / stem):
        if candidate.is_file():
            return candidate
    raise DatasetNotFoundError(f"{name}: {root / (stem + '.gz')} not found; {_HOW_TO_INSTALL[name]}")


def _load_idx_pair(name: str, root: str | Path | None, train: bool, normalize: bool) -> ArrayDataset:
    base = Path(root) if root is not None else (FASHION_MNIST_ROOT if name == "fashion-mnist" else MNIST_ROOT)
    prefix = "train" if train else "t10k"
    images_path = _find(base, f"{prefix}-images-idx3-ubyte", name)
    labels_path = _find(base, f"{prefix}-labels-idx1-ubyte", name)
    images = read_idx(images_path, expected_magic=IMAGES_MAGIC, item_shape=(28, 28))
    labels = read_idx(labels_path, expected_magic=LABELS_MAGIC)
    if images.dtype != np.uint8 or labels.dtype != np.uint8:
        raise DatasetFormatError(f"{images_path}, {labels_path}: expected uint8 IDX data")
    if len(images) != len(labels):
        raise DatasetFormatError(
            f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels"
        )
    if labels.size and labels.max() > 9:
        raise DatasetFormatError(f"{labels_path}: labels must lie in 0..9, found {int(labels.max())}")
    x = images_to_tensor(images[:, None, :, :], name if normalize else None)
    y = torch.from_numpy(labels.astype(np.int64))
    return ArrayDataset(x, y, 10, f"{name}-{'train' if train else 'test'}")


def load_fashion_mnist(
    root: str | Path | None = None, train: bool = True, normalize: bool = True
) -> ArrayDataset:
    """Fashion-MNIST (60 000 train / 10 000 test, 1×28×28, 10 classes) from ``{train,t10k}-{images-idx3,
    labels-idx1}-ubyte[.gz]`` in ``root`` (default /usr/share/datasets/fashion-mnist).

    Normalised with the training-set mean 0.2860 and std 0.3530 when ``normalize`` (else values in [0, 1]).
    """
    return _load_idx_pair("fashion-mnist", root, train, normalize)


def load_mnist(root: str | Path | None = None, train: bool = True, normalize: bool = True) -> ArrayDataset:
    """MNIST (same layout as :func:`load_fashion_mnist`; default root /usr/share/datasets/mnist; mean 0.1307,
    std 0.3081)."""
    return _load_idx_pair("mnist", root, train, normalize)
