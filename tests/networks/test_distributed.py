"""Sharded curvature over gloo ranks equals the single-process operator on the whole data.

2 and 3 processes on 127.0.0.1 (torch.multiprocessing.spawn), N = 37 samples (uneven shards: 19/18 and
13/12/12), a float64 MLP with BatchNorm in both bn modes, Hessian and GGN. Each rank also builds the
single-process operator on the concatenation of all ranks' batches (the same batches, so bn_mode="train" is
comparable too) and, in eval mode, on the whole data as one batch. Float64 products that differ only in
summation order agree to ~1e-15 relative; 1e-10 leaves room for the ~P·ε growth of reassociated sums and is
far below the 1e-6 the operator promises. Eigenvalues from Lanczos at tol 1e-12 agree to the same order.
Workers start from a forkserver that has imported torch and this module once (a plain spawn re-imports torch
in every worker: ~4 s each on a loaded 2-core machine).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from hypothesis import given
from torch import nn

from networks.curvature import GGNOperator, HessianOperator
from networks.distributed import (
    DistributedOperator,
    broadcast_from,
    distributed_curvature_operator,
    init_from_env,
    process_group_from_env,
    shard_indices,
)
from networks.lanczos import top_eigenpairs

N_SAMPLES = 37
BATCH = 8
PROD_RTOL = 1e-10
EIG_RTOL = 1e-9
CASES = [
    ("hessian", "eval", "contiguous"),
    ("hessian", "train", "contiguous"),
    ("ggn", "eval", "contiguous"),
    ("ggn", "train", "strided"),
]


def _model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 3)).double()
    model.train()
    with torch.no_grad():  # non-trivial running statistics for bn_mode="eval"
        for _ in range(3):
            model(torch.randn(16, 5, dtype=torch.float64) * 2 + 1)
    return model


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(N_SAMPLES, 5, dtype=torch.float64, generator=gen)
    return x, torch.randint(0, 3, (N_SAMPLES,), generator=gen)


def _batches(x: torch.Tensor, y: torch.Tensor, idx: range) -> list[tuple[torch.Tensor, torch.Tensor]]:
    ids = torch.tensor(list(idx))
    return [(x[ids[i : i + BATCH]], y[ids[i : i + BATCH]]) for i in range(0, len(ids), BATCH)]


def _scenarios(rank: int, world: int) -> dict[str, Any]:
    model, (x, y) = _model(), _data()
    loss_fn = nn.CrossEntropyLoss()
    out: dict[str, Any] = {}
    for matrix, bn_mode, strategy in CASES:
        cls = HessianOperator if matrix == "hessian" else GGNOperator
        mine = _batches(x, y, shard_indices(N_SAMPLES, rank, world, strategy))
        shards = [shard_indices(N_SAMPLES, r, world, strategy) for r in range(world)]
        every = [b for shard in shards for b in _batches(x, y, shard)]
        op = distributed_curvature_operator(matrix, model, loss_fn, mine, bn_mode=bn_mode, method="cached")
        gen = torch.Generator().manual_seed(2)
        v = torch.randn(op.shape[0], dtype=torch.float64, generator=gen)
        block = torch.randn(op.shape[0], 3, dtype=torch.float64, generator=gen)
        eig = top_eigenpairs(op, k=2, which="LA", tol=1e-12, seed=3)
        case = {
            "product": op @ v, "block": op @ block, "scipy": op.to_scipy() @ v.numpy(),
            "eigenvalues": eig.eigenvalues, "eigenvectors": eig.eigenvectors, "converged": eig.converged,
            "num_products": op.num_products, "provenance": op.provenance(),
        }  # fmt: skip
        if rank == 0:  # the single-process reference (the other ranks would compute the same)
            ref = cls(model, loss_fn, every, bn_mode=bn_mode, method="cached")
            case.update(
                product_ref=ref @ v, block_ref=ref @ block,
                eigenvalues_ref=top_eigenpairs(ref, k=2, which="LA", tol=1e-12, seed=3).eigenvalues,
            )  # fmt: skip
            if bn_mode == "eval":
                case["product_one_batch"] = cls(model, loss_fn, (x, y), bn_mode="eval") @ v
        out["/".join((matrix, bn_mode, strategy))] = case
    # the same weights are required on every rank
    other = _model()
    if rank == world - 1:
        with torch.no_grad():
            next(other.parameters())[0, 0] += 1e-9
    try:
        distributed_curvature_operator("hessian", other, loss_fn, _batches(x, y, range(rank, rank + 1)))
        out["mismatch_error"] = None
    except ValueError as error:
        out["mismatch_error"] = str(error)
    out["broadcast"] = broadcast_from({"rank": rank}, src=0)
    return out


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    with process_group_from_env(backend="gloo", timeout_s=60) as info:
        assert (info.rank, info.world_size, info.backend) == (rank, world, "gloo")
        results = _scenarios(rank, world)
    assert not dist.is_initialized()
    torch.save(results, Path(out_dir) / f"rank{rank}.pt")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module", params=[2, 3], ids=["2ranks", "3ranks"])
def ranks(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    world = request.param
    out_dir = tmp_path_factory.mktemp(f"dist{world}")
    context = mp.get_context("forkserver")
    context.set_forkserver_preload(["torch", __name__])
    mp.start_processes(
        _worker, args=(world, _free_port(), str(out_dir)), nprocs=world, join=True, start_method="forkserver"
    )
    return [torch.load(out_dir / f"rank{r}.pt", weights_only=False) for r in range(world)]


def _rel(a: Any, b: Any) -> float:
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    return float((a - b).norm() / b.norm())


def test_products_equal_single_process(ranks: list[dict[str, Any]]) -> None:
    for name in ("/".join(c) for c in CASES):
        case = ranks[0][name]
        assert _rel(case["product"], case["product_ref"]) <= PROD_RTOL, name
        assert _rel(case["block"], case["block_ref"]) <= PROD_RTOL, name
        assert _rel(case["scipy"], case["product_ref"]) <= PROD_RTOL, name
        if "product_one_batch" in case:  # eval mode: the whole data as one batch, too
            assert _rel(case["product"], case["product_one_batch"]) <= PROD_RTOL, name


def test_top_eigenvalues_equal_single_process(ranks: list[dict[str, Any]]) -> None:
    for name in ("/".join(c) for c in CASES):
        case = ranks[0][name]
        assert case["converged"].all(), name
        np.testing.assert_allclose(case["eigenvalues"], case["eigenvalues_ref"], rtol=EIG_RTOL, err_msg=name)


def test_results_bitwise_identical_across_ranks(ranks: list[dict[str, Any]]) -> None:
    for name in ("/".join(c) for c in CASES):
        first = ranks[0][name]
        for other in ranks[1:]:
            case = other[name]
            for key in ("product", "block", "eigenvectors"):
                assert torch.equal(case[key], first[key]), (name, key)
            assert np.array_equal(case["eigenvalues"], first["eigenvalues"]), name
            assert np.array_equal(case["scipy"], first["scipy"]), name
            assert case["num_products"] == first["num_products"], name
    assert all(r["broadcast"] == {"rank": 0} for r in ranks)


def test_provenance_and_uneven_shards(ranks: list[dict[str, Any]]) -> None:
    world = len(ranks)
    expected = [len(shard_indices(N_SAMPLES, r, world)) for r in range(world)]
    assert sum(expected) == N_SAMPLES and len(set(expected)) == 2  # 37 is uneven over 2 and over 3
    for rank, result in enumerate(ranks):
        info = result["hessian/eval/contiguous"]["provenance"]
        assert info["world_size"] == world and info["rank"] == rank and info["backend"] == "gloo"
        assert info["shard_sizes"] == expected and info["num_samples"] == N_SAMPLES
        assert info["operator"] == "DistributedOperator" and info["local"]["num_samples"] == expected[rank]


def test_different_weights_on_ranks_rejected_everywhere(ranks: list[dict[str, Any]]) -> None:
    for result in ranks:
        assert result["mismatch_error"] is not None and "differ across ranks" in result["mismatch_error"]


# --- without a process group ---------------------------------------------------------------------------
@given(n=st.integers(0, 200), world=st.integers(1, 9), strategy=st.sampled_from(["contiguous", "strided"]))
def test_shard_indices_partition(n: int, world: int, strategy: str) -> None:
    shards = [shard_indices(n, r, world, strategy) for r in range(world)]
    flat = [i for s in shards for i in s]
    assert sorted(flat) == list(range(n))
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
    if strategy == "contiguous":
        assert flat == list(range(n))


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((10, 2, 2), ValueError, "rank"),
        ((10, -1, 2), ValueError, "rank"),
        ((10, 0, 0), ValueError, "world_size"),
        ((-1, 0, 1), ValueError, "n must"),
        ((10.0, 0, 1), TypeError, "n must"),
        ((10, 0, 2, "random"), ValueError, "strategy"),
    ],
)
def test_shard_indices_rejects_bad_input(args: tuple[Any, ...], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        shard_indices(*args)


def test_operator_needs_a_process_group() -> None:
    assert not dist.is_initialized()
    model, data = _model(), _data()
    local = HessianOperator(model, nn.CrossEntropyLoss(), data)
    with pytest.raises(ValueError, match="no process group"):
        DistributedOperator(local)
    with pytest.raises(ValueError, match="no process group"):
        distributed_curvature_operator("hessian", model, nn.CrossEntropyLoss(), data)
    with pytest.raises(TypeError, match="local must be"):
        DistributedOperator(np.eye(3))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}, "RANK is not set"),
        ({"RANK": "2", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}, "RANK must be in"),
        ({"RANK": "0", "WORLD_SIZE": "two", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}, "WORLD_SIZE"),
        ({"RANK": "0", "WORLD_SIZE": "1", "MASTER_PORT": "1"}, "MASTER_ADDR is not set"),
    ],
)
def test_init_from_env_rejects_bad_environment(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], match: str
) -> None:
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=match):
        init_from_env("gloo")
    with pytest.raises(ValueError, match="backend"):
        init_from_env("mpi")
    assert not dist.is_initialized()
