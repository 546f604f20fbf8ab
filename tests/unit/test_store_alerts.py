"""Spike alerts from the store: closed windows, evidence; restart and replay change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from streams.alerts import AlertEvent, AlertSettings
from streams.events.enriched import EnrichedReview
from streams.service.alerting import AlertMonitor
from streams.settings import StoreSettings
from streams.store import Store, open_store
from streams.store.alerts import AlertStore
from streams.web.api import alerts_reply, product_alerts_reply
from tests.clock import DAY
from tests.unit.test_store import enriched

SETTINGS = AlertSettings(windows=["1h"], allowed_lateness="1m", max_windows_per_tick=50)
PRODUCTS = ("p1", "p2", "p3", "p4")


def history() -> list[EnrichedReview]:
    """Seven quiet days (one review per product an hour, every tenth negative), then a
    spike of p1 from 10:00 to 12:00 on DAY (20 reviews an hour, 12 negative), then four
    quiet hours."""
    events: list[EnrichedReview] = []
    start = DAY - timedelta(days=7)
    for hour in range(7 * 24 + 16):
        at = start + timedelta(hours=hour)
        for k, product in enumerate(PRODUCTS):
            i = len(events)
            label = "negative" if (hour + k) % 10 == 0 else "positive"
            events.append(
                enriched(i, product, label, ts=at + timedelta(minutes=k), category="tops")
            )
        if DAY + timedelta(hours=10) <= at < DAY + timedelta(hours=12):
            for j in range(20):
                i = len(events)
                label = "negative" if j < 12 else "neutral"
                ts = at + timedelta(minutes=5 + 2 * j)
                events.append(enriched(i, "p1", label, ts=ts, category="tops"))
    return events


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(StoreSettings(path=tmp_path / "chdb"))
    yield s
    s.close()


def run(monitor: AlertMonitor) -> list[AlertEvent]:
    """Evaluate until no window is due, storing each result as the worker does."""
    events: list[AlertEvent] = []
    while True:
        result = monitor.evaluate()
        if not result.tested:
            return events
        monitor.store.write(result.tested, result.events)
        events += result.events


def monitor_for(store: Store) -> AlertMonitor:
    return AlertMonitor(SETTINGS, AlertStore(store.backend, store.db), "m", "1")


def summary(events: list[AlertEvent]) -> list[tuple[str, str, str | None, int]]:
    return [(e.alert_id, e.status, e.product_id, e.window_start_ms) for e in events]


def test_a_spike_fires_once_then_resolves_and_quiet_products_never_alert(store: Store) -> None:
    store.write(history())
    events = run(monitor_for(store))

    products = [e for e in events if e.product_id is not None]
    assert {e.product_id for e in products} == {"p1"}
    assert len({e.alert_id for e in products}) == 1, "one alert per episode"
    assert [e.status for e in products][-1] == "resolved"
    assert "firing" in {e.status for e in products}
    spike = next(e for e in products if e.status == "firing")
    assert spike.negative >= SETTINGS.min_negative and spike.n >= 20
    assert 0 < len(spike.evidence) <= 5
    assert all(r.score > 0.5 for r in spike.evidence)

    alerts = AlertStore(store.backend, store.db)
    stored = alerts.alerts(product_id="p1")
    assert [a["alert_id"] for a in stored] == [spike.alert_id]
    assert stored[0]["status"] == "resolved"
    assert alerts.alerts(product_id="p2") == []


def test_a_restarted_monitor_rebuilds_from_the_store_and_sends_nothing_again(
    store: Store,
) -> None:
    store.write(history())
    first = run(monitor_for(store))
    assert first
    assert run(monitor_for(store)) == []  # every window was tested and stored


def test_the_same_events_in_another_batching_give_the_same_alerts(store: Store) -> None:
    events = history()
    store.write(events)
    at_once = summary(run(monitor_for(store)))

    # a second database in the same chdb directory (chdb opens one per process)
    other = Store(store.backend, store.settings.model_copy(update={"database": "rp_other"}))
    other.migrate()
    monitor = monitor_for(other)
    streamed = []
    for i in range(0, len(events), 97):  # arrival in chunks, evaluating as time passes
        other.write(events[i : i + 97])
        streamed += run(monitor)
        if i % (97 * 3) == 0:
            monitor.reset()  # a restart now and then
    assert summary(streamed) == at_once


def test_alert_views_validate_their_parameters(store: Store) -> None:
    alerts = AlertStore(store.backend, store.db)
    now = int((DAY + timedelta(days=1)).timestamp() * 1000)
    assert alerts_reply(alerts, {"status": "open"}, now)[0] == 400
    assert alerts_reply(alerts, {"window": "forever"}, now)[0] == 400
    assert alerts_reply(alerts, {"limit": "0"}, now)[0] == 400
    assert alerts_reply(alerts, {"status": "firing", "window": "24h"}, now) == (200, {"alerts": []})
    assert product_alerts_reply(alerts, "p1", {}, now) == (200, {"product_id": "p1", "alerts": []})


def test_a_lagging_partition_holds_windows_open(store: Store) -> None:
    events = history()
    store.write(events)
    spike_end = int((DAY + timedelta(hours=12)).timestamp() * 1000)
    store.record_progress("reviews", {0: spike_end + 4 * 3_600_000, 1: spike_end - 3_600_000})
    monitor = monitor_for(store)
    assert [e for e in run(monitor) if e.product_id] == []  # the spike's windows are still open
    assert max(t.end_ms for t in monitor.store.tested_windows()) <= spike_end - 3_600_000
    store.record_progress("reviews", {1: spike_end + 4 * 3_600_000})  # partition 1 caught up
    assert {e.product_id for e in run(monitor) if e.product_id} == {"p1"}
