"""chdb backend: the ClickHouse engine in-process, on a local data directory.

A data directory can be opened by one process at a time; the worker that owns
it also answers the dashboard's queries. Failures are classified by
:mod:`streams.store.failures` (a directory locked by another process is
transient). Inserts go through chdb's
``Python(table)`` table function, which reads the Arrow batch columnar.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from streams.store.failures import cause, store_error


def _escaped(params: Mapping[str, str]) -> dict[str, str]:
    """Query parameters in ClickHouse's escaped text form, as chdb (like HTTP) expects them."""
    return {k: re.sub(r"([\\\t\n\r'`])", r"\\\1", v) for k, v in params.items()}


class ChdbBackend:
    def __init__(self, path: Path) -> None:
        from chdb import session

        try:
            path.mkdir(parents=True, exist_ok=True)
            self._session = session.Session(str(path))
        except Exception as exc:  # chdb raises plain RuntimeError/Exception
            raise store_error(f"cannot open chdb directory {path}", exc) from exc
        self._lock = threading.Lock()  # one statement at a time per session
        self.path = path

    def _run(self, sql: str, fmt: str = "CSV", params: Mapping[str, str] | None = None) -> Any:
        with self._lock:
            try:
                return self._session.query(sql, fmt, params=_escaped(params or {}))
            except Exception as exc:  # chdb raises plain RuntimeError/Exception
                raise store_error("chdb", exc) from cause(exc)

    def command(self, sql: str) -> None:
        self._run(sql)

    def insert_arrow(self, table: str, data: pa.Table) -> None:
        batch = data  # referenced by name from the SQL below
        columns = ", ".join(data.column_names)
        with self._lock:
            try:
                self._session.query(
                    f"INSERT INTO {table} ({columns}) SELECT {columns} FROM Python(batch)"
                )
            except Exception as exc:
                raise store_error(f"chdb insert into {table}", exc) from cause(exc)
        del batch

    def query(self, sql: str, params: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        result = self._run(sql, "JSONEachRow", params)
        text = result.bytes() if hasattr(result, "bytes") else bytes(str(result), "utf-8")
        return [orjson.loads(line) for line in text.splitlines() if line.strip()]

    def close(self) -> None:
        with self._lock:
            self._session.close()
