"""Input contract of every public entry point of networks.curvature and networks.lanczos (hypothesis).

Each entry starts from a valid call on a tiny model (P = 43) and replaces one or two arguments by values
drawn from a pool of wrong types, wrong shapes, wrong dtypes, complex, non-finite, out-of-range and hostile
values (a non-symmetric or NaN operator, out-of-range labels, a model of the wrong width, ...). A call must
either return finite values or raise ``ValueError``/``TypeError``; when a single argument was replaced, the
message must name it (or the object that carries it). Any other exception fails. ``test_every_public_name_
has_an_entry`` fails when a public name of either module has no entry here.

Examples per entry: ``FUZZ_EXAMPLES`` (environment; default 260, about 5,000 calls in all, ≈ 25 s on one
core; a nightly-style run: ``FUZZ_EXAMPLES=5000``). ``CI=1`` (the ``ci`` profile) derandomises.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

import networks.curvature as curvature
import networks.eigensolver as eigensolver_module
import networks.krylov as krylov_module
import networks.lanczos as lanczos_module
import networks.slq as slq_module
from networks.curvature import (
    CurvatureOperator,
    GGNOperator,
    HessianOperator,
    PreconditionedOperator,
    adam_preconditioner_diagonal,
    adam_second_moment,
    as_operator,
    batch_noise_norm,
    curvature_operator,
    hessian_vector_product,
    loss_output_hvp,
    per_sample_curvature,
    per_sample_ggn,
    per_sample_hessian,
    per_sample_noise,
    preconditioned_top_eigenvalue,
    quadratic_form_variance,
)
from networks.lanczos import (
    default_num_lanczos_vectors,
    eigenvalue_error_bounds,
    lanczos,
    slq_density,
    symmetry_tol,
    top_eigenpairs,
    top_eigenvalues,
)
from tests.networks.reference import F64, mlp, spiked_matrix, vector_data

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "260"))
P = 43  # parameters of reference.mlp()


# ------------------------------------------------------------------------------------------ hostile values
def _nan_model() -> nn.Module:
    net = mlp()
    with torch.no_grad():
        net[0].weight[0, 0] = float("nan")
    return net


class _NotSymmetric:
    """A scipy-like linear operator A = S + K with a skew part K (wrongly flagged symmetric by nobody)."""

    def __init__(self, size: int = 60) -> None:
        rng = np.random.default_rng(0)
        s = rng.standard_normal((size, size))
        self.matrix = s + s.T + 3 * (s - s.T)
        self.shape = (size, size)
        self.dtype = np.dtype(np.float64)

    def matvec(self, v: np.ndarray) -> np.ndarray:
        return self.matrix @ v


def _pool() -> list[Callable[[], Any]]:
    """Factories of hostile values (fresh objects for every call)."""
    g = torch.Generator().manual_seed(0)
    return [
        lambda: None,
        lambda: 0,
        lambda: -1,
        lambda: 1,
        lambda: 2,
        lambda: 10**12,
        lambda: 2**70,
        lambda: 0.5,
        lambda: float("nan"),
        lambda: float("inf"),
        lambda: -float("inf"),
        lambda: 1e300,
        lambda: True,
        lambda: 1j,
        lambda: "x",
        lambda: "BE",
        lambda: "train",
        lambda: "ggn",
        lambda: [],
        lambda: {},
        lambda: object(),
        lambda: (torch.zeros(3), torch.zeros(4)),
        lambda: torch.zeros(0),
        lambda: torch.randn(P, generator=g, dtype=F64).to(torch.complex128),
        lambda: torch.full((P,), float("nan"), dtype=F64),
        lambda: torch.randn(P + 1, generator=g, dtype=F64),
        lambda: torch.randn(P, 2, 1, generator=g, dtype=F64),
        lambda: torch.ones(P, dtype=torch.bool),
        lambda: torch.arange(P),
        lambda: torch.randn(P, generator=g, dtype=torch.float32),
        lambda: torch.randn(P, 2, generator=g, dtype=F64),
        lambda: np.full(P, np.nan),
        lambda: np.ones(P, dtype=np.complex128),
        lambda: np.array(["a"] * P, dtype=object),
        lambda: np.random.default_rng(0).standard_normal(P),
        lambda: np.full((5, 5), np.nan),
        lambda: _NotSymmetric(),
        lambda: torch.randn(12, 7, generator=g, dtype=F64),  # x of the wrong width
        lambda: torch.randn(12, 4, generator=g, dtype=torch.float32),  # x of the wrong dtype
        lambda: torch.full((12,), 7),  # labels outside [0, 3)
        lambda: torch.full((12,), -2),
        lambda: torch.randn(12, 4, generator=g, dtype=F64).to(torch.complex128),
        lambda: (vector_data()[0], torch.full((12,), 5)),  # a batch with out-of-range labels
        lambda: [(vector_data()[0], vector_data()[1][:5])],
        lambda: [vector_data(), (torch.zeros(0, 4, dtype=F64), torch.zeros(0, dtype=torch.long))],
        lambda: nn.Identity(),
        lambda: nn.Linear(7, 3).to(F64),
        lambda: _nan_model(),
        lambda: nn.CrossEntropyLoss(reduction="sum"),
        lambda: nn.MSELoss(),
        lambda: torch.float16,
        lambda: torch.int64,
        lambda: "cuda:7",
    ]


POOL = _pool()


# ----------------------------------------------------------------------------------------------- entries
@dataclasses.dataclass(frozen=True)
class Entry:
    """A valid call (``valid()`` → keyword arguments) and how to make it (``call(kwargs)``).

    ``aliases`` maps an argument to other words an error about it may use (e.g. x → "data")."""

    valid: Callable[[], dict[str, Any]]
    call: Callable[[dict[str, Any]], Any]
    aliases: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)


def _model_args() -> dict[str, Any]:
    x, y = vector_data(12)
    return {"model": mlp(), "loss_fn": nn.CrossEntropyLoss(), "data": (x, y)}


def _vec() -> Tensor:
    return torch.randn(P, dtype=F64, generator=torch.Generator().manual_seed(5))


MODEL_ALIASES = {
    "data": ("data", "x", "y", "pair"),
    "loss_fn": ("loss_fn", "y", "data", "reduction"),
    "model": ("model", "data", "param", "curvature", "product", "operator", "vector", "shape"),
    "vector": ("vector", "operand", "block", "shape"),
    "bn_mode": ("bn_mode",),
    "method": ("method",),
}


def _operator_entry(cls: type) -> Entry:
    def valid() -> dict[str, Any]:
        return {**_model_args(), "bn_mode": "eval", "method": "auto", "vector": _vec()}

    def call(kw: dict[str, Any]) -> Any:
        op = cls(kw["model"], kw["loss_fn"], kw["data"], bn_mode=kw["bn_mode"], method=kw["method"])
        return op @ kw["vector"], op.provenance()["num_products"]

    return Entry(valid, call, MODEL_ALIASES)


def _hvp_entry() -> Entry:
    def valid() -> dict[str, Any]:
        return {**_model_args(), "bn_mode": "train", "vector": _vec()}

    def call(kw: dict[str, Any]) -> Any:
        return hessian_vector_product(
            kw["model"], kw["loss_fn"], kw["data"], kw["vector"], bn_mode=kw["bn_mode"]
        )

    return Entry(valid, call, MODEL_ALIASES)


def _curvature_operator_entry() -> Entry:
    def valid() -> dict[str, Any]:
        return {"matrix": "ggn", **_model_args(), "vector": _vec()}

    def call(kw: dict[str, Any]) -> Any:
        return curvature_operator(kw["matrix"], kw["model"], kw["loss_fn"], kw["data"]) @ kw["vector"]

    return Entry(valid, call, MODEL_ALIASES)


def _loss_output_hvp_entry() -> Entry:
    def valid() -> dict[str, Any]:
        g = torch.Generator().manual_seed(2)
        return {
            "loss_fn": nn.CrossEntropyLoss(),
            "output": torch.randn(12, 3, generator=g, dtype=F64),
            "target": torch.randint(0, 3, (12,), generator=g),
            "vector": torch.randn(12, 3, generator=g, dtype=F64),
        }

    def call(kw: dict[str, Any]) -> Any:
        return loss_output_hvp(kw["loss_fn"], kw["output"], kw["target"], kw["vector"])

    return Entry(valid, call, {"loss_fn": ("loss_fn", "target"), "output": ("output", "target", "vector")})


def _noise_aliases() -> dict[str, tuple[str, ...]]:
    model = (*MODEL_ALIASES["model"], "directions")
    return {
        **MODEL_ALIASES,
        "model": model,
        "x": ("x", "data"),
        "y": ("y", "x", "data"),
        "batches": ("batches", "data"),
    }


def _per_sample_entry() -> Entry:
    def valid() -> dict[str, Any]:
        x, y = vector_data(12)
        return {
            "model": mlp(), "loss_fn": nn.CrossEntropyLoss(), "x": x, "y": y, "matrix": "hessian",
            "num_samples": 4, "num_probes": 2, "seed": 0, "chunk_size": 3,
        }  # fmt: skip

    def call(kw: dict[str, Any]) -> Any:
        rest = {k: v for k, v in kw.items() if k not in ("model", "loss_fn", "x", "y")}
        return per_sample_noise(kw["model"], kw["loss_fn"], kw["x"], kw["y"], **rest)

    return Entry(valid, call, _noise_aliases())


def _per_sample_curvature_entry(function: Callable[..., Any], **extra: Any) -> Entry:
    """per_sample_hessian / per_sample_ggn / per_sample_curvature on a tiny MLP."""

    def valid() -> dict[str, Any]:
        x, y = vector_data(6)
        return {"model": mlp(), "loss_fn": nn.CrossEntropyLoss(), "x": x, "y": y, "chunk_size": 4, **extra}

    def call(kw: dict[str, Any]) -> Any:
        rest = {k: v for k, v in kw.items() if k not in ("model", "loss_fn", "x", "y")}
        return function(kw["model"], kw["loss_fn"], kw["x"], kw["y"], **rest)

    return Entry(valid, call, _noise_aliases())


def _batch_noise_entry() -> Entry:
    def valid() -> dict[str, Any]:
        x, y = vector_data(12)
        return {
            "model": mlp(), "loss_fn": nn.CrossEntropyLoss(), "data": (x, y),
            "batches": [(x[:4], y[:4]), (x[4:], y[4:])], "matrix": "ggn", "num_probes": 2, "seed": 1,
            "bn_mode": "eval",
        }  # fmt: skip

    def call(kw: dict[str, Any]) -> Any:
        rest = {k: v for k, v in kw.items() if k not in ("model", "loss_fn", "data", "batches")}
        return batch_noise_norm(kw["model"], kw["loss_fn"], kw["data"], kw["batches"], **rest)

    return Entry(valid, call, _noise_aliases())


def _quadratic_entry() -> Entry:
    def valid() -> dict[str, Any]:
        x, y = vector_data(12)
        return {
            "model": mlp(), "loss_fn": nn.CrossEntropyLoss(), "batches": [(x[:6], y[:6]), (x[6:], y[6:])],
            "directions": torch.randn(P, 2, dtype=F64, generator=torch.Generator().manual_seed(3)),
            "matrix": "hessian", "bn_mode": "eval",
        }  # fmt: skip

    def call(kw: dict[str, Any]) -> Any:
        rest = {k: v for k, v in kw.items() if k not in ("model", "loss_fn", "batches", "directions")}
        return quadratic_form_variance(kw["model"], kw["loss_fn"], kw["batches"], kw["directions"], **rest)

    return Entry(valid, call, _noise_aliases())


def _algebra_entry() -> Entry:
    """CurvatureOperator: @ (numpy and torch), +, -, *, /, to_scipy, to_dense on model and dense operators."""

    def valid() -> dict[str, Any]:
        model = mlp()
        x, y = vector_data(12)
        return {
            "left": HessianOperator(model, nn.CrossEntropyLoss(), (x, y)),
            "right": as_operator(np.eye(P)),
            "scalar": 2.0,
            "vector": _vec(),
        }

    def call(kw: dict[str, Any]) -> Any:
        left, right, scalar, vector = kw["left"], kw["right"], kw["scalar"], kw["vector"]
        if not isinstance(left, CurvatureOperator):
            left = as_operator(left)
        combined = (left - right) * scalar + left / scalar
        out = combined @ vector
        scipy_out = (
            left.to_scipy().matvec(np.asarray(vector, dtype=np.float64))
            if isinstance(vector, np.ndarray)
            else None
        )
        return out, scipy_out

    aliases = {
        "left": ("op", "matrix", "operator", "linear", "CurvatureOperator", "vector", "product"),
        "right": ("operand", "combine", "matrix", "CurvatureOperator", "operator", "product", "shape"),
        "scalar": ("scale", "divide", "operand", "unsupported", "multiply"),
        "vector": ("vector", "operand", "block", "shape", "matvec"),
    }
    return Entry(valid, call, aliases)


def _second_moment_entry() -> Entry:
    """adam_second_moment: two warm-up batches at the tiny MLP's weights."""

    def valid() -> dict[str, Any]:
        x, y = vector_data(12)
        return {
            "model": mlp(), "loss_fn": nn.CrossEntropyLoss(), "batches": [(x[:6], y[:6]), (x[6:], y[6:])],
            "beta2": 0.999, "bn_mode": "eval", "params": None,
        }  # fmt: skip

    def call(kw: dict[str, Any]) -> Any:
        rest = {k: v for k, v in kw.items() if k not in ("model", "loss_fn", "batches")}
        return adam_second_moment(kw["model"], kw["loss_fn"], kw["batches"], **rest)

    aliases = {**_noise_aliases(), "params": ("params", "model"), "beta2": ("beta2",)}
    return Entry(valid, call, aliases)


def _preconditioner_diagonal_entry() -> Entry:
    def valid() -> dict[str, Any]:
        return {"v_hat": _vec().square(), "eps": 1e-8}

    return Entry(valid, lambda kw: adam_preconditioner_diagonal(kw["v_hat"], kw["eps"]))


def _diagonal() -> Tensor:
    """A valid preconditioner: entries of √v̂ + ε spread over three decades."""
    return torch.logspace(-3, 0, P, dtype=F64)


PRECONDITIONED_ALIASES = {
    "base": ("base", "CurvatureOperator"),
    "diagonal": ("diagonal", "preconditioner"),
    "vector": ("vector", "operand", "block", "shape"),
}


def _preconditioned_operator_entry() -> Entry:
    def valid() -> dict[str, Any]:
        x, y = vector_data(12)
        return {
            "base": HessianOperator(mlp(), nn.CrossEntropyLoss(), (x, y)),
            "diagonal": _diagonal(),
            "vector": _vec(),
        }

    def call(kw: dict[str, Any]) -> Any:
        op = PreconditionedOperator(kw["base"], kw["diagonal"])
        return op @ kw["vector"], op.provenance()["num_products"]

    return Entry(valid, call, PRECONDITIONED_ALIASES)


def _preconditioned_top_entry() -> Entry:
    def valid() -> dict[str, Any]:
        x, y = vector_data(12)
        return {
            "base": HessianOperator(mlp(), nn.CrossEntropyLoss(), (x, y)),
            "diagonal": _diagonal(), "tol": 1e-6, "max_products": 60, "seed": 2, "stopping": "eigenvalue",
        }  # fmt: skip

    def call(kw: dict[str, Any]) -> Any:
        rest = {k: v for k, v in kw.items() if k not in ("base", "diagonal")}
        return preconditioned_top_eigenvalue(kw["base"], kw["diagonal"], **rest)

    return Entry(valid, call, PRECONDITIONED_ALIASES)


def _as_operator_entry() -> Entry:
    def valid() -> dict[str, Any]:
        return {"obj": spiked_matrix(20, (5.0,))[0], "vector": np.ones(20)}

    def call(kw: dict[str, Any]) -> Any:
        return as_operator(kw["obj"]) @ kw["vector"]

    aliases = {
        "obj": ("matrix", "operator", "CurvatureOperator", "linear", "operand", "vector", "shape"),
        "vector": ("operand", "block", "vector", "shape"),
    }
    return Entry(valid, call, aliases)


def _matrix() -> np.ndarray:
    return spiked_matrix(60, (8.0, 5.0, -4.0))[0]


def _lanczos_entry() -> Entry:
    def valid() -> dict[str, Any]:
        return {
            "op": _matrix(), "num_steps": 12, "start": None, "seed": 0, "return_vectors": True,
            "basis_device": None, "reorthogonalization": "full", "tol": 1e-6,
        }  # fmt: skip

    def call(kw: dict[str, Any]) -> Any:
        rest = {k: v for k, v in kw.items() if k not in ("op", "num_steps")}
        result = lanczos(kw["op"], kw["num_steps"], **rest)
        return result, result.tridiagonal()

    return Entry(valid, call, {"op": ("op", "matrix", "operator", "symmetric", "product", "linear")})


def _top_entry(fn: Callable[..., Any]) -> Entry:
    def valid() -> dict[str, Any]:
        return {"op": _matrix(), "k": 2, "which": "BE", "tol": 1e-6, "max_products": 200, "seed": 3}

    def call(kw: dict[str, Any]) -> Any:
        return fn(kw["op"], kw["k"], kw["which"], kw["tol"], kw["max_products"], kw["seed"])

    return Entry(valid, call, {"op": ("op", "matrix", "operator", "symmetric", "product", "linear")})


def _top_keyword_entry() -> Entry:
    def valid() -> dict[str, Any]:
        return {
            "op": _matrix(),
            "k": 1,
            "num_lanczos_vectors": 8,
            "basis_device": "cpu",
            "return_eigenvectors": True,
            "stopping": "eigenvalue",
        }

    def call(kw: dict[str, Any]) -> Any:
        return top_eigenpairs(
            kw["op"], kw["k"], return_eigenvectors=kw["return_eigenvectors"],
            num_lanczos_vectors=kw["num_lanczos_vectors"], basis_device=kw["basis_device"],
            stopping=kw["stopping"],
        )  # fmt: skip

    return Entry(valid, call, {"op": ("op", "matrix", "operator", "symmetric", "product", "linear")})


def _slq_entry() -> Entry:
    def valid() -> dict[str, Any]:
        return {
            "op": _matrix(), "num_probes": 2, "num_steps": 8, "grid": None, "grid_size": 64, "sigma": None,
            "seed": 0, "reorthogonalization": "none",
        }  # fmt: skip

    def call(kw: dict[str, Any]) -> Any:
        rest = {k: v for k, v in kw.items() if k not in ("op",)}
        density = slq_density(kw["op"], **rest)
        return density, density.moment(2), density.probe_moments(1)

    return Entry(valid, call, {"op": ("op", "matrix", "operator", "symmetric", "product", "linear")})


def _moment_entry() -> Entry:
    """SpectralDensity.moment / probe_moments (the result type's methods that take input)."""

    density = slq_density(_matrix(), 2, 6, grid_size=16)

    def call(kw: dict[str, Any]) -> Any:
        return density.moment(kw["j"]), density.probe_moments(kw["j"])

    return Entry(lambda: {"j": 3}, call)


def _result_entry(make: Callable[[], Any]) -> Entry:
    """A result dataclass: built by a valid call, then its fields must be finite."""

    return Entry(dict, lambda kw: make())


def _error_bounds_entry() -> Entry:
    def valid() -> dict[str, Any]:
        return {"theta": np.array([-1.0, 0.5, 2.0]), "residuals": np.array([0.1, 0.2, 1e-3])}

    return Entry(valid, lambda kw: eigenvalue_error_bounds(kw["theta"], kw["residuals"]))


def _ncv_entry() -> Entry:
    return Entry(lambda: {"k": 3, "size": 50}, lambda kw: default_num_lanczos_vectors(kw["k"], kw["size"]))


def _symmetry_entry() -> Entry:
    return Entry(lambda: {"dtype": torch.float32}, lambda kw: symmetry_tol(kw["dtype"]))


def _constant_entry(name: str) -> Entry:
    """A named default: it must be a finite positive number (no arguments to fuzz)."""

    def call(kw: dict[str, Any]) -> Any:
        value = getattr(lanczos_module, name)
        assert isinstance(value, (int, float)) and 0 < value < float("inf")
        return value

    return Entry(dict, call)


ENTRIES: dict[str, Entry] = {
    # networks.curvature
    "HessianOperator": _operator_entry(HessianOperator),
    "GGNOperator": _operator_entry(GGNOperator),
    "CurvatureOperator": _algebra_entry(),
    "as_operator": _as_operator_entry(),
    "hessian_vector_product": _hvp_entry(),
    "curvature_operator": _curvature_operator_entry(),
    "loss_output_hvp": _loss_output_hvp_entry(),
    "per_sample_noise": _per_sample_entry(),
    "batch_noise_norm": _batch_noise_entry(),
    "per_sample_ggn": _per_sample_curvature_entry(per_sample_ggn),
    "per_sample_hessian": _per_sample_curvature_entry(
        per_sample_hessian, lanczos_steps=4, trace_probes=2, seed=0
    ),
    "per_sample_curvature": _per_sample_curvature_entry(
        per_sample_curvature, lanczos_steps=4, trace_probes=2, seed=0
    ),
    "PerSampleGGN": _result_entry(lambda: per_sample_ggn(mlp(), nn.CrossEntropyLoss(), *vector_data(4))),
    "PerSampleCurvatureStats": _result_entry(
        lambda: per_sample_curvature(mlp(), nn.CrossEntropyLoss(), *vector_data(4), lanczos_steps=3)
    ),
    "quadratic_form_variance": _quadratic_entry(),
    "NoiseEstimate": _result_entry(
        lambda: per_sample_noise(mlp(), nn.CrossEntropyLoss(), *vector_data(6), num_samples=3, num_probes=1)
    ),
    "BatchNoiseEstimate": _result_entry(
        lambda: batch_noise_norm(mlp(), nn.CrossEntropyLoss(), vector_data(8), [vector_data(4)], num_probes=2)
    ),
    "QuadraticFormStats": _result_entry(
        lambda: quadratic_form_variance(
            mlp(), nn.CrossEntropyLoss(), [vector_data(4), vector_data(5, 1)], _vec()
        )
    ),
    "adam_second_moment": _second_moment_entry(),
    "adam_preconditioner_diagonal": _preconditioner_diagonal_entry(),
    "PreconditionedOperator": _preconditioned_operator_entry(),
    "preconditioned_top_eigenvalue": _preconditioned_top_entry(),
    # networks.lanczos
    "lanczos": _lanczos_entry(),
    "top_eigenpairs": _top_entry(top_eigenpairs),
    "top_eigenpairs[keywords]": _top_keyword_entry(),
    "top_eigenvalues": _top_entry(top_eigenvalues),
    "slq_density": _slq_entry(),
    "SpectralDensity": _moment_entry(),
    "LanczosResult": _result_entry(lambda: lanczos(_matrix(), 5)),
    "EigenResult": _result_entry(lambda: top_eigenpairs(_matrix(), 2, "LM")),
    "default_num_lanczos_vectors": _ncv_entry(),
    "eigenvalue_error_bounds": _error_bounds_entry(),
    "symmetry_tol": _symmetry_entry(),
    **{name: _constant_entry(name) for name in lanczos_module.__all__ if name.isupper()},
}


def test_every_public_name_has_an_entry() -> None:
    modules = (lanczos_module, krylov_module, eigensolver_module, slq_module)
    public = set(curvature.__all__).union(*(module.__all__ for module in modules))
    missing = sorted(public - {name.split("[")[0] for name in ENTRIES})
    assert not missing, f"public names without a fuzz entry: {missing}"


# ------------------------------------------------------------------------------------------------ checks
def assert_finite(value: Any, path: str = "result") -> None:
    """Every number reachable from ``value`` is finite (``stderr`` of a single value is NaN by design)."""
    if isinstance(value, Tensor):
        assert bool(torch.isfinite(value).all()), path
    elif isinstance(value, np.ndarray):
        if np.issubdtype(value.dtype, np.number):
            assert np.isfinite(value).all(), path
    elif isinstance(value, (float, np.floating)):
        assert np.isfinite(value), path
    elif isinstance(value, (tuple, list)):
        for i, item in enumerate(value):
            assert_finite(item, f"{path}[{i}]")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        single = getattr(value, "values", np.zeros(2)).size == 1
        for field in dataclasses.fields(value):
            if field.name == "stderr" and single:
                continue
            assert_finite(getattr(value, field.name), f"{path}.{field.name}")
        if hasattr(value, "eigenvalues") and hasattr(value, "residuals"):
            assert value.eigenvalues.size == 0 or value.residuals.size == value.eigenvalues.size


def _mentions(message: str, names: tuple[str, ...]) -> bool:
    low = message.lower()
    return any(n.lower() in low for n in names)


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_valid_call_returns_finite_values(name: str) -> None:
    entry = ENTRIES[name]
    assert_finite(entry.call(entry.valid()))


@pytest.mark.parametrize("name", sorted(ENTRIES))
@settings(max_examples=EXAMPLES, deadline=None)
@given(data=st.data())
def test_hostile_arguments_raise_value_or_type_error(name: str, data: st.DataObject) -> None:
    entry = ENTRIES[name]
    kwargs = entry.valid()
    if not kwargs:
        return
    keys = data.draw(st.lists(st.sampled_from(sorted(kwargs)), min_size=1, max_size=2, unique=True), "keys")
    for key in keys:
        kwargs[key] = POOL[data.draw(st.integers(0, len(POOL) - 1), key)]()
    try:
        result = entry.call(kwargs)
    except (ValueError, TypeError) as exc:
        message = str(exc)
        assert message, "an error needs a message"
        if len(keys) == 1:
            names = (keys[0], *entry.aliases.get(keys[0], ()))
            assert _mentions(message, names), f"error for {keys[0]!r} does not name it: {message}"
        return
    assert_finite(result)


def test_contract_examples_from_the_issue() -> None:
    """The reproduced failures of issue 11: each is now a named ValueError/TypeError."""
    model, (x, y) = mlp(), vector_data(12)
    bad_y = y.clone()
    bad_y[0] = 3
    for cls in (HessianOperator, GGNOperator):
        with pytest.raises(ValueError, match=r"y must hold class labels in \[0, 3\)"):
            cls(model, nn.CrossEntropyLoss(), (x, bad_y)) @ _vec()
    op = HessianOperator(model, nn.CrossEntropyLoss(), (x, y))
    with pytest.raises(TypeError, match="complex"):
        op @ _vec().to(torch.complex128)
    with pytest.raises(TypeError, match="complex"):
        op @ np.ones(P, dtype=np.complex128)
    with pytest.raises(ValueError, match="finite"):
        top_eigenpairs(np.full((30, 30), np.nan))
    with pytest.raises(ValueError, match="not finite"):
        top_eigenpairs(HessianOperator(_nan_model(), nn.CrossEntropyLoss(), (x, y)), num_lanczos_vectors=5)
    with pytest.raises(ValueError, match="symmetric"):
        top_eigenpairs(_NotSymmetric())
    with pytest.raises(ValueError, match="symmetric"):
        top_eigenpairs(_NotSymmetric(10))  # dense path
    with pytest.raises(TypeError, match="model"):
        per_sample_noise(None, nn.CrossEntropyLoss(), x, y)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="directions"):
        quadratic_form_variance(model, nn.CrossEntropyLoss(), [(x[:6], y[:6]), (x[6:], y[6:])], None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="data"):
        HessianOperator(nn.Linear(7, 3).to(F64), nn.CrossEntropyLoss(), (x, y)) @ torch.zeros(24, dtype=F64)
    with pytest.raises(TypeError, match="dtype"):
        HessianOperator(model, nn.CrossEntropyLoss(), (x.float(), y))
    with pytest.raises(ValueError, match="divide"):
        op / 0
