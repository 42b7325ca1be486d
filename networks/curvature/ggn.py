"""Exact generalised Gauss-Newton products G v = Jᵀ H_ℓ J v of the mean loss over one or several batches.

:func:`ggn_product` is the package's one GGN-vector product implementation (batch operator and per-sample
statistics); :func:`loss_output_hvp` is the output-space loss Hessian H_ℓ it applies.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from networks.curvature._batches import ModelCurvatureOperator, check_targets, functional_form
from networks.curvature._graphs import GraphProduct, ProductFn, leaves_of, vjp


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
    since that check depends on the data (the targets are then not range-checked either).

    Raises:
        TypeError: ``loss_fn`` not callable; ``output``/``target``/``vector`` not tensors or complex.
        ValueError: ``vector`` not of the output's shape; targets the loss cannot use (labels outside
            [0, C), wrong target shape), checked when ``ignored_targets`` is None.
    """
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable (e.g. nn.CrossEntropyLoss()), got {type(loss_fn)!r}")
    for name, t in (("output", output), ("target", target), ("vector", vector)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t)!r}")
        if t.is_complex():
            raise TypeError(f"{name} must be a real tensor, got dtype {t.dtype}")
    if not output.is_floating_point() or not vector.is_floating_point():
        raise TypeError(f"output and vector must be floating point, got {output.dtype} and {vector.dtype}")
    if tuple(vector.shape) != tuple(output.shape):
        raise ValueError(
            f"vector must have the output's shape {tuple(output.shape)}, got {tuple(vector.shape)}"
        )
    if ignored_targets is None:
        if output.ndim == 0:
            raise ValueError("output must have a leading batch dimension, got a 0-d tensor")
        check_targets(loss_fn, output, target, "target")
        ignored_targets = has_ignored_targets(loss_fn, target)
    return output_hessian(loss_fn, output, target, ignored_targets)(vector)


def output_hessian(
    loss_fn: Callable[[Tensor, Tensor], Tensor], output: Tensor, target: Tensor, ignored_targets: bool
) -> Callable[[Tensor], Tensor]:
    r"""u ↦ H_ℓ u at ``output`` (the closed forms of :func:`loss_output_hvp`, with softmax computed once), for
    u of the output's shape or with extra leading dimensions (a block of vectors). Unchecked: callers
    validate the loss, output and targets first."""
    kind = _closed_form_kind(loss_fn, output.ndim, ignored_targets)
    if kind == "mse":
        scale = 2.0 / output.numel()
        return lambda u: u * scale
    if kind == "ce":
        p = torch.softmax(output.detach(), dim=1)
        n = output.shape[0]
        return lambda u: (p * u - p * (p * u).sum(dim=-1, keepdim=True)) / n

    def loss_of_output(o: Tensor) -> Tensor:
        return loss_fn(o, target)

    primal = output.detach()

    def generic(u: Tensor) -> Tensor:
        if u.ndim > primal.ndim:  # a block: one forward-over-reverse product per vector, vectorised
            return torch.func.vmap(generic)(u)
        try:
            hv: Tensor = torch.func.jvp(torch.func.grad(loss_of_output), (primal,), (u,))[1]
        except (TypeError, RuntimeError, IndexError) as exc:
            if isinstance(exc, torch.OutOfMemoryError):
                raise
            error = TypeError if isinstance(exc, TypeError) else ValueError
            raise error(
                f"loss_fn {type(loss_fn).__name__} cannot be evaluated as loss_fn(output, target): {exc}"
            ) from exc
        return hv

    return generic


class GGNOperator(ModelCurvatureOperator):
    r"""Generalised Gauss-Newton :math:`G = \sum_b \frac{n_b}{N} J_b^\top H_{\ell,b} J_b` of the mean loss.

    J_b is the Jacobian of the batch outputs with respect to the parameters (with ``bn_mode="train"`` it
    includes the cross-sample coupling of batch statistics), H_ℓ,b the Hessian of the batch-mean loss in the
    outputs (:func:`loss_output_hvp`); products are :func:`ggn_graph_product` per batch (the formula of
    :func:`ggn_product` on plain autograd graphs). Batch weights n_b/N make unequal batches exact. Method
    ``"cached"`` keeps each batch's graphs (the forward graph and the Jᵀu graph: one product = two
    backward-sized passes); ``"recompute"`` rebuilds them per product; ``"auto"`` as for
    :class:`~networks.curvature.hessian.HessianOperator` (graphs kept within ``graph_cache_bytes``).
    G is positive semi-definite for convex losses. Targets are checked on the first product of each batch:
    class labels outside [0, C) (C = number of outputs) or a target shape the loss cannot use raise
    ``ValueError`` naming the batch.

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

    def _product_fn(
        self,
        call: Callable[[tuple[Tensor, ...], Tensor], Tensor],
        primals: tuple[Tensor, ...],
        x: Tensor,
        y: Tensor,
        name: str | None,
    ) -> GraphProduct:
        def output_of(weights: tuple[Tensor, ...]) -> Tensor:
            return call(weights, x)

        return ggn_graph_product(output_of, self.loss_fn, y, primals, name=name)

    def _target_flag(self, y: Tensor) -> bool:
        return has_ignored_targets(self.loss_fn, y)

    def _func_product(
        self, weights: tuple[Tensor, ...], v: tuple[Tensor, ...], x: Tensor, y: Tensor, flag: bool
    ) -> tuple[Tensor, ...]:
        call, _ = functional_form(self.model, self.params)
        return ggn_product(lambda w: call(w, x), self.loss_fn, y, weights, ignored_targets=flag)(v)


def ggn_product(
    output_of_weights: Callable[[tuple[Tensor, ...]], Tensor],
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    target: Tensor,
    primals: tuple[Tensor, ...],
    *,
    name: str | None = None,
    ignored_targets: bool | None = None,
) -> ProductFn:
    r"""The map v ↦ G v = Jᵀ H_ℓ J v at ``primals`` (v a tuple shaped like ``primals``): the package's one
    GGN-vector product implementation (batch operator and, under ``torch.func.vmap``, per sample).

    J is the Jacobian of the output f(w) = ``output_of_weights(w)``, H_ℓ the Hessian of ``loss_fn(f, target)``
    in f (:func:`loss_output_hvp`). Jᵀu is the vector-Jacobian product of f; J v is the vector-Jacobian
    product of the linear map u ↦ Jᵀu (the double-vjp trick: ⟨Jᵀu, v⟩ = ⟨u, Jv⟩), so no forward-mode pass
    is needed and both graphs are reused by every call of the returned map. With ``name`` the targets are
    checked against the output (:func:`~networks.curvature._batches.check_targets`) before any product;
    under ``vmap`` pass ``name=None`` and ``ignored_targets`` computed on all targets.
    """
    output, vjp_out = torch.func.vjp(output_of_weights, primals)[:2]
    if name is not None:
        check_targets(loss_fn, output, target, name)
    jvp_fn = torch.func.vjp(vjp_out, torch.zeros_like(output))[1]
    ignored = has_ignored_targets(loss_fn, target) if ignored_targets is None else ignored_targets

    def product(v: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        jv = jvp_fn((v,), create_graph=False)[0]  # no graph of the product itself
        hjv = loss_output_hvp(loss_fn, output, target, jv, ignored_targets=ignored)
        gv: tuple[Tensor, ...] = vjp_out(hjv, create_graph=False)[0]
        return gv

    return product


def ggn_graph_product(
    output_of_weights: Callable[[tuple[Tensor, ...]], Tensor],
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    target: Tensor,
    primals: tuple[Tensor, ...],
    *,
    name: str | None = None,
) -> GraphProduct:
    r"""The map v ↦ G v = Jᵀ H_ℓ J v of :func:`ggn_product` on plain autograd graphs (the batch operators').

    Building runs the forward f(w) and the first backward u ↦ Jᵀu with ``create_graph=True`` (u a dummy
    output-shaped leaf); a product is J v = ∂⟨Jᵀu, v⟩/∂u (one backward through the Jᵀu graph, the double-vjp
    trick), H_ℓ J v in closed form (:func:`output_hessian`, softmax computed once), and Jᵀ(H_ℓ J v) (one
    backward through the forward graph): two backward-sized passes, no forward. ``block`` runs k vectors
    stacked on a leading dimension through each pass at once (``is_grads_batched``). Not for use under
    ``vmap``.
    """
    leaves = leaves_of(primals)
    with torch.enable_grad():
        output = output_of_weights(leaves)
    if name is not None:
        check_targets(loss_fn, output, target, name)
    h_out = output_hessian(loss_fn, output, target, has_ignored_targets(loss_fn, target))
    dummy = torch.zeros_like(output, requires_grad=True)
    with torch.enable_grad():
        jtu = vjp((output,), leaves, (dummy,), create_graph=True) if output.requires_grad else ()
    live = tuple(i for i, t in enumerate(jtu) if t.requires_grad)
    outs = tuple(jtu[i] for i in live)
    every = len(live) == len(leaves)

    def apply(v: tuple[Tensor, ...], block: bool) -> tuple[Tensor, ...]:
        if not live:
            lead = (v[0].shape[0],) if block else ()
            return tuple(p.new_zeros(lead + tuple(p.shape)) for p in leaves)
        jv = vjp(outs, (dummy,), v if every else tuple(v[i] for i in live), block=block)[0]
        return vjp((output,), leaves, (h_out(jv),), block=block)

    return GraphProduct(lambda v: apply(v, False), lambda v: apply(v, True))


__all__ = [
    "GGNOperator",
    "ggn_graph_product",
    "ggn_product",
    "has_ignored_targets",
    "loss_output_hvp",
    "output_hessian",
]
