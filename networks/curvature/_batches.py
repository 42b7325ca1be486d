"""Shared plumbing for curvature operators: data batches and targets, parameter selection, the functional form
of a model, and the model-state guard."""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _NormBase

from networks.curvature.operator import CurvatureOperator
from networks.options import BN_MODES, BNMode
from rmt.checks import check_choice


@dataclass(frozen=True)
class BatchList:
    """Validated data: batches of (inputs, targets) with their weights n_b / N in the mean loss."""

    batches: tuple[tuple[Tensor, Tensor], ...]
    sizes: tuple[int, ...]

    @property
    def num_samples(self) -> int:
        return sum(self.sizes)

    @property
    def weights(self) -> tuple[float, ...]:
        n = self.num_samples
        return tuple(s / n for s in self.sizes)


def _is_pair(obj: object) -> bool:
    return isinstance(obj, (tuple, list)) and len(obj) == 2 and all(isinstance(t, Tensor) for t in obj)


def _check_batch_dtypes(x: Tensor, y: Tensor, name: str, dtype: torch.dtype | None) -> None:
    """Inputs and targets must be real; floating inputs must have the parameters' dtype."""
    for label, t in (("x", x), ("y", y)):
        if t.is_complex():
            raise TypeError(f"{name}: {label} must be a real tensor, got dtype {t.dtype}")
    if dtype is not None and x.is_floating_point() and x.dtype != dtype:
        raise TypeError(
            f"{name}: x has dtype {x.dtype} but the parameters are {dtype}; convert the data (or the model) "
            "so that they match"
        )


def as_batch_list(
    data: object, device: torch.device, name: str = "data", dtype: torch.dtype | None = None
) -> BatchList:
    """Normalise one ``(x, y)`` batch or an iterable of batches; move tensors to ``device``.

    Raises:
        TypeError: ``data`` is neither a pair of tensors nor an iterable of such pairs; complex tensors; a
            floating ``x`` whose dtype differs from ``dtype`` (the parameters' dtype) when given.
        ValueError: no batches, an empty batch, or inputs and targets with different leading sizes.
    """
    if _is_pair(data):
        raw: list[object] = [data]
    elif isinstance(data, Iterable) and not isinstance(data, (Tensor, str, bytes, dict)):
        raw = list(data)
    else:
        raise TypeError(
            f"{name} must be an (x, y) pair of tensors or an iterable of such pairs, got {type(data)!r}"
        )
    if not raw:
        raise ValueError(f"{name} is empty: need at least one (x, y) batch")
    batches: list[tuple[Tensor, Tensor]] = []
    for index, item in enumerate(raw):
        label = name if _is_pair(data) else f"{name}[{index}]"
        if not _is_pair(item):
            raise TypeError(f"{label} must be an (x, y) pair of tensors, got {type(item)!r}")
        x, y = cast(tuple[Tensor, Tensor], item)
        if x.ndim == 0 or y.ndim == 0:
            raise ValueError(
                f"{label}: x and y need a leading batch dimension, got shapes "
                f"{tuple(x.shape)} and {tuple(y.shape)}"
            )
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"{label}: x has {x.shape[0]} samples but y has {y.shape[0]}; they must match")
        if x.shape[0] == 0:
            raise ValueError(f"{label} is an empty batch (0 samples); every batch needs >= 1 sample")
        _check_batch_dtypes(x, y, label, dtype)
        batches.append((x.to(device), y.to(device)))
    return BatchList(tuple(batches), tuple(int(x.shape[0]) for x, _ in batches))


def check_model(model: object, loss_fn: object) -> None:
    """``model`` is an ``nn.Module`` and ``loss_fn`` a callable with the mean reduction."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model)!r}")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable (e.g. nn.CrossEntropyLoss()), got {type(loss_fn)!r}")
    reduction = getattr(loss_fn, "reduction", "mean")
    if reduction != "mean":
        raise ValueError(f"loss_fn must use reduction='mean' (the mean loss convention), got {reduction!r}")


def select_params(model: nn.Module, params: Sequence[Tensor] | None) -> list[Tensor]:
    """The parameters to differentiate: ``params`` (must belong to ``model``) or all that require grad.

    Raises:
        TypeError: ``params`` is not a sequence of tensors; the parameters are not real floating point.
        ValueError: empty, foreign or repeated parameters, or mixed dtypes/devices.
    """
    if params is None:
        chosen: list[Tensor] = [p for p in model.parameters() if p.requires_grad]
        if not chosen:
            raise ValueError("model has no parameters that require grad; pass params explicitly")
    else:
        if isinstance(params, Tensor) or not isinstance(params, Iterable):
            raise TypeError(f"params must be a sequence of parameter tensors of model, got {type(params)!r}")
        chosen = list(params)
        if not chosen:
            raise ValueError("params is empty: need at least one parameter tensor")
        owned = {id(p) for p in model.parameters()}
        for index, p in enumerate(chosen):
            if not isinstance(p, Tensor):
                raise TypeError(f"params[{index}] must be a parameter tensor of model, got {type(p)!r}")
            if id(p) not in owned:
                raise ValueError(f"params[{index}] is not a parameter of model")
        if len({id(p) for p in chosen}) != len(chosen):
            raise ValueError("params contains the same tensor twice")
    dtypes = {p.dtype for p in chosen}
    devices = {p.device for p in chosen}
    if len(dtypes) != 1 or len(devices) != 1:
        raise ValueError(f"params must share one dtype and device, got {dtypes} and {devices}")
    if not chosen[0].is_floating_point():
        raise TypeError(f"params must be real floating point, got dtype {chosen[0].dtype}")
    return chosen


def check_bn_mode(bn_mode: object) -> BNMode:
    """``bn_mode`` is one of :data:`networks.options.BN_MODES`."""
    return cast(BNMode, check_choice(bn_mode, "bn_mode", BN_MODES))


CLASS_INDEX_LOSSES = (nn.CrossEntropyLoss, nn.NLLLoss, nn.MultiMarginLoss)
"""Losses whose integer targets index the output's class dimension (dimension 1)."""
ELEMENTWISE_LOSSES = (
    nn.MSELoss, nn.L1Loss, nn.SmoothL1Loss, nn.HuberLoss, nn.BCELoss, nn.BCEWithLogitsLoss, nn.KLDivLoss,
    nn.PoissonNLLLoss, nn.SoftMarginLoss, nn.MultiLabelSoftMarginLoss,
)  # fmt: skip
"""Losses that compare the output with a target of the same shape (broadcasting would change the loss)."""


def check_targets(loss_fn: object, output: Tensor, target: Tensor, name: str) -> None:
    """Targets that ``loss_fn`` can score against ``output`` (checked before the loss is evaluated).

    Class-index losses (cross-entropy, NLL) need integer labels in [0, C) (C = ``output.shape[1]``, or
    ``ignore_index``), or (cross-entropy) floating class probabilities of the output's shape; the
    element-wise losses of ``ELEMENTWISE_LOSSES`` (MSE, L1, BCE, ...) need a target of the output's shape
    (broadcasting would silently change the loss). Other losses are not checked here. Only reads
    ``target`` and the output's shape, so it is safe inside ``torch.func`` transforms (but not under
    ``vmap``, where the data-dependent label range cannot be read).

    Raises:
        ValueError: labels outside [0, C), or a target shape the loss cannot use, naming ``name``.
    """
    if isinstance(loss_fn, CLASS_INDEX_LOSSES):
        classes = int(output.shape[1]) if output.ndim >= 2 else int(output.shape[0])
        if target.is_floating_point():
            if isinstance(loss_fn, nn.CrossEntropyLoss) and tuple(target.shape) == tuple(output.shape):
                return
            raise ValueError(
                f"{name}: y must hold integer class labels in [0, {classes}) (or class probabilities of the "
                f"output's shape {tuple(output.shape)}), got a floating tensor of shape {tuple(target.shape)}"
            )
        if target.dtype == torch.bool:
            raise ValueError(f"{name}: y must hold integer class labels in [0, {classes}), got dtype bool")
        bad = (target < 0) | (target >= classes)
        ignore_index = getattr(loss_fn, "ignore_index", None)
        if ignore_index is not None:
            bad &= target != ignore_index
        if bool(bad.any()):
            values = target[bad]
            raise ValueError(
                f"{name}: y must hold class labels in [0, {classes}) (the model has {classes} outputs), got "
                f"labels in [{int(values.min())}, {int(values.max())}]"
            )
        return
    if isinstance(loss_fn, ELEMENTWISE_LOSSES) and tuple(target.shape) != tuple(output.shape):
        raise ValueError(
            f"{name}: y must have the model output's shape {tuple(output.shape)} for "
            f"{type(loss_fn).__name__}, got {tuple(target.shape)}"
        )


def functional_form(
    model: nn.Module, params: Sequence[Tensor]
) -> tuple[Callable[[tuple[Tensor, ...], Tensor], Tensor], tuple[Tensor, ...]]:
    """``(call, primals)``: ``call(weights, x)`` evaluates ``model`` on ``x`` with ``params`` replaced by
    ``weights`` (``torch.func.functional_call``; buffers and the other parameters from the model), and
    ``primals`` are the detached current values of ``params`` (they share storage and version counters)."""
    by_id = {id(p): n for n, p in model.named_parameters()}
    names = [by_id[id(p)] for p in params]

    def call(weights: tuple[Tensor, ...], x: Tensor) -> Tensor:
        out: Tensor = torch.func.functional_call(model, dict(zip(names, weights, strict=True)), (x,))
        return out

    return call, tuple(p.detach() for p in params)


@contextlib.contextmanager
def curvature_mode(model: nn.Module, params: Sequence[Tensor], bn_mode: str) -> Iterator[None]:
    """Put ``model`` in the state used for curvature products and restore it exactly afterwards.

    Inside: every module in eval mode (dropout off); with ``bn_mode="train"`` the normalisation layers use
    batch statistics but with ``track_running_stats`` switched off, so running_mean / running_var /
    num_batches_tracked are never updated; ``params`` require grad. Afterwards the training flags of all
    submodules, ``track_running_stats`` and ``requires_grad`` are exactly as before.
    """
    check_bn_mode(bn_mode)
    training = [(module, module.training) for module in model.modules()]
    grads = [(p, p.requires_grad) for p in params]
    norms = [module for module in model.modules() if isinstance(module, _NormBase)]
    tracking = [(m, m.track_running_stats) for m in norms]
    try:
        model.eval()
        if bn_mode == "train":
            for norm in norms:
                norm.train()
                norm.track_running_stats = False
        for p in params:
            p.requires_grad_(True)
        yield
    finally:
        for module, flag in training:
            module.training = flag
        for norm, tracked in tracking:
            norm.track_running_stats = tracked
        for p, flag in grads:
            p.requires_grad_(flag)


def split_like(vector: Tensor, params: Sequence[Tensor]) -> list[Tensor]:
    """Split a flat vector into views shaped like ``params`` (parameters_to_vector order)."""
    out, offset = [], 0
    for p in params:
        n = p.numel()
        out.append(vector[offset : offset + n].view_as(p))
        offset += n
    return out


Method = Literal["auto", "cached", "recompute", "func"]
METHODS: tuple[Method, ...] = get_args(Method)
"""``cached``: build each batch's product function once (graphs kept; rebuilt after an in-place change of a
parameter or buffer); ``recompute``: rebuild per product (no memory between products); ``func``: the same
products as ``recompute`` (kept for compatibility: every product is a ``torch.func`` transform);
``auto``: ``cached`` for one batch, ``recompute`` for several."""

ProductFn = Callable[[tuple[Tensor, ...]], tuple[Tensor, ...]]


def _state_versions(model: nn.Module, params: Sequence[Tensor]) -> tuple[int, ...]:
    """In-place version counters of the parameters and buffers (a change invalidates cached graphs)."""
    return tuple(t._version for t in (*params, *model.buffers()))


class ModelCurvatureOperator(CurvatureOperator):
    """Curvature of the mean loss L = Σ_b (n_b/N) L_b over data batches, for a model and a loss.

    Subclasses implement ``_product_fn(call, primals, x, y, name)``: the function v ↦ (curvature of the
    batch-mean loss) · v on per-parameter tuples (the one product implementation of that matrix, also used
    per sample under ``vmap``). The first product on each batch validates its targets
    (:func:`check_targets`) and turns a failing forward pass into a ``ValueError`` naming the batch.
    """

    matrix: str = "curvature"
    supported_methods: tuple[str, ...] = METHODS

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[Tensor, Tensor], Tensor],
        data: object,
        *,
        bn_mode: str = "eval",
        params: Sequence[Tensor] | None = None,
        method: str = "auto",
    ) -> None:
        check_model(model, loss_fn)
        check_bn_mode(bn_mode)
        check_choice(method, "method", self.supported_methods)
        self.model = model
        self.loss_fn = loss_fn
        self.bn_mode = bn_mode
        self.params = select_params(model, params)
        first = self.params[0]
        self.data = as_batch_list(data, first.device, dtype=first.dtype)
        if method == "auto":
            method = "cached" if len(self.data.batches) == 1 else "recompute"
        self.method = method
        super().__init__(sum(p.numel() for p in self.params), first.dtype, first.device)
        self._caches: list[ProductFn | None] = [None] * len(self.data.batches)
        self._versions: tuple[int, ...] = ()
        self._checked: set[int] = set()

    @property
    def num_samples(self) -> int:
        return self.data.num_samples

    def provenance(self) -> dict[str, Any]:
        info = super().provenance()
        info.update(
            matrix=self.matrix,
            bn_mode=self.bn_mode,
            method=self.method,
            num_samples=self.data.num_samples,
            batch_sizes=list(self.data.sizes),
            loss=type(self.loss_fn).__name__,
            model=type(self.model).__name__,
        )
        return info

    @abc.abstractmethod
    def _product_fn(
        self,
        call: Callable[[tuple[Tensor, ...], Tensor], Tensor],
        primals: tuple[Tensor, ...],
        x: Tensor,
        y: Tensor,
        name: str | None,
    ) -> ProductFn:
        """v ↦ M_b v for batch (x, y); validates the targets (naming ``name``) unless ``name`` is None."""

    def _batch_name(self, index: int) -> str:
        return "data" if len(self.data.batches) == 1 else f"data[{index}]"

    def _apply(self, index: int, vs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """M_b v for batch ``index``, building (and with ``cached`` keeping) its product map."""
        fn = self._caches[index]
        if fn is None:
            x, y = self.data.batches[index]
            call, primals = functional_form(self.model, self.params)
            name = None if index in self._checked else self._batch_name(index)
            fn = self._product_fn(call, primals, x, y, name)
            if self.method == "cached":
                self._caches[index] = fn
        return fn(vs)

    def _apply_checked(self, index: int, vs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """:meth:`_apply`; on a batch's first product, failures of the model or loss become errors naming
        the batch, the model and the loss."""
        if index in self._checked:
            return self._apply(index, vs)
        name = self._batch_name(index)
        x, y = self.data.batches[index]
        try:
            out = self._apply(index, vs)
        except torch.OutOfMemoryError:
            raise
        except (ValueError, TypeError, RuntimeError, IndexError) as exc:
            self._caches[index] = None
            if str(exc).startswith(f"{name}:"):
                raise  # already names the batch (check_targets)
            kind = TypeError if isinstance(exc, TypeError) else ValueError
            raise kind(
                f"{name}: model {type(self.model).__name__} with loss_fn {type(self.loss_fn).__name__} "
                f"cannot be evaluated on this batch (x {tuple(x.shape)} {x.dtype}, y {tuple(y.shape)} "
                f"{y.dtype}): {exc}"
            ) from exc
        self._checked.add(index)
        return out

    def _matvec(self, v: Tensor) -> Tensor:
        vs = tuple(split_like(v, self.params))
        out = torch.zeros_like(v)
        out_parts = split_like(out, self.params)  # views: per-parameter products accumulate in place
        with curvature_mode(self.model, self.params, self.bn_mode):
            if self.method == "cached":
                versions = _state_versions(self.model, self.params)
                if versions != self._versions:
                    self._caches = [None] * len(self.data.batches)
                    self._versions = versions
            for index, weight in enumerate(self.data.weights):
                for part, product in zip(out_parts, self._apply_checked(index, vs), strict=True):
                    part.add_(product.detach(), alpha=weight)
        return out

    def clear_cache(self) -> None:
        """Drop cached graphs (they are rebuilt on the next product)."""
        self._caches = [None] * len(self.data.batches)
