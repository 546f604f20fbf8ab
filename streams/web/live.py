"""Live updates for the page: an in-process broadcaster and its server-sent events stream.

The sink calls :meth:`LiveFeed.stored` after each batch is in the store, the
alert publisher calls :meth:`LiveFeed.alerts` after alerts are stored; every
open ``GET /api/events`` connection gets them as ``text/event-stream``
messages (``event: stored`` / ``event: alerts``, JSON ``data``). A client that
falls behind loses messages, never blocks the worker: each message only tells
the page to read the API again. All of it runs on the worker's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import orjson
from aiohttp import web

from streams.alerts import AlertEvent
from streams.events.enriched import Enriched

QUEUE_SIZE = 64  # messages a slow client may have pending before it misses some
MAX_PRODUCTS = 50  # product ids named in one message
HEARTBEAT_S = 15.0  # a comment line keeps idle connections (and proxies) open


def sse_message(event: str, data: Mapping[str, Any]) -> bytes:
    """One server-sent event: ``event: NAME`` and one ``data:`` line of JSON."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class Throughput:
    """Events stored per second over the last ``span_s`` seconds (times given by the caller)."""

    def __init__(self, span_s: float = 60.0) -> None:
        self.span_s = span_s
        self._marks: deque[tuple[float, int]] = deque()

    def add(self, count: int, at_s: float) -> None:
        self._forget(at_s)
        self._marks.append((at_s, count))

    def rate(self, at_s: float) -> float:
        self._forget(at_s)
        return sum(n for _, n in self._marks) / self.span_s

    def _forget(self, at_s: float) -> None:
        while self._marks and self._marks[0][0] <= at_s - self.span_s:
            self._marks.popleft()


class LiveFeed:
    """Fans messages out to every subscriber's queue; ``None`` tells a stream to end."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock or (lambda: asyncio.get_running_loop().time())
        self._queues: set[asyncio.Queue[bytes | None]] = set()
        self.throughput = Throughput()
        self.closed = False

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    def publish(self, event: str, data: Mapping[str, Any]) -> None:
        message = sse_message(event, data)
        for queue in self._queues:
            with contextlib.suppress(asyncio.QueueFull):  # a slow client misses this one
                queue.put_nowait(message)

    def stored(self, kind: str, events: Sequence[Enriched]) -> None:
        """A batch is in the store: count it and tell the pages which products changed."""
        self.throughput.add(len(events), self._clock())
        products = sorted({e.input.product_id for e in events})
        self.publish(
            "stored", {"kind": kind, "count": len(events), "products": products[:MAX_PRODUCTS]}
        )

    def alerts(self, events: Sequence[AlertEvent]) -> None:
        """Alerts fired or resolved (and are stored)."""
        products = sorted({e.product_id for e in events if e.product_id})
        self.publish("alerts", {"count": len(events), "products": products[:MAX_PRODUCTS]})

    def rate(self) -> float:
        return self.throughput.rate(self._clock())

    @contextlib.contextmanager
    def subscription(self) -> Iterator[asyncio.Queue[bytes | None]]:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_SIZE)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    def close(self) -> None:
        """End every open stream (the web server is stopping)."""
        self.closed = True
        for queue in self._queues:
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait(None)


async def event_stream(
    request: web.BaseRequest, feed: LiveFeed, heartbeat_s: float = HEARTBEAT_S
) -> web.StreamResponse:
    """``GET /api/events``: the feed as ``text/event-stream`` until the client or server leaves."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    with feed.subscription() as queue:
        try:
            # the browser reconnects 2 s after a drop; "hello" tells it the stream is live
            await response.write(b"retry: 2000\n\n" + sse_message("hello", {}))
            while not feed.closed:
                try:
                    message = await asyncio.wait_for(queue.get(), heartbeat_s)
                except TimeoutError:
                    message = b": keep-alive\n\n"
                if message is None:
                    break
                await response.write(message)
        except ConnectionResetError:
            pass  # the client went away
    return response
