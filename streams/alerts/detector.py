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
from functools import cache

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


def alert_alpha(budget: float, pending: int, critical_factor: float) -> float:
    """Per-test alpha of one series and window whose false *alerts* stay within ``budget``.

    ``budget`` is what one test may spend (a window's budget over its counted
    series). The budget is of false alerts, and a window over the line is not
    yet an alert when a warning needs ``pending`` ≥ 2 windows over the line in
    a row: by chance, a series alerts in a window only if that window is
    critical (p < alpha / ``critical_factor``) or it ends ``pending`` windows
    over the line in a row. With the windows' tests independent under the
    null, that is at most alpha / critical_factor + alpha ** pending, and
    alpha is the largest value in (0, 1] that keeps this within ``budget``.
    With c = 100 and two windows, alpha nears 100 × the budget as the budget
    shrinks (27 × at 1e-3, 62 × at 1e-4), and its critical line (alpha / c)
    sits near the budget itself. For ``pending`` = 1,
    or a ``critical_factor`` of 1 (every window over the line is critical),
    every window over the line alerts: alpha is the budget, as the plain
    union bound has it.

    The independence is an assumption: consecutive windows of a series share
    their baseline, and a series whose usual share drifted up since its
    history is over the line in consecutive windows together (the seeded
    calibration, tests/unit/test_alerts_calibration.py, checks the null).
    When a series' alpha differs between the windows of a streak, see
    :func:`tarone_alpha` for why the sum over windows still holds.
    """
    if budget <= 0:
        return 0.0
    if pending <= 1 or critical_factor <= 1:
        return min(1.0, budget)
    return _largest_alpha(budget, pending, critical_factor)


@cache
def _largest_alpha(budget: float, pending: int, critical_factor: float) -> float:
    def spent(alpha: float) -> float:
        return alpha / critical_factor + alpha**pending

    # The spend is increasing in alpha: bisect [0, 1], always keeping spent(lo) ≤ budget. The
    # same midpoints for every budget until a larger one goes up where a smaller goes down
    # make the answer monotone in the budget; 200 halvings reach any float alpha in use.
    if spent(1.0) <= budget:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        if spent(mid) <= budget:
            lo = mid
        else:
            hi = mid
    return lo


def tarone_alpha(
    budget: float,
    smallest_p_values: Iterable[float],
    pending: int = 1,
    critical_factor: float = 1.0,
) -> float:
    """Per-test alpha of one window: ``budget`` split over the series that could reach it.

    The p-value of a window is discrete: a product with 4 reviews in the hour
    can at worst have 4 negatives of 4, and if even that is not rare enough
    for the product's usual share, the window cannot fire whatever its
    reviews say. Such a series cannot cause a false alert, so it needs no
    share of the budget (Tarone 1990, for discrete tests). Counting only the
    series that can fire raises everyone's alpha, which lets more series fire,
    so the count is settled as Tarone does it: alpha = :func:`alert_alpha` of
    budget / m (budget / m itself when one window over the line alerts,
    ``pending`` = 1) for the smallest m ≥ 1 such that at most m series have a
    smallest possible p-value (:func:`smallest_p_value`) under that alpha,
    the alpha applied. Then the series that can be over the line number at
    most m; every other series is over it with probability zero.

    The bound at the alert level. With ``pending`` = 1 each counted series is
    over the line by chance with probability under alpha = budget / m, and
    the expected false alerts stay within m · alpha = budget (the union
    bound). With ``pending`` ≥ 2 a series alerts by chance in a window only
    if the window is critical, with probability under alpha / c, or if it
    ends ``pending`` windows over the line in a row, with probability under
    the product of those windows' alphas, the windows independent. A series
    is over the line only in windows in which it is counted, and a product
    of alphas is at most the mean of their ``pending``-th powers (the means
    inequality): charge each window of the streak that mean's share. A
    counted series and window is charged by at most ``pending`` streaks, the
    ones it belongs to, so at most alpha / c + alpha ** pending in all, which
    :func:`alert_alpha` keeps within budget / m: the expected false alerts of
    the window size stay within the sum of its windows' budgets. m is never
    more than the number of series with a smallest p-value under 1, so alpha
    is never below that of the plain union bound over those series, budget /
    their number (made an alert's alpha when ``pending`` ≥ 2).
    """
    ordered = sorted(smallest_p_values)

    def alpha(m: int) -> float:
        return alert_alpha(min(1.0, budget / m), pending, critical_factor)

    # m grows until at most m series have a smallest p-value under alpha; it stops at the
    # number of series under 1 at the latest.
    m = 1
    while bisect_left(ordered, alpha(m)) > m:
        m += 1
    return alpha(m)


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
