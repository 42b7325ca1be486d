"""ImageNet32 (.npz batches of the downsampled ImageNet release) and ImageNet-style image folders."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .dataset import ArrayDataset
from .errors import DatasetFormatError, DatasetNotFoundError, default_data_root
from .npz import read_npz_arrays
from .png import open_image
from .transforms import images_to_tensor

IMAGENET32_SIDE = 32
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_IMAGENET32_HELP = (
    "Download Imagenet32_train_npz.zip / Imagenet32_val_npz.zip from https://image-net.org (Downsampled "
    "ImageNet 32x32), extract them into {where}, or pass root=<an .npz file or a folder of "
    "train_data_batch_*.npz / val_data.npz>"
)


def _imagenet32_files(root: str | Path | None, train: bool) -> list[Path]:
    base = Path(root).expanduser() if root is not None else default_data_root() / "imagenet32"
    if base.is_file():
        return [base]
    pattern = "train_data_batch_*.npz" if train else "val_data*.npz"
    sub = "Imagenet32_train_npz" if train else "Imagenet32_val_npz"
    for folder in (base, base / sub):
        files = sorted(
            folder.glob(pattern),
            key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)],
        )
        if files:
            return files
    raise DatasetNotFoundError(
        f"imagenet32: no {pattern} in {base} or {base / sub}. " + _IMAGENET32_HELP.format(where=base)
    )


def _read_npz_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    arrays = read_npz_arrays(path, ("data", "labels"))  # bounded, no pickles: see networks.data.npz
    data, labels = arrays["data"], arrays["labels"]
    side2 = IMAGENET32_SIDE * IMAGENET32_SIDE
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * side2:
        raise DatasetFormatError(
            f"{path}: 'data' must be uint8 of shape (N, {3 * side2}), got {data.dtype} {data.shape}"
        )
    labels = np.asarray(labels).reshape(-1)
    if labels.shape[0] != data.shape[0] or not np.issubdtype(labels.dtype, np.integer):
        raise DatasetFormatError(
            f"{path}: 'labels' must hold {data.shape[0]} integers, got {labels.dtype} {labels.shape}"
        )
    if labels.size and (labels.min() < 1 or labels.max() > 1000):
        raise DatasetFormatError(
            f"{path}: labels must be 1-based in 1..1000, got [{labels.min()}, {labels.max()}]"
        )
    return data.reshape(-1, 3, IMAGENET32_SIDE, IMAGENET32_SIDE), labels.astype(np.int64) - 1


def load_imagenet32(
    root: str | Path | None = None,
    train: bool = True,
    normalize: bool = True,
    max_samples: int | None = None,
) -> ArrayDataset:
    """ImageNet32 (1000 classes, 3×32×32) from the official .npz batches (``data`` uint8 (N, 3072),
    channel-major like CIFAR; ``labels`` 1-based, returned 0-based). Read without pickles and with sizes
    checked before allocation (:func:`~networks.data.npz.read_npz_arrays`).

    Args:
        root: one .npz file, or a folder with train_data_batch_*.npz / val_data.npz (or the
            Imagenet32_train_npz / Imagenet32_val_npz subfolders); default ``$BATCHRMT_DATA/imagenet32``.
        train: training batches or the validation file.
        normalize: ImageNet channel constants (see ``CHANNEL_STATS``).
        max_samples: keep only the first ``max_samples`` images (the full training set is 1.28M images,
            15.7 GB as float32).
    """
    if max_samples is not None and (
        isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1
    ):
        raise ValueError(f"max_samples must be a positive integer or None, got {max_samples!r}")
    images, labels, count = [], [], 0
    for path in _imagenet32_files(root, train):
        data, y = _read_npz_batch(path)
        images.append(data)
        labels.append(y)
        count += len(y)
        if max_samples is not None and count >= max_samples:
            break
    x_all = np.concatenate(images)[:max_samples]
    y_all = np.concatenate(labels)[:max_samples]
    x = images_to_tensor(x_all, "imagenet32" if normalize else None)
    return ArrayDataset(x, torch.from_numpy(y_all), 1000, f"imagenet32-{'train' if train else 'test'}")


def _decode_image(path: Path, image_size: int) -> np.ndarray:
    """uint8 (3, S, S): RGB, shorter side resized to S (Pillow, bilinear) then centre-cropped; greyscale is
    replicated, alpha dropped. Decoded by :func:`~networks.data.png.open_image` (pixel limit, errors name the
    file)."""
    with open_image(path) as img:
        img = img.convert("RGB")
        scale = image_size / min(img.size)
        size = (max(image_size, round(img.size[0] * scale)), max(image_size, round(img.size[1] * scale)))
        img = img.resize(size, Image.Resampling.BILINEAR)
        left, top = (size[0] - image_size) // 2, (size[1] - image_size) // 2
        img = img.crop((left, top, left + image_size, top + image_size))
        return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy()


def load_imagenet_folder(
    root: str | Path,
    train: bool = True,
    normalize: bool = True,
    image_size: int = 32,
) -> ArrayDataset:
    """Images in class subfolders (``root/<class>/<image>``, torchvision ImageFolder layout) as (N, 3, S, S).

    If ``root`` has ``train/`` and ``val/`` subfolders, ``train`` picks one. Classes are the sorted subfolder
    names (label = position). Images are decoded with Pillow (PNG, JPEG, BMP, GIF, TIFF, WebP; at most
    ``MAX_IMAGE_PIXELS`` pixels each, see ``networks.data.limits``). Normalised with the ImageNet channel
    constants.
    """
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive integer, got {image_size!r}")
    base = Path(root).expanduser()
    split = base / ("train" if train else "val")
    folder = split if split.is_dir() else base
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    if not classes:
        raise DatasetNotFoundError(
            f"imagenet folder: no class subfolders in {folder}; expected root/<class>/<image> "
            "(optionally root/train/<class>/... and root/val/<class>/...)"
        )
    images, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((folder / name).iterdir()):
            if path.suffix.lower() in IMAGE_EXTENSIONS:
                images.append(_decode_image(path, image_size))
                labels.append(label)
    if not images:
        raise DatasetNotFoundError(
            f"imagenet folder: no images ({', '.join(IMAGE_EXTENSIONS)}) under {folder}"
        )
    x = images_to_tensor(np.stack(images), "imagenet" if normalize else None)
    y = torch.tensor(labels, dtype=torch.int64)
    return ArrayDataset(x, y, len(classes), f"imagenet-folder-{folder.name}")
