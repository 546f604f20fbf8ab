"""The schema: versioned, idempotent migrations (the ``NNN_name.sql`` files here) and retention.

:func:`migrate` applies, in order, every shipped migration the store has not
recorded in ``schema_migrations``, re-rolls the aggregates after the last
migration that backfilled facts, then sets each table's TTL from settings
(:func:`apply_retention`). Running it again applies nothing and alters nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from importlib import resources

from streams.settings import StoreSettings
from streams.store.backend import Backend
from streams.store.rollup import REBUILD_AFTER, TTLS

log = logging.getLogger(__name__)

MIGRATIONS_TABLE = "schema_migrations"
# The TTL clause in system.tables.engine_full, as ClickHouse formats it.
_TTL_CLAUSE = re.compile(r" TTL (.+?)(?: SETTINGS |$)")


def shipped() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every ``NNN_name.sql`` file shipped in this package."""
    found = []
    for item in resources.files("streams.store").iterdir():
        if item.name.endswith(".sql") and item.name[:3].isdigit():
            found.append((int(item.name[:3]), item.name, item.read_text(encoding="utf-8")))
    return sorted(found)


def _statements(sql: str) -> list[str]:
    lines = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def migrate(backend: Backend, settings: StoreSettings, rebuild: Callable[[], None]) -> list[int]:
    """Apply pending migrations in order, then retention; returns the versions applied now.

    ``rebuild`` re-rolls every aggregate from the facts: it runs once, after the
    last pending migration that backfills facts, on the schema as it then is.
    """
    db = settings.database
    backend.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    backend.command(
        f"CREATE TABLE IF NOT EXISTS {db}.{MIGRATIONS_TABLE} "
        "(version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = ReplacingMergeTree ORDER BY version"
    )
    done = {
        int(r["version"])
        for r in backend.query(f"SELECT version FROM {db}.{MIGRATIONS_TABLE} FINAL")
    }
    applied = []
    pending = [m for m in shipped() if m[0] not in done]
    last_rebuild = max((v for v, _, _ in pending if v in REBUILD_AFTER), default=None)
    for version, name, sql in pending:
        for statement in _statements(sql.replace("{db}", db)):
            backend.command(statement)
        if version == last_rebuild:  # re-roll what it backfilled, on the current schema
            rebuild()
        backend.command(
            f"INSERT INTO {db}.{MIGRATIONS_TABLE} (version, name) VALUES ({version}, '{name}')"
        )
        log.info("store migration %03d %s applied", version, name)
        applied.append(version)
    apply_retention(backend, settings)
    return applied


def apply_retention(backend: Backend, settings: StoreSettings) -> None:
    """Set each table's TTL from settings, altering only tables whose TTL differs.

    An unchanged TTL is left alone: ``MODIFY TTL`` would re-materialize it
    on every part at every start.
    """
    db = settings.database
    rows = backend.query(
        "SELECT name, engine_full FROM system.tables WHERE database = {db:String}", {"db": db}
    )
    current = {r["name"]: _TTL_CLAUSE.search(r["engine_full"]) for r in rows}
    for table, (expr, field) in TTLS.items():
        if table not in current:  # not created yet (a store behind the migrations)
            continue
        want = expr.format(days=int(getattr(settings, field)))
        found = current.get(table)
        if found is None or found[1] != want:
            backend.command(f"ALTER TABLE {db}.{table} MODIFY TTL {want}")
            log.info("store retention of %s: %s", table, want)
