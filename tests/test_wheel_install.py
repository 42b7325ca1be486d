"""A normal (non-editable) install of the wheel built from this repository runs the smoke config.

The wheel is built with ``pip wheel --no-deps`` and installed into a fresh virtual environment that sees the
already-installed dependencies (``--system-site-packages``) but not this source tree; the test then runs
``batchrmt run --config smoke`` from a folder outside the repository, so every file the run reads must come
from the wheel (configs included).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_and_runs_the_smoke_config(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    source = tmp_path / "source"  # a clean copy: a stale build/ folder in the checkout must not leak in
    ignore = shutil.ignore_patterns(
        ".git", "build", "dist", "runs", "site", ".venv*", "*.egg-info", "__pycache__"
    )
    shutil.copytree(ROOT, source, ignore=ignore)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
         str(source)],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("batchrmt-*.whl")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    # the wheel goes into the venv's own site-packages, ahead of any editable install of the source tree
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
         "--force-reinstall", "--target", str(env_dir / "wheel-site"), str(wheel)],
        check=True,
        cwd=tmp_path,
    )
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)},
        "PYTHONPATH": str(env_dir / "wheel-site"),
        "OMP_NUM_THREADS": "1",
    }
    where = subprocess.run(
        [str(python), "-c", "import validation, rmt, networks; print(validation.__file__)"],
        check=True, cwd=tmp_path, env=env, capture_output=True, text=True,
    ).stdout.strip()
    assert str(ROOT) not in where and "wheel-site" in where
    out = tmp_path / "run"
    proc = subprocess.run(
        [str(python), "-m", "validation.cli", "run", "--config", "smoke", "--out", str(out), "--quiet",
         "--no-figures", "--workers", "1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "config.json").is_file() and (out / "records" / "sweep").is_dir()
    markers = ("rmt/py.typed", "networks/py.typed", "validation/py.typed", "validation/configs/smoke.json")
    for marker in markers:
        assert (env_dir / "wheel-site" / marker).is_file(), marker
