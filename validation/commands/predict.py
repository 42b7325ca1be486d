"""``batchrmt predict``: closed-form predictions of λ'_max(B) and η_max(B) from the random-matrix models.

Pure theory (no network, no data): for each batch size the additive (spiked Wigner, docs/theory.md §1a) and/or
the multiplicative (spiked Wishart, §2) prediction of the top batch-curvature eigenvalue, its regime, the
maximal stable learning rates (§3) and the local exponent ``d log η_max / d log B`` on the given grid.
``--json`` prints the same numbers as JSON; ``--explain`` adds the sympy derivation
(:func:`rmt.symbolic.derivation`).
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

import numpy as np

from validation.commands.common import UsageError

METHOD_CHOICES: tuple[str, ...] = ("sgd", "heavy_ball", "nesterov", "adam")
"""``(*rmt.learning_rates.MOMENTUM_METHODS, "adam")``, repeated so that building the parser (``--help``)
does not import ``rmt`` and scipy (a test checks that the two agree)."""

DEFAULT_BATCH_SIZES: tuple[int, ...] = tuple(2**k for k in range(11))  # 1 … 1024
MODEL_CHOICES: tuple[str, ...] = ("additive", "multiplicative", "both")


def register(subparsers: Any) -> None:
    """Add the ``predict`` subcommand to the ``batchrmt`` parser."""
    parser = subparsers.add_parser(
        "predict",
        help="predict the top batch-curvature eigenvalue and the maximal learning rate versus batch size",
        description=(
            "Random-matrix predictions of the top eigenvalue of the batch Hessian (additive / spiked "
            "Wigner) or batch GGN (multiplicative / spiked Wishart) and of the maximal stable learning rate "
            "per batch size. Defaults: the docs/theory.md check case lam=5, sigma2=1, P=2000, "
            "B = 1, 2, 4, ..., 1024."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--lam", type=float, default=5.0, help="top eigenvalue λ_1 > 0 of the full-data curvature")
    add("--sigma2", type=float, default=1.0, help="per-sample curvature-entry variance σ²")
    add("--n-params", type=int, default=2000, help="number of parameters P")
    add("--batch-sizes", type=float, nargs="+", default=list(DEFAULT_BATCH_SIZES), help="batch sizes B")
    add("--n-data", type=float, default=None, help="training-set size N (additive model; default: ∞)")
    add("--model", choices=MODEL_CHOICES, default="both", help="curvature-noise model")
    add(
        "--method",
        choices=METHOD_CHOICES,
        default="heavy_ball",
        help="optimizer of the second learning-rate column (PyTorch conventions)",
    )
    add("--momentum", type=float, default=0.9, help="momentum β (heavy_ball, nesterov)")
    add("--beta1", type=float, default=0.9, help="Adam's β₁ (method adam)")
    add("--grad-sq", type=float, default=None, help="Adam: mean squared full gradient per coordinate g²")
    add("--grad-var", type=float, default=None, help="Adam: per-sample gradient variance per coordinate")
    add("--eps", type=float, default=1e-8, help="Adam's ε")
    add("--outputs-per-sample", type=int, default=1, help="outputs per sample C (multiplicative: n = B·C)")
    add("--json", action="store_true", help="print machine-readable JSON instead of a table")
    add("--explain", action="store_true", help="also print the symbolic derivation")
    parser.set_defaults(func=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    """Compute the predictions for ``args`` and print them; exit code 2 on invalid input."""
    try:
        result = predict(args)
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    print(json.dumps(result, indent=2, allow_nan=False) if args.json else format_table(result))
    if args.explain:
        from rmt.symbolic import derivation

        print()
        print(derivation().text())
    return 0


def predict(args: argparse.Namespace) -> dict[str, Any]:
    """All predictions as a JSON-able dict ``{"inputs": {...}, "models": {model: {..., "rows": [...]}}}``.

    ``null`` stands for an infinite critical batch size or an undefined exponent (a single batch size).
    """
    from rmt.checks import check_positive

    check_positive(args.lam, "lam")
    batch_sizes = np.unique(np.asarray(args.batch_sizes, dtype=np.float64))
    models = ("additive", "multiplicative") if args.model == "both" else (args.model,)
    has_gradient_stats = args.grad_sq is not None and args.grad_var is not None
    adam_form = "second_moment" if has_gradient_stats else "sqrt_curvature"
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
    blocks = {model: _model_block(args, model, batch_sizes, adam_form) for model in models}
    return {"inputs": inputs, "models": blocks}


def _model_block(
    args: argparse.Namespace, model: str, batch_sizes: np.ndarray, adam_form: str
) -> dict[str, Any]:
    """Critical batch size, large-B limit and per-B rows of one model."""
    from rmt.learning_rates import (
        adam_max_lr_vs_batch,
        batch_regime,
        batch_top_curvature,
        local_exponent,
        max_lr,
        max_lr_vs_batch,
        model_critical_batch_size,
    )
    from rmt.wigner import noise_scale

    spike = (args.lam, args.sigma2, args.n_params)
    common: dict[str, Any] = {
        "model": model,
        "n_data": args.n_data if model == "additive" else None,  # no finite-N correction in the Wishart model
        "outputs_per_sample": args.outputs_per_sample,
    }
    columns: dict[str, np.ndarray] = {
        "top_curvature": np.atleast_1d(batch_top_curvature(batch_sizes, *spike, **common)),
        "regime": np.atleast_1d(batch_regime(batch_sizes, *spike, **common)),
        "max_lr_sgd": np.atleast_1d(max_lr_vs_batch(batch_sizes, *spike, **common)),
    }
    if args.method == "adam":
        columns["max_lr_adam"] = np.atleast_1d(
            adam_max_lr_vs_batch(
                batch_sizes, *spike, form=adam_form, beta1=args.beta1, grad_sq=args.grad_sq,
                grad_var=args.grad_var, eps=args.eps, **common,
            )
        )  # fmt: skip
    elif args.method != "sgd":
        columns[f"max_lr_{args.method}"] = np.atleast_1d(
            max_lr_vs_batch(batch_sizes, *spike, method=args.method, momentum=args.momentum, **common)
        )
    for name in [key for key in columns if key.startswith("max_lr_")]:
        method = name.removeprefix("max_lr_")
        columns[f"local_exponent_{method}"] = (
            local_exponent(batch_sizes, columns[name])
            if batch_sizes.size >= 2
            else np.full(batch_sizes.shape, np.nan)
        )
    if model == "additive":
        nu = noise_scale(args.sigma2, args.n_params, batch_sizes, args.n_data)
        spread = {"noise_scale": np.atleast_1d(nu)}
    else:
        spread = {"aspect_ratio": args.n_params / (batch_sizes * args.outputs_per_sample)}
    columns = {"batch_size": batch_sizes, **spread, **columns}
    rows = [
        {name: _json_value(values[i]) for name, values in columns.items()} for i in range(batch_sizes.size)
    ]
    b_star = float(model_critical_batch_size(*spike, **common))
    return {
        "critical_batch_size": _json_value(b_star),
        "max_lr_sgd_large_batch": float(max_lr(args.lam)),
        "rows": rows,
    }


def _json_value(value: Any) -> str | float | None:
    """A plain JSON value: strings stay, numbers become floats, inf/NaN become null."""
    if isinstance(value, str | np.str_):
        return str(value)
    number = float(value)
    return number if math.isfinite(number) else None


_MODEL_TITLES = {
    "additive": "additive model (batch Hessian = spiked Wigner, docs/theory.md §1a): ν(B)² = Pσ²κ(B)",
    "multiplicative": "multiplicative model (batch GGN = spiked Wishart, docs/theory.md §2): q = P/(B·C)",
}

_HEADERS = {
    "batch_size": "B",
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
    method = inputs["method"]
    detail = ""
    if method in ("heavy_ball", "nesterov"):
        detail = f" (β = {_fmt(inputs['momentum'])})"
    elif method == "adam":
        detail = f" (β₁ = {_fmt(inputs['beta1'])}, {inputs['adam_form']} form)"
    lines = [
        f"batchrmt predict: λ_1 = {_fmt(inputs['lam'])}, σ² = {_fmt(inputs['sigma2'])}, "
        f"P = {inputs['n_params']}, N = {n_data}, C = {inputs['outputs_per_sample']}, "
        f"method = {method}{detail}"
    ]
    for model, block in result["models"].items():
        b_star = block["critical_batch_size"]
        lines += [
            "",
            _MODEL_TITLES[model],
            f"  critical batch size B* = {_fmt(b_star) if b_star is not None else '∞ (never separates)'}; "
            f"large-B SGD limit 2/λ_1 = {_fmt(block['max_lr_sgd_large_batch'])}",
        ]
        keys = list(block["rows"][0])
        table = [[_HEADERS.get(k, k) for k in keys]] + [[_fmt(row[k]) for k in keys] for row in block["rows"]]
        widths = [max(len(r[j]) for r in table) for j in range(len(keys))]
        lines += ["  " + "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in table]
    lines += [
        "",
        "η_max = c/λ'_max with c = 2 (SGD), 2(1+β) (heavy ball), 2(1+β)/(1+2β) (Nesterov),",
        "2(1+β₁)/(1−β₁) (Adam, frozen preconditioner);",
        "s = d log η_max / d log B on this grid (1/2 at the additive edge, → 1 for multiplicative P ≫ B·C,",
        "→ 0 far above B*). Regime: 'outlier' once the top spike has separated from the noise bulk (B > B*).",
    ]
    return "\n".join(lines)
