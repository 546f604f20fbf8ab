"""Store throughput: synthetic enriched reviews into chdb, then the top-N query.

Measures the write path the worker uses (:meth:`Store.insert_reviews`: the
Arrow insert into ``reviews`` and ``review_facts`` plus the roll-up
recompute), timed batch by batch without generating the data, and then each
configured window's top-N query over everything written. The data is shaped
like a stream: 5,000 products in 8 categories, event times over the last
7 days arriving roughly in order with 2 % up to 6 hours late, labels about
20 / 15 / 65 % negative / neutral / positive.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from streams.events.enriched import REVIEW_SCHEMA
from streams.settings import StoreSettings
from streams.store import Store, open_store

PRODUCTS = 5_000
CATEGORIES = ("apparel", "shoes", "books", "electronics", "home", "beauty", "toys", "grocery")
LABELS = ("negative", "neutral", "positive")
SPAN = timedelta(days=7)
LATE_SHARE = 0.02
LATE_MAX = timedelta(hours=6)
# A long tail: the most reviewed product gets about 1 % of the reviews.
POPULARITY = 1 / np.arange(1, PRODUCTS + 1) ** 0.6
POPULARITY /= POPULARITY.sum()
PHRASES = (
    "Fits true to size and the fabric feels sturdy.",
    "Arrived late and the box was crushed.",
    "Does what it says, nothing more.",
    "Colour is different from the photos.",
    "Battery lasts two days, very happy with it.",
    "Stopped working after a week, asked for a refund.",
    "Good value for the price.",
    "质量很好，物流也快。",
)


def synthetic_batch(
    rng: np.random.Generator, first: int, size: int, total: int, end: datetime
) -> pa.Table:
    """Rows ``first``…``first + size`` of ``total`` enriched reviews ending at ``end``."""
    index = np.arange(first, first + size)
    start_ms = int((end - SPAN).timestamp() * 1000)
    ts = start_ms + index * (SPAN.total_seconds() * 1000 / total) + rng.uniform(0, 60_000, size)
    late = rng.random(size) < LATE_SHARE
    ts[late] -= rng.uniform(0, LATE_MAX.total_seconds() * 1000, int(late.sum()))
    product = rng.choice(PRODUCTS, size, p=POPULARITY)
    label = rng.choice(3, size, p=[0.20, 0.15, 0.65])
    top = rng.uniform(0.5, 0.99, size)
    rest = 1 - top
    probs = np.stack([rest / 2, rest / 2, rest / 2], axis=1)
    probs[np.arange(size), label] = top
    rating = np.where(
        rng.random(size) < 0.8, np.clip(label * 2 + rng.integers(1, 3, size), 1, 5), 0
    )
    ids = pa.array(index).cast(pa.string())
    products = pa.array(product).cast(pa.string())
    return pa.table(
        {
            "event_id": pc.binary_join_element_wise("bench-", ids, ""),
            "product_id": pc.binary_join_element_wise("sku-", products, ""),
            "category": pa.array(np.array(CATEGORIES)[product % len(CATEGORIES)]),
            "user_id": pc.binary_join_element_wise("user-", ids, ""),
            "lang": pa.array(np.where(product % 8 == 7, "zh", "en")),
            "text": pa.array(np.array(PHRASES)[rng.integers(0, len(PHRASES), size)]),
            "rating": pa.array(rating, pa.uint8()),
            "label": pa.array(np.array(LABELS)[label]),
            "score": pa.array(top, pa.float32()),
            "p_negative": pa.array(probs[:, 0], pa.float32()),
            "p_neutral": pa.array(probs[:, 1], pa.float32()),
            "p_positive": pa.array(probs[:, 2], pa.float32()),
            "model_name": pa.array(["sentiment-zh-en"] * size),
            "model_version": pa.array(["1"] * size),
            "ts": pa.array(ts.astype("int64"), pa.timestamp("ms", tz="UTC")),
            "processed_at": pa.array(
                np.full(size, int(end.timestamp() * 1000)), pa.timestamp("ms", tz="UTC")
            ),
        },
        schema=REVIEW_SCHEMA,
    )


def _query_ms(store: Store, window: str, now: datetime, repeats: int = 5) -> float:
    store.products(window, limit=10, now=now)  # warm caches once
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        store.products(window, limit=10, now=now)
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


def run_store_bench(path: Path, rows: int = 1_000_000, batch: int = 50_000) -> dict[str, Any]:
    """Write ``rows`` reviews in batches of ``batch`` into a chdb store at ``path``.

    Returns rows/s of the write path (roll-ups included) and the median
    milliseconds of the top-N query per window over all rows written.
    """
    settings = StoreSettings(path=path, database="bench")
    store = open_store(settings)
    try:
        end = datetime.now(UTC).replace(microsecond=0)
        rng = np.random.default_rng(7)
        seconds: list[float] = []
        for first in range(0, rows, batch):
            table = synthetic_batch(rng, first, min(batch, rows - first), rows, end)
            started = time.perf_counter()
            store.insert_reviews(table)
            seconds.append(time.perf_counter() - started)
        written = store.count("reviews")
        return {
            "rows": written,
            "batch": batch,
            "write_rows_per_s": round(written / sum(seconds)),
            "batch_s": {
                "median": round(statistics.median(seconds), 3),
                "max": round(max(seconds), 3),
            },
            "top_n_ms": {w: _query_ms(store, w, end) for w in settings.windows},
        }
    finally:
        store.close()
