"""Cost of the per-sample curvature statistics (``networks.curvature.per_sample``) on the default run's VGG.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_per_sample.py [--samples 512] [--out
benchmarks/results/per_sample.json]``.

The network is the default config's ``vgg11`` at width 1/16 (Fashion-MNIST shape 1×28×28, 10 classes,
float32, freshly initialised with a fixed seed); the samples are Fashion-MNIST training images when the data
set is installed, otherwise seeded N(0, 1) images of the same shape (stated in the output: the cost does not
depend on the pixel values). Measured: wall time of the Hessian part (batched Lanczos, ``--steps`` steps,
``--probes`` Hutchinson probes, Rayleigh quotients on ``--k`` orthonormal vectors) and of the exact GGN part,
per sample and in all, with the products used.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info  # noqa: E402  (one implementation of the machine record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--probes", type=int, default=4)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/per_sample.json"))
    args = parser.parse_args()

    from networks.curvature.per_sample import per_sample_curvature
    from networks.models import build_model

    torch.manual_seed(0)
    model = build_model("vgg11", num_classes=10, in_channels=1, width=0.0625, dropout=0.0)
    source = "seeded N(0,1) images 1x28x28 (Fashion-MNIST not installed)"
    try:
        from networks.data import load_dataset

        data = load_dataset("fashion-mnist", train=True)
        x, y = data.x[: args.samples], data.y[: args.samples]
        source = "Fashion-MNIST training images 0..n-1"
    except Exception:  # noqa: BLE001 - any missing-data error falls back to synthetic images
        g = torch.Generator().manual_seed(1)
        x = torch.randn(args.samples, 1, 28, 28, generator=g)
        y = torch.randint(0, 10, (args.samples,), generator=g)
    p = sum(t.numel() for t in model.parameters())
    u = np.linalg.qr(np.random.default_rng(0).standard_normal((p, args.k)))[0]
    stats = per_sample_curvature(
        model,
        torch.nn.CrossEntropyLoss(),
        x,
        y,
        hessian_vectors=u,
        ggn_vectors=u,
        lanczos_steps=args.steps,
        trace_probes=args.probes,
        chunk_size=args.chunk,
    )
    s = stats.summary()
    total = s["seconds_hessian"] + s["seconds_ggn"]
    result = {
        "benchmark": "bench_per_sample",
        "model": f"vgg11 width 1/16, {p} parameters, float32, cross-entropy, fresh init (seed 0)",
        "data": source,
        "settings": vars(args) | {"out": str(args.out)},
        "seconds_total": total,
        "seconds_per_sample": total / args.samples,
        **s,
        "hessian_top_residual_median": float(np.median(stats.hessian.top_residual)),
        "machine": machine_info(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))


if __name__ == "__main__":
    main()
