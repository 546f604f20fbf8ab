"""Roll-ups are replay-safe: the same events in any batching give the same aggregates.

Runs on both backends (see ``tests/conftest.py``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from streams.events.enriched import EnrichedReview
from streams.settings import StoreSettings
from streams.store import Store, open_store
from streams.store.rollup import ROLLUP_TARGETS
from tests.clock import day_at, sql_time
from tests.events import ms
from tests.unit.test_store import enriched

LABELS = ("negative", "neutral", "positive")
CATEGORIES = ("书籍", "electronics", None)
Snapshot = dict[str, list[tuple[str, ...]]]


@pytest.fixture
def store(store_settings: StoreSettings) -> Iterator[Store]:
    s = open_store(store_settings)
    yield s
    s.close()


def events(first: int = 0, count: int = 40, hour: int = 10) -> list[EnrichedReview]:
    """Three products over seven minutes, mixed labels, categories (one missing), ratings."""
    return [
        enriched(
            i,
            f"p{i % 3}",
            LABELS[i % 4 % 3],
            ts=day_at(hour, i % 7, i % 60),
            category=CATEGORIES[i % 5 % 3],
            rating=i % 6 or None,
        )
        for i in range(first, first + count)
    ]


def aggregates(store: Store) -> Snapshot:
    """Every row of the four aggregate tables, read as the queries read them (FINAL)."""
    snapshot = {}
    for table, time_col, _, key in ROLLUP_TARGETS:
        rows = store.backend.query(
            f"SELECT toString({time_col}) AS t, toString({key}) AS k, n, n_negative, n_neutral,"
            " n_positive, rating_sum, rating_n, toString(sentiment_sum) AS s"
            f" FROM {store.db}.{table} FINAL ORDER BY t, k"
        )
        snapshot[table] = [tuple(str(v) for v in row.values()) for row in rows]
    return snapshot


def expected_product_minutes(batch: list[EnrichedReview]) -> list[tuple[str, ...]]:
    """product_minute computed in Python from the distinct events (all but the decimal sum)."""
    cells: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * 6)
    for e in {e.input.event_id: e for e in batch}.values():
        minute = datetime.fromtimestamp(e.input.ts_ms // 60_000 * 60, UTC)
        cell = cells[(sql_time(minute), e.input.product_id)]
        cell[0] += 1
        cell[1 + LABELS.index(e.sentiment.label)] += 1
        cell[4] += e.input.rating or 0
        cell[5] += 1 if e.input.rating else 0
    return [(t, k, *map(str, v)) for (t, k), v in sorted(cells.items())]


def test_replay_in_any_batching_leaves_aggregates_unchanged(store: Store) -> None:
    batch = events()
    store.write(batch)
    first = aggregates(store)
    assert [row[:-1] for row in first["product_minute"]] == expected_product_minutes(batch)
    means = {(r[0], r[1]): Decimal(r[-1]) / int(r[2]) for r in first["product_minute"]}
    assert all(-1 <= m <= 1 for m in means.values())

    store.write(batch)  # the same batch again
    redelivered = [replace(e, processed_at_ms=ms(day_at(11))) for e in batch]
    for cut in (redelivered[::-1][:13], redelivered[13:29], redelivered[5:], redelivered[:1]):
        store.write(cut)  # re-cut, reordered, re-enriched later
    assert aggregates(store) == first
    assert store.count("reviews") == len(batch)


def test_hours_and_categories_roll_up_the_same_events(store: Store) -> None:
    store.write(events(0, 20))
    store.write(events(20, 20))
    snapshot = aggregates(store)
    minute_n = sum(int(r[2]) for r in snapshot["product_minute"])
    assert minute_n == sum(int(r[2]) for r in snapshot["product_hour"]) == 40
    categorized = sum(1 for e in events() if e.input.category)
    assert sum(int(r[2]) for r in snapshot["category_minute"]) == categorized
    assert sum(int(r[2]) for r in snapshot["category_hour"]) == categorized
    assert "" not in {r[1] for r in snapshot["category_minute"]}


def changed_keys(before: Snapshot, after: Snapshot) -> dict[str, set[tuple[str, str]]]:
    return {table: {row[:2] for row in set(after[table]) ^ set(before[table])} for table in after}


def test_late_event_lands_in_its_own_minute_only(store: Store) -> None:
    store.write(events())
    store.write(events(100, 30, hour=11))  # time moves on
    before = aggregates(store)

    late = enriched(999, "p1", "negative", ts=day_at(10, 3, 59), category="书籍")
    store.write([late])
    assert changed_keys(before, aggregates(store)) == {
        "product_minute": {(sql_time(day_at(10, 3)), "p1")},
        "category_minute": {(sql_time(day_at(10, 3)), "书籍")},
        "product_hour": {(sql_time(day_at(10)), "p1")},
        "category_hour": {(sql_time(day_at(10)), "书籍")},
    }

    before = aggregates(store)
    older = enriched(998, "p2", "neutral", ts=day_at(0, -1), category=None)
    store.write([older])  # a minute, hour and day nothing else fell into
    assert changed_keys(before, aggregates(store)) == {
        "product_minute": {(sql_time(day_at(0, -1)), "p2")},
        "category_minute": set(),
        "product_hour": {(sql_time(day_at(-1)), "p2")},
        "category_hour": set(),
    }


def test_reviews_stored_before_the_rollups_are_backfilled(store: Store) -> None:
    """Migrations 002 and 003 roll up what version 1 stored; replaying it changes nothing."""
    store.write(events())
    rolled = aggregates(store)
    for table in ("review_facts", "review_versions", *(t[0] for t in ROLLUP_TARGETS)):
        store.backend.command(f"TRUNCATE TABLE {store.db}.{table}")
    store.backend.command(f"DELETE FROM {store.db}.schema_migrations WHERE version IN (2, 3)")
    assert store.migrate() == [2, 3]
    assert aggregates(store) == rolled
    store.write(events())
    assert aggregates(store) == rolled
