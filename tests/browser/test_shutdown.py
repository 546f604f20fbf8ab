"""A worker with the live page open stops on SIGTERM without waiting on the open event stream."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from streams.tools.harness import Namespace, WorkerProcess

pytestmark = pytest.mark.integration


def test_a_worker_with_an_open_page_stops_cleanly(namespace: Namespace, page: Page) -> None:
    worker = WorkerProcess(namespace)
    try:
        worker.wait_ready()
        page.goto(worker.base_url + "/")
        expect(page.locator("#live")).to_have_attribute("data-state", "live")
        assert worker.get("/api/status")["live_clients"] == 1
        # aiohttp waits up to 60 s for running handlers; the feed ends the stream first,
        # so SIGTERM ends the worker (exit 0) long before stop() would SIGKILL it
        code = worker.stop(timeout_s=30)
    finally:
        worker.stop()
    assert code == 0
