"""The live product-health page on the worker's web server: ``/``, its files, status, events.

The page is static (``streams/web/static/``: HTML, ES modules, CSS and the
vendored uPlot, no build step, nothing from outside the worker) and reads the
JSON API; ``/api/status`` feeds its pipeline-health header and ``/api/events``
(:mod:`streams.web.live`) tells it when to read again. The files are read
once, when the views are registered, and served from memory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any, cast

import faust

from streams.service.metrics import faust_consumer_lag
from streams.service.pipeline import Stats
from streams.service.sink import BatchSink
from streams.web.api import Reply, authorized
from streams.web.live import LiveFeed, event_stream

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
TEXT = "text/plain; charset=utf-8"  # LICENSE and anything else


def static_files(root: Traversable | None = None) -> dict[str, tuple[bytes, str]]:
    """Every file under ``static/`` by its path there, with its content type."""
    root = root or resources.files("streams.web") / "static"
    files: dict[str, tuple[bytes, str]] = {}

    def walk(node: Traversable, prefix: str) -> None:
        for child in node.iterdir():
            path = prefix + child.name
            if child.is_dir():
                walk(child, path + "/")
            elif not child.name.startswith("."):
                suffix = "." + child.name.rpartition(".")[2] if "." in child.name else ""
                files[path] = (child.read_bytes(), CONTENT_TYPES.get(suffix, TEXT))

    walk(root, "")
    return files


def status_reply(
    stats: Stats,
    retries: int,
    throughput: float,
    lag: int | None,
    models: Mapping[str, str],
    alert_counts: Mapping[str, int],
    live_clients: int = 0,
) -> Reply:
    """``/api/status``: the header's pipeline health in one small JSON object."""
    return 200, {
        "processed": dict(stats.processed),
        "stored": dict(stats.stored),
        "dead_letters": sum(stats.dead_letters.values()),
        "dead_letter_reasons": dict(stats.dead_letters),
        "throughput_per_s": round(throughput, 3),
        "consumer_lag": lag,
        "delivery_retries": retries,
        "models": dict(models),
        "alerts": dict(alert_counts),
        "live_clients": live_clients,
    }


def consumer_lag(app: faust.App) -> int | None:
    """Records behind the group's committed offsets on this worker's input partitions.

    The sum of :func:`streams.service.metrics.faust_consumer_lag` (the gauge
    ``/metrics`` exports per partition) over the partitions whose lag is known
    (fetched and committed once); None while none is.
    """
    try:
        lag = faust_consumer_lag(app.consumer)
    except (AttributeError, AssertionError, KeyError, RuntimeError):  # not assigned (yet)
        return None
    return sum(lag.values()) if lag else None


def register_page(
    app: faust.App,
    feed: LiveFeed,
    stats: Stats,
    sink: BatchSink,
    models: Mapping[str, str],
    alert_counts: Mapping[str, int],
    token: str | None,
    lag: Callable[[], int | None],
) -> None:
    """``/``, ``/static/…``, ``/api/status`` and ``/api/events`` on the app's web server."""
    files = static_files()
    index, html = files["index.html"]

    def denied(web: Any, request: Any) -> Any:
        if authorized(token, request.headers.get("Authorization")):
            return None
        return web.json(
            {"error": "missing or wrong bearer token"},
            status=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    @app.page("/")
    async def page(web: Any, request: Any) -> Any:
        return web.bytes(index, headers=_headers(html))

    @app.page("/static/{path:.+}")
    async def static(web: Any, request: Any, path: str) -> Any:
        found = files.get(path)
        if found is None:
            return web.json({"error": f"no file {path!r}"}, status=404)
        body, content_type = found
        return web.bytes(body, headers=_headers(content_type))

    @app.page("/api/status")
    async def status(web: Any, request: Any) -> Any:
        refused = denied(web, request)
        if refused is not None:
            return refused
        code, body = status_reply(
            stats, sink.retries, feed.rate(), lag(), models, alert_counts, feed.subscribers
        )
        return web.json(body, status=code)

    @app.page("/api/events")
    async def events(web: Any, request: Any) -> Any:
        refused = denied(web, request)
        if refused is not None:
            return refused
        return await event_stream(request, feed)

    # aiohttp waits for running handlers when it stops: end the open streams first
    # (the worker's web driver is aiohttp's; its Application runs on_shutdown then)
    async def close_streams(_: Any) -> None:
        feed.close()

    cast(Any, app.web).web_app.on_shutdown.append(close_streams)


def _headers(content_type: str) -> dict[str, str]:
    # no-cache: the browser revalidates, so a restarted worker's new files are used
    return {"Content-Type": content_type, "Cache-Control": "no-cache"}
