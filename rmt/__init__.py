"""batchrmt theory layer: random-matrix models of batch Hessians / GGNs and the learning-rate bounds they
imply.

numpy, scipy and sympy only: this package never imports torch. Where each formula lives:

- ``rmt.wigner``          additive model, homogeneous noise (docs/theory.md §1a, §1d): κ(B), ν(B), θ + ν²/θ,
B*
- ``rmt.wishart``         multiplicative model (docs/theory.md §2): Baik–Silverstein outlier, Marchenko–Pastur
- ``rmt.bulk``            spikes over a measured bulk (docs/theory.md §1c free convolution, §2 Bai–Yao)
- ``rmt.profile``         field-dependent noise: quadratic vector equation (docs/theory.md §1b)
- ``rmt.profile_systems`` the QVE's reduced systems: block profiles and rank one (docs/theory.md §1b)
- ``rmt.sample_spikes``   sample-side spikes: heavy-tailed low-rank per-sample terms + shared spikes (§1e)
- ``rmt.sample_spikes_sampling``  exact Gram/Bartlett sampler of that model
- ``rmt.learning_rates``  stability thresholds and η_max(B) laws (docs/theory.md §3)
- ``rmt.mean_square``     mean-square thresholds with fresh batches (docs/theory.md §3b, §3c)
- ``rmt.finite_horizon``  expected loss of a K-step fresh-batch trial and its threshold (docs/theory.md §3d)
- ``rmt.symbolic``        sympy derivations, the source of truth of the closed forms
- ``rmt.sampling``        seeded Monte-Carlo samplers and fast extremal eigenvalues
- ``rmt.testing``         hypothesis strategies and a Monte-Carlo assertion helper (imports hypothesis)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rmt._lazy import lazy_attributes

# Public names and the module that defines each, imported on first use: ``import rmt.checks`` (the shared
# validators, used by torch-free commands such as ``batchrmt --help``) then costs neither scipy nor sympy.
_EXPORTS = {
    "BatchPrediction": "rmt.sample_spikes",
    "PerSampleCurvature": "rmt.sample_spikes",
    "SampleSpikeModel": "rmt.sample_spikes",
    "SampledExtremal": "rmt.sample_spikes_sampling",
    "batch_brackets": "rmt.sample_spikes",
    "batch_matrix": "rmt.sample_spikes_sampling",
    "crossover_batch_size": "rmt.sample_spikes",
    "draw_batches": "rmt.sample_spikes",
    "effective_dimension": "rmt.sample_spikes",
    "large_batch_bulk_edge": "rmt.sample_spikes",
    "large_batch_extremal": "rmt.sample_spikes",
    "orthogonal_extremal": "rmt.sample_spikes",
    "pareto_crossover_batch_size": "rmt.sample_spikes",
    "predict_batch_extremal": "rmt.sample_spikes",
    "sample_batch_extremal": "rmt.sample_spikes_sampling",
    "subordinated_extremal": "rmt.sample_spikes",
    "TOPICS": "rmt.symbolic",
    "BlockProfile": "rmt.profile_systems",
    "Derivation": "rmt.symbolic",
    "adam_max_lr_vs_batch": "rmt.learning_rates",
    "adam_preconditioner": "rmt.learning_rates",
    "adam_reversion_batch_size": "rmt.learning_rates",
    "batch_ggn_extremal": "rmt.wishart",
    "batch_hessian_extremal": "rmt.wigner",
    "batch_regime": "rmt.learning_rates",
    "batch_top_curvature": "rmt.learning_rates",
    "bulk_spike_outlier": "rmt.bulk",
    "bulk_spike_overlap": "rmt.bulk",
    "coarse_grain_profile": "rmt.profile_systems",
    "critical_batch_size": "rmt.wigner",
    "critical_noise_variance": "rmt.bulk",
    "derivation": "rmt.symbolic",
    "extremal_eigenvalues": "rmt.sampling",
    "free_convolution_density": "rmt.bulk",
    "free_convolution_edges": "rmt.bulk",
    "free_convolution_stieltjes": "rmt.bulk",
    "free_convolution_subordination": "rmt.bulk",
    "kappa": "rmt.wigner",
    "local_exponent": "rmt.learning_rates",
    "ls_mean_square_growth": "rmt.learning_rates",
    "ls_mean_square_threshold": "rmt.learning_rates",
    "marchenko_pastur_atom": "rmt.wishart",
    "marchenko_pastur_density": "rmt.wishart",
    "marchenko_pastur_edges": "rmt.wishart",
    "max_lr": "rmt.learning_rates",
    "max_lr_vs_batch": "rmt.learning_rates",
    "mccandlish_max_lr": "rmt.learning_rates",
    "min_damping": "rmt.learning_rates",
    "model_critical_batch_size": "rmt.learning_rates",
    "noise_edge_curvature": "rmt.learning_rates",
    "noise_scale": "rmt.wigner",
    "outlier_fluctuation_sd": "rmt.wigner",
    "polyak_heavy_ball": "rmt.learning_rates",
    "sample_bulk_spike": "rmt.sampling",
    "sample_profile_wigner": "rmt.sampling",
    "sample_spiked_wigner": "rmt.sampling",
    "sample_spiked_wishart": "rmt.sampling",
    "semicircle_density": "rmt.wigner",
    "semicircle_edge": "rmt.wigner",
    "solve_qve": "rmt.profile",
    "spiked_wigner_top_eigenvalues": "rmt.sampling",
    "spiked_wishart_top_eigenvalues": "rmt.sampling",
    "stability_constant": "rmt.learning_rates",
    "wigner_outlier": "rmt.wigner",
    "wigner_overlap": "rmt.wigner",
    "wigner_type_density": "rmt.profile",
    "wigner_type_edges": "rmt.profile",
    "wigner_type_outliers": "rmt.profile",
    "wishart_bulk_atom": "rmt.bulk",
    "wishart_bulk_density": "rmt.bulk",
    "wishart_bulk_edges": "rmt.bulk",
    "wishart_bulk_spike_outlier": "rmt.bulk",
    "wishart_bulk_spike_overlap": "rmt.bulk",
    "wishart_critical_ratio": "rmt.bulk",
    "wishart_outlier": "rmt.wishart",
    "wishart_outlier_fluctuation_sd": "rmt.wishart",
    "wishart_overlap": "rmt.wishart",
    "MEAN_SQUARE_METHODS": "rmt.mean_square",
    "expected_loss_change": "rmt.finite_horizon",
    "finite_horizon_max_lr": "rmt.finite_horizon",
    "mean_square_max_lr": "rmt.mean_square",
    "multi_direction_max_lr": "rmt.mean_square",
    "noise_gain": "rmt.mean_square",
    "second_moment_matrix": "rmt.mean_square",
    "second_moment_radius": "rmt.mean_square",
    "single_sample_moments": "rmt.mean_square",
}

__all__ = list(_EXPORTS)

if TYPE_CHECKING:
    from rmt.bulk import (
        bulk_spike_outlier,
        bulk_spike_overlap,
        critical_noise_variance,
        free_convolution_density,
        free_convolution_edges,
        free_convolution_stieltjes,
        free_convolution_subordination,
        wishart_bulk_atom,
        wishart_bulk_density,
        wishart_bulk_edges,
        wishart_bulk_spike_outlier,
        wishart_bulk_spike_overlap,
        wishart_critical_ratio,
    )
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
    from rmt.mean_square import (
        MEAN_SQUARE_METHODS,
        mean_square_max_lr,
        multi_direction_max_lr,
        noise_gain,
        second_moment_matrix,
        second_moment_radius,
        single_sample_moments,
    )
    from rmt.profile import (
        solve_qve,
        wigner_type_density,
        wigner_type_edges,
        wigner_type_outliers,
    )
    from rmt.profile_systems import BlockProfile, coarse_grain_profile
    from rmt.sample_spikes import (
        BatchPrediction,
        PerSampleCurvature,
        SampleSpikeModel,
        batch_brackets,
        crossover_batch_size,
        draw_batches,
        effective_dimension,
        large_batch_bulk_edge,
        large_batch_extremal,
        orthogonal_extremal,
        pareto_crossover_batch_size,
        predict_batch_extremal,
        subordinated_extremal,
    )
    from rmt.sample_spikes_sampling import SampledExtremal, batch_matrix, sample_batch_extremal
    from rmt.sampling import (
        extremal_eigenvalues,
        sample_bulk_spike,
        sample_profile_wigner,
        sample_spiked_wigner,
        sample_spiked_wishart,
        spiked_wigner_top_eigenvalues,
        spiked_wishart_top_eigenvalues,
    )
    from rmt.symbolic import TOPICS, Derivation, derivation
    from rmt.wigner import (
        batch_hessian_extremal,
        critical_batch_size,
        kappa,
        noise_scale,
        outlier_fluctuation_sd,
        semicircle_density,
        semicircle_edge,
        wigner_outlier,
        wigner_overlap,
    )
    from rmt.wishart import (
        batch_ggn_extremal,
        marchenko_pastur_atom,
        marchenko_pastur_density,
        marchenko_pastur_edges,
        wishart_outlier,
        wishart_outlier_fluctuation_sd,
        wishart_overlap,
    )


__getattr__, __dir__ = lazy_attributes("rmt", _EXPORTS, globals())
