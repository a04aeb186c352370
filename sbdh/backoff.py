"""Backoff as a pure function: exponential growth, a cap, and full jitter.

``delay(attempt)`` is how long to wait before retrying after ``attempt`` failed attempts
(1 = the first attempt failed). The ceiling grows as ``base * factor ** (attempt - 1)`` up to
``cap``; with full jitter the wait is drawn uniformly from ``[0, ceiling]`` so that many
workers failing together do not retry together (AWS Architecture Blog, "Exponential Backoff
And Jitter"). The random source is passed in, so tests and replays are deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True)
class Backoff:
    """A backoff policy. ``random`` returns a float in ``[0, 1)`` (``random.random`` fits)."""

    base: float = 1.0
    factor: float = 2.0
    cap: float = 300.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap <= 0 or self.factor < 1:
            raise ValueError("backoff needs base > 0, cap > 0 and factor >= 1")

    def ceiling(self, attempt: int) -> float:
        """The largest wait after ``attempt`` failed attempts, before jitter."""
        if attempt < 1:
            raise ValueError(f"attempt counts from 1, got {attempt}")
        exponent = attempt - 1
        if self.factor == 1 or self.base >= self.cap:
            return min(self.base, self.cap)
        # past this many doublings the cap wins; checking first keeps huge attempts from overflowing
        if exponent >= math.log(self.cap / self.base, self.factor):
            return self.cap
        return min(self.base * self.factor**exponent, self.cap)

    def delay(self, attempt: int, random: Callable[[], float]) -> float:
        """Seconds to wait before the next try, after ``attempt`` failed attempts."""
        ceiling = self.ceiling(attempt)
        if not self.jitter:
            return ceiling
        return ceiling * min(max(random(), 0.0), 1.0)
