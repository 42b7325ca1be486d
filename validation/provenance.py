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


SETTINGS_FIELDS = ("torch_threads", "cpu_capability", "batchrmt", "torch")
"""The fields of :func:`settings_fingerprint`: what changes a chaotic training trajectory's floating-point
results (thread count, SIMD instruction set) or the code that produced a record (package versions)."""


def _torch_runtime() -> dict[str, Any]:
    """Thread counts and the CPU capability torch dispatches to (``None`` entries without torch)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return {"torch_threads": None, "torch_interop_threads": None, "cpu_capability": None}
    try:
        capability: str | None = str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):  # pragma: no cover - torch < 2.1
        capability = None
    return {
        "torch_threads": int(torch.get_num_threads()),
        "torch_interop_threads": int(torch.get_num_interop_threads()),
        "cpu_capability": capability,
    }


def environment() -> dict[str, Any]:
    """The run-level provenance: package versions, git commit, platform, torch's intra-op and inter-op
    thread counts, the CPU capability torch dispatches to (``torch.backends.cpu.get_cpu_capability()``) and
    the environment variables that set them (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``,
    ``ATEN_CPU_CAPABILITY``)."""
    runtime = _torch_runtime()
    return {
        "versions": package_versions(),
        "git_commit": git_commit(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        **runtime,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "mkl_num_threads": os.environ.get("MKL_NUM_THREADS"),
        "aten_cpu_capability": os.environ.get("ATEN_CPU_CAPABILITY"),
    }


def settings_fingerprint() -> dict[str, Any]:
    """The settings under which two records of one run are comparable (``SETTINGS_FIELDS``): torch's
    intra-op thread count, its CPU capability, and the batchrmt and torch versions. A run folder keeps the
    fingerprint of the process that made its records; ``--resume`` refuses to mix records made under a
    different one (``validation.store.MixedSettingsError``)."""
    runtime = _torch_runtime()
    versions = package_versions()
    return {
        "torch_threads": runtime["torch_threads"],
        "cpu_capability": runtime["cpu_capability"],
        "batchrmt": versions["batchrmt"],
        "torch": versions["torch"],
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
