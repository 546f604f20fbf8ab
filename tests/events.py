"""Typed enriched events for store tests, built from readable values (datetimes, label names)."""

from __future__ import annotations

from datetime import datetime

from streams.events.contract import Question, Review
from streams.events.enriched import EnrichedQuestion, EnrichedReview, ModelRef
from streams.events.sentiment import SENTIMENT_LABELS, Sentiment

MODEL = ModelRef("m", "1")


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def review_event(
    event_id: str,
    product_id: str,
    *,
    ts: datetime,
    processed_at: datetime,
    probs: dict[str, float],
    label: str | None = None,
    text: str = "fine",
    category: str | None = None,
    rating: int | None = None,
    lang: str | None = "en",
) -> EnrichedReview:
    """A review as the pipeline enriches it; ``label`` defaults to the most probable one."""
    row = [probs[name] for name in SENTIMENT_LABELS]
    sentiment = Sentiment.from_probs(row)
    if label is not None:
        sentiment = Sentiment(label, probs[label], tuple(row))
    review = Review(
        event_id=event_id,
        product_id=product_id,
        text=text,
        ts_ms=ms(ts),
        rating=rating,
        category=category,
        lang=lang,
    )
    return EnrichedReview(review, sentiment, MODEL, ms(processed_at))


def question_event(
    event_id: str, product_id: str, *, ts: datetime, processed_at: datetime, text: str = "?"
) -> EnrichedQuestion:
    question = Question(event_id=event_id, product_id=product_id, text=text, ts_ms=ms(ts))
    return EnrichedQuestion(question, ms(processed_at))
