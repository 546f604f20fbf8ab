"""Replay a JSONL or CSV file into a Kafka topic, at a given rate.

JSONL lines are sent byte for byte (a malformed line reaches the worker and
becomes a dead letter, as it would in production). CSV rows are sent as JSON
objects with the CSV header as field names; a ``rating`` column that holds an
integer is sent as a number.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
from confluent_kafka import Producer
from tqdm import tqdm

from streams.errors import DeliveryError
from streams.service.kafka_config import RefusalMonitor, client_config
from streams.settings import KafkaSecuritySettings


def read_records(path: Path) -> Iterator[tuple[bytes | None, bytes]]:
    """(key, value) pairs from a JSONL or CSV file; the key is the product id when known."""
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                event: dict[str, object] = {k: v for k, v in row.items() if v not in (None, "")}
                rating = event.get("rating")
                if isinstance(rating, str) and rating.isdigit():
                    event["rating"] = int(rating)
                key = str(event.get("product_id", "")).encode() or None
                yield key, orjson.dumps(event)
        return
    with path.open("rb") as fh:
        for raw_line in fh:
            line = raw_line.rstrip(b"\r\n")
            if not line.strip():
                continue
            key = None
            try:
                parsed = orjson.loads(line)
                if isinstance(parsed, dict) and isinstance(parsed.get("product_id"), str):
                    key = parsed["product_id"].encode()
            except orjson.JSONDecodeError:
                pass
            yield key, line


class Sender:
    """A producer with acks=all: a refused login raises at once, a failed delivery at flush."""

    def __init__(self, bootstrap: str, security: KafkaSecuritySettings | None = None) -> None:
        self._monitor = RefusalMonitor(bootstrap)
        config = client_config(bootstrap, security or KafkaSecuritySettings())
        self._producer = Producer(
            {**config, "acks": "all", "linger.ms": 5, "error_cb": self._monitor}
        )
        self._errors: list[str] = []
        errors = self._errors

        def on_delivery(err: object, _msg: object) -> None:
            # not a method: a record in flight then holds no reference to the producer,
            # which goes as soon as its Sender does
            if err is not None:
                errors.append(str(err))

        self._on_delivery = on_delivery

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=self._on_delivery)
                break
            except BufferError:
                self._producer.poll(0.1)
                self._monitor.check()
        self._producer.poll(0)
        self._monitor.check()  # a rejected login: stop now, not after the flush timeout

    def drain(self, timeout_s: float) -> int:
        """Deliver what is in flight, for at most ``timeout_s``; how many are left (no raise)."""
        return int(self._producer.flush(timeout_s))

    def flush(self, timeout_s: float = 60) -> None:
        """Wait for the acks; :class:`~streams.errors.DeliveryError` if any is missing or failed."""
        deadline = time.monotonic() + timeout_s
        while (remaining := self._producer.flush(1)) and time.monotonic() < deadline:
            self._monitor.check()
        self._monitor.check()
        if remaining or self._errors:
            raise DeliveryError(
                f"{remaining} records unflushed, {len(self._errors)} failed: {self._errors[:1]}"
            )


def replay(
    path: Path,
    topic: str,
    bootstrap: str,
    *,
    rate: float | None = None,
    limit: int | None = None,
    progress: bool = True,
    security: KafkaSecuritySettings | None = None,
) -> int:
    """Send up to ``limit`` records at up to ``rate`` per second; returns how many were acked.

    ``security`` (default: PLAINTEXT) is the cluster's security settings. Raises
    :class:`~streams.errors.KafkaConfigError` when Kafka rejects the credentials
    and :class:`~streams.errors.DeliveryError` when records are not acknowledged.
    """
    sender = Sender(bootstrap, security)
    sent = 0
    started = time.monotonic()
    with tqdm(desc=f"replay → {topic}", unit="ev", disable=not progress) as bar:
        for key, value in read_records(path):
            if limit is not None and sent >= limit:
                break
            if rate:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
            sender.send(topic, key, value)
            sent += 1
            bar.update(1)
    sender.flush()
    return sent
