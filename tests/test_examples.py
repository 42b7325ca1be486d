"""The README's measurement example runs and prints converged spectra (real Fashion-MNIST, real model)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from networks.data import DatasetNotFoundError, load_dataset

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quick_spectrum_example_runs() -> None:
    try:
        load_dataset("fashion-mnist", train=False)
    except DatasetNotFoundError as exc:  # pragma: no cover - CI installs the Debian package
        pytest.skip(str(exc))
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quick_spectrum.py")],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    ).stdout
    for name in ("Hessian", "GGN"):
        line = next(line for line in out.splitlines() if line.startswith(f"top-5 {name}"))
        values = [float(v) for v in re.search(r"\[(.*?)\]", line).group(1).split()]  # type: ignore[union-attr]
        assert len(values) == 5 and values == sorted(values, reverse=True)
        bound = float(re.search(r"max error bound / max\|λ\| ([0-9.e+-]+)", line).group(1))  # type: ignore[union-attr]
        assert bound <= 1e-3  # the example's tol: eigenvalue error bound relative to max|θ|
    assert min(values) >= 0  # the last parsed line is the GGN's: positive semi-definite
    mass = float(re.search(r"integrates to ([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    assert abs(mass - 1.0) < 0.02
