"""``batchrmt run --distributed`` on 2 gloo ranks (CPU) equals a one-process run; failures stop every rank.

The ranks are started from a forkserver that has imported torch and the pipeline once (as in
tests/networks/test_distributed.py) with torchrun's environment variables, and each runs the real command
line (``validation.cli.main``) or the real executor. One spawn covers, in order: the tiny pipeline (records
equal, field by field except timings and provenance, to ``run_pipeline`` with one process), a cell raising
on rank 1 (both ranks stop with the same one-line error), a rank that cannot see the run folder, a record
naming a file rank 0 cannot see, and a rank that dies mid-stage (rank 0 raises instead of hanging). Every
wait on a peer is bounded by a 60 s process-group timeout and the test joins the ranks with a deadline.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
import torch.multiprocessing as mp
from hypothesis import given

from validation.cli import main as cli_main
from validation.config import config_from_dict
from validation.distributed_execution import (
    DistributedRunError,
    distributed_executor,
    local_workers,
    partition_cells,
)
from validation.execution import Cell
from validation.pipeline import run_pipeline

from .test_execution import _tiny
from .test_resume import comparable

WORLD = 2
PEER_TIMEOUT_S = 60.0
JOIN_DEADLINE_S = 240.0


# --- the partition rule --------------------------------------------------------------------------------
@given(costs=st.lists(st.floats(0, 100), max_size=40), world=st.integers(1, 6))
def test_partition_covers_every_cell_once_and_balances(costs: list[float], world: int) -> None:
    shares = partition_cells(costs, world)
    assert len(shares) == world
    assert sorted(i for s in shares for i in s) == list(range(len(costs)))
    loads = [sum(costs[i] for i in s) for s in shares]
    bound = sum(costs) / world + max(costs, default=0.0)  # the greedy (list-scheduling) bound
    assert max(loads, default=0.0) <= bound * (1 + 1e-12) + 1e-12
    assert partition_cells(costs, world) == shares  # deterministic: every rank derives the same one


def test_partition_rule_and_errors() -> None:
    assert partition_cells([1.0, 5.0, 2.0, 2.0, 1.0], 2) == [[1, 4], [2, 3, 0]]
    with pytest.raises(ValueError, match="world_size"):
        partition_cells([1.0], 0)
    with pytest.raises(ValueError, match=r"costs\[1\]"):
        partition_cells([1.0, float("nan")], 2)


def test_local_workers() -> None:
    assert local_workers(3, "cpu", 2) == 3
    assert local_workers(None, "cpu", 1) >= 1 and local_workers(None, "cpu", 10_000) == 1
    assert local_workers(None, "cuda", 4) == 1
    with pytest.raises(ValueError, match="workers"):
        local_workers(2, "cuda", 1)


def test_distributed_without_torchrun_is_a_one_line_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    code = cli_main(["run", "--config", "smoke", "--out", str(tmp_path / "x"), "--distributed"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "torchrun --nproc-per-node N -m validation.cli run --distributed" in err
    with pytest.raises(ValueError, match="MASTER_ADDR"):
        with distributed_executor(tmp_path):
            pass
    for bad in ("0", "nan", "inf"):
        code = cli_main(["run", "--config", "smoke", "--out", str(tmp_path), "--distributed-timeout", bad])
        err = capsys.readouterr().err
        assert code == 2 and "--distributed-timeout must be in (0, " in err, bad


def test_continue_command_of_a_distributed_run_relaunches_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    from validation.cli import build_parser

    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    args = build_parser().parse_args(["run", "--config", "smoke", "--distributed", "--workers", "2"])
    args.resolved_out = "runs/smoke"
    assert args.continue_command(args) == (
        "torchrun --nproc-per-node=4 -m validation.cli run --config smoke --out runs/smoke --distributed "
        "--workers 2 --resume"
    )


# --- cells for the failure scenarios (module level: ranks receive them by reference) --------------------
def _value(x: int) -> dict[str, Any]:
    return {"x": x, "provenance": {}}


def _boom(x: int) -> dict[str, Any]:
    raise ValueError(f"boom {x}")


def _names_missing_file(x: int) -> dict[str, Any]:
    return {"x": x, "vectors": "arrays/never-written.npy"}


def _die(x: int) -> dict[str, Any]:
    os._exit(3)


def _slow(folder: str, x: int) -> dict[str, Any]:
    """Sleeps 1 s (no CPU, so load does not stretch it) and leaves a mark that it ran."""
    time.sleep(1.0)
    (Path(folder) / f"slow-{x}").write_text("ran")
    return {"x": x}


# partition over 2 ranks: rank 0 gets cells 0, 3, 5, 7, 8 (five 1-s cells); rank 1 gets 1 (fails), 2, 4, 6
ABORT_COSTS = [10.0, 9.0] + [2.0] * 5 + [0.5] * 2


# costs 2 and 1 over 2 ranks: the first cell goes to rank 0, the second to rank 1
def _cells(second: Callable[[int], dict[str, Any]]) -> list[Cell]:
    return [Cell("demo", "x=0", _value, (0,), cost=2.0), Cell("demo", "x=1", second, (1,), cost=1.0)]


def _early_abort_scenario(rank: int, root: Path) -> dict[str, Any]:
    """Rank 1 fails in its first cell while rank 0 has six 1-s cells: rank 0 stops starting them."""
    marks = root / "marks"
    marks.mkdir(parents=True, exist_ok=True)
    cells = [Cell("demo", f"x={i}", _slow, (str(marks), i), cost=c) for i, c in enumerate(ABORT_COSTS)]
    cells[1] = Cell("demo", "x=1", _boom, (1,), cost=ABORT_COSTS[1])  # rank 1's first cell fails
    start = time.monotonic()
    try:
        with distributed_executor(root, workers=1, timeout_s=PEER_TIMEOUT_S) as ex:
            if rank == 0:
                list(ex.run(cells))
            else:
                ex.serve()
        return {"error": None}
    except DistributedRunError as exc:
        ran = sorted(int(p.name.split("-")[1]) for p in marks.iterdir())
        return {"error": str(exc), "seconds": time.monotonic() - start, "ran": ran}


def _executor_scenario(rank: int, root: Path, second: Callable[[int], dict[str, Any]]) -> dict[str, Any]:
    """Rank 0 runs two cells (the second on rank 1); returns what happened on this rank."""
    start = time.monotonic()
    try:
        with distributed_executor(root, workers=1, timeout_s=PEER_TIMEOUT_S) as ex:
            if rank == 0:
                records = {c.key: r for c, r in ex.run(_cells(second))}
                return {"records": records, "seconds": time.monotonic() - start}
            ex.serve()
            return {"served": True, "seconds": time.monotonic() - start}
    except DistributedRunError as exc:
        return {"error": str(exc), "seconds": time.monotonic() - start}


def _rank_main(rank: int, ports: list[int], work: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank),
                      LOCAL_WORLD_SIZE=str(WORLD), MASTER_ADDR="127.0.0.1")  # fmt: skip
    folder = Path(work)

    def save(name: str, result: dict[str, Any]) -> None:
        (folder / f"{name}-rank{rank}.json").write_text(json.dumps(result))

    os.environ["MASTER_PORT"] = str(ports[0])
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli_main(["run", "--config", str(folder / "tiny.json"), "--out", str(folder / "dist"),
                         "--distributed", "--distributed-timeout", "300", "--workers", "1", "--quiet",
                         "--no-figures"])  # fmt: skip
    save("pipeline", {"code": code, "stderr": err.getvalue()})
    os.environ["MASTER_PORT"] = str(ports[1])
    save("cell_error", _executor_scenario(rank, folder / "cells", _boom))
    os.environ["MASTER_PORT"] = str(ports[2])
    save("blind", _executor_scenario(rank, folder / f"private{rank}", _value))  # not one shared folder
    os.environ["MASTER_PORT"] = str(ports[3])
    save("missing_file", _executor_scenario(rank, folder / "cells", _names_missing_file))
    os.environ["MASTER_PORT"] = str(ports[4])
    save("early_abort", _early_abort_scenario(rank, folder / "abort"))
    os.environ["MASTER_PORT"] = str(ports[5])
    save("dead_rank", _executor_scenario(rank, folder / "cells", _die))  # rank 1 exits inside its cell


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("distrun")
    raw = _tiny()
    (work / "tiny.json").write_text(json.dumps(raw))
    context = mp.get_context("forkserver")
    context.set_forkserver_preload(["torch", "validation.pipeline", __name__])
    procs = mp.start_processes(_rank_main, args=(_free_ports(6), str(work)), nprocs=WORLD, join=False,
                               start_method="forkserver")  # fmt: skip
    assert procs is not None
    deadline = time.monotonic() + JOIN_DEADLINE_S
    for p in procs.processes:
        p.join(max(1.0, deadline - time.monotonic()))
    alive = [p.pid for p in procs.processes if p.is_alive()]
    for p in procs.processes:
        if p.is_alive():
            p.kill()
    assert not alive, f"ranks still running after {JOIN_DEADLINE_S} s: a hang"
    run_pipeline(config_from_dict(raw), work / "one", quiet=True, draw=False, workers=1)
    out: dict[str, Any] = {"work": work, "exitcodes": [p.exitcode for p in procs.processes]}
    for path in work.glob("*-rank*.json"):
        name, rank = path.stem.rsplit("-rank", 1)
        out.setdefault(name, {})[int(rank)] = json.loads(path.read_text())
    return out


@pytest.mark.slow
def test_two_ranks_give_the_records_of_one_process(ranks: dict[str, Any]) -> None:
    assert ranks["pipeline"] == {0: {"code": 0, "stderr": ""}, 1: {"code": 0, "stderr": ""}}
    one, two = comparable(ranks["work"] / "one"), comparable(ranks["work"] / "dist")
    assert sorted(one) == sorted(two)
    assert any(k.startswith("thresholds/") for k in one) and any(k.startswith("sweep/") for k in one)
    for key in one:
        assert one[key] == two[key], key
    # both ranks computed cells; the provenance says where
    from validation.store import ResultStore

    store = ResultStore(ranks["work"] / "dist")
    where = {rec["provenance"]["rank"] for step in ("sweep", "thresholds") for rec in store.records(step)}
    assert where == {0, 1}
    assert not (ranks["work"] / "dist" / ".distributed-probe").exists()


@pytest.mark.slow
def test_a_failing_cell_stops_every_rank_with_one_line(ranks: dict[str, Any]) -> None:
    result = ranks["cell_error"]
    message = "rank 1 in cell demo/x=1: ValueError: boom 1"
    assert result[0]["error"] == message and result[1]["error"] == message
    assert all(r["seconds"] < PEER_TIMEOUT_S for r in result.values())


@pytest.mark.slow
def test_a_failure_stops_the_other_ranks_share_early(ranks: dict[str, Any]) -> None:
    result = ranks["early_abort"]
    assert result[0]["error"] == result[1]["error"] == "rank 1 in cell demo/x=1: ValueError: boom 1"
    assert partition_cells(ABORT_COSTS, WORLD) == [[0, 3, 5, 7, 8], [1, 2, 4, 6]]
    # without the abort flag rank 0 would run all five of its 1-s cells; it stops after the one in flight
    # (rank 1 fails within its first ms, rank 0's first cell sleeps 1 s; a margin of 3 cells for a busy host)
    ran = result[0]["ran"]
    assert 0 in ran and set(ran) <= {0, 3, 5, 7, 8} and len(ran) < 5, ran


@pytest.mark.slow
def test_a_rank_that_cannot_see_the_run_folder_is_refused(ranks: dict[str, Any]) -> None:
    for result in ranks["blind"].values():
        assert "rank(s) 1" in result["error"] and "shared by all ranks" in result["error"]


@pytest.mark.slow
def test_a_record_naming_an_unseen_file_is_refused(ranks: dict[str, Any]) -> None:
    result = ranks["missing_file"]
    assert "rank 1 wrote arrays/never-written.npy, which rank 0 cannot see" in result[0]["error"]
    assert result[1]["error"] == result[0]["error"]


@pytest.mark.slow
def test_a_dead_rank_stops_rank_zero_without_a_hang(ranks: dict[str, Any]) -> None:
    assert ranks["exitcodes"] == [0, 3]
    result = ranks["dead_rank"][0]
    assert "lost contact with the other ranks" in result["error"]
    assert result["seconds"] < PEER_TIMEOUT_S
    assert 1 not in ranks["dead_rank"]
