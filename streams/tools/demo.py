"""The demo: local broker + worker (embedded chdb store) + real sample data, live.

Prints the worker's page URL, starts the local Kafka broker and
``reviewpulse worker`` as a child process on a fresh demo namespace (its own
topics, consumer group and chdb directory, alert windows of one minute), sends
the committed sample reviews and questions as history (event times over the
past day), waits until every event was enriched or dead-lettered and prints a
product health table. With ``once`` it stops there; otherwise it streams the
sample at ``rate`` events a second with the wall clock as event time, a burst
of negative reviews on one product per cycle (:mod:`streams.tools.demo_feed`),
and prints each alert the worker raises, until Ctrl-C or SIGTERM stops the
worker and the broker.
"""

from __future__ import annotations

import logging
import signal
import time
import urllib.error
from itertools import count
from pathlib import Path
from types import FrameType
from typing import Any

import click
import orjson
from confluent_kafka import Consumer

from streams.errors import WorkerExited, WorkerTimeout
from streams.events.sentiment import NEGATIVE
from streams.service.kafka_config import client_config
from streams.settings import REPO_ROOT, KafkaSecuritySettings, Settings
from streams.tools.demo_feed import ALERTS, Line, alert_env, history, iso, live_cycle, parse_lines
from streams.tools.harness import Namespace, WorkerProcess
from streams.tools.localkafka import LocalKafka
from streams.tools.replay import Sender

log = logging.getLogger(__name__)
SAMPLES = REPO_ROOT / "deploy" / "demo"
CYCLE_S = 120.0  # one spike per cycle; the alert resolves within the cycle
HISTORY_DAYS = 1.0
ALERT_POLL_S = 2.0


def _print_summary(products: list[dict[str, Any]], metrics: dict[str, Any], seconds: float) -> None:
    click.echo()
    click.echo(
        f"Processed {metrics['processed']} · dead letters {metrics['dead_letters']} "
        f"· {seconds:.1f}s"
    )
    click.echo()
    click.echo("Product health (most negative first)")
    header = (
        f"{'product':>8} {'reviews':>7} {'neg':>6} {'neu':>6} {'pos':>6} {'score':>6} {'stars':>5}"
    )
    click.echo(header)
    click.echo("-" * len(header))
    for p in products:
        rating = p.get("mean_rating")
        stars = "    -" if rating is None else f"{rating:5.2f}"
        click.echo(
            f"{p['product_id']:>8} {p['volume']:>7} {p['negative']:>6.1%} {p['neutral']:>6.1%} "
            f"{p['positive']:>6.1%} {p['mean_score']:>+6.2f} {stars}"
        )


def describe_alert(alert: dict[str, Any]) -> str:
    """One line: status, severity, what, the window's counts and the evidence."""
    what = (
        f"product {alert['product_id']} ({alert['category']})"
        if alert["product_id"] is not None
        else f"category {alert['category']}"
    )
    counts, baseline = alert["counts"], alert["baseline"]
    return (
        f"alert {alert['status']} · {alert['severity']} · {what} · "
        f"{counts['negative']}/{counts['n']} negative in {alert['window']['start'][11:16]}–"
        f"{alert['window']['end'][11:16]} UTC (baseline {baseline['share']:.0%}) · "
        f"evidence: {len(alert['evidence'])} reviews"
    )


class AlertWatch:
    """Polls the worker's ``/api/alerts`` and returns each alert event once."""

    def __init__(self, worker: WorkerProcess) -> None:
        self.worker = worker
        self.seen: set[tuple[str, str]] = set()

    def new(self) -> list[dict[str, Any]]:
        self.worker.check_alive()
        found: list[dict[str, Any]] = []
        for status in ("firing", "resolved"):
            try:
                alerts = self.worker.get(f"/api/alerts?status={status}")["alerts"]
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                return found  # busy; the next poll asks again
            for alert in reversed(alerts):  # oldest first
                if (alert["alert_id"], status) not in self.seen:
                    self.seen.add((alert["alert_id"], status))
                    found.append(alert)
        return found


class Clock:
    """Seconds since the demo started, for its status lines."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def echo(self, text: str) -> None:
        click.echo(f"[{time.monotonic() - self.started:6.1f}s] {text}")


def _send_history(
    worker: WorkerProcess,
    ns: Namespace,
    sender: Sender,
    lines: list[Line],
    seed: int,
    timeout_s: float,
) -> dict[str, Any]:
    """Send the history, wait until the store holds it, print the table; the worker's metrics."""
    now_ms = int(time.time() * 1000)
    records = history(lines, now_ms, HISTORY_DAYS, seed)
    started = time.monotonic()
    for r in records:
        sender.send(ns.topic(r.topic), r.key, r.value)
    sender.flush()

    def done() -> dict[str, Any] | None:
        settled = worker.processed() >= len(records) and worker.settled()
        return worker.metrics() if settled else None

    metrics: dict[str, Any] = worker.wait_until(done, timeout_s, "done")
    seconds = time.monotonic() - started
    # seen twice: an empty answer just after the store held every event (cause unknown)
    products = worker.wait_until(
        lambda: worker.get("/api/health?limit=15")["products"], 30, "answering /api/health"
    )
    _print_summary(products, metrics, seconds)
    return metrics


def _scored_negative(ns: Namespace, reviews: int, timeout_s: float) -> frozenset[str]:
    """Event ids of the history's reviews that the worker's model labelled negative.

    Read back from the enriched topic (``reviews`` of them): the spikes reuse
    exactly these texts, so the detector counts every spike review as negative.
    """
    consumer = Consumer(
        {
            **client_config(ns.bootstrap, KafkaSecuritySettings()),
            "group.id": f"{ns.name}-demo",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([ns.topic("reviews.enriched")])
    negative: set[str] = set()
    seen, deadline = 0, time.monotonic() + timeout_s
    try:
        while seen < reviews and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error() or (value := msg.value()) is None:
                continue
            seen += 1
            event = orjson.loads(value)
            if event["sentiment"]["label"] == NEGATIVE:
                negative.add(event["event_id"])
    finally:
        consumer.close()
    if seen < reviews:
        raise WorkerTimeout(f"{seen} of {reviews} enriched reviews read back in {timeout_s:.0f}s")
    return frozenset(negative)


def _stream_live(
    worker: WorkerProcess,
    ns: Namespace,
    sender: Sender,
    lines: list[Line],
    rate: float,
    seed: int,
    clock: Clock,
    sent: int,
    negative: frozenset[str],
) -> None:
    """Cycle after cycle until interrupted; prints each spike planned and each alert seen.

    ``sent``: events sent before (the history), to tell how far the worker lags;
    ``negative``: the reviews the spikes reuse.
    """
    window_ms = min(ALERTS.window_lengths_ms().values())
    watch = AlertWatch(worker)
    start_ms, start = int(time.time() * 1000), time.monotonic()
    next_poll = start
    for index in count():
        cycle_ms = start_ms + round(index * CYCLE_S * 1000)
        spike, records = live_cycle(
            lines,
            index,
            cycle_ms,
            rate=rate,
            cycle_s=CYCLE_S,
            window_ms=window_ms,
            seed=seed,
            negative=negative,
        )
        clock.echo(
            f"live cycle {index}: {len(records)} events at {rate:g}/s; "
            f"{spike.count} negative reviews on product {spike.product_id} in "
            f"{iso(spike.window_start_ms)[11:16]}–{iso(spike.window_end_ms)[11:16]} UTC"
        )
        behind = sent - worker.processed()
        if behind > rate * 10:
            clock.echo(f"the worker is {behind} events behind (alerts come late): lower --rate")
        base = start + index * CYCLE_S
        for r in records:
            while (wait := base + r.at_s - time.monotonic()) > 0:
                if time.monotonic() >= next_poll:
                    for alert in watch.new():
                        clock.echo(describe_alert(alert))
                    next_poll = time.monotonic() + ALERT_POLL_S
                time.sleep(min(wait, 0.2))
            sender.send(ns.topic(r.topic), r.key, r.value)
        sender.flush()
        sent += len(records)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_demo(
    settings: Settings,
    *,
    reviews: Path | None = None,
    questions: Path | None = None,
    once: bool = False,
    rate: float = 20.0,
    seed: int = 0,
    timeout_s: float = 600,
) -> None:
    """The demo; Ctrl-C or SIGTERM at any point stops the worker and the broker."""
    clock = Clock()
    if not once:
        clock.echo(
            f"the page: http://127.0.0.1:{settings.web.port}/ "
            "(up once the worker is ready; Ctrl-C stops the demo)"
        )
    lines = parse_lines("reviews", (reviews or SAMPLES / "reviews.jsonl").read_bytes().splitlines())
    lines += parse_lines(
        "questions", (questions or SAMPLES / "questions.jsonl").read_bytes().splitlines()
    )
    port = int(settings.kafka.bootstrap.rsplit(":", 1)[1])
    broker = LocalKafka(settings.data_dir / "kafka", port=port)
    run = time.strftime("%Y%m%d-%H%M%S")
    ns = Namespace(
        f"demo-{run}", broker.bootstrap_servers, settings.data_dir / "demo" / run, settings.web.port
    )
    worker: WorkerProcess | None = None
    sender: Sender | None = None
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        clock.echo(f"starting Kafka on {broker.bootstrap_servers} …")
        broker.start()
        worker = WorkerProcess(ns, web_port=ns.web_port, **alert_env())
        clock.echo(f"starting the worker (log: {worker.log_path}) …")
        worker.wait_ready()
        clock.echo(f"sending the sample as {HISTORY_DAYS:g} day of history …")
        sender = Sender(ns.bootstrap)
        metrics = _send_history(worker, ns, sender, lines, seed, timeout_s)
        if not once:
            negative = _scored_negative(ns, metrics["processed"]["review"], timeout_s)
            click.echo()
            clock.echo(f"the spikes reuse the {len(negative)} reviews the model scored negative")
            _stream_live(worker, ns, sender, lines, rate, seed, clock, len(lines), negative)
    except KeyboardInterrupt:
        click.echo()
        clock.echo("stopping the worker and Kafka …")
    except (WorkerExited, WorkerTimeout) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        for s in handlers:  # a second Ctrl-C must not cut the shutdown short
            signal.signal(s, signal.SIG_IGN)
        if sender is not None:
            sender.drain(5)
            sender = None  # the producer goes before the broker (no reconnect noise)
        if worker is not None:
            worker.stop(timeout_s=30)
        broker.stop()
        for s, handler in handlers.items():
            signal.signal(s, handler)
