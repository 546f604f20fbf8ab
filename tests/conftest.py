"""Shared fixtures: the store on both backends, and a real Kafka broker.

``store_settings`` is parametrized over ``chdb`` (embedded) and ``clickhouse``
(the server backend through clickhouse-connect, against a ClickHouse HTTP
endpoint served by chdb, see ``streams/tools/clickhouse_http.py``). chdb opens one
data directory per process, so each test gets its own endpoint and directory.

``kafka_bootstrap`` starts one broker per test session, from the Apache Kafka
jars (fetched by Maven, cached) on a free loopback port, for the integration
and browser tests; each test gets its own topic namespace, consumer group,
chdb directory and web port (``namespace``). A broker that cannot start fails
the run; nothing here skips.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.settings import REPO_ROOT, StoreSettings
from streams.tools.clickhouse_http import ChdbHTTPServer, chdb_http_server
from streams.tools.harness import Namespace, free_port
from streams.tools.localkafka import LocalKafka


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


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("kafka")
    # jars shared between sessions (Maven's cache is ~/.m2); data, ports and topics are fresh
    jars = REPO_ROOT / ".reviewpulse" / "kafka" / "jars"
    broker = LocalKafka(home, port=free_port(), controller_port=free_port(), jars_root=jars)
    broker.start(timeout_s=120)
    yield broker.bootstrap_servers
    broker.stop()


@pytest.fixture
def namespace(kafka_bootstrap: str, tmp_path: Path) -> Namespace:
    return Namespace(f"t{uuid.uuid4().hex[:10]}", kafka_bootstrap, tmp_path, free_port())
