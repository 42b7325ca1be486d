"""CIFAR-10 / CIFAR-100 from the official python-format files (folder, its parent, or the .tar.gz)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .archive import read_tar_members
from .dataset import ArrayDataset
from .errors import DatasetFormatError, DatasetNotFoundError, default_data_root
from .limits import read_regular_file
from .safe_pickle import restricted_loads
from .transforms import images_to_tensor


@dataclass(frozen=True)
class CifarLayout:
    """Names inside one official CIFAR python-format release."""

    folder: str
    archive: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]


CIFAR_LAYOUTS: dict[str, CifarLayout] = {
    "cifar10": CifarLayout(
        "cifar-10-batches-py",
        "cifar-10-python.tar.gz",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
    ),
    "cifar100": CifarLayout("cifar-100-python", "cifar-100-python.tar.gz", ("train",), ("test",)),
}
LABEL_KEYS: dict[tuple[str, str], tuple[bytes, int]] = {
    ("cifar10", "fine"): (b"labels", 10),
    ("cifar100", "fine"): (b"fine_labels", 100),
    ("cifar100", "coarse"): (b"coarse_labels", 20),
}
IMAGE_SIZE = 3 * 32 * 32


def _not_found(name: str, where: Path) -> DatasetNotFoundError:
    layout = CIFAR_LAYOUTS[name]
    return DatasetNotFoundError(
        f"{name}: no {layout.folder}/ folder or {layout.archive} found at {where}. Download the official "
        f"python-format archive {layout.archive} from https://www.cs.toronto.edu/~kriz/cifar.html and put it "
        f"(or the extracted {layout.folder}/ folder) in {default_data_root()} (or the folder named by "
        f"$BATCHRMT_DATA), or pass root=<the {layout.folder} folder, its parent, or the .tar.gz>"
    )


def _locate(name: str, root: str | Path | None) -> Path:
    """The release folder or archive for ``name`` given a folder, its parent, or the archive itself."""
    layout = CIFAR_LAYOUTS[name]
    base = Path(root).expanduser() if root is not None else default_data_root()
    if base.is_file():
        return base
    if base.is_dir():
        if all((base / f).is_file() for f in layout.test_files):
            return base
        for candidate in (base / layout.folder, base / layout.archive):
            if candidate.exists():
                return candidate
    raise _not_found(name, base)


def _read_members(source: Path, layout: CifarLayout, files: tuple[str, ...]) -> list[tuple[str, bytes]]:
    """(display name, raw bytes) of ``files`` from a folder or the archive (read in memory, never extracted;
    sizes bounded by ``networks.data.limits``)."""
    if source.is_dir():
        out = []
        for f in files:
            path = source / f
            if not path.is_file():
                raise DatasetFormatError(f"{path}: missing file of the {layout.folder} release")
            out.append((str(path), read_regular_file(path)))
        return out
    wanted = {f"{layout.folder}/{f}": f for f in files}
    found = read_tar_members(source, wanted)
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise DatasetFormatError(f"{source}: archive lacks {', '.join(missing)}")
    return [(f"{source}:{key}", found[key]) for key in wanted]


def _get(batch: dict[Any, Any], key: bytes) -> Any:
    if key in batch:
        return batch[key]
    return batch.get(key.decode())


def _parse_batch(label: str, raw: bytes, label_key: bytes, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (N, 3, 32, 32), int64 labels (N,)) of one pickled batch, with shape and range checks."""
    batch = restricted_loads(raw, label)  # refusals are ValueErrors naming ``label``
    if not isinstance(batch, dict):
        raise DatasetFormatError(f"{label}: expected a pickled dict, got {type(batch).__name__}")
    data, labels = _get(batch, b"data"), _get(batch, label_key)
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != IMAGE_SIZE
    ):
        shape = getattr(data, "shape", None)
        raise DatasetFormatError(f"{label}: b'data' must be a uint8 array of shape (N, 3072), got {shape}")
    if labels is None:
        raise DatasetFormatError(f"{label}: missing key {label_key!r}")
    # a list of Python ints (checked before numpy sees it: a list of N references to one long list would
    # otherwise become an N × len array) or a 1-D integer array
    if isinstance(labels, (list, tuple)) and all(type(v) is int for v in labels):
        y = np.asarray(labels) if labels else np.zeros(0, np.int64)
    elif isinstance(labels, np.ndarray):
        y = labels
    else:
        raise DatasetFormatError(f"{label}: {label_key!r} must be a list of integer labels")
    if y.ndim != 1 or y.shape[0] != data.shape[0] or not np.issubdtype(y.dtype, np.integer):
        raise DatasetFormatError(
            f"{label}: {label_key!r} must hold {data.shape[0]} integer labels, got {y.shape}"
        )
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise DatasetFormatError(
            f"{label}: labels must lie in [0, {num_classes}), got [{y.min()}, {y.max()}]"
        )
    return data.reshape(-1, 3, 32, 32), y.astype(np.int64)


def load_cifar(
    name: str = "cifar10",
    root: str | Path | None = None,
    train: bool = True,
    normalize: bool = True,
    label: str = "fine",
) -> ArrayDataset:
    """CIFAR-10 (``name="cifar10"``) or CIFAR-100 (``"cifar100"``) as float32 (N, 3, 32, 32) images.

    Args:
        name: "cifar10" or "cifar100".
        root: the release folder (cifar-10-batches-py / cifar-100-python), its parent, or the official .tar.gz
            (read in memory, never extracted; see ``networks.data.archive``); default ``$BATCHRMT_DATA`` or
            ~/.cache/batchrmt/data.
        train: training split (50 000 images) or test split (10 000).
        normalize: (x/255 − mean_c)/std_c with the training-set constants of ``CHANNEL_STATS``.
        label: CIFAR-100 only: "fine" (100 classes) or "coarse" (20 superclasses).

    The pickles are read with :class:`~networks.data.safe_pickle.RestrictedUnpickler`.
    """
    if name not in CIFAR_LAYOUTS:
        raise ValueError(f"name must be one of {sorted(CIFAR_LAYOUTS)}, got {name!r}")
    if (name, label) not in LABEL_KEYS:
        allowed = sorted(lab for (n, lab) in LABEL_KEYS if n == name)
        raise ValueError(f"label must be one of {allowed} for {name}, got {label!r}")
    layout = CIFAR_LAYOUTS[name]
    label_key, num_classes = LABEL_KEYS[(name, label)]
    source = _locate(name, root)
    files = layout.train_files if train else layout.test_files
    parts = [
        _parse_batch(lbl, raw, label_key, num_classes) for lbl, raw in _read_members(source, layout, files)
    ]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    x = images_to_tensor(images, name if normalize else None)
    suffix = "" if label == "fine" else f"-{label}"
    return ArrayDataset(
        x, torch.from_numpy(labels), num_classes, f"{name}{suffix}-{'train' if train else 'test'}"
    )
