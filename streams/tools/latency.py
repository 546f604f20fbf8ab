"""Latency of the scoring path under an open-loop load, micro-batched as the worker does.

Events arrive at a fixed rate; the consumer takes what has arrived, waiting for
at most ``limits.size`` events or ``limits.within_s`` after the first one, as
the worker's take loop does, with the limits of a
:class:`~streams.service.batching.BatchController` told each batch's scoring
time (fixed limits when its target is 0). Each event's latency is the time
from its arrival to the end of its batch's scoring. The clock and sleep are
parameters, so a test can drive it with a fake clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from streams.service.batching import BatchController

EPSILON_S = 1e-9  # clock rounding: an arrival this close to now has arrived


def latencies_under_load(
    score: Callable[[Sequence[str]], object],
    texts: Sequence[str],
    rate: float,
    batching: BatchController,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], None] = time.sleep,
) -> list[float]:
    """Seconds from arrival to scored, per text, with text ``i`` arriving at ``i / rate``."""
    arrivals = [i / rate for i in range(len(texts))]
    start = clock()
    out: list[float] = []
    i = 0
    last_taken: float | None = None
    while i < len(texts):
        now = clock() - start
        if arrivals[i] > now + EPSILON_S:
            sleep(arrivals[i] - now)
            continue
        limits = batching.limits
        end = min(i + limits.size, len(texts))
        ready_by = min(arrivals[end - 1], arrivals[i] + limits.within_s)
        if ready_by > now + EPSILON_S:
            sleep(ready_by - now)
            now = clock() - start
        j = i + sum(1 for a in arrivals[i:end] if a <= now + EPSILON_S)
        score(texts[i:j])
        done = clock() - start
        since_last = None if last_taken is None else now - last_taken
        batching.observe(j - i, done - now, since_last_s=since_last, behind_s=now - arrivals[i])
        last_taken = now
        out.extend(done - a for a in arrivals[i:j])
        i = j
    return out


def percentiles_ms(latencies: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99 of ``latencies`` (seconds) in milliseconds."""
    q = np.percentile(np.asarray(latencies) * 1000, [50, 95, 99])
    return {
        "p50_ms": round(float(q[0]), 1),
        "p95_ms": round(float(q[1]), 1),
        "p99_ms": round(float(q[2]), 1),
    }
