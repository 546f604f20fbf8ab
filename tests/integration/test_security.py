"""Kafka security end to end: a broker with a SASL listener, the service's clients, a worker.

The broker is this module's own (``LocalKafka`` with ``sasl_users``), started in
tmp with the shared jars cache. Right credentials create topics, produce and
consume with every SASL mechanism; a wrong password fails fast with a
``KafkaConfigError`` whose text, like the logs, never holds a password; a
worker configured through ``REVIEWPULSE_KAFKA__SECURITY__*`` consumes and
enriches events over SASL and serves none of Faust's built-in views.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

from streams.errors import KafkaConfigError, TopicSetupError
from streams.service.topics import ensure_topics
from streams.settings import REPO_ROOT, KafkaSecuritySettings
from streams.tools.harness import Namespace, WorkerProcess, free_port
from streams.tools.localkafka import LocalKafka
from streams.tools.replay import replay
from tests.integration.kafka_checks import consume_all

pytestmark = pytest.mark.integration

USER = "reviewpulse"
SAMPLE = REPO_ROOT / "deploy" / "demo" / "reviews.jsonl"


@pytest.fixture(scope="module")
def password() -> str:
    return f"pw-{secrets.token_hex(12)}"


@pytest.fixture(scope="module")
def sasl_kafka(tmp_path_factory: pytest.TempPathFactory, password: str) -> Iterator[LocalKafka]:
    broker = LocalKafka(
        tmp_path_factory.mktemp("kafka-sasl"),
        port=free_port(),
        controller_port=free_port(),
        sasl_port=free_port(),
        sasl_users={USER: password},
        jars_root=REPO_ROOT / ".reviewpulse" / "kafka" / "jars",
    )
    broker.start(timeout_s=120)
    yield broker
    broker.stop()


def sasl(mechanism: str, password: str) -> KafkaSecuritySettings:
    return KafkaSecuritySettings(
        protocol="SASL_PLAINTEXT",
        sasl_mechanism=mechanism,
        sasl_username=USER,
        sasl_password=password,
    )


def write_events(path: Path, n: int) -> Path:
    lines = [ln for ln in SAMPLE.read_bytes().splitlines() if ln.strip()][:n]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def topic_config(kafka: LocalKafka, topic: str) -> dict[str, str]:
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    (future,) = admin.describe_configs([ConfigResource("topic", topic)]).values()
    return {name: entry.value for name, entry in future.result(timeout=30).items()}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_right_credentials_create_produce_and_consume(
    sasl_kafka: LocalKafka, password: str, mechanism: str, tmp_path: Path
) -> None:
    security = sasl(mechanism, password)
    bootstrap = sasl_kafka.sasl_bootstrap_servers
    topic = f"sec-{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, [topic], 2, security=security, min_insync_replicas=1)
    sent = replay(write_events(tmp_path / "in.jsonl", 10), topic, bootstrap, security=security)
    records = consume_all(bootstrap, topic, sent, timeout_s=60, security=security)
    assert sent == len(records) == 10
    assert topic_config(sasl_kafka, topic)["min.insync.replicas"] == "1"


def test_topics_get_the_configured_replication_settings(
    sasl_kafka: LocalKafka, password: str
) -> None:
    security = sasl("PLAIN", password)
    bootstrap = sasl_kafka.sasl_bootstrap_servers
    topic = f"sec-{uuid.uuid4().hex[:8]}"
    # min.insync.replicas is passed through as given (the settings keep it <= RF)
    ensure_topics(bootstrap, [topic], 1, security=security, min_insync_replicas=2)
    assert topic_config(sasl_kafka, topic)["min.insync.replicas"] == "2"
    # three replicas on a one-broker cluster: a configuration error, not a retry
    with pytest.raises(KafkaConfigError, match="replication factor"):
        ensure_topics(bootstrap, [f"{topic}-rf3"], 1, security=security, replication_factor=3)


def test_wrong_password_fails_fast_and_never_shows_a_password(
    sasl_kafka: LocalKafka,
    password: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    wrong = f"wrong-{secrets.token_hex(12)}"
    security = sasl("SCRAM-SHA-256", wrong)
    bootstrap = sasl_kafka.sasl_bootstrap_servers
    source = write_events(tmp_path / "in.jsonl", 5)
    messages = []
    started = time.monotonic()
    with pytest.raises(KafkaConfigError) as created:
        ensure_topics(bootstrap, ["sec-never"], 1, security=security, timeout_s=30)
    assert time.monotonic() - started < 15, "a rejected login must not wait for the timeout"
    messages.append(str(created.value))
    with pytest.raises(KafkaConfigError) as sent:
        replay(source, "sec-never", bootstrap, security=security, progress=False)
    messages.append(str(sent.value))
    with pytest.raises(KafkaConfigError) as consumed:
        consume_all(bootstrap, "sec-never", 1, timeout_s=30, security=security)
    messages.append(str(consumed.value))
    for message in messages:
        assert bootstrap in message and "Authentication failed" in message
    shown = "\n".join([*messages, caplog.text, *capfd.readouterr()])
    assert "SASL authentication error" in shown  # librdkafka's own log lines were captured
    assert wrong not in shown and password not in shown
    assert "**********" in repr(security) and wrong not in repr(security)
    assert password not in (sasl_kafka.home / "broker.log").read_text(errors="replace")


def test_plaintext_client_cannot_use_the_sasl_listener(sasl_kafka: LocalKafka) -> None:
    with pytest.raises(TopicSetupError, match="unreachable"):
        ensure_topics(sasl_kafka.sasl_bootstrap_servers, ["sec-never"], 1, timeout_s=3)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_worker_consumes_and_enriches_over_sasl(
    sasl_kafka: LocalKafka, password: str, tmp_path: Path
) -> None:
    bootstrap = sasl_kafka.sasl_bootstrap_servers
    ns = Namespace(f"s{uuid.uuid4().hex[:10]}", bootstrap, tmp_path, free_port())
    security = sasl("SCRAM-SHA-512", password)
    env = {
        "REVIEWPULSE_KAFKA__SECURITY__PROTOCOL": "SASL_PLAINTEXT",
        "REVIEWPULSE_KAFKA__SECURITY__SASL_MECHANISM": "SCRAM-SHA-512",
        "REVIEWPULSE_KAFKA__SECURITY__SASL_USERNAME": USER,
        "REVIEWPULSE_KAFKA__SECURITY__SASL_PASSWORD": password,
    }
    source = write_events(tmp_path / "in.jsonl", 20)
    want = {json.loads(line)["event_id"] for line in source.read_bytes().splitlines()}
    worker = WorkerProcess(ns, **env)
    try:
        worker.wait_ready()
        replay(source, ns.topic("reviews"), bootstrap, security=security, progress=False)
        worker.wait_until(lambda: worker.stored() >= len(want), 300, "done")
        enriched = consume_all(
            bootstrap, ns.topic("reviews.enriched"), len(want), security=security
        )
        base = f"http://127.0.0.1:{ns.web_port}"
        builtin = {path: _status(base + path) for path in ("/router/", "/table/", "/graph/")}
        ours = _status(base + "/api/health")
    finally:
        worker.stop()
    assert {e["event_id"] for e in enriched} == want
    assert builtin == {"/router/": 404, "/table/": 404, "/graph/": 404}
    assert ours == 200
    assert password not in worker.log_path.read_text(errors="replace")


def test_worker_with_a_wrong_password_stops_with_a_clear_error(
    sasl_kafka: LocalKafka, tmp_path: Path
) -> None:
    wrong = f"wrong-{secrets.token_hex(12)}"
    bootstrap = sasl_kafka.sasl_bootstrap_servers
    ns = Namespace(f"s{uuid.uuid4().hex[:10]}", bootstrap, tmp_path, free_port())
    worker = WorkerProcess(
        ns,
        REVIEWPULSE_KAFKA__SECURITY__PROTOCOL="SASL_PLAINTEXT",
        REVIEWPULSE_KAFKA__SECURITY__SASL_USERNAME=USER,
        REVIEWPULSE_KAFKA__SECURITY__SASL_PASSWORD=wrong,
    )
    try:
        returncode = worker.proc.wait(120)
    finally:
        if worker.proc.poll() is None:
            worker.kill()
    log = worker.log_path.read_text(errors="replace")
    assert returncode != 0
    assert "KafkaConfigError" in log and "Authentication failed" in log, log[-3000:]
    assert wrong not in log
