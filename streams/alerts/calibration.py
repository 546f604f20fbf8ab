"""Does the detector keep its false-alert budget, and what does it catch?

:func:`simulate_null` runs the engine over simulated review streams whose
negative shares never change: every alert is a false alert, and their rate
per day is compared with ``false_alerts_per_day``. :func:`simulate_spikes`
multiplies the share of some products for a while and reports how many of
those spikes fired an alert. Both take the tail probability as a parameter,
so the beta-binomial can be compared with :func:`plugin_binomial_sf`, the
binomial at the baseline share, which takes a share estimated from a few
reviews for the truth and so sees spikes in the noise of thin histories.

The catalogue is sparse like a real one: by default 0.5–20 reviews per
product per day (log-uniform), negative shares 0.05–0.4, products launched
over the first half of the run (so some history is always thin), reviews
Poisson per hour, categories the sums of their products. Everything comes
from one seeded generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from streams.alerts.detector import Tail
from streams.alerts.engine import WindowCount, run_alerts
from streams.alerts.event import AlertEvent
from streams.alerts.settings import AlertSettings
from streams.alerts.tails import beta_binomial_sf, binomial_sf

HOUR_MS = 3_600_000
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z; any hour boundary would do
BUSY_PER_DAY = 5.0

Counts = NDArray[np.int64]


def plugin_binomial_sf(k: int, n: int, a: float, b: float) -> float:
    """P(K ≥ k) as if the baseline share a/(a+b) were the true share (the naive test)."""
    return binomial_sf(k, n, a / (a + b))


@dataclass(frozen=True)
class _Catalogue:
    """Simulated products: reviews per day, negative share, category, launch hour."""

    rate: NDArray[np.float64]
    share: NDArray[np.float64]
    category: NDArray[np.int64]
    launch_hour: NDArray[np.int64]


@dataclass(frozen=True)
class NullReport:
    """False alerts (episodes fired) of a run without spikes.

    ``thin_history_alerts`` counts those whose baseline held fewer reviews
    than the window that fired: where a share estimated from history is
    least certain.
    """

    days: int
    products: int
    windows_tested: int
    product_alerts: int
    category_alerts: int
    thin_history_alerts: int
    budget_per_day: float

    @property
    def false_alerts_per_day(self) -> float:
        return (self.product_alerts + self.category_alerts) / self.days

    def __str__(self) -> str:
        return (
            f"{self.products} products, {self.days} days, {self.windows_tested} windows tested: "
            f"{self.product_alerts} product + {self.category_alerts} category false alerts = "
            f"{self.false_alerts_per_day:.3f}/day (budget {self.budget_per_day:g}/day), "
            f"{self.thin_history_alerts} of them on thin history"
        )


@dataclass(frozen=True)
class PowerReport:
    """Spiked products whose spike fired an alert, overall and among the busier ones."""

    spikes: int
    detected: int
    busy_spikes: int
    busy_detected: int
    false_product_alerts: int

    def __str__(self) -> str:
        return (
            f"spikes detected {self.detected}/{self.spikes} = {self.detected / self.spikes:.2f}; "
            f"products with ≥ {BUSY_PER_DAY:g} reviews/day {self.busy_detected}/"
            f"{self.busy_spikes} = {self.busy_detected / max(self.busy_spikes, 1):.2f}; "
            f"alerts on products without a spike {self.false_product_alerts}"
        )


def _catalogue(
    rng: np.random.Generator,
    products: int,
    categories: int,
    days: int,
    reviews_per_day: tuple[float, float],
) -> _Catalogue:
    low, high = reviews_per_day
    return _Catalogue(
        rate=np.exp(rng.uniform(np.log(low), np.log(high), products)),
        share=rng.uniform(0.05, 0.4, products),
        category=rng.integers(0, categories, products),
        launch_hour=rng.integers(0, days * 24 // 2, products),
    )


def _hourly_counts(
    rng: np.random.Generator, cat: _Catalogue, shares: NDArray[np.float64]
) -> tuple[Counts, Counts]:
    """Reviews and negatives per product (rows) and hour (columns); ``shares`` has that shape."""
    hours = shares.shape[1]
    launched = np.arange(hours)[None, :] >= cat.launch_hour[:, None]
    n = rng.poisson(cat.rate[:, None] / 24.0 * launched, shares.shape).astype(np.int64)
    return n, rng.binomial(n, shares).astype(np.int64)


def _window_counts(
    cat: _Catalogue, n: Counts, negative: Counts, settings: AlertSettings
) -> list[WindowCount]:
    """Per-window records for every alert window (whole hours) of products and categories."""
    records: list[WindowCount] = []
    for length_ms in settings.window_lengths_ms().values():
        if length_ms % HOUR_MS:
            raise ValueError("the simulation counts whole hours; alert windows must be hours")
        step = length_ms // HOUR_MS
        usable = n.shape[1] // step * step
        wn = n[:, :usable].reshape(len(n), -1, step).sum(axis=2)
        wneg = negative[:, :usable].reshape(len(n), -1, step).sum(axis=2)
        cn = np.zeros((int(cat.category.max()) + 1, wn.shape[1]), np.int64)
        cneg = np.zeros_like(cn)
        np.add.at(cn, cat.category, wn)
        np.add.at(cneg, cat.category, wneg)
        for w in range(wn.shape[1]):
            start, end = T0_MS + w * length_ms, T0_MS + (w + 1) * length_ms
            records += [
                WindowCount(
                    "product",
                    f"p{p}",
                    f"c{cat.category[p]}",
                    start,
                    end,
                    int(wn[p, w]),
                    int(wneg[p, w]),
                )
                for p in np.flatnonzero(wn[:, w]).tolist()
            ]
            records += [
                WindowCount(
                    "category", f"c{c}", f"c{c}", start, end, int(cn[c, w]), int(cneg[c, w])
                )
                for c in np.flatnonzero(cn[:, w]).tolist()
            ]
    return records


def _episodes(events: list[AlertEvent]) -> dict[str, AlertEvent]:
    """The first firing event of each alert id."""
    first: dict[str, AlertEvent] = {}
    for e in events:
        if e.status == "firing":
            first.setdefault(e.alert_id, e)
    return first


def simulate_null(
    settings: AlertSettings,
    *,
    products: int = 200,
    categories: int = 8,
    days: int = 60,
    seed: int = 0,
    reviews_per_day: tuple[float, float] = (0.5, 20.0),
    tail: Tail = beta_binomial_sf,
) -> NullReport:
    """False alerts per day on streams without spikes, against the budget."""
    rng = np.random.default_rng(seed)
    cat = _catalogue(rng, products, categories, days, reviews_per_day)
    shares = np.repeat(cat.share[:, None], days * 24, axis=1)
    records = _window_counts(cat, *_hourly_counts(rng, cat, shares), settings)
    alerts = list(_episodes(run_alerts(records, settings, "simulation", "0", tail=tail)).values())
    product_alerts = sum(1 for e in alerts if e.product_id is not None)
    return NullReport(
        days=days,
        products=products,
        windows_tested=len(records),
        product_alerts=product_alerts,
        category_alerts=len(alerts) - product_alerts,
        thin_history_alerts=sum(1 for e in alerts if e.baseline_n < e.n),
        budget_per_day=settings.false_alerts_per_day,
    )


def simulate_spikes(
    settings: AlertSettings,
    *,
    products: int = 200,
    categories: int = 8,
    days: int = 60,
    seed: int = 0,
    reviews_per_day: tuple[float, float] = (0.5, 20.0),
    spiked: float = 0.25,
    spike_hours: int = 48,
    factor: float = 2.0,
    tail: Tail = beta_binomial_sf,
) -> PowerReport:
    """Power: a ``spiked`` fraction of products has its share × ``factor`` for ``spike_hours``.

    Spikes start in the second half of the run, after every product launched.
    A spike is detected when its product fires (any window size) in a window
    that overlaps it.
    """
    rng = np.random.default_rng(seed)
    cat = _catalogue(rng, products, categories, days, reviews_per_day)
    hours = days * 24
    shares = np.repeat(cat.share[:, None], hours, axis=1)
    chosen = rng.choice(products, int(products * spiked), replace=False)
    starts = rng.integers(hours // 2, hours - spike_hours - 24, len(chosen))
    for p, s in zip(chosen.tolist(), starts.tolist(), strict=True):
        shares[p, s : s + spike_hours] = min(1.0, cat.share[p] * factor)
    records = _window_counts(cat, *_hourly_counts(rng, cat, shares), settings)
    alerts = [
        e
        for e in _episodes(run_alerts(records, settings, "simulation", "0", tail=tail)).values()
        if e.product_id
    ]
    spike_ms = {
        f"p{p}": (T0_MS + s * HOUR_MS, T0_MS + (s + spike_hours) * HOUR_MS)
        for p, s in zip(chosen.tolist(), starts.tolist(), strict=True)
    }
    detected = {
        e.product_id
        for e in alerts
        if e.product_id in spike_ms
        and e.window_start_ms < spike_ms[e.product_id][1]
        and e.window_end_ms > spike_ms[e.product_id][0]
    }
    busy = {f"p{p}" for p in chosen.tolist() if cat.rate[p] >= BUSY_PER_DAY}
    return PowerReport(
        spikes=len(chosen),
        detected=len(detected),
        busy_spikes=len(busy),
        busy_detected=len(detected & busy),
        false_product_alerts=sum(1 for e in alerts if e.product_id not in spike_ms),
    )
