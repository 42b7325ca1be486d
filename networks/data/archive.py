"""Bounded reading of named regular-file members of a tar archive (plain, gzip, bzip2 or xz), never extracted.

The decompressed stream is wrapped so that the archive as a whole is at most ``MAX_ARCHIVE_BYTES``, no single
read asks for more than ``MAX_HEADER_READ_BYTES`` (tarfile reads GNU long names and pax headers in one read of
their declared size), and skipped members are passed over in 1 MiB steps. Every member is checked from its
header before its data is touched: absolute or ``..`` names, symbolic/hard links, devices, FIFOs and sparse
members refuse the whole archive; a member above ``MAX_FILE_BYTES`` or a running total above
``MAX_ARCHIVE_BYTES`` is refused before it is read; wanted members are read in 1 MiB chunks.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import zlib
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import IO, Any

from .errors import DatasetFormatError
from .limits import (
    MAX_ARCHIVE_BYTES,
    MAX_ARCHIVE_MEMBERS,
    MAX_FILE_BYTES,
    MAX_HEADER_READ_BYTES,
    check_deflate_ratio,
    format_bytes,
    regular_file_size,
)

CHUNK = 1 << 20


class _CappedStream(io.RawIOBase):
    """Read-only, forward-seekable view of a (decompressed) stream with a total and a per-read cap."""

    def __init__(self, inner: IO[bytes], source: Path, total_limit: int) -> None:
        super().__init__()
        self.inner, self.source, self.total_limit, self.position = inner, source, total_limit, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > MAX_HEADER_READ_BYTES + CHUNK:
            raise DatasetFormatError(
                f"{self.source}: a tar header asks to read {size} bytes at once (limit "
                f"{format_bytes(MAX_HEADER_READ_BYTES)} for long names and pax headers)"
            )
        if self.position + size > self.total_limit:
            raise DatasetFormatError(
                f"{self.source}: archive decompresses to more than {format_bytes(self.total_limit)}"
            )
        data = self.inner.read(size)
        self.position += len(data)
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = offset if whence == io.SEEK_SET else self.position + offset
        if whence not in (io.SEEK_SET, io.SEEK_CUR) or target < self.position:
            raise DatasetFormatError(f"{self.source}: tar archive needs a backward seek (malformed)")
        while self.position < target:
            if not self.read(min(CHUNK, target - self.position)):
                break  # end of data: tarfile notices the short archive itself
        return self.position


def _decompressor(path: Path, handle: IO[bytes]) -> tuple[Any, bool]:
    """(decompressed stream, whether it is deflate) chosen by the magic bytes."""
    magic = handle.read(6)
    handle.seek(0)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=handle, mode="rb"), True
    if magic.startswith(b"BZh"):
        return bz2.BZ2File(handle), False
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(handle), False
    return handle, False


def _check_member(source: Path, member: tarfile.TarInfo, total: int) -> None:
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts:
        raise DatasetFormatError(f"{source}: member {member.name!r} has an absolute or '..' path; refused")
    if member.issym() or member.islnk():
        raise DatasetFormatError(
            f"{source}: member {member.name!r} is a {'symbolic' if member.issym() else 'hard'} link "
            f"(to {member.linkname!r}); links are refused"
        )
    if member.issparse() or not (member.isfile() or member.isdir()):
        raise DatasetFormatError(
            f"{source}: member {member.name!r} is not a regular file or folder (tar type {member.type!r}); "
            "refused"
        )
    if member.size > MAX_FILE_BYTES:
        raise DatasetFormatError(
            f"{source}: member {member.name!r} declares {member.size} bytes ({format_bytes(member.size)}), "
            f"above the limit of {format_bytes(MAX_FILE_BYTES)}"
        )
    if total > MAX_ARCHIVE_BYTES:
        raise DatasetFormatError(
            f"{source}: members declare {total} bytes in all, above the limit of "
            f"{format_bytes(MAX_ARCHIVE_BYTES)}"
        )


def _read_member(source: Path, archive: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle: Any = archive.extractfile(member)
    if handle is None:  # pragma: no cover - regular files always have a handle
        raise DatasetFormatError(f"{source}: member {member.name!r} has no data")
    data = bytearray(member.size)  # size checked against MAX_FILE_BYTES by _check_member
    view, got = memoryview(data), 0
    while got < member.size:
        n = handle.readinto(view[got : got + CHUNK])
        if not n:
            raise DatasetFormatError(
                f"{source}: member {member.name!r} is truncated ({got} of {member.size} bytes)"
            )
        got += n
    return bytes(data)


def read_tar_members(source: Path, wanted: Iterable[str]) -> dict[str, bytes]:
    """{name: bytes} of the regular-file members named in ``wanted`` (a leading ``./`` is ignored).

    Raises DatasetFormatError (a ValueError) naming ``source`` and the member: refused member kinds or names,
    sizes above the limits (``networks.data.limits``), a truncated or corrupt archive. Missing wanted
    members are simply absent from the result.
    """
    names = set(wanted)
    file_size = regular_file_size(source, limit=MAX_ARCHIVE_BYTES)
    found: dict[str, bytes] = {}
    try:
        with open(source, "rb") as raw:
            stream, deflate = _decompressor(source, raw)
            capped = _CappedStream(stream, source, MAX_ARCHIVE_BYTES)
            with tarfile.TarFile(fileobj=capped, mode="r") as archive:
                total, count = 0, 0
                for member in _members(archive):
                    count += 1
                    if count > MAX_ARCHIVE_MEMBERS:
                        raise DatasetFormatError(f"{source}: more than {MAX_ARCHIVE_MEMBERS} members")
                    total += member.size
                    _check_member(source, member, total)
                    if deflate:
                        end = member.offset_data + member.size
                        check_deflate_ratio(source, end, file_size, what="tar header")
                    key = member.name.removeprefix("./")
                    if key in names and member.isfile():
                        found[key] = _read_member(source, archive, member)
                while capped.read(CHUNK):  # the padding after the last member, then the gzip/bz2/xz
                    pass  # trailer: a CRC mismatch or a truncated stream raises here
    except DatasetFormatError:
        raise
    except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError, ValueError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise DatasetFormatError(f"{source}: cannot read the archive ({exc}); truncated or corrupt") from exc
    return found


def _members(archive: tarfile.TarFile) -> Any:
    """Members one at a time (``archive.next()``; iteration would first list the whole archive)."""
    while (member := archive.next()) is not None:
        yield member
