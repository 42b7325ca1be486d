"""Exact Hessian-vector products of the mean loss over one or several data batches."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from networks.curvature._batches import ModelCurvatureOperator


def _first_backward(loss: Tensor, params: Sequence[Tensor]) -> tuple[list[Tensor], list[int]]:
    """∇L with its graph kept, and the positions in ``params`` of its parts; parameters with a constant
    gradient are dropped (their Hessian rows are zero)."""
    grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    kept = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
    return [grads[i] for i in kept], kept


class HessianOperator(ModelCurvatureOperator):
    r"""Hessian :math:`H = \nabla^2_w L(w)` of the mean loss :math:`L = \frac1N\sum_i \ell_i` over ``data``.

    ``data`` is one ``(x, y)`` batch or an iterable of batches; batch b enters with weight n_b/N, so a list of
    unequal batches equals their concatenation exactly (for ``bn_mode="eval"``; with ``"train"`` each batch
    uses its own batch statistics, which is the Hessian of Σ_b (n_b/N) L_b). Vectors follow
    ``parameters_to_vector(params)`` order; ``params`` defaults to the parameters that require grad.

    Methods (``method=``): ``"cached"`` keeps the first-backward graph of every batch, so each product is one
    extra backward pass (≈ 1.3–1.5× a gradient on CPU, as a bare ``autograd.grad`` double backward; see
    benchmarks/results/hvp.json; the default for a single batch); ``"recompute"`` runs
    forward + double backward per product (no memory between products; default for several batches);
    ``"func"`` uses ``torch.func`` forward-over-reverse (``jvp(grad(L))``). All are exact.

    The model's training flags, normalisation running statistics and ``requires_grad`` flags are unchanged by
    products; dropout is off; ``bn_mode="train"`` normalises with batch statistics without updating buffers.

    Example (linear least squares, L = ‖Xw − y‖²/n, H = 2XᵀX/n):
        >>> import torch
        >>> from torch import nn
        >>> torch.manual_seed(0) and None
        >>> x, y = torch.randn(20, 3, dtype=torch.float64), torch.randn(20, 1, dtype=torch.float64)
        >>> lin = nn.Linear(3, 1, bias=False).double()
        >>> H = HessianOperator(lin, nn.MSELoss(), (x, y))
        >>> bool(torch.allclose(H.to_dense(), 2 * x.T @ x / 20))
        True
    """

    matrix = "hessian"

    def _build(self, x: Tensor, y: Tensor) -> Any:
        if self.method == "func":
            return None
        return _first_backward(self.loss_fn(self.model(x), y), self.params)

    def _batch_product(self, cache: Any, x: Tensor, y: Tensor, vs: list[Tensor]) -> list[Tensor | None]:
        if self.method == "func":
            return list(self._func_product(x, y, vs))
        grads, kept = cache
        if not grads:
            return [None] * len(self.params)
        # one backward through the kept graph of ∇L: H v = ∂⟨∇L, v⟩/∂w (PyHessian's cached double backward)
        hv = torch.autograd.grad(
            grads,
            self.params,
            grad_outputs=[vs[i] for i in kept],
            retain_graph=self.method == "cached",
            allow_unused=True,
        )
        return [None if h is None else h.detach() for h in hv]

    def _func_product(self, x: Tensor, y: Tensor, vs: list[Tensor]) -> tuple[Tensor, ...]:
        names = [n for n, p in self.model.named_parameters() if any(p is q for q in self.params)]
        by_name = dict(self.model.named_parameters())
        primals = tuple(by_name[n].detach() for n in names)
        order = [next(i for i, q in enumerate(self.params) if q is by_name[n]) for n in names]
        tangents = tuple(vs[i] for i in order)

        def loss_of(*weights: Tensor) -> Tensor:
            out = torch.func.functional_call(self.model, dict(zip(names, weights, strict=True)), (x,))
            return self.loss_fn(out, y)

        argnums = tuple(range(len(names)))
        hv = torch.func.jvp(torch.func.grad(loss_of, argnums=argnums), primals, tangents)[1]
        result: list[Tensor] = [torch.empty(0)] * len(self.params)
        for k, i in enumerate(order):
            result[i] = hv[k].detach()
        return tuple(result)


def hessian_vector_product(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    data: object,
    vector: Tensor,
    *,
    bn_mode: str = "eval",
    params: Sequence[Tensor] | None = None,
) -> Tensor:
    """One Hessian-vector product H v (recomputing; for one-off use). See :class:`HessianOperator`."""
    return HessianOperator(model, loss_fn, data, bn_mode=bn_mode, params=params, method="recompute") @ vector


__all__ = ["HessianOperator", "hessian_vector_product"]
