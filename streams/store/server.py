"""ClickHouse server backend through clickhouse-connect (HTTP)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from streams.errors import StoreError, StoreUnavailable


class ServerBackend:
    def __init__(self, url: str, user: str, password: str, database: str) -> None:
        import clickhouse_connect
        from clickhouse_connect.driver.exceptions import OperationalError

        try:
            # Connect without a database: the store creates it if missing.
            self._client = clickhouse_connect.get_client(
                dsn=url, username=user, password=password, database="default"
            )
        except OperationalError as exc:
            raise StoreUnavailable(f"ClickHouse at {url} unreachable: {exc}") from exc
        except Exception as exc:
            raise StoreError(f"ClickHouse at {url}: {exc}") from exc
        self._operational = OperationalError
        self.database = database

    def _guard(self, what: str, exc: Exception) -> StoreError:
        if isinstance(exc, self._operational):
            return StoreUnavailable(f"ClickHouse {what}: {exc}")
        return StoreError(f"ClickHouse {what}: {exc}")

    def command(self, sql: str) -> None:
        try:
            self._client.command(sql)
        except Exception as exc:
            raise self._guard("command", exc) from exc

    def insert_arrow(self, table: str, data: pa.Table) -> None:
        try:
            self._client.insert_arrow(table, data)
        except Exception as exc:
            raise self._guard(f"insert into {table}", exc) from exc

    def query(self, sql: str, params: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        try:
            result = self._client.query(sql, parameters=dict(params or {}))
        except Exception as exc:
            raise self._guard("query", exc) from exc
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

    def close(self) -> None:
        self._client.close()
