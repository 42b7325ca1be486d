"""Shared test references for networks: tiny models and data, and exact dense curvature matrices.

The dense Hessian and GGN here are computed independently of :mod:`networks.curvature` (no operator, no
product implementation of the package): the model is deep-copied into the curvature mode, its parameters are
a flat vector w, and ``torch.func`` / ``torch.autograd.functional`` differentiate L(w) or f(w) explicitly.
test_curvature.py, test_ggn.py, test_noise.py, test_lanczos.py and the fuzz module import from here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

F64 = torch.float64
REL = 1e-10
"""Relative tolerance of exact float64 products against the dense references (rounding only)."""


# ------------------------------------------------------------------------------------------- tiny models
def mlp() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).to(F64)


def cnn() -> nn.Module:
    torch.manual_seed(2)
    return nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.Softplus(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2 * 2 * 2, 3)
    ).to(F64)


def bn_net() -> nn.Module:
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Tanh(), nn.Dropout(0.5), nn.Linear(5, 3)).to(
        F64
    )
    with torch.no_grad():  # non-trivial running statistics so that eval and train modes differ
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
        net[1].weight.uniform_(0.5, 1.5)
        net[1].bias.uniform_(-0.3, 0.3)
    return net.train()


def bn_cnn() -> nn.Module:
    torch.manual_seed(4)
    return nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Tanh(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3)
    ).to(F64)


def vector_data(n: int = 12, seed: int = 0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g, dtype=F64), torch.randint(0, 3, (n,), generator=g)


def image_data(n: int = 6, seed: int = 0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 6, 6, generator=g, dtype=F64), torch.randint(0, 3, (n,), generator=g)


def rel_err(a: Tensor, b: Tensor) -> float:
    return float((a - b).norm() / b.norm())


def flat_params(model: nn.Module) -> Tensor:
    return nn.utils.parameters_to_vector(model.parameters()).detach()


def spiked_matrix(
    size: int = 300, outliers: tuple[float, ...] = (40.0, 25.0, 12.0, -9.0), seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Q diag(outliers ∪ uniform bulk on [−1, 1]) Qᵀ with a Haar-random Q: the spectrum is known exactly."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((size, size)))
    spectrum = np.concatenate([outliers, rng.uniform(-1.0, 1.0, size - len(outliers))])
    return (q * spectrum) @ q.T, np.sort(spectrum)


# ---------------------------------------------------------------------------------- independent references
def functional_model(model: nn.Module, bn_mode: str) -> Callable[[Tensor, Tensor], Tensor]:
    """f(flat parameters, x) on a deep copy of the model in the curvature mode (buffers cloned per call).

    Batch-statistics BN is built without running buffers (the normalisation uses batch statistics only).
    """
    net = copy.deepcopy(model).eval()
    if bn_mode == "train":
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.train()
                m.track_running_stats = False
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for _, p in net.named_parameters()]
    buffers = dict(net.named_buffers())

    def outputs(flat: Tensor, x: Tensor) -> Tensor:
        parts, offset = {}, 0
        for name, shape in zip(names, shapes, strict=True):
            parts[name] = flat[offset : offset + shape.numel()].view(shape)
            offset += shape.numel()
        cloned = {k: v.clone() for k, v in buffers.items()}
        return torch.func.functional_call(net, {**parts, **cloned}, (x,))

    return outputs


def functional_loss(model: nn.Module, loss_fn: Callable, x: Tensor, y: Tensor, bn_mode: str) -> Callable:
    """L(flat parameters) = loss_fn(f(w, x), y) (see :func:`functional_model`)."""
    outputs = functional_model(model, bn_mode)
    return lambda flat: loss_fn(outputs(flat, x), y)


def reference_hessian(model: nn.Module, loss_fn: Callable, x: Tensor, y: Tensor, bn_mode: str) -> Tensor:
    """Dense ∇²L: torch.func.hessian; for batch-statistics BN torch.autograd.functional.hessian instead,
    because vmap-based transforms (torch.func.hessian, jacrev∘jacrev) are wrong for BN in training mode in
    torch 2.13 (3% off; see test_curvature.test_bn_train_reference_against_finite_differences)."""
    loss = functional_loss(model, loss_fn, x, y, bn_mode)
    if bn_mode == "train":
        return torch.autograd.functional.hessian(loss, flat_params(model))
    return torch.func.hessian(loss)(flat_params(model))


def reference_ggn(model: nn.Module, loss_fn: Callable, x: Tensor, y: Tensor, bn_mode: str) -> Tensor:
    """Dense Jᵀ H_ℓ J from the explicit Jacobian of the batch outputs (n·C × P, cross-sample terms included;
    plain autograd for batch-statistics BN) and torch.func.hessian of the loss in the outputs."""
    outputs = functional_model(model, bn_mode)
    w = flat_params(model)
    out = outputs(w, x).detach()
    if bn_mode == "train":  # vmap-based jacrev is unreliable for batch-statistics BN: use plain autograd
        jac = torch.autograd.functional.jacobian(lambda flat: outputs(flat, x), w)
    else:
        jac = torch.func.jacrev(lambda flat: outputs(flat, x))(w)
    h_out = torch.func.hessian(lambda o: loss_fn(o, y))(out)
    j = jac.reshape(out.numel(), -1)
    return j.T @ h_out.reshape(out.numel(), out.numel()) @ j


def reference_matrix(
    matrix: str, model: nn.Module, loss_fn: Callable, x: Tensor, y: Tensor, bn_mode: str = "eval"
) -> Tensor:
    """The dense Hessian or GGN by name."""
    return (reference_hessian if matrix == "hessian" else reference_ggn)(model, loss_fn, x, y, bn_mode)
