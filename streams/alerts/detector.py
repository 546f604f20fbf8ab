"""Is one window's negative count a spike against its baseline?

The test is on the share given the window's volume: k negatives of n
reviews against the beta-binomial predictive of the baseline's Beta(a, b).
More reviews at the usual share (a promotion) is not a spike; the same
reviews with more of them negative is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from streams.alerts.baseline import Baseline
from streams.alerts.settings import AlertSettings

# P(K ≥ k | n, a, b): the beta-binomial, or a stand-in to compare it with (calibration).
Tail = Callable[[int, int, float, float], float]


def alpha_for_budget(
    false_alerts_per_day: float, sizes: int, windows_per_day: float, eligible: int
) -> float:
    """Per-test significance level of one window that spends a budget of false alerts per day.

    The budget is split evenly over the window sizes, then over the
    ``windows_per_day`` windows of this size, then over the ``eligible``
    series in this window: those with at least ``min_negative`` reviews,
    the only ones that can fire. A series with fewer reviews cannot reach the
    minimum whatever its share, so it spends nothing; how many reviews a
    series got says nothing about its share, so counting on it keeps the
    bound. By the union bound the expected number of windows over threshold
    by chance, and so of false alerts, stays at or under the budget, however
    many products there are and however busy the hour. The bound is still
    conservative: a warning needs its windows over threshold in a row, the
    effect floor must be cleared too, and the beta-binomial p-value is
    conservative on thin history.
    """
    tests = max(sizes, 1) * windows_per_day * max(eligible, 1)
    return min(1.0, false_alerts_per_day / tests)


@dataclass(frozen=True)
class Verdict:
    """One window tested: its p-value, and whether it is over the warning or critical line."""

    p_value: float
    over: bool
    critical: bool


def assess(
    negative: int,
    n: int,
    baseline: Baseline,
    alpha: float,
    settings: AlertSettings,
    tail: Tail,
) -> Verdict:
    """Over threshold: p < alpha, at least ``min_negative`` negatives and a share up by the floor.

    The floor and the minimum keep tiny but significant moves (a share from
    2 % to 5 % on a best seller, two bad reviews of a slow seller) quiet.
    """
    p_value = tail(negative, n, baseline.a, baseline.b)
    rose = n > 0 and negative / n - baseline.share >= settings.effect_floor
    over = negative >= settings.min_negative and rose and p_value < alpha
    return Verdict(p_value, over, over and p_value < alpha / settings.critical_factor)
