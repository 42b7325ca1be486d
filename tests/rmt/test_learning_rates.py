"""Tests of rmt.learning_rates: stability thresholds against simulated iterations, Polyak's optimum, the
Gaussian least-squares mean-square threshold against a Monte-Carlo second-moment recursion, batch laws."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmt.learning_rates import (
    adam_max_lr_vs_batch,
    adam_preconditioner,
    adam_reversion_batch_size,
    batch_regime,
    batch_top_curvature,
    local_exponent,
    ls_mean_square_growth,
    ls_mean_square_threshold,
    max_lr,
    max_lr_vs_batch,
    mccandlish_max_lr,
    min_damping,
    model_critical_batch_size,
    noise_edge_curvature,
    polyak_heavy_ball,
    stability_constant,
)
from rmt.wigner import batch_hessian_extremal, critical_batch_size, kappa
from rmt.wishart import batch_ggn_extremal


# ----------------------------------------------------------------------------------------------------------
# 1-D iterations written exactly as the optimizers do them (PyTorch conventions), no characteristic polynomial
# ----------------------------------------------------------------------------------------------------------
def _step(
    method: str, lr: float, curvature: float, beta: float, w: float, buf: float, bias: float = 1.0
) -> tuple[float, float]:
    """One optimizer step on f(w) = curvature·w²/2, written as the optimizer does it (no polynomial)."""
    g = curvature * w
    if method == "sgd":
        return w - lr * g, buf
    if method == "heavy_ball":  # torch.optim.SGD(momentum=β): buf ← β buf + g; w ← w − lr·buf
        buf = beta * buf + g
        return w - lr * buf, buf
    if method == "nesterov":  # torch.optim.SGD(momentum=β, nesterov=True): w ← w − lr·(g + β buf)
        buf = beta * buf + g
        return w - lr * (g + beta * buf), buf
    # Adam's first moment (EMA) with bias correction 1 − β₁ᵗ; curvature = λ/p is already preconditioned
    buf = beta * buf + (1.0 - beta) * g
    return w - lr * buf / bias, buf


def _diverges(method: str, lr: float, curvature: float, beta: float, steps: int = 2500) -> bool:
    """Run the optimizer from w = 1; True if the state (w, lr·buffer) is larger after 2T steps than after T
    (asymptotic growth; early transients, e.g. from Adam's bias correction, cancel)."""
    w, buf, log_scale = 1.0, 0.0, 0.0
    log_norm_half = 0.0
    for t in range(1, 2 * steps + 1):
        w, buf = _step(method, lr, curvature, beta, w, buf, bias=1.0 - beta**t if method == "adam" else 1.0)
        norm = math.hypot(w, lr * buf)
        if norm == 0.0:  # exact convergence (e.g. GD with ηλ = 1)
            return False
        if norm > 1e100 or norm < 1e-100:  # the iteration is linear in (w, buf): rescale and keep the log
            w, buf, log_scale = w / norm, buf / norm, log_scale + math.log(norm)
        if t == steps:
            log_norm_half = log_scale + math.log(math.hypot(w, lr * buf))
    return log_scale + math.log(math.hypot(w, lr * buf)) > log_norm_half


def _simulated_threshold(method: str, curvature: float, beta: float) -> float:
    """Bisection (on log lr) of the simulated stability boundary, bracket [1e-3, 1e3]/curvature."""
    lo, hi = math.log(1e-3 / curvature), math.log(1e3 / curvature)
    assert not _diverges(method, math.exp(lo), curvature, beta)
    assert _diverges(method, math.exp(hi), curvature, beta)
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        if _diverges(method, math.exp(mid), curvature, beta):
            hi = mid
        else:
            lo = mid
    return math.exp(0.5 * (lo + hi))


# Comparing ‖s_2T‖ with ‖s_T‖ (T = 2500) resolves the spectral radius to |ρ − 1| ≲ ln(2)/T ≈ 3e-4 (by step T
# the dominant root dominates; the ratio's prefactor is within 2×). At every boundary below |dρ/d ln(ηλ)| ≥ 1
# (SGD: 2; heavy ball: h*/(1 − β); Nesterov: h*(1+2β)²/(1+3β); Adam: h*), so the simulated threshold is within
# ~3e-4 in log η of the exact one (30 halvings of a 13.8-wide bracket add 1e-8).
SIM_RTOL = 3e-3


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "beta"),
    [
        ("sgd", 0.0),
        ("heavy_ball", 0.0),
        ("heavy_ball", 0.5),
        ("heavy_ball", 0.9),
        ("heavy_ball", 0.99),
        ("nesterov", 0.3),
        ("nesterov", 0.9),
        ("adam", 0.0),
        ("adam", 0.5),
        ("adam", 0.9),
    ],
)
def test_max_lr_matches_simulated_stability_boundary(method: str, beta: float) -> None:
    curvature = 3.7
    simulated = _simulated_threshold(method, curvature, beta)
    if method == "adam":
        predicted = max_lr(curvature, method="adam", beta1=beta)
    else:
        predicted = max_lr(curvature, method=method, momentum=beta)
    assert simulated == pytest.approx(predicted, rel=SIM_RTOL)


@settings(max_examples=60)
@given(
    method=st.sampled_from(["sgd", "heavy_ball", "nesterov", "adam"]),
    beta=st.floats(0.0, 0.99),
    curvature=st.floats(1e-2, 1e2),
)
def test_max_lr_is_where_the_step_map_loses_stability(method: str, beta: float, curvature: float) -> None:
    """Spectral radius of the linear map (w, buf) ↦ one step (built by stepping the basis states) crosses 1
    exactly at max_lr: below at 0.999·η_max, above at 1.001·η_max."""
    beta = 0.0 if method == "sgd" else beta
    kwargs = {"beta1": beta} if method == "adam" else {"momentum": beta}
    eta = float(max_lr(curvature, method=method, **kwargs))

    def radius(lr: float) -> float:
        if method == "sgd":  # no buffer: the state is w alone
            return abs(_step(method, lr, curvature, beta, 1.0, 0.0)[0])
        columns = [_step(method, lr, curvature, beta, w, buf) for w, buf in ((1.0, 0.0), (0.0, 1.0))]
        return float(np.max(np.abs(np.linalg.eigvals(np.array(columns).T))))

    assert radius(0.999 * eta) < 1.0 < radius(1.001 * eta)


def test_stability_constants_closed_forms() -> None:
    assert stability_constant("sgd") == 2.0
    assert stability_constant("heavy_ball", 0.9) == pytest.approx(3.8)
    assert stability_constant("nesterov", 0.9) == pytest.approx(3.8 / 2.8)
    assert stability_constant("adam", beta1=0.9) == pytest.approx(38.0)
    assert stability_constant("nesterov", 0.0) == stability_constant("heavy_ball", 0.0) == 2.0
    assert (
        stability_constant("adam", beta1=0.0) == 2.0
    )  # no momentum, frozen preconditioner: preconditioned GD
    # momentum 0.9 multiplies the saturated SGD threshold by 1.9 (docs/validation.md §4 mechanism check)
    assert max_lr(5.0, "heavy_ball", 0.9) / max_lr(5.0) == pytest.approx(1.9)
    betas = np.array([0.0, 0.5, 0.9])
    np.testing.assert_allclose(max_lr(2.0, "heavy_ball", betas), 1.0 + betas)
    assert isinstance(max_lr(2.0), float)


@pytest.mark.slow  # importing torch + torch.optim dominates (~10 s on a contended 2-core box; shared)
def test_torch_optimizers_follow_the_simulated_convention() -> None:
    """torch.optim.SGD (momentum, nesterov) is stable just below and unstable just above the formula."""
    torch = pytest.importorskip("torch")
    curvature, beta, steps = 2.0, 0.9, 400  # 5% off the boundary: |ρ − 1| ≥ 0.05 (see SIM_RTOL note)

    def torch_diverges(lr: float, nesterov: bool) -> bool:
        w = torch.nn.Parameter(torch.ones((), dtype=torch.float64))
        opt = torch.optim.SGD([w], lr=lr, momentum=beta, nesterov=nesterov)
        for _ in range(steps):
            opt.zero_grad()
            (0.5 * curvature * w**2).backward()
            opt.step()
        return bool(abs(w.item()) > 1.0)

    for nesterov, method in ((False, "heavy_ball"), (True, "nesterov")):
        eta = float(max_lr(curvature, method, beta))
        assert not torch_diverges(0.95 * eta, nesterov)
        assert torch_diverges(1.05 * eta, nesterov)


# ----------------------------------------------------------------------------------------------------------
# Polyak's heavy ball
# ----------------------------------------------------------------------------------------------------------
def _heavy_ball_rate(lr: float, beta: float, mu: float, big_l: float, steps: int = 2000) -> float:
    """Empirical rate (‖x_2T‖/‖x_T‖)^(1/T) of heavy ball on diag(μ, L), renormalising to avoid underflow."""
    curv = np.array([mu, big_l])
    x, buf = np.array([1.0, 1.0]), np.zeros(2)
    log_norm = 0.0
    for t in range(2 * steps):
        buf = beta * buf + curv * x
        x = x - lr * buf
        scale = math.hypot(*x, *(lr * buf))
        x, buf = x / scale, buf / scale
        if t >= steps:
            log_norm += math.log(scale)
    return math.exp(log_norm / steps)


@pytest.mark.parametrize(("mu", "big_l"), [(1.0, 100.0), (0.5, 8.0)])
def test_polyak_rate_and_optimality(mu: float, big_l: float) -> None:
    lr, beta = (float(v) for v in polyak_heavy_ball(big_l, mu))
    assert lr == pytest.approx(4.0 / (math.sqrt(big_l) + math.sqrt(mu)) ** 2)
    optimal = (math.sqrt(big_l) - math.sqrt(mu)) / (math.sqrt(big_l) + math.sqrt(mu))
    assert beta == pytest.approx(optimal**2)
    steps = 2000
    # double roots at μ and L (Jordan blocks): ‖x_t‖ ∝ (a + b t) ρ^t, so the ratio estimate is within a factor
    # 3^(±1/T) of ρ for T ≫ |a/b|
    slack = 3.0 ** (1.0 / steps)
    rate = _heavy_ball_rate(lr, beta, mu, big_l, steps)
    assert optimal / slack <= rate <= optimal * slack
    for d_lr, d_beta in ((1.05, 0.0), (0.95, 0.0), (1.0, 0.03), (1.0, -0.03), (1.05, 0.03), (0.95, -0.03)):
        neighbour = _heavy_ball_rate(lr * d_lr, beta + d_beta, mu, big_l, steps)
        assert neighbour > rate * slack


# ----------------------------------------------------------------------------------------------------------
# Gaussian least squares, SGD with replacement: mean-square threshold
# ----------------------------------------------------------------------------------------------------------
def _second_moment_operator(batch_hessians: np.ndarray, lr: float) -> np.ndarray:
    """Monte-Carlo estimate of S ↦ E[(I − ηĤ) S (I − ηĤ)] as a d²×d² matrix (row-major vec)."""
    m, d, _ = batch_hessians.shape
    mean_h = batch_hessians.mean(axis=0)
    flat = batch_hessians.reshape(m, d * d)
    k4 = (flat.T @ flat / m).reshape(d, d, d, d)  # E[Ĥ_ij Ĥ_kl]
    kron = k4.transpose(0, 2, 1, 3).reshape(d * d, d * d)  # E[Ĥ ⊗ Ĥ]
    eye = np.eye(d)
    linear = np.kron(mean_h, eye) + np.kron(eye, mean_h)
    return np.eye(d * d) - lr * linear + lr**2 * kron


def _mc_mean_square_threshold(batch_hessians: np.ndarray) -> float:
    """Bisect the upper root of spectral_radius(second-moment operator) = 1."""

    def radius(lr: float) -> float:
        return float(np.max(np.abs(np.linalg.eigvals(_second_moment_operator(batch_hessians, lr)))))

    lo, hi = 1e-3, 2.0
    assert radius(lo) < 1.0 < radius(hi)
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if radius(mid) > 1.0 else (mid, hi)
    return 0.5 * (lo + hi)


def _gaussian_batch_hessians(rng: np.random.Generator, n: int, batch: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, batch, dim))
    return np.einsum("nbi,nbj->nij", x, x) / batch


@pytest.mark.parametrize(("batch", "dim"), [(1, 4), (3, 4), (8, 6)])
def test_ls_mean_square_threshold_matches_monte_carlo_recursion(batch: int, dim: int) -> None:
    rng = np.random.default_rng(1234 + 10 * batch + dim)
    groups, per_group = 16, 2500
    estimates = np.array(
        [
            _mc_mean_square_threshold(_gaussian_batch_hessians(rng, per_group, batch, dim))
            for _ in range(groups)
        ]
    )
    standard_error = estimates.std(ddof=1) / math.sqrt(groups)
    predicted = ls_mean_square_threshold(batch, dim)
    assert predicted == pytest.approx(2.0 * batch / (batch + dim + 1.0))
    # CLT over independent groups: 5 standard errors
    assert abs(estimates.mean() - predicted) < 5.0 * standard_error
    assert standard_error < 0.02 * predicted  # the check has power


def test_ls_growth_factor_matches_simulated_sgd() -> None:
    """E‖e_T‖² over seeded SGD trajectories shrinks below η_MS and grows above it, at the predicted rate."""
    rng = np.random.default_rng(7)
    dim, batch, steps, reps = 4, 2, 6, 40000
    eta_ms = ls_mean_square_threshold(batch, dim)
    for factor in (0.7, 1.3):
        lr = factor * eta_ms
        e = np.zeros((reps, dim))
        e[:, 0] = 1.0
        for _ in range(steps):
            x = rng.standard_normal((reps, batch, dim))
            grad = np.einsum("rbi,rb->ri", x, np.einsum("rbi,ri->rb", x, e)) / batch
            e = e - lr * grad
        sq = np.sum(e**2, axis=1)
        growth = ls_mean_square_growth(lr, batch, dim)
        assert (growth < 1.0) == (factor < 1.0)
        # heavy-tailed products: compare on log scale with a loose (relative 15%) band per step
        assert math.log(sq.mean()) / steps == pytest.approx(
            math.log(growth), abs=0.15 * abs(math.log(growth))
        )


# ----------------------------------------------------------------------------------------------------------
# Batch-size laws
# ----------------------------------------------------------------------------------------------------------
LAM, SIGMA2, P = 5.0, 1.0, 2000.0
B_GRID = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0, 65536.0])


@settings(max_examples=40)
@given(
    lam=st.floats(0.1, 50.0),
    sigma2=st.floats(0.01, 10.0),
    n_params=st.integers(10, 100_000),
    model=st.sampled_from(["additive", "multiplicative"]),
    method=st.sampled_from(["sgd", "heavy_ball", "nesterov"]),
)
def test_max_lr_is_nondecreasing_in_batch_size(
    lam: float, sigma2: float, n_params: int, model: str, method: str
) -> None:
    momentum = 0.0 if method == "sgd" else 0.9
    eta = np.asarray(
        max_lr_vs_batch(B_GRID, lam, sigma2, n_params, model=model, method=method, momentum=momentum)
    )
    assert np.all(np.diff(eta) >= -1e-12 * eta[1:])
    assert np.all(eta <= stability_constant(method, momentum) / lam * (1 + 1e-12))  # never above the plateau


def test_max_lr_vs_batch_uses_the_model_curvature() -> None:
    eta = max_lr_vs_batch(B_GRID, LAM, SIGMA2, P, model="additive", method="heavy_ball", momentum=0.9)
    np.testing.assert_allclose(eta, 3.8 / batch_hessian_extremal(LAM, SIGMA2, P, B_GRID), rtol=1e-14)
    eta = max_lr_vs_batch(B_GRID, LAM, SIGMA2, P, model="multiplicative", outputs_per_sample=3)
    np.testing.assert_allclose(eta, 2.0 / batch_ggn_extremal(LAM, SIGMA2, P, B_GRID, 3), rtol=1e-14)
    # docs/theory.md check value: P = 2000, σ² = 1, B = 200, λ = 5 → λ' = 7 → η_SGD = 2/7
    assert max_lr_vs_batch(200, LAM, SIGMA2, P) == pytest.approx(2.0 / 7.0)


def test_large_batch_limits() -> None:
    for model in ("additive", "multiplicative"):
        eta = max_lr_vs_batch(1e12, LAM, SIGMA2, P, model=model)
        assert eta == pytest.approx(2.0 / LAM, rel=1e-6)
    # finite pool: the full batch has no noise, exactly 2/λ
    assert max_lr_vs_batch(5000, LAM, SIGMA2, P, n_data=5000) == pytest.approx(2.0 / LAM, rel=1e-14)


def test_additive_edge_regime_has_exponent_one_half() -> None:
    b_star = critical_batch_size(LAM, SIGMA2, P)  # 80
    small = B_GRID[B_GRID < b_star / 2]
    eta = max_lr_vs_batch(small, LAM, SIGMA2, P)
    np.testing.assert_allclose(local_exponent(small, eta), 0.5, atol=1e-12)
    np.testing.assert_allclose(eta, np.sqrt(small) / np.sqrt(P * SIGMA2), rtol=1e-12)  # 2/(2ν)
    assert np.all(batch_regime(small, LAM, SIGMA2, P) == "edge")
    # the additive model never gives an exponent above 1/2 (docs/theory.md §3 caution)
    grid = np.geomspace(1, 1e5, 200)
    assert np.all(local_exponent(grid, max_lr_vs_batch(grid, LAM, SIGMA2, P)) <= 0.5 + 1e-3)


def test_multiplicative_exponent_tends_to_one_for_many_parameters() -> None:
    grid = np.geomspace(1.0, 4.0, 41)  # spacing ratio 1.035: finite-difference error O(1e-4)
    for n_params, outputs in ((1e4, 1), (1e6, 1), (1e8, 10)):
        q = n_params / (grid * outputs)
        eta = max_lr_vs_batch(grid, LAM, SIGMA2, n_params, model="multiplicative", outputs_per_sample=outputs)
        assert np.all(batch_regime(grid, LAM, SIGMA2, n_params, model="multiplicative",
                                   outputs_per_sample=outputs) == "edge")  # fmt: skip
        # edge branch σ²(1 + √q)²: d log η / d log B = √q/(1 + √q) exactly
        np.testing.assert_allclose(local_exponent(grid, eta), np.sqrt(q) / (1 + np.sqrt(q)), atol=2e-4)
    assert local_exponent(grid, eta).min() > 0.999
    # outlier branch λ(1 + qσ²/(λ − σ²)), needs λ > σ²(1 + √q): exponent 1/(1 + (λ − σ²)/(qσ²)) → 1 for P ≫ BC
    big_lam, n_params = 3e4, 1e8
    q = n_params / grid
    eta = max_lr_vs_batch(grid, big_lam, SIGMA2, n_params, model="multiplicative")
    assert np.all(batch_regime(grid, big_lam, SIGMA2, n_params, model="multiplicative") == "outlier")
    exact = 1.0 / (1.0 + (big_lam - SIGMA2) / (q * SIGMA2))
    np.testing.assert_allclose(local_exponent(grid, eta), exact, atol=2e-4)
    assert local_exponent(grid, eta).min() > 0.998


def test_mccandlish_form_from_the_additive_outlier_regime() -> None:
    b_star = critical_batch_size(LAM, SIGMA2, P)
    above = B_GRID[B_GRID > b_star]
    for method, momentum in (("sgd", 0.0), ("heavy_ball", 0.9), ("nesterov", 0.5)):
        eta = max_lr_vs_batch(above, LAM, SIGMA2, P, method=method, momentum=momentum)
        eta_inf = max_lr(LAM, method, momentum)
        np.testing.assert_allclose(eta, mccandlish_max_lr(above, eta_inf, b_star), rtol=1e-13)
    assert np.all(batch_regime(above, LAM, SIGMA2, P) == "outlier")
    assert mccandlish_max_lr(80.0, 0.4, 80.0) == pytest.approx(0.2)
    assert mccandlish_max_lr(10.0, 0.4, 0.0) == pytest.approx(0.4)


def test_critical_batch_sizes_and_regimes() -> None:
    assert model_critical_batch_size(LAM, SIGMA2, P) == pytest.approx(80.0)
    # multiplicative: λ = σ²(1 + √q*) → q* = (λ/σ² − 1)² = 16 → B* = P/(C q*)
    b_mult = model_critical_batch_size(LAM, SIGMA2, P, model="multiplicative", outputs_per_sample=5)
    assert b_mult == pytest.approx(P / (5 * 16.0))
    assert (
        batch_regime(b_mult * 1.001, LAM, SIGMA2, P, model="multiplicative", outputs_per_sample=5)
        == "outlier"
    )
    assert (
        batch_regime(b_mult * 0.999, LAM, SIGMA2, P, model="multiplicative", outputs_per_sample=5) == "edge"
    )
    assert model_critical_batch_size(0.5, SIGMA2, P, model="multiplicative") == math.inf
    assert batch_regime(81.0, LAM, SIGMA2, P) == "outlier" and batch_regime(79.0, LAM, SIGMA2, P) == "edge"
    top = batch_top_curvature(b_mult * 0.999, LAM, SIGMA2, P, model="multiplicative", outputs_per_sample=5)
    edge = noise_edge_curvature(b_mult * 0.999, SIGMA2, P, model="multiplicative", outputs_per_sample=5)
    assert top == pytest.approx(edge)


def test_local_exponent_of_power_laws() -> None:
    b = np.array([1.0, 3.0, 10.0, 50.0])
    np.testing.assert_allclose(local_exponent(b, 2.0 * b**0.7), 0.7, atol=1e-12)
    np.testing.assert_allclose(local_exponent(b[:2], b[:2] ** -1.0), -1.0, atol=1e-12)


# ----------------------------------------------------------------------------------------------------------
# Adam and damping
# ----------------------------------------------------------------------------------------------------------
def test_adam_sqrt_curvature_form() -> None:
    eta = adam_max_lr_vs_batch(B_GRID, LAM, SIGMA2, P, model="multiplicative", form="sqrt_curvature")
    curvature = batch_ggn_extremal(LAM, SIGMA2, P, B_GRID)
    np.testing.assert_allclose(eta, 38.0 / np.sqrt(curvature), rtol=1e-13)
    grid = np.geomspace(1, 4, 20)
    slope = local_exponent(grid, adam_max_lr_vs_batch(grid, LAM, SIGMA2, 1e8, model="multiplicative",
                                                      form="sqrt_curvature"))  # fmt: skip
    np.testing.assert_allclose(slope, 0.5, atol=1e-3)  # ∝ √B while λ' ∝ 1/B


def test_adam_second_moment_form_exponents_and_reversion() -> None:
    grid = np.geomspace(1, 64, 25)
    n_params = 1e8  # multiplicative SGD exponent ≈ 1 on this grid
    sgd = local_exponent(grid, max_lr_vs_batch(grid, LAM, SIGMA2, n_params, model="multiplicative"))
    # pure-noise preconditioner (g = 0, ε = 0): exponent = SGD's − 1/2
    noisy = adam_max_lr_vs_batch(
        grid, LAM, SIGMA2, n_params, model="multiplicative", grad_sq=0.0, grad_var=1.0, eps=0.0
    )
    np.testing.assert_allclose(local_exponent(grid, noisy), sgd - 0.5, atol=1e-6)
    # large ε: the preconditioner is constant and Adam reverts to SGD scaling, η_adam = (38 ε / 2) η_SGD; the
    # residual exponent of p is −½ √(B_rev/B)/(1 + √(B_rev/B)) ≈ −5e-6 at B_rev = 1e-10
    eps = 1e5
    assert adam_reversion_batch_size(0.0, 1.0, eps) == pytest.approx(1e-10)
    reverted = adam_max_lr_vs_batch(
        grid, LAM, SIGMA2, n_params, model="multiplicative", grad_sq=0.0, grad_var=1.0, eps=eps
    )
    np.testing.assert_allclose(local_exponent(grid, reverted), sgd, atol=1e-5)
    sgd_eta = max_lr_vs_batch(grid, LAM, SIGMA2, n_params, model="multiplicative")
    np.testing.assert_allclose(reverted, 19.0 * eps * sgd_eta, rtol=2e-5)
    # at B_rev the noise part √(s κ) equals the floor |g| + ε, so p = √(g² + (|g| + ε)²) + ε
    for n_data in (None, 10_000.0):
        b_rev = adam_reversion_batch_size(0.04, 3.0, 0.1, n_data=n_data)
        assert 3.0 * kappa(b_rev, n_data) == pytest.approx(0.3**2)
        assert adam_preconditioner(b_rev, 0.04, 3.0, 0.1, n_data=n_data) == pytest.approx(
            math.sqrt(0.13) + 0.1
        )
    assert adam_reversion_batch_size(0.04, 3.0, 0.1) == pytest.approx(3.0 / 0.09)


def test_min_damping_scales_like_lr_over_batch_in_the_multiplicative_model() -> None:
    grid = np.geomspace(1, 16, 9)
    delta = min_damping(0.1, grid, SIGMA2, 1e8, model="multiplicative")
    assert np.all(local_exponent(grid, delta) < -0.999)  # δ_min ∝ η/B
    np.testing.assert_allclose(min_damping(0.2, grid, SIGMA2, 1e8, model="multiplicative"), 2 * delta)
    delta_add = min_damping(0.1, grid, SIGMA2, 1e4, model="additive")
    np.testing.assert_allclose(local_exponent(grid, delta_add), -0.5, atol=1e-12)  # δ_min ∝ η/√B
    # at δ_min a flat direction sits exactly on the SGD / heavy-ball bound: (η/δ) λ_noise = c
    flat = noise_edge_curvature(grid, SIGMA2, 1e8, model="multiplicative")
    np.testing.assert_allclose(0.1 / delta * flat, 2.0, rtol=1e-13)
    delta_hb = min_damping(0.1, grid, SIGMA2, 1e8, model="multiplicative", method="heavy_ball", momentum=0.9)
    np.testing.assert_allclose(delta_hb, delta / 1.9, rtol=1e-13)


# ----------------------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: max_lr(-1.0), ValueError, "curvature"),
        (lambda: max_lr(0.0), ValueError, "curvature"),
        (lambda: max_lr("big"), TypeError, "curvature"),
        (lambda: max_lr(1.0, "adagrad"), ValueError, "method"),
        (lambda: max_lr(1.0, "heavy_ball", 1.0), ValueError, "momentum"),
        (lambda: max_lr(1.0, "heavy_ball", -0.1), ValueError, "momentum"),
        (lambda: max_lr(1.0, "sgd", 0.9), ValueError, "momentum"),
        (lambda: max_lr(1.0, "adam", beta1=1.0), ValueError, "beta1"),
        (lambda: polyak_heavy_ball(1.0, 2.0), ValueError, "mu"),
        (lambda: polyak_heavy_ball(1.0, 0.0), ValueError, "mu"),
        (lambda: ls_mean_square_threshold(0, 3), ValueError, "batch_size"),
        (lambda: ls_mean_square_threshold(2, 0), ValueError, "dim"),
        (lambda: max_lr_vs_batch([1, 2], 5, 1, 100, model="linear"), ValueError, "model"),
        (lambda: max_lr_vs_batch([1, 2], 5, 1, 100, method="adam"), ValueError, "adam_max_lr_vs_batch"),
        (lambda: max_lr_vs_batch([0.5], 5, 1, 100), ValueError, "batch_size"),
        (
            lambda: max_lr_vs_batch([1, 2], 5, 1, 100, model="multiplicative", n_data=1000),
            ValueError,
            "n_data",
        ),
        (lambda: max_lr_vs_batch([1, 2000], 5, 1, 100, n_data=1000), ValueError, "batch_size"),
        (lambda: mccandlish_max_lr(4, -1.0, 2.0), ValueError, "eta_inf"),
        (lambda: mccandlish_max_lr(4, 1.0, -2.0), ValueError, "b_noise"),
        (lambda: local_exponent([1, 1, 2], [1, 2, 3]), ValueError, "increasing"),
        (lambda: local_exponent([1, 2], [1, 2, 3]), ValueError, "values"),
        (lambda: local_exponent([1], [1]), ValueError, "batch_sizes"),
        (lambda: local_exponent([1, 2], [1, -2]), ValueError, "values"),
        (lambda: adam_max_lr_vs_batch([1, 2], 5, 1, 100), ValueError, "grad_sq"),
        (lambda: adam_max_lr_vs_batch([1, 2], 5, 1, 100, form="cube"), ValueError, "form"),
        (lambda: adam_reversion_batch_size(0.0, 1.0, 0.0), ValueError, "grad_sq"),
        (lambda: min_damping(0.0, 4, 1, 100), ValueError, "lr"),
    ],
)
def test_bad_input_is_rejected_with_the_argument_name(
    call: Callable[[], object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        call()
