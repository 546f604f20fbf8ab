"""The live page's server side: the event feed, its SSE stream over real HTTP, files, status."""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from streams.events.enriched import EnrichedReview
from streams.service.pipeline import Stats
from streams.web.live import QUEUE_SIZE, LiveFeed, Throughput, event_stream, sse_message
from streams.web.page import static_files, status_reply
from tests.clock import day_at
from tests.events import review_event


def reviewed(product: str) -> EnrichedReview:
    probs = {"negative": 0.1, "neutral": 0.1, "positive": 0.8}
    return review_event(
        product + "-1", product, ts=day_at(10), processed_at=day_at(10), probs=probs
    )


def test_sse_message() -> None:
    assert sse_message("stored", {"count": 2}) == b'event: stored\ndata: {"count":2}\n\n'


def test_throughput_counts_the_last_minute() -> None:
    meter = Throughput(span_s=60)
    meter.add(30, at_s=0.0)
    meter.add(90, at_s=30.0)
    assert meter.rate(at_s=59.0) == 2.0
    assert meter.rate(at_s=61.0) == 1.5  # the first batch left the span
    assert meter.rate(at_s=200.0) == 0.0
    for second in range(1000):  # marks older than the span are dropped as new ones come
        meter.add(1, at_s=300.0 + second)
    assert len(meter._marks) == 60 and meter.rate(at_s=1299.0) == 1.0


def test_feed_fans_out_and_a_slow_client_misses_messages() -> None:
    async def run() -> None:
        clock = iter([10.0, 20.0])
        feed = LiveFeed(clock=lambda: next(clock))
        with feed.subscription() as fast, feed.subscription() as slow:
            assert feed.subscribers == 2
            feed.stored("review", [reviewed("b"), reviewed("a"), reviewed("a")])
            message = fast.get_nowait()
            assert message is not None
            assert orjson.loads(message.split(b"data: ")[1]) == {
                "kind": "review",
                "count": 3,
                "products": ["a", "b"],
            }
            for _ in range(QUEUE_SIZE + 5):
                feed.publish("alerts", {})
            assert slow.qsize() == QUEUE_SIZE  # the rest dropped, nothing blocked
            feed.close()
            assert fast.get_nowait() is None and slow.get_nowait() is None
        assert feed.subscribers == 0
        assert feed.throughput.rate(20.0) == 3 / 60

    asyncio.run(run())


def test_event_stream_over_http() -> None:
    async def run() -> list[bytes]:
        feed = LiveFeed(clock=lambda: 0.0)
        app = web.Application()

        async def events(request: web.Request) -> web.StreamResponse:
            return await event_stream(request, feed, heartbeat_s=0.05)

        app.router.add_get("/api/events", events)
        async with TestServer(app) as server, ClientSession() as client:
            url = str(server.make_url("/api/events"))
            async with client.get(url) as response:
                assert response.status == 200
                assert response.headers["Content-Type"] == "text/event-stream"
                chunks = [await response.content.readuntil(b"\n\n") for _ in range(2)]
                feed.publish("stored", {"count": 1})
                while (chunk := await response.content.readuntil(b"\n\n")).startswith(b":"):
                    chunks.append(chunk)  # keep-alive comments while idle
                chunks.append(chunk)
                feed.close()
                assert await response.content.read() == b""  # the server ended the stream
        return chunks

    chunks = asyncio.run(run())
    assert chunks[0] == b"retry: 2000\n\n"
    assert chunks[1] == b"event: hello\ndata: {}\n\n"
    assert chunks[-1] == b'event: stored\ndata: {"count":1}\n\n'


def test_static_files_are_all_local() -> None:
    files = static_files()
    assert files["index.html"][1] == "text/html; charset=utf-8"
    assert files["app.js"][1] == "text/javascript; charset=utf-8"
    assert files["vendor/uplot/uPlot.iife.min.js"][0].startswith(
        b"/*! https://github.com/leeoniya/uPlot (v1.6.32)"
    )
    assert files["vendor/uplot/LICENSE"][1] == "text/plain; charset=utf-8"
    ours = {path: body for path, (body, _) in files.items() if not path.startswith("vendor/")}
    assert set(ours) >= {"index.html", "app.js", "charts.js", "dom.js", "style.css"}
    for path, body in ours.items():  # nothing is fetched from anywhere but the worker
        text = body.decode().replace('"http://www.w3.org/2000/svg"', "")
        assert "http:" not in text and "https:" not in text and 'src="//' not in text, path


def test_status_reply() -> None:
    stats = Stats()
    stats.processed["review"] = 7
    stats.stored["review"] = 6
    stats.dead_letters["invalid_json"] = 2
    stats.dead_letters["empty_text"] = 1
    code, body = status_reply(stats, 4, 1.23456, None, {"reviews": "m 1"}, {"firing/high": 1})
    assert code == 200
    assert body == {
        "processed": {"review": 7},
        "stored": {"review": 6},
        "dead_letters": 3,
        "dead_letter_reasons": {"invalid_json": 2, "empty_text": 1},
        "throughput_per_s": 1.235,
        "consumer_lag": None,
        "delivery_retries": 4,
        "models": {"reviews": "m 1"},
        "alerts": {"firing/high": 1},
        "live_clients": 0,
    }
