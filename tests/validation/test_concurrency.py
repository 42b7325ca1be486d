"""The run folder's lock across real processes: many simultaneous starters → exactly one holds it; a killed
holder (even one not yet reaped, a zombie) never blocks the next run."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from validation.store import ResultStore, StoreLockedError

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {"torch_threads": 1, "cpu_capability": "AVX2", "batchrmt": "0.1.0", "torch": "2.13.0"}


def _starter(folder: str, barrier: Any, start: Any, results: Any, release: Any) -> None:
    store = ResultStore(folder, settings=SETTINGS)
    barrier.wait(timeout=30)
    while start.value == 0.0 or time.time() < start.value:  # spin: every starter tries at the same instant
        pass
    try:
        store.acquire_lock()
    except StoreLockedError:
        results.put("refused")
        return
    results.put("acquired")
    release.wait(timeout=30)  # hold the lock until every starter has tried
    store.release_lock()


@pytest.mark.skipif(sys.platform == "win32", reason="fcntl.flock is POSIX")
@pytest.mark.parametrize(("starters", "trials"), [(2, 24), (12, 6)])
def test_simultaneous_starters_exactly_one_acquires(tmp_path: Path, starters: int, trials: int) -> None:
    """The former O_EXCL + PID-file lock let two of two such starters in, in ≈ 10% of trials."""
    ctx = mp.get_context("fork")
    for trial in range(trials):
        folder = tmp_path / f"run{trial}"
        folder.mkdir()
        if trial % 2:  # half the trials start with a lock file left by a dead process
            (folder / ".lock").write_text("999999\n")
        barrier, start = ctx.Barrier(starters + 1), ctx.Value("d", 0.0)
        results, release = ctx.Queue(), ctx.Event()
        args = (str(folder), barrier, start, results, release)
        procs = [ctx.Process(target=_starter, args=args) for _ in range(starters)]
        for p in procs:
            p.start()
        barrier.wait(timeout=30)
        start.value = time.time() + 0.005
        outcomes = [results.get(timeout=30) for _ in range(starters)]
        release.set()
        for p in procs:
            p.join(timeout=30)
            assert p.exitcode == 0
        assert outcomes.count("acquired") == 1, (trial, outcomes)


HOLDER = """
import sys, time
from validation.store import ResultStore
store = ResultStore(sys.argv[1], settings={"torch_threads": 1})
store.acquire_lock()
print("locked", flush=True)
time.sleep(60)
"""


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see the zombie state")
def test_killed_holder_still_a_zombie_does_not_block(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for trial in range(3):
        folder = tmp_path / f"run{trial}"
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(folder)], env=env, stdout=subprocess.PIPE, text=True
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            with pytest.raises(StoreLockedError, match=f"in use by process {holder.pid}"):
                ResultStore(folder, settings={"torch_threads": 1}).acquire_lock()
            os.kill(holder.pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while _state(holder.pid) != "Z" and time.monotonic() < deadline:
                time.sleep(0.005)
            assert _state(holder.pid) == "Z"  # killed, not reaped: the case that used to block --resume
            with ResultStore(folder, settings={"torch_threads": 1}).locked():
                assert _state(holder.pid) == "Z"
        finally:
            holder.kill()
            holder.wait()
