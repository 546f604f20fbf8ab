"""``reviewpulse bench``: model-only vs end-to-end throughput, side by side in one run.

1. Model only: the worker's scorer on the texts, in micro-batches of the
   configured size (tokenise → ONNX → softmax), no Kafka, no store.
2. End to end: the same texts as review events, pre-loaded into a fresh topic;
   a worker subprocess consumes, scores, produces enriched events (awaiting
   Kafka acks) and writes the store. Timed from its first scored batch to the
   moment every event is in the store, read from the worker's /metrics.
3. Model only again, so drift on a shared machine shows up.

Prints JSON with both throughputs and end-to-end / model-only.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import onnxruntime as ort
import orjson

from streams.app import load_scorer
from streams.localkafka import LocalKafka
from streams.replay import replay
from streams.settings import REPO_ROOT, Settings
from streams.topics import ensure_topics

SAMPLE = REPO_ROOT / "deploy" / "demo" / "reviews.jsonl"


def _texts(path: Path, n: int) -> list[dict[str, Any]]:
    events = []
    for line in path.read_bytes().splitlines():
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(event, dict) and str(event.get("event_id", "")).startswith("clothing-"):
            events.append(event)  # the real reviews, not the sample's malformed lines
    return [dict(events[i % len(events)], event_id=f"bench-{i}") for i in range(n)]


def model_only(settings: Settings, texts: list[str]) -> float:
    """Reviews per second through the scorer alone, in the worker's batch size."""
    scorer = load_scorer(settings)
    size = settings.batch.max_size
    scorer.score(texts[:size])  # warm-up
    started = time.perf_counter()
    for i in range(0, len(texts), size):
        scorer.score(texts[i : i + size])
    return len(texts) / (time.perf_counter() - started)


def _metrics(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        loaded: dict[str, Any] = json.loads(response.read())
        return loaded


def end_to_end(settings: Settings, events: list[dict[str, Any]], run: str) -> float:
    """Reviews per second through Kafka → worker → enriched topic + store."""
    topic = f"bench-{run}.reviews"
    data_dir = settings.data_dir / "bench" / run
    data_dir.mkdir(parents=True, exist_ok=True)
    source = data_dir / "events.jsonl"
    source.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
    ensure_topics(settings.kafka.bootstrap, [topic], settings.kafka.topics.partitions)
    replay(source, topic, settings.kafka.bootstrap, progress=False)  # pre-load the topic

    env = dict(os.environ)
    env.update(
        {
            "REVIEWPULSE_APP_ID": f"bench-{run}",
            "REVIEWPULSE_KAFKA__TOPICS__REVIEWS": topic,
            "REVIEWPULSE_KAFKA__TOPICS__QUESTIONS": f"bench-{run}.questions",
            "REVIEWPULSE_KAFKA__TOPICS__REVIEWS_ENRICHED": f"bench-{run}.reviews.enriched",
            "REVIEWPULSE_KAFKA__TOPICS__QUESTIONS_ENRICHED": f"bench-{run}.questions.enriched",
            "REVIEWPULSE_KAFKA__TOPICS__DEADLETTER": f"bench-{run}.deadletter",
            "REVIEWPULSE_STORE__PATH": str(data_dir / "chdb"),
            "REVIEWPULSE_DATA_DIR": str(data_dir),
        }
    )
    port = settings.web.port
    with (data_dir / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "streams", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        first: tuple[float, int] | None = None
        last: float | None = None
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                raise RuntimeError(f"bench worker exited; see {data_dir / 'worker.log'}")
            try:
                m = _metrics(port)
            except OSError:
                time.sleep(0.5)
                continue
            stored = sum(m["stored"].values())
            if first is None and sum(m["processed"].values()) > 0:
                first = time.perf_counter(), sum(m["processed"].values())
            if stored >= len(events):
                last = time.perf_counter()
                break
            time.sleep(0.05)
        if first is None or last is None:
            raise RuntimeError("bench worker did not finish in time")
    finally:
        worker.terminate()
        worker.wait(60)
    started_at, already = first
    return float(len(events) - already) / (last - started_at)


def run_bench(settings: Settings, n: int = 3000) -> dict[str, Any]:
    port = int(settings.kafka.bootstrap.rsplit(":", 1)[1])
    broker = LocalKafka(settings.data_dir / "kafka", port=port)
    broker.start()
    try:
        events = _texts(SAMPLE, n)
        texts = [e["text"] for e in events]
        before = model_only(settings, texts)
        e2e = end_to_end(settings, events, time.strftime("%Y%m%d-%H%M%S"))
        after = model_only(settings, texts)
    finally:
        broker.stop()
    model = (before + after) / 2
    return {
        "events": n,
        "batch_max": settings.batch.max_size,
        "sub_batch": settings.model.sub_batch,
        "model_package": str(settings.model.package),
        "model_only_per_s": {"before": round(before, 1), "after": round(after, 1)},
        "end_to_end_per_s": round(e2e, 1),
        "ratio_end_to_end_over_model": round(e2e / model, 3),
        "onnxruntime": ort.__version__,
        "providers": [settings.model.device],
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
    }
