"""The store interface and the backend port it drives.

:class:`Store` owns the schema (versioned, idempotent migrations), turns
enriched events into columnar Arrow batches and runs the read queries. A
:class:`Backend` only executes statements, inserts Arrow tables and returns
rows; chdb and clickhouse-connect implement it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from importlib import resources
from typing import Any, Protocol

import pyarrow as pa

from streams.errors import StoreError
from streams.settings import StoreSettings

log = logging.getLogger(__name__)

MIGRATIONS_TABLE = "schema_migrations"


class Backend(Protocol):
    """What :class:`Store` needs from a ClickHouse connection."""

    def command(self, sql: str) -> None: ...

    def insert_arrow(self, table: str, data: pa.Table) -> None: ...

    def query(self, sql: str) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


REVIEW_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("product_id", pa.string()),
        ("category", pa.string()),
        ("user_id", pa.string()),
        ("lang", pa.string()),
        ("text", pa.string()),
        ("rating", pa.uint8()),
        ("label", pa.string()),
        ("score", pa.float32()),
        ("p_negative", pa.float32()),
        ("p_neutral", pa.float32()),
        ("p_positive", pa.float32()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("processed_at", pa.timestamp("ms", tz="UTC")),
    ]
)

QUESTION_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("product_id", pa.string()),
        ("user_id", pa.string()),
        ("text", pa.string()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("processed_at", pa.timestamp("ms", tz="UTC")),
    ]
)


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def reviews_to_arrow(events: Sequence[dict[str, Any]]) -> pa.Table:
    """Enriched review events → one columnar batch (no SQL text)."""
    probs = [e["sentiment"]["probs"] for e in events]
    columns: dict[str, list[Any]] = {
        "event_id": [e["event_id"] for e in events],
        "product_id": [e["product_id"] for e in events],
        "category": [e.get("category") or "" for e in events],
        "user_id": [e.get("user_id") or "" for e in events],
        "lang": [e.get("lang") or "" for e in events],
        "text": [e["text"] for e in events],
        "rating": [e.get("rating") or 0 for e in events],
        "label": [e["sentiment"]["label"] for e in events],
        "score": [e["sentiment"]["score"] for e in events],
        "p_negative": [p.get("negative", 0.0) for p in probs],
        "p_neutral": [p.get("neutral", 0.0) for p in probs],
        "p_positive": [p.get("positive", 0.0) for p in probs],
        "model_name": [e["model"]["name"] for e in events],
        "model_version": [e["model"]["version"] for e in events],
        "ts": [_ts(e["ts"]) for e in events],
        "processed_at": [_ts(e["processed_at"]) for e in events],
    }
    return pa.table(columns, schema=REVIEW_SCHEMA)


def questions_to_arrow(events: Sequence[dict[str, Any]]) -> pa.Table:
    """Enriched question events → one columnar batch."""
    columns: dict[str, list[Any]] = {
        "event_id": [e["event_id"] for e in events],
        "product_id": [e["product_id"] for e in events],
        "user_id": [e.get("user_id") or "" for e in events],
        "text": [e["text"] for e in events],
        "model_name": [e["model"]["name"] for e in events],
        "model_version": [e["model"]["version"] for e in events],
        "ts": [_ts(e["ts"]) for e in events],
        "processed_at": [_ts(e["processed_at"]) for e in events],
    }
    return pa.table(columns, schema=QUESTION_SCHEMA)


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every ``NNN_name.sql`` file shipped in this package."""
    found = []
    for item in resources.files("streams.store").iterdir():
        if item.name.endswith(".sql") and item.name[:3].isdigit():
            found.append((int(item.name[:3]), item.name, item.read_text(encoding="utf-8")))
    return sorted(found)


def _statements(sql: str) -> list[str]:
    lines = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


class Store:
    """Writes enriched batches and answers product-health queries."""

    def __init__(self, backend: Backend, database: str) -> None:
        if not database.isidentifier():
            raise StoreError(f"database name {database!r} must be a plain identifier")
        self.backend = backend
        self.db = database

    def migrate(self) -> list[int]:
        """Apply pending migrations in order; returns the versions applied now."""
        db = self.db
        self.backend.command(f"CREATE DATABASE IF NOT EXISTS {db}")
        self.backend.command(
            f"CREATE TABLE IF NOT EXISTS {db}.{MIGRATIONS_TABLE} "
            "(version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
            "ENGINE = ReplacingMergeTree ORDER BY version"
        )
        done = {
            int(r["version"])
            for r in self.backend.query(f"SELECT version FROM {db}.{MIGRATIONS_TABLE} FINAL")
        }
        applied = []
        for version, name, sql in migrations():
            if version in done:
                continue
            for statement in _statements(sql.replace("{db}", db)):
                self.backend.command(statement)
            self.backend.command(
                f"INSERT INTO {db}.{MIGRATIONS_TABLE} (version, name) VALUES ({version}, '{name}')"
            )
            log.info("store migration %03d %s applied", version, name)
            applied.append(version)
        return applied

    def write(self, reviews: Sequence[dict[str, Any]], questions: Sequence[dict[str, Any]]) -> None:
        """Insert one batch of enriched events (columnar, one insert per table)."""
        if reviews:
            self.backend.insert_arrow(f"{self.db}.reviews", reviews_to_arrow(reviews))
        if questions:
            self.backend.insert_arrow(f"{self.db}.questions", questions_to_arrow(questions))

    def event_ids(self, table: str) -> set[str]:
        """Distinct event ids stored in ``reviews`` or ``questions``."""
        if table not in ("reviews", "questions"):
            raise StoreError(f"unknown table {table!r}")
        rows = self.backend.query(f"SELECT DISTINCT event_id FROM {self.db}.{table}")
        return {str(r["event_id"]) for r in rows}

    def count(self, table: str) -> int:
        """Events in ``table``, each counted once however often it was written."""
        if table not in ("reviews", "questions"):
            raise StoreError(f"unknown table {table!r}")
        rows = self.backend.query(f"SELECT count() AS n FROM {self.db}.{table} FINAL")
        return int(rows[0]["n"])

    def product_health(self, limit: int = 10) -> list[dict[str, Any]]:
        """Per product: volume, label shares, mean P(positive) − P(negative), mean rating.

        Sorted by negative share (then volume), the products that need attention first.
        """
        sql = f"""
            SELECT product_id,
                   count() AS volume,
                   countIf(label = 'negative') / volume AS negative,
                   countIf(label = 'neutral') / volume AS neutral,
                   countIf(label = 'positive') / volume AS positive,
                   avg(p_positive - p_negative) AS mean_score,
                   avgIf(rating, rating > 0) AS mean_rating
            FROM {self.db}.reviews FINAL
            GROUP BY product_id
            ORDER BY negative DESC, volume DESC, product_id
            LIMIT {int(limit)}
        """
        return self.backend.query(sql)

    def close(self) -> None:
        self.backend.close()


def open_store(settings: StoreSettings) -> Store:
    """The store for ``settings``: chdb on a local directory, or a ClickHouse server."""
    backend: Backend
    if settings.backend == "clickhouse":
        from streams.store.server import ServerBackend

        if not settings.url:
            raise StoreError("store backend 'clickhouse' needs store.url")
        backend = ServerBackend(
            settings.url, settings.user, settings.password.get_secret_value(), settings.database
        )
    else:
        from streams.store.embedded import ChdbBackend

        backend = ChdbBackend(settings.path)
    store = Store(backend, settings.database)
    store.migrate()
    return store
