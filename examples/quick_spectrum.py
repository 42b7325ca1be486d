"""Top-5 Hessian and GGN eigenvalues and an SLQ density of a scaled VGG on Fashion-MNIST (README).

Runs in well under a minute on 2 CPU cores: VGG-11 at width 1/16 (untrained, seeded), 256 training images as
the empirical pool, thick-restart Lanczos until every eigenvalue's error bound min(r, r²/δ) is ≤ 1e-3 × max|λ|
(its default stopping rule, docs/theory.md §5b), SLQ with 2 probes × 30 steps.
Usage: ``python examples/quick_spectrum.py`` (needs ``apt-get install -y dataset-fashion-mnist``).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from networks import GGNOperator, HessianOperator, slq_density, top_eigenpairs
from networks.data import batch_indices, load_dataset
from networks.models import build_model


def main() -> None:
    torch.manual_seed(0)
    start = time.perf_counter()
    data = load_dataset("fashion-mnist", train=True)
    pool = data.subset(batch_indices(len(data), 256, seed=0, index=0))
    model = build_model("vgg11", num_classes=10, in_channels=1, width=0.0625, dropout=0.0)
    loss_fn = nn.CrossEntropyLoss()
    batch = (pool.x, pool.y)  # one batch: the operators cache its first-backward graph

    hessian = HessianOperator(model, loss_fn, batch, bn_mode="eval")
    ggn = GGNOperator(model, loss_fn, batch, bn_mode="eval")
    print(f"VGG-11 width 1/16: P = {hessian.shape[0]:,} parameters, pool of {len(pool)} images")
    for name, op in (("Hessian", hessian), ("GGN", ggn)):
        res = top_eigenpairs(op, k=5, which="LA", tol=1e-3, seed=0, return_eigenvectors=False)
        print(
            f"top-5 {name:7s}: {np.array2string(res.eigenvalues, precision=4)}  "
            f"max error bound / max|λ| {np.max(res.error_bounds) / np.max(np.abs(res.eigenvalues)):.1e}, "
            f"{res.num_products} products"
        )
    density = slq_density(hessian, num_probes=2, num_steps=30, seed=0)
    mass = np.trapezoid(density.density, density.grid)
    print(
        f"SLQ density of H on [{density.grid[0]:.3g}, {density.grid[-1]:.3g}]: integrates to {mass:.3f}, "
        f"trace/P ≈ {density.moment(1):.4g}, {density.num_products} products"
    )
    print(f"wall time {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
