"""The event contract: parsing, validation reasons, enriched and dead-letter shapes."""

from __future__ import annotations

import base64

import orjson
import pytest

from streams import records
from streams.errors import InvalidEvent
from streams.records import Source
from tests.schemas import validate

KAFKA_TS = 1_764_300_000_000  # 2025-11-28T03:20:00Z


def review(**fields: object) -> bytes:
    base: dict[str, object] = {"event_id": "e1", "product_id": "p1", "text": "  很好用 great  "}
    base.update(fields)
    return orjson.dumps({k: v for k, v in base.items() if v is not ...})


def test_valid_review_is_trimmed_and_defaults_ts_to_kafka_time() -> None:
    r = records.parse_review(review(rating=4, category="书籍"), KAFKA_TS)
    assert (r.event_id, r.product_id, r.text, r.rating, r.category) == (
        "e1",
        "p1",
        "很好用 great",
        4,
        "书籍",
    )
    assert r.ts_ms == KAFKA_TS
    assert r.fields()["ts"] == "2025-11-28T03:20:00.000+00:00"


@pytest.mark.parametrize(
    ("ts", "expected_ms"),
    [
        ("2026-01-02T03:04:05Z", 1767323045000),
        ("2026-01-02T03:04:05+08:00", 1767294245000),
        (1767323045123, 1767323045123),
    ],
)
def test_ts_accepts_iso_and_epoch_ms(ts: object, expected_ms: int) -> None:
    assert records.parse_review(review(ts=ts), KAFKA_TS).ts_ms == expected_ms


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe not utf-8", "invalid_utf8"),
        (b'{"event_id": "e1", ', "invalid_json"),
        (b'["a list"]', "not_an_object"),
        (review(text=...), "missing_field"),
        (review(event_id=...), "missing_field"),
        (review(product_id=""), "missing_field"),
        (review(product_id=7), "wrong_type"),
        (review(text=["x"]), "wrong_type"),
        (review(text="   \t "), "empty_text"),
        (review(text="x" * 5001), "text_too_long"),
        (review(rating=6), "invalid_value"),
        (review(rating=3.5), "invalid_value"),
        (review(rating="5"), "wrong_type"),
        (review(rating=True), "wrong_type"),
        (review(ts="yesterday"), "invalid_value"),
        (review(user_id=12), "wrong_type"),
    ],
)
def test_invalid_reviews_raise_with_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        records.parse_review(raw, KAFKA_TS)
    assert err.value.reason == reason


def test_text_limit_counts_characters_after_trimming() -> None:
    assert (
        records.parse_review(review(text="  " + "字" * 5000 + "  "), KAFKA_TS).text == "字" * 5000
    )


def test_question_contract() -> None:
    q = records.parse_question(
        orjson.dumps(
            {"event_id": "q1", "product_id": "p", "text": "how do I return it?", "user_id": "u"}
        ),
        KAFKA_TS,
    )
    enriched = records.enriched_question(q, records.model_info("m", "1"), KAFKA_TS)
    validate("question.enriched", enriched)
    assert "intent" not in enriched


def test_enriched_review_matches_schema_and_picks_top_label() -> None:
    r = records.parse_review(review(rating=2, lang="zh"), KAFKA_TS)
    e = records.enriched_review(
        r,
        ("negative", "neutral", "positive"),
        [0.7, 0.2, 0.1],
        records.model_info("m", "1"),
        KAFKA_TS + 5,
    )
    validate("review.enriched", e)
    assert e["sentiment"] == {
        "label": "negative",
        "score": 0.7,
        "probs": {"negative": 0.7, "neutral": 0.2, "positive": 0.1},
    }


def test_dead_letter_keeps_original_bytes_and_source() -> None:
    raw = b"\xff not json"
    with pytest.raises(InvalidEvent) as err:
        records.parse_review(raw, KAFKA_TS)
    d = records.dead_letter(raw, Source("reviews", 2, 41, KAFKA_TS), err.value, KAFKA_TS + 1)
    validate("deadletter", d)
    assert base64.b64decode(d["original_b64"]) == raw
    assert d["source"]["partition"] == 2 and d["source"]["offset"] == 41
    assert d["reason"] == "invalid_utf8"
