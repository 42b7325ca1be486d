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

from networks.curvature._graphs import (
    DEFAULT_GRAPH_CACHE_BYTES,
    GraphProduct,
    ProductFn,  # noqa: F401  (re-exported: the product-map type of the per-sample statistics)
    SavedBytes,
    autocast_context,
    check_autocast,
    check_cache_bytes,
    check_compile,
)
from networks.curvature.operator import CurvatureOperator
from networks.options import BN_MODES, BNMode
from rmt.checks import check_choice


def batch_failure(
    name: str, model: object, loss_fn: object, x: Tensor, y: Tensor, exc: BaseException, action: str
) -> Exception:
    """The error for a model or loss that fails on the batch ``name``: ``exc`` itself when it already names
    the batch (``check_targets``), else a ``TypeError``/``ValueError`` naming the batch, the model, the loss
    and the batch's shapes (``action``: "evaluated", "differentiated")."""
    if str(exc).startswith(f"{name}:") and isinstance(exc, Exception):
        return exc
    kind = TypeError if isinstance(exc, TypeError) else ValueError
    return kind(
        f"{name}: model {type(model).__name__} with loss_fn {type(loss_fn).__name__} cannot be {action} "
        f"on this batch (x {tuple(x.shape)} {x.dtype}, y {tuple(y.shape)} {y.dtype}): {exc}"
    )


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
"""``cached``: build each batch's product map once and keep it (graphs kept; rebuilt after an in-place change
of a parameter or buffer); ``recompute``: rebuild per product (no memory between products); ``func``: the
same as ``recompute`` (kept for compatibility); ``auto``: keep the graphs of as many batches as fit the
operator's ``graph_cache_bytes`` budget (the first batch always: its graph is built for every product
anyway), recompute the others."""

BlockMode = Literal["auto", "batched", "loop"]
BLOCK_MODES: tuple[BlockMode, ...] = get_args(BlockMode)
"""Products with a block V (P × k): ``batched`` runs the k vectors through each kept graph in one batched
backward (``is_grads_batched``), ``loop`` one product per column; ``auto`` is ``batched`` when every
parameter tensor has at most 2 dimensions (fully connected networks: measured ≈ 0.5× the loop's time on a
109k-parameter MLP) and ``loop`` otherwise (convolutions: the batched backward measured 0.93–1.14× the
loop on VGG-11 w/16 and a 4.9k-parameter CNN at batch 128; BENCHMARKS.md)."""


class ModelCurvatureOperator(CurvatureOperator):
    """Curvature of the mean loss L = Σ_b (n_b/N) L_b over data batches, for a model and a loss.

    Subclasses implement ``_product_fn(call, primals, x, y, name)``: the :class:`GraphProduct` v ↦ (curvature
    of the batch-mean loss) · v on per-parameter tuples, built on plain autograd graphs (the same formula as
    the package's ``torch.func`` product used per sample under ``vmap``). The first product on each batch
    validates its targets (:func:`check_targets`) and turns a failing forward pass into a ``ValueError``
    naming the batch.

    Options (all keyword-only):
      * ``method`` (:data:`METHODS`) and ``graph_cache_bytes`` (default :data:`DEFAULT_GRAPH_CACHE_BYTES`,
        None = no limit): with ``"auto"``, the memory of the first batch's graph is measured when it is built
        (the tensors autograd saves, :class:`~networks.curvature._graphs.SavedBytes`), batch b's is estimated
        as that × n_b/n_0, and batches are kept in order while the estimated total stays within the budget.
        Kept graphs make a product one (Hessian) or two (GGN) backward passes; a recomputed batch costs a
        forward and a first backward more (≈ 1.5–2× on the benchmark networks).
      * ``block_products`` (:data:`BLOCK_MODES`): how ``op @ V`` for a (P, k) block is computed.
      * ``autocast`` (None, torch.bfloat16 or torch.float16): build the graphs under ``torch.autocast`` on
        the parameters' device (mixed-precision products; inputs, results and the parameters stay in their
        dtype, and solvers keep their float64 recurrences). Off by default; its error against the
        full-precision product is measured in BENCHMARKS.md.
      * ``compile`` (False, True = the ``"inductor"`` backend, or a ``torch.compile`` backend name): every
        product is the subclass's ``torch.func`` product (forward and backward recomputed, no kept graph)
        compiled with ``torch.compile``. Opt-in: its compile time and speed against the kept-graph product
        are measured in BENCHMARKS.md.
    Device and dtype are the parameters'.
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
        graph_cache_bytes: int | None = DEFAULT_GRAPH_CACHE_BYTES,
        block_products: str = "auto",
        autocast: torch.dtype | None = None,
        compile: bool | str = False,
    ) -> None:
        check_model(model, loss_fn)
        check_bn_mode(bn_mode)
        check_choice(method, "method", self.supported_methods)
        self.graph_cache_bytes = check_cache_bytes(graph_cache_bytes)
        self.block_products = check_choice(block_products, "block_products", BLOCK_MODES)
        self.autocast = check_autocast(autocast)
        self.compile = check_compile(compile)
        if self.compile is not None and self.autocast is not None:
            raise ValueError("compile and autocast cannot be combined: choose one (both are opt-in)")
        self.model = model
        self.loss_fn = loss_fn
        self.bn_mode = bn_mode
        self.params = select_params(model, params)
        first = self.params[0]
        self.data = as_batch_list(data, first.device, dtype=first.dtype)
        if method == "func":
            method = "recompute"
        if method == "auto" and len(self.data.batches) == 1:
            method = "cached"
        self.method = method
        super().__init__(sum(p.numel() for p in self.params), first.dtype, first.device)
        self._batched_blocks = self.block_products == "batched" or (
            self.block_products == "auto" and all(p.ndim <= 2 for p in self.params)
        )
        self._sizes = [p.numel() for p in self.params]
        self._shapes = [tuple(p.shape) for p in self.params]
        self._caches: list[GraphProduct | None] = [None] * len(self.data.batches)
        self._keep: list[bool] | None = None  # per batch: keep its graph (decided at the first build)
        self.graph_bytes: int | None = None  # measured bytes of the first batch's graph ("auto", several)
        self._versions: tuple[int, ...] = ()
        self._state: tuple[Tensor, ...] | None = None  # tensors whose versions guard the kept graphs
        self._checked: set[int] = set()
        self._compiled: Callable[..., tuple[Tensor, ...]] | None = None

    @property
    def num_samples(self) -> int:
        return self.data.num_samples

    @property
    def cached_batches(self) -> int:
        """How many batches keep their graph between products (decided at the first product)."""
        if self._keep is None:
            return 0
        return sum(self._keep)

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
            graph_cache_bytes=self.graph_cache_bytes,
            graph_bytes_first_batch=self.graph_bytes,
            cached_batches=self.cached_batches,
            autocast=None if self.autocast is None else str(self.autocast).replace("torch.", ""),
            compile=self.compile,
            block_products=self.block_products,
            batched_blocks=self._batched_blocks and self.compile is None,
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
    ) -> GraphProduct:
        """v ↦ M_b v for batch (x, y); validates the targets (naming ``name``) unless ``name`` is None."""

    def _func_product(
        self, weights: tuple[Tensor, ...], v: tuple[Tensor, ...], x: Tensor, y: Tensor, flag: bool
    ) -> tuple[Tensor, ...]:
        """M_b v recomputed from scratch in ``torch.func`` form (what ``compile`` compiles); unchecked.
        ``flag`` is :meth:`_target_flag` of the batch's targets, computed outside the compiled function."""
        raise NotImplementedError(f"{type(self).__name__} has no torch.func product to compile")

    def _target_flag(self, y: Tensor) -> bool:
        """A data-dependent fact about the targets that :meth:`_func_product` needs (GGN: ignored labels)."""
        return False

    def _compiled_product(self, index: int) -> GraphProduct:
        """Batch ``index``'s product by the compiled :meth:`_func_product` (no kept graph: every product runs
        the compiled forward and backward passes; block products loop over the columns)."""
        x, y = self.data.batches[index]
        call, primals = functional_form(self.model, self.params)
        if index not in self._checked:
            with torch.no_grad(), curvature_mode(self.model, self.params, self.bn_mode):
                check_targets(self.loss_fn, call(primals, x), y, self._batch_name(index))
        if self._compiled is None:
            backend: str = self.compile or "inductor"
            self._compiled = torch.compile(self._func_product, backend=backend, dynamic=False)
        compiled, flag = self._compiled, self._target_flag(y)

        def single(v: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
            with curvature_mode(self.model, self.params, self.bn_mode):
                return compiled(primals, v, x, y, flag)

        def block(v: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
            cols = [single(tuple(t[j] for t in v)) for j in range(v[0].shape[0])]
            return tuple(torch.stack(parts) for parts in zip(*cols, strict=True))

        return GraphProduct(single, block)

    def _batch_name(self, index: int) -> str:
        return "data" if len(self.data.batches) == 1 else f"data[{index}]"

    def _decide_keep(self, measured: int) -> list[bool]:
        """Which batches keep their graph, from the first batch's measured graph bytes (``auto``)."""
        if self.method == "cached":
            return [True] * len(self.data.batches)
        if self.method == "recompute":
            return [False] * len(self.data.batches)
        budget, n0, total, keep = self.graph_cache_bytes, self.data.sizes[0], 0.0, []
        for index, n in enumerate(self.data.sizes):
            total += measured * n / n0
            keep.append(index == 0 or budget is None or total <= budget)
            if not keep[-1]:
                budget = -1  # keep a prefix: the rest recompute
        return keep

    def _build(self, index: int) -> GraphProduct:
        """Batch ``index``'s product map (graphs built in the curvature mode, under autocast if asked)."""
        if self.compile is not None:
            fn = self._compiled_product(index)
            self._caches[index] = fn  # keeps no graph, only the compiled function's arguments
            return fn
        x, y = self.data.batches[index]
        call, primals = functional_form(self.model, self.params)
        name = None if index in self._checked else self._batch_name(index)
        measure = self._keep is None and self.method == "auto"
        counter = SavedBytes((*self.params, x))
        with (
            curvature_mode(self.model, self.params, self.bn_mode),
            autocast_context(self.device, self.autocast),
            counter.counting() if measure else contextlib.nullcontext(),
        ):
            fn = self._product_fn(call, primals, x, y, name)
        if self._keep is None:
            if measure:
                self.graph_bytes = counter.nbytes
            self._keep = self._decide_keep(counter.nbytes)
        if self._keep[index]:
            self._caches[index] = fn
        return fn

    def _apply(self, index: int, vs: tuple[Tensor, ...], block: bool) -> tuple[Tensor, ...]:
        """M_b v (or M_b V for a block) for batch ``index``; on the batch's first product, failures of the
        model or loss become errors naming the batch, the model and the loss."""
        fn = self._caches[index]
        if fn is not None:
            return fn.block(vs) if block else fn.single(vs)
        if index in self._checked:
            fn = self._build(index)
            return fn.block(vs) if block else fn.single(vs)
        name = self._batch_name(index)
        x, y = self.data.batches[index]
        try:
            fn = self._build(index)
            out = fn.block(vs) if block else fn.single(vs)
        except torch.OutOfMemoryError:
            raise
        except (ValueError, TypeError, RuntimeError, IndexError) as exc:
            self._caches[index] = None
            error = batch_failure(name, self.model, self.loss_fn, x, y, exc, "evaluated")
            if error is exc:
                raise  # already names the batch (check_targets)
            raise error from exc
        self._checked.add(index)
        return out

    def _refresh(self) -> None:
        """Drop kept graphs after an in-place change of a parameter or buffer (version counters of the state
        tensors listed when the graphs were built; a parameter or buffer re-assigned to a new tensor needs
        :meth:`clear_cache`)."""
        if self._state is None:
            self._state = (*self.params, *self.model.buffers())
        versions = tuple(t._version for t in self._state)
        if versions != self._versions:
            self._caches = [None] * len(self.data.batches)
            self._versions = versions

    def _accumulate(self, parts_of: Callable[[int], Tensor]) -> Tensor:
        """Σ_b (n_b/N) · (flat product of batch b)."""
        self._refresh()
        out: Tensor | None = None
        for index, weight in enumerate(self.data.weights):
            flat = parts_of(index)
            if out is None:
                out = flat if weight == 1.0 else flat.mul_(weight)
            else:
                out.add_(flat, alpha=weight)
        assert out is not None
        return out

    def _matvec(self, v: Tensor) -> Tensor:
        vs = tuple(t.view(s) for t, s in zip(v.split(self._sizes), self._shapes, strict=True))

        def flat(index: int) -> Tensor:
            return torch.cat([t.reshape(-1) for t in self._apply(index, vs, False)])

        return self._accumulate(flat)

    def _matmat(self, block: Tensor) -> Tensor:
        if not self._batched_blocks or self.compile is not None:
            return super()._matmat(block)
        k = block.shape[1]
        rows = block.T  # (k, P): the k vectors on a leading dimension
        vs = tuple(
            t.reshape((k, *s)) for t, s in zip(rows.split(self._sizes, dim=1), self._shapes, strict=True)
        )

        def flat(index: int) -> Tensor:
            return torch.cat([t.reshape(k, -1).T for t in self._apply(index, vs, True)])

        return self._accumulate(flat)

    def clear_cache(self) -> None:
        """Drop cached graphs (they are rebuilt on the next product)."""
        self._caches = [None] * len(self.data.batches)
        self._state = None
