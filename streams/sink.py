"""Makes a processed batch durable: Kafka acknowledges, then the store holds it.

Only after :meth:`BatchSink.deliver` returns may the agent ack the batch's
input events (and so let Faust commit their offsets). Failures are retried
with capped exponential backoff, forever: while the agent waits here it stops
taking events, Faust's flow control stops fetching, and nothing is committed
past the unwritten batch. A re-sent batch may duplicate enriched events on the
output topic (at-least-once); the store collapses duplicates by event_id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from typing import Any, Protocol

import orjson

from streams.errors import DeliveryError, StoreError, StoreUnavailable
from streams.pipeline import BatchResult, Kind, Stats
from streams.store import Store

log = logging.getLogger(__name__)


class OutputTopic(Protocol):
    """The part of a Faust topic the sink uses."""

    async def send(self, *, key: Any = None, value: Any = None) -> Awaitable[Any]: ...


class ProducerTopic:
    """Sends straight through the app's producer (no Faust ``FutureMessage`` per event).

    ``send`` returns the producer's delivery future; it resolves when Kafka
    acknowledged the record.
    """

    def __init__(self, app: Any, name: str) -> None:
        self.app = app
        self.name = name

    async def send(self, *, key: Any = None, value: Any = None) -> Awaitable[Any]:
        producer = await self.app.maybe_start_producer()
        future: Awaitable[Any] = await producer.send(self.name, key, value, None, None, None)
        return future


class Backoff:
    """Capped exponential backoff delays: initial, 2×, 4×, … up to ``maximum``."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum

    def delays(self) -> Any:
        delay = self.initial
        while True:
            yield delay
            delay = min(delay * 2, self.maximum)


class BatchSink:
    def __init__(
        self,
        store: Store,
        executor: Executor,
        enriched: dict[Kind, OutputTopic],
        deadletter: OutputTopic,
        backoff: Backoff,
        stats: Stats,
    ) -> None:
        self.store = store
        self.stats = stats
        self.executor = executor
        self.enriched = enriched
        self.deadletter = deadletter
        self.backoff = backoff
        self.retries = 0
        self.store_ok = True

    async def deliver(self, kind: Kind, result: BatchResult) -> None:
        await self._retrying("kafka", lambda: self._send(kind, result))
        await self._retrying("store", lambda: self._write(kind, result.enriched))

    async def _send(self, kind: Kind, result: BatchResult) -> None:
        topic = self.enriched[kind]
        pending = [
            await topic.send(key=e["product_id"].encode(), value=orjson.dumps(e))
            for e in result.enriched
        ]
        pending += [
            await self.deadletter.send(key=None, value=orjson.dumps(d)) for d in result.dead_letters
        ]
        outcomes = await asyncio.gather(*pending, return_exceptions=True)
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        if failed:
            raise DeliveryError(f"{len(failed)} of {len(pending)} sends failed: {failed[0]!r}")

    async def _write(self, kind: Kind, events: Sequence[dict[str, Any]]) -> None:
        if not events:
            return
        reviews = events if kind == "review" else ()
        questions = events if kind == "question" else ()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.executor, self.store.write, reviews, questions)
        self.stats.stored[kind] += len(events)

    async def _retrying(self, what: str, attempt: Callable[[], Awaitable[None]]) -> None:
        for delay in self.backoff.delays():
            try:
                await attempt()
            except (DeliveryError, StoreUnavailable, StoreError) as exc:
                self.retries += 1
                if what == "store":
                    self.store_ok = False
                log.warning("%s write failed (%s); retrying in %.1fs", what, exc, delay)
                await asyncio.sleep(delay)
            else:
                if what == "store":
                    self.store_ok = True
                return
