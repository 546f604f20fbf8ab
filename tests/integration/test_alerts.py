"""Spike alerts through the real broker, scored by the real default model.

Five days of quiet history for four products (one review an hour each, every
tenth negative), then three hours in which p1 gets 20 reviews an hour, 12 of
them negative, while p3 gets a surge of 20 positive reviews an hour (volume
alone must not alert), then quiet hours again. Replayed with event-time ``ts``
through ``reviewpulse replay``'s code path at a bounded rate: exactly one alert
episode, for p1, fires and resolves — on the topic and in the store — and a run
whose worker is killed mid-replay and restarted yields the same alert ids.

The restarted worker finds the rest of the history waiting on all three
partitions and catches up one partition ahead of another: the watermark (the
lowest of the partitions' stored event times) keeps the spike's window open
until p1's partition is in.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from streams.tools.harness import Namespace, WorkerProcess, free_port
from streams.tools.replay import replay
from tests.integration.kafka_checks import consume_all

pytestmark = pytest.mark.integration

NEGATIVE = [
    "Terrible quality, it broke after one day. Very disappointed.",
    "Awful. The zipper fell off and the seller ignored my messages.",
    "Worst purchase ever, cheap material and it smells bad.",
    "质量太差了，用了一天就坏了，非常失望。",
]
POSITIVE = [
    "Love it! Great quality and it fits perfectly.",
    "Excellent product, fast delivery, highly recommend.",
    "Beautiful and comfortable, worth every penny.",
    "质量很好，穿着很舒服，非常满意！",
]
ENV = {"REVIEWPULSE_ALERTS__WINDOWS": '["1h"]', "REVIEWPULSE_ALERTS__INTERVAL_S": "1"}


def stream(start: datetime) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []

    def add(product: str, at: datetime, negative: bool) -> None:
        i = len(events)
        texts = NEGATIVE if negative else POSITIVE
        events.append(
            {
                "event_id": f"a-{i}",
                "product_id": product,
                "category": "jackets",
                "text": texts[i % len(texts)],
                "ts": at.isoformat(timespec="seconds"),
            }
        )

    for hour in range(5 * 24 + 9):
        at = start + timedelta(hours=hour)
        for k, product in enumerate(("p1", "p2", "p3", "p4")):
            add(product, at + timedelta(minutes=k), (hour + k) % 10 == 0)
        if 5 * 24 <= hour < 5 * 24 + 3:
            for j in range(20):
                add("p1", at + timedelta(minutes=5 + 2 * j), j < 12)
                add("p3", at + timedelta(minutes=6 + 2 * j), False)
    return events


class Receiver:
    """A stand-in Alertmanager: ``POST /api/v2/alerts`` bodies, kept in order."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                if self.path == "/api/v2/alerts":
                    bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self) -> list[Any]:
        return [alert for body in self.bodies for alert in body]


def run(
    ns: Namespace, events: list[dict[str, Any]], kill_after: int | None, **env: str
) -> list[Any]:
    ns.data_dir.mkdir(parents=True, exist_ok=True)
    source = ns.data_dir / "stream.jsonl"
    source.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    worker = WorkerProcess(ns, **ENV, **env)
    try:
        worker.wait_ready()
        sender = threading.Thread(
            target=replay,
            args=(source, ns.topic("reviews"), ns.bootstrap),
            kwargs={"rate": 60.0, "progress": False},
        )
        sender.start()
        if kill_after is not None:
            worker.wait_until(lambda: worker.processed() >= kill_after, 300, "part-way")
            worker.kill()
            worker = WorkerProcess(ns, **ENV, **env)
            worker.wait_ready()
        sender.join()
        worker.wait_until(lambda: worker.stored() >= 1, 300, "storing")

        def resolved() -> bool:
            body = worker.get("/api/products/p1/alerts?status=resolved")
            return bool(body["alerts"])

        worker.wait_until(resolved, 600, "p1's alert resolved")
        alerts = worker.get("/api/alerts?limit=1000")["alerts"]
    finally:
        worker.stop()
    on_topic = consume_all(ns.bootstrap, ns.topic("alerts"), 2)
    assert {a["alert_id"] for a in on_topic} == {a["alert_id"] for a in alerts}
    return on_topic


def episodes(alerts: list[Any]) -> dict[str, set[str]]:
    """Statuses seen per alert id of product alerts."""
    out: dict[str, set[str]] = {}
    for a in alerts:
        if a["product_id"] is not None:
            out.setdefault(a["alert_id"], set()).add(a["status"])
    return out


def test_a_spike_alerts_once_and_resolves_also_across_a_restart(
    namespace: Namespace, tmp_path: Path
) -> None:
    start = (datetime.now(UTC) - timedelta(days=6)).replace(minute=0, second=0, microsecond=0)
    events = stream(start)

    receiver = Receiver()
    try:
        first = run(
            namespace, events, kill_after=None, REVIEWPULSE_ALERTS__ALERTMANAGER_URL=receiver.url
        )
    finally:
        receiver.server.shutdown()
    products = {a["product_id"] for a in first if a["product_id"] is not None}
    assert products == {"p1"}, "only the spiking product alerts (not p3's positive surge)"
    found = episodes(first)
    assert len(found) == 1, "one alert per episode"
    assert next(iter(found.values())) == {"firing", "resolved"}
    firing = next(a for a in first if a["status"] == "firing" and a["product_id"] == "p1")
    assert firing["counts"]["negative"] >= 3
    assert firing["evidence"] and all(e["score"] > 0.5 for e in firing["evidence"])
    posted = receiver.alerts()  # Alertmanager got the firing alert and its resolution
    assert {a["labels"]["product_id"] for a in posted if "product_id" in a["labels"]} == {"p1"}
    summaries = [a["annotations"]["summary"] for a in posted if "product_id" in a["labels"]]
    assert summaries[0].startswith("Negative reviews up for product p1")
    assert summaries[-1].startswith("Resolved: ")

    again = Namespace(f"{namespace.name}r", namespace.bootstrap, tmp_path / "again", 0)
    again.web_port = namespace.web_port
    second = run(again, events, kill_after=len(events) // 2)
    assert episodes(second) == found, "a restart mid-replay gives the same alerts"
