"""Per-sample curvature: statistics of H_i and G_i, the Hessian and the GGN of ONE sample's loss ℓ_i
(docs/theory.md §1e: the rows of the sample-spike model), vectorised over samples with ``torch.func.vmap``.

With f_i = f(w, x_i) ∈ R^C the network output, J_i = ∂f_i/∂w (C×P) and H_ℓ,i = ∂²ℓ/∂f² at f_i (C×C), the mean
loss over n samples has H = (1/n) Σ_i H_i and G = (1/n) Σ_i G_i, G_i = J_iᵀ H_ℓ,i J_i.

* **GGN, exact, no iteration.** For PSD H_ℓ,i = S_i² (S_i its symmetric square root)
  G_i = (J_iᵀS_i)(S_iJ_i) has the same non-zero spectrum as the C×C matrix S_i K_i S_i, K_i = J_i J_iᵀ
  (AB and BA share their non-zero eigenvalues), so rank G_i ≤ C; its eigenvectors are v = J_iᵀ S_i e/√μ
  for the eigenpairs (μ, e) of S_iK_iS_i; tr G_i = tr(H_ℓ,i K_i); uᵀG_iu = (J_iu)ᵀH_ℓ,i(J_iu) and
  ‖G_iu‖² = (H_ℓ,iJ_iu)ᵀK_i(H_ℓ,iJ_iu). J_i comes from C vector-Jacobian products per sample
  (``vmap(jacrev)``), in chunks of samples.
* **Hessian, iterative.** Lanczos with full re-orthogonalisation run on all samples of a chunk at once (one
  vmapped per-sample HVP per step); the extreme Ritz values of the m×m tridiagonal matrices are the top and
  bottom eigenvalue estimates, exact once m reaches the rank of H_i + 1 (a breakdown restarts on a random
  orthogonal vector). Residual bound of the top Ritz pair: |β_m y_m| (Paige). tr H_i by Hutchinson with
  ``trace_probes`` Rademacher probes shared by all samples (its standard error per sample is the spread over
  the probes / √probes). uᵀH_iu for given vectors u: one HVP per vector and sample.

Per-sample statistics need ``bn_mode="eval"`` semantics (a sample's loss must not depend on other samples):
normalisation layers are evaluated with their running statistics.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from networks.curvature._batches import (
    as_batch_list,
    check_model,
    check_targets,
    curvature_mode,
    select_params,
)
from networks.curvature.ggn import has_ignored_targets, loss_output_hvp
from networks.curvature.noise import SEED_MAX, _per_sample_fn
from rmt.checks import check_int

__all__ = [
    "PerSampleCurvatureStats",
    "PerSampleGGN",
    "per_sample_curvature",
    "per_sample_ggn",
    "per_sample_hessian",
]

LossFn = Callable[[Tensor, Tensor], Tensor]
FloatArray = NDArray[np.float64]
_RANK_RTOL = 1e-6  # an eigenvalue of S K S counts towards the rank above this × the largest |eigenvalue|


def _check_int(value: object, name: str, low: int) -> int:
    return check_int(value, name, minimum=low, integral_type=True)


def _vectors(vectors: Tensor | np.ndarray | None, size: int, name: str) -> Tensor | None:
    """``vectors`` as a (size, k) float64 tensor of columns (or None)."""
    if vectors is None:
        return None
    v = torch.as_tensor(np.asarray(vectors) if isinstance(vectors, np.ndarray) else vectors)
    if v.ndim == 1:
        v = v.reshape(-1, 1)
    if v.ndim != 2 or v.shape[0] != size:
        raise ValueError(f"{name} must have shape (P = {size}, k), got {tuple(v.shape)}")
    return v.detach().to(torch.float64)


def _prepare(
    model: nn.Module, loss_fn: LossFn, x: Tensor, y: Tensor, params: Sequence[Tensor] | None
) -> tuple[list[Tensor], list[str], Tensor, Tensor, bool]:
    check_model(model, loss_fn)
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise TypeError(f"x and y must be torch tensors, got {type(x).__name__} and {type(y).__name__}")
    chosen = select_params(model, params)
    batch = as_batch_list((x, y), chosen[0].device, name="(x, y)")
    xb, yb = batch.batches[0]
    by_id = {id(p): n for n, p in model.named_parameters()}
    names = [by_id[id(p)] for p in chosen]
    _probe(model, loss_fn, xb, yb)
    return chosen, names, xb, yb, has_ignored_targets(loss_fn, yb)


def _probe(model: nn.Module, loss_fn: LossFn, x: Tensor, y: Tensor) -> None:
    """Evaluate the model and the loss on the first sample (no gradients, state untouched), so that a model
    or loss that cannot run on these data fails here with an error naming them, not deep inside vmap."""
    with curvature_mode(model, [], "eval"), torch.no_grad():
        try:
            out = model(x)
            check_targets(loss_fn, out[:1], y[:1], "(x, y)")
            loss_fn(out[:1], y[:1])
        except (RuntimeError, IndexError, TypeError) as exc:
            kind = TypeError if isinstance(exc, TypeError) else ValueError
            raise kind(
                f"(x, y): model {type(model).__name__} with loss_fn {type(loss_fn).__name__} cannot be "
                f"evaluated on these data (x {tuple(x.shape)} {x.dtype}, y {tuple(y.shape)} {y.dtype}): {exc}"
            ) from None
    if not (isinstance(out, Tensor) and bool(torch.isfinite(out).all())):
        raise ValueError(f"(x, y): model {type(model).__name__} gives non-finite outputs on these data")


def _flat(parts: Sequence[Tensor], n: int) -> Tensor:
    return torch.cat([t.reshape(n, -1) for t in parts], dim=1)


def _split(flat: Tensor, params: Sequence[Tensor]) -> tuple[Tensor, ...]:
    """(n, P) → a tuple of (n, *p.shape) tensors in the parameters' dtype."""
    out, start = [], 0
    for p in params:
        out.append(flat[:, start : start + p.numel()].reshape(flat.shape[0], *p.shape).to(p.dtype))
        start += p.numel()
    return tuple(out)


# ------------------------------------------------------------------------------------------------------------
# GGN: exact per-sample spectra from the per-sample Jacobians.


@dataclass(frozen=True)
class PerSampleGGN:
    """Exact per-sample GGN statistics of n samples (C outputs, k given vectors U).

    ``eigenvalues`` (n, C) descending (the non-zero spectrum of G_i plus zeros); ``traces`` (n,);
    ``ranks`` (n,) (eigenvalues above 1e-6 × the largest); ``rayleigh`` (n, k) = u_kᵀG_iu_k and ``coupling``
    (n, k) = ‖(I − u_ku_kᵀ)G_iu_k‖² (unit u_k; empty when no vectors); ``perp_cos2`` the squared
    cosines between the top eigenvectors of different samples after projecting out span U (n(n−1)/2
    pairs; E = 1/P_eff for random directions); ``num_vjps`` the vector-Jacobian products used;
    ``overlaps`` (n, C, k) the exact overlaps ``c_irk = v_irᵀu_k`` of each unit eigenvector
    ``v_ir = J_iᵀS_ie_r/√μ_r`` of G_i (same order as ``eigenvalues``; 0 where μ_r is below the rank
    tolerance) with the vectors, so that ``Σ_r μ_r c_irk² = rayleigh_ik`` (docs/theory.md §1f)."""

    eigenvalues: FloatArray
    traces: FloatArray
    ranks: NDArray[np.int64]
    rayleigh: FloatArray
    coupling: FloatArray
    perp_cos2: FloatArray
    num_vjps: int
    overlaps: FloatArray = field(default_factory=lambda: np.zeros((0, 0, 0)))

    @property
    def tops(self) -> FloatArray:
        return np.asarray(self.eigenvalues[:, 0])


def _jacobians(model: nn.Module, names: list[str], params: Sequence[Tensor]) -> Callable[[Tensor], Tensor]:
    primals = tuple(p.detach() for p in params)

    def output(weights: tuple[Tensor, ...], xi: Tensor) -> Tensor:
        out = torch.func.functional_call(model, dict(zip(names, weights, strict=True)), (xi.unsqueeze(0),))
        return out.squeeze(0)

    jac = torch.func.vmap(torch.func.jacrev(output), in_dims=(None, 0))

    def jacobians(xc: Tensor) -> Tensor:
        parts = jac(primals, xc)  # tuple of (n, C, *p.shape)
        n, c = parts[0].shape[:2]
        return torch.cat([t.reshape(n, c, -1) for t in parts], dim=2).to(torch.float64)

    return jacobians


def _output_hessians(loss_fn: LossFn, out: Tensor, y: Tensor, ignored: bool) -> Tensor:
    """H_ℓ,i (n, C, C) of each sample's loss with respect to its output (``loss_output_hvp`` on e_c)."""
    c = out.shape[1]
    eye = torch.eye(c, dtype=out.dtype, device=out.device)

    def one(oi: Tensor, yi: Tensor) -> Tensor:
        def column(e: Tensor) -> Tensor:
            col = loss_output_hvp(
                loss_fn, oi.unsqueeze(0), yi.unsqueeze(0), e.unsqueeze(0), ignored_targets=ignored
            )
            return col[0]

        return torch.func.vmap(column)(eye)

    h = torch.func.vmap(one)(out, y).to(torch.float64)
    return 0.5 * (h + h.transpose(1, 2))


def per_sample_ggn(
    model: nn.Module,
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    *,
    vectors: Tensor | np.ndarray | None = None,
    chunk_size: int = 16,
    params: Sequence[Tensor] | None = None,
) -> PerSampleGGN:
    """Exact per-sample GGN statistics (module docstring): spectra, traces, ranks from S_iK_iS_i; Rayleigh
    quotients and couplings on the columns of ``vectors`` (P×k, orthonormal: the top eigenvectors of G);
    cos² between different samples' top directions projected off span(``vectors``).

    Raises ``ValueError`` for an output that is not (n, C), a loss whose output Hessian is not PSD (beyond
    round-off), or bad ``chunk_size``/``vectors``."""
    chunk = _check_int(chunk_size, "chunk_size", 1)
    chosen, names, xb, yb, ignored = _prepare(model, loss_fn, x, y, params)
    size = sum(p.numel() for p in chosen)
    u = _vectors(vectors, size, "vectors")
    if u is not None:
        u = u.to(chosen[0].device)
    jacobians = _jacobians(model, names, chosen)
    n = int(xb.shape[0])
    eigs, traces, ray, coup, tops_perp, overlaps = [], [], [], [], [], []
    c = 0
    with curvature_mode(model, chosen, "eval"), torch.no_grad():
        for begin in range(0, n, chunk):
            xc, yc = xb[begin : begin + chunk], yb[begin : begin + chunk]
            out = model(xc)
            if out.ndim != 2:
                raise ValueError(f"per-sample GGN needs outputs of shape (n, C), got {tuple(out.shape)}")
            c = int(out.shape[1])
            hl = _output_hessians(loss_fn, out.detach().to(torch.float64), yc, ignored)
            w, e = torch.linalg.eigh(hl)
            scale = w.abs().amax(dim=1, keepdim=True).clamp_min(1e-300)
            if (w < -1e-8 * scale).any():
                raise ValueError("loss_fn: per-sample GGN needs a convex loss (PSD output Hessian)")
            root = e @ torch.diag_embed(w.clamp_min(0).sqrt()) @ e.transpose(1, 2)
            jac = jacobians(xc)  # (m, C, P)
            k_mat = jac @ jac.transpose(1, 2)
            mid = root @ k_mat @ root
            mu, vec = torch.linalg.eigh(0.5 * (mid + mid.transpose(1, 2)))
            mu, vec = mu.flip(1), vec.flip(2)
            eigs.append(mu)
            traces.append(torch.einsum("ncd,ndc->n", hl, k_mat))
            top_dir = torch.einsum("ncp,ncd,nd->np", jac, root, vec[:, :, 0])
            if u is not None:
                ju = jac @ u  # (m, C, k)
                hju = hl @ ju
                rq = (ju * hju).sum(dim=1)
                gu_sq = torch.einsum("nck,ncd,ndk->nk", hju, k_mat, hju)
                ray.append(rq)
                coup.append((gu_sq - rq**2).clamp_min(0))
                # v_rᵀu = e_rᵀ S_i J_i u / √μ_r for the directions counted in the rank (else 0)
                kept = mu > _RANK_RTOL * mu[:, :1].abs().clamp_min(1e-300)
                inv_root = torch.where(kept, mu.clamp_min(1e-300).rsqrt(), torch.zeros_like(mu))
                overlaps.append(inv_root[:, :, None] * (vec.transpose(1, 2) @ root @ ju))
                top_dir = top_dir - (top_dir @ u) @ u.T
            tops_perp.append(top_dir / top_dir.norm(dim=1, keepdim=True).clamp_min(1e-300))
    mu_all = torch.cat(eigs).cpu().numpy()
    ranks = (mu_all > _RANK_RTOL * np.maximum(np.abs(mu_all).max(axis=1, keepdims=True), 1e-300)).sum(axis=1)
    k = 0 if u is None else int(u.shape[1])
    vp = torch.cat(tops_perp)
    gram = (vp @ vp.T).cpu().numpy()
    iu = np.triu_indices(n, 1)
    return PerSampleGGN(
        eigenvalues=mu_all,
        traces=torch.cat(traces).cpu().numpy(),
        ranks=ranks.astype(np.int64),
        rayleigh=torch.cat(ray).cpu().numpy() if ray else np.zeros((n, k)),
        coupling=torch.cat(coup).cpu().numpy() if coup else np.zeros((n, k)),
        perp_cos2=np.clip(gram[iu] ** 2, 0.0, 1.0),
        num_vjps=n * c,
        overlaps=torch.cat(overlaps).cpu().numpy() if overlaps else np.zeros((n, c, k)),
    )


# ------------------------------------------------------------------------------------------------------------
# Hessian: batched Lanczos on vmapped per-sample HVPs.


@dataclass(frozen=True)
class PerSampleHessian:
    """Per-sample Hessian statistics of n samples: ``top``/``bottom`` (n,) extreme Ritz values after
    ``lanczos_steps`` steps with ``top_residual`` (n,) the residual bound of the top Ritz pair; ``traces``
    (n,) Hutchinson with ``trace_probes`` shared probes and ``trace_stderr`` (n,); ``rayleigh`` (n, k) =
    u_kᵀH_iu_k and ``coupling`` (n, k) = ‖(I − u_ku_kᵀ)H_iu_k‖²; ``num_hvps`` per-sample HVPs used in all."""

    top: FloatArray
    bottom: FloatArray
    top_residual: FloatArray
    traces: FloatArray
    trace_stderr: FloatArray
    rayleigh: FloatArray
    coupling: FloatArray
    lanczos_steps: int
    trace_probes: int
    num_hvps: int


def _orthogonalise(w: Tensor, basis: Tensor) -> Tensor:
    """Row i of ``w`` minus its projection on the rows of ``basis[i]`` (classical Gram–Schmidt, twice)."""
    for _ in range(2):
        w = w - torch.einsum("nj,njp->np", torch.einsum("njp,np->nj", basis, w), basis)
    return w


def _batched_lanczos(
    apply: Callable[[Tensor], Tensor], start: Tensor, steps: int, generator: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """Lanczos with full re-orthogonalisation on n symmetric operators at once (row i of ``apply``'s (n, P)
    input goes to operator i). Returns (top, bottom, top residual bound), each (n,)."""
    n, size = start.shape
    m = min(steps, size)
    basis = torch.zeros(n, m, size, dtype=torch.float64, device=start.device)
    alpha = torch.zeros(n, m, dtype=torch.float64, device=start.device)
    beta = torch.zeros(n, m, dtype=torch.float64, device=start.device)
    q = start / start.norm(dim=1, keepdim=True)
    for j in range(m):
        basis[:, j] = q
        w = apply(q).to(torch.float64)
        alpha[:, j] = (w * q).sum(dim=1)
        w = _orthogonalise(w, basis[:, : j + 1])
        b = w.norm(dim=1)
        beta[:, j] = b
        if j + 1 == m:
            break
        scale = alpha[:, : j + 1].abs().amax(dim=1) + beta[:, : j + 1].amax(dim=1)
        broken = b <= 1e-10 * scale.clamp_min(1e-300)
        if broken.any():  # invariant subspace found: continue on a fresh orthogonal direction
            r = torch.randn(n, size, generator=generator, dtype=torch.float64).to(start.device)
            r = _orthogonalise(r, basis[:, : j + 1])
            r = r / r.norm(dim=1, keepdim=True)
            beta[:, j] = torch.where(broken, torch.zeros_like(b), b)
            w = torch.where(broken[:, None], r, w / b.clamp_min(1e-300)[:, None])
            q = w
        else:
            q = w / b[:, None]
    off = beta[:, : m - 1]
    tri = torch.diag_embed(alpha) + torch.diag_embed(off, 1) + torch.diag_embed(off, -1)
    theta, y = torch.linalg.eigh(tri)
    residual = (beta[:, m - 1] * y[:, m - 1, -1]).abs()
    if m == size:
        residual = torch.zeros_like(residual)
    return theta[:, -1], theta[:, 0], residual


def per_sample_hessian(
    model: nn.Module,
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    *,
    vectors: Tensor | np.ndarray | None = None,
    lanczos_steps: int = 20,
    trace_probes: int = 4,
    seed: int = 0,
    chunk_size: int = 16,
    params: Sequence[Tensor] | None = None,
) -> PerSampleHessian:
    """Top and bottom eigenvalue of each H_i (batched Lanczos, ``lanczos_steps`` steps, random seeded starts),
    Hutchinson traces (``trace_probes`` Rademacher probes shared by the samples, seeded) and u_kᵀH_iu_k on the
    columns of ``vectors`` (P×k, unit columns: the top eigenvectors of H). Cost per sample:
    ``lanczos_steps + trace_probes + k`` HVPs."""
    steps = _check_int(lanczos_steps, "lanczos_steps", 2)
    probes = _check_int(trace_probes, "trace_probes", 1)
    chunk = _check_int(chunk_size, "chunk_size", 1)
    chosen, _, xb, yb, ignored = _prepare(model, loss_fn, x, y, params)
    size = sum(p.numel() for p in chosen)
    device = chosen[0].device
    u = _vectors(vectors, size, "vectors")
    if u is not None:
        u = u.to(device)
    one = _per_sample_fn(model, loss_fn, chosen, "hessian", ignored)
    own = torch.func.vmap(one, in_dims=(0, 0, 0))
    shared = torch.func.vmap(one, in_dims=(0, 0, None))
    gen = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0, maximum=SEED_MAX))
    z = (torch.randint(0, 2, (probes, size), generator=gen).to(torch.float64) * 2 - 1).to(device)
    n = int(xb.shape[0])
    top, bottom, res, tr, tr_se, ray, coup = [], [], [], [], [], [], []
    with curvature_mode(model, chosen, "eval"), torch.no_grad():
        for begin in range(0, n, chunk):
            xc, yc = xb[begin : begin + chunk], yb[begin : begin + chunk]
            m = int(xc.shape[0])

            def apply(v: Tensor, xc: Tensor = xc, yc: Tensor = yc, m: int = m) -> Tensor:
                return _flat(own(xc, yc, _split(v, chosen)), m)

            def shared_apply(v: Tensor, xc: Tensor = xc, yc: Tensor = yc, m: int = m) -> Tensor:
                parts = shared(xc, yc, tuple(t[0] for t in _split(v.reshape(1, -1), chosen)))
                return _flat(parts, m).to(torch.float64)

            start = torch.randn(m, size, generator=gen, dtype=torch.float64).to(device)
            t, b, r = _batched_lanczos(apply, start, steps, gen)
            top.append(t)
            bottom.append(b)
            res.append(r)
            quad = torch.stack([(shared_apply(zp) * zp).sum(dim=1) for zp in z], dim=1)  # (m, probes)
            tr.append(quad.mean(dim=1))
            tr_se.append(quad.std(dim=1) / math.sqrt(probes) if probes > 1 else torch.full((m,), math.nan))
            if u is not None:
                rq_cols, cp_cols = [], []
                for col in range(u.shape[1]):
                    hu = shared_apply(u[:, col])
                    rq = hu @ u[:, col]
                    rq_cols.append(rq)
                    cp_cols.append(((hu**2).sum(dim=1) - rq**2).clamp_min(0))
                ray.append(torch.stack(rq_cols, dim=1))
                coup.append(torch.stack(cp_cols, dim=1))
    k = 0 if u is None else int(u.shape[1])

    def cat(parts: list[Tensor], shape: tuple[int, ...]) -> FloatArray:
        return torch.cat(parts).cpu().numpy() if parts else np.zeros(shape)

    m_steps = min(steps, size)
    return PerSampleHessian(
        top=cat(top, (0,)),
        bottom=cat(bottom, (0,)),
        top_residual=cat(res, (0,)),
        traces=cat(tr, (0,)),
        trace_stderr=cat(tr_se, (0,)),
        rayleigh=cat(ray, (n, k)),
        coupling=cat(coup, (n, k)),
        lanczos_steps=m_steps,
        trace_probes=probes,
        num_hvps=n * (m_steps + probes + k),
    )


# ------------------------------------------------------------------------------------------------------------
# Both, with timing.


@dataclass(frozen=True)
class PerSampleCurvatureStats:
    """:class:`PerSampleHessian` and :class:`PerSampleGGN` of the same samples, with wall-clock seconds."""

    hessian: PerSampleHessian
    ggn: PerSampleGGN
    n_samples: int
    n_params: int
    seconds_hessian: float
    seconds_ggn: float

    def summary(self) -> dict[str, Any]:
        """JSON-ready scalars (medians, counts, cost)."""
        return {
            "n_samples": self.n_samples,
            "n_params": self.n_params,
            "hessian_top_median": float(np.median(self.hessian.top)),
            "hessian_bottom_median": float(np.median(self.hessian.bottom)),
            "ggn_top_median": float(np.median(self.ggn.tops)),
            "ggn_rank_max": int(self.ggn.ranks.max()) if self.ggn.ranks.size else 0,
            "lanczos_steps": self.hessian.lanczos_steps,
            "trace_probes": self.hessian.trace_probes,
            "num_hvps": self.hessian.num_hvps,
            "num_vjps": self.ggn.num_vjps,
            "seconds_hessian": self.seconds_hessian,
            "seconds_ggn": self.seconds_ggn,
        }


def per_sample_curvature(
    model: nn.Module,
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    *,
    hessian_vectors: Tensor | np.ndarray | None = None,
    ggn_vectors: Tensor | np.ndarray | None = None,
    lanczos_steps: int = 20,
    trace_probes: int = 4,
    seed: int = 0,
    chunk_size: int = 16,
    params: Sequence[Tensor] | None = None,
) -> PerSampleCurvatureStats:
    """:func:`per_sample_hessian` (on ``hessian_vectors``) and :func:`per_sample_ggn` (on ``ggn_vectors``) of
    every sample of (x, y), timed."""
    t0 = time.perf_counter()
    hess = per_sample_hessian(
        model,
        loss_fn,
        x,
        y,
        vectors=hessian_vectors,
        lanczos_steps=lanczos_steps,
        trace_probes=trace_probes,
        seed=seed,
        chunk_size=chunk_size,
        params=params,
    )
    t1 = time.perf_counter()
    ggn = per_sample_ggn(model, loss_fn, x, y, vectors=ggn_vectors, chunk_size=chunk_size, params=params)
    t2 = time.perf_counter()
    size = sum(p.numel() for p in select_params(model, params))
    return PerSampleCurvatureStats(hess, ggn, int(x.shape[0]), size, t1 - t0, t2 - t1)
