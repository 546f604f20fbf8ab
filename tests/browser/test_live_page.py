"""The live page in headless Chromium, on a worker fed real reviews through the real broker."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from confluent_kafka import Producer
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveWorker

pytestmark = pytest.mark.integration

LIVE_TIMEOUT_MS = 5000  # a review sent to Kafka is on the open page within 5 s
# A plainly negative review, in Chinese and English: the page must render both.
COMPLAINT = "质量太差了，穿了一次就开线了，非常失望。Fell apart after one wash."


def ranked_ids(page: Page, table: str = "#ranked") -> list[str]:
    rows = page.locator(f"{table} tbody tr[data-product]")
    return [str(rows.nth(i).get_attribute("data-product")) for i in range(rows.count())]


def shown_volumes(page: Page) -> dict[str, str]:
    rows = page.locator("#ranked tbody tr[data-product]")
    return {
        str(rows.nth(i).get_attribute("data-product")): rows.nth(i)
        .locator("[data-field=volume]")
        .inner_text()
        for i in range(rows.count())
    }


def send_review(live: LiveWorker, product_id: str, text: str) -> str:
    event_id = f"live-{uuid.uuid4().hex[:8]}"
    producer = Producer({"bootstrap.servers": live.namespace.bootstrap, "acks": "all"})
    value = {"event_id": event_id, "product_id": product_id, "text": text, "rating": 1}
    producer.produce(live.namespace.topic("reviews"), orjson.dumps(value), product_id.encode())
    assert producer.flush(10) == 0
    return event_id


def painted_pixels(page: Page, selector: str) -> int:
    count: int = page.eval_on_selector(
        selector,
        """canvas => {
            const { width, height } = canvas;
            const data = canvas.getContext("2d").getImageData(0, 0, width, height).data;
            let n = 0;
            for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) n++;
            return n;
        }""",
    )
    return count


def test_portfolio_shows_the_data_and_loads_nothing_from_outside(
    live_worker: LiveWorker, page: Page, artifacts: Path
) -> None:
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(live_worker.url + "/")
    want = live_worker.worker.get("/api/products?window=24h&limit=15")["products"]
    expect(page.locator("#ranked tbody tr[data-product]")).to_have_count(len(want))
    assert ranked_ids(page) == [p["product_id"] for p in want]
    assert set(ranked_ids(page)) <= {str(r["product_id"]) for r in live_worker.reviews}
    assert len(ranked_ids(page, "#movers")) > 0
    assert page.locator("#ranked svg.spark path").first.get_attribute("d")  # sparklines drawn
    expect(page.locator("[data-stat=stored]")).to_have_text(str(len(live_worker.reviews)))
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    page.screenshot(path=artifacts / "live-page-portfolio.png", full_page=True)

    here = urlsplit(live_worker.url).netloc
    assert len(requests) >= 8  # page, styles, scripts, API
    outside = [url for url in requests if urlsplit(url).netloc != here]
    assert outside == []


def test_window_selector_changes_the_figures(live_worker: LiveWorker, page: Page) -> None:
    page.goto(live_worker.url + "/#window=24h")
    expect(page.locator("#windows [data-window='24h']")).to_have_attribute("aria-pressed", "true")
    day = {p["product_id"]: str(p["volume"]) for p in _products(live_worker, "24h")}
    expect(page.locator("#ranked tbody tr[data-product]")).to_have_count(len(day))
    assert shown_volumes(page) == day

    page.click("#windows [data-window='7d']")
    week = {p["product_id"]: str(p["volume"]) for p in _products(live_worker, "7d")}
    expect(page.locator("#windows [data-window='7d']")).to_have_attribute("aria-pressed", "true")
    page.wait_for_function(
        "want => [...document.querySelectorAll('#ranked tbody tr[data-product]')].map("
        "r => r.dataset.product + ':' + r.querySelector('[data-field=volume]').textContent"
        ").join() === want",
        arg=",".join(f"{k}:{v}" for k, v in week.items()),
    )
    assert shown_volumes(page) == week
    assert any(week[p] != day[p] for p in set(week) & set(day))  # the older reviews count too


def _products(live: LiveWorker, window: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = live.worker.get(f"/api/products?window={window}&limit=15")[
        "products"
    ]
    return rows


def test_product_view_and_a_new_review_without_reload(
    live_worker: LiveWorker, page: Page, artifacts: Path
) -> None:
    page.goto(live_worker.url + "/#window=24h")
    first = page.locator("#ranked tbody tr[data-product]").first
    product = str(first.get_attribute("data-product"))
    first.click()
    expect(page.locator("#product-id")).to_have_text(product)
    want = live_worker.worker.get(f"/api/products/{product}?window=24h")
    volume = page.locator("#kpis [data-field=volume]")
    expect(volume).to_have_text(str(want["volume"]))
    page.wait_for_selector("#chart canvas")
    assert painted_pixels(page, "#chart canvas") > 1000  # the chart has drawn
    assert page.evaluate("document.querySelectorAll('#chart .u-legend .u-series').length") == 5
    expect(page.locator("#ratings .row")).to_have_count(5)
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    page.evaluate("window.__marker = 'same document'")  # gone if the page reloaded

    sent = time.monotonic()
    event_id = send_review(live_worker, product, COMPLAINT)
    item = page.locator(f"#reviews li[data-event='{event_id}']")
    expect(item).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    print(f"review on the open page {time.monotonic() - sent:.2f} s after it was sent")
    expect(item.locator(".text")).to_have_text(COMPLAINT)
    expect(volume).to_have_text(str(want["volume"] + 1), timeout=LIVE_TIMEOUT_MS)
    assert page.evaluate("window.__marker") == "same document"
    page.screenshot(path=artifacts / "live-page-product.png", full_page=True)
    print(f"screenshots: {artifacts}/live-page-portfolio.png, {artifacts}/live-page-product.png")


def test_polling_takes_over_when_the_event_stream_fails(
    live_worker: LiveWorker, page: Page
) -> None:
    page.route("**/api/events", lambda route: route.abort())
    product = _products(live_worker, "24h")[1]["product_id"]
    page.goto(live_worker.url + f"/#window=24h&product={product}")
    expect(page.locator("#live")).to_have_attribute("data-state", "polling")
    expect(page.locator("#product-id")).to_have_text(product)
    page.wait_for_selector("#reviews li")
    event_id = send_review(live_worker, product, COMPLAINT)
    expect(page.locator(f"#reviews li[data-event='{event_id}']")).to_be_visible(
        timeout=LIVE_TIMEOUT_MS
    )


def test_header_shows_pipeline_health(live_worker: LiveWorker, page: Page) -> None:
    page.goto(live_worker.url + "/")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    status = live_worker.worker.get("/api/status")
    assert status["live_clients"] >= 1  # this page's event stream
    assert status["models"]["reviews"].startswith("sentiment-zh-en ")
    models = page.locator("[data-stat=models]")
    expect(models).to_contain_text(status["models"]["reviews"])
    expect(page.locator("[data-stat=dead]")).to_have_text(str(status["dead_letters"]))
