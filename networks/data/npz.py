"""Bounded reading of named arrays from a NumPy ``.npz`` file (a zip of ``.npy`` files), without pickles.

Each wanted member's ``.npy`` header is parsed first (``numpy.lib.format``, header length capped by numpy);
object dtypes are refused (the ``allow_pickle=False`` rule); the declared shape × itemsize (exact integers)
must be at most ``max_bytes`` and equal the member's size in the zip directory minus the header, and a
deflated member may not declare more than 1032 × its compressed size. Only then is the array allocated and
filled; zipfile stops at the declared size and checks the CRC.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npy_format

from .errors import DatasetFormatError
from .limits import (
    MAX_ARCHIVE_BYTES,
    MAX_ARCHIVE_MEMBERS,
    MAX_ARRAY_BYTES,
    check_deflate_ratio,
    declared_nbytes,
    regular_file_size,
)


def _header(handle: Any, label: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = npy_format.read_magic(handle)
    if version == (1, 0):
        return npy_format.read_array_header_1_0(handle)
    if version == (2, 0):
        return npy_format.read_array_header_2_0(handle)
    raise DatasetFormatError(f"{label}: unsupported .npy format version {version}")


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str, max_bytes: int) -> np.ndarray:
    if info.compress_type != zipfile.ZIP_STORED:
        check_deflate_ratio(label, info.file_size, info.compress_size, what="zip directory")
    handle: Any
    with archive.open(info) as handle:
        shape, fortran, dtype = _header(handle, label)
        header_bytes = handle.tell()
        if dtype.hasobject:
            raise DatasetFormatError(f"{label}: object arrays (pickles) are refused, got dtype {dtype}")
        nbytes = declared_nbytes(label, shape, dtype.itemsize, what=".npy header", limit=max_bytes)
        if header_bytes + nbytes != info.file_size:
            raise DatasetFormatError(
                f"{label}: .npy header declares shape {shape} ({nbytes} bytes of data) but the member holds "
                f"{info.file_size - header_bytes} bytes after its header"
            )
        out = bytearray(nbytes)
        view, got = memoryview(out), 0
        while got < nbytes:
            n = handle.readinto(view[got:])
            if not n:
                raise DatasetFormatError(f"{label}: member ends after {got} of {nbytes} bytes")
            got += n
    flat = np.frombuffer(out, dtype=dtype)  # a writable view of the bytearray
    return flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)


def read_npz_arrays(
    path: str | Path, names: Iterable[str], *, max_bytes: int = MAX_ARRAY_BYTES
) -> dict[str, np.ndarray]:
    """{name: array} for ``names`` in the ``.npz`` file ``path`` (other members are never read).

    Raises DatasetFormatError (a ValueError) naming the file and member: not a zip, a missing array, an object
    dtype, a declared size above ``max_bytes`` or different from the member's size, a CRC error.
    FileNotFoundError when ``path`` is absent.
    """
    path = Path(path)
    regular_file_size(path, MAX_ARCHIVE_BYTES)
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            if len(archive.infolist()) > MAX_ARCHIVE_MEMBERS:
                raise DatasetFormatError(f"{path}: more than {MAX_ARCHIVE_MEMBERS} members")
            present = {info.filename: info for info in archive.infolist()}
            for name in names:
                info = present.get(f"{name}.npy")
                if info is None:
                    arrays = sorted(n.removesuffix(".npy") for n in present)
                    raise DatasetFormatError(f"{path}: has no array {name!r} (arrays: {arrays})")
                out[name] = _read_member(archive, info, f"{path}:{name}", max_bytes)
    except DatasetFormatError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, zlib.error) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise DatasetFormatError(f"{path}: not a readable .npz file ({exc}); truncated or corrupt") from exc
    return out
