"""Full-data Hessian-vector product on 1 process against 2 gloo ranks (each 1 intra-op thread), per data size.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_distributed.py [--sizes 256 1024 4096] [--rounds 5]
[--out benchmarks/results/distributed.json]``. Two ranks on 127.0.0.1 (gloo). Per data size N
(Fashion-MNIST-shaped synthetic inputs 1×28×28, 10 classes, float32, the small CNN below, batches of
``--batch`` samples, ``method="recompute"`` as for full-data operators over many batches):

* ``one_process``: rank 0 alone computes the product of ``HessianOperator`` on all N samples while rank 1
  waits in a barrier (its CPU time while waiting is recorded: a blocking wait leaves the core to rank 0);
* ``two_ranks``: :class:`networks.distributed.DistributedOperator` on the contiguous shards (one product on
  each rank's N/2 samples + one all-reduce of P floats), timed on rank 0 from a barrier to the product's end
  (the all-reduce ends together on both ranks, so this is the wall time of the product).

Rounds interleave the two (order alternating) and the speed-up is the median of within-round ratios, so that
load from other processes that drifts over seconds cancels. ``allreduce_seconds`` times the all-reduce of a
P-vector alone. The crossover is the smallest N from which the speed-up stays ≥ ``--target`` (1.6). On a
shared machine the numbers are indicative: the load average before and after is recorded.

Sessions. Linux with ``kernel.sched_autogroup_enabled = 1`` shares the CPU fairly between *sessions*, not
processes: ranks spawned from one session together get that session's share, so on a machine busy with other
sessions 2 ranks cannot be faster than 1 process however the work is split. ``--sessions shared`` measures
that (ranks in the launching session, as ``torchrun`` on one busy machine); ``--sessions own`` puts each rank
(and so also the 1-process baseline on rank 0) in a session of its own (``os.setsid``), as ranks on separate
cores/nodes of a cluster would be. The default measures both.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info  # noqa: E402  (one implementation of the machine record)


def fmnist_cnn() -> nn.Module:
    """conv(1→8, 3×3)+ReLU+maxpool, conv(8→16)+ReLU+maxpool, MLP 784-32-10 (26,698 parameters); seed 0."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 7 * 7, 32), nn.ReLU(), nn.Linear(32, 10),
    )  # fmt: skip


def _batches(
    x: torch.Tensor, y: torch.Tensor, idx: range, batch: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    lo, hi = idx.start, idx.stop
    return [(x[i : min(i + batch, hi)], y[i : min(i + batch, hi)]) for i in range(lo, hi, batch)]


def _timed(fn: Any) -> float:
    """Wall seconds of ``fn()`` on this rank, starting after a barrier."""
    dist.barrier()
    wall = time.perf_counter()
    fn()
    return time.perf_counter() - wall


def _measure(rank: int, world: int, sizes: list[int], rounds: int, batch: int) -> dict[str, Any]:
    from networks.curvature import HessianOperator
    from networks.distributed import DistributedOperator, shard_indices

    model, loss_fn = fmnist_cnn(), nn.CrossEntropyLoss()
    size = sum(p.numel() for p in model.parameters())
    v = torch.randn(size, generator=torch.Generator().manual_seed(1))
    flat = torch.randn(size)
    allreduce = [_timed(lambda: dist.all_reduce(flat)) for _ in range(20)]
    rows = []
    for n in sizes:
        gen = torch.Generator().manual_seed(n)
        x, y = torch.randn(n, 1, 28, 28, generator=gen), torch.randint(0, 10, (n,), generator=gen)
        full = HessianOperator(model, loss_fn, _batches(x, y, range(n), batch), method="recompute")
        shard = _batches(x, y, shard_indices(n, rank, world), batch)
        op = DistributedOperator(HessianOperator(model, loss_fn, shard, method="recompute"))

        def solo(full: HessianOperator = full) -> None:
            if rank == 0:
                full @ v

        def sharded(op: DistributedOperator = op) -> None:
            op @ v

        _timed(solo), _timed(sharded)  # warm-up
        one, two, waiting_cpu = [], [], []
        for r in range(rounds):
            for name in ("solo", "sharded") if r % 2 == 0 else ("sharded", "solo"):
                dist.barrier()
                wall, cpu = time.perf_counter(), time.process_time()
                (solo if name == "solo" else sharded)()
                wall = time.perf_counter() - wall
                dist.barrier()  # rank 1 leaves the solo phase only when rank 0 has finished it
                cpu = time.process_time() - cpu
                if name == "solo":
                    one.append(wall)
                    waiting_cpu.append(cpu)
                else:
                    two.append(wall)
        ratios = [a / b for a, b in zip(one, two, strict=True)]
        rows.append(
            {
                "num_samples": n,
                "shard_sizes": list(op.shard_sizes),
                "one_process_seconds_median": statistics.median(one),
                "two_ranks_seconds_median": statistics.median(two),
                "speedup_median": statistics.median(ratios),
                "speedup_min_max": [min(ratios), max(ratios)],
                "rank_cpu_seconds_in_solo_phase_median": statistics.median(waiting_cpu),
            }
        )
        if rank == 0:
            print(f"N={n}: 1 process {rows[-1]['one_process_seconds_median']:.3f} s, 2 ranks "
                  f"{rows[-1]['two_ranks_seconds_median']:.3f} s, speed-up {rows[-1]['speedup_median']:.2f}",
                  flush=True)  # fmt: skip
    return {"num_params": size, "allreduce_seconds_median": statistics.median(allreduce), "rows": rows}


def _worker(rank: int, world: int, port: int, args: argparse.Namespace, out_dir: str, own: bool) -> None:
    if own:
        os.setsid()  # a session of its own = a scheduler autogroup of its own (see the module docstring)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from networks.distributed import process_group_from_env

    with process_group_from_env(backend="gloo") as info:
        result = _measure(info.rank, info.world_size, args.sizes, args.rounds, args.batch)
    (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(result))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096, 8192])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--target", type=float, default=1.6)
    parser.add_argument("--sessions", nargs="+", choices=["shared", "own"], default=["shared", "own"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/distributed.json"))
    args = parser.parse_args()
    machine_before = machine_info()
    start = time.perf_counter()
    configs = {}
    for sessions in args.sessions:
        configs[sessions] = _run(args, own=sessions == "own")
    record = {
        "benchmark": "full-data Hessian-vector product, 1 process vs 2 gloo ranks on 127.0.0.1",
        "model": "fmnist_cnn (bench_distributed.py), float32, cross-entropy, synthetic 1x28x28 inputs",
        "settings": {"rounds": args.rounds, "batch": args.batch, "method": "recompute",
                     "intra_op_threads_per_rank": 1, "target_speedup": args.target},  # fmt: skip
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "sched_autogroup_enabled": _autogroup(),
        "machine_before": machine_before,
        "load_average_after_1_5_15min": [round(x, 2) for x in os.getloadavg()],
        "wall_seconds": round(time.perf_counter() - start, 1),
        "sessions": configs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v["crossover_num_samples"] for k, v in configs.items()}))


def _autogroup() -> str | None:
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip()
    except OSError:
        return None


def _run(args: argparse.Namespace, own: bool) -> dict[str, Any]:
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory() as out_dir:
        mp.start_processes(
            _worker, args=(2, _free_port(), args, out_dir, own), nprocs=2, start_method="spawn"
        )
        ranks = [json.loads((Path(out_dir) / f"rank{r}.json").read_text()) for r in range(2)]
    result = ranks[0]
    for row, other in zip(result["rows"], ranks[1]["rows"], strict=True):
        waiting = other.pop("rank_cpu_seconds_in_solo_phase_median")
        row["waiting_rank_cpu_seconds_in_solo_phase_median"] = waiting
        row.pop("rank_cpu_seconds_in_solo_phase_median")
    crossover = None
    for i, row in enumerate(result["rows"]):
        if all(r["speedup_median"] >= args.target for r in result["rows"][i:]):
            crossover = row["num_samples"]
            break
    load_after = [round(x, 2) for x in os.getloadavg()]
    return {"load_average_before": load_before, "load_average_after": load_after,
            "crossover_num_samples": crossover, **result}  # fmt: skip


if __name__ == "__main__":
    main()
