"""The store on both backends: migrations, retention, re-delivered batches count once.

Every test here runs on chdb and on the server backend (clickhouse-connect
against a chdb-backed ClickHouse HTTP endpoint), see ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from streams.errors import StoreError
from streams.events.enriched import EnrichedReview
from streams.settings import StoreSettings
from streams.store import Store, open_store
from tests.clock import day_at
from tests.events import review_event

TS = day_at(10)
PROCESSED_AT = day_at(10, 0, 1)


def enriched(
    i: int,
    product: str = "p1",
    label: str = "positive",
    *,
    ts: datetime = TS,
    category: str | None = "书籍",
    rating: int | None = 5,
    processed_at: datetime = PROCESSED_AT,
) -> EnrichedReview:
    """An enriched review as the pipeline emits it; P(label) varies with ``i``."""
    top = 0.6 + (i % 5) * 0.05
    return review_event(
        f"e{i}",
        product,
        ts=ts,
        processed_at=processed_at,
        probs={"negative": 0.1, "neutral": 0.1, "positive": 0.1, label: top},
        text=f"review {i}",
        category=category,
        rating=rating,
        lang="zh",
    )


@pytest.fixture
def store(store_settings: StoreSettings) -> Iterator[Store]:
    s = open_store(store_settings)
    yield s
    s.close()


def test_migrations_apply_once(store: Store) -> None:
    assert store.migrate() == []  # open_store already applied them


def test_redelivered_batch_counts_once(store: Store) -> None:
    batch = [enriched(i) for i in range(10)] + [
        enriched(i, "p2", "negative") for i in range(10, 14)
    ]
    store.write(batch)
    store.write(batch[3:])  # Kafka re-delivers part of the batch, differently cut
    store.write(batch[:5])
    assert store.count("reviews") == 14
    health = {p["product_id"]: p for p in store.product_health()}
    assert health["p2"]["volume"] == 4 and health["p2"]["negative"] == 1
    assert health["p1"]["volume"] == 10 and health["p1"]["positive"] == 1
    assert store.event_ids("reviews") == {f"e{i}" for i in range(14)}


def test_data_survives_reopen(store_settings: StoreSettings) -> None:
    first = open_store(store_settings)
    first.write([enriched(1)])
    first.close()
    second = open_store(store_settings)
    assert second.count("reviews") == 1
    assert second.product_health()[0]["volume"] == 1
    second.close()


def ttls(store: Store) -> dict[str, str]:
    rows = store.backend.query(
        "SELECT name, engine_full FROM system.tables WHERE database = {db:String}",
        {"db": store.db},
    )
    return {
        r["name"]: r["engine_full"].split(" TTL ")[1].split(" SETTINGS ")[0]
        for r in rows
        if " TTL " in r["engine_full"]
    }


def test_retention_follows_settings(
    store_settings: StoreSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(store_settings)
    assert ttls(store) == {
        "reviews": "toDateTime(ts) + toIntervalDay(30)",
        "questions": "toDateTime(ts) + toIntervalDay(30)",
        "review_facts": "minute + toIntervalDay(30)",
        "review_versions": "minute + toIntervalDay(30)",
        "review_writes": "written_at + toIntervalDay(1)",
        "product_minute": "minute + toIntervalDay(8)",
        "category_minute": "minute + toIntervalDay(8)",
        "product_hour": "hour + toIntervalDay(400)",
        "category_hour": "hour + toIntervalDay(400)",
        "shadow_scores": "toDateTime(ts) + toIntervalDay(30)",
    }
    store.close()

    changed = store_settings.model_copy(update={"raw_ttl_days": 3, "hour_ttl_days": 60})
    store = open_store(changed)
    found = ttls(store)
    assert found["reviews"] == "toDateTime(ts) + toIntervalDay(3)"
    assert found["shadow_scores"] == "toDateTime(ts) + toIntervalDay(3)"
    assert found["review_facts"] == "minute + toIntervalDay(3)"
    assert found["product_hour"] == "hour + toIntervalDay(60)"
    assert found["product_minute"] == "minute + toIntervalDay(8)"

    statements: list[str] = []
    monkeypatch.setattr(store.backend, "command", statements.append)
    assert store.migrate() == []
    assert not [s for s in statements if "TTL" in s]  # unchanged settings alter nothing
    store.close()


def test_bad_sql_is_a_store_error_with_clickhouse_message(store: Store) -> None:
    with pytest.raises(StoreError, match=r"UNKNOWN_IDENTIFIER|Unknown expression"):
        store.backend.query("SELECT no_such_column FROM system.one")
