"""The per-sample step's sample selection, the sample-spike band's coverage and record round trip, and the
per-sample config (fast; the end-to-end step runs in the pipeline tests)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from validation.config import PerSampleConfig, load_config
from validation.experiments.analysis_records import PredictedBand
from validation.experiments.per_sample import outside_indices
from validation.experiments.spectrum_models import SampleSpikeInputs, SpectrumInputs, sample_spikes
from validation.experiments.spectrum_scoring import band_coverage


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 300), st.integers(0, 10_000), st.integers(1, 400))
def test_outside_indices_are_disjoint_seeded_and_counted(n_total: int, seed: int, want: int) -> None:
    rng = np.random.default_rng(seed)
    pool = np.sort(rng.choice(n_total, size=rng.integers(1, n_total), replace=False))
    got = outside_indices(n_total, pool, want, seed)
    assert np.intersect1d(got, pool).size == 0
    assert got.size == min(want, n_total - pool.size) == np.unique(got).size
    assert np.all((got >= 0) & (got < n_total)) and np.all(np.diff(got) > 0)
    assert np.array_equal(got, outside_indices(n_total, pool, want, seed))


def test_outside_indices_needs_samples_outside_the_pool() -> None:
    with pytest.raises(ValueError, match="pool_size"):
        outside_indices(5, np.arange(5), 3, 0)


def test_band_coverage_counts_cells_inside_the_band() -> None:
    grid = np.array([1.0, 2.0, 4.0])
    low, high = np.array([1.0, 0.5, 0.2]), np.array([2.0, 1.0, 0.4])
    batch = np.array([1, 1, 2, 2, 4, 4, 8], dtype=float)  # B = 8 is off the grid: not counted
    measured = np.array([1.5, 2.5, 0.5, 0.4, 0.3, 0.2, 1.0])
    assert band_coverage(batch, measured, grid, low, high) == pytest.approx(4 / 6)
    assert math.isnan(band_coverage(np.array([8.0]), np.array([1.0]), grid, low, high))


def test_predicted_band_round_trip() -> None:
    band = PredictedBand(
        (0.1, 0.5, 0.9), (1.0,), (2.0,), (3.0,), 0.75, 4, 5.5, math.inf, 64, 100, "orthogonal", True
    )
    assert PredictedBand.from_dict(band.to_dict()) == band


def _inputs(per_sample: SampleSpikeInputs | None) -> SpectrumInputs:
    z = np.zeros(1)
    return SpectrumInputs(1.0, 0.1, 100, 50, z, z + 1, 1.0, z, z + 1, 1, None, None, z, z, per_sample)


def test_sample_spike_model_median_matches_decoupled_closed_form() -> None:
    """No overlaps, rank one, P = ∞: λ'_max = max(λ, max_{i∈batch} μ_i/B) per batch exactly (§1e), so at
    B = 1 the predicted quantiles are those of max(λ, μ)."""
    mu = np.linspace(0.5, 4.0, 64)
    ps = SampleSpikeInputs(
        scales=mu[:, None],
        overlaps=np.zeros((64, 1, 1)),
        spikes=np.array([1.0]),
        p_eff=math.inf,
        n_batches=4000,
        seed=0,
        method="orthogonal",
        replace=True,
    )
    assert sample_spikes(_inputs(None), np.array([1.0])) is None
    med = sample_spikes(_inputs(ps), np.array([1.0, 64.0]))
    assert med is not None
    # quantile of the resampled median: within ±3 sd of a binomial order statistic over 4000 draws
    spread = 3 * np.sqrt(0.25 / 4000) * (mu[-1] - mu[0])
    assert abs(med[0] - max(1.0, float(np.median(mu)))) <= spread + 1e-12
    assert med[1] == pytest.approx(1.0)  # max μ/64 < λ: the shared spike
    bx = ps.crossover()  # the median of the largest of B_× tops, over B_×, equals λ = 1
    assert 2.0 < bx < 4.0
    assert float(np.quantile(mu, 0.5 ** (1 / bx))) / bx == pytest.approx(1.0, rel=1e-6)


def test_per_sample_config_validation() -> None:
    assert load_config("smoke").per_sample == PerSampleConfig()
    with pytest.raises(ValueError, match="per_sample.num_samples"):
        PerSampleConfig(num_samples=1).validate()
    with pytest.raises(ValueError, match="per_sample.method"):
        PerSampleConfig(method="fast").validate()
