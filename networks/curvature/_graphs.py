"""Curvature products on kept autograd graphs: the product object, graph-memory measurement, option checks.

A :class:`GraphProduct` is what a model operator keeps per batch: one vector
(``single``) or a block of k vectors with a leading dimension (``block``, one batched backward through the
same graph via ``is_grads_batched``). :class:`SavedBytes` measures what a kept graph holds (the tensors
autograd saves for the backward), which the operators compare with their graph-cache budget.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import torch
from torch import Tensor

ProductFn = Callable[[tuple[Tensor, ...]], tuple[Tensor, ...]]

DEFAULT_GRAPH_CACHE_BYTES: Final[int] = 2 * 1024**3
"""Default memory budget (bytes) for the kept graphs of an operator over several batches (2 GiB)."""

AUTOCAST_DTYPES: Final[tuple[torch.dtype, ...]] = (torch.bfloat16, torch.float16)
"""Reduced precisions accepted for autocast products (the recurrences stay in float64)."""


@dataclass(frozen=True)
class GraphProduct:
    """v ↦ M v on one batch's kept graph: ``single`` maps a tuple shaped like the parameters, ``block`` a
    tuple of the same tensors with a leading dimension k (k vectors in one batched backward)."""

    single: ProductFn
    block: ProductFn


def leaves_of(primals: Sequence[Tensor]) -> tuple[Tensor, ...]:
    """Detached copies of ``primals`` that require grad (same storage and version counters)."""
    return tuple(p.detach().requires_grad_(True) for p in primals)


def vjp(
    outputs: Sequence[Tensor],
    inputs: Sequence[Tensor],
    cotangents: Sequence[Tensor],
    *,
    block: bool = False,
    create_graph: bool = False,
) -> tuple[Tensor, ...]:
    """Σ_j (∂outputs_j/∂inputs)ᵀ cotangents_j by one backward through a kept graph (zeros for inputs the
    outputs do not depend on); ``block``: cotangents with a leading dimension k, one batched backward."""
    grads = torch.autograd.grad(
        tuple(outputs),
        tuple(inputs),
        grad_outputs=tuple(cotangents),
        retain_graph=True,
        create_graph=create_graph,
        allow_unused=True,
        materialize_grads=True,
        is_grads_batched=block,
    )
    return tuple(grads)


class SavedBytes:
    """Bytes of the distinct storages autograd saves for the backward while active (a kept graph's memory),
    not counting storages listed as already held (parameters, data)."""

    def __init__(self, held: Sequence[Tensor] = ()) -> None:
        self._seen = {t.untyped_storage().data_ptr() for t in held}
        self.nbytes = 0

    def _pack(self, t: Tensor) -> Tensor:
        try:
            storage = t.untyped_storage()
        except (RuntimeError, NotImplementedError):  # e.g. tensors without storage under a transform
            return t
        key = storage.data_ptr()
        if key not in self._seen:
            self._seen.add(key)
            self.nbytes += storage.nbytes()
        return t

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        with torch.autograd.graph.saved_tensors_hooks(self._pack, _unpack):
            yield


def _unpack(t: Tensor) -> Tensor:
    return t


def check_autocast(autocast: object) -> torch.dtype | None:
    """``autocast`` is None or one of :data:`AUTOCAST_DTYPES`."""
    if autocast is None:
        return None
    if not isinstance(autocast, torch.dtype):
        raise TypeError(
            f"autocast must be None or a torch.dtype in {AUTOCAST_DTYPES}, got {type(autocast)!r}"
        )
    if autocast not in AUTOCAST_DTYPES:
        raise ValueError(f"autocast must be None or one of {AUTOCAST_DTYPES}, got {autocast}")
    return autocast


def check_cache_bytes(value: object) -> int | None:
    """``graph_cache_bytes`` is None (no limit) or an integer >= 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"graph_cache_bytes must be None or an integer >= 0 (bytes), got {type(value)!r}")
    if value < 0:
        raise ValueError(f"graph_cache_bytes must be None or an integer >= 0 (bytes), got {value}")
    return value


def check_compile(value: object) -> str | None:
    """``compile``: False (off), True (the ``"inductor"`` backend) or a ``torch.compile`` backend name."""
    if value is False:
        return None
    if value is True:
        return "inductor"
    if isinstance(value, str) and value in torch._dynamo.list_backends(exclude_tags=()):
        return value
    raise ValueError(
        f"compile must be False, True or a torch.compile backend name "
        f"({sorted(torch._dynamo.list_backends(exclude_tags=()))}), got {value!r}"
    )


def autocast_context(device: torch.device, dtype: torch.dtype | None) -> Any:
    """``torch.autocast`` on ``device`` in ``dtype``, or a null context for None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


__all__ = [
    "AUTOCAST_DTYPES",
    "DEFAULT_GRAPH_CACHE_BYTES",
    "GraphProduct",
    "ProductFn",
    "SavedBytes",
    "autocast_context",
    "check_autocast",
    "check_cache_bytes",
    "check_compile",
    "leaves_of",
    "vjp",
]
