"""What every subcommand shares: checks of arguments before any work starts, the command that continues an
interrupted run, and the one-line description of an error (``describe_error``) that ``validation.cli``
prints instead of a traceback.

Exit codes: 2 for a usage error (an argument or config the user must change), 1 for a runtime error (locked
or corrupt run folder, missing data, full disk, ...), 130 for Ctrl-C. Nothing here imports torch unless a
device other than ``cpu`` is asked for.
"""

from __future__ import annotations

import errno
import re
import shlex
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_DEVICE = re.compile(r"^(cpu|cuda|mps)(:[0-9]+)?$")


class UsageError(ValueError):
    """An argument or config value the user must change (exit code 2)."""


def check_device(name: str, option: str = "--device") -> str:
    """``name`` if torch can compute on it here: ``cpu``, ``cuda[:N]`` (a CUDA build of torch and a visible
    GPU N) or ``mps``; otherwise :class:`UsageError` saying what is available."""
    if not isinstance(name, str) or not _DEVICE.match(name):
        raise UsageError(
            f"{option} {name!r} is not a device batchrmt can use; accepted: cpu, cuda, cuda:N, mps"
        )
    if name == "cpu":
        return name
    import torch

    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            build = "a CPU-only torch build" if torch.version.cuda is None else "no visible CUDA GPU"
            raise UsageError(
                f"{option} {name}: this machine has {build} (torch {torch.__version__}); use cpu"
            )
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise UsageError(f"{option} {name}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    elif not torch.backends.mps.is_available():
        raise UsageError(f"{option} mps: the MPS backend is not available here; use cpu")
    return name


def check_out_folder(path: str | Path, option: str = "--out") -> Path:
    """``path`` as a run folder that exists and is writable (created with its parents); otherwise
    :class:`UsageError` naming it (a file, a read-only or unwritable place)."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{option} {folder} is a file, not a folder; choose a folder path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UsageError(f"{option} {folder} is not writable ({reason}); choose a writable folder") from None
    return folder


def load_run_config(loader: Callable[..., T], name_or_path: str, overrides: Sequence[str] = ()) -> T:
    """``loader(name_or_path, overrides)`` with every config error (syntax: file, line and column; a bad
    field: its dotted name) turned into a one-line :class:`UsageError`."""
    from validation.config import ConfigError

    try:
        return loader(name_or_path, overrides)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    except (ValueError, TypeError) as exc:
        raise UsageError(f"config {name_or_path}: {exc}") from None


def check_workers(workers: int | None, option: str = "--workers") -> int | None:
    """``None`` (automatic) or a worker count in [1, 1024], else a :class:`UsageError` naming ``option``."""
    if workers is not None and not 1 <= workers <= 1024:
        raise UsageError(f"{option} must be an integer in [1, 1024], got {workers}")
    return workers


def shell_command(words: Sequence[str]) -> str:
    """``words`` as one shell-quoted command line."""
    return " ".join(shlex.quote(str(w)) for w in words)


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def describe_error(exc: BaseException, continue_command: str | None = None) -> tuple[str, int]:
    """One line describing ``exc`` for a user, and the exit code. ``continue_command`` (a shell command
    that resumes the run) is appended where rerunning after fixing the cause continues the work."""
    from validation.errors import RunStopped
    from validation.store import StoreError

    then = f"; then continue with: {continue_command}" if continue_command else ""
    data_errors = sys.modules.get("networks.data.errors")
    if isinstance(exc, UsageError):
        return _one_line(str(exc)), EXIT_USAGE
    if isinstance(exc, (StoreError, RunStopped)):
        return _one_line(str(exc)), EXIT_RUNTIME
    if data_errors is not None and isinstance(exc, data_errors.DatasetNotFoundError):
        return _one_line(f"data not found: {exc}"), EXIT_RUNTIME
    if data_errors is not None and isinstance(exc, data_errors.DatasetFormatError):
        return _one_line(f"bad data file: {exc}"), EXIT_RUNTIME
    if isinstance(exc, OSError) and exc.errno is not None:
        where = f" {exc.filename}" if exc.filename else ""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"no space left on the device writing{where}: free some space{then}", EXIT_RUNTIME
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return f"cannot write{where} ({exc.strerror}); choose a writable --out", EXIT_RUNTIME
        return _one_line(f"{exc.strerror or exc}:{where}"), EXIT_RUNTIME
    if isinstance(exc, MemoryError):
        return f"out of memory{then and ' (use a smaller config)'}", EXIT_RUNTIME
    if isinstance(exc, (ValueError, TypeError)):
        return _one_line(str(exc)), EXIT_USAGE
    name = type(exc).__name__
    return _one_line(f"unexpected {name}: {exc} (rerun with --debug for the traceback)"), EXIT_RUNTIME
