r"""Full-data curvature over ranks of a ``torch.distributed`` process group (data-parallel products).

Each rank holds a shard of the data (its own batches, n_r samples, N = Σ_r n_r) and a *local* curvature
operator on it (e.g. :class:`networks.curvature.HessianOperator`), whose product is the curvature of the
shard's mean loss L_r = (1/n_r) Σ_{i∈r} ℓ_i. The full-data mean loss is L = Σ_r (n_r/N) L_r, so

.. math::  A v = \sum_r \frac{n_r}{N} A_r v ,

which :class:`DistributedOperator` computes by scaling the local product by n_r/N and summing it over ranks
with one explicit ``dist.all_reduce`` on the flat product (DDP's gradient hooks do not fire for
``torch.autograd.grad``, so nothing else would synchronise it). Uneven shards are exact: with the same
batches, the result equals the single-process operator on the concatenated batch list (the curvature of
the **mean** loss, as in docs/theory.md "Symbols and conventions"; for ``bn_mode="train"`` every batch keeps
its own batch statistics, as in the single-process operator).

Every product is a **collective**: all ranks must call it, in the same order, with the same vector. The
Lanczos routines in :mod:`networks.lanczos` satisfy this when every rank runs them with the same arguments:
start vectors come from a seeded CPU generator and every rank receives the same all-reduced products, so
the recurrence (docs/theory.md §5), and with it ``top_eigenpairs``/``slq_density``, returns the same
numbers on every rank (tests/networks/test_distributed.py checks it bit for bit on gloo;
:func:`broadcast_from` is there for a backend whose reductions are not bitwise identical across ranks).

Launch with ``torchrun --nproc-per-node=K script.py`` and call :func:`init_from_env` (gloo on CPU, nccl on
CUDA) or use :func:`process_group_from_env` as a context manager. Cost per product ≈ (time of a product on N
samples) / K + all-reduce of P·(bytes per element) (P·4 in float32, P·8 in float64).
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from networks.curvature import CurvatureOperator, curvature_operator
from rmt.checks import check_int

ENV_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
BACKENDS = ("gloo", "nccl")
SHARDINGS = ("contiguous", "strided")

T = TypeVar("T")


# --- sharding ------------------------------------------------------------------------------------------
def _check_int(value: Any, name: str, minimum: int) -> int:
    return check_int(value, name, minimum=minimum, integral_type=True)


def shard_indices(n: int, rank: int, world_size: int, strategy: str = "contiguous") -> range:
    """The sample indices of ``rank``'s shard of ``n`` samples over ``world_size`` ranks.

    ``"contiguous"``: rank r gets the block [r·q + min(r, s), …) of length q + (1 if r < s), with
    q, s = divmod(n, world_size) — shard sizes differ by at most one and the ranks' blocks concatenate to
    0 … n−1 in order (so batches cut from them in order are the single-process batches). ``"strided"``: rank
    r gets r, r + world_size, r + 2·world_size, … (same sizes; interleaves classes of sorted data).
    Every shard is non-empty iff n >= world_size.

    Raises:
        TypeError / ValueError: n, rank or world_size not ints, n < 0, world_size < 1,
            rank outside [0, world_size), or an unknown ``strategy``.
    """
    n = _check_int(n, "n", 0)
    world_size = _check_int(world_size, "world_size", 1)
    rank = _check_int(rank, "rank", 0)
    if rank >= world_size:
        raise ValueError(f"rank must be in [0, world_size) = [0, {world_size}), got {rank}")
    if strategy not in SHARDINGS:
        raise ValueError(f"strategy must be one of {SHARDINGS}, got {strategy!r}")
    if strategy == "strided":
        return range(rank, n, world_size)
    q, s = divmod(n, world_size)
    start = rank * q + min(rank, s)
    return range(start, start + q + (1 if rank < s else 0))


# --- process group ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProcessGroupInfo:
    """Where this process sits: rank, world size, backend and the device its tensors should live on."""

    rank: int
    world_size: int
    backend: str
    device: torch.device


def _require_group(group: Any) -> None:
    if not dist.is_available():
        raise ValueError("group: torch.distributed is not available in this torch build")
    if not dist.is_initialized():
        raise ValueError(
            "group: no process group is initialised; call networks.distributed.init_from_env() "
            "(under torchrun) or torch.distributed.init_process_group() first"
        )
    if group is not None and not isinstance(group, dist.ProcessGroup):
        raise TypeError(f"group must be a torch.distributed.ProcessGroup or None, got {type(group)!r}")


def _env_int(name: str, minimum: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        raise ValueError(f"environment variable {name} is not set (torchrun sets {', '.join(ENV_VARS)})")
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(
            f"environment variable {name} must be an integer >= {minimum}, got {raw!r}"
        ) from None
    if value < minimum:
        raise ValueError(f"environment variable {name} must be an integer >= {minimum}, got {value}")
    return value


def init_from_env(backend: str | None = None, timeout_s: float = 600.0) -> ProcessGroupInfo:
    """Initialise the default process group from torchrun's environment and return where this rank sits.

    Reads RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT (and LOCAL_RANK for the GPU index, default RANK).
    ``backend`` defaults to ``"nccl"`` when CUDA is available and ``"gloo"`` otherwise; with nccl the rank's
    device is ``cuda:LOCAL_RANK`` (made current). If a process group is already initialised it is reused.

    Raises:
        ValueError: a variable missing or not an integer, RANK outside [0, WORLD_SIZE), an unknown backend,
            nccl without CUDA, or timeout_s <= 0.
    """
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or None, got {backend!r}")
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
    if not dist.is_available():
        raise ValueError("backend: torch.distributed is not available in this torch build")
    if dist.is_initialized():
        chosen = str(dist.get_backend())
        rank = dist.get_rank()
    else:
        world_size = _env_int("WORLD_SIZE", 1)
        rank = _env_int("RANK", 0)
        if rank >= world_size:
            raise ValueError(
                f"environment variable RANK must be in [0, WORLD_SIZE) = [0, {world_size}), got {rank}"
            )
        for name in ("MASTER_ADDR", "MASTER_PORT"):
            if not os.environ.get(name):
                raise ValueError(
                    f"environment variable {name} is not set (torchrun sets {', '.join(ENV_VARS)})"
                )
        _env_int("MASTER_PORT", 1)
        chosen = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        if chosen == "nccl" and not torch.cuda.is_available():
            raise ValueError("backend='nccl' needs CUDA, which is not available; use 'gloo'")
        dist.init_process_group(
            chosen, init_method="env://", rank=rank, world_size=world_size,
            timeout=datetime.timedelta(seconds=timeout_s),
        )  # fmt: skip
    device = torch.device("cpu")
    if chosen == "nccl":
        local_rank = int(os.environ.get("LOCAL_RANK", rank)) % max(torch.cuda.device_count(), 1)
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    return ProcessGroupInfo(
        rank=dist.get_rank(), world_size=dist.get_world_size(), backend=chosen, device=device
    )


@contextlib.contextmanager
def process_group_from_env(
    backend: str | None = None, timeout_s: float = 600.0
) -> Iterator[ProcessGroupInfo]:
    """``with process_group_from_env() as info:`` — :func:`init_from_env`, and destroy the group on exit if
    this call created it."""
    created = not (dist.is_available() and dist.is_initialized())
    info = init_from_env(backend, timeout_s)
    try:
        yield info
    finally:
        if created and dist.is_initialized():
            dist.destroy_process_group()


def broadcast_from(obj: T, src: int = 0, group: Any = None) -> T:
    """``obj`` as held by rank ``src`` (picklable objects, e.g. an EigenResult), on every rank.

    Use it where a backend's reductions are not bitwise identical across ranks, so that every rank keeps
    rank ``src``'s result. Collective: all ranks must call it.
    """
    _require_group(group)
    payload = [obj]
    dist.broadcast_object_list(payload, src=src, group=group)
    return payload[0]


# --- the operator ------------------------------------------------------------------------------------------
def _gather_ints(values: Sequence[int], device: torch.device, group: Any) -> list[list[int]]:
    """all_gather of a few int64 per rank; returns one list per rank, in rank order."""
    mine = torch.tensor(list(values), dtype=torch.int64, device=device)
    out = [torch.empty_like(mine) for _ in range(dist.get_world_size(group))]
    dist.all_gather(out, mine, group=group)
    return [[int(x) for x in t.cpu()] for t in out]


class DistributedOperator(CurvatureOperator):
    r"""The full-data curvature A = Σ_r (n_r/N) A_r from per-rank operators A_r on data shards.

    Args:
        local: this rank's curvature operator on its shard (any :class:`CurvatureOperator` of the same shape
            on every rank; its product is the curvature of the shard's *mean* loss).
        num_samples: n_r, the samples in this rank's shard; default ``local.num_samples`` (model operators
            have it). Shard weights are n_r/N with N = Σ_r n_r gathered at construction.
        group: the process group (default: the initialised default group).
        check_params: at construction, check that ``local.params`` (if it has them) are bitwise equal on all
            ranks (one broadcast of P numbers) — different weights would silently mix different Hessians.

    Products (``@`` on a (P,) vector or a (P, k) block, ``to_scipy()``, ``lanczos``/``top_eigenpairs``) are
    collective calls; a (P, k) block costs one all-reduce of P·k numbers. ``num_products`` counts global
    products (k per block). Construction is collective too.

    Raises:
        TypeError: ``local`` is not a CurvatureOperator, ``num_samples`` is missing or not an int, ``group``
            is not a ProcessGroup.
        ValueError: no process group initialised, n_r < 1, operator sizes differing across ranks, or
            parameters differing across ranks.
    """

    def __init__(
        self,
        local: CurvatureOperator,
        *,
        num_samples: int | None = None,
        group: Any = None,
        check_params: bool = True,
    ) -> None:
        if not isinstance(local, CurvatureOperator):
            raise TypeError(f"local must be a CurvatureOperator (e.g. HessianOperator), got {type(local)!r}")
        _require_group(group)
        if num_samples is None:
            num_samples = getattr(local, "num_samples", None)
            if num_samples is None:
                raise TypeError(
                    "num_samples: local has no num_samples attribute; pass num_samples= explicitly"
                )
        n_local = _check_int(num_samples, "num_samples", 1)
        super().__init__(local.shape[0], local.dtype, local.device)
        self.local = local
        self.group = group
        self.backend = str(dist.get_backend(group))
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)
        comm_device = local.device if self.backend == "nccl" else torch.device("cpu")
        self._comm_device = comm_device
        gathered = _gather_ints([local.shape[0], n_local], comm_device, group)
        sizes = {row[0] for row in gathered}
        if len(sizes) != 1:
            raise ValueError(f"local: operator sizes P differ across ranks: {[row[0] for row in gathered]}")
        self.shard_sizes: tuple[int, ...] = tuple(row[1] for row in gathered)
        self.num_samples = sum(self.shard_sizes)
        self.weight = n_local / self.num_samples
        params = getattr(local, "params", None)
        if check_params and params is not None:
            self._check_same_params(list(params))

    def _check_same_params(self, params: list[Tensor]) -> None:
        flat = torch.cat([p.detach().reshape(-1) for p in params]).to(self._comm_device)
        reference = flat.clone()
        src = 0 if self.group is None else dist.get_global_rank(self.group, 0)
        dist.broadcast(reference, src=src, group=self.group)
        differs = torch.tensor(
            [0 if torch.equal(flat, reference) else 1], dtype=torch.int64, device=self._comm_device
        )
        dist.all_reduce(differs, op=dist.ReduceOp.MAX, group=self.group)
        if int(differs.item()):
            raise ValueError(
                "local: model parameters differ across ranks; every rank must hold the same weights "
                "(load the same checkpoint or broadcast from rank 0 first)"
            )

    def _reduce(self, local_product: Tensor) -> Tensor:
        out = (local_product * self.weight).contiguous()
        if out.device != self._comm_device:
            moved = out.to(self._comm_device)
            dist.all_reduce(moved, op=dist.ReduceOp.SUM, group=self.group)
            return moved.to(self.device)
        dist.all_reduce(out, op=dist.ReduceOp.SUM, group=self.group)
        return out

    def _matvec(self, v: Tensor) -> Tensor:
        return self._reduce(self.local.matvec(v))

    def matmat(self, block: Tensor) -> Tensor:
        """A V for a (P, k) block: k local products, then one all-reduce of the (P, k) block."""
        if not isinstance(block, Tensor):
            raise TypeError(f"block must be a torch.Tensor, got {type(block)!r}")
        if block.ndim != 2 or block.shape[0] != self.shape[0]:
            raise ValueError(f"block must have shape ({self.shape[0]}, k), got {tuple(block.shape)}")
        if block.shape[1] == 0:
            return torch.zeros(self.shape[0], 0, dtype=self.dtype, device=self.device)
        local = self.local.matmat(block.detach().to(dtype=self.dtype, device=self.device))
        out = self._reduce(local)
        self.num_products += int(block.shape[1])
        return out

    def provenance(self) -> dict[str, Any]:
        info = super().provenance()
        info.update(
            world_size=self.world_size,
            rank=self.rank,
            backend=self.backend,
            shard_sizes=list(self.shard_sizes),
            num_samples=self.num_samples,
            local=self.local.provenance(),
        )
        return info


def distributed_curvature_operator(
    matrix: str,
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    local_data: object,
    *,
    bn_mode: str = "eval",
    params: Sequence[Tensor] | None = None,
    method: str = "auto",
    group: Any = None,
) -> DistributedOperator:
    """The full-data ``matrix`` ("hessian" | "ggn") from this rank's ``local_data`` (one (x, y) batch or a
    list of batches): :class:`DistributedOperator` around ``curvature_operator(matrix, model, loss_fn,
    local_data, ...)``. Collective: every rank calls it with its own shard and the same model weights."""
    _require_group(group)
    local = curvature_operator(
        matrix, model, loss_fn, local_data, bn_mode=bn_mode, params=params, method=method
    )
    return DistributedOperator(local, group=group)


__all__ = [
    "DistributedOperator",
    "ProcessGroupInfo",
    "broadcast_from",
    "distributed_curvature_operator",
    "init_from_env",
    "process_group_from_env",
    "shard_indices",
]
