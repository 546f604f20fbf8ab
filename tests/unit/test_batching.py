"""The micro-batch controller: sizes from measured service times, bounded, off at target 0."""

from __future__ import annotations

import pytest

from streams.service.batching import BEHIND_SHARE, HEADROOM, WITHIN_SHARE, BatchController
from streams.settings import BatchSettings


def _controller(target_ms: float, max_size: int = 256, within_s: float = 0.5) -> BatchController:
    return BatchController(
        BatchSettings(max_size=max_size, within_s=within_s, latency_target_ms=target_ms)
    )


def test_target_zero_keeps_the_fixed_limits() -> None:
    c = _controller(0, max_size=64, within_s=0.5)
    for _ in range(5):
        limits = c.observe(64, 10.0)
    assert (limits.size, limits.within_s) == (64, 0.5)


def test_within_is_a_share_of_the_target_unless_the_setting_is_shorter() -> None:
    assert _controller(250).limits.within_s == pytest.approx(WITHIN_SHARE * 0.25)
    assert _controller(250, within_s=0.01).limits.within_s == pytest.approx(0.01)
    assert _controller(250).limits.size == 256  # nothing measured yet: the cap


def test_size_settles_where_a_batch_takes_the_budget() -> None:
    # service time 20 ms + 4 ms per event; budget 0.75 × (250 − 50) ms = 150 ms → 32 events
    c = _controller(250)
    size = c.limits.size
    for _ in range(60):
        size = c.observe(size, 0.020 + 0.004 * size).size
    assert abs(size - 32) <= 1
    assert 0.020 + 0.004 * size <= HEADROOM * (0.25 - 0.05) + 0.004


def test_a_slower_model_gets_smaller_batches() -> None:
    fast, slow = _controller(250), _controller(250)
    for _ in range(40):
        fast.observe(fast.limits.size, 0.002 * fast.limits.size)
        slow.observe(slow.limits.size, 0.008 * slow.limits.size)
    assert fast.limits.size == 75  # 0.15 / 0.002
    assert slow.limits.size == 18  # 0.15 / 0.008, rounded down


def test_size_stays_between_one_and_the_cap() -> None:
    c = _controller(250, max_size=40)
    assert c.observe(10, 0.0).size == 40  # free scoring: the cap
    assert c.observe(1, 60.0).size == 1  # hopeless: one at a time, never zero
    assert c.observe(0, 5.0).size == 1  # an empty batch teaches nothing


def test_a_worker_behind_takes_the_largest_batches_to_catch_up() -> None:
    c = _controller(250, max_size=200)
    for _ in range(20):
        c.observe(c.limits.size, 0.01 * c.limits.size)
    assert c.limits.size == 15
    assert c.observe(15, 0.15, behind_s=BEHIND_SHARE * 0.25 + 0.01).size == 200
    assert c.observe(200, 2.0, behind_s=0.0).size == 15  # caught up: sized again
