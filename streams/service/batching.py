"""Micro-batches sized to hold a latency target, and the take loop that reads their limits.

An event waits in the worker for its micro-batch to fill (at most ``within``),
then for the batch to be scored, sent to Kafka and written to the store. Big
batches are cheaper per event, small ones wait less. :class:`BatchController`
(sans-IO: it is told what happened and answers with numbers) keeps ``within``
at a fifth of ``latency_target_ms`` and sizes batches so that one batch's
service time, predicted from a moving average of the measured time per
event, fits in three quarters of what is left: the rest is headroom for the
slow tail, since the target is a p99. The average follows the batches the
worker actually ran, so the size settles where a batch takes that long:
smaller on long reviews, a slow model or a busy machine, larger on short
reviews or a GPU, never above ``max_size``. A target of 0 keeps the fixed
``max_size`` / ``within_s`` (throughput first, e.g. for a backfill).

When the worker is behind — a batch's oldest record was already more than
half the target old when it was taken (its Kafka timestamp against the
worker's clock): a backlog after a restart, a replay, a burst above what
small batches can score — the target is lost for those records anyway, and
batches go to ``max_size`` to catch up as fast as the worker can; once
caught up, the measured time per event sizes them again. Above the rate the
worker scores even at ``max_size``, the backlog waits in Kafka
(``reviewpulse_consumer_lag``) and only more workers help (README, "Scaling
out"). A producer clock ahead of the worker's only makes records look fresh;
one far behind keeps batches at ``max_size``, the behaviour without a target.

:func:`adaptive_take` is Faust's ``Stream.noack_take`` with the size and the
wait read again for every batch (Faust takes both once, per stream); it hands
over events unacknowledged, as the agent acks only what is durable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from mode.utils.futures import notify

from streams.settings import BatchSettings

log = logging.getLogger(__name__)

WITHIN_SHARE = 0.2  # of the target: the longest wait for a batch to fill
HEADROOM = 0.75  # of the rest: a batch's predicted service time
SMOOTHING = 0.2  # weight of the newest batch in the moving average of time per event
BEHIND_SHARE = 0.5  # of the target: a batch whose oldest record waited longer catches up


@dataclass(frozen=True)
class Limits:
    """The next micro-batch: at most ``size`` events, waiting at most ``within_s`` for them."""

    size: int
    within_s: float


class BatchController:
    """Chooses each micro-batch's size and wait from the service times of the ones before."""

    def __init__(self, settings: BatchSettings) -> None:
        self._max_size = settings.max_size
        self._target_s = settings.latency_target_ms / 1000
        self._adaptive = self._target_s > 0
        within = min(settings.within_s, WITHIN_SHARE * self._target_s)
        self.limits = Limits(self._max_size, within if self._adaptive else settings.within_s)
        self.seconds_per_event: float | None = None

    def observe(self, events: int, service_s: float, behind_s: float = 0.0) -> Limits:
        """A batch of ``events`` took ``service_s`` from being taken to being acked; its
        oldest record was ``behind_s`` old when it was taken. The next batch's limits."""
        if not self._adaptive or events <= 0:
            return self.limits
        sample = max(service_s, 0.0) / events
        previous = self.seconds_per_event
        cost = sample if previous is None else previous + SMOOTHING * (sample - previous)
        self.seconds_per_event = cost
        if behind_s > BEHIND_SHARE * self._target_s:
            size = self._max_size
        else:
            budget = HEADROOM * (self._target_s - self.limits.within_s)
            size = self._max_size if cost <= 0 else int(budget / cost)
        self.limits = Limits(max(1, min(self._max_size, size)), self.limits.within_s)
        return self.limits


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
