"""Micro-batches sized to hold a latency target, and the take loop that reads their limits.

A record waits in the worker for its micro-batch to fill (at most ``within``),
then for the batch to be scored, sent to Kafka and written to the store. Big
batches are cheaper per review, small ones wait less. :class:`BatchController`
(sans-IO: it is told what happened and answers with numbers) fits the time
of each stage of a batch — scoring, then delivery (Kafka and the store) — as
``a + b × events`` (exponentially weighted least squares over the batches
the worker ran: ``a`` is the per-batch cost, ``b`` the per-review one) and
measures the arrival rate λ, then picks the size n for the next batch:

- the largest n whose wait and both stages fit the target with headroom:
  (n − 1) / λ + a + b·n ≤ 0.75 × target (a, b summed over the stages),
  since the first record of a batch waits for the n − 1 after it;
- but never below the smallest n that keeps up: each stage must finish a
  batch in 0.8 of the time the next one takes to arrive
  (a_k + b_k·n ≤ 0.8 · n / λ), or a queue builds and every latency grows.
  The stages are checked one by one because they overlap (the agent scores
  batch N + 1 while batch N is delivered), so the slower one sets the pace,
  not their sum. When the two rules disagree, keeping up wins: the target is
  missed by as little as the load allows. When no size keeps up by the fit,
  the size doubles each batch (up to ``max_size``).

``within`` is the time n records take to arrive, so a batch is not held for
records that are late. Small on long reviews, a slow model or a busy
machine, larger on short reviews, a GPU or a burst, never above
``max_size``; a target of 0 keeps the fixed ``max_size`` / ``within_s``
(throughput first, e.g. for a backfill).

When the worker is behind — a batch's oldest record was already more than
half the target old when it was taken (its Kafka timestamp against the
worker's clock): a backlog after a restart, a replay, a burst — the target is
lost for those records anyway, and each batch doubles the size (up to
``max_size``) to catch up faster; doubling rather than leaping keeps one huge
batch from making every record behind it late. Above the rate the worker
scores at ``max_size``, the backlog waits in Kafka
(``reviewpulse_consumer_lag``) and only more workers help (README, "Scaling
out"). A producer clock ahead of the worker's only makes records look fresh;
one far behind keeps batches growing to ``max_size``, the behaviour without
a target.

:func:`adaptive_take` is Faust's ``Stream.noack_take`` with the size and the
wait read again for every batch (Faust takes both once, per stream); it hands
over events unacknowledged, as the agent acks only what is durable.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from mode.utils.futures import notify

from streams.settings import BatchSettings

log = logging.getLogger(__name__)

HEADROOM = 0.75  # of the target: a batch's predicted wait + service
UTILISATION = 0.8  # a batch is scored in this share of the time the next takes to arrive
BEHIND_SHARE = 0.5  # of the target: a batch whose oldest record waited longer catches up
SMOOTHING = 0.2  # weight of the newest batch in the estimates
INITIAL_WITHIN_SHARE = 0.2  # of the target: the wait until the arrival rate is known
MIN_WITHIN_S = 0.005


@dataclass(frozen=True)
class Limits:
    """The next micro-batch: at most ``size`` events, waiting at most ``within_s`` for them."""

    size: int
    within_s: float


class ServiceFit:
    """Exponentially weighted least squares of a batch's service time: ``a + b × events``."""

    def __init__(self) -> None:
        self._w = self._n = self._s = self._nn = self._ns = 0.0
        self._ratio = 0.0  # a / b: the batch size whose per-event time equals the per-batch one

    def add(self, events: int, service_s: float) -> None:
        keep = 1 - SMOOTHING
        self._w = keep * self._w + 1
        self._n = keep * self._n + events
        self._s = keep * self._s + service_s
        self._nn = keep * self._nn + events * events
        self._ns = keep * self._ns + events * service_s

    def line(self) -> tuple[float, float]:
        """(a, b): seconds per batch and per event. Batches all of about one size (a
        settled controller) can't tell the two apart: the ratio a / b last seen is kept
        and scaled to the current times; before any, all the time counts as per event."""
        if self._n <= 0:
            return 0.0, 0.0
        spread = self._w * self._nn - self._n * self._n  # w² × the variance of the sizes
        if spread > 0.25 * self._w * self._w:
            b = (self._w * self._ns - self._n * self._s) / spread
            a = (self._s - b * self._n) / self._w
            if a >= 0 and b > 0:
                self._ratio = a / b
                return a, b
        b = self._s / (self._ratio * self._w + self._n)  # mean time / (a/b + mean size)
        return self._ratio * b, b


class BatchController:
    """Chooses each micro-batch's size and wait from the batches before it."""

    def __init__(self, settings: BatchSettings) -> None:
        self._max_size = settings.max_size
        self._max_within_s = settings.within_s
        self._target_s = settings.latency_target_ms / 1000
        self._adaptive = self._target_s > 0
        within = min(settings.within_s, INITIAL_WITHIN_SHARE * self._target_s)
        self.limits = Limits(self._max_size, within if self._adaptive else settings.within_s)
        self.scoring = ServiceFit()
        self.delivery = ServiceFit()
        self._arrived = self._elapsed_s = 0.0

    @property
    def arrival_per_s(self) -> float | None:
        return self._arrived / self._elapsed_s if self._elapsed_s > 0 else None

    def observe(
        self,
        events: int,
        scoring_s: float,
        *,
        delivery_s: float = 0.0,
        since_last_s: float | None = None,
        behind_s: float = 0.0,
    ) -> Limits:
        """A batch of ``events``, taken ``since_last_s`` after the batch before it, took
        ``scoring_s`` to score and ``delivery_s`` to deliver and ack; its oldest record
        was ``behind_s`` old when it was taken. Returns the next batch's limits."""
        if not self._adaptive or events <= 0:
            return self.limits
        self.scoring.add(events, max(scoring_s, 0.0))
        self.delivery.add(events, max(delivery_s, 0.0))
        if since_last_s is not None and since_last_s > 0:
            keep = 1 - SMOOTHING
            self._arrived = keep * self._arrived + events
            self._elapsed_s = keep * self._elapsed_s + since_last_s
        rate = self.arrival_per_s
        if rate is None:
            return self.limits
        size = self._size(rate, events)
        if behind_s > BEHIND_SHARE * self._target_s:
            size = max(size, 2 * events)  # catching up: double, don't leap
        size = max(1, min(self._max_size, size))
        within = min(self._max_within_s, max(MIN_WITHIN_S, (size - 1) / rate))
        self.limits = Limits(size, within)
        return self.limits

    def _size(self, rate: float, last: int) -> int:
        stages = (self.scoring.line(), self.delivery.line())
        a, b = sum(a for a, _ in stages), sum(b for _, b in stages)
        gap = 1 / rate  # seconds between arrivals
        fits = math.floor((HEADROOM * self._target_s - a + gap) / (gap + b))
        keeps_up = 0
        for a_k, b_k in stages:
            if UTILISATION * gap <= b_k:
                # no size keeps up by the fit (which, before batches of several sizes,
                # counts all the time as per event): double, as bigger batches go faster
                return 2 * last
            keeps_up = max(keeps_up, math.ceil(a_k / (UTILISATION * gap - b_k)))
        return max(fits, keeps_up)


@dataclass(frozen=True)
class Taken:
    """Events handed over unacknowledged, and when the first entered the buffer (monotonic)."""

    events: list[Any]
    first_in_s: float


async def adaptive_take(
    stream: Any,  # faust.Stream: StreamT lacks the internals used here
    limits: Callable[[], Limits],
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[Taken]:
    """Buffer events until ``limits().size`` or ``limits().within_s``, then hand them over.

    The buffering is Faust's ``noack_take`` (faust-streaming 0.11): a stream
    processor appends each event and, when the buffer is full, blocks the
    stream until the batch was handed over; acks are disabled on the stream
    while it runs, so nothing is acked that the caller has not acked.
    """
    buffer: list[Any] = []
    first_in = 0.0
    full = asyncio.Event()
    consumed = asyncio.Event()
    consuming: asyncio.Future[None] | None = None
    enable_acks = stream.enable_acks
    channel_it = stream.channel.__aiter__()

    async def add_to_buffer(value: Any) -> Any:
        nonlocal consuming, first_in
        try:
            if consuming is not None:
                try:
                    await consuming
                finally:
                    consuming = None
            event = stream.current_event
            if event is None:
                raise RuntimeError("take buffer found current_event is None")
            if not buffer:
                first_in = clock()
            buffer.append(event)
            if len(buffer) >= limits().size:
                full.set()  # hand it over; no more than size events per batch
                consumed.clear()
                await stream.wait(consumed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("error adding to the take buffer: %r", exc)
            await stream.crash(exc)
        return value

    stream.enable_acks = False
    stream.add_processor(add_to_buffer)
    stream._enable_passive(channel_it)
    try:
        while not stream.should_stop:
            await stream.wait_for_stopped(full, timeout=limits().within_s)
            if buffer:
                consuming = asyncio.get_running_loop().create_future()
                try:
                    yield Taken(list(buffer), first_in)
                finally:
                    buffer.clear()
                    notify(consuming)
                    full.clear()
                    consumed.set()
    finally:
        stream.enable_acks = enable_acks
        stream._processors.remove(add_to_buffer)
