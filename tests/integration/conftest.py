"""Integration fixtures: a real Kafka broker started by the test session itself.

The broker runs from the Apache Kafka jars (fetched by Maven, cached) on a free
loopback port. Every test gets its own topic namespace, consumer group, chdb
directory and web port. A broker that cannot start fails the run; nothing here
skips.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from streams.kafka_config import RefusalMonitor, client_config
from streams.localkafka import LocalKafka
from streams.settings import REPO_ROOT, KafkaSecuritySettings, Settings, StoreSettings
from streams.store import Store, open_store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("kafka")
    # jars shared between sessions (Maven's cache is ~/.m2); data, ports and topics are fresh
    jars = REPO_ROOT / ".reviewpulse" / "kafka" / "jars"
    broker = LocalKafka(home, port=free_port(), controller_port=free_port(), jars_root=jars)
    broker.start(timeout_s=120)
    yield broker.bootstrap_servers
    broker.stop()


@dataclass
class Namespace:
    """Topics, group, store and web port of one test."""

    name: str
    bootstrap: str
    data_dir: Path
    web_port: int

    def topic(self, base: str) -> str:
        return f"{self.name}.{base}"

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "REVIEWPULSE_APP_ID": self.name,
                "REVIEWPULSE_DATA_DIR": str(self.data_dir),
                "REVIEWPULSE_KAFKA__BOOTSTRAP": self.bootstrap,
                "REVIEWPULSE_KAFKA__TOPICS__REVIEWS": self.topic("reviews"),
                "REVIEWPULSE_KAFKA__TOPICS__QUESTIONS": self.topic("questions"),
                "REVIEWPULSE_KAFKA__TOPICS__REVIEWS_ENRICHED": self.topic("reviews.enriched"),
                "REVIEWPULSE_KAFKA__TOPICS__QUESTIONS_ENRICHED": self.topic("questions.enriched"),
                "REVIEWPULSE_KAFKA__TOPICS__DEADLETTER": self.topic("deadletter"),
                "REVIEWPULSE_STORE__PATH": str(self.data_dir / "chdb"),
                "REVIEWPULSE_WEB__PORT": str(self.web_port),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(extra)
        return env

    def settings(self) -> Settings:
        return Settings(_env_file=None, **_nested(self.env()))  # type: ignore[call-arg]

    def open_store(self) -> Store:
        return open_store(StoreSettings(path=self.data_dir / "chdb"))


def _nested(env: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in env.items():
        if not key.startswith("REVIEWPULSE_"):
            continue
        parts = key.removeprefix("REVIEWPULSE_").lower().split("__")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


@pytest.fixture
def namespace(kafka_bootstrap: str, tmp_path: Path) -> Namespace:
    return Namespace(f"t{uuid.uuid4().hex[:10]}", kafka_bootstrap, tmp_path, free_port())


class WorkerProcess:
    """``python -m streams worker`` in a child process, with its log in the test's tmp dir."""

    def __init__(self, ns: Namespace, **env: str) -> None:
        self.ns = ns
        self.log_path = ns.data_dir / f"worker-{time.monotonic_ns()}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streams", "worker"],
                env=ns.env(**env),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
            )

    def get(self, path: str) -> Any:
        url = f"http://127.0.0.1:{self.ns.web_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return orjson.loads(response.read())
        except urllib.error.HTTPError as exc:  # /readyz answers 503 with a JSON body
            return orjson.loads(exc.read())

    def wait_ready(self, timeout_s: float = 120) -> None:
        self.wait_until(lambda: bool(self.get("/readyz")["ready"]), timeout_s, "ready")

    def wait_until(self, check: Any, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                if check():
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError):
                pass
            time.sleep(0.5)
        raise AssertionError(f"worker not {what} after {timeout_s}s:\n{self.log_tail()}")

    def processed(self) -> int:
        m = self.get("/metrics")
        return int(sum(m["processed"].values()) + sum(m["dead_letters"].values()))

    def stored(self) -> int:
        return int(sum(self.get("/metrics")["stored"].values()))

    def settled(self) -> bool:
        """Every event this worker processed is in the store (no batch in flight)."""
        m = self.get("/metrics")
        return 0 < sum(m["processed"].values()) == sum(m["stored"].values())

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


def consume_all(
    bootstrap: str,
    topic: str,
    expected: int,
    timeout_s: float = 120,
    *,
    security: KafkaSecuritySettings | None = None,
) -> list[Any]:
    """Every record of ``topic`` from the start, once ``expected`` arrived and it went quiet.

    Raises ``KafkaConfigError`` if the broker rejects ``security``'s credentials.
    """
    monitor = RefusalMonitor(bootstrap)
    consumer = Consumer(
        {
            **client_config(bootstrap, security or KafkaSecuritySettings()),
            "group.id": f"check-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "error_cb": monitor,
        }
    )
    consumer.subscribe([topic])
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    idle_since = None
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            monitor.check()
            if msg is None:
                if len(out) >= expected:
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > 3:
                        break
                continue
            if msg.error():
                continue
            idle_since = None
            out.append(orjson.loads(msg.value()))
    finally:
        consumer.close()
    return out


__all__ = ["Namespace", "TopicPartition", "WorkerProcess", "consume_all", "free_port"]
