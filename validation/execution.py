"""How the pipeline's independent cells are executed: worker processes with one intra-op thread each.

Why processes and one thread: a cell (a sweep batch, a threshold search, one checkpoint's spectra) is a
chain of small tensor operations. With several intra-op threads per process, every operation ends in a
barrier, and on a machine whose cores are shared with another busy process one descheduled thread stalls all
the others — the measured cost of the default run's threshold cells grew 2.4–82× under load with torch's
default of 2 threads on 2 cores. One thread per process has no barrier to stall, and it makes every number
independent of the thread and worker count: a cell computes the same record whichever worker runs it, with
any number of workers.

:class:`CellExecutor` runs a list of :class:`Cell` objects either in this process (``workers=1``) or in a
pool of ``workers`` spawned processes; either way the *same* top-level function computes each cell, and
results are handed back to the caller (the only writer of records) as they complete, so a killed run keeps
every finished cell. Workers are spawned (not forked: forking a process that has started OpenMP threads can
deadlock) and are reused for the whole run; each loads the data pool and checkpoints once and caches them.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any

from rmt.checks import check_int

INTRA_OP_THREADS = 1
"""Intra-op threads of every process that computes cells (see the module docstring)."""


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int | None, device: str = "cpu") -> int:
    """Worker processes for a run: ``workers`` if given (≥ 1), else one per available CPU on the CPU and one
    on an accelerator (a single device is not shared between processes)."""
    if workers is not None:
        return check_int(workers, "workers", minimum=1, maximum=1024)
    return available_cpus() if device == "cpu" else 1


def limit_threads() -> None:
    """Pin this process to :data:`INTRA_OP_THREADS` intra-op threads (and one inter-op thread)."""
    os.environ["OMP_NUM_THREADS"] = str(INTRA_OP_THREADS)
    os.environ["MKL_NUM_THREADS"] = str(INTRA_OP_THREADS)
    import torch

    torch.set_num_threads(INTRA_OP_THREADS)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or parallel work already started in this process
        pass


def _init_worker() -> None:
    """A worker ignores Ctrl-C (the parent stops the run and terminates it), uses one thread, and runs in a
    session of its own. The last point matters on Linux kernels that schedule by session ("autogroup", on by
    default): there all workers of a run would otherwise share one session's CPU slice, so against one busy
    process from another session two workers got one core between them; in their own sessions each gets the
    fair share of an ordinary process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.setsid()
    except OSError:  # already a session leader, or not permitted: keep the parent's session
        pass
    limit_threads()


@dataclass(frozen=True)
class Cell:
    """One independent unit of work: ``function(*args)`` computes the record stored under (``step``, ``key``).

    ``function`` must be a module-level function (workers receive it by reference) and ``args`` picklable.
    ``cost`` orders submission (dearest first) so that a long cell does not start last. A cell that produces
    several records (one model's checkpoints) names their keys in ``produces`` and returns
    ``{"records": [...]}`` in that order.
    """

    step: str
    key: str
    function: Callable[..., dict[str, Any]]
    args: tuple[Any, ...] = ()
    cost: float = 1.0
    produces: tuple[str, ...] = ()

    @property
    def record_keys(self) -> tuple[str, ...]:
        """The keys of the records this cell stores."""
        return self.produces or (self.key,)


@dataclass
class CellExecutor:
    """Runs cells in-process (``workers == 1``) or in a persistent pool of spawned single-thread workers."""

    workers: int = 1
    _pool: ProcessPoolExecutor | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.workers = check_int(self.workers, "workers", minimum=1, maximum=1024)

    def __enter__(self) -> CellExecutor:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(wait=exc_type is None)

    def close(self, *, wait: bool = True) -> None:
        """Shut the pool down; with ``wait=False`` (an error or Ctrl-C in the caller) running workers are
        terminated instead of finishing their cells (finished cells are already stored)."""
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        if not wait:
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=get_context("spawn"), initializer=_init_worker
            )
        return self._pool

    def run(self, cells: Iterable[Cell]) -> Iterator[tuple[Cell, dict[str, Any]]]:
        """Yield ``(cell, record)`` as cells finish (in submission order in-process, completion order in the
        pool). An exception in a cell propagates after the cells already finished have been yielded."""
        todo = sorted(cells, key=lambda c: -c.cost)
        if self.workers == 1 or len(todo) <= 1:
            for cell in todo:
                yield cell, cell.function(*cell.args)
            return
        pool = self._ensure_pool()
        futures: dict[Future[dict[str, Any]], Cell] = {
            pool.submit(cell.function, *cell.args): cell for cell in todo
        }
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:
            for future in futures:
                future.cancel()
