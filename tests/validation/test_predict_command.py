"""Tests of ``batchrmt predict``: the table and the JSON agree with the rmt functions they report."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from rmt.learning_rates import (
    adam_max_lr_vs_batch,
    batch_top_curvature,
    local_exponent,
    max_lr_vs_batch,
    model_critical_batch_size,
)
from rmt.wigner import noise_scale
from validation.cli import main


def _run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main(["predict", "--json", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_default_table_is_useful(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict"]) == 0
    out = capsys.readouterr().out
    assert "additive model" in out and "multiplicative model" in out
    assert "critical batch size B* = 80" in out  # Pσ²/λ² = 2000/25
    assert "critical batch size B* = 125" in out  # P/(λ/σ² − 1)² = 2000/16
    for header in ("ν(B)", "λ'_max", "regime", "η_SGD", "η_heavy_ball", "s_SGD"):
        assert header in out
    assert "edge" in out and "outlier" in out
    assert len([line for line in out.splitlines() if line.strip().startswith("1024 ")]) == 2


def test_json_values_match_the_rmt_functions(capsys: pytest.CaptureFixture[str]) -> None:
    batch_sizes = [1, 3, 10, 30, 100, 300, 1000]
    argv = ["--lam", "4", "--sigma2", "0.5", "--n-params", "3000", "--outputs-per-sample", "2"]
    result = _run_json(capsys, *argv, "--batch-sizes", *map(str, batch_sizes), "--method", "nesterov",
                       "--momentum", "0.8")  # fmt: skip
    b = np.array(batch_sizes, dtype=float)
    assert result["inputs"]["batch_sizes"] == batch_sizes
    for model in ("additive", "multiplicative"):
        block = result["models"][model]
        kw: dict[str, Any] = {"model": model, "outputs_per_sample": 2}
        rows = block["rows"]
        np.testing.assert_allclose([r["batch_size"] for r in rows], b)
        curvature = batch_top_curvature(b, 4, 0.5, 3000, **kw)
        np.testing.assert_allclose([r["top_curvature"] for r in rows], curvature)
        sgd = max_lr_vs_batch(b, 4, 0.5, 3000, **kw)
        nesterov = max_lr_vs_batch(b, 4, 0.5, 3000, method="nesterov", momentum=0.8, **kw)
        np.testing.assert_allclose([r["max_lr_sgd"] for r in rows], sgd)
        np.testing.assert_allclose([r["max_lr_nesterov"] for r in rows], nesterov)
        np.testing.assert_allclose([r["local_exponent_sgd"] for r in rows], local_exponent(b, sgd))
        np.testing.assert_allclose([r["local_exponent_nesterov"] for r in rows], local_exponent(b, nesterov))
        assert block["critical_batch_size"] == pytest.approx(model_critical_batch_size(4, 0.5, 3000, **kw))
        assert block["max_lr_sgd_large_batch"] == pytest.approx(0.5)
        b_star = block["critical_batch_size"]
        assert [r["regime"] for r in rows] == ["outlier" if x > b_star else "edge" for x in batch_sizes]
    additive = result["models"]["additive"]["rows"]
    np.testing.assert_allclose([r["noise_scale"] for r in additive], noise_scale(0.5, 3000, b))
    multiplicative = result["models"]["multiplicative"]["rows"]
    np.testing.assert_allclose([r["aspect_ratio"] for r in multiplicative], 3000 / (2 * b))


def test_theory_check_value_and_finite_pool(capsys: pytest.CaptureFixture[str]) -> None:
    # docs/theory.md §1a: P = 2000, σ² = 1, B = 200, N = ∞ → ν² = 10 and λ' = 7 for λ = 5
    row = _run_json(capsys, "--model", "additive", "--batch-sizes", "200")["models"]["additive"]["rows"][0]
    assert row["noise_scale"] == pytest.approx(math.sqrt(10.0))
    assert row["top_curvature"] == pytest.approx(7.0)
    assert row["max_lr_sgd"] == pytest.approx(2.0 / 7.0)
    assert row["max_lr_heavy_ball"] == pytest.approx(3.8 / 7.0)
    assert row["local_exponent_sgd"] is None  # one batch size: no exponent
    # finite pool: the additive model uses n_data, the multiplicative one has no finite-N correction
    result = _run_json(capsys, "--n-data", "1000", "--batch-sizes", "10", "1000")
    assert result["models"]["additive"]["rows"][1]["top_curvature"] == pytest.approx(5.0)  # κ(N) = 0
    assert result["models"]["multiplicative"]["rows"][1]["top_curvature"] == pytest.approx(
        batch_top_curvature(1000, 5, 1, 2000, model="multiplicative")
    )


def test_sgd_only_and_never_separating_spike(capsys: pytest.CaptureFixture[str]) -> None:
    result = _run_json(capsys, "--method", "sgd", "--model", "multiplicative", "--lam", "0.8")
    block = result["models"]["multiplicative"]
    assert block["critical_batch_size"] is None  # λ ≤ σ²: the spike never leaves the Marchenko–Pastur bulk
    assert set(block["rows"][0]) == {
        "batch_size", "aspect_ratio", "top_curvature", "regime", "max_lr_sgd", "local_exponent_sgd"
    }  # fmt: skip
    assert all(r["regime"] == "edge" for r in block["rows"])


def test_adam_columns(capsys: pytest.CaptureFixture[str]) -> None:
    b = np.array([1.0, 4.0, 16.0, 64.0])
    stats = ["--grad-sq", "0.01", "--grad-var", "2", "--eps", "1e-3"]
    grid = ["--batch-sizes", "1", "4", "16", "64"]
    result = _run_json(capsys, "--method", "adam", "--model", "multiplicative", *grid, *stats)
    assert result["inputs"]["adam_form"] == "second_moment"
    rows = result["models"]["multiplicative"]["rows"]
    expected = adam_max_lr_vs_batch(b, 5, 1, 2000, model="multiplicative", grad_sq=0.01, grad_var=2, eps=1e-3)
    np.testing.assert_allclose([r["max_lr_adam"] for r in rows], expected)
    result = _run_json(capsys, "--method", "adam", "--model", "additive", "--batch-sizes", "1", "4")
    assert result["inputs"]["adam_form"] == "sqrt_curvature"
    rows = result["models"]["additive"]["rows"]
    curvature = np.array([r["top_curvature"] for r in rows])
    np.testing.assert_allclose([r["max_lr_adam"] for r in rows], 38.0 / np.sqrt(curvature))


def test_explain_prints_the_symbolic_derivation(capsys: pytest.CaptureFixture[str]) -> None:
    from rmt.symbolic import derivation

    assert main(["predict", "--explain", "--batch-sizes", "4", "8"]) == 0
    out = capsys.readouterr().out
    assert derivation().text().strip() in out
    assert "critical batch size" in out


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--lam", "0"], "lam"),
        (["--batch-sizes", "0.5", "2"], "batch_size"),
        (["--n-data", "100", "--batch-sizes", "10", "200"], "batch_size"),
        (["--momentum", "1.0"], "momentum"),
        (["--sigma2", "-1"], "sigma2"),
        (["--n-params", "0"], "n_params"),
    ],
)
def test_bad_input_exits_with_a_message(
    capsys: pytest.CaptureFixture[str], argv: list[str], match: str
) -> None:
    assert main(["predict", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("batchrmt predict: ") and match in err and len(err.strip().splitlines()) == 1


def test_unknown_choice_is_rejected_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["predict", "--model", "linear"])
    assert "invalid choice" in capsys.readouterr().err


def test_method_choices_are_the_theory_layers() -> None:
    from rmt.learning_rates import MOMENTUM_METHODS
    from validation.commands.predict import METHOD_CHOICES

    assert METHOD_CHOICES == (*MOMENTUM_METHODS, "adam")
