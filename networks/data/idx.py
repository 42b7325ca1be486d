"""Reader of the IDX format (MNIST / Fashion-MNIST), plain or gzip-compressed, with bounded reads."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DatasetFormatError
from .limits import MAX_ARRAY_BYTES, check_deflate_ratio, declared_nbytes, regular_file_size

# IDX type byte -> big-endian numpy dtype.
IDX_DTYPES: dict[int, str] = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_exact(handle: Any, n: int) -> bytes:
    """Up to ``n`` bytes (fewer only at the end of the stream)."""
    parts, got = [], 0
    while got < n:
        chunk = handle.read(n - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _read_payload(
    path: Path, handle: Any, shape: tuple[int, ...], dtype: np.dtype, header: int
) -> np.ndarray:
    """The ``prod(shape)`` items after the header; refused when the stream is shorter or longer."""
    expected = header + int(np.prod(shape, dtype=object)) * dtype.itemsize
    out = np.empty(shape, dtype=dtype)
    view = out.reshape(-1).view(np.uint8).data
    got = 0
    while got < view.nbytes:
        n = handle.readinto(view[got:])
        if not n:
            raise DatasetFormatError(
                f"{path}: truncated IDX file: header says shape {shape} ({expected} bytes), "
                f"file has {header + got} bytes"
            )
        got += n
    if handle.read(1):  # a gzip bomb stops here: one byte past the declared size, never the whole stream
        raise DatasetFormatError(
            f"{path}: over-long IDX file: header says shape {shape} ({expected} bytes), the file has more"
        )
    return out


def read_idx(
    path: str | Path,
    *,
    expected_magic: int | None = None,
    item_shape: tuple[int, ...] | None = None,
    max_bytes: int = MAX_ARRAY_BYTES,
) -> np.ndarray:
    """Array stored in the IDX file ``path`` (``.gz`` is decompressed while streaming).

    Layout: magic = 0x0000 | type byte | ndim byte (big-endian uint32), then ``ndim`` big-endian uint32
    sizes, then prod(sizes) items of the type (big-endian). Image files have magic 0x00000803 (uint8, 3-D),
    label files 0x00000801 (uint8, 1-D).

    Before the payload is allocated, the declared size prod(sizes) × itemsize (exact integers) must be at most
    ``max_bytes`` and fit the file: equal to the plain file's size, or at most 1032 × a gzip file's size (the
    deflate limit); while decompressing, one byte beyond the declared size refuses the file (a gzip bomb is
    never expanded). ``item_shape``, if given, must equal sizes[1:] (checked from the header alone).

    Raises DatasetFormatError (a ValueError) naming the file: bad magic number, unknown type byte, a declared
    size above the limit or beyond what the file holds, truncated or over-long payload, a corrupt gzip
    stream, or an ``expected_magic`` / ``item_shape`` mismatch.
    """
    path = Path(path)
    compressed = path.suffix == ".gz"
    file_size = regular_file_size(path, limit=1 << 62)  # any size: the declared size is checked against it
    try:
        with gzip.open(path, "rb") if compressed else open(path, "rb") as handle:
            return _parse(path, handle, file_size, compressed, expected_magic, item_shape, max_bytes)
    except (OSError, EOFError, zlib.error) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise DatasetFormatError(
            f"{path}: cannot decompress IDX file ({exc}); the file is truncated or corrupt"
        ) from exc


def _parse(
    path: Path,
    handle: Any,
    file_size: int,
    compressed: bool,
    expected_magic: int | None,
    item_shape: tuple[int, ...] | None,
    max_bytes: int,
) -> np.ndarray:
    start = _read_exact(handle, 4)
    if len(start) < 4:
        raise DatasetFormatError(f"{path}: truncated IDX file ({len(start)} bytes, no header)")
    magic = int.from_bytes(start, "big")
    zero, type_code, ndim = int.from_bytes(start[:2], "big"), start[2], start[3]
    if zero != 0 or type_code not in IDX_DTYPES or ndim == 0:
        raise DatasetFormatError(
            f"{path}: bad IDX magic number 0x{magic:08X} (expected 0x000008NN-style header)"
        )
    if expected_magic is not None and magic != expected_magic:
        raise DatasetFormatError(f"{path}: IDX magic number 0x{magic:08X}, expected 0x{expected_magic:08X}")
    header = 4 + 4 * ndim
    dims = _read_exact(handle, 4 * ndim)
    if len(dims) < 4 * ndim:
        raise DatasetFormatError(f"{path}: truncated IDX header ({4 + len(dims)} bytes, need {header})")
    shape = tuple(int.from_bytes(dims[4 * i : 4 * i + 4], "big") for i in range(ndim))
    if item_shape is not None and shape[1:] != tuple(item_shape):
        wanted = ", ".join(map(str, item_shape))
        raise DatasetFormatError(f"{path}: IDX shape {shape}, expected (N, {wanted})")
    dtype = np.dtype(IDX_DTYPES[type_code])
    payload = declared_nbytes(path, shape, dtype.itemsize, what="IDX header", limit=max_bytes)
    expected = header + payload
    if compressed:
        check_deflate_ratio(path, expected, file_size, what="IDX header")
    elif file_size != expected:
        kind = "truncated" if file_size < expected else "over-long"
        raise DatasetFormatError(
            f"{path}: {kind} IDX file: header says shape {shape} ({expected} bytes), "
            f"file has {file_size} bytes"
        )
    data = _read_payload(path, handle, shape, dtype, header)
    return data.astype(dtype.newbyteorder("="), copy=False)
