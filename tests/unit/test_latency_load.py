"""The open-loop latency driver of the pipeline benchmark, on a fake clock."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from streams.service.batching import BatchController
from streams.settings import BatchSettings
from streams.tools.latency import latencies_under_load, percentiles_ms


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds


def _run(
    rate: float,
    max_size: int,
    within_s: float,
    per_text_s: float,
    n: int = 40,
    target_ms: float = 0,
) -> tuple[list[float], list[int]]:
    clock = FakeClock()
    sizes: list[int] = []

    def score(batch: Sequence[str]) -> None:
        sizes.append(len(batch))
        clock.now += 0.01 + per_text_s * len(batch)

    texts = [f"t{i}" for i in range(n)]
    batch = BatchSettings(max_size=max_size, within_s=within_s, latency_target_ms=target_ms)
    controller = BatchController(batch)
    return latencies_under_load(score, texts, rate, controller, clock, clock.sleep), sizes


def test_light_load_waits_within_then_scores_what_arrived() -> None:
    latencies, sizes = _run(rate=10, max_size=64, within_s=0.25, per_text_s=0.001)
    assert sum(sizes) == 40 and len(latencies) == 40
    # first batch: t=0 … 0.25 s holds arrivals 0, 0.1, 0.2 → 3 texts, scored in 0.013 s
    assert sizes[0] == 3
    assert latencies[0] == pytest.approx(0.25 + 0.013)
    assert latencies[2] == pytest.approx(0.05 + 0.013)


def test_a_full_batch_goes_without_waiting_for_within() -> None:
    latencies, sizes = _run(rate=1000, max_size=8, within_s=10.0, per_text_s=0.0)
    assert sizes[0] == 8
    assert latencies[7] == pytest.approx(0.01)  # the eighth arrival fills it: no wait


def test_overload_grows_latency_and_batches() -> None:
    light, _ = _run(rate=10, max_size=64, within_s=0.1, per_text_s=0.02)
    heavy, sizes = _run(rate=100, max_size=64, within_s=0.1, per_text_s=0.02)  # 2x capacity
    assert max(sizes) > 3
    assert percentiles_ms(heavy)["p99_ms"] > percentiles_ms(light)["p99_ms"]
    assert heavy[-1] > heavy[0]  # the queue builds up


def test_the_adaptive_controller_holds_a_target_that_fixed_batches_miss() -> None:
    # 0.01 s per batch + 0.002 s per text: 64 texts take 0.138 s; at 300/s a fixed batch
    # of 64 waits ~0.2 s to fill, so its first text is ~0.35 s old when scored
    fixed, _ = _run(rate=300, max_size=64, within_s=0.5, per_text_s=0.002, n=600)
    adaptive, sizes = _run(
        rate=300, max_size=64, within_s=0.5, per_text_s=0.002, n=600, target_ms=100
    )
    assert percentiles_ms(fixed)["p99_ms"] > 300
    assert percentiles_ms(adaptive)["p99_ms"] <= 100
    assert max(sizes[10:]) < 64  # settled below the cap
