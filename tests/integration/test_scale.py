"""``reviewpulse bench scale`` at a tiny size, on the real broker: one round of one worker,
then two in one consumer group (ClickHouse server backend, the chdb-backed endpoint of
streams/tools/clickhouse_http.py). No timing is asserted: the machine is shared."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.tools.bench_scale import ScaleSetup, compare
from streams.tools.clickhouse_http import ChdbHTTPServer
from streams.tools.samples import review_events

pytestmark = pytest.mark.integration

EVENTS = 60


def test_two_workers_share_the_events_each_stored_once(
    kafka_bootstrap: str, clickhouse_http: ChdbHTTPServer, tmp_path: Path
) -> None:
    setup = ScaleSetup(
        kafka_bootstrap,
        clickhouse_http.url,
        tmp_path / "scale",
        partitions=4,
        env={"REVIEWPULSE_BATCH__MAX_SIZE": "4"},  # many batches, so there is a time to take
    )
    report = compare(setup, review_events(EVENTS), rounds=1)

    one, two = report["runs"]
    assert [one["workers"], two["workers"]] == [1, 2]
    for run in (one, two):
        assert run["store_rows"] == run["store_distinct_events"] == EVENTS  # each once
        assert sum(w["processed"] for w in run["per_worker"]) >= EVENTS  # at least once
        assert run["per_s"] > 0
    # both workers of the group consumed (4 partitions, 2 each, event i on partition i mod 4)
    assert all(w["processed"] > 0 for w in two["per_worker"]), two
    # each worker on one core of its own
    cores = [w["cpus"] for w in two["per_worker"]]
    assert all(len(c) == 1 for c in cores) and cores[0] != cores[1]
    assert one["per_worker"][0]["cpus"] == cores[0]
    assert len(report["pairs"]) == 1 and report["median_ratio"] == report["pairs"][0]["ratio"]
