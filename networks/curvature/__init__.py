"""Exact curvature operators (Hessian, GGN), their algebra and curvature-noise statistics."""

from networks.curvature.ggn import GGNOperator, loss_output_hvp
from networks.curvature.hessian import HessianOperator, hessian_vector_product
from networks.curvature.noise import (
    BatchNoiseEstimate,
    NoiseEstimate,
    QuadraticFormStats,
    batch_noise_norm,
    curvature_operator,
    per_sample_noise,
    quadratic_form_variance,
)
from networks.curvature.operator import CurvatureOperator, as_operator
from networks.curvature.per_sample import (
    PerSampleCurvatureStats,
    PerSampleGGN,
    per_sample_curvature,
    per_sample_ggn,
    per_sample_hessian,
)
from networks.curvature.preconditioned import (
    PreconditionedOperator,
    adam_preconditioner_diagonal,
    adam_second_moment,
    preconditioned_top_eigenvalue,
)

__all__ = [
    "BatchNoiseEstimate",
    "CurvatureOperator",
    "GGNOperator",
    "HessianOperator",
    "NoiseEstimate",
    "PerSampleCurvatureStats",
    "PerSampleGGN",
    "PreconditionedOperator",
    "QuadraticFormStats",
    "adam_preconditioner_diagonal",
    "adam_second_moment",
    "as_operator",
    "batch_noise_norm",
    "curvature_operator",
    "hessian_vector_product",
    "loss_output_hvp",
    "per_sample_curvature",
    "per_sample_ggn",
    "per_sample_hessian",
    "per_sample_noise",
    "preconditioned_top_eigenvalue",
    "quadratic_form_variance",
]
