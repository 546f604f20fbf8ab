"""Thin Faust agents: take a micro-batch, process it off the loop, deliver, then ack.

:func:`~streams.service.batching.adaptive_take` hands over the events
without acknowledging them (plain ``take`` acks a batch even when the loop body
fails), in batches a :class:`~streams.service.batching.BatchController` sizes
from the service times of the batches before. Each event is acked
only after :class:`~streams.service.sink.BatchSink` has the batch acknowledged by
Kafka and written to the store, so Faust commits no offset past an event
that is not durable. Concurrency stays 1 per agent to keep acks in order.

A failure no retry can fix (``KafkaConfigError``, ``StoreFatal``) halts the
agent: it stops taking events, acks nothing more, and the health views
answer 503 with the reason. On stop, a delivery in flight gets
``shutdown_timeout_s`` to finish; past it, it is cancelled unacked (its
events are delivered again after the restart).
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import faust

from streams.events.contract import Source
from streams.service.batching import BatchController, adaptive_take
from streams.service.health import Health
from streams.service.metrics import Metrics
from streams.service.pipeline import BatchProcessor, BatchResult, RawRecord
from streams.service.sink import FATAL, BatchSink
from streams.settings import BatchSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Times:
    """A batch's first record in the take buffer, taken, scored (monotonic seconds); the time
    since the batch before it was taken; how old its oldest record was when taken."""

    first_in_s: float
    taken_s: float
    scored_s: float
    since_last_s: float | None
    behind_s: float


def _raw(event: Any) -> RawRecord:
    message = event.message
    value = message.value if isinstance(message.value, bytes) else bytes(message.value or b"")
    source = Source(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=int(message.timestamp * 1000),
    )
    return RawRecord(value, source)


def register_agent(
    app: faust.App,
    topic: faust.TopicT,
    processor: BatchProcessor,
    sink: BatchSink,
    executor: Executor,
    batch: BatchSettings,
    health: Health,
    shutdown_timeout_s: float,
    metrics: Metrics,
) -> None:
    """Attach the batch agent for ``processor.kind`` events on ``topic``.

    Scoring batch N+1 (CPU, in ``executor``) overlaps delivering batch N (Kafka
    round trip, store write). At most one delivery is in flight and it is
    awaited before the next starts, so events are acked in offset order.
    """
    name = f"score_{processor.kind}s"
    controller = BatchController(batch)
    metrics.batch_size_limit.labels(processor.kind).set(controller.limits.size)

    async def deliver_then_ack(events: list[Any], result: BatchResult, times: _Times) -> None:
        started_s = time.monotonic()
        await sink.deliver(processor, result)
        for event in events:
            event.ack()
        acked_s = time.monotonic()
        limits = controller.observe(
            len(events),
            times.scored_s - times.taken_s,
            delivery_s=acked_s - started_s,
            since_last_s=times.since_last_s,
            behind_s=times.behind_s,
        )
        metrics.batch_latency_seconds.labels(processor.kind).observe(acked_s - times.first_in_s)
        metrics.batch_size_limit.labels(processor.kind).set(limits.size)
        log.debug(
            "%s batch %s: %d enriched, %d dead letters acked",
            processor.kind,
            _raw(events[0]).source,
            len(result.enriched),
            len(result.dead_letters),
        )

    async def finish(in_flight: asyncio.Task[None]) -> None:
        """Let the delivery in flight end, within the shutdown deadline."""
        done, _ = await asyncio.wait({in_flight}, timeout=shutdown_timeout_s)
        if not done:
            log.error(
                "%s: delivery still retrying after %.0fs of shutdown; left unacked",
                name,
                shutdown_timeout_s,
            )
            in_flight.cancel()
        await asyncio.gather(in_flight, return_exceptions=True)

    async def score_batches(stream: Any) -> None:  # faust.Stream: StreamT lacks noack_take
        loop = asyncio.get_running_loop()
        in_flight: asyncio.Task[None] | None = None
        last_taken_s: float | None = None
        health.agent_running(name)
        try:
            async for taken in adaptive_take(stream, lambda: controller.limits):
                taken_s = time.monotonic()
                since_last_s = None if last_taken_s is None else taken_s - last_taken_s
                last_taken_s = taken_s
                raw = [_raw(e) for e in taken.events]
                oldest_ms = min(r.source.timestamp_ms for r in raw)
                behind_s = time.time() - oldest_ms / 1000  # against the producer's clock
                result = await loop.run_in_executor(executor, processor.process, raw)
                times = _Times(taken.first_in_s, taken_s, time.monotonic(), since_last_s, behind_s)
                if in_flight is not None:
                    await in_flight
                in_flight = asyncio.create_task(deliver_then_ack(taken.events, result, times))
            if in_flight is not None:
                await in_flight
                in_flight = None
        except FATAL as exc:
            log.critical("%s halted: %s; consuming stopped, nothing more is committed", name, exc)
            health.halt(f"{type(exc).__name__}: {exc}")
            health.agent_stopped(name, f"halted: {exc}")
            await asyncio.Event().wait()  # parked until the worker stops
        except asyncio.CancelledError:
            health.agent_stopped(name, "stopping")
            raise
        except Exception as exc:
            health.agent_stopped(name, f"crashed: {type(exc).__name__}: {exc}")
            raise
        finally:
            if in_flight is not None and not in_flight.done():
                await finish(in_flight)

    app.agent(topic, name=name, concurrency=1)(score_batches)
