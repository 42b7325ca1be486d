"""Per-sample curvature statistics against exact dense per-sample Hessians and GGNs of a tiny network
(``torch.func.hessian`` / ``jacrev``, float64)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from networks.curvature.per_sample import per_sample_curvature, per_sample_ggn, per_sample_hessian


def _tiny(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    x = torch.randn(7, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (7,))
    return model, x, y


def _dense(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Exact per-sample Hessians and GGNs, (n, P, P) each."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    loss_fn = nn.CrossEntropyLoss()

    def out(w: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        parts = torch.split(w, sizes)
        params = {n: t.reshape(s) for n, t, s in zip(names, parts, shapes, strict=True)}
        return torch.func.functional_call(model, params, (xi[None],))[0]

    hs, gs = [], []
    for xi, yi in zip(x, y, strict=True):
        hs.append(torch.func.hessian(lambda w, xi=xi, yi=yi: loss_fn(out(w, xi)[None], yi[None]))(flat0))
        jac = torch.func.jacrev(lambda w, xi=xi: out(w, xi))(flat0)
        o = out(flat0, xi).detach()
        hl = torch.func.hessian(lambda f, yi=yi: loss_fn(f[None], yi[None]))(o)
        gs.append(jac.T @ hl @ jac)
    return torch.stack(hs).numpy(), torch.stack(gs).numpy()


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def test_ggn_statistics_match_dense() -> None:
    model, x, y = _tiny()
    h, g = _dense(model, x, y)
    p = h.shape[1]
    u = np.linalg.qr(np.random.default_rng(1).standard_normal((p, 2)))[0]
    res = per_sample_ggn(model, nn.CrossEntropyLoss(), x, y, vectors=u, chunk_size=3)
    eig = np.linalg.eigvalsh(g)[:, ::-1]
    assert _rel(res.eigenvalues, eig[:, :3]) <= 1e-6
    assert np.max(np.abs(eig[:, 3:])) <= 1e-10 * np.max(eig)  # rank ≤ C
    assert (res.ranks == 2).all()  # softmax: rank of H_ℓ is C − 1
    assert _rel(res.traces, np.trace(g, axis1=1, axis2=2)) <= 1e-6
    ray = np.einsum("pk,npq,qk->nk", u, g, u)
    assert _rel(res.rayleigh, ray) <= 1e-6
    gu = np.einsum("npq,qk->npk", g, u)
    coupling = (gu**2).sum(axis=1) - ray**2
    assert _rel(res.coupling, coupling) <= 1e-6
    tops = np.linalg.eigh(g)[1][:, :, -1]
    perp = tops - (tops @ u) @ u.T
    perp /= np.linalg.norm(perp, axis=1, keepdims=True)
    cos2 = (perp @ perp.T)[np.triu_indices(len(x), 1)] ** 2
    assert np.allclose(res.perp_cos2, cos2, atol=1e-8)
    # exact overlaps of each eigenvector of G_i with u (rank 2: the third direction is 0), up to sign
    w, v = np.linalg.eigh(g)
    dense = np.einsum("npr,pk->nrk", v[:, :, ::-1][:, :, :2], u)
    assert res.overlaps.shape == (len(x), 3, 2)
    assert np.allclose(res.overlaps[:, :2] ** 2, dense**2, atol=1e-8)
    assert np.all(res.overlaps[:, 2] == 0)
    assert _rel(np.einsum("nr,nrk->nk", res.eigenvalues, res.overlaps**2), ray) <= 1e-6


def test_hessian_statistics_match_dense() -> None:
    model, x, y = _tiny(1)
    h, _ = _dense(model, x, y)
    p = h.shape[1]
    u = np.linalg.qr(np.random.default_rng(2).standard_normal((p, 2)))[0]
    probes = 64
    res = per_sample_hessian(
        model, nn.CrossEntropyLoss(), x, y, vectors=u, lanczos_steps=p, trace_probes=probes, chunk_size=4
    )
    eig = np.linalg.eigvalsh(h)
    assert _rel(res.top, eig[:, -1]) <= 1e-6
    assert _rel(res.bottom, eig[:, 0]) <= 1e-6
    assert np.all(res.top_residual == 0)
    ray = np.einsum("pk,npq,qk->nk", u, h, u)
    assert _rel(res.rayleigh, ray) <= 1e-6
    hu = np.einsum("npq,qk->npk", h, u)
    assert _rel(res.coupling, (hu**2).sum(axis=1) - ray**2) <= 1e-6
    # Hutchinson with Rademacher probes: Var zᵀHz = 2 Σ_{j≠k} H_jk²; 5 standard errors
    tr = np.trace(h, axis1=1, axis2=2)
    off = (h**2).sum(axis=(1, 2)) - (np.diagonal(h, axis1=1, axis2=2) ** 2).sum(axis=1)
    assert np.all(np.abs(res.traces - tr) <= 5 * np.sqrt(2 * off / probes) + 1e-12)
    assert res.num_hvps == len(x) * (p + probes + 2)


def test_few_lanczos_steps_bracket_the_spectrum() -> None:
    """Ritz values lie inside [λ_min, λ_max] (Cauchy interlacing) and the top converges from below."""
    model, x, y = _tiny(2)
    h, _ = _dense(model, x, y)
    eig = np.linalg.eigvalsh(h)
    res = per_sample_hessian(model, nn.CrossEntropyLoss(), x, y, lanczos_steps=8, trace_probes=1)
    assert np.all(res.top <= eig[:, -1] * (1 + 1e-9) + 1e-12)
    assert np.all(res.bottom >= eig[:, 0] * (1 + 1e-9) - 1e-12)
    assert np.all(np.isnan(res.trace_stderr))


def test_combined_and_bad_input() -> None:
    model, x, y = _tiny(3)
    stats = per_sample_curvature(model, nn.CrossEntropyLoss(), x, y, lanczos_steps=4, trace_probes=2)
    s = stats.summary()
    assert s["n_samples"] == len(x) and s["ggn_rank_max"] == 2 and math.isfinite(s["seconds_ggn"])
    with pytest.raises(ValueError, match="lanczos_steps"):
        per_sample_hessian(model, nn.CrossEntropyLoss(), x, y, lanczos_steps=1)
    with pytest.raises(ValueError, match="vectors"):
        per_sample_ggn(model, nn.CrossEntropyLoss(), x, y, vectors=np.ones((3, 1)))
