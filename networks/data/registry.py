"""``load_dataset``: one entry point for every data set, by name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .cifar import load_cifar
from .dataset import ArrayDataset
from .imagenet import load_imagenet32, load_imagenet_folder
from .mnist import load_fashion_mnist, load_mnist
from .synthetic import gaussian_mixture


def _gaussian_mixture(root: str | Path | None, train: bool, normalize: bool, **kw: Any) -> ArrayDataset:
    if root is not None:
        raise ValueError("gaussian-mixture is generated, not read: root must be None")
    return gaussian_mixture(train=train, **kw)  # already standardised noise: `normalize` has no effect


def _imagenet_folder(root: str | Path | None, train: bool, normalize: bool, **kw: Any) -> ArrayDataset:
    if root is None:
        raise ValueError("imagenet-folder needs root=<folder of class subfolders>")
    return load_imagenet_folder(root, train=train, normalize=normalize, **kw)


LOADERS: dict[str, Callable[..., ArrayDataset]] = {
    "fashion-mnist": load_fashion_mnist,
    "mnist": load_mnist,
    "cifar10": lambda root, train, normalize, **kw: load_cifar("cifar10", root, train, normalize, **kw),
    "cifar100": lambda root, train, normalize, **kw: load_cifar("cifar100", root, train, normalize, **kw),
    "imagenet32": load_imagenet32,
    "imagenet-folder": _imagenet_folder,
    "gaussian-mixture": _gaussian_mixture,
}


def load_dataset(
    name: str, root: str | Path | None = None, train: bool = True, normalize: bool = True, **kw: Any
) -> ArrayDataset:
    """The data set ``name`` (one of :data:`LOADERS`) as float32 CPU tensors.

    ``root`` overrides the default location; ``**kw`` goes to the specific loader (e.g. ``label="coarse"`` for
    CIFAR-100, ``max_samples`` for ImageNet32, ``n_samples``/``dim``/``seed``/``label_noise`` for the Gaussian
    mixture). A missing data set raises :class:`DatasetNotFoundError` saying how to provide it; no other data
    set is ever substituted.
    """
    if name not in LOADERS:
        raise ValueError(f"name must be one of {sorted(LOADERS)}, got {name!r}")
    return LOADERS[name](root, train=train, normalize=normalize, **kw)
