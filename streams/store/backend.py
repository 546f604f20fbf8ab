"""The backend port: what the store needs from a ClickHouse connection.

Two implementations: chdb in-process (:mod:`streams.store.embedded`) and a
ClickHouse server through clickhouse-connect (:mod:`streams.store.server`).
A backend only executes statements, inserts Arrow tables and returns rows;
each classifies its failures into the store's errors (:mod:`streams.store.failures`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import pyarrow as pa


class Backend(Protocol):
    """What :class:`Store` needs from a ClickHouse connection."""

    def command(self, sql: str) -> None: ...

    def insert_arrow(self, table: str, data: pa.Table) -> None: ...

    def query(self, sql: str, params: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Rows of ``sql``; ``params`` bind its ``{name:Type}`` placeholders server-side."""
        ...

    def close(self) -> None: ...
