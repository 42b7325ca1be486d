"""HessianOperator and the operator base: exact products, closed forms, weights, state, algebra."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch
from torch import nn

from networks.curvature.ggn import GGNOperator
from networks.curvature.hessian import HessianOperator
from networks.curvature.operator import CurvatureOperator, as_operator
from tests.networks.reference import (
    F64,
    REL,
    bn_cnn,
    bn_net,
    cnn,
    flat_params,
    functional_loss,
    image_data,
    mlp,
    reference_hessian,
    rel_err,
    vector_data,
)


@pytest.mark.slow
def test_bn_train_reference_against_finite_differences() -> None:
    """Central differences of the exact gradient: error O(ε²) ≈ 1e-10 · third derivatives."""
    model, (x, y) = bn_net(), vector_data()
    loss = functional_loss(model, nn.CrossEntropyLoss(), x, y, "train")
    w, eps = flat_params(model), 1e-5
    grad = torch.func.grad(loss)
    block = torch.randn(w.numel(), 3, dtype=F64, generator=torch.Generator().manual_seed(0))
    fd = torch.stack([(grad(w + eps * v) - grad(w - eps * v)) / (2 * eps) for v in block.T], dim=1)
    exact = HessianOperator(model, nn.CrossEntropyLoss(), (x, y), bn_mode="train") @ block
    assert rel_err(exact, fd) <= 1e-7
    assert rel_err(reference_hessian(model, nn.CrossEntropyLoss(), x, y, "train") @ block, fd) <= 1e-7
    assert rel_err(torch.func.hessian(loss)(w) @ block, fd) > 1e-3  # the torch.func defect, documented


# --------------------------------------------------------------------------------------------- exactness
CASES = [
    ("mlp", mlp, vector_data, "eval"),
    ("cnn", cnn, image_data, "eval"),
    ("bn-eval", bn_net, vector_data, "eval"),
    ("bn-train", bn_net, vector_data, "train"),
    ("bn-cnn-train", bn_cnn, image_data, "train"),
]


@pytest.mark.parametrize(("name", "make", "data", "bn_mode"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("method", ["cached", "recompute", "func"])
def test_hessian_matches_torch_func_hessian(name, make, data, bn_mode, method) -> None:
    model, (x, y) = make(), data()
    loss_fn = nn.CrossEntropyLoss()
    op = HessianOperator(model, loss_fn, (x, y), bn_mode=bn_mode, method=method)
    block = torch.randn(op.shape[0], 3, dtype=F64, generator=torch.Generator().manual_seed(0))
    assert rel_err(op @ block, reference_hessian(model, loss_fn, x, y, bn_mode) @ block) <= REL


def test_bn_modes_differ() -> None:
    model, (x, y) = bn_net(), vector_data()
    h_eval = HessianOperator(model, nn.CrossEntropyLoss(), (x, y), bn_mode="eval").to_dense()
    h_train = HessianOperator(model, nn.CrossEntropyLoss(), (x, y), bn_mode="train").to_dense()
    assert rel_err(h_eval, h_train) > 1e-2


def test_linear_regression_closed_form_mse_scaling() -> None:
    """L = (1/(nC)) Σ_i ‖W x_i − y_i‖² (nn.MSELoss mean) ⇒ H = I_C ⊗ 2XᵀX/(nC) in row-major vec(W)."""
    g = torch.Generator().manual_seed(5)
    n, d, c = 9, 3, 2
    x, y = torch.randn(n, d, generator=g, dtype=F64), torch.randn(n, c, generator=g, dtype=F64)
    lin = nn.Linear(d, c, bias=False).to(F64)
    expected = torch.kron(torch.eye(c, dtype=F64), 2 * x.T @ x / (n * c))
    for cls in (HessianOperator, GGNOperator):
        assert rel_err(cls(lin, nn.MSELoss(), (x, y)).to_dense(), expected) <= REL


def test_logistic_regression_closed_form() -> None:
    """BCE-with-logits: H = (1/n) Σ p_i(1 − p_i) x̃_i x̃_iᵀ with x̃ = (x, 1) (weight then bias)."""
    g = torch.Generator().manual_seed(6)
    n, d = 15, 3
    x = torch.randn(n, d, generator=g, dtype=F64)
    y = torch.randint(0, 2, (n, 1), generator=g).to(F64)
    lin = nn.Linear(d, 1).to(F64)
    p = torch.sigmoid(lin(x)).detach().reshape(-1)
    xt = torch.cat([x, torch.ones(n, 1, dtype=F64)], dim=1)
    expected = (xt * (p * (1 - p))[:, None]).T @ xt / n
    for cls in (HessianOperator, GGNOperator):  # GGN goes through the generic output-Hessian path here
        assert rel_err(cls(lin, nn.BCEWithLogitsLoss(), (x, y)).to_dense(), expected) <= REL


def test_softmax_regression_closed_form() -> None:
    """CE on z = W x: H = (1/n) Σ_i (diag p_i − p_i p_iᵀ) ⊗ x_i x_iᵀ (row-major vec(W))."""
    g = torch.Generator().manual_seed(7)
    n, d, c = 11, 3, 4
    x, y = torch.randn(n, d, generator=g, dtype=F64), torch.randint(0, c, (n,), generator=g)
    lin = nn.Linear(d, c, bias=False).to(F64)
    p = torch.softmax(lin(x), dim=1).detach()
    expected = sum(
        torch.kron(torch.diag(p[i]) - torch.outer(p[i], p[i]), torch.outer(x[i], x[i])) for i in range(n)
    )
    for cls in (HessianOperator, GGNOperator):
        assert rel_err(cls(lin, nn.CrossEntropyLoss(), (x, y)).to_dense(), expected / n) <= REL


@pytest.mark.parametrize("cls", [HessianOperator, GGNOperator])
@pytest.mark.parametrize("method", ["cached", "recompute"])
def test_unequal_batches_equal_concatenation(cls, method) -> None:
    model, (x, y) = mlp(), vector_data(13)
    loss_fn = nn.CrossEntropyLoss()
    whole = cls(model, loss_fn, (x, y), method=method).to_dense()
    split = [(x[:2], y[:2]), (x[2:9], y[2:9]), (x[9:], y[9:])]
    op = cls(model, loss_fn, split, method=method)
    assert op.provenance()["batch_sizes"] == [2, 7, 4]
    assert rel_err(op.to_dense(), whole) <= REL
    # an unweighted mean over batches would differ: the weighting matters
    unweighted = sum(cls(model, loss_fn, b).to_dense() for b in split) / 3
    assert rel_err(unweighted, whole) > 1e-3


def _state(model: nn.Module) -> tuple:
    return (
        [m.training for m in model.modules()],
        {k: v.clone() for k, v in model.state_dict().items()},
        [p.requires_grad for p in model.parameters()],
        [getattr(m, "track_running_stats", None) for m in model.modules()],
    )


@pytest.mark.parametrize("cls", [HessianOperator, GGNOperator])
@pytest.mark.parametrize("bn_mode", ["eval", "train"])
@pytest.mark.parametrize("training", [True, False])
def test_model_state_restored(cls, bn_mode, training) -> None:
    model, (x, y) = bn_net(), vector_data()
    model.train(training)
    model[3].train(not training)  # a mixed pattern of flags must survive exactly
    model[0].bias.requires_grad_(False)
    before = _state(model)
    params = list(model.parameters())  # includes the frozen bias: it must be differentiated, then re-frozen
    op = cls(model, nn.CrossEntropyLoss(), (x, y), bn_mode=bn_mode, params=params)
    v = torch.randn(op.shape[0], dtype=F64, generator=torch.Generator().manual_seed(0))
    first = op @ v
    second = op @ v  # deterministic: dropout off, no buffer drift
    after = _state(model)
    assert before[0] == after[0] and before[2] == after[2] and before[3] == after[3]
    for key, value in before[1].items():
        assert torch.equal(value, after[1][key]), key
    assert torch.equal(first, second)


def test_default_params_skip_frozen_and_cache_tracks_updates() -> None:
    model, (x, y) = mlp(), vector_data()
    model[0].weight.requires_grad_(False)
    op = HessianOperator(model, nn.CrossEntropyLoss(), (x, y), method="cached")
    assert op.shape[0] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    v = torch.ones(op.shape[0], dtype=F64)
    old = op @ v
    with torch.no_grad():
        model[2].weight.mul_(1.5)  # in-place update: the cached graph must be rebuilt
    fresh = HessianOperator(model, nn.CrossEntropyLoss(), (x, y), method="recompute") @ v
    new = op @ v
    assert rel_err(new, fresh) <= REL and rel_err(old, fresh) > 1e-3


# ----------------------------------------------------------------------------------------------- algebra
def test_operator_algebra_and_products() -> None:
    model, (x, y) = mlp(), vector_data()
    loss_fn = nn.CrossEntropyLoss()
    h = HessianOperator(model, loss_fn, (x, y))
    h_b = HessianOperator(model, loss_fn, (x[:4], y[:4]))
    dense, dense_b = h.to_dense(), h_b.to_dense()
    v = torch.randn(h.shape[0], dtype=F64, generator=torch.Generator().manual_seed(1))
    assert rel_err((h_b - h) @ v, (dense_b - dense) @ v) <= REL
    assert rel_err((h + h_b) @ v, (dense + dense_b) @ v) <= REL
    assert rel_err((-h) @ v, -dense @ v) <= REL
    assert rel_err((2.5 * h) @ v, 2.5 * dense @ v) <= REL
    assert rel_err((h * 2) @ v, 2 * dense @ v) <= REL
    assert rel_err((h / 4) @ v, dense @ v / 4) <= REL
    block = torch.randn(h.shape[0], 3, dtype=F64, generator=torch.Generator().manual_seed(2))
    assert rel_err(h @ block, dense @ block) <= REL
    out = h @ v.numpy()
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    np.testing.assert_allclose(out, (dense @ v).numpy(), rtol=1e-10, atol=1e-14)
    assert isinstance(h @ block.numpy(), np.ndarray) and (h @ block.numpy()).shape == (h.shape[0], 3)
    count = h.num_products
    h @ block
    assert h.num_products == count + 3


def test_to_scipy_and_as_operator() -> None:
    model, (x, y) = mlp(), vector_data()
    h = HessianOperator(model, nn.CrossEntropyLoss(), (x, y))
    dense = h.to_dense().numpy()
    lin = h.to_scipy()
    assert isinstance(lin, spla.LinearOperator) and lin.dtype == np.float64 and lin.shape == dense.shape
    v = np.random.default_rng(0).standard_normal((dense.shape[0], 2))
    np.testing.assert_allclose(lin @ v, dense @ v, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(lin.matvec(v[:, 0]), dense @ v[:, 0], rtol=1e-10, atol=1e-13)
    for wrapped in (as_operator(dense), as_operator(torch.from_numpy(dense)), as_operator(lin)):
        assert isinstance(wrapped, CurvatureOperator)
        np.testing.assert_allclose(wrapped @ v, dense @ v, rtol=1e-10, atol=1e-13)
    assert as_operator(h) is h
    with pytest.raises(TypeError, match="CurvatureOperator"):
        as_operator("not a matrix")


def test_provenance_records_setup() -> None:
    model, (x, y) = bn_net(), vector_data(10)
    op = GGNOperator(model, nn.CrossEntropyLoss(), [(x[:4], y[:4]), (x[4:], y[4:])], bn_mode="train")
    op @ torch.zeros(op.shape[0], dtype=F64)
    info = op.provenance()
    assert info["bn_mode"] == "train" and info["matrix"] == "ggn" and info["num_samples"] == 10
    assert info["batch_sizes"] == [4, 6] and info["num_products"] == 1 and info["dtype"] == "float64"
    assert info["device"] == "cpu" and info["torch_version"] == torch.__version__
    diff = (op - op).provenance()
    assert len(diff["terms"]) == 2


def test_float32_model_gives_float32_operator() -> None:
    model = mlp().float()
    x, y = vector_data()
    op = HessianOperator(model, nn.CrossEntropyLoss(), (x.float(), y))
    assert op.dtype == torch.float32
    out = op @ torch.ones(op.shape[0], dtype=F64)
    assert out.dtype == torch.float32
    ref = HessianOperator(mlp(), nn.CrossEntropyLoss(), (x, y)) @ torch.ones(op.shape[0], dtype=F64)
    assert rel_err(out.double(), ref) <= 1e-5


def test_argument_validation() -> None:
    model, (x, y) = mlp(), vector_data()
    loss_fn = nn.CrossEntropyLoss()
    with pytest.raises(ValueError, match="bn_mode"):
        HessianOperator(model, loss_fn, (x, y), bn_mode="batch")
    with pytest.raises(ValueError, match="empty"):
        HessianOperator(model, loss_fn, [])
    with pytest.raises(ValueError, match="samples"):
        HessianOperator(model, loss_fn, (x, y[:3]))
    with pytest.raises(ValueError, match="empty batch"):
        HessianOperator(model, loss_fn, (x[:0], y[:0]))
    with pytest.raises(TypeError, match="pair"):
        HessianOperator(model, loss_fn, 3)
    with pytest.raises(ValueError, match="reduction"):
        HessianOperator(model, nn.CrossEntropyLoss(reduction="sum"), (x, y))
    with pytest.raises(ValueError, match="method"):
        GGNOperator(model, loss_fn, (x, y), method="func")
    with pytest.raises(ValueError, match="not a parameter"):
        HessianOperator(model, loss_fn, (x, y), params=[torch.zeros(3, requires_grad=True)])
    op = HessianOperator(model, loss_fn, (x, y))
    with pytest.raises(ValueError, match="shape"):
        op @ torch.zeros(op.shape[0] + 1, dtype=F64)
    with pytest.raises(ValueError, match="3-D"):
        op @ torch.zeros(2, 2, op.shape[0], dtype=F64)
    with pytest.raises(ValueError, match="combine"):
        op - as_operator(np.eye(3))


@pytest.mark.parametrize("cls", [HessianOperator, GGNOperator])
def test_targets_are_checked_against_the_output(cls) -> None:
    """Labels outside [0, C) and MSE targets of another shape are refused before the loss runs (naming the
    batch); ignore_index labels are accepted and contribute nothing."""
    model, (x, y) = mlp(), vector_data()
    v = torch.ones(sum(p.numel() for p in model.parameters()), dtype=F64)
    bad = y.clone()
    bad[3] = -1
    with pytest.raises(ValueError, match=r"data\[1\]: y must hold class labels in \[0, 3\)"):
        cls(model, nn.CrossEntropyLoss(), [(x[:4], y[:4]), (x[4:], bad[4:] + 5)]) @ v
    with pytest.raises(ValueError, match=r"in \[0, 3\).*got labels in \[-1, -1\]"):
        cls(model, nn.CrossEntropyLoss(), (x, bad)) @ v
    with pytest.raises(ValueError, match=r"y must have the model output's shape \(12, 3\)"):
        cls(model, nn.MSELoss(), (x, torch.zeros(12, 1, dtype=F64))) @ v
    ignored = y.clone()
    ignored[:4] = -100
    kept = cls(model, nn.CrossEntropyLoss(), (x[4:], y[4:])) @ v
    assert rel_err(cls(model, nn.CrossEntropyLoss(), (x, ignored)) @ v, kept) <= REL
