"""Is one window's negative count a spike against its baseline?

The test is on the share given the window's volume: k negatives of n
reviews against the beta-binomial predictive of the baseline's Beta(a, b).
More reviews at the usual share (a promotion) is not a spike; the same
reviews with more of them negative is.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from streams.alerts.baseline import Baseline
from streams.alerts.settings import AlertSettings

# P(K ≥ k | n, a, b): the beta-binomial, or a stand-in to compare it with (calibration).
Tail = Callable[[int, int, float, float], float]


def window_budget(false_alerts_per_day: float, sizes: int, windows_per_day: float) -> float:
    """False alerts one window may spend: the daily budget split over sizes, then windows."""
    return false_alerts_per_day / (max(sizes, 1) * windows_per_day)


def alpha_for_budget(
    false_alerts_per_day: float, sizes: int, windows_per_day: float, tests: int
) -> float:
    """Per-test significance level that spends a window's budget evenly over ``tests`` tests.

    The budget is split evenly over the window sizes, then over the
    ``windows_per_day`` windows of this size (:func:`window_budget`), then
    over the ``tests`` series counted in this window. By the union bound the
    expected number of windows over threshold by chance, and so of false
    alerts, stays at or under the budget. Which series must be counted is
    :func:`tarone_alpha`'s business; counting every series with at least
    ``min_negative`` reviews is the plain union bound, which Tarone's count
    never exceeds.
    """
    budget = window_budget(false_alerts_per_day, sizes, windows_per_day)
    return min(1.0, budget / max(tests, 1))


def smallest_p_value(n: int, baseline: Baseline, settings: AlertSettings, tail: Tail) -> float:
    """The smallest p-value a window of ``n`` reviews could reach against ``baseline``.

    Every review negative (k = n) gives the smallest p-value; the window must
    also reach ``min_negative`` and the effect floor, which only rules out more
    counts (and so the whole window when k = n misses them: 1.0, it cannot
    fire). It depends on the volume and the history, never on how many of the
    window's reviews are negative, which is what lets :func:`tarone_alpha`
    leave out series that cannot fire without breaking the bound.
    """
    if n < settings.min_negative or 1.0 - baseline.share < settings.effect_floor:
        return 1.0
    return tail(n, n, baseline.a, baseline.b)


def tarone_alpha(budget: float, smallest_p_values: Iterable[float]) -> float:
    """Per-test alpha of one window: ``budget`` split over the series that could reach it.

    The p-value of a window is discrete: a product with 4 reviews in the hour
    can at worst have 4 negatives of 4, and if even that is not rare enough
    for the product's usual share, the window cannot fire whatever its
    reviews say. Such a series cannot cause a false alert, so it needs no
    share of the budget (Tarone 1990, for discrete tests). Counting only the
    series that can fire raises everyone's alpha, which lets more series fire,
    so the count is settled as Tarone does it: alpha = budget / m for the
    smallest m ≥ 1 such that at most m series have a smallest possible p-value
    (:func:`smallest_p_value`) under budget / m. Then the series that can
    fire number at most m, each fires by chance with probability under
    alpha, and the expected false alerts stay within m · alpha = budget (the
    union bound); every other series fires with probability zero. m is never
    more than the number of series with a smallest p-value under 1, so alpha
    is never below the plain union bound's over those series.
    """
    ordered = sorted(smallest_p_values)
    # m grows until at most m series have a smallest p-value under alpha; it stops at the
    # number of series under 1 at the latest.
    m = 1
    while bisect_left(ordered, min(1.0, budget / m)) > m:
        m += 1
    return min(1.0, budget / m)


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
