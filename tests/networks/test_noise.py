"""Noise statistics against exact per-sample and batch curvature matrices; Monte-Carlo error from theory.

For Rademacher z and a symmetric matrix A, Var(zᵀAz) = 2(‖A‖_F² − Σ_k A_kk²): every tolerance below is a
multiple of this exact probe standard deviation.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from networks.curvature.ggn import GGNOperator
from networks.curvature.hessian import HessianOperator
from networks.curvature.noise import batch_noise_norm, per_sample_noise, quadratic_form_variance
from tests.networks.reference import F64, bn_net, mlp, vector_data

OPERATORS = {"hessian": HessianOperator, "ggn": GGNOperator}


def rademacher_quadratic_variance(a: np.ndarray) -> float:
    return float(2 * (np.sum(a**2) - np.sum(np.diag(a) ** 2)))


def per_sample_matrices(
    matrix: str, model: nn.Module, loss_fn: nn.Module, x: Tensor, y: Tensor
) -> np.ndarray:
    cls = OPERATORS[matrix]
    return np.stack(
        [cls(model, loss_fn, (x[i : i + 1], y[i : i + 1])).to_dense().numpy() for i in range(len(x))]
    )


def targets(loss_name: str, n: int) -> tuple[nn.Module, Tensor, Tensor]:
    x, y = vector_data(n, seed=11)
    if loss_name == "mse":
        return nn.MSELoss(), x, torch.randn(n, 3, dtype=F64, generator=torch.Generator().manual_seed(12))
    return nn.CrossEntropyLoss(), x, y


@pytest.mark.parametrize(("matrix", "loss_name"), [("hessian", "ce"), ("ggn", "ce"), ("hessian", "mse")])
def test_row_sums_match_exact_profile(matrix, loss_name) -> None:
    n, probes = 8, 64
    model = mlp()
    loss_fn, x, y = targets(loss_name, n)
    est = per_sample_noise(
        model, loss_fn, x, y, matrix=matrix, num_samples=n, num_probes=probes, seed=1, chunk_size=5
    )
    mats = per_sample_matrices(matrix, model, loss_fn, x, y)
    dev = mats - mats.mean(axis=0)
    exact_rows = (dev**2).sum(axis=(0, 2)) / (n - 1)  # r_j = Σ_k S_jk with ddof=1 entry variances
    size = exact_rows.size
    for j in range(size):
        a_j = np.einsum("ik,il->kl", dev[:, j, :], dev[:, j, :]) / (n - 1)
        sd = np.sqrt(rademacher_quadratic_variance(a_j) / probes)
        assert abs(est.row_sums[j] - exact_rows[j]) <= 5 * sd + 1e-12, j
    a_bar = np.einsum("ijk,ijl->kl", dev, dev) / ((n - 1) * size)
    sd_mean = np.sqrt(rademacher_quadratic_variance(a_bar) / probes)
    assert abs(est.p_sigma2 - exact_rows.mean()) <= 5 * sd_mean
    assert abs(est.p_sigma2 - exact_rows.mean()) <= 5 * est.stderr
    np.testing.assert_allclose(est.row_sum_cv, est.row_sums.std() / est.row_sums.mean())
    assert est.num_samples == n and est.num_probes == probes and est.matrix == matrix
    assert est.num_products == n * probes + probes
    np.testing.assert_allclose(est.sigma2, est.p_sigma2 / size)


def test_per_sample_noise_deterministic_subset_and_bn_rules() -> None:
    model = mlp()
    x, y = vector_data(20, seed=2)
    a = per_sample_noise(model, nn.CrossEntropyLoss(), x, y, num_samples=6, num_probes=2, seed=3)
    b = per_sample_noise(model, nn.CrossEntropyLoss(), x, y, num_samples=6, num_probes=2, seed=3)
    c = per_sample_noise(model, nn.CrossEntropyLoss(), x, y, num_samples=6, num_probes=2, seed=4)
    assert a.num_samples == 6 and np.array_equal(a.row_sums, b.row_sums)
    assert not np.array_equal(a.row_sums, c.row_sums)
    net = bn_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    est = per_sample_noise(net, nn.CrossEntropyLoss(), x, y, num_samples=4, num_probes=1)
    assert est.p_sigma2 > 0 and net.training
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())
    with pytest.raises(ValueError, match="bn_mode='eval'"):
        per_sample_noise(net, nn.CrossEntropyLoss(), x, y, bn_mode="train")
    with pytest.raises(ValueError, match="matrix"):
        per_sample_noise(model, nn.CrossEntropyLoss(), x, y, matrix="fisher")
    with pytest.raises(ValueError, match="num_samples"):
        per_sample_noise(model, nn.CrossEntropyLoss(), x, y, num_samples=1)


@pytest.mark.parametrize("matrix", ["hessian", "ggn"])
def test_batch_noise_norm_matches_frobenius_norm(matrix) -> None:
    """E‖(M_B − M)z‖² = ‖M_B − M‖_F² / P for unit Rademacher z; error from the exact probe variance."""
    model = mlp()
    x, y = vector_data(16, seed=5)
    batches = [(x[:3], y[:3]), (x[3:8], y[3:8])]
    probes = 64
    est = batch_noise_norm(
        model, nn.CrossEntropyLoss(), (x, y), batches, matrix=matrix, num_probes=probes, seed=6
    )
    cls = OPERATORS[matrix]
    full = cls(model, nn.CrossEntropyLoss(), (x, y)).to_dense().numpy()
    diffs = [cls(model, nn.CrossEntropyLoss(), b).to_dense().numpy() - full for b in batches]
    size = full.shape[0]
    exact = np.mean([np.sum(d**2) for d in diffs]) / size
    m = sum(d.T @ d for d in diffs) / (len(diffs) * size)
    sd = np.sqrt(rademacher_quadratic_variance(m) / probes)
    assert abs(est.nu2 - exact) <= 5 * sd
    assert est.values.shape == (2, probes) and est.num_products == probes * 3


def test_quadratic_form_variance_exact() -> None:
    model = mlp()
    x, y = vector_data(15, seed=7)
    batches = [(x[:5], y[:5]), (x[5:10], y[5:10]), (x[10:], y[10:])]
    size = sum(p.numel() for p in model.parameters())
    dirs = torch.randn(size, 2, dtype=F64, generator=torch.Generator().manual_seed(8))
    stats = quadratic_form_variance(model, nn.CrossEntropyLoss(), batches, dirs)
    exact = np.array(
        [
            [
                float(u @ HessianOperator(model, nn.CrossEntropyLoss(), b).to_dense() @ u / (u @ u))
                for u in dirs.T
            ]
            for b in batches
        ]
    )
    np.testing.assert_allclose(stats.values, exact, rtol=1e-10)
    np.testing.assert_allclose(stats.variance, exact.var(axis=0, ddof=1), rtol=1e-10)
    with pytest.raises(ValueError, match="at least 2"):
        quadratic_form_variance(model, nn.CrossEntropyLoss(), batches[:1], dirs)
