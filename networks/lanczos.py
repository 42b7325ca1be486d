"""The one Krylov engine: Lanczos, thick-restart top-k eigenpairs and stochastic Lanczos quadrature (SLQ).

The public entry point: every public name is importable from here. The code lives in
:mod:`networks.krylov` (the Lanczos recurrence and the shared building blocks), :mod:`networks.eigensolver`
(thick-restart top-k eigenpairs) and :mod:`networks.slq` (stochastic Lanczos quadrature).

Conventions (docs/theory.md §5). All Krylov arithmetic — the basis, the reorthogonalisation and the
tridiagonal matrix — is float64, whatever the operator's dtype; each product converts the basis vector to the
operator's dtype/device and the result back. The basis is one preallocated float64 tensor of m + 1 rows of
length P (row-major, i.e. a column-major P×(m+1) basis: every basis vector is contiguous) on
``basis_device`` (default: the operator's device): P·(m+1)·8 bytes (e.g. P = 10⁶, m = 100: 0.8 GB; pass
``basis_device="cpu"`` to keep it off the accelerator). ``reorthogonalization="none"`` keeps three vectors
(3·P·8 bytes) but Ritz values may then duplicate ("ghosts") after convergence.

Full reorthogonalisation is classical Gram–Schmidt against the stored basis, done once and repeated only
when the vector's norm drops below ``REORTH_ETA`` times its norm before the pass ("twice is enough",
Kahan–Parlett / DGKS). Every run checks that the operator is symmetric on its first probe pair (v₁ random,
v₂ the next Lanczos vector): |v₁ᵀAv₂ − v₂ᵀAv₁| ≤ :func:`symmetry_tol` · ‖A‖, at no extra product.

Defaults, one named constant per meaning (scipy ``eigsh`` analogues in brackets):
  * ``DEFAULT_TOL`` = 1e-6: a Ritz pair (θ, y) is converged when its error bound ≤ tol · max|θ| (``tol``);
  * ``DEFAULT_STOPPING`` = "eigenvalue": that bound is the eigenvalue error bound min(r, r²/δ) (gap theorem,
    Kato–Temple, guarded: docs/theory.md §5b; :func:`eigenvalue_error_bounds`); ``stopping="residual"`` makes
    it the residual r = ‖Ay − θy‖ (ARPACK's test; what eigenvector accuracy needs);
  * ``default_num_lanczos_vectors(k)`` = max(2k + 1, k + 20, 4k), capped at P (``ncv`` = max(2k + 1, 20));
  * ``MAX_PRODUCTS_PER_VECTOR`` = 50: default product budget 50 · ncv (``maxiter``);
  * ``BREAKDOWN_TOL`` = 1e-12: β ≤ 1e-12 · ‖T‖ means an invariant subspace (the Ritz values are exact);
  * ``REORTH_ETA`` = 1/√2: the "twice is enough" threshold of the second Gram–Schmidt pass;
  * ``SELECTIVE_TOL`` = √ε: Ritz vectors with residual ≤ √ε · ‖T‖ are orthogonalised against in selective
    reorthogonalisation (Parlett–Scott);
  * ``DEFAULT_SLQ_SIGMA_PER_STEP_SQUARED`` = 1: the SLQ smoothing width is spectral width / steps² (the
    finest node spacing of the Gauss rule; docs/theory.md §5b), floored at the grid spacing; the default
    grid has spacing ≤ σ (``DEFAULT_GRID_SIZE`` … ``MAX_DEFAULT_GRID_SIZE`` points).
"""

from __future__ import annotations

from networks.eigensolver import (
    LANCZOS_VECTORS_PER_EIGENPAIR,
    MAX_PRODUCTS_PER_VECTOR,
    MIN_LANCZOS_VECTORS,
    WHICH,  # noqa: F401 (importable from here as before; not in __all__)
    EigenResult,
    Which,  # noqa: F401
    default_num_lanczos_vectors,
    top_eigenpairs,
    top_eigenvalues,
)
from networks.krylov import (
    BREAKDOWN_TOL,
    DEFAULT_STOPPING,  # noqa: F401 (a string: importable from here, documented above; not in __all__)
    DEFAULT_TOL,
    REORTH_ETA,
    REORTHOGONALIZATIONS,  # noqa: F401
    SEED_MAX,  # noqa: F401
    SELECTIVE_TOL,
    STOPPING_RULES,  # noqa: F401
    LanczosResult,
    Reorthogonalization,  # noqa: F401
    Stopping,  # noqa: F401
    eigenvalue_error_bounds,
    lanczos,
    symmetry_tol,
)
from networks.slq import (
    DEFAULT_GRID_SIZE,
    DEFAULT_SLQ_SIGMA_PER_STEP_SQUARED,
    MAX_DEFAULT_GRID_SIZE,
    MAX_GRID_SIZE,
    MAX_QUADRATURE_NODES,
    SpectralDensity,
    slq_density,
)

__all__ = [
    "BREAKDOWN_TOL",
    "DEFAULT_GRID_SIZE",
    "DEFAULT_SLQ_SIGMA_PER_STEP_SQUARED",
    "DEFAULT_TOL",
    "MAX_DEFAULT_GRID_SIZE",
    "MAX_GRID_SIZE",
    "MAX_PRODUCTS_PER_VECTOR",
    "MAX_QUADRATURE_NODES",
    "MIN_LANCZOS_VECTORS",
    "REORTH_ETA",
    "SELECTIVE_TOL",
    "LANCZOS_VECTORS_PER_EIGENPAIR",
    "EigenResult",
    "LanczosResult",
    "SpectralDensity",
    "default_num_lanczos_vectors",
    "eigenvalue_error_bounds",
    "lanczos",
    "slq_density",
    "symmetry_tol",
    "top_eigenpairs",
    "top_eigenvalues",
]
