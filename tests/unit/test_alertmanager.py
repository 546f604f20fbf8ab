"""Alert events as Alertmanager v2 alerts, posted to a tiny local receiver."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web

from streams.alerts.alertmanager import alertmanager_alerts, post_alerts
from streams.alerts.event import AlertEvent, NegativeReview

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOUR = 3_600_000

FIRING = AlertEvent(
    alert_id="a1",
    status="firing",
    severity="critical",
    rule="negative_share_product_1h",
    product_id="p1",
    category="Dresses",
    product_ids=None,
    started_ms=T0 + 10 * HOUR,
    window_start_ms=T0 + 11 * HOUR,
    window_end_ms=T0 + 12 * HOUR,
    n=20,
    negative=12,
    baseline_share=0.1,
    baseline_n=340.5,
    p_value=1.5e-9,
    model_name="sentiment-zh-en",
    model_version="1.1.0",
    evidence=(
        NegativeReview("e1", "Fell apart   after one wash. " + "x" * 300, 0.99),
        NegativeReview("e2", "Too small", 0.97),
    ),
)
RESOLVED = replace(
    FIRING,
    status="resolved",
    window_start_ms=T0 + 14 * HOUR,
    window_end_ms=T0 + 15 * HOUR,
    n=5,
    negative=0,
    evidence=(),
)
CATEGORY = replace(
    FIRING,
    alert_id="a2",
    rule="negative_share_category_24h",
    product_id=None,
    product_ids=("p1", "p7"),
    severity="warning",
)


def test_a_firing_product_alert() -> None:
    [alert] = alertmanager_alerts([FIRING], generator_url="http://rp:6066/api/products/p1")
    assert alert["labels"] == {
        "alertname": "NegativeReviewSpike",
        "rule": "negative_share_product_1h",
        "scope": "product",
        "window": "1h",
        "severity": "critical",
        "product_id": "p1",
        "category": "Dresses",
    }
    assert alert["startsAt"] == "2026-01-01T10:00:00.000+00:00"
    assert "endsAt" not in alert
    assert alert["generatorURL"] == "http://rp:6066/api/products/p1"
    notes = alert["annotations"]
    assert notes["alert_id"] == "a1"
    assert "12 of 20 (60%)" in notes["summary"] and "baseline 10%" in notes["summary"]
    assert "p = 1.5e-09" in notes["description"]
    assert "340.5 decayed reviews" in notes["description"]
    first, second = notes["evidence"].split("\n")
    assert first.startswith("- Fell apart after one wash. xxx") and "[e1, 0.99]" in first
    assert len(first) < 230
    assert second == "- Too small [e2, 0.97]"


def test_resolved_ends_with_its_window_and_firing_can_be_given_a_validity() -> None:
    firing, resolved = alertmanager_alerts([FIRING, RESOLVED], firing_valid_ms=5 * HOUR)
    assert firing["endsAt"] == "2026-01-01T17:00:00.000+00:00"
    assert resolved["endsAt"] == "2026-01-01T15:00:00.000+00:00"
    assert resolved["startsAt"] == firing["startsAt"]
    assert resolved["labels"] == firing["labels"]  # the same alert to Alertmanager
    assert resolved["annotations"]["summary"].startswith("Resolved")
    assert "evidence" not in resolved["annotations"]
    assert "generatorURL" not in resolved


def test_a_category_alert_names_its_products() -> None:
    [alert] = alertmanager_alerts([CATEGORY])
    assert alert["labels"]["scope"] == "category"
    assert alert["labels"]["window"] == "24h"
    assert "product_id" not in alert["labels"]
    assert "category Dresses" in alert["annotations"]["summary"]
    assert "p1, p7" in alert["annotations"]["description"]


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _serve(handler: Handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/api/v2/alerts", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/"


def test_post_retries_a_503_and_delivers_the_body() -> None:
    received: list[Any] = []
    statuses = [503, 200]

    async def handler(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=statuses[len(received) - 1])

    async def main() -> bool:
        runner, url = await _serve(handler)
        try:
            body = alertmanager_alerts([FIRING, CATEGORY])
            return await post_alerts(url, body, backoff_s=0.01)
        finally:
            await runner.cleanup()

    assert asyncio.run(main()) is True
    assert len(received) == 2
    assert received[0] == received[1] == alertmanager_alerts([FIRING, CATEGORY])


def test_a_400_is_not_retried_and_nothing_is_raised(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.Response(status=400, text="bad alert")

    async def main() -> bool:
        runner, url = await _serve(handler)
        try:
            return await post_alerts(url, alertmanager_alerts([FIRING]), backoff_s=0.01)
        finally:
            await runner.cleanup()

    with caplog.at_level(logging.ERROR, "streams.alerts.alertmanager"):
        assert asyncio.run(main()) is False
    assert calls == 1
    assert "HTTP 400: bad alert" in caplog.text


def test_an_unreachable_alertmanager_is_logged_after_the_retries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    body = alertmanager_alerts([FIRING])
    with caplog.at_level(logging.WARNING, "streams.alerts.alertmanager"):
        sent = asyncio.run(post_alerts(f"http://127.0.0.1:{port}", body, attempts=3, backoff_s=0))
    assert sent is False
    assert [r.levelname for r in caplog.records] == ["WARNING", "WARNING", "ERROR"]
    assert "after 3 attempt(s)" in caplog.text


def test_a_slow_alertmanager_times_out() -> None:
    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(1.0)
        return web.Response(status=200)

    async def main() -> bool:
        runner, url = await _serve(handler)
        try:
            body = alertmanager_alerts([FIRING])
            return await post_alerts(url, body, timeout_s=0.1, attempts=2, backoff_s=0)
        finally:
            await runner.cleanup()

    assert asyncio.run(main()) is False


def test_nothing_to_send_sends_nothing() -> None:
    assert asyncio.run(post_alerts("http://127.0.0.1:1", [])) is True
