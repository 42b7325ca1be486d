"""Result store of a run: one JSON record per measured cell, written atomically, plus arrays and checkpoints.

Layout under the run folder ``root``::

    config.json                 the validated config of the run
    records/<step>/<key>.json   one record per cell (step = "checkpoints", "spectra", "noise", "sweep", ...)
    arrays/<name>.npy           large arrays referenced by records (eigenvectors, row sums)
    checkpoints/<name>.pt       model state dicts (``torch.save``; read back with ``weights_only=True``)
    summary_<step>.csv          flat CSV views of the records
    .lock                       held by the process writing into the folder

Every file is written to a temporary name in the same folder, flushed, fsynced and moved into place with
``os.replace``, so a killed run leaves either the old file or the new one, never a torn one; ``--resume``
skips the cells whose record exists, so a killed run loses at most the cell in flight.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

TIMING_FIELDS = frozenset({"wall_time", "started_at", "finished_at", "hostname", "pid"})
"""Record fields that legitimately differ between two runs of the same cell (stripped by ``strip_timing``)."""

_KEY_PATTERN = re.compile(r"^[A-Za-z0-9._=+-]+$")


class StoreLockedError(RuntimeError):
    """Another live process holds the run folder's lock."""


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
        v = float(value)
        return v if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"record value of type {type(value).__name__} is not JSON-serialisable: {value!r}")


def to_float(value: Any) -> float:
    """Inverse of the non-finite encoding: ``"nan"``, ``"inf"``, ``"-inf"`` → floats; numbers unchanged."""
    return float(value)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, fsync, ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(_jsonable(obj), indent=1, sort_keys=True) + "\n")


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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def strip_timing(record: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` without the fields in ``TIMING_FIELDS`` (recursively) — what two identical runs share."""
    out: dict[str, Any] = {}
    for k, v in record.items():
        if k in TIMING_FIELDS:
            continue
        out[k] = strip_timing(v) if isinstance(v, Mapping) else v
    return out


class ResultStore:
    """The records, arrays and checkpoints of one run folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._locked = False

    # -- lock --
    @property
    def lock_path(self) -> Path:
        return self.root / ".lock"

    def acquire_lock(self) -> None:
        """Take the folder's lock (``O_CREAT | O_EXCL``); a lock left by a dead process is broken."""
        for _ in range(2):
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    holder = int(self.lock_path.read_text().strip() or "0")
                except (OSError, ValueError):
                    holder = 0
                if holder > 0 and holder != os.getpid() and _pid_alive(holder):
                    raise StoreLockedError(
                        f"run folder {self.root} is in use by process {holder}; wait for it or remove "
                        f"{self.lock_path} if that process is gone"
                    ) from None
                self.lock_path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(str(os.getpid()))
            self._locked = True
            return
        raise StoreLockedError(f"could not take the lock {self.lock_path}")

    def release_lock(self) -> None:
        if self._locked:
            self.lock_path.unlink(missing_ok=True)
            self._locked = False

    @contextmanager
    def locked(self) -> Iterator[ResultStore]:
        self.acquire_lock()
        try:
            yield self
        finally:
            self.release_lock()

    # -- records --
    def record_path(self, step: str, key: str) -> Path:
        if not _KEY_PATTERN.match(step) or not _KEY_PATTERN.match(key):
            raise ValueError(f"step {step!r} and key {key!r} must use letters, digits and . _ = + - only")
        return self.root / "records" / step / f"{key}.json"

    def has(self, step: str, key: str) -> bool:
        return self.record_path(step, key).is_file()

    def get(self, step: str, key: str) -> dict[str, Any]:
        path = self.record_path(step, key)
        if not path.is_file():
            raise KeyError(f"no record {step}/{key} in {self.root}")
        with path.open(encoding="utf-8") as fh:
            return dict(json.load(fh))

    def put(self, step: str, key: str, record: Mapping[str, Any]) -> dict[str, Any]:
        """Write one record atomically; the stored record gains ``step`` and ``key`` fields."""
        data = dict(_jsonable(dict(record)))
        data["step"], data["key"] = step, key
        atomic_write_json(self.record_path(step, key), data)
        return data

    def get_or_compute(
        self, step: str, key: str, compute: Callable[[], Mapping[str, Any]], *, resume: bool = True
    ) -> dict[str, Any]:
        """The stored record when ``resume`` and it exists; otherwise ``compute()`` it and store it."""
        if resume and self.has(step, key):
            return self.get(step, key)
        return self.put(step, key, compute())

    def records(self, step: str, **match: Any) -> list[dict[str, Any]]:
        """All records of ``step`` (sorted by key) whose fields equal ``match``."""
        folder = self.root / "records" / step
        if not folder.is_dir():
            return []
        out = []
        for path in sorted(folder.glob("*.json")):
            with path.open(encoding="utf-8") as fh:
                rec = json.load(fh)
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
        """Store ``array`` atomically as ``arrays/<name>.npy``; returns its path relative to the run."""
        buf = io.BytesIO()
        np.save(buf, np.asarray(array), allow_pickle=False)
        path = self.array_path(name)
        atomic_write_bytes(path, buf.getvalue())
        return str(path.relative_to(self.root))

    def load_array(self, relative_path: str) -> np.ndarray:
        return np.asarray(np.load(self.root / relative_path, allow_pickle=False))

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
