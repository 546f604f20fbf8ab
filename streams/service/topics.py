"""Create the service's topics up front (clear errors instead of auto-create races)."""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from streams.errors import KafkaConfigError, TopicSetupError
from streams.service.kafka_config import REFUSAL_CODES, RefusalMonitor, client_config
from streams.settings import KafkaSecuritySettings

log = logging.getLogger(__name__)

# Besides refusals of the client itself, topic settings the cluster will never accept.
_CONFIG_ERRORS = REFUSAL_CODES | {
    KafkaError.INVALID_REPLICATION_FACTOR,
    KafkaError.INVALID_CONFIG,
    KafkaError.POLICY_VIOLATION,
}
_METADATA_POLL_S = 1.0


def ensure_topics(
    bootstrap: str,
    names: list[str],
    partitions: int,
    *,
    security: KafkaSecuritySettings | None = None,
    replication_factor: int = 1,
    min_insync_replicas: int = 1,
    timeout_s: float = 30,
) -> None:
    """Create each topic in ``names`` that does not exist yet.

    New topics get ``partitions``, ``replication_factor`` and
    ``min.insync.replicas``; an existing topic with fewer replicas than asked
    for is left as it is, with a warning. Raises :class:`KafkaConfigError`
    as soon as Kafka refuses the client (authentication, TLS, authorisation)
    or the topic settings, and :class:`TopicSetupError` when it cannot be
    reached in ``timeout_s`` or a topic cannot be created for another reason.
    Messages name the bootstrap servers, never credentials.
    """
    monitor = RefusalMonitor(bootstrap)
    config: dict[str, Any] = {
        **client_config(bootstrap, security or KafkaSecuritySettings()),
        "error_cb": monitor,
    }
    admin = AdminClient(config)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            metadata = admin.list_topics(
                timeout=max(min(_METADATA_POLL_S, deadline - time.monotonic()), 0.1)
            )
            break
        except KafkaException as exc:
            admin.poll(0)  # serves error_cb: a rejected login shows up only there
            monitor.check()
            if time.monotonic() >= deadline:
                raise TopicSetupError(f"Kafka at {bootstrap} unreachable: {exc}") from exc
    for name in dict.fromkeys(names):
        topic = metadata.topics.get(name)
        if topic is None or not topic.partitions:
            continue
        replicas = min(len(p.replicas) for p in topic.partitions.values())
        if replicas < replication_factor:
            log.warning(
                "topic %s exists with %d replicas, fewer than the %d configured; left as it is",
                name,
                replicas,
                replication_factor,
            )
    missing = [n for n in dict.fromkeys(names) if n not in metadata.topics]
    if not missing:
        return
    config = {"min.insync.replicas": str(min_insync_replicas)}
    futures = admin.create_topics(
        [NewTopic(n, partitions, replication_factor, config=config) for n in missing]
    )
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
            log.info(
                "created topic %s (%d partitions, %d replicas, min.insync.replicas %d)",
                name,
                partitions,
                replication_factor,
                min_insync_replicas,
            )
        except KafkaException as exc:
            error = exc.args[0]
            code = error.code() if isinstance(error, KafkaError) else None
            if code == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            message = f"cannot create topic {name} on {bootstrap}: {exc}"
            if code in _CONFIG_ERRORS:
                raise KafkaConfigError(message) from exc
            raise TopicSetupError(message) from exc
