"""Seeded Gaussian-mixture classification data (the MLP control experiment)."""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

from .dataset import ArrayDataset

MEAN_LAYOUTS = ("simplex", "random")


def _check(
    value: object,
    name: str,
    *,
    integer: bool,
    low: float,
    low_open: bool = False,
    high: float = math.inf,
    high_open: bool = False,
) -> float:
    kinds = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise TypeError(f"{name} must be {'an integer' if integer else 'a real number'}, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or (v <= low if low_open else v < low) or (v >= high if high_open else v > high):
        lo, hi = ("(" if low_open else "["), (")" if high_open or high == math.inf else "]")
        raise ValueError(f"{name} must be in {lo}{low}, {high}{hi}, got {value!r}")
    return v


def class_means(
    num_classes: int, dim: int, separation: float, layout: str, rng: np.random.Generator
) -> np.ndarray:
    """(C, D) class means, each of Euclidean norm ``separation``.

    "simplex": the C vertices of a regular simplex centred at 0 (pairwise distance
    separation·sqrt(2C/(C−1))), placed in R^D by a random isometry (needs D >= C − 1). "random": independent
    uniform directions on the sphere.
    """
    if layout == "simplex":
        if dim < num_classes - 1:
            raise ValueError(
                f"dim must be >= num_classes - 1 = {num_classes - 1} for simplex means, got {dim}"
            )
        centred = np.eye(num_classes) - 1.0 / num_classes
        u, s, _ = np.linalg.svd(centred)
        coords = u[:, : num_classes - 1] * s[: num_classes - 1]  # (C, C-1), same Gram matrix as `centred`
        basis, _ = np.linalg.qr(rng.standard_normal((dim, max(num_classes - 1, 1))))
        means = coords @ basis[:, : num_classes - 1].T
        norms = np.linalg.norm(means, axis=1, keepdims=True)
        return separation * np.divide(means, norms, out=np.zeros_like(means), where=norms > 0)
    directions = rng.standard_normal((num_classes, dim))
    return separation * directions / np.linalg.norm(directions, axis=1, keepdims=True)


def gaussian_mixture(
    n_samples: int = 10000,
    num_classes: int = 10,
    dim: int = 100,
    *,
    separation: float = 3.0,
    noise_std: float = 1.0,
    means: str = "simplex",
    label_noise: float = 0.0,
    seed: int = 0,
    train: bool = True,
) -> ArrayDataset:
    """Samples x = μ_y + noise_std·ε, ε ~ N(0, I_D), with balanced labels y and optional label noise.

    Args:
        n_samples: N.
        num_classes: C >= 2.
        dim: input dimension D.
        separation: ‖μ_c‖ for every class (see :func:`class_means`).
        noise_std: isotropic noise standard deviation.
        means: "simplex" or "random" mean layout.
        label_noise: probability that a sample's label is replaced by a uniformly chosen DIFFERENT class
            (the input keeps its original class mean).
        seed: the means use stream SeedSequence([seed, 0]); samples of the training split [seed, 1], of
            the test split [seed, 2] — so both splits share the means and are independent of each other.
        train: which split.

    Returns:
        ArrayDataset with x float32 (N, D), y int64 (N,); labels are balanced (each class N/C ± 1 before
        label noise) and shuffled.
    """
    n = int(_check(n_samples, "n_samples", integer=True, low=1))
    c = int(_check(num_classes, "num_classes", integer=True, low=2))
    d = int(_check(dim, "dim", integer=True, low=1))
    sep = _check(separation, "separation", integer=False, low=0.0)
    sd = _check(noise_std, "noise_std", integer=False, low=0.0)
    flip = _check(label_noise, "label_noise", integer=False, low=0.0, high=1.0)
    s = int(_check(seed, "seed", integer=True, low=0))
    if means not in MEAN_LAYOUTS:
        raise ValueError(f"means must be one of {list(MEAN_LAYOUTS)}, got {means!r}")
    mu = class_means(c, d, sep, means, np.random.default_rng(np.random.SeedSequence([s, 0])))
    rng = np.random.default_rng(np.random.SeedSequence([s, 1 if train else 2]))
    true_class = rng.permutation(np.arange(n) % c)
    x = mu[true_class] + sd * rng.standard_normal((n, d))
    y = true_class.copy()
    flipped = rng.random(n) < flip
    y[flipped] = (true_class[flipped] + rng.integers(1, c, size=int(flipped.sum()))) % c
    name = f"gaussian-mixture-C{c}-D{d}-{'train' if train else 'test'}"
    return ArrayDataset(torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64)), c, name)
