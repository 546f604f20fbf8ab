"""The sink: Kafka acks first, then the store, and every failure class handled as documented.

Output topics are fakes that record what they are sent (and fail when told
to); the store is a real chdb store, wrapped to fail as told. Backoff delays
are a millisecond, and the tests assert counts and order, never durations.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
import pytest

from models.scorer import Scorer
from streams.errors import (
    DeliveryError,
    EventTooLarge,
    KafkaConfigError,
    StoreError,
    StoreFatal,
    StoreRejected,
    StoreUnavailable,
)
from streams.events.contract import Source
from streams.events.enriched import Enriched
from streams.service.health import Health
from streams.service.pipeline import BatchProcessor, BatchResult, RawRecord, Stats
from streams.service.sink import Backoff, BatchSink, kafka_error
from streams.settings import StoreSettings
from streams.store import Store, open_store
from tests.clock import day_at
from tests.events import ms

KAFKA_TS = ms(day_at(10))
NOW = ms(day_at(10, 0, 1))
Journal = list[tuple[str, ...]]


class FakeTopic:
    """An OutputTopic that journals each send and each ack; ``fail`` decides per value.

    ``fail(value)`` returns an exception to raise from ``send`` itself
    (``("send", exc)``), to fail the delivery future with (``("ack", exc)``),
    or None to acknowledge it (on a later turn of the event loop).
    """

    def __init__(
        self,
        name: str,
        journal: Journal,
        fail: Callable[[bytes], tuple[str, BaseException] | None] = lambda value: None,
    ) -> None:
        self.name = name
        self.journal = journal
        self.fail = fail
        self.acked: list[bytes] = []

    async def send(self, *, key: Any = None, value: Any = None) -> Awaitable[Any]:
        self.journal.append(("send", self.name, _id(value)))
        failure = self.fail(value)
        if failure is not None and failure[0] == "send":
            raise failure[1]
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def settle() -> None:
            if failure is not None:
                future.set_exception(failure[1])
                return
            self.journal.append(("ack", self.name, _id(value)))
            self.acked.append(value)
            future.set_result(None)

        asyncio.get_running_loop().call_soon(settle)
        return future


def _id(value: bytes) -> str:
    """An enriched event's id, or ``dead:<offset>`` for a dead letter."""
    event = orjson.loads(value)
    return event.get("event_id") or f"dead:{event['source']['offset']}"


class FailingStore:
    """A real store whose writes fail as ``fail(events)`` says (None: write them)."""

    def __init__(
        self,
        store: Store,
        journal: Journal,
        fail: Callable[[list[Enriched]], BaseException | None] = lambda events: None,
    ) -> None:
        self.store = store
        self.journal = journal
        self.fail = fail

    def write(self, events: list[Enriched]) -> None:
        self.journal.append(("store", *(e.input.event_id for e in events)))
        failure = self.fail(events)
        if failure is not None:
            raise failure
        self.store.write(events)

    def record_progress(self, topic: str, progress: dict[int, int]) -> None:
        self.store.record_progress(topic, progress)


class RecordingHealth(Health):
    def __init__(self) -> None:
        super().__init__()
        self.failures: list[tuple[str, str]] = []

    def retry(self, what: str, error: str) -> int:
        self.failures.append((what, error))
        return super().retry(what, error)


class Harness:
    """A processor, a sink over fake topics and a wrapped store, and one journal of it all."""

    def __init__(self, scorer: Scorer, store: Store) -> None:
        self.journal: Journal = []
        self.processor = BatchProcessor("review", scorer, clock=lambda: NOW)
        self.enriched = FakeTopic("reviews.enriched", self.journal)
        self.deadletter = FakeTopic("deadletter", self.journal)
        self.store = FailingStore(store, self.journal)
        self.health = RecordingHealth()
        self.executor = ThreadPoolExecutor(max_workers=1)
        store_port: Any = self.store
        self.sink = BatchSink(
            store_port,
            self.executor,
            enriched={"review": self.enriched, "question": FakeTopic("q", self.journal)},
            deadletter=self.deadletter,
            backoff=Backoff(0.001, 0.002),
            stats=self.processor.stats,
            health=self.health,
        )

    def result(self, values: list[bytes]) -> BatchResult:
        records = [RawRecord(v, Source("reviews", 0, i, KAFKA_TS)) for i, v in enumerate(values)]
        return self.processor.process(records)

    def deliver(self, result: BatchResult) -> None:
        asyncio.run(self.sink.deliver(self.processor, result))

    def letters(self) -> list[dict[str, Any]]:
        return [orjson.loads(v) for v in self.deadletter.acked]

    @property
    def stats(self) -> Stats:
        return self.processor.stats


def review(i: int) -> bytes:
    return orjson.dumps({"event_id": f"e{i}", "product_id": "p", "text": f"good {i}"})


REVIEWS = [review(0), review(1), b"not json", review(3)]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(StoreSettings(path=tmp_path / "chdb", database="rp_sink"))
    yield s
    s.close()


@pytest.fixture
def harness(tiny_scorer: Scorer, store: Store) -> Iterator[Harness]:
    h = Harness(tiny_scorer, store)
    yield h
    h.executor.shutdown()


def test_backoff_doubles_up_to_its_cap() -> None:
    assert list(islice(Backoff(1, 5).delays(), 5)) == [1, 2, 4, 5, 5]


def test_kafka_acks_every_record_before_the_store_write(harness: Harness, store: Store) -> None:
    harness.deliver(harness.result(REVIEWS))
    acks = [i for i, entry in enumerate(harness.journal) if entry[0] == "ack"]
    assert len(acks) == 4
    assert harness.journal[-1] == ("store", "e0", "e1", "e3")  # last: after every ack
    assert max(acks) < len(harness.journal) - 1
    assert store.count("reviews") == 3  # written when deliver returned
    assert [d["reason"] for d in harness.letters()] == ["invalid_json"]
    assert harness.stats.stored["review"] == 3 and harness.sink.retries == 0


def test_transient_kafka_errors_resend_only_the_failed_record(harness: Harness) -> None:
    harness.enriched.fail = _first_n_of(b'"e1"', 2, lambda: ("ack", DeliveryError("timeout")))
    harness.deliver(harness.result(REVIEWS))
    sends = [e[2] for e in harness.journal if e[:2] == ("send", "reviews.enriched")]
    assert sends == ["e0", "e1", "e3", "e1", "e1"]
    assert [_id(v) for v in harness.enriched.acked] == ["e0", "e3", "e1"]
    assert harness.sink.retries == 2
    assert [w for w, _ in harness.health.failures] == ["kafka", "kafka"]
    assert harness.health.retrying == {}  # recovered
    assert harness.journal[-1] == ("store", "e0", "e3", "e1")  # stored in the order acked


def _first_n_of(
    marker: bytes, n: int, failure: Callable[[], tuple[str, BaseException]]
) -> Callable[[bytes], tuple[str, BaseException] | None]:
    left = [n]

    def fail(value: bytes) -> tuple[str, BaseException] | None:
        if marker in value and left[0] > 0:
            left[0] -= 1
            return failure()
        return None

    return fail


def test_transient_store_errors_are_retried_with_backoff_and_counted(
    harness: Harness, store: Store
) -> None:
    errors = iter([StoreUnavailable("busy"), StoreError("unclassified"), RuntimeError("bug?")])
    harness.store.fail = lambda events: next(errors, None)
    harness.deliver(harness.result(REVIEWS))
    writes = [e for e in harness.journal if e[0] == "store"]
    assert writes == [("store", "e0", "e1", "e3")] * 4
    assert len([e for e in harness.journal if e[0] == "send"]) == 4  # sent once, not per retry
    assert harness.health.failures == [
        ("store", "StoreUnavailable: busy"),
        ("store", "StoreError: unclassified"),
        ("store", "StoreError: RuntimeError('bug?')"),
    ]
    assert harness.sink.retries == 3 and harness.health.retrying == {}
    assert store.count("reviews") == 3 and harness.stats.stored["review"] == 3


def test_an_event_too_large_for_its_topic_becomes_a_too_large_dead_letter(
    harness: Harness, store: Store
) -> None:
    harness.enriched.fail = _first_n_of(b'"e1"', 1, lambda: ("send", EventTooLarge("too big")))
    harness.deliver(harness.result(REVIEWS))
    letters = {d["source"]["offset"]: d for d in harness.letters()}
    assert letters[1]["reason"] == "too_large"
    assert base64.b64decode(letters[1]["original_b64"]) == REVIEWS[1]
    assert harness.journal[-1] == ("store", "e0", "e3")  # never stored
    assert store.event_ids("reviews") == {"e0", "e3"}
    assert harness.stats.dead_letters["too_large"] == 1
    assert harness.stats.processed["review"] == 2
    assert harness.sink.retries == 0


def test_a_dead_letter_too_large_is_resent_without_its_original(harness: Harness) -> None:
    harness.deadletter.fail = lambda v: (
        ("ack", EventTooLarge("too big")) if orjson.loads(v)["original_b64"] else None
    )
    harness.deliver(harness.result(REVIEWS))
    (letter,) = harness.letters()
    assert (letter["reason"], letter["source"]["offset"]) == ("invalid_json", 2)
    assert (letter["original_b64"], letter["original_truncated"]) == ("", True)
    assert letter["original_size"] == len(REVIEWS[2])


def test_a_broker_message_size_error_is_an_event_too_large() -> None:
    class MessageSizeTooLargeError(Exception):
        pass

    class ProducerSendError(Exception):
        pass

    try:
        try:
            raise MessageSizeTooLargeError("MESSAGE_TOO_LARGE")
        except MessageSizeTooLargeError as inner:
            raise ProducerSendError("send failed") from inner
    except ProducerSendError as outer:
        assert isinstance(kafka_error(outer), EventTooLarge)


def test_rows_the_store_rejects_are_found_by_splitting_and_dead_lettered(
    harness: Harness, store: Store
) -> None:
    harness.store.fail = lambda events: (
        StoreRejected("CANNOT_PARSE_TEXT")
        if any(e.input.event_id == "e1" for e in events)
        else None
    )
    harness.deliver(harness.result(REVIEWS))
    writes = [e[1:] for e in harness.journal if e[0] == "store"]
    assert writes == [("e0", "e1", "e3"), ("e0",), ("e1", "e3"), ("e1",), ("e3",)]
    assert store.event_ids("reviews") == {"e0", "e3"}
    rejected = [d for d in harness.letters() if d["reason"] == "store_rejected"]
    assert [d["source"]["offset"] for d in rejected] == [1]
    assert "CANNOT_PARSE_TEXT" in rejected[0]["detail"]
    assert harness.stats.dead_letters["store_rejected"] == 1
    assert harness.stats.processed["review"] == 2
    # The letter goes out after the store answered; the enriched event had been sent before.
    last_send = max(i for i, e in enumerate(harness.journal) if e[0] == "send")
    assert harness.journal[last_send] == ("send", "deadletter", "dead:1")
    assert harness.sink.retries == 0


def test_a_fatal_store_error_is_raised_without_retrying(harness: Harness) -> None:
    harness.store.fail = lambda events: StoreFatal("AUTHENTICATION_FAILED")
    with pytest.raises(StoreFatal):
        harness.deliver(harness.result(REVIEWS))
    assert len([e for e in harness.journal if e[0] == "store"]) == 1
    assert harness.sink.retries == 0


def test_kafka_refusing_the_worker_is_raised_without_retrying(harness: Harness) -> None:
    class TopicAuthorizationFailedError(Exception):
        pass

    harness.enriched.fail = lambda v: ("ack", TopicAuthorizationFailedError("denied"))
    with pytest.raises(KafkaConfigError, match="TopicAuthorizationFailedError"):
        harness.deliver(harness.result(REVIEWS))
    assert not [e for e in harness.journal if e[0] == "store"]
    assert harness.sink.retries == 0


def test_the_live_feed_is_told_of_stored_events_only(harness: Harness) -> None:
    def told(kind: str, events: Sequence[Enriched]) -> None:
        harness.journal.append(("told", kind, *(e.input.event_id for e in events)))

    harness.sink.on_stored = told
    harness.store.fail = lambda events: (
        StoreRejected("no") if any(e.input.event_id == "e1" for e in events) else None
    )
    harness.deliver(harness.result(REVIEWS))
    (told_at,) = [i for i, e in enumerate(harness.journal) if e[0] == "told"]
    assert harness.journal[told_at] == ("told", "review", "e0", "e3")  # not the rejected e1
    assert told_at > max(i for i, e in enumerate(harness.journal) if e[0] == "store")
