"""Restricted unpickling of the official CIFAR python-format files: no code execution, bounded memory.

Three layers, each refusing with :class:`~networks.data.errors.UnsafePickleError` or
:class:`~networks.data.errors.DatasetFormatError` (both ``ValueError``) naming the source:

1. A scan of the opcodes (``pickletools.genops``, nothing is built) before unpickling: opcodes the CIFAR
   files never use (INST, OBJ, NEWOBJ, NEWOBJ_EX, EXT1/2/4, PERSID, BINPERSID, out-of-band buffers) are
   refused; a memo index must be at most the number of memo writes so far (CPython's unpickler grows its memo
   array to the index: a 7-byte pickle asking for index 2²⁷ costs 2 GB and 10 s); an argument or frame
   longer than the bytes left is refused.
2. ``find_class`` resolves only :data:`ALLOWED_GLOBALS`, to guarded stand-ins: ``numpy.ndarray`` is a
   non-callable marker (``ndarray(shape)`` would allocate uninitialised memory of any size), ``numpy.dtype``
   accepts only plain numeric type codes and always copies (a shared built-in dtype is never modified),
   ``_reconstruct`` builds only empty-or-small arrays (elements ≤ bytes in the pickle).
3. The array's ``__setstate__`` checks the state before numpy sees it: the dtype must equal its canonical
   form *including flags* (a BUILD can forge a uint8 dtype whose flags claim Python objects, which numpy
   accepts and then misreads the bytes as pointers), and the raw bytes must match shape × itemsize exactly.
"""

from __future__ import annotations

import importlib
import io
import pickle
import pickletools
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import DatasetFormatError, UnsafePickleError
from .limits import MAX_ARRAY_BYTES, declared_nbytes

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
REFUSED_OPCODES: frozenset[str] = frozenset(
    {
        "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4",
        "PERSID", "BINPERSID", "NEXT_BUFFER", "READONLY_BUFFER",
    }
)  # fmt: skip
MEMO_WRITES = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_DTYPE_CODE = re.compile(r"[<>|=]?(b1|[iu][1248]|f[248])")


def _resolve_reconstruct() -> Callable[..., Any]:
    for candidate in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            reconstruct: Callable[..., Any] = importlib.import_module(candidate)._reconstruct
            return reconstruct
        except (ImportError, AttributeError):
            continue
    raise ImportError("numpy has no multiarray._reconstruct")  # pragma: no cover


class _NdarrayMarker:
    """Stands for ``numpy.ndarray`` inside a pickle: only ``_reconstruct`` may use it, nothing may call it."""

    def __repr__(self) -> str:
        return "numpy.ndarray (marker)"


NDARRAY_MARKER = _NdarrayMarker()


def canonical_dtype(dtype: Any, source: str) -> np.dtype:
    """``dtype`` if it is a plain numeric dtype identical (flags included) to the one its type code names."""
    if not isinstance(dtype, np.dtype):
        raise UnsafePickleError(f"{source}: array state holds a {type(dtype).__name__}, not a numpy dtype")
    code = dtype.str
    reference = np.dtype(code) if _DTYPE_CODE.fullmatch(code) else None
    if (
        reference is None
        or dtype != reference
        or dtype.flags != reference.flags
        or dtype.hasobject
        or dtype.names is not None
        or dtype.subdtype is not None
        or dtype.metadata is not None
        or dtype.itemsize != reference.itemsize
    ):
        raise UnsafePickleError(
            f"{source}: forged or non-numeric numpy dtype {dtype!r} (flags {dtype.flags}); only plain "
            "bool/int/uint/float dtypes are allowed in a CIFAR data file"
        )
    return reference


class GuardedArray(np.ndarray):
    """The array type ``_reconstruct`` builds inside the restricted unpickler: its ``__setstate__`` checks
    the pickled state (dtype canonical, raw bytes exactly shape × itemsize) before numpy applies it."""

    _source: str = "<pickle>"

    def __setstate__(self, state: Any) -> None:
        source = self._source
        if not isinstance(state, tuple) or len(state) != 5:
            raise UnsafePickleError(f"{source}: ndarray state must be a 5-tuple, got {type(state).__name__}")
        version, shape, dtype, fortran, raw = state
        if not isinstance(shape, tuple) or not all(type(s) is int for s in shape):
            raise DatasetFormatError(f"{source}: ndarray state has a shape that is not a tuple of integers")
        canonical_dtype(dtype, source)
        if not isinstance(raw, bytes) or fortran not in (0, 1) or version != 1:
            raise UnsafePickleError(f"{source}: ndarray state must carry its data as bytes (version 1)")
        nbytes = declared_nbytes(source, shape, dtype.itemsize, what="pickled array")
        if nbytes != len(raw):
            raise DatasetFormatError(
                f"{source}: pickled array declares shape {shape} ({nbytes} bytes) but carries "
                f"{len(raw)} bytes"
            )
        super().__setstate__(state)


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` resolves only :data:`ALLOWED_GLOBALS`, to guarded stand-ins.

    Any other global (e.g. ``os.system``, ``builtins.eval``) raises :class:`UnsafePickleError` (a
    ``pickle.UnpicklingError``) before it can be called; persistent ids are refused by the base class.
    ``budget`` bounds the elements ``_reconstruct`` may allocate (the pickle's length: an array's data must be
    in the file).
    """

    def __init__(self, file: io.BytesIO, *, source: str = "<bytes>", budget: int = MAX_ARRAY_BYTES) -> None:
        super().__init__(file, encoding="bytes")
        self.source = source
        self.budget = min(budget, MAX_ARRAY_BYTES)

    def _reconstruct(self, subtype: Any, shape: Any, typecode: Any) -> GuardedArray:
        if subtype is not NDARRAY_MARKER:
            raise UnsafePickleError(
                f"{self.source}: _reconstruct may only build numpy.ndarray, got another class or object"
            )
        if not isinstance(shape, tuple) or not all(type(s) is int for s in shape):
            raise DatasetFormatError(f"{self.source}: _reconstruct shape must be a tuple of integers")
        if typecode not in (b"b", "b"):
            raise UnsafePickleError(f"{self.source}: _reconstruct type code must be b'b', got {typecode!r}")
        declared_nbytes(self.source, shape, 1, what="_reconstruct", limit=self.budget)
        array = _resolve_reconstruct()(GuardedArray, shape, b"b")
        array._source = self.source
        return array

    def _dtype(self, spec: Any, align: Any = False, copy: Any = True) -> np.dtype:
        code = spec.decode("ascii", "replace") if isinstance(spec, bytes) else spec
        if not isinstance(code, str) or not _DTYPE_CODE.fullmatch(code) or align not in (0, 1):
            raise UnsafePickleError(
                f"{self.source}: numpy.dtype({spec!r}) is not allowed in a CIFAR data file (plain numeric "
                "type codes only)"
            )
        return np.dtype(code, bool(align), True)  # always a private copy: BUILD never touches a shared dtype

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return {"_reconstruct": self._reconstruct, "ndarray": NDARRAY_MARKER, "dtype": self._dtype}[name]
        raise UnsafePickleError(
            f"{self.source}: global {module}.{name} is not allowed in a CIFAR data file (allowed: "
            + ", ".join(sorted(f"{m}.{n}" for m, n in ALLOWED_GLOBALS))
            + ")"
        )


def _argument_table() -> dict[int, tuple[str, int, int]]:
    """opcode byte -> (name, argument kind, size): kind 0 none, 1 fixed ``size`` bytes, 2 ``size`` lines,
    3 a little-endian length of ``size`` bytes then that many bytes (4: the same, signed)."""
    table: dict[int, tuple[str, int, int]] = {}
    for op in pickletools.opcodes:
        arg, code = op.arg, op.code.encode("latin-1")[0]
        if arg is None:
            table[code] = (op.name, 0, 0)
        elif arg.n > 0:
            table[code] = (op.name, 1, arg.n)
        elif arg.n == pickletools.UP_TO_NEWLINE:
            table[code] = (op.name, 2, 2 if arg.name.endswith("_pair") else 1)
        else:
            size = {
                pickletools.TAKEN_FROM_ARGUMENT1: 1,
                pickletools.TAKEN_FROM_ARGUMENT4: 4,
                pickletools.TAKEN_FROM_ARGUMENT4U: 4,
                pickletools.TAKEN_FROM_ARGUMENT8U: 8,
            }[arg.n]
            table[code] = (op.name, 4 if arg.n == pickletools.TAKEN_FROM_ARGUMENT4 else 3, size)
    return table


_ARGUMENTS = _argument_table()


def scan_opcodes(data: bytes, source: str = "<bytes>") -> int:
    """Walk every opcode of ``data`` (arguments skipped by their declared lengths, nothing is built) up to
    STOP; returns the number of opcodes.

    Raises UnsafePickleError naming ``source`` for a refused opcode (:data:`REFUSED_OPCODES`) or a memo index
    beyond the memo written so far; DatasetFormatError for an unknown opcode, an argument or frame longer
    than the bytes left, or a missing STOP.
    """
    end, pos, count, memo_size = len(data), 0, 0, 0
    while True:
        if pos >= end:
            raise DatasetFormatError(f"{source}: not a readable CIFAR pickle (truncated: no STOP opcode)")
        start, code = pos, data[pos]
        entry = _ARGUMENTS.get(code)
        if entry is None:
            raise DatasetFormatError(
                f"{source}: not a readable CIFAR pickle (unknown opcode {code:#04x} at byte {pos})"
            )
        name, kind, size = entry
        pos += 1
        count += 1
        if name in REFUSED_OPCODES:
            raise UnsafePickleError(
                f"{source}: pickle opcode {name} at byte {start} is not allowed in a CIFAR data file"
            )
        arg_start = pos
        if kind == 1:
            pos += size
        elif kind == 2:
            for _ in range(size):
                newline = data.find(b"\n", pos)
                pos = end + 1 if newline < 0 else newline + 1
        elif kind >= 3:
            length = int.from_bytes(data[pos : pos + size], "little", signed=kind == 4)
            if length < 0:
                raise DatasetFormatError(f"{source}: negative argument length {length} at byte {start}")
            pos += size + length
        if pos > end:
            raise DatasetFormatError(
                f"{source}: not a readable CIFAR pickle ({name} at byte {start} runs past the end of the "
                "file)"
            )
        if name == "STOP":
            return count
        if name in MEMO_WRITES:
            raw = data[arg_start:pos]
            if name == "PUT":
                digits = raw.strip()
                if not digits.isdigit() or len(digits) > 18:
                    raise DatasetFormatError(f"{source}: PUT at byte {start} has no short decimal index")
                index = int(digits)
            else:
                index = int.from_bytes(raw, "little")
            if index > memo_size:
                raise UnsafePickleError(
                    f"{source}: memo index {index} at byte {start} skips past the {memo_size} entries written"
                )
            memo_size += index == memo_size
        elif name == "MEMOIZE":
            memo_size += 1
        elif name == "FRAME" and int.from_bytes(data[arg_start:pos], "little") > end - pos:
            raise DatasetFormatError(
                f"{source}: pickle frame at byte {start} is longer than the rest of the file"
            )


def restricted_loads(data: bytes, source: str = "<bytes>") -> Any:
    """Unpickle ``data`` (Python-2 pickle; str decoded as ``bytes``) after :func:`scan_opcodes`, with
    :class:`RestrictedUnpickler`; arrays come back as plain ``numpy.ndarray``.

    Raises UnsafePickleError / DatasetFormatError (ValueErrors) naming ``source``.
    """
    scan_opcodes(data, source)
    try:
        result = RestrictedUnpickler(io.BytesIO(data), source=source, budget=len(data)).load()
    except DatasetFormatError:
        raise
    except Exception as exc:  # truncated / garbled pickles raise many types
        raise DatasetFormatError(
            f"{source}: not a readable CIFAR pickle ({type(exc).__name__}: {exc})"
        ) from exc
    return _plain(result)


def _plain(obj: Any) -> Any:
    """``obj`` with every :class:`GuardedArray` at the top level or one dict level down as a plain ndarray."""
    if isinstance(obj, GuardedArray):
        return obj.view(np.ndarray)
    if isinstance(obj, dict):
        return {k: (v.view(np.ndarray) if isinstance(v, GuardedArray) else v) for k, v in obj.items()}
    return obj
