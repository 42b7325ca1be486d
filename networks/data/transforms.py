"""Per-dataset normalisation constants, normalisation, and the training augmentation (random crop + flip)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

# Per-channel mean and standard deviation of the pixel values scaled to [0, 1], over ALL pixels of the
# TRAINING set (population std over N·H·W values per channel — not the mean of per-image stds, which gives
# the often copied CIFAR-10 value 0.2023/0.1994/0.2010).
#   fashion-mnist: computed here from the 60 000 training images (0.28604, 0.35302).
#   mnist:         the standard constants of the 60 000 training images.
#   cifar10 / cifar100: the standard constants of the 50 000 training images.
#   imagenet32 / imagenet: the standard ImageNet-1k (full resolution) constants; ImageNet32's own statistics
#       differ in the third decimal (downsampling averages pixels), so normalised ImageNet32 data has mean ≈ 0
#       and std ≈ 1 only to about 1e-2.
CHANNEL_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagenet32": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def images_to_tensor(images: np.ndarray, stats_name: str | None) -> Tensor:
    """uint8 images (N, C, H, W) → float32 (x/255 − mean_c)/std_c, or x/255 when ``stats_name`` is None."""
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"images must be a uint8 array (N, C, H, W), got {images.dtype} {images.shape}")
    x = torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32).div_(255.0)
    if stats_name is None:
        return x
    mean, std = CHANNEL_STATS[stats_name]
    if len(mean) != x.shape[1]:
        raise ValueError(f"{stats_name} statistics have {len(mean)} channels, images have {x.shape[1]}")
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return x.sub_(m).div_(s)


def random_crop_flip(x: Tensor, generator: torch.Generator, padding: int = 4) -> Tensor:
    """Random ``H×W`` crop of the zero-padded images plus a horizontal flip with probability 1/2, per sample.

    Vectorised over the batch: offsets (dy, dx) ~ U{0..2·padding}² and flips are drawn from ``generator``
    (one draw of each per call, so the result is reproducible under a seeded generator); the crop is a
    gather on the padded batch. Padding value 0 is applied AFTER normalisation, as in the lineage
    (``transforms.RandomCrop(32, padding=4)`` after ``Normalize`` pads with 0 = the channel mean).

    Args:
        x: images (N, C, H, W), any float dtype, on any device.
        generator: a ``torch.Generator`` on the CPU.
        padding: pad width p >= 0 on every side.

    Returns:
        A new tensor of the same shape, dtype and device.
    """
    if not isinstance(x, Tensor) or x.ndim != 4:
        raise ValueError(f"x must be a tensor of shape (N, C, H, W), got {getattr(x, 'shape', type(x))}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be an integer >= 0, got {padding!r}")
    n, _, h, w = x.shape
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    rows = (offsets[0].view(n, 1) + torch.arange(h).view(1, h)).to(x.device)  # (N, H)
    cols = offsets[1].view(n, 1) + torch.arange(w).view(1, w)  # (N, W)
    cols = torch.where(flips.view(n, 1), cols.flip(1), cols).to(x.device)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    # padded[b, :, rows[b, i], cols[b, j]] via advanced indexing on (N, H, W) index grids → (N, H, W, C)
    out = padded.permute(0, 2, 3, 1)[batch, rows.view(n, h, 1), cols.view(n, 1, w)]
    return out.permute(0, 3, 1, 2).contiguous()
