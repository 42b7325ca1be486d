"""rmt.mean_square against its sympy derivation, the second-moment map, and Monte Carlo of the exact random
recursions with fresh batches drawn without replacement from a finite population (docs/theory.md §3b)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmt.mean_square import (
    mean_square_max_lr,
    multi_direction_max_lr,
    noise_gain,
    second_moment_matrix,
    second_moment_radius,
    single_sample_moments,
)
from rmt.symbolic import derivation
from rmt.wigner import kappa

POPULATION = np.array([0.2, 0.3, 0.5, 0.6, 0.9, 1.4, 2.5, 4.0])
"""A skewed finite population of per-sample curvatures (N = 8): noise comparable to the mean at B = 2."""


def _batch_means(population: np.ndarray, b: int) -> np.ndarray:
    """h_B of each of the C(N, B) batches: the exact distribution of a batch drawn without replacement."""
    return np.array([population[list(c)].mean() for c in itertools.combinations(range(population.size), b)])


def _power_moment_matrix(a_powers: list[float], beta: float, degree: int) -> np.ndarray:
    """Exact map of the degree-d monomials (x_t^{d−j} x_{t−1}^j)_j of x_{t+1} = a x_t − β x_{t−1} with a
    independent of the past: E[x_{t+1}^{d−j} x_t^j] = Σ_k C(d−j, k) E[a^k] (−β)^{d−j−k} x_t^{k+j}
    x_{t−1}^{d−j−k}. ``a_powers[k]`` = E a^k."""
    out = np.zeros((degree + 1, degree + 1))
    for j in range(degree + 1):
        for k in range(degree - j + 1):
            # monomial x_t^{k+j} x_{t-1}^{d-j-k} has index d − (k + j)
            out[j, degree - (k + j)] += math.comb(degree - j, k) * a_powers[k] * (-beta) ** (degree - j - k)
    return out


def _exact_moment(lr: float, beta: float, b: int, steps: int, degree: int) -> float:
    """E x_T^degree from x_0 = x_{−1} = 1, exactly (enumerated batches)."""
    a = 1.0 + beta - lr * _batch_means(POPULATION, b)
    powers = [float(np.mean(a**k)) for k in range(degree + 1)]
    matrix = _power_moment_matrix(powers, beta, degree)
    state = np.ones(degree + 1)
    for _ in range(steps):
        state = matrix @ state
    return float(state[0])


def _simulate(lr: float, beta: float, b: int, steps: int, replicates: int, seed: int) -> np.ndarray:
    """x_T² of ``replicates`` independent runs of x_{t+1} = (1 + β − ηh_{B,t}) x_t − β x_{t−1},
    x_0 = x_{−1} = 1, each step a fresh batch of B distinct samples of the population."""
    rng = np.random.default_rng(seed)
    x, prev = np.ones(replicates), np.ones(replicates)
    for _ in range(steps):
        idx = np.argsort(rng.random((replicates, POPULATION.size)), axis=1)[:, :b]
        h = POPULATION[idx].mean(axis=1)
        x, prev = (1.0 + beta - lr * h) * x - beta * prev, x
    return np.asarray(x**2)


def _threshold(beta: float, b: int) -> float:
    m = float(POPULATION.mean())
    s2 = float(POPULATION.var())  # population variance (ddof 0)
    method = "sgd" if beta == 0 else "heavy_ball"
    return float(mean_square_max_lr(m, s2, b, POPULATION.size, method=method, momentum=beta))


@pytest.mark.parametrize(("beta", "b", "steps"), [(0.0, 2, 3), (0.0, 4, 4), (0.5, 2, 4), (0.5, 4, 6)])
def test_monte_carlo_second_moment_grows_above_and_shrinks_below(beta: float, b: int, steps: int) -> None:
    """Monte Carlo mean of x_T² over R runs against 1 = x_0². The exact E x_T² and E x_T⁴ come from the
    enumerated batch distribution, so the standard error SE = √((E x⁴ − (E x²)²)/R) is known: we require the
    predicted gap |E x_T² − 1| ≥ 8 SE at 0.9× and 1.1× the threshold (so by the CLT the test fails with
    probability < 1e-14) and the Monte Carlo mean within 6 SE of the exact E x_T²."""
    eta_star = _threshold(beta, b)
    replicates = 100_000
    for factor, grows in ((0.9, False), (1.1, True)):
        lr = factor * eta_star
        exact2 = _exact_moment(lr, beta, b, steps, 2)
        exact4 = _exact_moment(lr, beta, b, steps, 4)
        se = math.sqrt(max(exact4 - exact2**2, 0.0) / replicates)
        assert (exact2 > 1.0) == grows
        assert abs(exact2 - 1.0) >= 8 * se, (factor, exact2, se)
        sample = _simulate(lr, beta, b, steps, replicates, seed=int(100 * factor) + b)
        assert abs(sample.mean() - exact2) <= 6 * se
        assert (sample.mean() > 1.0) == grows


def test_scalar_factor_is_exact_second_moment() -> None:
    """ρ(η) = E(1 − ηh_B)² over all C(N, B) batches equals 1 − 2ηm + η²(m² + κs²), = 1 at η*."""
    m, s2 = POPULATION.mean(), POPULATION.var()
    for b in range(1, POPULATION.size + 1):
        hb = _batch_means(POPULATION, b)
        assert hb.var() == pytest.approx(float(kappa(b, POPULATION.size)) * s2, rel=1e-12, abs=1e-15)
        if b < POPULATION.size:
            eta = _threshold(0.0, b)
            assert np.mean((1 - eta * hb) ** 2) == pytest.approx(1.0, rel=1e-12)
        else:  # full batch: no noise, the deterministic 2/m
            assert _threshold(0.0, b) == pytest.approx(2 / m)


SYM = derivation("mean_square")


@settings(max_examples=40, deadline=None)
@given(
    m=st.floats(0.05, 20.0),
    ratio=st.floats(0.0, 50.0),
    beta=st.floats(0.0, 0.98),
    b=st.integers(1, 30),
    extra=st.integers(1, 200),
)
def test_closed_form_matches_sympy_and_radius(
    m: float, ratio: float, beta: float, b: int, extra: int
) -> None:
    """The numeric threshold equals the sympy root of det(I − M) and the spectral radius of E[A⊗A] is < 1
    on (0, η*) and > 1 just above η*."""
    n = b + extra
    s2 = ratio * m**2
    v = float(kappa(b, n)) * s2
    eta = float(mean_square_max_lr(m, s2, b, n, method="heavy_ball", momentum=beta))
    sym = SYM.function("heavy_ball_threshold", "m", "v", "beta")(m, v, beta)
    assert eta == pytest.approx(sym, rel=1e-10)
    for a in (0.05, 0.5, 0.95, 0.995):
        assert second_moment_radius(a * eta, m, v, beta) < 1.0
    assert second_moment_radius(1.01 * eta, m, v, beta) > 1.0
    adam = float(mean_square_max_lr(m, s2, b, n, method="adam", beta1=beta if beta > 0 else 0.5))
    b1 = beta if beta > 0 else 0.5
    assert adam == pytest.approx(SYM.function("adam_threshold", "m", "v", "beta1")(m, v, b1), rel=1e-10)


def test_deterministic_limits_and_gain() -> None:
    assert mean_square_max_lr(2.0, 0.0, 4, None) == pytest.approx(1.0)
    assert mean_square_max_lr(2.0, 0.0, 4, None, method="heavy_ball", momentum=0.9) == pytest.approx(1.9)
    assert mean_square_max_lr(2.0, 0.0, 4, None, method="adam", beta1=0.9) == pytest.approx(19.0)
    assert noise_gain("heavy_ball", 0.9) == pytest.approx(19.0)
    # full batch of a finite pool: κ(N) = 0, whatever the variance
    assert mean_square_max_lr(2.0, 100.0, 10, 10) == pytest.approx(1.0)


@given(lam=st.floats(0.01, 1e3), n=st.integers(2, 5000), frac=st.floats(0.0, 1.0))
def test_sample_spike_bound_is_2b_over_lambda(lam: float, n: int, frac: float) -> None:
    """A direction seen by one pool sample: the general formula gives 2B/λ exactly (no special case)."""
    b = 1 + int(frac * (n - 1))
    m, s2 = single_sample_moments(lam, n)
    assert mean_square_max_lr(m, s2, b, n) == pytest.approx(2 * b / lam, rel=1e-9)


def test_multi_direction_is_min() -> None:
    means, var = np.array([3.0, 1.0, 0.5]), np.array([0.0, 4.0, 9.0])
    b = np.array([1.0, 4.0, 16.0])
    out = multi_direction_max_lr(means, var, b, 64)
    per = np.array([[mean_square_max_lr(m, s, bb, 64) for bb in b] for m, s in zip(means, var, strict=True)])
    np.testing.assert_allclose(out, per.min(axis=0))
    # the leakage is added to the variance
    assert multi_direction_max_lr([1.0], [1.0], 2, None, leakages=[1.0]) == pytest.approx(
        mean_square_max_lr(1.0, 2.0, 2, None)
    )


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"mean": -1.0}, "mean"),
        ({"variance": -0.1}, "variance"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 20, "n_data": 10}, "batch_size"),
        ({"momentum": 1.0, "method": "heavy_ball"}, "momentum"),
        ({"momentum": 0.5}, "momentum"),
        ({"method": "nesterov"}, "method"),
        ({"leakage": -1.0}, "leakage"),
    ],
)
def test_bad_input_names_argument(kwargs: dict[str, object], name: str) -> None:
    args: dict[str, object] = {"mean": 1.0, "variance": 1.0, "batch_size": 2, "n_data": 10, **kwargs}
    with pytest.raises(ValueError, match=name):
        mean_square_max_lr(**args)  # type: ignore[arg-type]


def test_second_moment_matrix_sgd_eigenvalue() -> None:
    """β = 0: E(1 − ηh)² = (1 − ηm)² + η²v is an eigenvalue of E[A⊗A]."""
    eig = np.linalg.eigvals(second_moment_matrix(0.3, 2.0, 1.5, 0.0))
    assert np.min(np.abs(eig - ((1 - 0.6) ** 2 + 0.09 * 1.5))) < 1e-12
    with pytest.raises(ValueError, match="batch_variance"):
        second_moment_matrix(0.3, 2.0, -1.0)


# ======================================================================================= extreme magnitudes
@settings(max_examples=60, deadline=None)
@given(
    m=st.floats(0.01, 100.0),
    s2=st.floats(0.0, 100.0),
    leak=st.floats(0.0, 100.0),
    b=st.integers(1, 50),
    extra=st.integers(0, 100),
    power=st.integers(-1000, 1000),
    method=st.sampled_from(["sgd", "heavy_ball", "adam"]),
)
def test_threshold_scales_as_inverse_curvature_at_every_magnitude(
    m: float, s2: float, leak: float, b: int, extra: int, power: int, method: str
) -> None:
    """η* has the units of 1/curvature: scaling every h_i by t = 2^k (mean × t, variance and leakage × t²)
    divides η* by t exactly. Checked for t from 2^-1000 to 2^1000, across the magnitudes where m² under- or
    overflows float64 (the closed form then switches to its scale-free rewriting, which must give the same
    number); where t²s² itself leaves the normal float64 range the variances are set to 0 (η* = c/m)."""
    t = 2.0**power
    if not all(x == 0 or 1e-300 < x * t * t < math.inf for x in (s2, leak)):
        s2 = leak = 0.0
    kw: dict[str, object] = {"method": method}
    if method == "heavy_ball":
        kw["momentum"] = 0.5
    n = b + extra if extra else None
    base = float(mean_square_max_lr(m, s2, b, n, leakage=leak, **kw))  # type: ignore[arg-type]
    scaled = float(mean_square_max_lr(t * m, s2 * t * t, b, n, leakage=leak * t * t, **kw))  # type: ignore[arg-type]
    assert scaled * t == pytest.approx(base, rel=1e-14)
    spike = single_sample_moments(m, 2 + extra)
    if 1e-300 < spike[1] * t * t < math.inf:  # the scaled variance is a normal float64
        spike_scaled = single_sample_moments(t * m, 2 + extra)
        assert spike_scaled[0] / t == pytest.approx(spike[0], rel=1e-14)
        assert spike_scaled[1] == pytest.approx(spike[1] * t * t, rel=1e-14)


@settings(max_examples=60, deadline=None)
@given(
    lr=st.floats(0.0, 1.0),
    m=st.floats(-3.0, 3.0),
    v=st.floats(0.0, 5.0),
    beta=st.floats(0.0, 0.95),
    power=st.integers(-300, 300),
)
def test_second_moment_matrix_depends_on_eta_m_and_eta2_v_only(
    lr: float, m: float, v: float, beta: float, power: int
) -> None:
    """E[A⊗A] depends on (η, m, v) only through ηm and η²v: (t·η, m/t, v/t²) gives the same matrix, also
    where η² overflows float64 (η = 2^300) or v/t² is far below 1e-100."""
    t = 2.0**power
    base = second_moment_matrix(lr, m, v, beta)
    scaled = second_moment_matrix(t * lr, m / t, v / (t * t), beta)
    np.testing.assert_allclose(scaled, base, rtol=1e-14, atol=1e-15)


def test_extreme_valid_inputs_give_the_closed_form() -> None:
    """Values whose square leaves float64: η* = c/m when m² underflows, c/m when it overflows (s² ≪ m²),
    and the sample-spike variance λ²(N − 1)/N² when λ² overflows but the variance does not."""
    assert mean_square_max_lr(1e-200, 0.0, 4) == pytest.approx(2e200, rel=1e-14)  # was inf (m² = 0)
    assert mean_square_max_lr(1e200, 1.0, 4) == pytest.approx(2e-200, rel=1e-14)  # was 0 (m² = inf)
    m, s2 = single_sample_moments(1e155, 1e10)
    assert m == pytest.approx(1e145, rel=1e-14) and s2 == pytest.approx(1e290 * (1e10 - 1), rel=1e-14)
    a = np.array([[1.5, -0.5], [1.0, 0.0]])  # η = 1e200, m = 0, v = 0: Ā ⊗ Ā, η² overflowing is harmless
    np.testing.assert_array_equal(second_moment_matrix(1e200, 0.0, 0.0, 0.5), np.kron(a, a))
    assert second_moment_radius(1e200, 0.0, 0.0, 0.5) == pytest.approx(1.0)  # Ā has eigenvalues 1 and 0.5
    with pytest.raises(ValueError, match="mean"):  # c/m overflows: refused, not inf
        mean_square_max_lr(5e-324, 0.0, 1)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"means": []}, "means"),
        ({"means": [[1.0, 2.0]]}, "means"),
        ({"variances": [1.0]}, "variances"),
        ({"leakages": [1.0, 2.0, 3.0]}, "leakages"),
        ({"batch_size": [0.5, 2.0]}, "batch_size"),
        ({"n_data": [10.0, 20.0, 30.0]}, "n_data"),
        ({"momentum": [0.0, 0.0], "method": "heavy_ball"}, "momentum"),
        ({"beta1": [[0.9, 0.9], [0.9]], "method": "adam"}, "beta1"),
    ],
)
def test_multi_direction_bad_input_names_argument(kwargs: dict[str, object], name: str) -> None:
    args: dict[str, object] = {"means": [1.0, 2.0], "variances": [0.5, 0.1], "batch_size": [1.0, 4.0]}
    args = {"n_data": 10, **args, **kwargs}
    with pytest.raises((ValueError, TypeError), match=rf"\b{name}\b"):
        multi_direction_max_lr(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["lr", "mean", "batch_variance", "momentum"])
def test_second_moment_matrix_wants_scalars(name: str) -> None:
    args: dict[str, object] = {"lr": 0.3, "mean": 1.0, "batch_variance": 0.5, "momentum": 0.2}
    args[name] = np.array([0.1, 0.2])
    with pytest.raises(ValueError, match=rf"\b{name}\b.*real scalar"):
        second_moment_matrix(**args)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        second_moment_radius(**args)  # type: ignore[arg-type]
