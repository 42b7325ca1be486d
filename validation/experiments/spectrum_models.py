"""The random-matrix models of λ'_max(B), the top eigenvalue of the batch curvature H_B (or G_B): one
function per model, registered once in :data:`SPECTRUM_MODELS` (docs/theory.md §1–§3).

With the noise estimated independently (step 3), N = pool size, and σ² = Pσ²/P:

* ``additive_homogeneous`` — spiked Wigner, ``rmt.wigner.batch_hessian_extremal(λ_1, σ², P, B, N)``;
* ``additive_bulk`` — the spike over the measured bulk μ (SLQ nodes of the matrix without its outliers),
  ``rmt.bulk.bulk_spike_outlier(λ_1, ν(B), μ)``;
* ``additive_profile`` (H only) — the rank-one variance profile S̃ = κ(B)·r rᵀ/Σr with the measured row sums
  r (it has exactly those row sums) and the empirical top eigenvector as the spike vector,
  ``rmt.profile.wigner_type_outliers``. The profile is coarse-grained to :data:`PROFILE_BLOCKS` blocks of
  the sorted r, geometric towards the largest row sums (a ``BlockProfile``: a dense P×P profile does not fit
  in memory; on a P = 612 MLP the outliers agree with the exact rank-one solution to 0.3%);
* ``multiplicative`` — Bai–Yao, ``rmt.bulk.wishart_bulk_spike_outlier(λ_1(G), q, μ_G)`` with the SLQ bulk of
  G and q = P/(B·C_eff) (C_eff = ``ggn_outputs_per_sample`` or classes − 1, the rank of the softmax output
  Hessian); the same curve for both targets;
* ``sample_spikes`` — the sample-spike model (``rmt.sample_spikes``, docs/theory.md §1e): the top
  ``n_spikes`` eigenvalues of the target as shared spikes plus B low-rank per-sample terms whose pool is the
  per-sample statistics of step 3b (samples outside the pool, so independent of the sweep); the median over
  resampled batches of the secular-equation top eigenvalue, with its 10–90% band (:class:`SampleSpikeInputs`);
* ``free_fit`` — λ'(B) = a + b·B^(−s) fitted to the scored measurement (``validation.stats.
  fit_offset_power_law``): the reference for how well any smooth 3-parameter curve does.

A model function takes the :class:`SpectrumInputs` of one target and the batch sizes and returns λ'_max at
each, or ``None`` where the model does not apply to the target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar

import numpy as np
from numpy.typing import NDArray

from validation.experiments.registry import Predictor, Registry
from validation.stats import fit_offset_power_law

__all__ = [
    "BAND_LEVELS",
    "DESIGN_LEVELS",
    "PROFILE_BLOCKS",
    "SPECTRUM_MODELS",
    "SIDES",
    "TARGETS",
    "SampleSpikeInputs",
    "Target",
    "Side",
    "SpectrumInputs",
    "register_spectrum_model",
]

FloatArray = NDArray[np.float64]
Side = Literal["top", "bottom"]
"""Which end of the spectrum a target is: λ_max, or the magnitude −λ_min of the Hessian's bottom."""
SIDES: tuple[Side, ...] = ("top", "bottom")


@dataclass(frozen=True)
class Target:
    """One scored quantity of step 5: its sweep field, how it is written, which end of which matrix."""

    key: str
    quantity: str
    sweep_field: str
    matrix: str
    side: Side


TARGETS: dict[str, Target] = {
    t.key: t
    for t in (
        Target("H", "λ'_max(H_B)", "lam_max_H", "Hessian H_B", "top"),
        Target("G", "λ'_max(G_B)", "lam_max_G", "Gauss–Newton G_B", "top"),
        Target("H_min", "−λ'_min(H_B)", "lam_min_H", "Hessian H_B, bottom", "bottom"),
    )
}
"""The step-5 targets, in report order (the bottom of H is scored as the magnitude −λ_min(H_B) > 0)."""

PROFILE_BLOCKS = 12
BAND_LEVELS = (0.1, 0.5, 0.9)
"""Quantile levels over batches of the sample-spike prediction: the 10–90% band and the median."""
DESIGN_LEVELS = tuple(round(0.01 * i, 2) for i in range(1, 100))
"""The predicted quantile function over batches at levels 0.01…0.99, for the design check of the target
statistic (``validation.stats.median_over_b_null``, docs/validation.md §4d)."""

SPECTRUM_MODELS = Registry("spectrum models")
"""The random-matrix models of λ'_max(B) (plus the free fit); function(inputs, batch_sizes) → array | None."""


@dataclass(frozen=True)
class SampleSpikeInputs:
    """The per-sample pool of one target (H or G) for ``rmt.sample_spikes`` and how to resample it.

    ``scales`` (n, C) / ``overlaps`` (n, C, k) are the ``rmt.PerSampleCurvature`` rows built from step 3b;
    ``spikes`` the target's top-k eigenvalues (step 2); ``p_eff`` = 1/mean cos² of different samples' top
    GGN directions off span U; ``replace`` whether batches draw pool rows with replacement. ``side`` is the
    end of the spectrum predicted: "top" (λ_max(M_B)) or "bottom" (the magnitude −λ_min(M_B) of the
    indefinite Hessian's most negative eigenvalue; quantile levels map as q_p(−X) = −q_{1−p}(X), so the
    band levels must be symmetric)."""

    scales: FloatArray
    overlaps: FloatArray
    spikes: FloatArray
    p_eff: float
    n_batches: int
    seed: int
    method: str
    replace: bool
    side: Side = "top"
    _cache: dict[tuple[Any, ...], Any] = field(default_factory=dict, compare=False, repr=False)

    def model(self) -> Any:
        """The ``rmt.sample_spikes.SampleSpikeModel`` (A = diag λ − E Σ s c cᵀ, P = P_eff)."""
        from rmt.sample_spikes import PerSampleCurvature, SampleSpikeModel

        if ("model",) not in self._cache:
            pool = PerSampleCurvature(self.scales, self.overlaps)
            # the model needs P ≥ k + C; a smaller measured P_eff (strongly aligned per-sample directions,
            # few samples) is raised to that floor — the orthogonal method does not use P at all
            floor = float(np.asarray(self.spikes).size + np.asarray(self.scales).shape[1])
            model = SampleSpikeModel.from_full_spikes(self.spikes, pool, n_params=max(self.p_eff, floor))
            self._cache[("model",)] = model
        return self._cache[("model",)]

    def prediction(self, batch_sizes: FloatArray) -> Any:
        """``rmt.sample_spikes.predict_batch_extremal`` at ``batch_sizes`` and the levels
        :data:`BAND_LEVELS` + :data:`DESIGN_LEVELS` (one set of resampled batches; cached)."""
        from rmt.sample_spikes import predict_batch_extremal

        key = ("prediction", *(int(b) for b in batch_sizes))
        if key not in self._cache:
            self._cache[key] = predict_batch_extremal(
                self.model(),
                np.asarray(batch_sizes, dtype=float),
                n_batches=self.n_batches,
                levels=(*BAND_LEVELS, *DESIGN_LEVELS),
                seed=self.seed,
                replace=self.replace,
                method=self.method,
            )
        return self._cache[key]

    def quantiles(self, batch_sizes: FloatArray) -> FloatArray:
        """(len(B), len(:data:`BAND_LEVELS`)) quantiles over batches of the predicted extremal eigenvalue
        on this :attr:`side` (for "bottom": of −λ_min(M_B), from ``bottom_quantiles`` by q_p(−X) =
        −q_{1−p}(X))."""
        return self._side_quantiles(batch_sizes, slice(0, len(BAND_LEVELS)))

    def quantile_function(self, batch_sizes: FloatArray) -> FloatArray:
        """(len(B), len(:data:`DESIGN_LEVELS`)) quantiles over batches on this :attr:`side`, from the same
        resampled batches as :meth:`quantiles`."""
        return self._side_quantiles(batch_sizes, slice(len(BAND_LEVELS), None))

    def _side_quantiles(self, batch_sizes: FloatArray, block: slice) -> FloatArray:
        pred = self.prediction(batch_sizes)
        if self.side == "top":
            return np.asarray(pred.top_quantiles, dtype=float)[:, block]
        return -np.asarray(pred.bottom_quantiles, dtype=float)[:, block][:, ::-1]

    def crossover(self) -> float:
        """B_× (``rmt.sample_spikes.crossover_batch_size``, median level; for "bottom" that of the negated
        model −M_B)."""
        from rmt.sample_spikes import crossover_batch_size

        model = self.model() if self.side == "top" else self.model().negated()
        return float(crossover_batch_size(model))


@dataclass(frozen=True)
class SpectrumInputs:
    """Everything a model of one target's λ'_max(B) may use, from steps 2–4 of one checkpoint.

    ``lam``/``p_sigma2``/``atoms``/``weights`` are the target's (H or G) top eigenvalue, noise Pσ² and bulk
    μ; ``ggn_lam``/``ggn_atoms``/``ggn_weights`` the GGN's (for the multiplicative model);
    ``row_sums``/``vector`` the H noise row sums and top eigenvector (``None`` for G); ``batch``/``measured``
    the sweep cells of the target (for fitted models). For ``side == "bottom"`` (the target "H_min") every
    spectral quantity is of −H: ``lam`` = −λ_min(H), ``atoms`` mirrored, ``measured`` = −λ_min(H_B); models
    that only describe the top (the PSD Wishart model, the row-sum profile along the top eigenvector) return
    ``None``."""

    lam: float
    p_sigma2: float
    n_params: int
    n_data: int
    atoms: FloatArray
    weights: FloatArray
    ggn_lam: float
    ggn_atoms: FloatArray
    ggn_weights: FloatArray
    c_eff: int
    row_sums: FloatArray | None
    vector: FloatArray | None
    batch: FloatArray
    measured: FloatArray
    per_sample: SampleSpikeInputs | None = None
    side: Side = "top"

    @property
    def sigma2(self) -> float:
        return self.p_sigma2 / self.n_params

    def without_batch(self, held: float) -> SpectrumInputs:
        """The same inputs with the sweep cells at batch size ``held`` removed (leave-one-B-out)."""
        keep = self.batch != held
        return replace(self, batch=self.batch[keep], measured=self.measured[keep])


ModelFunction = Callable[[SpectrumInputs, FloatArray], FloatArray | None]
F = TypeVar("F", bound=ModelFunction)


def register_spectrum_model(
    key: str,
    label: str,
    color: str,
    linestyle: str = "-",
    *,
    kind: str = "theory",
    fitted_parameters: int = 0,
) -> Callable[[F], F]:
    """Decorator: register ``function(inputs, batch_sizes)`` as the spectrum model ``key``."""

    def add(function: F) -> F:
        SPECTRUM_MODELS.register(
            Predictor(
                key=key,
                label=label,
                kind=kind,  # type: ignore[arg-type]  # checked by Predictor
                function=function,
                color=color,
                linestyle=linestyle,
                fitted_parameters=fitted_parameters,
            )
        )
        return function

    return add


@register_spectrum_model("additive_homogeneous", "additive, homogeneous noise (spiked Wigner)", "C0")
def additive_homogeneous(inputs: SpectrumInputs, batch_sizes: FloatArray) -> FloatArray:
    """``rmt.wigner.batch_hessian_extremal(λ_1, σ², P, B, N)``: the outlier λ + ν²/λ above B*, the edge 2ν
    below (docs/theory.md §1a)."""
    from rmt.wigner import batch_hessian_extremal

    out = batch_hessian_extremal(inputs.lam, inputs.sigma2, inputs.n_params, batch_sizes, inputs.n_data)
    return np.atleast_1d(np.asarray(out, dtype=float))


def noise_scales(inputs: SpectrumInputs, batch_sizes: FloatArray) -> FloatArray:
    """ν(B) = √(κ(B)·Pσ²) of the homogeneous additive noise (``rmt.wigner.noise_scale``)."""
    from rmt.wigner import noise_scale

    nu = noise_scale(inputs.sigma2, inputs.n_params, batch_sizes, inputs.n_data)
    return np.atleast_1d(np.asarray(nu, dtype=float))


@register_spectrum_model("additive_bulk", "additive, measured bulk", "C1", "--")
def additive_bulk(inputs: SpectrumInputs, batch_sizes: FloatArray) -> FloatArray:
    """``rmt.bulk.bulk_spike_outlier(λ_1, ν(B), μ)``: the spike over the free convolution of the measured
    bulk μ with a semicircle of radius 2ν(B) (docs/theory.md §2)."""
    from rmt.bulk import bulk_spike_outlier

    nu = noise_scales(inputs, batch_sizes)
    lam, atoms, weights = inputs.lam, inputs.atoms, inputs.weights
    return np.array([float(bulk_spike_outlier(lam, float(v), atoms, weights)) for v in nu])


def profile_outlier(row_sums: FloatArray, vector: FloatArray, theta: float, kappa: float) -> float:
    """Top outlier for the rank-one profile S̃ = κ r rᵀ/Σr, coarse-grained to at most
    :data:`PROFILE_BLOCKS` blocks of the sorted r (block j ends at P(1 − 2^−j): geometric towards the
    largest row sums, whose heavy tail decides the outlier). θ itself when Σr ≤ 0 or κ ≤ 0."""
    from rmt.profile import wigner_type_outliers
    from rmt.profile_systems import BlockProfile

    r = np.clip(np.asarray(row_sums, dtype=float), 0.0, None)
    total = r.sum()
    if total <= 0 or kappa <= 0:
        return theta
    g = np.sqrt(kappa / total) * r
    phi = np.asarray(vector, dtype=float)
    phi = phi / np.linalg.norm(phi)
    order = np.argsort(r, kind="stable")
    k = min(PROFILE_BLOCKS, r.size)
    bounds = np.unique(
        np.concatenate([[0], r.size - np.floor(r.size * 0.5 ** np.arange(k)), [r.size]]).astype(int)
    )
    k = bounds.size - 1
    sizes = np.diff(bounds).astype(float)
    g_sorted = g[order]
    g_block = np.array([g_sorted[bounds[i] : bounds[i + 1]].mean() for i in range(k)])
    profile = BlockProfile(np.outer(g_block, g_block), sizes)
    return float(wigner_type_outliers(profile, np.array([theta]), phi[order].reshape(-1, 1))[0])


@register_spectrum_model("additive_profile", "additive, measured row-sum profile", "C2", "-.")
def additive_profile(inputs: SpectrumInputs, batch_sizes: FloatArray) -> FloatArray | None:
    """The Wigner-type outlier of the rank-one row-sum profile at κ(B) (docs/theory.md §3); H only."""
    from rmt.wigner import kappa

    if inputs.row_sums is None or inputs.vector is None:
        return None
    kap = np.atleast_1d(kappa(batch_sizes, inputs.n_data))
    return np.array([profile_outlier(inputs.row_sums, inputs.vector, inputs.lam, float(k)) for k in kap])


@register_spectrum_model("multiplicative", "multiplicative (Bai–Yao, GGN bulk)", "C3", ":")
def multiplicative(inputs: SpectrumInputs, batch_sizes: FloatArray) -> FloatArray | None:
    """``rmt.bulk.wishart_bulk_spike_outlier(λ_1(G), q, μ_G)`` with q = P/(B·C_eff) (docs/theory.md §1b)."""
    from rmt.bulk import wishart_bulk_spike_outlier

    if inputs.side == "bottom":
        return None
    atoms = np.clip(inputs.ggn_atoms, 0.0, None)
    lam = max(inputs.ggn_lam, 0.0)
    return np.array(
        [
            float(
                wishart_bulk_spike_outlier(
                    lam, inputs.n_params / (float(b) * inputs.c_eff), atoms, inputs.ggn_weights
                )
            )
            for b in batch_sizes
        ]
    )


@register_spectrum_model("sample_spikes", "sample spikes (per-sample pool, median)", "C4", "-")
def sample_spikes(inputs: SpectrumInputs, batch_sizes: FloatArray) -> FloatArray | None:
    """Median over resampled batches of λ_max(U A Uᵀ + (1/B) Σ_{i∈batch} G_i) with the per-sample pool of
    step 3b (docs/theory.md §1e); ``None`` without per-sample statistics."""
    if inputs.per_sample is None:
        return None
    return inputs.per_sample.quantiles(batch_sizes)[:, BAND_LEVELS.index(0.5)]


@register_spectrum_model("free_fit", "free fit a + b·B⁻ˢ", "0.45", "-", kind="fit", fitted_parameters=3)
def free_fit(inputs: SpectrumInputs, batch_sizes: FloatArray) -> FloatArray:
    """``validation.stats.fit_offset_power_law`` on the target's sweep cells, evaluated at ``batch_sizes``."""
    return fit_offset_power_law(inputs.batch, inputs.measured).predict(batch_sizes)


def model_curves(inputs: SpectrumInputs, batch_sizes: FloatArray) -> dict[str, FloatArray]:
    """Every registered model that applies to the target, evaluated at ``batch_sizes`` (registry order)."""
    curves: dict[str, FloatArray] = {}
    for model in SPECTRUM_MODELS:
        curve = model.function(inputs, batch_sizes)
        if curve is not None:
            curves[model.key] = np.asarray(curve, dtype=float)
    return curves
