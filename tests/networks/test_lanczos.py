"""Lanczos, thick-restart top-k and SLQ against dense eigh, exact traces of powers and Hessian operators."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch
from torch import nn

from networks.curvature.hessian import HessianOperator
from networks.lanczos import lanczos, slq_density, top_eigenpairs, top_eigenvalues
from tests.networks.reference import cnn, image_data, spiked_matrix

REL = 1e-8


@pytest.mark.parametrize(
    ("which", "expected"),
    [("LA", [40.0, 25.0, 12.0]), ("SA", [-9.0]), ("LM", [40.0, 25.0, 12.0, -9.0])],
)
def test_top_eigenpairs_outliers_over_bulk(which, expected) -> None:
    a, _ = spiked_matrix()
    k = len(expected)
    result = top_eigenpairs(a, k, which, tol=1e-10, stopping="residual")  # vectors used: residual rule
    np.testing.assert_allclose(result.eigenvalues, expected, rtol=REL)
    assert result.converged.all() and result.which == which and result.stopping == "residual"
    vecs = result.eigenvectors.numpy()
    true_residual = np.linalg.norm(a @ vecs - vecs * result.eigenvalues, axis=0)
    assert np.all(true_residual <= 1e-8 * 40)
    assert result.num_products < 120  # outliers converge fast: no full sweep of the P = 300 space


def test_top_eigenvalues_bulk_edge_sa_against_eigh() -> None:
    a, spectrum = spiked_matrix(200, outliers=(30.0,), seed=1)
    values = top_eigenvalues(a, 3, "SA", tol=1e-10, max_products=4000)
    np.testing.assert_allclose(values, spectrum[:3], rtol=1e-7)


def test_top_eigenpairs_hessian_operator_against_dense() -> None:
    model, (x, y) = cnn(), image_data()
    op = HessianOperator(model, nn.CrossEntropyLoss(), (x, y))
    dense = np.linalg.eigvalsh(op.to_dense().numpy())
    for which, ref in (
        ("LA", dense[::-1][:3]),
        ("SA", dense[:2]),
        ("LM", dense[np.argsort(-np.abs(dense))][:3]),
    ):
        k = len(ref)
        result = top_eigenpairs(op, k, which, tol=1e-10)
        np.testing.assert_allclose(result.eigenvalues[result.converged], ref[result.converged], rtol=REL)
        assert result.converged.all()


def test_small_operator_dense_path_and_validation() -> None:
    a, spectrum = spiked_matrix(10, outliers=(5.0,))
    np.testing.assert_allclose(top_eigenvalues(a, 10, "SA"), spectrum, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="which"):
        top_eigenvalues(a, 1, "XY")
    with pytest.raises(ValueError, match="k must be"):
        top_eigenvalues(a, 11)
    with pytest.raises(ValueError, match="num_steps"):
        lanczos(a, 0)
    with pytest.raises(ValueError, match="reorthogonalization"):
        lanczos(a, 3, reorthogonalization="partial")
    with pytest.raises(ValueError, match="start"):
        lanczos(a, 3, start=np.zeros(10))


def test_lanczos_ritz_values_and_residuals() -> None:
    a, spectrum = spiked_matrix()
    result = lanczos(a, 60, return_vectors=True, tol=1e-10)
    assert result.alphas.shape == (60,) and result.betas.shape == (59,)
    assert np.all(np.diff(result.ritz_values) >= 0)
    np.testing.assert_allclose(result.weights.sum(), 1.0, rtol=1e-12)
    converged = result.ritz_values[result.converged]
    assert converged.size >= 4
    for theta in converged:  # every converged Ritz value is an eigenvalue
        assert np.min(np.abs(spectrum - theta)) <= REL * 40
    vecs = result.ritz_vectors.numpy()
    true_residual = np.linalg.norm(a @ vecs - vecs * result.ritz_values, axis=0)
    np.testing.assert_allclose(true_residual, result.residuals, atol=1e-8)
    # full reorthogonalisation: no ghost copies of the top outlier
    assert np.sum(np.abs(result.ritz_values - 40.0) < 1e-6) == 1


@pytest.mark.parametrize("mode", ["full", "selective", "none"])
def test_reorthogonalization_modes_find_top_outlier(mode) -> None:
    a, _ = spiked_matrix()
    result = lanczos(a, 40, reorthogonalization=mode)
    np.testing.assert_allclose(result.ritz_values[-1], 40.0, rtol=REL)


def test_invariant_subspace_breakdown_is_graceful() -> None:
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.standard_normal((50, 3)))
    a = (q * [3.0, 2.0, 1.0]) @ q.T  # rank 3: the Krylov space of a generic start has dimension 4
    result = lanczos(a, 20)
    assert result.num_steps == 4 and result.residual_norm == 0.0 and result.converged.all()
    np.testing.assert_allclose(np.sort(result.ritz_values), [0.0, 1.0, 2.0, 3.0], atol=1e-12)
    np.testing.assert_allclose(top_eigenvalues(a, 4), [3.0, 2.0, 1.0, 0.0], atol=1e-10)


def test_quadrature_reproduces_powers_exactly_below_2m() -> None:
    """Σ_k τ_k θ_k^j = vᵀA^j v for unit v and every j < 2m (Gauss quadrature with m nodes)."""
    a, _ = spiked_matrix(120, outliers=(3.0, 2.0))
    v = np.random.default_rng(5).standard_normal(120)
    v /= np.linalg.norm(v)
    m = 8
    result = lanczos(a, m, start=v)
    power = v.copy()
    for j in range(2 * m):
        exact = v @ power
        quad = np.sum(result.weights * result.ritz_values**j)
        assert abs(quad - exact) <= 1e-9 * max(1.0, abs(exact)), j
        power = a @ power
    # j = 2m is no longer exact in general
    assert abs(np.sum(result.weights * result.ritz_values ** (2 * m)) - v @ power) > 1e-9


def test_slq_moments_within_hutchinson_error() -> None:
    a, spectrum = spiked_matrix(200, outliers=(6.0, 4.0))
    density = slq_density(a, num_probes=20, num_steps=15, seed=2)
    assert density.nodes.shape == (20, 15) and density.num_products == 300
    for j in (1, 2, 3, 4):
        per_probe = density.probe_moments(j)
        stderr = per_probe.std(ddof=1) / np.sqrt(per_probe.size)
        exact = np.mean(spectrum**j)
        assert abs(density.moment(j) - exact) <= 4 * stderr + 1e-12, j
    np.testing.assert_allclose(density.moment(0), 1.0, rtol=1e-12)
    integral = np.sum(density.density) * (density.grid[1] - density.grid[0])
    np.testing.assert_allclose(integral, 1.0, rtol=1e-3)
    width = density.nodes.max() - density.nodes.min()
    spacing = density.grid[1] - density.grid[0]
    assert spacing <= width / 15**2 * (1 + 1e-9)  # the default grid resolves the kernel
    np.testing.assert_allclose(density.sigma, width / 15**2)


def _w1_to_exact(density: object, spectrum: np.ndarray) -> float:
    """Wasserstein-1 distance between the smoothed SLQ density and the exact spectral measure."""
    grid, rho = density.grid, density.density  # type: ignore[attr-defined]
    dx = grid[1] - grid[0]
    cdf_slq = np.cumsum(rho) * dx
    cdf_exact = np.searchsorted(np.sort(spectrum), grid, side="right") / spectrum.size
    return float(np.sum(np.abs(cdf_slq - cdf_exact)) * dx)


def test_smoothed_slq_density_improves_with_the_budget() -> None:
    """With the default kernel width (∝ 1/steps) the smoothed density converges: W1 to the exact spectrum
    falls as probes × steps grow (a fixed kernel width would stall at its own size)."""
    rng = np.random.default_rng(0)
    spectrum = np.concatenate([rng.normal(0.0, 0.3, 1500), rng.uniform(1.0, 3.0, 500)])
    a = np.diag(spectrum)
    width = spectrum.max() - spectrum.min()
    errors = [
        np.mean([_w1_to_exact(slq_density(a, num_probes=p, num_steps=m, seed=s), spectrum) for s in range(3)])
        / width
        for p, m in ((2, 10), (4, 40), (8, 100))
    ]
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[2] < 0.5 * errors[0], errors


def test_slq_with_breakdown_pads_zero_weights() -> None:
    a = np.diag([1.0, 2.0, 3.0] + [0.0] * 17)
    density = slq_density(a, num_probes=2, num_steps=10)
    assert density.nodes.shape == (2, 10)
    np.testing.assert_allclose(density.weights.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(density.moment(2), (1 + 4 + 9) / 20, rtol=0.5)


def test_determinism_and_scipy_agreement() -> None:
    model, (x, y) = cnn(), image_data()
    op = HessianOperator(model, nn.CrossEntropyLoss(), (x, y))
    first = top_eigenpairs(op, 2, seed=7, tol=1e-10)
    second = top_eigenpairs(op, 2, seed=7, tol=1e-10)
    assert np.array_equal(first.eigenvalues, second.eigenvalues) and first.num_products == second.num_products
    assert torch.equal(first.eigenvectors, second.eigenvectors)
    d1, d2 = slq_density(op, 2, 10, seed=3), slq_density(op, 2, 10, seed=3)
    assert np.array_equal(d1.nodes, d2.nodes) and np.array_equal(d1.density, d2.density)
    assert not np.array_equal(d1.nodes, slq_density(op, 2, 10, seed=4).nodes)
    ref = spla.eigsh(op.to_scipy(), k=2, which="LA", tol=1e-12, return_eigenvectors=False)
    np.testing.assert_allclose(first.eigenvalues, np.sort(ref)[::-1], rtol=REL)


def test_float32_operator_and_cpu_basis() -> None:
    a, _ = spiked_matrix()
    op32 = torch.from_numpy(a).to(torch.float32)
    result = top_eigenpairs(op32, 2, tol=1e-5, basis_device="cpu")
    assert result.eigenvectors.dtype == torch.float32
    np.testing.assert_allclose(result.eigenvalues, [40.0, 25.0], rtol=1e-5)
    lz = lanczos(op32, 30, basis_device="cpu")
    assert lz.alphas.dtype == np.float64
    np.testing.assert_allclose(lz.ritz_values[-1], 40.0, rtol=1e-5)


def test_accepts_scipy_linear_operator_and_torch_matrix() -> None:
    a, _ = spiked_matrix(100, outliers=(9.0,))
    for op in (spla.aslinearoperator(a), torch.from_numpy(a), a):
        np.testing.assert_allclose(top_eigenvalues(op, 1, tol=1e-10), [9.0], rtol=REL)


# ------------------------------------------------------------------------------ solver: stopping, BE, checks
def test_convergence_is_checked_inside_the_cycle() -> None:
    """A well-separated top eigenvalue (40 over a bulk in [−1, 1]) converges long before one cycle of
    ncv = 20 products ends; the stop happens at the first product whose bound is below tol·max|θ| (the
    residual here, the eigenvalue error bound by default)."""
    a, _ = spiked_matrix(300, outliers=(40.0,))
    for stopping in ("residual", "eigenvalue"):
        result = top_eigenpairs(a, 1, tol=1e-8, stopping=stopping)
        assert result.converged.all() and result.num_products < 20
        bound = result.residuals if stopping == "residual" else result.error_bounds
        assert bound[0] <= 1e-8 * result.eigenvalues[0]
        one_less = top_eigenpairs(a, 1, tol=1e-8, max_products=result.num_products - 1, stopping=stopping)
        assert not one_less.converged.all() and one_less.num_products == result.num_products - 1
    by_vector = top_eigenpairs(a, 1, tol=1e-8, stopping="residual")
    vec = by_vector.eigenvectors.numpy()[:, 0]
    assert np.linalg.norm(a @ vec - by_vector.eigenvalues[0] * vec) <= 1e-8 * 40 * (1 + 1e-6)
    np.testing.assert_allclose(by_vector.eigenvalues, [40.0], rtol=1e-12)


def test_both_ends_from_one_run_match_eigh_and_eigsh() -> None:
    a, spectrum = spiked_matrix(300, outliers=(40.0, 25.0, -30.0, -20.0), seed=4)
    result = top_eigenpairs(a, 4, "BE", tol=1e-10)
    np.testing.assert_allclose(result.eigenvalues, [-30.0, -20.0, 25.0, 40.0], rtol=REL)
    assert result.converged.all() and result.which == "BE"
    ref = spla.eigsh(a, k=4, which="BE", tol=1e-12, return_eigenvectors=False)
    np.testing.assert_allclose(result.eigenvalues, np.sort(ref), rtol=REL)
    odd = top_eigenvalues(a, 3, "BE", tol=1e-10)  # k odd: one more from the top, like eigsh
    np.testing.assert_allclose(odd, [-30.0, 25.0, 40.0], rtol=REL)
    small = spiked_matrix(12, outliers=(5.0, -4.0))[0]  # dense path
    np.testing.assert_allclose(top_eigenvalues(small, 2, "BE"), [-4.0, 5.0], rtol=1e-12)


def test_full_reorthogonalisation_keeps_the_basis_orthonormal() -> None:
    """One Gram–Schmidt pass plus a second only when the norm drops keeps VᵀV = I to rounding even after
    the top Ritz values have converged (where plain Lanczos loses orthogonality)."""
    a, _ = spiked_matrix()
    result = lanczos(a, 80, return_vectors=True)
    vecs = result.ritz_vectors.numpy()
    np.testing.assert_allclose(vecs.T @ vecs, np.eye(80), atol=1e-10)


class _Skew:
    shape = (80, 80)
    dtype = np.dtype(np.float64)

    def __init__(self, skew: float) -> None:
        rng = np.random.default_rng(1)
        s = rng.standard_normal((80, 80))
        self.matrix = (s + s.T) / 2 + skew * (s - s.T) / 2

    def matvec(self, v: np.ndarray) -> np.ndarray:
        return self.matrix @ v


@pytest.mark.parametrize("solver", ["lanczos", "top", "slq"])
def test_non_symmetric_operator_is_refused(solver) -> None:
    run = {
        "lanczos": lambda op: lanczos(op, 10),
        "top": lambda op: top_eigenpairs(op, 2),
        "slq": lambda op: slq_density(op, 1, 10),
    }[solver]
    with pytest.raises(ValueError, match="op must be symmetric"):
        run(_Skew(0.5))
    run(_Skew(1e-12))  # rounding-level asymmetry passes the probe


def test_named_defaults() -> None:
    import inspect

    from networks import lanczos as module

    assert inspect.signature(lanczos).parameters["tol"].default == module.DEFAULT_TOL
    assert inspect.signature(top_eigenpairs).parameters["tol"].default == module.DEFAULT_TOL
    assert inspect.signature(top_eigenvalues).parameters["tol"].default == module.DEFAULT_TOL
    assert inspect.signature(top_eigenpairs).parameters["stopping"].default == module.DEFAULT_STOPPING
    assert inspect.signature(lanczos).parameters["stopping"].default == module.DEFAULT_STOPPING
    assert module.default_num_lanczos_vectors(1, 10**6) == 21
    assert module.default_num_lanczos_vectors(5, 8) == 8


def test_eigenvalue_stopping_rule_meets_its_accuracy_in_fewer_products() -> None:
    """The default rule stops on the eigenvalue error bound min(r, r²/δ) (second order in the residual): the
    eigenvalue error is within the requested tolerance, in fewer products than the residual rule."""
    a, _ = spiked_matrix(400, outliers=(3.0, 2.6, 2.3), seed=6)  # small relative gaps: slow vectors
    for tol in (1e-6, 1e-9):
        by_value = top_eigenpairs(a, 1, tol=tol)
        by_vector = top_eigenpairs(a, 1, tol=tol, stopping="residual")
        assert by_value.stopping == "eigenvalue" and by_value.converged.all()
        assert abs(by_value.eigenvalues[0] - 3.0) <= by_value.error_bounds[0] <= tol * 3.0 * (1 + 1e-12)
        assert by_value.error_bounds[0] <= by_value.residuals[0]
        assert by_value.num_products < by_vector.num_products
