"""The demo: local broker + worker (embedded chdb store) + real sample data → summary.

Starts the local Kafka broker, starts ``reviewpulse worker`` as a child process
on a fresh demo namespace (its own topics, consumer group and chdb directory),
replays the committed sample reviews and questions, waits until every event
was either enriched or dead-lettered, and prints a product health table read
from the worker's HTTP API.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

from streams.localkafka import LocalKafka
from streams.replay import read_records, replay
from streams.settings import REPO_ROOT, Settings

log = logging.getLogger(__name__)
SAMPLES = REPO_ROOT / "deploy" / "demo"


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _worker_env(settings: Settings, run: str) -> dict[str, str]:
    t = settings.kafka.topics
    env = dict(os.environ)
    env.update(
        {
            "REVIEWPULSE_APP_ID": f"reviewpulse-demo-{run}",
            "REVIEWPULSE_KAFKA__BOOTSTRAP": settings.kafka.bootstrap,
            "REVIEWPULSE_KAFKA__TOPICS__REVIEWS": f"demo-{run}.{t.reviews}",
            "REVIEWPULSE_KAFKA__TOPICS__QUESTIONS": f"demo-{run}.{t.questions}",
            "REVIEWPULSE_KAFKA__TOPICS__REVIEWS_ENRICHED": f"demo-{run}.{t.reviews_enriched}",
            "REVIEWPULSE_KAFKA__TOPICS__QUESTIONS_ENRICHED": f"demo-{run}.{t.questions_enriched}",
            "REVIEWPULSE_KAFKA__TOPICS__DEADLETTER": f"demo-{run}.{t.deadletter}",
            "REVIEWPULSE_STORE__PATH": str(settings.data_dir / "demo" / run / "chdb"),
            "REVIEWPULSE_DATA_DIR": str(settings.data_dir / "demo" / run),
        }
    )
    return env


def _wait_for(url: str, done: Any, timeout_s: float, worker: subprocess.Popen[bytes]) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise click.ClickException(f"the worker exited with {worker.returncode}; see its log")
        try:
            body = _get_json(url)
            if done(body):
                return body
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    raise click.ClickException(f"timed out after {timeout_s:.0f}s waiting on {url}")


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
    env = _worker_env(settings, run)
    log_path = settings.data_dir / "demo" / run / "worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    click.echo(f"starting the worker (log: {log_path}) …")
    with log_path.open("wb") as log_file:
        worker = subprocess.Popen(
            [sys.executable, "-m", "streams", "worker"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    base = f"http://{settings.web.host}:{settings.web.port}"
    try:
        _wait_for(f"{base}/readyz", lambda b: b.get("ready"), 180, worker)
        expected = sum(1 for _ in read_records(reviews)) + sum(1 for _ in read_records(questions))
        started = time.monotonic()
        replay(reviews, env["REVIEWPULSE_KAFKA__TOPICS__REVIEWS"], settings.kafka.bootstrap)
        replay(questions, env["REVIEWPULSE_KAFKA__TOPICS__QUESTIONS"], settings.kafka.bootstrap)

        def all_done(m: dict[str, Any]) -> bool:
            seen = sum(m["processed"].values()) + sum(m["dead_letters"].values())
            return bool(seen >= expected)

        metrics = _wait_for(f"{base}/metrics", all_done, timeout_s, worker)
        seconds = time.monotonic() - started
        health = _get_json(f"{base}/api/health?limit=15")
        _print_summary(health["products"], metrics, seconds)
        if keep_running:
            click.echo(
                f"\nworker (pid {worker.pid}) and Kafka keep running; API at {base}/api/health"
            )
            return
    finally:
        if not keep_running:
            worker.terminate()
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
            broker.stop()
