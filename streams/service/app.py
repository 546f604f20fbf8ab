"""Explicit wiring: settings → model, store, topics, agents, web views.

:func:`build_worker` creates everything the worker needs when it starts;
nothing is created at import time and there is no module-level app.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from models.errors import ModelError
from models.questions import KB_FILE, QuestionPackage, check_encoder, load_question_package
from models.runtime import open_scorer
from models.scorer import Scorer
from streams.alerts import AlertEvent
from streams.alerts.alertmanager import alertmanager_alert, post_alerts
from streams.service.agents import register_agent
from streams.service.alerting import AlertMonitor, AlertPublisher
from streams.service.broker_probe import BrokerProbe, admin_client
from streams.service.health import Health
from streams.service.kafka_config import client_config, faust_credentials
from streams.service.knowledge import KnowledgeBase
from streams.service.metrics import Metrics, faust_consumer_lag
from streams.service.pipeline import BatchProcessor, Kind, Stats
from streams.service.shadow import RollOut, open_shadow
from streams.service.sink import Backoff, BatchSink, ProducerTopic
from streams.service.topics import ensure_topics
from streams.settings import Settings
from streams.store import Store, open_store
from streams.store.alerts import AlertStore
from streams.web.api import register_views
from streams.web.live import LiveFeed
from streams.web.page import consumer_lag, register_page

log = logging.getLogger(__name__)


def load_scorer(settings: Settings) -> Scorer:
    """The review scorer from the configured model package (hash-checked)."""
    cfg = settings.model
    return open_scorer(
        cfg.package,
        device=cfg.device,
        threads=cfg.intra_op_threads,
        sub_batch=cfg.sub_batch,
        max_tokens=cfg.max_tokens,
        cache_size=cfg.cache_size,
        verify=cfg.verify_hash,
    )


def load_questions(settings: Settings, scorer: Scorer) -> QuestionPackage | None:
    """The question package (hash-checked), or None when questions are not scored.

    Refused (ModelError, the worker does not start) when it is missing or broken, or
    was built on another encoder than the review model's.
    """
    cfg = settings.questions
    if not cfg.enabled:
        log.info("question model off: questions pass through without intent")
        return None
    try:
        package = load_question_package(cfg.package, verify=cfg.verify_hash)
        check_encoder(package, scorer.package)
    except ModelError as exc:
        raise type(exc)(
            f"question model {cfg.package}: {exc} (REVIEWPULSE_QUESTIONS__PACKAGE; the "
            f"package must be built on the review model {scorer.package.name} "
            f"{scorer.package.version}, or set REVIEWPULSE_QUESTIONS__ENABLED=false)"
        ) from exc
    log.info(
        "question model %s %s on encoder %s", package.name, package.version, scorer.package.name
    )
    return package


def load_knowledge_base(
    settings: Settings,
    package: QuestionPackage | None,
    scorer: Scorer,
    metrics: Metrics | None = None,
) -> KnowledgeBase | None:
    """The KB file named in settings, embedded into ``package``; None when none is named.

    Refused (ModelError, the worker does not start) when the file cannot be used.
    """
    path = settings.questions.knowledge_base
    if package is None or path is None:
        return None
    try:
        return KnowledgeBase(path, package, scorer, metrics)
    except ModelError as exc:
        raise type(exc)(
            f"knowledge base {exc} (REVIEWPULSE_QUESTIONS__KNOWLEDGE_BASE; fix the file, or "
            f"unset it to answer from the package's own knowledge base)"
        ) from exc


def register_knowledge_reload(
    app: faust.App,
    knowledge: KnowledgeBase,
    processor: BatchProcessor,
    executor: ThreadPoolExecutor,
    interval_s: float,
) -> None:
    """Check the KB file on a timer, on every worker (each one answers from its own copy).

    The check, the embedding and the swap run on the scoring thread, between batches.
    """

    def reload() -> None:
        package = knowledge.check()
        if package is not None:
            processor.use_questions(package)

    async def tick() -> None:
        await asyncio.get_running_loop().run_in_executor(executor, reload)

    app.timer(interval_s, on_leader=False, name="knowledge_base_reload")(tick)


def register_broker_probe(app: faust.App, settings: Settings, health: Health) -> None:
    """Probe the brokers on a timer, on every worker, on a thread of its own."""
    kafka = settings.kafka
    probe = BrokerProbe(
        admin_client(client_config(kafka.bootstrap, kafka.security)), health, kafka.probe_timeout_s
    )
    thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="broker-probe")

    async def tick() -> None:
        await asyncio.get_running_loop().run_in_executor(thread, probe.check)

    app.timer(kafka.probe_interval_s, on_leader=False, name="broker_probe")(tick)


@dataclass
class Worker:
    app: faust.App
    store: Store
    stats: Stats
    sink: BatchSink
    executors: tuple[ThreadPoolExecutor, ...]

    def close(self) -> None:
        for executor in self.executors:
            executor.shutdown(wait=True)
        self.store.close()


def create_app(settings: Settings) -> faust.App:
    """The Faust app: brokers and credentials, topic defaults, web server (our views only)."""
    k = settings.kafka
    datadir = settings.data_dir / "faust"
    datadir.mkdir(parents=True, exist_ok=True)  # Faust expects it to exist
    return faust.App(
        settings.app_id,
        broker=f"kafka://{k.bootstrap}",
        broker_credentials=faust_credentials(k.security),
        autodiscover=False,
        store="memory://",
        datadir=str(datadir),
        topic_partitions=k.topics.partitions,
        topic_replication_factor=k.topics.replication_factor,
        producer_request_timeout=k.producer_request_timeout_s,
        producer_acks=-1,
        broker_max_poll_records=k.max_poll_records,
        stream_buffer_maxsize=4 * settings.batch.max_size,
        consumer_auto_offset_reset="earliest",
        # On a rebalance or a stop, Faust by default waits until every event it
        # handed out is acked. A delivery retrying through a store outage acks
        # nothing, so that wait blocked the whole group's rebalance and made
        # SIGTERM hang. The agent bounds its own wait (shutdown_timeout_s); an
        # unacked batch is simply delivered again from the last commit.
        stream_wait_empty=False,
        web_host=settings.web.host,
        web_port=settings.web.port,
        web_in_thread=False,
        # Faust's built-in views expose table data (/table), the cluster's worker
        # URLs (/router), sensor counters and partition assignment (/, /assignment)
        # and the service graph (/graph). The service serves only its own views.
        web_router_enabled=False,
        web_tables_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=False,
    )


def build_worker(settings: Settings) -> Worker:
    """Load the model, open and migrate the store, create topics, register agents."""
    k = settings.kafka
    t = k.topics
    ensure_topics(
        k.bootstrap,
        [
            t.reviews,
            t.questions,
            t.reviews_enriched,
            t.questions_enriched,
            t.deadletter,
            settings.alerts.topic,
        ],
        t.partitions,
        security=k.security,
        replication_factor=t.replication_factor,
        min_insync_replicas=t.min_insync_replicas,
    )
    scorer = load_scorer(settings)
    metrics = Metrics(CollectorRegistry())
    questions = load_questions(settings, scorer)
    shadow = open_shadow(settings, metrics)
    knowledge = load_knowledge_base(settings, questions, scorer, metrics)
    if knowledge is not None:
        questions = knowledge.package
    elif questions is not None:
        metrics.knowledge_base_live(
            str(questions.root / KB_FILE),
            str(questions.manifest.get("sha256", {}).get(KB_FILE, "")),
            len(questions.model.faq.entries),
        )
    store = open_store(settings.store)
    app = create_app(settings)
    # One scoring thread (onnxruntime runs its own intra-op threads) and one store
    # thread, so the store write of one batch overlaps the scoring of the next.
    scoring = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scoring")
    store_io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
    # API reads on threads of their own: ingestion writes never queue behind a query.
    api_io = ThreadPoolExecutor(max_workers=settings.web.api_threads, thread_name_prefix="api")
    stats = Stats()
    health = Health()
    metrics.model_loaded("sentiment", scorer.package.name, scorer.package.version, scorer.device)
    if questions is not None:
        metrics.model_loaded("questions", questions.name, questions.version, scorer.device)
    if shadow is not None:
        metrics.model_loaded(
            "shadow", shadow.model.name, shadow.model.version, shadow.scorer.device
        )
    metrics.watch_lag(lambda: faust_consumer_lag(app.consumer))
    if scorer.cache is not None:
        cache = scorer.cache
        metrics.watch_cache(lambda: (cache.hits, cache.misses, len(cache)))
    feed = LiveFeed()

    def raw_topic(name: str) -> faust.TopicT:
        return app.topic(
            name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )

    sink = BatchSink(
        store,
        store_io,
        enriched={
            "review": ProducerTopic(app, t.reviews_enriched),
            "question": ProducerTopic(app, t.questions_enriched),
        },
        deadletter=ProducerTopic(app, t.deadletter),
        backoff=Backoff(settings.retry.initial_s, settings.retry.max_s),
        stats=stats,
        health=health,
        escalate_after=settings.retry.escalate_after,
        metrics=metrics,
        on_stored=feed.stored,
    )
    kinds: tuple[tuple[Kind, str], ...] = (("review", t.reviews), ("question", t.questions))
    for kind, name in kinds:
        processor = BatchProcessor(
            kind,
            scorer,
            limits=settings.input.limits(),
            stats=stats,
            questions=questions,
            metrics=metrics,
            shadow=shadow,
        )
        if kind == "question" and knowledge is not None:
            register_knowledge_reload(
                app, knowledge, processor, scoring, settings.questions.reload_s
            )
        register_agent(
            app,
            raw_topic(name),
            processor,
            sink,
            scoring,
            settings.batch,
            health,
            settings.shutdown_timeout_s,
            metrics,
        )
    if settings.kafka.probe_interval_s > 0:
        register_broker_probe(app, settings, health)
    alert_store = AlertStore(store.backend, store.db)
    alert_counts: Counter[str] = Counter()
    if settings.alerts.enabled:
        register_alerts(app, settings, scorer, alert_store, store_io, alert_counts, metrics, feed)
    register_views(
        app,
        store,
        alert_store,
        stats,
        sink,
        health,
        api_io,
        settings.web,
        alert_counts,
        metrics,
        RollOut.of(scorer, shadow),
    )
    models = {"reviews": f"{scorer.package.name} {scorer.package.version}"}
    if questions is not None:
        models["questions"] = f"{questions.name} {questions.version}"
    token = settings.web.token.get_secret_value() if settings.web.token else None
    register_page(
        app, feed, stats, sink, models, alert_counts, token, functools.partial(consumer_lag, app)
    )
    return Worker(app, store, stats, sink, (scoring, store_io, api_io))


def register_alerts(
    app: faust.App,
    settings: Settings,
    scorer: Scorer,
    store: AlertStore,
    executor: ThreadPoolExecutor,
    counts: Counter[str],
    metrics: Metrics,
    feed: LiveFeed,
) -> None:
    """Spike alerts on a timer, run by the consumer group's leader only."""
    package = scorer.package
    monitor = AlertMonitor(settings.alerts, store, package.name, package.version)
    topic = ProducerTopic(app, settings.alerts.topic)

    async def send(key: bytes | None, value: bytes) -> Any:
        return await topic.send(key=key, value=value)

    url = settings.alerts.alertmanager_url
    repeat = settings.alerts.repeat_windows + 1

    async def notify(events: list[AlertEvent]) -> bool:
        """Tell the live page, then post to Alertmanager (when configured).

        A firing alert stays valid in Alertmanager until a reminder is overdue.
        """
        feed.alerts(events)
        if url is None:
            return True
        body = []
        for e in events:
            window_ms = e.window_end_ms - e.window_start_ms
            body.append(alertmanager_alert(e, firing_valid_ms=repeat * window_ms))
        return await post_alerts(url, body)

    publisher = AlertPublisher(monitor, send, executor, counts, notify, metrics)
    app.timer(settings.alerts.interval_s, on_leader=True, name="spike_alerts")(publisher.tick)
