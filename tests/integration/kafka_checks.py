"""Reading back what a run left on the broker: a topic's records, a group's committed offsets."""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from streams.service.kafka_config import RefusalMonitor, client_config
from streams.settings import KafkaSecuritySettings


def consume_all(
    bootstrap: str,
    topic: str,
    expected: int,
    timeout_s: float = 120,
    *,
    security: KafkaSecuritySettings | None = None,
    distinct: str | None = None,
) -> list[Any]:
    """Every record of ``topic`` from the start, once ``expected`` arrived and it went quiet.

    With ``distinct`` (a field such as ``event_id``), ``expected`` counts distinct values of
    it: where re-delivery duplicates records, a count of records reaches ``expected`` early.

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
    seen: set[Any] = set()
    deadline = time.monotonic() + timeout_s
    idle_since = None
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            monitor.check()
            if msg is None:
                if (len(seen) if distinct else len(out)) >= expected:
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > 3:
                        break
                continue
            if msg.error():
                continue
            idle_since = None
            out.append(orjson.loads(msg.value()))
            if distinct:
                seen.add(out[-1].get(distinct))
    finally:
        consumer.close()
    return out


def committed_total(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    """The sum of ``group``'s committed offsets over ``topic``'s partitions."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        offsets = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], 10)
    finally:
        consumer.close()
    return sum(max(tp.offset, 0) for tp in offsets)


def produce(bootstrap: str, topic: str, records: list[bytes], rate: float | None = None) -> None:
    """Send ``records`` as they are (any bytes), keyed by product id when there is one,
    at most ``rate`` per second; wait until the broker acknowledged every one."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    failures: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    started = time.monotonic()
    for i, record in enumerate(records):
        key = None
        with contextlib.suppress(orjson.JSONDecodeError):
            value = orjson.loads(record)
            if isinstance(value, dict) and isinstance(value.get("product_id"), str):
                key = value["product_id"].encode()
        while True:
            try:
                producer.produce(topic, record, key=key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        if rate is not None:
            ahead = started + (i + 1) / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    left = producer.flush(120)
    assert left == 0 and not failures, f"{left} records unsent, failures: {failures[:3]}"
