"""Errors a run stops with for a stated reason the user can act on (docs/architecture.md).

The command line prints such an error as its one-line message (no "unexpected …" wrapper, exit code 1):
the message itself names what happened and what to change.
"""

from __future__ import annotations


class RunStopped(RuntimeError):
    """A run stopped for a reason its one-line message states (e.g. a checkpoint that missed its loss
    target under ``checkpoint.on_missed = "fail"``); not a bug, so no traceback is suggested."""
