"""Integrity of the files of a run folder: atomic writes, the canonical-JSON checksum of a record, bounded
JSON reading and ``.npy`` parsing, and the error that names a bad file (docs in :mod:`validation.store`).

Every file is written to a temporary name in the same folder, flushed, fsynced and moved into place with
``os.replace`` (mode 0666 minus the umask). Reads refuse files over ``MAX_RECORD_BYTES`` or nested deeper
than ``MAX_RECORD_DEPTH`` before parsing, and bare ``NaN`` / ``Infinity`` tokens (non-finite numbers are
written as the strings ``"nan"``, ``"inf"``, ``"-inf"``); a bad file raises :class:`CorruptRecordError`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from validation.records import encode_float

CHECKSUM_FIELD = "record_sha256"
"""The record field holding the SHA-256 of the record's canonical JSON (removed by every read)."""

MAX_RECORD_BYTES = 64 * 2**20
"""Largest record file read (64 MiB; the default run's largest record is a few hundred KiB)."""
MAX_RECORD_DEPTH = 64
"""Deepest JSON nesting read (the store writes depth ≤ 6); checked before parsing, so a hostile file cannot
make the decoder recurse."""

_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


class StoreError(RuntimeError):
    """A run folder cannot be used as asked; the message says which file and what to do."""


class CorruptRecordError(StoreError):
    """A record, array or checkpoint of a run folder fails its checks (syntax, checksum, size, nesting)."""

    def __init__(self, path: Path, reason: str, hint: str) -> None:
        self.path, self.reason, self.hint = Path(path), reason, hint
        super().__init__(f"{path}: {reason}; {hint}")


def _jsonable(value: Any) -> Any:
    """Plain-JSON version of ``value``: numpy scalars/arrays to Python, non-finite floats to strings."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return encode_float(float(value))
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"record value of type {type(value).__name__} is not JSON-serialisable: {value!r}")


def record_checksum(record: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``record`` without its ``record_sha256`` field: sorted keys,
    separators ``,`` and ``:``, UTF-8, no NaN/Infinity tokens. Floats survive a JSON round trip exactly,
    so the checksum of a record read back equals the one written."""
    body = {k: v for k, v in record.items() if k != CHECKSUM_FIELD}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _current_umask() -> int:
    """The process umask, read from ``/proc/self/status`` (thread-safe) or, elsewhere, set and restored."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, fsync, ``os.replace``),
    with mode ``0o666 & ~umask``. An ``OSError`` (full disk, read-only folder) is re-raised with ``path``
    as its file name and no temporary file left behind."""
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o666 & ~_current_umask())
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename is None:
            raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from exc
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(_jsonable(obj), indent=1, sort_keys=True) + "\n")


def json_depth(raw: bytes) -> int:
    """Deepest nesting of ``[``/``{`` in the JSON text ``raw`` (brackets inside strings ignored), computed
    without parsing."""
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKET)
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


def _refuse_constant(token: str) -> Any:
    raise ValueError(f"bare {token} token (the store writes non-finite numbers as strings)")


def read_json_file(path: Path, hint: str, *, max_bytes: int | None = None) -> Any:
    """The JSON value in ``path``, read within the size and nesting bounds and without NaN/Infinity tokens;
    any failure is a :class:`CorruptRecordError` naming the file, the reason and ``hint``. ``max_bytes``
    defaults to ``MAX_RECORD_BYTES``."""
    path = Path(path)
    max_bytes = MAX_RECORD_BYTES if max_bytes is None else max_bytes
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise CorruptRecordError(
                path, f"is {size} bytes, over the {max_bytes}-byte limit of a record", hint
            )
        with path.open("rb") as fh:
            raw = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise CorruptRecordError(path, "is missing", hint) from None
    if len(raw) > max_bytes:
        raise CorruptRecordError(path, f"is over the {max_bytes}-byte limit of a record", hint)
    depth = json_depth(raw)
    if depth > MAX_RECORD_DEPTH:
        raise CorruptRecordError(path, f"nests {depth} levels deep (at most {MAX_RECORD_DEPTH})", hint)
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        raise CorruptRecordError(
            path, f"is not UTF-8 text ({exc.reason} at byte {exc.start})", hint
        ) from None
    except json.JSONDecodeError as exc:
        reason = f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        raise CorruptRecordError(path, reason, hint) from None
    except (ValueError, RecursionError) as exc:
        raise CorruptRecordError(path, f"is not a valid record ({exc})", hint) from None


def _file_sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def read_npy_bytes(path: Path, data: bytes, hint: str) -> np.ndarray:
    """The array in the ``.npy`` bytes ``data`` read from ``path`` (no pickles; a header whose declared size
    differs from the data it holds is refused before numpy allocates it); :class:`CorruptRecordError`
    naming ``path``, the reason and ``hint`` otherwise."""
    try:
        buf = io.BytesIO(data)
        major, _ = np.lib.format.read_magic(buf)
        read_header = (
            np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = read_header(buf)
        declared, held = int(np.prod(shape, dtype=object)) * dtype.itemsize, len(data) - buf.tell()
        if dtype.hasobject or declared != held:  # refused before numpy allocates the declared size
            raise ValueError(f"the header declares {declared} bytes of data, the file holds {held}")
        buf.seek(0)
        return np.asarray(np.load(buf, allow_pickle=False))
    except (ValueError, EOFError, OSError) as exc:
        raise CorruptRecordError(path, f"is not a valid .npy array ({exc})", hint) from None


__all__ = [
    "CHECKSUM_FIELD",
    "MAX_RECORD_BYTES",
    "MAX_RECORD_DEPTH",
    "CorruptRecordError",
    "StoreError",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "json_depth",
    "read_json_file",
    "read_npy_bytes",
    "record_checksum",
]
