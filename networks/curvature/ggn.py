"""Exact generalised Gauss-Newton products G v = Jᵀ H_ℓ J v of the mean loss over one or several batches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from networks.curvature._batches import ModelCurvatureOperator


def has_ignored_targets(loss_fn: Callable[[Tensor, Tensor], Tensor], target: Tensor) -> bool:
    """Whether a cross-entropy loss would skip some targets (ignore_index); data-dependent, so call it
    outside ``torch.func.vmap``."""
    if isinstance(loss_fn, nn.CrossEntropyLoss) and not target.is_floating_point():
        return bool((target == loss_fn.ignore_index).any())
    return False


def _closed_form_kind(loss_fn: Callable[[Tensor, Tensor], Tensor], output_ndim: int, ignored: bool) -> str:
    """Which closed form applies: "ce" (plain cross-entropy on (n, C) logits), "mse", or "generic"."""
    if isinstance(loss_fn, nn.MSELoss) and loss_fn.reduction == "mean":
        return "mse"
    if (
        isinstance(loss_fn, nn.CrossEntropyLoss)
        and loss_fn.reduction == "mean"
        and loss_fn.weight is None
        and output_ndim == 2
        and not ignored
    ):
        return "ce"  # label smoothing / probability targets: still linear in the target, same Hessian
    return "generic"


def loss_output_hvp(
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    output: Tensor,
    target: Tensor,
    vector: Tensor,
    *,
    ignored_targets: bool | None = None,
) -> Tensor:
    r"""H_ℓ v: the Hessian of the (batch-mean) loss with respect to the model output, times ``vector``.

    Closed forms for the mean reduction over n samples:
      * cross-entropy (softmax p_i = softmax(f_i), also with label smoothing or probability targets):
        :math:`(H_\ell v)_i = \frac1n (p_i \odot v_i - p_i\, p_i^\top v_i)`  ((diag p − ppᵀ)/n per sample);
      * MSE over an output of numel n·C: :math:`H_\ell = \frac{2}{nC} I` (nn.MSELoss averages all entries).
    Any other loss (class weights, ignored targets, custom losses) uses torch.func forward-over-reverse on
    the loss as a function of the output — exact, and convex losses keep G positive semi-definite.
    Under ``torch.func.vmap`` pass ``ignored_targets`` (from :func:`has_ignored_targets` on all targets),
    since that check depends on the data.
    """
    if ignored_targets is None:
        ignored_targets = has_ignored_targets(loss_fn, target)
    kind = _closed_form_kind(loss_fn, output.ndim, ignored_targets)
    if kind == "mse":
        return vector * (2.0 / output.numel())
    if kind == "ce":
        p = torch.softmax(output.detach(), dim=1)
        return (p * vector - p * (p * vector).sum(dim=1, keepdim=True)) / output.shape[0]
    def loss_of_output(o: Tensor) -> Tensor:
        return loss_fn(o, target)

    return torch.func.jvp(torch.func.grad(loss_of_output), (output.detach(),), (vector,))[1]


class GGNOperator(ModelCurvatureOperator):
    r"""Generalised Gauss-Newton :math:`G = \sum_b \frac{n_b}{N} J_b^\top H_{\ell,b} J_b` of the mean loss.

    J_b is the Jacobian of the batch outputs with respect to the parameters (with ``bn_mode="train"`` it
    includes the cross-sample coupling of batch statistics), H_ℓ,b the Hessian of the batch-mean loss in the
    outputs (:func:`loss_output_hvp`). J v is computed by the double-backward trick (v ↦ ∂/∂u ⟨Jᵀu, v⟩ on a
    dummy u), Jᵀ by one backward. Batch weights n_b/N make unequal batches exact. Method ``"cached"`` keeps
    the forward graph and the Jᵀu graph of each batch (one product = two backward-sized passes);
    ``"recompute"`` rebuilds them per product. G is positive semi-definite for convex losses.

    Example (softmax regression: G equals the Hessian):
        >>> import torch
        >>> from torch import nn
        >>> from networks.curvature.hessian import HessianOperator
        >>> torch.manual_seed(0) and None
        >>> x, y = torch.randn(30, 4, dtype=torch.float64), torch.randint(0, 3, (30,))
        >>> lin = nn.Linear(4, 3).double()
        >>> G = GGNOperator(lin, nn.CrossEntropyLoss(), (x, y)).to_dense()
        >>> H = HessianOperator(lin, nn.CrossEntropyLoss(), (x, y)).to_dense()
        >>> bool(torch.allclose(G, H, atol=1e-12))
        True
    """

    matrix = "ggn"
    supported_methods = ("auto", "cached", "recompute")

    def _build(self, x: Tensor, y: Tensor) -> Any:
        output = self.model(x)
        dummy = torch.zeros_like(output, requires_grad=True)
        jt_dummy = torch.autograd.grad(
            output, self.params, grad_outputs=dummy, create_graph=True, allow_unused=True
        )
        pairs = [(g, i) for i, g in enumerate(jt_dummy) if g is not None and g.requires_grad]
        return output, dummy, pairs

    def _batch_product(self, cache: Any, x: Tensor, y: Tensor, vs: list[Tensor]) -> list[Tensor | None]:
        output, dummy, pairs = cache
        if not pairs:
            return [None] * len(self.params)
        keep = self.method == "cached"
        (jv,) = torch.autograd.grad(
            [g for g, _ in pairs], dummy, grad_outputs=[vs[i] for _, i in pairs], retain_graph=True
        )
        hjv = loss_output_hvp(self.loss_fn, output, y, jv.detach())
        gv = torch.autograd.grad(output, self.params, grad_outputs=hjv, retain_graph=keep, allow_unused=True)
        return [None if g is None else g.detach() for g in gv]


__all__ = ["GGNOperator", "has_ignored_targets", "loss_output_hvp"]
