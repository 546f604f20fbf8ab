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

from collections import deque
from dataclasses import dataclass


class History:
    """Decayed counts of one series' past windows, kept as running sums.

    Running sums make a baseline O(1) per window instead of a pass over up
    to 672 hourly windows. Times only move forward (windows are tested in
    event-time order), so decaying the sums and dropping windows that left
    the horizon is done as time reaches them.
    """

    def __init__(self, half_life_ms: float, horizon_ms: int) -> None:
        self._half_life_ms = half_life_ms
        self._horizon_ms = horizon_ms
        self._windows: deque[tuple[int, int, int]] = deque()  # (start, negative, other)
        self._negative = 0.0
        self._other = 0.0
        self._at_ms = 0

    def add(self, start_ms: int, n: int, negative: int) -> None:
        """Remember a tested window that is not in alert; an empty one tells nothing."""
        if n == 0:
            return
        self._advance(start_ms)
        self._windows.append((start_ms, negative, n - negative))
        self._negative += negative
        self._other += n - negative

    def counts(self, at_ms: int) -> tuple[float, float]:
        """Decayed (negative, other) reviews of the windows before ``at_ms``, within the horizon."""
        self._advance(at_ms)
        return self._negative, self._other

    def _weight(self, age_ms: int) -> float:
        return float(2.0 ** (-age_ms / self._half_life_ms))

    def _advance(self, at_ms: int) -> None:
        if at_ms == self._at_ms:
            return
        while self._windows and self._windows[0][0] < at_ms - self._horizon_ms:
            start, negative, other = self._windows.popleft()
            weight = self._weight(self._at_ms - start)
            self._negative -= weight * negative
            self._other -= weight * other
        if self._windows:
            decay = self._weight(at_ms - self._at_ms)
            # Subtracting what left the horizon may leave a rounding residue below zero.
            self._negative = max(0.0, self._negative * decay)
            self._other = max(0.0, self._other * decay)
        else:
            self._negative = self._other = 0.0
        self._at_ms = at_ms


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
