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

__all__ = [
    "BatchNoiseEstimate",
    "CurvatureOperator",
    "GGNOperator",
    "HessianOperator",
    "NoiseEstimate",
    "PerSampleCurvatureStats",
    "PerSampleGGN",
    "QuadraticFormStats",
    "as_operator",
    "batch_noise_norm",
    "curvature_operator",
    "hessian_vector_product",
    "loss_output_hvp",
    "per_sample_curvature",
    "per_sample_ggn",
    "per_sample_hessian",
    "per_sample_noise",
    "quadratic_form_variance",
]
