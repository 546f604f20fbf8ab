"""The store goes away mid-stream: the worker retries, commits nothing past it, loses nothing.

The worker uses the ClickHouse server backend (clickhouse-connect) against the
chdb-backed HTTP endpoint of streams/tools/clickhouse_http.py, running in this test
process, which can drop every connection on demand.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from streams.tools.clickhouse_http import chdb_http_server
from streams.tools.harness import Namespace, WorkerProcess
from streams.tools.replay import replay
from tests.integration.kafka_checks import committed_total, consume_all
from tests.integration.samples import real_reviews, write_jsonl

pytestmark = pytest.mark.integration


def stored_ids(server_url: str, database: str) -> set[str]:
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=server_url, database=database)
    try:
        rows = client.query(f"SELECT DISTINCT event_id FROM {database}.reviews").result_rows
    finally:
        client.close()
    return {r[0] for r in rows}


def test_store_outage_pauses_commits_and_resumes_without_loss(
    namespace: Namespace, tmp_path: Path
) -> None:
    events = real_reviews(300)
    before, during = events[:100], events[100:]
    with chdb_http_server(tmp_path / "clickhouse") as server:
        worker = WorkerProcess(
            namespace,
            REVIEWPULSE_STORE__URL=server.url,
            REVIEWPULSE_STORE__DATABASE="rp",
            REVIEWPULSE_RETRY__MAX_S="2",
        )
        try:
            worker.wait_ready()
            topic = namespace.topic("reviews")
            replay(
                write_jsonl(tmp_path / "a.jsonl", before),
                topic,
                namespace.bootstrap,
                progress=False,
            )
            worker.wait_until(lambda: worker.stored() >= len(before), 300, "stored")

            server.outage = True
            replay(
                write_jsonl(tmp_path / "b.jsonl", during),
                topic,
                namespace.bootstrap,
                progress=False,
            )
            worker.wait_until(lambda: worker.metrics()["delivery_retries"] >= 3, 120, "retrying")
            assert worker.get("/readyz")["store_ok"] is False
            time.sleep(6)  # > two of Faust's commit intervals (2.8 s)
            partitions = 3
            assert committed_total(namespace.bootstrap, namespace.name, topic, partitions) <= len(
                before
            ), "offsets were committed past batches that are not in the store"
            assert worker.stored() == len(before)
            assert worker.proc.poll() is None, "the worker must keep running through the outage"

            server.outage = False
            worker.wait_until(lambda: worker.stored() >= len(events), 300, "resumed")
            worker.wait_until(worker.settled, 60, "settled")
            assert worker.get("/readyz")["store_ok"] is True
            enriched = consume_all(
                namespace.bootstrap, namespace.topic("reviews.enriched"), len(events)
            )
        finally:
            worker.stop()
        want = {json.loads(e)["event_id"] for e in events}
        assert {e["event_id"] for e in enriched} == want
        assert stored_ids(server.url, "rp") == want
        assert committed_total(namespace.bootstrap, namespace.name, topic, 3) == len(events)
