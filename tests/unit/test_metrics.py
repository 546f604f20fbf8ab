"""``/metrics``: the instruments move when the pipeline, the sink and the alerts record.

Every check reads the exposition text back through prometheus_client's parser,
as Prometheus would scrape it. The store is a real chdb store; the output topics
acknowledge each send (or fail it, when told to).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import faust
import orjson
import prometheus_client
import pytest

from models.package import ModelPackage
from models.runtime import open_scorer
from models.scorer import Scorer
from streams.alerts.event import AlertEvent
from streams.errors import DeliveryError, StoreUnavailable
from streams.events.contract import Source
from streams.events.enriched import Enriched
from streams.service.alerting import AlertPublisher, Evaluation
from streams.service.health import Health
from streams.service.metrics import CONTENT_TYPE, Metrics, faust_consumer_lag
from streams.service.pipeline import BatchProcessor, RawRecord
from streams.service.sink import Backoff, BatchSink
from streams.settings import StoreSettings
from streams.store import Store, open_store
from streams.store import alerts as alert_store
from streams.web.page import consumer_lag
from tests.clock import day_at
from tests.events import ms
from tests.exposition import Exposition
from tests.unit.test_alertmanager import FIRING

KAFKA_TS = ms(day_at(10))
NOW = ms(day_at(10, 0, 1))


def scrape(metrics: Metrics) -> Exposition:
    return Exposition(metrics.exposition().decode())


class Topic:
    """Acknowledges every send, except the first ``failures`` (a transient Kafka error)."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures

    async def send(self, *, key: Any = None, value: Any = None) -> Awaitable[Any]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.failures > 0:
            self.failures -= 1
            future.set_exception(DeliveryError("timeout"))
        else:
            future.set_result(None)
        return future


class FlakyStore:
    """A real store whose first ``failures`` writes fail as unavailable."""

    def __init__(self, store: Store, failures: int = 0) -> None:
        self.store = store
        self.failures = failures

    def write(self, events: list[Enriched]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise StoreUnavailable("busy")
        self.store.write(events)

    def record_progress(self, topic: str, progress: dict[int, int]) -> None:
        self.store.record_progress(topic, progress)


def review(i: int, ts: str | None = None) -> bytes:
    body: dict[str, Any] = {"event_id": f"e{i}", "product_id": "p", "text": f"good {i}"}
    if ts is not None:
        body["ts"] = ts
    return orjson.dumps(body)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(StoreSettings(path=tmp_path / "chdb", database="rp_metrics"))
    yield s
    s.close()


def deliver(
    scorer: Scorer,
    store: Store,
    values: list[bytes],
    metrics: Metrics,
    *,
    kafka_failures: int = 0,
    store_failures: int = 0,
) -> None:
    processor = BatchProcessor("review", scorer, clock=lambda: NOW, metrics=metrics)
    records = [RawRecord(v, Source("reviews", 0, i, KAFKA_TS)) for i, v in enumerate(values)]
    result = processor.process(records)
    port: Any = FlakyStore(store, store_failures)
    with ThreadPoolExecutor(max_workers=1) as executor:
        sink = BatchSink(
            port,
            executor,
            enriched={"review": Topic(kafka_failures), "question": Topic()},
            deadletter=Topic(),
            backoff=Backoff(0.001, 0.002),
            stats=processor.stats,
            health=Health(),
            metrics=metrics,
        )
        asyncio.run(sink.deliver(processor, result))


def test_a_batch_moves_consumed_enriched_dead_lettered_and_the_histograms(
    tiny_scorer: Scorer, store: Store
) -> None:
    metrics = Metrics()
    before = scrape(metrics)
    assert before.value("reviewpulse_events_consumed_total") == 0
    deliver(tiny_scorer, store, [review(0), b"not json", review(2), b"null"], metrics)
    m = scrape(metrics)
    assert m.value("reviewpulse_events_consumed_total", kind="review") == 4
    assert m.value("reviewpulse_events_enriched_total", kind="review") == 2
    assert m.value("reviewpulse_events_dead_lettered_total", kind="review") == 2
    assert m.value("reviewpulse_events_dead_lettered_total", reason="invalid_json") == 1
    assert m.value("reviewpulse_events_dead_lettered_total", reason="not_an_object") == 1
    assert m.value("reviewpulse_events_consumed_total", kind="question") == 0
    assert m.value("reviewpulse_batch_size_count", kind="review") == 1
    assert m.value("reviewpulse_batch_size_sum", kind="review") == 4
    assert m.value("reviewpulse_inference_seconds_count", kind="review") == 1
    assert m.value("reviewpulse_store_write_seconds_count", kind="review") == 1
    assert m.value("reviewpulse_event_to_stored_seconds_count", kind="review") == 2
    assert m.value("reviewpulse_record_to_stored_seconds_count", kind="review") == 2
    assert m.value("reviewpulse_delivery_retries_total") == 0


def test_retries_are_counted_by_target(tiny_scorer: Scorer, store: Store) -> None:
    metrics = Metrics()
    deliver(tiny_scorer, store, [review(0), review(1)], metrics, kafka_failures=1, store_failures=2)
    m = scrape(metrics)
    assert m.value("reviewpulse_delivery_retries_total", target="kafka") == 1
    assert m.value("reviewpulse_delivery_retries_total", target="store") == 2
    assert m.value("reviewpulse_events_enriched_total", kind="review") == 2
    assert m.value("reviewpulse_store_write_seconds_count") == 1  # successful writes only


def test_end_to_end_latency_from_event_time_and_from_the_kafka_timestamp() -> None:
    metrics = Metrics()
    now = 1_000_000_000_000
    # event time 2 h and 3 s before the write; Kafka timestamps 4 s and 0.2 s before
    times = [(now - 7_200_000, now - 4_000), (now - 3_000, now - 200)]
    metrics.stored("question", 0.04, times, now)
    m = scrape(metrics)
    assert m.value("reviewpulse_event_to_stored_seconds_sum", kind="question") == 7_203
    assert m.value("reviewpulse_event_to_stored_seconds_bucket", kind="question", le="5.0") == 1
    assert m.value("reviewpulse_event_to_stored_seconds_bucket", kind="question", le="3600.0") == 1
    assert m.value("reviewpulse_event_to_stored_seconds_bucket", kind="question", le="21600.0") == 2
    from_record = m.value("reviewpulse_record_to_stored_seconds_sum", kind="question")
    assert from_record == pytest.approx(4.2)
    assert m.value("reviewpulse_record_to_stored_seconds_bucket", kind="question", le="0.25") == 1
    assert m.value("reviewpulse_store_write_seconds_sum", kind="question") == pytest.approx(0.04)


def test_alerts_are_counted_by_status_and_severity() -> None:
    resolved = replace(FIRING, status="resolved", severity="warning")

    class Stored:
        def write(self, tested: list[alert_store.TestedWindow], events: list[AlertEvent]) -> None:
            pass

    class Monitor:
        store = Stored()

        def evaluate(self) -> Evaluation:
            start, end = FIRING.window_start_ms, FIRING.window_end_ms
            window = alert_store.TestedWindow("1h", start, end, ())
            return Evaluation([window], [FIRING, FIRING, resolved])

        def reset(self) -> None:
            raise AssertionError("the tick must not fail")

    async def send(key: bytes | None, value: bytes) -> Awaitable[object]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    metrics = Metrics()
    monitor: Any = Monitor()
    with ThreadPoolExecutor(max_workers=1) as executor:
        publisher = AlertPublisher(monitor, send, executor, Counter(), metrics=metrics)
        asyncio.run(publisher.tick())
    m = scrape(metrics)
    assert m.value("reviewpulse_alerts_total", status="firing", severity="critical") == 2
    assert m.value("reviewpulse_alerts_total", status="resolved", severity="warning") == 1
    assert m.value("reviewpulse_alerts_total") == 3


def test_model_info_one_sample_per_role() -> None:
    metrics = Metrics()
    metrics.model_loaded("sentiment", "sentiment-zh-en", "1.1.0", "cpu")
    metrics.model_loaded("questions", "questions-zh-en", "0.2.0", "cuda")
    m = scrape(metrics)
    assert sorted(m.labels("reviewpulse_model_info"), key=lambda d: d["role"]) == [
        {"role": "questions", "name": "questions-zh-en", "version": "0.2.0", "device": "cuda"},
        {"role": "sentiment", "name": "sentiment-zh-en", "version": "1.1.0", "device": "cpu"},
    ]
    assert m.value("reviewpulse_model_info") == 2


class TP:
    def __init__(self, topic: str, partition: int) -> None:
        self.topic, self.partition = topic, partition


class Consumer:
    """The three things faust_consumer_lag reads of a Faust consumer."""

    def __init__(self, high: dict[int, int | None], committed: dict[int, int | None]) -> None:
        self.tps = {p: TP("reviews", p) for p in high}
        self.high = high
        self._committed_offset = {self.tps[p]: c for p, c in committed.items()}

    def assignment(self) -> set[TP]:
        return set(self.tps.values())

    def highwater(self, tp: TP) -> int | None:
        return self.high[tp.partition]


def test_consumer_lag_is_highwater_minus_committed_per_partition() -> None:
    # partition 2 never committed, partition 3 never fetched: both unknown, left out
    consumer = Consumer({0: 120, 1: 50, 2: 9, 3: None}, {0: 100, 1: 50, 3: 4})
    assert faust_consumer_lag(consumer) == {("reviews", 0): 20, ("reviews", 1): 0}
    metrics = Metrics()
    metrics.watch_lag(lambda: faust_consumer_lag(consumer))
    m = scrape(metrics)
    assert m.value("reviewpulse_consumer_lag", topic="reviews", partition="0") == 20
    assert sorted(d["partition"] for d in m.labels("reviewpulse_consumer_lag")) == ["0", "1"]
    consumer._committed_offset[consumer.tps[0]] = 120
    assert scrape(metrics).value("reviewpulse_consumer_lag", partition="0") == 0


def test_the_page_header_sums_the_known_lag() -> None:
    """A partition never fetched or committed (a quiet topic) does not hide the others' lag."""
    consumer = Consumer({0: 120, 1: 50, 2: 9, 3: None}, {0: 100, 1: 45, 3: 4})
    assert consumer_lag(cast(faust.App, SimpleNamespace(consumer=consumer))) == 25
    nothing = Consumer({0: None}, {})
    assert consumer_lag(cast(faust.App, SimpleNamespace(consumer=nothing))) is None
    assert consumer_lag(cast(faust.App, SimpleNamespace())) is None  # no consumer yet


def test_a_failing_lag_source_leaves_lag_out_and_the_scrape_whole() -> None:
    metrics = Metrics()

    def broken() -> dict[tuple[str, int], int]:
        raise RuntimeError("consumer not started")

    metrics.watch_lag(broken)
    metrics.model_loaded("sentiment", "s", "1", "cpu")
    m = scrape(metrics)
    assert "reviewpulse_consumer_lag" in m.families
    assert m.labels("reviewpulse_consumer_lag") == []
    assert m.value("reviewpulse_model_info") == 1


def test_the_dedup_cache_hit_rate_is_read_from_the_scorer(tiny_package: ModelPackage) -> None:
    scorer = open_scorer(tiny_package.root, cache_size=8)
    metrics = Metrics()
    assert "reviewpulse_score_cache_lookups" not in scrape(metrics).families  # not watched yet
    cache = scorer.cache
    assert cache is not None
    metrics.watch_cache(lambda: (cache.hits, cache.misses, len(cache)))
    scorer.score(["same text", "other text"])
    scorer.score(["same text"])
    m = scrape(metrics)
    assert m.value("reviewpulse_score_cache_lookups_total", result="hit") == 1
    assert m.value("reviewpulse_score_cache_lookups_total", result="miss") == 2
    assert m.value("reviewpulse_score_cache_rows") == 2


def test_each_worker_has_its_own_registry_and_the_global_one_stays_empty() -> None:
    first, second = Metrics(), Metrics()  # the same names twice: no duplicate error
    first.consumed.labels("review").inc(3)
    assert scrape(second).value("reviewpulse_events_consumed_total") == 0
    global_names = {f.name for f in prometheus_client.REGISTRY.collect()}
    assert not any(n.startswith("reviewpulse") for n in global_names)
    assert CONTENT_TYPE.startswith("text/plain; version=0.0.4")
