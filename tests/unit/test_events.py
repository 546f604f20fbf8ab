"""The typed output events: their JSON byte for byte, and their Arrow batches."""

from __future__ import annotations

import orjson
import pyarrow as pa
import pytest

from models.questions import Answer, Intent, QuestionResult
from streams.events import contract
from streams.events.contract import Source
from streams.events.deadletter import DeadLetter
from streams.events.enriched import (
    EnrichedQuestion,
    EnrichedReview,
    ModelRef,
    questions_table,
    reviews_table,
)
from streams.events.sentiment import Sentiment

KAFKA_TS = 1_764_300_000_000  # 2025-11-28T03:20:00Z
NOW = 1_767_400_000_000
PROCESSED = NOW + 123
MODEL = ModelRef("m", "1.0")


def review() -> contract.Review:
    raw = {
        "event_id": "e1",
        "product_id": "p1",
        "text": " 很好用 great ",
        "rating": 4,
        "category": "书籍",
        "ts": "2026-01-02T03:04:05.120+08:00",
        "lang": "zh",
    }
    return contract.parse_review(orjson.dumps(raw), KAFKA_TS, contract.Limits(), NOW)


def question() -> contract.Question:
    raw = orjson.dumps({"event_id": "q1", "product_id": "p", "text": "how?"})
    return contract.parse_question(raw, KAFKA_TS, contract.Limits(), NOW)


def test_enriched_review_json_is_unchanged() -> None:
    event = EnrichedReview(review(), Sentiment.from_probs([0.125, 0.25, 0.625]), MODEL, PROCESSED)
    assert event.key == b"p1"
    assert (
        event.to_json()
        == (
            '{"event_id":"e1","product_id":"p1","text":"很好用 great","rating":4,"user_id":null,'
            '"category":"书籍","ts":"2026-01-01T19:04:05.120+00:00","lang":"zh","sentiment":'
            '{"label":"positive","score":0.625,"probs":{"negative":0.125,"neutral":0.25,'
            '"positive":0.625}},"model":{"name":"m","version":"1.0"},'
            '"processed_at":"2026-01-03T00:26:40.123+00:00"}'
        ).encode()
    )


def test_enriched_question_json_names_no_model() -> None:
    event = EnrichedQuestion(question(), PROCESSED)
    assert event.to_json() == (  # as before, less the review model's name it used to carry
        b'{"event_id":"q1","product_id":"p","text":"how?","user_id":null,'
        b'"ts":"2025-11-28T03:20:00.000+00:00","processed_at":"2026-01-03T00:26:40.123+00:00"}'
    )


INTENT = Intent(
    "get_refund", 0.875, (("get_refund", 0.875), ("track_refund", 0.125), ("other", 0.0))
)
QMODEL = ModelRef("questions-zh-en", "1.0.0")


def test_enriched_question_json_carries_intent_answer_and_the_question_model() -> None:
    answered = QuestionResult(INTENT, Answer("zh-get_refund", "申请退款", 0.75, "zh"))
    event = EnrichedQuestion(question(), PROCESSED, answered, QMODEL)
    assert event.to_json() == (
        b'{"event_id":"q1","product_id":"p","text":"how?","user_id":null,'
        b'"ts":"2025-11-28T03:20:00.000+00:00","intent":{"label":"get_refund","score":0.875,'
        b'"top":[{"label":"get_refund","score":0.875},{"label":"track_refund","score":0.125},'
        b'{"label":"other","score":0.0}]},"answer":{"faq_id":"zh-get_refund",'
        b'"text":"\xe7\x94\xb3\xe8\xaf\xb7\xe9\x80\x80\xe6\xac\xbe","score":0.75},'
        b'"needs_human":false,"model":{"name":"questions-zh-en","version":"1.0.0"},'
        b'"processed_at":"2026-01-03T00:26:40.123+00:00"}'
    )
    human = EnrichedQuestion(question(), PROCESSED, QuestionResult(INTENT, None), QMODEL)
    data = orjson.loads(human.to_json())
    assert data["needs_human"] is True and "answer" not in data
    rows = questions_table([event, human]).to_pylist()
    assert [(r["intent"], r["faq_id"], r["needs_human"]) for r in rows] == [
        ("get_refund", "zh-get_refund", 0),
        ("get_refund", "", 1),
    ]
    assert (rows[0]["answer_score"], rows[1]["answer_score"]) == (0.75, 0.0)
    assert rows[0]["model_name"] == "questions-zh-en" and rows[0]["intent_score"] == 0.875
    with pytest.raises(ValueError, match="both"):
        EnrichedQuestion(question(), PROCESSED, QuestionResult(INTENT, None))


def test_dead_letter_json_is_unchanged() -> None:
    letter = DeadLetter.of(
        b"\xff not json", Source("reviews", 2, 41, KAFKA_TS), "invalid_utf8", "bad", NOW, 4
    )
    assert letter.to_json() == (
        b'{"reason":"invalid_utf8","detail":"bad","source":{"topic":"reviews","partition":2,'
        b'"offset":41,"timestamp":"2025-11-28T03:20:00.000+00:00"},"original_b64":"/yBubw==",'
        b'"original_truncated":true,"original_size":10,"original_sha256":'
        b'"d35cdacc1599f44574af00e84afd5c0da6a8f9c1cac1f3ed61160cb68db05272",'
        b'"failed_at":"2026-01-03T00:26:40.000+00:00"}'
    )
    stripped = orjson.loads(letter.without_original().to_json())
    assert (stripped["original_b64"], stripped["original_truncated"]) == ("", True)
    assert stripped["original_size"] == 10


def test_the_top_label_wins_and_the_first_wins_a_tie() -> None:
    assert Sentiment.from_probs([0.4, 0.4, 0.2]).label == "negative"
    assert Sentiment.from_probs([0.1, 0.6, 0.3]).prob("positive") == 0.3


def test_arrow_batches_carry_times_as_millisecond_timestamps() -> None:
    event = EnrichedReview(review(), Sentiment.from_probs([0.125, 0.25, 0.625]), MODEL, PROCESSED)
    row = reviews_table([event]).to_pylist()[0]
    assert reviews_table([event]).schema.field("ts").type == pa.timestamp("ms", tz="UTC")
    assert int(row["ts"].timestamp() * 1000) == event.input.ts_ms
    assert int(row["processed_at"].timestamp() * 1000) == PROCESSED
    assert (row["p_negative"], row["p_neutral"], row["p_positive"]) == (0.125, 0.25, 0.625)
    assert (row["user_id"], row["rating"], row["label"]) == ("", 4, "positive")
    q = questions_table([EnrichedQuestion(question(), PROCESSED)]).to_pylist()[0]
    assert int(q["ts"].timestamp() * 1000) == KAFKA_TS
    assert (q["user_id"], q["model_name"], q["model_version"]) == ("", "", "")
