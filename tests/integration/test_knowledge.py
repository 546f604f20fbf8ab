"""The worker answers from the knowledge-base file named in its settings, and from the new
content once the file changed; a KB file it cannot use stops it at start."""

from __future__ import annotations

import hashlib
import json
import os

import orjson
import pytest

from streams.errors import WorkerExited
from streams.tools.harness import Namespace, WorkerProcess
from tests.faq import CANCEL, kb_yaml
from tests.integration.kafka_checks import consume_all, produce

pytestmark = pytest.mark.integration


def question(event_id: str) -> bytes:
    return orjson.dumps({"event_id": event_id, "product_id": "p1", "text": CANCEL})


def test_a_changed_kb_file_answers_the_next_questions(namespace: Namespace) -> None:
    path = namespace.data_dir / "faq.yaml"
    namespace.data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(kb_yaml("old-cancel"), encoding="utf-8")
    new = kb_yaml("new-cancel")
    new_sha = hashlib.sha256(new.encode()).hexdigest()
    worker = WorkerProcess(
        namespace,
        REVIEWPULSE_QUESTIONS__KNOWLEDGE_BASE=str(path),
        REVIEWPULSE_QUESTIONS__RELOAD_S="0.2",
    )
    topic = namespace.topic("questions")
    try:
        worker.wait_ready()
        produce(namespace.bootstrap, topic, [question("before")])
        worker.wait_until(lambda: worker.stored() >= 1, 120, "stored")
        tmp = path.with_suffix(".tmp")
        tmp.write_text(new, encoding="utf-8")
        os.replace(tmp, path)  # how an editor or a deploy replaces it
        worker.wait_until(lambda: new_sha in worker.get_text("/metrics")[1], 120, "reloaded")
        produce(namespace.bootstrap, topic, [question("after")])
        worker.wait_until(lambda: worker.stored() >= 2, 120, "stored")
        enriched = consume_all(namespace.bootstrap, namespace.topic("questions.enriched"), 2)
        log = worker.log_path.read_text(errors="replace")
    finally:
        worker.stop()
    answers = {e["event_id"]: e["answer"]["faq_id"] for e in enriched}
    assert answers == {"before": "old-cancel", "after": "new-cancel"}
    assert f"knowledge base reloaded: {path} sha256 {new_sha[:12]} with 3 entries" in log


def test_a_broken_kb_file_stops_the_start(namespace: Namespace) -> None:
    path = namespace.data_dir / "faq.json"
    namespace.data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": 1, "entries": []}), encoding="utf-8")
    worker = WorkerProcess(namespace, REVIEWPULSE_QUESTIONS__KNOWLEDGE_BASE=str(path))
    try:
        with pytest.raises(WorkerExited):
            worker.wait_ready(timeout_s=120)
    finally:
        worker.stop()
    log = worker.log_path.read_text(errors="replace")
    assert f"{path}: the knowledge base has no entries" in log
    assert "REVIEWPULSE_QUESTIONS__KNOWLEDGE_BASE" in log
