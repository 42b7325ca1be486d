"""Product paths of the model operators against dense float64 references: block products (batched and looped),
several batches with kept / recomputed graphs under a memory budget, compiled products, autocast, and the
validation of these options."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from networks.curvature import GGNOperator, HessianOperator
from networks.curvature._graphs import DEFAULT_GRAPH_CACHE_BYTES
from tests.networks.reference import (
    F64,
    REL,
    bn_net,
    cnn,
    image_data,
    mlp,
    reference_ggn,
    reference_hessian,
    rel_err,
    vector_data,
)

CASES = [
    ("mlp", mlp, vector_data, "eval"),
    ("cnn", cnn, image_data, "eval"),
    ("bn-train", bn_net, vector_data, "train"),
]
KINDS = [("hessian", HessianOperator, reference_hessian), ("ggn", GGNOperator, reference_ggn)]


def _block(size: int, k: int, seed: int = 5) -> torch.Tensor:
    return torch.randn(size, k, generator=torch.Generator().manual_seed(seed), dtype=F64)


@pytest.mark.parametrize(("kind", "cls", "ref"), KINDS, ids=[k[0] for k in KINDS])
@pytest.mark.parametrize(("name", "make", "data", "bn_mode"), CASES, ids=[c[0] for c in CASES])
def test_block_products_equal_dense_and_loop(kind, cls, ref, name, make, data, bn_mode) -> None:
    """op @ V for a (P, k) block, batched and looped, equals the dense matrix times V (float64 rounding)."""
    model, (x, y), loss = make(), data(), nn.CrossEntropyLoss()
    dense = ref(model, loss, x, y, bn_mode)
    v = _block(dense.shape[0], 4)
    batched = cls(model, loss, (x, y), bn_mode=bn_mode, block_products="batched")
    looped = cls(model, loss, (x, y), bn_mode=bn_mode, block_products="loop")
    got_b, got_l = batched @ v, looped @ v
    assert got_b.shape == (dense.shape[0], 4)
    assert rel_err(got_b, dense @ v) < REL
    assert rel_err(got_l, dense @ v) < REL
    assert rel_err(got_b, got_l) < REL
    assert batched.num_products == looped.num_products == 4
    # the scipy bridge's matmat goes through the same block path
    np_block = batched.to_scipy().matmat(v.numpy())
    assert rel_err(torch.from_numpy(np_block), dense @ v) < REL
    # "auto" batches exactly when no parameter tensor has more than 2 dimensions (no convolutions)
    auto = cls(model, loss, (x, y), bn_mode=bn_mode)
    assert auto.provenance()["batched_blocks"] == (name != "cnn")
    assert rel_err(auto @ v, dense @ v) < REL


@pytest.mark.parametrize(("kind", "cls", "ref"), KINDS, ids=[k[0] for k in KINDS])
def test_several_batches_cached_and_recomputed_agree(kind, cls, ref) -> None:
    """Unequal chunks of one batch: kept graphs (auto within the budget, cached), a budget that keeps only the
    first graph, and recomputation give the same products, equal to the dense matrix of the whole batch."""
    model, (x, y), loss = mlp(), vector_data(n=17), nn.CrossEntropyLoss()
    dense = ref(model, loss, x, y, "eval")
    chunks = [(x[:7], y[:7]), (x[7:12], y[7:12]), (x[12:], y[12:])]
    v = _block(dense.shape[0], 3)
    ops = {
        "auto": cls(model, loss, chunks),
        "budget0": cls(model, loss, chunks, graph_cache_bytes=0),
        "cached": cls(model, loss, chunks, method="cached"),
        "recompute": cls(model, loss, chunks, method="recompute"),
    }
    results = {name: (op @ v, op @ v[:, 0]) for name, op in ops.items()}
    for block, col in results.values():
        assert rel_err(block, dense @ v) < REL
        assert rel_err(col, dense @ v[:, 0]) < REL
    assert ops["auto"].cached_batches == 3 and ops["auto"].graph_bytes is not None
    assert ops["auto"].graph_bytes > 0
    assert ops["budget0"].cached_batches == 1  # the first graph is built for every product anyway
    assert ops["recompute"].cached_batches == 0 and ops["cached"].cached_batches == 3
    # a second round of products reuses the kept graphs and gives identical results
    for name, op in ops.items():
        assert torch.equal(op @ v, results[name][0])


def test_cache_budget_keeps_a_prefix() -> None:
    """With a budget between one and two measured graphs, exactly the first graphs that fit are kept."""
    model, (x, y), loss = mlp(), vector_data(n=16), nn.CrossEntropyLoss()
    chunks = [(x[i : i + 4], y[i : i + 4]) for i in range(0, 16, 4)]
    probe = HessianOperator(model, loss, chunks)
    probe @ _block(probe.shape[0], 1)[:, 0]
    assert probe.graph_bytes is not None
    op = HessianOperator(model, loss, chunks, graph_cache_bytes=int(2.5 * probe.graph_bytes))
    dense = reference_hessian(model, loss, x, y, "eval")
    v = _block(op.shape[0], 1)[:, 0]
    assert rel_err(op @ v, dense @ v) < REL
    assert op.cached_batches == 2
    assert op.provenance()["cached_batches"] == 2
    assert DEFAULT_GRAPH_CACHE_BYTES == 2 * 1024**3


def test_graph_rebuilt_after_in_place_update() -> None:
    """Kept graphs follow in-place parameter updates (version counters)."""
    model, (x, y), loss = mlp(), vector_data(), nn.CrossEntropyLoss()
    op = HessianOperator(model, loss, (x, y))
    v = _block(op.shape[0], 1)[:, 0]
    op @ v
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)
    assert rel_err(op @ v, reference_hessian(model, loss, x, y, "eval") @ v) < REL


@pytest.mark.parametrize(("kind", "cls", "ref"), KINDS, ids=[k[0] for k in KINDS])
def test_compiled_product_is_exact(kind, cls, ref) -> None:
    """compile= runs the recomputed torch.func product through torch.compile (the fast "eager" backend here:
    dynamo's tracing, no code generation); products and blocks equal the dense matrix."""
    model, (x, y), loss = mlp(), vector_data(), nn.CrossEntropyLoss()
    dense = ref(model, loss, x, y, "eval")
    op = cls(model, loss, (x, y), compile="eager")
    v = _block(dense.shape[0], 2)
    assert rel_err(op @ v[:, 0], dense @ v[:, 0]) < REL
    assert rel_err(op @ v, dense @ v) < REL
    assert op.provenance()["compile"] == "eager"


def test_autocast_bfloat16_close_to_float32() -> None:
    """bfloat16 autocast products of a float32 model stay within bfloat16 rounding of the float32 product
    (8 mantissa bits: relative error a few 2⁻⁸ after the passes' accumulations); result dtype float32."""
    model, (x, y), loss = cnn().float(), image_data(n=8), nn.CrossEntropyLoss()
    x = x.float()
    full = HessianOperator(model, loss, (x, y))
    half = HessianOperator(model, loss, (x, y), autocast=torch.bfloat16)
    v = _block(full.shape[0], 1)[:, 0].float()
    exact, approx = full @ v, half @ v
    assert approx.dtype == torch.float32
    assert 0 < rel_err(approx, exact) < 0.1
    assert half.provenance()["autocast"] == "bfloat16"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"graph_cache_bytes": -1}, ValueError, "graph_cache_bytes"),
        ({"graph_cache_bytes": 1.5}, TypeError, "graph_cache_bytes"),
        ({"graph_cache_bytes": True}, TypeError, "graph_cache_bytes"),
        ({"block_products": "vmap"}, ValueError, "block_products"),
        ({"autocast": torch.float64}, ValueError, "autocast"),
        ({"autocast": "bfloat16"}, TypeError, "autocast"),
        ({"compile": "no-such-backend"}, ValueError, "compile"),
        ({"compile": 1}, ValueError, "compile"),
        ({"compile": True, "autocast": torch.bfloat16}, ValueError, "compile and autocast"),
    ],
)
def test_option_validation(kwargs, error, match) -> None:
    model, data = mlp(), vector_data()
    with pytest.raises(error, match=match):
        HessianOperator(model, nn.CrossEntropyLoss(), data, **kwargs)


def test_block_validation() -> None:
    op = HessianOperator(mlp(), nn.CrossEntropyLoss(), vector_data())
    bad = _block(op.shape[0], 2)
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="block must be finite"):
        op @ bad
    with pytest.raises(ValueError, match="block must have shape"):
        op @ _block(op.shape[0] + 1, 2)
    assert op.num_products == 0
