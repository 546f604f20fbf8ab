"""Every event counts once, whatever a re-send changes (property test, both backends).

Random events are written, random subsets re-sent with another ``ts``,
``category``, ``product_id``, label or probabilities, in random batchings and
orders, some writes cut short and redone; every aggregate table (read with
``FINAL``), the raw tables and the counts must equal a recomputation from
scratch under the store's rule: the latest ``processed_at`` wins, ties broken
by the higher content hash.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.errors import StoreUnavailable
from streams.events.enriched import EnrichedReview, reviews_table
from streams.settings import StoreSettings
from streams.store import Store, migrations, open_store
from streams.store.rollup import REVIEW_CONTENT, ROLLUP_TARGETS, content_hashes
from tests.clock import day_at
from tests.events import question_event, review_event

PRODUCTS = ("p0", "p1", "p2")
CATEGORIES = ("books", "toys", None)
LABELS = ("negative", "neutral", "positive")
TABLES = (
    "reviews",
    "questions",
    "review_facts",
    "review_versions",
    "review_writes",
    *(t[0] for t in ROLLUP_TARGETS),
)


@pytest.fixture
def store(store_settings: StoreSettings) -> Iterator[Store]:
    s = open_store(store_settings)
    yield s
    s.close()


@st.composite
def versions(draw: st.DrawFn, event_id: str) -> EnrichedReview:
    """One version of a review: few values per field, so cells and ties collide."""
    label = draw(st.sampled_from(LABELS))
    top = draw(st.sampled_from((0.5, 0.7, 0.9)))
    rest = round((1 - top) / 2, 6)
    # Event times over three days, all in the past and inside the raw retention.
    ts = day_at(draw(st.integers(-20, 46)), draw(st.integers(0, 2)), draw(st.integers(0, 59)))
    return review_event(
        event_id,
        draw(st.sampled_from(PRODUCTS)),
        ts=ts,
        # Few distinct processing times: versions that tie on it are common.
        processed_at=day_at(47, 0, draw(st.integers(0, 2))),
        probs={"negative": rest, "neutral": rest, "positive": rest, label: top},
        text=draw(st.sampled_from(("good", "bad"))),
        rating=draw(st.sampled_from((None, 1, 5))),
        category=draw(st.sampled_from(CATEGORIES)),
    )


@st.composite
def histories(draw: st.DrawFn) -> list[list[EnrichedReview]]:
    """Batches of writes: every event once, re-sends (changed or not), any order and cut."""
    count = draw(st.integers(1, 8))
    written = [draw(versions(f"e{i}")) for i in range(count)]
    for _ in range(draw(st.integers(0, 10))):
        event_id = f"e{draw(st.integers(0, count - 1))}"
        if draw(st.booleans()):
            written.append(draw(versions(event_id)))  # another version
        else:
            same = [v for v in written if v.input.event_id == event_id]
            written.append(draw(st.sampled_from(same)))
    order = draw(st.permutations(written))
    cuts = sorted(draw(st.lists(st.integers(1, max(len(order) - 1, 1)), max_size=4)))
    bounds = [0, *cuts, len(order)]
    return [order[a:b] for a, b in itertools.pairwise(bounds) if order[a:b]]


def winners(written: list[EnrichedReview]) -> dict[str, EnrichedReview]:
    """The store's rule, from scratch: latest processed_at, then the higher content hash."""
    hashes = content_hashes(reviews_table(written), REVIEW_CONTENT).to_pylist()
    best: dict[str, tuple[tuple[int, int], EnrichedReview]] = {}
    for version, digest in zip(written, hashes, strict=True):
        rank = (version.processed_at_ms, digest)
        event_id = version.input.event_id
        if event_id not in best or rank > best[event_id][0]:
            best[event_id] = (rank, version)
    return {event_id: version for event_id, (_, version) in best.items()}


def expected(events: list[EnrichedReview]) -> dict[str, dict[tuple[str, str], tuple[Any, ...]]]:
    """Every aggregate table's rows computed in Python (sentiment sums as floats)."""
    tables: dict[str, dict[tuple[str, str], list[Any]]] = {
        t[0]: defaultdict(lambda: [0, 0, 0, 0, 0, 0, 0.0]) for t in ROLLUP_TARGETS
    }
    for e in events:
        ts = datetime.fromtimestamp(e.input.ts_ms / 1000, UTC)
        minute = ts.replace(second=0, microsecond=0)
        hour = minute.replace(minute=0)
        for table, _, bucket, key in ROLLUP_TARGETS:
            value = e.input.category if key == "category" else e.input.product_id
            if not value:
                continue
            when = hour if bucket.startswith("toStartOfHour") else minute
            cell = tables[table][(when.strftime("%Y-%m-%d %H:%M:%S"), value)]
            cell[0] += 1
            cell[1 + LABELS.index(e.sentiment.label)] += 1
            cell[4] += e.input.rating or 0
            cell[5] += 1 if e.input.rating else 0
            cell[6] += e.sentiment.prob("positive") - e.sentiment.prob("negative")
    return {table: {k: tuple(v) for k, v in cells.items()} for table, cells in tables.items()}


def stored(store: Store) -> dict[str, dict[tuple[str, str], tuple[Any, ...]]]:
    found = {}
    for table, time_col, _, key in ROLLUP_TARGETS:
        rows = store.backend.query(
            f"SELECT toString({time_col}) AS t, toString({key}) AS k, n, n_negative, n_neutral,"
            " n_positive, rating_sum, rating_n, toFloat64(sentiment_sum) AS s"
            f" FROM {store.db}.{table} FINAL"
        )
        found[table] = {
            (r["t"], r["k"]): (
                *(int(r[c]) for c in ("n", "n_negative", "n_neutral", "n_positive")),
                int(r["rating_sum"]),
                int(r["rating_n"]),
                float(r["s"]),
            )
            for r in rows
        }
    return found


class CutShort:
    """A backend that fails (transiently) at its ``fail_at``-th call: a write cut half-way."""

    def __init__(self, backend: Any, fail_at: int) -> None:
        self.backend = backend
        self.calls = 0
        self.fail_at = fail_at

    def _tick(self) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            raise StoreUnavailable("cut short")

    def command(self, sql: str) -> None:
        self._tick()
        self.backend.command(sql)

    def insert_arrow(self, table: str, data: Any) -> None:
        self._tick()
        self.backend.insert_arrow(table, data)

    def query(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        self._tick()
        return list(self.backend.query(sql, params))

    def close(self) -> None:
        self.backend.close()


def assert_matches(store: Store, written: list[EnrichedReview]) -> None:
    won = winners(written)
    want = expected(list(won.values()))
    got = stored(store)
    for table in want:
        assert got[table].keys() == want[table].keys(), table
        for cell, row in want[table].items():
            assert got[table][cell][:6] == row[:6], (table, cell)
            assert got[table][cell][6] == pytest.approx(row[6], abs=1e-5 * row[0]), (table, cell)
    assert store.count("reviews") == len(won)
    assert store.event_ids("reviews") == set(won)
    raw = store.backend.query(
        f"SELECT event_id, product_id, category, text, processed_at FROM {store.db}.reviews FINAL"
    )
    assert {(r["event_id"], r["product_id"], r["category"], r["text"]) for r in raw} == {
        (e.input.event_id, e.input.product_id, e.input.category or "", e.input.text)
        for e in won.values()
    }
    health = {p["product_id"]: p["volume"] for p in store.product_health(limit=100)}
    by_product: dict[str, int] = defaultdict(int)
    for e in won.values():
        by_product[e.input.product_id] += 1
    assert health == by_product


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=histories(), cut=st.none() | st.tuples(st.integers(0, 4), st.integers(1, 12)))
def test_every_event_counts_once_whatever_a_resend_changes(
    store: Store, batches: list[list[EnrichedReview]], cut: tuple[int, int] | None
) -> None:
    for table in TABLES:
        store.backend.command(f"TRUNCATE TABLE {store.db}.{table}")
    for number, batch in enumerate(batches):
        if cut is not None and cut[0] == number:  # this write fails half-way, then is redone
            real = store.backend
            store.backend = CutShort(real, cut[1])
            try:
                store.write(batch)
            except StoreUnavailable:
                pass
            finally:
                store.backend = real
        store.write(batch)
    assert_matches(store, [v for batch in batches for v in batch])


def test_a_resend_moves_the_event(store: Store) -> None:
    first = next_version(product="p1", category="books", minutes=0, second=0)
    moved = next_version(product="p2", category="toys", minutes=90, second=1)
    store.write([first])
    store.write([moved])
    store.write([first])  # the older version again: changes nothing
    assert_matches(store, [first, moved])
    assert store.count("reviews") == 1
    assert [p["product_id"] for p in store.product_health()] == ["p2"]


def test_questions_count_once_per_event(store: Store) -> None:
    question = question_event("q1", "p1", ts=day_at(10), processed_at=day_at(10, 0, 1))
    moved = question_event("q1", "p2", ts=day_at(10), processed_at=day_at(11))
    store.write([question])
    store.write([moved])
    store.write([question])
    assert store.count("questions") == 1
    rows = store.backend.query(f"SELECT product_id FROM {store.db}.questions FINAL")
    assert rows == [{"product_id": "p2"}]


def next_version(*, product: str, category: str, minutes: int, second: int) -> EnrichedReview:
    return review_event(
        "e1",
        product,
        ts=day_at(10) + timedelta(minutes=minutes),
        processed_at=day_at(12, 0, second),
        probs={"negative": 0.1, "neutral": 0.1, "positive": 0.8},
        rating=4,
        category=category,
    )


def test_migration_003_counts_stored_resends_once(
    store_settings: StoreSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store at version 1 that holds an event twice (product changed) ends up counting it once."""
    every = migrations.shipped()
    monkeypatch.setattr(migrations, "shipped", lambda: every[:1])
    old = open_store(store_settings)
    first = next_version(product="p1", category="books", minutes=0, second=0)
    moved = next_version(product="p2", category="toys", minutes=90, second=1)
    old.backend.insert_arrow(f"{old.db}.reviews", reviews_table([first, moved]))
    old.close()

    monkeypatch.setattr(migrations, "shipped", lambda: every)
    store = open_store(store_settings)
    try:
        assert store.migrate() == []
        assert_matches(store, [first, moved])
        assert [p["product_id"] for p in store.product_health()] == ["p2"]
    finally:
        store.close()
