"""What a series' negative share normally is: decayed history shrunk toward its parent.

A series (one product or one category, at one window size) remembers its
past windows for ``history_days``, each weighted by 2^(−age / half-life) so
that last week counts more than last month. The engine adds a window only
after it was tested and only when it is not in alert: the window under test
is never part of its own baseline, and a spike does not raise the bar for
the spikes that follow it.

A product's history is shrunk toward its category's share with
``prior_strength`` pseudo-reviews, a category's toward the share of all
reviews; together these give the Beta(a, b) belief the beta-binomial test
predicts from (:mod:`streams.alerts.detector`).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


class History:
    """Decayed counts of one series' past windows.

    Each call sums the remembered windows afresh, each weighted by its age at
    that moment, with an exactly rounded sum (``math.fsum``): the result
    depends only on the windows and the time asked about, never on which
    times were asked about before. Running sums decayed step by step would be
    O(1), but their rounding depends on the steps taken, and a detector
    rebuilt after a restart, or fed empty windows, would then compute p-values
    that differ in the last digits from an uninterrupted run. Times only move
    forward (windows are tested in event-time order), so windows that left
    the horizon are dropped as time reaches them.
    """

    def __init__(self, half_life_ms: float, horizon_ms: int) -> None:
        self._half_life_ms = half_life_ms
        self._horizon_ms = horizon_ms
        self._windows: deque[tuple[int, int, int]] = deque()  # (start, negative, other)

    def add(self, start_ms: int, n: int, negative: int) -> None:
        """Remember a tested window that is not in alert; an empty one tells nothing."""
        if n == 0:
            return
        self._forget(start_ms)
        self._windows.append((start_ms, negative, n - negative))

    def counts(self, at_ms: int) -> tuple[float, float]:
        """Decayed (negative, other) reviews of the windows before ``at_ms``, within the horizon."""
        self._forget(at_ms)
        weighted = [(self._weight(at_ms - s), neg, other) for s, neg, other in self._windows]
        return (
            math.fsum(w * negative for w, negative, _ in weighted),
            math.fsum(w * other for w, _, other in weighted),
        )

    def _weight(self, age_ms: int) -> float:
        return float(2.0 ** (-age_ms / self._half_life_ms))

    def _forget(self, at_ms: int) -> None:
        while self._windows and self._windows[0][0] < at_ms - self._horizon_ms:
            self._windows.popleft()


@dataclass(frozen=True)
class Baseline:
    """Beta(a, b) belief in a series' negative share: its history plus a parent's share."""

    negative: float
    other: float
    prior_share: float
    prior_strength: float

    @property
    def a(self) -> float:
        return self.negative + self.prior_strength * self.prior_share

    @property
    def b(self) -> float:
        return self.other + self.prior_strength * (1.0 - self.prior_share)

    @property
    def share(self) -> float:
        return self.a / (self.a + self.b)

    @property
    def n(self) -> float:
        """Decayed reviews of the series' own history (the prior not included)."""
        return self.negative + self.other


def overall_share(negative: float, other: float) -> float:
    """Share of all reviews under a Jeffreys prior: defined (0.5) before any review is seen."""
    return (negative + 0.5) / (negative + other + 1.0)
