"""Cost of curvature products as multiples of one gradient, and Lanczos top-5 products vs scipy eigsh.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_hvp.py [--out benchmarks/results/hvp.json]``. A small CNN
(≈48k parameters, 3×32×32 inputs, batch 128, float32) on the operator's default device (CPU here).

Timing is interleaved: every round times one gradient (forward + backward) and then each product once, in an
order rotated from round to round, and the ratio product/gradient is taken within the round. The reported
ratio is the median over rounds (with its quartiles), so load from other processes that drifts on a time
scale of seconds cancels; timing the gradient and the products in separate blocks does not (an earlier
version of this script reported a cached HVP at 2.8× a gradient that way; interleaved it is ≈1.3×).
``autograd_double_backward`` is the bare PyHessian-style reference (``torch.autograd.grad`` on a kept ∇L
graph, no operator around it): ``hvp_cached`` over it is the operator's own per-product overhead.
Peers (PyHessian, curvlinops) run from ``benchmarks/bench_peers.py`` in their own environment.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy
import scipy.sparse.linalg as spla
import torch
from torch import Tensor, nn

# networks.* is imported inside the functions that need it: bench_peers' workers run in another virtual
# environment without batchrmt and import small_cnn / machine_info from this file.


def small_cnn(num_classes: int = 10) -> nn.Module:
    """The benchmark network: 3 conv(3×3)+ReLU+maxpool blocks (16/32/32 channels), MLP 512-64-C (47,818
    parameters for C = 10); weights from ``torch.manual_seed(0)``."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, num_classes),
    )  # fmt: skip


def machine_info() -> dict[str, Any]:
    """Platform, core count, thread settings, library versions and the current load average."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "load_average_1_5_15min": [round(x, 2) for x in os.getloadavg()],
    }


def interleaved_ratios(
    reference: Callable[[], object], candidates: dict[str, Callable[[], object]], rounds: int
) -> dict[str, dict[str, Any]]:
    """Per round: time ``reference`` once, then every candidate once (order rotated by round); return, per
    name, the median seconds and the median / quartiles of the within-round ratio to the reference."""
    reference()
    for fn in candidates.values():
        fn()  # warm-up (also builds cached graphs)
    names = list(candidates)
    seconds: dict[str, list[float]] = {name: [] for name in ["gradient", *names]}
    for r in range(rounds):
        start = time.perf_counter()
        reference()
        seconds["gradient"].append(time.perf_counter() - start)
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            candidates[name]()
            seconds[name].append(time.perf_counter() - start)
    out: dict[str, dict[str, Any]] = {}
    for name, times in seconds.items():
        ratios = [t / g for t, g in zip(times, seconds["gradient"], strict=True)]
        q1, _, q3 = statistics.quantiles(ratios, n=4)
        out[name] = {
            "seconds_median": statistics.median(times),
            "ratio_to_gradient": statistics.median(ratios),
            "ratio_quartiles": [q1, q3],
        }
    return out


def product_costs(
    model: nn.Module, x: Tensor, y: Tensor, v: Tensor, rounds: int
) -> dict[str, dict[str, Any]]:
    from networks.curvature._batches import split_like
    from networks.curvature.ggn import GGNOperator
    from networks.curvature.hessian import HessianOperator

    loss_fn = nn.CrossEntropyLoss()
    params = list(model.parameters())
    grads = torch.autograd.grad(loss_fn(model(x), y), params, create_graph=True)
    vs = split_like(v, params)

    def gradient() -> object:
        return torch.autograd.grad(loss_fn(model(x), y), params)

    def bare_double_backward() -> object:
        return torch.autograd.grad(grads, params, grad_outputs=vs, retain_graph=True)

    operators = {
        "hvp_cached": HessianOperator(model, loss_fn, (x, y), method="cached"),
        "hvp_recompute": HessianOperator(model, loss_fn, (x, y), method="recompute"),
        "hvp_torch_func": HessianOperator(model, loss_fn, (x, y), method="func"),
        "ggnvp_cached": GGNOperator(model, loss_fn, (x, y), method="cached"),
        "ggnvp_recompute": GGNOperator(model, loss_fn, (x, y), method="recompute"),
    }
    candidates: dict[str, Callable[[], object]] = {"autograd_double_backward": bare_double_backward}
    for name, op in operators.items():
        candidates[name] = functools.partial(op.matvec, v)

    def first_product() -> object:  # a fresh operator each time: build + one product
        return HessianOperator(model, loss_fn, (x, y), method="cached") @ v

    candidates["hvp_cached_first_product_with_build"] = first_product
    results = interleaved_ratios(gradient, candidates, rounds)
    results["hvp_cached"]["ratio_to_autograd_double_backward"] = (
        results["hvp_cached"]["seconds_median"] / results["autograd_double_backward"]["seconds_median"]
    )
    return results


def lanczos_vs_eigsh(model: nn.Module, x: Tensor, y: Tensor) -> dict[str, Any]:
    from networks.curvature.hessian import HessianOperator
    from networks.lanczos import top_eigenpairs

    loss_fn = nn.CrossEntropyLoss()
    op = HessianOperator(model, loss_fn, (x, y), method="cached")
    start = time.perf_counter()
    ours = top_eigenpairs(op, 5, "LA", tol=1e-6, seed=0, return_eigenvectors=False)
    t_ours = time.perf_counter() - start
    ref_op = HessianOperator(model, loss_fn, (x, y), method="cached")
    start = time.perf_counter()
    ref = np.sort(spla.eigsh(ref_op.to_scipy(), k=5, which="LA", tol=1e-6, return_eigenvectors=False))[::-1]
    t_ref = time.perf_counter() - start
    return {
        "k": 5,
        "tol": 1e-6,
        "ours": {
            "products": ours.num_products,
            "seconds": t_ours,
            "eigenvalues": ours.eigenvalues.tolist(),
            "converged": ours.converged.tolist(),
        },
        "scipy_eigsh": {"products": ref_op.num_products, "seconds": t_ref, "eigenvalues": ref.tolist()},
        "max_relative_difference": float(np.max(np.abs(ours.eigenvalues - ref) / np.abs(ref))),
    }


def main() -> int:
    import networks

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="benchmarks/results/hvp.json")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=15, help="interleaved timing rounds")
    parser.add_argument("--skip-lanczos", action="store_true", help="time the products only")
    args = parser.parse_args()

    model = small_cnn()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch_size, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (args.batch_size,), generator=g)
    size = sum(p.numel() for p in model.parameters())
    v = torch.randn(size, generator=g)

    load_before = machine_info()["load_average_1_5_15min"]
    products = product_costs(model, x, y, v, args.rounds)
    record: dict[str, Any] = {
        "benchmark": "bench_hvp",
        "model": "small CNN (3 conv 16/32/32 + MLP 512-64-10), ReLU, float32",
        "num_params": size,
        "batch_size": args.batch_size,
        "input_shape": [3, 32, 32],
        "timing": f"{args.rounds} interleaved rounds; ratios are medians of within-round ratios",
        "products": products,
    }
    if not args.skip_lanczos:
        record["lanczos_top5"] = lanczos_vs_eigsh(model, x, y)
    record["peers"] = "see benchmarks/results/peers.json (benchmarks/bench_peers.py)"
    record["machine"] = {
        **machine_info(),
        "load_average_before": load_before,
        "device": "cpu",
        "networks_source": str(Path(networks.__file__).parent),
        "note": "shared 2-core machine under load from other jobs: timings are contended and indicative",
    }
    record["timestamp_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: round(r["ratio_to_gradient"], 2) for k, r in products.items()}))
    if "lanczos_top5" in record:
        lz = record["lanczos_top5"]
        print(json.dumps({"ours": lz["ours"]["products"], "eigsh": lz["scipy_eigsh"]["products"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
