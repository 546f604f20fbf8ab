"""The seeded review streams of a run: :class:`SimConfig` in, :class:`Streams` out. Each product
belongs to one category and has a launch (day 0, or for ``new_products`` of them, 20 %, a time
uniform over the run but its last three days, so some histories are always thin), a volume
(log-uniform in 1–50 reviews a day, Poisson per hour with a daily cycle, busiest at 20:00 UTC,
quietest at 08:00, ×1.6 / ×0.4) and a steady negative share drawn from the corpus's real
per-product shares; each review's text is drawn from its category's real reviews of the same
polarity. After ``warmup_days`` a fraction of the products gets one spike: ``size`` extra real
negative reviews of its category, spread uniformly over ``spike_hours``, starting after both the
warm-up and the product's launch. Sizes are dealt round-robin so each size has as many spikes.
Everything is drawn from one seeded generator; times are event times from the fixed origin
``T0_MS``, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from streams.alerts.calibration import T0_MS
from streams.tools.simulate.corpus import Corpus, Text

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
DIURNAL_AMPLITUDE = 0.6
DIURNAL_PEAK_HOUR = 20

Ints = NDArray[np.int64]
Floats = NDArray[np.float64]
Bools = NDArray[np.bool_]


@dataclass(frozen=True)
class SimConfig:
    products: int = 500
    days: int = 28
    warmup_days: int = 7
    seed: int = 0
    reviews_per_day: tuple[float, float] = (1.0, 50.0)
    spiked: float = 0.5
    sizes: tuple[int, ...] = (3, 5, 10, 20, 40)
    spike_hours: float = 6.0
    new_products: float = 0.2

    def __post_init__(self) -> None:
        if self.products < 1 or not 0 <= self.warmup_days < self.days - 1:
            raise ValueError("need products ≥ 1 and 0 ≤ warmup_days < days − 1")
        if not 0 <= self.spiked <= 1 or not self.sizes or min(self.sizes) < 1:
            raise ValueError("spiked must lie in [0, 1] and sizes be ≥ 1")
        span_ms = (self.days - self.warmup_days - 1) * DAY_MS
        if not 0 < self.spike_hours * HOUR_MS < min(span_ms, 2 * DAY_MS):
            raise ValueError("spikes must be under 48 h and fit between the warm-up and last day")
        if not 0 <= self.new_products <= 1 or (self.new_products and self.days < 4):
            raise ValueError("new_products must lie in [0, 1], and launches need 4 days or more")


@dataclass(frozen=True)
class Spike:
    product: int
    size: int
    start_ms: int  # the first injected review
    end_ms: int  # just after the last one


@dataclass(frozen=True)
class Streams:
    """Every review of a run, sorted by (product, time), and the products behind them."""

    config: SimConfig
    categories: tuple[str, ...]
    product_category: Ints  # index into categories, per product
    product_share: Floats
    product_rate: Floats  # reviews per day
    product_launch_ms: Ints
    product: Ints  # per review
    ts_ms: Ints
    negative: Bools
    injected: Bools
    text_index: Ints  # per review, into its category's pool of its polarity
    spikes: tuple[Spike, ...]
    corpus: Corpus

    def text(self, i: int) -> Text:
        """The real review behind review ``i``."""
        category = self.categories[int(self.product_category[self.product[i]])]
        pool = self.corpus.negative if self.negative[i] else self.corpus.other
        return pool[category][int(self.text_index[i])]

    def product_id(self, p: int) -> str:
        return f"p{p:04d}"

    def category_of(self, p: int) -> str:
        return self.categories[int(self.product_category[p])]

    def product_days(self) -> float:
        """Days on sale, summed over products (a launched product counts from its launch)."""
        end_ms = T0_MS + self.config.days * DAY_MS
        return float((end_ms - self.product_launch_ms).sum()) / DAY_MS

    def span(self, p: int) -> tuple[int, int]:
        """The slice of the review arrays that holds product ``p``."""
        lo, hi = np.searchsorted(self.product, [p, p + 1])
        return int(lo), int(hi)

    def reviews_between(self, p: int, start_ms: int, end_ms: int) -> int:
        lo, hi = self.span(p)
        a, b = np.searchsorted(self.ts_ms[lo:hi], [start_ms, end_ms])
        return int(b - a)


def _diurnal() -> Floats:
    hours = np.arange(24)
    profile = 1.0 + DIURNAL_AMPLITUDE * np.cos(2 * np.pi * (hours - DIURNAL_PEAK_HOUR) / 24)
    normalised: Floats = profile / profile.mean()
    return normalised


def simulate_streams(corpus: Corpus, config: SimConfig) -> Streams:
    """Steady review streams with injected spikes, all drawn from one seeded generator."""
    rng = np.random.default_rng(config.seed)
    categories = corpus.categories
    products, hours = config.products, config.days * 24
    category = np.arange(products, dtype=np.int64) % len(categories)
    share = rng.choice(np.asarray(corpus.product_shares), products)
    low, high = config.reviews_per_day
    rate = np.exp(rng.uniform(math.log(low), math.log(high), products))
    launch_hour = np.where(
        rng.random(products) < config.new_products,
        rng.integers(0, max(config.days - 3, 1) * 24, products),
        0,
    ).astype(np.int64)

    on_sale = np.arange(hours)[None, :] >= launch_hour[:, None]
    lam = rate[:, None] / 24.0 * np.tile(_diurnal(), config.days)[None, :] * on_sale
    per_hour = rng.poisson(lam).astype(np.int64).ravel()
    product = np.repeat(np.repeat(np.arange(products), hours), per_hour)
    hour = np.repeat(np.tile(np.arange(hours), products), per_hour)
    ts = T0_MS + hour * HOUR_MS + rng.integers(0, HOUR_MS, len(hour))
    negative = rng.random(len(hour)) < share[product]

    spikes: list[Spike] = []
    chosen = np.sort(rng.choice(products, round(products * config.spiked), replace=False))
    spike_ms = round(config.spike_hours * HOUR_MS)
    first_ms = T0_MS + config.warmup_days * DAY_MS
    last_ms = T0_MS + (config.days - 1) * DAY_MS - spike_ms
    spike_product: list[Ints] = []
    spike_ts: list[Ints] = []
    for j, p in enumerate(chosen.tolist()):
        size = config.sizes[j % len(config.sizes)]
        start = int(rng.integers(max(first_ms, T0_MS + launch_hour[p] * HOUR_MS), last_ms))
        at = np.sort(start + rng.integers(0, spike_ms, size))
        spikes.append(Spike(p, size, int(at[0]), int(at[-1]) + 1))
        spike_product.append(np.full(size, p, dtype=np.int64))
        spike_ts.append(at.astype(np.int64))
    n_steady = len(ts)
    product = np.concatenate([product, *spike_product]).astype(np.int64)
    ts = np.concatenate([ts, *spike_ts]).astype(np.int64)
    negative = np.concatenate([negative, np.ones(len(ts) - n_steady, dtype=np.bool_)])
    injected = np.arange(len(ts)) >= n_steady

    text_index = np.zeros(len(ts), np.int64)
    review_category = category[product]
    for c, name in enumerate(categories):
        for is_negative, pool in ((True, corpus.negative[name]), (False, corpus.other[name])):
            rows = np.flatnonzero((review_category == c) & (negative == is_negative))
            text_index[rows] = rng.integers(0, len(pool), len(rows))

    order = np.lexsort((ts, product))
    return Streams(
        config=config,
        categories=categories,
        product_category=category,
        product_share=share,
        product_rate=rate,
        product_launch_ms=T0_MS + launch_hour * HOUR_MS,
        product=product[order],
        ts_ms=ts[order],
        negative=negative[order],
        injected=injected[order],
        text_index=text_index[order],
        spikes=tuple(spikes),
        corpus=corpus,
    )
