"""What the live page reads: worst movers, category filter, sparklines, ratings, reviews, band.

Runs on both backends (see ``tests/conftest.py``); ``now`` is injected into the
store calls, and the reply functions (which read the real clock) are only
checked for their shape and their errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from streams.events.enriched import EnrichedReview
from streams.settings import StoreSettings
from streams.store import Store, open_store
from streams.store.windows import SeriesPoint, baseline_band, spark_step
from streams.web.api import product_reply, product_reviews_reply, products_reply
from tests.clock import day_at
from tests.events import review_event

NOW = day_at(10, 30, 20)
PROBS = {
    "negative": {"negative": 0.8, "neutral": 0.1, "positive": 0.1},
    "positive": {"negative": 0.05, "neutral": 0.15, "positive": 0.8},
}


def at(minutes_ago: float) -> datetime:
    return NOW - timedelta(minutes=minutes_ago)


def review(
    event_id: str,
    product: str,
    label: str,
    minutes_ago: float,
    *,
    category: str = "书籍",
    rating: int | None = 3,
    text: str = "fine",
) -> EnrichedReview:
    return review_event(
        event_id,
        product,
        ts=at(minutes_ago),
        processed_at=NOW,
        probs=PROBS[label],
        category=category,
        rating=rating,
        text=text,
    )


def reviews() -> list[EnrichedReview]:
    """In the 15 m window ending at NOW and the 15 m before it (16–30 minutes ago).

    p_up: 0 of 5 negative before, 3 of 5 now (+0.6); p_steady: 4 of 5 both times;
    p_new: 5 of 5 negative now, nothing before; p_coat: 1 of 5 now, 0 of 5 before (+0.2),
    another category.
    """
    rows = [review(f"up-old-{i}", "p_up", "positive", 20 + i) for i in range(5)]
    rows += [
        review(f"up-{i}", "p_up", "negative" if i < 3 else "positive", i, rating=i + 1)
        for i in range(5)
    ]
    for when, prefix in ((20, "steady-old"), (0, "steady")):
        rows += [
            review(f"{prefix}-{i}", "p_steady", "negative" if i < 4 else "positive", when + i)
            for i in range(5)
        ]
    rows += [review(f"new-{i}", "p_new", "negative", i, rating=None) for i in range(5)]
    rows += [
        review(f"coat-old-{i}", "p_coat", "positive", 20 + i, category="Coats") for i in range(5)
    ]
    rows += [
        review(f"coat-{i}", "p_coat", "negative" if i < 1 else "positive", i, category="Coats")
        for i in range(5)
    ]
    return rows


@pytest.fixture
def store(store_settings: StoreSettings) -> Iterator[Store]:
    s = open_store(store_settings)
    s.write(reviews())
    yield s
    s.close()


def test_most_negative_and_worst_movers(store: Store) -> None:
    top = store.products("15m", limit=10, now=NOW)
    assert [p["product_id"] for p in top] == ["p_new", "p_steady", "p_up", "p_coat"]
    movers = store.products("15m", limit=10, now=NOW, order="change")
    # the largest rise first; a product without reviews in the previous window last
    assert [p["product_id"] for p in movers] == ["p_up", "p_coat", "p_steady", "p_new"]
    assert [p["change"]["negative_share"] for p in movers] == [0.6, 0.2, 0.0, None]
    with pytest.raises(ValueError, match="order must be one of negative, change"):
        store.products("15m", now=NOW, order="volume")


def test_category_filter(store: Store) -> None:
    coats = store.products("15m", limit=10, now=NOW, category="Coats")
    assert [p["product_id"] for p in coats] == ["p_coat"]
    books = store.products("15m", limit=10, now=NOW, category="书籍", order="change")
    assert [p["product_id"] for p in books] == ["p_up", "p_steady", "p_new"]
    assert store.products("15m", now=NOW, category="it's none") == []


def test_sparklines(store: Store) -> None:
    lines = store.sparklines(["p_up", "p_new", "nope"], "15m", now=NOW)
    assert list(lines) == ["p_up", "p_new", "nope"]
    assert len(lines["p_up"]) == 15  # one point per minute of the window
    # p_up's reviews 0–4 minutes ago: negative at 0, 1, 2 minutes ago, then positive
    assert lines["p_up"][-5:] == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert lines["p_up"][:10] == [None] * 10  # no reviews: no share
    assert lines["nope"] == [None] * 15
    assert store.sparklines([], "15m", now=NOW) == {}
    day = store.sparklines(["p_up"], "24h", now=NOW)["p_up"]
    assert len(day) == 24 and day[-1] == 0.3  # hours: 3 of the 10 reviews of this hour


def test_spark_step_cuts_each_window_in_at_most_30_points() -> None:
    assert spark_step(timedelta(minutes=15)) == timedelta(minutes=1)
    assert spark_step(timedelta(hours=1)) == timedelta(minutes=5)
    assert spark_step(timedelta(hours=24)) == timedelta(hours=1)
    assert spark_step(timedelta(days=7)) == timedelta(hours=6)


def test_ratings_histogram(store: Store) -> None:
    assert store.ratings("p_up", "15m", now=NOW) == {
        "1": 1,
        "2": 1,
        "3": 1,
        "4": 1,
        "5": 1,
        "none": 0,
    }
    assert store.ratings("p_up", "1h", now=NOW)["3"] == 6  # the previous quarter's five too
    assert store.ratings("p_new", "15m", now=NOW)["none"] == 5
    assert sum(store.ratings("nope", "15m", now=NOW).values()) == 0


def test_recent_reviews(store: Store) -> None:
    store.write([review("up-中文", "p_up", "negative", 0.5, text="质量很差，退货了 — awful")])
    latest = store.reviews("p_up", "15m", label="negative", limit=3, now=NOW)
    assert [r["event_id"] for r in latest] == ["up-0", "up-中文", "up-1"]  # newest first
    first = latest[1]
    assert first["text"] == "质量很差，退货了 — awful"
    assert first["label"] == "negative" and first["score"] == pytest.approx(0.8, abs=1e-6)
    assert first["p_negative"] == pytest.approx(0.8, abs=1e-6)
    assert first["model"] == {"name": "m", "version": "1"}
    assert first["rating"] == 3 and first["ts"].endswith("Z")
    everything = store.reviews("p_up", "1h", limit=100, now=NOW)
    assert len(everything) == 11 and {r["label"] for r in everything} == {"negative", "positive"}
    assert store.reviews("p_new", "15m", now=NOW)[0]["rating"] is None
    with pytest.raises(ValueError, match="label must be one of"):
        store.reviews("p_up", "15m", label="angry", now=NOW)


def point(volume: int) -> SeriesPoint:
    return SeriesPoint(start="", volume=volume, shares={}, mean_score=None)


def test_baseline_band() -> None:
    band = baseline_band(0.2, [point(0), point(100), point(1)])
    assert band[0] is None  # an empty bucket has no band
    assert band[1] == (round(0.2 - 1.96 * 0.04, 6), round(0.2 + 1.96 * 0.04, 6))
    assert band[2] == (0.0, 0.984)  # clipped to [0, 1]
    assert baseline_band(None, [point(10)]) == [None]


def test_json_replies(store: Store) -> None:
    status, body = products_reply(store, {"window": "1h", "order": "change", "spark": "1"})
    assert status == 200 and set(body) == {"window", "products", "sparklines"}
    assert list(body["sparklines"]) == [p["product_id"] for p in body["products"]]
    assert products_reply(store, {"order": "volume"})[0] == 400
    assert "sparklines" not in products_reply(store, {"window": "1h"})[1]

    status, body = product_reply(store, "p_up", {"window": "7d"})
    assert status == 200
    assert set(body["ratings"]) == {"1", "2", "3", "4", "5", "none"}
    assert set(body["baseline"]) == {"negative_share", "volume", "band"}
    assert len(body["baseline"]["band"]) == len(body["series"])
    assert product_reply(store, "nope", {"window": "1h"})[0] == 404

    status, body = product_reviews_reply(store, "p_up", {"window": "7d", "label": "negative"})
    assert status == 200 and body["product_id"] == "p_up"
    assert {r["label"] for r in body["reviews"]} <= {"negative"}
    assert product_reviews_reply(store, "p_up", {"label": "angry"})[0] == 400
    assert product_reviews_reply(store, "p_up", {"limit": "0"})[0] == 400


def test_rated_reviews_for_adapt(store: Store) -> None:
    store.write(reviews())  # a re-sent batch: every event still once
    rated = store.rated_reviews()
    assert len(rated) == 30  # 35 reviews, p_new's five unrated
    assert sorted(r["rating"] for r in rated) == [1, 2] + [3] * 26 + [4, 5]
    assert all(r["text"] == "fine" for r in rated)
    coats = store.rated_reviews(category="Coats")
    assert len(coats) == 10 and {r["rating"] for r in coats} == {3}
    assert len(store.rated_reviews(limit=4)) == 4
