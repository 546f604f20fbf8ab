"""The per-window test: alpha from the budget, the baseline it predicts from, the thresholds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from streams.alerts.baseline import Baseline, History, overall_share
from streams.alerts.detector import (
    alert_alpha,
    alpha_for_budget,
    assess,
    smallest_p_value,
    tarone_alpha,
    window_budget,
)
from streams.alerts.settings import AlertSettings
from streams.alerts.tails import beta_binomial_sf

DAY = 86_400_000


def test_alpha_spends_the_budget_over_sizes_windows_and_series_that_can_fire() -> None:
    # Two sizes share a budget of 1/day: 0.5 for the 24 hourly windows, 0.5 for the daily one.
    # An hour in which 100 series had at least min_negative reviews: 0.5 / 24 / 100.
    assert alpha_for_budget(1.0, 2, 24, 100) == pytest.approx(0.5 / 2400)
    assert alpha_for_budget(2.0, 2, 24, 100) == pytest.approx(1.0 / 2400)
    # A day in which 1,020 series could fire.
    assert alpha_for_budget(1.0, 2, 1, 1020) == pytest.approx(0.5 / 1020)
    # No series could fire: alpha as for one (it is not used).
    assert alpha_for_budget(1.0, 2, 24, 0) == pytest.approx(0.5 / 24)
    assert alpha_for_budget(100.0, 1, 1, 1) == 1.0


def test_the_smallest_p_value_is_every_review_negative_or_none() -> None:
    settings = AlertSettings()  # min_negative 3, effect floor 0.10
    usual = Baseline(100.0, 900.0, prior_share=0.1, prior_strength=10)  # share 0.1
    assert smallest_p_value(4, usual, settings, beta_binomial_sf) == beta_binomial_sf(
        4, 4, usual.a, usual.b
    )
    # Fewer reviews than min_negative, or a share so high that even all-negative misses the
    # effect floor: the window cannot be over threshold, whatever its negatives.
    assert smallest_p_value(2, usual, settings, beta_binomial_sf) == 1.0
    awful = Baseline(950.0, 50.0, prior_share=0.9, prior_strength=10)  # share 0.95
    assert smallest_p_value(40, awful, settings, beta_binomial_sf) == 1.0


def test_a_series_that_cannot_reach_alpha_spends_no_budget() -> None:
    # Two series that could fire (all-negative would be very rare) and three whose best case,
    # 3 of 3 negative at a usual share near 20 %, is not rare enough for any alpha here.
    smallest = [1e-6, 1e-5, 0.008, 0.008, 0.008]
    assert tarone_alpha(0.01, smallest) == pytest.approx(0.005)  # budget over 2, not 5
    # At budget / 1 three series could reach 0.01: one test is not enough.
    assert tarone_alpha(0.05, smallest) == pytest.approx(0.05 / 5)
    assert tarone_alpha(0.01, []) == 0.01  # nothing can fire: alpha as for one test
    assert tarone_alpha(10.0, [0.5]) == 1.0


def test_quiet_series_do_not_dilute_alpha() -> None:
    """Forty products with 3 reviews in the hour at a usual share near 30 % and one busy one."""
    settings = AlertSettings()
    budget = window_budget(settings.false_alerts_per_day, 2, 24)  # an hour of two sizes
    quiet = smallest_p_value(3, Baseline(60.0, 140.0, 0.3, 10), settings, beta_binomial_sf)
    busy = smallest_p_value(20, Baseline(20.0, 180.0, 0.1, 10), settings, beta_binomial_sf)
    assert quiet > budget  # 3 of 3 negative happens about once in 35 such hours
    assert tarone_alpha(budget, [busy, *[quiet] * 40]) == budget  # one test, not 41
    assert alpha_for_budget(settings.false_alerts_per_day, 2, 24, 41) == pytest.approx(budget / 41)


budgets = st.floats(1e-6, 10.0)
smallest_values = st.lists(
    st.one_of(st.floats(0.0, 1.0), st.just(1.0), st.floats(1e-12, 1e-3)), max_size=60
)


@given(budget=budgets, smallest=smallest_values)
def test_tarone_alpha_keeps_the_union_bound_and_never_falls_below_the_plain_one(
    budget: float, smallest: list[float]
) -> None:
    alpha = tarone_alpha(budget, smallest)
    plain = min(1.0, budget / max(len(smallest), 1))  # every series counted
    assert alpha >= plain
    # Only series whose smallest p-value is under alpha can be over threshold, each with
    # probability under alpha: their expected false alerts stay within the budget.
    counted = sum(p < alpha for p in smallest)
    assert counted * alpha <= budget * (1 + 1e-12)


def test_one_window_over_the_line_is_an_alert_the_budget_is_alpha() -> None:
    assert alert_alpha(0.01, 1, 100.0) == 0.01
    assert alert_alpha(2.0, 1, 100.0) == 1.0
    # Every window over the line critical: it alerts at once, whatever the pending windows.
    assert alert_alpha(0.01, 2, 1.0) == 0.01


def test_two_windows_in_a_row_spend_alpha_over_100_plus_its_square() -> None:
    # An hour of two sizes with two series counted: 0.5 / 24 / 2.
    budget = 0.5 / 24 / 2
    alpha = alert_alpha(budget, 2, 100.0)
    assert alpha / 100 + alpha**2 == pytest.approx(budget)
    assert 9 * budget < alpha < 10 * budget
    # The smaller the budget, the nearer to 100 × (the square's share vanishes).
    assert alert_alpha(1e-8, 2, 100.0) == pytest.approx(100 * 1e-8, rel=1e-3)
    assert alert_alpha(10.0, 2, 100.0) == 1.0


@given(budget=st.floats(1e-12, 2.0), pending=st.integers(2, 6), factor=st.floats(1.0, 1e4))
def test_alert_alpha_is_the_largest_alpha_within_the_budget(
    budget: float, pending: int, factor: float
) -> None:
    alpha = alert_alpha(budget, pending, factor)
    assert 0 < alpha <= 1
    if factor == 1:  # every window over the line is critical: one window, one alert
        assert alpha == min(1.0, budget)
        return
    assert alpha / factor + alpha**pending <= budget
    if alpha < 1:
        larger = alpha * (1 + 1e-9)
        assert larger / factor + larger**pending > budget


@given(
    budgets=st.lists(st.floats(1e-12, 2.0), min_size=2, max_size=2),
    pending=st.integers(1, 4),
    factor=st.floats(1.0, 1e4),
)
def test_alert_alpha_grows_with_the_budget(
    budgets: list[float], pending: int, factor: float
) -> None:
    small, large = sorted(budgets)
    assert alert_alpha(small, pending, factor) <= alert_alpha(large, pending, factor)


@given(budget=budgets, smallest=smallest_values, pending=st.integers(1, 3))
def test_tarone_alpha_keeps_the_bound_at_the_alert_level(
    budget: float, smallest: list[float], pending: int
) -> None:
    """Counted with the alpha applied: each counted series spends alpha / c + alpha ** m."""
    alpha = tarone_alpha(budget, smallest, pending, 100.0)
    counted = sum(p < alpha for p in smallest)
    if pending > 1 and alpha < 1:
        assert counted * (alpha / 100 + alpha**pending) <= budget * (1 + 1e-9)
    # Never below the plain union bound over every series, made an alert's alpha.
    assert alpha >= alert_alpha(min(1.0, budget / max(len(smallest), 1)), pending, 100.0)


def test_a_looser_alpha_can_count_more_series() -> None:
    """Series within reach of the looser alpha are counted, and share the budget."""
    budget = 0.01
    smallest = [1e-6, 0.02, 0.02, 0.02]  # three reach 0.07 but not 0.005
    assert tarone_alpha(budget, smallest) == budget  # the alert of one window: one series
    looser = tarone_alpha(budget, smallest, 2, 100.0)
    assert looser == alert_alpha(budget / 4, 2, 100.0)  # all four counted
    assert sum(p < looser for p in smallest) == 4


def test_pending_for_counts_windows_of_each_length() -> None:
    settings = AlertSettings()
    assert settings.pending_windows(3_600_000) == 2
    assert settings.pending_windows(DAY) == 1
    assert AlertSettings(pending_for="90m").pending_windows(3_600_000) == 2
    assert AlertSettings(pending_for="48h").pending_windows(DAY) == 2
    with pytest.raises(ValidationError, match="duration"):
        AlertSettings(pending_for="two hours")


def test_history_decays_by_half_life_and_forgets_past_the_horizon() -> None:
    history = History(half_life_ms=7 * DAY, horizon_ms=28 * DAY)
    history.add(0, n=10, negative=4)
    assert history.counts(0) == (4.0, 6.0)
    assert history.counts(7 * DAY) == pytest.approx((2.0, 3.0))
    history.add(14 * DAY, n=2, negative=2)
    assert history.counts(14 * DAY) == pytest.approx((1.0 + 2.0, 1.5))
    assert history.counts(28 * DAY) == pytest.approx((0.0625 * 4 + 0.25 * 2, 0.0625 * 6))
    # The window of day 0 leaves once it is older than 28 days; day 14's stays.
    assert history.counts(28 * DAY + 1) == pytest.approx((0.25 * 2, 0.0), abs=1e-6)
    assert history.counts(43 * DAY) == (0.0, 0.0)


def test_baseline_shrinks_thin_history_toward_the_prior() -> None:
    no_history = Baseline(0.0, 0.0, prior_share=0.2, prior_strength=10)
    assert no_history.share == pytest.approx(0.2)
    assert (no_history.a, no_history.b, no_history.n) == pytest.approx((2.0, 8.0, 0.0))
    thin = Baseline(2.0, 0.0, prior_share=0.2, prior_strength=10)  # two bad reviews so far
    assert thin.share == pytest.approx(4 / 12)
    thick = Baseline(50.0, 950.0, prior_share=0.2, prior_strength=10)
    assert thick.share == pytest.approx(52 / 1010)
    assert overall_share(0.0, 0.0) == 0.5
    assert overall_share(30.0, 70.0) == pytest.approx(30.5 / 101)


def verdict(negative: int, n: int, **overrides: float) -> tuple[bool, bool]:
    settings = AlertSettings(**overrides)
    baseline = Baseline(100.0, 900.0, prior_share=0.1, prior_strength=10)  # share 0.1
    v = assess(negative, n, baseline, 1e-3, settings, beta_binomial_sf)
    return v.over, v.critical


def test_over_threshold_needs_significance_volume_and_effect() -> None:
    assert verdict(9, 20) == (True, False)  # 45 % against 10 %, p ≈ 8e-5
    assert verdict(20, 40) == (True, True)  # p ≈ 1e-9 < alpha / 100
    assert verdict(4, 4) == (True, False)  # p ≈ 1e-4
    assert verdict(4, 4, min_negative=5) == (False, False)
    # Significant on a big window, but the share rose by 5 points only.
    assert verdict(300, 2000) == (False, False)
    assert verdict(300, 2000, effect_floor=0.04) == (True, False)  # p ≈ 5e-5
    assert verdict(0, 0) == (False, False)


def test_settings_check_windows() -> None:
    assert AlertSettings().window_lengths_ms() == {"1h": 3_600_000, "24h": DAY}
    with pytest.raises(ValidationError, match="duration"):
        AlertSettings(windows=["1 hour"])
    with pytest.raises(ValidationError, match="repeat a length"):
        AlertSettings(windows=["1h", "60m"])
    with pytest.raises(ValidationError, match="longer than the longest"):
        AlertSettings(windows=["7d"], history_days=7)
