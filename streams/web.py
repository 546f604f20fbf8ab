"""HTTP views on the worker's Faust web server: health, metrics, product sentiment.

The ``/api`` views answer from the store in the worker's executor (the store's
backends block). Their request handling is plain functions of the store and
the query parameters (:func:`products_reply`, :func:`product_reply`), so it is
tested without a web server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import Any

import faust

from streams.pipeline import Stats
from streams.sink import BatchSink
from streams.store import Store

DEFAULT_WINDOW = "1h"
MAX_LIMIT = 1000

Reply = tuple[int, Any]  # HTTP status, JSON body


def _limit(query: Mapping[str, str]) -> int:
    text = query.get("limit", "10")
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise ValueError(f"limit must be an integer from 1 to {MAX_LIMIT}, not {text!r}")
    return int(text)


def products_reply(store: Store, query: Mapping[str, str]) -> Reply:
    """``/api/products?window=1h&limit=10[&min_volume=N]``: most negative products first."""
    window = query.get("window", DEFAULT_WINDOW)
    try:
        min_volume = query.get("min_volume")
        if min_volume is not None and not min_volume.isdigit():
            raise ValueError(f"min_volume must be a non-negative integer, not {min_volume!r}")
        rows = store.products(
            window, _limit(query), None if min_volume is None else int(min_volume)
        )
    except ValueError as exc:
        return 400, {"error": str(exc)}
    return 200, {"window": window, "products": rows}


def product_reply(store: Store, product_id: str, query: Mapping[str, str]) -> Reply:
    """``/api/products/{id}?window=24h[&bucket=1h]``: the product, its change and a series."""
    window = query.get("window", DEFAULT_WINDOW)
    try:
        found = store.product(product_id, window)
        series = store.series(product_id, window, query.get("bucket")) if found else []
    except ValueError as exc:
        return 400, {"error": str(exc)}
    if found is None:
        return 404, {"error": f"no reviews of product {product_id!r}"}
    return 200, {**found, "series": series}


def categories_reply(store: Store, query: Mapping[str, str]) -> Reply:
    """``/api/categories?window=24h&limit=10``: categories, most negative first."""
    window = query.get("window", DEFAULT_WINDOW)
    try:
        rows = store.categories(window, _limit(query))
    except ValueError as exc:
        return 400, {"error": str(exc)}
    return 200, {"window": window, "categories": rows}


def register_views(
    app: faust.App, store: Store, stats: Stats, sink: BatchSink, executor: Executor
) -> None:
    async def in_executor(reply: Callable[..., Reply], *args: Any) -> Reply:
        return await asyncio.get_running_loop().run_in_executor(executor, reply, store, *args)

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        ready = sink.store_ok
        return web.json({"ready": ready, "store_ok": sink.store_ok}, status=200 if ready else 503)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.json(
            {
                "processed": dict(stats.processed),
                "dead_letters": dict(stats.dead_letters),
                "stored": dict(stats.stored),
                "delivery_retries": sink.retries,
            }
        )

    @app.page("/api/health")
    async def product_health(web: Any, request: Any) -> Any:
        limit = int(request.query.get("limit", "10"))
        loop = asyncio.get_running_loop()
        rows = await loop.run_in_executor(executor, store.product_health, limit)
        return web.json({"products": rows})

    @app.page("/api/products")
    async def products(web: Any, request: Any) -> Any:
        status, body = await in_executor(products_reply, dict(request.query))
        return web.json(body, status=status)

    @app.page("/api/products/{product_id}")
    async def product(web: Any, request: Any, product_id: str) -> Any:
        status, body = await in_executor(product_reply, product_id, dict(request.query))
        return web.json(body, status=status)

    @app.page("/api/categories")
    async def categories(web: Any, request: Any) -> Any:
        status, body = await in_executor(categories_reply, dict(request.query))
        return web.json(body, status=status)
