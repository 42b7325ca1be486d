"""Fuzzing the command line: random (mostly wrong) arguments to every subcommand.

With ``--debug`` an error propagates, so the test sees its type: only argparse's exit, ``ValueError`` /
``TypeError`` (usage and config errors are ``ValueError`` subclasses) and ``FileNotFoundError`` for a missing
run folder may come out — an ``AttributeError``, ``KeyError`` or ``IndexError`` would be a bug that the
one-line error reporting hides. Without ``--debug`` the same call must print exactly one line on stderr and
exit non-zero. Every generated call fails before any computation starts (the output folder is unwritable), so
the test is fast.
"""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from validation.cli import main

UNWRITABLE = "/proc/batchrmt-fuzz/out"
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
VALUES = st.one_of(
    TEXT,
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["[]", "[0]", "[1, 10000000]", "{}", "null", "true", "-1", "1e308", "nan", '"x"']),
)
FIELDS = st.sampled_from(
    [
        "pool_size", "seed", "data", "models", "sweep.batch_sizes", "sweep.batches_per_size",
        "sweep.min_batch",
        "thresholds.seeds", "thresholds.delta", "thresholds.lr_low", "thresholds.optimizers",
        "thresholds.checkpoints", "curvature.tol", "curvature.top_k", "noise.num_samples", "checkpoint.mode",
        "checkpoint.loss_fractions", "nonsense", "sweep.nonsense", "pool_size.x",
    ]
)  # fmt: skip


def _predict_args() -> st.SearchStrategy[list[str]]:
    option = st.sampled_from(["--lam", "--sigma2", "--n-params", "--n-data", "--momentum", "--batch-sizes"])
    return st.lists(st.tuples(option, VALUES), max_size=4).map(lambda pairs: [w for p in pairs for w in p])


def _run_args() -> st.SearchStrategy[list[str]]:
    sets = st.lists(st.tuples(FIELDS, VALUES).map(lambda fv: ["--set", f"{fv[0]}={fv[1]}"]), max_size=3)
    config = st.sampled_from(["smoke", "default", "no-such-config", "/nonexistent.toml"])
    workers = st.one_of(st.just([]), st.integers(-3, 2000).map(lambda w: ["--workers", str(w)]))
    return st.tuples(config, sets, workers).map(
        lambda t: ["run", "--config", t[0], *[w for s in t[1] for w in s], *t[2], "--out", UNWRITABLE]
    )


def _other_args() -> st.SearchStrategy[list[str]]:
    return st.one_of(
        TEXT.map(lambda t: ["figures", f"/nonexistent/{t}"]),
        TEXT.map(lambda t: ["report", f"/nonexistent/{t}"]),
        TEXT.map(lambda t: ["config", "show", t or "x"]),
        st.tuples(st.sampled_from(["smoke", "nope"]), FIELDS, VALUES).map(
            lambda t: ["learner", "--config", t[0], "--set", f"{t[1]}={t[2]}", "--out", UNWRITABLE]
        ),
    )


def _call(argv: list[str]) -> tuple[int, str, BaseException | None]:
    err = io.StringIO()
    raised: BaseException | None = None
    code = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = int(exc.code or 0) if not isinstance(exc.code, str) else 2
        except BaseException as exc:  # noqa: BLE001 - the type is what the test checks
            raised = exc
    return code, err.getvalue(), raised


ALLOWED = (ValueError, TypeError, FileNotFoundError, NotADirectoryError, PermissionError)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(argv=st.one_of(_predict_args().map(lambda a: ["predict", "--json", *a]), _run_args(), _other_args()))
def test_random_command_lines_fail_cleanly(argv: list[str]) -> None:
    code, err, raised = _call([*argv[:1], "--debug", *argv[1:]])
    if raised is not None:
        assert isinstance(raised, ALLOWED), f"{argv}: {type(raised).__name__}: {raised}"
    code, err, raised = _call(argv)
    assert raised is None, f"{argv}: {raised!r}"
    if argv[0] == "predict" and code == 0:
        return  # a valid prediction request
    assert code != 0, argv
    lines = err.strip().splitlines()
    if not (argv[0] in ("run", "learner", "predict", "figures", "report", "config") and code == 2 and
            "usage:" in err):  # fmt: skip
        assert len(lines) == 1 and "Traceback" not in err, (argv, err)


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0", "1e400"])
def test_predict_rejects_non_physical_values_in_one_line(value: str) -> None:
    code, err, raised = _call(["predict", "--lam", value])
    assert raised is None and code == 2 and len(err.strip().splitlines()) == 1 and "lam" in err, err


def test_predict_json_is_json() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["predict", "--json"]) == 0
    assert isinstance(json.loads(out.getvalue()), (dict, list))
