"""Shared fixtures: the store on both backends.

``store_settings`` is parametrized over ``chdb`` (embedded) and ``clickhouse``
(the server backend through clickhouse-connect, against a ClickHouse HTTP
endpoint served by chdb, see ``tests/clickhouse_http.py``). chdb opens one
data directory per process, so each test gets its own endpoint and directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.settings import StoreSettings
from tests.clickhouse_http import ChdbHTTPServer, chdb_http_server


@pytest.fixture
def clickhouse_http(tmp_path: Path) -> Iterator[ChdbHTTPServer]:
    with chdb_http_server(tmp_path / "clickhouse") as server:
        yield server


@pytest.fixture(params=["chdb", "clickhouse"])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreSettings]:
    if request.param == "chdb":
        yield StoreSettings(path=tmp_path / "chdb", database="rp_test")
        return
    server = request.getfixturevalue("clickhouse_http")
    yield StoreSettings(url=server.url, database="rp_test")
