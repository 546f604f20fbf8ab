"""Thin Faust agents: take a micro-batch, process it off the loop, deliver, then ack.

``noack_take`` hands over the events without acknowledging them (plain
``take`` acks a batch even when the loop body fails). Each event is acked
only after :class:`~streams.sink.BatchSink` has the batch acknowledged by
Kafka and written to the store, so Faust commits no offset past an event
that is not durable. Concurrency stays 1 per agent to keep acks in order.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from typing import Any

import faust

from streams.pipeline import BatchProcessor, BatchResult, RawRecord
from streams.records import Source
from streams.settings import BatchSettings
from streams.sink import BatchSink

log = logging.getLogger(__name__)


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
) -> None:
    """Attach the batch agent for ``processor.kind`` events on ``topic``.

    Scoring batch N+1 (CPU, in ``executor``) overlaps delivering batch N (Kafka
    round trip, store write). At most one delivery is in flight and it is
    awaited before the next starts, so events are acked in offset order.
    """

    async def deliver_then_ack(events: list[Any], result: BatchResult) -> None:
        await sink.deliver(processor.kind, result)
        for event in events:
            event.ack()
        log.debug(
            "%s batch %s: %d enriched, %d dead letters acked",
            processor.kind,
            _raw(events[0]).source,
            len(result.enriched),
            len(result.dead_letters),
        )

    async def score_batches(stream: Any) -> None:  # faust.Stream: StreamT lacks noack_take
        loop = asyncio.get_running_loop()
        in_flight: asyncio.Task[None] | None = None
        try:
            async for events in stream.noack_take(batch.max_size, within=batch.within_s):
                raw = [_raw(e) for e in events]
                result = await loop.run_in_executor(executor, processor.process, raw)
                if in_flight is not None:
                    await in_flight
                in_flight = asyncio.create_task(deliver_then_ack(list(events), result))
        finally:
            if in_flight is not None:
                await in_flight

    app.agent(topic, name=f"score_{processor.kind}s", concurrency=1)(score_batches)
