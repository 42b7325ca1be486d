"""Shared pytest configuration: hypothesis profiles and the rmt fuzz summary.

Profiles (no deadline: CPU timing varies on shared CI machines):

* ``ci`` (default, loaded automatically): derandomized, hypothesis's default 100 examples for tests that do
  not set their own ``max_examples`` (tests that set one keep it). The rmt input-contract fuzz
  (tests/rmt/test_fuzz.py) scales its per-function budget from this number: ≥ 5,000 fuzzed calls per run.
* ``nightly``: ``pytest --hypothesis-profile=nightly`` (or ``HYPOTHESIS_PROFILE=nightly``): random seeds,
  2,000 examples per test without its own setting, hence 20× the fuzz budget (≥ 100,000 fuzzed calls,
  about 20 minutes on one core).
* ``dev``: random seeds, otherwise like ``ci`` (``HYPOTHESIS_PROFILE=dev``).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile(
    "nightly", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print how many calls the rmt input-contract fuzz made (per function with ``-v``)."""
    fuzz = sys.modules.get("tests.rmt.test_fuzz")
    calls = getattr(fuzz, "CALLS", None)
    if not calls:
        return
    terminalreporter.write_line(
        f"rmt input-contract fuzz: {sum(calls.values())} calls over {len(calls)} functions "
        f"(hypothesis profile {_profile_name()})"
    )
    if terminalreporter.config.option.verbose > 0:
        for name, count in sorted(calls.items()):
            terminalreporter.write_line(f"  {count:6d}  {name}")


def _profile_name() -> str:
    return str(getattr(settings, "_current_profile", "?"))
