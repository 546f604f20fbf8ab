"""Makes a processed batch durable: Kafka acknowledges, then the store holds it.

Only after :meth:`BatchSink.deliver` returns may the agent ack the batch's
input events (and so let Faust commit their offsets). Every failure falls in
one class of the error tree (:mod:`streams.errors`):

- transient (broker unavailable, timeouts, store unreachable or busy, an
  unclassified store error): retried with capped exponential backoff, counted
  in :class:`~streams.service.health.Health` (``/readyz``), logged as a warning and,
  past ``retry.escalate_after`` attempts, as an error. While the agent waits
  here it takes no events, Faust's flow control stops fetching, and nothing
  is committed past the unwritten batch.
- permanent for one event (``EventTooLarge``, ``StoreRejected``): the events
  concerned become dead letters (``too_large``, ``store_rejected``), found by
  splitting the store write in halves down to single events; the rest goes on.
- permanent for the worker (``KafkaConfigError``, ``StoreFatal``): raised to
  the agent, which stops consuming with ``/healthz`` at 503; no ack, no commit.

A re-sent batch may duplicate enriched events on the output topic
(at-least-once); the store counts each event_id once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol

from streams.errors import (
    DeliveryError,
    EventTooLarge,
    KafkaConfigError,
    StoreError,
    StoreFatal,
    StoreRejected,
)
from streams.events.deadletter import DeadLetter
from streams.events.enriched import Enriched, EnrichedReview
from streams.service.health import Health
from streams.service.metrics import Metrics
from streams.service.pipeline import BatchProcessor, BatchResult, Kind, RawRecord, Stats
from streams.store import Store

log = logging.getLogger(__name__)

FATAL = (KafkaConfigError, StoreFatal)


class OutputTopic(Protocol):
    """The part of a Faust topic the sink uses."""

    async def send(self, *, key: Any = None, value: Any = None) -> Awaitable[Any]: ...


def kafka_error(exc: BaseException) -> DeliveryError | KafkaConfigError:
    """A producer failure in the error tree, judged by the Kafka error in its cause chain.

    Faust wraps every error of ``producer.send()`` in ``ProducerSendError``;
    aiokafka's class names say what happened (``MessageSizeTooLargeError``,
    ``TopicAuthorizationFailedError``, ``KafkaTimeoutError``, …).
    """
    if isinstance(exc, DeliveryError | KafkaConfigError):
        return exc
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 8:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    names = " ".join(type(c).__name__ for c in chain) + " " + " ".join(str(c) for c in chain)
    text = f"{type(exc).__name__}: {exc}"[:300]
    if "TooLarge" in names or "MESSAGE_TOO_LARGE" in names:
        return EventTooLarge(text)
    if "Authorization" in names or "Authentication" in names or "SaslAuth" in names:
        return KafkaConfigError(text)
    return DeliveryError(text)


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

    def delays(self) -> Iterator[float]:
        delay = self.initial
        while True:
            yield delay
            delay = min(delay * 2, self.maximum)


@dataclass(frozen=True)
class _Event:
    """An enriched event to send, then store, with the input record it came from."""

    topic: OutputTopic
    event: Enriched
    source: RawRecord

    @property
    def key(self) -> bytes | None:
        return self.event.key


@dataclass(frozen=True)
class _Letter:
    """A dead letter to send."""

    topic: OutputTopic
    event: DeadLetter
    key: bytes | None = None


_Outgoing = _Event | _Letter


class BatchSink:
    def __init__(
        self,
        store: Store,
        executor: Executor,
        enriched: dict[Kind, OutputTopic],
        deadletter: OutputTopic,
        backoff: Backoff,
        stats: Stats,
        health: Health,
        escalate_after: int = 5,
        metrics: Metrics | None = None,
        on_stored: Callable[[Kind, Sequence[Enriched]], None] | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics if metrics is not None else Metrics()
        self.stats = stats
        self.health = health
        self.executor = executor
        self.enriched = enriched
        self.deadletter = deadletter
        self.backoff = backoff
        self.escalate_after = escalate_after
        self.retries = 0
        self.on_stored = on_stored  # told of each batch in the store (the live page)

    @property
    def store_ok(self) -> bool:
        return "store" not in self.health.retrying

    async def deliver(self, processor: BatchProcessor, result: BatchResult) -> None:
        """Send the batch's records, then store its enriched events; return once both hold.

        Raises only ``KafkaConfigError`` or ``StoreFatal`` (the worker must stop).
        """
        kind = processor.kind
        outgoing: list[_Outgoing] = [
            _Event(self.enriched[kind], e, src)
            for e, src in zip(result.enriched, result.enriched_from, strict=True)
        ]
        outgoing += [_Letter(self.deadletter, d) for d in result.dead_letters]
        sent = await self._send(processor, outgoing)
        rejected = await self._store(kind, sent)
        if self.on_stored is not None and sent:
            dropped = {id(o) for o, _ in rejected}
            self.on_stored(kind, [o.event for o in sent if id(o) not in dropped])
        if kind == "review" and sent:
            await self._retrying("store", lambda: self._progress(sent))
        if rejected:
            letters: list[_Outgoing] = [
                self._dead(processor, o.source, "store_rejected", why) for o, why in rejected
            ]
            await self._send(processor, letters)
        self.metrics.enriched.labels(kind).inc(len(sent) - len(rejected))

    def _dead(
        self, processor: BatchProcessor, source: RawRecord, reason: str, detail: str
    ) -> _Letter:
        letter = processor.dead_letter(source, reason, detail)
        self.stats.dead_letters[reason] += 1
        self.stats.processed[processor.kind] -= 1
        self.metrics.dead_lettered.labels(processor.kind, reason).inc()
        return _Letter(self.deadletter, letter)

    async def _send(self, processor: BatchProcessor, outgoing: list[_Outgoing]) -> list[_Event]:
        """Send until Kafka acknowledged every record; returns the enriched ones it took.

        Failed records alone are re-sent. An enriched event too large for its
        topic is replaced by a ``too_large`` dead letter; a dead letter too
        large is re-sent without its original bytes.
        """
        delivered: list[_Outgoing] = []
        pending = outgoing
        delays = self.backoff.delays()
        while pending:
            outcomes = await self._send_once(pending)
            retry: list[_Outgoing] = []
            transient: DeliveryError | None = None
            for item, outcome in zip(pending, outcomes, strict=True):
                if outcome is None:
                    delivered.append(item)
                    continue
                error = kafka_error(outcome)
                if isinstance(error, KafkaConfigError):
                    raise error
                if isinstance(error, EventTooLarge):
                    retry.append(self._too_large(processor, item, str(error)))
                else:
                    transient = error
                    retry.append(item)
            if transient is not None:
                await self._wait("kafka", transient, next(delays))
            pending = retry
        self.health.recovered("kafka")
        return [o for o in delivered if isinstance(o, _Event)]

    def _too_large(self, processor: BatchProcessor, item: _Outgoing, why: str) -> _Letter:
        if isinstance(item, _Event):
            log.error("enriched event from %s too large for its topic", item.source.source)
            return self._dead(processor, item.source, "too_large", why)
        return _Letter(self.deadletter, item.event.without_original())

    async def _send_once(self, items: list[_Outgoing]) -> list[BaseException | None]:
        futures: list[Awaitable[Any] | BaseException] = []
        for item in items:
            try:
                futures.append(await item.topic.send(key=item.key, value=item.event.to_json()))
            except Exception as exc:  # Faust raises ProducerSendError from send() itself
                futures.append(exc)

        async def outcome(f: Awaitable[Any] | BaseException) -> BaseException | None:
            if isinstance(f, BaseException):
                return f
            try:
                await f
            except Exception as exc:
                return exc
            return None

        return list(await asyncio.gather(*(outcome(f) for f in futures)))

    async def _store(self, kind: Kind, items: Sequence[_Event]) -> list[tuple[_Event, str]]:
        """Write the enriched events; returns those the store rejects, with its reason."""
        if not items:
            return []
        try:
            await self._retrying("store", lambda: self._write(kind, items))
        except StoreRejected as exc:
            if len(items) == 1:
                log.error("the store rejects the event from %s: %s", items[0].source, exc)
                return [(items[0], str(exc))]
            half = len(items) // 2
            return await self._store(kind, items[:half]) + await self._store(kind, items[half:])
        return []

    async def _write(self, kind: Kind, items: Sequence[_Event]) -> None:
        events = [o.event for o in items]
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        await loop.run_in_executor(self.executor, self.store.write, events)
        times = [(o.event.input.ts_ms, o.source.source.timestamp_ms) for o in items]
        self.metrics.stored(kind, time.monotonic() - started, times)
        self.stats.stored[kind] += len(events)

    async def _progress(self, items: Sequence[_Event]) -> None:
        """Record how far in event time each input partition is now stored."""
        latest: dict[str, dict[int, int]] = {}
        for item in items:
            if not isinstance(item.event, EnrichedReview):
                continue
            source, ts = item.source.source, item.event.input.ts_ms
            partitions = latest.setdefault(source.topic, {})
            partitions[source.partition] = max(partitions.get(source.partition, ts), ts)
        loop = asyncio.get_running_loop()
        for topic, progress in latest.items():
            await loop.run_in_executor(self.executor, self.store.record_progress, topic, progress)

    async def _retrying(self, what: str, attempt: Callable[[], Awaitable[None]]) -> None:
        """Run ``attempt`` until it succeeds or fails in a way retrying cannot fix."""
        for delay in self.backoff.delays():
            try:
                await attempt()
            except (*FATAL, StoreRejected):
                raise
            except Exception as exc:  # transient, or unclassified: retried, never silently
                error = exc if isinstance(exc, StoreError) else StoreError(f"{exc!r}")
                await self._wait(what, error, delay)
            else:
                self.health.recovered(what)
                return

    async def _wait(self, what: str, error: Exception, delay: float) -> None:
        self.retries += 1
        self.metrics.delivery_retries.labels(what).inc()
        attempts = self.health.retry(what, f"{type(error).__name__}: {error}")
        level = logging.ERROR if attempts > self.escalate_after else logging.WARNING
        log.log(
            level,
            "%s failed %d times in a row (%s: %s); retrying in %.1fs",
            what,
            attempts,
            type(error).__name__,
            error,
            delay,
        )
        await asyncio.sleep(delay)
