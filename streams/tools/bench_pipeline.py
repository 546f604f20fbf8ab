"""``reviewpulse bench``: model-only vs end-to-end throughput, side by side in one run.

1. Model only: the worker's scorer on the texts, in micro-batches of the
   configured size (tokenise → ONNX → softmax), no Kafka, no store.
2. End to end: the same texts as review events, pre-loaded into a fresh topic;
   a worker subprocess consumes, scores, produces enriched events (awaiting
   Kafka acks) and writes the store. Timed from its first scored batch to the
   moment every event is in the store, read from the worker's /metrics.json.
3. End to end again on a fresh topic while a thread reads the product views
   (``/api/products``, ``/api/health``) at ``api_rps`` requests a second:
   API reads run on their own pool, so ingestion should hardly notice.
4. Model only again, so drift on a shared machine shows up.
5. Latency under load (:mod:`streams.tools.latency`): the texts arriving at a
   steady 50 % and 90 % of the measured model-only maximum, micro-batched with
   the worker's ``batch.max_size`` / ``batch.within_s``; p50/p95/p99 from arrival
   to scored (the scoring path in process: no Kafka, no store).

The dedup cache is off throughout (the sample's reviews repeat). Prints JSON
with the throughputs, end-to-end / model-only, end-to-end with API load /
without, and the latency percentiles.
"""

from __future__ import annotations

import os
import platform
import threading
import time
import urllib.request
from typing import Any

import onnxruntime as ort
import orjson

from streams.service.app import load_scorer
from streams.service.batching import BatchController
from streams.service.topics import ensure_topics
from streams.settings import Settings
from streams.tools.harness import Namespace, WorkerProcess
from streams.tools.latency import latencies_under_load, percentiles_ms
from streams.tools.localkafka import LocalKafka
from streams.tools.replay import replay
from streams.tools.samples import review_events


def uncached(settings: Settings) -> Settings:
    """``settings`` with the dedup cache off: the sample's reviews repeat, and the
    benchmark measures the model."""
    model = settings.model.model_copy(update={"cache_size": 0})
    return settings.model_copy(update={"model": model})


def model_only(settings: Settings, texts: list[str]) -> float:
    """Reviews per second through the scorer alone, in the worker's batch size."""
    scorer = load_scorer(uncached(settings))
    size = settings.batch.max_size
    scorer.score(texts[:size])  # warm-up
    started = time.perf_counter()
    for i in range(0, len(texts), size):
        scorer.score(texts[i : i + size])
    return len(texts) / (time.perf_counter() - started)


class ApiLoad:
    """GETs the product views at ``rate`` per second from a thread, counting answers."""

    PATHS = ("/api/products?window=24h&limit=50", "/api/health?limit=50")

    def __init__(self, base_url: str, rate: float) -> None:
        self.base_url = base_url
        self.rate = rate
        self.answered = 0
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ApiLoad:
        if self.rate > 0:
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        started = time.monotonic()
        sent = 0
        while not self._stop.is_set():
            path = self.PATHS[sent % len(self.PATHS)]
            try:
                with urllib.request.urlopen(self.base_url + path, timeout=10) as response:
                    response.read()
                self.answered += 1
            except OSError:
                self.failed += 1
            sent += 1
            self._stop.wait(max(0.0, started + sent / self.rate - time.monotonic()))


def end_to_end(
    settings: Settings, events: list[dict[str, Any]], run: str, api_rps: float = 0
) -> tuple[float, ApiLoad]:
    """Reviews per second through Kafka → worker → enriched topic + store, while
    ``api_rps`` API requests a second read the store."""
    data_dir = settings.data_dir / "bench" / run
    ns = Namespace(f"bench-{run}", settings.kafka.bootstrap, data_dir, settings.web.port)
    ns.data_dir.mkdir(parents=True, exist_ok=True)
    source = ns.data_dir / "events.jsonl"
    source.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
    topic = ns.topic("reviews")
    ensure_topics(settings.kafka.bootstrap, [topic], settings.kafka.topics.partitions)
    replay(source, topic, settings.kafka.bootstrap, progress=False)  # pre-load the topic

    worker = WorkerProcess(ns, REVIEWPULSE_MODEL__CACHE_SIZE="0")  # see uncached()
    load = ApiLoad(worker.base_url, api_rps)
    try:
        worker.wait_ready()
        load.__enter__()
        first = worker.wait_until(
            lambda: (time.perf_counter(), worker.processed()) if worker.processed() else None,
            1800,
            "scoring",
            poll_s=0.05,
        )
        last = worker.wait_until(
            lambda: time.perf_counter() if worker.stored() >= len(events) else None,
            1800,
            "done",
            poll_s=0.05,
        )
    finally:
        load.__exit__()
        worker.stop()
    started_at, already = first
    return (len(events) - int(already)) / (float(last) - float(started_at)), load


def latency_at_load(
    settings: Settings, texts: list[str], max_per_s: float, seconds: float
) -> dict[str, Any]:
    """p50/p95/p99 from arrival to scored at 50 % and 90 % of ``max_per_s``, events
    arriving at a steady rate for ``seconds`` and micro-batched as the worker does:
    with fixed limits (``max_size`` / ``within_s``) and with the adaptive controller
    (``latency_target_ms``, 250 when the settings turn it off), one after the other."""
    scorer = load_scorer(uncached(settings))
    target = settings.batch.latency_target_ms or 250.0
    modes = {
        "fixed": settings.batch.model_copy(update={"latency_target_ms": 0}),
        f"adaptive_{target:g}ms": settings.batch.model_copy(update={"latency_target_ms": target}),
    }
    out: dict[str, Any] = {}
    for share in (0.5, 0.9):
        rate = max_per_s * share
        sample = texts[: max(1, min(len(texts), int(rate * seconds)))]
        row: dict[str, Any] = {"per_s": round(rate, 1), "events": len(sample)}
        for mode, batch in modes.items():
            controller = BatchController(batch)
            latencies = latencies_under_load(scorer.score, sample, rate, controller)
            row[mode] = percentiles_ms(latencies) | {"last_size_limit": controller.limits.size}
        out[f"{round(share * 100)}%"] = row
    return out


def run_bench(
    settings: Settings, n: int = 3000, api_rps: float = 20, latency_s: float = 20
) -> dict[str, Any]:
    port = int(settings.kafka.bootstrap.rsplit(":", 1)[1])
    broker = LocalKafka(settings.data_dir / "kafka", port=port)
    broker.start()
    try:
        events = review_events(n)
        texts = [e["text"] for e in events]
        before = model_only(settings, texts)
        run = time.strftime("%Y%m%d-%H%M%S")
        e2e, _ = end_to_end(settings, events, run)
        loaded, load = end_to_end(settings, events, f"{run}-api", api_rps)
        after = model_only(settings, texts)
    finally:
        broker.stop()
    model = (before + after) / 2
    latency = latency_at_load(settings, texts, model, latency_s) if latency_s > 0 else None
    return {
        "events": n,
        "batch_max": settings.batch.max_size,
        "sub_batch": settings.model.sub_batch,
        "max_tokens": settings.model.max_tokens,
        "model_package": str(settings.model.package),
        "model_only_per_s": {"before": round(before, 1), "after": round(after, 1)},
        "end_to_end_per_s": round(e2e, 1),
        "ratio_end_to_end_over_model": round(e2e / model, 3),
        "latency_under_load": latency,
        "api_load": {
            "requests_per_s": api_rps,
            "answered": load.answered,
            "failed": load.failed,
            "end_to_end_per_s": round(loaded, 1),
            "ratio_with_over_without": round(loaded / e2e, 3),
        },
        "onnxruntime": ort.__version__,
        "providers": [settings.model.device],
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
    }
