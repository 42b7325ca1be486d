"""GGNOperator against explicit Jacobians and output-space loss Hessians (independent of the closed forms)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from networks.curvature.ggn import GGNOperator, loss_output_hvp
from tests.networks.reference import (
    F64,
    REL,
    bn_cnn,
    bn_net,
    cnn,
    image_data,
    mlp,
    reference_ggn,
    rel_err,
    vector_data,
)

CASES = [
    ("mlp-ce", mlp, vector_data, "eval", nn.CrossEntropyLoss()),
    ("mlp-ce-smooth", mlp, vector_data, "eval", nn.CrossEntropyLoss(label_smoothing=0.1)),
    (
        "mlp-ce-weighted",
        mlp,
        vector_data,
        "eval",
        nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 0.5], dtype=F64)),
    ),
    ("cnn-ce", cnn, image_data, "eval", nn.CrossEntropyLoss()),
    ("bn-eval", bn_net, vector_data, "eval", nn.CrossEntropyLoss()),
    ("bn-train", bn_net, vector_data, "train", nn.CrossEntropyLoss()),
    ("bn-cnn-train", bn_cnn, image_data, "train", nn.CrossEntropyLoss()),
]


@pytest.mark.parametrize(("name", "make", "data", "bn_mode", "loss_fn"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("method", ["cached", "recompute"])
def test_ggn_matches_explicit_jacobians(name, make, data, bn_mode, loss_fn, method) -> None:
    model, (x, y) = make(), data()
    op = GGNOperator(model, loss_fn, (x, y), bn_mode=bn_mode, method=method)
    block = torch.randn(op.shape[0], 3, dtype=F64, generator=torch.Generator().manual_seed(0))
    assert rel_err(op @ block, reference_ggn(model, loss_fn, x, y, bn_mode) @ block) <= REL


def test_ggn_mse_matches_explicit_jacobians() -> None:
    model, (x, _) = mlp(), vector_data()
    y = torch.randn(x.shape[0], 3, dtype=F64, generator=torch.Generator().manual_seed(3))
    op = GGNOperator(model, nn.MSELoss(), (x, y))
    assert rel_err(op.to_dense(), reference_ggn(model, nn.MSELoss(), x, y, "eval")) <= REL


@pytest.mark.parametrize(
    "loss_fn",
    [nn.CrossEntropyLoss(), nn.CrossEntropyLoss(label_smoothing=0.2), nn.MSELoss()],
    ids=["ce", "ce-smoothing", "mse"],
)
def test_output_hessian_closed_forms_and_scaling(loss_fn) -> None:
    """(diag p − ppᵀ)/n for cross-entropy, 2/(nC)·I for MSE, against torch.func.hessian of the loss."""
    g = torch.Generator().manual_seed(4)
    n, c = 5, 4
    out = torch.randn(n, c, dtype=F64, generator=g)
    y = (
        torch.randn(n, c, dtype=F64, generator=g)
        if isinstance(loss_fn, nn.MSELoss)
        else torch.randint(0, c, (n,))
    )
    v = torch.randn(n, c, dtype=F64, generator=g)
    exact = torch.func.hessian(lambda o: loss_fn(o, y))(out).reshape(n * c, n * c) @ v.reshape(-1)
    assert rel_err(loss_output_hvp(loss_fn, out, y, v).reshape(-1), exact) <= REL
    if isinstance(loss_fn, nn.MSELoss):
        assert torch.allclose(loss_output_hvp(loss_fn, out, y, v), v * 2 / (n * c))


def test_ggn_psd_and_differs_from_hessian_off_linear_models() -> None:
    from networks.curvature.hessian import HessianOperator

    model, (x, y) = mlp(), vector_data()
    g = GGNOperator(model, nn.CrossEntropyLoss(), (x, y)).to_dense()
    h = HessianOperator(model, nn.CrossEntropyLoss(), (x, y)).to_dense()
    assert rel_err(g, g.T) <= 1e-12
    eig = torch.linalg.eigvalsh(g)
    assert eig.min() >= -1e-12 * eig.max()
    assert rel_err(g, h) > 1e-3
