"""Shared by ``run_all.py`` (batchrmt's environment) and ``peer_worker.py`` (the peers' environment).

Only torch / numpy / scipy and ``networks.models`` (plain ``nn.Module`` definitions) are imported here, so
the peers' interpreter can use this file without batchrmt's curvature or Lanczos code.

- :func:`machine_info`: the machine and library facts stored with every result.
- :func:`interleaved_ratios`: product ÷ gradient timing in interleaved rounds (median of within-round ratios);
  :func:`within_round_ratio`: the same between two candidates of one run.
- :func:`build_problem` / :func:`save_problem` / :func:`load_problem`: the benchmark networks and batches,
  identical (same state dict, same tensors) in both environments.
- :func:`w1_over_width`: Wasserstein-1 distance between an estimated spectral density and an exact spectrum.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy
import torch
from torch import Tensor, nn

# name -> (description, input shape)
PROBLEMS: dict[str, tuple[str, tuple[int, int, int]]] = {
    "vgg11_w16": ("VGG-11 at width 1/16 (networks.models 'vgg11', dropout 0), 1×28×28 inputs", (1, 28, 28)),
    "cnn_4.9k": (
        "small CNN: 3 conv(3×3) 8/16/24 + ReLU, 2 max-pools, global average pool, linear",
        (1, 16, 16),
    ),
    "mlp_109k": ("MLP 784-128-64-10, ReLU (networks.models 'mlp-128-64')", (1, 28, 28)),
}


def small_cnn(num_classes: int = 10) -> nn.Module:
    """The ≈4.9k-parameter CNN (4,978 parameters for C = 10) whose Hessian is small enough for dense eigh."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 24, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(24, num_classes),
    )  # fmt: skip


def build_model(name: str) -> nn.Module:
    """A freshly initialised benchmark network ``name`` (a key of :data:`PROBLEMS`), seed 0."""
    from networks.models import build_model as build

    torch.manual_seed(0)
    if name == "vgg11_w16":
        return build("vgg11", 10, 1, width=1 / 16, dropout=0.0)
    if name == "cnn_4.9k":
        return small_cnn()
    if name == "mlp_109k":
        return build("mlp-128-64", 10, 1, image_size=28)
    raise ValueError(f"problem must be one of {sorted(PROBLEMS)}, got {name!r}")


def build_problem(
    name: str, batch_size: int, dtype: torch.dtype, seed: int = 1
) -> tuple[nn.Module, Tensor, Tensor, Tensor]:
    """(model, x, y, v): network ``name`` in ``dtype``, a Gaussian batch with uniform labels, a Gaussian v."""
    model = build_model(name).to(dtype)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, *PROBLEMS[name][1], generator=g, dtype=torch.float64).to(dtype)
    y = torch.randint(0, 10, (batch_size,), generator=g)
    size = sum(p.numel() for p in model.parameters())
    v = torch.randn(size, generator=g, dtype=torch.float64).to(dtype)
    return model, x, y, v


def save_problem(path: Path, name: str, batch_size: int, dtype: torch.dtype, **extra: Any) -> None:
    model, x, y, v = build_problem(name, batch_size, dtype)
    torch.save({"name": name, "model": model.state_dict(), "x": x, "y": y, "v": v, **extra}, path)


def load_problem(path: Path) -> tuple[nn.Module, Tensor, Tensor, Tensor, dict[str, Any]]:
    """The model (weights as saved), batch, vector and the extra entries of a :func:`save_problem` file."""
    state = torch.load(path, weights_only=True)
    model = build_model(state["name"]).to(state["x"].dtype)
    model.load_state_dict(state["model"])
    extra = {k: val for k, val in state.items() if k not in ("model", "x", "y", "v")}
    return model, state["x"], state["y"], state["v"], extra


def split_like(v: Tensor, params: Sequence[Tensor]) -> list[Tensor]:
    """A flat vector as a list shaped like ``params`` (``parameters_to_vector`` order)."""
    return [t.view_as(p) for t, p in zip(v.split([p.numel() for p in params]), params, strict=True)]


# --- machine facts ---------------------------------------------------------------------------------------
def _cpu_model_and_flags() -> tuple[str, list[str]]:
    name: str = platform.processor() or "unknown"
    flags: list[str] = []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                have = set(line.split(":", 1)[1].split())
                flags = [f for f in ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in have]
    except OSError:
        pass
    return name, flags


def machine_info() -> dict[str, Any]:
    """Platform, CPU model and vector extensions, torch's CPU capability, core count, thread settings,
    library versions and the current load average."""
    cpu, flags = _cpu_model_and_flags()
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except AttributeError:  # older torch
        capability = "unknown"
    return {
        "platform": platform.platform(),
        "cpu_model": cpu,
        "cpu_flags": flags,
        "torch_cpu_capability": capability,
        "nproc": os.cpu_count(),
        "device": "cpu",
        "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
        "torch_intra_op_threads": torch.get_num_threads(),
        "torch_inter_op_threads": torch.get_num_interop_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "load_average_1_5_15min": [round(x, 2) for x in os.getloadavg()],
    }


def set_single_thread() -> None:
    """One intra-op (and inter-op, where still settable) thread, as every benchmark in this folder uses."""
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set or parallel work already started
        pass


def timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --- timing ----------------------------------------------------------------------------------------------
def interleaved_ratios(
    reference: Callable[[], object],
    candidates: dict[str, Callable[[], object]],
    rounds: int,
    min_block_seconds: float = 0.05,
) -> dict[str, dict[str, Any]]:
    """Per round: time ``reference`` once, then every candidate once (order rotated by round); return, per
    name (the reference as "gradient"), the median seconds per call and the median / quartiles of the
    within-round ratio to the reference. Load from other processes that drifts over seconds cancels in the
    ratio. Each timed block repeats its call n times, n chosen once so that the reference block lasts at
    least ``min_block_seconds``: on a time-sliced machine short calls are otherwise hit or missed whole by
    preemption, which makes single-call ratios of millisecond products scatter by factors."""
    if rounds < 3:
        raise ValueError(f"rounds must be >= 3 for quartiles, got {rounds}")
    reference()
    for fn in candidates.values():
        fn()  # warm-up (also builds cached graphs)
    start = time.perf_counter()
    reference()
    repeats = max(1, math.ceil(min_block_seconds / max(time.perf_counter() - start, 1e-9)))

    def block(fn: Callable[[], object]) -> float:
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        return (time.perf_counter() - start) / repeats

    names = list(candidates)
    seconds: dict[str, list[float]] = {name: [] for name in ["gradient", *names]}
    for r in range(rounds):
        seconds["gradient"].append(block(reference))
        shift = r % max(len(names), 1)
        for name in names[shift:] + names[:shift]:
            seconds[name].append(block(candidates[name]))
    out: dict[str, dict[str, Any]] = {}
    for name, times in seconds.items():
        ratios = [t / g for t, g in zip(times, seconds["gradient"], strict=True)]
        q1, _, q3 = statistics.quantiles(ratios, n=4)
        out[name] = {
            "seconds_median": statistics.median(times),
            "ratio_to_gradient": statistics.median(ratios),
            "ratio_quartiles": [q1, q3],
            "rounds": rounds,
            "calls_per_timing": repeats,
            "seconds_per_round": times,
        }
    return out


def within_round_ratio(timing: dict[str, dict[str, Any]], name: str, unit: str) -> dict[str, Any]:
    """Median and quartiles of the within-round ratio seconds[name] / seconds[unit] of one
    :func:`interleaved_ratios` result (both timed in every round, so drifting load cancels)."""
    ratios = [
        a / b
        for a, b in zip(timing[name]["seconds_per_round"], timing[unit]["seconds_per_round"], strict=True)
    ]
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return {"median": statistics.median(ratios), "quartiles": [q1, q3], "rounds": len(ratios)}


def gradient_fn(model: nn.Module, x: Tensor, y: Tensor) -> Callable[[], object]:
    """One gradient of the mean cross-entropy (forward + backward): the unit of every product ratio."""
    params = [p for p in model.parameters() if p.requires_grad]
    loss_fn = nn.CrossEntropyLoss()
    return lambda: torch.autograd.grad(loss_fn(model(x), y), params)


def bare_double_backward(model: nn.Module, x: Tensor, y: Tensor, v: Tensor) -> Callable[[], object]:
    """PyHessian's method without a library around it: ``autograd.grad`` on a kept ∇L graph."""
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(nn.CrossEntropyLoss()(model(x), y), params, create_graph=True)
    vs = split_like(v, params)
    return lambda: torch.autograd.grad(grads, params, grad_outputs=vs, retain_graph=True)


# --- accuracy of eigenvalues and densities ---------------------------------------------------------------
def max_relative_error(values: list[float], exact_descending: np.ndarray) -> float:
    """max_i |λ̂_i − λ_i| / |λ_i| over the k returned values sorted descending (inf if fewer than wanted)."""
    k = len(values)
    if k == 0:
        return float("inf")
    got = np.sort(np.asarray(values, dtype=np.float64))[::-1]
    ref = exact_descending[:k]
    return float(np.max(np.abs(got - ref) / np.abs(ref)))


def _cdf_exact(eigs: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.sort(eigs), x, side="right") / eigs.size


def _cdf_density(grid: np.ndarray, density: np.ndarray, x: np.ndarray) -> np.ndarray:
    d = np.clip(np.asarray(density, dtype=np.float64), 0.0, None)
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (d[1:] + d[:-1]) * np.diff(grid))])
    cum = cum / cum[-1] if cum[-1] > 0 else cum
    return np.interp(x, grid, cum, left=0.0, right=1.0)


def _cdf_discrete(nodes: np.ndarray, weights: np.ndarray, x: np.ndarray) -> np.ndarray:
    order = np.argsort(nodes)
    n, w = nodes[order], np.clip(weights[order], 0.0, None)
    cum = np.concatenate([[0.0], np.cumsum(w) / w.sum()])
    return cum[np.searchsorted(n, x, side="right")]


def w1_over_width(
    exact: np.ndarray,
    *,
    grid: np.ndarray | None = None,
    density: np.ndarray | None = None,
    nodes: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    points: int = 200_001,
) -> float:
    r"""W_1 = ∫ |F̂(x) − F(x)| dx between an estimate and the exact spectral measure (1/P) Σ δ(λ_i), divided
    by the spectral width λ_max − λ_min. The estimate is a density on a grid (``grid``, ``density``;
    normalised here) or a discrete measure (``nodes``, ``weights``: the raw Gauss-quadrature rules).
    The integral runs on ``points`` equally spaced abscissae covering both supports."""
    exact = np.asarray(exact, dtype=np.float64)
    if grid is not None and density is not None:
        g = np.asarray(grid, dtype=np.float64)
        lo, hi = min(exact.min(), g.min()), max(exact.max(), g.max())
        x = np.linspace(lo, hi, points)
        est = _cdf_density(g, np.asarray(density), x)
    elif nodes is not None and weights is not None:
        n = np.asarray(nodes, dtype=np.float64).reshape(-1)
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        lo, hi = min(exact.min(), n.min()), max(exact.max(), n.max())
        x = np.linspace(lo, hi, points)
        est = _cdf_discrete(n, w, x)
    else:
        raise ValueError("give either grid and density, or nodes and weights")
    diff = np.abs(est - _cdf_exact(exact, x))
    w1 = float(np.sum(0.5 * (diff[1:] + diff[:-1]) * np.diff(x)))
    return w1 / float(exact.max() - exact.min())
