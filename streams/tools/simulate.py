"""``reviewpulse simulate``: the spike detector on real reviews as simulated streams.

A benchmark, not a test: it prints what the detector catches and what it
costs in false alerts, next to two simpler rules on the same streams.

Streams. Every simulated review is a real review of ``shared/data``: the
English clothing reviews (category = ``department``, negative = ``rating`` ≤ 2,
i.e. the dataset's ``sentiment`` negative) and the Chinese online-shopping
reviews (category = ``cat``, negative = ``label`` 0). The **dataset's label
stands in for the model's output**: the detector counts negatives, and what is
measured here is the detector, not the model (``models/packages/*/MODEL_CARD.md``
has the model's accuracy). Each product belongs to one category and has

* a launch: day 0, or for ``new_products`` of them (20 %) a time uniform
  over the run but its last three days, so some histories are always thin;
* a volume, log-uniform in 1–50 reviews a day, Poisson per hour with a
  daily cycle (busiest at 20:00 UTC, quietest at 08:00, ×1.6 / ×0.4);
* a steady negative share drawn from the real per-product shares of the
  English clothing items with at least 30 reviews (Jeffreys-smoothed: median
  about 10 %, 90th percentile about 19 %); the Chinese corpus is balanced by
  construction, so its per-product shares mean nothing and the English ones
  are used for every product.

Each review's text is drawn from its category's real reviews of the same
polarity. After ``warmup_days`` a fraction of the products gets one spike:
``size`` extra real negative reviews of its category, spread uniformly over
``spike_hours``, starting after both the warm-up and the product's launch.
Sizes are dealt round-robin so each size has as many spikes.

Detectors, all on the same events, counted into the same tumbling windows:

* ``detector``: :func:`streams.alerts.run_alerts` with the given settings
  (beta-binomial tail), products and categories;
* ``plugin-binomial``: the same engine with
  :func:`streams.alerts.calibration.plugin_binomial_sf` (the baseline share
  taken for the truth): only the tail differs;
* ``plain-binomial``: per product and window, a binomial test of the window's
  negatives against the product's own share of the previous ``history_days``
  (Jeffreys-smoothed), at the per-test alpha the engine would use, with no
  minimum, no effect floor and no pending window: fires on any window with
  p < alpha;
* ``threshold``: negative share > 30 % with ≥ 5 reviews in a window;
* ``oracle-binomial``: the plain binomial told each product's true steady
  share, which no real detector knows. Not a contender: an upper bound on
  what any test at that alpha can catch.

Accounting. An alert is one episode (the engine: one alert id; the window
rules: a run of consecutive windows over the line, per window size), dated
by the window in which it first fired. It detects a spike when that window
overlaps the span of the spike's injected reviews; any other product episode
is a false alert, counted per 1,000 product-days on sale. The delay runs from
the first injected review to the end of the detecting window (when, in event
time, the window closes), in minutes, in reviews of the product received
meanwhile and in windows of the detecting size (1 = the window in which the
spike began). The issue's **target class**:
spikes with a window (either size) overlapping them whose realised negative
share is at least three times the product's steady share with at least 20
reviews in it.

Everything is seeded; times are event times from a fixed origin, no clock.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np
from numpy.typing import NDArray

from streams.alerts.calibration import T0_MS, plugin_binomial_sf
from streams.alerts.detector import Tail, alpha_for_budget
from streams.alerts.engine import WindowCount, run_alerts
from streams.alerts.event import AlertEvent, NegativeReview
from streams.alerts.settings import AlertSettings
from streams.alerts.tails import beta_binomial_sf, binomial_sf

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
CLOTHING = "en_womens_clothing_reviews.csv"
SHOPPING = ("online_shopping_10_cats_train.csv", "online_shopping_10_cats_dev.csv")
MIN_PRODUCT_REVIEWS = 30  # clothing items whose negative share is taken as a real product's
TARGET_FACTOR = 3.0
TARGET_REVIEWS = 20
THRESHOLD_SHARE = 0.30
THRESHOLD_REVIEWS = 5
DIURNAL_AMPLITUDE = 0.6
DIURNAL_PEAK_HOUR = 20
METHODS = ("detector", "plugin-binomial", "plain-binomial", "threshold", "oracle-binomial")

Ints = NDArray[np.int64]
Floats = NDArray[np.float64]
Bools = NDArray[np.bool_]


# --- the corpus --------------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    """One real review: where it comes from (``file:row``) and its text."""

    ref: str
    text: str


@dataclass(frozen=True)
class Corpus:
    """Real reviews by category and polarity, and real per-product negative shares."""

    negative: dict[str, tuple[Text, ...]]
    other: dict[str, tuple[Text, ...]]
    product_shares: tuple[float, ...]

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(sorted(self.negative))

    def __post_init__(self) -> None:
        if set(self.negative) != set(self.other) or not self.negative:
            raise ValueError("every category needs negative and other reviews")
        if any(not v for v in (*self.negative.values(), *self.other.values())):
            raise ValueError("a category has no reviews of one polarity")
        if not self.product_shares or not all(0 < s < 1 for s in self.product_shares):
            raise ValueError("product shares must lie strictly between 0 and 1")


def load_corpus(data_dir: Path) -> Corpus:
    """The clothing and online-shopping reviews of ``data_dir`` (``shared/data``)."""
    negative: dict[str, list[Text]] = {}
    other: dict[str, list[Text]] = {}
    per_item: dict[str, list[int]] = {}  # clothing_id -> [negative, reviews]

    def add(category: str, is_negative: bool, ref: str, text: str) -> None:
        (negative if is_negative else other).setdefault(category, []).append(Text(ref, text))
        (other if is_negative else negative).setdefault(category, [])

    with (data_dir / CLOTHING).open(encoding="utf-8", newline="") as f:
        for row_no, row in enumerate(csv.DictReader(f), start=2):
            is_negative = int(row["rating"]) <= 2
            counts = per_item.setdefault(row["clothing_id"], [0, 0])
            counts[0] += is_negative
            counts[1] += 1
            if row["department"]:
                add(row["department"], is_negative, f"{CLOTHING}:{row_no}", row["review"])
    for name in SHOPPING:
        with (data_dir / name).open(encoding="utf-8", newline="") as f:
            for row_no, row in enumerate(csv.DictReader(f), start=2):
                add(row["cat"], row["label"] == "0", f"{name}:{row_no}", row["review"])
    shares = tuple(
        (neg + 0.5) / (n + 1.0) for neg, n in per_item.values() if n >= MIN_PRODUCT_REVIEWS
    )
    keep = sorted(c for c in negative if negative[c] and other[c])
    return Corpus(
        negative={c: tuple(negative[c]) for c in keep},
        other={c: tuple(other[c]) for c in keep},
        product_shares=shares,
    )


# --- the streams -------------------------------------------------------------------------


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


# --- window counts -----------------------------------------------------------------------


def window_matrix(streams: Streams, length_ms: int) -> tuple[Ints, Ints]:
    """Reviews and negatives per product (rows) and window of ``length_ms`` (columns)."""
    if DAY_MS % length_ms:
        raise ValueError("alert windows must divide a day")
    windows = streams.config.days * DAY_MS // length_ms
    cell = streams.product * windows + (streams.ts_ms - T0_MS) // length_ms
    size = streams.config.products * windows
    n = np.bincount(cell, minlength=size).reshape(-1, windows).astype(np.int64)
    k = np.bincount(cell, weights=streams.negative, minlength=size).reshape(-1, windows)
    return n, k.round().astype(np.int64)


def window_counts(streams: Streams, settings: AlertSettings) -> list[WindowCount]:
    """The engine's input: a record per product and per category with reviews in a window."""
    records: list[WindowCount] = []
    n_categories = len(streams.categories)
    for length_ms in settings.window_lengths_ms().values():
        n, k = window_matrix(streams, length_ms)
        cn = np.zeros((n_categories, n.shape[1]), np.int64)
        ck = np.zeros_like(cn)
        np.add.at(cn, streams.product_category, n)
        np.add.at(ck, streams.product_category, k)
        for w in range(n.shape[1]):
            start, end = T0_MS + w * length_ms, T0_MS + (w + 1) * length_ms
            for p in np.flatnonzero(n[:, w]).tolist():
                records.append(
                    WindowCount(
                        "product",
                        streams.product_id(p),
                        streams.category_of(p),
                        start,
                        end,
                        int(n[p, w]),
                        int(k[p, w]),
                    )
                )
            for c in np.flatnonzero(cn[:, w]).tolist():
                name = streams.categories[c]
                records.append(
                    WindowCount("category", name, name, start, end, int(cn[c, w]), int(ck[c, w]))
                )
    return records


# --- the detectors -----------------------------------------------------------------------


@dataclass(frozen=True)
class Firing:
    """The first window of one alert episode: a product (index) or a category (name)."""

    product: int | None
    category: str | None
    start_ms: int
    end_ms: int


def _evidence(streams: Streams) -> Any:
    def evidence(record: WindowCount) -> Iterable[NegativeReview]:
        if record.scope != "product":
            return ()
        lo, hi = streams.span(int(record.key[1:]))
        a, b = np.searchsorted(streams.ts_ms[lo:hi], [record.window_start_ms, record.window_end_ms])
        texts = [
            (streams.text(i), int(streams.ts_ms[i]))
            for i in range(lo + int(a), lo + int(b))
            if streams.negative[i]
        ]
        return [NegativeReview(f"{t.ref}@{ts}", t.text, 1.0) for t, ts in texts]

    return evidence


def engine_firings(
    streams: Streams,
    settings: AlertSettings,
    tail: Tail = beta_binomial_sf,
    records: list[WindowCount] | None = None,
) -> tuple[list[Firing], list[AlertEvent]]:
    """Episodes of the alert engine (its first firing event per alert id), and all its events."""
    if records is None:
        records = window_counts(streams, settings)
    events = run_alerts(records, settings, "dataset-labels", "0", _evidence(streams), tail)
    seen: set[str] = set()
    firings: list[Firing] = []
    for e in events:
        if e.status != "firing" or e.alert_id in seen:
            continue
        seen.add(e.alert_id)
        product = int(e.product_id[1:]) if e.product_id is not None else None
        category = e.category if product is None else None
        firings.append(Firing(product, category, e.window_start_ms, e.window_end_ms))
    return firings, events


def _episode_starts(over: Bools) -> Bools:
    """Windows (columns) that are over the line when the previous one was not."""
    before = np.zeros_like(over)
    before[:, 1:] = over[:, :-1]
    return over & ~before


def _rule_firings(over: Bools, length_ms: int) -> list[Firing]:
    rows, cols = np.nonzero(_episode_starts(over))
    return [
        Firing(p, None, T0_MS + w * length_ms, T0_MS + (w + 1) * length_ms)
        for p, w in zip(rows.tolist(), cols.tolist(), strict=True)
    ]


def trailing_share(n: Ints, k: Ints, history_windows: int) -> Floats:
    """Each product's own negative share over the ``history_windows`` before each window.

    Jeffreys-smoothed; NaN where the product had no review in them (not tested).
    """
    zero = np.zeros((n.shape[0], 1), np.int64)
    cn = np.concatenate([zero, np.cumsum(n, axis=1)], axis=1)
    ck = np.concatenate([zero, np.cumsum(k, axis=1)], axis=1)
    w = np.arange(n.shape[1])
    lo = np.maximum(w - history_windows, 0)
    past_n = cn[:, w] - cn[:, lo]
    past_k = ck[:, w] - ck[:, lo]
    share: Floats = np.where(past_n > 0, (past_k + 0.5) / (past_n + 1.0), np.nan)
    return share


def binomial_over(n: Ints, k: Ints, share: Floats, alpha: float) -> Bools:
    """Windows whose negatives are improbable (binomial p < alpha) at ``share`` (per cell)."""
    over = np.zeros(n.shape, dtype=np.bool_)
    with np.errstate(invalid="ignore"):
        candidates = (k >= 1) & ~np.isnan(share) & (k > n * share)
    for p, i in zip(*(a.tolist() for a in np.nonzero(candidates)), strict=True):
        over[p, i] = binomial_sf(int(k[p, i]), int(n[p, i]), float(share[p, i])) < alpha
    return over


def threshold_over(
    n: Ints, k: Ints, share: float = THRESHOLD_SHARE, reviews: int = THRESHOLD_REVIEWS
) -> Bools:
    """Windows with at least ``reviews`` reviews and a negative share above ``share``."""
    return (n >= reviews) & (k > share * n)


def rule_firings(streams: Streams, settings: AlertSettings, rule: str) -> list[Firing]:
    """Episodes of a per-window rule at every window size.

    ``plain-binomial``, ``threshold`` or ``oracle-binomial``: the plain
    binomial told each product's true steady share, which no detector knows;
    what it misses no test at this alpha can catch.
    """
    firings: list[Firing] = []
    alpha = alpha_for_budget(
        settings.false_alerts_per_day, streams.config.products, settings.windows_per_day()
    )
    for length_ms in settings.window_lengths_ms().values():
        n, k = window_matrix(streams, length_ms)
        if rule == "plain-binomial":
            history = settings.history_days * DAY_MS // length_ms
            over = binomial_over(n, k, trailing_share(n, k, history), alpha)
        elif rule == "oracle-binomial":
            true_share = np.repeat(streams.product_share[:, None], n.shape[1], axis=1)
            over = binomial_over(n, k, true_share, alpha)
        elif rule == "threshold":
            over = threshold_over(n, k)
        else:
            raise ValueError(f"unknown rule {rule!r}")
        firings += _rule_firings(over, length_ms)
    return firings


# --- the accounting ----------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One spike: in the target class or not, and when (if at all) a method caught it."""

    spike: Spike
    target: bool
    detected: bool
    delay_minutes: float | None = None
    delay_reviews: int | None = None
    delay_windows: int | None = None


@dataclass(frozen=True)
class MethodResult:
    method: str
    outcomes: tuple[Outcome, ...]
    false_alerts: int  # product episodes that overlap no spike of their product
    category_alerts: int
    category_false_alerts: int  # category episodes that overlap no spike in the category
    product_days: float
    category_days: int

    def rate(self, size: int | None = None, target: bool = False) -> tuple[int, int]:
        """(detected, spikes) of ``size`` (every size when None), of the target class if asked."""
        chosen = [
            o
            for o in self.outcomes
            if (size is None or o.spike.size == size) and (o.target or not target)
        ]
        return sum(o.detected for o in chosen), len(chosen)

    def false_per_1000(self) -> float:
        return 1000.0 * self.false_alerts / self.product_days

    def median_delay(self, target: bool = True) -> dict[str, float] | None:
        hits = [o for o in self.outcomes if o.detected and (o.target or not target)]
        if not hits:
            return None
        return {
            "minutes": float(median(o.delay_minutes or 0.0 for o in hits)),
            "reviews": float(median(o.delay_reviews or 0 for o in hits)),
            "windows": float(median(o.delay_windows or 0 for o in hits)),
        }

    def to_json(self, sizes: Sequence[int]) -> dict[str, Any]:
        def pair(d: int, n: int) -> dict[str, Any]:
            return {"detected": d, "spikes": n, "rate": d / n if n else None}

        return {
            "method": self.method,
            "by_size": {str(s): pair(*self.rate(s)) for s in sizes},
            "all": pair(*self.rate()),
            "target": pair(*self.rate(target=True)),
            "target_by_size": {str(s): pair(*self.rate(s, target=True)) for s in sizes},
            "false_alerts": self.false_alerts,
            "product_days": self.product_days,
            "false_alerts_per_1000_product_days": self.false_per_1000(),
            "category_alerts": self.category_alerts,
            "category_false_alerts": self.category_false_alerts,
            "category_days": self.category_days,
            "median_delay_target": self.median_delay(target=True),
            "median_delay_all": self.median_delay(target=False),
        }


def in_target_class(streams: Streams, spike: Spike, lengths_ms: Iterable[int]) -> bool:
    """Does a window overlapping the spike hold ≥ 20 reviews at ≥ 3 × the steady share?"""
    p = spike.product
    lo, hi = streams.span(p)
    ts, neg = streams.ts_ms[lo:hi], streams.negative[lo:hi]
    floor = TARGET_FACTOR * float(streams.product_share[p])
    for length in lengths_ms:
        first = (spike.start_ms - T0_MS) // length
        last = (spike.end_ms - 1 - T0_MS) // length
        for w in range(first, last + 1):
            a, b = np.searchsorted(ts, [T0_MS + w * length, T0_MS + (w + 1) * length])
            n, k = int(b - a), int(neg[a:b].sum())
            if n >= TARGET_REVIEWS and k >= floor * n:
                return True
    return False


def _overlaps(f: Firing, start_ms: int, end_ms: int) -> bool:
    return f.start_ms < end_ms and f.end_ms > start_ms


def evaluate(
    streams: Streams, method: str, firings: Sequence[Firing], targets: Sequence[bool]
) -> MethodResult:
    """Detections, delays and false alerts of one method's episodes."""
    by_product: dict[int, list[Firing]] = {}
    for f in firings:
        if f.product is not None:
            by_product.setdefault(f.product, []).append(f)
    spikes_of: dict[int, list[Spike]] = {}
    for s in streams.spikes:
        spikes_of.setdefault(s.product, []).append(s)

    outcomes: list[Outcome] = []
    for spike, target in zip(streams.spikes, targets, strict=True):
        hits = [
            f
            for f in by_product.get(spike.product, [])
            if _overlaps(f, spike.start_ms, spike.end_ms)
        ]
        if not hits:
            outcomes.append(Outcome(spike, target, False))
            continue
        first = min(hits, key=lambda f: (f.end_ms, f.end_ms - f.start_ms))
        length = first.end_ms - first.start_ms
        began = T0_MS + (spike.start_ms - T0_MS) // length * length
        outcomes.append(
            Outcome(
                spike,
                target,
                True,
                delay_minutes=(first.end_ms - spike.start_ms) / MINUTE_MS,
                delay_reviews=streams.reviews_between(spike.product, spike.start_ms, first.end_ms),
                delay_windows=(first.end_ms - began) // length,
            )
        )

    false_alerts = sum(
        1
        for p, fs in by_product.items()
        for f in fs
        if not any(_overlaps(f, s.start_ms, s.end_ms) for s in spikes_of.get(p, []))
    )
    category_firings = [f for f in firings if f.product is None]
    category_false = sum(
        1
        for f in category_firings
        if not any(
            streams.category_of(s.product) == f.category and _overlaps(f, s.start_ms, s.end_ms)
            for s in streams.spikes
        )
    )
    return MethodResult(
        method=method,
        outcomes=tuple(outcomes),
        false_alerts=false_alerts,
        category_alerts=len(category_firings),
        category_false_alerts=category_false,
        product_days=streams.product_days(),
        category_days=len(streams.categories) * streams.config.days,
    )


# --- the run and its report --------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    config: SimConfig
    settings: AlertSettings
    reviews: int
    injected: int
    categories: int
    results: tuple[MethodResult, ...]
    example_alert: dict[str, Any] | None

    def result(self, method: str) -> MethodResult:
        return next(r for r in self.results if r.method == method)

    def targets_met(self) -> dict[str, bool | None]:
        """The issue's three targets, for the detector."""
        det = self.result("detector")
        found, total = det.rate(target=True)
        delay = det.median_delay(target=True)
        return {
            "target_class_detected_ge_95pct": found / total >= 0.95 if total else None,
            "false_alerts_le_1_per_1000_product_days": det.false_per_1000() <= 1.0,
            "median_delay_le_1_window": delay["windows"] <= 1.0 if delay else None,
        }

    def to_json(self) -> dict[str, Any]:
        c = self.config
        return {
            "labels": "dataset labels stand in for the model (negative = rating <= 2 / label 0)",
            "config": {
                "products": c.products,
                "days": c.days,
                "warmup_days": c.warmup_days,
                "seed": c.seed,
                "reviews_per_day": list(c.reviews_per_day),
                "spiked": c.spiked,
                "sizes": list(c.sizes),
                "spike_hours": c.spike_hours,
                "new_products": c.new_products,
            },
            "settings": self.settings.model_dump(),
            "reviews": self.reviews,
            "injected": self.injected,
            "categories": self.categories,
            "target_class": f"a window overlapping the spike with >= {TARGET_REVIEWS} reviews "
            f"and a negative share >= {TARGET_FACTOR:g} x the steady share",
            "results": [r.to_json(c.sizes) for r in self.results],
            "targets_met": self.targets_met(),
            "example_alert": self.example_alert,
        }


def run_simulation(
    corpus: Corpus,
    config: SimConfig,
    settings: AlertSettings,
    methods: Sequence[str] = METHODS,
) -> Report:
    """Simulate the streams once and run every method over them."""
    streams = simulate_streams(corpus, config)
    lengths = list(settings.window_lengths_ms().values())
    targets = [in_target_class(streams, s, lengths) for s in streams.spikes]
    results: list[MethodResult] = []
    example: dict[str, Any] | None = None
    records = (
        window_counts(streams, settings) if {"detector", "plugin-binomial"} & set(methods) else []
    )
    for method in methods:
        if method == "detector":
            firings, events = engine_firings(streams, settings, records=records)
            example = _example(streams, events)
        elif method == "plugin-binomial":
            firings, _ = engine_firings(streams, settings, plugin_binomial_sf, records)
        else:
            firings = rule_firings(streams, settings, method)
        results.append(evaluate(streams, method, firings, targets))
    return Report(
        config=config,
        settings=settings,
        reviews=len(streams.ts_ms),
        injected=int(streams.injected.sum()),
        categories=len(streams.categories),
        results=tuple(results),
        example_alert=example,
    )


def _example(streams: Streams, events: Sequence[AlertEvent]) -> dict[str, Any] | None:
    """The first product alert that caught a spike, as it would go on the alerts topic."""
    spiked = {s.product: s for s in streams.spikes}
    for e in events:
        if e.status != "firing" or e.product_id is None:
            continue
        s = spiked.get(int(e.product_id[1:]))
        if s and e.window_start_ms < s.end_ms and e.window_end_ms > s.start_ms:
            return e.to_json()
    return None


def _pct(found: int, total: int) -> str:
    return f"{100.0 * found / total:.0f} % ({found}/{total})" if total else "–"


def format_report(report: Report) -> str:
    """The comparison table (markdown) and the detector's spikes by size."""
    c, sizes = report.config, report.config.sizes
    lines = [
        f"{c.products} products, {report.categories} categories, {c.days} days "
        f"({c.warmup_days} warm-up), {report.reviews:,} real reviews "
        f"({report.injected:,} injected in {len(report.results[0].outcomes)} spikes "
        f"over {c.spike_hours:g} h), seed {c.seed}; windows {', '.join(report.settings.windows)}",
        "negatives are the datasets' labels (rating ≤ 2 / label 0), not model output",
        "",
        "| method | "
        + " | ".join(f"{s} injected" for s in sizes)
        + " | target class (×3, ≥ 20) | false alerts / 1,000 product-days "
        "| median delay, target class (min · reviews · windows) |",
        "|---|" + "---:|" * (len(sizes) + 3),
    ]
    for r in report.results:
        delay = r.median_delay(target=True)
        delay_s = (
            f"{delay['minutes']:.0f} · {delay['reviews']:.0f} · {delay['windows']:g}"
            if delay
            else "–"
        )
        lines.append(
            f"| {r.method} | "
            + " | ".join(_pct(*r.rate(s)) for s in sizes)
            + f" | {_pct(*r.rate(target=True))} | {r.false_per_1000():.2f} ({r.false_alerts}) "
            f"| {delay_s} |"
        )
    lines.append("")
    for r in report.results:
        if r.method in ("detector", "plugin-binomial"):
            lines.append(
                f"{r.method}: category alerts {r.category_alerts}, of them without a spike in "
                f"the category {r.category_false_alerts} ({r.category_days} category-days)"
            )
    met = report.targets_met()
    lines.append("targets (detector): " + ", ".join(f"{k} {v}" for k, v in met.items()))
    return "\n".join(lines)


def parse_settings(overrides: Iterable[str]) -> AlertSettings:
    """Default alert settings with ``field=value`` overrides (values as JSON, else strings)."""
    fields: dict[str, Any] = {}
    for item in overrides:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"expected FIELD=VALUE, got {item!r}")
        try:
            fields[name.strip()] = json.loads(value)
        except json.JSONDecodeError:
            fields[name.strip()] = value
    return AlertSettings(**fields)
