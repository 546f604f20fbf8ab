"""Create the service's topics up front (clear errors instead of auto-create races)."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from streams.errors import DeliveryError

log = logging.getLogger(__name__)


def ensure_topics(bootstrap: str, names: list[str], partitions: int, timeout_s: float = 30) -> None:
    """Create each topic in ``names`` that does not exist yet."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as exc:
        raise DeliveryError(f"Kafka at {bootstrap} unreachable: {exc}") from exc
    missing = [n for n in dict.fromkeys(names) if n not in existing]
    if not missing:
        return
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in missing]
    )
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
            log.info("created topic %s (%d partitions)", name, partitions)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise DeliveryError(f"cannot create topic {name}: {exc}") from exc
