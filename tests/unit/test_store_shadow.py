"""Shadow comparisons in the store and on ``/api/models``: per window, each review once.

Runs on both backends (see ``tests/conftest.py``); ``now`` is injected into the
store call and the reply function, the events are dated from ``tests/clock.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from streams.events.enriched import EnrichedReview, ModelRef, ShadowScore
from streams.events.sentiment import SENTIMENT_LABELS, Sentiment
from streams.service.shadow import PackageInfo, RollOut
from streams.settings import StoreSettings
from streams.store import Store, open_store
from streams.web.api import models_reply
from tests.clock import day_at
from tests.events import MODEL, ms, review_event

NOW = day_at(10, 30, 20)
PROBS = {
    "negative": [0.8, 0.1, 0.1],
    "neutral": [0.2, 0.6, 0.2],
    "positive": [0.05, 0.15, 0.8],
}
CANDIDATE = ModelRef("c", "2")
OLD_CANDIDATE = ModelRef("c", "1")


def scored(
    event_id: str,
    minutes_ago: float,
    live: str,
    shadow: str | None,
    candidate: ModelRef = CANDIDATE,
    processed_at: datetime = NOW,
) -> EnrichedReview:
    event = review_event(
        event_id,
        f"p-{event_id}",
        ts=NOW - timedelta(minutes=minutes_ago),
        processed_at=processed_at,
        probs=dict(zip(SENTIMENT_LABELS, PROBS[live], strict=True)),
    )
    if shadow is None:
        return event
    return replace(event, shadow=ShadowScore(Sentiment.from_probs(PROBS[shadow]), candidate))


# (live, candidate) labels: in the last 15 minutes 3 of 4 agree; 40 minutes ago 2 of 2;
# 3 hours ago 1 of 1; and 2 hours ago 1 of 2 with an earlier candidate.
RECENT = [
    scored("a1", 1, "negative", "negative"),
    scored("a2", 2, "negative", "positive"),
    scored("a3", 3, "positive", "positive"),
    scored("a4", 4, "neutral", "positive"),  # re-sent below: the candidate says neutral
    scored("unsampled", 2, "negative", None),
]
OLDER = [
    scored("b1", 40, "positive", "positive"),
    scored("b2", 41, "positive", "positive"),
    scored("c1", 180, "negative", "negative"),
    scored("old1", 120, "negative", "negative", OLD_CANDIDATE),
    scored("old2", 121, "negative", "neutral", OLD_CANDIDATE),
]
RESENT_AT = NOW + timedelta(minutes=1)
RESENT = scored("a4", 4, "neutral", "neutral", processed_at=RESENT_AT)


@pytest.fixture
def store(store_settings: StoreSettings) -> Iterator[Store]:
    s = open_store(store_settings)
    s.write(RECENT)
    s.write(OLDER)
    s.write(RECENT)  # Kafka re-delivered the batch: each review still counts once
    s.write([RESENT])  # a later version of a4 wins
    yield s
    s.close()


def test_agreement_and_label_shift_per_window(store: Store) -> None:
    [recent] = store.shadow_comparisons("15m", NOW)
    assert recent["primary"] == MODEL.to_dict()
    assert recent["candidate"] == CANDIDATE.to_dict()
    assert recent["compared"] == 4
    assert recent["agreement"] == 0.75
    assert recent["shares"] == {
        "negative": {"primary": 0.5, "candidate": 0.25, "shift": -0.25},
        "neutral": {"primary": 0.25, "candidate": 0.25, "shift": 0.0},
        "positive": {"primary": 0.25, "candidate": 0.5, "shift": 0.25},
    }
    assert recent["confusion"] == {
        "negative": {"negative": 1, "neutral": 0, "positive": 1},
        "neutral": {"negative": 0, "neutral": 1, "positive": 0},
        "positive": {"negative": 0, "neutral": 0, "positive": 1},
    }
    [hour] = store.shadow_comparisons("1h", NOW)
    assert (hour["compared"], hour["agreement"]) == (6, 5 / 6)
    day, earlier = store.shadow_comparisons("24h", NOW)
    assert (day["candidate"], day["compared"], day["agreement"]) == (CANDIDATE.to_dict(), 7, 6 / 7)
    assert (earlier["candidate"], earlier["compared"]) == (OLD_CANDIDATE.to_dict(), 2)
    assert earlier["agreement"] == 0.5
    assert store.shadow_comparisons("15m", NOW - timedelta(days=1)) == []


def test_each_sampled_review_is_stored_once(store: Store) -> None:
    rows = store.backend.query(
        f"SELECT event_id, candidate_label, toUnixTimestamp64Milli(processed_at) AS at "
        f"FROM {store.db}.shadow_scores FINAL ORDER BY event_id"
    )
    ids = [r["event_id"] for r in rows]
    assert ids == sorted(e.input.event_id for e in [*RECENT, *OLDER] if e.shadow is not None)
    a4 = next(r for r in rows if r["event_id"] == "a4")
    assert (a4["candidate_label"], int(a4["at"])) == ("neutral", ms(RESENT_AT))


def test_models_reply_shows_both_packages_and_the_comparison(store: Store) -> None:
    primary = PackageInfo("m", "1", SENTIMENT_LABELS, "cpu")
    candidate = PackageInfo("c", "2", SENTIMENT_LABELS, "cpu")
    status, body = models_reply(
        store, {"window": "24h"}, roll_out=RollOut(primary, candidate, 0.1), now=NOW
    )
    assert status == 200
    assert body["primary"] == {
        "name": "m",
        "version": "1",
        "labels": list(SENTIMENT_LABELS),
        "device": "cpu",
    }
    assert body["candidate"] == {**candidate.to_dict(), "sample": 0.1}
    assert (body["comparison"]["compared"], body["comparison"]["agreement"]) == (7, 6 / 7)
    assert [c["candidate"] for c in body["other_comparisons"]] == [OLD_CANDIDATE.to_dict()]

    # a new candidate has no comparisons yet; the earlier pairs stay visible
    newer = PackageInfo("c", "3", SENTIMENT_LABELS, "cpu")
    status, body = models_reply(store, {}, roll_out=RollOut(primary, newer, 0.5), now=NOW)
    assert status == 200 and body["window"] == "24h"
    assert body["comparison"]["compared"] == 0 and body["comparison"]["agreement"] is None
    assert body["comparison"]["shares"]["negative"] == {
        "primary": None,
        "candidate": None,
        "shift": None,
    }
    assert len(body["other_comparisons"]) == 2

    status, body = models_reply(store, {"window": "15m"}, roll_out=RollOut(primary), now=NOW)
    assert status == 200
    assert body["candidate"] is None and body["comparison"] is None
    assert [c["compared"] for c in body["other_comparisons"]] == [4]

    status, body = models_reply(store, {"window": "2h"}, roll_out=RollOut(primary), now=NOW)
    assert status == 400 and "unknown window" in body["error"]
