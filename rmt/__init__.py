"""batchrmt theory layer: random-matrix models of batch Hessians / GGNs and the learning-rate bounds they
imply.

numpy, scipy and sympy only: this package never imports torch. Where each formula lives:

- ``rmt.wigner``          additive model, homogeneous noise (THEORY §1a, §1d): κ(B), ν(B), θ + ν²/θ, B*
- ``rmt.wishart``         multiplicative model (THEORY §2): Baik–Silverstein outlier, Marchenko–Pastur
- ``rmt.bulk``            spikes over a measured bulk (THEORY §1c free convolution, §2 Bai–Yao)
- ``rmt.profile``         field-dependent noise: quadratic vector equation (THEORY §1b)
- ``rmt.sample_spikes``   sample-side spikes: heavy-tailed low-rank per-sample terms + shared spikes (§1e)
- ``rmt.sample_spikes_sampling``  exact Gram/Bartlett sampler of that model
- ``rmt.learning_rates``  stability thresholds and η_max(B) laws (THEORY §3)
- ``rmt.symbolic``        sympy derivations, the source of truth of the closed forms
- ``rmt.sampling``        seeded Monte-Carlo samplers and fast extremal eigenvalues
- ``rmt.testing``         hypothesis strategies and a Monte-Carlo assertion helper (imports hypothesis)
"""

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
from rmt.profile import (
    BlockProfile,
    coarse_grain_profile,
    solve_qve,
    wigner_type_density,
    wigner_type_edges,
    wigner_type_outliers,
)
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

__all__ = [
    "BatchPrediction",
    "PerSampleCurvature",
    "SampleSpikeModel",
    "SampledExtremal",
    "batch_brackets",
    "batch_matrix",
    "crossover_batch_size",
    "draw_batches",
    "effective_dimension",
    "large_batch_bulk_edge",
    "large_batch_extremal",
    "orthogonal_extremal",
    "pareto_crossover_batch_size",
    "predict_batch_extremal",
    "sample_batch_extremal",
    "subordinated_extremal",
    "TOPICS",
    "BlockProfile",
    "Derivation",
    "adam_max_lr_vs_batch",
    "adam_preconditioner",
    "adam_reversion_batch_size",
    "batch_ggn_extremal",
    "batch_hessian_extremal",
    "batch_regime",
    "batch_top_curvature",
    "bulk_spike_outlier",
    "bulk_spike_overlap",
    "coarse_grain_profile",
    "critical_batch_size",
    "critical_noise_variance",
    "derivation",
    "extremal_eigenvalues",
    "free_convolution_density",
    "free_convolution_edges",
    "free_convolution_stieltjes",
    "free_convolution_subordination",
    "kappa",
    "local_exponent",
    "ls_mean_square_growth",
    "ls_mean_square_threshold",
    "marchenko_pastur_atom",
    "marchenko_pastur_density",
    "marchenko_pastur_edges",
    "max_lr",
    "max_lr_vs_batch",
    "mccandlish_max_lr",
    "min_damping",
    "model_critical_batch_size",
    "noise_edge_curvature",
    "noise_scale",
    "outlier_fluctuation_sd",
    "polyak_heavy_ball",
    "sample_bulk_spike",
    "sample_profile_wigner",
    "sample_spiked_wigner",
    "sample_spiked_wishart",
    "semicircle_density",
    "semicircle_edge",
    "solve_qve",
    "spiked_wigner_top_eigenvalues",
    "spiked_wishart_top_eigenvalues",
    "stability_constant",
    "wigner_outlier",
    "wigner_overlap",
    "wigner_type_density",
    "wigner_type_edges",
    "wigner_type_outliers",
    "wishart_bulk_atom",
    "wishart_bulk_density",
    "wishart_bulk_edges",
    "wishart_bulk_spike_outlier",
    "wishart_bulk_spike_overlap",
    "wishart_critical_ratio",
    "wishart_outlier",
    "wishart_outlier_fluctuation_sd",
    "wishart_overlap",
]
