"""Progress of a run on standard error: one line per step and a bar per stage of cells.

A stage's bar advances when a cell finishes and is redrawn every :data:`TICK_SECONDS` in between, so its
elapsed time moves even while one long cell (a checkpoint's spectra, a threshold search) is running; the
stage's line names the number of cells and of worker processes. Everything is silent with ``quiet``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

TICK_SECONDS = 2.0
"""Redraw interval of a bar between finished cells."""


class Progress:
    """Step messages and ticking tqdm bars, both silent with ``quiet``."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def say(self, message: str) -> None:
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)

    def bar(self, items: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
        """``items`` unchanged, with a bar that advances per item and redraws every few seconds."""
        if self.quiet:
            yield from items
            return
        from tqdm.auto import tqdm

        with tqdm(total=total, desc=desc, leave=False, file=sys.stderr) as pbar:
            stop = threading.Event()

            def tick() -> None:
                while not stop.wait(TICK_SECONDS):
                    pbar.refresh()

            ticker = threading.Thread(target=tick, name="progress-tick", daemon=True)
            ticker.start()
            try:
                for item in items:
                    pbar.update(1)
                    yield item
            finally:
                stop.set()
                ticker.join()
