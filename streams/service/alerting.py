"""Spike alerts in the worker: close event-time windows from the store, send, then store.

Every ``alerts.interval_s`` the group's leader asks :class:`AlertMonitor`
which windows have closed: a window of a configured size closes once the
event-time watermark has passed its end. The watermark is the lowest, over the
input partitions, of the latest review ``ts`` stored from each (the sink
records it after every batch), minus ``alerts.allowed_lateness``: a partition
that lags — a worker catching up after a restart — holds windows open until
its reviews are in. Nothing reads the wall clock, so a replay of the same
events closes the same windows with the same counts and yields the same
alerts. A partition that goes quiet holds the watermark back until it gets a
later review. Reviews that arrive after their window closed still count in the
aggregates but do not re-open it.

Each closed window is tested by the sans-IO :class:`~streams.alerts.AlertEngine`
with the counts read from the store; the alert events go to the alerts topic
(Kafka acknowledges them) and only then are the alerts and the tested counts
written to the store, which marks the windows as done. A failure anywhere
throws the in-memory engine away: the next tick rebuilds it from the stored
counts (``alert_windows``) and evaluates the same windows again, so an alert
may be sent twice (same ``alert_id``; the store keeps one) but never lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import orjson

from streams.alerts import AlertEngine, AlertEvent, AlertSettings, NegativeReview, WindowCount
from streams.service.metrics import Metrics
from streams.store.alerts import AlertStore, TestedWindow

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    tested: list[TestedWindow] = field(default_factory=list)
    events: list[AlertEvent] = field(default_factory=list)


class AlertMonitor:
    """The detector's state and the windows still to test; synchronous (store calls)."""

    def __init__(
        self, settings: AlertSettings, store: AlertStore, model_name: str, model_version: str
    ) -> None:
        self.settings = settings
        self.store = store
        self.model = (model_name, model_version)
        self.lengths = settings.window_lengths_ms()
        self.lateness_ms = settings.allowed_lateness_ms()
        self._engine: AlertEngine | None = None
        self._cursor: dict[str, int] = {}
        self._replaying = False

    def reset(self) -> None:
        """Forget the in-memory state; the next evaluation rebuilds it from the store."""
        self._engine = None
        self._cursor = {}

    def _evidence(self, record: WindowCount) -> list[NegativeReview]:
        return [] if self._replaying else self.store.negative_reviews(record)

    def _rebuild(self) -> AlertEngine:
        engine = AlertEngine(self.settings, *self.model, evidence=self._evidence)
        self._replaying = True
        try:
            tested = self.store.tested_windows()
            for t in tested:
                engine.close_window(t.start_ms, t.end_ms, t.counts)
                self._cursor[t.size] = t.end_ms
        finally:
            self._replaying = False
        log.info("alerts: detector rebuilt from %d tested windows", len(tested))
        return engine

    def evaluate(self) -> Evaluation:
        """Test every window closed since the last evaluation (at most ``max_windows_per_tick``).

        The engine advances here; the caller must :meth:`reset` if sending or
        storing the result fails.
        """
        if self._engine is None:
            self._cursor = {}
            self._engine = self._rebuild()
        bounds = self.store.event_time_bounds()
        if bounds is None:
            return Evaluation()
        earliest, latest = bounds
        watermark = latest - self.lateness_ms
        due: list[tuple[int, int, str, int, tuple[WindowCount, ...]]] = []
        for size, length in self.lengths.items():
            start = self._cursor.get(size, earliest // length * length)
            last_end = watermark // length * length
            if last_end <= start:
                continue
            counts = self.store.window_counts(size, length, start, last_end)
            for w in sorted(counts):
                due.append((w + length, length, size, w, tuple(counts[w])))
            if last_end - length not in counts:  # mark the range as tested up to here
                due.append((last_end, length, size, last_end - length, ()))
        due.sort(key=lambda d: (d[0], d[1]))
        result = Evaluation()
        for end, _, size, start, window in due[: self.settings.max_windows_per_tick]:
            result.events += self._engine.close_window(start, end, window)
            result.tested.append(TestedWindow(size, start, end, window))
            self._cursor[size] = end
        return result


Send = Callable[[bytes | None, bytes], Awaitable[Awaitable[object]]]
Notify = Callable[[list[AlertEvent]], Awaitable[object]]


class AlertPublisher:
    """One tick: evaluate off the event loop, send and await acks, then store."""

    def __init__(
        self,
        monitor: AlertMonitor,
        send: Send,
        executor: Executor,
        counts: Counter[str],
        notify: Notify | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.monitor = monitor
        self.send = send
        self.executor = executor
        self.counts = counts  # alerts sent, by "status/severity" (for /metrics)
        self.notify = notify  # best effort, after the store holds them (Alertmanager)
        self.metrics = metrics if metrics is not None else Metrics()

    async def tick(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self.executor, self.monitor.evaluate)
            if not result.tested:
                return
            acks = []
            for event in result.events:
                key = (event.product_id or event.category or "").encode() or None
                acks.append(await self.send(key, orjson.dumps(event.to_json())))
            await asyncio.gather(*acks)
            store = self.monitor.store
            await loop.run_in_executor(self.executor, store.write, result.tested, result.events)
        except asyncio.CancelledError:
            self.monitor.reset()
            raise
        except Exception as exc:  # retried from the stored state at the next tick
            log.warning("alerts: %s: %s; evaluating again from the store", type(exc).__name__, exc)
            self.monitor.reset()
            return
        if self.notify is not None and result.events:
            await self.notify(result.events)
        for event in result.events:
            self.counts[f"{event.status}/{event.severity}"] += 1
            self.metrics.alerts.labels(event.status, event.severity).inc()
            log.info(
                "alert %s %s %s %s (%d/%d negative, p=%.2g)",
                event.status,
                event.severity,
                event.rule,
                event.product_id or event.category,
                event.negative,
                event.n,
                event.p_value,
            )
