"""The exclusive lock of a run folder: ``fcntl.flock`` on its ``.lock`` file, which holds the holder's pid.

The kernel drops the lock when the holder's file descriptor closes, so a killed or zombie holder never blocks
a new run; the ``.lock`` file is never deleted (deleting it would let two processes lock two files). Used by
:meth:`validation.store.ResultStore.acquire_lock`.
"""

from __future__ import annotations

import os
from pathlib import Path

from validation.store_integrity import StoreError


class StoreLockedError(StoreError):
    """Another live process holds the run folder's lock."""


def lock_folder(lock_path: Path, root: Path) -> int:
    """Open ``lock_path`` (created with mode 0666 minus the umask), take an exclusive non-blocking ``flock``
    on it and write this process's pid into it; returns the file descriptor that holds the lock. Raises
    :class:`StoreLockedError` naming the run folder ``root`` (and the holder's pid when it is known) when
    another process, or another descriptor in this one, holds it."""
    import fcntl

    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode("ascii", "replace").strip()
        os.close(fd)
        who = f"process {holder}" if holder.isdigit() else "another process"
        raise StoreLockedError(
            f"run folder {root} is in use by {who}; wait for it to finish or choose another --out"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return fd


def unlock_folder(fd: int) -> None:
    """Empty the lock file, drop the ``flock`` held by ``fd`` and close it."""
    import fcntl

    try:
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


__all__ = ["StoreLockedError", "lock_folder", "unlock_folder"]
