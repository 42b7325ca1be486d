"""The pipeline's independent cells across ``torch.distributed`` ranks (``batchrmt run --distributed``;
docs/architecture.md "Distributed runs").

Protocol (rank 0 leads, the other ranks serve):

* Rank 0 runs the pipeline (:func:`validation.pipeline.run_pipeline`) exactly as in one process, holding the
  run folder's lock and writing every record; it is the run's only record writer. The other ranks never take
  the lock and never write a record: they run :meth:`DistributedCellExecutor.serve`, a loop that receives
  each stage's cells, computes its share and sends the records back.
* At each stage rank 0 broadcasts the stage's pending cells; every rank computes the same partition
  (:func:`partition_cells`: greedy by ``Cell.cost``, dearest first, each cell to the rank with the least
  assigned cost so far, ties to the lower rank; its largest load is at most ``total / W + max cost``) and
  computes its share with its own local worker processes (:class:`validation.execution.CellExecutor`);
  the records are gathered to rank 0, which yields them to the pipeline in the stage's cost order. Which
  rank computes a cell does not change its record (a cell's randomness depends only on the run seed and
  its identity, docs/architecture.md "Data flow through a run"), so the records equal those of a
  one-process run, except for the provenance's ``rank``, ``world_size`` and ``hostname`` fields that say
  where each cell ran.
* A cell that raises on any rank is reported in that rank's gathered payload and flagged in a small
  key-value store that rank 0 serves (``ABORT_KEY``), so every rank stops starting cells of its share; rank
  0 raises :class:`DistributedRunError` (one line: the rank, the cell and the error) and broadcasts it, so
  every rank stops with the same message once the cells in flight have finished. A rank that dies breaks
  the gloo connection, and the ranks waiting on it raise (torchrun also ends every rank when one exits with
  an error). ``timeout_s`` bounds every wait on a peer; it must exceed the longest share of one stage.

Messages are pickled Python objects (``broadcast_object_list`` / ``gather_object``): the cells (module-level
functions with their arguments, as sent to local worker processes) and their JSON-like records, produced by
this package in the ranks of one job — not untrusted input. They travel over gloo, also when the cells
compute on CUDA (then the default group is nccl, each rank uses ``cuda:LOCAL_RANK``, and the executor makes
a gloo group for its messages: pickled objects live in host memory).

Files: cells write their arrays and checkpoints into the run folder themselves (``ResultStore.save_array``,
write-once, named by the cell), and read earlier stages' records and checkpoints from it, so **the run folder
must be on a filesystem that every rank sees** (one machine, or a shared filesystem on a cluster). The
executor checks this on entry (rank 0 writes a probe file that every rank must read back) and checks that
every file a record of another rank names exists on rank 0; either failure is an error naming the ranks.

Costs: a stage takes about max over ranks of (its share's cost) ≈ Σ cost / W when the stage has many more
cells than ranks; each stage adds one broadcast and one gather of its cells and records (kilobytes to a few
megabytes), negligible beside a cell's curvature products.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import secrets
import socket
import traceback
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from rmt.checks import check_int
from validation.execution import Cell, CellExecutor, available_cpus, limit_threads, resolve_workers

__all__ = [
    "ABORT_KEY",
    "DEFAULT_TIMEOUT_S",
    "MAX_TIMEOUT_S",
    "DistributedCellExecutor",
    "DistributedRunError",
    "distributed_executor",
    "in_distributed_env",
    "local_workers",
    "partition_cells",
]

DEFAULT_TIMEOUT_S = 24 * 3600.0
"""Default bound on every wait for a peer rank (a stage's longest share must fit in it)."""

MAX_TIMEOUT_S = 30 * 24 * 3600.0
"""The largest accepted ``timeout_s`` (30 days)."""

ABORT_KEY = "batchrmt/abort"
"""The key a failing rank sets in the executor's abort store (its value: the one-line error)."""

_FILE_REF = re.compile(r"^(arrays|checkpoints)/[A-Za-z0-9._=+-]+$")
_PROBE = ".distributed-probe"


class DistributedRunError(RuntimeError):
    """A cell failed on some rank, or the ranks could not work together; the message is one line and the
    same on every rank. ``remote_traceback`` is the failing rank's traceback (empty if none)."""

    def __init__(self, message: str, remote_traceback: str = "") -> None:
        super().__init__(message)
        self.remote_traceback = remote_traceback
        if remote_traceback:  # shown under --debug, after rank 0's own traceback
            self.add_note(f"traceback on the failing rank:\n{remote_traceback.rstrip()}")


def in_distributed_env() -> bool:
    """Whether this process was started by torchrun (or has its ``RANK``/``WORLD_SIZE``/``MASTER_*``,
    ``networks.distributed.ENV_VARS``)."""
    from networks.distributed import ENV_VARS

    return all(os.environ.get(name) for name in ENV_VARS)


def partition_cells(costs: Sequence[float], world_size: int) -> list[list[int]]:
    """The indices of ``costs`` each of ``world_size`` ranks computes: greedy longest-processing-time —
    dearest cell first (ties: lower index first), each to the rank with the least cost assigned so far (ties:
    lower rank). Deterministic, so every rank derives the same partition; the largest load is at most
    Σ cost / W + max cost (and within 4/3 of the best possible). Each rank's indices are in that order.

    Raises:
        TypeError / ValueError: ``world_size`` not an int ≥ 1, or a cost negative or not finite.
    """
    world_size = check_int(world_size, "world_size", minimum=1, maximum=1 << 20)
    for i, c in enumerate(costs):
        if not (isinstance(c, int | float) and 0 <= c < float("inf")):
            raise ValueError(f"costs[{i}] must be a finite number >= 0, got {c!r}")
    shares: list[list[int]] = [[] for _ in range(world_size)]
    loads = [0.0] * world_size
    for i in sorted(range(len(costs)), key=lambda j: (-float(costs[j]), j)):
        r = min(range(world_size), key=lambda k: (loads[k], k))
        shares[r].append(i)
        loads[r] += float(costs[i])
    return shares


def local_workers(workers: int | None, device: str, local_world_size: int) -> int:
    """Local worker processes of one rank: ``workers`` if given, else the available CPUs shared among the
    ``local_world_size`` ranks of this machine (at least one); one on CUDA (a rank owns one device, and
    cells computed in-process use it)."""
    if device != "cpu":
        n = resolve_workers(workers, device)
        if n != 1:
            raise ValueError(f"workers must be 1 with device {device!r} in a distributed run, got {n}")
        return 1
    if workers is not None:
        return resolve_workers(workers, device)
    return max(1, available_cpus() // max(1, local_world_size))


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _records_of(result: Mapping[str, Any]) -> list[Any]:
    records = result.get("records")
    return list(records) if isinstance(records, list) else [result]


class DistributedCellExecutor(CellExecutor):
    """A :class:`CellExecutor` whose cells are spread over the ranks of an initialised process group.

    Rank 0 calls :meth:`run` (through the pipeline) and gets ``(cell, record)`` for every cell, as from a
    one-process executor; every other rank calls :meth:`serve` until rank 0 leaves the ``with`` block. Build
    it with :func:`distributed_executor`, which also creates the process group and checks the run folder.

    Args:
        workers: local worker processes of this rank (see :func:`local_workers`).
        root: the run folder, which every rank must see.
        group: the process group for messages (``None``: the default group, which must be gloo).
        total_workers: workers over all ranks (shown in progress messages and stored in the provenance).
        abort_store: a ``torch.distributed.Store`` shared by the ranks (optional): a rank whose cell fails
            sets the key :data:`ABORT_KEY` in it, and every rank stops starting new cells of its share when
            it sees the key, so a failure ends the stage after the cells in flight rather than after every
            rank's whole share.
    """

    def __init__(self, workers: int, *, root: str | os.PathLike[str], group: Any = None,
                 total_workers: int | None = None, abort_store: Any = None) -> None:  # fmt: skip
        import torch.distributed as dist

        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self._local = CellExecutor(workers)  # this rank's share; ``self.workers`` counts all ranks
        self.local_workers = self._local.workers
        super().__init__(total_workers or self.local_workers * self.world_size)
        self.group = group
        self.root = os.fspath(root)
        self.hostname = socket.gethostname()
        self.abort_store = abort_store
        self._stopped = False

    # -- messages --
    @contextlib.contextmanager
    def _talking(self, what: str) -> Iterator[None]:
        """Turn a failed collective (a peer died, or ``timeout_s`` passed) into one-line error."""
        try:
            yield
        except (RuntimeError, ConnectionError) as exc:
            if isinstance(exc, DistributedRunError):
                raise
            raise DistributedRunError(
                f"rank {self.rank}: lost contact with the other ranks during {what} ({_one_line(str(exc))})"
            ) from exc

    def _broadcast(self, message: Any) -> Any:
        import torch.distributed as dist

        box = [message]
        with self._talking("a broadcast from rank 0"):
            dist.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

    def _gather(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        import torch.distributed as dist

        out: list[Any] | None = [None] * self.world_size if self.rank == 0 else None
        with self._talking("the gathering of a stage's records"):
            dist.gather_object(payload, out, dst=0, group=self.group)
        return list(out or [])

    def _all_gather(self, payload: Any) -> list[Any]:
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        with self._talking("the start-up check"):
            dist.all_gather_object(out, payload, group=self.group)
        return out

    # -- checks on entry --
    def check_peers(self, settings: Mapping[str, Any], *, allow_mixed_settings: bool = False) -> None:
        """Collective: every rank must read the probe file rank 0 writes into the run folder (a shared
        filesystem), and (unless ``allow_mixed_settings``) have rank 0's settings fingerprint (the records
        of one run must be comparable, ``validation.provenance.settings_fingerprint``). Raises
        :class:`DistributedRunError` on every rank otherwise."""
        probe = os.path.join(self.root, _PROBE)
        if self.rank == 0:
            os.makedirs(self.root, exist_ok=True)
            token = secrets.token_hex(16)
            with open(probe, "w", encoding="utf-8") as fh:
                fh.write(token)
        token = self._broadcast(token if self.rank == 0 else None)
        try:
            with open(probe, encoding="utf-8") as fh:
                seen = fh.read() == token
        except OSError:
            seen = False
        views = self._all_gather({"rank": self.rank, "host": self.hostname, "seen": seen,
                                  "settings": dict(settings)})  # fmt: skip
        if self.rank == 0:
            with contextlib.suppress(OSError):
                os.remove(probe)
        blind = [f"{v['rank']} ({v['host']})" for v in views if not v["seen"]]
        differ = [v["rank"] for v in views if v["settings"] != views[0]["settings"]]
        if blind or (differ and not allow_mixed_settings):
            self._stopped = True  # every rank raises the same error: no stop message to send
        if blind:
            raise DistributedRunError(
                f"rank(s) {', '.join(blind)} cannot see the run folder {self.root} that rank 0 writes; "
                "--out must be on a filesystem shared by all ranks"
            )
        if differ and not allow_mixed_settings:
            raise DistributedRunError(
                f"rank(s) {differ} run under other settings than rank 0 ({views[differ[0]]['settings']} vs "
                f"{views[0]['settings']}); their records would not be comparable (pass "
                "--allow-mixed-settings to accept)"
            )

    # -- one stage --
    def _stamp(self, result: dict[str, Any]) -> dict[str, Any]:
        for rec in _records_of(result):
            prov = rec.get("provenance") if isinstance(rec, dict) else None
            if isinstance(prov, dict):
                rec["provenance"] = {**prov, "rank": self.rank, "world_size": self.world_size,
                                     "hostname": self.hostname}  # fmt: skip
        return result

    def _signal_abort(self, message: str) -> None:
        if self.abort_store is not None:
            with contextlib.suppress(Exception):  # best effort: the gathered payload reports it anyway
                self.abort_store.set(ABORT_KEY, message)

    def _aborted(self) -> bool:
        if self.abort_store is None:
            return False
        try:
            return bool(self.abort_store.check([ABORT_KEY]))
        except Exception:  # the store's host is gone: the next collective reports it
            return False

    def _compute_share(self, cells: list[Cell]) -> dict[str, Any]:
        """This rank's share of ``cells``: ``{"rank", "results": [(index, record)], "error", "traceback",
        "stopped"}`` (``stopped``: the share was cut short because another rank failed)."""
        share = partition_cells([c.cost for c in cells], self.world_size)[self.rank]
        mine = [cells[i] for i in share]
        index = {id(cell): i for i, cell in zip(share, mine, strict=True)}
        results: list[tuple[int, dict[str, Any]]] = []
        payload: dict[str, Any] = {"rank": self.rank, "results": results, "error": None, "traceback": "",
                                   "stopped": False}  # fmt: skip
        try:
            for cell, record in self._local.run(mine):
                results.append((index[id(cell)], self._stamp(record)))
                if len(results) < len(mine) and self._aborted():  # another rank failed: stop early
                    payload["stopped"] = True
                    break
        except Exception as exc:  # reported to rank 0, which stops every rank
            where = ""
            if self.local_workers == 1:  # in-process cells finish in order: the first unfinished one failed
                failed = cells[share[len(results)]]
                where = f" in cell {failed.step}/{failed.key}"
            payload["error"] = _one_line(f"rank {self.rank}{where}: {type(exc).__name__}: {exc}")
            payload["traceback"] = traceback.format_exc()
            self._signal_abort(payload["error"])
        return payload

    def _check_files(self, rank: int, record: Any) -> None:
        stack = [record]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, str) and _FILE_REF.match(item):
                if not os.path.isfile(os.path.join(self.root, item)):
                    raise DistributedRunError(
                        f"rank {rank} wrote {item}, which rank 0 cannot see in {self.root}; "
                        "--out must be on a filesystem shared by all ranks"
                    )

    def run(self, cells: Iterable[Cell]) -> Iterator[tuple[Cell, dict[str, Any]]]:
        """Rank 0: compute ``cells`` over all ranks and yield ``(cell, record)`` for each, in cost order
        (dearest first), once the stage is complete. Raises :class:`DistributedRunError` if a cell failed
        on any rank (once every rank has stopped: the failure's abort flag makes the others stop starting
        cells of their share)."""
        if self.rank != 0:
            raise DistributedRunError(f"rank {self.rank}: only rank 0 runs the pipeline; call serve() here")
        todo = sorted(cells, key=lambda c: -c.cost)
        if not todo:
            return
        self._broadcast(("cells", todo))
        payloads = self._gather(self._compute_share(todo))
        failed = [p for p in payloads if p["error"]]
        if failed:
            raise DistributedRunError(failed[0]["error"], failed[0]["traceback"])
        by_index: dict[int, dict[str, Any]] = {}
        for p in payloads:
            for i, record in p["results"]:
                if p["rank"] != 0:
                    self._check_files(p["rank"], record)
                by_index[i] = record
        missing = [f"{todo[i].step}/{todo[i].key}" for i in range(len(todo)) if i not in by_index]
        if missing:
            raise DistributedRunError(f"no record came back for cell(s) {', '.join(missing[:3])}")
        for i, cell in enumerate(todo):
            yield cell, by_index[i]

    def serve(self) -> None:
        """Ranks other than 0: compute this rank's share of every stage rank 0 sends, until rank 0 stops.
        Raises :class:`DistributedRunError` (the message rank 0 sent) when the run failed."""
        if self.rank == 0:
            raise DistributedRunError("rank 0 leads the run; serve() is for the other ranks")
        while True:
            kind, body = self._broadcast(None)
            if kind == "stop":
                self._stopped = True
                if body:
                    raise DistributedRunError(body)
                return
            self._gather(self._compute_share(list(body)))

    # -- end --
    def stop(self, error: str | None = None) -> None:
        """Rank 0: tell the serving ranks that the run is over (``error``: it failed with that one-line
        message). Idempotent; a lost peer is ignored here (its connection error was already raised)."""
        if self.rank != 0 or self._stopped or self.world_size == 1:
            self._stopped = True
            return
        self._stopped = True
        with contextlib.suppress(DistributedRunError):
            self._broadcast(("stop", error))

    def __exit__(self, exc_type: object, *exc: object) -> None:
        error = exc[0] if exc else None
        try:
            if exc_type is None:
                self.stop()
            elif isinstance(error, DistributedRunError):
                self.stop(_one_line(str(error)))
            elif isinstance(error, Exception):
                self.stop(_one_line(f"rank 0: {type(error).__name__}: {error}"))
        finally:
            self.close(wait=exc_type is None)

    def close(self, *, wait: bool = True) -> None:
        """Shut this rank's local worker pool down (see :meth:`CellExecutor.close`)."""
        self._local.close(wait=wait)
        super().close(wait=wait)


def _abort_store(rank: int, world_size: int, group: Any, timeout_s: float) -> Any:
    """Collective: a ``torch.distributed.TCPStore`` served by rank 0 on ``MASTER_ADDR`` (a free port, sent to
    the other ranks) for :data:`ABORT_KEY`; ``None`` on every rank if any rank could not reach it (the run
    then stops at the end of the stage in which a cell failed)."""
    import torch.distributed as dist

    host = os.environ["MASTER_ADDR"]
    timeout = datetime.timedelta(seconds=min(timeout_s, 60.0))
    store: Any = None
    port = [None]
    if rank == 0:
        with contextlib.suppress(Exception):
            store = dist.TCPStore(host, 0, world_size, True, timeout, wait_for_workers=False)
            port = [store.port]
    dist.broadcast_object_list(port, src=0, group=group)
    if rank != 0 and port[0] is not None:
        with contextlib.suppress(Exception):
            store = dist.TCPStore(host, int(port[0]), world_size, False, timeout)
    ok = [False] * world_size
    dist.all_gather_object(ok, store is not None, group=group)
    return store if all(ok) else None


@contextlib.contextmanager
def distributed_executor(
    root: str | os.PathLike[str],
    *,
    workers: int | None = None,
    device: str = "cpu",
    timeout_s: float = DEFAULT_TIMEOUT_S,
    allow_mixed_settings: bool = False,
) -> Iterator[DistributedCellExecutor]:
    """``with distributed_executor(out, device=...) as ex:`` — join torchrun's process group
    (``networks.distributed.process_group_from_env``: gloo on CPU; nccl on CUDA, with ``cuda:LOCAL_RANK``
    made current and a gloo group for the executor's messages), check the ranks (shared run folder, same
    settings) and yield the executor; on exit rank 0 stops the other ranks and the group is destroyed.

    Raises:
        ValueError: not under torchrun (a missing variable is named), ``timeout_s`` outside
            (0, :data:`MAX_TIMEOUT_S`], ``device``
            not "cpu" or "cuda", or ``workers`` > 1 on CUDA.
        DistributedRunError: a rank cannot see the run folder, or runs under other settings.
    """
    import torch.distributed as dist

    from networks.distributed import ENV_VARS, process_group_from_env
    from validation.provenance import settings_fingerprint

    missing = [name for name in ENV_VARS if not os.environ.get(name)]
    if missing:
        raise ValueError(
            f"a distributed run needs torchrun's environment ({', '.join(missing)} not set); launch it with "
            "torchrun --nproc-per-node N -m validation.cli run --distributed ..."
        )
    if not (isinstance(timeout_s, int | float) and 0 < timeout_s <= MAX_TIMEOUT_S):
        raise ValueError(
            f"timeout_s must be a number of seconds in (0, {MAX_TIMEOUT_S:g}], got {timeout_s!r}"
        )
    if device not in ("cpu", "cuda"):
        raise ValueError(
            f"device must be 'cpu' or 'cuda' in a distributed run (each rank uses cuda:LOCAL_RANK), "
            f"got {device!r}"
        )
    backend = "gloo" if device == "cpu" else "nccl"
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE") or os.environ["WORLD_SIZE"])
    n_local = local_workers(workers, device, local_world)
    limit_threads()
    with process_group_from_env(backend=backend, timeout_s=float(timeout_s)) as info:
        group = None
        if info.backend != "gloo":
            group = dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=float(timeout_s)))
        totals = [0] * info.world_size
        dist.all_gather_object(totals, n_local, group=group)
        abort_store = _abort_store(info.rank, info.world_size, group, float(timeout_s))
        executor = DistributedCellExecutor(
            n_local, root=root, group=group, total_workers=sum(totals), abort_store=abort_store
        )
        with executor:
            executor.check_peers(settings_fingerprint(), allow_mixed_settings=allow_mixed_settings)
            yield executor
