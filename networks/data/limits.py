"""Size limits on untrusted data files, and bounded reads that enforce them before anything large exists.

Every size a file *declares* (IDX dimensions, a tar member's size, an array shape in a pickle or ``.npy``
header, an image's width × height) is multiplied in Python integers (no overflow) and checked against a cap
and against the bytes the file actually has, before any buffer of that size exists. The caps sit well above
the real data sets: the largest real arrays are an ImageNet32 training batch (128 116 × 3072 uint8 = 394 MB),
the CIFAR-100 training pickle (154 MB) and the Fashion-MNIST training images (47 MB).
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from .errors import DatasetFormatError

MAX_ARRAY_BYTES = 1 << 30
"""Largest array (bytes) any data file may declare: 1 GiB."""
MAX_FILE_BYTES = 1 << 30
"""Largest data file (or tar member) read into memory: 1 GiB."""
MAX_ARCHIVE_BYTES = 1 << 31
"""Largest total (decompressed) size streamed through one tar archive: 2 GiB."""
MAX_ARCHIVE_MEMBERS = 1_000
"""Most members one tar or zip archive may have (a CIFAR archive has 8, an ImageNet32 .npz 3)."""
MAX_HEADER_READ_BYTES = 1 << 20
"""Largest single read a tar header (GNU long name, pax header) may ask for: 1 MiB."""
MAX_IMAGE_PIXELS = 1 << 26
"""Largest image (width × height) decoded: 67 108 864 pixels (8192²), 201 MB as RGB."""
MAX_DEFLATE_RATIO = 1032
"""Deflate (gzip, zip) expands one compressed byte to at most 1032 bytes (RFC 1951 longest match 258 bytes
per 2 bits of a fixed Huffman code): a header declaring more than 1032 × the compressed size is impossible."""


def format_bytes(n: int) -> str:
    """``n`` bytes in human units (for messages)."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError  # pragma: no cover


def declared_nbytes(
    source: object, shape: Iterable[int], itemsize: int, *, what: str, limit: int = MAX_ARRAY_BYTES
) -> int:
    """prod(shape) × itemsize in exact integer arithmetic, refused when above ``limit``.

    Raises DatasetFormatError naming ``source``: a negative dimension, or a declared size above ``limit``.
    """
    dims = [int(d) for d in shape]
    if any(d < 0 for d in dims):
        raise DatasetFormatError(f"{source}: {what} declares a negative dimension in shape {tuple(dims)}")
    nbytes = math.prod(dims) * int(itemsize)
    if nbytes > limit:
        raise DatasetFormatError(
            f"{source}: {what} declares shape {tuple(dims)} = {nbytes} bytes ({format_bytes(nbytes)}), "
            f"above the limit of {format_bytes(limit)}"
        )
    return nbytes


def check_deflate_ratio(source: object, declared: int, compressed: int, *, what: str) -> None:
    """Refuse a compressed file whose header declares more bytes than deflate can produce from it."""
    if declared > MAX_DEFLATE_RATIO * compressed + 1024:
        raise DatasetFormatError(
            f"{source}: {what} declares {declared} bytes, but {compressed} compressed bytes decompress to at "
            f"most {MAX_DEFLATE_RATIO * compressed}; the file is truncated or forged"
        )


def regular_file_size(path: Path, limit: int = MAX_FILE_BYTES) -> int:
    """Size of the regular file ``path`` (symlinks followed), refused when above ``limit``.

    Raises FileNotFoundError when absent; DatasetFormatError naming ``path`` when it is not a regular file (a
    device, FIFO, folder) or its size (including the holes of a sparse file) exceeds ``limit``.
    """
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise DatasetFormatError(f"{path}: not a regular file (mode {stat.filemode(info.st_mode)})")
    if info.st_size > limit:
        raise DatasetFormatError(
            f"{path}: file has {info.st_size} bytes ({format_bytes(info.st_size)}), above the limit of "
            f"{format_bytes(limit)} for a data file"
        )
    return info.st_size


def read_regular_file(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` (checked before and while reading)."""
    size = regular_file_size(path, limit)
    with open(path, "rb") as handle:
        data = handle.read(size + 1)  # one byte more than stat said: a file growing meanwhile is noticed
        if len(data) > size:
            data += handle.read(limit + 1 - len(data))
    if len(data) > limit:
        raise DatasetFormatError(f"{path}: file grew past the limit of {format_bytes(limit)} while read")
    return data
