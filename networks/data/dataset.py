"""``ArrayDataset``: an in-memory labelled data set of float32 inputs and int64 labels on the CPU."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass
class ArrayDataset:
    """Inputs ``x`` (float32, (N, C, H, W) images or (N, D) vectors), labels ``y`` (int64, (N,), values in
    [0, num_classes)), the number of classes and a name for provenance records."""

    x: Tensor
    y: Tensor
    num_classes: int
    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.x, Tensor) or not isinstance(self.y, Tensor):
            raise TypeError("x and y must be torch tensors")
        if self.x.dtype != torch.float32:
            raise TypeError(f"x must be float32, got {self.x.dtype}")
        if self.y.dtype != torch.int64:
            raise TypeError(f"y must be int64, got {self.y.dtype}")
        if self.x.ndim not in (2, 4):
            raise ValueError(f"x must have shape (N, D) or (N, C, H, W), got {tuple(self.x.shape)}")
        if self.y.ndim != 1 or self.y.shape[0] != self.x.shape[0]:
            raise ValueError(f"y must have shape ({self.x.shape[0]},), got {tuple(self.y.shape)}")
        if (
            isinstance(self.num_classes, bool)
            or not isinstance(self.num_classes, int)
            or self.num_classes < 1
        ):
            raise ValueError(f"num_classes must be a positive integer, got {self.num_classes!r}")
        if len(self.y) and (int(self.y.min()) < 0 or int(self.y.max()) >= self.num_classes):
            raise ValueError(
                f"labels must lie in [0, {self.num_classes}), got [{int(self.y.min())}, {int(self.y.max())}]"
            )

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input, e.g. (1, 28, 28) or (D,)."""
        return tuple(self.x.shape[1:])

    def subset(self, indices: np.ndarray | Tensor | list[int]) -> ArrayDataset:
        """The samples at ``indices`` (in that order) as a new ``ArrayDataset`` (same name and classes)."""
        index = torch.as_tensor(np.asarray(indices), dtype=torch.int64)
        if index.ndim != 1:
            raise ValueError(f"indices must be one-dimensional, got shape {tuple(index.shape)}")
        if len(index) and (int(index.min()) < -len(self) or int(index.max()) >= len(self)):
            raise IndexError(
                f"indices must lie in [0, {len(self)}), got [{int(index.min())}, {int(index.max())}]"
            )
        return ArrayDataset(self.x[index], self.y[index], self.num_classes, self.name)
