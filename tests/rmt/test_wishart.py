"""Check values of the spiked-Wishart closed forms: docs/theory.md §2 and docs/reference-values.md rows
8–12."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

from rmt.wishart import (
    batch_ggn_extremal,
    marchenko_pastur_atom,
    marchenko_pastur_density,
    marchenko_pastur_edges,
    wishart_outlier,
    wishart_outlier_fluctuation_sd,
    wishart_overlap,
)


@pytest.mark.parametrize(
    ("q", "ell", "outlier", "overlap", "edge", "ell_c"),
    [
        (0.5, 3.0, 3.75, 0.7, 1.5 + math.sqrt(2), 1 + math.sqrt(0.5)),  # row 8
        (2.0, 4.0, 20 / 3, 7 / 15, 3 + 2 * math.sqrt(2), 1 + math.sqrt(2)),  # row 9
        (2.0, 3.0, 6.0, 1 / 4, 3 + 2 * math.sqrt(2), 1 + math.sqrt(2)),
        (2.0, 5.0, 7.5, 7 / 12, 3 + 2 * math.sqrt(2), 1 + math.sqrt(2)),
        (1.0, 3.0, 4.5, 1 / 2, 4.0, 2.0),  # row 10
        (0.25, 2.0, 2.5, 0.6, 2.25, 1.5),  # row 11
    ],
)
def test_reference_rows_8_to_11(
    q: float, ell: float, outlier: float, overlap: float, edge: float, ell_c: float
) -> None:
    assert wishart_outlier(ell, 1.0, q) == pytest.approx(outlier, rel=1e-14)
    assert wishart_overlap(ell, 1.0, q) == pytest.approx(overlap, rel=1e-13)
    assert marchenko_pastur_edges(1.0, q)[1] == pytest.approx(edge, rel=1e-14)
    # just below the threshold ℓ_c the top eigenvalue is the edge, just above it is continuous with it
    assert wishart_outlier(ell_c * (1 - 1e-9), 1.0, q) == pytest.approx(edge, rel=1e-14)
    assert wishart_outlier(ell_c * (1 + 1e-7), 1.0, q) == pytest.approx(edge, rel=1e-9)
    assert wishart_overlap(ell_c * (1 - 1e-9), 1.0, q) == 0.0


def test_row_8_fluctuation_and_theory_edge_value() -> None:
    assert wishart_outlier_fluctuation_sd(3.0, 1.0, 0.5, 1.0) == pytest.approx(math.sqrt(15.75), rel=1e-14)
    assert wishart_outlier_fluctuation_sd(3.0, 1.0, 0.5, 2500.0) == pytest.approx(
        math.sqrt(15.75) / 50, rel=1e-14
    )
    assert wishart_outlier_fluctuation_sd(1.2, 1.0, 0.5, 100.0) == 0.0
    assert marchenko_pastur_edges(1.0, 0.5)[1] == pytest.approx(2.914213562373095, rel=1e-14)


def test_row_12_threshold_in_q_is_c1() -> None:
    """ψ(ℓ = 4; q) = 4 + 4q/3 reaches (1 + √q)² = 16 at q = 9, with slope 4/3 on both sides."""
    f = lambda q: wishart_outlier(4.0, 1.0, q)  # noqa: E731
    assert f(9.0) == pytest.approx(16.0, rel=1e-14)
    assert f(3.0) == pytest.approx(8.0, rel=1e-14)
    h = 1e-5
    assert (f(9.0) - f(9.0 - h)) / h == pytest.approx(4 / 3, abs=1e-6)
    assert (f(9.0 + h) - f(9.0)) / h == pytest.approx(4 / 3, abs=1e-5)


def test_sigma2_scaling() -> None:
    for s in (0.3, 2.0, 7.0):
        assert wishart_outlier(3 * s, s, 0.5) == pytest.approx(3.75 * s, rel=1e-14)
        assert wishart_overlap(3 * s, s, 0.5) == pytest.approx(0.7, rel=1e-13)
        assert wishart_outlier_fluctuation_sd(3 * s, s, 0.5, 1) == pytest.approx(
            math.sqrt(15.75) * s, rel=1e-13
        )


@pytest.mark.parametrize("q", [0.1, 0.5, 1.0, 2.0, 5.0])
def test_marchenko_pastur_density_plus_atom_integrates_to_one_with_mean_sigma2(q: float) -> None:
    s2 = 1.3
    low, high = marchenko_pastur_edges(s2, q)
    points = [0.0] if low == 0 else None
    mass = integrate.quad(lambda x: marchenko_pastur_density(x, s2, q), low, high, points=points, limit=200)[
        0
    ]
    mean = integrate.quad(lambda x: x * marchenko_pastur_density(x, s2, q), low, high, limit=200)[0]
    second = integrate.quad(lambda x: x * x * marchenko_pastur_density(x, s2, q), low, high, limit=200)[0]
    atom = marchenko_pastur_atom(q)
    assert atom == pytest.approx(max(0.0, 1 - 1 / q))
    assert mass + atom == pytest.approx(1.0, abs=1e-7)
    assert mean == pytest.approx(s2, rel=1e-7)  # E tr(W)/P = σ²
    assert second == pytest.approx(s2**2 * (1 + q), rel=1e-7)  # second moment of MP


def test_marchenko_pastur_density_zero_outside_support() -> None:
    low, high = marchenko_pastur_edges(1.0, 0.5)
    xs = np.array([-1.0, 0.0, low * 0.99, high * 1.01, 10.0])
    np.testing.assert_array_equal(marchenko_pastur_density(xs, 1.0, 0.5), np.zeros(5))


def test_batch_ggn_extremal_uses_q_equals_p_over_bc() -> None:
    assert batch_ggn_extremal(3.0, 1.0, 1000, 2000) == pytest.approx(3.75)
    assert batch_ggn_extremal(3.0, 1.0, 1000, 200, outputs_per_sample=10) == pytest.approx(3.75)
    # P ≫ n: the spike is below threshold and λ' = σ²(1 + √q)² ≈ qσ² ∝ 1/B
    b = np.array([10.0, 20.0, 40.0])
    out = np.asarray(batch_ggn_extremal(5.0, 1.0, 1e6, b))
    np.testing.assert_allclose(out, (1 + np.sqrt(1e6 / b)) ** 2, rtol=1e-14)
    assert out[0] / out[1] == pytest.approx(2.0, rel=1e-2)
    # a spike far above threshold: λ' = λ(1 + qσ²/(λ − σ²)) ≈ λ + qσ²
    assert batch_ggn_extremal(1e4, 1.0, 1e6, 1000) == pytest.approx(1e4 * (1 + 1e3 / (1e4 - 1)), rel=1e-14)


def test_scalar_and_broadcast() -> None:
    assert type(wishart_outlier(3, 1, 0.5)) is float
    lo, hi = marchenko_pastur_edges(1.0, np.array([0.25, 4.0]))
    np.testing.assert_allclose(lo, [0.25, 1.0])
    np.testing.assert_allclose(hi, [2.25, 9.0])
    assert np.shape(wishart_overlap(np.array([[3.0], [4.0]]), 1.0, np.array([0.5, 2.0]))) == (2, 2)
