"""The methods compared, each run on the same window counts and turned into alert episodes.
``detector``: :func:`streams.alerts.run_alerts` with the given settings (beta-binomial tail),
products and categories; ``plugin-binomial``: the same engine with
:func:`streams.alerts.calibration.plugin_binomial_sf` (the baseline share taken for the truth),
so only the tail differs; ``plain-binomial``: per product and window, a binomial test of the
window's negatives against the product's own share of the previous ``history_days``
(Jeffreys-smoothed), at a per-test alpha spent as the engine spends it (the same budget, split
by :func:`streams.alerts.detector.tarone_alpha` over the products this test could fire on in
each window), with no minimum, no effect floor and no pending window, firing on any window
with p < alpha, so every window over the line is an alert and alpha is the test's whole share
of the budget (the engine's hourly alpha is looser: its warnings need two windows over the
line, :func:`streams.alerts.detector.alert_alpha`); ``threshold``: negative share
> 30 % with ≥ 5 reviews in a window; ``oracle-binomial``: the plain binomial told each product's
true steady share, which no real detector knows, not a contender but an upper bound on what any
test at that alpha can catch. An episode (:class:`Firing`) is one alert id for the engine and a
run of consecutive windows over the line, per window size, for the rules, dated by the window in
which it first fired.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from streams.alerts.calibration import T0_MS
from streams.alerts.detector import Tail, tarone_alpha, window_budget
from streams.alerts.engine import WindowCount, run_alerts
from streams.alerts.event import AlertEvent, NegativeReview
from streams.alerts.settings import AlertSettings
from streams.alerts.tails import beta_binomial_sf, binomial_sf
from streams.tools.simulate.streams import DAY_MS, Bools, Floats, Ints, Streams
from streams.tools.simulate.windows import window_counts, window_matrix

THRESHOLD_SHARE = 0.30
THRESHOLD_REVIEWS = 5


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


def window_alpha(n: Ints, share: Floats, settings: AlertSettings, length_ms: int) -> Floats:
    """Each window's (column's) alpha for a binomial test of the products at ``share``.

    The engine's budget and rule (:func:`streams.alerts.detector.tarone_alpha`) over this
    test's own reach: a product's smallest possible p-value is share ** n (every review
    negative; the rules have no minimum and no floor), and a product without a share is not
    tested. The rules alert on a single window, so it is the rule of one window over the line,
    one alert (``pending`` = 1).
    """
    budget = window_budget(settings.false_alerts_per_day, len(settings.windows), DAY_MS / length_ms)
    with np.errstate(invalid="ignore"):
        testable = (n > 0) & ~np.isnan(share)
        smallest = np.where(testable, np.exp(n * np.log(np.where(testable, share, 1.0))), 1.0)
    return np.array([tarone_alpha(budget, column[column < 1.0].tolist()) for column in smallest.T])


def binomial_over(n: Ints, k: Ints, share: Floats, alpha: Floats) -> Bools:
    """Windows whose negatives are improbable (binomial p < alpha of the column) at ``share``."""
    over = np.zeros(n.shape, dtype=np.bool_)
    with np.errstate(invalid="ignore"):
        candidates = (k >= 1) & ~np.isnan(share) & (k > n * share)
    for p, i in zip(*(a.tolist() for a in np.nonzero(candidates)), strict=True):
        over[p, i] = binomial_sf(int(k[p, i]), int(n[p, i]), float(share[p, i])) < alpha[i]
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
    for length_ms in settings.window_lengths_ms().values():
        n, k = window_matrix(streams, length_ms)
        if rule == "plain-binomial":
            history = settings.history_days * DAY_MS // length_ms
            share = trailing_share(n, k, history)
            over = binomial_over(n, k, share, window_alpha(n, share, settings, length_ms))
        elif rule == "oracle-binomial":
            share = np.repeat(streams.product_share[:, None], n.shape[1], axis=1)
            over = binomial_over(n, k, share, window_alpha(n, share, settings, length_ms))
        elif rule == "threshold":
            over = threshold_over(n, k)
        else:
            raise ValueError(f"unknown rule {rule!r}")
        firings += _rule_firings(over, length_ms)
    return firings
