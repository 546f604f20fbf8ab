"""HTTP views on the worker's Faust web server: health, metrics, product health."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from typing import Any

import faust

from streams.pipeline import Stats
from streams.sink import BatchSink
from streams.store import Store


def register_views(
    app: faust.App, store: Store, stats: Stats, sink: BatchSink, executor: Executor
) -> None:
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
