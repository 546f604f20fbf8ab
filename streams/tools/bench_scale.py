"""``reviewpulse bench scale``: two workers in one consumer group against one.

Both on the ClickHouse server backend (clickhouse-connect), the only store
several workers can share: chdb, the embedded backend, opens its directory from
one process. No ClickHouse server is installed on the development machine, so
the endpoint is :mod:`streams.tools.clickhouse_http` (chdb serving the
ClickHouse HTTP interface) in this process.

Each run, 1 or 2 workers:

1. A fresh namespace (topics, consumer group) and a fresh database. The input
   topic gets ``partitions`` partitions (default 4, an even split between two
   workers; with 3, one worker holds two partitions and does 2/3 of the work).
2. The workers start one at a time: the first migrates the fresh database, the
   next starts once the first is ready (migrations are not safe concurrently).
   Worker k is pinned to core k (``os.sched_setaffinity``), with one
   onnxruntime intra-op thread (``MODEL__INTRA_OP_THREADS=1``) and the dedup
   cache off (the sample's reviews repeat; the benchmark measures the model).
3. The events are produced only once the group has settled: every worker is
   ready and holds its share of the input partitions. A pre-loaded topic would
   let the first worker consume alone until the second joined and the
   rebalance took half its partitions away, so the two-worker time would mix a
   one-worker phase and a rebalance into the measurement.
4. Event i goes to partition i mod ``partitions``, keyed by its event id: the
   sample's product ids are skewed (one product has 1/12 of the events), so
   product keys would give one worker more work and measure the hashing.
5. Timed from the first scored batch of any worker until every event is in the
   store (the workers' ``stored`` counters, /metrics.json); the rate counts the
   events processed after that first observation. Each run also reports, per
   worker, the events it processed, the cores its threads may run on, the CPU
   time it used while timed and its share of one core (``core_share`` under 1:
   something else ran on its core), the CPU time of this process (the
   ClickHouse endpoint, the producer, the polls) and of the rest of the machine
   (the broker, anyone else's jobs) in the same window, the events per CPU-second
   of the workers (equal in both runs if the workers themselves scale, whatever
   share of their cores they got), and the store's row count and distinct
   events at the end (every event once).

Runs alternate 1, 2, 1, 2 … (``rounds`` pairs) so drift on a shared machine
hits both; the ratio is taken per pair, then the median. ``os.getloadavg()``
before each run shows what else the machine was doing. On a 2-core machine the
broker, the ClickHouse endpoint and the producer share the two cores with the
pinned workers: the one-worker run leaves them a core, the two-worker run does
not, so the ratio measured there is bounded by the CPU left to the workers.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnxruntime as ort
import orjson
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient

from streams.service.topics import ensure_topics
from streams.settings import Settings, StoreSettings
from streams.store import open_store
from streams.tools.clickhouse_http import chdb_http_server
from streams.tools.harness import Namespace, WorkerProcess, free_port
from streams.tools.localkafka import LocalKafka
from streams.tools.samples import review_events

NOTE = (
    "The broker, the ClickHouse HTTP endpoint (chdb, in the benchmark's process) and the "
    "producer are not pinned: with one worker they have a core to themselves, with two "
    "workers on a 2-core machine they compete with the workers."
)


@dataclass
class ScaleSetup:
    """What every run shares: the broker, the ClickHouse endpoint, the cores, the input."""

    bootstrap: str
    clickhouse_url: str
    data_dir: Path
    partitions: int = 4
    cores: list[int] = field(default_factory=lambda: sorted(os.sched_getaffinity(0)))
    env: dict[str, str] = field(default_factory=dict)  # more worker settings


@dataclass
class GroupRun:
    """One run's result."""

    workers: int
    events: int
    per_s: float
    seconds: float
    timed_events: int  # events processed after the first look, over ``seconds``
    processed: list[int]  # per worker
    cpu_s: list[float]  # per worker: CPU time used while timed
    bench_cpu_s: float  # this process (ClickHouse endpoint, producer, polls) while timed
    machine_busy_s: float  # every core's busy time while timed, everyone's processes
    stored: list[int]  # per worker
    cpus: list[list[int]]  # per worker: the cores its threads may run on
    store_rows: int
    store_distinct: int
    loadavg_before: tuple[float, float, float]
    loadavg_after: tuple[float, float, float]
    namespace: Namespace
    database: str

    @property
    def per_cpu_s(self) -> float:
        """Events per CPU-second the workers used: how efficiently they scored, whatever
        share of their cores they got."""
        return self.timed_events / sum(self.cpu_s)

    def report(self) -> dict[str, Any]:
        return {
            "workers": self.workers,
            "per_s": round(self.per_s, 2),
            "seconds": round(self.seconds, 2),
            "per_worker_cpu_s": round(self.per_cpu_s, 2),
            "per_worker": [
                {
                    "cpus": c,
                    "processed": p,
                    "stored": s,
                    "cpu_s": round(t, 2),
                    "core_share": round(t / self.seconds, 3),
                }
                for c, p, s, t in zip(
                    self.cpus, self.processed, self.stored, self.cpu_s, strict=True
                )
            ],
            "cpu_s_while_timed": {
                "workers": round(sum(self.cpu_s), 2),
                "clickhouse_endpoint_and_bench": round(self.bench_cpu_s, 2),
                "rest_of_machine": round(
                    self.machine_busy_s - sum(self.cpu_s) - self.bench_cpu_s, 2
                ),
                "cores_busy": round(self.machine_busy_s / self.seconds, 2),
            },
            "store_rows": self.store_rows,
            "store_distinct_events": self.store_distinct,
            "loadavg_before": [round(x, 2) for x in self.loadavg_before],
            "loadavg_after": [round(x, 2) for x in self.loadavg_after],
        }


def machine_busy_s() -> float:
    """CPU time all cores spent busy since boot (/proc/stat: everything but idle and iowait)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """CPU time of this process: the ClickHouse endpoint's threads, the producer, the polls."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def produce_spread(
    bootstrap: str, topic: str, events: list[dict[str, Any]], partitions: int
) -> None:
    """Send event i to partition i mod ``partitions``, keyed by its event id; wait for acks."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    failures: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    for i, event in enumerate(events):
        value = orjson.dumps(event)
        key = str(event["event_id"]).encode()
        while True:
            try:
                producer.produce(
                    topic, value, key=key, partition=i % partitions, on_delivery=on_delivery
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(120)
    if left or failures:
        raise RuntimeError(f"{left} events unsent, failures: {failures[:3]}")


def assignment(bootstrap: str, group: str, topic: str) -> list[int]:
    """Partitions of ``topic`` held by each member of ``group``, sorted ([] while the
    broker cannot say yet, e.g. its group coordinator is still loading)."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    try:
        description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    except KafkaException:
        return []
    return sorted(
        sum(1 for tp in m.assignment.topic_partitions if tp.topic == topic)
        for m in description.members
    )


def balanced(counts: list[int], workers: int, partitions: int) -> bool:
    """Every worker in the group, holding its share of the partitions."""
    return (
        len(counts) == workers
        and sum(counts) == partitions
        and max(counts) - min(counts) <= 1
        and min(counts) > 0
    )


@contextmanager
def started_group(
    setup: ScaleSetup, ns: Namespace, database: str, workers: int
) -> Iterator[list[WorkerProcess]]:
    """``workers`` workers of ``ns``'s group, started one at a time; stopped on exit."""
    env = {
        "REVIEWPULSE_STORE__URL": setup.clickhouse_url,
        "REVIEWPULSE_STORE__DATABASE": database,
        "REVIEWPULSE_MODEL__CACHE_SIZE": "0",
        "REVIEWPULSE_MODEL__INTRA_OP_THREADS": "1",
        "REVIEWPULSE_KAFKA__TOPICS__PARTITIONS": str(setup.partitions),
        **setup.env,
    }
    with ExitStack() as stack:
        group: list[WorkerProcess] = []
        for k in range(workers):
            worker = WorkerProcess(
                ns,
                web_port=free_port(),
                REVIEWPULSE_DATA_DIR=str(ns.data_dir / f"worker-{k}"),
                **env,
            )
            worker.pin({setup.cores[k % len(setup.cores)]})
            stack.callback(worker.stop)
            group.append(worker)
            worker.wait_ready()  # the first migrates the fresh database alone
        yield group


def run_group(setup: ScaleSetup, events: list[dict[str, Any]], workers: int, name: str) -> GroupRun:
    """Start ``workers`` workers, wait for the group to settle, produce ``events``, time them."""
    ns = Namespace(f"scale-{name}", setup.bootstrap, setup.data_dir / name, free_port())
    database = f"scale_{name}".replace("-", "_")
    topic = ns.topic("reviews")
    ensure_topics(setup.bootstrap, [topic], setup.partitions)
    n = len(events)
    loadavg = os.getloadavg()
    with started_group(setup, ns, database, workers) as group:
        first = group[0]
        first.wait_until(
            lambda: balanced(
                assignment(setup.bootstrap, ns.name, topic), workers, setup.partitions
            ),
            180,
            "balanced",
        )
        produce_spread(setup.bootstrap, topic, events, setup.partitions)

        def processed() -> int:
            return sum(w.processed() for w in group)

        def stored() -> int:
            return sum(w.stored() for w in group)

        def alive_check(check: Any) -> Any:
            for w in group[1:]:
                w.check_alive()
            return check()

        def cpu() -> list[float]:
            """Each worker's CPU time, then this process's, then the machine's busy time."""
            return [*(w.cpu_seconds() for w in group), own_cpu_s(), machine_busy_s()]

        started_at, already, cpu_at_start = first.wait_until(
            lambda: alive_check(
                lambda: (time.perf_counter(), processed(), cpu()) if processed() else None
            ),
            1800,
            "scoring",
            poll_s=0.05,
        )
        done_at, cpu_at_done = first.wait_until(
            lambda: alive_check(lambda: (time.perf_counter(), cpu()) if stored() >= n else None),
            1800,
            "done",
            poll_s=0.2,  # each poll costs the workers a /metrics.json; ≤ 0.2 s of a 40 s+ run
        )
        per_worker = [w.metrics() for w in group]
        cpus = [w.cpus() for w in group]
        loadavg_after = os.getloadavg()
    store = open_store(StoreSettings(url=setup.clickhouse_url, database=database))
    try:
        rows = store.count("reviews")
        distinct = len(store.event_ids("reviews"))
    finally:
        store.close()
    seconds = float(done_at) - float(started_at)
    used = [b - a for a, b in zip(cpu_at_start, cpu_at_done, strict=True)]
    if int(already) >= n:
        raise RuntimeError(
            f"all {n} events were scored before the first look: too few to time "
            f"(use many more than {workers} × the batch size)"
        )
    return GroupRun(
        workers=workers,
        events=n,
        per_s=(n - int(already)) / seconds,
        seconds=seconds,
        timed_events=n - int(already),
        processed=[int(sum(m["processed"].values())) for m in per_worker],
        stored=[int(sum(m["stored"].values())) for m in per_worker],
        cpu_s=used[:workers],
        bench_cpu_s=used[workers],
        machine_busy_s=used[workers + 1],
        cpus=cpus,
        store_rows=rows,
        store_distinct=distinct,
        loadavg_before=loadavg,
        loadavg_after=loadavg_after,
        namespace=ns,
        database=database,
    )


def compare(setup: ScaleSetup, events: list[dict[str, Any]], rounds: int) -> dict[str, Any]:
    """Alternate one and two workers ``rounds`` times; the runs, the ratio per pair, the median."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    runs: list[GroupRun] = []
    pairs: list[dict[str, float]] = []
    for r in range(rounds):
        one = run_group(setup, events, 1, f"{stamp}-r{r}-w1")
        two = run_group(setup, events, 2, f"{stamp}-r{r}-w2")
        runs += [one, two]
        pairs.append(
            {
                "one_per_s": round(one.per_s, 2),
                "two_per_s": round(two.per_s, 2),
                "ratio": round(two.per_s / one.per_s, 3),
                "ratio_per_worker_cpu_s": round(two.per_cpu_s / one.per_cpu_s, 3),
            }
        )
    return {
        "runs": [run.report() for run in runs],
        "pairs": pairs,
        "median_ratio": round(statistics.median(p["ratio"] for p in pairs), 3),
    }


def run_scale_bench(
    settings: Settings, n: int = 2000, rounds: int = 2, partitions: int = 4
) -> dict[str, Any]:
    """A local broker and ClickHouse endpoint, then :func:`compare`; the report as JSON-ready."""
    port = int(settings.kafka.bootstrap.rsplit(":", 1)[1])
    root = settings.data_dir / "bench" / f"scale-{time.strftime('%Y%m%d-%H%M%S')}"
    broker = LocalKafka(settings.data_dir / "kafka", port=port)
    broker.start()
    try:
        with chdb_http_server(root / "clickhouse") as server:
            setup = ScaleSetup(settings.kafka.bootstrap, server.url, root, partitions)
            result = compare(setup, review_events(n), rounds)
    finally:
        broker.stop()
    return {
        "events": n,
        "partitions": partitions,
        "rounds": rounds,
        "batch_max": settings.batch.max_size,
        "model_package": str(settings.model.package),
        "intra_op_threads": 1,
        **result,
        "note": NOTE,
        "onnxruntime": ort.__version__,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
    }
