"""rmt.finite_horizon against direct simulation of the linear stochastic dynamics (docs/theory.md §3d).

The Monte Carlo draws fresh batches of B distinct samples from a finite pool of per-sample pairs (g_i, h_i)
and iterates torch's heavy-ball rule on the quadratic model; the predicted E ΔL_t must lie within 5 Monte
Carlo standard errors of the simulated mean at every step (the predictions are exact, so only sampling error
is tolerated).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rmt.finite_horizon import expected_loss_change, finite_horizon_max_lr
from rmt.mean_square import mean_square_max_lr, second_moment_radius


def _pool(seed: int, n: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-sample (g_i, h_i) of a pool of n along k directions (correlated, heavy-ish tails) and the
    evaluation gradient / curvature."""
    rng = np.random.default_rng(seed)
    h = rng.gamma(1.5, 1.0, size=(n, k)) * np.array([3.0, 1.0])[:k]
    g = 0.3 + 0.8 * rng.standard_normal((n, k)) + 0.2 * (h - h.mean(0))
    return g, h, g.mean(0) * 0.9, h.mean(0) * 1.1


def _stats(g: np.ndarray, h: np.ndarray) -> dict[str, np.ndarray]:
    gc, hc = g - g.mean(0), h - h.mean(0)
    return {
        "grad_mean": g.mean(0),
        "grad_variance": (gc**2).mean(0),
        "curvature_mean": h.mean(0),
        "curvature_variance": (hc**2).mean(0),
        "covariance": (gc * hc).mean(0),
    }


def _simulate(
    g: np.ndarray, h: np.ndarray, ge: np.ndarray, he: np.ndarray, lr: float, b: int, steps: int,
    warm: int, beta: float, reps: int, seed: int,
) -> np.ndarray:  # fmt: skip
    """ΔL_t (reps × steps) of the linear dynamics with fresh batches drawn without replacement."""
    rng = np.random.default_rng(seed)
    n, k = g.shape
    x, v = np.zeros((reps, k)), np.zeros((reps, k))
    out = np.empty((reps, steps))
    for t in range(warm + steps):
        idx = np.argsort(rng.random((reps, n)), axis=1)[:, :b]
        a, bb = g[idx].mean(1), h[idx].mean(1)
        eta = 0.0 if t < warm else lr
        v = beta * v + a + bb * x
        x = x - eta * v
        if t >= warm:
            out[:, t - warm] = (ge * x + 0.5 * he * x**2).sum(1)
    return out


@pytest.mark.parametrize(
    ("beta", "warm", "lr", "b"),
    [(0.0, 0, 0.25, 3), (0.0, 0, 0.45, 1), (0.9, 5, 0.03, 4), (0.5, 2, 0.12, 2)],
)
def test_expected_loss_matches_simulation(beta: float, warm: int, lr: float, b: int) -> None:
    g, h, ge, he = _pool(1, 12, 2)
    steps, reps = 12, 40_000
    sim = _simulate(g, h, ge, he, lr, b, steps, warm, beta, reps, seed=2)
    pred = expected_loss_change(
        lr, **_stats(g, h), eval_grad=ge, eval_curvature=he, batch_size=b, n_data=12, steps=steps,
        warmup_steps=warm, momentum=beta,
    )  # fmt: skip
    mean, se = sim.mean(0), sim.std(0, ddof=1) / np.sqrt(reps)
    assert np.all(np.abs(pred - mean) <= 5 * se + 1e-12), (pred, mean, se)


def test_noise_free_sgd_closed_form() -> None:
    """No batch noise: x_t = −(g/m)(1 − (1 − ηm)^t) exactly, so ΔL_t = g_e x_t + ½h_e x_t²."""
    m, gm, lr = np.array([2.0, 0.5]), np.array([0.4, -1.0]), 0.3
    zero = np.zeros(2)
    got = expected_loss_change(
        lr, grad_mean=gm, grad_variance=zero, curvature_mean=m, curvature_variance=zero, covariance=zero,
        eval_grad=gm, eval_curvature=m, batch_size=5, steps=7,
    )  # fmt: skip
    t = np.arange(1, 8)[:, None]
    x = -(gm / m) * (1 - (1 - lr * m) ** t)
    np.testing.assert_allclose(got, (gm * x + 0.5 * m * x**2).sum(1), rtol=1e-12)


@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_asymptotic_growth_is_the_mean_square_radius(beta: float) -> None:
    """Above the mean-square threshold the loss grows by the spectral radius of rmt.mean_square per step."""
    m, s2, b = 2.0, 3.0, 4
    method = "heavy_ball" if beta else "sgd"
    lr = 1.1 * float(mean_square_max_lr(m, s2, b, method=method, momentum=beta))
    path = expected_loss_change(
        lr, grad_mean=[0.0], grad_variance=[1.0], curvature_mean=[m], curvature_variance=[s2],
        covariance=[0.0], eval_grad=[0.0], eval_curvature=[1.0], batch_size=b, steps=300, momentum=beta,
    )  # fmt: skip
    path = np.asarray(path)
    assert path[-1] / path[-2] == pytest.approx(second_moment_radius(lr, m, s2 / b, beta), rel=1e-6)


def test_max_lr_is_the_first_crossing() -> None:
    g, h, ge, he = _pool(3, 16, 2)
    kw: dict[str, Any] = {
        **_stats(g, h), "eval_grad": ge, "eval_curvature": he, "batch_size": 4, "n_data": 16, "steps": 30,
        "warmup_steps": 5, "momentum": 0.9,
    }  # fmt: skip
    limit = 0.5
    eta = finite_horizon_max_lr(limit, rtol=1e-4, **kw)
    assert 1e-4 < eta < 1e2
    rates = np.geomspace(1e-4, eta, 200)
    assert np.all(np.asarray(expected_loss_change(rates, **kw)).max(axis=1) <= limit)
    assert np.max(expected_loss_change(eta * (1 + 2e-4), **kw)) > limit
    # a larger allowance can only raise the first crossing
    assert finite_horizon_max_lr(2 * limit, **kw) >= eta


def test_never_fires_gives_inf_and_lr_low_when_fired() -> None:
    kw: dict[str, Any] = {
        "grad_mean": [0.0], "grad_variance": [0.0], "curvature_mean": [1.0], "curvature_variance": [0.0],
        "covariance": [0.0], "eval_grad": [0.0], "eval_curvature": [1.0], "batch_size": 2,
    }  # fmt: skip
    assert finite_horizon_max_lr(0.1, **kw) == np.inf
    kw.update(grad_mean=[-5.0], eval_grad=[5.0])
    assert finite_horizon_max_lr(1e-9, lr_low=1e-2, **kw) == 1e-2


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"grad_variance": [-1.0]}, "grad_variance"),
        ({"covariance": [10.0]}, "covariance"),
        ({"eval_grad": [1.0, 2.0]}, "eval_grad"),
        ({"batch_size": 20}, "batch_size"),
        ({"momentum": 1.0}, "momentum"),
        ({"steps": 0}, "steps"),
        ({"grad_mean": [[1.0]]}, "grad_mean"),
    ],
)
def test_bad_input_names_the_argument(change: dict[str, Any], match: str) -> None:
    kw: dict[str, Any] = {
        "grad_mean": [0.1], "grad_variance": [1.0], "curvature_mean": [1.0], "curvature_variance": [1.0],
        "covariance": [0.5], "eval_grad": [0.1], "eval_curvature": [1.0], "batch_size": 2, "n_data": 10,
    }  # fmt: skip
    kw.update(change)
    with pytest.raises(ValueError, match=match):
        expected_loss_change(0.1, **kw)
    with pytest.raises(ValueError, match=match):
        finite_horizon_max_lr(0.5, **kw)
    with pytest.raises(TypeError, match="lr"):
        expected_loss_change("fast", **kw)
