"""Study your own network: a model class and a data source defined in this file, outside the package.

Python:   python examples/own_model.py            (writes runs/own-model: report.md, figures/, records/)
Command:  batchrmt run --config examples/own_model.toml --out runs/own-model-cli

The model is a small CNN defined here; the data are the first images of Fashion-MNIST (Debian package
``dataset-fashion-mnist``). The study uses the network's weights as given (``train=False``): pass trained
weights, or ``train=True`` to pre-train to the config's loss levels first.
"""

from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    """conv(1→w) → ReLU → pool → conv(w→2w) → ReLU → global pool → linear(2w→10)."""

    def __init__(self, width: int = 8, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def make_model(width: int = 8) -> nn.Module:
    """The factory a config names as ``own_model.py:make_model``."""
    torch.manual_seed(0)
    return SmallCNN(width)


def make_data(n_samples: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n_samples`` Fashion-MNIST training images (normalised) and labels."""
    from networks.data import load_dataset

    data = load_dataset("fashion-mnist", train=True)
    return data.x[:n_samples], data.y[:n_samples]


if __name__ == "__main__":
    from validation.study import run_study

    result = run_study(
        make_model(),
        make_data(),
        config="smoke",
        overrides=["pool_size=256", "sweep.batch_sizes=[1, 2, 4, 8, 16, 32, 64]"],
        out="runs/own-model",
        quiet=False,
    )
    for row in result.rows:
        print(row)
    print(f"report: {result.report}; figures: {[str(p) for p in result.figures]}")
