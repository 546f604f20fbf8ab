"""The demo: local broker + worker (embedded chdb store) + real sample data → summary.

Starts the local Kafka broker, starts ``reviewpulse worker`` as a child process
on a fresh demo namespace (its own topics, consumer group and chdb directory),
replays the committed sample reviews and questions, waits until every event
was either enriched or dead-lettered, and prints a product health table read
from the worker's HTTP API.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import click

from streams.errors import WorkerExited, WorkerTimeout
from streams.settings import REPO_ROOT, Settings
from streams.tools.harness import Namespace, WorkerProcess
from streams.tools.localkafka import LocalKafka
from streams.tools.replay import read_records, replay

log = logging.getLogger(__name__)
SAMPLES = REPO_ROOT / "deploy" / "demo"


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


def run_demo(
    settings: Settings,
    *,
    reviews: Path | None = None,
    questions: Path | None = None,
    keep_running: bool = False,
    timeout_s: float = 600,
) -> None:
    reviews = reviews or SAMPLES / "reviews.jsonl"
    questions = questions or SAMPLES / "questions.jsonl"
    port = int(settings.kafka.bootstrap.rsplit(":", 1)[1])
    broker = LocalKafka(settings.data_dir / "kafka", port=port)
    click.echo(f"starting Kafka on {broker.bootstrap_servers} …")
    broker.start()

    run = time.strftime("%Y%m%d-%H%M%S")
    ns = Namespace(
        f"demo-{run}", broker.bootstrap_servers, settings.data_dir / "demo" / run, settings.web.port
    )
    worker = WorkerProcess(ns)
    click.echo(f"starting the worker (log: {worker.log_path}) …")
    try:
        worker.wait_ready()
        expected = sum(1 for _ in read_records(reviews)) + sum(1 for _ in read_records(questions))
        started = time.monotonic()
        replay(reviews, ns.topic("reviews"), ns.bootstrap)
        replay(questions, ns.topic("questions"), ns.bootstrap)
        metrics = worker.wait_until(
            lambda: worker.processed() >= expected and worker.metrics(), timeout_s, "done"
        )
        seconds = time.monotonic() - started
        health = worker.get("/api/health?limit=15")
        _print_summary(health["products"], metrics, seconds)
        if keep_running:
            click.echo(
                f"\nworker (pid {worker.proc.pid}) and Kafka keep running; "
                f"API at {worker.base_url}/api/health"
            )
            return
    except (WorkerExited, WorkerTimeout) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        if not keep_running:
            worker.stop(timeout_s=30)
            broker.stop()
