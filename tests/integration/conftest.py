"""Integration fixtures: a real Kafka broker started by the test session itself.

The broker runs from the Apache Kafka jars (fetched by Maven, cached) on a free
loopback port. Every test gets its own topic namespace, consumer group, chdb
directory and web port. A broker that cannot start fails the run; nothing here
skips.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.settings import REPO_ROOT
from streams.tools.harness import Namespace, free_port
from streams.tools.localkafka import LocalKafka


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
