"""Every public function of rmt.wigner / rmt.wishart / rmt.bulk rejects bad input with a message
naming the argument.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from rmt import bulk, wigner, wishart

NAN = math.nan
BULK = [-1.0, 1.0]

# function -> (good keyword arguments, {argument: [(bad value, exception, message fragment), ...]})
TYPE_BAD = [
    ("x", TypeError, "real number"),
    (None, TypeError, "real number"),
    (True, TypeError, "real number"),
]
NAN_BAD = [(NAN, ValueError, "NaN")]
NEG = [(-1.0, ValueError, ">= 0")]
NONPOS = [(0.0, ValueError, "> 0"), (-2.0, ValueError, "> 0")]
BATCH = [(0.5, ValueError, ">= 1"), (math.inf, ValueError, "finite")]
NDATA = [(1.0, ValueError, ">= 2"), ("many", TypeError, "real number")]

CASES: dict[Callable[..., Any], tuple[dict[str, Any], dict[str, list[tuple[Any, type, str]]]]] = {
    wigner.kappa: ({"batch_size": 10, "n_data": 100}, {"batch_size": BATCH + NAN_BAD, "n_data": NDATA}),
    wigner.noise_scale: (
        {"sigma2": 1.0, "n_params": 100, "batch_size": 10, "n_data": 100},
        {
            "sigma2": NEG + NAN_BAD + TYPE_BAD,
            "n_params": NONPOS,
            "batch_size": BATCH + [(200, ValueError, "<= n_data")],
            "n_data": NDATA,
        },
    ),
    wigner.wigner_outlier: ({"theta": 2.0, "nu": 1.0}, {"theta": NAN_BAD + TYPE_BAD, "nu": NEG + NAN_BAD}),
    wigner.wigner_overlap: ({"theta": 2.0, "nu": 1.0}, {"theta": NAN_BAD + TYPE_BAD, "nu": NEG}),
    wigner.outlier_fluctuation_sd: (
        {"theta": 2.0, "nu": 1.0, "n_params": 10},
        {"theta": NAN_BAD, "nu": NEG, "n_params": NONPOS},
    ),
    wigner.semicircle_density: ({"x": 0.0, "nu": 1.0}, {"x": NAN_BAD + TYPE_BAD, "nu": NONPOS}),
    wigner.semicircle_edge: ({"nu": 1.0}, {"nu": NEG + TYPE_BAD}),
    wigner.batch_hessian_extremal: (
        {"lam": 2.0, "sigma2": 1.0, "n_params": 100, "batch_size": 10},
        {"lam": NAN_BAD + TYPE_BAD, "sigma2": NEG, "n_params": NONPOS, "batch_size": BATCH},
    ),
    wigner.critical_batch_size: (
        {"lam": 2.0, "sigma2": 1.0, "n_params": 100, "n_data": 1000},
        {"lam": NAN_BAD + TYPE_BAD, "sigma2": NONPOS, "n_params": NONPOS, "n_data": NDATA},
    ),
    wishart.marchenko_pastur_edges: (
        {"sigma2": 1.0, "q": 0.5},
        {"sigma2": NONPOS + TYPE_BAD, "q": NONPOS + NAN_BAD},
    ),
    wishart.marchenko_pastur_atom: ({"q": 0.5}, {"q": NONPOS + TYPE_BAD}),
    wishart.marchenko_pastur_density: (
        {"x": 1.0, "sigma2": 1.0, "q": 0.5},
        {"x": NAN_BAD + TYPE_BAD, "sigma2": NONPOS, "q": NONPOS},
    ),
    wishart.wishart_outlier: (
        {"ell": 3.0, "sigma2": 1.0, "q": 0.5},
        {"ell": NEG + NAN_BAD + TYPE_BAD, "sigma2": NONPOS, "q": NONPOS},
    ),
    wishart.wishart_overlap: (
        {"ell": 3.0, "sigma2": 1.0, "q": 0.5},
        {"ell": NEG, "sigma2": NONPOS, "q": NONPOS},
    ),
    wishart.wishart_outlier_fluctuation_sd: (
        {"ell": 3.0, "sigma2": 1.0, "q": 0.5, "n_samples": 10},
        {"ell": NEG, "sigma2": NONPOS, "q": NONPOS, "n_samples": NONPOS + TYPE_BAD},
    ),
    wishart.batch_ggn_extremal: (
        {"lam": 3.0, "sigma2": 1.0, "n_params": 100, "batch_size": 10, "outputs_per_sample": 2},
        {
            "lam": NEG + TYPE_BAD,
            "sigma2": NONPOS,
            "n_params": NONPOS,
            "batch_size": BATCH,
            "outputs_per_sample": NONPOS,
        },
    ),
}

MEASURE_BAD = [
    ([], ValueError, "non-empty"),
    ([[1.0, 2.0], [3.0, 4.0]], ValueError, "1-D"),
    ([1.0, NAN], ValueError, "NaN"),
    ("abc", TypeError, "real number"),
]
WEIGHTS_BAD = [
    ([1.0], ValueError, "shape"),
    ([1.0, -1.0], ValueError, ">= 0"),
    ([0.0, 0.0], ValueError, "positive sum"),
]
PSD_BAD = MEASURE_BAD + [([-1.0, 1.0], ValueError, ">= 0"), ([0.0, 0.0], ValueError, "positive value")]
SCALAR_ONLY = [(np.array([1.0, 2.0]), ValueError, "scalar")]

CASES.update(
    {
        bulk.bulk_spike_outlier: (
            {"theta": 3.0, "nu": 1.0, "bulk_eigenvalues": BULK, "bulk_weights": [0.5, 0.5]},
            {
                "theta": NAN_BAD + TYPE_BAD,
                "nu": NEG,
                "bulk_eigenvalues": MEASURE_BAD,
                "bulk_weights": WEIGHTS_BAD,
            },
        ),
        bulk.bulk_spike_overlap: (
            {"theta": 3.0, "nu": 1.0, "bulk_eigenvalues": BULK},
            {"theta": NAN_BAD, "nu": NEG + TYPE_BAD, "bulk_eigenvalues": MEASURE_BAD},
        ),
        bulk.critical_noise_variance: (
            {"theta": 3.0, "bulk_eigenvalues": BULK, "bulk_weights": [0.5, 0.5]},
            {"theta": NAN_BAD + TYPE_BAD, "bulk_eigenvalues": MEASURE_BAD, "bulk_weights": WEIGHTS_BAD},
        ),
        bulk.free_convolution_edges: (
            {"nu": 1.0, "bulk_eigenvalues": BULK},
            {"nu": NONPOS + TYPE_BAD + SCALAR_ONLY, "bulk_eigenvalues": MEASURE_BAD},
        ),
        bulk.free_convolution_density: (
            {"x": 0.0, "nu": 1.0, "bulk_eigenvalues": BULK},
            {"x": NAN_BAD + TYPE_BAD, "nu": NONPOS + SCALAR_ONLY, "bulk_eigenvalues": MEASURE_BAD},
        ),
        bulk.free_convolution_stieltjes: (
            {"z": 0.5 + 1j, "nu": 1.0, "bulk_eigenvalues": BULK},
            {
                "z": [
                    (0.5 - 1j, ValueError, "upper half plane"),
                    ("z", TypeError, "complex"),
                    (complex(NAN, 1), ValueError, "finite"),
                ],
                "nu": NONPOS,
            },
        ),
        bulk.free_convolution_subordination: (
            {"z": 0.5 + 1j, "nu": 1.0, "bulk_eigenvalues": BULK},
            {"z": [(0.5 - 1j, ValueError, "upper half plane"), (None, TypeError, "complex")], "nu": NONPOS},
        ),
        bulk.wishart_bulk_spike_outlier: (
            {"alpha": 6.0, "q": 0.25, "bulk_eigenvalues": [1.0, 2.0]},
            {"alpha": NEG + NAN_BAD + TYPE_BAD, "q": NONPOS, "bulk_eigenvalues": PSD_BAD},
        ),
        bulk.wishart_bulk_spike_overlap: (
            {"alpha": 6.0, "q": 0.25, "bulk_eigenvalues": [1.0, 2.0], "bulk_weights": [1, 1]},
            {"alpha": NEG, "q": NONPOS, "bulk_eigenvalues": PSD_BAD, "bulk_weights": WEIGHTS_BAD},
        ),
        bulk.wishart_critical_ratio: (
            {"alpha": 6.0, "bulk_eigenvalues": [1.0, 2.0]},
            {"alpha": NEG + TYPE_BAD, "bulk_eigenvalues": MEASURE_BAD + [([-1.0], ValueError, ">= 0")]},
        ),
        bulk.wishart_bulk_edges: (
            {"q": 0.25, "bulk_eigenvalues": [1.0, 2.0]},
            {"q": NONPOS + SCALAR_ONLY + TYPE_BAD, "bulk_eigenvalues": PSD_BAD},
        ),
        bulk.wishart_bulk_atom: (
            {"q": 0.25, "bulk_eigenvalues": [1.0, 2.0]},
            {"q": NONPOS + TYPE_BAD, "bulk_eigenvalues": MEASURE_BAD + [([-1.0], ValueError, ">= 0")]},
        ),
        bulk.wishart_bulk_density: (
            {"x": 1.0, "q": 0.25, "bulk_eigenvalues": [1.0, 2.0]},
            {"x": NAN_BAD + TYPE_BAD, "q": NONPOS + SCALAR_ONLY, "bulk_eigenvalues": PSD_BAD},
        ),
    }
)

PARAMS = [
    pytest.param(func, good, arg, value, exc, fragment, id=f"{func.__name__}-{arg}-{i}")
    for func, (good, bad) in CASES.items()
    for arg, variants in bad.items()
    for i, (value, exc, fragment) in enumerate(variants)
]


def test_every_public_function_is_covered() -> None:
    public = {getattr(m, name) for m in (wigner, wishart, bulk) for name in m.__all__}
    assert public == set(CASES)


@pytest.mark.parametrize("func", list(CASES), ids=lambda f: f.__name__)
def test_good_arguments_are_accepted(func: Callable[..., Any]) -> None:
    func(**CASES[func][0])


@pytest.mark.parametrize(("func", "good", "arg", "value", "exc", "fragment"), PARAMS)
def test_bad_argument_is_rejected(
    func: Callable[..., Any], good: dict[str, Any], arg: str, value: Any, exc: type, fragment: str
) -> None:
    kwargs = dict(good, **{arg: value})
    with pytest.raises(exc) as info:
        func(**kwargs)
    message = str(info.value)
    assert fragment in message
    assert arg in message
