"""Shared plumbing for curvature operators: data batches, parameter selection and the model-state guard."""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _NormBase

from networks.curvature.operator import CurvatureOperator

BN_MODES = ("eval", "train")


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


def as_batch_list(data: object, device: torch.device, name: str = "data") -> BatchList:
    """Normalise one ``(x, y)`` batch or an iterable of batches; move tensors to ``device``.

    Raises:
        TypeError: ``data`` is neither a pair of tensors nor an iterable of such pairs.
        ValueError: no batches, an empty batch, or inputs and targets with different leading sizes.
    """
    if _is_pair(data):
        raw: list[object] = [data]
    elif isinstance(data, Iterable) and not isinstance(data, (Tensor, str, bytes)):
        raw = list(data)
    else:
        raise TypeError(
            f"{name} must be an (x, y) pair of tensors or an iterable of such pairs, got {type(data)!r}"
        )
    if not raw:
        raise ValueError(f"{name} is empty: need at least one (x, y) batch")
    batches: list[tuple[Tensor, Tensor]] = []
    for index, item in enumerate(raw):
        if not _is_pair(item):
            raise TypeError(f"{name}[{index}] must be an (x, y) pair of tensors, got {type(item)!r}")
        x, y = cast(tuple[Tensor, Tensor], item)
        if x.ndim == 0 or y.ndim == 0:
            raise ValueError(f"{name}[{index}]: x and y need a leading batch dimension")
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"{name}[{index}]: x has {x.shape[0]} samples but y has {y.shape[0]}; they must match"
            )
        if x.shape[0] == 0:
            raise ValueError(f"{name}[{index}] is an empty batch (0 samples)")
        batches.append((x.to(device), y.to(device)))
    return BatchList(tuple(batches), tuple(int(x.shape[0]) for x, _ in batches))


def select_params(model: nn.Module, params: Sequence[Tensor] | None) -> list[Tensor]:
    """The parameters to differentiate: ``params`` (must belong to ``model``) or all that require grad."""
    if params is None:
        trainable: list[Tensor] = [p for p in model.parameters() if p.requires_grad]
        if not trainable:
            raise ValueError("model has no parameters that require grad; pass params explicitly")
        return trainable
    chosen: list[Tensor] = list(params)
    if not chosen:
        raise ValueError("params is empty: need at least one parameter tensor")
    owned = {id(p) for p in model.parameters()}
    for index, p in enumerate(chosen):
        if not isinstance(p, Tensor) or id(p) not in owned:
            raise ValueError(f"params[{index}] is not a parameter of model")
    if len({id(p) for p in chosen}) != len(chosen):
        raise ValueError("params contains the same tensor twice")
    dtypes = {p.dtype for p in chosen}
    devices = {p.device for p in chosen}
    if len(dtypes) != 1 or len(devices) != 1:
        raise ValueError(f"params must share one dtype and device, got {dtypes} and {devices}")
    return chosen


def check_bn_mode(bn_mode: str) -> str:
    if bn_mode not in BN_MODES:
        raise ValueError(f"bn_mode must be one of {BN_MODES}, got {bn_mode!r}")
    return bn_mode


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


def flatten(tensors: Sequence[Tensor | None], params: Sequence[Tensor]) -> Tensor:
    """Concatenate per-parameter tensors (``None`` = zero) into one flat vector."""
    return torch.cat(
        [(torch.zeros_like(p) if t is None else t).reshape(-1) for t, p in zip(tensors, params, strict=True)]
    )


METHODS = ("auto", "cached", "recompute", "func")


def _state_versions(model: nn.Module, params: Sequence[Tensor]) -> tuple[int, ...]:
    """In-place version counters of the parameters and buffers (a change invalidates cached graphs)."""
    return tuple(t._version for t in (*params, *model.buffers()))


class ModelCurvatureOperator(CurvatureOperator):
    """Curvature of the mean loss L = Σ_b (n_b/N) L_b over data batches, for a model and a loss.

    Subclasses implement ``_build(x, y)`` (a per-batch cache: graphs to reuse) and ``_batch_product(cache, x,
    y, vs)`` returning per-parameter tensors of (curvature of the batch-mean loss) · v. With
    ``method="cached"``
    the caches are built once (lazily) and rebuilt when a parameter or buffer is modified in place; with
    ``"recompute"`` every product rebuilds them (no memory held between products).
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
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model)!r}")
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable (e.g. nn.CrossEntropyLoss()), got {type(loss_fn)!r}")
        reduction = getattr(loss_fn, "reduction", "mean")
        if reduction != "mean":
            raise ValueError(
                f"loss_fn must use reduction='mean' (the mean loss convention), got {reduction!r}"
            )
        check_bn_mode(bn_mode)
        if method not in self.supported_methods:
            raise ValueError(f"method must be one of {self.supported_methods}, got {method!r}")
        self.model = model
        self.loss_fn = loss_fn
        self.bn_mode = bn_mode
        self.params = select_params(model, params)
        first = self.params[0]
        self.data = as_batch_list(data, first.device)
        if method == "auto":
            method = "cached" if len(self.data.batches) == 1 else "recompute"
        self.method = method
        super().__init__(sum(p.numel() for p in self.params), first.dtype, first.device)
        self._caches: list[Any] | None = None
        self._versions: tuple[int, ...] = ()

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
    def _build(self, x: Tensor, y: Tensor) -> Any:
        """Per-batch cache (forward / first-backward graphs) in curvature mode."""

    @abc.abstractmethod
    def _batch_product(self, cache: Any, x: Tensor, y: Tensor, vs: list[Tensor]) -> list[Tensor | None]:
        """Curvature of the batch-mean loss times v, per parameter (None = zero)."""

    def _matvec(self, v: Tensor) -> Tensor:
        vs = split_like(v, self.params)
        out = torch.zeros_like(v)
        out_parts = split_like(out, self.params)  # views: per-parameter products accumulate in place
        with curvature_mode(self.model, self.params, self.bn_mode):
            caches = self._current_caches()
            for weight, (x, y), cache in zip(self.data.weights, self.data.batches, caches, strict=True):
                if cache is None:
                    cache = self._build(x, y)
                products = self._batch_product(cache, x, y, vs)
                for part, product in zip(out_parts, products, strict=True):
                    if product is not None:
                        part.add_(product, alpha=weight)
        return out

    def _current_caches(self) -> list[Any]:
        if self.method != "cached":
            return [None] * len(self.data.batches)
        versions = _state_versions(self.model, self.params)
        if self._caches is None or versions != self._versions:
            self._caches = [self._build(x, y) for x, y in self.data.batches]
            self._versions = _state_versions(self.model, self.params)
        return self._caches

    def clear_cache(self) -> None:
        """Drop cached graphs (they are rebuilt on the next product)."""
        self._caches = None
