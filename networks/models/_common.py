"""Shared argument checks, channel scaling and lineage initialisation for the model zoo."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

from torch import nn

from rmt.checks import check_int


def check_positive_int(value: object, name: str) -> int:
    """``value`` as an ``int`` >= 1: ``TypeError`` for anything but an integer type, ``ValueError`` below 1
    (:func:`rmt.checks.check_int`)."""
    return check_int(value, name, minimum=1, integral_type=True)


def check_width(width: object, name: str = "width") -> float:
    """A finite channel multiplier > 0."""
    if isinstance(width, bool) or not isinstance(width, numbers.Real):
        raise TypeError(f"{name} must be a real number > 0, got {width!r}")
    value = float(width)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite real number > 0, got {width!r}")
    return value


def check_probability(value: object, name: str) -> float:
    """A real number in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number in [0, 1), got {value!r}")
    p = float(value)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return p


def check_choice(value: object, name: str, choices: Iterable[object]) -> None:
    """``ValueError`` naming the accepted values when ``value`` is not one of ``choices``."""
    allowed = list(choices)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def scaled(channels: int, width: float) -> int:
    """Channel count ``max(1, round(channels * width))``; ``width = 1`` keeps the lineage's count."""
    return max(1, int(round(channels * width)))


def kaiming_fan_out_(module: nn.Module) -> None:
    """Lineage initialisation of the VGG / PreResNet ports: conv weights ~ N(0, 2/(k_h k_w c_out)),
    conv bias 0, BatchNorm weight 1 / bias 0; linear layers keep PyTorch's default (uniform ±1/sqrt(fan_in)).
    """
    for m in module.modules():
        if any(p.is_meta for p in m.parameters(recurse=False)):
            continue  # shape-only construction (device "meta"): no values to initialise
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
