"""The per-sample step's sample selection, the sample-spike band's coverage and record round trip, and the
per-sample config (fast; the end-to-end step runs in the pipeline tests)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

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


def _store_per_sample_record(root: Path, *, with_overlaps: bool) -> tuple[Any, np.ndarray, np.ndarray]:
    """A step-3b record of 40 samples, C = 3, k = 2 (exact per-sample GGN eigenvectors drawn at random)."""
    from validation import steps
    from validation.store import ResultStore, cell_key

    rng = np.random.default_rng(3)
    n, c, k = 40, 3, 2
    eig = np.sort(rng.pareto(2.0, (n, c)) + 0.1, axis=1)[:, ::-1]
    over = rng.normal(0.0, 0.4, (n, c, k))
    over /= np.maximum(1.0, np.sqrt((over**2).sum(axis=2, keepdims=True)) / 0.95)
    ray = np.einsum("nr,nrk->nk", eig, over**2)  # u_kᵀG_iu_k of these directions
    store = ResultStore(root)
    key = cell_key(model="m", ckpt=0)
    arr = {name: store.save_array(f"{key}_{name}", value) for name, value in (
        ("g_eig", eig), ("g_ray", ray), ("g_over", over), ("h_top", eig[:, 0] * 1.1),
        ("h_bot", -0.2 * eig[:, 0]), ("h_tr", eig.sum(axis=1) * 1.05), ("h_ray", ray))}  # fmt: skip
    ggn = {"eigenvalues": arr["g_eig"], "rayleigh": arr["g_ray"], "rank_max": c, "p_eff": 50.0}
    if with_overlaps:
        ggn["overlaps"] = arr["g_over"]
    hess = {"top": arr["h_top"], "bottom": arr["h_bot"], "traces": arr["h_tr"], "rayleigh": arr["h_ray"]}
    record = {"model": "m", "ckpt": 0, "available": True, "hessian": hess, "ggn": ggn}
    store.put(steps.PER_SAMPLE, key, record)
    return store, over, eig


@pytest.mark.parametrize("with_overlaps", [True, False])
def test_sample_spike_pool_of_g_uses_the_exact_overlaps_when_recorded(
    tmp_path: Path, with_overlaps: bool
) -> None:
    """docs/theory.md §1f: a record with the exact overlaps v_irᵀu_k gives the G pool exactly those (every
    direction, signs, cross-couplings); an older record falls back to attributing u_kᵀG_iu_k to the top
    direction, which reproduces the quotients Σ_r s c² only where the top scale can carry them. Both give the
    full matrix's spikes."""
    import dataclasses

    from validation.experiments.spectrum_scoring import _sample_spike_inputs

    store, over, eig = _store_per_sample_record(tmp_path, with_overlaps=with_overlaps)
    config = load_config("smoke")
    config = dataclasses.replace(config, per_sample=dataclasses.replace(config.per_sample, n_spikes=2))
    tops = {"H": [5.0, 3.0], "G": [4.0, 2.0], "H_min": [-1.0]}
    pools = _sample_spike_inputs(store, config, model="m", ckpt=0, tops=tops, max_b=8)
    g = pools["G"]
    assert g is not None
    ray = np.einsum("nr,nrk->nk", g.scales, g.overlaps**2)
    measured = np.einsum("nr,nrk->nk", eig, over**2)
    if with_overlaps:
        np.testing.assert_array_equal(g.overlaps, over)
        np.testing.assert_allclose(ray, measured, rtol=1e-12)
    else:  # attributed: only the top direction carries overlaps, so quotients beyond its scale are cut
        assert np.all(g.overlaps[:, 1:] == 0)
        fits = measured.sum(axis=1) <= eig[:, 0]
        assert fits.any() and not fits.all()
        np.testing.assert_allclose(ray[fits], measured[fits], rtol=1e-12)
        assert np.all(ray <= measured * (1 + 1e-12))
    np.testing.assert_allclose(np.linalg.eigvalsh(g.model().full_block), [2.0, 4.0], rtol=1e-12)
