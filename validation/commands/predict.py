"""``batchrmt predict``: closed-form predictions of λ'_max(B) and η_max(B) from the random-matrix models.

Pure theory (no network, no data): for each batch size the additive (spiked Wigner, THEORY.md §1a) and/or the
multiplicative (spiked Wishart, §2) prediction of the top batch-curvature eigenvalue, its regime, the maximal
stable learning rates (§3) and the local exponent ``d log η_max / d log B``. ``--json`` prints the same numbers
as JSON; ``--explain`` prints the sympy derivation (:func:`rmt.symbolic.derivation`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

import numpy as np

from rmt.learning_rates import (
    MOMENTUM_METHODS,
    adam_max_lr_vs_batch,
    batch_regime,
    batch_top_curvature,
    local_exponent,
    max_lr,
    max_lr_vs_batch,
    model_critical_batch_size,
)
from rmt.wigner import noise_scale

DEFAULT_BATCH_SIZES: tuple[int, ...] = tuple(2**k for k in range(11))  # 1 … 1024
MODEL_CHOICES: tuple[str, ...] = ("additive", "multiplicative", "both")


def register(subparsers: Any) -> None:
    """Add the ``predict`` subcommand to the ``batchrmt`` parser."""
    parser = subparsers.add_parser(
        "predict",
        help="predict the top batch-curvature eigenvalue and the maximal learning rate versus batch size",
        description=(
            "Random-matrix predictions of the top eigenvalue of the batch Hessian (additive / spiked Wigner) or "
            "batch GGN (multiplicative / spiked Wishart) and of the maximal stable learning rate per batch size. "
            "Defaults: the THEORY.md check case lam=5, sigma2=1, P=2000, B = 1, 2, 4, ..., 1024."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--lam", type=float, default=5.0, help="top eigenvalue λ_1 of the full-data curvature")
    parser.add_argument(
        "--sigma2", type=float, default=1.0, help="per-sample curvature-entry variance σ² (noise per entry)"
    )
    parser.add_argument("--n-params", type=int, default=2000, help="number of parameters P")
    parser.add_argument(
        "--batch-sizes", type=float, nargs="+", default=list(DEFAULT_BATCH_SIZES), help="batch sizes B"
    )
    parser.add_argument(
        "--n-data", type=float, default=None, help="training-set size N (additive model; default: infinite)"
    )
    parser.add_argument("--model", choices=MODEL_CHOICES, default="both", help="curvature-noise model")
    parser.add_argument(
        "--method",
        choices=(*MOMENTUM_METHODS, "adam"),
        default="heavy_ball",
        help="optimizer of the second learning-rate column (PyTorch conventions)",
    )
    parser.add_argument("--momentum", type=float, default=0.9, help="momentum β (heavy_ball, nesterov)")
    parser.add_argument("--beta1", type=float, default=0.9, help="Adam's β₁ (method adam)")
    parser.add_argument(
        "--grad-sq", type=float, default=None, help="Adam: mean squared full gradient per coordinate g²"
    )
    parser.add_argument(
        "--grad-var", type=float, default=None, help="Adam: per-sample gradient variance per coordinate"
    )
    parser.add_argument("--eps", type=float, default=1e-8, help="Adam's ε")
    parser.add_argument(
        "--outputs-per-sample", type=int, default=1, help="outputs per sample C (multiplicative model: n = B·C)"
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")
    parser.add_argument("--explain", action="store_true", help="also print the symbolic derivation")
    parser.set_defaults(func=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    """Compute the predictions for ``args`` and print them; exit code 2 on invalid input."""
    try:
        result = predict(args)
    except (ValueError, TypeError) as exc:
        print(f"batchrmt predict: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2, allow_nan=False))
    else:
        print(format_table(result))
    if args.explain:
        from rmt.symbolic import derivation

        print()
        print(derivation().text())
    return 0


def _second_method(args: argparse.Namespace) -> str | None:
    return None if args.method == "sgd" else args.method


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def predict(args: argparse.Namespace) -> dict[str, Any]:
    """All predictions as a JSON-able dict: ``{"inputs": ..., "models": {model: {...,"rows": [...]}}}``."""
    batch_sizes = np.unique(np.asarray(args.batch_sizes, dtype=np.float64))
    models = ("additive", "multiplicative") if args.model == "both" else (args.model,)
    method = _second_method(args)
    adam_form = "second_moment" if args.grad_sq is not None and args.grad_var is not None else "sqrt_curvature"
    inputs: dict[str, Any] = {
        "lam": args.lam,
        "sigma2": args.sigma2,
        "n_params": args.n_params,
        "batch_sizes": batch_sizes.tolist(),
        "n_data": args.n_data,
        "outputs_per_sample": args.outputs_per_sample,
        "method": args.method,
        "momentum": args.momentum if args.method in ("heavy_ball", "nesterov") else 0.0,
        "beta1": args.beta1,
    }
    if args.method == "adam":
        inputs.update(grad_sq=args.grad_sq, grad_var=args.grad_var, eps=args.eps, adam_form=adam_form)
    out: dict[str, Any] = {"inputs": inputs, "models": {}}
    for model in models:
        common: dict[str, Any] = {
            "model": model,
            "n_data": args.n_data if model == "additive" else None,
            "outputs_per_sample": args.outputs_per_sample,
        }
        curvature = np.atleast_1d(batch_top_curvature(batch_sizes, args.lam, args.sigma2, args.n_params, **common))
        regime = np.atleast_1d(batch_regime(batch_sizes, args.lam, args.sigma2, args.n_params, **common))
        eta_sgd = np.atleast_1d(max_lr_vs_batch(batch_sizes, args.lam, args.sigma2, args.n_params, **common))
        columns: dict[str, np.ndarray] = {"max_lr_sgd": eta_sgd}
        if method == "adam":
            columns["max_lr_adam"] = np.atleast_1d(
                adam_max_lr_vs_batch(
                    batch_sizes, args.lam, args.sigma2, args.n_params, form=adam_form, beta1=args.beta1,
                    grad_sq=args.grad_sq, grad_var=args.grad_var, eps=args.eps, **common,
                )
            )  # fmt: skip
        elif method is not None:
            columns[f"max_lr_{method}"] = np.atleast_1d(
                max_lr_vs_batch(
                    batch_sizes, args.lam, args.sigma2, args.n_params, method=method, momentum=args.momentum,
                    **common,
                )
            )  # fmt: skip
        exponents = {
            f"local_exponent_{name[len('max_lr_'):]}": (
                local_exponent(batch_sizes, values) if batch_sizes.size >= 2 else np.full(batch_sizes.shape, np.nan)
            )
            for name, values in columns.items()
        }
        if model == "additive":
            spread = np.atleast_1d(noise_scale(args.sigma2, args.n_params, batch_sizes, args.n_data))
            spread_name = "noise_scale"
        else:
            spread = args.n_params / (batch_sizes * args.outputs_per_sample)
            spread_name = "aspect_ratio"
        b_star = float(model_critical_batch_size(args.lam, args.sigma2, args.n_params, **common))
        rows = []
        for i, b in enumerate(batch_sizes):
            row: dict[str, Any] = {
                "batch_size": float(b),
                spread_name: float(spread[i]),
                "top_curvature": float(curvature[i]),
                "regime": str(regime[i]),
            }
            row.update({name: float(values[i]) for name, values in columns.items()})
            row.update({name: _finite_or_none(float(values[i])) for name, values in exponents.items()})
            rows.append(row)
        out["models"][model] = {
            "critical_batch_size": _finite_or_none(b_star),
            "max_lr_sgd_large_batch": float(max_lr(abs(args.lam))),
            "rows": rows,
        }
    return out


_MODEL_TITLES = {
    "additive": "additive model (batch Hessian = spiked Wigner, THEORY §1a): ν(B)² = Pσ²κ(B)",
    "multiplicative": "multiplicative model (batch GGN = spiked Wishart, THEORY §2): q = P/(B·C)",
}


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e9:
        return str(int(value))
    return f"{value:.4g}"


def format_table(result: dict[str, Any]) -> str:
    """The human-readable table of :func:`predict`'s result, one block per model."""
    inputs = result["inputs"]
    n_data = "∞" if inputs["n_data"] is None else _fmt(inputs["n_data"])
    lines = [
        f"batchrmt predict: λ_1 = {_fmt(inputs['lam'])}, σ² = {_fmt(inputs['sigma2'])}, "
        f"P = {inputs['n_params']}, N = {n_data}, C = {inputs['outputs_per_sample']}, method = {inputs['method']}"
        + (f" (β = {_fmt(inputs['momentum'])})" if inputs["method"] in ("heavy_ball", "nesterov") else "")
        + (f" (β₁ = {_fmt(inputs['beta1'])}, {inputs['adam_form']} form)" if inputs["method"] == "adam" else "")
    ]
    for model, block in result["models"].items():
        rows = block["rows"]
        b_star = block["critical_batch_size"]
        lines += [
            "",
            _MODEL_TITLES[model],
            f"  critical batch size B* = {_fmt(b_star) if b_star is not None else '∞ (never separates)'}; "
            f"large-B SGD limit 2/λ_1 = {_fmt(block['max_lr_sgd_large_batch'])}",
        ]
        keys = [k for k in rows[0] if k != "batch_size"]
        headers = ["B"] + [_HEADERS.get(k, k) for k in keys]
        table = [[_fmt(row["batch_size"])] + [_fmt(row[k]) for k in keys] for row in rows]
        widths = [max(len(h), *(len(r[j]) for r in table)) for j, h in enumerate(headers)]
        lines.append("  " + "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
        lines += ["  " + "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in table]
    lines += [
        "",
        "η_max = c/λ'_max with c = 2 (SGD), 2(1+β) (heavy ball), 2(1+β)/(1+2β) (Nesterov), 2(1+β₁)/(1−β₁) (Adam);",
        "s = d log η_max / d log B (1/2 at the additive edge, → 1 for multiplicative P ≫ B·C, → 0 far above B*).",
    ]
    return "\n".join(lines)


_HEADERS = {
    "noise_scale": "ν(B)",
    "aspect_ratio": "q",
    "top_curvature": "λ'_max",
    "regime": "regime",
    "max_lr_sgd": "η_SGD",
    "max_lr_heavy_ball": "η_heavy_ball",
    "max_lr_nesterov": "η_nesterov",
    "max_lr_adam": "η_adam",
    "local_exponent_sgd": "s_SGD",
    "local_exponent_heavy_ball": "s_heavy_ball",
    "local_exponent_nesterov": "s_nesterov",
    "local_exponent_adam": "s_adam",
}
