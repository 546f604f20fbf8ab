"""Rolling windows: top-N, one product against its previous window, series, the JSON API.

Runs on both backends (see ``tests/conftest.py``); ``now`` is injected.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from pydantic import ValidationError

from streams.events.enriched import EnrichedReview
from streams.settings import StoreSettings
from streams.store import Store, open_store
from streams.web.api import product_reply, products_reply
from tests.clock import api_time, day_at
from tests.unit.test_store import enriched

NOW = day_at(10, 30, 20)


def at(minutes_ago: float) -> datetime:
    return NOW - timedelta(minutes=minutes_ago)


def reviews() -> list[EnrichedReview]:
    """p_bad turns negative this quarter hour; p_good stays positive; p_few is too small."""
    rows = [enriched(i, "p_bad", "negative" if i < 4 else "positive", ts=at(i)) for i in range(6)]
    rows += [
        enriched(10 + i, "p_bad", "negative" if i < 1 else "positive", ts=at(16 + i))
        for i in range(6)
    ]
    rows += [enriched(20 + i, "p_good", "positive", ts=at(2 * i), rating=None) for i in range(5)]
    rows += [enriched(30 + i, "p_few", "negative", ts=at(1)) for i in range(2)]
    rows += [enriched(40, "a'b\\c\td", "neutral", ts=at(3))]
    rows += [enriched(50, "p_old", "neutral", ts=day_at(-20 * 24))]
    return rows


@pytest.fixture
def store(store_settings: StoreSettings) -> Iterator[Store]:
    s = open_store(store_settings)
    s.write(reviews())
    yield s
    s.close()


def test_top_products_by_negative_share_with_minimum_volume(store: Store) -> None:
    top = store.products("15m", limit=10, now=NOW)
    assert [p["product_id"] for p in top] == ["p_bad", "p_good"]  # p_few: 2 < min volume 5
    bad = top[0]
    assert bad["window"] == "15m"
    assert (bad["start"], bad["end"]) == (api_time(day_at(10, 16)), api_time(day_at(10, 31)))
    assert bad["volume"] == 6
    assert bad["shares"] == {
        "negative": round(4 / 6, 6),
        "neutral": 0.0,
        "positive": round(2 / 6, 6),
    }
    assert bad["previous"]["volume"] == 6
    assert bad["previous"]["shares"]["negative"] == round(1 / 6, 6)
    assert bad["change"]["volume"] == 0
    assert bad["change"]["negative_share"] == pytest.approx(0.5, abs=1e-5)
    assert bad["mean_score"] is not None and bad["mean_score"] < 0 < top[1]["mean_score"]
    assert bad["change"]["mean_score"] is not None and bad["change"]["mean_score"] < 0
    assert top[1]["mean_rating"] is None and bad["mean_rating"] == 5.0

    assert [p["product_id"] for p in store.products("15m", limit=1, min_volume=1, now=NOW)] == [
        "p_few"
    ]


def test_longer_windows_read_hours(store: Store) -> None:
    day = {p["product_id"]: p for p in store.products("24h", min_volume=1, now=NOW)}
    assert day["p_bad"]["volume"] == 12
    assert day["p_bad"]["start"] == api_time(day_at(-13))
    assert "p_old" not in day
    week = store.products("7d", min_volume=1, now=NOW)
    assert sum(p["volume"] for p in week) == len(reviews()) - 1


def test_one_product_and_unknown_ones(store: Store) -> None:
    odd = store.product("a'b\\c\td", "1h", now=NOW)
    assert odd is not None and odd["volume"] == 1 and odd["shares"]["neutral"] == 1.0
    old = store.product("p_old", "1h", now=NOW)  # known, but quiet in this window
    assert old is not None and old["volume"] == 0 and old["mean_score"] is None
    assert store.product("nope", "1h", now=NOW) is None
    with pytest.raises(ValueError, match="unknown window"):
        store.product("p_bad", "2h", now=NOW)


def test_series_has_every_bucket(store: Store) -> None:
    minutes = store.series("p_bad", "15m", now=NOW)
    assert len(minutes) == 15 and minutes[0]["start"] == api_time(day_at(10, 16))
    assert sum(p["volume"] for p in minutes) == 6
    assert minutes[-1]["volume"] == 1 and minutes[-1]["shares"]["negative"] == 1.0
    quarters = store.series("p_bad", "1h", bucket="15m", now=NOW)
    assert quarters[0]["start"] == api_time(day_at(9, 45))  # buckets align to whole quarters
    assert [p["volume"] for p in quarters] == [0, 6, 5, 1]
    hours = store.series("p_bad", "24h", now=NOW)
    assert len(hours) == 24 and hours[-1]["volume"] == 12
    with pytest.raises(ValueError, match="divide"):
        store.series("p_bad", "15m", bucket="7m", now=NOW)


def test_categories(store: Store) -> None:
    (books,) = store.categories("15m", now=NOW)
    assert books["category"] == "书籍" and books["volume"] == 14


def test_json_replies(store: Store) -> None:
    status, body = products_reply(store, {"window": "1h", "limit": "5"})
    assert status == 200 and body["window"] == "1h" and isinstance(body["products"], list)
    assert products_reply(store, {"window": "2h"}) == (
        400,
        {"error": "unknown window '2h'; one of 15m, 1h, 24h, 7d"},
    )
    assert products_reply(store, {"limit": "lots"})[0] == 400
    assert product_reply(store, "nope", {"window": "1h"}) == (
        404,
        {"error": "no reviews of product 'nope'"},
    )
    status, body = product_reply(store, "p_bad", {"window": "24h", "bucket": "1h"})
    assert status == 200
    assert {"product_id", "window", "volume", "shares", "mean_score", "previous", "change"} <= set(
        body
    )
    assert len(body["series"]) == 24
    assert product_reply(store, "p_bad", {"window": "24h", "bucket": "5x"})[0] == 400


def test_window_settings_are_checked() -> None:
    with pytest.raises(ValidationError, match="not a duration"):
        StoreSettings(windows=["15 minutes"])
    with pytest.raises(ValidationError, match="twice the longest window"):
        StoreSettings(windows=["30d"], hour_ttl_days=40)
