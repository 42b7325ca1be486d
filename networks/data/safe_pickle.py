"""Restricted unpickling of the official CIFAR python-format files (no arbitrary code execution)."""

from __future__ import annotations

import importlib
import io
import pickle
from typing import Any

from .errors import UnsafePickleError

# (module, name) pairs the CIFAR pickles reference: numpy arrays are pickled as
# numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b'b') + __setstate__ with a numpy.dtype. NumPy >= 2
# writes numpy._core.multiarray. Everything else (builtins, os, subprocess, functools, ...) is refused.
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }
)


def _resolve(module: str, name: str) -> Any:
    if name == "_reconstruct":  # numpy 2 keeps the implementation in numpy._core, numpy 1 in numpy.core
        for candidate in ("numpy._core.multiarray", "numpy.core.multiarray"):
            try:
                return getattr(importlib.import_module(candidate), name)
            except (ImportError, AttributeError):
                continue
    return getattr(importlib.import_module(module), name)


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` resolves only :data:`ALLOWED_GLOBALS`.

    Any other global (e.g. ``os.system``, ``builtins.eval``) raises :class:`UnsafePickleError` (a
    ``pickle.UnpicklingError``) before it can be called; persistent ids are refused by the base class.
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return _resolve(module, name)
        raise UnsafePickleError(
            f"global {module}.{name} is not allowed in a CIFAR data file (allowed: "
            + ", ".join(sorted(f"{m}.{n}" for m, n in ALLOWED_GLOBALS))
            + ")"
        )


def restricted_loads(data: bytes) -> Any:
    """Unpickle ``data`` (Python-2 pickle; str decoded as ``bytes``) with :class:`RestrictedUnpickler`."""
    return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
