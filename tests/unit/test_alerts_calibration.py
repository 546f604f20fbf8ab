"""False alerts against the budget, beta-binomial against the plug-in binomial, and power.

Seeded simulations (``streams.alerts.calibration``); the measured numbers are
printed (run pytest with ``-s`` to see them).
"""

from __future__ import annotations

from streams.alerts.calibration import plugin_binomial_sf, simulate_null, simulate_spikes
from streams.alerts.settings import AlertSettings

SETTINGS = AlertSettings()
BUDGET = SETTINGS.false_alerts_per_day


def test_false_alerts_stay_within_the_budget() -> None:
    beta = simulate_null(SETTINGS, seed=0)
    plugin = simulate_null(SETTINGS, seed=0, tail=plugin_binomial_sf)
    print(f"\nnull, 0.5–20 reviews/day, beta-binomial: {beta}")
    print(f"null, 0.5–20 reviews/day, plug-in binomial: {plugin}")
    assert beta.false_alerts_per_day <= BUDGET


def test_the_plugin_binomial_fires_on_thin_history() -> None:
    """New products selling more in a window than their history holds.

    At 0.5–20 reviews a day neither test gets past three negatives and ten
    points; at 5–100 a day, the plug-in binomial takes the share shrunk toward
    the category for the truth and fires on products that are simply worse
    than their category from the day they launch.
    """
    beta = simulate_null(SETTINGS, seed=0, reviews_per_day=(5.0, 100.0))
    plugin = simulate_null(SETTINGS, seed=0, reviews_per_day=(5.0, 100.0), tail=plugin_binomial_sf)
    print(f"\nnull, 5–100 reviews/day, beta-binomial: {beta}")
    print(f"null, 5–100 reviews/day, plug-in binomial: {plugin}")
    assert beta.false_alerts_per_day <= BUDGET
    assert plugin.false_alerts_per_day > beta.false_alerts_per_day
    assert plugin.thin_history_alerts > beta.thin_history_alerts


def test_power_to_see_a_doubled_share() -> None:
    sparse = simulate_spikes(SETTINGS, seed=0)
    busy = simulate_spikes(SETTINGS, seed=0, products=100, reviews_per_day=(20.0, 200.0))
    print(f"\nshare × 2 for 48 h, 0.5–20 reviews/day: {sparse}")
    print(f"share × 2 for 48 h, 20–200 reviews/day: {busy}")
    assert busy.detected / busy.spikes >= 0.5
    assert sparse.detected < busy.detected  # slow sellers lack the reviews to show a doubling
    # Alerts on products without a spike are false alerts: within the budget over 60 days.
    assert sparse.false_product_alerts <= 60 * BUDGET
    assert busy.false_product_alerts <= 60 * BUDGET
