"""LocalKafka starts a real broker that serves a produce/consume round trip, then stops it.

Needs Java 17+ and Maven. Never skipped: a broker that cannot start fails the test.
"""

from __future__ import annotations

import socket
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from streams.tools.localkafka import LocalKafka

# Shared with the demo's default home (.reviewpulse/kafka), so Maven runs once per checkout.
JARS_ROOT = Path(__file__).resolve().parents[2] / ".reviewpulse" / "kafka" / "jars"


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _round_trip(bootstrap_servers: str, value: bytes) -> bytes | None:
    topic = f"localkafka-{uuid.uuid4().hex[:8]}"
    producer = Producer({"bootstrap.servers": bootstrap_servers})
    producer.produce(topic, value)
    assert producer.flush(30) == 0, "message not delivered"
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": topic,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                return message.value()
        return None
    finally:
        consumer.close()


@pytest.mark.integration
def test_start_round_trip_stop(tmp_path: Path) -> None:
    port, controller_port = _free_ports(2)
    kafka = LocalKafka(
        tmp_path / "kafka", port=port, controller_port=controller_port, jars_root=JARS_ROOT
    )
    kafka.start(timeout_s=120)
    try:
        status = kafka.status()
        assert status.running
        assert status.pid is not None
        assert (status.port, status.home) == (port, tmp_path / "kafka")

        kafka.start()  # already running: returns without a second broker
        assert kafka.status().pid == status.pid

        assert _round_trip(kafka.bootstrap_servers, b"hello") == b"hello"
    finally:
        kafka.stop()

    assert not kafka.status().running
    assert kafka.status().pid is None
    kafka.stop()  # already stopped: a no-op
