"""Adam's frozen preconditioner and P^{-1/2}H_BP^{-1/2} against torch.optim.Adam's own state and a
dense generalized eigenproblem (float64, tiny network)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from networks.curvature.hessian import HessianOperator
from networks.curvature.preconditioned import (
    PreconditionedOperator,
    adam_preconditioner_diagonal,
    adam_second_moment,
    preconditioned_top_eigenvalue,
)


def _tiny() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    return model, torch.randn(12, 4, dtype=torch.float64), torch.randint(0, 3, (12,))


def test_second_moment_matches_torch_adam_warmup() -> None:
    """v̂ equals torch.optim.Adam's exp_avg_sq/(1 − β₂^W) after W lr-0 steps on the same batches."""
    model, x, y = _tiny()
    loss_fn = nn.CrossEntropyLoss()
    batches = [(x[i : i + 3], y[i : i + 3]) for i in range(0, 12, 3)]
    before = [p.detach().clone() for p in model.parameters()]
    v_hat = adam_second_moment(model, loss_fn, batches, beta2=0.99)
    opt = torch.optim.Adam(model.parameters(), lr=0.0, betas=(0.9, 0.99))
    for xb, yb in batches:
        opt.zero_grad()
        loss_fn(model(xb), yb).backward()
        opt.step()
    ref = torch.cat([opt.state[p]["exp_avg_sq"].reshape(-1) for p in model.parameters()]) / (1 - 0.99**4)
    torch.testing.assert_close(v_hat, ref, rtol=1e-12, atol=1e-15)
    for p, q in zip(model.parameters(), before, strict=True):
        assert torch.equal(p.detach(), q)  # lr 0: the weights never moved


def test_top_eigenvalue_is_generalized_eigenvalue() -> None:
    """λ_max(P⁻¹H_B) by Lanczos on D H_B D equals the top eigenvalue of the dense pencil (H_B, P)."""
    model, x, y = _tiny()
    loss_fn = nn.CrossEntropyLoss()
    v_hat = adam_second_moment(model, loss_fn, [(x[:4], y[:4]), (x[4:8], y[4:8])], beta2=0.999)
    diag = adam_preconditioner_diagonal(v_hat, 1e-8)
    hess = HessianOperator(model, loss_fn, (x[8:], y[8:]))
    lam, resid, products = preconditioned_top_eigenvalue(hess, diag, tol=1e-10)
    dense = hess.to_dense().numpy()
    ref = scipy.linalg.eigh(dense, np.diag(diag.numpy()), eigvals_only=True)[-1]
    assert lam == pytest.approx(ref, rel=1e-8)
    assert products > 0 and resid <= 1e-6 * abs(lam)
    sym = PreconditionedOperator(hess, diag).to_dense().numpy()
    np.testing.assert_allclose(sym, sym.T, rtol=1e-10, atol=1e-10 * np.abs(sym).max())


def test_bad_input() -> None:
    model, x, y = _tiny()
    with pytest.raises(ValueError, match="beta2"):
        adam_second_moment(model, nn.CrossEntropyLoss(), [(x, y)], beta2=1.0)
    with pytest.raises(ValueError, match="batches"):
        adam_second_moment(model, nn.CrossEntropyLoss(), [], beta2=0.9)
    with pytest.raises(ValueError, match="eps"):
        adam_preconditioner_diagonal(torch.ones(3, dtype=torch.float64), 0.0)
    hess = HessianOperator(model, nn.CrossEntropyLoss(), (x, y))
    with pytest.raises(ValueError, match="diagonal"):
        PreconditionedOperator(hess, torch.zeros(hess.shape[0], dtype=torch.float64))


def test_contract_examples() -> None:
    """Bad input found by tests/networks/test_fuzz_networks.py: each is a named ValueError/TypeError."""
    model, x, y = _tiny()
    loss_fn = nn.CrossEntropyLoss()
    bad_y = y.clone()
    bad_y[0] = 3
    with pytest.raises(ValueError, match=r"batches\[1\]: y must hold class labels in \[0, 3\)"):
        adam_second_moment(model, loss_fn, [(x[:6], y[:6]), (x[6:], bad_y[:6])], beta2=0.9)
    with pytest.raises(ValueError, match="batches.*model Linear"):
        adam_second_moment(nn.Linear(7, 3).double(), loss_fn, [(x, y)], beta2=0.9)
    nan_model, _, _ = _tiny()
    with torch.no_grad():
        nan_model[0].weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="gradient of model Sequential .* not finite"):
        adam_second_moment(nan_model, loss_fn, [(x, y)], beta2=0.9)
    with pytest.raises(TypeError, match="loss_fn must be callable"):
        adam_second_moment(model, "x", [(x, y)], beta2=0.9)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="loss_fn must use reduction='mean'"):
        adam_second_moment(model, nn.CrossEntropyLoss(reduction="sum"), [(x, y)], beta2=0.9)
    with pytest.raises(TypeError, match=r"beta2 must be a real number in \[0, 1\)"):
        adam_second_moment(model, loss_fn, [(x, y)], beta2=torch.ones(3))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="batches"):
        adam_second_moment(model, loss_fn, x, beta2=0.9)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="eps must be a real number"):
        adam_preconditioner_diagonal(torch.ones(3, dtype=torch.float64), torch.ones(3))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="v_hat must be a real"):
        adam_preconditioner_diagonal(torch.ones(3, dtype=torch.complex128), 1e-8)
    with pytest.raises(ValueError, match="v_hat must hold at least one entry"):
        adam_preconditioner_diagonal(torch.zeros(0, dtype=torch.float64), 1e-8)
    with pytest.raises(ValueError, match="eps = 1e\\+300 makes sqrt"):
        adam_preconditioner_diagonal(torch.ones(3, dtype=torch.float32), 1e300)
    hess = HessianOperator(model, loss_fn, (x, y))
    size = hess.shape[0]
    with pytest.raises(TypeError, match="diagonal must be a real"):
        PreconditionedOperator(hess, torch.ones(size, dtype=torch.complex128))
    with pytest.raises(TypeError, match="diagonal must be a real"):
        PreconditionedOperator(hess, torch.ones(size, dtype=torch.bool))
    with pytest.raises(ValueError, match=rf"diagonal must have shape \({size},\)"):
        PreconditionedOperator(hess, torch.ones(size + 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="diagonal must be 1-D"):
        PreconditionedOperator(hess, torch.ones(size, 2, dtype=torch.float64))
    hess32 = HessianOperator(_tiny()[0].float(), loss_fn, (x.float(), y))
    with pytest.raises(ValueError, match="P\\^\\(-1/2\\) overflows the operator's dtype torch.float32"):
        PreconditionedOperator(hess32, torch.full((size,), 1e-80, dtype=torch.float64))
    with pytest.raises(ValueError, match="stopping"):
        preconditioned_top_eigenvalue(hess32, torch.ones(size), stopping="x")


def test_valid_variants() -> None:
    """A single (x, y) pair is one warm-up batch; integer v̂ becomes float64; stopping='eigenvalue' gives
    the same λ_max (within its error bound) in no more products than the default residual rule."""
    model, x, y = _tiny()
    loss_fn = nn.CrossEntropyLoss()
    torch.testing.assert_close(
        adam_second_moment(model, loss_fn, (x, y), beta2=0.9),
        adam_second_moment(model, loss_fn, [(x, y)], beta2=0.9),
        rtol=0.0,
        atol=0.0,
    )
    diag = adam_preconditioner_diagonal(torch.tensor([0, 1, 4]), 0.5)
    assert diag.dtype == torch.float64 and diag.tolist() == [0.5, 1.5, 2.5]
    hess = HessianOperator(model, loss_fn, (x, y))
    d = adam_preconditioner_diagonal(adam_second_moment(model, loss_fn, [(x[:6], y[:6])], beta2=0.99), 1e-3)
    lam_r, res_r, n_r = preconditioned_top_eigenvalue(hess, d, tol=1e-8)
    lam_e, _, n_e = preconditioned_top_eigenvalue(hess, d, tol=1e-8, stopping="eigenvalue")
    assert res_r <= 1e-8 * abs(lam_r) * 1.01
    assert lam_e == pytest.approx(lam_r, rel=1e-7) and n_e <= n_r
