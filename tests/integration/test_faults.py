"""Faults on the real broker: every record ends enriched or dead-lettered, counted once.

Each test ends with :func:`tests.integration.accounting.account`, which prints
``FAULT <name>: sent …, enriched …, dead-lettered …, counted in the store …``
(run with ``-s`` to see them).

Tests with two workers in one consumer group use the ClickHouse server backend
(clickhouse-connect) against the chdb-backed endpoint of streams/tools/clickhouse_http.py:
chdb itself is one process per directory.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from streams.settings import REPO_ROOT, StoreSettings
from streams.store import Store, open_store
from streams.tools.clickhouse_http import ChdbHTTPServer, chdb_http_server
from streams.tools.harness import Namespace, WorkerProcess, free_port
from streams.tools.localkafka import LocalKafka
from tests.integration.accounting import account, review
from tests.integration.kafka_checks import committed_total, produce
from tests.integration.samples import real_reviews

pytestmark = pytest.mark.integration

PARTITIONS = 3


@contextmanager
def server_store(server: ChdbHTTPServer) -> Iterator[Store]:
    store = open_store(StoreSettings(url=server.url, database="rp"))
    try:
        yield store
    finally:
        store.close()


def account_on_server(
    fault: str, ns: Namespace, server: ChdbHTTPServer, worker: WorkerProcess, records: list[bytes]
) -> None:
    """Once the store holds every (valid) record and ``worker`` has settled: account."""
    with server_store(server) as store:
        worker.wait_until(lambda: store.count("reviews") >= len(records), 600, "complete")
        worker.wait_until(worker.settled, 120, "settled")
        account(fault, ns, records, store)


def server_worker(ns: Namespace, server: ChdbHTTPServer, name: str, **env: str) -> WorkerProcess:
    """A worker on the server backend with a data directory of its own."""
    return WorkerProcess(
        ns,
        web_port=free_port(),
        REVIEWPULSE_STORE__URL=server.url,
        REVIEWPULSE_STORE__DATABASE="rp",
        REVIEWPULSE_DATA_DIR=str(ns.data_dir / name),
        **env,
    )


def send(ns: Namespace, records: list[bytes], rate: float | None = None) -> None:
    produce(ns.bootstrap, ns.topic("reviews"), records, rate)


def assigned(ns: Namespace) -> list[int]:
    """Partitions of the input topic held by each member of the group, sorted."""
    admin = AdminClient({"bootstrap.servers": ns.bootstrap, "log_level": 3})
    description = admin.describe_consumer_groups([ns.name])[ns.name].result(timeout=10)
    topic = ns.topic("reviews")
    return sorted(
        sum(1 for tp in m.assignment.topic_partitions if tp.topic == topic)
        for m in description.members
    )


def test_sigkill_one_of_two_workers_rebalances(namespace: Namespace, tmp_path: Path) -> None:
    records = real_reviews(1200)
    with chdb_http_server(tmp_path / "clickhouse") as server:
        a = server_worker(namespace, server, "a")
        b: WorkerProcess | None = None
        try:
            a.wait_ready()  # one at a time: migrations of a fresh database do not run concurrently
            b = server_worker(namespace, server, "b")
            b.wait_ready()
            sender = threading.Thread(target=send, args=(namespace, records, 150.0))
            sender.start()
            a.wait_until(lambda: a.processed() >= 100 and b.processed() >= 100, 300, "sharing")
            a.kill()  # mid-stream: b takes over a's partitions from their last commit
            sender.join()
            account_on_server("sigkill one of two workers", namespace, server, b, records)
        finally:
            a.stop()
            if b is not None:
                b.stop()


def test_broker_stopped_and_restarted_mid_stream(tmp_path: Path) -> None:
    jars = REPO_ROOT / ".reviewpulse" / "kafka" / "jars"
    broker = LocalKafka(
        tmp_path / "kafka", port=free_port(), controller_port=free_port(), jars_root=jars
    )
    broker.start(timeout_s=120)
    ns = Namespace(f"t{uuid.uuid4().hex[:10]}", broker.bootstrap_servers, tmp_path, free_port())
    first, second = real_reviews(900)[:600], real_reviews(900)[600:]
    worker = WorkerProcess(ns)
    try:
        worker.wait_ready()
        send(ns, first)
        worker.wait_until(lambda: worker.processed() >= 150, 300, "part-way")
        broker.stop()
        worker.wait_until(lambda: not worker.get("/readyz")["ready"], 120, "unready")
        broker.start(timeout_s=120)
        send(ns, second)  # events after the restart are processed too
        worker.wait_until(lambda: worker.stored() >= len(first) + len(second), 600, "caught up")
        worker.wait_until(worker.settled, 120, "settled")
        assert worker.stop() == 0
        store = ns.open_store()
        try:
            account("broker stopped and restarted", ns, first + second, store)
        finally:
            store.close()
    finally:
        worker.stop()
        broker.stop()


def test_sigterm_mid_stream_stops_cleanly_and_commits(namespace: Namespace) -> None:
    records = real_reviews(800)
    worker = WorkerProcess(namespace, REVIEWPULSE_SHUTDOWN_TIMEOUT_S="10")
    worker.wait_ready()
    sender = threading.Thread(target=send, args=(namespace, records, 200.0))
    sender.start()
    worker.wait_until(lambda: worker.processed() >= 200, 300, "part-way")
    assert worker.stop(timeout_s=90) == 0, worker.log_tail()  # not the SIGKILL fallback
    sender.join()
    store = namespace.open_store()
    try:
        stored = store.count("reviews")
    finally:
        store.close()
    committed = committed_total(
        namespace.bootstrap, namespace.name, namespace.topic("reviews"), PARTITIONS
    )
    assert 0 < stored < len(records), "the stop must land mid-stream"
    assert committed <= stored, "an offset was committed past a batch that is not stored"

    restarted = WorkerProcess(namespace)
    try:
        restarted.wait_ready()
        restarted.wait_until(lambda: restarted.stored() + stored >= len(records), 600, "done")
        restarted.wait_until(restarted.settled, 120, "settled")
    finally:
        restarted.stop()
    store = namespace.open_store()
    try:
        account("SIGTERM mid-stream", namespace, records, store)
    finally:
        store.close()


def test_sigterm_during_store_outage_stops_within_the_deadline(
    namespace: Namespace, tmp_path: Path
) -> None:
    records = real_reviews(300)
    with chdb_http_server(tmp_path / "clickhouse") as server:
        worker = server_worker(
            namespace, server, "a", REVIEWPULSE_SHUTDOWN_TIMEOUT_S="5", REVIEWPULSE_RETRY__MAX_S="1"
        )
        try:
            worker.wait_ready()
            send(namespace, records[:100])
            worker.wait_until(lambda: worker.stored() >= 100, 300, "stored")
            server.outage = True
            send(namespace, records[100:])
            worker.wait_until(lambda: worker.metrics()["delivery_retries"] >= 2, 120, "retrying")
            # without the deadline the worker waits on the store until it is killed
            assert worker.stop(timeout_s=60) == 0, worker.log_tail()
        finally:
            worker.stop()
        committed = committed_total(
            namespace.bootstrap, namespace.name, namespace.topic("reviews"), PARTITIONS
        )
        assert committed <= 100, "offsets moved past the batch the store never took"
        server.outage = False
        restarted = server_worker(namespace, server, "b")
        try:
            restarted.wait_ready()
            fault = "SIGTERM during a store outage"
            account_on_server(fault, namespace, server, restarted, records)
        finally:
            restarted.stop()


POISON = [
    review(10_000, ts=10**15),
    review(10_001, ts=2**64 - 1),
    review(10_002, ts="0001-01-01T00:00:00+01:00"),
    review(10_003, ts="9999-12-31T23:59:59-01:00"),
    review(10_004, ts="2026-01-01T00:00:00"),  # no zone
    review(10_005, user_id="u" * 1000),
    review(10_006, lang="x" * 1000),
    review(10_007, rating=5.0),
    b'{"event_id": "r-10008", "text": "' + b"y" * 750_000 + b'"',  # invalid, too large
    review(10_009, user_id="u" * 200_000),  # valid JSON, too large
    bytes(range(256)),
]


def test_poison_events_mid_stream(namespace: Namespace) -> None:
    good = [review(i) for i in range(400)]
    records = good[:200] + POISON + good[200:]
    worker = WorkerProcess(namespace)
    try:
        worker.wait_ready()
        send(namespace, records)
        worker.wait_until(lambda: worker.processed() >= len(records), 300, "done")
        later = [review(i) for i in range(400, 450)]
        send(namespace, later)
        worker.wait_until(lambda: worker.stored() >= len(good) + len(later), 300, "later")
        worker.wait_until(worker.settled, 120, "settled")
        assert worker.proc.poll() is None
        assert worker.get("/healthz")["status"] == "ok"
    finally:
        worker.stop()
    store = namespace.open_store()
    try:
        tally = account("poison events mid-stream", namespace, records + later, store)
    finally:
        store.close()
    assert tally.dead_lettered == len(POISON)


def test_rebalance_during_store_outage_does_not_block_the_group(
    namespace: Namespace, tmp_path: Path
) -> None:
    records = real_reviews(400)
    with chdb_http_server(tmp_path / "clickhouse") as server:
        env = {"REVIEWPULSE_RETRY__MAX_S": "1", "REVIEWPULSE_SHUTDOWN_TIMEOUT_S": "5"}
        a = server_worker(namespace, server, "a", **env)
        b: WorkerProcess | None = None
        try:
            a.wait_ready()  # one at a time: migrations of a fresh database do not run concurrently
            b = server_worker(namespace, server, "b", **env)
            b.wait_ready()
            a.wait_until(lambda: assigned(namespace) == [1, 2], 180, "sharing the partitions")
            send(namespace, records[:100])
            a.wait_until(lambda: a.stored() + b.stored() >= 100, 300, "stored")
            server.outage = True
            send(namespace, records[100:])
            a.wait_until(lambda: a.metrics()["delivery_retries"] >= 2, 120, "retrying")
            assert b.stop(timeout_s=60) == 0, b.log_tail()  # leaves the group mid-outage
            # the group rebalances while a's delivery still retries: a owns every partition
            a.wait_until(lambda: assigned(namespace) == [PARTITIONS], 180, "rebalanced")
            assert server.outage
            server.outage = False
            account_on_server("rebalance during a store outage", namespace, server, a, records)
        finally:
            a.stop()
            if b is not None:
                b.stop()


def mutated_events(n: int, seed: int) -> list[bytes]:
    """``n`` records: valid reviews, re-sends with changed fields, and broken ones.

    Serialised with the standard library's json, which writes integers of any size.
    """
    rng = random.Random(seed)
    out: list[bytes] = []
    sent_valid: list[dict[str, object]] = []
    for i in range(n):
        event: dict[str, object] = {
            "event_id": f"m-{i}",
            "product_id": f"p-{rng.randrange(40)}",
            "text": rng.choice(["Great value.", "Broke after a day.", "质量很好", "太差了，退货"]),
            "category": rng.choice(["tops", "shoes", "家电"]),
        }
        kind = rng.random()
        if kind < 0.45:
            if rng.random() < 0.5:
                event["rating"] = rng.randint(1, 5)
            sent_valid.append(event)
            out.append(json.dumps(event).encode())
        elif kind < 0.55 and sent_valid:  # a re-send that moves the event
            again = dict(rng.choice(sent_valid))
            again["product_id"] = f"p-{rng.randrange(40)}"
            again["category"] = rng.choice(["tops", "shoes"])
            out.append(json.dumps(again).encode())
        elif kind < 0.7:
            field = rng.choice(["event_id", "product_id", "text"])
            broken = dict(event)
            broken[field] = rng.choice([None, 7, [], {}, "", " "])
            out.append(json.dumps(broken).encode())
        elif kind < 0.8:
            event[rng.choice(["ts", "rating"])] = rng.choice(
                [-1, 0, 6, 2.5, 10**20, "yesterday", "2026-13-45T00:00:00Z", True]
            )
            out.append(json.dumps(event).encode())
        elif kind < 0.9:
            raw = json.dumps(event).encode()
            cut = rng.randrange(1, len(raw))
            out.append(raw[:cut])
        else:
            out.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))))
    return out


def test_ten_thousand_mutated_events(namespace: Namespace) -> None:
    records = mutated_events(10_000, seed=8)
    worker = WorkerProcess(namespace)
    try:
        worker.wait_ready()
        send(namespace, records)
        worker.wait_until(lambda: worker.processed() >= len(records), 900, "done")
        worker.wait_until(worker.settled, 120, "settled")
        assert worker.proc.poll() is None
        assert worker.get("/healthz")["status"] == "ok"
    finally:
        worker.stop()
    store = namespace.open_store()
    try:
        tally = account("10,000 mutated events", namespace, records, store)
    finally:
        store.close()
    assert tally.enriched > 3000
    assert tally.dead_lettered > 3000
