"""The scoring of one method's alert episodes against the injected spikes. An episode detects a
spike when the window in which it first fired overlaps the span of the spike's injected reviews;
any other product episode is a false alert, counted per 1,000 product-days on sale. The delay
runs from the first injected review to the end of the detecting window (when, in event time, the
window closes), in minutes, in reviews of the product received meanwhile and in windows of the
detecting size (1 = the window in which the spike began). The issue's **target class**: spikes
with a window (either size) overlapping them whose realised negative share is at least three
times the product's steady share with at least 20 reviews in it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import median
from typing import Any

import numpy as np

from streams.alerts.calibration import T0_MS
from streams.tools.simulate.detectors import Firing
from streams.tools.simulate.streams import MINUTE_MS, Spike, Streams

TARGET_FACTOR = 3.0
TARGET_REVIEWS = 20


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
