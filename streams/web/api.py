"""HTTP views on the worker's Faust web server: health, metrics, product sentiment.

The ``/api`` views answer from the store on their own thread pool (the
store's backends block; ingestion writes have a thread of their own). Their
request handling is plain functions of the store and the query parameters
(:func:`products_reply`, :func:`product_reply`), so it is tested without a web
server. With ``web.token`` set, ``/api/*`` needs ``Authorization: Bearer
<token>``; ``/healthz``, ``/readyz``, ``/metrics`` (Prometheus's text format) and
``/metrics.json`` (the same counters as JSON, for the tools) stay open.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from datetime import datetime, timedelta
from typing import Any

import faust

from streams.durations import parse_duration
from streams.events.sentiment import NEGATIVE
from streams.service.health import Health
from streams.service.metrics import CONTENT_TYPE, Metrics
from streams.service.pipeline import Stats
from streams.service.shadow import RollOut
from streams.service.sink import BatchSink
from streams.settings import WebSettings
from streams.store import Store
from streams.store.alerts import AlertStore
from streams.store.shadow import comparison
from streams.store.windows import baseline_band

DEFAULT_WINDOW = "1h"
MODELS_WINDOW = "24h"
MAX_LIMIT = 1000

Reply = tuple[int, Any]  # HTTP status, JSON body


def _limit(query: Mapping[str, str], default: str = "10") -> int:
    text = query.get("limit", default)
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise ValueError(f"limit must be an integer from 1 to {MAX_LIMIT}, not {text!r}")
    return int(text)


def health_reply(store: Store, query: Mapping[str, str]) -> Reply:
    """``/api/health?limit=10``: all retained hours, most negative products first."""
    try:
        return 200, {"products": store.product_health(_limit(query))}
    except ValueError as exc:
        return 400, {"error": str(exc)}


def authorized(token: str | None, header: str | None) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <token>`` (any, without a token)."""
    if token is None:
        return True
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode())


def products_reply(store: Store, query: Mapping[str, str]) -> Reply:
    """``/api/products?window=1h&limit=10[&min_volume=N][&order=change][&category=C][&spark=1]``.

    Most negative products first, or with ``order=change`` the worst movers
    (negative share against the previous window); ``spark=1`` adds each
    product's negative share per bucket of the window (``sparklines``).
    """
    window = query.get("window", DEFAULT_WINDOW)
    try:
        min_volume = query.get("min_volume")
        if min_volume is not None and not min_volume.isdigit():
            raise ValueError(f"min_volume must be a non-negative integer, not {min_volume!r}")
        rows = store.products(
            window,
            _limit(query),
            None if min_volume is None else int(min_volume),
            order=query.get("order", "negative"),
            category=query.get("category") or None,
        )
        body: dict[str, Any] = {"window": window, "products": rows}
        if query.get("spark") == "1":
            body["sparklines"] = store.sparklines([r["product_id"] for r in rows], window)
    except ValueError as exc:
        return 400, {"error": str(exc)}
    return 200, body


def product_reply(store: Store, product_id: str, query: Mapping[str, str]) -> Reply:
    """``/api/products/{id}?window=24h[&bucket=1h]``: the product, its change and a series.

    Also its reviews per star rating in the window (``ratings``) and its
    baseline, the previous window's negative share, with each point's band
    (:func:`~streams.store.windows.baseline_band`).
    """
    window = query.get("window", DEFAULT_WINDOW)
    try:
        found = store.product(product_id, window)
        if found is None:
            return 404, {"error": f"no reviews of product {product_id!r}"}
        series = store.series(product_id, window, query.get("bucket"))
        ratings = store.ratings(product_id, window)
    except ValueError as exc:
        return 400, {"error": str(exc)}
    previous = found["previous"]
    share = previous["shares"][NEGATIVE] if previous["volume"] else None
    baseline = {
        "negative_share": share,
        "volume": previous["volume"],
        "band": baseline_band(share, series),
    }
    return 200, {**found, "series": series, "ratings": ratings, "baseline": baseline}


def product_reviews_reply(store: Store, product_id: str, query: Mapping[str, str]) -> Reply:
    """``/api/products/{id}/reviews?window=24h[&label=negative]&limit=10``: newest first."""
    try:
        rows = store.reviews(
            product_id,
            query.get("window", DEFAULT_WINDOW),
            query.get("label"),
            _limit(query),
        )
    except ValueError as exc:
        return 400, {"error": str(exc)}
    return 200, {"product_id": product_id, "reviews": rows}


def product_questions_reply(store: Store, product_id: str, query: Mapping[str, str]) -> Reply:
    """``/api/products/{id}/questions?window=24h``: intent counts and the unanswered share."""
    try:
        return 200, store.product_questions(product_id, query.get("window", DEFAULT_WINDOW))
    except ValueError as exc:
        return 400, {"error": str(exc)}


def categories_reply(store: Store, query: Mapping[str, str]) -> Reply:
    """``/api/categories?window=24h&limit=10``: categories, most negative first."""
    window = query.get("window", DEFAULT_WINDOW)
    try:
        rows = store.categories(window, _limit(query))
    except ValueError as exc:
        return 400, {"error": str(exc)}
    return 200, {"window": window, "categories": rows}


def models_reply(
    store: Store, query: Mapping[str, str], *, roll_out: RollOut, now: datetime | None = None
) -> Reply:
    """``/api/models?window=24h``: the live review package, the candidate in shadow, and how
    they compare over the window's reviews scored by both.

    ``comparison`` is the loaded pair's (null without a candidate); ``other_comparisons``
    are pairs scored before a restart that changed either package.
    """
    window = query.get("window", MODELS_WINDOW)
    try:
        found = store.shadow_comparisons(window, now)
    except ValueError as exc:
        return 400, {"error": str(exc)}
    candidate, current = roll_out.candidate, None
    if candidate is not None:
        pair = (roll_out.primary.ref.to_dict(), candidate.ref.to_dict())
        current = next(
            (c for c in found if (c["primary"], c["candidate"]) == pair),
            comparison(roll_out.primary.ref, candidate.ref, {}),
        )
    return 200, {
        "window": window,
        "primary": roll_out.primary.to_dict(),
        "candidate": None
        if candidate is None
        else {**candidate.to_dict(), "sample": roll_out.sample},
        "comparison": current,
        "other_comparisons": [c for c in found if c is not current],
    }


def _status(query: Mapping[str, str]) -> str | None:
    status = query.get("status")
    if status not in (None, "firing", "resolved"):
        raise ValueError(f"status must be firing or resolved, not {status!r}")
    return status


def _since_ms(query: Mapping[str, str], now_ms: int) -> int | None:
    window = query.get("window")
    if window is None:
        return None
    return now_ms - parse_duration(window) // timedelta(milliseconds=1)


def alerts_reply(
    alerts: AlertStore,
    query: Mapping[str, str],
    now_ms: int | None = None,
    product_id: str | None = None,
) -> Reply:
    """``/api/alerts?status=firing&window=24h&limit=100``: the latest event of each alert.

    ``window`` keeps alerts whose last tested window ended within that long of now.
    """
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    try:
        rows = alerts.alerts(
            status=_status(query),
            since_ms=_since_ms(query, now_ms),
            product_id=product_id,
            limit=_limit(query, "100"),
        )
    except ValueError as exc:
        return 400, {"error": str(exc)}
    return 200, {"alerts": rows}


def product_alerts_reply(
    alerts: AlertStore, product_id: str, query: Mapping[str, str], now_ms: int | None = None
) -> Reply:
    """``/api/products/{id}/alerts?status=&window=``: the product's alerts, newest first."""
    status, body = alerts_reply(alerts, query, now_ms, product_id)
    return status, {"product_id": product_id, **body} if status == 200 else body


def register_views(
    app: faust.App,
    store: Store,
    alert_store: AlertStore,
    stats: Stats,
    sink: BatchSink,
    health: Health,
    executor: Executor,
    settings: WebSettings,
    alert_counts: Counter[str],
    metrics: Metrics,
    roll_out: RollOut,
) -> None:
    token = settings.token.get_secret_value() if settings.token else None

    def api(reply: Callable[..., Reply], target: Any = store) -> Callable[..., Awaitable[Any]]:
        """A view answering ``reply(target, *path_args, query)`` on the API pool, after auth."""

        async def view(web: Any, request: Any, *args: str) -> Any:
            if not authorized(token, request.headers.get("Authorization")):
                return web.json(
                    {"error": "missing or wrong bearer token"},
                    status=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
            loop = asyncio.get_running_loop()
            call = functools.partial(reply, target, *args, dict(request.query))
            status, body = await loop.run_in_executor(executor, call)
            return web.json(body, status=status)

        return view

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        problems = health.problems()
        body = {"status": "fail" if problems else "ok", "problems": problems}
        return web.json(body, status=503 if problems else 200)

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        ready = not health.problems() and not health.retrying
        body = {"ready": ready, "store_ok": sink.store_ok, **health.report()}
        return web.json(body, status=200 if ready else 503)

    @app.page("/metrics")
    async def prometheus(web: Any, request: Any) -> Any:
        # a header: aiohttp refuses a content_type argument that carries a charset
        return web.bytes(metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    @app.page("/metrics.json")
    async def metrics_json(web: Any, request: Any) -> Any:
        return web.json(
            {
                "processed": dict(stats.processed),
                "dead_letters": dict(stats.dead_letters),
                "stored": dict(stats.stored),
                "delivery_retries": sink.retries,
                "alerts": dict(alert_counts),
            }
        )

    health_view = api(health_reply)
    products_view = api(products_reply)
    product_view = api(product_reply)
    categories_view = api(categories_reply)
    product_questions_view = api(product_questions_reply)
    product_reviews_view = api(product_reviews_reply)
    alerts_view = api(alerts_reply, alert_store)
    product_alerts_view = api(product_alerts_reply, alert_store)
    models_view = api(functools.partial(models_reply, roll_out=roll_out))

    @app.page("/api/health")
    async def product_health(web: Any, request: Any) -> Any:
        return await health_view(web, request)

    @app.page("/api/products")
    async def products(web: Any, request: Any) -> Any:
        return await products_view(web, request)

    @app.page("/api/products/{product_id}")
    async def product(web: Any, request: Any, product_id: str) -> Any:
        return await product_view(web, request, product_id)

    @app.page("/api/categories")
    async def categories(web: Any, request: Any) -> Any:
        return await categories_view(web, request)

    @app.page("/api/alerts")
    async def alerts(web: Any, request: Any) -> Any:
        return await alerts_view(web, request)

    @app.page("/api/products/{product_id}/alerts")
    async def product_alerts(web: Any, request: Any, product_id: str) -> Any:
        return await product_alerts_view(web, request, product_id)

    @app.page("/api/products/{product_id}/questions")
    async def product_questions(web: Any, request: Any, product_id: str) -> Any:
        return await product_questions_view(web, request, product_id)

    @app.page("/api/models")
    async def models(web: Any, request: Any) -> Any:
        return await models_view(web, request)

    @app.page("/api/products/{product_id}/reviews")
    async def product_reviews(web: Any, request: Any, product_id: str) -> Any:
        return await product_reviews_view(web, request, product_id)
