"""Cost of curvature products as multiples of one gradient, and Lanczos top-5 products vs scipy eigsh.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_hvp.py [--out benchmarks/results/hvp.json]``. A small CNN
(≈48k parameters, 3×32×32 inputs, batch 128, float32) on the operator's default device (CPU here). Timings
are medians of ``--repeats`` runs, each after a warm-up; on a shared machine they are indicative only.
If a virtual environment with PyHessian and curvlinops exists at /tmp/peers it is reported as present;
peer timings are not run from here (they need their own interpreter) and are skipped otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy
import scipy.sparse.linalg as spla
import torch
from torch import nn

from networks.curvature.ggn import GGNOperator
from networks.curvature.hessian import HessianOperator
from networks.lanczos import top_eigenpairs


def small_cnn(num_classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, num_classes),
    )  # fmt: skip


def median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (also builds caches)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="benchmarks/results/hvp.json")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    model = small_cnn()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch_size, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (args.batch_size,), generator=g)
    loss_fn = nn.CrossEntropyLoss()
    params = list(model.parameters())
    size = sum(p.numel() for p in params)
    v = torch.randn(size, generator=g)

    def gradient() -> object:
        return torch.autograd.grad(loss_fn(model(x), y), params)

    t_grad = median_time(gradient, args.repeats)
    results: dict[str, dict[str, float]] = {"gradient": {"seconds": t_grad, "ratio_to_gradient": 1.0}}
    operators = {
        "hvp_cached": HessianOperator(model, loss_fn, (x, y), method="cached"),
        "hvp_recompute": HessianOperator(model, loss_fn, (x, y), method="recompute"),
        "hvp_torch_func": HessianOperator(model, loss_fn, (x, y), method="func"),
        "ggnvp_cached": GGNOperator(model, loss_fn, (x, y), method="cached"),
        "ggnvp_recompute": GGNOperator(model, loss_fn, (x, y), method="recompute"),
    }
    for name, op in operators.items():
        t = median_time(lambda op=op: op @ v, args.repeats)
        results[name] = {"seconds": t, "ratio_to_gradient": t / t_grad}
    build = HessianOperator(model, loss_fn, (x, y), method="cached")
    start = time.perf_counter()
    build @ v
    elapsed = time.perf_counter() - start
    results["hvp_cached_first_product_with_build"] = {
        "seconds": elapsed,
        "ratio_to_gradient": elapsed / t_grad,
    }

    op = HessianOperator(model, loss_fn, (x, y), method="cached")
    start = time.perf_counter()
    ours = top_eigenpairs(op, 5, "LA", tol=1e-6, seed=0, return_eigenvectors=False)
    t_ours = time.perf_counter() - start
    ref_op = HessianOperator(model, loss_fn, (x, y), method="cached")
    start = time.perf_counter()
    ref = spla.eigsh(ref_op.to_scipy(), k=5, which="LA", tol=1e-6, return_eigenvectors=False)
    ref = np.sort(ref)[::-1]
    t_ref = time.perf_counter() - start
    lanczos_report = {
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
    peers = Path("/tmp/peers/bin/python")
    record = {
        "benchmark": "bench_hvp",
        "model": "small CNN (3 conv 16/32/32 + MLP 512-64-10), ReLU, float32",
        "num_params": size,
        "batch_size": args.batch_size,
        "input_shape": [3, 32, 32],
        "repeats": args.repeats,
        "products": results,
        "lanczos_top5": lanczos_report,
        "peers": {"status": "present, not run here" if peers.exists() else "skipped: /tmp/peers absent"},
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "torch_threads": torch.get_num_threads(),
            "device": str(op.device),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "note": "shared 2-core machine under load from other jobs: timings are contended and indicative",
        },
        "timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: round(r["ratio_to_gradient"], 2) for k, r in results.items()}))
    print(json.dumps({"ours": lanczos_report["ours"]["products"], "eigsh": ref_op.num_products}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
