"""The names of the pipeline's steps, defined once: each is a folder ``records/<name>/`` of the run store and
the ``step`` of its records. Torch-free, so the report and figures can import it cheaply."""

from __future__ import annotations

from typing import Final

CHECKPOINTS: Final = "checkpoints"
"""Step 1: pre-trained checkpoints (one record per model and loss level)."""
SPECTRA: Final = "spectra"
"""Step 2: top-k of H and G, λ_min(H), SLQ densities (one record per checkpoint)."""
NOISE: Final = "noise"
"""Step 3: per-sample noise statistics (one record per checkpoint)."""
SWEEP: Final = "sweep"
"""Step 4: extremal eigenvalues of H_B and G_B (one record per checkpoint, B and batch)."""
NOISE_SPECTRUM: Final = "noise_spectrum"
"""Step 4: SLQ of the noise operator H_B − H (one record per checkpoint and B)."""
PREDICTIONS: Final = "predictions"
"""Step 5: the random-matrix models scored against the sweep (one record per checkpoint)."""
THRESHOLDS: Final = "thresholds"
"""Step 6: divergence thresholds (one record per checkpoint, optimizer, B and seed)."""
LR_ANALYSIS: Final = "lr_analysis"
"""Step 6: learning-rate exponents and predictor comparison (one record per checkpoint)."""
MONTECARLO: Final = "montecarlo"
"""The theory layer's predictions against its exact samplers (one record per run)."""
LEARNER: Final = "learner"
"""``batchrmt learner``: one record per (arm, seed)."""
PER_SAMPLE: Final = "per_sample"
"""Step 3b: per-sample curvature statistics of H_i and G_i on samples outside the pool (one record per
checkpoint)."""
PRECONDITIONED: Final = "preconditioned"
"""Step 6b: λ_max(P⁻¹H_B) of Adam's frozen warm-up preconditioner (one record per threshold checkpoint and
B)."""
FINITE_HORIZON: Final = "finite_horizon"
"""Step 6c: per-sample gradient and curvature moments along the top eigenvectors of H on the pool, the
inputs of the finite-horizon threshold predictor (docs/theory.md §3d; one record per threshold checkpoint)."""
SEED_AGGREGATE: Final = "seed_aggregate"
"""Over training seeds (docs/validation.md §4b): per-seed values and the across-seed mean with a 95%
t-interval of the step-5 and step-6 claims (one record per configured model and checkpoint; runs with ≥ 2
training seeds)."""
