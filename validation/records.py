"""The JSON representation of non-finite numbers in run records, defined once.

A record is plain JSON, which has no NaN or infinity. Records store them as the strings ``"nan"``, ``"inf"``
and ``"-inf"`` (:func:`encode_float`; this keeps the sign of an infinity, which ``null`` would lose);
:func:`decode_float` reads them back and also accepts ``None`` (``null``), which older threshold records used
for "no finite value". Typed records (``validation.experiments.analysis_records``) read every float through
:func:`decode_float`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

__all__ = ["NON_FINITE", "decode_float", "decode_floats", "encode_float"]

NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
"""The strings that stand for non-finite floats in a record, and their values."""


def encode_float(value: float) -> float | str:
    """``value`` as it is written into a record: the float itself when finite, else ``"nan"``/``"inf"``/
    ``"-inf"``."""
    v = float(value)
    if math.isfinite(v):
        return v
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


def decode_float(value: Any) -> float:
    """A float read from a record: numbers unchanged, ``"nan"``/``"inf"``/``"-inf"`` (and ``"NaN"``,
    ``"Infinity"``) to their values, ``None`` to NaN. Raises ``TypeError`` for anything else (a bool, a list,
    another string)."""
    if value is None:
        return math.nan
    if isinstance(value, bool):
        raise TypeError(f"a record float must be a number, 'nan', 'inf', '-inf' or null, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = float(value)
        except ValueError:
            raise TypeError(
                f"a record float must be a number, 'nan', 'inf', '-inf' or null, got {value!r}"
            ) from None
        if not math.isfinite(parsed):
            return parsed
        raise TypeError(f"a finite record float must be stored as a number, not the string {value!r}")
    if hasattr(value, "__float__"):  # numpy scalars
        return float(value)
    raise TypeError(f"a record float must be a number, 'nan', 'inf', '-inf' or null, got {value!r}")


def decode_floats(values: Iterable[Any]) -> list[float]:
    """:func:`decode_float` of every item."""
    return [decode_float(v) for v in values]
