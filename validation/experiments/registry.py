"""Registries of named predictors: the random-matrix models of λ'(B) (step 5) and the predictors and
baselines of η_max(B) (step 6).

A :class:`Predictor` carries an identifier (``key``, used in records), a reader-facing ``label`` (legends,
report), its ``kind`` and the function that computes it, plus the colour and line style every figure uses
for it. Each predictor is registered once, in the module that defines its function; records, report and
figures refer to it by ``key`` and never by its wording. Adding a random-matrix model = one function in
``validation.experiments.spectrum_models`` + one :meth:`Registry.register` call there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, get_args

__all__ = ["KINDS", "Kind", "Predictor", "Registry"]

Kind = Literal["theory", "baseline", "fit"]
"""``theory``: a parameter-free random-matrix prediction; ``baseline``: a rule it is compared against;
``fit``: a curve fitted to the measurement it is scored on (how well any smooth curve does)."""
KINDS: tuple[Kind, ...] = get_args(Kind)


@dataclass(frozen=True)
class Predictor:
    """One named predictor: ``function`` computes its curve (the signature is the registry's)."""

    key: str
    label: str
    kind: Kind
    function: Callable[..., Any]
    color: str
    linestyle: str = "-"
    fitted_parameters: int = 0
    """Parameters fitted to the scored measurement (0 for theory and baselines)."""

    def __post_init__(self) -> None:
        if not self.key or not self.key.replace("_", "").isalnum() or not self.key.isascii():
            raise ValueError(f"key must be an ASCII identifier (letters, digits, _), got {self.key!r}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if not self.label:
            raise ValueError(f"label of {self.key!r} must be a non-empty reader-facing name")
        if self.fitted_parameters < 0:
            raise ValueError(f"fitted_parameters must be >= 0, got {self.fitted_parameters}")


class Registry:
    """An ordered set of :class:`Predictor` objects, each key registered once."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._items: dict[str, Predictor] = {}

    def register(self, predictor: Predictor) -> Predictor:
        """Add ``predictor``; a second registration of the same key raises ``ValueError``."""
        if predictor.key in self._items:
            raise ValueError(f"{self.name}: predictor {predictor.key!r} is already registered")
        self._items[predictor.key] = predictor
        return predictor

    def __getitem__(self, key: str) -> Predictor:
        try:
            return self._items[key]
        except KeyError:
            raise KeyError(f"{self.name}: no predictor {key!r}; registered: {list(self._items)}") from None

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[Predictor]:
        return iter(self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> list[str]:
        return list(self._items)

    def of_kind(self, *kinds: Kind) -> list[Predictor]:
        """The registered predictors whose ``kind`` is one of ``kinds``, in registration order."""
        return [p for p in self._items.values() if p.kind in kinds]

    def label(self, key: str) -> str:
        """The reader-facing name of ``key``; an unregistered key (an older record) is shown as is."""
        return self._items[key].label if key in self._items else key

    def style(self, key: str) -> tuple[str, str]:
        """(colour, line style) of ``key``; grey solid for an unregistered key."""
        item = self._items.get(key)
        return (item.color, item.linestyle) if item else ("0.3", "-")
