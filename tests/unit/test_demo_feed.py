"""The demo's feed (``streams.tools.demo_feed``): event times, pacing and the spike.

Pure functions of the committed sample, a seed and a fixed ``now``; the last
test runs the demo's schedule through the alert engine with the demo's alert
settings, the sample's stars standing in for the model (1–2 stars negative).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

import orjson
import pytest

from streams.alerts import WindowCount, run_alerts
from streams.settings import REPO_ROOT, Settings
from streams.tools.demo_feed import (
    ALERTS,
    DAY_MS,
    Line,
    Outgoing,
    Spike,
    alert_env,
    history,
    live_cycle,
    parse_lines,
)

SAMPLES = REPO_ROOT / "deploy" / "demo"
NOW_MS = 1_800_000_017_000  # a fixed "now", 17 s past a minute
WINDOW_MS = 60_000
CYCLE_S = 120.0


@pytest.fixture(scope="module")
def lines() -> list[Line]:
    reviews = parse_lines("reviews", (SAMPLES / "reviews.jsonl").read_bytes().splitlines())
    questions = parse_lines("questions", (SAMPLES / "questions.jsonl").read_bytes().splitlines())
    return reviews + questions


def event(record: Outgoing) -> dict[str, Any] | None:
    """The record's JSON object; None for a malformed line, sent as it was."""
    try:
        parsed = orjson.loads(record.value)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def ts_ms(e: dict[str, Any]) -> int:
    return int(datetime.fromisoformat(e["ts"]).timestamp() * 1000)


def is_spike(e: dict[str, Any] | None) -> bool:
    return e is not None and str(e["event_id"]).startswith("spike")


def one_or_two_stars(lines: list[Line]) -> frozenset[str]:
    """The reviews the tests take as scored negative (the demo asks the worker's model)."""
    return frozenset(
        ln.event["event_id"]
        for ln in lines
        if ln.event and ln.topic == "reviews" and ln.event.get("rating") in (1, 2)
    )


def cycles(lines: list[Line], n: int, rate: float) -> list[tuple[Spike, list[Outgoing]]]:
    negative = one_or_two_stars(lines)
    return [
        live_cycle(
            lines,
            i,
            NOW_MS + round(i * CYCLE_S * 1000),
            rate=rate,
            cycle_s=CYCLE_S,
            window_ms=WINDOW_MS,
            seed=0,
            negative=negative,
        )
        for i in range(n)
    ]


def test_history_sends_every_line_once_dated_in_the_past_days(lines: list[Line]) -> None:
    records = history(lines, NOW_MS, days=1, seed=0)
    malformed = [ln.raw for ln in lines if ln.event is None]
    assert len(malformed) == 2, "the sample's truncated line and its JSON array"
    assert sorted(r.value for r in records if r.value in malformed) == sorted(malformed)
    stamped = [e for r in records if (e := event(r)) is not None]
    sent_ids = Counter(e["event_id"] for e in stamped)
    assert sent_ids == Counter(ln.event["event_id"] for ln in lines if ln.event is not None)
    times = [ts_ms(e) for e in stamped]
    assert times == sorted(times), "in event-time order"
    assert min(times) >= NOW_MS - DAY_MS - 60_000 and max(times) <= NOW_MS - 60_000
    assert max(times) - min(times) > DAY_MS * 0.9, "spread over the day"
    assert {r.at_s for r in records} == {0.0}
    assert history(lines, NOW_MS, days=1, seed=0) == records
    assert history(lines, NOW_MS, days=1, seed=1) != records


def test_a_live_cycle_is_paced_at_the_rate_with_the_clock_as_event_time(
    lines: list[Line],
) -> None:
    (spike0, first), (spike1, second) = cycles(lines, 2, rate=20)
    for start, spike, records in ((NOW_MS, spike0, first), (NOW_MS + 120_000, spike1, second)):
        base = [r for r in records if not is_spike(event(r))]
        assert len(base) == 20 * CYCLE_S
        assert len(records) == len(base) + spike.count
        assert [r.at_s for r in records] == sorted(r.at_s for r in records)
        assert all(0 <= r.at_s < CYCLE_S for r in records)
        for r in records:
            if (e := event(r)) is not None:
                assert ts_ms(e) == start + round(r.at_s * 1000)
    ids = [e["event_id"] for r in first + second if (e := event(r)) is not None]
    assert len(ids) == len(set(ids)), "every live copy under a new event id"
    # 4,800 slots: the sample (1,806 lines) goes round more than twice, each line in turn
    sent = Counter(i.rsplit("~", 1)[0] for i in ids if "~live" in i)
    assert set(sent) == {ln.event["event_id"] for ln in lines if ln.event is not None}
    assert set(sent.values()) <= {2, 3}


def test_the_spike_is_the_negative_sample_reviews_inside_one_window(lines: list[Line]) -> None:
    negative = one_or_two_stars(lines)
    texts = {ln.event["text"] for ln in lines if ln.event and ln.event["event_id"] in negative}
    spikes = cycles(lines, 5, rate=20)
    assert len({s.product_id for s, _ in spikes}) == 5, "the products take turns"
    for spike, records in spikes:
        burst = [e for r in records if (e := event(r)) is not None and is_spike(e)]
        assert len(burst) == spike.count >= 20
        assert {e["product_id"] for e in burst} == {spike.product_id}
        assert {e["text"] for e in burst} <= texts
        times = [ts_ms(e) for e in burst]
        assert spike.window_start_ms <= min(times) and max(times) < spike.window_end_ms
        assert spike.window_end_ms - spike.window_start_ms == WINDOW_MS
    assert cycles(lines, 2, rate=20) == spikes[:2], "the same seed, the same feed"


def window_counts(records: list[Outgoing]) -> list[WindowCount]:
    """Per product and category per 1-minute window, 1–2 stars as negative; invalid ones out."""
    counts: dict[tuple[str, str, int], list[int]] = defaultdict(lambda: [0, 0])
    category_of: dict[str, str | None] = {}
    for r in records:
        e = event(r)
        if r.topic != "reviews" or e is None:
            continue
        rating = e.get("rating", 5)
        if not isinstance(e.get("product_id"), str) or not str(e.get("text", "")).strip():
            continue
        if rating not in range(1, 6):
            continue
        w = ts_ms(e) // WINDOW_MS * WINDOW_MS
        negative = int(rating <= 2)
        category_of[e["product_id"]] = e.get("category")
        keys = [("product", e["product_id"])]
        keys += [("category", e["category"])] if e.get("category") else []
        for scope, key in keys:
            counts[(scope, key, w)][0] += 1
            counts[(scope, key, w)][1] += negative
    return [
        WindowCount(
            scope,  # type: ignore[arg-type]
            key,
            category_of[key] if scope == "product" else key,
            w,
            w + WINDOW_MS,
            n,
            negative,
        )
        for (scope, key, w), (n, negative) in counts.items()
    ]


@pytest.mark.parametrize("rate", [5.0, 20.0, 50.0])
def test_with_the_demo_settings_each_spike_fires_and_nothing_else(
    lines: list[Line], rate: float
) -> None:
    records = history(lines, NOW_MS, days=1, seed=0)
    spikes = []
    for spike, live in cycles(lines, 4, rate):
        spikes.append(spike)
        records += live
    events = run_alerts(window_counts(records), ALERTS, "m", "1")
    firing = [
        (e.product_id, e.window_start_ms) for e in events if e.product_id and e.status == "firing"
    ]
    assert firing == [(s.product_id, s.window_start_ms) for s in spikes]
    resolved = {e.product_id for e in events if e.product_id and e.status == "resolved"}
    assert resolved >= {s.product_id for s in spikes[:-1]}, "each resolves before the next"


def test_the_worker_environment_gives_the_demo_alert_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in alert_env().items():
        monkeypatch.setenv(name, value)
    assert Settings(_env_file=None).alerts == ALERTS  # type: ignore[call-arg]
    assert alert_env(ALERTS.model_copy(update={"windows": ["1h", "24h"]})).keys() == (
        alert_env().keys() - {"REVIEWPULSE_ALERTS__WINDOWS"}
    )
