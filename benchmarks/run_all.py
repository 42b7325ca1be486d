"""Reproduce BENCHMARKS.md: batchrmt against a bare double backward, PyHessian, curvlinops and
hessian-eigenthings, in one run.

    bash benchmarks/install_peers.sh            # once: the peers' own virtual environment
    python benchmarks/run_all.py [--quick]      # all measurements, results/*.json, then BENCHMARKS.md

batchrmt runs in this interpreter (public API only: ``HessianOperator``, ``GGNOperator``, ``@``,
``to_scipy()``, ``top_eigenpairs``, ``slq_density``, ``CurvatureOperator``); every peer runs in the peers'
interpreter (``--peers-python``) as ``benchmarks/peer_worker.py`` on the same weights and batch, saved with
``torch.save`` and loaded with ``weights_only=True``. One intra-op thread everywhere (``OMP_NUM_THREADS=1``,
``torch.set_num_threads(1)``).

Sections (each writes ``benchmarks/results/<section>.json`` with the machine facts and load before/after):

- ``products``: Hessian and GGN product ÷ one gradient on VGG-11 w/16, a 4,978-parameter CNN and a
  109,386-parameter MLP (float32), median of interleaved rounds within each process.
- ``eigen``: products and wall time to top-1 at relative error 1e-3 / 1e-6 and top-10 at 1e-4 on the small
  CNN (float64) against the exact spectrum from a dense ``eigh`` of the Hessian built by bare double
  backward; batchrmt ``top_eigenpairs`` vs scipy ``eigsh`` (batchrmt's ``to_scipy()`` and curvlinops),
  PyHessian power iteration and hessian-eigenthings Lanczos.
- ``slq``: W1 / spectral width of the SLQ density per budget (probes × steps) against the exact spectrum, and
  its wall time, for batchrmt ``slq_density``, curvlinops' ``lanczos_approximate_spectrum`` and
  hessian-eigenthings' ``spectral_density`` (PyHessian's ``density()`` outcome is recorded); batchrmt's
  timed budgets follow one untimed warm-up call.
- ``bookkeeping``: seconds per Lanczos step outside the products for a diagonal operator of ≈611k entries.
- ``paths``: batchrmt alone (float32, same networks and batch as ``products``): a block of k vectors in one
  batched backward vs k products; the batch in chunks with kept graphs (``graph_cache_bytes`` budget) vs
  recomputed; bfloat16 autocast products (error and time against float32); ``torch.compile`` of the
  recomputed product (compile time, steady-state time against the kept-graph product).

``--quick`` shrinks batches, rounds (still 7), tolerance grids and budgets so the whole run takes minutes.
``--only SECTION`` reruns one section; ``--render-only`` rewrites BENCHMARKS.md from the stored results.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import scipy.sparse.linalg as spla  # noqa: E402
import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(ROOT))  # this checkout's batchrmt, also without PYTHONPATH
from _common import (  # noqa: E402
    PROBLEMS,
    bare_double_backward,
    gradient_fn,
    interleaved_ratios,
    load_problem,
    machine_info,
    max_relative_error,
    save_problem,
    set_single_thread,
    timestamp,
    w1_over_width,
    within_round_ratio,
)

SECTIONS = ("products", "paths", "eigen", "slq", "bookkeeping")
ACCURACY = {"top1": (1, (1e-3, 1e-6)), "top10": (10, (1e-4,))}
WARMUP_BUDGET = (1, 5)  # untimed slq_density (probes, steps) before the timed SLQ budgets

FULL: dict[str, Any] = {
    "product_batch": 128,
    "rounds": 15,
    "eigen_batch": 32,
    "tols": [1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6, 1e-7, 1e-8, 1e-10],
    "eigenthings_steps": [4, 6, 8, 10, 12, 14, 16, 18, 20, 24, 28, 32, 40, 50, 60, 80],
    "pyhessian_top1_max_iter": 200,
    "pyhessian_topk_settings": {
        "defaults (maxIter=100, tol=1e-3)": {},
        "tol=1e-6, maxIter=200": {"maxIter": 200, "tol": 1e-6},
    },
    "wall_repeats": 5,
    "budgets": [[1, 20], [1, 50], [4, 50], [4, 100], [10, 100]],
    "bookkeeping_size": 611_000,
    "block_k": 8,
    "chunks": 4,
    "compile_problems": ["mlp_109k", "cnn_4.9k"],
}
QUICK: dict[str, Any] = {
    "product_batch": 32,
    "rounds": 7,
    "eigen_batch": 16,
    "tols": [1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-8],
    "eigenthings_steps": [6, 10, 14, 20, 30, 40],
    "pyhessian_top1_max_iter": 60,
    "pyhessian_topk_settings": {"defaults (maxIter=100, tol=1e-3)": {}},
    "wall_repeats": 3,
    "budgets": [[1, 20], [4, 40]],
    "bookkeeping_size": 100_000,
    "block_k": 8,
    "chunks": 4,
    "compile_problems": ["mlp_109k"],
}


# --- helpers ---------------------------------------------------------------------------------------------
def run_peer(python: Path, task: str, problems: list[Path], settings: dict[str, Any], timeout: float) -> dict:
    """``peer_worker.py TASK`` under the peers' interpreter; its JSON record or the failure as a record."""
    if not python.exists():
        return {"status": f"skipped: {python} not found (run bash benchmarks/install_peers.sh)"}
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    cmd = [
        str(python),
        str(HERE / "peer_worker.py"),
        task,
        "--settings",
        json.dumps(settings),
        "--out",
        str(out),
    ]
    for p in problems:
        cmd += ["--problem", str(p)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, env=env)
        if proc.returncode != 0:
            return {"status": f"failed (exit {proc.returncode})", "stderr_tail": proc.stderr[-3000:]}
        return {"status": "ok", "wall_seconds": time.perf_counter() - start, **json.loads(out.read_text())}
    except subprocess.TimeoutExpired:
        return {"status": f"failed: timed out after {timeout:.0f} s"}
    finally:
        out.unlink(missing_ok=True)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def write(results: Path, name: str, record: dict[str, Any]) -> None:
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")


# --- products --------------------------------------------------------------------------------------------
def section_products(cfg: dict[str, Any], tmp: Path, peers: Path) -> dict[str, Any]:
    from networks import GGNOperator, HessianOperator

    out: dict[str, Any] = {"problems": {}}
    for name in PROBLEMS:
        log(f"products: {name}")
        path = tmp / f"products_{name}.pt"
        save_problem(path, name, cfg["product_batch"], torch.float32)
        model, x, y, v, _ = load_problem(path)
        loss = nn.CrossEntropyLoss()
        h_op = HessianOperator(model, loss, (x, y))
        g_op = GGNOperator(model, loss, (x, y))
        timing = interleaved_ratios(
            gradient_fn(model, x, y),
            {
                "bare_double_backward": bare_double_backward(model, x, y, v),
                "batchrmt_hessian": functools.partial(h_op.matvec, v),
                "batchrmt_ggn": functools.partial(g_op.matvec, v),
            },
            cfg["rounds"],
        )
        peer = run_peer(peers, "products", [path], {"rounds": cfg["rounds"]}, timeout=1800)
        out["problems"][name] = {
            "description": PROBLEMS[name][0],
            "num_params": v.numel(),
            "batch_size": cfg["product_batch"],
            "dtype": "float32",
            "batchrmt": {
                "timing": timing,
                "within_round_over_bare": {
                    kind: within_round_ratio(timing, f"batchrmt_{kind}", "bare_double_backward")
                    for kind in ("hessian", "ggn")
                },
                "hessian_method": getattr(h_op, "method", None),
                "ggn_method": getattr(g_op, "method", None),
            },
            "peers": peer if peer.get("status") != "ok" else {**peer, "result": peer["result"][name]},
        }
    out["summary"] = summarise_products(out["problems"])
    return out


def summarise_products(problems: dict[str, Any]) -> dict[str, Any]:
    """Ratios to one gradient per tool and the ratios between tools the targets of issue 10 name."""
    summary: dict[str, Any] = {}
    for name, rec in problems.items():
        row = {k: rec["batchrmt"]["timing"][k]["ratio_to_gradient"] for k in rec["batchrmt"]["timing"]}
        row = {f"{k} (main process)" if k == "bare_double_backward" else k: val for k, val in row.items()}
        peer = rec["peers"]
        if peer.get("status") == "ok":
            for k, t in peer["result"]["timing"].items():
                if k != "gradient":
                    row[f"{k} (peers process)" if k == "bare_double_backward" else k] = t["ratio_to_gradient"]
        row.pop("gradient", None)
        ours, ggn = row["batchrmt_hessian"], row["batchrmt_ggn"]
        vs = {
            "hessian / bare double backward (same process)": ours / row["bare_double_backward (main process)"]
        }
        for peer_name in ("pyhessian_hessian", "curvlinops_hessian", "eigenthings_hessian"):
            if peer_name in row:
                vs[f"hessian / {peer_name}"] = ours / row[peer_name]
        for peer_name in ("curvlinops_ggn", "eigenthings_ggn"):
            if peer_name in row:
                vs[f"ggn / {peer_name}"] = ggn / row[peer_name]
        # Cross-check: the same ratios with the bare double backward (timed in both processes) as the unit.
        bare_main, bare_peer = (
            row["bare_double_backward (main process)"],
            row.get("bare_double_backward (peers process)"),
        )
        via_bare = {}
        if bare_peer:
            for peer_name in ("pyhessian_hessian", "curvlinops_hessian", "eigenthings_hessian"):
                if peer_name in row:
                    via_bare[f"hessian / {peer_name}"] = (ours / bare_main) / (row[peer_name] / bare_peer)
            for peer_name in ("curvlinops_ggn", "eigenthings_ggn"):
                if peer_name in row:
                    via_bare[f"ggn / {peer_name}"] = (ggn / bare_main) / (row[peer_name] / bare_peer)
        summary[name] = {
            "hessian_over_bare_within_round": rec["batchrmt"]
            .get("within_round_over_bare", {})
            .get("hessian"),
            "ratio_to_gradient": row,
            "batchrmt_over": vs,
            "batchrmt_over_bare_normalised": via_bare,
        }
    return summary


# --- product paths (batchrmt only) ---------------------------------------------------------------------
def _rel(a: Tensor, b: Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def section_paths(cfg: dict[str, Any], tmp: Path) -> dict[str, Any]:
    """Block products, several batches with kept or recomputed graphs, autocast, torch.compile (float32)."""
    from networks import GGNOperator, HessianOperator

    out: dict[str, Any] = {"block_k": cfg["block_k"], "chunks": cfg["chunks"], "problems": {}}
    loss = nn.CrossEntropyLoss()
    for name in PROBLEMS:
        log(f"paths: {name}")
        path = tmp / f"paths_{name}.pt"
        save_problem(path, name, cfg["product_batch"], torch.float32)
        model, x, y, v, _ = load_problem(path)
        k, n = cfg["block_k"], x.shape[0]
        block = torch.randn(v.numel(), k, generator=torch.Generator().manual_seed(3))
        rec: dict[str, Any] = {"num_params": v.numel(), "batch_size": n}
        # block products: k vectors at once vs k single products (times per vector, ÷ one gradient)
        ops = {
            "hessian_batched": HessianOperator(model, loss, (x, y), block_products="batched"),
            "hessian_loop": HessianOperator(model, loss, (x, y), block_products="loop"),
            "ggn_batched": GGNOperator(model, loss, (x, y), block_products="batched"),
            "ggn_loop": GGNOperator(model, loss, (x, y), block_products="loop"),
        }
        exact = {kind: ops[f"{kind}_loop"] @ block for kind in ("hessian", "ggn")}
        timing = interleaved_ratios(
            gradient_fn(model, x, y),
            {key: functools.partial(op.matmat, block) for key, op in ops.items()},
            cfg["rounds"],
        )
        rec["block"] = {
            "timing": timing,
            "per_vector_ratio_to_gradient": {key: timing[key]["ratio_to_gradient"] / k for key in ops},
            "batched_over_loop": {
                kind: timing[f"{kind}_batched"]["ratio_to_gradient"]
                / timing[f"{kind}_loop"]["ratio_to_gradient"]
                for kind in ("hessian", "ggn")
            },
            "batched_vs_loop_rel_diff": {
                kind: _rel(ops[f"{kind}_batched"] @ block, exact[kind]) for kind in ("hessian", "ggn")
            },
        }
        # the batch in chunks: kept graphs (within the default budget) vs recomputed, and one batch kept
        size = -(-n // cfg["chunks"])
        chunks = [(x[i : i + size], y[i : i + size]) for i in range(0, n, size)]
        chunked = {
            "one_batch_kept": HessianOperator(model, loss, (x, y)),
            "chunks_kept": HessianOperator(model, loss, chunks),
            "chunks_recomputed": HessianOperator(model, loss, chunks, method="recompute"),
        }
        timing = interleaved_ratios(
            gradient_fn(model, x, y),
            {key: functools.partial(op.matvec, v) for key, op in chunked.items()},
            cfg["rounds"],
        )
        kept = chunked["chunks_kept"]
        rec["chunks"] = {
            "num_chunks": len(chunks),
            "timing": timing,
            "recomputed_over_kept": timing["chunks_recomputed"]["ratio_to_gradient"]
            / timing["chunks_kept"]["ratio_to_gradient"],
            "graph_bytes_first_chunk": kept.graph_bytes,
            "cached_chunks": kept.cached_batches,
            "graph_cache_bytes": kept.graph_cache_bytes,
            "kept_vs_one_batch_rel_diff": _rel(kept @ v, chunked["one_batch_kept"] @ v),
        }
        # bfloat16 autocast against float32
        full, half = (
            HessianOperator(model, loss, (x, y)),
            HessianOperator(model, loss, (x, y), autocast=torch.bfloat16),
        )
        gfull, ghalf = (
            GGNOperator(model, loss, (x, y)),
            GGNOperator(model, loss, (x, y), autocast=torch.bfloat16),
        )
        timing = interleaved_ratios(
            gradient_fn(model, x, y),
            {
                "hessian_float32": functools.partial(full.matvec, v),
                "hessian_bf16_autocast": functools.partial(half.matvec, v),
                "ggn_float32": functools.partial(gfull.matvec, v),
                "ggn_bf16_autocast": functools.partial(ghalf.matvec, v),
            },
            cfg["rounds"],
        )
        rec["autocast"] = {
            "timing": timing,
            "bf16_over_float32": {
                kind: timing[f"{kind}_bf16_autocast"]["ratio_to_gradient"]
                / timing[f"{kind}_float32"]["ratio_to_gradient"]
                for kind in ("hessian", "ggn")
            },
            "relative_error": {"hessian": _rel(half @ v, full @ v), "ggn": _rel(ghalf @ v, gfull @ v)},
        }
        if name in cfg["compile_problems"]:
            rec["compile"] = _compile_record(model, loss, x, y, v, cfg["rounds"])
        out["problems"][name] = rec
    return out


def _compile_record(model: nn.Module, loss: nn.Module, x: Tensor, y: Tensor, v: Tensor, rounds: int) -> dict:
    """torch.compile (inductor) of the recomputed product: compile time, error, steady state vs kept graph."""
    from networks import HessianOperator

    kept = HessianOperator(model, loss, (x, y))
    recomputed = HessianOperator(model, loss, (x, y), method="recompute")
    try:
        compiled = HessianOperator(model, loss, (x, y), compile=True)
        start = time.perf_counter()
        first = compiled @ v
        compile_seconds = time.perf_counter() - start
    except Exception as exc:  # noqa: BLE001 - recorded: a compiler failure is a result here
        return {"status": f"failed: {type(exc).__name__}: {str(exc)[:300]}"}
    timing = interleaved_ratios(
        gradient_fn(model, x, y),
        {
            "kept_graph": functools.partial(kept.matvec, v),
            "recomputed": functools.partial(recomputed.matvec, v),
            "compiled": functools.partial(compiled.matvec, v),
        },
        rounds,
    )
    return {
        "status": "ok",
        "backend": "inductor",
        "compile_seconds": compile_seconds,
        "relative_error_vs_kept": _rel(first, kept @ v),
        "timing": timing,
        "compiled_over_kept": timing["compiled"]["ratio_to_gradient"]
        / timing["kept_graph"]["ratio_to_gradient"],
        "compiled_over_recomputed": timing["compiled"]["ratio_to_gradient"]
        / timing["recomputed"]["ratio_to_gradient"],
    }


# --- exact reference -------------------------------------------------------------------------------------
def dense_hessian(model: nn.Module, x: Tensor, y: Tensor, chunk: int = 128) -> np.ndarray:
    """The P×P Hessian of the mean cross-entropy by bare double backward (no batchrmt code), symmetrised."""
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(nn.CrossEntropyLoss()(model(x), y), params, create_graph=True)
    flat = torch.cat([g.reshape(-1) for g in grads])
    size = flat.numel()
    rows = []
    for start in range(0, size, chunk):
        stop = min(start + chunk, size)
        eye = torch.zeros(stop - start, size, dtype=flat.dtype)
        eye[torch.arange(stop - start), torch.arange(start, stop)] = 1.0
        try:
            cols = torch.autograd.grad(
                flat, params, grad_outputs=eye, retain_graph=True, is_grads_batched=True
            )
            rows.append(torch.cat([c.reshape(stop - start, -1) for c in cols], dim=1))
        except RuntimeError:  # an op without a batching rule: one column at a time
            for i in range(stop - start):
                cols = torch.autograd.grad(flat, params, grad_outputs=eye[i], retain_graph=True)
                rows.append(torch.cat([c.reshape(1, -1) for c in cols], dim=1))
    h = torch.cat(rows).numpy()
    return 0.5 * (h + h.T)


def exact_spectrum(model: nn.Module, x: Tensor, y: Tensor, cache: Path) -> np.ndarray:
    """Eigenvalues (descending) of the dense Hessian; cached under ``cache`` by a hash of weights and batch
    (the dense build costs P double backwards: minutes on a loaded machine)."""
    digest = hashlib.sha256()
    for t in [*model.state_dict().values(), x, y]:
        digest.update(t.detach().contiguous().numpy().tobytes())
    digest.update(torch.__version__.encode())
    path = cache / f"exact_{digest.hexdigest()[:20]}.npy"
    if path.exists():
        log(f"exact spectrum from cache {path}")
        return np.load(path)
    log("exact Hessian spectrum of the small CNN (dense eigh)")
    t0 = time.perf_counter()
    exact = np.sort(np.linalg.eigvalsh(dense_hessian(model, x, y)))[::-1]
    log(f"  {exact.size} eigenvalues in {time.perf_counter() - t0:.1f} s; top {exact[:3]}")
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, exact)
    return exact


# --- eigenvalues -----------------------------------------------------------------------------------------
def eigsh_v0(size: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(size)  # the same start vector as peer_worker's eigsh


def section_eigen(cfg: dict[str, Any], path: Path, exact: np.ndarray, peers: Path) -> dict[str, Any]:
    from networks import HessianOperator, top_eigenpairs

    model, x, y, _, _ = load_problem(path)
    loss = nn.CrossEntropyLoss()
    size = exact.size
    ks = [1, 10]

    def run_batchrmt(k: int, tol: float) -> dict[str, Any]:
        op = HessianOperator(model, loss, (x, y))
        start = time.perf_counter()
        res = top_eigenpairs(op, k, "LA", tol=tol, seed=0, return_eigenvectors=False)
        return {
            "k": k,
            "tol": tol,
            "products": int(res.num_products),
            "seconds": time.perf_counter() - start,
            "eigenvalues": res.eigenvalues.tolist(),
            "converged": bool(np.all(res.converged)),
        }

    def run_eigsh(k: int, tol: float) -> dict[str, Any]:
        op = HessianOperator(model, loss, (x, y))
        start = time.perf_counter()
        vals = spla.eigsh(
            op.to_scipy(), k=k, which="LA", tol=tol, v0=eigsh_v0(size), return_eigenvectors=False
        )
        return {
            "k": k,
            "tol": tol,
            "products": int(op.num_products),
            "seconds": time.perf_counter() - start,
            "eigenvalues": np.sort(vals)[::-1].tolist(),
        }

    log("eigen: batchrmt and eigsh(to_scipy) over the tolerance grid")
    tools: dict[str, Any] = {
        "batchrmt top_eigenpairs": [run_batchrmt(k, t) for k in ks for t in cfg["tols"]],
        "scipy eigsh (batchrmt to_scipy)": [run_eigsh(k, t) for k in ks for t in cfg["tols"]],
    }
    log("eigen: peers")
    settings = {
        "ks": ks,
        "tols": cfg["tols"],
        "eigenthings_steps": cfg["eigenthings_steps"],
        "pyhessian_top1_max_iter": cfg["pyhessian_top1_max_iter"],
        "pyhessian_topk_settings": cfg["pyhessian_topk_settings"],
    }
    peer = run_peer(peers, "eigen", [path], settings, timeout=3600)
    notes: dict[str, Any] = {}
    if peer.get("status") == "ok":
        res = peer["result"]
        if res["curvlinops_eigsh"].get("status") == "ok":
            tools["curvlinops + scipy eigsh"] = res["curvlinops_eigsh"]["runs"]
        if res["eigenthings_lanczos"].get("status") == "ok":
            tools["hessian-eigenthings lanczos (max_iter scan)"] = res["eigenthings_lanczos"]["runs"]
            notes["hessian-eigenthings default top-10"] = res["eigenthings_lanczos"]["default_topk"]
        if res["pyhessian_power"].get("status") == "ok":
            notes["pyhessian"] = pyhessian_summary(res["pyhessian_power"], exact)
    for runs in tools.values():
        for run in runs:
            run["max_relative_error"] = max_relative_error(run["eigenvalues"], exact)
    for entry in notes.values():
        if "eigenvalues" in entry:
            entry["max_relative_error"] = max_relative_error(entry["eigenvalues"], exact)
    best = fewest_products(tools)
    if "pyhessian" in notes:
        for key, val in notes["pyhessian"]["top1_to_accuracy"].items():
            best.setdefault(key, {})["PyHessian power iteration (trace)"] = val
    walls = wall_time_repeats(cfg, best, run_batchrmt, run_eigsh)
    return {
        "solver_defaults": solver_defaults(ks, size),
        "problem": {
            "name": "cnn_4.9k",
            "description": PROBLEMS["cnn_4.9k"][0],
            "num_params": size,
            "batch_size": cfg["eigen_batch"],
            "dtype": "float64",
        },
        "exact_top10": exact[:10].tolist(),
        "accuracy": "max relative error of the k returned eigenvalues (descending) against dense eigh",
        "runs": tools,
        "peer_notes": notes,
        "fewest_products_to_accuracy": best,
        "wall_time_repeats": walls,
        "peers_status": {k: v for k, v in peer.items() if k != "result"},
        "peer_failures": {
            k: v for k, v in peer.get("result", {}).items() if v.get("status") not in (None, "ok")
        },
    }


def solver_defaults(ks: list[int], size: int) -> dict[str, Any]:
    """batchrmt's solver defaults as measured here (the verdict texts quote them from the results)."""
    from networks import lanczos as lz

    return {
        "tol": lz.DEFAULT_TOL,
        "stopping": lz.DEFAULT_STOPPING,
        "num_lanczos_vectors": {str(k): lz.default_num_lanczos_vectors(k, size) for k in ks},
        "slq_sigma_per_step_squared": lz.DEFAULT_SLQ_SIGMA_PER_STEP_SQUARED,
    }


def pyhessian_summary(ph: dict[str, Any], exact: np.ndarray) -> dict[str, Any]:
    """Products after which PyHessian's top-1 Rayleigh quotient stays within each accuracy; its defaults."""
    errors = [abs(rq - exact[0]) / abs(exact[0]) for _, rq in ph["top1_trace"]]
    to_acc: dict[str, Any] = {}
    for eps in ACCURACY["top1"][1]:
        above = [i for i, e in enumerate(errors) if e >= eps]
        first = 0 if not above else above[-1] + 1
        to_acc[f"top1 {eps:g}"] = (
            {
                "products": first + 1,
                "seconds": ph["top1_trace"][first][0],
                "setting": "first product after which the error stays below",
            }
            if first < len(errors)
            else {"products": None, "note": f"not reached in {len(errors)} products; best {min(errors):.1e}"}
        )
    topk = {
        label: {
            **val,
            "max_relative_error": max_relative_error(val["eigenvalues"], exact),
            "any_negative": any(e < 0 for e in val["eigenvalues"]),
        }
        for label, val in ph["topk"].items()
    }
    return {"top1_to_accuracy": to_acc, "top1_best_error": min(errors), "topk_power_iteration": topk}


def fewest_products(tools: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per target ("top1 1e-06", "top10 0.0001") and tool: the run with the fewest products whose error is
    below the target (over the tool's tolerance / step grid), with its tolerance and wall time."""
    best: dict[str, dict[str, Any]] = {}
    for label, (k, targets) in ACCURACY.items():
        for eps in targets:
            key = f"{label} {eps:g}"
            best[key] = {}
            for tool, runs in tools.items():
                ok = [r for r in runs if r["k"] == k and r["max_relative_error"] <= eps]
                if not ok:
                    best[key][tool] = {"products": None, "note": "not reached on the grid"}
                    continue
                r = min(ok, key=lambda r: (r["products"], r["seconds"]))
                setting = {kk: r[kk] for kk in ("tol", "max_iter") if kk in r}
                best[key][tool] = {
                    "products": r["products"],
                    "seconds": r["seconds"],
                    "max_relative_error": r["max_relative_error"],
                    "setting": setting,
                }
    return best


def wall_time_repeats(cfg: dict[str, Any], best: dict[str, Any], run_batchrmt: Any, run_eigsh: Any) -> dict:
    """Median wall time of batchrmt and eigsh(to_scipy) at their chosen settings, interleaved repeats."""
    out: dict[str, Any] = {}
    for key, per_tool in best.items():
        k = ACCURACY[key.split()[0]][0]
        ours, theirs = (
            per_tool.get("batchrmt top_eigenpairs"),
            per_tool.get("scipy eigsh (batchrmt to_scipy)"),
        )
        if not ours or not theirs or ours.get("products") is None or theirs.get("products") is None:
            continue
        a, b = [], []
        for _ in range(cfg["wall_repeats"]):
            a.append(run_batchrmt(k, ours["setting"]["tol"])["seconds"])
            b.append(run_eigsh(k, theirs["setting"]["tol"])["seconds"])
        out[key] = {
            "batchrmt_seconds_median": statistics.median(a),
            "eigsh_seconds_median": statistics.median(b),
            "batchrmt_seconds": a,
            "eigsh_seconds": b,
            "batchrmt_products": ours["products"],
            "eigsh_products": theirs["products"],
            "ratio": statistics.median(a) / statistics.median(b),
            "repeats": cfg["wall_repeats"],
        }
    return out


# --- SLQ -------------------------------------------------------------------------------------------------
def section_slq(cfg: dict[str, Any], path: Path, exact: np.ndarray, peers: Path) -> dict[str, Any]:
    from networks import HessianOperator, slq_density

    model, x, y, _, _ = load_problem(path)
    loss = nn.CrossEntropyLoss()
    # One untimed call first: the process's first slq_density pays one-off lazy imports and allocations
    # (measured 7.9 s for a 1 × 20 budget in a fresh process against 0.5 s warm), which would be charged
    # to the first timed budget only.
    log(f"slq: batchrmt warm-up {WARMUP_BUDGET[0]}x{WARMUP_BUDGET[1]} (untimed)")
    start = time.perf_counter()
    slq_density(HessianOperator(model, loss, (x, y)), *WARMUP_BUDGET, seed=1)
    warmup_seconds = time.perf_counter() - start
    ours = []
    for probes, steps in cfg["budgets"]:
        log(f"slq: batchrmt {probes}x{steps}")
        op = HessianOperator(model, loss, (x, y))
        start = time.perf_counter()
        dens = slq_density(op, probes, steps, seed=0)
        seconds = time.perf_counter() - start
        ours.append(
            {
                "probes": probes,
                "steps": steps,
                "seconds": seconds,
                "products": int(dens.num_products),
                "sigma": float(dens.sigma),
                "w1_over_width": w1_over_width(exact, grid=dens.grid, density=dens.density),
                "w1_over_width_raw_quadrature": w1_over_width(
                    exact, nodes=dens.nodes, weights=dens.weights / dens.num_probes
                ),
            }
        )
    tools: dict[str, Any] = {"batchrmt slq_density": ours}
    log("slq: peers")
    peer = run_peer(peers, "slq", [path], {"budgets": cfg["budgets"]}, timeout=3600)
    status: dict[str, Any] = {}
    if peer.get("status") == "ok":
        for name, rec in peer["result"].items():
            if rec.get("status") != "ok":
                status[name] = {k: v for k, v in rec.items() if k != "traceback"}
                status[name]["traceback_tail"] = rec.get("traceback", "")[-600:]
                continue
            runs = []
            for r in rec["runs"]:
                row = {
                    "probes": r["probes"],
                    "steps": r["steps"],
                    "seconds": r["seconds"],
                    "w1_over_width": w1_over_width(
                        exact, grid=np.array(r["grid"]), density=np.array(r["density"])
                    ),
                }
                if "nodes" in r:
                    nodes, weights = np.array(r["nodes"]), np.array(r["weights"])
                    row["w1_over_width_raw_quadrature"] = w1_over_width(
                        exact, nodes=nodes, weights=weights / weights.sum()
                    )
                runs.append(row)
            tools[
                f"{name} ({'lanczos_approximate_spectrum' if name == 'curvlinops' else 'spectral_density'})"
            ] = runs
            if "note" in rec:
                status[name] = {"note": rec["note"]}
    return {
        "problem": {
            "name": "cnn_4.9k",
            "num_params": exact.size,
            "batch_size": cfg["eigen_batch"],
            "dtype": "float64",
        },
        "accuracy": "W1(estimated density, exact spectral measure) / (λ_max − λ_min), exact from dense eigh",
        "warmup": {"probes": WARMUP_BUDGET[0], "steps": WARMUP_BUDGET[1], "seconds": warmup_seconds},
        "spectral_width": float(exact.max() - exact.min()),
        "runs": tools,
        "equal_accuracy_time": equal_accuracy_time(tools),
        "equal_accuracy_time_raw_quadrature": equal_accuracy_time(tools, "w1_over_width_raw_quadrature"),
        "peer_status": status,
        "peers_process": {k: v for k, v in peer.items() if k != "result"},
    }


def equal_accuracy_time(
    tools: dict[str, list[dict[str, Any]]], key: str = "w1_over_width"
) -> list[dict[str, Any]]:
    """For every curvlinops budget: batchrmt's least time over budgets whose W1/width (``key``: the smoothed
    density, or ``"w1_over_width_raw_quadrature"``) is at most curvlinops' smoothed density's, and the
    ratio of the two times."""
    ours = tools.get("batchrmt slq_density", [])
    theirs = next((runs for name, runs in tools.items() if name.startswith("curvlinops")), [])
    out = []
    for r in theirs:
        ok = [o for o in ours if o[key] <= r["w1_over_width"]]
        best = min(ok, key=lambda o: o["seconds"]) if ok else None
        out.append(
            {
                "curvlinops_budget": f"{r['probes']}x{r['steps']}",
                "curvlinops_w1_over_width": r["w1_over_width"],
                "curvlinops_seconds": r["seconds"],
                "batchrmt_measure": key,
                "batchrmt_budget": f"{best['probes']}x{best['steps']}" if best else None,
                "batchrmt_w1_over_width": best[key] if best else None,
                "batchrmt_seconds": best["seconds"] if best else None,
                "time_ratio": best["seconds"] / r["seconds"] if best else None,
            }
        )
    return out


# --- bookkeeping -----------------------------------------------------------------------------------------
def bookkeeping_diagonal(size: int) -> Tensor:
    """A Hessian-like diagonal: 10 outliers 2.0 … 1.1 above a bulk uniform on [0, 1] (seed 0), float64."""
    g = torch.Generator().manual_seed(0)
    bulk = torch.rand(size - 10, generator=g, dtype=torch.float64)
    return torch.cat([torch.linspace(2.0, 1.1, 10, dtype=torch.float64), bulk])


def section_bookkeeping(cfg: dict[str, Any], tmp: Path, peers: Path) -> dict[str, Any]:
    from networks import CurvatureOperator, top_eigenpairs

    diag = bookkeeping_diagonal(cfg["bookkeeping_size"])
    path = tmp / "diagonal.pt"
    torch.save({"diagonal": diag}, path)
    k, tol = 10, 1e-4

    class Diagonal(CurvatureOperator):
        """diag(d) v, timing the products so that the solver's own time can be separated."""

        def __init__(self, d: Tensor) -> None:
            super().__init__(d.numel(), d.dtype, d.device)
            self.d, self.seconds = d, 0.0

        def _matvec(self, v: Tensor) -> Tensor:
            start = time.perf_counter()
            w = self.d * v
            self.seconds += time.perf_counter() - start
            return w

    log("bookkeeping: batchrmt")
    op = Diagonal(diag)
    start = time.perf_counter()
    res = top_eigenpairs(op, k, "LA", tol=tol, seed=0, return_eigenvectors=False)
    total = time.perf_counter() - start
    ours = {
        "k": k,
        "tol": tol,
        "products": int(res.num_products),
        "seconds": total,
        "seconds_in_products": op.seconds,
        "bookkeeping_seconds_per_step": (total - op.seconds) / res.num_products,
        "max_relative_error": max_relative_error(res.eigenvalues.tolist(), np.sort(diag.numpy())[::-1]),
    }
    log("bookkeeping: scipy eigsh")
    d = diag.numpy()
    spent = [0.0]

    def mv(z: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        w = d * z.reshape(-1)
        spent[0] += time.perf_counter() - t0
        return w

    count = [0]

    def counted(z: np.ndarray) -> np.ndarray:
        count[0] += 1
        return mv(z)

    linop = spla.LinearOperator((d.size, d.size), matvec=counted, rmatvec=counted, dtype=np.float64)
    start = time.perf_counter()
    vals = spla.eigsh(linop, k=k, which="LA", tol=tol, v0=eigsh_v0(d.size), return_eigenvectors=False)
    total = time.perf_counter() - start
    eigsh = {
        "k": k,
        "tol": tol,
        "products": count[0],
        "seconds": total,
        "seconds_in_products": spent[0],
        "bookkeeping_seconds_per_step": (total - spent[0]) / count[0],
        "max_relative_error": max_relative_error(vals.tolist(), np.sort(d)[::-1]),
    }
    log("bookkeeping: peers")
    peer = run_peer(peers, "bookkeeping", [path], {"k": k, "tol": tol, "eigenthings_steps": 50}, timeout=1800)
    return {
        "operator": f"diagonal, P = {d.size}: 10 outliers 2.0…1.1 over a uniform [0, 1] bulk, float64",
        "batchrmt top_eigenpairs": ours,
        "scipy eigsh": eigsh,
        "peers": peer,
    }


# --- driver ----------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small batches and grids: a few minutes")
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only these sections")
    parser.add_argument("--peers-python", type=Path, default=Path("/tmp/batchrmt-peers/bin/python"))
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--markdown", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "batchrmt-bench-cache",
        help="where the exact spectrum of the small CNN is cached",
    )
    parser.add_argument("--render-only", action="store_true", help="only rewrite the markdown from results")
    args = parser.parse_args(argv)
    from render import render

    if args.render_only:
        args.markdown.write_text(render(args.results))
        return 0
    set_single_thread()
    cfg = QUICK if args.quick else FULL
    sections = args.only or list(SECTIONS)
    import networks

    install = args.peers_python.parent.parent / "peers-install.json"
    common = {
        "mode": "quick" if args.quick else "full",
        "settings": cfg,
        "command": " ".join(
            ["python", "benchmarks/run_all.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "networks_source": str(Path(networks.__file__).parent),
        "peers_python": str(args.peers_python),
        "peers_install": json.loads(install.read_text()) if install.exists() else "not found",
        "note": "shared machine: other jobs ran during the measurement, so wall times are indicative; ratios "
        "come from interleaved rounds within one process and product counts are exact",
    }
    run_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        exact: np.ndarray | None = None
        eigen_path = tmp / "eigen_cnn.pt"
        for section in sections:
            before = machine_info()
            start = time.perf_counter()
            if section == "products":
                record = section_products(cfg, tmp, args.peers_python)
            elif section == "paths":
                record = section_paths(cfg, tmp)
            elif section == "bookkeeping":
                record = section_bookkeeping(cfg, tmp, args.peers_python)
            else:
                if exact is None:
                    save_problem(eigen_path, "cnn_4.9k", cfg["eigen_batch"], torch.float64)
                    model, x, y, _, _ = load_problem(eigen_path)
                    exact = exact_spectrum(model, x, y, args.cache)
                fn = section_eigen if section == "eigen" else section_slq
                record = fn(cfg, eigen_path, exact, args.peers_python)
            after = machine_info()["load_average_1_5_15min"]
            record.update(
                section=section,
                seconds=time.perf_counter() - start,
                timestamp_utc=timestamp(),
                machine={
                    **before,
                    "load_average_before": before["load_average_1_5_15min"],
                    "load_average_after": after,
                },
                **common,
            )
            write(args.results, section, record)
            log(
                f"{section}: done in {record['seconds']:.0f} s "
                f"(load {before['load_average_1_5_15min']} -> {after})"
            )
    log(f"all sections in {time.perf_counter() - run_start:.0f} s")
    args.markdown.write_text(render(args.results))
    log(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
