"""Provenance of measured cells: package versions, git commit, hashes of batch indices and files, timing.

Every record written by the pipeline carries ``provenance`` (the environment, computed once per run) and the
cell's own fields (seed, batch-indices hash, dtype, BN mode, products, residuals, wall time).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

_PACKAGES = ("batchrmt", "numpy", "scipy", "sympy", "torch", "matplotlib")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a result depends on (``"missing"`` if absent)."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The source tree's commit (``+dirty`` when it has changes), or ``None`` outside a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}+dirty" if dirty else sha


def environment() -> dict[str, Any]:
    """The run-level provenance: versions, git commit, platform, thread count."""
    try:
        import torch

        threads = int(torch.get_num_threads())
    except ImportError:  # pragma: no cover - torch is a dependency
        threads = -1
    return {
        "versions": package_versions(),
        "git_commit": git_commit(),
        "platform": platform.platform(),
        "torch_threads": threads,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }


def indices_hash(indices: np.ndarray | list[int]) -> str:
    """SHA-256 (first 16 hex digits) of the int64 little-endian bytes of ``indices`` — identifies a batch."""
    arr = np.ascontiguousarray(np.asarray(indices, dtype="<i8"))
    return hashlib.sha256(arr.tobytes()).hexdigest()[:16]


def file_hash(path: str | Path) -> str:
    """SHA-256 (first 16 hex digits) of a file's bytes (checkpoints)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def derived_seed(base_seed: int, *identity: object) -> int:
    """A 31-bit seed derived deterministically from ``base_seed`` and a cell identity, so each cell's
    randomness does not depend on which other cells ran before it (a resumed run equals an
    uninterrupted one)."""
    text = "|".join([str(base_seed), *map(str, identity)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


class CellTimer:
    """Wall time and host of one cell; ``fields()`` gives the timing fields (stripped when comparing runs)."""

    def __init__(self) -> None:
        self.started_at = time.time()
        self._t0 = time.perf_counter()
        self.wall_time = 0.0

    def stop(self) -> float:
        self.wall_time = time.perf_counter() - self._t0
        return self.wall_time

    def fields(self) -> dict[str, Any]:
        return {
            "wall_time": self.wall_time,
            "started_at": self.started_at,
            "finished_at": self.started_at + self.wall_time,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
        }


@contextmanager
def timed() -> Iterator[CellTimer]:
    timer = CellTimer()
    try:
        yield timer
    finally:
        timer.stop()
