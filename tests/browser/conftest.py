"""Browser fixtures: headless Chromium (the system's) and a worker fed real sample reviews.

Playwright drives Debian's ``chromium`` package (``make test`` installs it with
``fonts-noto-cjk``); Playwright's own browser download is never used. The
worker runs on the session's Kafka broker (``tests/conftest.py``) in a
namespace of its own, with 400 real reviews from ``deploy/demo/reviews.jsonl``
dated relative to the real clock, as the worker's windows are: 240 in the last
18 hours, 160 between 26 and 44 hours ago (the previous day, so the 24 h window
has a baseline and the 7 d window counts more reviews than the 24 h one).
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from streams.settings import REPO_ROOT
from streams.tools.harness import Namespace, WorkerProcess, free_port
from streams.tools.replay import replay
from tests.integration.samples import real_reviews, write_jsonl

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO_ROOT / "build" / "test-artifacts"
RECENT, OLDER = 240, 160


@dataclass
class LiveWorker:
    worker: WorkerProcess
    namespace: Namespace
    reviews: list[dict[str, object]]

    @property
    def url(self) -> str:
        return self.worker.base_url


def dated_reviews(now: datetime) -> list[dict[str, object]]:
    rows = [json.loads(line) for line in real_reviews(RECENT + OLDER)]
    for i, row in enumerate(rows):
        hours = i % 18
        if i < RECENT:
            when = now - timedelta(hours=hours, minutes=10)
        else:
            when = now - timedelta(hours=26 + hours)
        row["ts"] = when.isoformat(timespec="seconds")
    return rows


@pytest.fixture(scope="module")
def live_worker(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveWorker]:
    data_dir = tmp_path_factory.mktemp("live")
    ns = Namespace(f"b{uuid.uuid4().hex[:10]}", kafka_bootstrap, data_dir, free_port())
    rows = dated_reviews(datetime.now(UTC))
    source = write_jsonl(data_dir / "reviews.jsonl", [json.dumps(r).encode() for r in rows])
    worker = WorkerProcess(ns)
    try:
        worker.wait_ready()
        replay(source, ns.topic("reviews"), ns.bootstrap, progress=False)
        worker.wait_until(lambda: worker.stored() >= len(rows), 300, "done")
        yield LiveWorker(worker, ns, rows)
    finally:
        worker.stop()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
    yield browser
    browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
