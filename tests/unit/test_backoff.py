"""Backoff is a pure function: exponential ceiling, a cap, full jitter from an injected source."""

from __future__ import annotations

import pytest

from access_point.backoff import Backoff


def test_the_ceiling_grows_exponentially_up_to_the_cap() -> None:
    policy = Backoff(base=1, factor=2, cap=60)
    assert [policy.ceiling(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_huge_attempt_numbers_stay_at_the_cap() -> None:
    assert Backoff(base=0.5, cap=300).ceiling(10**9) == 300


def test_full_jitter_scales_the_ceiling_by_the_random_draw() -> None:
    policy = Backoff(base=2, factor=3, cap=100)
    assert policy.delay(3, lambda: 0.5) == pytest.approx(9.0)
    assert policy.delay(3, lambda: 0.0) == 0.0
    assert policy.delay(10, lambda: 0.25) == pytest.approx(25.0)


def test_a_random_source_out_of_range_is_clamped() -> None:
    policy = Backoff(base=1, cap=10)
    assert policy.delay(2, lambda: 7.0) == 2.0
    assert policy.delay(2, lambda: -1.0) == 0.0


def test_without_jitter_the_delay_is_the_ceiling() -> None:
    policy = Backoff(base=0.3, factor=2, cap=5, jitter=False)
    assert [policy.delay(n, lambda: 0.0) for n in (1, 2, 3, 6)] == [0.3, 0.6, 1.2, 5]


def test_the_same_draws_give_the_same_delays() -> None:
    import random

    a, b = random.Random(42), random.Random(42)
    policy = Backoff()
    assert [policy.delay(n, a.random) for n in range(1, 20)] == [
        policy.delay(n, b.random) for n in range(1, 20)
    ]


@pytest.mark.parametrize("kwargs", [{"base": 0}, {"cap": 0}, {"factor": 0.5}, {"base": -1}])
def test_nonsense_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(**kwargs)


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="attempt"):
        Backoff().delay(0, lambda: 0.5)
