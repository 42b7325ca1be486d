"""Linear-operator base for symmetric P×P curvature matrices: ``@``, algebra, scipy bridge, provenance."""

from __future__ import annotations

import abc
from typing import Any

import numpy as np
import scipy.sparse.linalg as spla
import torch
from torch import Tensor


def finite_pair(a: Tensor, b: Tensor) -> bool:
    """Whether every entry of ``a`` and of ``b`` (same shape and dtype) is finite, by one reduction: ⟨a, b⟩
    is NaN or ±inf whenever an entry of either is (NaN·x = NaN, inf·0 = NaN, inf·x = ±inf, inf − inf = NaN);
    a non-finite ⟨a, b⟩ from finite entries (overflow) is settled by the elementwise checks. One reduction
    instead of two halves the guard's cost per product (≈ 5% of a product on a 109k-parameter MLP)."""
    if bool(torch.isfinite(torch.dot(a.reshape(-1), b.reshape(-1)))):
        return True
    return all_finite(a) and all_finite(b)


def all_finite(t: Tensor) -> bool:
    """Whether every entry of ``t`` is finite, by one reduction: a sum is finite exactly when no entry is NaN
    or ±inf — unless finite entries overflow it, which the full elementwise check then settles. (A per-product
    guard: the elementwise check alone cost ≈ 15% of a product on a 109k-parameter MLP.)"""
    if bool(torch.isfinite(t.sum())):
        return True
    return bool(torch.isfinite(t).all())


class CurvatureOperator(abc.ABC):
    """A symmetric P×P matrix A known through products A v (curvlinops-style).

    ``A @ v`` accepts a torch 1-D vector (P,), a torch block (P, k) or the numpy equivalents (the result is of
    the same kind: torch in the operator's dtype/device, numpy in float64 unless the input is float32).
    Operators add, subtract, negate and scale lazily: ``(H_B - H) @ v`` costs one product of each.
    ``num_products`` counts matrix-vector products of this operator (a (P, k) block counts k).
    """

    def __init__(self, size: int, dtype: torch.dtype, device: torch.device) -> None:
        if size < 1:
            raise ValueError(f"operator size must be >= 1, got {size}")
        self._size = int(size)
        self._dtype = dtype
        self._device = torch.device(device)
        self.num_products = 0

    # --- the one method subclasses implement --------------------------------------------------------
    @abc.abstractmethod
    def _matvec(self, v: Tensor) -> Tensor:
        """A v for a 1-D tensor v already in this operator's dtype and device."""

    # --- properties ----------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return (self._size, self._size)

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def device(self) -> torch.device:
        return self._device

    def provenance(self) -> dict[str, Any]:
        """What this operator is: kind, dtype, device, products so far, torch version (subclasses extend)."""
        return {
            "operator": type(self).__name__,
            "size": self._size,
            "dtype": str(self._dtype).replace("torch.", ""),
            "device": str(self._device),
            "num_products": self.num_products,
            "torch_version": torch.__version__,
        }

    # --- products ------------------------------------------------------------------------------------
    def matvec(self, v: Tensor) -> Tensor:
        """A v for a real torch vector of shape (P,); returns a tensor in the operator's dtype and device.

        Raises:
            TypeError: ``v`` is not a torch tensor, or is complex or boolean (a complex vector is refused
                rather than losing its imaginary part).
            ValueError: ``v`` has the wrong shape or non-finite entries, or the product is not finite
                (the model, data or matrix gives NaN/inf curvature).
        """
        _check_real_tensor(v, "vector")
        if v.shape != (self._size,):
            raise ValueError(f"vector must have shape ({self._size},), got {tuple(v.shape)}")
        v = v.detach().to(dtype=self._dtype, device=self._device)
        out = self._matvec(v)
        if tuple(out.shape) != (self._size,):
            raise ValueError(
                f"{type(self).__name__} returned a product of shape {tuple(out.shape)}, "
                f"expected ({self._size},)"
            )
        self._check_finite(v, out, "vector")
        self.num_products += 1
        return out

    def _check_finite(self, operand: Tensor, out: Tensor, name: str) -> None:
        """The operand and its product are finite (one fused reduction, :func:`finite_pair`)."""
        if finite_pair(operand, out.to(operand.dtype)):
            return
        if not all_finite(operand):
            raise ValueError(f"{name} must be finite (no NaN or inf entries)")
        self.num_products += operand.shape[1] if operand.ndim == 2 else 1
        raise ValueError(
            f"{type(self).__name__} product is not finite (NaN or inf): the operator (its model, data or "
            "matrix) gives non-finite curvature; products must be finite"
        )

    def matmat(self, block: Tensor) -> Tensor:
        """A V for a real torch block of shape (P, k): k products (``num_products`` += k), batched where the
        operator implements it (model operators: one batched backward per kept graph), else column by column.

        Raises:
            TypeError / ValueError: as :meth:`matvec`, for the block and its product.
        """
        _check_real_tensor(block, "block")
        if block.ndim != 2 or block.shape[0] != self._size:
            raise ValueError(f"block must have shape ({self._size}, k), got {tuple(block.shape)}")
        if block.shape[1] == 0:
            return torch.zeros(self._size, 0, dtype=self._dtype, device=self._device)
        block = block.detach().to(dtype=self._dtype, device=self._device)
        out = self._matmat(block)
        if tuple(out.shape) != tuple(block.shape):
            raise ValueError(
                f"{type(self).__name__} returned a block product of shape {tuple(out.shape)}, "
                f"expected {tuple(block.shape)}"
            )
        self._check_finite(block, out, "block")
        self.num_products += block.shape[1]
        return out

    def _matmat(self, block: Tensor) -> Tensor:
        """A V for a (P, k) block already in this operator's dtype and device; column by column unless a
        subclass batches it."""
        return torch.stack([self._matvec(block[:, j]) for j in range(block.shape[1])], dim=1)

    def __matmul__(self, other: Any) -> Any:
        if isinstance(other, Tensor):
            if other.ndim == 1:
                return self.matvec(other)
            if other.ndim == 2:
                return self.matmat(other)
            raise ValueError(f"operand must be 1-D (P,) or 2-D (P, k), got {other.ndim}-D")
        if isinstance(other, np.ndarray):
            if not _real_numeric(other.dtype):
                raise TypeError(
                    f"operand must be a real numeric array, got dtype {other.dtype} (complex vectors are "
                    "refused rather than losing their imaginary part)"
                )
            if other.ndim not in (1, 2):
                raise ValueError(f"operand must be 1-D (P,) or 2-D (P, k), got {other.ndim}-D")
            out_dtype = np.float32 if other.dtype == np.float32 else np.float64
            result = self @ torch.from_numpy(np.ascontiguousarray(other, dtype=np.float64))
            return result.detach().to("cpu", torch.float64).numpy().astype(out_dtype, copy=False)
        return NotImplemented

    # --- algebra -------------------------------------------------------------------------------------
    def __add__(self, other: Any) -> CurvatureOperator:
        if not isinstance(other, CurvatureOperator):
            return NotImplemented
        return SumOperator([(1.0, self), (1.0, other)])

    def __sub__(self, other: Any) -> CurvatureOperator:
        if not isinstance(other, CurvatureOperator):
            return NotImplemented
        return SumOperator([(1.0, self), (-1.0, other)])

    def __neg__(self) -> CurvatureOperator:
        return SumOperator([(-1.0, self)])

    def __mul__(self, scalar: Any) -> CurvatureOperator:
        if isinstance(scalar, bool) or not isinstance(scalar, (int, float, np.integer, np.floating)):
            return NotImplemented
        return SumOperator([(_finite_scalar(scalar), self)])

    __rmul__ = __mul__

    def __truediv__(self, scalar: Any) -> CurvatureOperator:
        if isinstance(scalar, bool) or not isinstance(scalar, (int, float, np.integer, np.floating)):
            return NotImplemented
        value = _finite_scalar(scalar)
        if value == 0:
            raise ValueError("cannot divide an operator by 0: the divisor must be a finite non-zero number")
        return SumOperator([(1.0 / value, self)])

    # --- scipy bridge --------------------------------------------------------------------------------
    def to_scipy(self) -> spla.LinearOperator:
        """This operator as a float64 scipy LinearOperator (symmetric: rmatvec = matvec)."""

        def mv(x: np.ndarray) -> np.ndarray:
            return np.asarray(self @ np.asarray(x, dtype=np.float64).reshape(-1), dtype=np.float64)

        def mm(x: np.ndarray) -> np.ndarray:
            return np.asarray(self @ np.asarray(x, dtype=np.float64), dtype=np.float64)

        return spla.LinearOperator(self.shape, matvec=mv, rmatvec=mv, matmat=mm, rmatmat=mm, dtype=np.float64)

    def to_dense(self) -> Tensor:
        """The explicit P×P matrix (P products; for tests and small P only)."""
        return self.matmat(torch.eye(self._size, dtype=self._dtype, device=self._device))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape}, dtype={self._dtype}, device={self._device})"


class SumOperator(CurvatureOperator):
    """Σ_i c_i A_i for operators of equal shape; dtype/device of the first term."""

    def __init__(self, terms: list[tuple[float, CurvatureOperator]]) -> None:
        if not terms:
            raise ValueError("terms must hold at least one (coefficient, operator) pair")
        first = terms[0][1]
        for _, op in terms[1:]:
            if op.shape != first.shape:
                raise ValueError(f"cannot combine operators of shapes {first.shape} and {op.shape}")
        super().__init__(first.shape[0], first.dtype, first.device)
        self.terms = terms

    def _matvec(self, v: Tensor) -> Tensor:
        out = torch.zeros(self.shape[0], dtype=self.dtype, device=self.device)
        for coef, op in self.terms:
            out = out + coef * op.matvec(v).to(dtype=self.dtype, device=self.device)
        return out

    def _matmat(self, block: Tensor) -> Tensor:
        out = torch.zeros_like(block)
        for coef, op in self.terms:
            out = out + coef * op.matmat(block).to(dtype=self.dtype, device=self.device)
        return out

    def provenance(self) -> dict[str, Any]:
        info = super().provenance()
        info["terms"] = [{"coefficient": c, **op.provenance()} for c, op in self.terms]
        return info


class DenseOperator(CurvatureOperator):
    """A dense (symmetric) matrix held as a torch tensor."""

    def __init__(self, matrix: Tensor) -> None:
        _check_real_tensor(matrix, "matrix")
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"matrix must be square 2-D, got shape {tuple(matrix.shape)}")
        if not matrix.is_floating_point():
            matrix = matrix.to(torch.float64)
        if not bool(torch.isfinite(matrix).all()):
            raise ValueError("matrix must be finite (no NaN or inf entries)")
        super().__init__(matrix.shape[0], matrix.dtype, matrix.device)
        self.matrix = matrix.detach()

    def _matvec(self, v: Tensor) -> Tensor:
        return self.matrix @ v


class ScipyOperator(CurvatureOperator):
    """A scipy LinearOperator (or anything with ``shape`` and ``matvec``) seen as a float64 CPU operator."""

    def __init__(self, linop: Any) -> None:
        try:
            shape = tuple(int(n) for n in linop.shape)
        except (TypeError, ValueError):
            raise TypeError(
                f"linear operator shape must be a pair of integers, got {linop.shape!r}"
            ) from None
        if len(shape) != 2 or shape[0] != shape[1]:
            raise ValueError(f"linear operator must be square, got shape {shape}")
        dtype = getattr(linop, "dtype", None)
        if dtype is not None and np.issubdtype(np.dtype(dtype), np.complexfloating):
            raise TypeError(f"linear operator must be real, got dtype {dtype}")
        super().__init__(int(shape[0]), torch.float64, torch.device("cpu"))
        self.linop = linop

    def _matvec(self, v: Tensor) -> Tensor:
        raw = np.asarray(self.linop.matvec(v.cpu().numpy()))
        if not _real_numeric(raw.dtype):
            raise TypeError(f"linear operator returned dtype {raw.dtype}; a real (float) product is required")
        return torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float64).reshape(-1))


def as_operator(obj: Any) -> CurvatureOperator:
    """Wrap ``obj`` as a CurvatureOperator: operators pass through; dense torch/numpy matrices and scipy
    LinearOperators (anything with ``shape`` and ``matvec``) are wrapped.

    Raises:
        TypeError: ``obj`` is none of these, or is complex / non-numeric.
        ValueError: a matrix that is not square 2-D or not finite.
    """
    if isinstance(obj, CurvatureOperator):
        return obj
    if isinstance(obj, Tensor):
        return DenseOperator(obj)
    if isinstance(obj, np.ndarray):
        if not _real_numeric(obj.dtype):
            raise TypeError(f"matrix must be a real numeric array, got dtype {obj.dtype}")
        if obj.ndim != 2:
            raise ValueError(f"matrix must be 2-D, got shape {obj.shape}")
        return DenseOperator(torch.from_numpy(np.ascontiguousarray(obj, dtype=np.float64)))
    if hasattr(obj, "shape") and hasattr(obj, "matvec"):
        return ScipyOperator(obj)
    raise TypeError(
        "expected a CurvatureOperator, a dense torch/numpy matrix or a scipy LinearOperator, "
        f"got {type(obj)!r}"
    )


def _check_real_tensor(t: object, name: str) -> None:
    """A real (integer or floating, not boolean) torch tensor."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t)!r}; use `op @ array` for numpy")
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(
            f"{name} must be a real tensor, got dtype {t.dtype} (complex vectors are refused rather than "
            "losing their imaginary part)"
        )


def _finite_scalar(value: Any) -> float:
    out = float(value)
    if not np.isfinite(out):
        raise ValueError(f"operator scale factor must be a finite number, got {value!r}")
    return out


def _real_numeric(dtype: np.dtype) -> bool:
    """Integer or floating numpy dtype (not bool, complex or object)."""
    return dtype != np.bool_ and (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating))
