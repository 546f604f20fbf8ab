"""ClickHouse server backend through clickhouse-connect (HTTP).

Failures are classified by :mod:`streams.store.failures`; no message names the
password or the user info a URL may carry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from streams.errors import StoreError
from streams.store.failures import cause, scrub, store_error


class ServerBackend:
    def __init__(self, url: str, user: str, password: str, database: str) -> None:
        import clickhouse_connect

        self._secrets = (password,)
        self.url = scrub(url)
        try:
            # Connect without a database: the store creates it if missing.
            self._client = clickhouse_connect.get_client(
                dsn=url, username=user, password=password, database="default"
            )
        except Exception as exc:
            raise self._error(f"ClickHouse at {self.url}", exc) from cause(exc, self._secrets)
        self.database = database

    def _error(self, what: str, exc: Exception) -> StoreError:
        return store_error(what, exc, self._secrets)

    def command(self, sql: str) -> None:
        try:
            self._client.command(sql)
        except Exception as exc:
            raise self._error("ClickHouse command", exc) from cause(exc, self._secrets)

    def insert_arrow(self, table: str, data: pa.Table) -> None:
        try:
            self._client.insert_arrow(table, data)
        except Exception as exc:
            what = f"ClickHouse insert into {table}"
            raise self._error(what, exc) from cause(exc, self._secrets)

    def query(self, sql: str, params: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        try:
            result = self._client.query(sql, parameters=dict(params or {}))
        except Exception as exc:
            raise self._error("ClickHouse query", exc) from cause(exc, self._secrets)
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

    def close(self) -> None:
        self._client.close()
