"""validation.intervals.student_t_interval: the exact t formula, its invariances, and its argument checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import t as student_t

from validation.intervals import student_t_interval


def test_three_seeds_give_the_t_interval_not_a_bootstrap_one() -> None:
    ci = student_t_interval([0.0, 1.0, 2.0])  # mean 1, s = 1, n = 3
    half = student_t.ppf(0.975, 2) / 3**0.5  # 4.303/√3 ≈ 2.48: wider than any 3-point bootstrap (≤ 1)
    assert (ci.estimate, ci.low, ci.high) == pytest.approx((1.0, 1.0 - half, 1.0 + half))
    assert ci.confidence == 0.95
    ci90 = student_t_interval([0.0, 1.0, 2.0], confidence=0.9)
    assert ci90.high - ci90.low == pytest.approx(2 * student_t.ppf(0.95, 2) / 3**0.5)


def test_fewer_than_two_values_have_no_interval() -> None:
    one = student_t_interval([0.5])
    assert one.estimate == 0.5 and math.isnan(one.low) and math.isnan(one.high)
    assert all(map(math.isnan, (student_t_interval([]).estimate, student_t_interval([]).low)))


@pytest.mark.parametrize(
    ("values", "confidence", "match"),
    [([1.0, math.nan], 0.95, "finite"), ([[1.0, 2.0]], 0.95, "1-D"), ([1.0, 2.0], 1.0, "confidence")],
)
def test_bad_arguments_name_the_argument(values: list, confidence: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        student_t_interval(values, confidence)


@given(
    st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=12),
    st.floats(-1e3, 1e3),
    st.floats(0.1, 10.0),
)
def test_interval_is_centred_and_moves_with_shift_and_scale(values: list, shift: float, scale: float) -> None:
    ci = student_t_interval(values)
    moved = student_t_interval(np.asarray(values) * scale + shift)
    assert ci.low <= ci.estimate <= ci.high
    assert ci.estimate - ci.low == pytest.approx(ci.high - ci.estimate, abs=1e-9)
    width = ci.high - ci.low
    assert moved.estimate == pytest.approx(ci.estimate * scale + shift, abs=1e-6)
    assert moved.high - moved.low == pytest.approx(width * scale, rel=1e-6, abs=1e-6)
