"""Every user error of ``batchrmt`` is one line on stderr and a non-zero exit code (2: usage, 1: runtime,
130: Ctrl-C), never a traceback; ``--debug`` shows one. ``--help`` and ``predict`` never import torch."""

from __future__ import annotations

import errno
import json
import os
import resource
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from validation.cli import main
from validation.commands.common import describe_error
from validation.store import ResultStore

from .test_resume import ROOT, tiny_config

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def cli(*argv: str, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "validation.cli", *argv],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,  # type: ignore[call-overload]
    )


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Exit code and the one stderr line of ``batchrmt ARGV`` run in this process."""
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse errors
        code = int(exc.code or 0)
    return code, one_line(capsys.readouterr().err)


def write_config(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_usage_errors_are_one_line_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    (tmp_path / "a-file").write_text("x")
    smoke = json.loads((ROOT / "validation/configs/smoke.json").read_text())
    out = str(tmp_path / "out")
    cases: list[tuple[list[str], str]] = [
        (["run", "--device", "tpu"], "invalid choice: 'tpu'"),
        (["run", "--config", "smoke", "--out", str(tmp_path / "a-file")], "is a file, not a folder"),
        (["run", "--config", "smoke", "--out", "/proc/batchrmt-nowhere/run"], "is not writable"),
        (
            ["run", "--config", write_config(tmp_path, "bad.json", '{"name": "x",\n  oops}')],
            "bad.json, line 2 column 3",
        ),
        (["run", "--config", write_config(tmp_path, "c.yaml", "name: x\n")], "unknown format '.yaml'"),
        (["run", "--config", "no-such-config"], "neither a built-in config"),
        (
            ["run", "--config", write_config(tmp_path, "neg.json", json.dumps({**smoke, "pool_size": -1}))],
            "pool_size",
        ),
        (
            [
                "run",
                "--config",
                write_config(
                    tmp_path,
                    "big.json",
                    json.dumps({**smoke, "thresholds": {**smoke["thresholds"], "batch_sizes": [2, 512]}}),
                ),
            ],
            "thresholds.batch_sizes[1]' must be at most pool_size = 128, got 512",
        ),  # fmt: skip
        (["run", "--config", "smoke", "--allow-mixed-settings"], "only applies with --resume"),
        (["learner", "--data", "nonsense"], "invalid choice: 'nonsense'"),
        (["learner", "--config", "smoke", "--device", "tpu", "--out", out], "'tpu' is not a device"),
        (["learner", "--config", "smoke", "--seeds", "0", "--out", out], "seeds"),
        (["predict", "--lam", "-1"], "lam"),
        ([], "the following arguments are required"),
    ]
    if not torch.cuda.is_available():
        cases.append(
            (["run", "--config", "smoke", "--device", "cuda", "--out", out], "--device cuda: this machine")
        )
    for argv, expected in cases:
        code, line = run_main(capsys, *argv)
        assert code == 2 and expected in line, (argv, code, line)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())  # no work started


def test_corrupt_record_stops_figures_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ResultStore(tmp_path)
    store.put("predictions", "model=m_ckpt=0", {"model": "m", "ckpt": 0})
    path = store.record_path("predictions", "model=m_ckpt=0")
    path.write_text(path.read_text().replace('"ckpt": 0', '"ckpt": NaN'))
    code, line = run_main(capsys, "figures", str(tmp_path))
    assert code == 1 and str(path) in line and "bare NaN" in line


def test_resume_under_other_settings_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from validation.config import load_config

    config = tiny_config(tmp_path)
    out = tmp_path / "run"
    (out).mkdir()
    (out / "config.json").write_text(json.dumps(load_config(config).to_dict()))
    with ResultStore(out, settings={"torch_threads": 64, "cpu_capability": "VSX"}).locked() as store:
        store.put("sweep", "model=mlp_ckpt=0_B=2_s=0", {"v": 1})
    code, line = run_main(capsys, "run", "--config", str(config), "--out", str(out), "--resume", "--quiet")
    assert code == 1 and "torch_threads 64 (records)" in line and "--allow-mixed-settings" in line


def test_descriptions_of_os_errors_name_the_file_and_what_to_do() -> None:
    line, code = describe_error(
        OSError(errno.ENOSPC, "No space left on device", "/r/records/a.json"), "CMD --resume"
    )
    assert code == 1 and "/r/records/a.json" in line and "free some space" in line and "CMD --resume" in line
    line, code = describe_error(OSError(errno.EROFS, "Read-only file system", "/r/x"))
    assert code == 1 and "cannot write /r/x (Read-only file system); choose a writable --out" == line
    line, code = describe_error(RuntimeError("boom\nsecond line"))
    assert code == 1 and "\n" not in line and "--debug" in line


def test_a_write_that_fails_mid_run_is_one_line(tmp_path: Path) -> None:
    """A real write error (the file-size limit: EFBIG, as a full disk gives ENOSPC) in a real process."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))

    proc = cli("run", "--config", "smoke", "--out", str(tmp_path / "run"), "--quiet", preexec_fn=limit)
    _, err = proc.communicate(timeout=120)
    line = one_line(err)
    assert proc.returncode == 1 and "File too large" in line and str(tmp_path / "run") in line


def test_locked_folder_debug_traceback_and_interrupt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from validation.store import StoreLockedError

    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from validation.store import ResultStore; "
         "ResultStore(sys.argv[1], settings={}).acquire_lock(); print('locked', flush=True); time.sleep(60)",
         str(out)],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        code, line = run_main(capsys, "run", "--config", "smoke", "--out", str(out), "--quiet")
        assert code == 1 and f"in use by process {holder.pid}" in line
        with pytest.raises(StoreLockedError):  # --debug: the exception (and so its traceback) comes through
            main(["--debug", "run", "--config", "smoke", "--out", str(out), "--quiet"])
    finally:
        holder.kill()
        holder.wait()
    # Ctrl-C while the run holds its lock: one line with the exact command that continues it
    config = tiny_config(tmp_path)
    proc = cli("run", "--config", str(config), "--out", str(out), "--quiet", "--no-figures")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / ".lock").is_file() and (out / ".lock").read_text().strip() == str(proc.pid):
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    line = one_line(err)
    expected = f"batchrmt run --config {config} --out {out} --resume --quiet --no-figures"
    assert proc.returncode == 130 and line == f"batchrmt run: interrupted; continue with: {expected}"
    assert (out / ".lock").read_text() == ""  # released
    words = shlex.split(line.split("continue with: ", 1)[1])
    assert words[0] == "batchrmt" and "--resume" in words


def test_help_and_predict_do_not_import_torch() -> None:
    code = """
        import contextlib, io, sys
        from validation.cli import main
        for argv in (["--help"], ["run", "--help"], ["learner", "--help"], ["figures", "--help"]):
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    main(argv)
                except SystemExit as exc:
                    assert exc.code == 0
        assert "scipy" not in sys.modules  # --help does not even import the theory layer
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["predict", "--json"]) == 0
        assert "torch" not in sys.modules, sorted(m for m in sys.modules if m.startswith("torch"))
        print("ok")
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=ENV, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_learner_and_run_configs_are_listed_apart_and_all_load() -> None:
    from validation.config import available_configs, load_config
    from validation.experiments.learner_config import available_learner_configs, load_learner_config

    runs, learners = available_configs(), available_learner_configs()
    assert runs and learners and not any(name.startswith("learner-") for name in runs)
    for name in runs:
        load_config(name)
    for name in learners:
        load_learner_config(name)
