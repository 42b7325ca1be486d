"""The peers' half of ``run_all.py``: runs inside the peers' virtual environment (``install_peers.sh``).

    <peers-venv>/bin/python benchmarks/peer_worker.py TASK --problem FILE [--problem FILE ...] \
        --settings JSON --out FILE

TASK is one of ``products``, ``eigen``, ``slq``, ``bookkeeping``; each problem file is written by
``_common.save_problem`` in batchrmt's environment, so every tool sees the same weights and batch. The answer
is raw measurements (eigenvalues, products, seconds, densities) in JSON; errors against the exact reference
are computed by ``run_all.py``. A peer that fails or is missing is reported with the exception, not skipped
silently. batchrmt's own curvature and Lanczos code is never imported here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse.linalg as spla
import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    bare_double_backward,
    gradient_fn,
    interleaved_ratios,
    load_problem,
    machine_info,
    set_single_thread,
    split_like,
)

PEER_DISTRIBUTIONS = {
    "pyhessian": "PyHessian",
    "curvlinops": "curvlinops-for-pytorch",
    "eigenthings": "hessian-eigenthings",
}


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for key, dist in PEER_DISTRIBUTIONS.items():
        try:
            out[key] = version(dist)
        except PackageNotFoundError:
            out[key] = None
    return out


def failure(exc: BaseException) -> dict[str, Any]:
    return {
        "status": "failed",
        "error": f"{type(exc).__name__}: {exc}",
        "traceback": traceback.format_exc()[-1500:],
    }


# --- operators of each peer ------------------------------------------------------------------------------
def pyhessian_hvp(model: nn.Module, x: Tensor, y: Tensor, v: Tensor) -> Callable[[], object]:
    import importlib

    ph: Any = importlib.import_module("pyhessian.hessian")
    comp = ph.hessian(model, nn.CrossEntropyLoss(), data=(x, y), cuda=False)
    vs = split_like(v, comp.params)
    return lambda: ph.hessian_vector_product(comp.gradsH, comp.params, vs)


def curvlinops_op(kind: str, model: nn.Module, x: Tensor, y: Tensor) -> Any:
    import curvlinops

    cls = curvlinops.HessianLinearOperator if kind == "hessian" else curvlinops.GGNLinearOperator
    params = [p for p in model.parameters() if p.requires_grad]
    return cls(model, nn.CrossEntropyLoss(), params, [(x, y)], progressbar=False)


def eigenthings_op(kind: str, model: nn.Module, x: Tensor, y: Tensor) -> Any:
    import hessian_eigenthings as he

    criterion = nn.CrossEntropyLoss()
    if kind == "hessian":
        return he.HessianOperator(model, [(x, y)], he.supervised_loss(criterion))
    return he.GGNOperator(model, [(x, y)], he.supervised_forward, he.supervised_loss_of_output(criterion))


# --- tasks -----------------------------------------------------------------------------------------------
def product_makers(
    model: nn.Module, x: Tensor, y: Tensor, v: Tensor
) -> dict[str, Callable[[], Callable[[], object]]]:
    """Constructors of each tool's product v -> A v (construction may fail; it is then recorded)."""

    def curvlinops_fn(kind: str) -> Callable[[], object]:
        op = curvlinops_op(kind, model, x, y)
        return lambda: op @ v

    def eigenthings_fn(kind: str) -> Callable[[], object]:
        op = eigenthings_op(kind, model, x, y)
        return lambda: op.matvec(v)

    return {
        "bare_double_backward": lambda: bare_double_backward(model, x, y, v),
        "pyhessian_hessian": lambda: pyhessian_hvp(model, x, y, v),
        "curvlinops_hessian": lambda: curvlinops_fn("hessian"),
        "curvlinops_ggn": lambda: curvlinops_fn("ggn"),
        "eigenthings_hessian": lambda: eigenthings_fn("hessian"),
        "eigenthings_ggn": lambda: eigenthings_fn("ggn"),
    }


def task_products(paths: list[Path], settings: dict[str, Any]) -> dict[str, Any]:
    """Per problem: gradient, bare double backward and every peer's Hessian / GGN product, interleaved."""
    out: dict[str, Any] = {}
    for path in paths:
        model, x, y, v, extra = load_problem(path)
        makers = product_makers(model, x, y, v)
        candidates: dict[str, Callable[[], object]] = {}
        failed: dict[str, Any] = {}
        for name, make in makers.items():
            try:
                fn = make()
                fn()
                candidates[name] = fn
            except Exception as exc:  # a peer that cannot run this network is recorded, not fatal
                failed[name] = failure(exc)
        timing = interleaved_ratios(gradient_fn(model, x, y), candidates, settings["rounds"])
        out[extra["name"]] = {"timing": timing, "failed": failed}
    return out


def counted_eigsh(
    matvec: Callable[[np.ndarray], np.ndarray], size: int, k: int, tol: float
) -> dict[str, Any]:
    """scipy eigsh (which="LA", v0 = standard normal from numpy seed 0, as run_all's eigsh)."""
    count = [0]

    def mv(z: np.ndarray) -> np.ndarray:
        count[0] += 1
        return matvec(np.asarray(z, dtype=np.float64).reshape(-1))

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


def _pyhessian_traced(model: nn.Module, x: Tensor, y: Tensor) -> tuple[Any, Any, list[tuple[float, float]]]:
    """A PyHessian ``hessian`` whose HVP appends (seconds since the trace was cleared, vᵀHv) per product."""
    import importlib

    ph: Any = importlib.import_module("pyhessian.hessian")
    comp = ph.hessian(model, nn.CrossEntropyLoss(), data=(x, y), cuda=False)
    bare = getattr(ph, "_bare_hvp", ph.hessian_vector_product)
    ph._bare_hvp = bare
    trace: list[tuple[float, float]] = []
    clock = [time.perf_counter()]

    def counting_hvp(grads: Any, params: Any, vec: list[Tensor]) -> Any:
        hv = bare(grads, params, vec)
        rq = sum(float((a * b).sum()) for a, b in zip(hv, vec, strict=True))
        trace.append((time.perf_counter() - clock[0], rq))
        return hv

    ph.hessian_vector_product = counting_hvp

    def reset() -> None:
        trace.clear()
        clock[0] = time.perf_counter()
        torch.manual_seed(0)

    return comp, reset, trace


def task_eigen(paths: list[Path], settings: dict[str, Any]) -> dict[str, Any]:
    """Top-1 / top-k eigenvalues (float64) by curvlinops + eigsh, PyHessian and hessian-eigenthings."""
    model, x, y, _, _ = load_problem(paths[0])
    torch.set_default_dtype(torch.float64)  # PyHessian draws its start vectors with the default dtype
    size = sum(p.numel() for p in model.parameters())
    out: dict[str, Any] = {}
    try:
        op = curvlinops_op("hessian", model, x, y)
        runs = [
            counted_eigsh(lambda z: (op @ torch.from_numpy(z)).numpy(), size, k, tol)
            for k in settings["ks"]
            for tol in settings["tols"]
        ]
        out["curvlinops_eigsh"] = {"status": "ok", "runs": runs}
    except Exception as exc:
        out["curvlinops_eigsh"] = failure(exc)
    try:
        comp, reset, trace = _pyhessian_traced(model, x, y)
        reset()
        comp.eigenvalues(maxIter=settings["pyhessian_top1_max_iter"], tol=1e-14, top_n=1)
        top1_trace = list(trace)
        topk: dict[str, Any] = {}
        for label, kwargs in settings["pyhessian_topk_settings"].items():
            reset()
            values, _ = comp.eigenvalues(top_n=settings["ks"][-1], **kwargs)
            topk[label] = {
                "kwargs": kwargs,
                "products": len(trace),
                "seconds": trace[-1][0] if trace else 0.0,
                "eigenvalues": [float(e) for e in values],
            }
        out["pyhessian_power"] = {"status": "ok", "top1_trace": top1_trace, "topk": topk}
    except Exception as exc:
        out["pyhessian_power"] = failure(exc)
    try:
        import hessian_eigenthings as he

        op_he = eigenthings_op("hessian", model, x, y)
        runs = []
        for k in settings["ks"]:
            for steps in settings["eigenthings_steps"]:
                if steps < k:
                    continue
                start = time.perf_counter()
                res = he.lanczos(op_he, k=k, max_iter=steps, which="LA", seed=0)
                runs.append(
                    {
                        "k": k,
                        "max_iter": steps,
                        "products": int(res.iterations),
                        "seconds": time.perf_counter() - start,
                        "eigenvalues": res.eigenvalues.tolist(),
                    }
                )
        start = time.perf_counter()
        res = he.lanczos(op_he, k=settings["ks"][-1], which="LA", seed=0)
        default = {
            "k": settings["ks"][-1],
            "max_iter": "default (2k)",
            "products": int(res.iterations),
            "seconds": time.perf_counter() - start,
            "eigenvalues": res.eigenvalues.tolist(),
        }
        out["eigenthings_lanczos"] = {"status": "ok", "runs": runs, "default_topk": default}
    except Exception as exc:
        out["eigenthings_lanczos"] = failure(exc)
    return out


def task_slq(paths: list[Path], settings: dict[str, Any]) -> dict[str, Any]:
    """SLQ densities per budget (probes × steps): curvlinops (Papyan 2020), hessian-eigenthings, PyHessian."""
    model, x, y, _, _ = load_problem(paths[0])
    torch.set_default_dtype(torch.float64)
    out: dict[str, Any] = {}
    budgets = [tuple(b) for b in settings["budgets"]]
    try:
        from curvlinops import lanczos_approximate_spectrum

        op = curvlinops_op("hessian", model, x, y)
        runs = []
        for probes, steps in budgets:
            torch.manual_seed(0)
            start = time.perf_counter()
            grid, density = lanczos_approximate_spectrum(op, ncv=steps, num_repeats=probes, num_points=2048)
            runs.append(
                {
                    "probes": probes,
                    "steps": steps,
                    "seconds": time.perf_counter() - start,
                    "grid": grid.tolist(),
                    "density": density.tolist(),
                }
            )
        out["curvlinops"] = {
            "status": "ok",
            "runs": runs,
            "note": "lanczos_approximate_spectrum (Papyan 2020 alg. 2, no reorthogonalisation); "
            "its time includes the eigsh estimate of the spectral boundaries",
        }
    except Exception as exc:
        out["curvlinops"] = failure(exc)
    try:
        import hessian_eigenthings as he

        op_he = eigenthings_op("hessian", model, x, y)
        runs = []
        for probes, steps in budgets:
            start = time.perf_counter()
            res = he.spectral_density(
                op_he, num_runs=probes, lanczos_steps=steps, num_grid_points=4096, seed=0
            )
            runs.append(
                {
                    "probes": probes,
                    "steps": steps,
                    "seconds": time.perf_counter() - start,
                    "grid": res.grid.tolist(),
                    "density": res.density.tolist(),
                    "nodes": res.raw_eigenvalues.tolist(),
                    "weights": res.raw_weights.tolist(),
                }
            )
        out["eigenthings"] = {"status": "ok", "runs": runs}
    except Exception as exc:
        out["eigenthings"] = failure(exc)
    try:
        import importlib

        ph: Any = importlib.import_module("pyhessian.hessian")
        comp = ph.hessian(model, nn.CrossEntropyLoss(), data=(x, y), cuda=False)
        torch.manual_seed(0)
        comp.density(iter=budgets[0][1], n_v=budgets[0][0])
        out["pyhessian"] = {"status": "ok (density() ran)"}
    except Exception as exc:
        out["pyhessian"] = failure(exc)
        out["pyhessian"]["note"] = "PyHessian 0.1 density() on this torch, recorded and not patched"
    return out


def task_bookkeeping(paths: list[Path], settings: dict[str, Any]) -> dict[str, Any]:
    """Seconds per Lanczos step outside the products: hessian-eigenthings' lanczos and scipy eigsh on a
    diagonal operator of the size given in settings (the spectrum is shared with run_all.py)."""
    diag = torch.load(paths[0], weights_only=True)["diagonal"]
    size, k = diag.numel(), settings["k"]
    out: dict[str, Any] = {}
    try:
        import hessian_eigenthings as he

        spent = [0.0]

        def mv(v: Tensor) -> Tensor:
            start = time.perf_counter()
            w = diag * v
            spent[0] += time.perf_counter() - start
            return w

        op = he.LambdaOperator(mv, size, dtype=torch.float64)
        steps = settings["eigenthings_steps"]
        start = time.perf_counter()
        res = he.lanczos(op, k=k, max_iter=steps, which="LA", seed=0)
        total = time.perf_counter() - start
        out["eigenthings_lanczos"] = {
            "status": "ok",
            "k": k,
            "max_iter": steps,
            "products": int(res.iterations),
            "seconds": total,
            "seconds_in_products": spent[0],
            "reorthogonalize": "full (its default for max_iter <= 50)",
            "bookkeeping_seconds_per_step": (total - spent[0]) / int(res.iterations),
            "eigenvalues": res.eigenvalues.tolist(),
        }
    except Exception as exc:
        out["eigenthings_lanczos"] = failure(exc)
    d = diag.numpy()
    spent_np = [0.0]

    def mv_np(z: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        w = d * z.reshape(-1)
        spent_np[0] += time.perf_counter() - start
        return w

    run = counted_eigsh(mv_np, size, k, settings["tol"])
    run["seconds_in_products"] = spent_np[0]
    run["bookkeeping_seconds_per_step"] = (run["seconds"] - spent_np[0]) / run["products"]
    out["scipy_eigsh_same_process"] = {"status": "ok", **run}
    return out


TASKS = {"products": task_products, "eigen": task_eigen, "slq": task_slq, "bookkeeping": task_bookkeeping}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("task", choices=sorted(TASKS))
    parser.add_argument("--problem", type=Path, action="append", required=True)
    parser.add_argument("--settings", required=True, help="JSON object")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    set_single_thread()
    before = machine_info()
    result = TASKS[args.task](args.problem, json.loads(args.settings))
    record = {
        "task": args.task,
        "versions": versions(),
        "result": result,
        "machine": {**before, "load_average_after": machine_info()["load_average_1_5_15min"]},
    }
    args.out.write_text(json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
