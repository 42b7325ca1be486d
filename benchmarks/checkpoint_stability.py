"""Is the checkpoint trajectory stable under floating-point noise? Evidence for docs/validation.md §3b.

For each candidate checkpoint protocol (a set of ``checkpoint.*`` overrides of the default config), each
default network (VGG-11 w/16 and WRN-10-1 w/4 on the 128-image Fashion-MNIST pool) and each training seed,
the pipeline's own step 1 (``validation.experiments.checkpoints.make_checkpoints``) trains to both loss
levels; λ₁(H) of the pool Hessian at each checkpoint is then measured as step 2 does (``HessianOperator``
in the run's BN mode, ``top_eigenpairs`` to relative residual 1e-3). Every cell runs twice, in separate
processes: with the CPU's default ATen capability and with ``ATEN_CPU_CAPABILITY=avx2`` (it must be set
before Python starts), always on one intra-op thread. A protocol is stable when λ₁ agrees within ~5 %
between the two and every level is reached within ``max_steps``.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/checkpoint_stability.py            # all cells
    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/checkpoint_stability.py --only gd-sharp --models vgg
    PYTHONPATH=. python benchmarks/checkpoint_stability.py --table                      # table only
    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/checkpoint_stability.py --cost     # f32 vs f64 cost

Results are appended to ``benchmarks/results/checkpoint_stability.jsonl`` (one line per cell; a cell already
there is skipped) and the table is printed as markdown. Seed s > 0 is a replica of the network with its own
initialisation and batch order (the model is named ``<name>-s<s>``, from which both seeds are derived).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "checkpoint_stability.jsonl"
COST = Path(__file__).resolve().parent / "results" / "checkpoint_cost.json"

PROTOCOLS: dict[str, list[str]] = {
    # each states its train_dtype: the default config trains in float64 since this benchmark
    "sgd32-lr0.2": [
        "checkpoint.train_dtype=float32",
        "checkpoint.batch_size=32",
        "checkpoint.lr=0.2",
        "checkpoint.lr_rule=constant",
    ],
    "sgd32-lr0.05": [
        "checkpoint.train_dtype=float32",
        "checkpoint.batch_size=32",
        "checkpoint.lr=0.05",
        "checkpoint.lr_rule=constant",
    ],
    "sgd32-lr0.02": [
        "checkpoint.train_dtype=float32",
        "checkpoint.batch_size=32",
        "checkpoint.lr=0.02",
        "checkpoint.lr_rule=constant",
        "checkpoint.max_steps=2000",
    ],
    "gd-lr0.1": [
        "checkpoint.train_dtype=float32",
        "checkpoint.batch_size=0",
        "checkpoint.lr=0.1",
        "checkpoint.lr_rule=constant",
    ],
    "gd-lr0.05": [
        "checkpoint.train_dtype=float32",
        "checkpoint.batch_size=0",
        "checkpoint.lr=0.05",
        "checkpoint.lr_rule=constant",
        "checkpoint.max_steps=1200",
    ],
    "gd-sharp": [
        "checkpoint.train_dtype=float32",
        "checkpoint.batch_size=0",
        "checkpoint.lr=0.2",
        "checkpoint.lr_rule=sharpness",
        "checkpoint.edge_fraction=0.5",
    ],
    "gd-sharp-e5": [
        "checkpoint.train_dtype=float32",
        "checkpoint.batch_size=0",
        "checkpoint.lr=0.2",
        "checkpoint.lr_rule=sharpness",
        "checkpoint.edge_fraction=0.5",
        "checkpoint.eval_every=5",
        "checkpoint.sharpness_products=8",
    ],
    "sgd32-lr0.2-f64": [
        "checkpoint.batch_size=32",
        "checkpoint.lr=0.2",
        "checkpoint.lr_rule=constant",
        "checkpoint.train_dtype=float64",
    ],
    "sgd32-lr0.05-f64": [
        "checkpoint.batch_size=32",
        "checkpoint.lr=0.05",
        "checkpoint.lr_rule=constant",
        "checkpoint.train_dtype=float64",
    ],
    "sgd32-sharp": [
        "checkpoint.train_dtype=float32",
        "checkpoint.batch_size=32",
        "checkpoint.lr=0.2",
        "checkpoint.lr_rule=sharpness",
        "checkpoint.edge_fraction=0.5",
    ],
}
VARIANTS: dict[str, dict[str, str]] = {
    "default": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "threads2": {"OMP_NUM_THREADS": "2"},
}
"""How a cell's process differs from the default one: the ATen CPU capability, or two intra-op threads."""
SEEDS = (0, 1)
MODELS = ("vgg", "wrn")


def run_cell(protocol: str, model: str, seed: int) -> dict[str, Any]:
    """Step 1 under ``protocol`` for one network and seed, then λ₁(H) at each checkpoint (this process)."""
    import dataclasses

    import torch

    from networks.curvature.hessian import HessianOperator
    from networks.lanczos import top_eigenpairs
    from validation.config import load_config
    from validation.experiments.checkpoints import (
        load_checkpoint,
        load_pool,
        loss_function,
        make_checkpoints,
    )
    from validation.store import ResultStore

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    overrides = [*PROTOCOLS[protocol], "checkpoint.on_missed=flag"]
    config = load_config("default", overrides)
    base = next(m for m in config.models if m.name == model)
    model_cfg = dataclasses.replace(base, name=model if seed == 0 else f"{model}-s{seed}")
    pool = load_pool(config)
    out: dict[str, Any] = {"protocol": protocol, "overrides": overrides, "model": model, "seed": seed}
    with tempfile.TemporaryDirectory() as tmp:
        store = ResultStore(tmp)
        t0 = time.perf_counter()
        records = make_checkpoints(config, model_cfg, pool, store)
        out["train_seconds"] = time.perf_counter() - t0
        levels = []
        for rec in records:
            net = load_checkpoint(store, rec, config, model_cfg, pool)
            hess = HessianOperator(net, loss_function(), (pool.x, pool.y), bn_mode=config.bn_mode)
            top = top_eigenpairs(hess, k=1, which="LA", tol=1e-3, max_products=120, seed=12345,
                                 return_eigenvectors=False)
            levels.append(
                {
                    "ckpt": rec["ckpt"],
                    "steps": rec["steps"],
                    "reached": rec["reached"],
                    "diverged": rec["diverged"],
                    "loss": rec["loss"],
                    "target": rec["target_loss"],
                    "lambda1": float(top.eigenvalues[0]),
                    "lambda1_converged": bool(top.converged[0]),
                    "last_lr": rec["train_last_lr"],
                    "last_sharpness": rec["train_last_sharpness"],
                    "train_dtype": rec["train_dtype"],
                }
            )
    out["levels"] = levels
    out["capability"] = torch.backends.cpu.get_cpu_capability()
    out["env_capability"] = os.environ.get("ATEN_CPU_CAPABILITY", "default")
    out["threads"] = torch.get_num_threads()
    return out


def _done() -> set[tuple[str, str, int, str]]:
    if not RESULTS.exists():
        return set()
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
    return {(r["protocol"], r["model"], r["seed"], _variant(r)) for r in rows}


def _variant(row: dict[str, Any]) -> str:
    return str(row.get("variant", row["env_capability"]))


def drive(protocols: list[str], models: list[str], seeds: list[int], variants: list[str]) -> None:
    """Every missing cell as its own process (one at a time), once per variant (default: the CPU's default
    capability and ATEN_CPU_CAPABILITY=avx2)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    done = _done()
    for protocol in protocols:
        for model in models:
            for seed in seeds:
                for cap in variants:
                    if (protocol, model, seed, cap) in done:
                        continue
                    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
                    env.pop("ATEN_CPU_CAPABILITY", None)
                    env.update(VARIANTS[cap])
                    cmd = [sys.executable, __file__, "--cell", protocol, model, str(seed)]
                    line = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
                    row = {**json.loads(line.strip().splitlines()[-1]), "variant": cap}
                    with RESULTS.open("a", encoding="utf-8") as fh:
                        fh.write(json.dumps(row) + "\n")
                    lams = " ".join(f"{lv['lambda1']:.3g}@{lv['steps']}" for lv in row["levels"])
                    secs = row["train_seconds"]
                    print(f"{protocol} {model} s{seed} {cap}: {lams} ({secs:.1f} s)", flush=True)


def table(other: str = "avx2") -> str:
    """The markdown table: protocol × network × seed → λ₁ at each level (default / ``other`` variant) and
    their relative difference, the largest relative difference of the checkpoint losses, steps and training
    seconds."""
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
    by = {(r["protocol"], r["model"], r["seed"], _variant(r)): r for r in rows}
    name = {"avx2": "AVX2", "threads2": "2 threads"}.get(other, other)
    out = [
        f"| protocol | net | seed | λ₁ ckpt 0 (default / {name}) | rel. diff | "
        f"λ₁ ckpt 1 (default / {name}) | rel. diff | loss rel. diff | steps (default / {name}) | train s | "
        "reached |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    keys = sorted({k[:3] for k in by}, key=lambda k: (list(PROTOCOLS).index(k[0]), k[1], k[2]))
    for key in keys:
        a, b = by.get((*key, "default")), by.get((*key, other))
        if a is None or b is None:
            continue
        cells = []
        pairs = list(zip(a["levels"], b["levels"], strict=True))
        for la, lb in pairs:
            x, y = la["lambda1"], lb["lambda1"]
            cells += [f"{x:.3g} / {y:.3g}", f"{abs(x - y) / max(abs(x), abs(y)):.1e}"]
        loss_diff = max(abs(la["loss"] - lb["loss"]) / abs(la["loss"]) for la, lb in pairs)
        steps = ", ".join(f"{x['steps']}/{y['steps']}" for x, y in pairs)
        reached = all(lv["reached"] for lv in a["levels"] + b["levels"])
        secs = f"{a['train_seconds']:.0f} / {b['train_seconds']:.0f}"
        out.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {' | '.join(cells)} | {loss_diff:.1e} | {steps} | {secs} | "
            f"{'yes' if reached else 'NO'} |"
        )
    return "\n".join(out)


def cost(rounds: int = 2) -> dict[str, Any]:
    """Seconds of the default run's checkpoint step (``make_checkpoints``, both networks) trained in float32
    vs float64, interleaved in this process so that both see the same machine load; written to ``COST``."""
    import torch

    from validation.config import load_config
    from validation.experiments.checkpoints import load_pool, make_checkpoints
    from validation.store import ResultStore

    torch.set_num_threads(1)
    seconds: dict[str, list[float]] = {}
    for _ in range(rounds):
        for dtype in ("float32", "float64"):
            config = load_config("default", [f"checkpoint.train_dtype={dtype}", "checkpoint.on_missed=flag"])
            pool = load_pool(config)
            with tempfile.TemporaryDirectory() as tmp:
                for model in config.models:
                    t0 = time.perf_counter()
                    make_checkpoints(config, model, pool, ResultStore(tmp))
                    seconds.setdefault(f"{model.name} {dtype}", []).append(time.perf_counter() - t0)
    out = {
        "seconds": seconds,
        "load_average": os.getloadavg(),
        "capability": torch.backends.cpu.get_cpu_capability(),
    }
    COST.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cell", nargs=3, metavar=("PROTOCOL", "MODEL", "SEED"))
    parser.add_argument("--only", nargs="*", default=list(PROTOCOLS), choices=list(PROTOCOLS))
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--seeds", nargs="*", type=int, default=list(SEEDS))
    parser.add_argument("--variants", nargs="*", default=["default", "avx2"], choices=list(VARIANTS))
    parser.add_argument("--table", action="store_true", help="print the table of the stored results")
    parser.add_argument("--cost", action="store_true", help="time the default checkpoint step, f32 vs f64")
    args = parser.parse_args()
    if args.cost:
        print(json.dumps(cost(), indent=1))
        return
    if args.cell:
        protocol, model, seed = args.cell
        print(json.dumps(run_cell(protocol, model, int(seed))))
        return
    if not args.table:
        drive(args.only, args.models, args.seeds, args.variants)
    print(table())
    lines = [line for line in RESULTS.read_text().splitlines() if line.strip()]
    if any(_variant(json.loads(line)) == "threads2" for line in lines):
        print()
        print(table("threads2"))


if __name__ == "__main__":
    main()
