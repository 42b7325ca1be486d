"""Top Hessian eigenvalues of one network and batch by batchrmt, PyHessian and curvlinops + scipy eigsh.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_peers.py [--out benchmarks/results/peers.json]``.
The peers live in their own virtual environment (default /tmp/peers, made with
``python -m venv /tmp/peers && /tmp/peers/bin/pip install torch==2.13.0 pyhessian curvlinops-for-pytorch``);
they run as subprocesses of that environment's python (this file in ``--worker`` mode) and read the same
model state and batch from a temporary ``torch.save`` file (loaded with ``weights_only=True``). Without
that environment the peers are skipped with a message and only batchrmt runs.

Measured, for the small CNN of ``bench_hvp.py`` in float64 (all tools), cross-entropy, one fixed batch:
  * a reference top-5 (batchrmt thick-restart Lanczos, residual tol 1e-10) and every tool's relative error
    against it, so agreement across tools is explicit;
  * batchrmt ``top_eigenpairs`` and curvlinops + ``eigsh`` for k = 1 and 5 at residual tolerances
    ``--tols``: Hessian-vector products, wall time, eigenvalues, max relative error;
  * PyHessian power iteration: top-1 trajectory (products and seconds until the relative error first stays
    below 1e-3 and 1e-6; where its own default stopping rule, consecutive change < 1e-3, would stop), and
    ``eigenvalues(top_n=5)`` with its defaults (maxIter=100, tol=1e-3);
  * the cost of one HVP as a ratio to one gradient in each tool (interleaved rounds, median ratio).
PyHessian's ``density()`` is not used (its wheel crashes there on torch >= 2).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_hvp import interleaved_ratios, machine_info, small_cnn  # noqa: E402

PEERS = ("pyhessian", "curvlinops")
ACCURACY_TARGETS = (1e-3, 1e-6)


# --- shared by both environments ---------------------------------------------------------------------
def load_problem(path: Path) -> tuple[nn.Module, Tensor, Tensor, Tensor, dict[str, Any]]:
    """The float64 model, batch (x, y), probe vector v and settings saved by :func:`save_problem`."""
    state = torch.load(path, weights_only=True)
    model = small_cnn().to(torch.float64)
    model.load_state_dict(state["model"])
    return model, state["x"], state["y"], state["v"], state["settings"]


def save_problem(path: Path, batch_size: int, settings: dict[str, Any]) -> None:
    model = small_cnn().to(torch.float64)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch_size, 3, 32, 32, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (batch_size,), generator=g)
    v = torch.randn(sum(p.numel() for p in model.parameters()), generator=g, dtype=torch.float64)
    torch.save({"model": model.state_dict(), "x": x, "y": y, "v": v, "settings": settings}, path)


def gradient_fn(model: nn.Module, x: Tensor, y: Tensor) -> Callable[[], object]:
    params = list(model.parameters())
    loss_fn = nn.CrossEntropyLoss()
    return lambda: torch.autograd.grad(loss_fn(model(x), y), params)


def split(v: Tensor, model: nn.Module) -> list[Tensor]:
    return [
        t.view_as(p)
        for t, p in zip(v.split([p.numel() for p in model.parameters()]), model.parameters(), strict=True)
    ]


def counted_eigsh(
    matvec: Callable[[np.ndarray], np.ndarray], size: int, k: int, tol: float
) -> dict[str, Any]:
    """scipy eigsh (which="LA", fixed start vector) on ``matvec``; products, seconds, eigenvalues."""
    import scipy.sparse.linalg as spla

    count = [0]

    def mv(x: np.ndarray) -> np.ndarray:
        count[0] += 1
        return matvec(np.asarray(x, dtype=np.float64).reshape(-1))

    linop = spla.LinearOperator((size, size), matvec=mv, rmatvec=mv, dtype=np.float64)
    v0 = np.random.default_rng(0).standard_normal(size)
    start = time.perf_counter()
    values = spla.eigsh(linop, k=k, which="LA", tol=tol, v0=v0, return_eigenvectors=False)
    return {
        "k": k,
        "tol": tol,
        "products": count[0],
        "seconds": time.perf_counter() - start,
        "eigenvalues": np.sort(values)[::-1].tolist(),
    }


# --- workers (run inside the peers' environment) ------------------------------------------------------
def worker_pyhessian(path: Path) -> dict[str, Any]:
    import importlib

    ph: Any = importlib.import_module("pyhessian.hessian")  # the module; pyhessian.hessian is the class

    model, x, y, v, settings = load_problem(path)
    torch.set_default_dtype(torch.float64)  # PyHessian draws its start vectors with the default dtype
    criterion = nn.CrossEntropyLoss()
    comp = ph.hessian(model, criterion, data=(x, y), cuda=False)  # note: calls model.eval() on our model
    bare_hvp = ph.hessian_vector_product
    vs = split(v, model)
    costs = interleaved_ratios(
        gradient_fn(model, x, y), {"hvp": lambda: bare_hvp(comp.gradsH, comp.params, vs)}, settings["rounds"]
    )
    trace: list[tuple[float, float]] = []  # (seconds since start, Rayleigh quotient) after each product

    def counting_hvp(grads: Any, params: Any, vec: list[Tensor]) -> Any:
        hv = bare_hvp(grads, params, vec)
        rq = sum(float((a * b).sum()) for a, b in zip(hv, vec, strict=True))
        trace.append((time.perf_counter() - start, rq))
        return hv

    ph.hessian_vector_product = counting_hvp
    torch.manual_seed(0)
    start = time.perf_counter()
    top1, _ = comp.eigenvalues(maxIter=settings["pyhessian_top1_max_iter"], tol=1e-12, top_n=1)
    top1_trace = list(trace)
    trace.clear()
    torch.manual_seed(0)
    start = time.perf_counter()
    top5, _ = comp.eigenvalues(top_n=5)  # defaults: maxIter=100, tol=1e-3
    return {
        "version": _dist_version("pyhessian"),
        "torch": torch.__version__,
        "hvp_cost": costs,
        "top1_trace": top1_trace,
        "top1_final": top1[0],
        "top5_defaults": {"products": len(trace), "seconds": trace[-1][0], "eigenvalues": top5},
    }


def worker_curvlinops(path: Path) -> dict[str, Any]:
    import curvlinops

    model, x, y, v, settings = load_problem(path)
    params = list(model.parameters())
    op = curvlinops.HessianLinearOperator(model, nn.CrossEntropyLoss(), params, [(x, y)], progressbar=False)
    costs = interleaved_ratios(gradient_fn(model, x, y), {"hvp": lambda: op @ v}, settings["rounds"])

    def matvec(z: np.ndarray) -> np.ndarray:
        return (op @ torch.from_numpy(z)).numpy()

    runs = [counted_eigsh(matvec, v.numel(), k, tol) for k in (1, 5) for tol in settings["tols"]]
    return {
        "version": _dist_version("curvlinops-for-pytorch"),
        "torch": torch.__version__,
        "hvp_cost": costs,
        "eigsh": runs,
    }


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


# --- the driver (batchrmt's environment) --------------------------------------------------------------
def run_batchrmt(path: Path) -> dict[str, Any]:
    import networks
    from networks.curvature.hessian import HessianOperator
    from networks.lanczos import top_eigenpairs

    model, x, y, v, settings = load_problem(path)
    loss_fn = nn.CrossEntropyLoss()
    op = HessianOperator(model, loss_fn, (x, y), method="cached")
    costs = interleaved_ratios(gradient_fn(model, x, y), {"hvp": lambda: op @ v}, settings["rounds"])
    runs = []
    for k in (1, 5):
        for tol in settings["tols"]:
            fresh = HessianOperator(model, loss_fn, (x, y), method="cached")
            start = time.perf_counter()
            result = top_eigenpairs(fresh, k, "LA", tol=tol, seed=0, return_eigenvectors=False)
            runs.append(
                {
                    "k": k,
                    "tol": tol,
                    "products": result.num_products,
                    "seconds": time.perf_counter() - start,
                    "eigenvalues": result.eigenvalues.tolist(),
                    "converged": bool(result.converged.all()),
                }
            )
    fresh = HessianOperator(model, loss_fn, (x, y), method="cached")
    reference = top_eigenpairs(fresh, 5, "LA", tol=1e-10, seed=1, return_eigenvectors=False)
    return {
        "version": _dist_version("batchrmt") or str(Path(networks.__file__).parent),
        "hvp_cost": costs,
        "top_eigenpairs": runs,
        "reference": {
            "eigenvalues": reference.eigenvalues.tolist(),
            "products": reference.num_products,
            "tol": 1e-10,
            "converged": bool(reference.converged.all()),
        },
    }


def run_worker(python: Path, peer: str, path: Path, timeout: float) -> dict[str, Any]:
    """Run this file as ``--worker peer`` under ``python``; its JSON answer, or the failure as a record."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    cmd = [
        str(python),
        str(Path(__file__).resolve()),
        "--worker",
        peer,
        "--state",
        str(path),
        "--out",
        str(out),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            return {"status": f"failed (exit {proc.returncode})", "stderr_tail": proc.stderr[-2000:]}
        return {"status": "ok", **json.loads(out.read_text())}
    except subprocess.TimeoutExpired:
        return {"status": f"failed: timed out after {timeout:.0f} s"}
    finally:
        out.unlink(missing_ok=True)


def relative_errors(values: list[float], reference: list[float]) -> list[float]:
    return [abs(a - b) / abs(b) for a, b in zip(values, reference, strict=False)]


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    """Errors against the reference, products to reach each accuracy target, HVP/gradient ratios."""
    ref = report["batchrmt"]["reference"]["eigenvalues"]
    summary: dict[str, Any] = {"reference_top5": ref, "hvp_over_gradient": {}, "runs": []}

    def add_runs(tool: str, runs: list[dict[str, Any]]) -> None:
        for run in runs:
            errors = relative_errors(run["eigenvalues"], ref)
            run["max_relative_error"] = max(errors)
            summary["runs"].append(
                {
                    "tool": tool,
                    "k": run["k"],
                    "tol": run["tol"],
                    "products": run["products"],
                    "seconds": run["seconds"],
                    "max_relative_error": max(errors),
                }
            )

    summary["hvp_over_gradient"]["batchrmt (cached double backward)"] = report["batchrmt"]["hvp_cost"]["hvp"][
        "ratio_to_gradient"
    ]
    add_runs("batchrmt top_eigenpairs", report["batchrmt"]["top_eigenpairs"])
    cl = report.get("curvlinops", {})
    if cl.get("status") == "ok":
        summary["hvp_over_gradient"]["curvlinops (vmap jvp over jacrev)"] = cl["hvp_cost"]["hvp"][
            "ratio_to_gradient"
        ]
        add_runs("curvlinops + eigsh", cl["eigsh"])
    ph = report.get("pyhessian", {})
    if ph.get("status") == "ok":
        summary["hvp_over_gradient"]["pyhessian (cached double backward)"] = ph["hvp_cost"]["hvp"][
            "ratio_to_gradient"
        ]
        errors = [abs(rq - ref[0]) / abs(ref[0]) for _, rq in ph["top1_trace"]]
        to_reach: dict[str, Any] = {}
        for target in ACCURACY_TARGETS:
            above = [i for i, e in enumerate(errors) if e >= target]
            first = 0 if not above else above[-1] + 1  # first product after which the error stays below
            to_reach[f"{target:g}"] = (
                {"products": first + 1, "seconds": ph["top1_trace"][first][0]}
                if first < len(errors)
                else None
            )
        rqs = [rq for _, rq in ph["top1_trace"]]
        stop = next(
            (i for i in range(1, len(rqs)) if abs(rqs[i - 1] - rqs[i]) / (abs(rqs[i - 1]) + 1e-6) < 1e-3),
            len(rqs) - 1,
        )
        top5 = ph["top5_defaults"]
        summary["pyhessian_power_iteration"] = {
            "top1_products_to_relative_error": to_reach,
            "top1_final_relative_error": errors[-1],
            "top1_default_tol_1e-3_stops_after": {"products": stop + 1, "relative_error": errors[stop]},
            "top5_defaults": {
                "products": top5["products"],
                "seconds": top5["seconds"],
                "eigenvalues": top5["eigenvalues"],
                "relative_errors": relative_errors(top5["eigenvalues"], ref),
            },
        }
    best: dict[str, dict[str, Any]] = {}
    for run in summary["runs"]:
        for target in ACCURACY_TARGETS:
            key = f"{run['tool']} k={run['k']} error<{target:g}"
            if run["max_relative_error"] < target and (
                key not in best or run["products"] < best[key]["products"]
            ):
                best[key] = {"products": run["products"], "seconds": run["seconds"], "tol": run["tol"]}
    summary["fewest_products_to_reach"] = best
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="benchmarks/results/peers.json")
    parser.add_argument("--peers-python", default="/tmp/peers/bin/python", type=Path)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds for the HVP/gradient ratio")
    parser.add_argument("--tols", type=float, nargs="+", default=[1e-3, 1e-6], help="eigensolver tolerances")
    parser.add_argument("--pyhessian-top1-max-iter", type=int, default=60)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per peer subprocess")
    parser.add_argument("--worker", choices=PEERS, help=argparse.SUPPRESS)
    parser.add_argument("--state", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker is not None:
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        work = worker_pyhessian if args.worker == "pyhessian" else worker_curvlinops
        Path(args.out).write_text(json.dumps(work(args.state)))
        return 0

    settings = {
        "rounds": args.rounds,
        "tols": list(args.tols),
        "pyhessian_top1_max_iter": args.pyhessian_top1_max_iter,
    }
    report: dict[str, Any] = {
        "benchmark": "bench_peers",
        "model": "small CNN of bench_hvp.py (47,818 parameters), float64, cross-entropy",
        "batch_size": args.batch_size,
        "settings": settings,
        "machine": {**machine_info(), "note": "shared 2-core machine under load: timings indicative"},
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "problem.pt"
        save_problem(path, args.batch_size, settings)
        report["batchrmt"] = run_batchrmt(path)
        for peer in PEERS:
            if not args.peers_python.exists():
                report[peer] = {
                    "status": f"skipped: {args.peers_python} not found (create the peers venv, see "
                    "benchmarks/README.md)"
                }
                print(f"{peer}: skipped, {args.peers_python} not found", file=sys.stderr)
                continue
            report[peer] = run_worker(args.peers_python, peer, path, args.timeout)
            print(f"{peer}: {report[peer]['status']}", file=sys.stderr)
    report["summary"] = summarise(report)
    report["machine"]["load_average_after"] = machine_info()["load_average_1_5_15min"]
    report["timestamp_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: round(r, 2) for k, r in report["summary"]["hvp_over_gradient"].items()}))
    print(json.dumps(report["summary"]["fewest_products_to_reach"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
