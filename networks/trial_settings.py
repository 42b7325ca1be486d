"""The settings of a divergence trial and of the threshold search, with their one default each.

Torch-free (the run config embeds :class:`TrialSettings` and is read by commands that never import torch);
:class:`networks.stability.TrialRunner` and :func:`networks.thresholds.find_max_lr` take it whole.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

from networks.options import (
    BN_MODES,
    CRITERIA,
    DEFAULT_ADAM_BETAS,
    DEFAULT_ADAM_EPS,
    DEFAULT_MOMENTUM,
    OPTIMIZERS,
    BNMode,
    Criterion,
    Optimizer,
)
from rmt.checks import check_choice, check_in_range, check_int, check_positive

__all__ = ["TrialSettings", "check_adam_betas"]


def check_adam_betas(betas: Any, name: str = "betas") -> tuple[float, float]:
    """Adam's (β1, β2): two numbers in [0, 1)."""
    if isinstance(betas, str) or not hasattr(betas, "__len__") or len(betas) != 2:
        raise ValueError(f"{name} must be two numbers in [0, 1), got {betas!r}")
    b1, b2 = (float(check_in_range(b, name, 0.0, 1.0, high_open=True)) for b in betas)
    return b1, b2



def _as_float(value: Any, name: str, *, allow_zero: bool = False) -> float:
    return float(check_positive(value, name, allow_zero=allow_zero))


@dataclass(frozen=True)
class TrialSettings:
    """Every setting of a divergence trial and of the threshold search, with its one default.

    Trial (docs/validation.md §1): ``steps`` = K steps at lr η after ``warmup_steps`` lr-0 steps at the same
    B (they fill Adam's moments and the momentum buffer without moving the weights); strict tolerance
    ``delta`` = δ > 0; the pool loss is evaluated every ``eval_every`` steps and after the last on a fixed
    seed-0 subset of ``eval_size`` pool samples (None: the whole pool); BatchNorm with running (``bn_mode =
    "eval"``) or batch (``"train"``) statistics, dropout off. Named optimizers use ``momentum`` = β ∈ [0, 1)
    (heavy ball) and ``adam_betas`` ∈ [0, 1)², ``adam_eps`` > 0 (Adam).

    Search (:func:`networks.thresholds.find_max_lr`): bracket [``lr_low``, ``lr_high``] (moved by
    ``expansion_factor`` > 1 at most ``max_expansions`` times), at least ``halvings`` halvings of the log
    bracket and a final ratio hi/lo ≤ ``resolution`` > 1, ``points_per_round`` trials per round (None: the
    runner's ``max_parallel`` − 2), for each criterion in ``criteria``.

    Execution: ``vectorise`` (True, False or "auto" = B ≤ 32) and ``max_parallel`` trials per vectorised
    pass. Lists are accepted for the tuple fields and stored as tuples.
    """

    steps: int = 30
    delta: float = 0.5
    warmup_steps: int = 5
    eval_every: int = 1
    eval_size: int | None = None
    bn_mode: BNMode = "eval"
    momentum: float = DEFAULT_MOMENTUM
    adam_betas: tuple[float, float] = DEFAULT_ADAM_BETAS
    adam_eps: float = DEFAULT_ADAM_EPS
    lr_low: float = 1e-3
    lr_high: float = 10.0
    halvings: int = 8
    resolution: float = 1.05
    criteria: tuple[Criterion, ...] = CRITERIA
    expansion_factor: float = 10.0
    max_expansions: int = 4
    points_per_round: int | None = None
    vectorise: bool | Literal["auto"] = "auto"
    max_parallel: int = 8

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        put("steps", check_int(self.steps, "steps", minimum=1))
        put("delta", _as_float(self.delta, "delta"))
        put("warmup_steps", check_int(self.warmup_steps, "warmup_steps", minimum=0))
        put("eval_every", check_int(self.eval_every, "eval_every", minimum=1))
        if self.eval_size is not None:
            put("eval_size", check_int(self.eval_size, "eval_size", minimum=1))
        check_choice(self.bn_mode, "bn_mode", BN_MODES)
        put("momentum", float(check_in_range(self.momentum, "momentum", 0.0, 1.0, high_open=True)))
        put("adam_betas", check_adam_betas(self.adam_betas, "adam_betas"))
        put("adam_eps", _as_float(self.adam_eps, "adam_eps"))
        put("lr_low", _as_float(self.lr_low, "lr_low"))
        put("lr_high", _as_float(self.lr_high, "lr_high"))
        if self.lr_high <= self.lr_low:
            raise ValueError(f"lr_high must exceed lr_low = {self.lr_low}, got {self.lr_high}")
        put("halvings", check_int(self.halvings, "halvings", minimum=1))
        put("resolution", float(check_in_range(self.resolution, "resolution", 1.0, math.inf, low_open=True)))
        if isinstance(self.criteria, str) or not isinstance(self.criteria, Sequence) or not self.criteria:
            raise ValueError(
                f"criteria must be a non-empty list drawn from {CRITERIA}, got {self.criteria!r}"
            )
        put("criteria", tuple(check_choice(c, "criteria", CRITERIA) for c in self.criteria))
        put("expansion_factor", _as_float(self.expansion_factor, "expansion_factor"))
        if self.expansion_factor <= 1.0:
            raise ValueError(f"expansion_factor must be > 1, got {self.expansion_factor}")
        put("max_expansions", check_int(self.max_expansions, "max_expansions", minimum=0))
        if self.points_per_round is not None:
            put("points_per_round", check_int(self.points_per_round, "points_per_round", minimum=1))
        if self.vectorise not in (True, False, "auto"):
            raise ValueError(f"vectorise must be True, False or 'auto', got {self.vectorise!r}")
        put("max_parallel", check_int(self.max_parallel, "max_parallel", minimum=1))

    def optimizer_kwargs(self, name: Optimizer) -> dict[str, Any]:
        """The keyword arguments of :func:`networks.training.make_optimizer` for the named optimizer."""
        check_choice(name, "optimizer", OPTIMIZERS)
        if name == "momentum":
            return {"momentum": self.momentum}
        if name == "adam":
            return {"betas": self.adam_betas, "eps": self.adam_eps}
        return {}

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-able dict (tuples become lists); ``TrialSettings(**d)`` reads it back."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}
