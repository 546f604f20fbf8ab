"""The worker's Prometheus instruments, on a registry of their own (``/metrics``).

:class:`Metrics` holds every instrument the service records, registered on
the :class:`~prometheus_client.CollectorRegistry` it is given (the wiring
makes one per app; nothing is registered on prometheus_client's global
registry). The pipeline, the sink and the alert publisher each record with one
short call; consumer lag is read when Prometheus scrapes, from a callable the
wiring supplies (:func:`faust_consumer_lag`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

PREFIX = "reviewpulse"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # what generate_latest writes

# (topic, partition) → records not yet committed by the consumer group
Lag = Mapping[tuple[str, int], int]
LagSource = Callable[[], Lag]
# (hits, misses, rows held) of the scorer's dedup cache, cumulative
CacheSource = Callable[[], tuple[int, int, int]]

SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# event time → stored can be hours or days for replayed or late events
END_TO_END_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)


class _LagCollector(Collector):
    """``reviewpulse_consumer_lag{topic,partition}``, read from ``source`` at each scrape."""

    def __init__(self) -> None:
        self.source: LagSource = dict

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            f"{PREFIX}_consumer_lag",
            "Records in each assigned input partition past the group's committed offset",
            labels=["topic", "partition"],
        )
        try:
            lag = self.source()
        except Exception as exc:  # a scrape must not fail because the consumer is restarting
            log.debug("consumer lag unavailable: %r", exc)
            lag = {}
        for (topic, partition), value in sorted(lag.items()):
            family.add_metric([topic, str(partition)], value)
        yield family


class _CacheCollector(Collector):
    """The scorer's dedup cache, read from ``source`` at each scrape (nothing until watched)."""

    def __init__(self) -> None:
        self.source: CacheSource | None = None

    def collect(self) -> Iterator[Metric]:
        if self.source is None:
            return
        hits, misses, rows = self.source()
        lookups = CounterMetricFamily(
            f"{PREFIX}_score_cache_lookups",
            "Texts looked up in the scorer's dedup cache, by result (hit rate: hit / all)",
            labels=["result"],
        )
        lookups.add_metric(["hit"], hits)
        lookups.add_metric(["miss"], misses)
        yield lookups
        yield GaugeMetricFamily(
            f"{PREFIX}_score_cache_rows", "Texts held in the scorer's dedup cache", value=rows
        )


class Metrics:
    """The instruments, registered on ``registry`` (a fresh one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        self.consumed = Counter(
            f"{PREFIX}_events_consumed", "Input records taken from Kafka", ["kind"], registry=r
        )
        self.enriched = Counter(
            f"{PREFIX}_events_enriched",
            "Enriched events acknowledged by Kafka and written to the store",
            ["kind"],
            registry=r,
        )
        self.dead_lettered = Counter(
            f"{PREFIX}_events_dead_lettered",
            "Input records sent to the dead-letter topic",
            ["kind", "reason"],
            registry=r,
        )
        self.batch_size = Histogram(
            f"{PREFIX}_batch_size",
            "Records per micro-batch",
            ["kind"],
            buckets=SIZE_BUCKETS,
            registry=r,
        )
        self.batch_size_limit = Gauge(
            f"{PREFIX}_batch_size_limit",
            "Most records the next micro-batch takes (chosen for batch.latency_target_ms)",
            ["kind"],
            registry=r,
        )
        self.batch_latency_seconds = Histogram(
            f"{PREFIX}_batch_latency_seconds",
            "From a micro-batch's first record entering the take buffer to the batch acked "
            "(its oldest record's time in the worker; the latency target's measure)",
            ["kind"],
            buckets=SECONDS_BUCKETS,
            registry=r,
        )
        self.inference_seconds = Histogram(
            f"{PREFIX}_inference_seconds",
            "Model time per micro-batch (encoder, and the question head for questions)",
            ["kind"],
            buckets=SECONDS_BUCKETS,
            registry=r,
        )
        self.event_to_stored_seconds = Histogram(
            f"{PREFIX}_event_to_stored_seconds",
            "From the event's own time (ts) to its store write",
            ["kind"],
            buckets=END_TO_END_BUCKETS,
            registry=r,
        )
        self.record_to_stored_seconds = Histogram(
            f"{PREFIX}_record_to_stored_seconds",
            "From the Kafka record timestamp of the input to its store write",
            ["kind"],
            buckets=END_TO_END_BUCKETS,
            registry=r,
        )
        self.store_write_seconds = Histogram(
            f"{PREFIX}_store_write_seconds",
            "One store write of a batch's enriched events (successful attempts)",
            ["kind"],
            buckets=SECONDS_BUCKETS,
            registry=r,
        )
        self.delivery_retries = Counter(
            f"{PREFIX}_delivery_retries",
            "Failed delivery attempts that are retried, by target",
            ["target"],
            registry=r,
        )
        self.alerts = Counter(
            f"{PREFIX}_alerts",
            "Spike alert events sent (firing, reminders, resolved)",
            ["status", "severity"],
            registry=r,
        )
        self.model = Info(
            f"{PREFIX}_model", "The model packages loaded, by role", ["role"], registry=r
        )
        self.knowledge_base = Info(
            f"{PREFIX}_knowledge_base",
            "The FAQ knowledge base questions are answered from (file, sha256, entries)",
            registry=r,
        )
        self.knowledge_base_refused = Counter(
            f"{PREFIX}_knowledge_base_refused",
            "Changed knowledge-base files that could not be used (the old one stayed live)",
            registry=r,
        )
        self.shadow_scored = Counter(
            f"{PREFIX}_shadow_scored",
            "Reviews the candidate model scored in shadow (sampled, never sent)",
            registry=r,
        )
        self.shadow_seconds = Histogram(
            f"{PREFIX}_shadow_inference_seconds",
            "Candidate model time per micro-batch (shadow scoring, on the scoring thread)",
            buckets=SECONDS_BUCKETS,
            registry=r,
        )
        self.shadow_failures = Counter(
            f"{PREFIX}_shadow_failures",
            "Batches the candidate model failed to score (the live results went on without)",
            registry=r,
        )
        self._lag = _LagCollector()
        r.register(self._lag)
        self._cache = _CacheCollector()
        r.register(self._cache)

    def stored(
        self,
        kind: str,
        write_s: float,
        times_ms: Iterable[tuple[int, int]],
        now_ms: int | None = None,
    ) -> None:
        """One successful store write: its duration, and each event's (ts, Kafka timestamp)."""
        self.store_write_seconds.labels(kind).observe(write_s)
        now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        from_event = self.event_to_stored_seconds.labels(kind)
        from_record = self.record_to_stored_seconds.labels(kind)
        for ts_ms, record_ms in times_ms:
            from_event.observe(max(0, now_ms - ts_ms) / 1000)
            from_record.observe(max(0, now_ms - record_ms) / 1000)

    def watch_lag(self, source: LagSource) -> None:
        """Read consumer lag from ``source`` at each scrape."""
        self._lag.source = source

    def watch_cache(self, source: CacheSource) -> None:
        """Read the scorer's dedup cache counts from ``source`` at each scrape."""
        self._cache.source = source

    def model_loaded(self, role: str, name: str, version: str, device: str) -> None:
        self.model.labels(role).info({"name": name, "version": version, "device": device})

    def knowledge_base_live(self, path: str, sha256: str, entries: int) -> None:
        self.knowledge_base.info({"path": path, "sha256": sha256, "entries": str(entries)})

    def exposition(self) -> bytes:
        """Every instrument in Prometheus's text format (:data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)


def faust_consumer_lag(consumer: Any) -> Lag:
    """Lag of each partition assigned to a Faust consumer: highwater minus committed.

    Both are "next offset" positions: aiokafka's highwater is the offset the next
    record produced will get (known once the partition was fetched), Faust's
    ``_committed_offset`` the offset last committed for the group (None before
    the group's first commit; such partitions are left out, as are unfetched ones).
    """
    committed = consumer._committed_offset
    lag: dict[tuple[str, int], int] = {}
    for tp in consumer.assignment():
        high, done = consumer.highwater(tp), committed.get(tp)
        if high is not None and done is not None:
            lag[(tp.topic, tp.partition)] = max(0, high - done)
    return lag
