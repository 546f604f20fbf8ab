"""Where did every input record go? The check every fault test ends with.

Each record sent must be on the enriched topic (by ``event_id``) or on the
dead-letter topic (by the sha256 of its original bytes), and every enriched
event must be counted exactly once in the store: raw rows and the all-time
aggregates alike.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from streams.store import Store
from streams.tools.harness import Namespace
from tests.integration.kafka_checks import consume_all


@dataclass(frozen=True)
class Tally:
    fault: str
    sent: int
    enriched: int
    dead_lettered: int
    stored: int

    def line(self) -> str:
        return (
            f"FAULT {self.fault}: sent {self.sent}, enriched {self.enriched}, "
            f"dead-lettered {self.dead_lettered}, counted in the store {self.stored}"
        )


def _event_id(record: bytes) -> str | None:
    try:
        value = orjson.loads(record)
    except orjson.JSONDecodeError:
        return None
    event_id = value.get("event_id") if isinstance(value, dict) else None
    return event_id if isinstance(event_id, str) else None


def account(fault: str, ns: Namespace, sent: list[bytes], store: Store) -> Tally:
    """Match every sent record to its enriched event or dead letter; check the store."""
    enriched = consume_all(ns.bootstrap, ns.topic("reviews.enriched"), 0, timeout_s=300)
    dead = consume_all(ns.bootstrap, ns.topic("deadletter"), 0, timeout_s=300)
    enriched_ids = {e["event_id"] for e in enriched}
    dead_digests: dict[str, int] = {}
    for letter in dead:
        digest = letter["original_sha256"]
        dead_digests[digest] = dead_digests.get(digest, 0) + 1

    unaccounted: list[bytes] = []
    dead_lettered = 0
    for record in sent:
        digest = hashlib.sha256(record).hexdigest()
        if dead_digests.get(digest, 0) > 0:
            dead_digests[digest] -= 1
            dead_lettered += 1
        elif _event_id(record) not in enriched_ids:
            unaccounted.append(record[:200])
    assert not unaccounted, f"{len(unaccounted)} records neither enriched nor dead-lettered"
    assert not any(dead_digests.values()), "dead letters for records that were never sent"

    stored = store.count("reviews")
    assert store.event_ids("reviews") == enriched_ids
    assert stored == len(enriched_ids), "an event is counted more than once in the store"
    volume = sum(int(p["volume"]) for p in store.product_health(limit=1_000_000))
    assert volume == stored, f"aggregates count {volume} reviews, raw rows {stored}"
    tally = Tally(fault, len(sent), len(enriched_ids), dead_lettered, stored)
    print(tally.line())
    return tally


def review(i: int, **fields: Any) -> bytes:
    """A valid review event, ``fields`` overriding the defaults."""
    event = {
        "event_id": f"r-{i}",
        "product_id": f"p-{i % 7}",
        "text": f"The fabric is soft and the fit is true to size, order {i}.",
        "rating": 1 + i % 5,
    }
    event.update(fields)
    return orjson.dumps(event)
