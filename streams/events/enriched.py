"""The enriched events: one frozen type per output topic, its JSON and its Arrow batch.

An enriched event keeps its validated input event (``input``) and adds what
the pipeline computed; times stay epoch milliseconds until they leave the
process. :meth:`to_json` is what the output topic carries (``ts`` and
``processed_at`` as ISO-8601 UTC, see the JSON Schemas in ``schemas/``);
:func:`reviews_table` and :func:`questions_table` are the columnar batches the
store inserts (times as Arrow timestamps, no text in between).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa

from models.questions import QuestionResult
from streams.events.contract import Question, Review, iso_ms
from streams.events.sentiment import SENTIMENT_LABELS, Sentiment, prob_column

TIMESTAMP = pa.timestamp("ms", tz="UTC")


@dataclass(frozen=True)
class ModelRef:
    """The model that produced an event's fields: its package name and version."""

    name: str
    version: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version}


@dataclass(frozen=True)
class ShadowScore:
    """What a candidate review model made of a review (shadow scoring, ``settings.shadow``)."""

    sentiment: Sentiment
    model: ModelRef


@dataclass(frozen=True)
class EnrichedReview:
    """A review with its sentiment (topic ``reviews.enriched``).

    ``shadow``, when the review was sampled for shadow scoring, is the
    candidate model's sentiment: the store keeps it next to the live one
    (``shadow_scores``); it is never part of the event on the topic.
    """

    input: Review
    sentiment: Sentiment
    model: ModelRef
    processed_at_ms: int
    shadow: ShadowScore | None = None

    @property
    def key(self) -> bytes:
        """The Kafka key: one product's events stay in one partition, in order."""
        return self.input.product_id.encode()

    def to_json(self) -> bytes:
        """Input fields + ``sentiment`` {label, score, probs} + ``model`` + ``processed_at``."""
        return orjson.dumps(
            {
                **self.input.fields(),
                "sentiment": self.sentiment.to_dict(),
                "model": self.model.to_dict(),
                "processed_at": iso_ms(self.processed_at_ms),
            }
        )


@dataclass(frozen=True)
class EnrichedQuestion:
    """A customer question with its intent and FAQ answer (topic ``questions.enriched``).

    ``result`` and the question ``model`` that produced it are None when the
    question model is switched off (``REVIEWPULSE_QUESTIONS__ENABLED=false``):
    the event then carries the input fields and ``processed_at`` only.
    """

    input: Question
    processed_at_ms: int
    result: QuestionResult | None = None
    model: ModelRef | None = None

    def __post_init__(self) -> None:
        if (self.result is None) != (self.model is None):
            raise ValueError("an enriched question has both a result and its model, or neither")

    @property
    def key(self) -> bytes:
        """The Kafka key: one product's events stay in one partition, in order."""
        return self.input.product_id.encode()

    def fields(self) -> dict[str, Any]:
        """``intent`` {label, score, top}, ``answer`` {faq_id, text, score} (only when
        answered), ``needs_human`` and ``model``; empty without a result."""
        if self.result is None or self.model is None:
            return {}
        record = self.result.to_dict()
        out: dict[str, Any] = {"intent": record["intent"]}
        answer = record["answer"]
        if answer is not None:
            out["answer"] = {k: answer[k] for k in ("faq_id", "text", "score")}
        out["needs_human"] = record["needs_human"]
        out["model"] = self.model.to_dict()
        return out

    def to_json(self) -> bytes:
        """Input fields + intent/answer/needs_human/``model`` (when scored) + ``processed_at``."""
        return orjson.dumps(
            {
                **self.input.fields(),
                **self.fields(),
                "processed_at": iso_ms(self.processed_at_ms),
            }
        )


Enriched = EnrichedReview | EnrichedQuestion

REVIEW_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("product_id", pa.string()),
        ("category", pa.string()),
        ("user_id", pa.string()),
        ("lang", pa.string()),
        ("text", pa.string()),
        ("rating", pa.uint8()),
        ("label", pa.string()),
        ("score", pa.float32()),
        *((prob_column(label), pa.float32()) for label in SENTIMENT_LABELS),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("ts", TIMESTAMP),
        ("processed_at", TIMESTAMP),
    ]
)

QUESTION_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("product_id", pa.string()),
        ("user_id", pa.string()),
        ("text", pa.string()),
        ("intent", pa.string()),
        ("intent_score", pa.float32()),
        ("faq_id", pa.string()),
        ("answer_score", pa.float32()),
        ("needs_human", pa.uint8()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("ts", TIMESTAMP),
        ("processed_at", TIMESTAMP),
    ]
)


def reviews_table(events: Sequence[EnrichedReview]) -> pa.Table:
    """Enriched reviews → one ``REVIEW_SCHEMA`` batch; a missing optional value is 0 or ''."""
    reviews = [e.input for e in events]
    columns: dict[str, list[Any]] = {
        "event_id": [r.event_id for r in reviews],
        "product_id": [r.product_id for r in reviews],
        "category": [r.category or "" for r in reviews],
        "user_id": [r.user_id or "" for r in reviews],
        "lang": [r.lang or "" for r in reviews],
        "text": [r.text for r in reviews],
        "rating": [r.rating or 0 for r in reviews],
        "label": [e.sentiment.label for e in events],
        "score": [e.sentiment.score for e in events],
        **{
            prob_column(label): [e.sentiment.prob(label) for e in events]
            for label in SENTIMENT_LABELS
        },
        "model_name": [e.model.name for e in events],
        "model_version": [e.model.version for e in events],
        "ts": [r.ts_ms for r in reviews],
        "processed_at": [e.processed_at_ms for e in events],
    }
    return pa.table(columns, schema=REVIEW_SCHEMA)


def questions_table(events: Sequence[EnrichedQuestion]) -> pa.Table:
    """Enriched questions → one ``QUESTION_SCHEMA`` batch.

    A question without a result (question model off) has ``intent`` '', scores 0,
    ``needs_human`` 0 and an empty model; an unanswered one has ``faq_id`` '' and
    ``answer_score`` 0.
    """
    questions = [e.input for e in events]
    results = [e.result for e in events]
    answers = [r.answer if r is not None else None for r in results]
    models = [e.model for e in events]
    columns: dict[str, list[Any]] = {
        "event_id": [q.event_id for q in questions],
        "product_id": [q.product_id for q in questions],
        "user_id": [q.user_id or "" for q in questions],
        "text": [q.text for q in questions],
        "intent": [r.intent.label if r is not None else "" for r in results],
        "intent_score": [r.intent.score if r is not None else 0.0 for r in results],
        "faq_id": [a.faq_id if a is not None else "" for a in answers],
        "answer_score": [a.score if a is not None else 0.0 for a in answers],
        "needs_human": [int(r.needs_human) if r is not None else 0 for r in results],
        "model_name": [m.name if m is not None else "" for m in models],
        "model_version": [m.version if m is not None else "" for m in models],
        "ts": [q.ts_ms for q in questions],
        "processed_at": [e.processed_at_ms for e in events],
    }
    return pa.table(columns, schema=QUESTION_SCHEMA)
