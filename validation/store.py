"""Result store of a run: one JSON record per measured cell, written atomically, plus arrays and checkpoints.

Layout under the run folder ``root``::

    config.json                 the validated config of the run
    store.json                  store format and the settings fingerprint(s) the records were made under
    records/<step>/<key>.json   one record per cell (step = "checkpoints", "spectra", "noise", "sweep", ...)
    arrays/<name>.npy           large arrays referenced by records (eigenvectors, row sums)
    arrays/<name>.npy.sha256    the array file's SHA-256 and size
    checkpoints/<name>.pt       model state dicts (``torch.save``; read back with ``weights_only=True``)
    summary_<step>.csv          flat CSV views of the records
    .lock                       ``flock``-ed by the process writing into the folder (never deleted)

Every file is written to a temporary name in the same folder, flushed, fsynced and moved into place with
``os.replace``, so a killed run leaves either the old file or the new one, never a torn one; files get mode
0666 minus the umask (0644 under the usual umask 022). ``--resume`` skips the cells whose record exists and
verifies, so a killed run loses at most the cell in flight.

Integrity: every record carries ``record_sha256``, the SHA-256 of its canonical JSON (sorted keys, no
whitespace, without that field), and every array a ``.sha256`` side file; reads check them, refuse files over
``MAX_RECORD_BYTES`` or nested deeper than ``MAX_RECORD_DEPTH`` before parsing, and refuse bare ``NaN`` /
``Infinity`` tokens (the store writes non-finite numbers as the strings ``"nan"``, ``"inf"``, ``"-inf"``).
A bad file raises :class:`CorruptRecordError` naming it and what to do; a process holding the lock (a
resumed run) instead moves a bad record aside to ``<key>.json.corrupt`` and recomputes the cell.

Exclusivity: :meth:`ResultStore.acquire_lock` takes an exclusive ``fcntl.flock`` on ``.lock``. The kernel
drops it when the holder's file descriptor closes, so a killed or zombie holder never blocks a new run.

Settings: a run's records are comparable only when made with the same torch thread count, CPU capability and
package versions (``validation.provenance.settings_fingerprint``). The lock holder records its fingerprint in
``store.json``; taking the lock of a folder whose records were made under another fingerprint raises
:class:`MixedSettingsError` unless mixing is allowed (``allow_mixed_settings=True`` or
:func:`permit_mixed_settings`).

The file-level machinery lives in :mod:`validation.store_integrity` (atomic writes, checksums, bounded
reading, :class:`CorruptRecordError`) and :mod:`validation.store_lock` (the ``flock``); every public name
of both is importable from here.
"""

from __future__ import annotations

import contextvars
import csv
import errno
import hashlib
import io
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from validation.store_integrity import (
    CHECKSUM_FIELD,
    MAX_RECORD_BYTES,
    MAX_RECORD_DEPTH,
    CorruptRecordError,
    StoreError,
    _file_sha256,
    _jsonable,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    json_depth,
    read_json_file,
    read_npy_bytes,
    record_checksum,
)
from validation.store_lock import StoreLockedError, lock_folder, unlock_folder

TIMING_FIELDS = frozenset({"wall_time", "started_at", "finished_at", "hostname", "pid"})
"""Record fields that legitimately differ between two runs of the same cell (stripped by ``strip_timing``)."""

STORE_FORMAT = 1

_KEY_PATTERN = re.compile(r"^[A-Za-z0-9._=+-]+$")
_ARRAY_REF = re.compile(r"^arrays/[A-Za-z0-9._=+-]+\.npy$")

log = logging.getLogger("batchrmt")
_ALLOW_MIXED: contextvars.ContextVar[bool] = contextvars.ContextVar("batchrmt_allow_mixed", default=False)


class MixedSettingsError(StoreError):
    """The folder's records were made under another settings fingerprint (threads, CPU capability,
    versions) than this process's."""


@contextmanager
def permit_mixed_settings(allow: bool = True) -> Iterator[None]:
    """Within the block, stores created without an explicit ``allow_mixed_settings`` accept a run folder
    whose records were made under other settings (what ``batchrmt run --allow-mixed-settings`` sets)."""
    token = _ALLOW_MIXED.set(allow)
    try:
        yield
    finally:
        _ALLOW_MIXED.reset(token)


def cell_key(**identity: Any) -> str:
    """Stable file-name key of a cell from its identity, e.g. ``cell_key(model="vgg", ckpt=0, B=8, s=3)`` →
    ``"model=vgg_ckpt=0_B=8_s=3"`` (order as given)."""
    parts = []
    for name, value in identity.items():
        text = f"{name}={value}"
        if not _KEY_PATTERN.match(text) or "_" in str(value):
            raise ValueError(f"cell identity {name}={value!r} must use letters, digits and . = + - only")
        parts.append(text)
    if not parts:
        raise ValueError("cell_key needs at least one identity field")
    return "_".join(parts)


def strip_timing(record: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` without the fields in ``TIMING_FIELDS`` (recursively) — what two identical runs share."""
    out: dict[str, Any] = {}
    for k, v in record.items():
        if k in TIMING_FIELDS:
            continue
        out[k] = strip_timing(v) if isinstance(v, Mapping) else v
    return out


class ResultStore:
    """The records, arrays and checkpoints of one run folder.

    ``allow_mixed_settings``: accept a folder whose records were made under another settings fingerprint
    (``None``: the value set by :func:`permit_mixed_settings`, default ``False``). ``settings``: the
    fingerprint of this process (default ``validation.provenance.settings_fingerprint()``, computed when the
    lock is taken).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        allow_mixed_settings: bool | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise FileExistsError(errno.EEXIST, "run folder path is a file, not a folder", str(self.root))
        self.root.mkdir(parents=True, exist_ok=True)
        self.allow_mixed_settings = allow_mixed_settings
        self.settings = dict(settings) if settings is not None else None
        self._lock_fd: int | None = None
        self._verified_files: dict[Path, tuple[int, int, int]] = {}
        self.repaired: list[Path] = []
        """Records found corrupt and moved aside by this (lock-holding) store, in order."""

    # -- lock --
    @property
    def lock_path(self) -> Path:
        return self.root / ".lock"

    @property
    def is_locked(self) -> bool:
        """Whether this store holds the folder's lock."""
        return self._lock_fd is not None

    def acquire_lock(self) -> None:
        """Take the folder's exclusive lock (``fcntl.flock`` on ``.lock``, non-blocking) and check the
        settings fingerprint. Raises :class:`StoreLockedError` when another process (or another store in
        this one) holds it, :class:`MixedSettingsError` as described in the module docstring."""
        if self._lock_fd is not None:
            return
        self._lock_fd = lock_folder(self.lock_path, self.root)
        try:
            self._check_settings()
        except BaseException:
            self.release_lock()
            raise

    def release_lock(self) -> None:
        """Drop the lock (the ``.lock`` file stays: deleting it would let two processes lock two files)."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            unlock_folder(fd)

    @contextmanager
    def locked(self) -> Iterator[ResultStore]:
        self.acquire_lock()
        try:
            yield self
        finally:
            self.release_lock()

    # -- settings fingerprint --
    @property
    def meta_path(self) -> Path:
        return self.root / "store.json"

    def stored_settings(self) -> list[dict[str, Any]]:
        """The settings fingerprints the folder's records were made under (first: the original run's)."""
        if not self.meta_path.is_file():
            return []
        meta = read_json_file(self.meta_path, f"delete it and rerun with --resume{self._resume_example()}")
        settings = meta.get("settings") if isinstance(meta, dict) else None
        if not isinstance(settings, list) or not all(isinstance(x, dict) for x in settings):
            raise CorruptRecordError(self.meta_path, "has no list of settings fingerprints", "delete it")
        return settings

    def _has_records(self) -> bool:
        folder = self.root / "records"
        return folder.is_dir() and any(True for _ in folder.glob("*/*.json"))

    def _check_settings(self) -> None:
        if self.settings is None:
            from validation.provenance import settings_fingerprint

            self.settings = settings_fingerprint()
        current = dict(self.settings)
        stored = self.stored_settings()
        if stored and self._has_records():
            if current in stored:
                return
            allow = _ALLOW_MIXED.get() if self.allow_mixed_settings is None else self.allow_mixed_settings
            if not allow:
                raise MixedSettingsError(_settings_difference(self.root, stored[0], current))
            log.warning(
                "mixing settings in %s: %s", self.root, _settings_difference(self.root, stored[0], current)
            )
            stored = [*stored, current]
        else:
            stored = [current]
        atomic_write_json(self.meta_path, {"format": STORE_FORMAT, "settings": stored})

    # -- what to do about a bad file --
    def _resume_example(self) -> str:
        if (self.root / "config.json").is_file():
            config = self.root / "config.json"
            return f" (batchrmt run --config {config} --out {self.root} --resume)"
        return ""

    def resume_hint(self) -> str:
        """What a user does about a bad file of this folder: the command that recomputes it."""
        example = self._resume_example()
        if example:
            return f"recompute it with `{example.strip(' ()')}`"
        return (
            "rerun the command that wrote this folder into it (finished cells are kept, this one is redone)"
        )

    # -- records --
    def record_path(self, step: str, key: str) -> Path:
        if not _KEY_PATTERN.match(step) or not _KEY_PATTERN.match(key):
            raise ValueError(f"step {step!r} and key {key!r} must use letters, digits and . _ = + - only")
        return self.root / "records" / step / f"{key}.json"

    def _read_record(self, path: Path, step: str | None = None, key: str | None = None) -> dict[str, Any]:
        """The verified record in ``path`` without its checksum field (see the module docstring)."""
        hint = self.resume_hint()
        data = read_json_file(path, hint)
        if not isinstance(data, dict):
            raise CorruptRecordError(path, f"holds a JSON {type(data).__name__}, not a record", hint)
        stored = data.pop(CHECKSUM_FIELD, None)
        if not isinstance(stored, str):
            raise CorruptRecordError(
                path, f"has no {CHECKSUM_FIELD} field (edited, or written by an older batchrmt)", hint
            )
        if record_checksum(data) != stored:
            raise CorruptRecordError(
                path, "does not match its checksum (changed or truncated after it was written)", hint
            )
        expected = (step or path.parent.name, key or path.stem)
        if (data.get("step"), data.get("key")) != expected:
            raise CorruptRecordError(
                path,
                f"is the record of {data.get('step')}/{data.get('key')}, not {expected[0]}/{expected[1]}",
                hint,
            )
        return data

    def _quarantine(self, path: Path, exc: CorruptRecordError) -> None:
        aside = path.with_name(path.name + ".corrupt")
        os.replace(path, aside)
        self.repaired.append(path)
        what = exc.reason if exc.path == path else f"references {exc.path}, which {exc.reason}"
        log.warning("%s: %s; moved to %s and recomputing the cell", path, what, aside.name)

    def _verify_references(self, record: Mapping[str, Any], path: Path) -> None:
        """Check the files ``record`` points to: arrays (``arrays/<name>.npy``, by their side file) and a
        checkpoint (top-level ``path`` + ``sha256``, as ``validation.provenance.file_hash`` writes it)."""
        for ref in _string_values(record):
            if _ARRAY_REF.match(ref):
                self._verify_array(self.root / ref)
        target, digest = record.get("path"), record.get("sha256")
        if isinstance(target, str) and isinstance(digest, str) and target.startswith("checkpoints/"):
            file = self._inside_root(target, path)
            if not file.is_file():
                raise CorruptRecordError(file, f"is missing (referenced by {path})", self.resume_hint())
            if _file_sha256(file)[0][: len(digest)] != digest:
                raise CorruptRecordError(
                    file, f"does not match the sha256 in its record {path}", self.resume_hint()
                )

    def has(self, step: str, key: str) -> bool:
        """Whether a valid record of the cell exists (the record and the arrays and checkpoint it references
        pass their checks). A bad record raises :class:`CorruptRecordError`, except in a store holding the
        lock (a writing, resuming run), which moves it aside to ``<key>.json.corrupt``, logs one line and
        returns ``False`` so that the cell is recomputed."""
        path = self.record_path(step, key)
        if not path.is_file():
            return False
        try:
            self._verify_references(self._read_record(path, step, key), path)
        except CorruptRecordError as exc:
            if not self.is_locked:
                raise
            self._quarantine(path, exc)
            return False
        return True

    def get(self, step: str, key: str) -> dict[str, Any]:
        """The verified record of a cell; ``KeyError`` if absent, :class:`CorruptRecordError` if bad."""
        path = self.record_path(step, key)
        if not path.is_file():
            raise KeyError(f"no record {step}/{key} in {self.root}")
        return self._read_record(path, step, key)

    def put(self, step: str, key: str, record: Mapping[str, Any]) -> dict[str, Any]:
        """Write one record atomically; the stored record gains ``step`` and ``key`` fields (returned) and
        its checksum field (not returned)."""
        data = dict(_jsonable(dict(record)))
        data.pop(CHECKSUM_FIELD, None)
        data["step"], data["key"] = step, key
        atomic_write_json(self.record_path(step, key), {**data, CHECKSUM_FIELD: record_checksum(data)})
        return data

    def get_or_compute(
        self, step: str, key: str, compute: Callable[[], Mapping[str, Any]], *, resume: bool = True
    ) -> dict[str, Any]:
        """The stored record when ``resume`` and a valid one exists; else ``compute()`` it and store it."""
        if resume and self.has(step, key):
            return self.get(step, key)
        return self.put(step, key, compute())

    def records(self, step: str, **match: Any) -> list[dict[str, Any]]:
        """All records of ``step`` (sorted by key) whose fields equal ``match``. A bad record raises
        :class:`CorruptRecordError`; a lock-holding store moves it aside and leaves it out (one log line)."""
        folder = self.root / "records" / step
        if not folder.is_dir():
            return []
        out = []
        for path in sorted(folder.glob("*.json")):
            try:
                rec = self._read_record(path)
            except CorruptRecordError as exc:
                if not self.is_locked:
                    raise
                self._quarantine(path, exc)
                continue
            if all(rec.get(k) == v for k, v in match.items()):
                out.append(rec)
        return out

    def steps(self) -> list[str]:
        folder = self.root / "records"
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    # -- arrays and checkpoints --
    def array_path(self, name: str) -> Path:
        if not _KEY_PATTERN.match(name):
            raise ValueError(f"array name {name!r} must use letters, digits and . _ = + - only")
        return self.root / "arrays" / f"{name}.npy"

    def save_array(self, name: str, array: np.ndarray) -> str:
        """Store ``array`` atomically as ``arrays/<name>.npy`` with its ``.sha256`` side file (SHA-256 and
        size, written after the array); returns the array's path relative to the run."""
        buf = io.BytesIO()
        np.save(buf, np.asarray(array), allow_pickle=False)
        data = buf.getvalue()
        path = self.array_path(name)
        atomic_write_bytes(path, data)
        side = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        atomic_write_json(path.with_name(path.name + ".sha256"), side)
        self._verified_files.pop(path, None)
        return str(path.relative_to(self.root))

    def _inside_root(self, relative_path: str, referrer: Path | None = None) -> Path:
        path = (self.root / relative_path).resolve()
        if not path.is_relative_to(self.root.resolve()):
            where = f" (in {referrer})" if referrer is not None else ""
            raise CorruptRecordError(
                self.root / relative_path, f"points outside the run folder{where}", self.resume_hint()
            )
        return path

    def _array_side(self, path: Path) -> tuple[str, int]:
        hint = self.resume_hint()
        side_path = path.with_name(path.name + ".sha256")
        if not side_path.is_file():
            raise CorruptRecordError(path, f"has no checksum file {side_path.name}", hint)
        side = read_json_file(side_path, hint, max_bytes=4096)
        digest, size = (side.get("sha256"), side.get("bytes")) if isinstance(side, dict) else (None, None)
        if not isinstance(digest, str) or isinstance(size, bool) or not isinstance(size, int):
            raise CorruptRecordError(side_path, "is not an array checksum file", hint)
        return digest, size

    def _check_array_bytes(self, path: Path, data: bytes | None) -> None:
        digest, size = self._array_side(path)
        hint = self.resume_hint()
        if data is None:
            if not path.is_file():
                raise CorruptRecordError(path, "is missing", hint)
            actual, actual_size = _file_sha256(path)
        else:
            actual, actual_size = hashlib.sha256(data).hexdigest(), len(data)
        if actual_size != size:
            raise CorruptRecordError(
                path,
                f"is {actual_size} bytes, its checksum file says {size} (truncated or overwritten)",
                hint,
            )
        if actual != digest:
            raise CorruptRecordError(path, "does not match its checksum", hint)

    def _verify_array(self, path: Path) -> None:
        try:
            st = path.stat()
        except FileNotFoundError:
            raise CorruptRecordError(path, "is missing", self.resume_hint()) from None
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        if self._verified_files.get(path) == stamp:
            return
        self._check_array_bytes(path, None)
        self._verified_files[path] = stamp

    def load_array(self, relative_path: str) -> np.ndarray:
        """The array stored at ``relative_path`` (as :meth:`save_array` returned it), verified against its
        checksum file; :class:`CorruptRecordError` naming the file otherwise."""
        path = self._inside_root(relative_path)
        hint = self.resume_hint()
        digest, size = self._array_side(path)
        try:
            with path.open("rb") as fh:
                data = fh.read(size + 1)
        except FileNotFoundError:
            raise CorruptRecordError(path, "is missing", hint) from None
        self._check_array_bytes(path, data)
        return read_npy_bytes(path, data, hint)

    def checkpoint_path(self, name: str) -> Path:
        if not _KEY_PATTERN.match(name):
            raise ValueError(f"checkpoint name {name!r} must use letters, digits and . _ = + - only")
        return self.root / "checkpoints" / f"{name}.pt"

    # -- summaries --
    def write_csv(self, step: str, columns: list[str] | None = None) -> Path | None:
        """Write ``summary_<step>.csv`` with the scalar fields of the step's records; ``None`` when empty."""
        recs = self.records(step)
        if not recs:
            return None
        if columns is None:
            seen: dict[str, None] = {}
            for r in recs:
                for k, v in r.items():
                    if v is None or isinstance(v, (str, int, float, bool)):
                        seen.setdefault(k, None)
            columns = list(seen)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for r in recs:
            writer.writerow({c: r.get(c, "") for c in columns})
        path = self.root / f"summary_{step}.csv"
        atomic_write_text(path, buf.getvalue())
        return path


def _string_values(value: Any) -> Iterator[str]:
    """Every string inside a record (values of nested mappings and lists)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _string_values(v)
    elif isinstance(value, list):
        for v in value:
            yield from _string_values(v)


def _settings_difference(root: Path, stored: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    """One line: which settings differ between the folder's records and this process, and the override."""
    names = sorted(set(stored) | set(current))
    diff = [
        f"{n} {stored.get(n)!r} (records) vs {current.get(n)!r} (now)"
        for n in names
        if stored.get(n) != current.get(n)
    ]
    return (
        f"run folder {root} holds records made under other settings: {'; '.join(diff)}. Rerun with the "
        "same settings (e.g. OMP_NUM_THREADS, ATEN_CPU_CAPABILITY, package versions), choose a new --out, "
        "or pass --allow-mixed-settings to mix them"
    )


__all__ = [
    "CHECKSUM_FIELD",
    "MAX_RECORD_BYTES",
    "MAX_RECORD_DEPTH",
    "STORE_FORMAT",
    "TIMING_FIELDS",
    "CorruptRecordError",
    "MixedSettingsError",
    "ResultStore",
    "StoreError",
    "StoreLockedError",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "cell_key",
    "json_depth",
    "permit_mixed_settings",
    "read_json_file",
    "record_checksum",
    "strip_timing",
]
