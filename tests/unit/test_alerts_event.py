"""The alert event on the wire: its JSON against the published schema, and its evidence."""

from __future__ import annotations

import jsonschema
import pytest

from streams.alerts.engine import WindowCount, run_alerts
from streams.alerts.event import NegativeReview, top_evidence
from tests.schemas import validate
from tests.unit.test_alerts_engine import DAILY, NORMAL, T0, days, window

DAY = 86_400_000

# Two products spike for a day: both fire, so does their category; two days later all resolve.
RECORDS = (
    days(0, 28, p1=NORMAL, p2=NORMAL)
    + window(28, p1=(40, 30), p2=(40, 30))
    + days(29, 31, p1=NORMAL, p2=NORMAL)
)


def reviews_of(w: WindowCount) -> list[NegativeReview]:
    """Eight negative reviews, scores tied in pairs, from the caller's store."""
    return [
        NegativeReview(f"{w.key}-{i}", f"bad #{i}", score)
        for i, score in enumerate([0.71, 0.99, 0.8, 0.99, 0.6, 0.8, 0.95, 0.7])
    ]


def test_events_match_the_schema() -> None:
    events = run_alerts(RECORDS, DAILY, "sentiment-zh-en", "1.0.0", evidence=reviews_of)
    assert [(e.product_id, e.status) for e in events] == [
        ("p1", "firing"),
        ("p2", "firing"),
        (None, "firing"),
        ("p1", "resolved"),
        ("p2", "resolved"),
        (None, "resolved"),
    ]
    for e in events:
        validate("alert", e.to_json())


def test_event_json() -> None:
    fired = run_alerts(RECORDS, DAILY, "sentiment-zh-en", "1.0.0", evidence=reviews_of)[2]
    doc = fired.to_json()
    assert doc == {
        "alert_id": fired.alert_id,
        "status": "firing",
        "severity": "critical",
        "rule": "negative_share_category_24h",
        "product_id": None,
        "category": "c1",
        "product_ids": ["p1", "p2"],
        "started_at": "2026-01-29T00:00:00.000+00:00",
        "window": {
            "start": "2026-01-29T00:00:00.000+00:00",
            "end": "2026-01-30T00:00:00.000+00:00",
        },
        "counts": {"n": 240, "negative": 92},
        "baseline": {"share": fired.baseline_share, "n": fired.baseline_n},
        "p_value": fired.p_value,
        "model": {"name": "sentiment-zh-en", "version": "1.0.0"},
        "evidence": [
            {"event_id": "c1-1", "text": "bad #1", "score": 0.99},
            {"event_id": "c1-3", "text": "bad #3", "score": 0.99},
            {"event_id": "c1-6", "text": "bad #6", "score": 0.95},
            {"event_id": "c1-2", "text": "bad #2", "score": 0.8},
            {"event_id": "c1-5", "text": "bad #5", "score": 0.8},
        ],
    }
    assert len(fired.alert_id) == 64 and 0.19 < fired.baseline_share < 0.21


def test_evidence_is_asked_only_for_windows_with_negatives() -> None:
    asked: list[tuple[str, int]] = []

    def evidence(w: WindowCount) -> list[NegativeReview]:
        asked.append((w.key, (w.window_start_ms - T0) // DAY))
        return []

    records = days(0, 28, p1=NORMAL) + window(28, p1=(40, 24)) + window(31, p1=(3, 0))
    events = run_alerts(records, DAILY, "m", "1", evidence=evidence)
    assert [(e.status, e.n) for e in events] == [("firing", 40), ("resolved", 0)]
    assert asked == [("p1", 28)]  # the resolving window (day 30) had no reviews
    assert events[1].evidence == ()


def test_top_evidence_keeps_the_five_most_negative() -> None:
    assert top_evidence([]) == ()
    picked = top_evidence(NegativeReview(f"e{i}", "", i / 10) for i in range(9))
    assert [r.event_id for r in picked] == ["e8", "e7", "e6", "e5", "e4"]


def test_the_schema_rejects_a_product_alert_with_a_product_list() -> None:
    doc = run_alerts(RECORDS, DAILY, "m", "1")[0].to_json()
    validate("alert", doc)
    with pytest.raises(jsonschema.ValidationError):
        validate("alert", {**doc, "product_ids": ["p1"]})
    with pytest.raises(jsonschema.ValidationError):
        validate("alert", {**doc, "product_id": None, "category": None, "product_ids": []})
