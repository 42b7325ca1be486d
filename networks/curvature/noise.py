"""Curvature-noise statistics (docs/theory.md §4): per-sample variance profile row sums, batch noise norm
ν(B)²,
variance of quadratic forms across batches."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _NormBase

from networks.curvature._batches import (
    as_batch_list,
    check_bn_mode,
    check_model,
    curvature_mode,
    functional_form,
    select_params,
    split_like,
)
from networks.curvature.ggn import GGNOperator, ggn_product, has_ignored_targets
from networks.curvature.hessian import HessianOperator, hessian_product
from networks.curvature.operator import CurvatureOperator, _check_real_tensor
from networks.options import MATRICES, Matrix
from rmt.checks import check_choice, check_int

SEED_MAX = 2**63 - 1
MAX_STATISTICS = 10**8
"""Largest number of stored (sample or batch) × probe values (they must fit in memory)."""
LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class NoiseEstimate:
    """Per-sample curvature noise: r_j = Σ_k S_jk with S_jk = Var_i[(M_i)_jk] (M = Hessian or GGN).

    ``p_sigma2`` = mean_j r_j = E_i‖(M_i − M̄)u‖² for a unit vector u (= Pσ² in docs/theory.md §1a);
    ``stderr`` its standard error (samples and probes); ``row_sum_cv`` = std_j r_j / mean_j r_j (0 for a
    homogeneous profile, up to the Hutchinson noise of the row-sum estimates).
    """

    row_sums: np.ndarray
    p_sigma2: float
    stderr: float
    row_sum_cv: float
    num_samples: int
    num_probes: int
    num_products: int
    matrix: str

    @property
    def sigma2(self) -> float:
        """σ² = Pσ² / P (homogeneous-profile reading)."""
        return self.p_sigma2 / self.row_sums.shape[0]


@dataclass(frozen=True)
class BatchNoiseEstimate:
    """ν(B)² ≈ E_z ‖(M_B − M)z‖² for unit z, from ``values[b, p]`` = ‖(M_{B_b} − M) z_p‖²."""

    nu2: float
    stderr: float
    values: np.ndarray
    num_batches: int
    num_probes: int
    num_products: int
    matrix: str


@dataclass(frozen=True)
class QuadraticFormStats:
    """uᵀ M_B u across batches: ``values[b, d]`` for batch b and direction d, mean, (ddof=1) variance."""

    values: np.ndarray
    mean: np.ndarray
    variance: np.ndarray
    num_batches: int
    num_products: int
    matrix: str


def _check_matrix(matrix: object) -> Matrix:
    return cast(Matrix, check_choice(matrix, "matrix", MATRICES))


def _check_seed(seed: object) -> int:
    return check_int(seed, "seed", minimum=0, maximum=SEED_MAX)


def _batch_sequence(batches: object) -> list[tuple[Tensor, Tensor]]:
    """``batches`` as a non-empty list of (x, y) pairs (each checked when its operator is built)."""
    if isinstance(batches, (Tensor, str, bytes, dict)) or not isinstance(batches, Iterable):
        raise TypeError(f"batches must be a sequence of (x, y) batches, got {type(batches)!r}")
    batch_list = list(batches)
    if not batch_list:
        raise ValueError("batches is empty: need at least one (x, y) batch")
    return batch_list


def _check_storage(count: int, num_probes: int, what: str) -> None:
    if count * num_probes > MAX_STATISTICS:
        raise ValueError(
            f"{what} × num_probes = {count} × {num_probes} values cannot fit in memory: the product must be "
            f"<= {MAX_STATISTICS:.0e}"
        )


def curvature_operator(
    matrix: str,
    model: nn.Module,
    loss_fn: LossFn,
    data: object,
    *,
    bn_mode: str = "eval",
    params: Sequence[Tensor] | None = None,
    method: str = "auto",
) -> CurvatureOperator:
    """HessianOperator or GGNOperator by name ("hessian" | "ggn")."""
    cls = HessianOperator if _check_matrix(matrix) == "hessian" else GGNOperator
    return cls(model, loss_fn, data, bn_mode=bn_mode, params=params, method=method)


def _rademacher(size: int, generator: torch.Generator) -> Tensor:
    return torch.randint(0, 2, (size,), generator=generator).to(torch.float64) * 2 - 1


def _per_sample_fn(
    model: nn.Module, loss_fn: LossFn, params: Sequence[Tensor], matrix: str, ignored_targets: bool
) -> Callable[[Tensor, Tensor, tuple[Tensor, ...]], tuple[Tensor, ...]]:
    """(x_i, y_i, v) ↦ M_i v for one sample (written for torch.func.vmap over samples): the same
    :func:`~networks.curvature.hessian.hessian_product` / :func:`~networks.curvature.ggn.ggn_product` as the
    batch operators, applied to a batch of one."""
    call, primals = functional_form(model, params)

    def hessian_vp(xi: Tensor, yi: Tensor, v: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        def loss(weights: tuple[Tensor, ...]) -> Tensor:
            return loss_fn(call(weights, xi.unsqueeze(0)), yi.unsqueeze(0))

        return hessian_product(loss, primals)(v)

    def ggn_vp(xi: Tensor, yi: Tensor, v: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        def out_of(weights: tuple[Tensor, ...]) -> Tensor:
            return call(weights, xi.unsqueeze(0))

        return ggn_product(out_of, loss_fn, yi.unsqueeze(0), primals, ignored_targets=ignored_targets)(v)

    return hessian_vp if matrix == "hessian" else ggn_vp


def per_sample_noise(
    model: nn.Module,
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    *,
    matrix: str = "hessian",
    num_samples: int = 64,
    num_probes: int = 4,
    seed: int = 0,
    bn_mode: str = "eval",
    params: Sequence[Tensor] | None = None,
    chunk_size: int = 16,
) -> NoiseEstimate:
    r"""Row sums of the per-sample variance profile by Hutchinson's estimator (docs/theory.md §4).

    With D_i = M_i − M̄ over n samples (M_i the curvature of sample i's loss, M̄ their mean) and Rademacher
    z ∈ {±1}^P, E_z[(D_i z)_j²] = Σ_k (D_i)_jk², so
    :math:`\hat r_j = \frac1{n_z}\sum_z \frac1{n-1}\sum_i (D_i z)_j^2` is unbiased for r_j = Σ_k S_jk with
    S_jk the (ddof=1) sample variance of the entries. M̄z is one batch product of the package's operator;
    the per-sample products M_i z are vectorised with ``torch.func.vmap`` in chunks of ``chunk_size``.

    ``num_samples`` samples are drawn without replacement (seeded) from (x, y) (all if fewer). Per-sample
    statistics need ``bn_mode="eval"``: with batch statistics a sample's loss depends on the other samples
    of its batch, so M_B is not a mean of per-sample matrices (and a 1-sample batch has no variance).
    ``stderr`` combines the spread over samples and over probes (sqrt(Var_i/n + Var_z/n_z)), treating
    them as independent.
    """
    _check_per_sample_inputs(model, loss_fn, x, y, matrix, bn_mode)
    num_samples = check_int(num_samples, "num_samples", minimum=2)
    num_probes = check_int(num_probes, "num_probes", minimum=1)
    chunk_size = check_int(chunk_size, "chunk_size", minimum=1)
    seed = _check_seed(seed)
    chosen = select_params(model, params)
    generator = torch.Generator().manual_seed(int(seed))
    x, y = _drawn_samples(x, y, chosen, num_samples, generator)
    n = int(x.shape[0])
    _check_storage(n, num_probes, "num_samples (after capping at the data size)")
    mean_op = curvature_operator(matrix, model, loss_fn, (x, y), bn_mode="eval", params=chosen)
    one_sample = _per_sample_fn(model, loss_fn, chosen, matrix, has_ignored_targets(loss_fn, y))
    sample_vp = torch.func.vmap(one_sample, in_dims=(0, 0, None), chunk_size=chunk_size)
    row_sums, q = _deviation_sums(
        model, chosen, mean_op, sample_vp, (x, y), num_probes, chunk_size, generator
    )
    return _noise_estimate(row_sums, q, n * num_probes + mean_op.num_products, matrix)


def _check_per_sample_inputs(
    model: nn.Module, loss_fn: LossFn, x: object, y: object, matrix: str, bn_mode: str
) -> None:
    """The argument checks of :func:`per_sample_noise` on the model, the data and the options."""
    check_model(model, loss_fn)
    _check_matrix(matrix)
    check_bn_mode(bn_mode)
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise TypeError(f"x and y must be torch tensors, got {type(x).__name__} and {type(y).__name__}")
    if bn_mode != "eval" and any(isinstance(m, _NormBase) for m in model.modules()):
        raise ValueError(
            "per_sample_noise needs bn_mode='eval' for models with normalisation layers: with batch "
            "statistics the batch curvature is not a mean of per-sample curvatures"
        )


def _drawn_samples(
    x: Tensor, y: Tensor, chosen: Sequence[Tensor], num_samples: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """(x, y) on the parameters' device and dtype, ``num_samples`` of them drawn without replacement by
    ``generator`` when there are more (all otherwise); at least 2 samples."""
    batch = as_batch_list((x, y), chosen[0].device, name="(x, y)", dtype=chosen[0].dtype)
    x, y = batch.batches[0]
    if x.shape[0] < 2:
        raise ValueError(f"need at least 2 samples, got {x.shape[0]}")
    if x.shape[0] > num_samples:
        index = torch.randperm(x.shape[0], generator=generator)[:num_samples].to(x.device)
        x, y = x[index], y[index]
    return x, y


def _deviation_sums(
    model: nn.Module,
    chosen: Sequence[Tensor],
    mean_op: CurvatureOperator,
    sample_vp: Callable[[Tensor, Tensor, tuple[Tensor, ...]], tuple[Tensor, ...]],
    data: tuple[Tensor, Tensor],
    num_probes: int,
    chunk_size: int,
    generator: torch.Generator,
) -> tuple[Tensor, np.ndarray]:
    """Σ_i (D_i z)_j² summed over ``num_probes`` Rademacher probes z (D_i z = M_i z − M̄z), and the
    (n, num_probes) per-(sample, probe) contributions ‖D_i z‖² / P · n/(n−1) to Pσ²."""
    x, y = data
    n = int(x.shape[0])
    size = sum(p.numel() for p in chosen)
    dtype, device = chosen[0].dtype, chosen[0].device
    row_sums = torch.zeros(size, dtype=torch.float64, device=device)
    q = np.zeros((n, num_probes))
    for probe in range(num_probes):
        z = _rademacher(size, generator).to(device)
        mean_z = mean_op.matvec(z).to(torch.float64)  # the first one validates the targets before vmap
        z_parts = tuple(split_like(z.to(dtype), chosen))
        with curvature_mode(model, chosen, "eval"), torch.no_grad():
            for begin in range(0, n, chunk_size):
                end = min(n, begin + chunk_size)
                parts = sample_vp(x[begin:end], y[begin:end], z_parts)
                flat = torch.cat([t.reshape(end - begin, -1) for t in parts], dim=1).to(torch.float64)
                dev = flat - mean_z
                row_sums += (dev**2).sum(dim=0)
                q[begin:end, probe] = ((dev**2).sum(dim=1) / size).cpu().numpy() * n / (n - 1)
    return row_sums, q


def _noise_estimate(row_sums: Tensor, q: np.ndarray, num_products: int, matrix: str) -> NoiseEstimate:
    """The :class:`NoiseEstimate` of the summed squared deviations (``q`` as :func:`_deviation_sums`)."""
    n, num_probes = q.shape
    rows = (row_sums / ((n - 1) * num_probes)).cpu().numpy()
    p_sigma2 = float(rows.mean())
    var_samples = q.mean(axis=1).var(ddof=1) / n
    var_probes = q.mean(axis=0).var(ddof=1) / num_probes if num_probes > 1 else 0.0
    mean_rows = float(rows.mean())
    return NoiseEstimate(
        row_sums=rows,
        p_sigma2=p_sigma2,
        stderr=float(np.sqrt(var_samples + var_probes)),
        row_sum_cv=float(rows.std() / mean_rows) if mean_rows > 0 else 0.0,
        num_samples=n,
        num_probes=num_probes,
        num_products=num_products,
        matrix=matrix,
    )


def batch_noise_norm(
    model: nn.Module,
    loss_fn: LossFn,
    data: object,
    batches: Sequence[tuple[Tensor, Tensor]],
    *,
    matrix: str = "hessian",
    num_probes: int = 4,
    seed: int = 0,
    bn_mode: str = "eval",
    params: Sequence[Tensor] | None = None,
) -> BatchNoiseEstimate:
    """ν(B)² ≈ E‖(M_B − M)z‖² for unit Rademacher z (docs/theory.md §4), averaged over ``batches`` and probes.

    ``data`` defines M (one batch or a list of batches, weighted by size); each element of ``batches``
    defines one M_B. Cost: num_probes · (1 + len(batches)) operator products (M z is computed once per probe).
    ``stderr`` = sample standard deviation of the values / sqrt(count), treating them as independent.
    """
    check_model(model, loss_fn)
    _check_matrix(matrix)
    num_probes = check_int(num_probes, "num_probes", minimum=1)
    seed = _check_seed(seed)
    batch_list = _batch_sequence(batches)
    _check_storage(len(batch_list), num_probes, "len(batches)")
    full = curvature_operator(
        matrix, model, loss_fn, data, bn_mode=bn_mode, params=params, method="recompute"
    )
    ops = [curvature_operator(matrix, model, loss_fn, b, bn_mode=bn_mode, params=params) for b in batch_list]
    size = full.shape[0]
    generator = torch.Generator().manual_seed(int(seed))
    values = np.zeros((len(ops), num_probes))
    for probe in range(num_probes):
        z = (_rademacher(size, generator) / np.sqrt(size)).to(full.device)
        mz = full.matvec(z).to(torch.float64)
        for b, op in enumerate(ops):
            values[b, probe] = float(((op.matvec(z).to(torch.float64) - mz) ** 2).sum())
    for op in ops:
        op.clear_cache()  # type: ignore[attr-defined]
    count = values.size
    stderr = float(values.std(ddof=1) / np.sqrt(count)) if count > 1 else float("nan")
    return BatchNoiseEstimate(
        nu2=float(values.mean()),
        stderr=stderr,
        values=values,
        num_batches=len(ops),
        num_probes=num_probes,
        num_products=full.num_products + sum(op.num_products for op in ops),
        matrix=matrix,
    )


def quadratic_form_variance(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Sequence[tuple[Tensor, Tensor]],
    directions: Tensor,
    *,
    matrix: str = "hessian",
    bn_mode: str = "eval",
    params: Sequence[Tensor] | None = None,
) -> QuadraticFormStats:
    """uᵀ M_B u / uᵀu over ``batches`` for each direction u (columns of a (P, k) tensor, or one (P,) vector).

    docs/theory.md §4: Var_B[uᵀ H_B u] should scale as κ(B). Needs at least 2 batches (ddof=1 variance).
    """
    check_model(model, loss_fn)
    _check_matrix(matrix)
    batch_list = _batch_sequence(batches)
    if len(batch_list) < 2:
        raise ValueError(f"batches must hold at least 2 batches for a variance, got {len(batch_list)}")
    _check_real_tensor(directions, "directions")
    if directions.ndim not in (1, 2) or directions.numel() == 0:
        raise ValueError(f"directions must be (P,) or (P, k), got shape {tuple(directions.shape)}")
    dirs = directions.detach().reshape(directions.shape[0], -1).to(torch.float64)
    if dirs.shape[1] == 0:
        raise ValueError("directions must hold at least one direction (k >= 1)")
    if not torch.isfinite(dirs).all() or bool((dirs.norm(dim=0) == 0).any()):
        raise ValueError("directions must be finite and non-zero")
    values = np.zeros((len(batch_list), dirs.shape[1]))
    products = 0
    for b, data in enumerate(batch_list):
        op = curvature_operator(matrix, model, loss_fn, data, bn_mode=bn_mode, params=params)
        if dirs.shape[0] != op.shape[0]:
            raise ValueError(f"directions must have {op.shape[0]} rows (P), got {dirs.shape[0]}")
        u = dirs.to(dtype=op.dtype, device=op.device)
        mu = op @ u
        values[b] = ((u * mu).sum(dim=0) / (u * u).sum(dim=0)).to(torch.float64).cpu().numpy()
        products += op.num_products
    return QuadraticFormStats(
        values=values,
        mean=values.mean(axis=0),
        variance=values.var(axis=0, ddof=1),
        num_batches=len(batch_list),
        num_products=products,
        matrix=matrix,
    )


__all__ = [
    "BatchNoiseEstimate",
    "NoiseEstimate",
    "QuadraticFormStats",
    "batch_noise_norm",
    "curvature_operator",
    "per_sample_noise",
    "quadratic_form_variance",
]
