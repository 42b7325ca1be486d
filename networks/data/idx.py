"""Reader of the IDX format (MNIST / Fashion-MNIST), plain or gzip-compressed."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from .errors import DatasetFormatError

# IDX type byte -> big-endian numpy dtype.
IDX_DTYPES: dict[int, str] = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path, *, expected_magic: int | None = None) -> np.ndarray:
    """Array stored in the IDX file ``path`` (``.gz`` is decompressed).

    Layout: magic = 0x0000 | type byte | ndim byte (big-endian uint32), then ``ndim`` big-endian uint32
    sizes, then prod(sizes) items of the type (big-endian). Image files have magic 0x00000803 (uint8, 3-D),
    label files 0x00000801 (uint8, 1-D).

    Raises:
        DatasetFormatError (a ValueError) naming the file: bad magic number, unknown type byte, truncated or
        over-long payload, or ``expected_magic`` mismatch.
    """
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise DatasetFormatError(
            f"{path}: cannot decompress IDX file ({exc}); the file is truncated or corrupt"
        ) from exc
    if len(raw) < 4:
        raise DatasetFormatError(f"{path}: truncated IDX file ({len(raw)} bytes, no header)")
    magic = int.from_bytes(raw[:4], "big")
    zero, type_code, ndim = int.from_bytes(raw[:2], "big"), raw[2], raw[3]
    if zero != 0 or type_code not in IDX_DTYPES or ndim == 0:
        raise DatasetFormatError(
            f"{path}: bad IDX magic number 0x{magic:08X} (expected 0x000008NN-style header)"
        )
    if expected_magic is not None and magic != expected_magic:
        raise DatasetFormatError(f"{path}: IDX magic number 0x{magic:08X}, expected 0x{expected_magic:08X}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetFormatError(f"{path}: truncated IDX header ({len(raw)} bytes, need {header})")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(IDX_DTYPES[type_code])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        kind = "truncated" if len(raw) < expected else "over-long"
        raise DatasetFormatError(
            f"{path}: {kind} IDX file: header says shape {shape} ({expected} bytes), "
            f"file has {len(raw)} bytes"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))
