"""Dates for tests that store events, placed relative to the real clock.

ClickHouse applies TTLs against its own clock while it writes and merges, so an
event dated on a fixed day drops out of the store once that day is older than
the retention. Tests that store events date them from :data:`DAY`, the start
of the UTC day two days before the test run, and inject ``now`` into queries
as ``DAY`` plus an offset: the same test gives the same answer on any date,
and under ``faketime`` a year ahead (see the Makefile's ``test-clock`` target).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

DAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)


def day_at(hours: int = 0, minutes: int = 0, seconds: int = 0) -> datetime:
    """``DAY`` + the given time of day (negative values reach into the day before)."""
    return DAY + timedelta(hours=hours, minutes=minutes, seconds=seconds)


def iso_ms(when: datetime) -> str:
    """As the pipeline writes ``ts``: ``2026-11-28T10:00:00.000+00:00``."""
    return when.isoformat(timespec="milliseconds")


def api_time(when: datetime) -> str:
    """As the window API answers: ``2026-11-28T10:16:00Z``."""
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def sql_time(when: datetime) -> str:
    """As ClickHouse's ``toString(DateTime)`` writes it: ``2026-11-28 10:03:00``."""
    return when.strftime("%Y-%m-%d %H:%M:%S")
