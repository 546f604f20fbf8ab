"""End to end through the real broker: enriched events, dead letters, store rows, delivery."""

from __future__ import annotations

import json
import threading

import pytest

from streams.service.shadow import sampled
from streams.settings import DEFAULT_MODEL, DEFAULT_QUESTION_MODEL
from streams.tools.harness import Namespace, WorkerProcess
from streams.tools.replay import replay
from tests.exposition import Exposition
from tests.integration.kafka_checks import consume_all
from tests.integration.samples import real_questions, real_reviews, write_jsonl
from tests.schemas import validate

pytestmark = pytest.mark.integration

MALFORMED = [
    b'{"event_id": "m1", "product_id": "p", "text": ',
    b'{"event_id": "m2", "product_id": "p", "text": "caf\xe9 latin-1 bytes"}',
    b'{"event_id": "m3", "product_id": "p"}',
    b'{"event_id": "m4", "product_id": "p", "text": "   "}',
    b'{"event_id": "m5", "product_id": "p", "text": "' + b"x" * 5001 + b'"}',
    b'{"event_id": "m6", "product_id": ["p"], "text": "wrong type"}',
    b"null",
]


SHADOW_SAMPLE = 0.25


def test_reviews_and_poison_events(namespace: Namespace) -> None:
    """Also shadow scoring, with the default package as its own candidate: it agrees
    (but for batch effects of int8 quantization)."""
    good = real_reviews(200)
    # poison records sit between valid ones, inside the same micro-batches
    lines = list(good)
    for i, bad in enumerate(MALFORMED):
        lines.insert(10 + 25 * i, bad)
    source = write_jsonl(namespace.data_dir / "in.jsonl", lines)
    worker = WorkerProcess(
        namespace,
        REVIEWPULSE_SHADOW__PACKAGE=str(DEFAULT_MODEL),
        REVIEWPULSE_SHADOW__SAMPLE=str(SHADOW_SAMPLE),
    )
    try:
        worker.wait_ready()
        replay(source, namespace.topic("reviews"), namespace.bootstrap, progress=False)
        worker.wait_until(lambda: worker.stored() >= len(good), 300, "done")
        models = worker.get("/api/models?window=24h")
        enriched = consume_all(namespace.bootstrap, namespace.topic("reviews.enriched"), len(good))
        dead = consume_all(namespace.bootstrap, namespace.topic("deadletter"), len(MALFORMED))
        metrics = worker.metrics()
        # once Faust committed past every record, each input partition lags by 0
        topic = namespace.topic("reviews")
        content_type, text = worker.wait_until(
            lambda: committed_scrape(worker, topic), 60, "committed"
        )
    finally:
        worker.stop()

    want_ids = {json.loads(ln)["event_id"] for ln in good}
    assert len(enriched) == len(good)
    assert {e["event_id"] for e in enriched} == want_ids
    for event in enriched[:20]:
        validate("review.enriched", event)
    assert len(dead) == len(MALFORMED)
    assert sorted(d["reason"] for d in dead) == sorted(
        [
            "invalid_json",
            "invalid_utf8",
            "missing_field",
            "empty_text",
            "text_too_long",
            "wrong_type",
            "not_an_object",
        ]
    )
    for d in dead:
        validate("deadletter", d)
    assert sum(metrics["dead_letters"].values()) == len(MALFORMED)

    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    scraped = Exposition(text)
    sent = len(good) + len(MALFORMED)
    assert scraped.value("reviewpulse_events_consumed_total", kind="review") == sent
    assert scraped.value("reviewpulse_events_enriched_total", kind="review") == len(good)
    assert scraped.value("reviewpulse_events_dead_lettered_total", kind="review") == len(MALFORMED)
    assert scraped.value("reviewpulse_events_dead_lettered_total", reason="invalid_utf8") == 1
    assert scraped.value("reviewpulse_batch_size_sum", kind="review") == sent
    assert scraped.value("reviewpulse_event_to_stored_seconds_count", kind="review") == len(good)
    assert scraped.value("reviewpulse_record_to_stored_seconds_count", kind="review") == len(good)
    assert scraped.value("reviewpulse_store_write_seconds_count", kind="review") >= 1
    assert scraped.value("reviewpulse_inference_seconds_count", kind="review") >= 1
    lag = scraped.labels("reviewpulse_consumer_lag")
    assert {d["partition"] for d in lag if d["topic"] == topic} == {"0", "1", "2"}
    loaded = {d["role"]: d for d in scraped.labels("reviewpulse_model_info")}
    assert loaded["sentiment"]["name"] == "sentiment-zh-en"
    assert loaded["questions"]["name"] == "questions-zh-en"
    assert loaded["shadow"]["version"] == loaded["sentiment"]["version"]
    assert {m["device"] for m in loaded.values()} == {"cpu"}

    shadowed = sum(sampled(event_id, SHADOW_SAMPLE) for event_id in want_ids)
    assert 0 < shadowed < len(good)
    assert scraped.value("reviewpulse_shadow_scored_total") == shadowed
    assert scraped.value("reviewpulse_shadow_failures_total") == 0
    assert models["primary"]["name"] == "sentiment-zh-en"
    assert models["candidate"] == {**models["primary"], "sample": SHADOW_SAMPLE}
    assert models["comparison"]["compared"] == shadowed
    # Not 1.0: the int8 package's activation scales are computed per sub-batch, so the
    # same model scoring the sample in other sub-batches moves probabilities (up to ~0.1
    # here) and can flip a borderline label (1 of 53 in one run).
    assert models["comparison"]["agreement"] >= 0.95
    assert all(abs(s["shift"]) <= 0.05 for s in models["comparison"]["shares"].values())
    assert models["other_comparisons"] == []
    assert all("shadow" not in e for e in enriched)

    store = namespace.open_store()
    try:
        assert store.count("reviews") == len(good)
        assert store.event_ids("reviews") == want_ids
    finally:
        store.close()


def committed_scrape(worker: WorkerProcess, topic: str) -> tuple[str, str] | None:
    """``/metrics`` once every partition of ``topic`` reports a lag, all of them 0."""
    content_type, text = worker.get_text("/metrics")
    lag = [
        value
        for labels, value in Exposition(text).samples.get("reviewpulse_consumer_lag", [])
        if labels["topic"] == topic
    ]
    return (content_type, text) if len(lag) == 3 and not any(lag) else None


# The Bitext customer-support intents the question model knows, and its "none of them".
INTENTS = frozenset(
    json.loads((DEFAULT_QUESTION_MODEL / "manifest.json").read_text(encoding="utf-8"))["labels"]
)


def test_questions_get_intents_and_answers(namespace: Namespace) -> None:
    assert len(INTENTS) == 28
    good = real_questions(20)
    source = write_jsonl(namespace.data_dir / "questions.jsonl", good)
    worker = WorkerProcess(namespace)
    try:
        worker.wait_ready()
        replay(source, namespace.topic("questions"), namespace.bootstrap, progress=False)
        worker.wait_until(lambda: worker.stored() >= len(good), 300, "done")
        enriched = consume_all(
            namespace.bootstrap, namespace.topic("questions.enriched"), len(good)
        )
        products = [json.loads(ln)["product_id"] for ln in good]
        view = worker.get(f"/api/products/{products[0]}/questions?window=24h")
    finally:
        worker.stop()

    assert view["questions"] == products.count(products[0])
    assert set(view["intents"]) <= INTENTS

    want_ids = {json.loads(ln)["event_id"] for ln in good}
    assert {e["event_id"] for e in enriched} == want_ids
    for event in enriched:
        validate("question.enriched", event)
        assert event["intent"]["label"] in INTENTS
        assert event["model"]["name"] == "questions-zh-en"
        assert event["needs_human"] == ("answer" not in event)
    assert any("answer" in e for e in enriched)  # the sample's questions are mostly answerable

    store = namespace.open_store()
    try:
        rows = store.backend.query(
            f"SELECT event_id, intent, model_name FROM {store.db}.questions FINAL"
        )
    finally:
        store.close()
    assert {r["event_id"] for r in rows} == want_ids
    assert all(r["intent"] in INTENTS for r in rows)
    assert {r["model_name"] for r in rows} == {"questions-zh-en"}


def test_sigkill_mid_replay_loses_nothing(namespace: Namespace) -> None:
    good = real_reviews(1500)
    source = write_jsonl(namespace.data_dir / "in.jsonl", good)
    want_ids = {json.loads(ln)["event_id"] for ln in good}

    first = WorkerProcess(namespace)
    first.wait_ready()
    # replay at a bounded rate in the background so the kill lands mid-replay
    sender = threading.Thread(
        target=replay,
        args=(source, namespace.topic("reviews"), namespace.bootstrap),
        kwargs={"rate": 150.0, "progress": False},
    )
    sender.start()
    first.wait_until(lambda: first.processed() >= 300, 300, "part-way")
    done_at_kill = first.processed()
    first.kill()  # SIGKILL: no shutdown, no final commit
    assert done_at_kill < len(good), "the kill must land before the replay is processed"

    second = WorkerProcess(namespace)
    try:
        second.wait_ready()
        sender.join()
        # the second worker re-delivers the first one's uncommitted tail: wait for every
        # event, not for as many records as were sent
        enriched = consume_all(
            namespace.bootstrap,
            namespace.topic("reviews.enriched"),
            len(good),
            timeout_s=600,
            distinct="event_id",
        )
        # the last batch is on the topic before it is in the store: wait for the write
        second.wait_until(second.settled, 120, "settled")
    finally:
        second.stop()

    assert {e["event_id"] for e in enriched} == want_ids  # re-delivery may duplicate, never lose
    store = namespace.open_store()
    try:
        assert store.event_ids("reviews") == want_ids
        assert store.count("reviews") == len(good)  # each event counted once
    finally:
        store.close()
