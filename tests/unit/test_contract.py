"""The event contract: parsing, validation reasons, enriched and dead-letter shapes."""

from __future__ import annotations

import base64
import hashlib

import orjson
import pytest

from streams.errors import InvalidEvent
from streams.events import contract
from streams.events.contract import Source
from streams.events.deadletter import DeadLetter
from streams.events.enriched import EnrichedQuestion, EnrichedReview, ModelRef
from streams.events.sentiment import Sentiment
from tests.schemas import validate

KAFKA_TS = 1_764_300_000_000  # 2025-11-28T03:20:00Z
NOW = 1_767_400_000_000  # 2026-01-03T00:26:40Z, the time of processing
LIMITS = contract.Limits()


def parse(raw: bytes, limits: contract.Limits = LIMITS) -> contract.Review:
    return contract.parse_review(raw, KAFKA_TS, limits, NOW)


def review(**fields: object) -> bytes:
    base: dict[str, object] = {"event_id": "e1", "product_id": "p1", "text": "  很好用 great  "}
    base.update(fields)
    return orjson.dumps({k: v for k, v in base.items() if v is not ...})


def test_valid_review_is_trimmed_and_defaults_ts_to_kafka_time() -> None:
    r = parse(review(rating=4, category="书籍"))
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
    assert parse(review(ts=ts)).ts_ms == expected_ms


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
        parse(raw)
    assert err.value.reason == reason


def test_text_limit_counts_characters_after_trimming() -> None:
    assert parse(review(text="  " + "字" * 5000 + "  ")).text == "字" * 5000


def test_question_contract() -> None:
    q = contract.parse_question(
        orjson.dumps(
            {"event_id": "q1", "product_id": "p", "text": "how do I return it?", "user_id": "u"}
        ),
        KAFKA_TS,
        LIMITS,
        NOW,
    )
    enriched = orjson.loads(EnrichedQuestion(q, KAFKA_TS).to_json())
    validate("question.enriched", enriched)
    assert "intent" not in enriched and "model" not in enriched


def test_enriched_review_matches_schema_and_picks_top_label() -> None:
    r = parse(review(rating=2, lang="zh"))
    enriched = EnrichedReview(
        r, Sentiment.from_probs([0.7, 0.2, 0.1]), ModelRef("m", "1"), KAFKA_TS + 5
    )
    e = orjson.loads(enriched.to_json())
    validate("review.enriched", e)
    assert e["sentiment"] == {
        "label": "negative",
        "score": 0.7,
        "probs": {"negative": 0.7, "neutral": 0.2, "positive": 0.1},
    }


def test_dead_letter_keeps_original_bytes_and_source() -> None:
    raw = b"\xff not json"
    with pytest.raises(InvalidEvent) as err:
        parse(raw)
    source = Source("reviews", 2, 41, KAFKA_TS)
    d = orjson.loads(
        DeadLetter.of(raw, source, err.value.reason, err.value.detail, NOW, 1000).to_json()
    )
    validate("deadletter", d)
    assert base64.b64decode(d["original_b64"]) == raw
    assert d["source"]["partition"] == 2 and d["source"]["offset"] == 41
    assert d["reason"] == "invalid_utf8"


@pytest.mark.parametrize(
    "ts",
    [
        10**15,
        2**64 - 1,
        -1,
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "1999-12-31T23:59:59Z",
        "2026-01-04T00:26:41Z",  # a day and a second after the time of processing
        "2026-01-02T03:04:05",  # no zone
        1.7e9,
    ],
)
def test_ts_outside_the_contract_is_rejected_not_crashed(ts: object) -> None:
    with pytest.raises(InvalidEvent) as err:
        parse(review(ts=ts))
    assert err.value.reason in ("invalid_value", "wrong_type")


def test_integer_ts_below_1e11_is_seconds_from_it_milliseconds() -> None:
    assert parse(review(ts=1_767_323_045)).ts_ms == 1_767_323_045_000
    assert parse(review(ts=1_767_323_045_123)).ts_ms == 1_767_323_045_123


def test_a_kafka_timestamp_outside_the_range_is_rejected_too() -> None:
    with pytest.raises(InvalidEvent, match="outside"):
        contract.parse_review(review(), -1, LIMITS, NOW)


@pytest.mark.parametrize("rating", [5.0, 1e0])
def test_ratings_must_be_integers(rating: float) -> None:
    with pytest.raises(InvalidEvent, match="integer 1-5"):
        parse(review(rating=rating))


@pytest.mark.parametrize(("field", "limit"), [("user_id", 256), ("category", 128), ("lang", 35)])
def test_optional_strings_have_length_limits(field: str, limit: int) -> None:
    assert getattr(parse(review(**{field: "x" * limit})), field) == "x" * limit
    with pytest.raises(InvalidEvent, match=f"limit is {limit}") as err:
        parse(review(**{field: "x" * (limit + 1)}))
    assert err.value.reason == "invalid_value"


def test_input_larger_than_the_limit_is_too_large() -> None:
    small = contract.Limits(max_input_bytes=300)
    with pytest.raises(InvalidEvent) as err:
        parse(review(text="x" * 400), small)
    assert err.value.reason == "too_large"


def test_dead_letter_of_a_huge_record_is_bounded_and_identifies_it() -> None:
    raw = b'{"event_id": "' + b"x" * 750_000 + b'"}'
    source = Source("reviews", 0, 7, KAFKA_TS)
    d = orjson.loads(DeadLetter.of(raw, source, "too_large", "y" * 10_000, NOW, 1024).to_json())
    validate("deadletter", d)
    assert len(orjson.dumps(d)) < 3000
    assert d["original_truncated"] is True and d["original_size"] == len(raw)
    assert base64.b64decode(d["original_b64"]) == raw[:1024]
    assert d["original_sha256"] == hashlib.sha256(raw).hexdigest()
    assert len(d["detail"]) == 500
