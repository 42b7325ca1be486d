"""The theory layer never imports torch (and the closed-form modules do not import sympy until asked)."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


def test_importing_rmt_and_every_submodule_leaves_torch_out() -> None:
    result = _run(
        """
        import importlib, pkgutil, sys
        import rmt
        for info in pkgutil.iter_modules(rmt.__path__):
            importlib.import_module("rmt." + info.name)
        for name in rmt.__all__:
            try:
                getattr(rmt, name)
            except (ImportError, AttributeError):
                pass  # a module of another engineer that is not written yet
        assert "torch" not in sys.modules, sorted(m for m in sys.modules if m.startswith("torch"))
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_closed_form_modules_import_without_sympy_or_torch() -> None:
    result = _run(
        """
        import sys
        import rmt, rmt.wigner, rmt.wishart, rmt.bulk, rmt.symbolic
        assert "torch" not in sys.modules
        assert "sympy" not in sys.modules, "sympy must be imported lazily (import rmt stays fast)"
        rmt.symbolic.derivation("critical_batch_size")
        assert "sympy" in sys.modules and "torch" not in sys.modules
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
