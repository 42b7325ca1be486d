"""Data errors: missing data (with the exact way to provide it) and malformed files (naming the file)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path


class DatasetNotFoundError(FileNotFoundError):
    """The data set is not on disk; the message says exactly how to install or where to put it."""


class DatasetFormatError(ValueError):
    """A data file exists but is malformed (bad magic number, truncated, wrong shape, disallowed pickle)."""


class UnsafePickleError(pickle.UnpicklingError, DatasetFormatError):
    """A pickle referenced a global outside the allow-list (it is both an ``UnpicklingError`` and a
    ``ValueError``); nothing it referenced was called."""


DATA_ROOT_ENV = "BATCHRMT_DATA"


def default_data_root() -> Path:
    """Folder searched for user-provided data sets (CIFAR, ImageNet32): ``$BATCHRMT_DATA`` if set, else
    ``~/.cache/batchrmt/data``."""
    return Path(os.environ.get(DATA_ROOT_ENV, "~/.cache/batchrmt/data")).expanduser()
