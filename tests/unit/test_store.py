"""The chdb store: migrations are idempotent and re-delivered batches count once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streams.settings import StoreSettings
from streams.store import Store, open_store


def enriched(i: int, product: str = "p1", label: str = "positive") -> dict[str, Any]:
    probs = {"negative": 0.1, "neutral": 0.1, "positive": 0.1, label: 0.8}
    return {
        "event_id": f"e{i}",
        "product_id": product,
        "text": f"review {i}",
        "rating": 5,
        "user_id": None,
        "category": "书籍",
        "ts": "2026-11-28T10:00:00.000+00:00",
        "lang": "zh",
        "sentiment": {"label": label, "score": 0.8, "probs": probs},
        "model": {"name": "m", "version": "1"},
        "processed_at": "2026-11-28T10:00:01.000+00:00",
    }


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = open_store(StoreSettings(path=tmp_path / "chdb", database="rp_test"))
    yield s
    s.close()


def test_migrations_apply_once(store: Store) -> None:
    assert store.migrate() == []  # open_store already applied them


def test_redelivered_batch_counts_once(store: Store) -> None:
    batch = [enriched(i) for i in range(10)] + [
        enriched(i, "p2", "negative") for i in range(10, 14)
    ]
    store.write(batch, [])
    store.write(batch[3:], [])  # Kafka re-delivers part of the batch, differently cut
    store.write(batch[:5], [])
    assert store.count("reviews") == 14
    health = {p["product_id"]: p for p in store.product_health()}
    assert health["p2"]["volume"] == 4 and health["p2"]["negative"] == 1
    assert health["p1"]["volume"] == 10 and health["p1"]["positive"] == 1
    assert store.event_ids("reviews") == {f"e{i}" for i in range(14)}


def test_data_survives_reopen(tmp_path: Path) -> None:
    settings = StoreSettings(path=tmp_path / "chdb", database="rp_test")
    first = open_store(settings)
    first.write([enriched(1)], [])
    first.close()
    second = open_store(settings)
    assert second.count("reviews") == 1
    second.close()
