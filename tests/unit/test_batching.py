"""The micro-batch controller: sizes and waits from measured service times and arrivals."""

from __future__ import annotations

from itertools import cycle, islice

import pytest

from streams.service.batching import (
    BEHIND_SHARE,
    INITIAL_WITHIN_SHARE,
    BatchController,
    ServiceFit,
)
from streams.settings import BatchSettings


def _controller(target_ms: float, max_size: int = 256, within_s: float = 0.5) -> BatchController:
    return BatchController(
        BatchSettings(max_size=max_size, within_s=within_s, latency_target_ms=target_ms)
    )


def _feed(c: BatchController, a: float, b: float, rate: float, sizes: list[int]) -> None:
    """Batches of ``sizes`` that take a + b·n to score, arriving at ``rate`` a second."""
    for n in sizes:
        c.observe(n, a + b * n, since_last_s=n / rate)


def test_target_zero_keeps_the_fixed_limits() -> None:
    c = _controller(0, max_size=64, within_s=0.5)
    _feed(c, 0.01, 0.01, 100, [64] * 5)
    assert (c.limits.size, c.limits.within_s) == (64, 0.5)


def test_before_any_batch_the_cap_and_a_share_of_the_target() -> None:
    assert _controller(250).limits.size == 256
    assert _controller(250).limits.within_s == pytest.approx(INITIAL_WITHIN_SHARE * 0.25)
    assert _controller(250, within_s=0.01).limits.within_s == pytest.approx(0.01)


def test_the_fit_separates_per_batch_and_per_event_time() -> None:
    fit = ServiceFit()
    for n in islice(cycle([4, 8, 16, 32]), 40):
        fit.add(n, 0.02 + 0.004 * n)
    a, b = fit.line()
    assert a == pytest.approx(0.02) and b == pytest.approx(0.004)
    for _ in range(60):  # settled on one size: the split seen before is kept
        fit.add(12, 0.02 + 0.004 * 12)
    assert fit.line() == pytest.approx((0.02, 0.004), rel=1e-3)
    one_size = ServiceFit()
    for _ in range(5):
        one_size.add(10, 0.1)
    assert one_size.line() == pytest.approx((0.0, 0.01))  # never separated: all per event


def test_the_largest_batch_whose_wait_and_service_fit_the_target() -> None:
    # a = 20 ms, b = 4 ms, 100 arrivals/s, budget 0.75 × 250 ms: (n − 1)/100 + 0.02 + 0.004 n
    # ≤ 0.1875 → n ≤ 12.7; keeping up needs only 0.02 + 0.004 n ≤ 0.8 n / 100 → n ≥ 5
    c = _controller(250)
    _feed(c, 0.02, 0.004, 100, list(islice(cycle([4, 8, 12, 16]), 40)))
    assert c.limits.size == 12
    assert c.limits.within_s == pytest.approx(0.11)  # the time 11 more reviews take to arrive


def test_a_slower_model_gets_smaller_batches() -> None:
    fast, slow = _controller(250), _controller(250)
    _feed(fast, 0.0, 0.002, 50, list(islice(cycle([2, 4, 6]), 30)))
    _feed(slow, 0.0, 0.008, 50, list(islice(cycle([2, 4, 6]), 30)))
    assert slow.limits.size < fast.limits.size


def test_keeping_up_wins_over_the_target() -> None:
    # 200 arrivals/s, a = 50 ms, b = 2 ms: the target alone allows 20, but a batch of 20
    # takes 90 ms while the next 20 arrive in 100 ms (> 0.8): 25 is the smallest that keeps up
    c = _controller(250)
    _feed(c, 0.05, 0.002, 200, list(islice(cycle([10, 20, 30, 40]), 40)))
    assert c.limits.size == 25


def test_when_nothing_keeps_up_batches_double_to_the_cap() -> None:
    c = _controller(250, max_size=100)
    sizes = []
    for _ in range(6):  # 20 ms a review, arriving 10 ms apart
        n = c.limits.size if sizes else 5
        sizes.append(c.observe(n, 0.01 + 0.02 * n, since_last_s=n / 100).size)
    assert sizes == [10, 20, 40, 80, 100, 100]


def test_size_stays_between_one_and_the_cap() -> None:
    c = _controller(250, max_size=40)
    c.observe(10, 0.0, since_last_s=0.001)
    assert c.limits.size == 40  # free scoring of 10,000 reviews a second: the cap
    c = _controller(250, max_size=40)
    c.observe(1, 60.0, since_last_s=100.0)
    assert c.limits.size == 1  # hopeless: one at a time, never zero
    assert c.observe(0, 5.0, since_last_s=1.0).size == 1  # an empty batch teaches nothing


def test_a_worker_behind_doubles_its_batches_to_catch_up() -> None:
    c = _controller(250, max_size=100)
    _feed(c, 0.02, 0.004, 100, list(islice(cycle([4, 8, 12, 16]), 40)))
    assert c.limits.size == 12
    behind = BEHIND_SHARE * 0.25 + 0.01
    sizes = []
    for _ in range(4):
        n = c.limits.size
        sizes.append(c.observe(n, 0.02 + 0.004 * n, since_last_s=n / 100, behind_s=behind).size)
    assert sizes == [24, 48, 96, 100]  # doubling, capped
    c.observe(100, 0.42, since_last_s=1.0)
    assert c.limits.size < 24  # caught up: sized by the fit again


def test_overlapping_stages_keep_up_at_the_pace_of_the_slower_one() -> None:
    # 200 arrivals/s; scoring 50 ms + 2 ms a review, delivery 50 ms + 1 ms a review. Scoring
    # batch N + 1 overlaps delivering batch N, so keeping up needs 0.05 + 0.002 n ≤ 0.004 n
    # (n ≥ 25) and 0.05 + 0.001 n ≤ 0.004 n (n ≥ 17), not their sum (n ≥ 100)
    c = _controller(250)
    for n in islice(cycle([10, 20, 30, 40]), 40):
        c.observe(n, 0.05 + 0.002 * n, delivery_s=0.05 + 0.001 * n, since_last_s=n / 200)
    assert c.limits.size == 25
